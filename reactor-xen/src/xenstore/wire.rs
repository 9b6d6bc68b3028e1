//! The xenstore wire codec: requests encoded, replies and watch events
//! decoded and validated (sans-IO, no state).
//!
//! Everything decoded here came from the daemon through shared memory and is
//! untrusted: the ring transport copies a message out once, then
//! [`decode_header`] checks the header (known type, bounded length) and
//! [`decode`] checks the payload's shape. Each operation's reply then goes
//! through its own parser ([`parse_ok`], [`parse_directory`],
//! [`parse_permissions`], ...), which rejects anything but the exact shape
//! the protocol defines.
//!
//! Payload shapes (xen/io/xs_wire.h, docs/misc/xenstore.txt):
//!
//! | request              | payload sent            | reply payload            |
//! |----------------------|-------------------------|--------------------------|
//! | `XS_READ`            | `path\0`                | value (no terminator)    |
//! | `XS_WRITE`           | `path\0value`           | `OK\0`                   |
//! | `XS_MKDIR`, `XS_RM`  | `path\0`                | `OK\0`                   |
//! | `XS_DIRECTORY`       | `path\0`                | `child\0`*               |
//! | `XS_GET_PERMS`       | `path\0`                | `perm\0`+                |
//! | `XS_SET_PERMS`       | `path\0perm\0`+         | `OK\0`                   |
//! | `XS_WATCH`/`UNWATCH` | `path\0token\0`         | `OK\0`                   |
//! | `XS_TRANSACTION_START` | `\0`                  | `id\0`                   |
//! | `XS_TRANSACTION_END` | `T\0` or `F\0`          | `OK\0`                   |
//! | `XS_GET_DOMAIN_PATH` | `domid\0`               | `path\0`                 |
//! | (event) `XS_WATCH_EVENT` | —                   | `path\0token\0`          |
//! | (any) `XS_ERROR`     | —                       | `ENAME\0`                |

use alloc::vec::Vec;
use core::fmt;

use crate::abi::xs_wire::{
    XsdSockmsg, XsdSockmsgType, XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX,
};
use crate::hypervisor::DomId;

/// Most entries a permission list may have (owner entry included).
pub const PERMISSIONS_MAX: usize = 64;

/// Longest watch token the client sends or accepts.
pub const TOKEN_MAX: usize = 64;

/// An error the daemon reported in an `XS_ERROR` reply (the errno name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XenstoreError {
    /// `EINVAL`: the request was malformed.
    Inval,
    /// `EACCES`: the permissions forbid it.
    Acces,
    /// `EEXIST`: the node already exists (or the watch is registered).
    Exist,
    /// `EISDIR`: the node is a directory.
    IsDir,
    /// `ENOENT`: no such node (or transaction, or watch).
    NoEnt,
    /// `ENOMEM`: the daemon is out of memory.
    NoMem,
    /// `ENOSPC`: the daemon is out of space.
    NoSpc,
    /// `EIO`: I/O error in the daemon.
    Io,
    /// `ENOTEMPTY`: the directory is not empty.
    NotEmpty,
    /// `ENOSYS`: the operation is not implemented.
    NoSys,
    /// `EROFS`: the store is read-only.
    RoFs,
    /// `EBUSY`: the daemon is busy (e.g. too many requests).
    Busy,
    /// `EAGAIN`: the transaction conflicted; retry it.
    Again,
    /// `EISCONN`: already connected.
    IsConn,
    /// `E2BIG`: the request or value is too large.
    TooBig,
    /// `EPERM`: not permitted.
    Perm,
    /// `EQUOTA`: a per-domain quota is exhausted (oxenstored's name).
    Quota,
}

impl XenstoreError {
    /// Every error, in `xsd_errors[]` order, then `EQUOTA`.
    pub const ALL: [XenstoreError; 17] = [
        XenstoreError::Inval,
        XenstoreError::Acces,
        XenstoreError::Exist,
        XenstoreError::IsDir,
        XenstoreError::NoEnt,
        XenstoreError::NoMem,
        XenstoreError::NoSpc,
        XenstoreError::Io,
        XenstoreError::NotEmpty,
        XenstoreError::NoSys,
        XenstoreError::RoFs,
        XenstoreError::Busy,
        XenstoreError::Again,
        XenstoreError::IsConn,
        XenstoreError::TooBig,
        XenstoreError::Perm,
        XenstoreError::Quota,
    ];

