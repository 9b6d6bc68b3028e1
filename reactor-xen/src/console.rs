//! The PV console: a writer into the console ring's `out[]` that never
//! blocks (a full ring drops bytes and counts them), and the `log` backend
//! over it.
//!
//! # Dropping instead of blocking
//!
//! A write that does not fit in the ring's free space is dropped whole (a
//! log line is never cut in the middle) and its bytes are counted. The next
//! write that finds room first writes `[N bytes dropped]\n`, so the reader
//! of the log sees where output went missing.
//!
//! # The global logger
//!
//! [`install_logger`] sets the `log` crate's logger once, with the level
//! (see [`level_from_cmdline`]) and an early sink (port 0xe9 on Xen) used
//! until [`attach_global`] hands it the [`Console`]. Each record is
//! formatted into a fixed [`LOG_LINE_MAX`]-byte buffer on the stack: no
//! allocation per line. The global console is only touched from the context
//! that attached it (the executor's); a record logged re-entrantly (while a
//! line is being written) or from another thread goes to the early sink.
#![allow(unsafe_code)]

use core::cell::{Cell, RefCell, UnsafeCell};
use core::fmt::{self, Write as _};
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};

use crate::abi::console::{XenconsInterface, XENCONS_OUT_SIZE};
use crate::evtchn::EventChannel;
use crate::guest::{DeviceRingError, Guest};
use crate::hypervisor::XenError;
use crate::page::SharedMem;
use crate::xenstore::ring::{ByteRing, Producer, RingMemory};
use crate::xenstore::wire::ProtocolError;

/// The longest log line, newline included; longer records are cut and end
/// with `...`.
pub const LOG_LINE_MAX: usize = 256;

/// Room for `[18446744073709551615 bytes dropped]\n`.
const REPORT_MAX: usize = 40;

/// Why the console could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The toolstack gave no console ring.
    NoRing(XenError),
    /// The console port could not be attached.
    Channel(DeviceRingError),
    /// The ring's indices are inconsistent.
    Ring(ProtocolError),
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleError::NoRing(e) => write!(f, "no console ring: {e}"),
            ConsoleError::Channel(e) => write!(f, "console port: {e}"),
            ConsoleError::Ring(e) => write!(f, "console ring: {e}"),
        }
    }
}

impl core::error::Error for ConsoleError {}

/// A small stack buffer that `write!` can format into; cuts what does not fit.
struct StackBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
    cut: bool,
}

impl<const N: usize> StackBuf<N> {
    fn new() -> Self {
        StackBuf {
            bytes: [0; N],
            len: 0,
            cut: false,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const N: usize> fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let take = s.len().min(N - self.len);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        self.cut |= take < s.len();
        Ok(())
    }
}

/// What one [`ConsoleWriter::write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the caller's data put in the ring (all of it, or 0).
    pub written: usize,
    /// Whether anything went into the ring (a report or the data): notify
    /// the backend.
    pub notify: bool,
}

/// The sans-IO core of the console: the producer end of `out[]` and the
/// drop counters.
#[derive(Debug)]
pub struct ConsoleWriter {
    prod: Producer,
    dropped_total: u64,
    unreported: u64,
}

impl ConsoleWriter {
    /// Takes over the producer index of the ring as it stands.
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the indices are inconsistent.
    pub fn attach<M: RingMemory>(ring: &ByteRing<'_, M>) -> Result<Self, ProtocolError> {
        Ok(ConsoleWriter {
            prod: Producer::attach(ring)?,
            dropped_total: 0,
            unreported: 0,
        })
    }

    /// Bytes dropped since the start because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped_total
    }

    /// Puts `bytes` in the ring if they fit whole, else drops and counts
    /// them. After a drop, the `[N bytes dropped]` report must go in first:
    /// data is written only together with it (so the report sits exactly
    /// where the gap is). An empty `bytes` writes just a pending report, if
    /// it fits. Never blocks.
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the backend's `out_cons` is out of
    /// range (nothing is written; the caller should stop using the ring).
    pub fn write<M: RingMemory>(
        &mut self,
        ring: &ByteRing<'_, M>,
        bytes: &[u8],
    ) -> Result<Written, ProtocolError> {
        let space = self.prod.space(ring)?;
        let mut report = StackBuf::<REPORT_MAX>::new();
        if self.unreported > 0 {
            let _ = writeln!(report, "[{} bytes dropped]", self.unreported);
        }
        if report.len + bytes.len() > space {
            self.dropped_total += bytes.len() as u64;
            self.unreported += bytes.len() as u64;
            return Ok(Written {
                written: 0,
                notify: false,
            });
        }
        for part in [report.as_bytes(), bytes] {
            let n = self.prod.write(ring, part)?;
            assert_eq!(n, part.len(), "space was checked");
        }
        self.unreported = 0;
        Ok(Written {
            written: bytes.len(),
            notify: report.len + bytes.len() > 0,
        })
    }

    /// Writes a pending `[N bytes dropped]` report if it fits now. Returns
    /// whether anything was written (notify the backend).
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn flush_report<M: RingMemory>(
        &mut self,
        ring: &ByteRing<'_, M>,
    ) -> Result<bool, ProtocolError> {
        self.write(ring, &[]).map(|w| w.notify)
    }
}

