"""The elevator_rbtree plugin's elevators on the block layer: rbtree-ablation dispatches exactly what
deadline dispatches; every request completes once and reads return the last write under rbtree,
rbtree-2.5.58 and rbtree-ablation, with the trees checked after every elevator operation; the I/O
promise across deadline and the three; and the behaviour each version's source shows."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support import examples

from mmframe.block.bio import READ, WRITE, bio_pages
from mmframe.config import load_config
from mmframe.machine import Machine
from mmframe.mm.page import GFP_KERNEL
from mmframe.workloads.iodriver import Driver, check_reads

from test_elevator_rbtree_tree import check_rbtree

TREE_ELEVATORS = ("rbtree", "rbtree-2.5.58", "rbtree-ablation")
_n = itertools.count()


def machine(tmp_path: Path, elevator: str, extra: str = "", memory: str = "256MiB", plugin: str = "") -> Machine:
    path = tmp_path / f"m{next(_n)}.toml"
    path.write_text(f'[machine]\nmemory = "{memory}"\n[plugins]\nenable = ["elevator_rbtree"]\n{plugin}'
                    f'[scenario]\nname = "spawn"\n[block.hda]\nelevator = "{elevator}"\n{extra}')
    return Machine(load_config(str(path), use_pyproject=False, env={}))


def bio(m: Machine, rw: int, sector: int, npages: int = 1):
    first = m.alloc_pages(GFP_KERNEL, 4)
    return bio_pages(rw, sector, [first + i for i in range(npages)])


def checked(elv) -> None:
    """Check the elevator's trees after each of its operations (the invariant checker stays on)."""
    def trees():
        sort = elv.sort
        return [s.tree if hasattr(s, "tree") else s for s in sort]

    for op in ("merge", "merged", "merge_req", "add_req", "next_req", "remove_req"):
        fn = getattr(elv, op)

        def wrapped(*a, fn=fn):
            out = fn(*a)
            for t in trees():
                check_rbtree(t)
            return out
        setattr(elv, op, wrapped)


def run_stream(tmp_path, elevator, stream, nr_requests=16, check=False):
    """Each element: (rw, slot of 8 sectors out of 64, sectors, delay in ms before it arrives).
    Returns the machine, the driver's records and what the queue handed the driver, in order."""
    m = machine(tmp_path, elevator, f"nr_requests = {nr_requests}\n")
    dev = m.block.device()
    q = dev.queue
    if check:
        checked(q.elevator)
    dispatched = []
    next_request = q.next_request

    def recording():
        rq = next_request()
        if rq is not None:
            dispatched.append((rq.rw, rq.sector, rq.nr_sectors, m.block.now()))
        return rq
    q.next_request = recording
    drv = Driver(m, dev, len(stream), 4)
    t = 0.0
    for i, (rw, slot, nsect, delay) in enumerate(stream):
        t += delay * 1e6
        m.block.at(t, lambda i=i, rw=rw, slot=slot, nsect=nsect: (drv.submit(i, rw, slot * 8, nsect), q.unplug()))
    drv.run()
    return m, drv.records, dispatched


streams = st.lists(st.tuples(st.sampled_from([READ, WRITE]), st.integers(0, 40), st.sampled_from([1, 2, 8, 16, 32]),
                             st.integers(0, 4)), min_size=1, max_size=120)


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams, nr_requests=st.sampled_from([4, 16, 128]))
@example(stream=[(READ, 5, 8, 0), (READ, 1, 8, 0), (READ, 5, 8, 0), (WRITE, 3, 8, 0), (READ, 0, 8, 0),
                 (READ, 2, 8, 0), (READ, 4, 1, 0), (READ, 4, 1, 0)] * 4, nr_requests=16)
def test_ablation_and_deadline_dispatch_the_identical_sequence(tmp_path, stream, nr_requests):
    _, recs_a, seq_a = run_stream(tmp_path, "deadline", stream, nr_requests)
    _, recs_b, seq_b = run_stream(tmp_path, "rbtree-ablation", stream, nr_requests, check=True)
    assert seq_a == seq_b
    assert [(r.done, r.data) for r in recs_a] == [(r.done, r.data) for r in recs_b]


