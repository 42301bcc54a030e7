"""Buffered I/O through the queue (docs/buffered_io.md): readahead's window on sequential, random
and backward streams, write-back (fsync, sync, the writer's throttle, pdflush's periodic and
background passes), the page past EOF, and data read back under every elevator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import examples

from mmframe.block.bio import READ
from mmframe.config import load_config
from mmframe.errors import ConfigError
from mmframe.machine import Machine
from mmframe.mm.readahead import FileRaState, page_cache_readahead
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, O_CREAT, O_RDONLY, O_RDWR, PROT_READ, PROT_WRITE,
                         close, fsync, ftruncate, mmap, open, pread, pwrite, read, sleep, sync, touch, write)

ELEVATORS = ("deadline", "noop", "linus", "rbtree", "rbtree-2.5.58")
PAGE = 4096


def machine(tmp_path, elevator: str = "deadline", memory: str = "64MiB", vm: str = "", debug: str = "syscall"):
    path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.toml"
    path.write_text(f'[machine]\nmemory = "{memory}"\ndebug_vm = "{debug}"\n[scenario]\nname = "spawn"\n'
                    f'[block.hda]\nelevator = "{elevator}"\n' + (f"[vm]\n{vm}\n" if vm else ""))
    plugins = ["elevator_rbtree"] if elevator.startswith("rbtree") else []
    return Machine(load_config(str(path), use_pyproject=False, env={}, cli_plugins=plugins))


def cached(m, path):
    return {i for i, _ in m.fs.inodes[path].mapping.page_tree.items()}


# --- readahead's window (2.5.49 mm/readahead.c) ---------------------------------------------------
# The rules, stated here: max = 32 pages (VM_MAX_READAHEAD 128 KiB), min = 4 (VM_MIN_READAHEAD
# 16 KiB).  A first read at page 0 opens a window of max/2 = 16 pages.  Afterwards an index in
# [start, start+size] is a hit (next_size += 2) else a miss (next_size -= 2), clamped to [4, 32].
# An index inside the window with no ahead window submits one at start+size of next_size pages;
# reaching the ahead window's start makes it current; any other index outside opens a new window
# of next_size pages there.

def _ra_machine(tmp_path, npages=400):
    m = machine(tmp_path, debug="off")
    m.fs.populate("/big", [1000 + i for i in range(npages)])
    return m, m.fs.inodes["/big"]


def test_a_sequential_stream_opens_half_the_maximum_then_an_ahead_window_that_grows(tmp_path):
    m, inode = _ra_machine(tmp_path)
    ra = FileRaState()
    page_cache_readahead(m.fs, inode, ra, 0)
    assert (ra.start, ra.size, ra.next_size) == (0, 16, 16) and cached(m, "/big") == set(range(16))
    page_cache_readahead(m.fs, inode, ra, 1)  # a hit inside the window: the ahead window goes out
    assert ra.next_size == 18 and (ra.ahead_start, ra.ahead_size) == (16, 18)
    assert cached(m, "/big") == set(range(34))
    for i in range(2, 16):
        page_cache_readahead(m.fs, inode, ra, i)
    assert ra.next_size == 32 and cached(m, "/big") == set(range(34))  # capped at max; nothing new
    page_cache_readahead(m.fs, inode, ra, 16)  # into the ahead window: it becomes current
    assert (ra.start, ra.size, ra.ahead_start, ra.ahead_size) == (16, 18, 0, 0)
    page_cache_readahead(m.fs, inode, ra, 17)  # and the next ahead window is the maximum
    assert (ra.ahead_start, ra.ahead_size) == (34, 32) and cached(m, "/big") == set(range(66))
    assert m.fs.ra_stats["pages"] == 66


def test_a_random_stream_shrinks_the_window_to_the_minimum(tmp_path):
    m, inode = _ra_machine(tmp_path)
    ra = FileRaState()
    expect = set()
    for off in (100, 7, 250, 55, 180):
        page_cache_readahead(m.fs, inode, ra, off)
        assert (ra.start, ra.size, ra.next_size) == (off, 4, 4)  # each a miss: a new minimal window
        expect |= set(range(off, off + 4))
    assert cached(m, "/big") == expect


def test_a_backward_stream_reads_one_new_page_a_step(tmp_path):
    m, inode = _ra_machine(tmp_path)
    ra = FileRaState()
    page_cache_readahead(m.fs, inode, ra, 300)
    before = m.fs.ra_stats["pages"]
    for k, off in enumerate(range(299, 280, -1), 1):
        page_cache_readahead(m.fs, inode, ra, off)
        assert (ra.start, ra.size) == (off, 4)
        assert m.fs.ra_stats["pages"] == before + k  # the rest of the window was cached already


def test_readahead_stops_at_end_of_file_and_is_off_when_configured(tmp_path):
    m, inode = _ra_machine(tmp_path, npages=10)
    ra = FileRaState()
    page_cache_readahead(m.fs, inode, ra, 0)
    assert cached(m, "/big") == set(range(10))
    off = machine(tmp_path, vm="readahead = false", debug="off")
    assert off.fs.ra_pages == 0


def _stream_reader(ctx, path, npages, chunk):
    buf = yield mmap(0, chunk * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    fd = yield open(path, O_RDONLY)
    out = []
    for off in range(0, npages, chunk):
        n = yield pread(fd, buf, chunk * PAGE, off * PAGE)
        out.append(n)
        for i in range(0, n // PAGE):
            out.append((yield read(buf + i * PAGE)))
    return 0 if out else 1


def test_a_sequential_read_is_served_by_readahead_in_large_requests(tmp_path):
    res = {}
    for ra in ("true", "false"):
        m = machine(tmp_path, vm=f"readahead = {ra}")
        m.fs.populate("/big", [7000 + i for i in range(256)])
        r = m.run(_stream_reader, "/big", 256, 4)
        dev = m.block.device()
        res[ra] = (r.sim_ns, dev.completions, m.fs.ra_stats["hits"], r.tasks["1"].calls)
        assert dev.sectors[READ] == 256 * 8  # each page read once
    assert res["true"][2] > 200 and res["false"][2] == 0
    assert res["true"][1] < res["false"][1] / 4  # whole windows per request, not a page
    assert res["true"][0] < res["false"][0]


# --- write-back -----------------------------------------------------------------------------------

def _writer(ctx, files, npages, do_fsync=True, chunk=8):
    buf = yield mmap(0, chunk * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for f in range(files):
        fd = yield open(f"/w{f}", O_CREAT | O_RDWR)
        for off in range(0, npages, chunk):
            for i in range(chunk):
                yield write(buf + i * PAGE, 100_000 * (f + 1) + off + i)
            yield pwrite(fd, buf, chunk * PAGE, off * PAGE)
        if do_fsync:
            assert (yield fsync(fd)) == 0
        yield close(fd)
    return 0


def _disk_tags(m, path):
    """Each block's content as the device reports it: a tag, (tag, tail) or bytes."""
    dev, inode = m.fs.dev, m.fs.inodes[path]
    return [dev.block_content(inode.blocks[i]) for i in range(len(inode.blocks))]


