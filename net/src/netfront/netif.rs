//! The netif wire format (xen/io/netif.h): tx and rx ring requests and
//! responses, extra-info slots, flags and status codes, as plain values.
//!
//! The `#[repr(C)]` structs document the C layout and are checked against it
//! (here at compile time, and against libxen-dev's header by
//! `tests/netfront_layout.rs`). Ring slots are never referenced as these
//! structs: a request is encoded into bytes and copied into its slot once; a
//! response is copied out of its slot once and decoded. Decoding never fails
//! (every bit pattern is a response); whether a response makes sense is
//! decided by [`super::rx`] and the tx path, never here.
//!
//! All fields are little-endian (x86).
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

use ringlet_xen::abi::ring::ring_size;
use ringlet_xen::hypervisor::PAGE_SIZE;
use ringlet_xen::ring::RingProtocol;

/// `_NETTXF_csum_blank`: the protocol checksum is blank (the backend fills it).
#[doc(alias = "NETTXF_csum_blank")]
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `_NETTXF_data_validated`: the data was checked against its checksum.
#[doc(alias = "NETTXF_data_validated")]
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `_NETTXF_more_data`: the packet continues in the next request.
#[doc(alias = "NETTXF_more_data")]
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `_NETTXF_extra_info`: an extra-info slot follows.
#[doc(alias = "NETTXF_extra_info")]
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `_NETRXF_data_validated`: the data was checked against its checksum.
#[doc(alias = "NETRXF_data_validated")]
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `_NETRXF_csum_blank`: the protocol checksum is blank (partial).
#[doc(alias = "NETRXF_csum_blank")]
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `_NETRXF_more_data`: the packet continues in the next response.
#[doc(alias = "NETRXF_more_data")]
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `_NETRXF_extra_info`: an extra-info slot follows.
#[doc(alias = "NETRXF_extra_info")]
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `_NETRXF_gso_prefix`: the packet has a GSO prefix (deprecated).
#[doc(alias = "NETRXF_gso_prefix")]
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;
/// Every rx flag netif.h defines; any other bit is malformed.
pub const NETRXF_KNOWN: u16 = NETRXF_DATA_VALIDATED
    | NETRXF_CSUM_BLANK
    | NETRXF_MORE_DATA
    | NETRXF_EXTRA_INFO
    | NETRXF_GSO_PREFIX;

/// `NETIF_RSP_DROPPED`: the packet was dropped.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`: the request failed.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`: done.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: no response (the slot of an auxiliary request, e.g. an
/// extra-info slot).
pub const NETIF_RSP_NULL: i16 = 1;

/// `XEN_NETIF_EXTRA_TYPE_NONE`.
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`.
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// `XEN_NETIF_NR_SLOTS_MIN`: slots one packet may use that every backend
/// must accept.
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;

/// `XEN_NETIF_MAX_TX_SIZE`: the largest packet a tx request can describe.
pub const XEN_NETIF_MAX_TX_SIZE: usize = 0xFFFF;

/// `struct netif_tx_request`: one slot of a packet to send.
#[doc(alias = "netif_tx_request")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// `gref`: the grant of the page holding the data.
    pub gref: u32,
    /// `offset`: where the data starts in the page.
    pub offset: u16,
    /// `flags`: `NETTXF_*`.
    pub flags: u16,
    /// `id`: echoed in the response.
    pub id: u16,
    /// `size`: the whole packet's size in the first slot, else this slot's.
    pub size: u16,
}

/// `struct netif_tx_response`.
#[doc(alias = "netif_tx_response")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResponse {
    /// `id`: the request's.
    pub id: u16,
    /// `status`: `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_rx_request`: a page the backend may fill with a packet.
#[doc(alias = "netif_rx_request")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRequest {
    /// `id`: echoed in the response.
    pub id: u16,
    /// `pad`.
    pub pad: u16,
    /// `gref`: the grant of the page (writable by the backend).
    pub gref: u32,
}

/// `struct netif_rx_response`.
#[doc(alias = "netif_rx_response")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxResponse {
    /// `id`: the request's.
    pub id: u16,
    /// `offset`: where the data starts in the page.
    pub offset: u16,
    /// `flags`: `NETRXF_*`.
    pub flags: u16,
    /// `status`: the fragment's size if `>= 0`, else `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_extra_info`: an auxiliary slot (GSO, multicast, hash)
/// overlaying a tx request or an rx response. Its type-specific bytes are
/// kept raw.
#[doc(alias = "netif_extra_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraInfo {
    /// `type`: `XEN_NETIF_EXTRA_TYPE_*`.
    pub kind: u8,
    /// `flags`: `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// `u`: the type-specific union (`pad[3]`).
    pub data: [u16; 3],
}

