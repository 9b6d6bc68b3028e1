//! Checks the netif ABI's sizes, offsets and constants against
//! libxen-dev's `xen/io/netif.h`, by compiling a small C program
//! (`ringlet_xen::testing::c_layout`). Skipped (with a message) when the
//! header or a C compiler is missing.

use std::mem::{offset_of, size_of};

use ringlet_net::netfront::netif::{
    self as n, ExtraInfo, RxRequest, RxResponse, TxRequest, TxResponse,
};
use ringlet_xen::testing::c_layout::{self, CProgram, Expected, IfMissing};

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
    let program = CProgram {
        name: "netfront_layout",
        header: "/usr/include/xen/io/netif.h",
        source: PROGRAM,
        if_missing: IfMissing::Skip,
    };
    let mut rust = Expected::default();
    macro_rules! size {
        ($c:literal, $t:ty) => {
            rust.value(concat!("sizeof(struct ", $c, ")"), size_of::<$t>());
        };
    }
    macro_rules! off {
        ($c:literal, $t:ty, $($f:ident : $rf:ident),+ $(,)?) => {
            $( rust.value(
                concat!("offsetof(struct ", $c, ", ", stringify!($f), ")"),
                offset_of!($t, $rf),
            ); )+
        };
    }
    macro_rules! konst {
        ($c:expr, $v:expr) => {
            rust.value($c, $v);
        };
    }
    size!("netif_tx_request", TxRequest);
    off!("netif_tx_request", TxRequest, gref: gref, offset: offset, flags: flags, id: id,
        size: size);
    size!("netif_tx_response", TxResponse);
    off!("netif_tx_response", TxResponse, id: id, status: status);
    size!("netif_rx_request", RxRequest);
    off!("netif_rx_request", RxRequest, id: id, pad: pad, gref: gref);
    size!("netif_rx_response", RxResponse);
    off!("netif_rx_response", RxResponse, id: id, offset: offset, flags: flags, status: status);
    size!("netif_extra_info", ExtraInfo);
    off!("netif_extra_info", ExtraInfo, type: kind, flags: flags, u: data);
    konst!("sizeof(union netif_tx_sring_entry)", n::TX_SLOT_SIZE);
    konst!("sizeof(union netif_rx_sring_entry)", n::RX_SLOT_SIZE);
    konst!("__CONST_RING_SIZE(netif_tx, 4096)", n::TX_RING_SIZE);
    konst!("__CONST_RING_SIZE(netif_rx, 4096)", n::RX_RING_SIZE);
    konst!("NETTXF_csum_blank", n::NETTXF_CSUM_BLANK);
    konst!("NETTXF_data_validated", n::NETTXF_DATA_VALIDATED);
    konst!("NETTXF_more_data", n::NETTXF_MORE_DATA);
    konst!("NETTXF_extra_info", n::NETTXF_EXTRA_INFO);
    konst!("NETRXF_data_validated", n::NETRXF_DATA_VALIDATED);
    konst!("NETRXF_csum_blank", n::NETRXF_CSUM_BLANK);
    konst!("NETRXF_more_data", n::NETRXF_MORE_DATA);
    konst!("NETRXF_extra_info", n::NETRXF_EXTRA_INFO);
    konst!("NETRXF_gso_prefix", n::NETRXF_GSO_PREFIX);
    konst!("NETIF_RSP_DROPPED", n::NETIF_RSP_DROPPED);
    konst!("NETIF_RSP_ERROR", n::NETIF_RSP_ERROR);
    konst!("NETIF_RSP_OKAY", n::NETIF_RSP_OKAY);
    konst!("NETIF_RSP_NULL", n::NETIF_RSP_NULL);
    konst!("XEN_NETIF_EXTRA_TYPE_NONE", n::XEN_NETIF_EXTRA_TYPE_NONE);
    konst!("XEN_NETIF_EXTRA_TYPE_GSO", n::XEN_NETIF_EXTRA_TYPE_GSO);
    konst!(
        "XEN_NETIF_EXTRA_TYPE_MCAST_ADD",
        n::XEN_NETIF_EXTRA_TYPE_MCAST_ADD
    );
    konst!(
        "XEN_NETIF_EXTRA_TYPE_MCAST_DEL",
        n::XEN_NETIF_EXTRA_TYPE_MCAST_DEL
    );
    konst!("XEN_NETIF_EXTRA_TYPE_HASH", n::XEN_NETIF_EXTRA_TYPE_HASH);
    konst!("XEN_NETIF_EXTRA_FLAG_MORE", n::XEN_NETIF_EXTRA_FLAG_MORE);
    konst!("XEN_NETIF_NR_SLOTS_MIN", n::XEN_NETIF_NR_SLOTS_MIN);
    konst!("XEN_NETIF_MAX_TX_SIZE", n::XEN_NETIF_MAX_TX_SIZE);
    if let Some(checked) = c_layout::check(&program, &rust) {
        assert_eq!(checked, 47);
    }
}