@pytest.mark.parametrize("elevator", TREE_ELEVATORS)
@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams)
@example(stream=[(WRITE, 3, 8, 0), (READ, 3, 8, 0), (WRITE, 3, 8, 40), (READ, 3, 1, 0), (READ, 3, 1, 0)])
def test_every_request_completes_once_and_reads_return_the_last_write(tmp_path, elevator, stream):
    m, recs, seq = run_stream(tmp_path, elevator, stream, check=True)
    dev = m.block.device()
    assert [r.completions for r in recs] == [1] * len(stream)
    assert not check_reads(recs)
    assert dev.queue.free == [dev.queue.nr_requests] * 2 and dev.queue.elevator.queue_empty()


# --- the I/O promise across elevators: a program through the file system ---------------------------

def _files_prog(ctx):
    from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, O_CREAT, O_RDWR, PROT_READ, PROT_WRITE, close, fork,
                             fsync, mmap, open, pwrite, wait, write)
    buf = yield mmap(0, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(64):
        yield write(buf + i * 4096, 7000 + i)
    pids = []
    for n in range(4):
        pid = yield fork()
        pids.append(pid)
        if pid == 0:
            fd = yield open(f"/f{n}", O_CREAT | O_RDWR)
            for k in range(0, 40, 3):                  # scattered, out of order, overwritten
                yield pwrite(fd, buf + ((n + k) % 64) * 4096, 4096, ((k * 7) % 40) * 4096)
            yield pwrite(fd, buf + n * 4096, 24 * 4096, 8 * 4096)
            yield fsync(fd)
            yield close(fd)
            return 0
    for pid in pids:            # in fork order: which child finishes first is timing, not a result
        yield wait(pid)


@pytest.mark.parametrize("elevator", TREE_ELEVATORS)
def test_the_same_program_gives_the_same_data_and_completions_as_deadline(tmp_path, elevator):
    from mmframe.differential import compare_results
    a = machine(tmp_path, "deadline").run(_files_prog)
    b = machine(tmp_path, elevator).run(_files_prog)
    cmp = compare_results(a, b)
    assert cmp.same, cmp.report()
    assert a.io and len(a.io) == len(b.io)


# --- what the sources show, version by version ------------------------------------------------------

def _queue(tmp_path, elevator, extra="", plugin=""):
    m = machine(tmp_path, elevator, extra, plugin=plugin)
    dev = m.block.device()
    return m, dev, dev.queue


def _pull(q):
    """Take every request the elevator hands out, in order, without a driver."""
    q.plugged = False
    out = []
    while (rq := q.next_request()) is not None:
        out.append(rq)
        q.end_request(rq)
    return out


def test_mm_has_a_read_fifo_and_no_write_fifo(tmp_path):
    m, dev, q = _queue(tmp_path, "rbtree")
    elv = q.elevator
    with m.block.irq(0.0):
        for s in (800, 80, 4000):
            m.block.submit_bio(dev, bio(m, READ, s))
            m.block.submit_bio(dev, bio(m, WRITE, s + 100_000))
    assert len(elv.fifo[READ]) == 3 and not elv.fifo[WRITE]
    assert len(elv.sort[READ]) == 3 and len(elv.sort[WRITE]) == 3


def test_2558_has_a_write_fifo_of_five_seconds(tmp_path):
    m, dev, q = _queue(tmp_path, "rbtree-2.5.58")
    elv = q.elevator
    with m.block.irq(0.0):
        m.block.submit_bio(dev, bio(m, WRITE, 800))
    (rq,) = elv.fifo[WRITE]
    assert rq.elevator_private.expires == rq.start_time + 5e9


def test_mm_sends_a_second_request_at_a_queued_sector_to_the_dispatch_list(tmp_path):
    m, dev, q = _queue(tmp_path, "rbtree")
    elv = q.elevator
    with m.block.irq(0.0):
        m.block.submit_bio(dev, bio(m, READ, 800))
        m.block.submit_bio(dev, bio(m, READ, 80))
        m.block.submit_bio(dev, bio(m, READ, 800))   # same sector: "this cannot happen"
    assert len(elv.sort[READ]) == 2 and len(elv.dispatch) == 1 and elv.aliases == 1
    assert [rq.sector for rq in _pull(q)] == [800, 80, 800]


def test_2558_chains_a_second_request_at_a_queued_sector_as_an_alias(tmp_path):
    m, dev, q = _queue(tmp_path, "rbtree-2.5.58")
    elv = q.elevator
    with m.block.irq(0.0):
        m.block.submit_bio(dev, bio(m, READ, 800))
        m.block.submit_bio(dev, bio(m, READ, 80))
        m.block.submit_bio(dev, bio(m, READ, 800))
    assert len(elv.sort[READ]) == 2 and not elv.dispatch and elv.aliases == 1
    assert [rq.sector for rq in _pull(q)] == [80, 800, 800]


def test_mm_batches_start_at_the_lowest_read_and_cost_seeks_and_stream_units(tmp_path):
    # 20 contiguous 128-sector reads (they cannot merge: 256 > max_sectors 255) and one far away
    for stream_unit, per_batch in ((256, 16), (32, 8)):
        m, dev, q = _queue(tmp_path, "rbtree", plugin=f"[plugins.elevator_rbtree]\nstream_unit = {stream_unit}\n")
        elv = q.elevator
        with m.block.irq(0.0):
            m.block.submit_bio(dev, bio(m, READ, 10_000_000))
            for i in range(20):
                m.block.submit_bio(dev, bio(m, READ, 128 * i, 16))
        elv.last_sector = 0          # the head is at sector 0: the first request streams
        rq = elv.next_req()
        assert rq.sector == 0        # the lowest read, not the oldest
        # 128 sectors cost ceil(128 / (2 * stream_unit)) units: 1 each at 256 KiB, 2 at 32 KiB
        assert len(elv.dispatch) == per_batch


def test_mm_looks_up_front_merges_in_the_tree_unless_switched_off(tmp_path):
    for front_merges, want in ((True, 1), (False, 0)):
        m, dev, q = _queue(tmp_path, "rbtree", "[block.hda.elevator_rbtree]\nfront_merges = "
                           + ("true" if front_merges else "false") + "\n")
        with m.block.irq(0.0):
            m.block.submit_bio(dev, bio(m, READ, 800))
            m.block.submit_bio(dev, bio(m, READ, 4000))   # the last_merge hint stays on 800
            q.last_merge = None
            m.block.submit_bio(dev, bio(m, READ, 3992))   # ends where the 4000 request starts
        assert q.stats["front_merges"] == want


def test_2558_sweeps_one_way_and_restarts_at_the_lowest_sector(tmp_path):
    m, dev, q = _queue(tmp_path, "rbtree-2.5.58")
    with m.block.irq(0.0):
        for s in (4000, 800, 16000):
            m.block.submit_bio(dev, bio(m, READ, s))
    q.plugged = False
    first = q.next_request()
    assert first.sector == 800             # a new sweep starts at the lowest sector
    q.end_request(first)
    with m.block.irq(0.0):
        m.block.submit_bio(dev, bio(m, READ, 80))     # behind the head: waits for the next sweep
    assert [rq.sector for rq in _pull(q)] == [4000, 16000, 80]


def test_2558_counts_fifo_batch_in_requests(tmp_path):
    m, dev, q = _queue(tmp_path, "rbtree-2.5.58", plugin="[plugins.elevator_rbtree]\nfifo_batch = 4\n")
    elv = q.elevator
    with m.block.irq(0.0):
        for i in range(10):
            m.block.submit_bio(dev, bio(m, READ, 128 * i, 16))    # contiguous, unmergeable
        m.block.submit_bio(dev, bio(m, WRITE, 50_000))
    elv.writes_starved = 1                 # one read batch, then the write
    order = [rq.rw for rq in _pull(q)]
    assert order[:5] == [READ] * 4 + [WRITE]


def test_mm_raises_the_queue_depth_cap_to_1024(tmp_path):
    # 2.5's queue_nr_requests = (RAM KiB >> 9) & ~7, clamped to 16..128; the -mm patch's cap is 1024
    for memory, elevator, plugin, want in (("1GiB", "deadline", "", 128), ("1GiB", "rbtree", "", 1024),
                                           ("256MiB", "rbtree", "", 512), ("32MiB", "rbtree", "", 64),
                                           ("1GiB", "rbtree", "[plugins.elevator_rbtree]\nqueue_nr_requests = 128\n", 128),
                                           ("1GiB", "rbtree-2.5.58", "", 128)):
        m = machine(tmp_path, elevator, memory=memory, plugin=plugin)
        q = m.block.device().queue
        assert q.nr_requests == want and q.free == [want, want], (memory, elevator, plugin)
    m = machine(tmp_path, "rbtree", "nr_requests = 64\n", memory="1GiB")   # a per-queue depth wins
    assert m.block.device().queue.nr_requests == 64


# --- io-depth-sweep, the listing, the config ------------------------------------------------------

def test_depth_sweep_fits_the_list_linear_and_the_tree_logarithmic(tmp_path):
    from mmframe.scenario import run_scenario
    path = tmp_path / "sweep.toml"
    path.write_text('[machine]\nmemory = "512MiB"\nseed = 3\n[plugins]\nenable = ["elevator_rbtree"]\n'
                    '[scenario]\nname = "io-depth-sweep"\npolicies = [["elevator_rbtree"]]\n'
                    'depths = ["8", "64", "512"]\nrounds = 2\nmin_requests = 400\n'
                    'elevators = ["deadline", "rbtree-ablation"]\n')
    _, (col,) = run_scenario(load_config(str(path), use_pyproject=False, env={}))
    f = col.figures
    steps = {e: [f[f"d{d}.{e}.insert_steps"] for d in (8, 64, 512)] for e in ("deadline", "rbtree-ablation")}
    assert steps["deadline"][2] > 4 * steps["rbtree-ablation"][2]          # the list scan grows with n
    assert f["deadline.growth"].startswith("n ") and f["rbtree-ablation.growth"].startswith("log n ")
    assert f["d512.queue_size"].startswith("past 2.5.49's 128")
    assert all(f[f"d{d}.{e}.completed"] == max(400, 2 * d) for d in (8, 64, 512) for e in steps)
    assert f["d512.rbtree-ablation.insert_cpu_ns"] < f["d512.deadline.insert_cpu_ns"]


def test_fit_growth_recognises_n_and_log_n():
    from mmframe.workloads.io_depth_sweep import fit_growth
    depths = [16, 128, 1024, 10000]
    assert fit_growth(depths, [3 + 0.5 * d for d in depths])["fits"] == "n"
    assert fit_growth(depths, [3 + 2.0 * math.log2(d) for d in depths])["fits"] == "log n"


def test_a_bad_depth_is_a_usage_error(tmp_path):
    from mmframe.errors import UsageError
    from mmframe.scenario import run_scenario
    path = tmp_path / "bad.toml"
    path.write_text('[plugins]\nenable = ["elevator_rbtree"]\n[scenario]\nname = "io-depth-sweep"\n'
                    'policies = [["elevator_rbtree"]]\ndepths = ["16", "lots"]\n')
    with pytest.raises(UsageError, match="depths"):
        run_scenario(load_config(str(path), use_pyproject=False, env={}))


def test_mmframe_plugins_lists_the_elevators_and_options(capsys, isolated):
    from mmframe.cli import main
    assert main(["plugins", "--json"]) == 0
    import json
    (row,) = [p for p in json.loads(capsys.readouterr().out)["plugins"] if p["name"] == "elevator_rbtree"]
    assert [e["name"] for e in row["elevators"]] == ["rbtree", "rbtree-2.5.58", "rbtree-ablation"]
    assert "later" in row["elevators"][1]["period"]
    assert {"read_expire", "write_expire", "fifo_batch", "seek_cost", "stream_unit", "writes_starved",
            "front_merges", "queue_nr_requests"} <= {o["name"] for o in row["options"]}


def test_a_queue_override_must_be_a_declared_option(tmp_path):
    from mmframe.errors import ConfigError
    with pytest.raises(ConfigError, match="stream_units"):
        machine(tmp_path, "rbtree", "[block.hda.elevator_rbtree]\nstream_units = 4\n")


def test_the_shipped_config_loads():
    cfg = load_config(str(Path(__file__).resolve().parent.parent / "examples" / "configs" / "io-depth-rbtree.toml"),
                      use_pyproject=False, env={})
    assert cfg.scenario.name == "io-depth-sweep" and list(cfg.scenario.params["depths"]) == ["16", "128", "1024",
                                                                                                "10000"]


# --- generated file programs, and read latency under io-depth --------------------------------------

def _tree_machine(elevator: str):
    import attrs
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=["elevator_rbtree"])
    d0 = attrs.evolve(cfg.disks[0], elevator=elevator, elevator_options={})
    return Machine(attrs.evolve(cfg, disks=(d0,), machine=attrs.evolve(cfg.machine, memory=24 << 20,
                                                                        debug_vm="syscall")))


