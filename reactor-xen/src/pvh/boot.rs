//! The PVH entry: the Xen ELF note, the 32-bit entry, the switch to long mode
//! and the jump into Rust.
//!
//! Xen (and any PVH loader) reads `XEN_ELFNOTE_PHYS32_ENTRY` from the image's
//! `PT_NOTE` segment and starts the vCPU there in 32-bit protected mode with
//! paging off, interrupts off and `ebx` holding the physical address of
//! `struct hvm_start_info` (xen/arch-x86/hvm/start_info.h, docs/misc/pvh.pandoc).
//!
//! The 32-bit code, in order:
//! 1. checks the start-info magic (`0x336ec578`); on a mismatch it writes
//!    `ringlet: bad hvm_start_info magic` to port 0xe9 and halts forever;
//! 2. takes the boot stack;
//! 3. builds page tables that identity-map the first [`IDENTITY_MAP_GIB`] GiB
//!    with 2 MiB pages, all write-back: Xen traps the emulated MMIO (the local
//!    APIC) whatever its cache type, and the toolstack's special pages
//!    (xenstore and console rings, just below 4 GiB) are ordinary RAM;
//! 4. loads the boot GDT, enables PAE, SSE (`OSFXSR`, `OSXMMEXCPT`), long
//!    mode (`EFER.LME`) and paging, and far-jumps into 64-bit code;
//! 5. in 64-bit mode, reloads the data segments and calls
//!    [`ringlet_pvh_start64`](super::start::ringlet_pvh_start64) with the
//!    start-info address.
//!
//! Everything the asm touches (page tables, stack, GDT) is in the image's
//! `.bss`/`.data`, so it sits inside `[image start, image end)` and the heap
//! never overlaps it.

use core::arch::global_asm;

use crate::abi::start_info::{XEN_ELFNOTE_PHYS32_ENTRY, XEN_HVM_START_MAGIC_VALUE};

/// How many GiB of guest-physical memory the boot page tables identity-map.
///
/// Four covers every RAM region of a guest up to ~4 GiB and the MMIO hole
/// below 4 GiB (local APIC at `0xfee00000`). RAM above this is not used.
pub const IDENTITY_MAP_GIB: u64 = 4;

/// Size of the boot stack, which stays the only stack of the kernel.
pub const BOOT_STACK_BYTES: usize = 256 * 1024;

/// Selector of the 64-bit code segment in the GDT.
pub const CODE_SELECTOR: u16 = 0x08;
/// Selector of the data segment in the GDT.
pub const DATA_SELECTOR: u16 = 0x10;
/// Selector of the TSS descriptor (16 bytes) in the GDT.
pub const TSS_SELECTOR: u16 = 0x18;

