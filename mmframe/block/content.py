"""What a device's sectors hold, and the ONE place where page content becomes sector content and
back.

A page's content is :mod:`mmframe.mm.content`'s: a 64-bit tag standing for the whole page
(``Memory.tag``), with an optional zeroed tail (``Memory.zero_tail``: where zeroes start past EOF,
as ``block_read_full_page`` leaves them), or the page's bytes (``Memory.fine``) once it was written
partially.  A sector holds 512 bytes, kept compact the same way:

* ``None``: never written (reads as zeroes);
* an ``int``: the 512 bytes are that tag's pattern (the tag's 8 little-endian bytes repeated; a
  sector of a page written whole, so a page's eight sectors hold its tag eight times);
* ``bytes`` of length 512: anything else (the sector holding a zeroed tail's start, a sector of a
  page written partially).

So a page-granular program costs one int per sector, and direct I/O at sector granularity (a
512-byte ``O_DIRECT`` write, a read of one sector into the middle of a user page) moves exactly its
sectors: the rest of the page, in memory and on the device, is unchanged.

Every conversion between memory and the device goes through :func:`page_to_sectors` and
:func:`sectors_to_page` (bounce copies too).
"""

from __future__ import annotations

from typing import Any, Sequence

from mmframe.mm import content

SECTOR_SIZE = 512
PAGE_SECTORS = 8
_REP = SECTOR_SIZE // 8

SectorValue = Any  # None | int tag | bytes(512)


def sector_value(b: bytes) -> SectorValue:
    """The compact value of a sector's 512 bytes: its tag if it is one tag's pattern.  O(512)."""
    head = b[:8]
    return int.from_bytes(head, "little", signed=True) if head * _REP == b else bytes(b)


def sector_bytes(v: SectorValue) -> bytes:
    if v is None:
        return bytes(SECTOR_SIZE)
    if type(v) is int:
        return v.to_bytes(8, "little", signed=True) * _REP
    return v


def page_to_sectors(vm: Any, pfn: int, offset: int = 0, nsect: int = PAGE_SECTORS) -> list[SectorValue]:
    """The values of ``nsect`` sectors holding bytes ``[offset, offset + nsect*512)`` of page
    ``pfn``.  O(nsect) for a whole-tag page, O(bytes) otherwise."""
    fine = vm.fine.get(pfn) if vm.fine else None
    if fine is None:
        tag = int(vm.tag[pfn])
        tail = vm.zero_tail.get(pfn) if vm.zero_tail else None
        if tail is None or tail >= offset + nsect * SECTOR_SIZE:
            return [tag] * nsect
        data: Any = content.tag_bytes(tag, tail)
    else:
        data = fine
    out = []
    for k in range(nsect):
        s = offset + k * SECTOR_SIZE
        out.append(sector_value(bytes(data[s:s + SECTOR_SIZE])))
    return out


def sectors_to_page(vm: Any, pfn: int, values: Sequence[SectorValue], offset: int = 0) -> None:
    """Store sector ``values`` into page ``pfn`` from byte ``offset``; the rest of the page is
    unchanged.  A whole page of one tag stays compact (a tag); O(len(values)) then, O(page)
    otherwise (:func:`mmframe.mm.content.write_bytes` compacts what it can)."""
    n = len(values)
    if offset == 0 and n == PAGE_SECTORS:
        first = values[0]
        if (first is None or type(first) is int) and values.count(first) == n:
            content.set_tag(vm, pfn, first or 0)
            return
    content.write_bytes(vm, pfn, offset, b"".join(sector_bytes(v) for v in values))


def block_content(values: Sequence[SectorValue]) -> Any:
    """What a page read from these eight sectors would hold, for disk-state reports: a tag, a
    ``(tag, tail)`` pair (a zeroed tail from ``tail``), or bytes."""
    first = values[0]
    if (first is None or type(first) is int) and list(values).count(first) == len(values):
        return first or 0
    data = b"".join(sector_bytes(v) for v in values)
    c = content.compact(data)
    return data if c is None else c


def content_sectors(tag: int, tail: int | None = None, nsect: int = PAGE_SECTORS) -> list[SectorValue]:
    """The sector values of a page with this content (files installed before boot)."""
    if tail is None or tail >= nsect * SECTOR_SIZE:
        return [tag] * nsect
    data = content.tag_bytes(tag, tail)
    return [sector_value(data[k * SECTOR_SIZE:(k + 1) * SECTOR_SIZE]) for k in range(nsect)]
