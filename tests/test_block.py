"""The block layer: bios and requests, merge rules and limits, queue depth, sleeping for a request,
plugging, bounce, the elevators (each on hypothesis-generated request streams: every request
completes once, reads return what was last written, latency within a bound derived from the
configuration), the elevator registry and config, and the I/O promise across elevators."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support import active_policies, elevator_layers, examples

from mmframe.block.bio import BIO_RW_AHEAD, READ, WRITE, Bio, bio_pages
from mmframe.block.elevator import ELEVATOR_NO_MERGE, Elevator
from mmframe.block.ll_rw_blk import batch_requests, queue_nr_requests
from mmframe.config import load_config
from mmframe.errors import ConfigError, UsageError
from mmframe.machine import Machine
from mmframe.workloads.iodriver import Driver, check_reads, random_depth

ELEVATORS = ("deadline", "noop", "linus")
MiB = 1 << 20


def machine(tmp_path, block: str = "", memory: str = "256MiB", **kw) -> Machine:
    path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.toml"
    path.write_text(f'[machine]\nmemory = "{memory}"\n[scenario]\nname = "spawn"\n' + block)
    if "cli_plugins" not in kw and "elevator" not in block:  # the run's elevator where the test names none
        kw.setdefault("extra_layers", elevator_layers())
    kw.setdefault("cli_plugins", list(active_policies()))
    return Machine(load_config(str(path), use_pyproject=False, env={}, **kw))


def disk_block(elevator: str = "deadline", model: str = "ata-7200", extra: str = "") -> str:
    return f'[block.hda]\nelevator = "{elevator}"\nmodel = "{model}"\n{extra}'


# --- queue depth, the period's rule -------------------------------------------------------------

def test_queue_nr_requests_is_2_5_49s_global_rule():
    # (RAM KiB >> 9) & ~7 clamped to 16..128, per direction
    assert queue_nr_requests(8 * MiB) == 16
    assert queue_nr_requests(32 * MiB) == 64
    assert queue_nr_requests(40 * MiB) == 80
    assert queue_nr_requests(1 << 30) == 128
    assert queue_nr_requests(16 << 30) == 128
    assert batch_requests(128) == 8 and batch_requests(16) == 2


def test_the_queue_takes_its_depth_from_memory_or_a_per_queue_setting(tmp_path):
    assert machine(tmp_path, memory="32MiB").block.device().queue.nr_requests == 64
    m = machine(tmp_path, disk_block(extra="nr_requests = 512\n"))
    assert m.block.device().queue.nr_requests == 512


# --- merging ------------------------------------------------------------------------------------

def _queue_machine(tmp_path, elevator="deadline"):
    m = machine(tmp_path, disk_block(elevator))
    dev = m.block.device()
    return m, dev, dev.queue


def _bio(m, rw, sector, npages, contiguous=True):
    from mmframe.mm.page import GFP_KERNEL
    if contiguous:
        first = m.alloc_pages(GFP_KERNEL, 4)  # 16 physically contiguous pages
        pfns = [first + i for i in range(npages)]
    else:
        pfns = [m.alloc_pages(GFP_KERNEL, 0) for _ in range(npages)]
    return bio_pages(rw, sector, pfns)


@pytest.mark.parametrize("elevator", ELEVATORS)
def test_back_and_front_merges_build_one_request(tmp_path, elevator):
    m, dev, q = _queue_machine(tmp_path, elevator)
    with m.block.irq(0.0):
        m.block.submit_bio(dev, _bio(m, READ, 800, 1))    # plugs the empty queue, a request
        m.block.submit_bio(dev, _bio(m, READ, 808, 1))    # back merge
        m.block.submit_bio(dev, _bio(m, READ, 792, 1))    # front merge
        m.block.submit_bio(dev, _bio(m, WRITE, 816, 1))   # other direction: no merge
    assert q.plugged and q.stats["requests"] == 2
    assert q.stats["back_merges"] == 1 and q.stats["front_merges"] == 1
    read = next(r for r in _all_rqs(q.elevator) if r.rw == READ)
    assert (read.sector, read.nr_sectors, [b.sector for b in read.bios()]) == (792, 24, [792, 800, 808])
    dev.run_until(_last_bio(dev))
    with m.block.irq(0.0):
        pass
    Driver(m, dev, 0, 0).run()
    assert sorted(dev.completed) == sorted(set(dev.completed)) and len(dev.completed) == 2


def _last_bio(dev):
    elv = dev.queue.elevator
    rqs = [r for r in _all_rqs(elv)]
    return rqs[-1].biotail


def _all_rqs(elv):
    if hasattr(elv, "sort"):
        return list(elv.dispatch.rqs) + elv.sort[0].rqs + elv.sort[1].rqs
    return list(elv.queue.rqs)


@pytest.mark.parametrize("elevator", ELEVATORS)
def test_a_back_merge_stops_at_255_sectors(tmp_path, elevator):
    m, dev, q = _queue_machine(tmp_path, elevator)
    with m.block.irq(0.0):
        for i in range(40):  # 40 contiguous pages = 320 sectors
            m.block.submit_bio(dev, _bio(m, READ, 8 * i, 1))
    rqs = sorted(_all_rqs(q.elevator), key=lambda r: r.sector)
    assert [r.nr_sectors for r in rqs] == [248, 72]  # 31 pages fit in 255 sectors, the 32nd does not
    assert all(r.nr_sectors <= 255 for r in rqs) and q.stats["merge_refused"] >= 1


def test_segments_are_counted_and_limited_to_128(tmp_path):
    m, dev, q = _queue_machine(tmp_path)
    q.max_sectors = 4096  # lift the sector limit to reach the segment limit
    with m.block.irq(0.0):
        for i in range(130):  # half-page bios of pages far apart: one segment each
            b = Bio(READ, 4 * i, [(m.alloc_pages(0x10, 0), 0, 2048)])
            m.block.submit_bio(dev, b)
    rqs = sorted(_all_rqs(q.elevator), key=lambda r: r.sector)
    assert [r.nr_phys_segments for r in rqs] == [128, 2]
    assert [r.nr_sectors for r in rqs] == [512, 8]


def test_a_segment_is_at_most_64k():
    from mmframe.block.bio import bio_phys_segments
    vecs = [(100 + i, 0, 4096) for i in range(32)]  # 128 KiB physically contiguous
    assert bio_phys_segments(vecs, 65536) == 2
    assert bio_phys_segments(vecs[:16], 65536) == 1
    assert bio_phys_segments([(5, 0, 4096), (7, 0, 4096)], 65536) == 2


def test_a_request_merges_with_its_neighbour_after_a_bio_fills_the_gap(tmp_path):
    m, dev, q = _queue_machine(tmp_path)
    with m.block.irq(0.0):
        m.block.submit_bio(dev, _bio(m, READ, 0, 1))
        m.block.submit_bio(dev, _bio(m, READ, 16, 1))
        assert q.stats["requests"] == 2
        m.block.submit_bio(dev, _bio(m, READ, 8, 1))  # back-merges into the first, which then meets the second
    assert q.stats["request_merges"] == 1
    rqs = _all_rqs(q.elevator)
    assert len(rqs) == 1 and rqs[0].sector == 0 and rqs[0].nr_sectors == 24
    assert [b.sector for b in rqs[0].bios()] == [0, 8, 16]
    assert q.free[READ] == q.nr_requests - 1  # the merged-away request went back


def test_last_merge_is_tried_first_and_dropped_on_dispatch(tmp_path):
    m, dev, q = _queue_machine(tmp_path)
    with m.block.irq(0.0):
        m.block.submit_bio(dev, _bio(m, READ, 1000, 1))
        rq = q.last_merge
        assert rq is not None and rq.sector == 1000
        steps = dict(q.elevator.step_counts)
        m.block.submit_bio(dev, _bio(m, READ, 1008, 1))  # via the hint: no hash, no scan
        assert q.elevator.step_counts == steps
        q.unplug()
    assert dev.busy is rq and q.last_merge is None


def test_a_barrier_never_merges_and_flushes_the_hint(tmp_path):
    from mmframe.block.bio import BIO_RW_BARRIER
    m, dev, q = _queue_machine(tmp_path)
    with m.block.irq(0.0):
        m.block.submit_bio(dev, _bio(m, WRITE, 0, 1))
        b = _bio(m, WRITE, 8, 1)
        b.flags |= BIO_RW_BARRIER
        m.block.submit_bio(dev, b)
        m.block.submit_bio(dev, _bio(m, WRITE, 16, 1))
    assert q.stats["requests"] == 3 and q.stats["back_merges"] == 0


# --- request allocation, sleeping, read-ahead --------------------------------------------------

def test_bios_sleep_for_a_free_request_and_readahead_is_dropped(tmp_path):
    m = machine(tmp_path, disk_block(extra="nr_requests = 16\n"))
    dev, q = m.block.device(), m.block.device().queue
    drv = Driver(m, dev, 40, 1)
    with m.block.irq(0.0):
        recs = [drv.submit(i, READ, 10_000 * i, 8) for i in range(40)]
        ra = Bio(READ, 7, [(drv.pages[0][0], 0, 512)], flags=BIO_RW_AHEAD)
        m.block.submit_bio(dev, ra)
    assert q.free[READ] == 0 and q.stats["sleeps"] == 24 and len(q.parked[READ]) == 24
    assert ra.done == 1 and ra.error < 0 and q.stats["readahead_failed"] == 1
    drv.run()
    assert all(r.completions == 1 for r in recs) and q.free[READ] == 16 and not q.parked[READ]


# --- bounce ----------------------------------------------------------------------------------------

def test_highmem_pages_bounce_and_come_back(tmp_path):
    m = machine(tmp_path, memory="1GiB")
    dev, q = m.block.device(), m.block.device().queue
    vm = m.mm
    high = m.alloc_pages(0x02 | 0x10, 0)  # __GFP_HIGHMEM | __GFP_WAIT
    assert high >= vm.first_high
    vm.tag[high] = 4242
    w = bio_pages(WRITE, 64, [high])
    with m.block.irq(0.0):
        m.block.submit_bio(dev, w)
    assert q.stats["bounced_pages"] == 1 and w.vecs[0][0] < vm.first_high
    dev.run_until(w)
    assert w.vecs[0][0] == high and dev.read_block(8) == 4242
    vm.tag[high] = 0
    r = bio_pages(READ, 64, [high])
    with m.block.irq(w.done_at):
        m.block.submit_bio(dev, r)
    dev.run_until(r)
    assert vm.tag[high] == 4242 and q.stats["bounced_pages"] == 2
    m2 = machine(tmp_path, disk_block(extra='bounce = "none"\n'), memory="1GiB")
    b = bio_pages(WRITE, 64, [m2.alloc_pages(0x12, 0)])
    with m2.block.irq(0.0):
        m2.block.submit_bio(m2.block.device(), b)
    assert m2.block.device().queue.stats["bounced_pages"] == 0


# --- generated request streams, per elevator ---------------------------------------------------

streams = st.lists(st.tuples(st.sampled_from([READ, WRITE]), st.integers(0, 63), st.sampled_from([1, 2, 8, 16]),
                             st.integers(0, 30)), min_size=1, max_size=60)


def _run_stream(tmp_path, elevator, stream, nr_requests=16):
    """Each element: (rw, slot of 8 sectors out of 64, sectors, delay in ms before it arrives)."""
    m = machine(tmp_path, disk_block(elevator, extra=f"nr_requests = {nr_requests}\n"))
    dev = m.block.device()
    drv = Driver(m, dev, len(stream), 4)
    t = 0.0
    for i, (rw, slot, nsect, delay) in enumerate(stream):
        t += delay * 1e6
        m.block.at(t, lambda i=i, rw=rw, slot=slot, nsect=nsect: (drv.submit(i, rw, slot * 8, nsect),
                                                                    dev.queue.unplug()))
    drv.run()
    return m, dev, drv


@pytest.mark.parametrize("elevator", ELEVATORS)
@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams)
@example(stream=[(WRITE, 3, 8, 0), (READ, 3, 8, 0), (WRITE, 3, 8, 40), (READ, 3, 1, 0)])
def test_every_request_completes_once_and_reads_return_the_last_write(tmp_path, elevator, stream):
    m, dev, drv = _run_stream(tmp_path, elevator, stream)
    assert [r.completions for r in drv.records] == [1] * len(stream)
    assert len(dev.completed) == len(set(dev.completed))  # no request completed twice
    assert sum(len(rq_bios) for rq_bios in [[0]] * 0) == 0
    assert not check_reads(drv.records)
    assert dev.queue.free == [dev.queue.nr_requests] * 2 and dev.busy is None
    # the bound: a finite stream drains by its last arrival plus every request served at worst
    worst = dev.model.worst_case(16)
    last = max(r.submitted for r in drv.records)
    assert max(r.done for r in drv.records) <= last + len(stream) * worst


def test_the_checker_catches_a_stale_read():
    from mmframe.workloads.iodriver import IoRecord
    w = IoRecord(WRITE, 0, 1, 0.0, 10.0, 1, ((7, None),))
    r = IoRecord(READ, 0, 1, 20.0, 30.0, 1, (None,))
    assert check_reads([w, r]) and not check_reads([w, attrs.evolve(r, data=((7, None),))])


# --- deadline's guarantees, with bounds from its configuration ---------------------------------

def _streaming_reads_and_one(tmp_path, other_rw, other_sector, seconds=8.0, extra="", elevator="deadline"):
    """One sequential stream read by 8 submitters (a closed loop: each completion asks for the next
    8 sectors, 8 past the last) for ``seconds``, and one more I/O (``other_rw`` at ``other_sector``, beyond the
    stream) submitted at 1 ms.  The stream always has a read just ahead of the head, which the sort
    list serves first: only the FIFO and ``writes_starved`` get the other I/O served."""
    m = machine(tmp_path, disk_block(elevator, extra=extra))
    dev = m.block.device()
    drv = Driver(m, dev, 9, 1)
    pos = [0]

    def reader(slot):
        if m.block.now() < seconds * 1e9:
            pos[0] += 16  # a gap: the reads never merge, so several are always queued ahead
            drv.submit(slot, READ, pos[0], 8, lambda rec: reader(slot))
            dev.queue.unplug()

    for s in range(8):
        m.block.at(0.0, reader, s)
    box = []
    m.block.at(1e6, lambda: (box.append(drv.submit(8, other_rw, other_sector, 8)), dev.queue.unplug()))
    drv.run()
    return dev, box[0]


def test_an_expired_read_is_served_within_its_deadline_bound(tmp_path):
    dev, far = _streaming_reads_and_one(tmp_path, READ, 70_000_000)  # at the far end of the disk
    elv = dev.queue.elevator
    worst = dev.model.worst_case(8)
    # Once expired (read_expire after queueing), the read is the oldest in the FIFO at the next
    # decision: at most the dispatch list's batch (fifo_batch requests) and one write batch come first.
    bound = elv.read_expire + (2 * elv.fifo_batch + 1) * worst
    assert far.completions == 1 and far.done - far.submitted <= bound
    assert far.done - far.submitted > elv.read_expire / 2  # it did wait: the readers kept the head low


def test_linus_lets_a_read_be_passed_only_until_its_budget_is_spent(tmp_path):
    from mmframe.block.linus import ELV_LINUS_SEEK_COST
    dev, far = _streaming_reads_and_one(tmp_path, READ, 70_000_000, elevator="linus")
    worst = dev.model.worst_case(8)
    # each seeky insertion ahead costs it 16 of its 1024: after 64 it is passed no more; then at most
    # the 8 stream reads queued ahead of it go first
    bound = (dev.queue.elevator.latency[READ] // ELV_LINUS_SEEK_COST + 8 + 1) * worst
    assert far.completions == 1 and far.done - far.submitted <= bound


def test_writes_are_not_starved_for_more_than_writes_starved_read_batches(tmp_path):
    dev, w = _streaming_reads_and_one(tmp_path, WRITE, 70_000_000)
    elv = dev.queue.elevator
    worst = dev.model.worst_case(8)
    # reads win writes_starved decisions, then a write batch: each batch at most fifo_batch requests
    bound = (elv.writes_starved + 2) * elv.fifo_batch * worst
    assert w.completions == 1 and w.done - w.submitted <= bound


def test_a_batch_is_one_seeky_request_or_sixteen_streaming(tmp_path):
    m, dev, q = _queue_machine(tmp_path)
    elv = q.elevator
    with m.block.irq(0.0):
        for i in range(20):  # 20 separate requests 256 sectors apart: no merging, all seeky
            m.block.submit_bio(dev, _bio(m, READ, 4096 * i, 1))
    elv.last_sector = 10 ** 9
    elv.next_req()
    assert len(elv.dispatch.rqs) == 1
    elv.dispatch.rqs.clear()
    elv.last_sector = elv.sort[READ].rqs[0].sector
    for rq in elv.sort[READ].rqs:  # pretend they are contiguous: each costs (8+255)>>8 = 1
        pass
    m2, dev2, q2 = _queue_machine(tmp_path)
    q2.max_sectors = 8  # no merging: contiguous 8-sector requests
    with m2.block.irq(0.0):
        for i in range(20):
            m2.block.submit_bio(dev2, _bio(m2, READ, 8 * i, 1))
    q2.elevator.last_sector = 0
    q2.elevator.next_req()
    assert len(q2.elevator.dispatch.rqs) == 16


# --- the elevator registry and config -------------------------------------------------------------

def test_an_unknown_elevator_is_a_config_error_listing_the_registered_ones(tmp_path):
    with pytest.raises(ConfigError) as exc:
        machine(tmp_path, disk_block("cfq"))
    text = str(exc.value)
    assert "block.hda.elevator" in text and "'cfq'" in text
    assert "allowed: deadline, linus, noop" in text and ".toml:6:" in text


def test_elevator_tunables_are_validated(tmp_path):
    m = machine(tmp_path, disk_block(extra='[block.hda.deadline]\nread_expire = "250ms"\nfifo_batch = 4\n'))
    elv = m.block.device().queue.elevator
    assert elv.read_expire == 250e6 and elv.fifo_batch == 4 and elv.writes_starved == 2
    with pytest.raises(ConfigError, match="block.hda.deadline.fifo_batch"):
        machine(tmp_path, disk_block(extra='[block.hda.deadline]\nfifo_batch = 0\n'))
    with pytest.raises(ConfigError, match="unknown key.*read_expire, writes_starved"):
        machine(tmp_path, disk_block(extra='[block.hda.deadline]\nwrite_expire = "5s"\n'))


def test_a_machine_without_block_tables_has_the_default_disk(config):
    assert [(d.name, d.elevator, d.model) for d in config.disks] == [("hda", "deadline", "ata-7200")]


PLUGIN_ELEVATOR = """
from mmframe.hookspecs import hookimpl
from mmframe.block.noop import Noop
from mmframe.options import Option
from mmframe.costs import CostEntry

