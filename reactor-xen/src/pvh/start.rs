//! The boot sequence in Rust: from the boot asm to the appliance.
//!
//! [`ringlet_pvh_start64`] runs on the boot stack with interrupts off:
//! 1. descriptor tables (TSS with IST stacks, IDT);
//! 2. the start info: version, command line, memory map;
//! 3. the hypercall page, and Xen's version logged;
//! 4. the heap over the memory map's RAM minus the image and the start info;
//! 5. shared info mapped (`XENMAPSPACE_shared_info`) into a reserved page;
//! 6. the grant table mapped (`XENMAPSPACE_grant_table`), [`GRANT_FRAMES`]
//!    frames at most;
//! 7. the LAPIC enabled and the upcall vector set
//!    (`HVMOP_set_evtchn_upcall_vector`, or `HVM_PARAM_CALLBACK_IRQ` with a
//!    vector when Xen lacks it);
//! 8. `VIRQ_TIMER` bound for `block`'s single-shot timer;
//! 9. [`Pvh`] built and handed (by value: there is one) to the appliance's
//!    entry `ringlet_pvh_main`, defined by `#[ringlet::main]`. It never
//!    returns: it shuts the domain down.
//!
//! A failure in any step is fatal: reported on port 0xe9, then the domain
//! crashes.

use core::mem::size_of;
use core::sync::atomic::AtomicU32;

use super::clock::PvClock;
use super::console::early_println;
use super::cpu::{self, BootCell, SPURIOUS_VECTOR, UPCALL_VECTOR};
use super::hypercall::{self, hypercall};
use super::layout::{self, Region, USABLE_MAX};
use super::trap::crash;
use super::xen::{hvm_get_param, Pvh, NO_PORT};
use super::{boot, heap, lapic, sched};
use crate::abi::grant_table::{GrantEntryV1, GRANT_ENTRIES_V1_PER_FRAME};
use crate::abi::hvm::{
    XenHvmEvtchnUpcallVector, XenHvmParam, HVMOP_SET_EVTCHN_UPCALL_VECTOR, HVMOP_SET_PARAM,
    HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_IRQ_TYPE_SHIFT, HVM_PARAM_CALLBACK_TYPE_VECTOR,
};
use crate::abi::hypercall::DOMID_SELF;
use crate::abi::memory::{
    XenAddToPhysmap, XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP,
};
use crate::abi::shared_info::SharedInfo;
use crate::abi::start_info::{HvmMemmapTableEntry, HvmStartInfo, XEN_HVM_MEMMAP_TYPE_RAM};
use crate::hypervisor::PAGE_SIZE;

/// Grant-table frames mapped at boot: 4 frames of 512 v1 entries = 2048
/// grants (Xen's default limit for a domU is 64 frames).
pub const GRANT_FRAMES: usize = 4;

/// The longest command line read from the start info; longer ones are cut.
pub const CMDLINE_BYTES_MAX: usize = 4096;

/// The most memory-map entries read from the start info.
pub const MEMMAP_ENTRIES_MAX: usize = 128;

/// Lowest address the heap may use: the first MiB holds nothing Ringlet
/// needs and keeps address 0 unmapped in spirit.
const HEAP_LOW: u64 = 1 << 20;

#[repr(C, align(4096))]
struct PageFrame([u8; PAGE_SIZE]);

/// The frame Xen maps shared info over.
static SHARED_INFO_FRAME: BootCell<PageFrame> = BootCell::new(PageFrame([0; PAGE_SIZE]));
/// The frames Xen maps the grant table over.
static GRANT_TABLE_FRAMES: BootCell<[PageFrame; GRANT_FRAMES]> =
    BootCell::new([const { PageFrame([0; PAGE_SIZE]) }; GRANT_FRAMES]);

unsafe extern "C" {
    /// First byte of the image (linker script).
    static __ringlet_image_start: u8;
    /// One past the last byte of the image, `.bss` included (linker script).
    static __ringlet_image_end: u8;
}

unsafe extern "Rust" {
    /// The appliance: defined by `#[ringlet::main]` (the `ringlet` crate's
    /// runtime). Never returns; it shuts the domain down.
    fn ringlet_pvh_main(xen: Pvh) -> !;
}