type Ring<'a> = ByteRing<'a, SharedMem<'a>>;

/// The guest's view of the console page: it produces `out`.
fn out_ring(mem: SharedMem<'_>) -> Ring<'_> {
    type C = XenconsInterface;
    ByteRing::new(
        mem.get(offset_of!(C, out), XENCONS_OUT_SIZE)
            .expect("out[] inside the page"),
        mem.atomic_u32(offset_of!(C, out_cons)),
        mem.atomic_u32(offset_of!(C, out_prod)),
    )
}

/// The PV console of a domain: writes never block; a full ring drops.
///
/// # Examples
/// ```
/// use ringlet_xen::console::{Console, ConsoleError};
/// use ringlet_xen::guest::Guest;
///
/// fn hello(guest: &Guest) -> Result<(), ConsoleError> {
///     let console = Console::new(guest)?;
///     console.write(b"hello, console\n");
///     Ok(())
/// }
/// ```
pub struct Console {
    guest: Guest,
    channel: EventChannel,
    writer: RefCell<ConsoleWriter>,
    /// The ring's indices went bad: everything goes to the early console.
    broken: Cell<bool>,
    /// Lines lost because the writer was busy (a re-entrant write).
    busy_drops: Cell<u64>,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("dropped", &self.dropped())
            .field("broken", &self.broken.get())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The console ring and port the toolstack set up for `guest`.
    ///
    /// # Errors
    /// [`ConsoleError`] if there is no ring, no usable port, or the ring's
    /// indices are inconsistent.
    pub fn new(guest: &Guest) -> Result<Console, ConsoleError> {
        let mem = guest.console_mem().map_err(ConsoleError::NoRing)?;
        let channel = guest.console_channel().map_err(ConsoleError::Channel)?;
        let writer = ConsoleWriter::attach(&out_ring(mem)).map_err(ConsoleError::Ring)?;
        Ok(Console {
            guest: guest.clone(),
            channel,
            writer: RefCell::new(writer),
            broken: Cell::new(false),
            busy_drops: Cell::new(0),
        })
    }

    /// Writes `bytes` to the console if they fit in the ring now; otherwise
    /// drops them (counted, reported later). Returns the bytes written.
    /// Never blocks, never allocates. If the ring's indices have gone bad,
    /// writes go to the early console instead.
    pub fn write(&self, bytes: &[u8]) -> usize {
        if self.broken.get() {
            self.early_write(bytes);
            return bytes.len();
        }
        let Ok(mut writer) = self.writer.try_borrow_mut() else {
            // Re-entered from inside a write (e.g. something logged while
            // notifying): never wait, never recurse.
            self.busy_drops.set(self.busy_drops.get() + 1);
            return 0;
        };
        let mem = self
            .guest
            .console_mem()
            .expect("the console page was there at connect");
        let r = writer.write(&out_ring(mem), bytes);
        drop(writer);
        match r {
            Ok(w) => {
                if w.notify {
                    // A failed notify only delays the output until the next one.
                    let _ = self.channel.notify();
                }
                w.written
            }
            Err(e) => {
                self.broken.set(true);
                let mut msg = StackBuf::<96>::new();
                let _ = writeln!(msg, "console ring broken ({e}); using the early console");
                self.early_write(msg.as_bytes());
                self.early_write(bytes);
                bytes.len()
            }
        }
    }

    /// Bytes dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.writer.try_borrow().map_or(0, |w| w.dropped())
    }

    /// Writes that found the console busy (re-entrant) and were dropped.
    pub fn busy_drops(&self) -> u64 {
        self.busy_drops.get()
    }

    /// Writes to the early console (port 0xe9 on Xen, stderr on the sim):
    /// the fallback before the ring is up or after it broke.
    pub fn early_write(&self, bytes: &[u8]) {
        self.guest.hypervisor().early_console_write(bytes);
    }

    /// Formats `record` as one line (at most [`LOG_LINE_MAX`] bytes, on the
    /// stack) and writes it.
    pub fn log_record(&self, record: &log::Record<'_>) -> usize {
        let line = format_line(record);
        self.write(line.as_bytes())
    }
}