def _file_call():
    from tests.test_address_space import FILE_CALL
    return FILE_CALL


@settings(max_examples=examples(8), deadline=None)
@given(ops=st.lists(st.deferred(lambda: _file_call()), max_size=20), other=st.sampled_from(TREE_ELEVATORS))
def test_generated_file_programs_give_the_same_results_and_completions_as_under_deadline(ops, other):
    """The address-space suite's generated file programs (one task), under deadline and under each
    tree elevator: same calls and results, same disk, same set of I/O completions."""
    from mmframe.differential import compare_results
    from tests.test_address_space import _files_program
    a = _tree_machine("deadline").run(_files_program, ops)
    b = _tree_machine(other).run(_files_program, ops)
    cmp = compare_results(a, b)
    assert cmp.same, cmp.report()


@pytest.mark.parametrize("elevator", ["rbtree", "rbtree-2.5.58"])
def test_io_depth_read_latency_stays_within_the_deadline_bound(tmp_path, elevator):
    """Random 4 KiB reads held at depth 32: an expired read is served after at most the batch in
    progress and one write batch, each at most fifo_batch requests (-mm: a budget of 16 with each
    request costing at least 1; 2.5.58: 16 requests): read_expire + (2 * fifo_batch + 1) * worst."""
    from mmframe.block.bio import READ as R
    from mmframe.workloads.iodriver import random_depth
    m = machine(tmp_path, elevator)
    dev = m.block.device()
    drv = Driver(m, dev, 32, 1)
    random_depth(drv, 32, 1500, 1.0, 8, dev.nr_sectors, 3)
    drv.run()
    worst = dev.model.worst_case(8)
    elv = dev.queue.elevator
    bound = elv.expire[R] + (2 * elv.fifo_batch + 1) * worst
    lat = [r.done - r.submitted for r in drv.records]
    assert len(lat) == 1500 and all(r.completions == 1 for r in drv.records)
    assert max(lat) <= bound and dev.queue.stats["requests"] == 1500


@pytest.mark.parametrize("elevator", ["deadline", "rbtree-ablation", "rbtree", "rbtree-2.5.58"])
def test_a_bio_front_merges_through_the_hint_into_a_request_awaiting_dispatch(tmp_path, elevator):
    """The last_merge hint may still name a request moved to the dispatch list (only starting it
    clears the hint): a front merge into it must not break the sort structures (it once raised in
    deadline's rekey of the dispatch list)."""
    m, dev, q = _queue(tmp_path, elevator)
    elv = q.elevator
    with m.block.irq(0.0):
        m.block.submit_bio(dev, bio(m, READ, 800))
        m.block.submit_bio(dev, bio(m, READ, 4000))
        elv.next_req()                                  # a batch on the dispatch list, nothing started
        m.block.submit_bio(dev, bio(m, READ, 792))      # ends where the hinted request starts
    got = sorted((rq.sector, rq.nr_sectors) for rq in _pull(q))
    # 2.5.58 drops the hint when it moves a request to the dispatch list: the bio is a request of its own
    want = [(792, 8), (800, 8), (4000, 8)] if elevator == "rbtree-2.5.58" else [(792, 16), (4000, 8)]
    assert got == want and elv.queue_empty()
