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

Sharing between processes that did not fork from each other, each design named for its year
(docs/pt_shared.md gives the rules and sources).  ``attach_2002`` is on by default: the -mm tree
carried it from 2.5.41-mm3 past 2.5.49-mm1, so 2.5.49-mm1's shared page tables included it;
``attach_2005 = true`` replaces it with the later design; ``attach_2002 = false`` (without 2005)
leaves sharing between forked relatives only.

- ``attach_2002``: the 2002 patch's ``pte_try_to_share`` (2.5.41-mm3, "Proactively share page
  tables for shared memory", carried in the -mm shpte patch to 2.5.54-mm2): on a fault into an
  empty PMD slot of a VM_SHARED mapping of an object covering the whole PTE page, another mm's PTE
  page for the same object, address range and offset is taken (writable PMD if VM_MAYWRITE); it is
  unshared by the 2002 rules above.
- ``attach_2005``: McCracken's 2005-06 rewrite (pt_share_pte, "[PATCH 1/1] Implement shared page
  tables", 2.6.13, Aug 2005, to "Simple shared page tables", 2.6.18-rc4, Aug 2006) instead of the 2002
  patch: only PTE pages of shared (or never-writable) object mappings covering the whole PTE page
  are shared, at fault or fork, between any mms mapping the same object at the same range and
  offset with the same VM_READ/WRITE/EXEC/SHARED flags; nothing is ever copied: mmap over, mprotect,
  munmap and mremap of a shared PTE page only drop this mm's reference (``pt_unshare_range``,
  ``pt_check_unshare_pte``), and the mm faults a table of its own later.
