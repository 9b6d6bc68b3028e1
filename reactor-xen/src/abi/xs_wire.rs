//! The xenstore wire protocol and ring page (xen/io/xs_wire.h).
//!
//! A message on the ring is a 16-byte [`XsdSockmsg`] header followed by `len`
//! payload bytes (usually NUL-terminated strings). The header fields are in
//! the native byte order of the domains involved; Ringlet runs on x86_64
//! only, so they are little-endian here.

use core::fmt;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU8};

/// Bytes in each of the two rings of the xenstore page.
pub const XENSTORE_RING_SIZE: usize = 1024;

/// Largest payload a message may carry ("violating this is very bad").
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;

/// Longest absolute path the daemon accepts.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;

/// Longest relative path the daemon accepts.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`: the ring can be reconnected.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`: the `error` field of the page is used.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;

/// `XENSTORE_CONNECTED`: the steady state of the `connection` field.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`: a reconnect is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;

/// `XENSTORE_ERROR_NONE`: no error (the `error` field).
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// The `XS_WRITE` flag strings of old protocol versions (`XS_WRITE_NONE` ...).
pub const XS_WRITE_NONE: &str = "NONE";
/// `XS_WRITE_CREATE`.
pub const XS_WRITE_CREATE: &str = "CREATE";
/// `XS_WRITE_CREATE_EXCL`.
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// The error names the daemon sends in an `XS_ERROR` reply, in the order of
/// `xsd_errors[]` (new errors are only ever appended there).
#[doc(alias = "xsd_errors")]
pub const XSD_ERRORS: [&str; 16] = [
    "EINVAL",
    "EACCES",
    "EEXIST",
    "EISDIR",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "EIO",
    "ENOTEMPTY",
    "ENOSYS",
    "EROFS",
    "EBUSY",
    "EAGAIN",
    "EISCONN",
    "E2BIG",
    "EPERM",
];

/// A message type, `enum xsd_sockmsg_type` (xen/io/xs_wire.h).
#[doc(alias = "xsd_sockmsg_type")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XsdSockmsgType {
    /// `XS_CONTROL` (alias `XS_DEBUG`).
    #[doc(alias = "XS_CONTROL")]
    Control = 0,
    /// `XS_DIRECTORY`: list a node's children.
    #[doc(alias = "XS_DIRECTORY")]
    Directory = 1,
    /// `XS_READ`: read a node's value.
    #[doc(alias = "XS_READ")]
    Read = 2,
    /// `XS_GET_PERMS`: read a node's permissions.
    #[doc(alias = "XS_GET_PERMS")]
    GetPerms = 3,
    /// `XS_WATCH`: register a watch.
    #[doc(alias = "XS_WATCH")]
    Watch = 4,
    /// `XS_UNWATCH`: remove a watch.
    #[doc(alias = "XS_UNWATCH")]
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    #[doc(alias = "XS_TRANSACTION_START")]
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    #[doc(alias = "XS_TRANSACTION_END")]
    TransactionEnd = 7,
    /// `XS_INTRODUCE` (dom0 only).
    #[doc(alias = "XS_INTRODUCE")]
    Introduce = 8,
    /// `XS_RELEASE` (dom0 only).
    #[doc(alias = "XS_RELEASE")]
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    #[doc(alias = "XS_GET_DOMAIN_PATH")]
    GetDomainPath = 10,
    /// `XS_WRITE`: write a node's value (creating it).
    #[doc(alias = "XS_WRITE")]
    Write = 11,
    /// `XS_MKDIR`: create a node with an empty value.
    #[doc(alias = "XS_MKDIR")]
    Mkdir = 12,
    /// `XS_RM`: remove a node and its children.
    #[doc(alias = "XS_RM")]
    Rm = 13,
    /// `XS_SET_PERMS`: set a node's permissions.
    #[doc(alias = "XS_SET_PERMS")]
    SetPerms = 14,
    /// `XS_WATCH_EVENT`: a watch fired (daemon to client only).
    #[doc(alias = "XS_WATCH_EVENT")]
    WatchEvent = 15,
    /// `XS_ERROR`: the request failed; the payload is an error name.
    #[doc(alias = "XS_ERROR")]
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    #[doc(alias = "XS_IS_DOMAIN_INTRODUCED")]
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    #[doc(alias = "XS_RESUME")]
    Resume = 18,
    /// `XS_SET_TARGET`.
    #[doc(alias = "XS_SET_TARGET")]
    SetTarget = 19,
    /// `XS_RESET_WATCHES` (`XS_SET_TARGET + 2`; 20 was `XS_RESTRICT`).
    #[doc(alias = "XS_RESET_WATCHES")]
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    #[doc(alias = "XS_DIRECTORY_PART")]
    DirectoryPart = 22,
}

/// `XS_TYPE_COUNT`: one more than the largest valid type.
pub const XS_TYPE_COUNT: u32 = 23;

/// `XS_INVALID`: guaranteed to remain an invalid type.
pub const XS_INVALID: u32 = 0xffff;

/// A `type` field that names no message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownType(pub u32);

impl fmt::Display for UnknownType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown xenstore message type {}", self.0)
    }
}

impl core::error::Error for UnknownType {}

impl TryFrom<u32> for XsdSockmsgType {
    type Error = UnknownType;

    fn try_from(v: u32) -> Result<Self, UnknownType> {
        use XsdSockmsgType::*;
        Ok(match v {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            other => return Err(UnknownType(other)),
        })
    }
}

