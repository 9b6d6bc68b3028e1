//! Traps and the last words of a failing guest: the exception handler, the
//! upcall handler, the panic handler and the crash path.
//!
//! Every CPU exception is fatal: its vector, error code, RIP and CR2 go to
//! port 0xe9 and to the crash console (the PV console once it is up), then
//! the domain shuts down with `SHUTDOWN_crash`. A panic does the same with
//! its message. The upcall handler only acknowledges the interrupt (LAPIC
//! EOI); the event-channel demux runs later, in the executor's context.

use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use super::{console, cpu, lapic, sched};
use crate::hypervisor::ShutdownReason;

/// Bytes of a crash report kept for the crash console (the rest of a longer
/// message still reaches port 0xe9).
pub const CRASH_REPORT_BYTES: usize = 1024;

/// What the CPU and the stubs in [`super::cpu`] push for an exception.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// The vector (0–31).
    pub vector: u64,
    /// The CPU's error code, or 0 when the exception has none.
    pub error_code: u64,
    /// Where the exception happened.
    pub rip: u64,
    /// Code segment.
    pub cs: u64,
    /// Flags.
    pub rflags: u64,
    /// Stack pointer at the exception.
    pub rsp: u64,
    /// Stack segment.
    pub ss: u64,
}

const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 error",
    "alignment check",
    "machine check",
    "SIMD error",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Upcalls taken since boot (for diagnostics).
pub static UPCALLS: AtomicU64 = AtomicU64::new(0);

/// A writer of crash reports besides port 0xe9, e.g. the PV console.
pub type CrashConsole = fn(&[u8]);

static CRASH_CONSOLE: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static CRASHING: AtomicBool = AtomicBool::new(false);

/// Sends crash reports (panics, exceptions) to `console` too, after port 0xe9.
/// `console` MUST NOT block, allocate or panic.
pub fn set_crash_console(console: CrashConsole) {
    CRASH_CONSOLE.store(console as *mut (), Ordering::Release);
}

/// A fixed buffer for one crash report.
struct Report {
    bytes: [u8; CRASH_REPORT_BYTES],
    len: usize,
}

impl fmt::Write for Report {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        console::write_bytes(s.as_bytes());
        let room = CRASH_REPORT_BYTES - self.len;
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Writes `message` to port 0xe9 and the crash console, then crashes the
/// domain. A second crash while reporting the first skips the crash console.
pub fn crash(message: fmt::Arguments<'_>) -> ! {
    cpu::cli();
    let first = !CRASHING.swap(true, Ordering::AcqRel);
    let mut report = Report {
        bytes: [0; CRASH_REPORT_BYTES],
        len: 0,
    };
    let _ = report.write_str("ringlet: ");
    let _ = report.write_fmt(message);
    let _ = report.write_str("\n");
    if first {
        let hook = CRASH_CONSOLE.load(Ordering::Acquire);
        if !hook.is_null() {
            // SAFETY: only `set_crash_console` stores here, always a
            // `CrashConsole` fn pointer.
            let hook: CrashConsole = unsafe { core::mem::transmute::<*mut (), CrashConsole>(hook) };
            hook(&report.bytes[..report.len]);
        }
    }
    sched::shutdown(ShutdownReason::Crash);
    cpu::halt_forever()
}

/// The exception stubs' Rust half: report and crash.
#[unsafe(no_mangle)]
extern "C" fn ringlet_pvh_exception(frame: &ExceptionFrame) -> ! {
    let name = EXCEPTION_NAMES
        .get(frame.vector as usize)
        .copied()
        .unwrap_or("unknown");
    crash(format_args!(
        "exception {} ({}) error {:#x} rip {:#x} rsp {:#x} cr2 {:#x}",
        frame.vector,
        name,
        frame.error_code,
        frame.rip,
        frame.rsp,
        cpu::cr2()
    ))
}

/// Upcalls that interrupted the idle `hlt` itself, i.e. were delivered in
/// `sti`'s shadow (for diagnostics; 0 on hardware that honours the shadow).
pub static UPCALLS_AT_HLT: AtomicU64 = AtomicU64::new(0);

/// The upcall stub's Rust half: acknowledge, and count. `at_hlt` is 1 when
/// the stub found the interrupted instruction to be the idle `hlt` (and
/// moved the return address past it).
#[unsafe(no_mangle)]
extern "C" fn ringlet_pvh_upcall(at_hlt: u64) {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    if at_hlt != 0 {
        UPCALLS_AT_HLT.fetch_add(1, Ordering::Relaxed);
    }
    lapic::eoi();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crash(format_args!("panic: {info}"))
}
