"""What every block device has: a name, a size in sectors, the sectors' data and counters, and the
data transfer between a bio's pages and the sectors (through :mod:`mmframe.block.content`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.block.bio import PAGE_SECTORS, READ, Bio
from mmframe.block.content import block_content, page_to_sectors, sectors_to_page

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.block.genhd import BlockLayer


class BlockDevice:
    """What every device has: ``name``, ``nr_sectors``, the sectors' data (``data``: sector ->
    value, see :mod:`mmframe.block.content`) and counters (``ios``, ``sectors`` read/written,
    ``completions``).  Subclasses implement ``submit_bio``."""

    queue: Any = None

    def __init__(self, layer: BlockLayer, name: str, nr_sectors: int) -> None:
        self.layer, self.name, self.nr_sectors = layer, name, nr_sectors
        self.hardsect_size = 512
        self.data: dict[int, Any] = {}
        self.ios = 0
        self.sectors = [0, 0]  # sectors read, written
        self.completions = 0

    def check_bio(self, bio: Bio) -> None:
        if bio.sector < 0 or bio.sector + (bio.size >> 9) > self.nr_sectors or bio.size & 511 or not bio.size:
            raise ValueError(f"{self.name}: bio at sector {bio.sector} of {bio.size} bytes is outside the device")

    def transfer(self, bio: Bio, sector: int | None = None) -> None:
        """Move ``bio``'s data between its pages and the sectors from ``sector`` (a driver knows
        only its request's start and the segments after it; default the bio's own) at service time;
        keeps the values moved in ``bio.data``."""
        vm = self.layer.m.mm
        data = self.data
        s = bio.sector if sector is None else sector
        moved: list[Any] = []
        if bio.rw == READ:
            get = data.get
            for pfn, off, ln in bio.vecs:
                n = ln >> 9
                vals = [get(k) for k in range(s, s + n)]
                sectors_to_page(vm, pfn, vals, off)
                moved += vals
                s += n
        else:
            for pfn, off, ln in bio.vecs:
                n = ln >> 9
                vals = page_to_sectors(vm, pfn, off, n)
                for k in range(n):
                    data[s + k] = vals[k]
                moved += vals
                s += n
        bio.data = moved
        self.sectors[bio.rw] += bio.size >> 9

    # --- what the device holds (file-system installs and reports, tests) -------------------
    def poke(self, sector: int, values: list[Any]) -> None:
        for k, v in enumerate(values):
            self.data[sector + k] = v

    def block_content(self, block: int) -> Any:
        """What a page read from the page-sized block ``block`` would hold: a tag, ``(tag, tail)``
        or bytes (:mod:`mmframe.block.content`)."""
        get = self.data.get
        return block_content([get(block * PAGE_SECTORS + k) for k in range(PAGE_SECTORS)])

    def read_block(self, block: int) -> Any:
        """The tag a page read from ``block`` would hold (its bytes if written partially)."""
        c = self.block_content(block)
        return c[0] if type(c) is tuple else c

    @property
    def blocks(self) -> dict[int, int]:
        """block -> tag of every block written (a report; O(sectors written))."""
        return {s // PAGE_SECTORS: self.read_block(s // PAGE_SECTORS) for s in self.data if s % PAGE_SECTORS == 0}

    def idle(self) -> bool:
        return True

    def figures(self) -> dict[str, Any]:
        return {"ios": self.ios, "sectors_read": self.sectors[0], "sectors_written": self.sectors[1],
                "completions": self.completions}