/// The header of every message, `struct xsd_sockmsg` (xen/io/xs_wire.h).
///
/// This is a plain value: the ring transport copies the 16 bytes out of
/// shared memory before decoding them with [`XsdSockmsg::from_bytes`].
#[doc(alias = "xsd_sockmsg")]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// `XS_*` message type (see [`XsdSockmsgType`]).
    pub type_: u32,
    /// Request identifier, echoed in the daemon's reply.
    pub req_id: u32,
    /// Transaction id (0 if not in a transaction).
    pub tx_id: u32,
    /// Length of the payload that follows.
    pub len: u32,
}

const _: () = {
    assert!(size_of::<XsdSockmsg>() == 16);
    assert!(offset_of!(XsdSockmsg, type_) == 0);
    assert!(offset_of!(XsdSockmsg, req_id) == 4);
    assert!(offset_of!(XsdSockmsg, tx_id) == 8);
    assert!(offset_of!(XsdSockmsg, len) == 12);
};

impl XsdSockmsg {
    /// Size of the header on the wire.
    pub const SIZE: usize = size_of::<XsdSockmsg>();

    /// Decodes a header from its wire bytes (no validation of the fields).
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        XsdSockmsg {
            type_: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }

    /// Encodes the header into its wire bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.type_.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }
}

/// The xenstore ring page, `struct xenstore_domain_interface`
/// (xen/io/xs_wire.h).
///
/// Shared with the daemon, which writes `rsp`, `rsp_prod` and `req_cons`
/// while the guest writes `req`, `req_prod` and `rsp_cons`; hence atomics.
/// The indices are free-running and masked with `XENSTORE_RING_SIZE - 1`.
#[doc(alias = "xenstore_domain_interface")]
#[repr(C)]
#[derive(Debug)]
pub struct XenstoreDomainInterface {
    /// Requests to the daemon.
    pub req: [AtomicU8; XENSTORE_RING_SIZE],
    /// Replies and watch events from the daemon.
    pub rsp: [AtomicU8; XENSTORE_RING_SIZE],
    /// Written by the daemon: requests consumed.
    pub req_cons: AtomicU32,
    /// Written by the guest: requests produced.
    pub req_prod: AtomicU32,
    /// Written by the guest: replies consumed.
    pub rsp_cons: AtomicU32,
    /// Written by the daemon: replies produced.
    pub rsp_prod: AtomicU32,
    /// `XENSTORE_SERVER_FEATURE_*` bits the daemon supports.
    pub server_features: AtomicU32,
    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub connection: AtomicU32,
    /// `XENSTORE_ERROR_*`.
    pub error: AtomicU32,
}

const _: () = {
    assert!(size_of::<XenstoreDomainInterface>() == 2076);
    assert!(offset_of!(XenstoreDomainInterface, req) == 0);
    assert!(offset_of!(XenstoreDomainInterface, rsp) == 1024);
    assert!(offset_of!(XenstoreDomainInterface, req_cons) == 2048);
    assert!(offset_of!(XenstoreDomainInterface, req_prod) == 2052);
    assert!(offset_of!(XenstoreDomainInterface, rsp_cons) == 2056);
    assert!(offset_of!(XenstoreDomainInterface, rsp_prod) == 2060);
    assert!(offset_of!(XenstoreDomainInterface, server_features) == 2064);
    assert!(offset_of!(XenstoreDomainInterface, connection) == 2068);
    assert!(offset_of!(XenstoreDomainInterface, error) == 2072);
    // The masking below relies on a power-of-two ring.
    assert!(XENSTORE_RING_SIZE.is_power_of_two());
};

/// `MASK_XENSTORE_IDX`: the ring offset of a free-running index.
#[doc(alias = "MASK_XENSTORE_IDX")]
pub const fn mask_xenstore_idx(idx: u32) -> usize {
    (idx as usize) & (XENSTORE_RING_SIZE - 1)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn header_parse() {
        let b = [
            2, 0, 0, 0, // XS_READ
            7, 0, 0, 0, // req_id
            0, 0, 0, 0, // tx_id
            5, 0, 0, 0, // len
        ];
        let h = XsdSockmsg::from_bytes(&b);
        assert_eq!(
            h,
            XsdSockmsg {
                type_: 2,
                req_id: 7,
                tx_id: 0,
                len: 5
            }
        );
        assert_eq!(XsdSockmsgType::try_from(h.type_), Ok(XsdSockmsgType::Read));
    }

    #[test]
    fn header_emit() {
        let h = XsdSockmsg {
            type_: XsdSockmsgType::Write as u32,
            req_id: 0x0102_0304,
            tx_id: 9,
            len: 4096,
        };
        assert_eq!(
            h.to_bytes(),
            [11, 0, 0, 0, 4, 3, 2, 1, 9, 0, 0, 0, 0, 0x10, 0, 0]
        );
        assert_eq!(XsdSockmsg::from_bytes(&h.to_bytes()), h);
    }

    #[test]
    fn unknown_types_rejected() {
        assert_eq!(XsdSockmsgType::try_from(20), Err(UnknownType(20)));
        assert_eq!(
            XsdSockmsgType::try_from(XS_TYPE_COUNT),
            Err(UnknownType(23))
        );
        assert_eq!(
            XsdSockmsgType::try_from(XS_INVALID),
            Err(UnknownType(0xffff))
        );
        for t in 0..XS_TYPE_COUNT {
            if t != 20 {
                assert_eq!(XsdSockmsgType::try_from(t).map(|x| x as u32), Ok(t));
            }
        }
    }

    #[test]
    fn mask_wraps() {
        assert_eq!(mask_xenstore_idx(1023), 1023);
        assert_eq!(mask_xenstore_idx(1024), 0);
        assert_eq!(mask_xenstore_idx(u32::MAX), 1023);
    }
}
