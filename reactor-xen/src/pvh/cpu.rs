//! x86_64 instructions and descriptor tables: safe wrappers for instructions
//! without memory effects, the GDT with its TSS, and the IDT.
//!
//! The boot asm loads [`GDT`] (null, 64-bit code, data, and an empty TSS
//! slot). [`init`] fills the TSS slot, loads the task register (so #DF, NMI
//! and #MC run on their own IST stacks) and loads the IDT: exception stubs
//! for vectors 0–31 that report and crash (see [`super::trap`]), the event
//! upcall vector [`UPCALL_VECTOR`] and the LAPIC spurious vector
//! [`SPURIOUS_VECTOR`]. Every other vector is not present, so a stray
//! interrupt becomes a reported #NP.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::mem::size_of;

use super::boot::{CODE_SELECTOR, TSS_SELECTOR};

/// The interrupt vector Xen raises when an event becomes pending
/// (`HVMOP_set_evtchn_upcall_vector`).
pub const UPCALL_VECTOR: u8 = 0xf3;

/// The LAPIC's spurious-interrupt vector (no EOI is sent for it).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Size of each IST stack (double fault, NMI, machine check).
pub const IST_STACK_BYTES: usize = 16 * 1024;

/// Bytes in the GDT: null, code, data, and a 16-byte TSS descriptor.
pub const GDT_BYTES: usize = 5 * 8;

/// Memory written only during boot, on the one vCPU, with interrupts off,
/// and afterwards only read by the CPU (descriptor tables) or not at all.
#[repr(C, align(16))]
pub(crate) struct BootCell<T>(UnsafeCell<T>);

// SAFETY: the only vCPU writes the contents during boot, before any interrupt
// can be taken and before any other code runs; afterwards they are not
// written again (see each use).
unsafe impl<T> Sync for BootCell<T> {}

impl<T> BootCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        BootCell(UnsafeCell::new(value))
    }

    pub(crate) fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// The GDT. The boot asm loads it by the symbol `ringlet_gdt` in 32-bit mode.
#[export_name = "ringlet_gdt"]
static GDT: BootCell<[u64; 5]> = BootCell::new([
    0,
    // 64-bit code: present, DPL 0, execute/read, L=1.
    0x00af_9a00_0000_ffff,
    // Data: present, DPL 0, read/write, 4 KiB granularity, 32-bit.
    0x00cf_9200_0000_ffff,
    // TSS descriptor, filled in by `init`.
    0,
    0,
]);

const _: () = assert!(size_of::<[u64; 5]>() == GDT_BYTES);

/// The 64-bit task-state segment (Intel SDM vol. 3, 8.7).
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

const _: () = assert!(size_of::<Tss>() == 104);

static TSS: BootCell<Tss> = BootCell::new(Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    // No I/O permission bitmap: the offset points past the segment's limit.
    iomap_base: size_of::<Tss>() as u16,
});

/// IST index (1-based, as in the IDT entry) for each critical exception.
const IST_DOUBLE_FAULT: u8 = 1;
const IST_NMI: u8 = 2;
const IST_MACHINE_CHECK: u8 = 3;

#[repr(C, align(16))]
struct IstStacks([[u8; IST_STACK_BYTES]; 3]);

static IST_STACKS: BootCell<IstStacks> = BootCell::new(IstStacks([[0; IST_STACK_BYTES]; 3]));

/// One 16-byte IDT gate (Intel SDM vol. 3, 6.14.1).
#[derive(Clone, Copy)]
#[repr(C)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const _: () = assert!(size_of::<IdtEntry>() == 16);

