"""2.5's RAM disk (``drivers/block/rd.c``) as a device type (``[block.<disk>] model = "ramdisk"``).

rd.c has no request queue: its ``make_request`` copies each page with a ``memcpy`` (a
``copy_page``, plus a ``kmap_atomic`` for a highmem page) and completes the bio in the submitter's
context, before ``submit_bio`` returns.  Sectors never written read back as zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmframe.block.bio import Bio
from mmframe.block.device import BlockDevice

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.block.genhd import BlockLayer


class RamDisk(BlockDevice):
    """A queueless device of ``nr_sectors`` sectors completing each bio at once."""

    def __init__(self, layer: BlockLayer, nr_sectors: int, name: str = "ram0") -> None:
        super().__init__(layer, name, nr_sectors)

    def submit_bio(self, bio: Bio) -> None:
        self.check_bio(bio)
        layer = self.layer
        m = layer.m
        self.transfer(bio)
        npages = len(bio.vecs)
        m.acct.charge(m.P.copy_page, npages)
        first_high = m.mm.first_high
        m.acct.charge(m.P.kmap_atomic, sum(1 for p, _, _ in bio.vecs if p >= first_high))
        self.ios += 1
        self.completions += 1
        layer.end_bio(bio, 0, layer.now())

    def run_until(self, bio: Bio) -> None:  # every bio is done when submit_bio returns
        return
