"""fork's half of the memory model: ``dup_mmap`` and the default ``copy_page_range``.

``dup_mmap`` copies the VMAs, then calls the ``mmframe_copy_pte_page`` hook once per populated PMD
slot of the parent (a PTE page spans VMAs, so a policy decides per PTE page, never per VMA), then
flushes the parent's TLB (its PTEs were write-protected).  The default copies a PTE page a VMA
range at a time: every present entry is copied, private writable ones (``VM_MAYWRITE`` without
``VM_SHARED``) are write-protected in both, shared ones are made clean, all are made old; each
page not reserved gains a reference and an rmap entry in the child.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any

import numpy as np

from mmframe.mm import pgtable
from mmframe.mm.exit import exit_mmap
from mmframe.mm.overcommit import VM_ACCOUNT, vm_enough_memory, vm_unacct_memory
from mmframe.mm.page import GFP_ATOMIC, GFP_KERNEL, PAGE_SHIFT, PG_reserved, __GFP_HIGHMEM
from mmframe.mm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_RW, PTE_PRESENT_MASK, PtePage
from mmframe.mm.pte_change import FORK
from mmframe.plugin import CORE
from mmframe.mm.vma import VM_DONTCOPY, VM_LOCKED, VM_SHARED
from mmframe.usr import ENOMEM

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.mm.mm_struct import MMStruct

_RESERVED = 1 << PG_reserved
GFP_PTE_HIGH = GFP_KERNEL | __GFP_HIGHMEM  # (as pmd.pte_alloc allocates with HIGHPTE)


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
    idxs = [idx for idx, pt in enumerate(old.ptp) if pt is not None]
    if not copy_page_range_batch(vm, old, new, idxs):
        for idx in idxs:
            if hook(vm, old, new, idx) is False:
                _abort(vm, new)
                return -ENOMEM
    vm.flush_tlb_mm(old)
    return new


def _abort(vm: Memory, new: MMStruct) -> None:
    exit_mmap(vm, new, vm._cpu())


def copy_page_range_batch(vm: Memory, src: MMStruct, dst: MMStruct, idxs: list[int]) -> bool:
    """The mainline :func:`copy_page_range` of every PTE page ``idxs`` of ``src`` in one numpy pass
    (host time only): the same PTE pages, entries, references, rmap entries and links, pte_chain
    objects, page allocations in the same order, choke-point counts and charges as one call per
    PTE page.  Taken only where that is certain before anything changes; False (nothing done,
    the caller goes a PTE page at a time) otherwise:

    - no plugin implements ``mmframe_copy_pte_page`` or ``mmframe_pte_change`` (a policy decides
      per PTE page), ``mmframe_alloc_pages`` is the core's, no reservation site is open, no swap
      entry can be met;
    - no page is mapped twice among the entries copied (so each page's rmap change is
      independent of the order);
    - every allocation the copies make (the PTE pages, and the pte_chain slab pages, interleaved
      as the single path makes them) is sure to be served on pass 1
      (:meth:`~mmframe.mm.page_alloc.PageAllocator.pass1_sure`): no reclaim can run between them
      and see the deferred writes, nothing can fail.

    O(entries) numpy plus O(PTE pages + VMAs) Python."""
    m = vm.m
    npt = len(idxs)
    if (npt < 2 or vm._pte_hook is not None or vm.swap.inuse or not m.core_alloc or m.reserving
            or m.hooks.resolved["mmframe_copy_pte_page"].owners != (CORE,)):
        return False
    P = vm.geo.ptrs_per_pte
    pts = [src.ptp[i] for i in idxs]
    S = np.concatenate([pt.np() for pt in pts])  # the source entries, PTE page after PTE page
    t = S.dtype.type
    full = _mask(S)
    # the bits each entry loses in the copy (0: under no VMA, not copied), and its VMA segments
    clear = np.zeros(len(S), dtype=S.dtype)
    seg_lo: list[int] = []
    seg_hi: list[int] = []
    sh = vm.sh - PAGE_SHIFT  # vpn -> PMD slot

    def at(vpn: int) -> int:  # the position in S of the first entry at or above page ``vpn``
        q = vpn >> sh
        j = bisect_left(idxs, q)
        return j * P + (vpn & (P - 1) if j < npt and idxs[j] == q else 0)

    for v in src.vmas:
        lo, hi = at(v.start >> PAGE_SHIFT), at(v.end >> PAGE_SHIFT)
        if lo >= hi:
            continue
        clean = bool(v.flags & VM_SHARED)
        clear[lo:hi] = _PAGE_ACCESSED | (_PAGE_RW if v.cow else 0) | (_PAGE_DIRTY if clean else 0)
        cuts = list(range((lo // P + 1) * P, hi, P))  # a VMA's range split at PTE page boundaries
        seg_lo += [lo] + cuts
        seg_hi += cuts + [hi]
    pres = np.flatnonzero((S & t(PTE_PRESENT_MASK)) != 0)
    pres = pres[clear[pres] != 0]
    vals = S[pres]
    clr = clear[pres]
    wr = (vals & clr & t(_PAGE_RW)) != 0  # copy-on-write entries still writable in the source
    vals &= ~clr & t(full)
    pfns = (vals >> t(PAGE_SHIFT)).astype(np.int64)
    real = (vm.flags_np[pfns] & _RESERVED) == 0
    rp = pfns[real]
    rpos = pres[real]
    rmap = vm.rmap
    if not rmap.distinct(rp):
        return False
    bounds = np.searchsorted(rpos, np.arange(npt + 1, dtype=np.int64) * P)
    deltas = rmap.chain_deltas_distinct(rp, bounds).tolist()
    gfp = GFP_PTE_HIGH if vm.highpte else GFP_KERNEL
    cpu = m.current_cpu()
    if not vm.pa.pass1_sure([(gfp, npt), (GFP_ATOMIC, rmap.cache.pages_needed(sum(deltas)))], cpu):
        return False
    # the choke point: each VMA segment holding a writable copy-on-write entry is changed (FORK)
    wfull = np.zeros(len(S) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pres[wr], minlength=len(S)), out=wfull[1:])
    lo_a, hi_a = np.array(seg_lo, dtype=np.int64), np.array(seg_hi, dtype=np.int64)
    changed = lo_a[(wfull[hi_a] - wfull[lo_a]) > 0] // P  # the PTE page of each such segment
    high_src = np.array([pt.high for pt in pts], dtype=bool)
    # the allocations, in the single path's order: each PTE page, then its pte_chain objects
    dpts = []
    for idx, d in zip(idxs, deltas):
        dpt = vm.pte_alloc(dst, idx)
        assert dpt is not None, "pass1_sure promised this page"
        dpts.append(dpt)
        if d:
            rmap._chains_delta(d)
    acct = vm.acct
    vm.pte_changes[FORK] += len(changed)
    high_dst = np.array([pt.high for pt in dpts], dtype=bool)
    kmaps = int(high_src.sum()) + int(high_dst.sum()) + int(high_src[changed].sum())
    if kmaps:
        acct.charge(vm.P_kmap, kmaps)
    # the writes: the source write-protected, the copies, references, rmap entries
    if wr.any():
        S[pres[wr]] &= t(~_PAGE_RW & full)
        for j in np.unique(changed).tolist():
            pts[j].np()[:] = S[j * P:(j + 1) * P]
    D = np.zeros(len(S), dtype=S.dtype)
    D[pres] = vals
    for j, dpt in enumerate(dpts):
        dpt.np()[:] = D[j * P:(j + 1) * P]
    acct.charge(vm.P_pte_copy, len(pres))
    vm.count_np[rp] += 1
    acct.charge(vm.P_ref, len(rp))
    dpfn = np.array([dpt.pfn for dpt in dpts], dtype=np.int64)
    page_of = rpos // P
    slots = rpos - page_of * P
    ids = rmap.add_distinct(rp, dpfn[page_of] * 1024 + slots)
    for j, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        if b > a:
            dpt = dpts[j]
            dpt.rss += b - a
            dpt.np_rid()[slots[a:b]] = ids[a:b]
    return True


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
