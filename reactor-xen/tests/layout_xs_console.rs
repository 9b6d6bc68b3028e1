//! Checks the xenstore and console ABI structs against Xen's C headers.
//!
//! Compiles a tiny C program against libxen-dev's `xen/io/xs_wire.h` and
//! `xen/io/console.h` that prints sizes, offsets and constants, and compares
//! every number and error name with the Rust definitions
//! (`ringlet_xen::testing::c_layout`). Skipped (with a message) only when the
//! headers or a C compiler are missing.

use std::mem::{offset_of, size_of};

use ringlet_xen::abi::console::{XenconsInterface, XENCONS_IN_SIZE, XENCONS_OUT_SIZE};
use ringlet_xen::abi::xs_wire::*;
use ringlet_xen::testing::c_layout::{self, CProgram, Expected, IfMissing};

const C_SRC: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <xen/io/xs_wire.h>
#include <xen/io/console.h>
#define P(name, v) printf("%s %lu\n", name, (unsigned long)(v))
int main(void) {
    P("sockmsg.size", sizeof(struct xsd_sockmsg));
    P("sockmsg.type", offsetof(struct xsd_sockmsg, type));
    P("sockmsg.req_id", offsetof(struct xsd_sockmsg, req_id));
    P("sockmsg.tx_id", offsetof(struct xsd_sockmsg, tx_id));
    P("sockmsg.len", offsetof(struct xsd_sockmsg, len));
    P("xs.size", sizeof(struct xenstore_domain_interface));
    P("xs.req", offsetof(struct xenstore_domain_interface, req));
    P("xs.rsp", offsetof(struct xenstore_domain_interface, rsp));
    P("xs.req_cons", offsetof(struct xenstore_domain_interface, req_cons));
    P("xs.req_prod", offsetof(struct xenstore_domain_interface, req_prod));
    P("xs.rsp_cons", offsetof(struct xenstore_domain_interface, rsp_cons));
    P("xs.rsp_prod", offsetof(struct xenstore_domain_interface, rsp_prod));
    P("xs.server_features", offsetof(struct xenstore_domain_interface, server_features));
    P("xs.connection", offsetof(struct xenstore_domain_interface, connection));
    P("xs.error", offsetof(struct xenstore_domain_interface, error));
    P("XENSTORE_RING_SIZE", XENSTORE_RING_SIZE);
    P("XENSTORE_PAYLOAD_MAX", XENSTORE_PAYLOAD_MAX);
    P("XENSTORE_ABS_PATH_MAX", XENSTORE_ABS_PATH_MAX);
    P("XENSTORE_REL_PATH_MAX", XENSTORE_REL_PATH_MAX);
    P("XENSTORE_SERVER_FEATURE_RECONNECTION", XENSTORE_SERVER_FEATURE_RECONNECTION);
    P("XENSTORE_SERVER_FEATURE_ERROR", XENSTORE_SERVER_FEATURE_ERROR);
    P("XENSTORE_CONNECTED", XENSTORE_CONNECTED);
    P("XENSTORE_RECONNECT", XENSTORE_RECONNECT);
    P("XENSTORE_ERROR_NONE", XENSTORE_ERROR_NONE);
    P("XENSTORE_ERROR_COMM", XENSTORE_ERROR_COMM);
    P("XENSTORE_ERROR_RINGIDX", XENSTORE_ERROR_RINGIDX);
    P("XENSTORE_ERROR_PROTO", XENSTORE_ERROR_PROTO);
    P("XS_CONTROL", XS_CONTROL);
    P("XS_DIRECTORY", XS_DIRECTORY);
    P("XS_READ", XS_READ);
    P("XS_GET_PERMS", XS_GET_PERMS);
    P("XS_WATCH", XS_WATCH);
    P("XS_UNWATCH", XS_UNWATCH);
    P("XS_TRANSACTION_START", XS_TRANSACTION_START);
    P("XS_TRANSACTION_END", XS_TRANSACTION_END);
    P("XS_INTRODUCE", XS_INTRODUCE);
    P("XS_RELEASE", XS_RELEASE);
    P("XS_GET_DOMAIN_PATH", XS_GET_DOMAIN_PATH);
    P("XS_WRITE", XS_WRITE);
    P("XS_MKDIR", XS_MKDIR);
    P("XS_RM", XS_RM);
    P("XS_SET_PERMS", XS_SET_PERMS);
    P("XS_WATCH_EVENT", XS_WATCH_EVENT);
    P("XS_ERROR", XS_ERROR);
    P("XS_IS_DOMAIN_INTRODUCED", XS_IS_DOMAIN_INTRODUCED);
    P("XS_RESUME", XS_RESUME);
    P("XS_SET_TARGET", XS_SET_TARGET);
    P("XS_RESET_WATCHES", XS_RESET_WATCHES);
    P("XS_DIRECTORY_PART", XS_DIRECTORY_PART);
    P("XS_TYPE_COUNT", XS_TYPE_COUNT);
    P("XS_INVALID", XS_INVALID);
    P("xsd_errors.len", sizeof(xsd_errors) / sizeof(xsd_errors[0]));
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        printf("xsd_errors[%zu] %s\n", i, xsd_errors[i].errstring);
    P("cons.size", sizeof(struct xencons_interface));
    P("cons.in", offsetof(struct xencons_interface, in));
    P("cons.out", offsetof(struct xencons_interface, out));
    P("cons.in_cons", offsetof(struct xencons_interface, in_cons));
    P("cons.in_prod", offsetof(struct xencons_interface, in_prod));
    P("cons.out_cons", offsetof(struct xencons_interface, out_cons));
    P("cons.out_prod", offsetof(struct xencons_interface, out_prod));
    P("cons.in_len", sizeof(((struct xencons_interface *)0)->in));
    P("cons.out_len", sizeof(((struct xencons_interface *)0)->out));
    return 0;
}
"#;

