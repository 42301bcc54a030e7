"""pt_shared: shared page tables at fork, as Dave McCracken's shpte patch did in 2.5.41-mm .. 2.5.54-mm2.

At fork the child's PMD points at each of the parent's PTE pages (one reference per PTE page, no
per-entry work), write-protected in both unless a writable shared memory mapping (shmem, SysV shm;
not a file) covers the whole PTE page.  A write fault into a write-protected shared PTE page unshares it (``vm.unshare``: copy
the table; with a count of one only the PMD is made writable); read faults fill the shared table for
every sharer.  A whole-PTE-page munmap is a PMD operation; so is a whole-page mprotect that leaves
the page readable but not writable when the entries already carry that protection; any other
change to a shared PTE page (partial munmap or mprotect, mmap over it, copy-on-write) unshares first.  exit only dereferences a shared PTE page
(the core does that for any PTE page with more than one user).

It uses only :mod:`mmframe.facade` (``vm.pmd_share``, ``vm.pmd_set_writable``, ``vm.pmd_drop``,
``vm.unshare``, ``vm.sharers``, ``vm.ptes_follow_vma``), as every shipped plugin must.

Departures from the patch, each because the patch would change what a program observes
(docs/pt_shared.md lists them all): ``vm.unshare`` write-protects copy-on-write entries in the
source table whenever it copies, not only when one sharer remains (a sharer that exits later would
leave the last one writable entries to pages another copy maps); a whole-page mprotect stays at the
PMD level only when the entries already carry the new protection (the patch flipped the PMD bit
alone, so PROT_NONE entries stayed unreadable after mprotect(PROT_READ)); a writable shared file
mapping's table is shared write-protected (the patch shared it writable), so each mm's dirty bits
stay its own.

Option ``min_rss`` is not in the 2002 patch: an mmframe experiment (default 0: share every page).
"""

from __future__ import annotations

from typing import Any

from mmframe.facade import (MM, VM, VM_EXEC, VM_FAULT_OOM, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE, VMA,
                            MachineView, Option, hookimpl)

NAME = "pt_shared"


@hookimpl
def mmframe_options() -> list[Option]:
    return [
        Option("share", "bool", True, "share PTE pages at fork (false: loaded, but fork copies as mainline)"),
        Option("min_rss", "int", 0, "mmframe experiment, not in the 2002 patch: PTE pages with fewer present "
               "pages than this are copied at fork as mainline does (0 shares every PTE page)",
               minimum=0, maximum=1024),
    ]


@hookimpl
def mmframe_configure(machine: MachineView, options: dict[str, Any]) -> None:
    machine.plugin_state[NAME] = {**options, "shared_at_fork": 0, "unshares": 0, "pmd_ops": 0}


@hookimpl
def mmframe_report(machine: MachineView, figures: dict[str, Any]) -> None:
    st = machine.plugin_state[NAME]
    figures.update({f"{NAME}.shared_at_fork": st["shared_at_fork"], f"{NAME}.unshares": st["unshares"],
                    f"{NAME}.pmd_ops": st["pmd_ops"]})


def _shared_writable_whole(vm: VM, mm: MM, idx: int) -> bool:
    """A writable shared mapping of memory (shmem, SysV shm) covers the whole PTE page: its table
    can be shared writable.  Not for a file: there a store's dirty bit belongs to the mm that made
    it (msync, munmap and exit write back what that mm dirtied), so each mm must write its own
    table (a departure from the 2002 patch, which shared these writable too)."""
    base = idx << vm.pmd_shift
    v = mm.vmas.find(base)
    return (v is not None and v.start <= base and v.end >= base + (1 << vm.pmd_shift)
            and v.flags & (VM_SHARED | VM_MAYWRITE) == VM_SHARED | VM_MAYWRITE and not v.file_backed)


@hookimpl
def mmframe_copy_pte_page(vm: VM, src: MM, dst: MM, idx: int) -> bool | None:
    st = vm.plugin_state[NAME]
    if not st["share"] or src.ptp[idx].rss < st["min_rss"]:
        return None
    writable = _shared_writable_whole(vm, src, idx)
    vm.pmd_share(src, dst, idx, writable and vm.pmd_writable(src, idx))
    if not writable and vm.pmd_writable(src, idx):
        vm.pmd_set_writable(src, idx, False)
    st["shared_at_fork"] += 1
    return True


def _unshare(vm: VM, mm: MM, idx: int) -> bool:
    vm.plugin_state[NAME]["unshares"] += 1
    return vm.unshare(mm, idx) is not None


@hookimpl
def mmframe_handle_mm_fault(vm: VM, mm: MM, vma: VMA, address: int, write_access: bool) -> int | None:
    if write_access:
        idx = address >> vm.pmd_shift
        if mm.ptp[idx] is not None and not vm.pmd_writable(mm, idx) and not _unshare(vm, mm, idx):
            return VM_FAULT_OOM
    return None


#: reasons that leave a shared PTE page shared: faults fill it for every sharer (swap_in is one),
#: page_referenced clears accessed bits, and try_to_unmap (swap_out) clears an entry for every
#: sharer at once -- the core flushes each sharer's TLB and checks VM_LOCKED in each sharer's VMA,
#: as the 2002 patch's try_to_unmap_one walked the PTE page's mm chain.
_PASS = frozenset({"fault", "fork", "unshare", "exit", "swap_in", "referenced", "swap_out"})


@hookimpl
def mmframe_pte_change(vm: VM, mm: MM, idx: int, reason: str, start: int, end: int) -> bool | None:
    pt = mm.ptp[idx]
    if pt is None or vm.sharers(pt) == 1 or reason in _PASS:
        return None
    st = vm.plugin_state[NAME]
    whole = start == 0 and end == vm.ptrs_per_pte
    if whole and reason == "zap":
        vm.pmd_drop(mm, idx)
        st["pmd_ops"] += 1
        return True
    if whole and reason == "mprotect":
        v = mm.vmas.find(idx << vm.pmd_shift)
        readable = v.flags & (VM_READ | VM_EXEC) and not v.flags & VM_WRITE or v.flags & VM_WRITE and not v.flags & VM_SHARED
        if readable and vm.ptes_follow_vma(mm, idx, v):  # the patch did not test the entries
            if vm.pmd_writable(mm, idx):
                vm.pmd_set_writable(mm, idx, False)
            st["pmd_ops"] += 1
            return True
    if not _unshare(vm, mm, idx):
        raise MemoryError(f"{NAME}: no page to unshare a PTE page for {reason}")
    return None
