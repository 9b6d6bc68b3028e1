//! Checks reactor-xen's hand-written ABI (`ringlet_xen::abi`, except the
//! xenstore and console files, which `layout_xs_console.rs` checks) against
//! Xen's C headers from libxen-dev.
//!
//! Compiles `tests/abi_layout.c`, runs it, and compares every size, offset
//! and constant it prints with the Rust definitions
//! (`ringlet_xen::testing::c_layout`). If the C compiler or the headers are
//! missing the test FAILS with a message saying what to install (`cargo
//! xtask test` installs both): a layout check that silently skips proves
//! nothing.

use std::mem::{offset_of, size_of};

use ringlet_xen::abi::event_channel::*;
use ringlet_xen::abi::grant_table::*;
use ringlet_xen::abi::hvm::*;
use ringlet_xen::abi::hypercall::*;
use ringlet_xen::abi::memory::*;
use ringlet_xen::abi::ring::*;
use ringlet_xen::abi::sched::*;
use ringlet_xen::abi::shared_info::*;
use ringlet_xen::abi::start_info::*;
use ringlet_xen::abi::vcpu::*;
use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::testing::c_layout::{self, CProgram, Expected, IfMissing};

/// The C side: prints `size T n`, `off T.f n` and `const NAME n` lines.
const PROGRAM: CProgram<'static> = CProgram {
    name: "abi_layout",
    header: "/usr/include/xen/xen.h",
    source: include_str!("abi_layout.c"),
    if_missing: IfMissing::Fail,
};

