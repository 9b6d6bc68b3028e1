//! The socket operations' error enums, one per operation.

use core::fmt;

macro_rules! error_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $msg:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* $v,)+
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $($name::$v => $msg,)+
                })
            }
        }

        impl core::error::Error for $name {}
    };
}

error_enum! {
    /// Why [`TcpListener::bind`](crate::TcpListener::bind) or
    /// [`UdpSocket::bind`](crate::UdpSocket::bind) failed.
    BindError {
        /// The port is 0 (a listener needs a fixed port) or the backlog is 0.
        InvalidArgument => "invalid port or backlog",
        /// A listener (TCP) or a socket (UDP) already has this port.
        PortInUse => "port in use",
        /// No socket is free (`StackConfig::sockets_max`), or no ephemeral
        /// port could be found.
        NoSockets => "no free socket",
    }
}

error_enum! {
    /// Why [`TcpStream::connect`](crate::TcpStream::connect) failed.
    ConnectError {
        /// The interface has no IPv4 address yet.
        NotConfigured => "the interface has no IPv4 address",
        /// The remote port is 0, its address unspecified, or no route leads
        /// to it.
        Unaddressable => "unaddressable remote endpoint",
        /// No socket is free (`StackConfig::sockets_max`) or no ephemeral
        /// port could be found.
        NoSockets => "no free socket",
        /// The peer answered with a reset (nothing listens, or its pool is full).
        Refused => "connection refused",
        /// No answer within `StackConfig::connect_timeout`.
        TimedOut => "connection timed out",
    }
}

error_enum! {
    /// Why a TCP read failed.
    ReadError {
        /// The connection was reset by the peer, aborted, or dropped by the
        /// stack's own timeouts (keep-alive, `set_timeout`).
        Reset => "connection reset",
        /// The read timeout passed with no data.
        TimedOut => "read timed out",
    }
}

error_enum! {
    /// Why a TCP write, flush or shutdown failed.
    WriteError {
        /// The connection was reset by the peer, aborted, or dropped by the
        /// stack's own timeouts; data not yet acknowledged is lost.
        Reset => "connection reset",
        /// The write half was shut down (by `shutdown`/`close`).
        Closed => "write half closed",
        /// The write timeout passed with no progress.
        TimedOut => "write timed out",
    }
}

error_enum! {
    /// Why a UDP send failed.
    UdpSendError {
        /// The remote port is 0, its address unspecified, or no route or
        /// source address exists for it.
        Unaddressable => "unaddressable remote endpoint",
        /// The datagram is larger than the socket's transmit buffer or the
        /// device's MTU allows.
        TooLarge => "datagram too large",
    }
}

error_enum! {
    /// Why a UDP receive failed.
    UdpRecvError {
        /// The datagram was larger than the buffer; it was dropped.
        Truncated => "datagram larger than the buffer (dropped)",
    }
}

#[cfg(feature = "std")]
mod std_io {
    use super::*;
    use std::io;

    impl From<ReadError> for io::Error {
        fn from(e: ReadError) -> io::Error {
            let kind = match e {
                ReadError::Reset => io::ErrorKind::ConnectionReset,
                ReadError::TimedOut => io::ErrorKind::TimedOut,
            };
            io::Error::new(kind, e)
        }
    }

    impl From<WriteError> for io::Error {
        fn from(e: WriteError) -> io::Error {
            let kind = match e {
                WriteError::Reset => io::ErrorKind::ConnectionReset,
                WriteError::Closed => io::ErrorKind::BrokenPipe,
                WriteError::TimedOut => io::ErrorKind::TimedOut,
            };
            io::Error::new(kind, e)
        }
    }
}
