/* Prints the sizes, offsets and constants of Xen's public headers that
 * reactor-xen's abi module mirrors; tests/abi_layout.rs compares them. */
/* The interface a new guest gets (otherwise the headers show the 2005 one). */
#define __XEN_INTERFACE_VERSION__ __XEN_LATEST_INTERFACE_VERSION__

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/elfnote.h>
#include <xen/version.h>
#include <xen/hvm/params.h>
#include <xen/hvm/hvm_op.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/io/ring.h>
#include <xen/io/xenbus.h>

struct req8 { uint32_t a, b; };
struct rsp4 { uint16_t id; int16_t st; };
struct req12 { uint32_t a; uint16_t b, c, d, e; };
struct req112 { uint64_t id; uint8_t pad[104]; };
DEFINE_RING_TYPES(r8, struct req8, struct rsp4);
DEFINE_RING_TYPES(r12, struct req12, struct rsp4);
DEFINE_RING_TYPES(r112, struct req112, struct rsp4);

#define S(T) printf("size %s %zu\n", #T, sizeof(struct T))
#define O(T, f) printf("off %s.%s %zu\n", #T, #f, offsetof(struct T, f))
#define C(x) printf("const %s %llu\n", #x, (unsigned long long)(x))

int main(void)
{
    S(vcpu_time_info);
    O(vcpu_time_info, version); O(vcpu_time_info, pad0);
    O(vcpu_time_info, tsc_timestamp); O(vcpu_time_info, system_time);
    O(vcpu_time_info, tsc_to_system_mul); O(vcpu_time_info, tsc_shift);
    O(vcpu_time_info, flags); O(vcpu_time_info, pad1);
    S(vcpu_info);
    O(vcpu_info, evtchn_upcall_pending); O(vcpu_info, evtchn_upcall_mask);
    O(vcpu_info, evtchn_pending_sel); O(vcpu_info, arch); O(vcpu_info, time);
    S(arch_shared_info);
    O(arch_shared_info, max_pfn); O(arch_shared_info, pfn_to_mfn_frame_list_list);
    O(arch_shared_info, nmi_reason); O(arch_shared_info, p2m_cr3);
    O(arch_shared_info, p2m_vaddr); O(arch_shared_info, p2m_generation);
    S(shared_info);
    O(shared_info, vcpu_info); O(shared_info, evtchn_pending);
    O(shared_info, evtchn_mask); O(shared_info, wc_version); O(shared_info, wc_sec);
    O(shared_info, wc_nsec); O(shared_info, wc_sec_hi); O(shared_info, arch);
    C(XEN_LEGACY_MAX_VCPUS);
    C(sizeof(xen_ulong_t) * 8);

    S(grant_entry_v1);
    O(grant_entry_v1, flags); O(grant_entry_v1, domid); O(grant_entry_v1, frame);
    S(gnttab_query_size);
    O(gnttab_query_size, dom); O(gnttab_query_size, nr_frames);
    O(gnttab_query_size, max_nr_frames); O(gnttab_query_size, status);
    S(gnttab_set_version); O(gnttab_set_version, version);
    C(GTF_invalid); C(GTF_permit_access); C(GTF_accept_transfer); C(GTF_transitive);
    C(GTF_type_mask); C(GTF_readonly); C(GTF_reading); C(GTF_writing);
    C(GTF_PWT); C(GTF_PCD); C(GTF_PAT); C(GTF_sub_page);
    C(GNTTAB_NR_RESERVED_ENTRIES); C(GNTTAB_RESERVED_CONSOLE); C(GNTTAB_RESERVED_XENSTORE);
    C(GNTTABOP_map_grant_ref); C(GNTTABOP_unmap_grant_ref); C(GNTTABOP_setup_table);
    C(GNTTABOP_copy); C(GNTTABOP_query_size); C(GNTTABOP_set_version);
    C(GNTTABOP_get_version); C(GNTST_okay);

    S(evtchn_alloc_unbound);
    O(evtchn_alloc_unbound, dom); O(evtchn_alloc_unbound, remote_dom);
    O(evtchn_alloc_unbound, port);
    S(evtchn_bind_interdomain);
    O(evtchn_bind_interdomain, remote_dom); O(evtchn_bind_interdomain, remote_port);
    O(evtchn_bind_interdomain, local_port);
    S(evtchn_bind_virq);
    O(evtchn_bind_virq, virq); O(evtchn_bind_virq, vcpu); O(evtchn_bind_virq, port);
    S(evtchn_close); O(evtchn_close, port);
    S(evtchn_send); O(evtchn_send, port);
    S(evtchn_unmask); O(evtchn_unmask, port);
    C(EVTCHNOP_bind_interdomain); C(EVTCHNOP_bind_virq); C(EVTCHNOP_close);
    C(EVTCHNOP_send); C(EVTCHNOP_status); C(EVTCHNOP_alloc_unbound);
    C(EVTCHNOP_bind_ipi); C(EVTCHNOP_bind_vcpu); C(EVTCHNOP_unmask); C(EVTCHNOP_reset);
    C(VIRQ_TIMER); C(VIRQ_DEBUG);

    S(xen_hvm_param);
    O(xen_hvm_param, domid); O(xen_hvm_param, pad); O(xen_hvm_param, index);
    O(xen_hvm_param, value);
    S(xen_hvm_evtchn_upcall_vector);
    O(xen_hvm_evtchn_upcall_vector, vcpu); O(xen_hvm_evtchn_upcall_vector, vector);
    C(HVM_PARAM_CALLBACK_IRQ); C(HVM_PARAM_STORE_PFN); C(HVM_PARAM_STORE_EVTCHN);
    C(HVM_PARAM_CONSOLE_PFN); C(HVM_PARAM_CONSOLE_EVTCHN);
    C(HVM_PARAM_CALLBACK_TYPE_VECTOR);
    C(HVMOP_set_param); C(HVMOP_get_param); C(HVMOP_set_evtchn_upcall_vector);

    S(xen_add_to_physmap);
    O(xen_add_to_physmap, domid); O(xen_add_to_physmap, size);
    O(xen_add_to_physmap, space); O(xen_add_to_physmap, idx); O(xen_add_to_physmap, gpfn);
    C(XENMEM_add_to_physmap); C(XENMEM_memory_map);
    C(XENMAPSPACE_shared_info); C(XENMAPSPACE_grant_table); C(XENMAPSPACE_gmfn);
    C(XENMAPIDX_grant_table_status);

    S(sched_shutdown); O(sched_shutdown, reason);
    C(SCHEDOP_yield); C(SCHEDOP_block); C(SCHEDOP_shutdown); C(SCHEDOP_poll);
    C(SHUTDOWN_poweroff); C(SHUTDOWN_reboot); C(SHUTDOWN_suspend); C(SHUTDOWN_crash);
    C(SHUTDOWN_watchdog);

    S(vcpu_set_singleshot_timer);
    O(vcpu_set_singleshot_timer, timeout_abs_ns); O(vcpu_set_singleshot_timer, flags);
    S(vcpu_register_vcpu_info);
    O(vcpu_register_vcpu_info, mfn); O(vcpu_register_vcpu_info, offset);
    O(vcpu_register_vcpu_info, rsvd);
    C(VCPUOP_set_singleshot_timer); C(VCPUOP_stop_singleshot_timer);
    C(VCPUOP_register_vcpu_info); C(VCPU_SSHOTTMR_future);

    S(hvm_start_info);
    O(hvm_start_info, magic); O(hvm_start_info, version); O(hvm_start_info, flags);
    O(hvm_start_info, nr_modules); O(hvm_start_info, modlist_paddr);
    O(hvm_start_info, cmdline_paddr); O(hvm_start_info, rsdp_paddr);
    O(hvm_start_info, memmap_paddr); O(hvm_start_info, memmap_entries);
    O(hvm_start_info, reserved);
    S(hvm_modlist_entry);
    O(hvm_modlist_entry, paddr); O(hvm_modlist_entry, size);
    O(hvm_modlist_entry, cmdline_paddr); O(hvm_modlist_entry, reserved);
    S(hvm_memmap_table_entry);
    O(hvm_memmap_table_entry, addr); O(hvm_memmap_table_entry, size);
    O(hvm_memmap_table_entry, type); O(hvm_memmap_table_entry, reserved);
    C(XEN_HVM_START_MAGIC_VALUE); C(XEN_ELFNOTE_PHYS32_ENTRY);
    C(XEN_HVM_MEMMAP_TYPE_RAM); C(XEN_HVM_MEMMAP_TYPE_RESERVED);
    C(XEN_HVM_MEMMAP_TYPE_ACPI); C(XEN_HVM_MEMMAP_TYPE_NVS);
    C(XEN_HVM_MEMMAP_TYPE_UNUSABLE); C(XEN_HVM_MEMMAP_TYPE_DISABLED);
    C(XEN_HVM_MEMMAP_TYPE_PMEM);

    C(__HYPERVISOR_memory_op); C(__HYPERVISOR_xen_version); C(__HYPERVISOR_console_io);
    C(__HYPERVISOR_grant_table_op); C(__HYPERVISOR_vcpu_op); C(__HYPERVISOR_sched_op);
    C(__HYPERVISOR_event_channel_op); C(__HYPERVISOR_hvm_op);
    C(XENVER_version); C(XENVER_extraversion); C(sizeof(xen_extraversion_t));
    C(DOMID_SELF);

    /* io/ring.h: the header is the same for every ring type. */
    O(r8_sring, req_prod); O(r8_sring, req_event); O(r8_sring, rsp_prod);
    O(r8_sring, rsp_event); O(r8_sring, pvt); O(r8_sring, __pad); O(r8_sring, ring);
    C(__CONST_RING_SIZE(r8, 4096)); C(sizeof(union r8_sring_entry));
    C(__CONST_RING_SIZE(r12, 4096)); C(sizeof(union r12_sring_entry));
    C(__CONST_RING_SIZE(r112, 4096)); C(sizeof(union r112_sring_entry));

    C(XenbusStateUnknown); C(XenbusStateInitialising); C(XenbusStateInitWait);
    C(XenbusStateInitialised); C(XenbusStateConnected); C(XenbusStateClosing);
    C(XenbusStateClosed); C(XenbusStateReconfiguring); C(XenbusStateReconfigured);
    return 0;
}