def test_after_fsync_the_disk_holds_exactly_what_was_written(tmp_path):
    m = machine(tmp_path)
    r = m.run(_writer, 3, 40)
    assert r.tasks["1"].status == 0
    for f in range(3):
        assert _disk_tags(m, f"/w{f}") == [100_000 * (f + 1) + i for i in range(40)]
        assert not m.fs.inodes[f"/w{f}"].mapping.dirty
    assert m.fs.wb.nr_writeback == 0


def test_sync_writes_every_file_and_waits(tmp_path):
    def prog(ctx):
        yield from _writer(ctx, 2, 16, do_fsync=False)
        assert (yield sync()) == 0
        return 0
    m = machine(tmp_path)
    r = m.run(prog)
    assert r.tasks["1"].status == 0 and m.fs.wb.nr_dirty == 0
    assert _disk_tags(m, "/w1") == [200_000 + i for i in range(16)]


def _dirty_trace(m):
    """The dirty pages after every pwrite, counted from the files' dirty sets (not from the
    write-back code's own count)."""
    seen = []
    inner = m.sched.handlers["pwrite"]

    def traced(task, *a):
        r = inner(task, *a)
        seen.append(sum(len(i.mapping.dirty) for i in m.fs.inodes.values()))
        return r
    m.sched.handlers["pwrite"] = traced
    return seen