class Fifo(Noop):
    name = "fifo_test"
    period = "test"
    tunables = (Option("knob", "int", 3, "a knob", minimum=1, scope="queue"),)
    steps = {"scan": "{name}.visit"}
    def init(self, q, options):
        super().init(q, options)
        self.knob = options["knob"]

@hookimpl
def mmframe_elevators():
    return [Fifo]

@hookimpl
def mmframe_cost_entries():
    return [CostEntry("{name}.visit", 5.0, "estimate", "a test")]
"""


def test_a_plugin_registers_an_elevator_used_when_enabled(tmp_path, install_plugin, isolated):
    install_plugin("elvtest", PLUGIN_ELEVATOR.replace("{name}", "elvtest"))
    block = disk_block("fifo_test", extra="[block.hda.fifo_test]\nknob = 7\n")
    m = machine(tmp_path, block, cli_plugins=["elvtest", *active_policies()])
    elv = m.block.device().queue.elevator
    assert type(elv).__name__ == "Fifo" and elv.knob == 7
    with pytest.raises(UsageError, match="plugin 'elvtest'"):
        machine(tmp_path, block, cli_plugins=[])
    with pytest.raises(ConfigError, match="knob"):
        machine(tmp_path, disk_block("fifo_test", extra="[block.hda.fifo_test]\nknob = 0\n"),
                cli_plugins=["elvtest"])


def test_a_bad_elevator_class_is_named_with_the_hook(tmp_path, install_plugin, isolated):
    from mmframe.errors import PluginError
    install_plugin("badelv", "from mmframe.hookspecs import hookimpl\n"
                   "class X: name = 'x'\n@hookimpl\ndef mmframe_elevators():\n    return [X]\n")
    with pytest.raises(PluginError, match="mmframe_elevators.*not a subclass"):
        load_config(use_pyproject=False, env={})


def test_the_base_class_requires_the_core_operations():
    from mmframe.block.elevators import check_elevator_class

    class Half(Elevator):
        name = "half"

        def merge(self, bio):
            return ELEVATOR_NO_MERGE, None
    assert "does not implement add_req" in check_elevator_class(Half, "t")


# --- the file system through the queue, and the I/O promise across elevators ----------------------

def _files_prog(ctx):
    from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, O_CREAT, O_RDWR, PROT_READ, PROT_WRITE, close, fork,
                             fsync, mmap, open, pwrite, wait, write)
    buf = yield mmap(0, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(64):
        yield write(buf + i * 4096, 5000 + i)
    for n in range(3):
        pid = yield fork()
        if pid == 0:
            fd = yield open(f"/f{n}", O_CREAT | O_RDWR)
            yield pwrite(fd, buf + n * 4096, 40 * 4096, 0)
            yield fsync(fd)
            yield close(fd)
            return 0
    for _ in range(3):
        yield wait()


def _read_back(ctx):
    from mmframe.usr import MAP_ANONYMOUS, MAP_PRIVATE, O_RDONLY, PROT_READ, PROT_WRITE, mmap, open, pread, read
    buf = yield mmap(0, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    out = []
    for n in range(3):
        fd = yield open(f"/f{n}", O_RDONLY)
        got = yield pread(fd, buf, 40 * 4096, 0)
        out.append(got)
        for i in range(0, 40, 7):
            out.append((yield read(buf + i * 4096)))
    return 0


def test_write_back_and_page_cache_misses_sleep_through_the_queue(tmp_path):
    m = machine(tmp_path, disk_block("deadline"))
    r = m.run(_files_prog)
    assert all(t.status == 0 for t in r.tasks.values())
    dev = m.block.device()
    assert dev.sectors[WRITE] == 3 * 40 * 8 and dev.queue.stats["merge_refused"] > 0  # 31 pages a request
    assert r.sim_ns > 5e6  # the writers slept for the disk
    assert [dev.read_block(m.fs.inodes["/f1"].blocks[i]) for i in range(3)] == [5001, 5002, 5003]
    m.fs.drop_caches()
    assert {x for x in dev.completed} and len(dev.completed) == len(set(dev.completed))


@pytest.mark.parametrize("other", ["noop", "linus"])
def test_the_same_program_gives_the_same_data_and_completions_under_every_elevator(tmp_path, other):
    from mmframe.differential import compare_results

    def both(prog):
        a = machine(tmp_path, disk_block("deadline")).run(prog)
        b = machine(tmp_path, disk_block(other)).run(prog)
        return a, b

    a, b = both(_files_prog)
    cmp = compare_results(a, b)
    assert cmp.same, cmp.report()
    assert a.io and len(a.io) == len(b.io)


def test_the_io_comparison_sees_a_different_completion(tmp_path):
    from mmframe.differential import compare_results
    a = machine(tmp_path, disk_block("deadline")).run(_files_prog)
    b = attrs.evolve(a, io=a.io[:-1] + (a.io[-1][:-1] + (("x",),),))
    assert any("I/O completions" in d.what for d in compare_results(a, b).differences)


# --- the deadline's bisection finds what 2.5.49's scan finds --------------------------------------

@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "add", "add", "dispatch"]), st.integers(0, 40),
                              st.sampled_from([1, 8, 16])), min_size=1, max_size=50),
       probes=st.lists(st.tuples(st.integers(0, 40), st.sampled_from([1, 8, 16]), st.sampled_from([0, 3, 8, 15])),
                       min_size=1, max_size=10))
@example(ops=[("add", 10, 8), ("add", 2, 8), ("add", 30, 8), ("dispatch", 0, 1), ("add", 5, 8)],
         probes=[(20, 8, 3), (1, 1, 0), (40, 8, 8), (9, 8, 8)])
def test_deadline_finds_by_bisection_what_the_scan_finds(tmp_path, ops, probes):
    m, dev, q = _queue_machine(tmp_path)
    elv = q.elevator
    with m.block.irq(0.0):
        for op, slot, n in ops:
            if op == "dispatch":
                q.plugged = False
                rq = q.next_request()
                if rq is not None:
                    q.put_request(rq)
                continue
            b = Bio(READ, slot * 16, [(m.alloc_pages(0x10, 0), 0, n * 512)])
            q.make_request(b)
        sl = elv.sort[READ]
        assert sl.keys == [r.sector for r in sl.rqs]
        assert sl.desc == [i for i in range(len(sl.keys) - 1) if sl.keys[i + 1] <= sl.keys[i]]
        fronts = 0
        for slot, n, off in probes:
            b = Bio(READ, slot * 16 + off, [(1, 0, n * 512)])
            before = elv.step_counts["scan"]
            fast = elv.merge(b)
            fast_steps = elv.step_counts["scan"] - before
            slow = elv.merge_scan(b)
            slow_steps = elv.step_counts["scan"] - before - fast_steps
            if q.last_merge is None or elv.try_merge(q.last_merge, b) == ELEVATOR_NO_MERGE:
                if elv._find_hash(b.sector) is None:
                    assert fast == slow and fast_steps == slow_steps
                    fronts += fast[0] != ELEVATOR_NO_MERGE


def test_exec_faults_read_the_image_through_the_queue_and_sleep(tmp_path):
    from mmframe.fs import Image
    from mmframe.usr import execve, exit

    def tool(ctx):
        yield exit(0)

    def start(ctx):
        yield execve("/bin/tool")

    m = machine(tmp_path, disk_block("deadline"))
    m.fs.install("/bin/tool", Image(tool, text_pages=6, data_pages=2))
    r = m.run(start)
    dev = m.block.device()
    assert r.tasks["1"].status == 0 and dev.sectors[READ] == 8 * 8 and dev.completions == 8
    assert r.sim_ns > 8 * 1e6  # eight reads from a seeking disk, each slept for
    ram = machine(tmp_path, disk_block("deadline", model="ramdisk"))
    ram.fs.install("/bin/tool", Image(tool, text_pages=6, data_pages=2))
    r2 = ram.run(start)
    assert r2.tasks["1"].calls == r.tasks["1"].calls and r2.sim_ns < r.sim_ns / 4  # rd.c: no seeks


def _elevator_machine(elevator: str, memory: int = 24 * MiB):
    from mmframe.config import load_config as lc
    cfg = lc(use_pyproject=False, env={}, cli_plugins=list(active_policies()))
    cls = cfg.elevators[elevator][0]
    d0 = attrs.evolve(cfg.disks[0], elevator=elevator, elevator_options={t.name: t.coerce(t.default)
                                                                          for t in cls.tunables})
    return Machine(attrs.evolve(cfg, disks=(d0,), machine=attrs.evolve(cfg.machine, memory=memory,
                                                                        debug_vm="syscall")))


@settings(max_examples=examples(12), deadline=None)
@example(ops=[("fsync", 0), ("fsync", 1)], other="linus")
@given(ops=st.lists(st.deferred(lambda: _file_call()), max_size=20), other=st.sampled_from(["noop", "linus"]))
def test_generated_file_programs_give_the_same_results_and_completions_under_every_elevator(ops, other):
    """The address-space suite's generated file programs (one task: nothing depends on wake-up
    order), run under deadline and another elevator: same calls, results, disk and I/O set."""
    from mmframe.differential import compare_results
    from tests.test_address_space import _files_program
    a = _elevator_machine("deadline").run(_files_program, ops)
    b = _elevator_machine(other).run(_files_program, ops)
    cmp = compare_results(a, b)
    assert cmp.same, cmp.report()


def _file_call():
    from tests.test_address_space import FILE_CALL
    return FILE_CALL


@pytest.mark.parametrize("elevator", ELEVATORS)
def test_io_depth_latency_stays_within_each_elevators_bound(tmp_path, elevator):
    """Random 4 KiB reads held at depth 32 (no merges): the bound each elevator's configuration
    gives for one read, with ``worst`` the disk's worst service time of a request:
    noop serves in arrival order: depth * worst; linus lets a read be passed by at most
    read_latency / ELV_LINUS_SEEK_COST seeky insertions: (depth + 1024/16) * worst; deadline serves
    an expired read after at most a dispatch batch and a write batch: read_expire +
    (2 * fifo_batch + 1) * worst."""
    from mmframe.block.linus import ELV_LINUS_SEEK_COST
    m = machine(tmp_path, disk_block(elevator))
    dev = m.block.device()
    depth = 32
    drv = Driver(m, dev, depth, 1)
    random_depth(drv, depth, 1500, 1.0, 8, dev.nr_sectors, 3)
    drv.run()
    worst = dev.model.worst_case(8)
    elv = dev.queue.elevator
    bound = {"noop": depth * worst,
             "linus": (depth + 1024 // ELV_LINUS_SEEK_COST) * worst,
             "deadline": getattr(elv, "read_expire", 0) + (2 * getattr(elv, "fifo_batch", 0) + 1) * worst}[elevator]
    lat = [r.done - r.submitted for r in drv.records]
    assert len(lat) == 1500 and all(r.completions == 1 for r in drv.records)
    assert max(lat) <= bound
    assert dev.queue.stats["requests"] == 1500  # no merges: the bound's premise


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "add", "add", "dispatch"]), st.integers(0, 30),
                              st.sampled_from([1, 8, 16])), min_size=1, max_size=40),
       probes=st.lists(st.tuples(st.integers(0, 30), st.sampled_from([1, 8, 16]), st.sampled_from([0, 8, 15])),
                       min_size=1, max_size=8))
def test_noop_finds_by_its_maps_what_the_scan_finds(tmp_path, ops, probes):
    m, dev, q = _queue_machine(tmp_path, "noop")
    elv = q.elevator
    with m.block.irq(0.0):
        for op, slot, n in ops:
            if op == "dispatch":
                q.plugged = False
                rq = q.next_request()
                if rq is not None:
                    q.put_request(rq)
                continue
            q.make_request(Bio(READ, slot * 8, [(m.alloc_pages(0x10, 0), 0, n * 512)]))
        for slot, n, off in probes:
            b = Bio(READ, slot * 8 + off, [(1, 0, n * 512)])
            q.last_merge = None
            before = elv.step_counts["scan"]
            fast = elv.merge(b)
            fast_steps = elv.step_counts["scan"] - before
            q.last_merge = None
            slow = elv.merge_scan(b)
            assert fast == slow and fast_steps == elv.step_counts["scan"] - before - fast_steps


def test_what_was_written_back_through_bounce_buffers_reads_back_after_the_cache_is_dropped(tmp_path):
    m = machine(tmp_path, memory="1GiB")
    # a 1 GiB machine: page-cache pages come from highmem, which hda bounces
    assert m.run(_files_prog).tasks["1"].status == 0
    q = m.block.device().queue
    written_bounces = q.stats["bounced_pages"]
    assert m.fs.drop_caches() >= 120
    r = m.run(_read_back)
    reader = next(t for t in r.tasks.values() if any(n == "pread" for n, _ in t.calls))
    reads = [v for n, v in reader.calls if n == "read"]
    assert reads == [5000 + n + i for n in range(3) for i in range(0, 40, 7)]
    assert written_bounces > 0 and q.stats["bounced_pages"] > written_bounces


BROKEN_ELEVATOR = """
from mmframe.facade import Elevator, hookimpl
from mmframe.block.noop import Noop

