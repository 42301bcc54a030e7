"""exit's half of the memory model: ``exit_mmap`` tears an address space down.

Every populated PMD slot goes through the choke point (reason ``exit``): a PTE page this mm alone
uses is zapped (rmap entries and page references dropped) and freed; a shared one is only
dereferenced, as the 2002 patch did.  Then the VMAs (and their objects' references), the PMD/PGD
pages and the mm_struct are freed, and the TLB flushed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm.overcommit import VM_ACCOUNT, vm_unacct_memory
from mmframe.mm.page import PAGE_SHIFT
from mmframe.mm.pte_change import EXIT

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.mm.mm_struct import MMStruct


def exit_mmap(vm: Memory, mm: MMStruct, cpu: Any) -> None:
    ptrs = vm.geo.ptrs_per_pte
    for idx, pt in enumerate(mm.ptp if not vm.exit_zap_batch(mm) else ()):
        if pt is None:
            continue
        if vm.count[pt.pfn] == 1:
            pt = vm.pte_change(mm, idx, EXIT, 0, ptrs)
            if pt is not None:
                vm.zap_pte_range(pt, 0, ptrs)
        if mm.ptp[idx] is not None:
            vm.pmd_drop(mm, idx)
    vm.m.tlb.flush_tlb_mm(mm, cpu)
    for v in list(mm.vmas):
        if v.flags & VM_ACCOUNT:
            vm_unacct_memory(vm, (v.end - v.start) >> PAGE_SHIFT)
        mm.vmas.remove(v)
        vm.vma_free(v)
    vm._free_mm(mm)
