"""File readahead (2.5.49's ``mm/readahead.c``): a per-open-file window that grows while a
reader goes forward and shrinks when it misses, with an *ahead* window submitted while the
reader consumes the current one.

Rules (``page_cache_readahead``, called for every page index a ``read`` touches):

* first read, at page 0: the window opens at ``max / 2`` pages ("assume a whole-file read");
* an index inside the current window or one past its end is a hit: ``next_size += 2``; anything
  else is a miss: ``next_size -= 2``; ``next_size`` is then clamped to ``[min, max]``;
* an index outside the current window that is the ahead window's start makes the ahead window
  current; any other index outside opens a new window of ``next_size`` pages at it (I/O issued);
* an index inside the current window with no ahead window open submits the ahead window
  (``start + size``, ``next_size`` pages).

``handle_ra_miss`` (a page the window should have brought was not cached) shrinks ``next_size``
by 2 down to ``min``.  ``max`` is the queue's ``ra_pages`` (``VM_MAX_READAHEAD`` = 128 KiB:
32 pages), ``min`` is ``VM_MIN_READAHEAD`` = 16 KiB (4 pages), both from 2.5.49's
``include/linux/mm.h``.  Readahead bios carry ``BIO_RW_AHEAD`` (``READA``): when the queue has no
free request they end with -EAGAIN and the page is read again, synchronously, when needed
(``do_generic_mapping_read`` finds it not up to date and calls ``readpage``).

Pages read ahead are cache pages with a read in flight (2.5: locked, not up to date): a reader
that reaches one waits for its bio (:func:`wait_on_page`).  Counters (``FileSystem.ra_stats``):
``pages`` read ahead, ``hits`` (a read found a page readahead brought), ``misses``
(``handle_ra_miss`` calls), ``eagain`` (readahead bios refused by a full queue).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from mmframe.block.bio import BIO_RW_AHEAD, PAGE_SECTORS, READ, bio_pages
from mmframe.mm import filemap
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.fs import FileSystem, Inode

VM_MAX_READAHEAD = 128  # KiB, 2.5.49 include/linux/mm.h
VM_MIN_READAHEAD = 16  # KiB


@attrs.define(slots=True)
class FileRaState:
    """``struct file_ra_state`` (2.5.49 ``include/linux/fs.h``), in pages."""

    ra_pages: int = VM_MAX_READAHEAD * 1024 // PAGE_SIZE
    start: int = 0
    size: int = 0
    next_size: int = 0
    prev_page: int = -1
    ahead_start: int = 0
    ahead_size: int = 0


def get_min_readahead(ra: FileRaState) -> int:
    return VM_MIN_READAHEAD * 1024 // PAGE_SIZE


def page_cache_readahead(fs: FileSystem, inode: Inode, ra: FileRaState, offset: int) -> None:
    """2.5.49's ``page_cache_readahead`` for a read of page ``offset`` (the rules above)."""
    if offset == ra.prev_page and ra.next_size != 0:
        return  # sub-page reads of one page do not perturb the window
    mx = ra.ra_pages
    if mx == 0:
        return
    mn = get_min_readahead(ra)
    if ra.next_size == 0 and offset == 0:  # first read from the first page: a whole-file read
        ra.next_size = mx // 2
        _open_window(fs, inode, ra, offset)
        return
    ra.prev_page = offset
    if ra.start <= offset <= ra.start + ra.size:
        ra.next_size += 2
    else:
        ra.next_size -= 2
    ra.next_size = max(mn, min(mx, ra.next_size))
    if offset < ra.start or offset >= ra.start + ra.size:
        if offset == ra.ahead_start and ra.ahead_size:  # advanced into the ahead window
            ra.start, ra.size = ra.ahead_start, ra.ahead_size
            ra.prev_page = ra.start
            ra.ahead_start = ra.ahead_size = 0
        else:
            _open_window(fs, inode, ra, offset)
    elif ra.ahead_start == 0:
        ra.ahead_start = ra.start + ra.size
        ra.ahead_size = ra.next_size
        do_page_cache_readahead(fs, inode, ra.ahead_start, ra.ahead_size)