/// What the Rust side says, keyed as the C program prints it.
fn rust_side() -> Expected {
    let mut m = Expected::default();
    macro_rules! size {
        ($c:literal, $t:ty) => {
            m.value(format!("size {}", $c), size_of::<$t>());
        };
    }
    macro_rules! off {
        ($c:literal, $t:ty, $($f:ident : $rf:ident),+ $(,)?) => {
            $( m.value(format!("off {}.{}", $c, stringify!($f)), offset_of!($t, $rf)); )+
        };
    }
    macro_rules! konst {
        ($c:literal, $v:expr) => {
            m.value(format!("const {}", $c), ($v) as u64);
        };
    }

    size!("vcpu_time_info", VcpuTimeInfo);
    off!("vcpu_time_info", VcpuTimeInfo, version: version, pad0: pad0,
        tsc_timestamp: tsc_timestamp, system_time: system_time,
        tsc_to_system_mul: tsc_to_system_mul, tsc_shift: tsc_shift, flags: flags, pad1: pad1);
    size!("vcpu_info", VcpuInfo);
    off!("vcpu_info", VcpuInfo, evtchn_upcall_pending: evtchn_upcall_pending,
        evtchn_upcall_mask: evtchn_upcall_mask, evtchn_pending_sel: evtchn_pending_sel,
        arch: arch, time: time);
    size!("arch_shared_info", ArchSharedInfo);
    off!("arch_shared_info", ArchSharedInfo, max_pfn: max_pfn,
        pfn_to_mfn_frame_list_list: pfn_to_mfn_frame_list_list, nmi_reason: nmi_reason,
        p2m_cr3: p2m_cr3, p2m_vaddr: p2m_vaddr, p2m_generation: p2m_generation);
    size!("shared_info", SharedInfo);
    off!("shared_info", SharedInfo, vcpu_info: vcpu_info, evtchn_pending: evtchn_pending,
        evtchn_mask: evtchn_mask, wc_version: wc_version, wc_sec: wc_sec, wc_nsec: wc_nsec,
        wc_sec_hi: wc_sec_hi, arch: arch);
    konst!("XEN_LEGACY_MAX_VCPUS", LEGACY_MAX_VCPUS);
    konst!("sizeof(xen_ulong_t) * 8", BITS_PER_EVENT_WORD);

    size!("grant_entry_v1", GrantEntryV1);
    off!("grant_entry_v1", GrantEntryV1, flags: flags, domid: domid, frame: frame);
    size!("gnttab_query_size", GnttabQuerySize);
    off!("gnttab_query_size", GnttabQuerySize, dom: dom, nr_frames: nr_frames,
        max_nr_frames: max_nr_frames, status: status);
    size!("gnttab_set_version", GnttabSetVersion);
    off!("gnttab_set_version", GnttabSetVersion, version: version);
    konst!("GTF_invalid", GTF_INVALID);
    konst!("GTF_permit_access", GTF_PERMIT_ACCESS);
    konst!("GTF_accept_transfer", GTF_ACCEPT_TRANSFER);
    konst!("GTF_transitive", GTF_TRANSITIVE);
    konst!("GTF_type_mask", GTF_TYPE_MASK);
    konst!("GTF_readonly", GTF_READONLY);
    konst!("GTF_reading", GTF_READING);
    konst!("GTF_writing", GTF_WRITING);
    konst!("GTF_PWT", GTF_PWT);
    konst!("GTF_PCD", GTF_PCD);
    konst!("GTF_PAT", GTF_PAT);
    konst!("GTF_sub_page", GTF_SUB_PAGE);
    konst!("GNTTAB_NR_RESERVED_ENTRIES", GNTTAB_NR_RESERVED_ENTRIES);
    konst!("GNTTAB_RESERVED_CONSOLE", GNTTAB_RESERVED_CONSOLE);
    konst!("GNTTAB_RESERVED_XENSTORE", GNTTAB_RESERVED_XENSTORE);
    konst!("GNTTABOP_map_grant_ref", GNTTABOP_MAP_GRANT_REF);
    konst!("GNTTABOP_unmap_grant_ref", GNTTABOP_UNMAP_GRANT_REF);
    konst!("GNTTABOP_setup_table", GNTTABOP_SETUP_TABLE);
    konst!("GNTTABOP_copy", GNTTABOP_COPY);
    konst!("GNTTABOP_query_size", GNTTABOP_QUERY_SIZE);
    konst!("GNTTABOP_set_version", GNTTABOP_SET_VERSION);
    konst!("GNTTABOP_get_version", GNTTABOP_GET_VERSION);
    konst!("GNTST_okay", GNTST_OKAY);

    size!("evtchn_alloc_unbound", EvtchnAllocUnbound);
    off!("evtchn_alloc_unbound", EvtchnAllocUnbound, dom: dom, remote_dom: remote_dom, port: port);
    size!("evtchn_bind_interdomain", EvtchnBindInterdomain);
    off!("evtchn_bind_interdomain", EvtchnBindInterdomain, remote_dom: remote_dom,
        remote_port: remote_port, local_port: local_port);
    size!("evtchn_bind_virq", EvtchnBindVirq);
    off!("evtchn_bind_virq", EvtchnBindVirq, virq: virq, vcpu: vcpu, port: port);
    size!("evtchn_close", EvtchnClose);
    off!("evtchn_close", EvtchnClose, port: port);
    size!("evtchn_send", EvtchnSend);
    off!("evtchn_send", EvtchnSend, port: port);
    size!("evtchn_unmask", EvtchnUnmask);
    off!("evtchn_unmask", EvtchnUnmask, port: port);
    konst!("EVTCHNOP_bind_interdomain", EVTCHNOP_BIND_INTERDOMAIN);
    konst!("EVTCHNOP_bind_virq", EVTCHNOP_BIND_VIRQ);
    konst!("EVTCHNOP_close", EVTCHNOP_CLOSE);
    konst!("EVTCHNOP_send", EVTCHNOP_SEND);
    konst!("EVTCHNOP_status", EVTCHNOP_STATUS);
    konst!("EVTCHNOP_alloc_unbound", EVTCHNOP_ALLOC_UNBOUND);
    konst!("EVTCHNOP_bind_ipi", EVTCHNOP_BIND_IPI);
    konst!("EVTCHNOP_bind_vcpu", EVTCHNOP_BIND_VCPU);
    konst!("EVTCHNOP_unmask", EVTCHNOP_UNMASK);
    konst!("EVTCHNOP_reset", EVTCHNOP_RESET);
    konst!("VIRQ_TIMER", VIRQ_TIMER);
    konst!("VIRQ_DEBUG", VIRQ_DEBUG);
    konst!("VIRQ_TIMER", ringlet_xen::hypervisor::Virq::Timer as u32);

    size!("xen_hvm_param", XenHvmParam);
    off!("xen_hvm_param", XenHvmParam, domid: domid, pad: pad, index: index, value: value);
    size!("xen_hvm_evtchn_upcall_vector", XenHvmEvtchnUpcallVector);
    off!("xen_hvm_evtchn_upcall_vector", XenHvmEvtchnUpcallVector, vcpu: vcpu, vector: vector);
    konst!("HVM_PARAM_CALLBACK_IRQ", HVM_PARAM_CALLBACK_IRQ);
    konst!("HVM_PARAM_STORE_PFN", HVM_PARAM_STORE_PFN);
    konst!("HVM_PARAM_STORE_EVTCHN", HVM_PARAM_STORE_EVTCHN);
    konst!("HVM_PARAM_CONSOLE_PFN", HVM_PARAM_CONSOLE_PFN);
    konst!("HVM_PARAM_CONSOLE_EVTCHN", HVM_PARAM_CONSOLE_EVTCHN);
    konst!(
        "HVM_PARAM_CALLBACK_TYPE_VECTOR",
        HVM_PARAM_CALLBACK_TYPE_VECTOR
    );
    konst!("HVMOP_set_param", HVMOP_SET_PARAM);
    konst!("HVMOP_get_param", HVMOP_GET_PARAM);
    konst!(
        "HVMOP_set_evtchn_upcall_vector",
        HVMOP_SET_EVTCHN_UPCALL_VECTOR
    );

    size!("xen_add_to_physmap", XenAddToPhysmap);
    off!("xen_add_to_physmap", XenAddToPhysmap, domid: domid, size: size, space: space,
        idx: idx, gpfn: gpfn);
    konst!("XENMEM_add_to_physmap", XENMEM_ADD_TO_PHYSMAP);
    konst!("XENMEM_memory_map", XENMEM_MEMORY_MAP);
    konst!("XENMAPSPACE_shared_info", XENMAPSPACE_SHARED_INFO);
    konst!("XENMAPSPACE_grant_table", XENMAPSPACE_GRANT_TABLE);
    konst!("XENMAPSPACE_gmfn", XENMAPSPACE_GMFN);
    konst!("XENMAPIDX_grant_table_status", XENMAPIDX_GRANT_TABLE_STATUS);

    size!("sched_shutdown", SchedShutdown);
    off!("sched_shutdown", SchedShutdown, reason: reason);
    konst!("SCHEDOP_yield", SCHEDOP_YIELD);
    konst!("SCHEDOP_block", SCHEDOP_BLOCK);
    konst!("SCHEDOP_shutdown", SCHEDOP_SHUTDOWN);
    konst!("SCHEDOP_poll", SCHEDOP_POLL);
    konst!("SHUTDOWN_poweroff", SHUTDOWN_POWEROFF);
    konst!("SHUTDOWN_reboot", SHUTDOWN_REBOOT);
    konst!("SHUTDOWN_suspend", SHUTDOWN_SUSPEND);
    konst!("SHUTDOWN_crash", SHUTDOWN_CRASH);
    konst!("SHUTDOWN_watchdog", SHUTDOWN_WATCHDOG);

    size!("vcpu_set_singleshot_timer", VcpuSetSingleshotTimer);
    off!("vcpu_set_singleshot_timer", VcpuSetSingleshotTimer,
        timeout_abs_ns: timeout_abs_ns, flags: flags);
    size!("vcpu_register_vcpu_info", VcpuRegisterVcpuInfo);
    off!("vcpu_register_vcpu_info", VcpuRegisterVcpuInfo, mfn: mfn, offset: offset, rsvd: rsvd);
    konst!("VCPUOP_set_singleshot_timer", VCPUOP_SET_SINGLESHOT_TIMER);
    konst!("VCPUOP_stop_singleshot_timer", VCPUOP_STOP_SINGLESHOT_TIMER);
    konst!("VCPUOP_register_vcpu_info", VCPUOP_REGISTER_VCPU_INFO);
    konst!("VCPU_SSHOTTMR_future", VCPU_SSHOTTMR_FUTURE);

    size!("hvm_start_info", HvmStartInfo);
    off!("hvm_start_info", HvmStartInfo, magic: magic, version: version, flags: flags,
        nr_modules: nr_modules, modlist_paddr: modlist_paddr, cmdline_paddr: cmdline_paddr,
        rsdp_paddr: rsdp_paddr, memmap_paddr: memmap_paddr, memmap_entries: memmap_entries,
        reserved: reserved);
    size!("hvm_modlist_entry", HvmModlistEntry);
    off!("hvm_modlist_entry", HvmModlistEntry, paddr: paddr, size: size,
        cmdline_paddr: cmdline_paddr, reserved: reserved);
    size!("hvm_memmap_table_entry", HvmMemmapTableEntry);
    off!("hvm_memmap_table_entry", HvmMemmapTableEntry, addr: addr, size: size,
        type: type_, reserved: reserved);
    konst!("XEN_HVM_START_MAGIC_VALUE", XEN_HVM_START_MAGIC_VALUE);
    konst!("XEN_ELFNOTE_PHYS32_ENTRY", XEN_ELFNOTE_PHYS32_ENTRY);
    konst!("XEN_HVM_MEMMAP_TYPE_RAM", XEN_HVM_MEMMAP_TYPE_RAM);
    konst!("XEN_HVM_MEMMAP_TYPE_RESERVED", XEN_HVM_MEMMAP_TYPE_RESERVED);
    konst!("XEN_HVM_MEMMAP_TYPE_ACPI", XEN_HVM_MEMMAP_TYPE_ACPI);
    konst!("XEN_HVM_MEMMAP_TYPE_NVS", XEN_HVM_MEMMAP_TYPE_NVS);
    konst!("XEN_HVM_MEMMAP_TYPE_UNUSABLE", XEN_HVM_MEMMAP_TYPE_UNUSABLE);
    konst!("XEN_HVM_MEMMAP_TYPE_DISABLED", XEN_HVM_MEMMAP_TYPE_DISABLED);
    konst!("XEN_HVM_MEMMAP_TYPE_PMEM", XEN_HVM_MEMMAP_TYPE_PMEM);

    konst!("__HYPERVISOR_memory_op", HYPERVISOR_MEMORY_OP);
    konst!("__HYPERVISOR_xen_version", HYPERVISOR_XEN_VERSION);
    konst!("__HYPERVISOR_console_io", HYPERVISOR_CONSOLE_IO);
    konst!("__HYPERVISOR_grant_table_op", HYPERVISOR_GRANT_TABLE_OP);
    konst!("__HYPERVISOR_vcpu_op", HYPERVISOR_VCPU_OP);
    konst!("__HYPERVISOR_sched_op", HYPERVISOR_SCHED_OP);
    konst!("__HYPERVISOR_event_channel_op", HYPERVISOR_EVENT_CHANNEL_OP);
    konst!("__HYPERVISOR_hvm_op", HYPERVISOR_HVM_OP);
    konst!("XENVER_version", XENVER_VERSION);
    konst!("XENVER_extraversion", XENVER_EXTRAVERSION);
    konst!("sizeof(xen_extraversion_t)", XEN_EXTRAVERSION_LEN);
    konst!("DOMID_SELF", DOMID_SELF);
    konst!("DOMID_SELF", ringlet_xen::hypervisor::DomId::SELF.0);

    off!("r8_sring", SringHeader, req_prod: req_prod, req_event: req_event,
        rsp_prod: rsp_prod, rsp_event: rsp_event, pvt: pvt, __pad: pad);
    m.value("off r8_sring.ring", SRING_HEADER_SIZE);
    konst!("sizeof(union r8_sring_entry)", 8);
    konst!("__CONST_RING_SIZE(r8, 4096)", ring_size(8, 4096));
    konst!("sizeof(union r12_sring_entry)", 12);
    konst!("__CONST_RING_SIZE(r12, 4096)", ring_size(12, 4096));
    konst!("sizeof(union r112_sring_entry)", 112);
    konst!("__CONST_RING_SIZE(r112, 4096)", ring_size(112, 4096));

    konst!("XenbusStateUnknown", XenbusState::Unknown as u32);
    konst!("XenbusStateInitialising", XenbusState::Initialising as u32);
    konst!("XenbusStateInitWait", XenbusState::InitWait as u32);
    konst!("XenbusStateInitialised", XenbusState::Initialised as u32);
    konst!("XenbusStateConnected", XenbusState::Connected as u32);
    konst!("XenbusStateClosing", XenbusState::Closing as u32);
    konst!("XenbusStateClosed", XenbusState::Closed as u32);
    konst!(
        "XenbusStateReconfiguring",
        XenbusState::Reconfiguring as u32
    );
    konst!("XenbusStateReconfigured", XenbusState::Reconfigured as u32);
    m
}

#[test]
fn abi_matches_xen_headers() {
    let checked = c_layout::check(&PROGRAM, &rust_side()).expect("IfMissing::Fail never skips");
    assert!(checked > 200, "only {checked} numbers checked");
}

/// `evtchn_bind_virq` with a field too many: `vcpu` and `port` move.
#[allow(dead_code)] // only its offsets are read
#[repr(C)]
struct BrokenEvtchnBindVirq {
    virq: u32,
    extra: u32,
    vcpu: u32,
    port: u32,
}

#[test]
fn a_wrong_offset_is_reported() {
    let printed = c_layout::printed(&PROGRAM).expect("IfMissing::Fail never skips");
    let mut rust = rust_side();
    rust.value(
        "off evtchn_bind_virq.vcpu",
        offset_of!(BrokenEvtchnBindVirq, vcpu),
    );
    assert_eq!(
        rust.compare(&printed),
        Err(vec!["off evtchn_bind_virq.vcpu: C 4, Rust 8".to_string()])
    );
}
