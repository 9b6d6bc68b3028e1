//! The global console logger (one per process, so one test in this binary):
//! records before a console is attached go to the early sink, after it to
//! the PV console; levels filter.
#![cfg(feature = "sim")]

use std::sync::Mutex;

use ringlet_executor::Executor;
use ringlet_xen::console::{
    attach_global, install_logger, level_from_cmdline, write_global, AttachError, Console,
};
use ringlet_xen::guest::Guest;
use ringlet_xen::platform::XenPlatform;
use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};

static EARLY: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn early(bytes: &[u8]) {
    EARLY.lock().unwrap().extend_from_slice(bytes);
}

#[test]
fn global_logger_goes_early_then_to_the_console() {
    let sim = SimXen::new(SimConfig::new(9).quiet());
    let d = sim.create_domain(DomainConfig::new("guest").cmdline("loglevel=debug"));
    let guest = Guest::new(d.as_hypervisor());
    let level = level_from_cmdline(guest.hypervisor().cmdline());
    assert_eq!(level, log::LevelFilter::Debug);
    install_logger(level, Some(early)).unwrap();

    log::info!("before the console");
    assert_eq!(EARLY.lock().unwrap().as_slice(), b"before the console\n");

    let ex = Executor::new(XenPlatform::new(guest.clone()));
    attach_global(Console::new(&guest).unwrap()).unwrap();
    assert!(matches!(
        attach_global(Console::new(&guest).unwrap()),
        Err(AttachError::AlreadyAttached(_))
    ));
    ex.block_on(async {
        log::debug!("debug {}", 1);
        log::trace!("filtered out");
        write_global(b"raw line\n");
        // From another thread: the early sink, never the console.
        std::thread::spawn(|| log::warn!("from elsewhere"))
            .join()
            .unwrap();
    });
    let out = String::from_utf8(d.console_output()).unwrap();
    assert_eq!(out, "DEBUG: debug 1\nraw line\n");
    assert_eq!(
        EARLY.lock().unwrap().as_slice(),
        b"before the console\nWARN: from elsewhere\n"
    );
}
