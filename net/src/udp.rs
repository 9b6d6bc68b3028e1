//! UDP sockets.
//!
//! Each socket queues at most
//! [`StackConfig::udp_packets_max`](crate::StackConfig::udp_packets_max)
//! datagrams per direction in buffers of `udp_rx_buffer_bytes` and
//! `udp_tx_buffer_bytes`; datagrams that arrive to a full queue are dropped
//! (UDP's contract). A send waits for room in the transmit queue; datagrams
//! still queued when the socket is dropped are sent first (its port stays
//! taken until then, at most `close_linger`).

use core::fmt;
use core::future::poll_fn;
use core::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::IpEndpoint;

use crate::error::{BindError, UdpRecvError, UdpSendError};
use crate::stack::Stack;

/// A UDP socket bound to a local port.
pub struct UdpSocket {
    stack: Stack,
    handle: SocketHandle,
    port: u16,
}

impl UdpSocket {
    /// Binds to `port` on every address of the interface (`0`: an
    /// ephemeral port).
    ///
    /// # Errors
    ///
    /// [`BindError::PortInUse`] if a UDP socket has the port;
    /// [`BindError::NoSockets`] if the pool is full or no ephemeral port is
    /// free.
    pub fn bind(stack: &Stack, port: u16) -> Result<UdpSocket, BindError> {
        let mut core = stack.shared.core();
        let port = match port {
            0 => core.ephemeral_port().ok_or(BindError::NoSockets)?,
            p if core.udp_port_in_use(p) => return Err(BindError::PortInUse),
            p => p,
        };
        let handle = core.add_udp().map_err(|_| BindError::NoSockets)?;
        // A fresh socket on a non-zero port binds.
        let bound = core.udp(handle).bind(port);
        debug_assert!(bound.is_ok());
        Ok(UdpSocket {
            stack: stack.clone(),
            handle,
            port,
        })
    }

    /// The local port.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Sends one datagram to `remote`, waiting for room in the queue.
    ///
    /// # Errors
    ///
    /// [`UdpSendError`]: unaddressable, or larger than the buffer or MTU.
    pub async fn send_to(
        &self,
        data: &[u8],
        remote: impl Into<IpEndpoint>,
    ) -> Result<(), UdpSendError> {
        let remote = remote.into();
        poll_fn(|cx| self.poll_send_to(cx, data, remote)).await
    }

    /// The poll form of [`send_to`](UdpSocket::send_to).
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
        remote: IpEndpoint,
    ) -> Poll<Result<(), UdpSendError>> {
        let mut core = self.stack.shared.core();
        // Ethernet MTU less the IPv4 (20) and UDP (8) headers.
        let mtu = core.ip_mtu.saturating_sub(28);
        let sock = core.udp(self.handle);
        if data.len() > sock.payload_send_capacity() || data.len() > mtu {
            return Poll::Ready(Err(UdpSendError::TooLarge));
        }
        let r = match sock.send_slice(data, remote) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(udp::SendError::Unaddressable) => Poll::Ready(Err(UdpSendError::Unaddressable)),
            Err(udp::SendError::BufferFull) => {
                sock.register_send_waker(cx.waker());
                return Poll::Pending;
            }
        };
        drop(core);
        self.stack.shared.touch();
        r
    }

    /// Receives one datagram into `buf`; returns its length and sender.
    ///
    /// # Errors
    ///
    /// [`UdpRecvError::Truncated`] if the datagram did not fit (it is dropped).
    ///
    /// # Cancellation
    ///
    /// Cancel-safe: a datagram not returned stays queued.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, IpEndpoint), UdpRecvError> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// The poll form of [`recv_from`](UdpSocket::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<(usize, IpEndpoint), UdpRecvError>> {
        let mut core = self.stack.shared.core();
        let sock = core.udp(self.handle);
        match sock.recv() {
            Ok((data, meta)) if data.len() <= buf.len() => {
                buf[..data.len()].copy_from_slice(data);
                Poll::Ready(Ok((data.len(), meta.endpoint)))
            }
            Ok(_) => Poll::Ready(Err(UdpRecvError::Truncated)),
            Err(_) => {
                sock.register_recv_waker(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut core = self.stack.shared.core();
        if core.udp(self.handle).send_queue() == 0 {
            core.remove(self.handle);
        } else {
            // Datagrams still queued go out first (within the linger time).
            core.orphan_udp(self.handle);
        }
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("port", &self.port)
            .finish()
    }
}
