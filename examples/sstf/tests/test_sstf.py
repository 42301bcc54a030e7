"""The sstf plugin, tested with mmframe's kit (mmframe.testing): its order on a queue, then the
differential harness over every installed combination that includes it (program-visible results
identical to the mainline default's), and a machine using it from a config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings

from mmframe import usr
from mmframe.facade import INSERT_FRONT, REQ_BARRIER, REQ_STARTED
from mmframe.testing.programs import anon, program_strategy
from mmframe_sstf.elevator import Sstf

HERE = Path(__file__).resolve().parent.parent


class Rq:
    def __init__(self, sector: int, flags: int = 0, n: int = 8) -> None:
        self.sector, self.nr_sectors, self.flags = sector, n, flags


def _elevator() -> Sstf:
    e = Sstf()
    e.step = lambda kind, n=1: None  # no cost table: the order alone
    e.q = SimpleNamespace(last_merge=None)  # the core binds the queue before init
    e.init(e.q, {})
    return e


def _drain(e: Sstf) -> list[int]:
    out = []
    while not e.queue_empty():
        rq = e.next_req()
        rq.flags |= REQ_STARTED
        e.remove_req(rq)
        out.append(rq.sector)
    return out


def test_the_nearest_request_to_the_head_goes_first():
    e = _elevator()
    for s in (1000, 10, 500, 520, 300):
        e.add_req(Rq(s), None)
    assert _drain(e) == [10, 300, 500, 520, 1000]  # head 0 -> 18 -> 308 -> 508 -> 528
    for s in (400, 700, 520, 600):  # the head is at 1008: the nearest is behind it
        e.add_req(Rq(s), None)
    assert _drain(e) == [700, 600, 520, 400]


def test_nothing_passes_a_barrier_and_a_requeued_request_goes_first():
    e = _elevator()
    e.add_req(Rq(900), None)
    e.add_req(Rq(5, REQ_BARRIER), None)
    e.add_req(Rq(1), None)
    assert _drain(e) == [900, 5, 1]
    e.add_req(Rq(50), None)
    e.add_req(Rq(700), INSERT_FRONT)
    assert _drain(e) == [700, 50]


def _scattered(ctx, ops=()):
    fd = yield usr.open("/f", usr.O_RDWR | usr.O_CREAT)
    buf = yield anon(16 * usr.PAGE_SIZE)
    for i in range(16):
        yield usr.write(buf + i * usr.PAGE_SIZE, i + 1)
    for off in (40, 3, 60, 10, 25, 50, 1, 33):
        yield usr.pwrite(fd, buf + (off % 16) * usr.PAGE_SIZE, usr.PAGE_SIZE, off * 64 * usr.PAGE_SIZE)
    yield usr.fsync(fd)  # eight writes queued at once: the elevator orders them
    yield usr.pread(fd, buf, usr.PAGE_SIZE, 40 * 64 * usr.PAGE_SIZE)
    return (yield usr.read(buf))


def test_a_machine_with_the_plugin_uses_sstf_and_costs_its_scan(mmframe_machine):
    r = mmframe_machine().run(_scattered)
    assert r.counts.get("sstf.scan", 0) > 8 and r.tasks["1"].status >> 8 == 9  # page 40 holds buf's page 8


def test_the_same_program_visible_results_on_every_combination_with_sstf(mmframe_differential,
                                                                          mmframe_combinations):
    assert all("sstf" in c.plugins for c in mmframe_combinations[1:]) and len(mmframe_combinations) > 1
    runs = mmframe_differential([], program=_scattered)  # a plain program: ops are its argument
    assert len(runs) == len(mmframe_combinations)


# the kit's fixtures hold no state between examples, so hypothesis may reuse them
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program_strategy(min_size=6))
def test_generated_programs_keep_their_results_under_sstf(mmframe_differential, ops):
    mmframe_differential(ops)


def test_enabled_from_a_config_and_compared_side_by_side_with_deadline(tmp_path):
    cfg = tmp_path / "sstf.toml"
    cfg.write_text('[machine]\nmemory = "256MiB"\n[plugins]\nenable = ["sstf"]\n[block.hda]\nelevator = "sstf"\n'
                   '[scenario]\nname = "io-depth"\ndepth = 16\nrequests = 200\nelevators = ["deadline", "sstf"]\n')
    p = subprocess.run([sys.executable, "-m", "mmframe.cli", "compare", str(cfg), "--elevators", "deadline,sstf",
                        "--quiet", "--workers", "1"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "sstf" in p.stdout and "deadline" in p.stdout
