//! The blkif wire format (xen/io/blkif.h): ring requests and responses,
//! operations, status codes and the `info` bits, as plain values.
//!
//! The `#[repr(C)]` structs document the C layout and are checked against
//! it (here at compile time, and against libxen-dev's header by
//! `tests/blkif_layout.rs`). Slots in the shared ring are never referenced
//! as these structs: a request is encoded into a byte array and copied into
//! its slot once; a response is copied out of its slot once and decoded.
//! Decoding never fails — every bit pattern is a [`Response`] — and deciding
//! whether a response makes sense is blkfront's job.
//!
//! All sector quantities here (`sector_number`, `first_sect`, `last_sect`)
//! are in 512-byte units: Ringlet does not write
//! `feature-large-sector-size`, so that is what the backend assumes.
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

/// The blkif sector unit, in bytes.
pub const BLKIF_SECTOR_SIZE: usize = 512;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: segments in a direct request.
#[doc(alias = "BLKIF_MAX_SEGMENTS_PER_REQUEST")]
pub const SEGMENTS_PER_REQUEST_MAX: usize = 11;

/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
#[doc(alias = "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST")]
pub const INDIRECT_PAGES_PER_REQUEST_MAX: usize = 8;

/// Segments that one indirect page holds (4096 / 8).
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 4096 / size_of::<Segment>();

/// The `protocol` a 64-bit x86 frontend writes (`XEN_IO_PROTO_ABI_X86_64`).
#[doc(alias = "XEN_IO_PROTO_ABI_X86_64")]
pub const PROTOCOL_X86_64: &str = "x86_64-abi";

/// `BLKIF_OP_READ`.
#[doc(alias = "BLKIF_OP_READ")]
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
#[doc(alias = "BLKIF_OP_WRITE")]
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`: a write ordered after all earlier ones; with no
/// segments, a pure barrier (what blkfront sends to flush when the backend
/// only has `feature-barrier`).
#[doc(alias = "BLKIF_OP_WRITE_BARRIER")]
pub const OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
#[doc(alias = "BLKIF_OP_FLUSH_DISKCACHE")]
pub const OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_INDIRECT`.
#[doc(alias = "BLKIF_OP_INDIRECT")]
pub const OP_INDIRECT: u8 = 6;

/// `BLKIF_RSP_OKAY`.
#[doc(alias = "BLKIF_RSP_OKAY")]
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`: the operation failed (-EIO).
#[doc(alias = "BLKIF_RSP_ERROR")]
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`: the backend does not support the operation.
#[doc(alias = "BLKIF_RSP_EOPNOTSUPP")]
pub const RSP_EOPNOTSUPP: i16 = -2;

/// `VDISK_CDROM` bit of the backend's `info` node.
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE` bit of the backend's `info` node.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY` bit of the backend's `info` node.
pub const VDISK_READONLY: u32 = 0x4;

/// `struct blkif_request_segment`: one page (or part of it) of a transfer.
#[doc(alias = "blkif_request_segment")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// `gref`: the grant of the page.
    pub gref: u32,
    /// `first_sect`: first 512-byte sector of the page to transfer.
    pub first_sect: u8,
    /// `last_sect`: last 512-byte sector of the page to transfer (inclusive).
    pub last_sect: u8,
    /// Padding.
    pub _pad: u16,
}

const _: () = {
    assert!(size_of::<Segment>() == 8);
    assert!(offset_of!(Segment, gref) == 0);
    assert!(offset_of!(Segment, first_sect) == 4);
    assert!(offset_of!(Segment, last_sect) == 5);
};

/// `struct blkif_request` (x86_64 layout).
#[doc(alias = "blkif_request")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `operation`: `OP_*`.
    pub operation: u8,
    /// `nr_segments`.
    pub nr_segments: u8,
    /// `handle`: the vdev (unused by Linux blkback; 0 is fine).
    pub handle: u16,
    /// Padding before `id`.
    pub _pad: u32,
    /// `id`: echoed in the response.
    pub id: u64,
    /// `sector_number`: first 512-byte sector on the disk.
    pub sector_number: u64,
    /// `seg`: the first `nr_segments` are used.
    pub seg: [Segment; SEGMENTS_PER_REQUEST_MAX],
}

/// Bytes of a request slot (`union blkif_sring_entry`).
pub const SLOT_SIZE: usize = size_of::<Request>();

const _: () = {
    assert!(size_of::<Request>() == 112);
    assert!(offset_of!(Request, operation) == 0);
    assert!(offset_of!(Request, nr_segments) == 1);
    assert!(offset_of!(Request, handle) == 2);
    assert!(offset_of!(Request, id) == 8);
    assert!(offset_of!(Request, sector_number) == 16);
    assert!(offset_of!(Request, seg) == 24);
};

