//! Checks the blkif ABI's sizes and offsets against libxen-dev's
//! `xen/io/blkif.h`, by compiling a small C program
//! (`ringlet_xen::testing::c_layout`). Skipped (with a message) when the
//! header or a C compiler is missing.

use std::mem::{offset_of, size_of};

use ringlet_storage::blkif::{self as b, IndirectRequest, Request, Response, Segment};
use ringlet_xen::testing::c_layout::{self, CProgram, Expected, IfMissing};

const PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/blkif.h>
#define P(x) printf("%s %lld\n", #x, (long long)(x))
int main(void) {
    P(sizeof(struct blkif_request_segment));
    P(offsetof(struct blkif_request_segment, first_sect));
    P(offsetof(struct blkif_request_segment, last_sect));
    P(sizeof(struct blkif_request));
    P(offsetof(struct blkif_request, nr_segments));
    P(offsetof(struct blkif_request, handle));
    P(offsetof(struct blkif_request, id));
    P(offsetof(struct blkif_request, sector_number));
    P(offsetof(struct blkif_request, seg));
    P(sizeof(struct blkif_request_indirect));
    P(offsetof(struct blkif_request_indirect, indirect_op));
    P(offsetof(struct blkif_request_indirect, nr_segments));
    P(offsetof(struct blkif_request_indirect, id));
    P(offsetof(struct blkif_request_indirect, sector_number));
    P(offsetof(struct blkif_request_indirect, handle));
    P(offsetof(struct blkif_request_indirect, indirect_grefs));
    P(sizeof(struct blkif_response));
    P(offsetof(struct blkif_response, operation));
    P(offsetof(struct blkif_response, status));
    P(sizeof(union blkif_sring_entry));
    P(BLKIF_MAX_SEGMENTS_PER_REQUEST);
    P(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    P(BLKIF_OP_READ); P(BLKIF_OP_WRITE); P(BLKIF_OP_WRITE_BARRIER);
    P(BLKIF_OP_FLUSH_DISKCACHE); P(BLKIF_OP_INDIRECT);
    P(BLKIF_RSP_ERROR); P(BLKIF_RSP_EOPNOTSUPP);
    P(VDISK_CDROM); P(VDISK_REMOVABLE); P(VDISK_READONLY);
    return 0;
}
"#;

#[test]
fn blkif_layout_matches_libxen_dev() {
    let program = CProgram {
        name: "blkif_layout",
        header: "/usr/include/xen/io/blkif.h",
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
        ($c:literal, $t:ty, $($f:ident),+ $(,)?) => {
            $( rust.value(
                concat!("offsetof(struct ", $c, ", ", stringify!($f), ")"),
                offset_of!($t, $f),
            ); )+
        };
    }
    size!("blkif_request_segment", Segment);
    off!("blkif_request_segment", Segment, first_sect, last_sect);
    size!("blkif_request", Request);
    off!(
        "blkif_request",
        Request,
        nr_segments,
        handle,
        id,
        sector_number,
        seg
    );
    size!("blkif_request_indirect", IndirectRequest);
    off!(
        "blkif_request_indirect",
        IndirectRequest,
        indirect_op,
        nr_segments,
        id,
        sector_number,
        handle,
        indirect_grefs
    );
    size!("blkif_response", Response);
    off!("blkif_response", Response, operation, status);
    rust.value("sizeof(union blkif_sring_entry)", b::SLOT_SIZE);
    rust.value(
        "BLKIF_MAX_SEGMENTS_PER_REQUEST",
        b::SEGMENTS_PER_REQUEST_MAX,
    );
    rust.value(
        "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST",
        b::INDIRECT_PAGES_PER_REQUEST_MAX,
    );
    rust.value("BLKIF_OP_READ", b::OP_READ);
    rust.value("BLKIF_OP_WRITE", b::OP_WRITE);
    rust.value("BLKIF_OP_WRITE_BARRIER", b::OP_WRITE_BARRIER);
    rust.value("BLKIF_OP_FLUSH_DISKCACHE", b::OP_FLUSH_DISKCACHE);
    rust.value("BLKIF_OP_INDIRECT", b::OP_INDIRECT);
    rust.value("BLKIF_RSP_ERROR", b::RSP_ERROR);
    rust.value("BLKIF_RSP_EOPNOTSUPP", b::RSP_EOPNOTSUPP);
    rust.value("VDISK_CDROM", b::VDISK_CDROM);
    rust.value("VDISK_REMOVABLE", b::VDISK_REMOVABLE);
    rust.value("VDISK_READONLY", b::VDISK_READONLY);
    if let Some(checked) = c_layout::check(&program, &rust) {
        assert_eq!(checked, 32);
    }
}