def test_a_writer_above_the_async_threshold_is_throttled_and_dirty_pages_stay_bounded(tmp_path):
    vm = "dirty_background_ratio = 2\ndirty_async_ratio = 5"
    m = machine(tmp_path, memory="64MiB", vm=vm, debug="exit")
    seen = _dirty_trace(m)
    r = m.run(_writer, 1, 3008, False, 16)
    wb = m.fs.wb
    total = 64 * 256
    background, async_ = total * 2 // 100, total * 5 // 100
    assert wb.thresholds() == (background, async_)
    assert r.tasks["1"].status == 0 and wb.stats["throttled"] > 0 and wb.stats["throttle_pages"] > 0
    # between two checks a CPU dirties at most ratelimit_pages (+ one call's pages)
    assert max(seen) <= async_ + wb.ratelimit_pages + 16
    assert max(seen) > background  # the writer did get above the background threshold
    # the unthrottled run (thresholds at 100%) ends with everything still dirty
    m2 = machine(tmp_path, memory="64MiB", vm="dirty_background_ratio = 100\ndirty_async_ratio = 100", debug="off")
    seen2 = _dirty_trace(m2)
    r2 = m2.run(_writer, 1, 3008, False, 16)
    assert max(seen2) == 3008 and m2.fs.wb.stats["throttled"] == 0
    assert r.sim_ns > r2.sim_ns  # the throttled writer waited for the disk


def test_pdflush_writes_pages_older_than_the_expiry_without_fsync(tmp_path):
    def prog(ctx):
        yield from _writer(ctx, 1, 8, do_fsync=False)
        yield sleep(40 * 10**9)  # past dirty_expire_centisecs (30 s) and a wb_kupdate pass
        return 0
    m = machine(tmp_path)
    r = m.run(prog)
    assert r.tasks["1"].status == 0 and m.fs.wb.stats["kupdate"] >= 1
    assert m.fs.wb.nr_dirty == 0 and _disk_tags(m, "/w0") == [100_000 + i for i in range(8)]
    m2 = machine(tmp_path)
    m2.run(_writer, 1, 8, False)  # a run whose program ends does not wait for the timer
    assert m2.fs.wb.nr_dirty == 8 and m2.fs.wb.stats["kupdate"] == 0


def test_background_writeout_starts_above_the_background_threshold(tmp_path):
    m = machine(tmp_path, memory="64MiB", vm="dirty_background_ratio = 1\ndirty_async_ratio = 90", debug="off")
    m.run(_writer, 1, 600, False, 16)
    wb = m.fs.wb
    assert wb.stats["background"] >= 1 and wb.stats["throttled"] == 0
    assert wb.nr_dirty < 600 and wb.stats["pages_written"] > 0


def test_background_writeout_runs_on_a_pdflush_kernel_thread(tmp_path):
    """The pass is a scheduler task's work: a kernel thread of the pool (two started at the first
    buffered write), charged to <pdflush>, not the writer; the threads are not in the results."""
    m = machine(tmp_path, memory="64MiB", vm="dirty_background_ratio = 1\ndirty_async_ratio = 90", debug="off")
    r = m.run(_writer, 1, 600, False, 16)
    threads = [t for t in m.sched.tasks.values() if t.kthread and t.lineage == "pdflush"]
    assert len(threads) == 2 and m.pdflush.nr_threads == 2
    assert all(t.mm is None for t in threads) and set(r.tasks) == {"1"}
    assert m.pdflush.stats["operations"] >= 1 and m.fs.wb.stats["background"] >= 1
    assert sum(t.nsys for t in threads) >= 3  # each slept once on the idle list, one worked
    work = m.acct.totals(task="<pdflush>")
    assert work.get("syscall", 0) >= 3 and sum(work.values()) > work["syscall"]  # the pass's own work


