//! The net scenario's extra file (apps/netecho, issue 5): `net-echo`,
//! dom0's load generator (net-echo.c: 50 TCP connections held open at once
//! then echoing, and UDP datagrams), built static and self-tested here
//! against an echo server on the host's loopback.

use std::path::Path;
use std::process::Command;

use crate::Error;

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The scenario's `prepare`: net-echo, built and self-tested.
pub fn prepare(scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    let tool = scratch.join("net-echo");
    let source = scratch.join("net-echo.c");
    std::fs::write(&source, include_str!("net-echo.c"))
        .map_err(|e| format!("{}: {e}", source.display()))?;
    run(Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tool)
        .arg(&source))?;
    run(Command::new(&tool).arg("selftest"))?;
    let bytes = std::fs::read(&tool).map_err(|e| format!("{}: {e}", tool.display()))?;
    Ok(vec![("net-echo".into(), 0o755, bytes)])
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn prepare_builds_a_working_load_generator() {
        let dir = std::env::temp_dir().join(format!("ringlet-net-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = prepare(&dir).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "net-echo");
        assert!(files[0].2.starts_with(b"\x7fELF"));
        // Nothing listens on port 1 of the loopback: refused, exit 1.
        let out = Command::new(dir.join("net-echo"))
            .args(["conc", "127.0.0.1", "1", "2", "10", "2000"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
