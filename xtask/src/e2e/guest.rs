//! Building what goes into a run: guest images (Ringlet appliances and the
//! assembly fixtures) and the static dom0 helper.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::scenario::Guest;
use crate::{cargo, root, Error};

/// The target appliances are built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// Builds a scenario's guest; the ELF's path. `scratch` takes fixtures.
pub fn build(guest: Guest, scratch: &Path) -> Result<PathBuf, Error> {
    match guest {
        Guest::App(package) => build_app(package),
        Guest::Fixture(name) => build_fixture(name, scratch),
        Guest::Build(build) => build(scratch),
    }
}

/// `cargo build -p <package> --release --target x86_64-unknown-none`; the
/// path of the executable cargo reports.
pub fn build_app(package: &str) -> Result<PathBuf, Error> {
    let output = Command::new(cargo())
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "-p",
            package,
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build -p {package} --release --target {GUEST_TARGET} failed"
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    executable_of(&stdout, package).ok_or_else(|| {
        format!("cargo built {package} for {GUEST_TARGET} but reported no executable")
    })
}

/// Finds `"executable":"<path>"` in cargo's JSON messages for `package`'s
/// binary (the last one wins, as cargo reports in build order).
fn executable_of(json_lines: &str, package: &str) -> Option<PathBuf> {
    let id_needle = format!("\"name\":\"{package}\"");
    json_lines
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(&id_needle))
        .filter_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = start + l[start..].find('"')?;
            Some(PathBuf::from(l[start..end].replace("\\\\", "\\")))
        })
        .next_back()
}

/// Assembles xtask/fixtures/<name>.S with <name>.ld into a 32-bit ELF.
fn build_fixture(name: &str, scratch: &Path) -> Result<PathBuf, Error> {
    let fixtures = root().join("xtask/fixtures");
    let object = scratch.join(format!("{name}.o"));
    let elf = scratch.join(format!("{name}.elf"));
    run(Command::new("gcc")
        .args(["-m32", "-c", "-o"])
        .arg(&object)
        .arg(fixtures.join(format!("{name}.S"))))?;
    run(Command::new("ld")
        .args([
            "-m",
            "elf_i386",
            "--build-id=none",
            "--no-warn-rwx-segments",
            "-T",
        ])
        .arg(fixtures.join(format!("{name}.ld")))
        .arg("-o")
        .arg(&elf)
        .arg(&object))?;
    Ok(elf)
}

/// Writes a copy of `elf` without symbols or debug information (what a
/// domain is created from; program headers and the Xen note stay) to
/// `out`.
pub fn strip(elf: &Path, out: &Path) -> Result<(), Error> {
    run(Command::new("strip")
        .args(["--strip-all", "-o"])
        .arg(out)
        .arg(elf))
}

/// Builds the dom0 helper (xtask/fixtures/dom0-helper.c) as a static binary.
pub fn build_dom0_helper(scratch: &Path) -> Result<PathBuf, Error> {
    let out = scratch.join("ringlet-dom0");
    run(Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(root().join("xtask/fixtures/dom0-helper.c")))?;
    Ok(out)
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `cargo xtask build <app>`: builds an appliance and prints its ELF's path
/// and size. `<app>` is a directory name under apps/ or a package name.
pub fn build_command(args: &[String]) -> Result<(), Error> {
    let [app] = args else {
        return Err("usage: cargo xtask build <app>   (e.g. hello)".into());
    };
    let package = if app.starts_with("ringlet-") {
        app.clone()
    } else {
        format!("ringlet-{app}")
    };
    let elf = build_app(&package)?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let bytes = size(&elf)?;
    let stripped = elf.with_extension("stripped");
    strip(&elf, &stripped)?;
    let stripped_bytes = size(&stripped)?;
    println!("{}", elf.display());
    println!(
        "{bytes} bytes ({}) with debug information",
        human_bytes(bytes)
    );
    println!(
        "{stripped_bytes} bytes ({}) stripped: {}",
        human_bytes(stripped_bytes),
        stripped.display()
    );
    Ok(())
}

/// `12.3 KiB`, `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / KIB / KIB)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn executable_from_cargo_json() {
        let json = concat!(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/executor#ringlet-executor@0.1.0","target":{"kind":["lib"],"name":"ringlet_executor"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/apps/hello#ringlet-hello@0.1.0","target":{"kind":["bin"],"name":"ringlet-hello"},"executable":"/w/target/x86_64-unknown-none/release/ringlet-hello"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable_of(json, "ringlet-hello"),
            Some(PathBuf::from(
                "/w/target/x86_64-unknown-none/release/ringlet-hello"
            ))
        );
        assert_eq!(executable_of(json, "ringlet-executor"), None);
        assert_eq!(executable_of(json, "ringlet-httpd"), None);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(8 * 1024 + 512), "8.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
