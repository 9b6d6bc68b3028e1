//! DHCPv4: the stack's client against a small test server on the other
//! stack (a UDP socket on port 67).

use alloc::vec;
use core::time::Duration;

use ringlet_executor::{spawn, timeout};
use smoltcp::wire::{DhcpMessageType, DhcpPacket, DhcpRepr, Ipv4Address, Ipv4Cidr};

use super::{cfg, world, A};
use crate::cable::{Cable, CableConfig};
use crate::{IpConfig, Stack, StackConfig, TcpListener, TcpStream, UdpSocket};

const OFFERED: Ipv4Address = Ipv4Address::new(10, 0, 0, 50);

/// Answers DISCOVER with OFFER and REQUEST with ACK for `your_ip`.
async fn serve(server: Stack, your_ip: Ipv4Address) {
    let sock = UdpSocket::bind(&server, 67).unwrap();
    let mut buf = vec![0; 1500];
    let mut out = vec![0; 1500];
    loop {
        let (n, _from) = sock.recv_from(&mut buf).await.unwrap();
        let Ok(packet) = DhcpPacket::new_checked(&buf[..n]) else {
            continue;
        };
        let Ok(req) = DhcpRepr::parse(&packet) else {
            continue;
        };
        let reply_type = match req.message_type {
            DhcpMessageType::Discover => DhcpMessageType::Offer,
            DhcpMessageType::Request => DhcpMessageType::Ack,
            _ => continue,
        };
        let reply = DhcpRepr {
            message_type: reply_type,
            transaction_id: req.transaction_id,
            secs: 0,
            client_hardware_address: req.client_hardware_address,
            client_ip: Ipv4Address::UNSPECIFIED,
            your_ip,
            server_ip: A,
            router: Some(A),
            subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
            relay_agent_ip: Ipv4Address::UNSPECIFIED,
            broadcast: false,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(A),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: Some(3600),
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let len = reply.buffer_len();
        let mut packet = DhcpPacket::new_unchecked(&mut out[..len]);
        reply.emit(&mut packet).unwrap();
        sock.send_to(&out[..len], (Ipv4Address::BROADCAST, 68))
            .await
            .unwrap();
    }
}

fn dhcp_pair(seed: u64, your_ip: Ipv4Address) -> (ringlet_executor::Executor, Stack, Stack) {
    let (_sim, ex) = world(seed);
    let (da, db) = Cable::pair(CableConfig::default());
    let (server, ra) = Stack::new(da, cfg(A)).unwrap();
    let (client, rb) = Stack::new(db, StackConfig::new(IpConfig::Dhcp).random_seed(seed)).unwrap();
    ex.spawn(ra.run()).detach();
    ex.spawn(rb.run()).detach();
    ex.spawn(serve(server.clone(), your_ip)).detach();
    (ex, server, client)
}

#[test]
fn dhcp_configures_the_interface() {
    let (ex, server, client) = dhcp_pair(40, OFFERED);
    ex.block_on(async {
        assert_eq!(client.ipv4(), None);
        let ip = timeout(Duration::from_secs(30), client.wait_configured())
            .await
            .expect("a lease within 30 s");
        assert_eq!(ip.address, Ipv4Cidr::new(OFFERED, 24));
        assert_eq!(ip.gateway, Some(A));
        assert_eq!(client.ipv4(), Some(ip));
        // The address works: a TCP connection from the leased address.
        let mut l = TcpListener::bind(&server, 80, 1).unwrap();
        let accept = spawn(async move { l.accept().await.1 });
        let _c = TcpStream::connect(&client, (A, 80)).await.unwrap();
        assert_eq!(accept.await.unwrap().addr, OFFERED.into());
    });
}

#[test]
fn a_hostile_lease_is_refused() {
    // The subnet's broadcast address as "your address".
    let (ex, _server, client) = dhcp_pair(41, Ipv4Address::new(10, 0, 0, 255));
    ex.block_on(async {
        let r = timeout(Duration::from_secs(30), client.wait_configured()).await;
        assert!(r.is_err(), "no address from a bad lease");
        assert_eq!(client.ipv4(), None);
    });
}