/// `INFO` records as the bare message, others as `LEVEL: message`; cut to
/// [`LOG_LINE_MAX`] bytes with `...`; one trailing newline.
fn format_line(record: &log::Record<'_>) -> StackBuf<LOG_LINE_MAX> {
    let mut line = StackBuf::<LOG_LINE_MAX>::new();
    let _ = match record.level() {
        log::Level::Info => write!(line, "{}", record.args()),
        level => write!(line, "{level}: {}", record.args()),
    };
    let tail: &[u8] = if line.cut { b"...\n" } else { b"\n" };
    let end = line.len.min(LOG_LINE_MAX - tail.len());
    line.bytes[end..end + tail.len()].copy_from_slice(tail);
    line.len = end + tail.len();
    line
}

/// The level asked for on the kernel command line: `loglevel=` followed by
/// `off`, `error`, `warn`, `info`, `debug`, `trace` or a number, `0` (off)
/// to `5` (trace), a larger number meaning trace too (as Linux's
/// `loglevel=7` shows everything). The last `loglevel=` counts; `info` when
/// there is none or its word is not one of these.
pub fn level_from_cmdline(cmdline: &str) -> log::LevelFilter {
    let Some(v) = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("loglevel="))
        .next_back()
    else {
        return log::LevelFilter::Info;
    };
    match v.parse::<usize>() {
        Ok(n) => log::LevelFilter::iter()
            .nth(n)
            .unwrap_or(log::LevelFilter::Trace),
        Err(_) => v.parse().unwrap_or(log::LevelFilter::Info),
    }
}

// ---------------------------------------------------------------- global

/// A sink for finished lines: the early console. MUST NOT block, allocate
/// or log.
pub type LineSink = fn(&[u8]);

/// Why [`attach_global`] refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum AttachError {
    /// A console is already attached (it stays).
    AlreadyAttached(Console),
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a global console is already attached")
    }
}

impl core::error::Error for AttachError {}

/// The global console and logger state.
struct Global {
    /// Set while someone uses `console` (or attaches it).
    busy: AtomicBool,
    /// Set once `console` holds the console; never cleared.
    attached: AtomicBool,
    console: UnsafeCell<Option<Console>>,
    early: AtomicPtr<()>,
    level: AtomicU8,
    #[cfg(feature = "std")]
    owner: std::sync::OnceLock<std::thread::ThreadId>,
}

// SAFETY: `console` (which is neither Send nor Sync: it holds `Rc`s and
// `RefCell`s) is reached only through `Global::with_console`, which (a)
// admits one caller at a time (the `busy` flag, taken with an atomic swap),
// and (b) on std admits only the thread that attached it (`owner`), so its
// `Rc`s are never touched from two threads; without std there is one vCPU and
// no thread, only the interrupt handler, which the `busy` flag keeps out.
// `attach_global` writes `console` once, under `busy`, before `attached` is
// published (Release); readers check `attached` (Acquire) first.
unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    busy: AtomicBool::new(false),
    attached: AtomicBool::new(false),
    console: UnsafeCell::new(None),
    early: AtomicPtr::new(core::ptr::null_mut()),
    level: AtomicU8::new(log::LevelFilter::Info as u8),
    #[cfg(feature = "std")]
    owner: std::sync::OnceLock::new(),
};

impl Global {
    fn on_owner_thread(&self) -> bool {
        #[cfg(feature = "std")]
        {
            self.owner.get() == Some(&std::thread::current().id())
        }
        #[cfg(not(feature = "std"))]
        {
            true
        }
    }

    /// Runs `f` on the attached console, unless there is none, another
    /// caller is inside, or this is not the attaching thread.
    fn with_console<R>(&self, f: impl FnOnce(&Console) -> R) -> Option<R> {
        if !self.attached.load(Ordering::Acquire) || !self.on_owner_thread() {
            return None;
        }
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `attached` is set, so `console` was written and is never
        // written again; we hold `busy` and are on the owner thread (see the
        // `Sync` impl), so no other reference to it is in use.
        let console = unsafe { (*self.console.get()).as_ref() };
        let r = console.map(f);
        self.busy.store(false, Ordering::Release);
        r
    }

