"""``struct page`` as compact per-page arrays, GFP flags, and the i386 physical layout.

Per-page state lives in ``array.array`` columns (fast scalar access on the hot path, and zero-copy
numpy views via :meth:`MemMap.np` for bulk work): flags, reference count, rmap head and a content
tag for simulated data.  2.5 has no map count: whether a page is mapped comes from its rmap.
The zone of a page is derived from its pfn (zones are contiguous on i386).
"""

from __future__ import annotations

from array import array

import numpy as np

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_ORDER = 11  # orders 0..10 (4 MiB blocks); see docs/memory.md on the 2.5.49 value

# page flags (include/linux/page-flags.h, 2.5.49 numbering)
PG_locked, PG_error, PG_referenced, PG_uptodate, PG_dirty, PG_lru, PG_active, PG_slab = range(8)
PG_highmem, PG_checked, PG_arch_1, PG_reserved, PG_private, PG_writeback, PG_nosave, PG_chainlock = range(8, 16)
PG_direct, PG_mappedtodisk, PG_reclaim, PG_compound = range(16, 20)

# GFP flags (include/linux/gfp.h of 2.5; __GFP_RESERVE is -mm's, 2.5.40-mm2 .. 2.5.51-mm)
__GFP_DMA, __GFP_HIGHMEM = 0x01, 0x02
__GFP_WAIT, __GFP_HIGH, __GFP_IO, __GFP_FS, __GFP_COLD = 0x10, 0x20, 0x40, 0x80, 0x100
__GFP_RESERVE = 0x4000  # -mm only: may take pages set aside by reserve_local_pages()
GFP_ATOMIC = __GFP_HIGH
GFP_NOIO = __GFP_WAIT
GFP_NOFS = __GFP_WAIT | __GFP_IO
GFP_KERNEL = __GFP_WAIT | __GFP_IO | __GFP_FS
GFP_USER = __GFP_WAIT | __GFP_IO | __GFP_FS
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_DMA = __GFP_DMA

# i386 layout
ZONE_DMA, ZONE_NORMAL, ZONE_HIGHMEM = 0, 1, 2
ZONE_NAMES = ("DMA", "Normal", "HighMem")
DMA_END_PFN = (16 << 20) >> PAGE_SHIFT  # MAX_DMA_ADDRESS
LOWMEM_END_PFN = (896 << 20) >> PAGE_SHIFT  # MAXMEM = 4G - PAGE_OFFSET - __VMALLOC_RESERVE


class MemMap:
    """``mem_map[]``: one entry per physical page, as columns."""

    __slots__ = ("npages", "flags", "count", "rmap", "tag")

    def __init__(self, npages: int) -> None:
        self.npages = npages
        self.flags = array("I", bytes(4 * npages))
        self.count = array("i", bytes(4 * npages))
        self.rmap = array("i", bytes(4 * npages))  # rmap head: 0 none, >0 direct/chain id (mm layer)
        self.tag = array("q", bytes(8 * npages))

    def np(self, column: str) -> np.ndarray:
        """A zero-copy numpy view of a column, for bulk paths and checkers."""
        return np.frombuffer(getattr(self, column), dtype={"flags": np.uint32, "count": np.int32,
                                                            "rmap": np.int32, "tag": np.int64}[column])

    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self.flags, self.count, self.rmap, self.tag))


def struct_page_bytes(pae: bool, highpte: bool) -> int:
    """Lowmem cost of one ``struct page``: 40 bytes, 44 with PAE+HIGHPTE (a 64-bit pte_addr_t)."""
    return 44 if pae and highpte else 40