"""

from __future__ import annotations

from typing import Any

from mmframe.facade import (MM, REASONS, VM, VM_EXEC, VM_FAULT_OOM, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE,
                            VMA, HookScope, MachineView, Option, hookimpl, vma_mapping)

#: the 2005 design's VMFLAG_COMPARE: sharers' mappings must agree on these flags
VMFLAG_COMPARE = VM_READ | VM_WRITE | VM_EXEC | VM_SHARED
#: reasons whose PTE-range walk takes each PTE page's lock in the patched kernel (zap_pmd_range,
#: unmap_all_pages, change_pte_range, filemap_sync_pte_range)
_LOCKED_WALKS = frozenset({"zap", "exit", "mprotect", "msync"})
#: reasons after which the 2005 design drops a shared PTE page instead of copying it
_DROP_2005 = frozenset({"zap", "mprotect", "mmap", "mremap"})

NAME = "pt_shared"


@hookimpl
def mmframe_options() -> list[Option]:
    return [
        Option("share", "bool", True, "share PTE pages at fork (false: loaded, but fork copies as mainline)"),
        Option("min_rss", "int", 0, "mmframe experiment, not in the 2002 patch: PTE pages with fewer present "
               "pages than this are copied at fork as mainline does (0 shares every PTE page)",
               minimum=0, maximum=1024),
        Option("attach_2002", "bool", True, "the 2002 patch's pte_try_to_share (in -mm from 2.5.41-mm3, so on by "
               "default; false: only forked relatives share): a fault into an "
               "empty slot of a shared mapping covering a whole PTE page takes another mm's PTE page for the same "
               "object, range and offset (unrelated processes attaching one segment share)"),
        Option("attach_2005", "bool", False, "McCracken's 2005-06 rewrite instead of the 2002 patch: only shared (or "
               "never-writable) object mappings covering whole PTE pages are shared, between any mms mapping them "
               "at the same range and offset; a change drops the reference instead of copying"),
    ]


@hookimpl
def mmframe_configure(machine: MachineView, options: dict[str, Any]) -> None:
    # the 2005 rewrite replaced pte_try_to_share: it wins over attach_2002, on by default
    attach = "2005" if options.get("attach_2005") else "2002" if options.get("attach_2002") else None
    machine.plugin_state[NAME] = {**options, "attach": attach, "index": {}, "shared_at_fork": 0, "unshares": 0,
                                  "pmd_ops": 0, "attached": 0, "dropped": 0}


@hookimpl
def mmframe_hook_scope(machine: MachineView, options: dict[str, Any]) -> HookScope:
    """The fault hook acts only on a write through a write-protected PMD (unshare, or the 2005
    design's drop) and, with attach sharing, on a fault into an empty PMD slot; on every other
    fault it only takes the patch's per-fault PTE-page lock (``pte_page_lock``), which the core then
    charges in its place.  ``pte_change`` acts on the walks the patch locked (each PTE page's lock)
    and on shared tables, except for the reasons that leave them shared (``_PASS``)."""
    attach = options.get("attach_2002") or options.get("attach_2005")
    return HookScope(fault={"pmd_wrprotect", "no_pte"} if attach else {"pmd_wrprotect"},
                     fault_cost=("pte_page_lock",), pte_change=_LOCKED_WALKS,
                     pte_change_shared=frozenset(REASONS) - _PASS)


@hookimpl
def mmframe_report(machine: MachineView, figures: dict[str, Any]) -> None:
    st = machine.plugin_state[NAME]
    figures.update({f"{NAME}.shared_at_fork": st["shared_at_fork"], f"{NAME}.unshares": st["unshares"],
                    f"{NAME}.pmd_ops": st["pmd_ops"], f"{NAME}.attached": st["attached"],
                    f"{NAME}.dropped": st["dropped"]})


def _shared_writable_whole(vm: VM, mm: MM, idx: int) -> bool:
    """A writable shared mapping of memory (shmem, SysV shm) covers the whole PTE page: its table
    can be shared writable.  Not for a file: there a store's dirty bit belongs to the mm that made
    it (msync, munmap and exit write back what that mm dirtied), so each mm must write its own
    table (a departure from the 2002 patch, which shared these writable too)."""
    base = idx << vm.pmd_shift
    v = mm.vmas.find(base)
    return (v is not None and v.start <= base and v.end >= base + (1 << vm.pmd_shift)
            and v.flags & (VM_SHARED | VM_MAYWRITE) == VM_SHARED | VM_MAYWRITE and not v.file_backed)


def _covers(vm: VM, v: VMA, idx: int) -> bool:
    base = idx << vm.pmd_shift
    return v.start <= base and v.end >= base + (1 << vm.pmd_shift)


def _attachable(vm: VM, st: dict, v: VMA | None, idx: int) -> bool:
    """May ``v``'s PTE page in slot ``idx`` be shared with unrelated mms (by the chosen year's rules)?
    The mapping is of an object (shmem, SysV shm or a file) and covers the whole PTE page; 2002:
    VM_SHARED; 2005: VM_SHARED, or never writable (no VM_MAYWRITE: the patch's ``!anon_vma`` and
    ``!VM_WRITE`` tests, which mmframe has no anon_vma to make)."""
    if v is None or v.obj is None or not _covers(vm, v, idx):
        return False
    if v.flags & VM_SHARED:
        return True
    return st["attach"] == "2005" and not v.flags & (VM_WRITE | VM_MAYWRITE)


def _attach_writable(v: VMA) -> bool:
    """The PMD of an attached table: writable for a writable shared mapping of memory; a file's is
    write-protected (each mm's dirty bits stay its own, departure 4 of docs/pt_shared.md)."""
    return bool(v.flags & VM_MAYWRITE and v.flags & VM_SHARED) and not v.file_backed


def _register(st: dict, mm: MM, v: VMA) -> dict:
    """The plugin's copy of the object's ``i_mmap_shared`` list: mms mapping ``v``'s object at its
    range and offset, oldest first."""
    mms = st["index"].setdefault((id(vma_mapping(v)), v.start, v.end, v.pgoff), {})
    mms.setdefault(mm.id, mm)
    return mms


def _try_attach(vm: VM, st: dict, mm: MM, v: VMA, idx: int) -> None:
    """``pte_try_to_share`` / ``pt_share_pte``: walk the object's mappings for one at the same range,
    offset (and flags) whose mm has this PTE page, and share it; charge each step of the walk."""
    mms = _register(st, mm, v)
    base = idx << vm.pmd_shift
    mapping = vma_mapping(v)
    steps = 0
    for mid, other in list(mms.items()):
        if mid == mm.id:
            continue
        steps += 1
        ov = other.vmas.find(base) if other.users else None
        if ov is None or vma_mapping(ov) is not mapping or (ov.start, ov.end, ov.pgoff) != (v.start, v.end, v.pgoff):
            del mms[mid]  # gone from the list: unmapped, moved or exited
            continue
        if ov.flags & VMFLAG_COMPARE != v.flags & VMFLAG_COMPARE or other.ptp[idx] is None:
            continue
        steps += 1  # the match's PMD entry read
        vm.i_mmap_visit(steps)
        vm.pmd_share(other, mm, idx, _attach_writable(v))
        st["attached"] += 1
        return
    if steps:
        vm.i_mmap_visit(steps)


@hookimpl
def mmframe_copy_pte_page(vm: VM, src: MM, dst: MM, idx: int) -> bool | None:
    st = vm.plugin_state[NAME]
    if st["attach"] == "2005":  # the rewrite shared no private tables at fork: only attachable ones
        v = src.vmas.find(idx << vm.pmd_shift)
        if not _attachable(vm, st, v, idx):
            return None
        _register(st, src, v)
        _register(st, dst, v)
        vm.pmd_share(src, dst, idx, _attach_writable(v) and vm.pmd_writable(src, idx))
        st["shared_at_fork"] += 1
        return True
    if not st["share"] or src.ptp[idx].rss < st["min_rss"]:
        return None
    if st["attach"]:
        v = src.vmas.find(idx << vm.pmd_shift)
        if _attachable(vm, st, v, idx):
            _register(st, src, v)
            _register(st, dst, v)
    writable = _shared_writable_whole(vm, src, idx)
    vm.pmd_share(src, dst, idx, writable and vm.pmd_writable(src, idx))
    if not writable and vm.pmd_writable(src, idx):
        vm.pmd_set_writable(src, idx, False)
    st["shared_at_fork"] += 1
    return True


def _unshare(vm: VM, mm: MM, idx: int) -> bool:
    vm.plugin_state[NAME]["unshares"] += 1
    return vm.unshare(mm, idx) is not None


def _drop(vm: VM, st: dict, mm: MM, idx: int) -> None:
    """The 2005 design's unshare: this mm lets go of the shared PTE page (``pmd_clear_flush``) and
    will fault a table of its own."""
    vm.pmd_drop(mm, idx)
    vm.flush_tlb_mm(mm)
    st["dropped"] += 1


@hookimpl
def mmframe_handle_mm_fault(vm: VM, mm: MM, vma: VMA, address: int, write_access: bool) -> int | None:
    """Unshare on a write through a write-protected PMD (the 2005 design drops instead), attach
    into an empty slot; every fault takes the faulting PTE page's lock in the patched
    ``handle_mm_fault`` (an unsharing fault's is among the three ``unshare`` charges)."""
    idx = address >> vm.pmd_shift
    pt = mm.ptp[idx]
    if pt is None:
        st = vm.plugin_state[NAME]
        # (a write would unshare a table attached write-protected at once: it faults its own)
        if st["attach"] and _attachable(vm, st, vma, idx) and (not write_access or _attach_writable(vma)):
            _try_attach(vm, st, mm, vma, idx)
        vm.pte_page_lock()
        return None
    if write_access and not vm.pmd_writable(mm, idx):
        st = vm.plugin_state[NAME]
        if st["attach"] == "2005" and vm.sharers(pt) > 1:
            _drop(vm, st, mm, idx)  # a file's table shared write-protected: write a table of its own
            vm.pte_page_lock()  # then the fault locks the table it gets
        elif not _unshare(vm, mm, idx):
            return VM_FAULT_OOM
        return None
    vm.pte_page_lock()
    return None


#: reasons that leave a shared PTE page shared: faults fill it for every sharer (swap_in is one),
#: page_referenced clears accessed bits, and try_to_unmap (swap_out) clears an entry for every
#: sharer at once -- the core flushes each sharer's TLB and checks VM_LOCKED in each sharer's VMA,
#: as the 2002 patch's try_to_unmap_one walked the PTE page's mm chain.
_PASS = frozenset({"fault", "fork", "unshare", "exit", "swap_in", "referenced", "swap_out"})


@hookimpl
def mmframe_pte_change(vm: VM, mm: MM, idx: int, reason: str, start: int, end: int) -> bool | None:
    pt = mm.ptp[idx]
    if pt is None:
        return None
    if vm.sharers(pt) == 1:
        if reason in _LOCKED_WALKS:  # the patched kernel's walk locks every PTE page it changes
            vm.pte_page_lock()
        return None
    if reason in _PASS:
        return None
    st = vm.plugin_state[NAME]
    if st["attach"] == "2005" and reason in _DROP_2005:
        _drop(vm, st, mm, idx)
        return True
    whole = start == 0 and end == vm.ptrs_per_pte
    if whole and reason == "zap":
        vm.pmd_drop(mm, idx)
        st["pmd_ops"] += 1
        return True
    if whole and reason == "mprotect":
        v = mm.vmas.find(idx << vm.pmd_shift)
        readable = v.flags & (VM_READ | VM_EXEC) and not v.flags & VM_WRITE or v.flags & VM_WRITE and not v.flags & VM_SHARED
        if readable and vm.ptes_follow_vma(mm, idx, v):  # the patch did not test the entries
            vm.pte_page_lock()  # change_pte_range's lock around the PMD flip
            if vm.pmd_writable(mm, idx):
                vm.pmd_set_writable(mm, idx, False)
            st["pmd_ops"] += 1
            return True
    if not _unshare(vm, mm, idx):
        raise MemoryError(f"{NAME}: no page to unshare a PTE page for {reason}")
    return None
