//! dom0's side on the software Xen (hosted builds only): the two vbds the
//! real scenario's xl config gives, served by the sim's blkback.
//!
//! xvda holds a small tar built here ([`FILES`]); xvdb is a zeroed
//! scratch disk of [`SCRATCH_BYTES`]. `tests/sim.rs` runs the hosted
//! binary and checks its sha256 lines against these files.

use alloc::vec;
use alloc::vec::Vec;

use ringlet::executor::spawn;
use ringlet::xen::hypervisor::DomId;
use ringlet::xen::sim::xenbus::DeviceSpec;
use ringlet::xen::sim::SimXen;
use ringlet_storage::sim::{Backing, Blkback, BlkbackConfig};

use crate::{XVDA, XVDB};

/// The scratch disk's size: the default pattern range (1 MiB + 8 MiB) and
/// 1 MiB untouched after it.
pub(crate) const SCRATCH_BYTES: usize = 10 << 20;

/// The files of the image: (path, length, byte formula seed). Byte `i` of
/// a file is `(i * 31 + seed) % 251`, except `hello.txt`.
const FILES: &[(&str, usize, u32)] = &[
    ("empty", 0, 0),
    ("dir/sub/deeper/data.bin", 100_000, 1),
    ("name with spaces & 'quotes'.txt", 1000, 2),
    ("données/été.txt", 513, 3),
    (
        "long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/file.txt",
        4096,
        4,
    ),
];

fn contents(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| ((i * 31 + seed) % 251) as u8)
        .collect()
}

fn image() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data)
            .expect("appending to an in-memory tar");
    };
    add("hello.txt", b"hello\n");
    for &(path, len, seed) in FILES {
        add(path, &contents(len, seed));
    }
    b.into_inner().expect("finishing an in-memory tar")
}

/// Adds xvda and xvdb to domain `front` as libxl would and serves them
/// from dom0 until the domain goes.
pub(crate) fn provide(sim: &SimXen, front: DomId) {
    let disks = [
        (
            XVDA,
            Backing::Mem(image()),
            BlkbackConfig {
                read_only: true,
                ..BlkbackConfig::default()
            },
        ),
        (
            XVDB,
            Backing::Mem(vec![0; SCRATCH_BYTES]),
            BlkbackConfig::default(),
        ),
    ];
    for (devid, backing, config) in disks {
        let paths = sim.add_device(&DeviceSpec::new("vbd", front, devid));
        let sim = sim.clone();
        spawn(async move {
            if let Err(e) = Blkback::serve_xenbus(sim, paths, backing, config).await {
                log::error!("dom0: blkback for vbd {devid}: {e}");
            }
        })
        .detach();
    }
}