/// Called by the boot asm on the boot stack, in long mode, interrupts off.
#[unsafe(no_mangle)]
extern "C" fn ringlet_pvh_start64(start_info_paddr: u64) -> ! {
    // SAFETY: first thing at boot, single vCPU, interrupts off; the asm loaded
    // the GDT.
    unsafe { cpu::init() };

    // SAFETY: Xen passed this address in ebx and the asm checked its magic;
    // the first GiBs are identity-mapped; Xen does not change it later.
    let start = unsafe { (start_info_paddr as *const HvmStartInfo).read() };
    early_println!(
        "PVH boot: start info v{} at {:#x}",
        start.version,
        start_info_paddr
    );

    if let Err(error) = hypercall::init() {
        crash(format_args!("hypercall page: {error}"));
    }
    let version = sched::xen_version();
    early_println!("Xen {version}");
    report_tsc(&start);

    let cmdline = read_cmdline(&start);
    let heap_bytes = init_heap(start_info_paddr, &start, cmdline);
    let shared_info = map_shared_info();
    let grant_entries = map_grant_table();
    // SAFETY: boot, interrupts off; the identity map covers the xAPIC page.
    let lapic_mode = unsafe { lapic::init(SPURIOUS_VECTOR) };
    let upcall = set_upcall_vector();

    let xen = Pvh {
        shared_info,
        grant_entries,
        cmdline,
        version,
        clock: PvClock::new(),
        timer_port: AtomicU32::new(NO_PORT),
    };
    let timer = xen
        .bind_timer()
        .unwrap_or_else(|e| crash(format_args!("bind VIRQ_TIMER: {e}")));
    early_println!(
        "heap {} KiB, {} grant entries, lapic {:?}, upcall {}, timer port {}",
        heap_bytes / 1024,
        grant_entries.len(),
        lapic_mode,
        upcall,
        timer.0
    );
    // SAFETY: defined by the appliance (`#[ringlet::main]`) with this
    // signature; everything it may rely on is set up.
    unsafe { ringlet_pvh_main(xen) }
}

/// The command line from the start info, cut at [`CMDLINE_BYTES_MAX`]; empty
/// if absent or not UTF-8 (which is reported).
fn read_cmdline(start: &HvmStartInfo) -> &'static str {
    if start.cmdline_paddr == 0 {
        return "";
    }
    let base = start.cmdline_paddr as *const u8;
    let mut len = 0;
    // SAFETY: the toolstack put a NUL-terminated string there (identity
    // mapped, left out of the heap by `init_heap`); reading stops at the NUL
    // or at the bound.
    while len < CMDLINE_BYTES_MAX && unsafe { base.add(len).read() } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes just read, which nothing writes afterwards.
    let bytes = unsafe { core::slice::from_raw_parts(base, len) };
    match core::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            early_println!("command line is not UTF-8; ignored");
            ""
        }
    }
}

/// Gives the heap the RAM of the memory map minus what is in use.
fn init_heap(start_info_paddr: u64, start: &HvmStartInfo, cmdline: &str) -> u64 {
    if start.version < 1 || start.memmap_paddr == 0 || start.memmap_entries == 0 {
        crash(format_args!(
            "start info v{} has no memory map",
            start.version
        ));
    }
    let entries = (start.memmap_entries as usize).min(MEMMAP_ENTRIES_MAX);
    // SAFETY: the start info says `memmap_entries` entries live there
    // (identity mapped, kept out of the heap below); read before the heap
    // exists, so nothing overwrites it meanwhile.
    let memmap = unsafe {
        core::slice::from_raw_parts(start.memmap_paddr as *const HvmMemmapTableEntry, entries)
    };
    let image = Region {
        start: core::ptr::addr_of!(__ringlet_image_start) as u64,
        end: core::ptr::addr_of!(__ringlet_image_end) as u64,
    };
    let reserved = [
        image,
        Region::at(start_info_paddr, size_of::<HvmStartInfo>() as u64),
        Region::at(start.cmdline_paddr, cmdline.len() as u64 + 1),
        Region::at(
            start.memmap_paddr,
            (entries * size_of::<HvmMemmapTableEntry>()) as u64,
        ),
        Region::at(start.modlist_paddr, u64::from(start.nr_modules) * 32),
    ];
    let ram = memmap
        .iter()
        .filter(|e| e.type_ == XEN_HVM_MEMMAP_TYPE_RAM)
        .map(|e| Region::at(e.addr, e.size));
    let mut regions = [Region { start: 0, end: 0 }; USABLE_MAX];
    let count = layout::usable(
        ram,
        &reserved,
        HEAP_LOW,
        boot::IDENTITY_MAP_GIB << 30,
        &mut regions,
    );
    if count == 0 {
        crash(format_args!("no usable RAM in the memory map"));
    }
    // SAFETY: boot; the regions are RAM the memory map gives, without the
    // image (which holds every page Xen maps over: shared info, grant
    // frames, the hypercall page), the start info, its command line, memory
    // map and module list.
    unsafe { heap::init(&regions[..count]) }
}

/// `XENMEM_add_to_physmap` of `space`/`idx` at `frame`.
fn add_to_physmap(space: u32, idx: u64, frame: *mut PageFrame) -> Result<(), i64> {
    let mut arg = XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn: frame as u64 / PAGE_SIZE as u64,
    };
    // SAFETY: `arg` is a valid `xen_add_to_physmap`; the frame is a page of
    // the image reserved for Xen to map over (no Rust value lives in it).
    let ret = unsafe {
        hypercall(
            hypercall::MEMORY_OP,
            [
                XENMEM_ADD_TO_PHYSMAP.into(),
                &mut arg as *mut _ as u64,
                0,
                0,
                0,
            ],
        )
    };
    if ret < 0 {
        Err(ret)
    } else {
        Ok(())
    }
}