    fn early(&self) -> Option<LineSink> {
        let p = self.early.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: only `install_logger` stores here, always a `LineSink`
        // cast to a data pointer; on the targets Ringlet supports, fn and
        // data pointers have the same size and representation.
        Some(unsafe { core::mem::transmute::<*mut (), LineSink>(p) })
    }
}

/// Makes `console` the global console: the logger's output and
/// [`write_global`]'s. Call it from the executor's context (on std: the
/// thread that runs the executor); writes from elsewhere go to the early
/// sink.
///
/// # Errors
/// [`AttachError::AlreadyAttached`] (giving `console` back) if one is attached.
pub fn attach_global(console: Console) -> Result<(), AttachError> {
    if GLOBAL.attached.load(Ordering::Acquire) || GLOBAL.busy.swap(true, Ordering::Acquire) {
        return Err(AttachError::AlreadyAttached(console));
    }
    #[cfg(feature = "std")]
    {
        if GLOBAL.owner.set(std::thread::current().id()).is_err() {
            GLOBAL.busy.store(false, Ordering::Release);
            return Err(AttachError::AlreadyAttached(console));
        }
    }
    // SAFETY: not attached yet and we hold `busy`: nobody reads `console`.
    unsafe { *GLOBAL.console.get() = Some(console) };
    GLOBAL.attached.store(true, Ordering::Release);
    GLOBAL.busy.store(false, Ordering::Release);
    Ok(())
}

/// Writes `bytes` to the global console (dropping them if its ring is full),
/// or to the early sink if there is no console or it is busy. Usable as a
/// [`LineSink`].
pub fn write_global(bytes: &[u8]) {
    if GLOBAL.with_console(|c| c.write(bytes)).is_none() {
        if let Some(early) = GLOBAL.early() {
            early(bytes);
        }
    }
}

