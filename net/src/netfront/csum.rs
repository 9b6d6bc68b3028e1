//! Transmit checksum offload: what netfront does to a frame's TCP or UDP
//! checksum before the frame goes on the tx ring (sans-IO: plain bytes in,
//! a verdict out).
//!
//! With [`NetfrontConfig::tx_csum_offload`](super::NetfrontConfig) on,
//! smoltcp leaves TCP and UDP checksums to the device (it writes 0 in the
//! field; nothing here relies on what it wrote). [`prepare_tx`] then looks at
//! each frame:
//!
//! 1. An unfragmented IPv4 TCP or UDP packet that Linux netback can parse
//!    (`checksum_setup` → `skb_checksum_setup(skb, false)`: Ethernet type
//!    IPv4, no VLAN tag, header length 5..=15 words, options allowed, no
//!    fragment, a whole TCP (20 bytes) or UDP (8 bytes) header), and that
//!    ends exactly where the IP total length says (the backend sums to the
//!    end of the frame) and, for UDP, whose length field covers the whole
//!    IP payload: the field gets the pseudo-header sum (folded, not
//!    inverted, the value of Linux's `~tcp_v4_check(len, saddr, daddr, 0)`)
//!    and the request carries `NETTXF_csum_blank | NETTXF_data_validated`
//!    ([`TxChecksum::Offloaded`]). The backend completes it as a
//!    `CHECKSUM_PARTIAL` packet: the ones' complement sum from the TCP/UDP
//!    header to the end, the field's value included, complemented.
//! 2. Any other IPv4 TCP or UDP packet whose checksum can be computed here
//!    (bytes after the IP packet, a UDP length short of the IP payload)
//!    gets the full checksum, computed here ([`TxChecksum::Computed`]).
//!    The first fragment of a UDP datagram gets 0, "no checksum" (RFC 768;
//!    its checksum covers fragments this frame does not hold).
//! 3. A frame with no TCP or UDP checksum is sent as it is
//!    ([`TxChecksum::Unchanged`]): not IPv4 (ARP), another protocol (ICMP
//!    and the IPv4 header carry smoltcp's own checksums), a later fragment.
//! 4. An IPv4 frame whose header does not parse, a TCP or UDP header cut
//!    short, a UDP length that leaves the packet, or a TCP first fragment
//!    cannot carry a right checksum: it is not sent
//!    ([`TxChecksum::Unsendable`]).
//!
//! smoltcp emits neither fragments (it is built without
//! `proto-ipv4-fragmentation`) nor malformed headers, so 2 and 4 are a
//! defence only: whatever smoltcp does, no frame leaves with a wrong
//! checksum.
#![forbid(unsafe_code)]

use smoltcp::wire::checksum;

/// Ethernet header bytes (no VLAN tag).
const ETH_HEADER_LEN: usize = 14;
/// The IPv4 Ethernet type.
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
/// The shortest IPv4 header.
const IPV4_HEADER_LEN_MIN: usize = 20;
/// IPv4 protocol numbers.
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// The shortest TCP header, and where its checksum field is.
const TCP_HEADER_LEN: usize = 20;
const TCP_CHECKSUM_AT: usize = 16;
/// The UDP header, and where its checksum field is.
const UDP_HEADER_LEN: usize = 8;
const UDP_CHECKSUM_AT: usize = 6;

/// What [`prepare_tx`] did to a frame, and so how it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxChecksum {
    /// The pseudo-header sum is in the TCP/UDP checksum field: send with
    /// `NETTXF_csum_blank | NETTXF_data_validated` (the backend completes it).
    Offloaded,
    /// netfront wrote the whole TCP/UDP checksum (or 0, "none", in the first
    /// fragment of a UDP datagram): send without flags.
    Computed,
    /// The frame has no TCP/UDP checksum to fill: send it as it is.
    Unchanged,
    /// A TCP/UDP packet that cannot carry a right checksum: do not send it.
    Unsendable,
}