class Broken(Noop):
    name = "broken_test"
    period = "test"
    def next_req(self):
        raise KeyError("oops")

class Unpriced(Noop):
    name = "unpriced_test"
    period = "test"
    steps = {"scan": "unpriced.nothing"}

@hookimpl
def mmframe_elevators():
    return [Broken, Unpriced]
"""


def test_an_elevator_that_raises_is_named_with_its_plugin(tmp_path, install_plugin, isolated):
    from mmframe.errors import PluginError
    from mmframe.usr import O_CREAT, O_RDWR, fsync, open, pwrite, touch
    install_plugin("brk", BROKEN_ELEVATOR)

    def prog(ctx):
        from mmframe.usr import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap
        buf = yield mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield touch(buf, 4096, True)
        fd = yield open("/x", O_CREAT | O_RDWR)
        yield pwrite(fd, buf, 4096, 0)
        yield fsync(fd)

    m = machine(tmp_path, disk_block("broken_test"), cli_plugins=["brk"])
    with pytest.raises(PluginError, match=r"plugin 'brk' raised in mmframe_elevators \('broken_test'.*next_req"):
        m.run(prog)
    with pytest.raises(PluginError, match=r"plugin 'brk' raised in mmframe_elevators.*unpriced.nothing"):
        machine(tmp_path, disk_block("unpriced_test"), cli_plugins=["brk"])
