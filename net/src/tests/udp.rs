//! UDP over the cable.

use core::time::Duration;

use ringlet_executor::{sleep, timeout};

use super::{cfg, pair, world, A, B};
use crate::cable::CableConfig;
use crate::{BindError, IpEndpoint, UdpRecvError, UdpSendError, UdpSocket};

#[test]
fn datagrams_both_ways() {
    let (_sim, ex) = world(20);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    ex.block_on(async {
        let sa = UdpSocket::bind(&a, 5000).unwrap();
        let sb = UdpSocket::bind(&b, 0).unwrap();
        assert!(sb.local_port() >= crate::stack::EPHEMERAL_PORT_FIRST);
        for i in 0..10u8 {
            sb.send_to(&[i; 100], (A, 5000)).await.unwrap();
        }
        let mut buf = [0; 1472];
        for i in 0..10u8 {
            let (n, from) = sa.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[i; 100][..]);
            assert_eq!(from, IpEndpoint::new(B.into(), sb.local_port()));
            sa.send_to(&buf[..n], from).await.unwrap();
        }
        for i in 0..10u8 {
            let (n, from) = sb.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[i; 100][..]);
            assert_eq!(from, IpEndpoint::new(A.into(), 5000));
        }
        // The largest datagram that fits one frame, and one byte more.
        sb.send_to(&[9; 1472], (A, 5000)).await.unwrap();
        assert_eq!(
            sb.send_to(&[9; 1473], (A, 5000)).await,
            Err(UdpSendError::TooLarge)
        );
        assert_eq!(
            sb.send_to(b"x", (A, 0)).await,
            Err(UdpSendError::Unaddressable)
        );
        let (n, _) = sa.recv_from(&mut buf).await.unwrap();
        assert_eq!(n, 1472);
        // Too small a buffer: an error, and the datagram is gone.
        sb.send_to(&[1; 50], (A, 5000)).await.unwrap();
        sb.send_to(&[2; 10], (A, 5000)).await.unwrap();
        let mut small = [0; 20];
        assert_eq!(sa.recv_from(&mut small).await, Err(UdpRecvError::Truncated));
        let (n, _) = sa.recv_from(&mut small).await.unwrap();
        assert_eq!(&small[..n], &[2; 10]);
    });
}

#[test]
fn receive_queue_is_bounded() {
    let (_sim, ex) = world(21);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    ex.block_on(async {
        let max = a.config().udp_packets_max;
        let sa = UdpSocket::bind(&a, 5000).unwrap();
        let sb = UdpSocket::bind(&b, 6000).unwrap();
        for i in 0..(3 * max) {
            sb.send_to(&(i as u32).to_le_bytes(), (A, 5000))
                .await
                .unwrap();
            if i % 4 == 0 {
                sleep(Duration::from_millis(1)).await;
            }
        }
        sleep(Duration::from_millis(10)).await;
        let mut buf = [0; 16];
        let mut got = 0;
        while let Ok(Ok(_)) = timeout(Duration::from_millis(10), sa.recv_from(&mut buf)).await {
            got += 1;
        }
        assert_eq!(got, max, "only the queue's worth was kept");
    });
}

#[test]
fn bind_errors_and_pool() {
    let (_sim, ex) = world(22);
    let (a, _b) = pair(&ex, CableConfig::default(), cfg(A).sockets_max(2), cfg(B));
    ex.block_on(async {
        let s1 = UdpSocket::bind(&a, 53).unwrap();
        assert_eq!(UdpSocket::bind(&a, 53).unwrap_err(), BindError::PortInUse);
        let _s2 = UdpSocket::bind(&a, 0).unwrap();
        assert_eq!(UdpSocket::bind(&a, 54).unwrap_err(), BindError::NoSockets);
        drop(s1);
        let _s3 = UdpSocket::bind(&a, 53).unwrap();
        assert_eq!(a.sockets_in_use(), 2);
    });
}

#[test]
fn datagrams_queued_at_drop_are_still_sent() {
    let (_sim, ex) = world(23);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    ex.block_on(async {
        let sa = UdpSocket::bind(&a, 5000).unwrap();
        {
            let sb = UdpSocket::bind(&b, 6000).unwrap();
            for i in 0..4u8 {
                sb.send_to(&[i; 10], (A, 5000)).await.unwrap();
            }
            // Dropped before the runner has sent anything.
        }
        assert_eq!(b.sockets_in_use(), 1, "kept until its queue is sent");
        let mut buf = [0; 16];
        for i in 0..4u8 {
            let (n, _) = timeout(Duration::from_secs(1), sa.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..n], &[i; 10]);
        }
        assert_eq!(b.sockets_in_use(), 0, "freed once sent");
    });
}