/// The parts of an IPv4 TCP or UDP frame a checksum needs.
struct Transport {
    /// Where the TCP/UDP header starts in the frame.
    start: usize,
    /// Where the IP packet ends in the frame (`start..end` is the IP payload).
    end: usize,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    /// The packet is a fragment: more fragments follow, or its offset is not 0.
    more_frags: bool,
    frag_offset: u16,
}

/// What the frame's IPv4 header says.
enum Parsed {
    /// Not an IPv4 frame, or not TCP/UDP: no checksum here.
    NoChecksum,
    /// An IPv4 frame whose header does not parse.
    Malformed,
    /// TCP or UDP.
    Transport(Transport),
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn parse(frame: &[u8]) -> Parsed {
    if frame.len() < ETH_HEADER_LEN || frame[12..14] != ETHERTYPE_IPV4 {
        return Parsed::NoChecksum;
    }
    let ip = &frame[ETH_HEADER_LEN..];
    if ip.len() < IPV4_HEADER_LEN_MIN || ip[0] >> 4 != 4 {
        return Parsed::Malformed;
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total_len = usize::from(be16(ip, 2));
    if header_len < IPV4_HEADER_LEN_MIN || total_len < header_len || total_len > ip.len() {
        return Parsed::Malformed;
    }
    let proto = ip[9];
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return Parsed::NoChecksum;
    }
    let frag = be16(ip, 6);
    Parsed::Transport(Transport {
        start: ETH_HEADER_LEN + header_len,
        end: ETH_HEADER_LEN + total_len,
        proto,
        src: ip[12..16].try_into().expect("4 bytes"),
        dst: ip[16..20].try_into().expect("4 bytes"),
        more_frags: frag & 0x2000 != 0,
        frag_offset: frag & 0x1fff,
    })
}

/// The IPv4 pseudo-header sum for `len` bytes of `proto` from `src` to
/// `dst`: folded, not inverted, in network byte order (RFC 1071 over
/// source, destination, zero and protocol, length). Never 0 (`proto` is
/// not).
pub fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u16 {
    let word = |b: [u8; 4], i: usize| u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
    let sum = word(src, 0) + word(src, 2) + word(dst, 0) + word(dst, 2);
    let sum = sum + u32::from(proto) + u32::from(len);
    // At most 6 * 0xffff: two folds leave 16 bits.
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Prepares `frame` (a whole Ethernet frame, as smoltcp emitted it with
/// TCP and UDP checksums left to the device) for the tx ring; see the
/// module doc. `frame` is changed only in a TCP/UDP checksum field.
pub fn prepare_tx(frame: &mut [u8]) -> TxChecksum {
    let t = match parse(frame) {
        Parsed::NoChecksum => return TxChecksum::Unchanged,
        Parsed::Malformed => return TxChecksum::Unsendable,
        Parsed::Transport(t) => t,
    };
    if t.frag_offset != 0 {
        // A later fragment: no transport header in it.
        return TxChecksum::Unchanged;
    }
    let (header_len, field_at) = match t.proto {
        PROTO_TCP => (TCP_HEADER_LEN, TCP_CHECKSUM_AT),
        _ => (UDP_HEADER_LEN, UDP_CHECKSUM_AT),
    };
    let payload_len = t.end - t.start;
    if payload_len < header_len {
        return TxChecksum::Unsendable;
    }
    let field = t.start + field_at;
    if t.more_frags {
        if t.proto == PROTO_UDP {
            frame[field..field + 2].copy_from_slice(&[0, 0]);
            return TxChecksum::Computed;
        }
        return TxChecksum::Unsendable;
    }
    // The bytes the checksum covers: the IP payload, or for UDP its length.
    let covered = if t.proto == PROTO_UDP {
        let udp_len = usize::from(be16(frame, t.start + 4));
        if !(UDP_HEADER_LEN..=payload_len).contains(&udp_len) {
            return TxChecksum::Unsendable;
        }
        udp_len
    } else {
        payload_len
    };
    // At most 1514 - 14 - 20 bytes: fits.
    let len = u16::try_from(covered).expect("a frame's IP payload fits in u16");
    let pseudo = pseudo_header_sum(t.src, t.dst, t.proto, len);
    if t.end == frame.len() && covered == payload_len {
        frame[field..field + 2].copy_from_slice(&pseudo.to_be_bytes());
        return TxChecksum::Offloaded;
    }
    frame[field..field + 2].copy_from_slice(&[0, 0]);
    let sum = !checksum::combine(&[pseudo, checksum::data(&frame[t.start..t.start + covered])]);
    // A UDP checksum of 0 means "none": a computed 0 is sent as 0xffff.
    let sum = if sum == 0 && t.proto == PROTO_UDP {
        0xffff
    } else {
        sum
    };
    frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    TxChecksum::Computed
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// RFC 1071 from scratch, byte by byte (independent of smoltcp and of
    /// the code under test): the folded ones' complement sum of big-endian
    /// 16-bit words, an odd last byte padded with zero.
    fn ones_sum(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let mut sum: u64 = 0;
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u64::from(b));
            sum += hi | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// The IPv4 pseudo header as bytes (RFC 793 / 768).
    fn pseudo_bytes(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
        p
    }

    /// The checksum a receiver expects over `segment` with its checksum field
    /// at `field` zeroed: complement of the sum of pseudo header and segment.
    fn full_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8], field: usize) -> u16 {
        let mut s = segment.to_vec();
        s[field..field + 2].copy_from_slice(&[0, 0]);
        !ones_sum(&[&pseudo_bytes(src, dst, proto, s.len()), &s])
    }

    /// What a backend does with a csum_blank packet (Linux's
    /// `skb_checksum_help`): the sum from the transport header to the end
    /// of the frame, with the field's value in it, complemented (0 stored
    /// as 0xffff).
    fn complete(frame: &mut [u8], start: usize, field: usize) {
        let c = !ones_sum(&[&frame[start..]]);
        let c = if c == 0 { 0xffff } else { c };
        frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// Whether a receiver would accept the segment: the sum of pseudo header
    /// and segment (field included) is all ones.
    fn verifies(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> bool {
        ones_sum(&[&pseudo_bytes(src, dst, proto, segment.len()), segment]) == 0xffff
    }

    const SRC: [u8; 4] = [10, 0, 0, 1];
    const DST: [u8; 4] = [192, 168, 200, 254];

    fn fill(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// An Ethernet + IPv4 frame with `options` (a multiple of 4 bytes) and
    /// `segment` as the IP payload; the IPv4 header checksum is left 0
    /// (nothing here reads it).
    fn frame(proto: u8, options: &[u8], segment: &[u8], frag: u16) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let ihl = 5 + options.len() / 4;
        let total = ihl * 4 + segment.len();
        let mut f = vec![0, 0x16, 0x3e, 0, 0, 2, 0, 0x16, 0x3e, 0, 0, 1, 0x08, 0x00];
        f.push(0x40 | ihl as u8);
        f.push(0);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.extend_from_slice(&[64, proto, 0, 0]);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&DST);
        f.extend_from_slice(options);
        f.extend_from_slice(segment);
        f
    }

    /// A TCP segment: a 20-byte header (+ `opts` words of options) with
    /// garbage in its checksum field, then `payload_len` bytes.
    fn tcp_segment(seed: u32, opts: usize, payload_len: usize) -> Vec<u8> {
        let mut s = fill(seed, 20 + opts * 4 + payload_len);
        s[12] = ((5 + opts) as u8) << 4;
        s
    }

    fn udp_segment(seed: u32, payload_len: usize) -> Vec<u8> {
        let mut s = fill(seed, 8 + payload_len);
        let len = s.len() as u16;
        s[4..6].copy_from_slice(&len.to_be_bytes());
        s
    }

    const LENGTHS: [usize; 10] = [0, 1, 2, 3, 17, 511, 512, 1013, 1459, 1460];

    #[test]
    fn pseudo_header_sum_is_the_folded_sum_of_the_pseudo_header() {
        for (proto, len) in [(6u8, 20u16), (17, 8), (6, 1480), (17, 1481), (6, 0xffff)] {
            let want = ones_sum(&[&pseudo_bytes(SRC, DST, proto, usize::from(len))]);
            assert_eq!(pseudo_header_sum(SRC, DST, proto, len), want);
            assert_ne!(want, 0);
        }
        // A value worked by hand: 0x0a00 + 0x0001 + 0xc0a8 + 0xc8fe + 0x0006
        // + 0x0014 = 0x193c1, folded 0x93c1 + 1 = 0x93c2.
        assert_eq!(pseudo_header_sum(SRC, DST, 6, 20), 0x93c2);
    }

    /// TCP, with and without IPv4 and TCP options, every length parity: the
    /// field holds the pseudo-header sum, the flags are due, and completing
    /// it as the backend does gives the checksum computed from scratch.
    #[test]
    fn tcp_offload_completes_to_the_full_checksum() {
        for (i, &len) in LENGTHS.iter().enumerate() {
            for (ip_opts, tcp_opts) in [(0, 0), (4, 0), (0, 3), (40, 10)] {
                let seg = tcp_segment(i as u32 + 1, tcp_opts, len);
                let opts = fill(99, ip_opts);
                let mut f = frame(PROTO_TCP, &opts, &seg, 0x4000); // DF set
                let start = 14 + 20 + ip_opts;
                let field = start + TCP_CHECKSUM_AT;
                assert_eq!(prepare_tx(&mut f), TxChecksum::Offloaded, "len {len}");
                let pseudo = pseudo_header_sum(SRC, DST, PROTO_TCP, seg.len() as u16);
                assert_eq!(be16(&f, field), pseudo);
                // Only the field changed.
                let mut g = f.clone();
                g[field..field + 2].copy_from_slice(&seg[16..18]);
                assert_eq!(g, frame(PROTO_TCP, &opts, &seg, 0x4000));
                complete(&mut f, start, field);
                let want = full_checksum(SRC, DST, PROTO_TCP, &seg, TCP_CHECKSUM_AT);
                let got = be16(&f, field);
                assert!(
                    got == want || (want == 0 && got == 0xffff),
                    "len {len}: {got:#x} != {want:#x}"
                );
                assert!(verifies(SRC, DST, PROTO_TCP, &f[start..]));
            }
        }
    }

    #[test]
    fn udp_offload_completes_to_the_full_checksum() {
        for (i, &len) in LENGTHS.iter().enumerate() {
            for ip_opts in [0, 8] {
                let seg = udp_segment(i as u32 + 7, len);
                let opts = fill(5, ip_opts);
                let mut f = frame(PROTO_UDP, &opts, &seg, 0);
                let start = 14 + 20 + ip_opts;
                let field = start + UDP_CHECKSUM_AT;
                assert_eq!(prepare_tx(&mut f), TxChecksum::Offloaded, "len {len}");
                let pseudo = pseudo_header_sum(SRC, DST, PROTO_UDP, seg.len() as u16);
                assert_eq!(be16(&f, field), pseudo);
                complete(&mut f, start, field);
                let want = full_checksum(SRC, DST, PROTO_UDP, &seg, UDP_CHECKSUM_AT);
                let want = if want == 0 { 0xffff } else { want };
                assert_eq!(be16(&f, field), want, "len {len}");
                assert!(verifies(SRC, DST, PROTO_UDP, &f[start..]));
            }
        }
    }

    /// A UDP segment whose checksum comes out 0 is completed to 0xffff (0
    /// would mean "no checksum"); the partial value goes in as it is.
    #[test]
    fn udp_checksum_of_zero_is_sent_as_all_ones() {
        // Choose the last two payload bytes so that the full sum is 0xffff.
        let mut seg = udp_segment(3, 10);
        let n = seg.len();
        seg[n - 2..].copy_from_slice(&[0, 0]);
        let mut probe = seg.clone();
        probe[6..8].copy_from_slice(&[0, 0]);
        let s = ones_sum(&[&pseudo_bytes(SRC, DST, PROTO_UDP, n), &probe]);
        seg[n - 2..].copy_from_slice(&(!s).to_be_bytes());
        assert_eq!(full_checksum(SRC, DST, PROTO_UDP, &seg, 6), 0);
        let mut f = frame(PROTO_UDP, &[], &seg, 0);
        assert_eq!(prepare_tx(&mut f), TxChecksum::Offloaded);
        let field = 14 + 20 + 6;
        assert_eq!(
            be16(&f, field),
            pseudo_header_sum(SRC, DST, PROTO_UDP, n as u16)
        );
        complete(&mut f, 14 + 20, field);
        assert_eq!(be16(&f, field), 0xffff);
        assert!(verifies(SRC, DST, PROTO_UDP, &f[34..]));
        // Computed here (trailing bytes stop the offload): 0xffff as well.
        let mut f = frame(PROTO_UDP, &[], &seg, 0);
        f.extend_from_slice(&[0; 6]);
        assert_eq!(prepare_tx(&mut f), TxChecksum::Computed);
        assert_eq!(be16(&f, field), 0xffff);
    }

    /// Bytes after the IP packet (padding), or a UDP length short of the IP
    /// payload: the backend would sum the wrong bytes, so the full checksum
    /// is computed here, over what the receiver checks.
    #[test]
    fn packets_the_backend_would_misread_get_full_checksums() {
        for &len in &LENGTHS {
            let seg = tcp_segment(11, 0, len);
            let mut f = frame(PROTO_TCP, &[4, 3, 2, 1], &seg, 0);
            f.extend_from_slice(&[0xab; 5]);
            assert_eq!(prepare_tx(&mut f), TxChecksum::Computed);
            let start = 14 + 24;
            let field = start + TCP_CHECKSUM_AT;
            assert_eq!(
                be16(&f, field),
                full_checksum(SRC, DST, PROTO_TCP, &seg, TCP_CHECKSUM_AT)
            );
            assert!(verifies(SRC, DST, PROTO_TCP, &f[start..f.len() - 5]));
        }
        // UDP length 8 + 3 in an IP payload of 8 + 10: the checksum covers
        // the 11 bytes the UDP length says.
        let mut seg = udp_segment(4, 10);
        seg[4..6].copy_from_slice(&11u16.to_be_bytes());
        let mut f = frame(PROTO_UDP, &[], &seg, 0);
        assert_eq!(prepare_tx(&mut f), TxChecksum::Computed);
        let want = full_checksum(SRC, DST, PROTO_UDP, &seg[..11], UDP_CHECKSUM_AT);
        assert_eq!(be16(&f, 40), if want == 0 { 0xffff } else { want });
        assert!(verifies(SRC, DST, PROTO_UDP, &f[34..34 + 11]));
    }

    /// ARP, ICMP and later fragments have no TCP/UDP checksum: untouched,
    /// no flag.
    #[test]
    fn frames_without_a_transport_checksum_are_unchanged() {
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[0, 0x16, 0x3e, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&fill(1, 28));
        let mut icmp = frame(1, &[], &fill(2, 64), 0);
        // An ICMP echo with its checksum right (as smoltcp emits it).
        icmp[34] = 8;
        icmp[36..38].copy_from_slice(&[0, 0]);
        let c = !ones_sum(&[&icmp[34..]]);
        icmp[36..38].copy_from_slice(&c.to_be_bytes());
        let later_tcp = frame(PROTO_TCP, &[], &fill(3, 100), 185); // offset 185 * 8
        let later_udp = frame(PROTO_UDP, &[], &fill(4, 100), 0x2000 | 1);
        let runt = vec![1, 2, 3];
        for f in [arp, icmp.clone(), later_tcp, later_udp, runt] {
            let mut g = f.clone();
            assert_eq!(prepare_tx(&mut g), TxChecksum::Unchanged, "{f:?}");
            assert_eq!(g, f);
        }
        assert_eq!(ones_sum(&[&icmp[34..]]), 0xffff);
    }

    /// The first fragment of a UDP datagram gets 0 ("no checksum"): its
    /// checksum would cover bytes in other frames. A TCP first fragment
    /// cannot be sent right at all.
    #[test]
    fn first_fragments() {
        let seg = udp_segment(8, 100);
        let mut f = frame(PROTO_UDP, &[], &seg, 0x2000);
        assert_eq!(prepare_tx(&mut f), TxChecksum::Computed);
        assert_eq!(be16(&f, 40), 0);
        let mut f = frame(PROTO_TCP, &[], &tcp_segment(9, 0, 100), 0x2000);
        assert_eq!(prepare_tx(&mut f), TxChecksum::Unsendable);
    }

    /// Headers that do not parse: never offloaded, never sent with what
    /// smoltcp left in the field.
    #[test]
    fn malformed_headers_are_unsendable() {
        let good = frame(PROTO_TCP, &[], &tcp_segment(1, 0, 40), 0);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        let with = |at: usize, b: &[u8]| {
            let mut f = good.clone();
            f[at..at + b.len()].copy_from_slice(b);
            f
        };
        cases.push(with(14, &[0x65])); // version 6 under the IPv4 type
        cases.push(with(14, &[0x44])); // header of 4 words
                                       // A 60-byte header in a 70-byte packet: 10 bytes left for TCP.
        cases.push(with(14, &[0x4f]));
        cases.last_mut().unwrap()[16..18].copy_from_slice(&70u16.to_be_bytes());
        cases.push(with(16, &(19u16).to_be_bytes())); // total length under the header
        cases.push(with(16, &(81u16).to_be_bytes())); // total length past the frame
        cases.push(good[..14 + 19].to_vec()); // IP header cut short
                                              // TCP header cut short: 19 bytes of TCP.
        cases.push(frame(PROTO_TCP, &[], &fill(2, 19), 0));
        // UDP header cut short, and a UDP length past the packet or under 8.
        cases.push(frame(PROTO_UDP, &[], &fill(3, 7), 0));
        let mut u = udp_segment(5, 20);
        u[4..6].copy_from_slice(&29u16.to_be_bytes());
        cases.push(frame(PROTO_UDP, &[], &u, 0));
        u[4..6].copy_from_slice(&7u16.to_be_bytes());
        cases.push(frame(PROTO_UDP, &[], &u, 0));
        for (i, f) in cases.into_iter().enumerate() {
            let mut g = f.clone();
            assert_eq!(
                prepare_tx(&mut g),
                TxChecksum::Unsendable,
                "case {i}: {f:?}"
            );
            assert_eq!(g, f, "case {i}: changed");
        }
    }

    /// Random headers (IPv4 type, version 4, TCP or UDP forced on most):
    /// never a panic, never a change outside the checksum field, and every
    /// frame sent as offloaded or computed carries a right checksum (after
    /// the backend's completion for the offloaded ones).
    #[test]
    fn random_frames_never_leave_with_a_wrong_checksum() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut seen = [0usize; 4];
        for round in 0..20_000 {
            let len = (next() % 120) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 14 + 20 {
                f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
                f[14] = 0x40 | (f[14] & 0x0f).clamp(5, 7);
                if round % 4 != 0 {
                    // A total length that mostly fits, often exactly.
                    let ip_len = (len - 14) as u16 - (next() % 3) as u16 * (round % 2);
                    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
                    if round % 8 != 1 {
                        // Not a fragment (Don't Fragment as it comes).
                        f[20] &= 0x40;
                        f[21] = 0;
                    }
                    f[23] = if round % 3 == 0 { PROTO_UDP } else { PROTO_TCP };
                }
            }
            let before = f.clone();
            let verdict = prepare_tx(&mut f);
            seen[verdict as usize] += 1;
            let Parsed::Transport(t) = parse(&before) else {
                assert!(matches!(
                    verdict,
                    TxChecksum::Unchanged | TxChecksum::Unsendable
                ));
                assert_eq!(f, before);
                continue;
            };
            let at = t.start + if t.proto == PROTO_TCP { 16 } else { 6 };
            let mut g = f.clone();
            if g.len() >= at + 2 {
                g[at..at + 2].copy_from_slice(&before[at..at + 2]);
            }
            assert_eq!(g, before, "only the checksum field changes");
            let fragment = t.more_frags || t.frag_offset != 0;
            match verdict {
                TxChecksum::Offloaded => {
                    assert_eq!(f.len(), t.end);
                    complete(&mut f, t.start, at);
                    assert!(verifies(t.src, t.dst, t.proto, &f[t.start..]));
                }
                TxChecksum::Computed if !fragment => {
                    let covered = if t.proto == PROTO_UDP {
                        usize::from(be16(&f, t.start + 4))
                    } else {
                        t.end - t.start
                    };
                    let seg = &f[t.start..t.start + covered];
                    assert!(verifies(t.src, t.dst, t.proto, seg));
                }
                TxChecksum::Computed => assert_eq!(be16(&f, at), 0),
                TxChecksum::Unchanged => assert!(t.frag_offset != 0),
                TxChecksum::Unsendable => {}
            }
        }
        // Every verdict was reached.
        assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
    }

    /// smoltcp's own frames: with TCP/UDP checksums left to the device, a
    /// SYN with options and a UDP datagram come out offloaded, and complete
    /// to what smoltcp computes with checksums on.
    #[test]
    fn smoltcp_frames_complete_to_smoltcps_checksums() {
        use smoltcp::phy::{Checksum, ChecksumCapabilities};
        use smoltcp::wire::{
            EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
            Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
            UdpPacket, UdpRepr,
        };
        let (src, dst) = (Ipv4Address::from(SRC), Ipv4Address::from(DST));
        let emit = |caps: &ChecksumCapabilities, tcp: bool, payload: &[u8]| -> Vec<u8> {
            let l4_len = if tcp {
                24 + payload.len()
            } else {
                8 + payload.len()
            };
            let mut buf = vec![0u8; 14 + 20 + l4_len];
            let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
            EthernetRepr {
                src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
                dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
                ethertype: EthernetProtocol::Ipv4,
            }
            .emit(&mut eth);
            let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
            Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: if tcp {
                    IpProtocol::Tcp
                } else {
                    IpProtocol::Udp
                },
                payload_len: l4_len,
                hop_limit: 64,
            }
            .emit(&mut ip, caps);
            let (s, d) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
            if tcp {
                let repr = TcpRepr {
                    src_port: 80,
                    dst_port: 49152,
                    control: TcpControl::Syn,
                    seq_number: TcpSeqNumber(0x1234_5678),
                    ack_number: None,
                    window_len: 64240,
                    window_scale: None,
                    max_seg_size: Some(1460),
                    sack_permitted: false,
                    sack_ranges: [None, None, None],
                    timestamp: None,
                    payload,
                };
                assert_eq!(repr.header_len(), 24);
                repr.emit(
                    &mut TcpPacket::new_unchecked(ip.payload_mut()),
                    &s,
                    &d,
                    caps,
                );
            } else {
                UdpRepr {
                    src_port: 68,
                    dst_port: 67,
                }
                .emit(
                    &mut UdpPacket::new_unchecked(ip.payload_mut()),
                    &s,
                    &d,
                    payload.len(),
                    |b| b.copy_from_slice(payload),
                    caps,
                );
            }
            buf
        };
        let mut offload = ChecksumCapabilities::default();
        offload.tcp = Checksum::Rx;
        offload.udp = Checksum::Rx;
        for tcp in [true, false] {
            for len in [0, 1, 333, 1000] {
                let payload = fill(len as u32 + 3, len);
                let want = emit(&ChecksumCapabilities::default(), tcp, &payload);
                let mut f = emit(&offload, tcp, &payload);
                assert_eq!(prepare_tx(&mut f), TxChecksum::Offloaded);
                let field = 34 + if tcp { 16 } else { 6 };
                complete(&mut f, 34, field);
                assert_eq!(f, want, "tcp {tcp} len {len}");
            }
        }
    }
}