impl IdtEntry {
    const MISSING: IdtEntry = IdtEntry {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present 64-bit interrupt gate (interrupts stay off in the handler).
    fn interrupt_gate(handler: u64, ist: u8) -> IdtEntry {
        IdtEntry {
            offset_low: handler as u16,
            selector: CODE_SELECTOR,
            ist,
            type_attr: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

static IDT: BootCell<[IdtEntry; 256]> = BootCell::new([IdtEntry::MISSING; 256]);

/// The operand of `lgdt`/`lidt`.
#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

unsafe extern "C" {
    /// Addresses of the 32 exception stubs (below).
    static ringlet_exception_stubs: [u64; 32];
    fn ringlet_upcall_entry();
    fn ringlet_idle_halt();
    fn ringlet_spurious_entry();
}

// The exception stubs give every exception the same frame: vector, error
// code (0 when the CPU pushes none), then the CPU's frame. They never return:
// the handler reports and crashes the domain.
//
// The upcall stub saves the registers the C ABI lets a callee clobber, calls
// `ringlet_pvh_upcall` (which only sends the LAPIC EOI), restores them and
// returns. On entry the CPU has aligned the stack to 16 and pushed 5 words;
// 9 more pushes leave it 16-byte aligned for the call. The kernel uses no
// SSE or x87 state (the target is soft-float), so none is saved.
global_asm!(
    ".pushsection .text.ringlet_traps, \"ax\", @progbits",
    ".macro ringlet_exc_noerr n",
    "ringlet_exc_\\n:",
    "    pushq $0",
    "    pushq $\\n",
    "    jmp ringlet_exc_common",
    ".endm",
    ".macro ringlet_exc_err n",
    "ringlet_exc_\\n:",
    "    pushq $\\n",
    "    jmp ringlet_exc_common",
    ".endm",
    ".irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31",
    "ringlet_exc_noerr \\n",
    ".endr",
    ".irp n, 8,10,11,12,13,14,17,21,29,30",
    "ringlet_exc_err \\n",
    ".endr",
    "ringlet_exc_common:",
    "    cld",
    "    movq %rsp, %rdi",
    "    andq $-16, %rsp",
    "    call ringlet_pvh_exception",
    "    ud2",
    "",
    ".global ringlet_upcall_entry",
    "ringlet_upcall_entry:",
    "    pushq %rax",
    "    pushq %rcx",
    "    pushq %rdx",
    "    pushq %rsi",
    "    pushq %rdi",
    "    pushq %r8",
    "    pushq %r9",
    "    pushq %r10",
    "    pushq %r11",
    // Interrupted at the idle `hlt` itself (delivered in `sti`'s shadow,
    // which nested emulation does not always honour): resume after it, or
    // the vCPU would halt with this upcall already taken and Xen, seeing
    // upcall_pending still set, would never raise another.
    "    xorl %edi, %edi",
    "    leaq ringlet_idle_hlt(%rip), %rax",
    "    cmpq %rax, 72(%rsp)",
    "    jne 1f",
    "    incq 72(%rsp)",
    "    movl $1, %edi",
    "1:",
    "    cld",
    "    call ringlet_pvh_upcall",
    "    popq %r11",
    "    popq %r10",
    "    popq %r9",
    "    popq %r8",
    "    popq %rdi",
    "    popq %rsi",
    "    popq %rdx",
    "    popq %rcx",
    "    popq %rax",
    "    iretq",
    "",
    // The idle halt: `sti; hlt; cli` as a function, so the upcall stub can
    // recognise an interrupt taken at the `hlt` (see above).
    ".global ringlet_idle_halt",
    "ringlet_idle_halt:",
    "    sti",
    ".global ringlet_idle_hlt",
    "ringlet_idle_hlt:",
    "    hlt",
    "    cli",
    "    ret",
    "",
    ".global ringlet_spurious_entry",
    "ringlet_spurious_entry:",
    "    iretq",
    ".popsection",
    "",
    ".pushsection .rodata.ringlet_traps, \"a\", @progbits",
    ".balign 8",
    ".global ringlet_exception_stubs",
    "ringlet_exception_stubs:",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    .quad ringlet_exc_\\n",
    ".endr",
    ".popsection",
    options(att_syntax),
);

/// Fills the TSS, loads the task register and the IDT.
///
/// # Safety
///
/// Call once, during boot, with interrupts off, after the boot asm loaded
/// [`GDT`] and before anything else uses the descriptor tables.
pub(crate) unsafe fn init() {
    // SAFETY: boot is single-threaded with interrupts off (caller), so these
    // are the only accesses to TSS, GDT and IDT; the CPU reads them only after
    // `ltr`/`lidt` below.
    unsafe {
        let stacks = IST_STACKS.get() as u64;
        let tss = &mut *TSS.get();
        for (i, ist) in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK]
            .into_iter()
            .enumerate()
        {
            // Stacks grow down: the top of stack i.
            tss.ist[usize::from(ist) - 1] = stacks + ((i + 1) * IST_STACK_BYTES) as u64;
        }

        let base = TSS.get() as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        let gdt = &mut *GDT.get();
        gdt[3] = limit | ((base & 0xff_ffff) << 16) | (0x89 << 40) | (((base >> 24) & 0xff) << 56);
        gdt[4] = base >> 32;
        asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack, preserves_flags));

        let idt = &mut *IDT.get();
        let stubs = &*core::ptr::addr_of!(ringlet_exception_stubs);
        for (vector, stub) in stubs.iter().enumerate() {
            let ist = match vector {
                2 => IST_NMI,
                8 => IST_DOUBLE_FAULT,
                18 => IST_MACHINE_CHECK,
                _ => 0,
            };
            idt[vector] = IdtEntry::interrupt_gate(*stub, ist);
        }
        idt[usize::from(UPCALL_VECTOR)] =
            IdtEntry::interrupt_gate(ringlet_upcall_entry as *const () as u64, 0);
        idt[usize::from(SPURIOUS_VECTOR)] =
            IdtEntry::interrupt_gate(ringlet_spurious_entry as *const () as u64, 0);
        let pointer = DescriptorPointer {
            limit: (size_of::<[IdtEntry; 256]>() - 1) as u16,
            base: IDT.get() as u64,
        };
        asm!("lidt [{0}]", in(reg) &pointer, options(readonly, nostack, preserves_flags));
    }
}

/// Writes one byte to an I/O port.
///
/// # Safety
///
/// The write must have no effect on memory safety: the port's device must not
/// be able to write guest memory as a result (e.g. the 0xe9 debug port).
#[inline]
pub(crate) unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees the device behind `port` does not touch
    // memory; `out` itself has no memory operands.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// The registers `cpuid` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// `cpuid` for `leaf` (sub-leaf 0).
#[inline]
pub(crate) fn cpuid(leaf: u32) -> CpuidResult {
    cpuid_sub(leaf, 0)
}

/// `cpuid` for `leaf` and `sub_leaf`.
#[inline]
pub(crate) fn cpuid_sub(leaf: u32, sub_leaf: u32) -> CpuidResult {
    let (eax, ebx, ecx, edx): (u32, u32, u32, u32);
    // SAFETY: cpuid has no memory effects; rbx is reserved by LLVM, so it is
    // saved and restored around the instruction.
    unsafe {
        asm!(
            "mov {tmp:r}, rbx",
            "cpuid",
            "xchg {tmp:r}, rbx",
            tmp = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") sub_leaf => ecx,
            out("edx") edx,
            options(nomem, nostack, preserves_flags),
        );
    }
    CpuidResult { eax, ebx, ecx, edx }
}

/// Reads a model-specific register.
///
/// # Safety
///
/// `msr` must exist (or the read faults) and reading it must have no side
/// effects that break memory safety.
#[inline]
pub(crate) unsafe fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists and is side-effect free.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// Writes a model-specific register.
///
/// # Safety
///
/// `msr` must exist and the write must not break memory safety (e.g. the
/// hypercall-page MSR makes Xen write into the page whose address is given).
#[inline]
pub(crate) unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is sound. No `nomem`: some MSR
    // writes make the hypervisor write guest memory.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
    }
}