    /// The errno name the daemon sends, e.g. `"ENOENT"`.
    pub fn name(self) -> &'static str {
        match self {
            XenstoreError::Inval => "EINVAL",
            XenstoreError::Acces => "EACCES",
            XenstoreError::Exist => "EEXIST",
            XenstoreError::IsDir => "EISDIR",
            XenstoreError::NoEnt => "ENOENT",
            XenstoreError::NoMem => "ENOMEM",
            XenstoreError::NoSpc => "ENOSPC",
            XenstoreError::Io => "EIO",
            XenstoreError::NotEmpty => "ENOTEMPTY",
            XenstoreError::NoSys => "ENOSYS",
            XenstoreError::RoFs => "EROFS",
            XenstoreError::Busy => "EBUSY",
            XenstoreError::Again => "EAGAIN",
            XenstoreError::IsConn => "EISCONN",
            XenstoreError::TooBig => "E2BIG",
            XenstoreError::Perm => "EPERM",
            XenstoreError::Quota => "EQUOTA",
        }
    }

    /// The error named `name` (without the NUL), if it is a known one.
    pub fn from_name(name: &[u8]) -> Option<XenstoreError> {
        XenstoreError::ALL
            .into_iter()
            .find(|e| e.name().as_bytes() == name)
    }
}

impl fmt::Display for XenstoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            XenstoreError::Inval => "invalid request",
            XenstoreError::Acces => "permission denied",
            XenstoreError::Exist => "already exists",
            XenstoreError::IsDir => "is a directory",
            XenstoreError::NoEnt => "no such node",
            XenstoreError::NoMem => "daemon out of memory",
            XenstoreError::NoSpc => "daemon out of space",
            XenstoreError::Io => "daemon I/O error",
            XenstoreError::NotEmpty => "directory not empty",
            XenstoreError::NoSys => "not implemented",
            XenstoreError::RoFs => "read-only store",
            XenstoreError::Busy => "daemon busy",
            XenstoreError::Again => "transaction conflict, try again",
            XenstoreError::IsConn => "already connected",
            XenstoreError::TooBig => "too big",
            XenstoreError::Perm => "not permitted",
            XenstoreError::Quota => "quota exceeded",
        };
        write!(f, "xenstore: {what} ({})", self.name())
    }
}

impl core::error::Error for XenstoreError {}

/// Up to 15 bytes of an unrecognised errno name, kept for the error message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ErrnoName {
    bytes: [u8; 15],
    len: u8,
}

impl ErrnoName {
    fn new(name: &[u8]) -> Self {
        let mut bytes = [0u8; 15];
        let len = name.len().min(bytes.len());
        bytes[..len].copy_from_slice(&name[..len]);
        ErrnoName {
            bytes,
            len: len as u8,
        }
    }

    /// The (possibly truncated) bytes the daemon sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for ErrnoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.as_bytes().escape_ascii())
    }
}

/// The daemon sent something that breaks the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The header's `type` is no known message type.
    UnknownType(u32),
    /// The header's `len` exceeds `XENSTORE_PAYLOAD_MAX`.
    PayloadTooLong(u32),
    /// The message type is not one a daemon sends to a client.
    UnexpectedType(XsdSockmsgType),
    /// The reply's type is neither the request's type nor `XS_ERROR`.
    TypeMismatch {
        /// The type of the request.
        expected: XsdSockmsgType,
        /// The type of the reply.
        got: XsdSockmsgType,
    },
    /// The reply's `req_id` matches no outstanding request.
    UnknownReqId(u32),
    /// A string in the payload lacks its NUL terminator.
    NotNulTerminated,
    /// A string in the payload has a NUL inside it, or there are more
    /// strings than the message type allows.
    ExtraNul,
    /// A string in the payload is not UTF-8.
    NotUtf8,
    /// An `XS_ERROR` payload names no known errno.
    UnknownErrno(ErrnoName),
    /// A reply that must be `OK\0` is something else.
    NotOk,
    /// A number (transaction id, domain id) failed to parse.
    BadNumber,
    /// A permission string is not `[wrbn]<domid>`.
    BadPermission,
    /// A permission list is empty or longer than [`PERMISSIONS_MAX`].
    BadPermissionCount,
    /// A watch event is not `path\0token\0`.
    BadWatchEvent,
    /// A ring index moved further than the ring's size allows.
    RingIndex {
        /// The producer index seen.
        prod: u32,
        /// The consumer index.
        cons: u32,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnknownType(t) => write!(f, "unknown message type {t}"),
            ProtocolError::PayloadTooLong(l) => {
                write!(f, "payload of {l} bytes exceeds {XENSTORE_PAYLOAD_MAX}")
            }
            ProtocolError::UnexpectedType(t) => write!(f, "daemon sent a {t:?} message"),
            ProtocolError::TypeMismatch { expected, got } => {
                write!(f, "reply type {got:?} to a {expected:?} request")
            }
            ProtocolError::UnknownReqId(id) => write!(f, "reply to unknown request id {id}"),
            ProtocolError::NotNulTerminated => f.write_str("string not NUL-terminated"),
            ProtocolError::ExtraNul => f.write_str("unexpected NUL in payload"),
            ProtocolError::NotUtf8 => f.write_str("string not UTF-8"),
            ProtocolError::UnknownErrno(n) => write!(f, "unknown error name {n:?}"),
            ProtocolError::NotOk => f.write_str("reply is not \"OK\""),
            ProtocolError::BadNumber => f.write_str("malformed number"),
            ProtocolError::BadPermission => f.write_str("malformed permission"),
            ProtocolError::BadPermissionCount => f.write_str("permission list empty or too long"),
            ProtocolError::BadWatchEvent => f.write_str("malformed watch event"),
            ProtocolError::RingIndex { prod, cons } => {
                write!(f, "ring index out of range (prod {prod}, cons {cons})")
            }
        }
    }
}

