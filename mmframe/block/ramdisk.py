"""A stand-in block device: 2.5's RAM disk (``drivers/block/rd.c``), one content tag per 4 KiB
(and, as a page's content has, the offset where a zeroed tail starts).

It has the interface the block layer's queue will keep: ``submit_bio(rw, sector, pfns, end_io)``
moves whole pages between memory and the device starting at a 512-byte ``sector`` and calls
``end_io(0)`` once.  rd.c completes a bio in the submitter's context with a ``memcpy`` per page, so
each page costs a ``copy_page`` (and a ``kmap_atomic`` for a highmem page), and the I/O completes
before ``submit_bio`` returns.  Blocks never written read back as zero.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

READ, WRITE = 0, 1
SECTOR_SHIFT = 9
PAGE_SECTORS = 8


class RamDisk:
    """A device of ``nr_sectors`` 512-byte sectors holding a tag per page-sized block."""

    __slots__ = ("name", "nr_sectors", "hardsect_size", "blocks", "tails", "m", "ios", "sectors", "completions")

    def __init__(self, machine: Any, nr_sectors: int, name: str = "ram0") -> None:
        self.m, self.name, self.nr_sectors = machine, name, nr_sectors
        self.hardsect_size = 512
        self.blocks: dict[int, int] = {}  # block (sector // 8) -> tag
        self.tails: dict[int, int] = {}  # block -> offset where its zeroed tail starts (a page's content)
        self.ios = 0
        self.sectors = [0, 0]  # read, written
        self.completions = 0

    def submit_bio(self, rw: int, sector: int, pfns: Sequence[int], end_io: Callable[[int], None] | None = None) -> None:
        if sector % PAGE_SECTORS or sector < 0 or sector + PAGE_SECTORS * len(pfns) > self.nr_sectors:
            raise ValueError(f"{self.name}: bio at sector {sector} for {len(pfns)} pages is outside the device")
        mm, acct, P = self.m.mm, self.m.acct, self.m.P
        tag, blocks, tails, page_tails = mm.tag, self.blocks, self.tails, mm.zero_tail
        b = sector // PAGE_SECTORS
        for pfn in pfns:
            if rw == WRITE:
                blocks[b] = tag[pfn]
                t = page_tails.get(pfn)
                if t is None:
                    tails.pop(b, None)
                else:
                    tails[b] = t
            else:
                tag[pfn] = blocks.get(b, 0)
                t = tails.get(b)
                if t is None:
                    page_tails.pop(pfn, None)
                else:
                    page_tails[pfn] = t
            b += 1
        acct.charge(P.copy_page, len(pfns))
        acct.charge(P.kmap_atomic, sum(1 for p in pfns if p >= mm.first_high))
        self.ios += 1
        self.sectors[rw] += PAGE_SECTORS * len(pfns)
        self.completions += 1
        if end_io is not None:
            end_io(0)

    def read_block(self, block: int) -> int:
        """The tag stored in a block (for tests: what the device holds)."""
        return self.blocks.get(block, 0)