/// Bytes the global console dropped because its ring was full (0 if none
/// is attached, or when asked from another thread).
pub fn global_dropped() -> u64 {
    GLOBAL.with_console(Console::dropped).unwrap_or(0)
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() as u8 <= GLOBAL.level.load(Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(record);
        write_global(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the console logger for the `log` crate with `level` (e.g.
/// [`level_from_cmdline`]) and `early` as the sink until a console is
/// attached ([`attach_global`]).
///
/// # Errors
/// `log`'s error if another logger is installed (the level and early sink
/// are set anyway, for [`write_global`]).
pub fn install_logger(
    level: log::LevelFilter,
    early: Option<LineSink>,
) -> Result<(), log::SetLoggerError> {
    if let Some(e) = early {
        GLOBAL.early.store(e as *mut (), Ordering::Release);
    }
    GLOBAL.level.store(level as u8, Ordering::Relaxed);
    log::set_logger(&LOGGER)?;
    log::set_max_level(level);
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, AtomicU8};

    struct Page {
        out: [AtomicU8; XENCONS_OUT_SIZE],
        cons: AtomicU32,
        prod: AtomicU32,
    }

    fn page() -> alloc::boxed::Box<Page> {
        alloc::boxed::Box::new(Page {
            out: core::array::from_fn(|_| AtomicU8::new(0)),
            cons: AtomicU32::new(0),
            prod: AtomicU32::new(0),
        })
    }

    fn ring(p: &Page) -> ByteRing<'_, &[AtomicU8]> {
        ByteRing::new(&p.out[..], &p.cons, &p.prod)
    }

    /// The backend drains everything in the ring.
    fn drain(p: &Page) -> Vec<u8> {
        let cons = p.cons.load(Ordering::Relaxed);
        let prod = p.prod.load(Ordering::Relaxed);
        let v = (cons..prod)
            .map(|i| p.out[i as usize % XENCONS_OUT_SIZE].load(Ordering::Relaxed))
            .collect();
        p.cons.store(prod, Ordering::Relaxed);
        v
    }

    const NOTHING: Written = Written {
        written: 0,
        notify: false,
    };

    #[test]
    fn writes_and_wraps() {
        let p = page();
        let mut w = ConsoleWriter::attach(&ring(&p)).unwrap();
        let mut all = Vec::new();
        for i in 0..1000u32 {
            let line = alloc::format!("line {i}\n");
            let r = w.write(&ring(&p), line.as_bytes()).unwrap();
            assert_eq!(
                r,
                Written {
                    written: line.len(),
                    notify: true
                }
            );
            all.extend(drain(&p));
        }
        let expect: Vec<u8> = (0..1000u32)
            .flat_map(|i| alloc::format!("line {i}\n").into_bytes())
            .collect();
        assert_eq!(all, expect);
        assert!(
            p.prod.load(Ordering::Relaxed) as usize > 2 * XENCONS_OUT_SIZE,
            "wrapped"
        );
    }

    #[test]
    fn full_ring_drops_whole_writes_and_reports_once_space_returns() {
        let p = page();
        let mut w = ConsoleWriter::attach(&ring(&p)).unwrap();
        let line = [b'x'; 100];
        let mut written = 0;
        // 20 lines fit (2000 bytes), the next 5 do not.
        for _ in 0..25 {
            written += w.write(&ring(&p), &line).unwrap().written;
        }
        assert_eq!(written, 2000);
        assert_eq!(w.dropped(), 500);
        // 48 bytes are left: a 30-byte line would fit alone, but after a
        // drop it goes only with its 20-byte report, and both do not fit.
        assert_eq!(w.write(&ring(&p), &[b't'; 30]).unwrap(), NOTHING);
        assert_eq!(w.dropped(), 530);
        let first = drain(&p);
        assert_eq!(first.len(), 2000);
        assert!(first.iter().all(|&b| b == b'x'), "no line was cut");
        // Space is back: the report goes first, then the line.
        let r = w.write(&ring(&p), b"after\n").unwrap();
        assert_eq!(
            r,
            Written {
                written: 6,
                notify: true
            }
        );
        assert_eq!(drain(&p), b"[530 bytes dropped]\nafter\n");
        // Reported once only.
        w.write(&ring(&p), b"more\n").unwrap();
        assert_eq!(drain(&p), b"more\n");
        assert_eq!(w.dropped(), 530, "the total keeps counting");
        // A report alone, on request.
        w.write(&ring(&p), &[b'q'; 2049]).unwrap();
        assert!(w.flush_report(&ring(&p)).unwrap());
        assert_eq!(drain(&p), b"[2049 bytes dropped]\n");
        assert!(!w.flush_report(&ring(&p)).unwrap());
    }

    #[test]
    fn a_write_larger_than_the_ring_is_dropped() {
        let p = page();
        let mut w = ConsoleWriter::attach(&ring(&p)).unwrap();
        let big = [b'y'; XENCONS_OUT_SIZE + 1];
        assert_eq!(w.write(&ring(&p), &big).unwrap(), NOTHING);
        assert_eq!(w.dropped(), XENCONS_OUT_SIZE as u64 + 1);
        assert_eq!(w.write(&ring(&p), b"ok\n").unwrap().written, 3);
        assert_eq!(drain(&p), b"[2049 bytes dropped]\nok\n");
    }

    #[test]
    fn bad_backend_index_is_an_error() {
        let p = page();
        let mut w = ConsoleWriter::attach(&ring(&p)).unwrap();
        p.cons.store(5000, Ordering::Relaxed);
        assert!(matches!(
            w.write(&ring(&p), b"x"),
            Err(ProtocolError::RingIndex {
                prod: 0,
                cons: 5000
            })
        ));
    }

    #[test]
    fn log_lines_are_bounded() {
        let args = format_args!("{}", "z".repeat(1000));
        let rec = log::Record::builder()
            .args(args)
            .level(log::Level::Warn)
            .build();
        let line = format_line(&rec);
        assert_eq!(line.as_bytes().len(), LOG_LINE_MAX);
        assert!(line.as_bytes().starts_with(b"WARN: zzz"));
        assert!(line.as_bytes().ends_with(b"z...\n"));
        let n = 1;
        let line = format_line(
            &log::Record::builder()
                .args(format_args!("hello {n}"))
                .level(log::Level::Info)
                .build(),
        );
        assert_eq!(line.as_bytes(), b"hello 1\n");
    }

    #[test]
    fn levels_from_the_command_line() {
        use log::LevelFilter::*;
        assert_eq!(level_from_cmdline(""), Info);
        assert_eq!(level_from_cmdline("root=x loglevel=debug quiet"), Debug);
        assert_eq!(level_from_cmdline("loglevel=warn loglevel=trace"), Trace);
        assert_eq!(level_from_cmdline("loglevel=0"), Off);
        assert_eq!(level_from_cmdline("loglevel=1"), Error);
        assert_eq!(level_from_cmdline("loglevel=7"), Trace);
        assert_eq!(level_from_cmdline("loglevel=bogus"), Info);
        assert_eq!(level_from_cmdline("xloglevel=debug"), Info);
    }
}
