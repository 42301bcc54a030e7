"""Pinning user pages for I/O (2.5.49 ``mm/memory.c``): ``follow_page``, ``get_user_pages`` and
``make_pages_present``.

``get_user_pages`` walks ``[start, start + nr_pages pages)`` of an mm VMA by VMA
(``find_extend_vma``: a stack grows), refuses a ``VM_IO`` area or one without the wanted right
(``VM_WRITE``/``VM_READ``; with ``force`` the ``VM_MAY*`` right suffices) with -EFAULT, and for each
page looks it up with ``follow_page`` (a write wants a writable PTE under a writable PMD) and, on a
miss, calls the fault policy (``handle_mm_fault`` through its hook, exactly as a fault would: a
write lookup breaks copy-on-write, and pt_shared unshares a write-protected PMD as it would for a
write fault), then looks again.  Each page found gets a reference (``page_cache_get``) unless it is
reserved (the ZERO_PAGE); those references are the pins direct I/O holds until its bios complete.
It returns the page array, or -EFAULT (a hole, SIGBUS) / -ENOMEM (out of memory) when no page at
all was had; a partial array when some were (the kernel's count).

Direct I/O calls it through the user-page mapping hook ``mmframe_get_user_pages`` (contract 1.6),
whose core implementation (``trylast``) is :func:`get_user_pages`; a plugin may answer instead (the
page-walk plugin does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmframe.mm.fault import VM_FAULT_OOM, VM_FAULT_SIGBUS
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE, PG_reserved
from mmframe.mm.pgtable import _PAGE_DIRTY, _PAGE_RW, PTE_PRESENT_MASK, TASK_SIZE
from mmframe.mm.vma import VM_IO, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE
from mmframe.usr import EFAULT, ENOMEM

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.mm.vma import VMA

_RESERVED = 1 << PG_reserved


def follow_page(vm: Memory, mm: MMStruct, addr: int, write: bool) -> int:
    """The pfn mapped at ``addr`` if present (and, for ``write``, writable through both the PTE and
    the PMD), else -1.  Marks a written page's PTE dirty as the hardware would.  O(1)."""
    if not 0 <= addr < TASK_SIZE:
        return -1
    idx = addr >> vm.sh
    pt = mm.ptp[idx]
    if pt is None:
        return -1
    i = (addr >> PAGE_SHIFT) & vm.mask
    pte = pt.ptes[i]
    if not pte & PTE_PRESENT_MASK:
        return -1
    if write:
        if not pte & _PAGE_RW or not mm.pmd[idx] & _PAGE_RW:
            return -1
        if not pte & _PAGE_DIRTY:
            pt.ptes[i] = pte | _PAGE_DIRTY
    return pte >> PAGE_SHIFT


def find_extend_vma(vm: Memory, mm: MMStruct, addr: int) -> VMA | None:
    """``find_extend_vma``: the VMA holding ``addr``, growing a stack down to it if it lies below."""
    vma = mm.vmas.find(addr)
    if vma is None:
        return None
    if vma.start <= addr:
        return vma
    return vma if vm.expand_stack(mm, vma, addr) else None


def get_user_pages(vm: Memory, mm: MMStruct, start: int, nr_pages: int, write: bool,
                   force: bool = False) -> list[int] | int:
    """2.5.49 ``get_user_pages``: the pinned pages of ``nr_pages`` pages from ``start`` (page
    aligned by the caller), faulting them in; -EFAULT/-ENOMEM if none.  A reserved page (the
    ZERO_PAGE) is returned without a reference.  O(pages), one fault per missing page."""
    want = (VM_WRITE | VM_MAYWRITE) if write else (VM_READ | VM_MAYREAD)
    want &= (VM_MAYREAD | VM_MAYWRITE) if force else (VM_READ | VM_WRITE)
    pages: list[int] = []
    addr = start & ~(PAGE_SIZE - 1)
    count, flags, acct, P_ref = vm.count, vm.flags, vm.acct, vm.P_ref
    fault = vm._fault_hook
    while len(pages) < nr_pages:
        vma = find_extend_vma(vm, mm, addr)
        if vma is None or vma.flags & VM_IO or not vma.flags & want:
            return pages or -EFAULT
        while len(pages) < nr_pages and addr < vma.end:
            pfn = follow_page(vm, mm, addr, write)
            while pfn < 0:
                acct.charge(vm.P_fault)
                r = fault(vm, mm, vma, addr, write)
                if r == VM_FAULT_SIGBUS:
                    return pages or -EFAULT
                if r == VM_FAULT_OOM:
                    return pages or -ENOMEM
                pfn = follow_page(vm, mm, addr, write)
            if not flags[pfn] & _RESERVED:
                count[pfn] += 1
                vm.pins[pfn] = vm.pins.get(pfn, 0) + 1
                acct.charge(P_ref)
            pages.append(pfn)
            addr += PAGE_SIZE
    return pages


def put_user_pages(vm: Memory, pages: list[int]) -> None:
    """Release what :func:`get_user_pages` pinned (``page_cache_release`` of each non-reserved)."""
    flags = vm.flags
    for pfn in pages:
        if not flags[pfn] & _RESERVED:
            vm.unpin(pfn)


def make_pages_present(vm: Memory, mm: MMStruct, start: int, end: int, write: bool) -> int:
    """2.5.49 ``make_pages_present``: fault in ``[start, end)`` through ``get_user_pages`` and drop
    the references again; 0, or the error."""
    n = (end - start + PAGE_SIZE - 1) >> PAGE_SHIFT
    pages = get_user_pages(vm, mm, start, n, write, True)
    if isinstance(pages, int):
        return pages
    put_user_pages(vm, pages)
    return 0 if len(pages) == n else -EFAULT


class Gup:
    """Part of :class:`~mmframe.mm.memory.Memory`: the functions above as methods (what hooks and
    the facade call)."""

    __slots__ = ()

    def follow_page(self, mm: MMStruct, addr: int, write: bool) -> int:
        return follow_page(self, mm, addr, write)  # type: ignore[arg-type]

    def get_user_pages(self, mm: MMStruct, start: int, nr_pages: int, write: bool, force: bool = False) -> list[int] | int:
        return get_user_pages(self, mm, start, nr_pages, write, force)  # type: ignore[arg-type]

    def put_user_pages(self, pages: list[int]) -> None:
        put_user_pages(self, pages)  # type: ignore[arg-type]

    def find_extend_vma(self, mm: MMStruct, addr: int) -> VMA | None:
        return find_extend_vma(self, mm, addr)  # type: ignore[arg-type]

    def fault_in(self, mm: MMStruct, vma: VMA, addr: int, write: bool) -> int:
        """The fault policy chain on ``addr`` as a fault would run it (``page_fault`` charged)."""
        self.acct.charge(self.P_fault)  # type: ignore[attr-defined]
        return self._fault_hook(self, mm, vma, addr, write)  # type: ignore[attr-defined]

    def pin_user_page(self, pfn: int) -> bool:
        """``page_cache_get`` of a page found for I/O, unless it is reserved (the ZERO_PAGE)."""
        if self.flags[pfn] & _RESERVED:  # type: ignore[attr-defined]
            return False
        self.count[pfn] += 1  # type: ignore[attr-defined]
        self.pins[pfn] = self.pins.get(pfn, 0) + 1  # type: ignore[attr-defined]
        self.acct.charge(self.P_ref)  # type: ignore[attr-defined]
        return True
