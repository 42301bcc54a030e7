"""A slab-like accounting of kernel objects in lowmem (pte_chains, VMAs, mm and task structs).

Each cache packs ``PAGE_SIZE // size`` objects into order-0 pages (objects are aligned to
``align``); it takes a page when the objects no longer fit and gives one back when they fit in one
page fewer.  Objects are assumed packed: the slab's fragmentation and management overhead are not
modelled, so lowmem in kernel objects is exact to the page for a packed cache and a lower bound
otherwise.  Bulk paths (fork, exit) allocate and free many objects in one call.
"""

from __future__ import annotations

from typing import Any

from mmframe.mm.page import GFP_KERNEL, PAGE_SIZE


class KmemCache:
    """``kmem_cache_t``: objects of one size, counted; pages come from the machine's allocator."""

    __slots__ = ("name", "size", "per_slab", "pages", "objects", "machine", "failures")

    def __init__(self, machine: Any, name: str, size: int, align: int = 4) -> None:
        self.machine, self.name = machine, name
        self.size = -(-size // align) * align
        self.per_slab = PAGE_SIZE // self.size
        self.pages: list[int] = []  # pfns of the slab pages
        self.objects = 0
        self.failures = 0  # allocations that found no page

    def alloc(self, gfp: int = GFP_KERNEL, n: int = 1) -> int:
        """``kmem_cache_alloc`` of ``n`` objects: the pfn of the slab holding the last one, or -1
        (nothing allocated) when no page could be had; the caller decides what failure means."""
        objects = self.objects + n
        pages = self.pages
        if objects <= len(pages) * self.per_slab:  # fits in the slabs held (the common case)
            self.objects = objects
            return pages[-1] if pages else -1
        machine, got = self.machine, []
        for _ in range(-(-objects // self.per_slab) - len(pages)):  # (at least one page)
            pfn = machine.alloc_pages(gfp, 0)
            if pfn < 0:
                for p in got:
                    machine.free_pages(p, 0)
                self.failures += 1
                return -1
            got.append(pfn)
        pages.extend(got)
        self.objects = objects
        return pages[-1]

    def pages_needed(self, n: int) -> int:
        """Pages an allocation of ``n`` more objects would take from the page allocator."""
        return max(-(-(self.objects + n) // self.per_slab) - len(self.pages), 0)

    def free(self, handle: int = 0, n: int = 1) -> None:
        """``kmem_cache_free`` of ``n`` objects; a page goes back once the rest fit without it."""
        objects = self.objects = self.objects - n
        assert objects >= 0, f"{self.name}: freed more objects than allocated"
        pages, keep = self.pages, -(-objects // self.per_slab)
        while len(pages) > keep:
            self.machine.free_pages(pages.pop(), 0)

    @property
    def bytes(self) -> int:
        return len(self.pages) * PAGE_SIZE