/// Bytes of a tx ring slot (`sizeof(union netif_tx_sring_entry)`).
pub const TX_SLOT_SIZE: usize = 12;
/// Bytes of an rx ring slot (`sizeof(union netif_rx_sring_entry)`).
pub const RX_SLOT_SIZE: usize = 8;
/// Slots in a one-page tx ring (`NET_TX_RING_SIZE`).
#[doc(alias = "NET_TX_RING_SIZE")]
pub const TX_RING_SIZE: u32 = ring_size(TX_SLOT_SIZE, PAGE_SIZE);
/// Slots in a one-page rx ring (`NET_RX_RING_SIZE`).
#[doc(alias = "NET_RX_RING_SIZE")]
pub const RX_RING_SIZE: u32 = ring_size(RX_SLOT_SIZE, PAGE_SIZE);

const _: () = {
    assert!(size_of::<TxRequest>() == 12);
    assert!(offset_of!(TxRequest, gref) == 0);
    assert!(offset_of!(TxRequest, offset) == 4);
    assert!(offset_of!(TxRequest, flags) == 6);
    assert!(offset_of!(TxRequest, id) == 8);
    assert!(offset_of!(TxRequest, size) == 10);
    assert!(size_of::<TxResponse>() == 4);
    assert!(offset_of!(TxResponse, id) == 0);
    assert!(offset_of!(TxResponse, status) == 2);
    assert!(size_of::<RxRequest>() == 8);
    assert!(offset_of!(RxRequest, id) == 0);
    assert!(offset_of!(RxRequest, pad) == 2);
    assert!(offset_of!(RxRequest, gref) == 4);
    assert!(size_of::<RxResponse>() == 8);
    assert!(offset_of!(RxResponse, id) == 0);
    assert!(offset_of!(RxResponse, offset) == 2);
    assert!(offset_of!(RxResponse, flags) == 4);
    assert!(offset_of!(RxResponse, status) == 6);
    assert!(size_of::<ExtraInfo>() == 8);
    assert!(offset_of!(ExtraInfo, kind) == 0);
    assert!(offset_of!(ExtraInfo, flags) == 1);
    assert!(offset_of!(ExtraInfo, data) == 2);
    assert!(TX_SLOT_SIZE == size_of::<TxRequest>());
    assert!(RX_SLOT_SIZE == size_of::<RxResponse>());
    assert!(TX_RING_SIZE == 256 && RX_RING_SIZE == 256);
};

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl TxRequest {
    /// Encodes into the first 12 bytes of `slot`.
    ///
    /// # Panics
    /// If `slot` is shorter than [`TX_SLOT_SIZE`].
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..4].copy_from_slice(&self.gref.to_le_bytes());
        slot[4..6].copy_from_slice(&self.offset.to_le_bytes());
        slot[6..8].copy_from_slice(&self.flags.to_le_bytes());
        slot[8..10].copy_from_slice(&self.id.to_le_bytes());
        slot[10..12].copy_from_slice(&self.size.to_le_bytes());
    }

    /// Decodes from a copy of a slot (any bytes).
    ///
    /// # Panics
    /// If `slot` is shorter than [`TX_SLOT_SIZE`].
    pub fn decode(slot: &[u8]) -> TxRequest {
        TxRequest {
            gref: u32_at(slot, 0),
            offset: u16_at(slot, 4),
            flags: u16_at(slot, 6),
            id: u16_at(slot, 8),
            size: u16_at(slot, 10),
        }
    }
}

