"""walker: Ingo Oeser's page walk API (2.5.49-mm1's ``page-walk-api.patch``: ``mm/page_walk.c``,
``include/linux/page_walk.h``; "get_user_pages rewrite", LKML
``<20021104144937.H659@nightmaster.csn.tu-chemnitz.de>``, 4 Nov 2002, and the five-patch series of
7 Nov, ``<20021107110840.P659@nightmaster.csn.tu-chemnitz.de>``).  Never merged: dropped in
2.5.59-mm1 ("This is 2.7 material").  Andrew Morton in the 2.5.49-mm1 announcement
(``<3DDEFE51.E1D9F8E7@digeo.com>``): it "doesn't actually add anything new yet" -- its value is one
API where code had several.

* :func:`walk_user_pages` walks ``[start, end)`` of an mm VMA by VMA (``find_extend_vma``), -EFAULT
  on a missing VMA, a ``VM_IO`` one or one without the wanted right; each page is looked up with
  ``follow_page`` and, on a miss, faulted in through the fault policy chain (as the patch dropped
  ``page_table_lock``, called ``handle_mm_fault`` and retook it): a read walk reads through a shared
  PTE page without unsharing it, a write walk unshares as a write fault would.  SIGBUS is -EFAULT,
  OOM -ENOMEM.  Then the walker callback runs once per page: 0 continue, 1 done, < 0 an error,
  after which the cleaner runs.
* Collectors: the page array (``gup_add_pages``: what ``get_user_pages`` returned, a reference per
  page unless reserved) and the scatter/gather list (``gup_add_sgls``: one ``(pfn, offset, length)``
  entry per user page, no coalescing -- the block layer coalesces; the first entry's offset and the
  last's length fixed up as ``fixup_sgl_walk`` did).  ``max_pfn`` with -ERANGE for a page above it
  came in the follow-up of **24 Nov 2002** ("[PATCH] Really start using the page walking API"), and
  is labelled so.
* ``get_user_pages`` and ``make_pages_present`` reimplemented on the walk, as the patch did; the
  plugin answers the user-page mapping hook (``mmframe_get_user_pages``), so direct I/O builds its
  bios from the walk.

Not done yet (issue 18): the per-level walker in the style of later kernels and the ``maps`` /
``smaps`` views.  Uses only :mod:`mmframe.facade`.
"""

from __future__ import annotations

from typing import Any, Callable

from mmframe.facade import (MM, PAGE_SIZE, VM, VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_IO, VM_MAYREAD, VM_MAYWRITE,
                            VM_READ, VM_WRITE, MachineView, Option, hookimpl)

NAME = "walker"
EFAULT, ENOMEM, ERANGE = 14, 12, 34  # asm-i386/errno.h


class PageWalk:
    """``struct page_walk``: the range, the rights wanted, the callbacks and their data; ``page``,
    ``virt`` and ``vma`` describe the current page when ``walker`` runs.  Reusable after a walk the
    walker stopped (1), not after an error (set it up again)."""

    __slots__ = ("mm", "start", "end", "write", "force", "walker", "cleaner", "data", "page", "virt", "vma")

    def __init__(self, mm: MM, start: int, end: int, write: bool, walker: Callable[[PageWalk], int],
                 cleaner: Callable[[PageWalk], None] | None = None, data: Any = None, force: bool = False) -> None:
        self.mm, self.start, self.end, self.write, self.force = mm, start, end, write, force
        self.walker, self.cleaner, self.data = walker, cleaner, data
        self.page = -1
        self.virt = start
        self.vma: Any = None


def walk_user_pages(vm: VM, walk: PageWalk) -> int:
    """Walk ``[walk.start, walk.end)``: 0 when every page was walked, 1 when the walker stopped
    it, or a negative errno (the cleaner has run).  O(pages), one fault per missing page."""
    want = (VM_WRITE | VM_MAYWRITE) if walk.write else (VM_READ | VM_MAYREAD)
    want &= (VM_MAYREAD | VM_MAYWRITE) if walk.force else (VM_READ | VM_WRITE)
    mm, write = walk.mm, walk.write
    addr = walk.start & ~(PAGE_SIZE - 1)
    end = walk.end
    while addr < end:
        vma = vm.find_extend_vma(mm, addr)
        if vma is None or vma.flags & VM_IO or not vma.flags & want:
            return _abort(walk, -EFAULT)
        walk.vma = vma
        stop = min(end, vma.end)
        while addr < stop:
            pfn = vm.follow_page(mm, addr, write)
            while pfn < 0:  # the patch drops page_table_lock, faults, retakes it
                r = vm.fault_in(mm, vma, addr, write)
                if r == VM_FAULT_SIGBUS:
                    return _abort(walk, -EFAULT)
                if r == VM_FAULT_OOM:
                    return _abort(walk, -ENOMEM)
                pfn = vm.follow_page(mm, addr, write)
            walk.page, walk.virt = pfn, addr
            rc = walk.walker(walk)
            if rc < 0:
                return _abort(walk, rc)
            if rc == 1:
                return 1
            addr += PAGE_SIZE
    return 0


def _abort(walk: PageWalk, err: int) -> int:
    if walk.cleaner is not None:
        walk.cleaner(walk)
    return err


# --- collectors ----------------------------------------------------------------------------------

class PageArray:
    """``gup_add_pages``' state: the pages collected (each pinned unless reserved) and the limit."""

    __slots__ = ("vm", "pages", "nr")

    def __init__(self, vm: VM, nr: int) -> None:
        self.vm, self.pages, self.nr = vm, [], nr