/// `struct blkif_request_indirect` (x86_64 layout): the segments live in
/// granted pages named by `indirect_grefs`.
#[doc(alias = "blkif_request_indirect")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndirectRequest {
    /// `operation`: [`OP_INDIRECT`].
    pub operation: u8,
    /// `indirect_op`: [`OP_READ`] or [`OP_WRITE`].
    pub indirect_op: u8,
    /// `nr_segments`.
    pub nr_segments: u16,
    /// Padding before `id`.
    pub _pad: u32,
    /// `id`: echoed in the response.
    pub id: u64,
    /// `sector_number`: first 512-byte sector on the disk.
    pub sector_number: u64,
    /// `handle`.
    pub handle: u16,
    /// Padding before `indirect_grefs`.
    pub _pad2: u16,
    /// `indirect_grefs`: pages of [`Segment`]s.
    pub indirect_grefs: [u32; INDIRECT_PAGES_PER_REQUEST_MAX],
}

const _: () = {
    assert!(size_of::<IndirectRequest>() == 64);
    assert!(offset_of!(IndirectRequest, operation) == 0);
    assert!(offset_of!(IndirectRequest, indirect_op) == 1);
    assert!(offset_of!(IndirectRequest, nr_segments) == 2);
    assert!(offset_of!(IndirectRequest, id) == 8);
    assert!(offset_of!(IndirectRequest, sector_number) == 16);
    assert!(offset_of!(IndirectRequest, handle) == 24);
    assert!(offset_of!(IndirectRequest, indirect_grefs) == 28);
};

/// `struct blkif_response` (x86_64 layout).
#[doc(alias = "blkif_response")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// `id`: the request's.
    pub id: u64,
    /// `operation`: the request's.
    pub operation: u8,
    /// Padding before `status`.
    pub _pad: u8,
    /// `status`: `RSP_*` (anything else is a protocol error).
    pub status: i16,
    /// Padding to the struct's alignment.
    pub _pad2: u32,
}

/// Bytes of a response.
pub const RESPONSE_SIZE: usize = size_of::<Response>();

const _: () = {
    assert!(size_of::<Response>() == 16);
    assert!(offset_of!(Response, id) == 0);
    assert!(offset_of!(Response, operation) == 8);
    assert!(offset_of!(Response, status) == 10);
};

