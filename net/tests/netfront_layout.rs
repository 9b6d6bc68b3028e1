//! Checks the netif ABI's sizes, offsets and constants against
//! libxen-dev's `xen/io/netif.h`, by compiling a small C program with the
//! system `cc`. Skipped (with a message) when the header or a C compiler is
//! missing.

use std::mem::{offset_of, size_of};
use std::process::Command;

use ringlet_net::netfront::netif::{
    self as n, ExtraInfo, RxRequest, RxResponse, TxRequest, TxResponse,
};

const PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/netif.h>
#define P(x) printf("%s %lld\n", #x, (long long)(x))
int main(void) {
    P(sizeof(struct netif_tx_request));
    P(offsetof(struct netif_tx_request, gref));
    P(offsetof(struct netif_tx_request, offset));
    P(offsetof(struct netif_tx_request, flags));
    P(offsetof(struct netif_tx_request, id));
    P(offsetof(struct netif_tx_request, size));
    P(sizeof(struct netif_tx_response));
    P(offsetof(struct netif_tx_response, id));
    P(offsetof(struct netif_tx_response, status));
    P(sizeof(struct netif_rx_request));
    P(offsetof(struct netif_rx_request, id));
    P(offsetof(struct netif_rx_request, pad));
    P(offsetof(struct netif_rx_request, gref));
    P(sizeof(struct netif_rx_response));
    P(offsetof(struct netif_rx_response, id));
    P(offsetof(struct netif_rx_response, offset));
    P(offsetof(struct netif_rx_response, flags));
    P(offsetof(struct netif_rx_response, status));
    P(sizeof(struct netif_extra_info));
    P(offsetof(struct netif_extra_info, type));
    P(offsetof(struct netif_extra_info, flags));
    P(offsetof(struct netif_extra_info, u));
    P(sizeof(union netif_tx_sring_entry));
    P(sizeof(union netif_rx_sring_entry));
    P(__CONST_RING_SIZE(netif_tx, 4096));
    P(__CONST_RING_SIZE(netif_rx, 4096));
    P(NETTXF_csum_blank); P(NETTXF_data_validated); P(NETTXF_more_data); P(NETTXF_extra_info);
    P(NETRXF_data_validated); P(NETRXF_csum_blank); P(NETRXF_more_data); P(NETRXF_extra_info);
    P(NETRXF_gso_prefix);
    P(NETIF_RSP_DROPPED); P(NETIF_RSP_ERROR); P(NETIF_RSP_OKAY); P(NETIF_RSP_NULL);
    P(XEN_NETIF_EXTRA_TYPE_NONE); P(XEN_NETIF_EXTRA_TYPE_GSO); P(XEN_NETIF_EXTRA_TYPE_MCAST_ADD);
    P(XEN_NETIF_EXTRA_TYPE_MCAST_DEL); P(XEN_NETIF_EXTRA_TYPE_HASH); P(XEN_NETIF_EXTRA_FLAG_MORE);
    P(XEN_NETIF_NR_SLOTS_MIN); P(XEN_NETIF_MAX_TX_SIZE);
    return 0;
}
"#;

#[test]
fn netif_layout_matches_libxen_dev() {
    if !std::path::Path::new("/usr/include/xen/io/netif.h").exists() {
        eprintln!("skipped: /usr/include/xen/io/netif.h missing (install libxen-dev)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ringlet-netif-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("netif.c");
    let bin = dir.join("netif");
    std::fs::write(&src, PROGRAM).unwrap();
    let status = Command::new("cc").arg("-o").arg(&bin).arg(&src).status();
    let Ok(status) = status else {
        eprintln!("skipped: no C compiler");
        return;
    };
    assert!(status.success(), "the C program must compile");
    let out = Command::new(&bin).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let got: Vec<i64> = text
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    let z = |x: usize| x as i64;
    let want = [
        z(size_of::<TxRequest>()),
        z(offset_of!(TxRequest, gref)),
        z(offset_of!(TxRequest, offset)),
        z(offset_of!(TxRequest, flags)),
        z(offset_of!(TxRequest, id)),
        z(offset_of!(TxRequest, size)),
        z(size_of::<TxResponse>()),
        z(offset_of!(TxResponse, id)),
        z(offset_of!(TxResponse, status)),
        z(size_of::<RxRequest>()),
        z(offset_of!(RxRequest, id)),
        z(offset_of!(RxRequest, pad)),
        z(offset_of!(RxRequest, gref)),
        z(size_of::<RxResponse>()),
        z(offset_of!(RxResponse, id)),
        z(offset_of!(RxResponse, offset)),
        z(offset_of!(RxResponse, flags)),
        z(offset_of!(RxResponse, status)),
        z(size_of::<ExtraInfo>()),
        z(offset_of!(ExtraInfo, kind)),
        z(offset_of!(ExtraInfo, flags)),
        z(offset_of!(ExtraInfo, data)),
        z(n::TX_SLOT_SIZE),
        z(n::RX_SLOT_SIZE),
        i64::from(n::TX_RING_SIZE),
        i64::from(n::RX_RING_SIZE),
        i64::from(n::NETTXF_CSUM_BLANK),
        i64::from(n::NETTXF_DATA_VALIDATED),
        i64::from(n::NETTXF_MORE_DATA),
        i64::from(n::NETTXF_EXTRA_INFO),
        i64::from(n::NETRXF_DATA_VALIDATED),
        i64::from(n::NETRXF_CSUM_BLANK),
        i64::from(n::NETRXF_MORE_DATA),
        i64::from(n::NETRXF_EXTRA_INFO),
        i64::from(n::NETRXF_GSO_PREFIX),
        i64::from(n::NETIF_RSP_DROPPED),
        i64::from(n::NETIF_RSP_ERROR),
        i64::from(n::NETIF_RSP_OKAY),
        i64::from(n::NETIF_RSP_NULL),
        i64::from(n::XEN_NETIF_EXTRA_TYPE_NONE),
        i64::from(n::XEN_NETIF_EXTRA_TYPE_GSO),
        i64::from(n::XEN_NETIF_EXTRA_TYPE_MCAST_ADD),
        i64::from(n::XEN_NETIF_EXTRA_TYPE_MCAST_DEL),
        i64::from(n::XEN_NETIF_EXTRA_TYPE_HASH),
        i64::from(n::XEN_NETIF_EXTRA_FLAG_MORE),
        z(n::XEN_NETIF_NR_SLOTS_MIN),
        z(n::XEN_NETIF_MAX_TX_SIZE),
    ];
    assert_eq!(got, want, "C says:\n{text}");
}
