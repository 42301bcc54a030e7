"""fork's half of the memory model: ``dup_mmap`` and the default ``copy_page_range``.

``dup_mmap`` copies the VMAs, then calls the ``mmframe_copy_pte_page`` hook once per populated PMD
slot of the parent (a PTE page spans VMAs, so a policy decides per PTE page, never per VMA), then
flushes the parent's TLB (its PTEs were write-protected).  The default copies a PTE page a VMA
range at a time: every present entry is copied, private writable ones (``VM_MAYWRITE`` without
``VM_SHARED``) are write-protected in both, shared ones are made clean, all are made old; each
page not reserved gains a reference and an rmap entry in the child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm import pgtable
from mmframe.mm.exit import exit_mmap
from mmframe.mm.overcommit import VM_ACCOUNT, vm_enough_memory, vm_unacct_memory
from mmframe.mm.page import PAGE_SHIFT, PG_reserved
from mmframe.mm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_RW, PTE_PRESENT_MASK, PtePage
from mmframe.mm.pte_change import FORK
from mmframe.mm.vma import VM_DONTCOPY, VM_LOCKED, VM_SHARED
from mmframe.usr import ENOMEM

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.mm.mm_struct import MMStruct

_RESERVED = 1 << PG_reserved


def dup_mmap(vm: Memory, old: MMStruct) -> MMStruct | int:
    new = vm.new_mm()
    if new is None:
        return -ENOMEM
    for v in old.vmas:
        if v.flags & VM_DONTCOPY:
            continue
        if v.flags & VM_ACCOUNT and not vm_enough_memory(vm, (v.end - v.start) >> PAGE_SHIFT):
            _abort(vm, new)
            return -ENOMEM
        if not vm.vma_alloc():
            if v.flags & VM_ACCOUNT:
                vm_unacct_memory(vm, (v.end - v.start) >> PAGE_SHIFT)
            _abort(vm, new)
            return -ENOMEM
        c = v.clone(v.start, v.end)
        if c.flags & VM_LOCKED:  # locks are not inherited (dup_mmap clears VM_LOCKED)
            c.set_flags(c.flags & ~VM_LOCKED)
        new.vmas.insert(c)
    new.def_flags = old.def_flags  # (copy_mm's memcpy: MCL_FUTURE is inherited)
    hook = vm._copy_hook
    for idx, pt in enumerate(old.ptp):
        if pt is not None and hook(vm, old, new, idx) is False:
            _abort(vm, new)
            return -ENOMEM
    vm.flush_tlb_mm(old)
    return new


def _abort(vm: Memory, new: MMStruct) -> None:
    exit_mmap(vm, new, vm._cpu())


def copy_page_range(vm: Memory, src: MMStruct, dst: MMStruct, idx: int) -> bool:
    """The mainline policy (2.5.49 ``copy_page_range`` for one PTE page): False if no page."""
    spt = src.ptp[idx]
    dpt = vm.pte_alloc(dst, idx)
    if dpt is None:
        return False
    copy_pte_range(vm, src, spt, dpt, idx, wrprotect_src=True, src_owner=src)
    return True


def copy_pte_range(vm: Memory, mm: MMStruct, spt: PtePage, dpt: PtePage, idx: int, *, wrprotect_src: bool,
                   src_owner: MMStruct, reason: int = FORK, keep_dirty: bool = False) -> None:
    """Copy the entries of ``spt`` under ``mm``'s VMAs into ``dpt``, with references and rmap
    entries; copy-on-write entries are write-protected in the copy (and in ``spt`` when
    ``wrprotect_src``, through the choke point as ``src_owner``'s write); shared ones start clean
    in the copy unless ``keep_dirty`` (the owner of a shared table's dirty bits unsharing it)."""
    acct = vm.acct
    if spt.high:
        acct.charge(vm.P_kmap)
    if dpt.high:
        acct.charge(vm.P_kmap)
    base = idx << vm.sh
    for v in mm.vmas.overlapping(base, base + (1 << vm.sh)):
        i0 = (max(v.start, base) - base) >> PAGE_SHIFT
        i1 = (min(v.end, base + (1 << vm.sh)) - base) >> PAGE_SHIFT
        cow, clean = v.cow, bool(v.flags & VM_SHARED) and not keep_dirty
        if i1 - i0 < pgtable.BULK_MIN:
            spt = _copy_slow(vm, spt, dpt, i0, i1, cow, clean, wrprotect_src, src_owner, idx, reason)
            continue
        s = spt.np()[i0:i1]
        if vm.swap.inuse:  # swap entries are copied, each slot gaining a reference (swap_duplicate)
            sw = np.flatnonzero((s != 0) & ((s & PTE_PRESENT_MASK) == 0))
            if len(sw):
                dpt.np()[i0:i1][sw] = s[sw]
                acct.charge(vm.P_pte_copy, len(sw))
                for e in s[sw].astype(np.int64).tolist():
                    vm.swap.swap_duplicate(e)
        pres = np.flatnonzero(s & PTE_PRESENT_MASK)
        if not len(pres):
            continue
        vals = s[pres]
        t = vals.dtype.type
        if cow:
            wr = (vals & _PAGE_RW) != 0
            if wr.any():
                if wrprotect_src:
                    # ask first, then write what the policy left: the table it returns (a copy,
                    # if it unshared), or nothing when it did the change itself
                    pt = vm.pte_change(src_owner, idx, reason, i0, i1)
                    if pt is not None:
                        if pt is not spt:
                            spt = pt
                            s = spt.np()[i0:i1]
                            pres = np.flatnonzero(s & PTE_PRESENT_MASK)
                            vals = s[pres]
                            wr = (vals & _PAGE_RW) != 0
                        s[pres[wr]] &= t(~_PAGE_RW & _mask(s))
                vals = vals & t(~_PAGE_RW & _mask(s))
        if clean:
            vals = vals & t(~_PAGE_DIRTY & _mask(s))
        vals = vals & t(~_PAGE_ACCESSED & _mask(s))
        dpt.np()[i0:i1][pres] = vals
        acct.charge(vm.P_pte_copy, len(pres))
        pfns = (vals >> t(PAGE_SHIFT)).astype(np.int64)
        real = (vm.flags_np[pfns] & _RESERVED) == 0
        rp = pfns[real]
        if len(rp):
            if len(rp) < 2 or (np.diff(np.sort(rp)) != 0).all():
                vm.count_np[rp] += 1  # distinct pages (one VMA maps a page once): no np.add.at
            else:
                np.add.at(vm.count_np, rp, 1)
            acct.charge(vm.P_ref, len(rp))
            dpt.rss += len(rp)
            vm.rmap.page_add_rmap_bulk(rp, dpt, pres[real] + i0)


def _mask(a: np.ndarray) -> int:
    return (1 << (8 * a.itemsize)) - 1


def _copy_slow(vm: Memory, spt: PtePage, dpt: PtePage, i0: int, i1: int, cow: bool, clean: bool,
               wrprotect_src: bool, src_owner: MMStruct, idx: int, reason: int) -> PtePage:
    """The same copy an entry at a time (the single path the bulk one must agree with); returns the
    source table as the policy left it (a copy if it unshared)."""
    acct, flags, count = vm.acct, vm.flags, vm.count
    sp, dp = spt.ptes, dpt.ptes
    changed = False
    write_src = wrprotect_src
    for i in range(i0, i1):
        pte = sp[i]
        if not pte & PTE_PRESENT_MASK:
            if pte:  # a swap entry
                dp[i] = pte
                acct.charge(vm.P_pte_copy)
                vm.swap.swap_duplicate(pte)
            continue
        if cow and pte & _PAGE_RW:
            if write_src and not changed:  # ask first; write the table the policy returns, if any
                changed = True
                pt = vm.pte_change(src_owner, idx, reason, i0, i1)
                if pt is None:
                    write_src = False
                else:
                    spt, sp = pt, pt.ptes
                    pte = sp[i]
            if write_src:
                sp[i] = pte & ~_PAGE_RW
            pte &= ~_PAGE_RW
        if clean:
            pte &= ~_PAGE_DIRTY
        pte &= ~_PAGE_ACCESSED
        dp[i] = pte
        acct.charge(vm.P_pte_copy)
        pfn = pte >> PAGE_SHIFT
        if flags[pfn] & _RESERVED:
            continue
        count[pfn] += 1
        acct.charge(vm.P_ref)
        dpt.rss += 1
        vm.rmap.page_add_rmap(pfn, dpt, i)
    return spt
