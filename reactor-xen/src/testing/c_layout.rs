//! Checks hand-written ABI structs against Xen's C headers (libxen-dev).
//!
//! A layout test writes a small C program that prints one `key value` line
//! per size, offset or constant (the key may contain spaces, the value may
//! not), lists the same keys with the Rust values in an [`Expected`], and
//! calls [`check`]. That compiles the program with `$CC` (else `cc`) as
//! `-std=gnu11 -Wall -Werror`, runs it, and asserts that every key C printed
//! has a Rust value, every Rust value has a key C printed, and the two agree.
//!
//! # Examples
//!
//! ```no_run
//! use ringlet_xen::abi::event_channel::EvtchnSend;
//! use ringlet_xen::testing::c_layout::{check, CProgram, Expected, IfMissing};
//!
//! let program = CProgram {
//!     name: "evtchn_send",
//!     header: "/usr/include/xen/event_channel.h",
//!     source: r#"
//!         #include <stdio.h>
//!         #include <xen/xen.h>
//!         #include <xen/event_channel.h>
//!         int main(void) {
//!             printf("size %zu\n", sizeof(struct evtchn_send));
//!             return 0;
//!         }
//!     "#,
//!     if_missing: IfMissing::Skip,
//! };
//! let mut rust = Expected::default();
//! rust.value("size", core::mem::size_of::<EvtchnSend>());
//! if let Some(checked) = check(&program, &rust) {
//!     assert_eq!(checked, 1);
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::format;
use std::path::Path;
use std::process::Command;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::vec::Vec;
use std::{eprintln, println};

/// What [`check`] does when the C compiler or the Xen header is not installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing {
    /// Panic, saying what to install: a layout check that silently skips
    /// proves nothing.
    Fail,
    /// Print why on stderr and check nothing.
    Skip,
}

/// A C program that prints `key value` lines.
#[derive(Clone, Copy, Debug)]
pub struct CProgram<'a> {
    /// Names the temporary files and appears in messages.
    pub name: &'a str,
    /// A header the program includes; its absence means libxen-dev is not
    /// installed.
    pub header: &'a str,
    /// The C source.
    pub source: &'a str,
    /// What to do when the compiler or `header` is missing.
    pub if_missing: IfMissing,
}

/// Why the C side could not be had.
#[derive(Debug)]
enum Unavailable {
    /// `header` does not exist.
    Header(String),
    /// The compiler could not be started.
    Compiler(String, std::io::Error),
}

impl Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Header(h) => write!(
                f,
                "{h} is missing: install libxen-dev (`apt-get install libxen-dev`; \
                 `cargo xtask test` does it)"
            ),
            Unavailable::Compiler(cc, e) => write!(
                f,
                "cannot run the C compiler `{cc}` ({e}): install gcc \
                 (`apt-get install gcc`; `cargo xtask test` does it) or set CC"
            ),
        }
    }
}

impl CProgram<'_> {
    /// Compiles and runs the program; what it printed, by key.
    ///
    /// # Panics
    ///
    /// If the program does not compile, fails, or prints a line that is not
    /// `key value` or a key twice.
    fn run(&self) -> Result<BTreeMap<String, String>, Unavailable> {
        if !Path::new(self.header).exists() {
            return Err(Unavailable::Header(self.header.to_string()));
        }
        // One directory per run: tests of one process run in parallel.
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringlet-c-layout-{}-{}-{}",
            self.name,
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        let src = dir.join(format!("{}.c", self.name));
        let exe = dir.join(self.name);
        std::fs::write(&src, self.source).expect("write the C source");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let compiled = Command::new(&cc)
            .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
            .arg(&exe)
            .arg(&src)
            .output()
            .map_err(|e| Unavailable::Compiler(cc.clone(), e))?;
        assert!(
            compiled.status.success(),
            "{cc} failed on the {} program:\n{}",
            self.name,
            String::from_utf8_lossy(&compiled.stderr)
        );
        let out = Command::new(&exe).output().expect("run the layout program");
        assert!(out.status.success(), "the {} program failed", self.name);
        std::fs::remove_dir_all(&dir).expect("remove the temporary directory");
        let text = String::from_utf8(out.stdout).expect("UTF-8 output");
        let mut printed = BTreeMap::new();
        for line in text.lines() {
            let (key, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("`{line}` is not a `key value` line"));
            assert!(
                printed.insert(key.to_string(), value.to_string()).is_none(),
                "C printed {key} twice"
            );
        }
        Ok(printed)
    }
}

/// The Rust side: values keyed as the C program prints them. A key may be
/// given more than once (say a constant and the enum variant that mirrors
/// it); each value is checked.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    values: Vec<(String, String)>,
}

impl Expected {
    /// Expects C to print `key` with `value` (compared as the decimal text
    /// `Display` gives, so integers of any width and sign compare alike).
    pub fn value(&mut self, key: impl Into<String>, value: impl Display) {
        self.values.push((key.into(), value.to_string()));
    }

    /// Compares with what C printed: `Ok(number of values checked)`, or one
    /// line per disagreement (a different value, a key only C printed, a key
    /// only Rust has).
    pub fn compare(&self, printed: &BTreeMap<String, String>) -> Result<usize, Vec<String>> {
        let mut bad = Vec::new();
        for (key, rust) in &self.values {
            match printed.get(key) {
                Some(c) if c == rust => {}
                Some(c) => bad.push(format!("{key}: C {c}, Rust {rust}")),
                None => bad.push(format!("{key}: Rust {rust}, C did not print it")),
            }
        }
        for (key, c) in printed {
            if !self.values.iter().any(|(k, _)| k == key) {
                bad.push(format!("{key}: C {c}, no Rust value"));
            }
        }
        if bad.is_empty() {
            Ok(self.values.len())
        } else {
            Err(bad)
        }
    }
}

/// Runs `program` and compares its output with `rust`; the number of values
/// checked (printed on stdout too), or `None` when skipped.
///
/// # Panics
///
/// On any disagreement (listing them all), if the program does not compile
/// or run, and, with [`IfMissing::Fail`], if the compiler or header is
/// missing.
pub fn check(program: &CProgram<'_>, rust: &Expected) -> Option<usize> {
    let printed = printed(program)?;
    match rust.compare(&printed) {
        Ok(checked) => {
            println!("{}: {checked} values agree with C", program.name);
            Some(checked)
        }
        Err(bad) => panic!(
            "{}: the Rust ABI differs from Xen's C headers:\n{}",
            program.name,
            bad.join("\n")
        ),
    }
}

/// Compiles and runs `program`; what it printed, by key, or `None` when
/// skipped. For tests of the comparison itself (see [`Expected::compare`]).
///
/// # Panics
///
/// As [`check`], except that nothing is compared.
pub fn printed(program: &CProgram<'_>) -> Option<BTreeMap<String, String>> {
    match program.run() {
        Ok(printed) => Some(printed),
        Err(why) => match program.if_missing {
            IfMissing::Fail => panic!("{}: {why}", program.name),
            IfMissing::Skip => {
                eprintln!("skipped {}: {why}", program.name);
                None
            }
        },
    }
}