def test_no_pdflush_thread_without_buffered_writes(tmp_path):
    m = machine(tmp_path, debug="off")
    m.run(_reader_only)
    assert m.pdflush.nr_threads == 0 and not any(t.kthread for t in m.sched.tasks.values())


def _reader_only(ctx):
    buf = yield mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(buf, 4 * PAGE, True)
    return 0


def test_write_one_page_writes_that_page_for_reclaim(tmp_path):
    m = machine(tmp_path, debug="off")
    m.run(_writer, 1, 4, False)
    inode = m.fs.inodes["/w0"]
    pfn = inode.mapping.page_tree.lookup(2)
    assert m.fs.wb.write_one_page(pfn) == 0
    assert inode.mapping.dirty == set(range(8)) - {2}
    m.block.run_queues()
    while not m.engine.idle():
        m.engine.fire_until(m.engine.heap[0][0])
    assert m.fs.dev.block_content(inode.blocks[2]) == 100_002
    assert m.fs.wb.write_one_page(pfn) == 0  # clean: nothing to do


# --- the page past EOF ------------------------------------------------------------------------------

def test_a_store_past_eof_through_a_shared_mapping_never_reaches_the_disk_nor_reappears(tmp_path):
    def prog(ctx):
        buf = yield mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield write(buf, 4242)
        fd = yield open("/short", O_CREAT | O_RDWR)
        assert (yield pwrite(fd, buf, 100, 0)) == 100  # i_size = 100
        yield fsync(fd)
        map_ = yield mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        yield write(map_ + 200, 777)  # past EOF, inside the last page
        assert (yield fsync(fd)) == 0  # msync's work: the page is written back
        from mmframe.usr import msync
        assert (yield msync(map_, PAGE)) == 0
        assert (yield ftruncate(fd, 2 * PAGE)) == 0  # the file grows over the stored bytes
        got = yield read(map_ + 200)
        return 0 if got == 0 else 1
    m = machine(tmp_path)
    r = m.run(prog)
    assert r.tasks["1"].status == 0  # the store does not reappear in memory
    inode = m.fs.inodes["/short"]
    tag, tail = m.fs.dev.block_content(inode.blocks[0])
    # on the disk: zeroes from EOF on (the tail may start earlier where the written pattern's own
    # bytes are zero: the byte-level content keeps the first offset of an all-zero run)
    assert tail is not None and tail <= 100
    m.fs.drop_caches()

    def reread(ctx):  # through a mapping (pread copies a page's tag, not its zeroed tail)
        fd = yield open("/short", O_RDONLY)
        map_ = yield mmap(0, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0)
        return 0 if (yield read(map_ + 200)) == 0 else 1
    r2 = m.run(reread)
    assert list(r2.tasks.values())[-1].status == 0  # nor from the disk


# --- data read back under every elevator -------------------------------------------------------------