impl TxResponse {
    /// Encodes into the first 4 bytes of `slot`.
    ///
    /// # Panics
    /// If `slot` is shorter than 4 bytes.
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&self.id.to_le_bytes());
        slot[2..4].copy_from_slice(&self.status.to_le_bytes());
    }

    /// Decodes from a copy of a slot (any bytes).
    ///
    /// # Panics
    /// If `slot` is shorter than 4 bytes.
    pub fn decode(slot: &[u8]) -> TxResponse {
        TxResponse {
            id: u16_at(slot, 0),
            status: u16_at(slot, 2) as i16,
        }
    }
}

impl RxRequest {
    /// Encodes into the first 8 bytes of `slot`.
    ///
    /// # Panics
    /// If `slot` is shorter than [`RX_SLOT_SIZE`].
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&self.id.to_le_bytes());
        slot[2..4].copy_from_slice(&self.pad.to_le_bytes());
        slot[4..8].copy_from_slice(&self.gref.to_le_bytes());
    }

    /// Decodes from a copy of a slot (any bytes).
    ///
    /// # Panics
    /// If `slot` is shorter than [`RX_SLOT_SIZE`].
    pub fn decode(slot: &[u8]) -> RxRequest {
        RxRequest {
            id: u16_at(slot, 0),
            pad: u16_at(slot, 2),
            gref: u32_at(slot, 4),
        }
    }
}

impl RxResponse {
    /// Encodes into the first 8 bytes of `slot`.
    ///
    /// # Panics
    /// If `slot` is shorter than [`RX_SLOT_SIZE`].
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&self.id.to_le_bytes());
        slot[2..4].copy_from_slice(&self.offset.to_le_bytes());
        slot[4..6].copy_from_slice(&self.flags.to_le_bytes());
        slot[6..8].copy_from_slice(&self.status.to_le_bytes());
    }

    /// Decodes from a copy of a slot (any bytes).
    ///
    /// # Panics
    /// If `slot` is shorter than [`RX_SLOT_SIZE`].
    pub fn decode(slot: &[u8]) -> RxResponse {
        RxResponse {
            id: u16_at(slot, 0),
            offset: u16_at(slot, 2),
            flags: u16_at(slot, 4),
            status: u16_at(slot, 6) as i16,
        }
    }
}

impl ExtraInfo {
    /// Encodes into the first 8 bytes of `slot`.
    ///
    /// # Panics
    /// If `slot` is shorter than 8 bytes.
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0] = self.kind;
        slot[1] = self.flags;
        for (i, d) in self.data.iter().enumerate() {
            slot[2 + 2 * i..4 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
    }

    /// Decodes from a copy of a slot (any bytes).
    ///
    /// # Panics
    /// If `slot` is shorter than 8 bytes.
    pub fn decode(slot: &[u8]) -> ExtraInfo {
        ExtraInfo {
            kind: slot[0],
            flags: slot[1],
            data: [u16_at(slot, 2), u16_at(slot, 4), u16_at(slot, 6)],
        }
    }
}

/// The tx ring's protocol for the core's front ring: requests are
/// [`TxRequest`]s, responses [`TxResponse`]s.
///
/// netfront never sends extra-info slots (no GSO, no multicast control), so
/// every request has exactly one response carrying its id, as the front
/// ring requires; a `NETIF_RSP_NULL` response is therefore malformed.
#[derive(Debug)]
pub enum NetifTx {}

impl RingProtocol for NetifTx {
    type Request = TxRequest;
    type Response = TxResponse;
    const SLOT_SIZE: usize = TX_SLOT_SIZE;

    fn write_request(req: &TxRequest, slot: &mut [u8]) {
        req.encode(slot);
    }

    fn read_response(slot: &[u8]) -> TxResponse {
        TxResponse::decode(slot)
    }

