"""Write-back of dirty file pages (2.5.49's ``mm/page-writeback.c``, ``fs/fs-writeback.c``,
``fs/mpage.c``'s ``mpage_writepages`` shape): dirty accounting, the dirty thresholds, the writer's
throttle (``balance_dirty_pages``), background and periodic write-back, and the one function the
rest of the kernel writes pages with.

**Accounting.**  ``nr_dirty`` is the number of dirty pages of backed files (each file's
``mapping.dirty``); ``nr_writeback`` the pages in write bios not yet complete.

**Thresholds** (``[vm]`` config, 2.5.49's ``/proc/sys/vm`` names and defaults):
``dirty_background_ratio`` (10), ``dirty_async_ratio`` (40), ``dirty_writeback_centisecs``
(500), ``dirty_expire_centisecs`` (3000), in percent of ``total_pages`` (``nr_free_pagecache_pages``
at boot: the machine's RAM pages).  ``page_writeback_init`` scales both ratios down when lowmem is
under a quarter of memory (buffer_heads pin lowmem).

**The writer's throttle.**  ``balance_dirty_pages_ratelimited`` is called for each page a
``write`` dirties; every ``ratelimit_pages`` calls on a CPU it runs ``balance_dirty_pages``: above
the async threshold (dirty + writeback) the writing task writes ``sync_writeback_pages()`` pages
itself (``writeback_inodes``) and sleeps, when its call returns, until they are written; above the
background threshold (dirty) it hands ``background_writeout`` to pdflush.

**pdflush**: background write-back and the periodic ``wb_kupdate`` (every
``dirty_writeback_centisecs``, writing inodes first dirtied more than ``dirty_expire_centisecs``
ago) are handed to the pool of pdflush kernel threads (:mod:`mmframe.mm.pdflush`), which run them
on the scheduler's CPUs, charged to the ``<pdflush>`` row.  The wb_timer is a daemon event: a run
whose programs are done ends without waiting for it.

**For reclaim**: :meth:`Writeback.write_one_page` writes one dirty page (``writepage``) and, with
``wait``, completes it before returning (vmscan's pageout, mmframe.mm.vmscan).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.block.bio import PAGE_SECTORS, WRITE, bio_pages
from mmframe.mm import filemap
from mmframe.mm.page import PAGE_SIZE
from mmframe.usr import ENOSPC

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.fs import FileSystem, Inode

MAX_WRITEBACK_PAGES = 1024  # one background_writeout / wb_kupdate pass (2.5.49 page-writeback.c)
HZ = 1000
RETRY_NS = 1_000_000_000  # wb_timer_fn's retry when no pdflush thread is idle: HZ


class Writeback:
    """The write-back state of one file system's device (2.5.49 keeps it per backing_dev_info and
    in global page_state)."""

    def __init__(self, fs: FileSystem, vmcfg: Any) -> None:
        self.fs = fs
        m = fs.m
        self.total_pages = m.config.memory // PAGE_SIZE
        self.background_ratio = vmcfg.dirty_background_ratio
        self.async_ratio = vmcfg.dirty_async_ratio
        lowmem = min(self.total_pages, m.mm.first_high) if getattr(m.mm, "first_high", 0) else self.total_pages
        correction = 100 * 4 * lowmem // max(1, self.total_pages)  # page_writeback_init
        if correction < 100:
            self.background_ratio = self.background_ratio * correction // 100
            self.async_ratio = self.async_ratio * correction // 100
        self.writeback_ns = vmcfg.dirty_writeback_centisecs * 10_000_000
        self.expire_ns = vmcfg.dirty_expire_centisecs * 10_000_000
        ncpu = max(1, len(m.cpus))
        rl = self.total_pages // (ncpu * 32)  # set_ratelimit
        self.ratelimit_pages = min(max(rl, 16), (4096 * 1024) // PAGE_SIZE)
        self.ratelimits = [0] * ncpu
        self.nr_writeback = 0
        self.in_progress = False  # writeback_in_progress(bdi): a pdflush pass is running
        self.timer_armed = False
        self.stats = {"throttled": 0, "throttle_pages": 0, "background": 0, "kupdate": 0, "busy": 0,
                      "pages_written": 0, "max_dirty": 0}

    # --- accounting ------------------------------------------------------------------------
    @property
    def nr_dirty(self) -> int:
        return sum(len(i.mapping.dirty) for i in self.fs.inodes.values())

    def thresholds(self) -> tuple[int, int]:
        """(background_thresh, async_thresh) in pages."""
        return (self.background_ratio * self.total_pages // 100, self.async_ratio * self.total_pages // 100)

    # --- the writer's throttle ------------------------------------------------------------------
    def balance_dirty_pages_ratelimited(self, inode: Inode) -> None:
        cur = self.fs.m.sched.current
        cpu = cur.cpu.id if cur is not None else 0
        self.ratelimits[cpu] += 1
        if self.ratelimits[cpu] > self.ratelimit_pages:
            self.ratelimits[cpu] = 0
            self.balance_dirty_pages(inode)
        self.fs.m.pdflush.start()  # the pool, at the first need (mmframe.mm.pdflush)
        self.arm_timer()

    def balance_dirty_pages(self, inode: Inode) -> None:
        """2.5.49: above the async threshold the caller writes ``sync_writeback_pages()`` pages
        and waits for them; above the background threshold pdflush gets ``background_writeout``."""
        background, async_ = self.thresholds()
        dirty = self.nr_dirty
        self.stats["max_dirty"] = max(self.stats["max_dirty"], dirty)
        if dirty + self.nr_writeback > async_:
            self.stats["throttled"] += 1
            bios: list = []
            n = self.writeback_inodes(self.ratelimit_pages + self.ratelimit_pages // 2, bios)
            self.stats["throttle_pages"] += n
            self.fs.blk.wait_async(bios)
            dirty = self.nr_dirty
        if not self.in_progress and dirty > background:
            self.fs.m.pdflush.pdflush_operation(self.background_writeout)  # none idle: no pass now

    # --- writing pages ---------------------------------------------------------------------------
    def writeback_inodes(self, nr_to_write: int, bios: list, older_than: float | None = None) -> int:
        """Write up to ``nr_to_write`` dirty pages, inode by inode (oldest dirtied first); only
        inodes dirtied at or before ``older_than`` if given.  Bios are appended to ``bios``."""
        done = 0
        inodes = sorted((i for i in self.fs.inodes.values() if i.mapping.dirty),
                        key=lambda i: (i.mapping.dirtied_when, i.ino))
        for inode in inodes:
            if done >= nr_to_write:
                break
            if older_than is not None and inode.mapping.dirtied_when > older_than:
                break
            n, _ = self.writepages(inode, bios, nr_to_write - done)
            done += n
        return done

    def writepages(self, inode: Inode, bios: list, nr_to_write: int | None = None,
                   indices: list[int] | None = None) -> tuple[int, int]:
        """``mpage_writepages``: write dirty pages of ``inode`` (all, the first ``nr_to_write``,
        or exactly ``indices``), a bio per run of consecutive blocks; the last page's part past
        EOF is zeroed in the page first (``block_write_full_page``).  Returns (pages, error)."""
        fs, vm = self.fs, self.fs.vm
        mapping = inode.mapping
        todo = sorted(mapping.dirty) if indices is None else sorted(i for i in indices if i in mapping.dirty)
        if nr_to_write is not None:
            todo = todo[:nr_to_write]
        run: list[int] = []
        start, err, n = -2, 0, 0
        for index in todo:
            b = inode.blocks.get(index)
            if b is None:
                b = fs._alloc_block()
                if b < 0:
                    err = -ENOSPC
                    continue
                inode.blocks[index] = b
            pfn = mapping.page_tree.lookup(index)
            if index * PAGE_SIZE >= inode.size:
                filemap.clear_page_dirty(vm, pfn)  # wholly past EOF: nothing to write
                continue
            fs._zero_tail(inode, index, pfn)  # block_write_full_page: zero what lies past EOF
            if run and b == start + len(run):
                run.append(pfn)
            else:
                if run:
                    self._write_run(start, run, bios)
                run, start = [pfn], b
            filemap.clear_page_dirty(vm, pfn)
            n += 1
        if run:
            self._write_run(start, run, bios)
        self.stats["pages_written"] += n
        if not mapping.dirty:
            mapping.dirtied_when = 0.0
        return n, err

    def _write_run(self, start: int, pfns: list[int], bios: list) -> None:
        """Submit write bios for a run of pages (held until written, as PG_writeback holds them)."""
        fs = self.fs
        q = fs.dev.queue  # bio_add_page stops at the queue's max_sectors (255: 31 pages)
        per = q.max_sectors // PAGE_SECTORS if q is not None else 256
        for i in range(0, len(pfns), per):
            bio = bio_pages(WRITE, (start + i) * PAGE_SECTORS, pfns[i:i + per], self._end_write)
            self.nr_writeback += len(bio.vecs)
            fs.blk.pin_pages(bio)
            fs.blk.submit_bio(fs.dev, bio)
            bios.append(bio)

    def _end_write(self, bio: Any, err: int) -> None:
        self.nr_writeback -= len(bio.vecs)

    def write_one_page(self, pfn: int, wait: bool = True) -> int:
        """2.5.49's ``write_one_page``: write the dirty file page ``pfn`` (through
        :meth:`writepages`: EOF tail zeroed, ``nr_writeback`` counted); with ``wait``
        (``wait_on_page_writeback``) the write is complete when this returns: the device runs ahead
        to its completion and the current task, if any, sleeps until then when its call returns
        (``wait_sync``), so a caller in kernel context (vmscan's pageout, in kswapd or in a direct
        reclaim) may free the page next.  0 (also for a clean page), or -ENOSPC."""
        mapping, index = self.fs.vm.page_cache[pfn]
        if index not in mapping.dirty:
            return 0
        bios: list = []
        _, err = self.writepages(mapping.host, bios, indices=[index])
        if wait:
            for bio in bios:
                self.fs.blk.wait_sync(self.fs.dev, bio)
        return err

    def fsync(self, inode: Inode) -> int:
        """``filemap_fdatawrite`` + ``filemap_fdatawait``: every dirty page of ``inode``; the
        caller sleeps until they are written (and any already in flight)."""
        bios: list = []
        _, err = self.writepages(inode, bios)
        self.fs.blk.wait_async(bios)
        return err

    def sync(self) -> int:
        """``sys_sync``: every file's dirty pages, waited for."""
        bios: list = []
        err = 0
        for inode in list(self.fs.inodes.values()):
            if inode.mapping.dirty:
                _, e = self.writepages(inode, bios)
                err = err or e
        self.fs.blk.wait_async(bios)
        return err

    # --- pdflush work ----------------------------------------------------------------------------
    def _acquired(self, work: Any) -> None:
        """Run pdflush ``work`` holding the device (``writeback_acquire``: sync_sb_inodes lets
        one pdflush thread at a time write a backing device; another finds it taken and stops)."""
        if self.in_progress:
            self.stats["busy"] += 1
            return
        self.in_progress = True
        try:
            work()
        finally:
            self.in_progress = False
        self.fs.blk.run_queues()

    def background_writeout(self) -> None:
        """pdflush work: write MAX_WRITEBACK_PAGES at a time until dirty pages are under the
        background threshold or nothing is left."""
        self.stats["background"] += 1
        self._acquired(self._background_pass)

    def _background_pass(self) -> None:
        background, _ = self.thresholds()
        while self.nr_dirty >= background and self.nr_dirty:
            if self.writeback_inodes(MAX_WRITEBACK_PAGES, []) == 0:
                break

    def arm_timer(self, delay_ns: float | None = None) -> None:
        """The wb_timer: ``wb_kupdate`` every dirty_writeback_centisecs while pages are dirty
        (not re-armed once nothing is dirty; a daemon event: a run whose programs are done ends
        without waiting for it)."""
        if self.timer_armed or self.writeback_ns <= 0:
            return
        self.timer_armed = True
        layer = self.fs.blk
        t = layer.now() + (self.writeback_ns if delay_ns is None else delay_ns)
        layer.engine.at_daemon(t, layer._run_at, t, self._wb_timer_fn, ())

    def _wb_timer_fn(self) -> None:
        """``wb_timer_fn``: hand ``wb_kupdate`` to pdflush; with no thread idle, try again in a
        second (2.5.49: ``mod_timer(&wb_timer, jiffies + HZ)``)."""
        self.timer_armed = False
        if self.fs.m.pdflush.pdflush_operation(self.wb_kupdate) < 0:
            self.arm_timer(RETRY_NS)

    def wb_kupdate(self) -> None:
        """pdflush work: write the inodes first dirtied more than dirty_expire_centisecs ago,
        then re-arm the timer while pages are dirty."""
        self.stats["kupdate"] += 1
        older_than = self.fs.blk.now() - self.expire_ns
        self._acquired(lambda: self.writeback_inodes(self.nr_dirty, [], older_than=older_than))
        if self.nr_dirty:
            self.arm_timer()
