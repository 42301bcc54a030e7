"""i386 page tables: 2-level (1024 x 4-byte entries) and PAE (4/512/512 x 8-byte entries).

An mm's PMD level is a flat list of entries over the user part of the address space (768 slots
of 4 MiB without PAE; 3 PMD pages x 512 slots of 2 MiB with PAE; the kernel's quarter is shared
by every mm and not modelled).  A PMD entry is the x86 value: the PTE page's pfn and its bits; a
clear ``_PAGE_RW`` there makes every PTE under it read-only, as the hardware does.  Each PTE page
is a real page from the allocator (highmem with HIGHPTE) and its entries live in an ``array``
(fast scalar access on the fault path, zero-copy numpy views for a PTE page at a time).

A PTE page is a shareable object: its reference count is its ``struct page`` count, ``owners``
lists the mms whose PMD points at it (the 2002 patch's mm_chain), ``rss`` counts its present
entries that count towards resident size (``ptepage->private``; ZERO_PAGE does not count), and
``rid`` holds the rmap entry id of each slot (see :mod:`mmframe.mm.rmap`).  Without a sharing
policy every PTE page has one owner and a count of one.
"""

from __future__ import annotations

from array import array

import numpy as np

from mmframe.mm.page import PAGE_SHIFT

TASK_SIZE = 0xC000_0000

#: Ranges of at least this many entries take the numpy (bulk) paths of fork's copy, zap, mprotect and
#: touch, which charge what the single paths would; read at each call so tests can set it to compare both.
BULK_MIN = 24

# PTE / PMD bits (asm-i386/pgtable.h)
_PAGE_PRESENT, _PAGE_RW, _PAGE_USER, _PAGE_PWT, _PAGE_PCD = 0x001, 0x002, 0x004, 0x008, 0x010
_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PROTNONE = 0x020, 0x040, 0x080
_PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY
PAGE_NONE = _PAGE_PROTNONE | _PAGE_ACCESSED
PAGE_READONLY = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
PAGE_COPY = PAGE_READONLY  # private writable: read-only until the COW fault
PAGE_SHARED = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED
PTE_PRESENT_MASK = _PAGE_PRESENT | _PAGE_PROTNONE  # pte_present() includes PROT_NONE entries
PROT_BITS = 0xFFF


class Geometry:
    """The paging mode: entry size, entries per PTE page, what one PMD slot maps."""

    __slots__ = ("pae", "pte_bytes", "ptrs_per_pte", "pmd_shift", "user_pmds", "typecode", "dtype",
                 "pmd_pages", "pgd_bytes")

    def __init__(self, pae: bool) -> None:
        self.pae = pae
        self.pte_bytes = 8 if pae else 4
        self.ptrs_per_pte = 512 if pae else 1024
        self.pmd_shift = 21 if pae else 22
        self.user_pmds = TASK_SIZE >> self.pmd_shift  # 1536 with PAE, 768 without
        self.typecode, self.dtype = ("Q", np.uint64) if pae else ("I", np.uint32)
        # pgd_alloc: PAE has a 32-byte PDPT (slab) and a PMD page per user PGD slot, allocated
        # up front; without PAE the pgd is one page and the pmd is folded into it
        self.pmd_pages = 3 if pae else 0
        self.pgd_bytes = 32 if pae else 4096

    @property
    def pmd_span(self) -> int:
        return 1 << self.pmd_shift


class PtePage:
    """One PTE page: entries, rmap ids, owners (mms), resident count; see the module docstring."""

    __slots__ = ("pfn", "ptes", "rid", "owners", "rss", "idx", "high")

    def __init__(self, pfn: int, geo: Geometry, idx: int, high: bool) -> None:
        self.pfn, self.idx, self.high = pfn, idx, high
        self.ptes = array(geo.typecode, bytes(geo.pte_bytes * geo.ptrs_per_pte))
        self.rid = array("i", [-1]) * geo.ptrs_per_pte  # int32: entry ids stay below 2**31
        self.owners: list = []
        self.rss = 0

    def np(self) -> np.ndarray:
        """Zero-copy numpy view of the entries (the dtype of the paging mode)."""
        return np.frombuffer(self.ptes, dtype=np.uint64 if self.ptes.typecode == "Q" else np.uint32)

    def np_rid(self) -> np.ndarray:
        return np.frombuffer(self.rid, dtype=np.int32)

    def ptep(self, i: int) -> int:
        """The ``pte_addr_t`` of entry ``i``, as an integer: pfn * 1024 + index."""
        return self.pfn * 1024 + i

    def __repr__(self) -> str:
        return f"<PtePage pfn={self.pfn} idx={self.idx} owners={len(self.owners)} rss={self.rss}>"


def pte_pfn(pte: int) -> int:
    return pte >> PAGE_SHIFT


def mk_pte(pfn: int, prot: int) -> int:
    return (pfn << PAGE_SHIFT) | prot
