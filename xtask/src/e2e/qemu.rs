//! One boot of Xen and dom0 inside qemu-system-x86_64 (software emulation):
//! the command line, the serial console logged and parsed live, and a
//! host-side deadline so the run ends even if everything hangs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::dom0::Dom0;
use super::report::Report;
use super::watch::watch;
use crate::Error;

/// QEMU's CPU: SVM with nested paging (Xen needs HAP for PVH guests);
/// RDRAND, or dom0's entropy takes 87 s. `-cpu max` crashes dom0 (SMAP).
pub const CPU: &str = "qemu64,+svm,+npt,+rdrand";
/// QEMU's memory, MiB.
pub const MEMORY_MIB: u32 = 2048;
/// Xen's command line. One dom0 vCPU: the known emulator flake was not seen
/// with it, and dom0 work is serial anyway.
pub const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all \
                               dom0_mem=768M,max:768M dom0_max_vcpus=1";
/// dom0 kernel's command line.
pub const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen quiet";
/// How long dom0 may take to report ready (Xen boot, dom0 boot, toolstack).
pub const DOM0_READY_TIMEOUT: Duration = Duration::from_secs(180);

/// How a boot ended.
#[derive(Debug)]
pub struct Boot {
    /// What dom0 reported.
    pub report: Report,
    /// QEMU's exit status, if it exited by itself.
    pub exit_code: Option<i32>,
    /// Why the host ended the run, if it did.
    pub killed: Option<String>,
    /// From QEMU's start to dom0's ready line.
    pub dom0_ready_after: Option<Duration>,
    /// From QEMU's start to its end.
    pub elapsed: Duration,
    /// The serial log.
    pub log: PathBuf,
}

impl Boot {
    /// What QEMU's exit status says (isa-debug-exit writes (v << 1) | 1).
    pub fn exit_meaning(&self) -> String {
        if let Some(why) = &self.killed {
            return why.clone();
        }
        match self.exit_code {
            Some(1) => "dom0 reported: all passed".into(),
            Some(3) => "dom0 reported: some failed".into(),
            Some(5) => "dom0's watchdog ended the run".into(),
            Some(7) => "dom0's setup failed".into(),
            Some(0) => "Xen or dom0 rebooted or powered off without reporting".into(),
            Some(c) => format!("QEMU exited with status {c}"),
            None => "QEMU was killed by a signal".into(),
        }
    }
}

/// Boots Xen with dom0 and the per-run archive `extra_cpio`, logging the
/// serial console to `dir/serial.log`. Kills QEMU at `deadline` after its
/// start, or if dom0 is not ready after [`DOM0_READY_TIMEOUT`].
pub fn boot(
    dom0: &Dom0,
    extra_cpio: &[u8],
    dir: &Path,
    deadline: Duration,
    verbose: bool,
) -> Result<Boot, Error> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Linux unpacks concatenated archives: the cached dom0, then ours.
    let initrd = dir.join("initrd.cpio");
    concat(&[&dom0.cpio], extra_cpio, &initrd)?;
    for p in [&dom0.kernel, &initrd] {
        if p.to_string_lossy().contains(',') {
            return Err(format!(
                "{}: QEMU's -initrd cannot take a path with a comma",
                p.display()
            ));
        }
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", CPU, "-smp", "2"])
        .args(["-m", &MEMORY_MIB.to_string()])
        .args(["-display", "none", "-vga", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-no-reboot", "-nic", "none"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(&dom0.xen)
        .args(["-append", XEN_CMDLINE])
        .arg("-initrd")
        .arg(format!(
            "{} {DOM0_CMDLINE}{},{}",
            dom0.kernel.display(),
            extra_dom0_cmdline(),
            initrd.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let stderr_path = dir.join("qemu-stderr.log");
    let stderr = std::fs::File::create(&stderr_path)
        .map_err(|e| format!("{}: {e}", stderr_path.display()))?;
    cmd.stderr(stderr);
    std::fs::write(dir.join("qemu-command.txt"), format!("{cmd:?}\n"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;

    let log_path = dir.join("serial.log");
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    let watched = watch(
        child,
        started,
        &log_path,
        deadline,
        Some(DOM0_READY_TIMEOUT),
        verbose,
    )?;
    // The big concatenated archive is rebuilt each run; keep the small one.
    let _ = std::fs::remove_file(&initrd);
    std::fs::write(dir.join("run.cpio"), extra_cpio)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Boot {
        report: watched.report,
        exit_code: watched.exit_code,
        killed: watched.killed,
        dom0_ready_after: watched.dom0_ready_after,
        elapsed: watched.elapsed,
        log: log_path,
    })
}

/// `RINGLET_E2E_DOM0_APPEND`, for experiments: more dom0 kernel arguments.
fn extra_dom0_cmdline() -> String {
    match std::env::var("RINGLET_E2E_DOM0_APPEND") {
        Ok(extra) if !extra.contains(',') => format!(" {extra}"),
        _ => String::new(),
    }
}

fn concat(parts: &[&Path], tail: &[u8], out: &Path) -> Result<(), Error> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?,
    );
    for part in parts {
        let mut f = std::fs::File::open(part).map_err(|e| format!("{}: {e}", part.display()))?;
        std::io::copy(&mut f, &mut file).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    // The kernel looks for the next archive's magic at a 4-byte boundary.
    file.flush()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let written = file
        .get_ref()
        .metadata()
        .map_err(|e| format!("{}: {e}", out.display()))?
        .len();
    let pad = (4 - written % 4) % 4;
    file.write_all(&[0u8; 4][..pad as usize])
        .and_then(|()| file.write_all(tail))
        .and_then(|()| file.flush())
        .map_err(|e| format!("{}: {e}", out.display()))
}