impl core::error::Error for ProtocolError {}

/// A request could not be encoded: the caller's arguments break the
/// protocol's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The path is empty, contains a NUL, or is longer than
    /// `XENSTORE_ABS_PATH_MAX` (absolute) / `XENSTORE_REL_PATH_MAX` (relative).
    BadPath,
    /// The token is empty, contains a NUL or is longer than [`TOKEN_MAX`].
    BadToken,
    /// The whole payload would exceed `XENSTORE_PAYLOAD_MAX`.
    TooLong,
    /// The permission list is empty or longer than [`PERMISSIONS_MAX`].
    BadPermissions,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::BadPath => "invalid xenstore path",
            EncodeError::BadToken => "invalid watch token",
            EncodeError::TooLong => "request payload too long",
            EncodeError::BadPermissions => "permission list empty or too long",
        })
    }
}

impl core::error::Error for EncodeError {}

/// Checks a path the client is about to send.
///
/// # Errors
/// [`EncodeError::BadPath`] if it is empty, contains a NUL, or exceeds the
/// absolute or relative path limit.
pub fn check_path(path: &str) -> Result<(), EncodeError> {
    let max = if path.starts_with('/') {
        XENSTORE_ABS_PATH_MAX
    } else {
        XENSTORE_REL_PATH_MAX
    };
    if path.is_empty() || path.len() > max || path.as_bytes().contains(&0) {
        return Err(EncodeError::BadPath);
    }
    Ok(())
}

fn check_token(token: &str) -> Result<(), EncodeError> {
    if token.is_empty() || token.len() > TOKEN_MAX || token.as_bytes().contains(&0) {
        return Err(EncodeError::BadToken);
    }
    Ok(())
}

/// Access rights in a permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The letter used on the wire.
    pub fn letter(self) -> u8 {
        match self {
            Access::None => b'n',
            Access::Read => b'r',
            Access::Write => b'w',
            Access::Both => b'b',
        }
    }

    /// Whether reading is allowed.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether writing is allowed.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry: `[wrbn]<domid>`.
///
/// In a node's permission list, the first entry names the owner (who may do
/// anything) and the access every domain not listed gets; later entries
/// grant `access` to `domid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    /// The domain the entry is about.
    pub domid: DomId,
    /// Its rights.
    pub access: Access,
}

impl Permission {
    /// Parses `[wrbn]<domid>` (no NUL).
    ///
    /// # Errors
    /// [`ProtocolError::BadPermission`] on any other shape.
    pub fn parse(s: &[u8]) -> Result<Permission, ProtocolError> {
        let (&letter, digits) = s.split_first().ok_or(ProtocolError::BadPermission)?;
        let access = match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return Err(ProtocolError::BadPermission),
        };
        let domid = parse_decimal(digits)
            .and_then(|v| u16::try_from(v).ok())
            .ok_or(ProtocolError::BadPermission)?;
        Ok(Permission {
            domid: DomId(domid),
            access,
        })
    }

    /// Appends `[wrbn]<domid>` (no NUL) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.access.letter());
        push_decimal(out, u64::from(self.domid.0));
    }
}

/// Parses a plain decimal number: 1 to 10 ASCII digits, no sign, no spaces.
pub fn parse_decimal(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in s {
        v = v * 10 + u64::from(d - b'0');
    }
    u32::try_from(v).ok()
}