fn map_shared_info() -> &'static SharedInfo {
    let frame = SHARED_INFO_FRAME.get();
    if let Err(errno) = add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, frame) {
        crash(format_args!("map shared info: error {errno}"));
    }
    // SAFETY: Xen now backs the frame with the shared-info page, which lives
    // as long as the domain; `SharedInfo` is atomics only, so shared
    // references to memory Xen writes are sound; it fits in the page.
    unsafe { &*frame.cast::<SharedInfo>() }
}

fn map_grant_table() -> &'static [GrantEntryV1] {
    let frames = GRANT_TABLE_FRAMES.get().cast::<PageFrame>();
    let mut mapped = 0;
    for index in 0..GRANT_FRAMES {
        // SAFETY: `index` < GRANT_FRAMES: inside the array.
        let frame = unsafe { frames.add(index) };
        match add_to_physmap(XENMAPSPACE_GRANT_TABLE, index as u64, frame) {
            Ok(()) => mapped += 1,
            Err(errno) => {
                early_println!("grant frame {index}: error {errno}; using {mapped} frames");
                break;
            }
        }
    }
    if mapped == 0 {
        crash(format_args!("no grant-table frame could be mapped"));
    }
    // SAFETY: Xen backs the first `mapped` frames (contiguous) with the grant
    // table for the domain's life; entries are atomics only.
    unsafe {
        core::slice::from_raw_parts(
            frames.cast::<GrantEntryV1>(),
            mapped * GRANT_ENTRIES_V1_PER_FRAME,
        )
    }
}

/// How events reach the vCPU.
#[derive(Clone, Copy, Debug)]
enum Upcall {
    /// `HVMOP_set_evtchn_upcall_vector`.
    PerVcpuVector(u8),
    /// `HVM_PARAM_CALLBACK_IRQ` of type vector.
    CallbackVector(u8),
}

impl core::fmt::Display for Upcall {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Upcall::PerVcpuVector(v) => write!(f, "vector {v:#x} (per vCPU)"),
            Upcall::CallbackVector(v) => write!(f, "vector {v:#x} (callback param)"),
        }
    }
}

fn set_upcall_vector() -> Upcall {
    let mut arg = XenHvmEvtchnUpcallVector {
        vcpu: 0,
        vector: UPCALL_VECTOR,
        _pad: [0; 3],
    };
    // SAFETY: a valid `xen_hvm_evtchn_upcall_vector`, read during the call.
    let ret = unsafe {
        hypercall(
            hypercall::HVM_OP,
            [
                HVMOP_SET_EVTCHN_UPCALL_VECTOR.into(),
                &mut arg as *mut _ as u64,
                0,
                0,
                0,
            ],
        )
    };
    if ret == 0 {
        return Upcall::PerVcpuVector(UPCALL_VECTOR);
    }
    let value = (HVM_PARAM_CALLBACK_TYPE_VECTOR << HVM_PARAM_CALLBACK_IRQ_TYPE_SHIFT)
        | u64::from(UPCALL_VECTOR);
    let mut param = XenHvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index: HVM_PARAM_CALLBACK_IRQ,
        value,
    };
    // SAFETY: a valid `xen_hvm_param`, read during the call.
    let ret2 = unsafe {
        hypercall(
            hypercall::HVM_OP,
            [HVMOP_SET_PARAM.into(), &mut param as *mut _ as u64, 0, 0, 0],
        )
    };
    if ret2 < 0 {
        crash(format_args!(
            "no event delivery: upcall vector error {ret}, callback param error {ret2}"
        ));
    }
    debug_assert_eq!(hvm_get_param(HVM_PARAM_CALLBACK_IRQ).ok(), Some(value));
    Upcall::CallbackVector(UPCALL_VECTOR)
}

/// Logs what Xen says about the TSC (CPUID leaf `base + 3`): the mode, the
/// guest's TSC frequency, and whether `rdtsc` is emulated.
fn report_tsc(_start: &HvmStartInfo) {
    let Some(base) = hypercall::xen_cpuid_base() else {
        return;
    };
    if cpu::cpuid(base).eax < base + 3 {
        return;
    }
    let leaf0 = cpu::cpuid_sub(base + 3, 0);
    let leaf2 = cpu::cpuid_sub(base + 3, 2);
    early_println!(
        "tsc: mode {} emulated {} guest {} kHz host {} kHz",
        leaf0.ebx,
        leaf0.eax & 1,
        leaf0.ecx,
        leaf2.eax
    );
}
