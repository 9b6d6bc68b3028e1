//! dom0's side of a hosted httpd world on the software Xen: the vbd and
//! the vif every hosted run (`cargo run -p ringlet-httpd`), the sim tests
//! and `cargo xtask bench httpd` give their guests.
//!
//! Both functions spawn the backend on the current executor (call them
//! from a task, or inside `Executor::block_on`); the backends run until the
//! world or the frontend ends them.

use alloc::vec::Vec;

use ringlet::xen::hypervisor::DomId;
use ringlet::xen::sim::xenbus::DeviceSpec;
use ringlet::xen::sim::SimXen;
use ringlet_executor::spawn;
use ringlet_net::netfront::Mac;
use ringlet_net::sim_netback::{
    add_vif, Bridge, Netback, NetbackConfig, NetbackError, NetbackStatsHandle,
};
use ringlet_storage::sim::{Backing, Blkback, BlkbackConfig};

/// The vbd id of xvda, the disk httpd serves its site from.
pub const VBD_XVDA: u32 = 51712;

/// Gives `dom` the vbd xvda, served by dom0's sim blkback from `image`.
pub fn add_disk(sim: &SimXen, dom: DomId, image: Vec<u8>) {
    let vbd = sim.add_device(&DeviceSpec::new("vbd", dom, VBD_XVDA));
    spawn(Blkback::serve_xenbus(
        sim.clone(),
        vbd,
        Backing::Mem(image),
        BlkbackConfig::default(),
    ))
    .detach();
}

/// Gives `dom` vif 0 with `mac`, served by a sim netback on `bridge`;
/// returns the netback's counters.
///
/// # Errors
/// [`NetbackError`] when the bridge has no port left.
pub fn add_nic(
    sim: &SimXen,
    bridge: &Bridge,
    dom: DomId,
    mac: Mac,
) -> Result<NetbackStatsHandle, NetbackError> {
    let paths = add_vif(sim, dom, 0, mac);
    let back = Netback::new(sim, bridge, paths, NetbackConfig::default())?;
    let stats = back.stats();
    spawn(back.run()).detach();
    Ok(stats)
}