fn put_u16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut [u8], at: usize, v: u64) {
    out[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Segment {
    /// The segment's 8 bytes.
    pub fn encode(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        put_u32(&mut out, offset_of!(Segment, gref), self.gref);
        out[offset_of!(Segment, first_sect)] = self.first_sect;
        out[offset_of!(Segment, last_sect)] = self.last_sect;
        out
    }

    /// A segment from its 8 bytes.
    pub fn decode(b: &[u8; 8]) -> Segment {
        Segment {
            gref: get_u32(b, offset_of!(Segment, gref)),
            first_sect: b[offset_of!(Segment, first_sect)],
            last_sect: b[offset_of!(Segment, last_sect)],
            _pad: 0,
        }
    }
}

impl Request {
    /// The request's slot bytes.
    pub fn encode(&self) -> [u8; SLOT_SIZE] {
        let mut out = [0u8; SLOT_SIZE];
        out[offset_of!(Request, operation)] = self.operation;
        out[offset_of!(Request, nr_segments)] = self.nr_segments;
        put_u16(&mut out, offset_of!(Request, handle), self.handle);
        put_u64(&mut out, offset_of!(Request, id), self.id);
        put_u64(
            &mut out,
            offset_of!(Request, sector_number),
            self.sector_number,
        );
        for (i, s) in self.seg.iter().enumerate() {
            let at = offset_of!(Request, seg) + i * size_of::<Segment>();
            out[at..at + 8].copy_from_slice(&s.encode());
        }
        out
    }

    /// A request from its slot bytes (the backend's side).
    pub fn decode(b: &[u8; SLOT_SIZE]) -> Request {
        let mut seg = [Segment::default(); SEGMENTS_PER_REQUEST_MAX];
        for (i, s) in seg.iter_mut().enumerate() {
            let at = offset_of!(Request, seg) + i * size_of::<Segment>();
            *s = Segment::decode(b[at..at + 8].try_into().expect("8 bytes"));
        }
        Request {
            operation: b[offset_of!(Request, operation)],
            nr_segments: b[offset_of!(Request, nr_segments)],
            handle: get_u16(b, offset_of!(Request, handle)),
            _pad: 0,
            id: get_u64(b, offset_of!(Request, id)),
            sector_number: get_u64(b, offset_of!(Request, sector_number)),
            seg,
        }
    }
}

impl IndirectRequest {
    /// The request's slot bytes (the rest of the slot zeroed).
    pub fn encode(&self) -> [u8; SLOT_SIZE] {
        let mut out = [0u8; SLOT_SIZE];
        out[offset_of!(IndirectRequest, operation)] = self.operation;
        out[offset_of!(IndirectRequest, indirect_op)] = self.indirect_op;
        put_u16(
            &mut out,
            offset_of!(IndirectRequest, nr_segments),
            self.nr_segments,
        );
        put_u64(&mut out, offset_of!(IndirectRequest, id), self.id);
        put_u64(
            &mut out,
            offset_of!(IndirectRequest, sector_number),
            self.sector_number,
        );
        put_u16(&mut out, offset_of!(IndirectRequest, handle), self.handle);
        for (i, g) in self.indirect_grefs.iter().enumerate() {
            put_u32(
                &mut out,
                offset_of!(IndirectRequest, indirect_grefs) + 4 * i,
                *g,
            );
        }
        out
    }

    /// An indirect request from its slot bytes (the backend's side).
    pub fn decode(b: &[u8; SLOT_SIZE]) -> IndirectRequest {
        let mut indirect_grefs = [0u32; INDIRECT_PAGES_PER_REQUEST_MAX];
        for (i, g) in indirect_grefs.iter_mut().enumerate() {
            *g = get_u32(b, offset_of!(IndirectRequest, indirect_grefs) + 4 * i);
        }
        IndirectRequest {
            operation: b[offset_of!(IndirectRequest, operation)],
            indirect_op: b[offset_of!(IndirectRequest, indirect_op)],
            nr_segments: get_u16(b, offset_of!(IndirectRequest, nr_segments)),
            _pad: 0,
            id: get_u64(b, offset_of!(IndirectRequest, id)),
            sector_number: get_u64(b, offset_of!(IndirectRequest, sector_number)),
            handle: get_u16(b, offset_of!(IndirectRequest, handle)),
            _pad2: 0,
            indirect_grefs,
        }
    }
}

impl Response {
    /// The response's bytes (the backend's side).
    pub fn encode(&self) -> [u8; RESPONSE_SIZE] {
        let mut out = [0u8; RESPONSE_SIZE];
        put_u64(&mut out, offset_of!(Response, id), self.id);
        out[offset_of!(Response, operation)] = self.operation;
        put_u16(&mut out, offset_of!(Response, status), self.status as u16);
        out
    }

    /// A response from its bytes, as copied out of the ring.
    pub fn decode(b: &[u8; RESPONSE_SIZE]) -> Response {
        Response {
            id: get_u64(b, offset_of!(Response, id)),
            operation: b[offset_of!(Response, operation)],
            _pad: 0,
            status: get_u16(b, offset_of!(Response, status)) as i16,
            _pad2: 0,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn request_bytes() {
        let mut r = Request {
            operation: OP_WRITE,
            nr_segments: 2,
            handle: 0x0102,
            id: 0x1122_3344_5566_7788,
            sector_number: 0xAABB_CCDD,
            ..Request::default()
        };
        r.seg[0] = Segment {
            gref: 0x0807_0605,
            first_sect: 1,
            last_sect: 7,
            _pad: 0,
        };
        r.seg[10] = Segment {
            gref: 9,
            first_sect: 0,
            last_sect: 0,
            _pad: 0,
        };
        let b = r.encode();
        assert_eq!(&b[..4], &[1, 2, 0x02, 0x01]);
        assert_eq!(&b[8..16], &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        assert_eq!(&b[16..24], &[0xDD, 0xCC, 0xBB, 0xAA, 0, 0, 0, 0]);
        assert_eq!(&b[24..32], &[5, 6, 7, 8, 1, 7, 0, 0]);
        assert_eq!(&b[104..112], &[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Request::decode(&b), r);
    }

    #[test]
    fn indirect_bytes() {
        let r = IndirectRequest {
            operation: OP_INDIRECT,
            indirect_op: OP_READ,
            nr_segments: 300,
            id: 7,
            sector_number: 64,
            handle: 3,
            indirect_grefs: [1, 2, 3, 4, 5, 6, 7, 8],
            ..IndirectRequest::default()
        };
        let b = r.encode();
        assert_eq!(&b[..4], &[6, 0, 44, 1]);
        assert_eq!(&b[24..26], &[3, 0]);
        assert_eq!(&b[28..32], &[1, 0, 0, 0]);
        assert_eq!(&b[56..60], &[8, 0, 0, 0]);
        assert!(b[64..].iter().all(|&x| x == 0));
        assert_eq!(IndirectRequest::decode(&b), r);
    }

    #[test]
    fn response_bytes_any_pattern_decodes() {
        let r = Response {
            id: 5,
            operation: OP_FLUSH_DISKCACHE,
            status: RSP_EOPNOTSUPP,
            ..Response::default()
        };
        let b = r.encode();
        assert_eq!(b, [5, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0xFE, 0xFF, 0, 0, 0, 0]);
        assert_eq!(Response::decode(&b), r);
        // Garbage decodes (padding ignored); judging it is blkfront's job.
        let g = Response::decode(&[0xFF; 16]);
        assert_eq!((g.id, g.operation, g.status), (u64::MAX, 0xFF, -1));
    }
}
