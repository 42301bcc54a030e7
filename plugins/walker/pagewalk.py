"""A per-level page-table walker in the style of later kernels, and the ``maps``/``smaps`` views
behind it.  NOT 2.5.49: labelled by the kernels it resembles.

* :class:`MMWalk4` / :func:`walk_page_range_v4` / :func:`walk_page_vma_v4` follow ``mm/pagewalk.c``
  of Linux 4.x (``walk_page_range``: the VMAs met in order, ``test_walk`` per VMA -- 0 walk it, >0
  skip it, <0 abort -- ranges outside any VMA and empty PMD slots to ``pte_hole``; ``pmd_entry``
  per populated PMD entry; ``pte_entry`` for *every* entry of a present PTE page, empty ones
  included, as 2.6.25 to 5.x did), with the ``pgd_entry`` callback of 2.6.25's original (Matt
  Mackall, 2008), which 4.0 dropped and 5.6 brought back: no single kernel had exactly this set.
  On i386 the PUD is folded (no ``pud_entry``); without PAE the PMD is folded into the PGD, so
  ``pgd_entry`` runs for every PGD slot in range (a folded ``pgd_none`` is never true) and holes
  are found at the PMD.  ``VM_PFNMAP`` did not exist in 2.5, so no VMA is skipped by default.
  Callbacks receive the PGD/PMD *slot index* (for ``pgd_t *``/``pmd_t *``) or the PTE *value*.
  Any non-zero callback result stops the walk and is returned.
* Reads only (facade reads are free; the walk charges nothing): a PTE page shared by several mms
  under pt_shared is read in place, never unshared.
* :func:`maps` is 2.5's /proc/PID/maps (the core's ``show_map``).  :func:`smaps` is the per-VMA
  report of Linux 2.6.14 (``/proc/PID/smaps``, Mauricio Lin, 2005): Size, Rss, Shared/Private
  Clean/Dirty -- shared when ``page_count >= 2``, as 2.6.14's ``smaps_pte_range`` tested -- plus two
  mmframe extras labelled so: the PTE pages under the VMA and how many of them are shared between
  mms.  smaps figures depend on the page-table policy (a read fault fills a shared table for every
  sharer), so they are costs, offered to tests and reports, not to programs.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from mmframe.facade import MM, PAGE_SHIFT, PAGE_SIZE, VM, VMA, pte_dirty, pte_pfn, pte_present, show_map

EINVAL = 22


@attrs.define(slots=True)
class MMWalk4:
    """``struct mm_walk`` (Linux 4.x, plus 2.6.25's ``pgd_entry``): callbacks and the walk's state."""

    vm: VM
    mm: MM
    pgd_entry: Callable[[int, int, int, "MMWalk4"], int] | None = None
    pmd_entry: Callable[[int, int, int, "MMWalk4"], int] | None = None
    pte_entry: Callable[[int, int, int, "MMWalk4"], int] | None = None
    pte_hole: Callable[[int, int, "MMWalk4"], int] | None = None
    test_walk: Callable[[int, int, "MMWalk4"], int] | None = None
    private: Any = None
    vma: VMA | None = None


def _pte_range(idx: int, addr: int, end: int, walk: MMWalk4) -> int:
    pt = walk.mm.ptp[idx]
    ptes, mask, cb = pt.ptes, walk.vm.ptrs_per_pte - 1, walk.pte_entry
    i = (addr >> PAGE_SHIFT) & mask
    while addr < end:
        err = cb(ptes[i], addr, addr + PAGE_SIZE, walk)
        if err:
            return err
        addr += PAGE_SIZE
        i += 1
    return 0


def _pmd_range(addr: int, end: int, walk: MMWalk4) -> int:
    sh, ptp = walk.vm.pmd_shift, walk.mm.ptp
    while addr < end:
        idx = addr >> sh
        nxt = min(end, (idx + 1) << sh)
        if ptp[idx] is None or walk.vma is None:
            if walk.pte_hole is not None:
                err = walk.pte_hole(addr, nxt, walk)
                if err:
                    return err
        else:
            if walk.pmd_entry is not None:
                err = walk.pmd_entry(idx, addr, nxt, walk)
                if err:
                    return err
            if walk.pte_entry is not None:
                err = _pte_range(idx, addr, nxt, walk)
                if err:
                    return err
        addr = nxt
    return 0


def _pgd_range(addr: int, end: int, walk: MMWalk4) -> int:
    """PGD entries are never none here (PAE's are made with the mm; a folded one cannot be)."""
    sh = walk.vm.pgdir_shift
    while addr < end:
        slot = addr >> sh
        nxt = min(end, (slot + 1) << sh)
        if walk.pgd_entry is not None:
            err = walk.pgd_entry(slot, addr, nxt, walk)
            if err:
                return err
        if walk.pmd_entry is not None or walk.pte_entry is not None:
            err = _pmd_range(addr, nxt, walk)
            if err:
                return err
        addr = nxt
    return 0


def walk_page_range_v4(walk: MMWalk4, start: int, end: int) -> int:
    """Linux 4.x ``walk_page_range``: ``[start, end)`` of ``walk.mm``, VMA by VMA (``test_walk``
    first), gaps to ``pte_hole``.  -EINVAL if ``start >= end``.  O(V log V + pages walked)."""
    if start >= end:
        return -EINVAL
    vmas = walk.mm.vmas.overlapping(start, end)
    k = 0
    while start < end:
        vma = vmas[k] if k < len(vmas) else None
        if vma is None or start < vma.start:
            walk.vma = None
            nxt = end if vma is None else min(end, vma.start)
        else:
            walk.vma = vma
            nxt = min(end, vma.end)
            k += 1
            if walk.test_walk is not None:
                err = walk.test_walk(start, nxt, walk)
                if err > 0:  # skip this VMA: purely control, never returned
                    start = nxt
                    continue
                if err < 0:
                    return err
        if walk.vma is not None or walk.pte_hole is not None:
            err = _pgd_range(start, nxt, walk)
            if err:
                return err
        start = nxt
    return 0


def walk_page_vma_v4(walk: MMWalk4, vma: VMA) -> int:
    """Linux 4.x ``walk_page_vma``: exactly ``[vma.start, vma.end)``, after ``test_walk``."""
    walk.vma = vma
    if walk.test_walk is not None:
        err = walk.test_walk(vma.start, vma.end, walk)
        if err > 0:
            return 0
        if err < 0:
            return err
    return _pgd_range(vma.start, vma.end, walk)


def _mm(task_or_mm: Any) -> MM:
    return getattr(task_or_mm, "mm", task_or_mm)


def maps(task_or_mm: Any) -> list[str]:
    """The lines of 2.5's /proc/PID/maps for a task (or an mm).  O(V)."""
    return [show_map(v) for v in _mm(task_or_mm).vmas]


@attrs.define(slots=True)
class Smaps:
    """One VMA's 2.6.14 smaps figures (bytes) and mmframe's page-table extras (PTE pages)."""

    line: str
    size: int = 0
    rss: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    page_tables: int = 0  #: mmframe extra: PTE pages under the VMA (a PTE page may span VMAs)
    shared_page_tables: int = 0  #: mmframe extra: of those, shared between mms (pt_shared)

    def text(self) -> str:
        kb = lambda b: b >> 10  # noqa: E731
        return "\n".join([self.line, f"Size:          {kb(self.size):8d} kB", f"Rss:           {kb(self.rss):8d} kB",
                          f"Shared_Clean:  {kb(self.shared_clean):8d} kB",
                          f"Shared_Dirty:  {kb(self.shared_dirty):8d} kB",
                          f"Private_Clean: {kb(self.private_clean):8d} kB",
                          f"Private_Dirty: {kb(self.private_dirty):8d} kB",
                          f"mmframe.PageTables:       {self.page_tables:8d}",
                          f"mmframe.SharedPageTables: {self.shared_page_tables:8d}"])


def _smaps_pmd(idx: int, addr: int, nxt: int, walk: MMWalk4) -> int:
    s = walk.private
    s.page_tables += 1
    if walk.vm.sharers(walk.mm.ptp[idx]) > 1:
        s.shared_page_tables += 1
    return 0


def _smaps_pte(pte: int, addr: int, nxt: int, walk: MMWalk4) -> int:
    if not pte_present(pte):
        return 0
    s = walk.private
    s.rss += PAGE_SIZE
    dirty = pte_dirty(pte)
    if walk.vm.page_count(pte_pfn(pte)) >= 2:
        if dirty:
            s.shared_dirty += PAGE_SIZE
        else:
            s.shared_clean += PAGE_SIZE
    elif dirty:
        s.private_dirty += PAGE_SIZE
    else:
        s.private_clean += PAGE_SIZE
    return 0


def smaps(vm: VM, task_or_mm: Any) -> list[Smaps]:
    """The smaps report (Linux 2.6.14) of every VMA, through :func:`walk_page_vma_v4`.  O(pages)."""
    out = []
    for vma in _mm(task_or_mm).vmas:
        s = Smaps(show_map(vma), size=vma.end - vma.start)
        walk_page_vma_v4(MMWalk4(vm, _mm(task_or_mm), pmd_entry=_smaps_pmd, pte_entry=_smaps_pte, private=s), vma)
        out.append(s)
    return out
