//! Checks the blkif ABI's sizes and offsets against libxen-dev's
//! `xen/io/blkif.h`, by compiling a small C program with the system `cc`.
//! Skipped (with a message) when the header or a C compiler is missing.

use std::mem::{offset_of, size_of};
use std::process::Command;

use ringlet_storage::blkif::{IndirectRequest, Request, Response, Segment, SLOT_SIZE};

const PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/blkif.h>
#define P(x) printf("%s %zu\n", #x, (size_t)(x))
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
    P(-BLKIF_RSP_ERROR); P(-BLKIF_RSP_EOPNOTSUPP);
    P(VDISK_CDROM); P(VDISK_REMOVABLE); P(VDISK_READONLY);
    return 0;
}
"#;

#[test]
fn blkif_layout_matches_libxen_dev() {
    if !std::path::Path::new("/usr/include/xen/io/blkif.h").exists() {
        eprintln!("skipped: /usr/include/xen/io/blkif.h missing (install libxen-dev)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ringlet-blkif-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("blkif.c");
    let bin = dir.join("blkif");
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
    let got: Vec<usize> = text
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    use ringlet_storage::blkif as b;
    let want = [
        size_of::<Segment>(),
        offset_of!(Segment, first_sect),
        offset_of!(Segment, last_sect),
        size_of::<Request>(),
        offset_of!(Request, nr_segments),
        offset_of!(Request, handle),
        offset_of!(Request, id),
        offset_of!(Request, sector_number),
        offset_of!(Request, seg),
        size_of::<IndirectRequest>(),
        offset_of!(IndirectRequest, indirect_op),
        offset_of!(IndirectRequest, nr_segments),
        offset_of!(IndirectRequest, id),
        offset_of!(IndirectRequest, sector_number),
        offset_of!(IndirectRequest, handle),
        offset_of!(IndirectRequest, indirect_grefs),
        size_of::<Response>(),
        offset_of!(Response, operation),
        offset_of!(Response, status),
        SLOT_SIZE,
        b::SEGMENTS_PER_REQUEST_MAX,
        b::INDIRECT_PAGES_PER_REQUEST_MAX,
        b::OP_READ as usize,
        b::OP_WRITE as usize,
        b::OP_WRITE_BARRIER as usize,
        b::OP_FLUSH_DISKCACHE as usize,
        b::OP_INDIRECT as usize,
        -b::RSP_ERROR as usize,
        -b::RSP_EOPNOTSUPP as usize,
        b::VDISK_CDROM as usize,
        b::VDISK_REMOVABLE as usize,
        b::VDISK_READONLY as usize,
    ];
    assert_eq!(got, want, "C says:\n{text}");
}