#[test]
fn xs_wire_and_console_match_c_headers() {
    let program = CProgram {
        name: "layout_xs_console",
        header: "/usr/include/xen/io/xs_wire.h",
        source: C_SRC,
        if_missing: IfMissing::Skip,
    };
    type X = XenstoreDomainInterface;
    let rust: Vec<(&str, usize)> = vec![
        ("sockmsg.size", size_of::<XsdSockmsg>()),
        ("sockmsg.type", offset_of!(XsdSockmsg, type_)),
        ("sockmsg.req_id", offset_of!(XsdSockmsg, req_id)),
        ("sockmsg.tx_id", offset_of!(XsdSockmsg, tx_id)),
        ("sockmsg.len", offset_of!(XsdSockmsg, len)),
        ("xs.size", size_of::<X>()),
        ("xs.req", offset_of!(X, req)),
        ("xs.rsp", offset_of!(X, rsp)),
        ("xs.req_cons", offset_of!(X, req_cons)),
        ("xs.req_prod", offset_of!(X, req_prod)),
        ("xs.rsp_cons", offset_of!(X, rsp_cons)),
        ("xs.rsp_prod", offset_of!(X, rsp_prod)),
        ("xs.server_features", offset_of!(X, server_features)),
        ("xs.connection", offset_of!(X, connection)),
        ("xs.error", offset_of!(X, error)),
        ("XENSTORE_RING_SIZE", XENSTORE_RING_SIZE),
        ("XENSTORE_PAYLOAD_MAX", XENSTORE_PAYLOAD_MAX),
        ("XENSTORE_ABS_PATH_MAX", XENSTORE_ABS_PATH_MAX),
        ("XENSTORE_REL_PATH_MAX", XENSTORE_REL_PATH_MAX),
        (
            "XENSTORE_SERVER_FEATURE_RECONNECTION",
            XENSTORE_SERVER_FEATURE_RECONNECTION as usize,
        ),
        (
            "XENSTORE_SERVER_FEATURE_ERROR",
            XENSTORE_SERVER_FEATURE_ERROR as usize,
        ),
        ("XENSTORE_CONNECTED", XENSTORE_CONNECTED as usize),
        ("XENSTORE_RECONNECT", XENSTORE_RECONNECT as usize),
        ("XENSTORE_ERROR_NONE", XENSTORE_ERROR_NONE as usize),
        ("XENSTORE_ERROR_COMM", XENSTORE_ERROR_COMM as usize),
        ("XENSTORE_ERROR_RINGIDX", XENSTORE_ERROR_RINGIDX as usize),
        ("XENSTORE_ERROR_PROTO", XENSTORE_ERROR_PROTO as usize),
        ("XS_CONTROL", XsdSockmsgType::Control as usize),
        ("XS_DIRECTORY", XsdSockmsgType::Directory as usize),
        ("XS_READ", XsdSockmsgType::Read as usize),
        ("XS_GET_PERMS", XsdSockmsgType::GetPerms as usize),
        ("XS_WATCH", XsdSockmsgType::Watch as usize),
        ("XS_UNWATCH", XsdSockmsgType::Unwatch as usize),
        (
            "XS_TRANSACTION_START",
            XsdSockmsgType::TransactionStart as usize,
        ),
        (
            "XS_TRANSACTION_END",
            XsdSockmsgType::TransactionEnd as usize,
        ),
        ("XS_INTRODUCE", XsdSockmsgType::Introduce as usize),
        ("XS_RELEASE", XsdSockmsgType::Release as usize),
        ("XS_GET_DOMAIN_PATH", XsdSockmsgType::GetDomainPath as usize),
        ("XS_WRITE", XsdSockmsgType::Write as usize),
        ("XS_MKDIR", XsdSockmsgType::Mkdir as usize),
        ("XS_RM", XsdSockmsgType::Rm as usize),
        ("XS_SET_PERMS", XsdSockmsgType::SetPerms as usize),
        ("XS_WATCH_EVENT", XsdSockmsgType::WatchEvent as usize),
        ("XS_ERROR", XsdSockmsgType::Error as usize),
        (
            "XS_IS_DOMAIN_INTRODUCED",
            XsdSockmsgType::IsDomainIntroduced as usize,
        ),
        ("XS_RESUME", XsdSockmsgType::Resume as usize),
        ("XS_SET_TARGET", XsdSockmsgType::SetTarget as usize),
        ("XS_RESET_WATCHES", XsdSockmsgType::ResetWatches as usize),
        ("XS_DIRECTORY_PART", XsdSockmsgType::DirectoryPart as usize),
        ("XS_TYPE_COUNT", XS_TYPE_COUNT as usize),
        ("XS_INVALID", XS_INVALID as usize),
        ("cons.size", size_of::<XenconsInterface>()),
        ("cons.in", offset_of!(XenconsInterface, in_)),
        ("cons.out", offset_of!(XenconsInterface, out)),
        ("cons.in_cons", offset_of!(XenconsInterface, in_cons)),
        ("cons.in_prod", offset_of!(XenconsInterface, in_prod)),
        ("cons.out_cons", offset_of!(XenconsInterface, out_cons)),
        ("cons.out_prod", offset_of!(XenconsInterface, out_prod)),
        ("cons.in_len", XENCONS_IN_SIZE),
        ("cons.out_len", XENCONS_OUT_SIZE),
    ];
    let mut expected = Expected::default();
    for (name, value) in rust {
        expected.value(name, value);
    }
    expected.value("xsd_errors.len", XSD_ERRORS.len());
    for (i, name) in XSD_ERRORS.iter().enumerate() {
        expected.value(format!("xsd_errors[{i}]"), name);
    }
    if let Some(checked) = c_layout::check(&program, &expected) {
        assert_eq!(
            checked,
            61 + XSD_ERRORS.len(),
            "60 numbers, the error count, the errors"
        );
    }
}
