"""What a device's sectors hold, and the ONE place where page content becomes sector content and
back.

Today a page's content is a 64-bit tag (``Memory.tag[pfn]``) plus an optional zeroed tail
(``Memory.zero_tail[pfn]``: the offset where zeroes start, as ``block_read_full_page`` leaves past
EOF).  A sector holds the ``(tag, tail)`` of the page it was written from; the eight sectors of a
page all hold the same pair, so a page read back from them is the page that was written.  Sectors
never written hold ``None`` and read as zero (tag 0, no tail).

Every conversion between memory and the device goes through :func:`page_to_sectors` and
:func:`sectors_to_page` (bounce copies too), so a finer content model changes this module only.
"""

from __future__ import annotations

from typing import Any, Sequence

SECTOR_SIZE = 512
PAGE_SECTORS = 8

SectorValue = Any  # (tag, tail) of the page a sector was written from; None if never written


def page_to_sectors(vm: Any, pfn: int, offset: int = 0, nsect: int = PAGE_SECTORS) -> list[SectorValue]:
    """The values of ``nsect`` sectors holding bytes ``[offset, offset + nsect*512)`` of page
    ``pfn``.  O(nsect)."""
    value = (int(vm.tag[pfn]), vm.zero_tail.get(pfn))
    return [value] * nsect


def sectors_to_page(vm: Any, pfn: int, values: Sequence[SectorValue], offset: int = 0) -> None:
    """Store sector ``values`` into page ``pfn`` from byte ``offset``.  A page-granular content
    model takes the first sector's page; a sector from another page (never produced by today's
    page-granular I/O) starts the zeroed tail there.  O(len(values))."""
    first = values[0]
    tag, tail = first if first is not None else (0, None)
    for k in range(1, len(values)):
        if values[k] is not first and values[k] != first:
            cut = offset + k * SECTOR_SIZE
            tail = cut if tail is None else min(tail, cut)
            break
    vm.tag[pfn] = tag
    if tail is None:
        vm.zero_tail.pop(pfn, None)
    else:
        vm.zero_tail[pfn] = tail


def block_content(values: Sequence[SectorValue]) -> tuple[int, int | None]:
    """The ``(tag, tail)`` a page read from these sectors would hold (for disk-state reports)."""
    first = values[0]
    return (0, None) if first is None else first


def content_sectors(tag: int, tail: int | None = None, nsect: int = PAGE_SECTORS) -> list[SectorValue]:
    """The sector values of a page with this content (files installed before boot)."""
    return [(tag, tail)] * nsect
