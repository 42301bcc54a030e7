"""Direct I/O (``O_DIRECT``): 2.5.49's ``generic_file_direct_IO`` and ``fs/direct-io.c``
(``blockdev_direct_IO``, akpm, Jul 2002), with the asynchronous completion of Badari Pulavarty's
AIO-DIO patch (LKML ``<200211060101.gA611gE21063@eng2.beaverton.ibm.com>``, in 2.5.49-mm1, merged
in 2.5.55).

Zero-copy: the user buffer's pages are pinned (``get_user_pages`` through the user-page mapping
hook ``mmframe_get_user_pages``; a read into memory looks them up for writing, so copy-on-write is
broken first) and the bios are built on them; the only copy is the block layer's bounce of a
highmem page above the queue's bounce pfn.  The pins are released when the last bio completes.

* **Alignment** (``dio-fine-alignment``, 2.5.40-mm2, in 2.5.45): offset, length and buffer must be
  multiples of the file system block (4 KiB), else of the device's hardware sector (512 bytes),
  else -EINVAL before anything is done.
* **Coherence** (``generic_file_direct_IO``): the file's dirty cached pages are written and waited
  for first (``filemap_fdatawrite``/``filemap_fdatawait``); after a write the cached pages of the
  range that nothing maps are dropped (``invalidate_inode_pages2``); a page still cached at
  completion (mapped, or read in meanwhile) gets the written sectors -- a *departure*: 2.5.49 left
  a mapped page stale, only clearing its dirty bit.
* **Blocks**: a write allocates the blocks it needs; the part of a new block the write does not
  cover is written from the ZERO_PAGE in the same bio (``dio_zero_block``).  A read of a hole
  zero-fills the user memory (``dio_zero``...); a read at or past end of file returns 0, one that
  starts before it reads whole sectors (past EOF: zeroes), as 2.5.49 did.
* **Completion**: synchronous (``read``/``pread``/``write``/``pwrite``, and AIO without the -mm1
  option): the caller sleeps until its last bio completes; asynchronous (an iocb with the
  ``aio_dio`` option): ``on_done(result)`` is called from the last bio's completion
  (``dio_bio_end_aio`` -> ``aio_complete``).  Each bio completes once; a failed one makes the
  result -EIO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from mmframe.block.bio import PAGE_SECTORS, READ, WRITE, Bio
from mmframe.block.content import sectors_to_page
from mmframe.mm import content, filemap
from mmframe.mm.fault import ZERO_PFN
from mmframe.mm.gup import put_user_pages
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE
from mmframe.usr import EFAULT, EINVAL, EIO, ENOSPC

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.fs import FileSystem, Inode
    from mmframe.sched import Task

SECTOR = 512
FS_BLOCK = PAGE_SIZE


class Dio:
    """``struct dio``: one direct I/O in flight: its bios, the pinned pages, the result."""

    __slots__ = ("rw", "inode", "bios", "left", "pages", "result", "error", "on_done", "sectors", "done")

    def __init__(self, rw: int, inode: Inode, result: int) -> None:
        self.rw, self.inode, self.result = rw, inode, result
        self.bios: list[Bio] = []
        self.left = 1  # bio_count's submission bias
        self.pages: list[int] = []
        self.error = 0
        self.on_done: Callable[[int], None] | None = None
        self.sectors: list[tuple[int, int]] = []  # (file page index, first sector) of written blocks
        self.done = False


class DirectIO:
    """The machine's direct-I/O engine (one per file system) and its counters."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs
        self.m = fs.m
        self.vm = fs.vm
        self._gup = self.m.policy("mmframe_get_user_pages")
        self.stats = {"requests": 0, "bios": 0, "pages_pinned": 0, "sectors": 0, "in_flight": 0,
                      "completed": 0, "invalidated": 0, "refreshed": 0, "zero_filled": 0}

    # --- checks ---------------------------------------------------------------------------------
    def check(self, addr: Any, length: Any, offset: Any) -> int:
        """0, or -EINVAL: ``offset | addr | length`` must be fs-block aligned, else sector aligned
        (the device's hardsect size, 512)."""
        if any(type(x) is not int for x in (addr, length, offset)) or length < 0 or offset < 0 or addr < 0:
            return -EINVAL
        bits = offset | addr | length
        if bits & (FS_BLOCK - 1) and bits & (self.fs.dev.hardsect_size - 1):
            return -EINVAL
        return 0

    # --- the I/O ------------------------------------------------------------------------------
    def direct_io(self, task: Task, inode: Inode, rw: int, addr: int, length: int, offset: int,
                  on_done: Callable[[int], None] | None = None, wait_now: bool = False) -> int:
        """Start ``rw`` of ``length`` bytes between user ``addr`` and file ``offset`` (checked by
        :meth:`check`).  Synchronous (``on_done`` None): the bytes moved (the task sleeps until
        the bios complete when its call returns) or -errno.  Asynchronous: -errno, or the bytes
        the I/O will move, ``on_done(result)`` being called once at its completion (at once if
        nothing was submitted).  ``wait_now``: the device is run until the bios complete before
        this returns (``dio_await_completion`` inside ``io_submit``: the next iocb starts after)."""
        fs, vm, blk, dev = self.fs, self.vm, self.fs.blk, self.fs.dev
        if rw == READ:
            if offset >= inode.size:
                return self._finish_now(0, on_done)
        if length == 0:
            return self._finish_now(0, on_done)
        self.stats["requests"] += 1
        self._write_and_wait(inode)  # generic_file_direct_IO: filemap_fdatawrite + fdatawait
        npages = ((addr + length - 1) >> PAGE_SHIFT) - (addr >> PAGE_SHIFT) + 1
        pages = self._gup(vm, task.mm, addr & ~(PAGE_SIZE - 1), npages, rw == READ, False)
        if isinstance(pages, int):
            return pages
        if len(pages) < npages:  # a partial array: the I/O stops where the buffer stops
            put_user_pages(vm, pages)
            return -EFAULT
        self.stats["pages_pinned"] += sum(1 for p in pages if p != ZERO_PFN)
        dio = Dio(rw, inode, length)
        dio.pages = pages
        dio.on_done = on_done
        q = dev.queue
        max_sect = q.max_sectors if q is not None else 255
        # chunks: (sector or None for a hole, pfn, offset in page, bytes); split at pages and blocks
        bio_vecs: list[tuple[int, int, int]] = []
        bio_start = -1
        next_sector = -1
        pos, uaddr, left = offset, addr, length
        err = 0
        new_blocks: set[int] = set()
        while left > 0:
            index, boff = pos >> PAGE_SHIFT, pos & (FS_BLOCK - 1)
            uoff = uaddr & (PAGE_SIZE - 1)
            n = min(left, FS_BLOCK - boff, PAGE_SIZE - uoff)
            pfn = pages[(uaddr >> PAGE_SHIFT) - (addr >> PAGE_SHIFT)]
            b = inode.blocks.get(index)
            zero_before = zero_after = 0
            if b is None and rw == WRITE:
                b = fs._alloc_block()
                if b < 0:
                    err = -ENOSPC
                    break
                inode.blocks[index] = b
                new_blocks.add(index)
                zero_before = boff  # dio_zero_block: the rest of a new block is written zero
            if index in new_blocks and left == n:
                zero_after = FS_BLOCK - boff - n
            if b is None:  # a hole read: zero the user memory
                if bio_vecs:
                    self._submit(dio, bio_start, bio_vecs)
                    bio_vecs, next_sector = [], -1
                content.write_bytes(vm, pfn, uoff, bytes(n))
                vm.acct.charge(vm.P_clear)
                self.stats["zero_filled"] += 1
            else:
                sector = b * PAGE_SECTORS + (boff >> 9) - (zero_before >> 9)
                segs = []
                if zero_before:
                    segs.append((ZERO_PFN, 0, zero_before))
                segs.append((pfn, uoff, n))
                if zero_after:
                    segs.append((ZERO_PFN, 0, zero_after))
                nsect = sum(s[2] for s in segs) >> 9
                if rw == WRITE:
                    dio.sectors.append((index, b * PAGE_SECTORS))
                if bio_vecs and (sector != next_sector or (sum(v[2] for v in bio_vecs) >> 9) + nsect > max_sect):
                    self._submit(dio, bio_start, bio_vecs)
                    bio_vecs = []
                if not bio_vecs:
                    bio_start = sector
                bio_vecs.extend(segs)
                next_sector = sector + nsect
            pos, uaddr, left = pos + n, uaddr + n, left - n
        if bio_vecs:
            self._submit(dio, bio_start, bio_vecs)
        if err and not dio.bios:
            put_user_pages(vm, pages)
            return err
        if err:
            dio.result = pos - offset
        if rw == WRITE:
            end = offset + dio.result
            if end > inode.size:
                inode.size = end
            self._invalidate(inode, offset, dio.result)
        if on_done is None and dio.bios:
            if wait_now:
                for bio in dio.bios:
                    blk.wait_sync(dev, bio)
            else:
                blk.wait_async(dio.bios)
        result = dio.result
        self._put(dio)  # drop the submission bias: the last bio (or this) completes the dio
        return result

    def _finish_now(self, result: int, on_done: Callable[[int], None] | None) -> int:
        if on_done is not None:
            on_done(result)
        return result

    def _submit(self, dio: Dio, sector: int, vecs: list[tuple[int, int, int]]) -> None:
        bio = Bio(dio.rw, sector, list(vecs), _dio_bio_end_io, (self, dio))
        dio.bios.append(bio)
        dio.left += 1
        self.stats["bios"] += 1
        self.stats["sectors"] += bio.size >> 9
        self.stats["in_flight"] += 1
        self.fs.blk.submit_bio(self.fs.dev, bio)

    def _put(self, dio: Dio) -> None:
        dio.left -= 1
        if dio.left:
            return
        # the last reference: release the pins, refresh what is still cached, complete (once)
        if dio.done:
            raise AssertionError("a direct I/O completed twice")
        dio.done = True
        put_user_pages(self.vm, dio.pages)
        if dio.rw == WRITE and dio.bios:
            self._refresh(dio)
        if dio.error:
            dio.result = dio.error
        if dio.on_done is not None:
            dio.on_done(dio.result)

    def _write_and_wait(self, inode: Inode) -> None:
        """``filemap_fdatawrite`` + ``filemap_fdatawait`` of the whole mapping, as 2.5.49's
        ``generic_file_direct_IO`` does before any direct I/O to a file with cached pages: the
        dirty pages are written and the device is run until they are on it."""
        if not inode.mapping.dirty:
            return
        fs = self.fs
        bios, _ = fs.fdatawrite(inode)
        for bio in bios:
            fs.blk.wait_sync(fs.dev, bio)

    def _invalidate(self, inode: Inode, offset: int, length: int) -> None:
        """``invalidate_inode_pages2`` over the written range: cached pages nothing else holds go."""
        vm, mapping = self.vm, inode.mapping
        first, last = offset >> PAGE_SHIFT, (offset + length - 1) >> PAGE_SHIFT
        for index, pfn in list(mapping.page_tree.items(first)):
            if index > last:
                break
            if vm.count[pfn] == 1 and index not in mapping.dirty:
                filemap.remove_from_page_cache(vm, mapping, index)
                self.stats["invalidated"] += 1

    def _refresh(self, dio: Dio) -> None:
        """Pages of the written blocks still cached get what the device now holds."""
        vm, dev, mapping = self.vm, self.fs.dev, dio.inode.mapping
        seen = set()
        for index, s0 in dio.sectors:
            if index in seen:
                continue
            seen.add(index)
            pfn = mapping.page_tree.lookup(index)
            if pfn is None or dio.inode.blocks.get(index) != s0 // PAGE_SECTORS:
                continue
            sectors_to_page(vm, pfn, [dev.data.get(s0 + k) for k in range(PAGE_SECTORS)])
            self.stats["refreshed"] += 1


def _dio_bio_end_io(bio: Bio, err: int) -> None:
    """``dio_bio_end_io`` / ``dio_bio_end_aio``: one bio of a dio completed."""
    self, dio = bio.private
    self.stats["in_flight"] -= 1
    self.stats["completed"] += 1
    if err and not dio.error:
        dio.error = -EIO
    self._put(dio)