/// Appends `v` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A request to encode: the operation and its arguments.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Request<'a> {
    /// `XS_READ path`.
    Read(&'a str),
    /// `XS_WRITE path value`.
    Write(&'a str, &'a [u8]),
    /// `XS_MKDIR path`.
    Mkdir(&'a str),
    /// `XS_RM path`.
    Rm(&'a str),
    /// `XS_DIRECTORY path`.
    Directory(&'a str),
    /// `XS_GET_PERMS path`.
    GetPerms(&'a str),
    /// `XS_SET_PERMS path perms` (the first entry is the owner's).
    SetPerms(&'a str, &'a [Permission]),
    /// `XS_WATCH path token`.
    Watch(&'a str, &'a str),
    /// `XS_UNWATCH path token`.
    Unwatch(&'a str, &'a str),
    /// `XS_TRANSACTION_START`.
    TransactionStart,
    /// `XS_TRANSACTION_END`, committing (`true`) or aborting.
    TransactionEnd(bool),
    /// `XS_GET_DOMAIN_PATH domid`.
    GetDomainPath(DomId),
}

impl Request<'_> {
    /// The message type of this request.
    pub fn kind(&self) -> XsdSockmsgType {
        match self {
            Request::Read(_) => XsdSockmsgType::Read,
            Request::Write(..) => XsdSockmsgType::Write,
            Request::Mkdir(_) => XsdSockmsgType::Mkdir,
            Request::Rm(_) => XsdSockmsgType::Rm,
            Request::Directory(_) => XsdSockmsgType::Directory,
            Request::GetPerms(_) => XsdSockmsgType::GetPerms,
            Request::SetPerms(..) => XsdSockmsgType::SetPerms,
            Request::Watch(..) => XsdSockmsgType::Watch,
            Request::Unwatch(..) => XsdSockmsgType::Unwatch,
            Request::TransactionStart => XsdSockmsgType::TransactionStart,
            Request::TransactionEnd(_) => XsdSockmsgType::TransactionEnd,
            Request::GetDomainPath(_) => XsdSockmsgType::GetDomainPath,
        }
    }

    /// Appends the whole message (header and payload) to `out`.
    ///
    /// # Errors
    /// An [`EncodeError`] if a path, token or permission list breaks the
    /// protocol's rules or the payload would exceed `XENSTORE_PAYLOAD_MAX`;
    /// `out` is then left as it was.
    pub fn encode(&self, req_id: u32, tx_id: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0u8; XsdSockmsg::SIZE]);
        let r = self.encode_payload(out);
        if let Err(e) = r {
            out.truncate(start);
            return Err(e);
        }
        let len = out.len() - start - XsdSockmsg::SIZE;
        if len > XENSTORE_PAYLOAD_MAX {
            out.truncate(start);
            return Err(EncodeError::TooLong);
        }
        let header = XsdSockmsg {
            type_: self.kind() as u32,
            req_id,
            tx_id,
            len: len as u32,
        };
        out[start..start + XsdSockmsg::SIZE].copy_from_slice(&header.to_bytes());
        Ok(())
    }

    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut string = |s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        match *self {
            Request::Read(p)
            | Request::Mkdir(p)
            | Request::Rm(p)
            | Request::Directory(p)
            | Request::GetPerms(p) => {
                check_path(p)?;
                string(p);
            }
            Request::Write(p, value) => {
                check_path(p)?;
                if p.len() + 1 + value.len() > XENSTORE_PAYLOAD_MAX {
                    return Err(EncodeError::TooLong);
                }
                string(p);
                out.extend_from_slice(value);
            }
            Request::SetPerms(p, perms) => {
                check_path(p)?;
                if perms.is_empty() || perms.len() > PERMISSIONS_MAX {
                    return Err(EncodeError::BadPermissions);
                }
                string(p);
                for perm in perms {
                    perm.emit(out);
                    out.push(0);
                }
            }
            Request::Watch(p, t) | Request::Unwatch(p, t) => {
                check_path(p)?;
                check_token(t)?;
                string(p);
                string(t);
            }
            Request::TransactionStart => out.push(0),
            Request::TransactionEnd(commit) => string(if commit { "T" } else { "F" }),
            Request::GetDomainPath(d) => {
                push_decimal(out, u64::from(d.0));
                out.push(0);
            }
        }
        Ok(())
    }
}

/// Checks the header of a message from the daemon: a known type a
/// daemon may send and a payload no longer than `XENSTORE_PAYLOAD_MAX`.
///
/// # Errors
/// [`ProtocolError::UnknownType`], [`ProtocolError::UnexpectedType`] or
/// [`ProtocolError::PayloadTooLong`].
pub fn decode_header(raw: XsdSockmsg) -> Result<Header, ProtocolError> {
    let kind = XsdSockmsgType::try_from(raw.type_).map_err(|e| ProtocolError::UnknownType(e.0))?;
    if raw.len as usize > XENSTORE_PAYLOAD_MAX {
        return Err(ProtocolError::PayloadTooLong(raw.len));
    }
    match kind {
        // Types only a client sends, or that only dom0 tools use.
        XsdSockmsgType::Control
        | XsdSockmsgType::Introduce
        | XsdSockmsgType::Release
        | XsdSockmsgType::IsDomainIntroduced
        | XsdSockmsgType::Resume
        | XsdSockmsgType::SetTarget
        | XsdSockmsgType::ResetWatches
        | XsdSockmsgType::DirectoryPart => return Err(ProtocolError::UnexpectedType(kind)),
        _ => {}
    }
    Ok(Header {
        kind,
        req_id: raw.req_id,
        tx_id: raw.tx_id,
        len: raw.len as usize,
    })
}

/// A validated message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub kind: XsdSockmsgType,
    /// The request id it answers (0 for watch events).
    pub req_id: u32,
    /// The transaction id.
    pub tx_id: u32,
    /// Payload length, at most `XENSTORE_PAYLOAD_MAX`.
    pub len: usize,
}