/// Reads the time-stamp counter, ordered after earlier loads (`lfence`).
///
/// Not `rdtscp`: under QEMU's nested SVM an intercepted `rdtscp` hangs the
/// guest (docs/boot.md).
#[inline]
pub(crate) fn rdtsc() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: lfence and rdtsc have no memory effects.
    unsafe {
        asm!("lfence", "rdtsc", out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// Reads CR2 (the faulting address of the last page fault).
#[inline]
pub(crate) fn cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Disables interrupts.
#[inline]
pub(crate) fn cli() {
    // SAFETY: masking interrupts cannot break memory safety. Not `nomem`: it
    // orders memory accesses around the start of a critical section.
    unsafe { asm!("cli", options(nostack)) }
}

/// Enables interrupts, halts until one arrives, handles it, and disables
/// interrupts again. `sti`'s one-instruction shadow makes `sti; hlt` atomic
/// on hardware: an interrupt pending before `sti` wakes the `hlt` instead of
/// being taken before it. Where the shadow is not honoured (seen with Xen
/// inside QEMU's emulation: the guest halted for good with its event
/// channels pending and an empty LAPIC IRR), the upcall stub moves an
/// interrupted `hlt`'s return address past it, so the halt is atomic anyway.
#[inline]
pub(crate) fn enable_interrupts_and_halt() {
    // SAFETY: `ringlet_idle_halt` (above) is `sti; hlt; cli; ret` and follows
    // the C ABI (it clobbers no register). The only handlers that can run
    // are the upcall stub (EOI, and the return-address fix for the `hlt`)
    // and the exception stubs; neither touches memory the caller owns.
    unsafe { asm!("call {f}", f = sym ringlet_idle_halt) }
}

/// Halts the vCPU forever with interrupts off (the last resort when even
/// `SCHEDOP_shutdown` returned).
pub(crate) fn halt_forever() -> ! {
    loop {
        // SAFETY: cli; hlt has no memory effects.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