def _mixed(ctx, seed):
    buf = yield mmap(0, 32 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    rng = ctx.rng
    fds = []
    for f in range(3):
        fds.append((yield open(f"/d{f}", O_CREAT | O_RDWR)))
    for step in range(30):
        f = rng.randrange(3)
        off = rng.randrange(64)
        n = rng.randrange(1, 9)
        for i in range(n):
            yield write(buf + i * PAGE, seed * 1_000_000 + step * 100 + i)
        yield pwrite(fds[f], buf, n * PAGE, off * PAGE)
        if rng.random() < 0.2:
            yield fsync(fds[f])
    out = []
    for f in range(3):
        for off in range(0, 72, 8):
            n = yield pread(fds[f], buf, 8 * PAGE, off * PAGE)
            for i in range(n // PAGE):
                out.append((yield read(buf + i * PAGE)))
    return 0


@pytest.mark.parametrize("elevator", ELEVATORS[1:])
def test_data_read_back_equals_data_written_under_every_elevator(tmp_path, elevator):
    from mmframe.differential import compare_results
    a = machine(tmp_path, "deadline").run(_mixed, 3)
    b = machine(tmp_path, elevator).run(_mixed, 3)
    cmp = compare_results(a, b)
    assert cmp.same, cmp.report()


@settings(max_examples=examples(6), deadline=None)
@given(seed=st.integers(0, 1000), elevator=st.sampled_from(ELEVATORS))
def test_a_cold_cache_reads_back_what_was_written_under_every_elevator(tmp_path_factory, seed, elevator):
    """Write with throttling and readahead on, drop the cache, read again: the same tags."""
    tmp = tmp_path_factory.mktemp("cold")
    m = machine(tmp, elevator, vm="dirty_background_ratio = 1\ndirty_async_ratio = 2", debug="exit")
    m.run(_writer, 2, 96, False, 8)
    expect = {f: [100_000 * (f + 1) + i for i in range(96)] for f in range(2)}
    def syncer(ctx):
        yield sync()
        return 0
    m.run(syncer)
    m.fs.drop_caches()
    got = {}

    def reader(ctx):
        buf = yield mmap(0, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        for f in range(2):
            fd = yield open(f"/w{f}", O_RDONLY)
            got[f] = []
            for off in range(0, 96, 8):
                yield pread(fd, buf, 8 * PAGE, off * PAGE)
                for i in range(8):
                    got[f].append((yield read(buf + i * PAGE)))
        return 0
    m.run(reader)
    assert got == expect and m.fs.ra_stats["pages"] > 0


# --- [vm] configuration --------------------------------------------------------------------------------

def test_vm_settings_are_validated_naming_file_key_and_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError) as e:
        machine(tmp_path, vm="dirty_sync_ratio = 50")
    assert "vm" in str(e.value) and "dirty_sync_ratio" in str(e.value) and "dirty_async_ratio" in str(e.value)
    with pytest.raises(ConfigError) as e:
        machine(tmp_path, vm="dirty_async_ratio = 140")
    assert "dirty_async_ratio" in str(e.value) and ".toml" in str(e.value)
    cfg = machine(tmp_path, vm="dirty_expire_centisecs = 100").cfg.vm
    assert cfg.dirty_expire_centisecs == 100 and cfg.dirty_background_ratio == 10 and cfg.dirty_async_ratio == 40


def test_a_failed_readahead_is_read_again_when_needed(tmp_path):
    """READA bios that find no free request end with -EAGAIN; the reader then reads the page."""
    path = tmp_path / "q.toml"
    path.write_text('[machine]\nmemory = "64MiB"\ndebug_vm = "exit"\n[scenario]\nname = "spawn"\n'
                    '[block.hda]\nnr_requests = 4\n')
    m = Machine(load_config(str(path), use_pyproject=False, env={}))
    inode = m.fs.populate("/sparse", [3000 + i for i in range(128)])
    inode.blocks = {i: inode.blocks[2 * i] for i in range(64)}  # every other block: no two adjacent
    inode.size = 64 * PAGE
    got = []

    def reader(ctx):
        buf = yield mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        fd = yield open("/sparse", O_RDONLY)
        for i in range(64):
            yield pread(fd, buf, PAGE, i * PAGE)
            got.append((yield read(buf)))
        return 0
    m.run(reader)
    assert m.fs.ra_stats["eagain"] > 0
    assert got == [3000 + 2 * i for i in range(64)]


def test_fsync_sleeps_until_its_pages_are_on_the_disk(tmp_path):
    m = machine(tmp_path)
    seen = []

    def prog(ctx):
        buf = yield mmap(0, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        for i in range(8):
            yield write(buf + i * PAGE, 50 + i)
        fd = yield open("/f", O_CREAT | O_RDWR)
        yield pwrite(fd, buf, 8 * PAGE, 0)
        yield fsync(fd)
        seen.append(_disk_tags(m, "/f"))  # as the program resumes
        return 0
    m.run(prog)
    assert seen == [[50 + i for i in range(8)]]


def test_kupdate_writes_only_inodes_older_than_the_expiry(tmp_path):
    m = machine(tmp_path)
    state = []

    def prog(ctx):
        yield from _writer(ctx, 1, 8, do_fsync=False)  # /w0 at ~0 s
        yield sleep(20 * 10**9)
        buf = yield mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield write(buf, 9)
        fd = yield open("/late", O_CREAT | O_RDWR)
        yield pwrite(fd, buf, PAGE, 0)  # /late at ~20 s
        yield sleep(15 * 10**9)  # ~35 s: /w0 has expired (30 s), /late has not
        state.append((len(m.fs.inodes["/w0"].mapping.dirty), len(m.fs.inodes["/late"].mapping.dirty)))
        return 0
    m.run(prog)
    assert state == [(0, 1)] and m.fs.wb.stats["kupdate"] >= 6


# --- the pdflush pool's rules (2.5.49 mm/pdflush.c), on a stand-in scheduler ----------------------

class _Task:
    def __init__(self, pid):
        self.pid, self.kthread, self.row = pid, True, None


class _Sched:
    current = None

    def __init__(self):
        self.pids, self.woken = 10, []

    def spawn_kthread(self, name, program):
        self.pids += 1
        return _Task(self.pids)

    def wake(self, task, result):
        self.woken.append(task.pid)

    def block(self, task):
        return "blocked"


class _Machine:
    def __init__(self):
        self.sched, self.now = _Sched(), 0

    @property
    def engine(self):
        return type("E", (), {"now": self.now})()

    @property
    def acct(self):
        return type("A", (), {"ns": 0.0, "row_for": staticmethod(lambda t, o: [])})()


def test_pdflush_pool_refuses_grows_after_a_second_without_idle_and_sheds_the_sleepiest():
    from mmframe.mm.pdflush import EXIT, Pdflush
    S = 10**9
    m = _Machine()
    pool = Pdflush(m)
    done = []
    pool.start()
    t1, t2 = sorted(pool.idle, key=lambda t: t.pid)
    assert pool.nr_threads == 2 and list(pool.idle) == [t2, t1]  # the last to sleep first
    assert pool.pdflush_operation(lambda: done.append("a")) == 0 and pool.work == {t2.pid: pool.work[t2.pid]}
    assert pool.pdflush_operation(lambda: done.append("b")) == 0  # t1: the list goes empty at 0 s
    assert pool.pdflush_operation(lambda: done.append("c")) == -1 and pool.stats["refused"] == 1
    m.now = 2 * S  # t2 finishes: no thread idle for 2 s -> a third starts (idle from now)
    assert pool.round(t2) == "blocked" and done == ["a"] and pool.nr_threads == 3
    t3 = next(t for t in pool.idle if t not in (t1, t2))
    assert list(pool.idle) == [t2, t3]
    m.now = 4 * S  # t1 finishes: t3 has slept 2 s and there are more than two -> t1 exits
    assert pool.round(t1) == EXIT and done == ["a", "b"] and pool.nr_threads == 2
    assert list(pool.idle) == [t2, t3] and pool.slept_at[t3.pid] == 4 * S  # the exit rate is limited
    m.now = 4 * S + 1  # two left: the minimum stays, however long they sleep
    assert pool.pdflush_operation(lambda: done.append("d")) == 0 and pool.round(t2) == "blocked"
    m.now = 6 * S  # t3 has slept 2 s, but only the minimum is left
    assert pool.pdflush_operation(lambda: done.append("e")) == 0 and pool.round(t2) == "blocked"
    assert pool.nr_threads == 2 and pool.stats == {"operations": 4, "refused": 1, "started": 3, "exited": 1}