/// A decoded message from the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A successful reply; parse `payload` with the operation's parser.
    Reply {
        /// The reply's header.
        header: Header,
        /// The raw payload, still to be checked by the operation's parser.
        payload: &'a [u8],
    },
    /// The request failed with this error.
    Error {
        /// The reply's header.
        header: Header,
        /// What the daemon reported.
        error: XenstoreError,
    },
    /// A watch fired.
    WatchEvent {
        /// The node that changed (the watched path or below it).
        path: &'a str,
        /// The token given when the watch was registered.
        token: &'a str,
    },
}

/// Decodes a message whose header passed [`decode_header`].
///
/// # Errors
/// A [`ProtocolError`] if an error reply or a watch event is malformed.
/// Replies are checked later by their operation's parser.
pub fn decode<'a>(header: Header, payload: &'a [u8]) -> Result<Message<'a>, ProtocolError> {
    assert_eq!(payload.len(), header.len);
    match header.kind {
        XsdSockmsgType::Error => {
            let name = single_string(payload)?;
            let error = XenstoreError::from_name(name)
                .ok_or(ProtocolError::UnknownErrno(ErrnoName::new(name)))?;
            Ok(Message::Error { header, error })
        }
        XsdSockmsgType::WatchEvent => {
            let mut it = Strings::new(payload).map_err(|_| ProtocolError::BadWatchEvent)?;
            let (Some(path), Some(token), None) = (it.next(), it.next(), it.next()) else {
                return Err(ProtocolError::BadWatchEvent);
            };
            let path = core::str::from_utf8(path).map_err(|_| ProtocolError::NotUtf8)?;
            let token = core::str::from_utf8(token).map_err(|_| ProtocolError::NotUtf8)?;
            if path.is_empty() || token.is_empty() {
                return Err(ProtocolError::BadWatchEvent);
            }
            Ok(Message::WatchEvent { path, token })
        }
        _ => Ok(Message::Reply { header, payload }),
    }
}

/// The strings of a payload made of NUL-terminated strings.
#[derive(Clone, Debug)]
pub struct Strings<'a> {
    rest: &'a [u8],
}

impl<'a> Strings<'a> {
    /// Checks that `payload` is empty or ends in NUL.
    ///
    /// # Errors
    /// [`ProtocolError::NotNulTerminated`].
    pub fn new(payload: &'a [u8]) -> Result<Self, ProtocolError> {
        match payload.last() {
            None | Some(0) => Ok(Strings { rest: payload }),
            Some(_) => Err(ProtocolError::NotNulTerminated),
        }
    }
}

impl<'a> Iterator for Strings<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let nul = self.rest.iter().position(|&b| b == 0)?;
        let (s, rest) = self.rest.split_at(nul);
        self.rest = &rest[1..];
        Some(s)
    }
}

/// The one NUL-terminated string that makes up `payload` (without the NUL).
fn single_string(payload: &[u8]) -> Result<&[u8], ProtocolError> {
    let (&last, body) = payload
        .split_last()
        .ok_or(ProtocolError::NotNulTerminated)?;
    if last != 0 {
        return Err(ProtocolError::NotNulTerminated);
    }
    if body.contains(&0) {
        return Err(ProtocolError::ExtraNul);
    }
    Ok(body)
}

/// Parses the reply of `XS_WRITE`, `XS_MKDIR`, `XS_RM`, `XS_SET_PERMS`,
/// `XS_WATCH`, `XS_UNWATCH` and `XS_TRANSACTION_END`: exactly `OK\0`.
///
/// # Errors
/// [`ProtocolError::NotOk`].
pub fn parse_ok(payload: &[u8]) -> Result<(), ProtocolError> {
    if payload == b"OK\0" {
        Ok(())
    } else {
        Err(ProtocolError::NotOk)
    }
}

/// Parses the reply of `XS_DIRECTORY`: zero or more NUL-terminated names,
/// each non-empty UTF-8 without `/`.
///
/// # Errors
/// [`ProtocolError::NotNulTerminated`], [`ProtocolError::ExtraNul`] (an
/// empty name) or [`ProtocolError::NotUtf8`].
pub fn parse_directory(payload: &[u8]) -> Result<Vec<&str>, ProtocolError> {
    let mut names = Vec::new();
    for s in Strings::new(payload)? {
        if s.is_empty() || s.contains(&b'/') {
            return Err(ProtocolError::ExtraNul);
        }
        names.push(core::str::from_utf8(s).map_err(|_| ProtocolError::NotUtf8)?);
    }
    Ok(names)
}

/// Parses the reply of `XS_GET_PERMS`: 1 to [`PERMISSIONS_MAX`]
/// NUL-terminated `[wrbn]<domid>` entries.
///
/// # Errors
/// [`ProtocolError::BadPermission`], [`ProtocolError::BadPermissionCount`]
/// or [`ProtocolError::NotNulTerminated`].
pub fn parse_permissions(payload: &[u8]) -> Result<Vec<Permission>, ProtocolError> {
    let mut perms = Vec::new();
    for s in Strings::new(payload)? {
        if perms.len() == PERMISSIONS_MAX {
            return Err(ProtocolError::BadPermissionCount);
        }
        perms.push(Permission::parse(s)?);
    }
    if perms.is_empty() {
        return Err(ProtocolError::BadPermissionCount);
    }
    Ok(perms)
}