def gup_add_pages(walk: PageWalk) -> int:
    d = walk.data
    d.vm.pin_user_page(walk.page)
    d.pages.append(walk.page)
    return 1 if len(d.pages) >= d.nr else 0


def setup_simple_page_walk(vm: VM, mm: MM, start: int, nr_pages: int, write: bool, force: bool = False) -> PageWalk:
    """The page-array walk over ``nr_pages`` pages from ``start``."""
    start &= ~(PAGE_SIZE - 1)
    return PageWalk(mm, start, start + nr_pages * PAGE_SIZE, write, gup_add_pages, None, PageArray(vm, nr_pages),
                    force)


def get_user_pages(vm: VM, mm: MM, start: int, nr_pages: int, write: bool, force: bool = False) -> list[int] | int:
    """``get_user_pages`` on the walk: the pinned pages, or the error when none were had (a
    partial array otherwise, as the core's)."""
    walk = setup_simple_page_walk(vm, mm, start, nr_pages, write, force)
    rc = walk_user_pages(vm, walk)
    pages = walk.data.pages
    if rc < 0 and not pages:
        return rc
    return pages


def make_pages_present(vm: VM, mm: MM, start: int, end: int, write: bool) -> int:
    """``make_pages_present`` on the walk: fault ``[start, end)`` in; 0 or the error."""
    rc = walk_user_pages(vm, PageWalk(mm, start, end, write, lambda w: 0, None, None, True))
    return min(rc, 0)


class SgList:
    """``gup_add_sgls``' state: entries ``(pfn, offset, length)``, the limit, ``max_pfn`` (24 Nov
    2002 follow-up; None: no limit) and the pins to release if the walk fails."""

    __slots__ = ("vm", "sgl", "max_entries", "max_pfn", "pinned")

    def __init__(self, vm: VM, max_entries: int, max_pfn: int | None) -> None:
        self.vm, self.sgl, self.max_entries, self.max_pfn = vm, [], max_entries, max_pfn
        self.pinned: list[int] = []


def gup_add_sgls(walk: PageWalk) -> int:
    d = walk.data
    if d.max_pfn is not None and walk.page > d.max_pfn:
        return -ERANGE  # the 24 Nov 2002 follow-up: not reachable by the device's DMA
    if d.vm.pin_user_page(walk.page):
        d.pinned.append(walk.page)
    d.sgl.append((walk.page, 0, PAGE_SIZE))  # one entry per page: no coalescing
    return 1 if len(d.sgl) >= d.max_entries else 0


def cleanup_sgl_walk(walk: PageWalk) -> None:
    d = walk.data
    d.vm.put_user_pages(d.pinned)
    d.pinned, d.sgl = [], []


def setup_sgl_page_walk(vm: VM, mm: MM, start: int, length: int, write: bool,
                        max_pfn: int | None = None) -> PageWalk:
    """The scatter/gather walk of the bytes ``[start, start + length)``."""
    first = start & ~(PAGE_SIZE - 1)
    last = (start + length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    return PageWalk(mm, first, last, write, gup_add_sgls, cleanup_sgl_walk,
                    SgList(vm, (last - first) // PAGE_SIZE, max_pfn))


def get_user_sgl(vm: VM, mm: MM, start: int, length: int, write: bool,
                 max_pfn: int | None = None) -> list[tuple[int, int, int]] | int:
    """The scatter/gather list of a user buffer (``fixup_sgl_walk``: the first entry starts at the
    buffer's offset in its page, the last ends with the buffer), pinned; or the error."""
    if length <= 0:
        return []
    walk = setup_sgl_page_walk(vm, mm, start, length, write, max_pfn)
    rc = walk_user_pages(vm, walk)
    if rc < 0:
        return rc
    sgl = walk.data.sgl
    off = start & (PAGE_SIZE - 1)
    pfn, _, ln = sgl[0]
    sgl[0] = (pfn, off, ln - off)
    tail = (start + length) & (PAGE_SIZE - 1)
    if tail:
        pfn, o, ln = sgl[-1]
        sgl[-1] = (pfn, o, ln - (PAGE_SIZE - tail))
    return sgl


def release_sgl(vm: VM, sgl: list[tuple[int, int, int]]) -> None:
    """Drop the references an sg list's pages hold."""
    vm.put_user_pages([pfn for pfn, _, _ in sgl])


# --- hooks -----------------------------------------------------------------------------------------

@hookimpl
def mmframe_options() -> list[Option]:
    return [Option("map_user_pages", "bool", True, "answer the user-page mapping hook with the walk (direct "
                   "I/O builds its bios from it); false: the core's get_user_pages")]


@hookimpl
def mmframe_configure(machine: MachineView, options: dict[str, Any]) -> None:
    machine.plugin_state[NAME] = {"map_user_pages": options["map_user_pages"], "walks": 0}


@hookimpl
def mmframe_get_user_pages(vm: VM, mm: MM, start: int, nr_pages: int, write: bool, force: bool) -> list[int] | int | None:
    state = vm.plugin_state.get(NAME)
    if state is None or not state["map_user_pages"]:
        return None
    state["walks"] += 1
    return get_user_pages(vm, mm, start, nr_pages, write, force)


@hookimpl
def mmframe_report(machine: MachineView, figures: dict[str, Any]) -> None:
    figures["walker.walks"] = machine.plugin_state.get(NAME, {}).get("walks", 0)