    fn response_id(rsp: &TxResponse) -> u64 {
        u64::from(rsp.id)
    }
}

/// The rx ring's protocol for the core's front ring: requests are
/// [`RxRequest`]s, responses [`RxResponse`]s (netfront negotiates no
/// feature that makes a backend send rx extra-info slots).
#[derive(Debug)]
pub enum NetifRx {}

impl RingProtocol for NetifRx {
    type Request = RxRequest;
    type Response = RxResponse;
    const SLOT_SIZE: usize = RX_SLOT_SIZE;

    fn write_request(req: &RxRequest, slot: &mut [u8]) {
        req.encode(slot);
    }

    fn read_response(slot: &[u8]) -> RxResponse {
        RxResponse::decode(slot)
    }

    fn response_id(rsp: &RxResponse) -> u64 {
        u64::from(rsp.id)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn tx_request_bytes() {
        let r = TxRequest {
            gref: 0x0102_0304,
            offset: 0x0506,
            flags: NETTXF_MORE_DATA,
            id: 0x0708,
            size: 1514,
        };
        let mut slot = [0u8; TX_SLOT_SIZE];
        r.encode(&mut slot);
        assert_eq!(
            slot,
            [4, 3, 2, 1, 6, 5, 4, 0, 8, 7, 0xea, 0x05],
            "little-endian, C field order"
        );
        assert_eq!(TxRequest::decode(&slot), r);
    }

    #[test]
    fn tx_response_bytes() {
        let slot = [7, 0, 0xfe, 0xff, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4];
        let r = NetifTx::read_response(&slot);
        assert_eq!(
            r,
            TxResponse {
                id: 7,
                status: NETIF_RSP_DROPPED
            }
        );
        assert_eq!(NetifTx::response_id(&r), 7);
        let mut back = [0u8; 4];
        r.encode(&mut back);
        assert_eq!(back, slot[..4]);
    }

    #[test]
    fn rx_request_and_response_bytes() {
        let q = RxRequest {
            id: 3,
            pad: 0,
            gref: 0x1234,
        };
        let mut slot = [0u8; RX_SLOT_SIZE];
        NetifRx::write_request(&q, &mut slot);
        assert_eq!(slot, [3, 0, 0, 0, 0x34, 0x12, 0, 0]);
        assert_eq!(RxRequest::decode(&slot), q);
        let slot = [9, 0, 0x10, 0, 0x05, 0, 0xea, 0x05];
        let r = RxResponse::decode(&slot);
        assert_eq!(
            r,
            RxResponse {
                id: 9,
                offset: 16,
                flags: NETRXF_DATA_VALIDATED | NETRXF_MORE_DATA,
                status: 1514
            }
        );
        let mut back = [0u8; RX_SLOT_SIZE];
        r.encode(&mut back);
        assert_eq!(back, slot);
    }

    #[test]
    fn malformed_slots_decode_without_panic() {
        let slot = [0xffu8; TX_SLOT_SIZE];
        let r = RxResponse::decode(&slot);
        assert_eq!(
            (r.id, r.offset, r.flags, r.status),
            (0xffff, 0xffff, 0xffff, -1)
        );
        assert_ne!(r.flags & !NETRXF_KNOWN, 0, "unknown flag bits are visible");
        let t = TxResponse::decode(&slot);
        assert_eq!((t.id, t.status), (0xffff, -1));
        let e = ExtraInfo::decode(&slot);
        assert_eq!(e.kind, 0xff);
    }

    #[test]
    fn extra_info_overlays_the_first_eight_bytes() {
        let e = ExtraInfo {
            kind: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: XEN_NETIF_EXTRA_FLAG_MORE,
            data: [1448, 1, 0],
        };
        let mut slot = [0u8; 8];
        e.encode(&mut slot);
        assert_eq!(slot, [1, 1, 0xa8, 0x05, 1, 0, 0, 0]);
        assert_eq!(ExtraInfo::decode(&slot), e);
    }
}
