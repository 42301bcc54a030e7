"""A stand-in block device: 2.5's RAM disk (``drivers/block/rd.c``), holding per 4 KiB block what
a page holds (a tag, a tag with a zeroed tail, or bytes; converted by the one pair in
:mod:`mmframe.mm.content`).

It has the interface the block layer's queue will keep: ``submit_bio(rw, sector, pfns, end_io)``
moves whole pages between memory and the device starting at a 512-byte ``sector`` and calls
``end_io(0)`` once.  rd.c completes a bio in the submitter's context with a ``memcpy`` per page, so
each page costs a ``copy_page`` (and a ``kmap_atomic`` for a highmem page), and the I/O completes
before ``submit_bio`` returns.  Blocks never written read back as zero.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from mmframe.mm.content import Content, block_to_page, page_to_block

READ, WRITE = 0, 1
SECTOR_SHIFT = 9
PAGE_SECTORS = 8


class RamDisk:
    """A device of ``nr_sectors`` 512-byte sectors holding a page's content per page-sized block."""

    __slots__ = ("name", "nr_sectors", "hardsect_size", "blocks", "m", "ios", "sectors", "completions")

    def __init__(self, machine: Any, nr_sectors: int, name: str = "ram0") -> None:
        self.m, self.name, self.nr_sectors = machine, name, nr_sectors
        self.hardsect_size = 512
        self.blocks: dict[int, Content] = {}  # block (sector // 8) -> its content (mm/content.py)
        self.ios = 0
        self.sectors = [0, 0]  # read, written
        self.completions = 0

    def submit_bio(self, rw: int, sector: int, pfns: Sequence[int], end_io: Callable[[int], None] | None = None) -> None:
        if sector % PAGE_SECTORS or sector < 0 or sector + PAGE_SECTORS * len(pfns) > self.nr_sectors:
            raise ValueError(f"{self.name}: bio at sector {sector} for {len(pfns)} pages is outside the device")
        mm, acct, P = self.m.mm, self.m.acct, self.m.P
        blocks = self.blocks
        b = sector // PAGE_SECTORS
        for pfn in pfns:
            if rw == WRITE:
                blocks[b] = page_to_block(mm, pfn)
            else:
                block_to_page(mm, pfn, blocks.get(b, 0))
            b += 1
        acct.charge(P.copy_page, len(pfns))
        acct.charge(P.kmap_atomic, sum(1 for p in pfns if p >= mm.first_high))
        self.ios += 1
        self.sectors[rw] += PAGE_SECTORS * len(pfns)
        self.completions += 1
        if end_io is not None:
            end_io(0)

    def read_block(self, block: int) -> Content:
        """What a block holds (for tests): its tag, or its bytes if written partially."""
        c = self.blocks.get(block, 0)
        return c[0] if type(c) is tuple else c