def _open_window(fs: FileSystem, inode: Inode, ra: FileRaState, offset: int) -> None:
    ra.start, ra.size = offset, ra.next_size
    ra.ahead_start = ra.ahead_size = 0
    do_page_cache_readahead(fs, inode, offset, ra.size)


def handle_ra_miss(fs: FileSystem, ra: FileRaState, offset: int) -> None:
    """A read missed the cache although readahead should have brought the page: shrink."""
    fs.ra_stats["misses"] += 1
    ra.next_size = max(get_min_readahead(ra), ra.next_size - 2)


def do_page_cache_readahead(fs: FileSystem, inode: Inode, offset: int, nr: int) -> int:
    """Start reads of the uncached pages ``[offset, offset + nr)`` below EOF, one READA bio per
    run of consecutive blocks (holes are zero-filled now); returns how many pages were started.
    The pages are allocated and inserted first, then the bios submitted (``read_pages``)."""
    vm, mapping = fs.vm, inode.mapping
    end_index = (inode.size + PAGE_SIZE - 1) >> PAGE_SHIFT
    runs: list[tuple[int, list[tuple[int, int]]]] = []
    n = 0
    stop = min(offset + nr, end_index)
    tree = mapping.page_tree
    pooled: dict[int, int] = {}  # index -> page a per-CPU run put in the cache ahead of the loop
    for index in range(offset, stop):
        pfn = pooled.pop(index, -1)
        if pfn >= 0:
            vm.acct.charge(vm.P_pcl)  # the lookup that missed, as the single path makes it
        else:
            if filemap.find_get_page(vm, mapping, index) >= 0:
                continue
            if not pooled:  # the indices this leaf misses from here: one run, inserted in order
                ahead = [i for i in range(index, min(stop, (index | 63) + 1)) if tree.lookup(i) is None]
                run = filemap.new_cache_page_run(vm, mapping, ahead)
                pooled = dict(zip(ahead, run))
                pfn = pooled.pop(index, -1)
            if pfn < 0:
                pfn = filemap.new_cache_page(vm, mapping, index)
        if pfn < 0:
            break  # no memory: readahead is advisory
        n += 1
        b = inode.blocks.get(index)
        if b is None:
            vm.tag[pfn] = 0
            vm.acct.charge(vm.P_clear)
            fs._zero_tail(inode, index, pfn)
            continue
        if runs and runs[-1][0] + len(runs[-1][1]) == b and runs[-1][1][-1][0] + 1 == index:
            runs[-1][1].append((index, pfn))
        else:
            runs.append((b, [(index, pfn)]))
    q = fs.dev.queue
    per = q.max_sectors // PAGE_SECTORS if q is not None else 256
    for b, pages in runs:
        for i in range(0, len(pages), per):
            chunk = pages[i:i + per]
            bio = bio_pages(READ, (b + i) * PAGE_SECTORS, [p for _, p in chunk], _end_readahead,
                            (fs, inode, chunk), flags=BIO_RW_AHEAD)
            fs.blk.pin_pages(bio)
            for index, pfn in chunk:
                fs.ra_inflight[pfn] = (mapping, index, bio)
            fs.blk.submit_bio(fs.dev, bio)
    fs.ra_stats["pages"] += n
    return n


def _end_readahead(bio: Any, err: int) -> None:
    fs, inode, chunk = bio.private
    if err:
        fs.ra_stats["eagain"] += 1
        return
    for index, pfn in chunk:
        if inode.mapping.page_tree.lookup(index) == pfn:
            fs._zero_tail(inode, index, pfn)


def wait_on_page(fs: FileSystem, inode: Inode, index: int, pfn: int) -> None:
    """A reader reached page ``pfn`` of ``inode``: if readahead brought it, wait for that read
    (the device runs ahead if it is still in flight, as ``wait_sync``); if the read was refused
    (-EAGAIN), read the page now, as ``readpage`` on a page not up to date.  The record is
    checked against the page's place in the cache, so a freed and reused pfn is not mistaken."""
    entry = fs.ra_inflight.pop(pfn, None)
    if entry is None:
        return
    mapping, idx, bio = entry
    if mapping is not inode.mapping or idx != index:
        return
    fs.ra_stats["hits"] += 1
    fs.blk.wait_sync(fs.dev, bio)
    if bio.error:
        fs.readpage(inode, index, pfn)