global_asm!(
    // The note Xen's ELF loader looks for. A 4-byte descriptor is enough:
    // the entry is below 4 GiB by construction (the image is linked at 1 MiB).
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",                 // namesz: "Xen\0"
    ".long 4",                 // descsz
    ".long {note_type}",       // XEN_ELFNOTE_PHYS32_ENTRY
    ".asciz \"Xen\"",
    ".long ringlet_pvh_start32",
    ".popsection",

    // Page tables and the boot stack (zero-filled by the loader; the code
    // below still clears the tables it uses).
    ".pushsection .bss.ringlet_boot, \"aw\", @nobits",
    ".balign 4096",
    ".global ringlet_boot_pml4",
    "ringlet_boot_pml4: .skip 4096",
    "ringlet_boot_pdpt: .skip 4096",
    "ringlet_boot_pd: .skip 4096 * {gib}",
    ".balign 16",
    ".global ringlet_boot_stack_bottom",
    "ringlet_boot_stack_bottom: .skip {stack}",
    ".global ringlet_boot_stack_top",
    "ringlet_boot_stack_top:",
    ".popsection",

    ".pushsection .text.ringlet_boot32, \"ax\", @progbits",
    ".code32",
    ".global ringlet_pvh_start32",
    "ringlet_pvh_start32:",
    "    cld",
    "    cli",
    "    cmpl ${magic}, (%ebx)",
    "    jne 90f",
    "    movl $ringlet_boot_stack_top, %esp",

    // Clear PML4 and PDPT (2 pages, 2048 dwords).
    "    movl $ringlet_boot_pml4, %edi",
    "    xorl %eax, %eax",
    "    movl $2048, %ecx",
    "    rep stosl",
    // PML4[0] -> PDPT (present, writable).
    "    movl $ringlet_boot_pdpt, %eax",
    "    orl $0x3, %eax",
    "    movl %eax, ringlet_boot_pml4",
    // PDPT[i] -> PD page i, for i in 0..gib.
    "    movl $ringlet_boot_pd, %eax",
    "    orl $0x3, %eax",
    "    movl $ringlet_boot_pdpt, %edi",
    "    movl ${gib}, %ecx",
    "1:  movl %eax, (%edi)",
    "    movl $0, 4(%edi)",
    "    addl $4096, %eax",
    "    addl $8, %edi",
    "    loop 1b",
    // PD entries: 2 MiB pages (PS | RW | P), identity: entry k maps k * 2 MiB.
    "    movl $ringlet_boot_pd, %edi",
    "    movl $0x83, %eax",
    "    xorl %edx, %edx",
    "    movl $({gib} * 512), %ecx",
    "2:  movl %eax, (%edi)",
    "    movl %edx, 4(%edi)",
    "    addl $0x200000, %eax",
    "    adcl $0, %edx",
    "    addl $8, %edi",
    "    loop 2b",
    "    lgdt ringlet_boot_gdt_ptr",
    // CR4: PAE (5), OSFXSR (9), OSXMMEXCPT (10).
    "    movl %cr4, %eax",
    "    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax",
    "    movl %eax, %cr4",
    "    movl $ringlet_boot_pml4, %eax",
    "    movl %eax, %cr3",
    // EFER.LME (bit 8).
    "    movl $0xc0000080, %ecx",
    "    rdmsr",
    "    orl $(1 << 8), %eax",
    "    wrmsr",
    // CR0: PG (31), WP (16), NE (5), MP (1), PE (0); clear EM (2) and TS (3).
    "    movl %cr0, %eax",
    "    andl $~((1 << 2) | (1 << 3)), %eax",
    "    orl $((1 << 31) | (1 << 16) | (1 << 5) | (1 << 1) | 1), %eax",
    "    movl %eax, %cr0",
    "    ljmpl ${code}, $ringlet_pvh_start64_asm",

    // Bad magic: say so on port 0xe9 and stop.
    "90: movl $ringlet_boot_bad_magic, %esi",
    "    movw $0xe9, %dx",
    "91: movb (%esi), %al",
    "    testb %al, %al",
    "    jz 92f",
    "    outb %al, %dx",
    "    incl %esi",
    "    jmp 91b",
    "92: hlt",
    "    jmp 92b",

    ".code64",
    "ringlet_pvh_start64_asm:",
    "    movw ${data}, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movw %ax, %fs",
    "    movw %ax, %gs",
    "    fninit",
    "    movabsq $ringlet_boot_stack_top, %rsp",
    "    xorl %ebp, %ebp",
    "    movl %ebx, %edi",        // zero-extends: start-info physical address
    "    call ringlet_pvh_start64",
    "    ud2",
    ".popsection",

    ".pushsection .rodata.ringlet_boot, \"a\", @progbits",
    "ringlet_boot_bad_magic: .asciz \"ringlet: bad hvm_start_info magic\\n\"",
    ".balign 8",
    "ringlet_boot_gdt_ptr:",
    "    .word {gdt_len} - 1",
    "    .quad ringlet_gdt",
    ".popsection",

    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    magic = const XEN_HVM_START_MAGIC_VALUE,
    gib = const IDENTITY_MAP_GIB,
    stack = const BOOT_STACK_BYTES,
    code = const CODE_SELECTOR,
    data = const DATA_SELECTOR,
    gdt_len = const super::cpu::GDT_BYTES,
    options(att_syntax),
);
