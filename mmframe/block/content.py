"""What a device's sectors hold, and the ONE place where page content becomes sector content and
back.

A page's content (:mod:`mmframe.mm.content`) is compact -- a 64-bit tag standing for the whole page,
maybe with a zeroed tail -- or, for a page written partially, its 4096 bytes.  A sector written from
a compact page holds ``(c, k)``: the page's compact content ``c`` (a tag, or ``(tag, tail)``) and
which of its eight sectors this is, so a page read back from the eight sectors of one compact page
is that page again, compactly.  A sector written from a page that holds bytes holds its 512 bytes.
Sectors never written hold ``None`` and read as zero.  A page assembled from sectors of different
sources (a partial transfer, a mix) gets the bytes each stands for, and is compact again if they
make a tag's pattern.

Every conversion between memory and the device goes through :func:`page_to_sectors` and
:func:`sectors_to_page` (bounce copies too).
"""

from __future__ import annotations

from typing import Any, Sequence

from mmframe.mm import content as C
from mmframe.mm.page import PAGE_SIZE

SECTOR_SIZE = 512
PAGE_SECTORS = 8

SectorValue = Any  # (compact content, sector index) or 512 bytes; None if never written


def page_to_sectors(vm: Any, pfn: int, offset: int = 0, nsect: int = PAGE_SECTORS) -> list[SectorValue]:
    """The values of ``nsect`` sectors holding bytes ``[offset, offset + nsect*512)`` of page
    ``pfn``.  O(nsect), and O(bytes) for a page held as bytes."""
    fine = vm.fine.get(pfn) if vm.fine else None
    if fine is not None:
        return [bytes(fine[o:o + SECTOR_SIZE]) for o in range(offset, offset + nsect * SECTOR_SIZE, SECTOR_SIZE)]
    tail = vm.zero_tail.get(pfn) if vm.zero_tail else None
    c = int(vm.tag[pfn]) if tail is None else (int(vm.tag[pfn]), tail)
    first = offset // SECTOR_SIZE
    return [(c, first + i) for i in range(nsect)]


def sector_bytes(v: SectorValue) -> bytes:
    """The 512 bytes a sector value stands for."""
    if v is None:
        return bytes(SECTOR_SIZE)
    if type(v) is bytes:
        return v
    c, k = v
    return C.block_bytes(c)[k * SECTOR_SIZE:(k + 1) * SECTOR_SIZE]


def _whole(values: Sequence[SectorValue]) -> Any:
    """The compact content of eight values written from one compact page, in order; else None."""
    first = values[0]
    if len(values) != PAGE_SECTORS or type(first) is not tuple:
        return None
    c = first[0]
    for k, v in enumerate(values):
        if type(v) is not tuple or v[1] != k or v[0] != c:
            return None
    return c


def sectors_to_page(vm: Any, pfn: int, values: Sequence[SectorValue], offset: int = 0) -> None:
    """Store sector ``values`` into page ``pfn`` from byte ``offset``: compactly when they are one
    compact page's eight sectors, else as bytes.  O(len(values)), O(bytes) when not compact."""
    c = _whole(values) if offset == 0 else None
    if c is not None:
        C.block_to_page(vm, pfn, c)
    elif all(v is None for v in values) and offset == 0 and len(values) == PAGE_SECTORS:
        C.set_tag(vm, pfn, 0)
    else:
        C.write_bytes(vm, pfn, offset, b"".join(sector_bytes(v) for v in values))


def block_content(values: Sequence[SectorValue]) -> Any:
    """What a page read from these eight sectors holds (for disk-state reports): a tag, a
    ``(tag, tail)`` pair, or bytes."""
    c = _whole(values)
    if c is not None:
        return c
    if all(v is None for v in values):
        return 0
    data = b"".join(sector_bytes(v) for v in values)
    compact = C.compact(data)
    return data if compact is None else compact


def content_sectors(tag: int, tail: int | None = None, nsect: int = PAGE_SECTORS) -> list[SectorValue]:
    """The sector values of a page with this content (files installed before boot)."""
    c = tag if tail is None else (tag, tail)
    return [(c, k) for k in range(nsect)]


assert PAGE_SECTORS * SECTOR_SIZE == PAGE_SIZE