/// Parses the reply of `XS_TRANSACTION_START`: a non-zero decimal id, `\0`.
///
/// # Errors
/// [`ProtocolError::BadNumber`] or a string-shape error.
pub fn parse_transaction_id(payload: &[u8]) -> Result<u32, ProtocolError> {
    match parse_decimal(single_string(payload)?) {
        Some(0) | None => Err(ProtocolError::BadNumber),
        Some(id) => Ok(id),
    }
}

/// Parses a reply that is one NUL-terminated UTF-8 string (`XS_GET_DOMAIN_PATH`).
///
/// # Errors
/// A string-shape error.
pub fn parse_string(payload: &[u8]) -> Result<&str, ProtocolError> {
    core::str::from_utf8(single_string(payload)?).map_err(|_| ProtocolError::NotUtf8)
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::vec;

    fn hdr(kind: XsdSockmsgType, req_id: u32, len: usize) -> Header {
        Header {
            kind,
            req_id,
            tx_id: 0,
            len,
        }
    }

    #[test]
    fn encode_read() {
        let mut out = Vec::new();
        Request::Read("domid").encode(3, 0, &mut out).unwrap();
        assert_eq!(
            out,
            [
                2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, //
                b'd', b'o', b'm', b'i', b'd', 0
            ]
        );
    }

    #[test]
    fn encode_write_has_no_value_terminator() {
        let mut out = Vec::new();
        Request::Write("/a", b"xy").encode(1, 7, &mut out).unwrap();
        assert_eq!(
            &out[..16],
            &[11, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 5, 0, 0, 0]
        );
        assert_eq!(&out[16..], b"/a\0xy");
    }

    #[test]
    fn encode_every_shape() {
        let cases: &[(Request<'_>, &[u8])] = &[
            (Request::Mkdir("a/b"), b"a/b\0"),
            (Request::Rm("/x"), b"/x\0"),
            (Request::Directory("/"), b"/\0"),
            (Request::GetPerms("/p"), b"/p\0"),
            (
                Request::SetPerms(
                    "/p",
                    &[
                        Permission {
                            domid: DomId(0),
                            access: Access::None,
                        },
                        Permission {
                            domid: DomId(12),
                            access: Access::Read,
                        },
                        Permission {
                            domid: DomId(65535),
                            access: Access::Both,
                        },
                    ],
                ),
                b"/p\0n0\0r12\0b65535\0",
            ),
            (Request::Watch("/w", "t1"), b"/w\0t1\0"),
            (Request::Unwatch("/w", "t1"), b"/w\0t1\0"),
            (Request::TransactionStart, b"\0"),
            (Request::TransactionEnd(true), b"T\0"),
            (Request::TransactionEnd(false), b"F\0"),
            (Request::GetDomainPath(DomId(5)), b"5\0"),
        ];
        for (req, payload) in cases {
            let mut out = Vec::new();
            req.encode(9, 0, &mut out).unwrap();
            assert_eq!(&out[16..], *payload, "{req:?}");
            assert_eq!(out[0..4], (req.kind() as u32).to_le_bytes());
            assert_eq!(out[12..16], (payload.len() as u32).to_le_bytes());
        }
    }

    #[test]
    fn encode_rejects_bad_arguments() {
        let mut out = vec![0xaa];
        assert_eq!(
            Request::Read("").encode(1, 0, &mut out),
            Err(EncodeError::BadPath)
        );
        assert_eq!(
            Request::Read("a\0b").encode(1, 0, &mut out),
            Err(EncodeError::BadPath)
        );
        let long = "/".repeat(XENSTORE_ABS_PATH_MAX + 1);
        assert_eq!(
            Request::Read(&long).encode(1, 0, &mut out),
            Err(EncodeError::BadPath)
        );
        let rel = "a".repeat(XENSTORE_REL_PATH_MAX + 1);
        assert_eq!(
            Request::Read(&rel).encode(1, 0, &mut out),
            Err(EncodeError::BadPath)
        );
        let value = vec![b'v'; XENSTORE_PAYLOAD_MAX - 2];
        assert_eq!(
            Request::Write("/a", &value).encode(1, 0, &mut out),
            Err(EncodeError::TooLong)
        );
        assert!(Request::Write("/a", &value[1..])
            .encode(1, 0, &mut Vec::new())
            .is_ok());
        assert_eq!(
            Request::Watch("/a", "").encode(1, 0, &mut out),
            Err(EncodeError::BadToken)
        );
        assert_eq!(
            Request::SetPerms("/a", &[]).encode(1, 0, &mut out),
            Err(EncodeError::BadPermissions)
        );
        // A failed encode leaves the buffer untouched.
        assert_eq!(out, [0xaa]);
    }

    #[test]
    fn header_validation() {
        let ok = [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0];
        assert_eq!(
            decode_header(XsdSockmsg::from_bytes(&ok)),
            Ok(hdr(XsdSockmsgType::Read, 1, 4096))
        );
        let too_long = [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x10, 0, 0];
        assert_eq!(
            decode_header(XsdSockmsg::from_bytes(&too_long)),
            Err(ProtocolError::PayloadTooLong(4097))
        );
        let unknown = [20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_header(XsdSockmsg::from_bytes(&unknown)),
            Err(ProtocolError::UnknownType(20))
        );
        let invalid = [0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_header(XsdSockmsg::from_bytes(&invalid)),
            Err(ProtocolError::UnknownType(0xffff))
        );
        let intro = [8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_header(XsdSockmsg::from_bytes(&intro)),
            Err(ProtocolError::UnexpectedType(XsdSockmsgType::Introduce))
        );
    }

    #[test]
    fn decode_error_replies() {
        let h = hdr(XsdSockmsgType::Error, 4, 7);
        assert_eq!(
            decode(h, b"ENOENT\0"),
            Ok(Message::Error {
                header: h,
                error: XenstoreError::NoEnt
            })
        );
        for e in XenstoreError::ALL {
            let mut p = Vec::from(e.name().as_bytes());
            p.push(0);
            let h = hdr(XsdSockmsgType::Error, 1, p.len());
            assert_eq!(
                decode(h, &p),
                Ok(Message::Error {
                    header: h,
                    error: e
                })
            );
        }
        // Every name of the C header's list is known.
        for name in crate::abi::xs_wire::XSD_ERRORS {
            assert!(
                XenstoreError::from_name(name.as_bytes()).is_some(),
                "{name}"
            );
        }
        let h = hdr(XsdSockmsgType::Error, 4, 6);
        assert_eq!(decode(h, b"ENOENT"), Err(ProtocolError::NotNulTerminated));
        let h = hdr(XsdSockmsgType::Error, 4, 7);
        assert!(matches!(
            decode(h, b"EWEIRD\0"),
            Err(ProtocolError::UnknownErrno(n)) if n.as_bytes() == b"EWEIRD"
        ));
        let h = hdr(XsdSockmsgType::Error, 4, 8);
        assert_eq!(decode(h, b"ENO\0ENT\0"), Err(ProtocolError::ExtraNul));
        let h = hdr(XsdSockmsgType::Error, 4, 0);
        assert_eq!(decode(h, b""), Err(ProtocolError::NotNulTerminated));
    }

    #[test]
    fn decode_watch_events() {
        let h = hdr(XsdSockmsgType::WatchEvent, 0, 12);
        assert_eq!(
            decode(h, b"/a/b\0tok-1\0\0"),
            Err(ProtocolError::BadWatchEvent),
            "three strings"
        );
        let h = hdr(XsdSockmsgType::WatchEvent, 0, 11);
        assert_eq!(
            decode(h, b"/a/b\0tok-1\0"),
            Ok(Message::WatchEvent {
                path: "/a/b",
                token: "tok-1"
            })
        );
        let h = hdr(XsdSockmsgType::WatchEvent, 0, 5);
        assert_eq!(decode(h, b"/a/b\0"), Err(ProtocolError::BadWatchEvent));
        let h = hdr(XsdSockmsgType::WatchEvent, 0, 10);
        assert_eq!(decode(h, b"/a/b\0tok-1"), Err(ProtocolError::BadWatchEvent));
        let h = hdr(XsdSockmsgType::WatchEvent, 0, 4);
        assert_eq!(decode(h, b"\xff\0t\0"), Err(ProtocolError::NotUtf8));
        let h = hdr(XsdSockmsgType::WatchEvent, 0, 3);
        assert_eq!(decode(h, b"\0t\0"), Err(ProtocolError::BadWatchEvent));
    }

    #[test]
    fn decode_plain_reply() {
        let h = hdr(XsdSockmsgType::Read, 2, 3);
        assert_eq!(
            decode(h, b"abc"),
            Ok(Message::Reply {
                header: h,
                payload: b"abc"
            })
        );
    }

    #[test]
    fn ok_parser() {
        assert_eq!(parse_ok(b"OK\0"), Ok(()));
        assert_eq!(parse_ok(b"OK"), Err(ProtocolError::NotOk));
        assert_eq!(parse_ok(b"OK\0\0"), Err(ProtocolError::NotOk));
        assert_eq!(parse_ok(b""), Err(ProtocolError::NotOk));
    }

    #[test]
    fn directory_parser() {
        assert_eq!(parse_directory(b""), Ok(vec![]));
        assert_eq!(parse_directory(b"a\0bb\0"), Ok(vec!["a", "bb"]));
        assert_eq!(
            parse_directory(b"a\0bb"),
            Err(ProtocolError::NotNulTerminated)
        );
        assert_eq!(parse_directory(b"a\0\0"), Err(ProtocolError::ExtraNul));
        assert_eq!(parse_directory(b"a/b\0"), Err(ProtocolError::ExtraNul));
        assert_eq!(parse_directory(b"\xc3\0"), Err(ProtocolError::NotUtf8));
    }

    #[test]
    fn permission_parser_and_emitter() {
        assert_eq!(
            parse_permissions(b"n0\0r1\0w2\0b65535\0"),
            Ok(vec![
                Permission {
                    domid: DomId(0),
                    access: Access::None
                },
                Permission {
                    domid: DomId(1),
                    access: Access::Read
                },
                Permission {
                    domid: DomId(2),
                    access: Access::Write
                },
                Permission {
                    domid: DomId(65535),
                    access: Access::Both
                },
            ])
        );
        assert_eq!(
            parse_permissions(b""),
            Err(ProtocolError::BadPermissionCount)
        );
        assert_eq!(
            parse_permissions(b"x0\0"),
            Err(ProtocolError::BadPermission)
        );
        assert_eq!(parse_permissions(b"r\0"), Err(ProtocolError::BadPermission));
        assert_eq!(
            parse_permissions(b"r65536\0"),
            Err(ProtocolError::BadPermission)
        );
        assert_eq!(
            parse_permissions(b"r-1\0"),
            Err(ProtocolError::BadPermission)
        );
        assert_eq!(
            parse_permissions(b"r1"),
            Err(ProtocolError::NotNulTerminated)
        );
        let many: Vec<u8> = b"r1\0".repeat(PERMISSIONS_MAX + 1);
        assert_eq!(
            parse_permissions(&many),
            Err(ProtocolError::BadPermissionCount)
        );
        let mut out = Vec::new();
        Permission {
            domid: DomId(42),
            access: Access::Write,
        }
        .emit(&mut out);
        assert_eq!(out, b"w42");
    }

    #[test]
    fn transaction_id_parser() {
        assert_eq!(parse_transaction_id(b"17\0"), Ok(17));
        assert_eq!(parse_transaction_id(b"4294967295\0"), Ok(u32::MAX));
        assert_eq!(
            parse_transaction_id(b"4294967296\0"),
            Err(ProtocolError::BadNumber)
        );
        assert_eq!(parse_transaction_id(b"0\0"), Err(ProtocolError::BadNumber));
        assert_eq!(parse_transaction_id(b"1a\0"), Err(ProtocolError::BadNumber));
        assert_eq!(parse_transaction_id(b"\0"), Err(ProtocolError::BadNumber));
        assert_eq!(
            parse_transaction_id(b"17"),
            Err(ProtocolError::NotNulTerminated)
        );
    }

    #[test]
    fn string_parser() {
        assert_eq!(parse_string(b"/local/domain/3\0"), Ok("/local/domain/3"));
        assert_eq!(parse_string(b"/local\0/x\0"), Err(ProtocolError::ExtraNul));
    }

    #[test]
    fn decimal() {
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        out.push(b' ');
        push_decimal(&mut out, u64::MAX);
        assert_eq!(out, b"0 18446744073709551615");
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b"+7"), None);
        assert_eq!(parse_decimal(b""), None);
    }

    #[test]
    fn errors_display() {
        use alloc::string::ToString;
        assert_eq!(
            XenstoreError::NoEnt.to_string(),
            "xenstore: no such node (ENOENT)"
        );
        assert_eq!(
            ProtocolError::UnknownErrno(ErrnoName::new(b"EX\n")).to_string(),
            "unknown error name \"EX\\n\""
        );
    }

    proptest::proptest! {
        /// Every decoder takes any bytes without panicking.
        #[test]
        fn decoders_never_panic(
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 16),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let raw = XsdSockmsg::from_bytes(header.as_slice().try_into().unwrap());
            if let Ok(mut h) = decode_header(raw) {
                h.len = payload.len();
                let _ = decode(h, &payload);
            }
            let _ = parse_ok(&payload);
            let _ = parse_directory(&payload);
            let _ = parse_permissions(&payload);
            let _ = parse_transaction_id(&payload);
            let _ = parse_string(&payload);
            let _ = parse_decimal(&payload);
        }

        /// Permission lists survive an emit/parse round trip.
        #[test]
        fn permissions_round_trip(
            perms in proptest::collection::vec((proptest::prelude::any::<u16>(), 0u8..4), 1..PERMISSIONS_MAX),
        ) {
            let perms: Vec<Permission> = perms
                .into_iter()
                .map(|(d, a)| Permission {
                    domid: DomId(d),
                    access: [Access::None, Access::Read, Access::Write, Access::Both][usize::from(a)],
                })
                .collect();
            let mut out = Vec::new();
            Request::SetPerms("/p", &perms).encode(1, 0, &mut out).unwrap();
            let payload = &out[16 + 3..];
            proptest::prop_assert_eq!(parse_permissions(payload).unwrap(), perms);
        }
    }
}
