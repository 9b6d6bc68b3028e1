//! Xenbus device states (xen/io/xenbus.h), as written to and read from the
//! `state` node of a front or back end in xenstore.
#![forbid(unsafe_code)]

use core::fmt;

/// `enum xenbus_state`.
#[doc(alias = "xenbus_state")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum XenbusState {
    /// `XenbusStateUnknown`.
    Unknown = 0,
    /// `XenbusStateInitialising`.
    Initialising = 1,
    /// `XenbusStateInitWait`: early setup done, waiting for the peer or hotplug.
    InitWait = 2,
    /// `XenbusStateInitialised`: waiting for a connection from the peer.
    Initialised = 3,
    /// `XenbusStateConnected`.
    Connected = 4,
    /// `XenbusStateClosing`: being closed (error or unplug).
    Closing = 5,
    /// `XenbusStateClosed`.
    Closed = 6,
    /// `XenbusStateReconfiguring`.
    Reconfiguring = 7,
    /// `XenbusStateReconfigured`.
    Reconfigured = 8,
}

/// A `state` value that is not a known xenbus state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XenbusStateError {
    /// Not a decimal number (empty, a sign, other characters, or too long).
    NotANumber,
    /// A number outside `0..=8`.
    OutOfRange(u32),
}

impl fmt::Display for XenbusStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenbusStateError::NotANumber => f.write_str("xenbus state is not a decimal number"),
            XenbusStateError::OutOfRange(n) => write!(f, "xenbus state {n} is not in 0..=8"),
        }
    }
}

impl core::error::Error for XenbusStateError {}

/// Longest decimal accepted for a state (xenstore values are untrusted).
const STATE_DIGITS_MAX: usize = 9;

impl XenbusState {
    /// Every state, by value.
    pub const ALL: [XenbusState; 9] = [
        XenbusState::Unknown,
        XenbusState::Initialising,
        XenbusState::InitWait,
        XenbusState::Initialised,
        XenbusState::Connected,
        XenbusState::Closing,
        XenbusState::Closed,
        XenbusState::Reconfiguring,
        XenbusState::Reconfigured,
    ];

    /// The state with number `n`.
    ///
    /// # Errors
    /// [`XenbusStateError::OutOfRange`] if `n > 8`.
    pub fn try_from_u32(n: u32) -> Result<Self, XenbusStateError> {
        Self::ALL
            .get(n as usize)
            .copied()
            .ok_or(XenbusStateError::OutOfRange(n))
    }

    /// Parses a `state` node's value: ASCII decimal, optionally followed by
    /// one NUL (some writers include it).
    ///
    /// # Errors
    /// [`XenbusStateError`] if the value is not a decimal in `0..=8`.
    ///
    /// # Examples
    /// ```
    /// use ringlet_xen::abi::xenbus::XenbusState;
    /// assert_eq!(XenbusState::parse(b"4"), Ok(XenbusState::Connected));
    /// assert!(XenbusState::parse(b"x").is_err());
    /// ```
    pub fn parse(value: &[u8]) -> Result<Self, XenbusStateError> {
        let digits = value.strip_suffix(&[0]).unwrap_or(value);
        if digits.is_empty() || digits.len() > STATE_DIGITS_MAX {
            return Err(XenbusStateError::NotANumber);
        }
        let mut n: u32 = 0;
        for &b in digits {
            if !b.is_ascii_digit() {
                return Err(XenbusStateError::NotANumber);
            }
            n = n * 10 + u32::from(b - b'0');
        }
        Self::try_from_u32(n)
    }

    /// The value to write to a `state` node (`"1"` ... `"8"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            XenbusState::Unknown => "0",
            XenbusState::Initialising => "1",
            XenbusState::InitWait => "2",
            XenbusState::Initialised => "3",
            XenbusState::Connected => "4",
            XenbusState::Closing => "5",
            XenbusState::Closed => "6",
            XenbusState::Reconfiguring => "7",
            XenbusState::Reconfigured => "8",
        }
    }
}

impl TryFrom<u32> for XenbusState {
    type Error = XenbusStateError;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::try_from_u32(n)
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn parse_emit_roundtrip() {
        for s in XenbusState::ALL {
            assert_eq!(XenbusState::parse(s.as_str().as_bytes()), Ok(s));
            assert_eq!(XenbusState::try_from(s as u32), Ok(s));
        }
        assert_eq!(XenbusState::parse(b"4\0"), Ok(XenbusState::Connected));
    }

    #[test]
    fn malformed() {
        assert_eq!(XenbusState::parse(b""), Err(XenbusStateError::NotANumber));
        assert_eq!(XenbusState::parse(b"-1"), Err(XenbusStateError::NotANumber));
        assert_eq!(XenbusState::parse(b" 4"), Err(XenbusStateError::NotANumber));
        assert_eq!(
            XenbusState::parse(b"4\0\0"),
            Err(XenbusStateError::NotANumber)
        );
        assert_eq!(
            XenbusState::parse(b"9"),
            Err(XenbusStateError::OutOfRange(9))
        );
        assert_eq!(
            XenbusState::parse(b"999999999"),
            Err(XenbusStateError::OutOfRange(999_999_999))
        );
        assert_eq!(
            XenbusState::parse(b"9999999999"),
            Err(XenbusStateError::NotANumber)
        );
    }
}
