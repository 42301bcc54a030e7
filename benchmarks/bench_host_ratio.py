"""The simulator's hot paths beside the host kernel, in one run (issue 24).

Each simulated workload runs ``--repeat`` times on a fresh machine (median printed); the host
kernel runs the matching workload of :mod:`mmframe.host` (the validation harness's runner: real
processes, real memory, one CPU) in the same run, and each figure is printed as a ratio to the
host's.  ``--baseline FILE`` adds the figures of an earlier run (``--save FILE`` writes one), so a
change's speed-up is printed beside the ratio.  The full ``sga`` scenario (both policy sets, as
``mmframe run`` with ``scenario.name = "sga"``) runs in a child process with ``--sga`` (minutes).

Run: python benchmarks/bench_host_ratio.py [--repeat 3] [--cpu] [--sga] [--baseline F] [--save F]
Targets (issue 24, printed, never asserted): anonymous faults >= 0.8x the host's rate (moonshot
1.0x) and within 5% of that with a plugin that defers (pt_shared on a fresh region); 1 GiB fork and
fork+exit <= 3x the host's wall time; one-page mmap+munmap >= 0.3x the host's rate; the full sga
scenario < 30 s and < 1.5 GB of host memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.host.harness import Workload, run_host  # noqa: E402
from mmframe.machine import Machine  # noqa: E402
from mmframe.usr import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, exit, fork, \
    mmap as smmap, munmap, touch, wait  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
FAULT_REGION = 256 * MiB  # the host's write_faults region and the simulated touch alike
FORK_REGION = GiB
SMALL_LOOPS = 2000
clock = time.perf_counter  # the simulator's clock; --cpu: its process CPU time (a loaded host)


def machine(memory: int, policies: tuple[str, ...] = ()) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=memory, debug_vm="off")))


def _timed_run(m: Machine, prog: Callable, *args) -> dict[str, float]:
    out: dict[str, float] = {}
    m.run(prog, out, *args)
    return out


def sim_touch_faults(policies: tuple[str, ...] = ()) -> float:
    """Anonymous write faults per second: one ``touch`` over a fresh private region."""
    def prog(ctx, out):
        a = yield smmap(0, FAULT_REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        t0 = clock()
        yield touch(a, FAULT_REGION, True)
        out["rate"] = (FAULT_REGION // PAGE_SIZE) / (clock() - t0)
    return _timed_run(machine(2 * GiB, policies), prog)["rate"]


def sim_single_faults(policies: tuple[str, ...] = (), n: int = 100_000) -> float:
    """Faults per second through ``do_page_fault`` one page at a time (no bulk path)."""
    m = machine(2 * GiB, policies)
    vm, out = m.mm, {}

    def direct(task, base):
        t0 = clock()
        for i in range(n):
            vm.do_page_fault(task, base + i * PAGE_SIZE, True)
        out["rate"] = n / (clock() - t0)
        return 0

    m.sched.handlers["direct"] = direct

    def prog(ctx):
        a = yield smmap(0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield ("direct", a)

    m.run(prog)
    return out["rate"]


def _quit(ctx):
    yield exit(0)


def sim_fork(policies: tuple[str, ...] = ()) -> tuple[float, float]:
    """(ms of the fork system call, ms of fork + the child's exit + wait) with 1 GiB resident."""
    m = machine(4 * GiB, policies)  # room for the child's commit charge (overcommit heuristic)
    real_fork = m.sched.handlers["fork"]
    box: dict[str, float] = {}

    def timed(task, *a):
        t0 = clock()
        try:
            return real_fork(task, *a)
        finally:
            box["fork"] = (clock() - t0) * 1e3

    m.sched.handlers["fork"] = timed

    def prog(ctx, out):
        a = yield smmap(0, FORK_REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield touch(a, FORK_REGION, True)
        t0 = clock()
        pid = yield fork(_quit)
        assert pid > 0, pid
        yield wait(pid)
        out["fork_exit"] = (clock() - t0) * 1e3

    out = _timed_run(m, prog)
    return box["fork"], out["fork_exit"]


def sim_mmap_small() -> float:
    """Microseconds per one-page mmap + munmap pair (system calls through the scheduler)."""
    def prog(ctx, out):
        rw, fl = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
        for _ in range(200):  # warm-up
            a = yield smmap(0, PAGE_SIZE, rw, fl)
            yield munmap(a, PAGE_SIZE)
        t0 = clock()
        for _ in range(SMALL_LOOPS):
            a = yield smmap(0, PAGE_SIZE, rw, fl)
            yield munmap(a, PAGE_SIZE)
        out["us"] = (clock() - t0) / SMALL_LOOPS * 1e6
    return _timed_run(machine(GiB), prog)["us"]


def sim_sga() -> tuple[float, float, float]:
    """(wall s, CPU s, peak host MiB) of ``mmframe run`` of the full sga scenario in a child
    process (CPU time too: on a shared host the wall time mostly measures the others' load)."""
    code = ("import resource, sys, time; from mmframe.cli import main\n"
            "t0 = time.perf_counter()\n"
            "rc = main(['run', '--set', 'scenario.name=\"sga\"', '--workers', '1', '--quiet'])\n"
            "print('WALL', time.perf_counter() - t0, file=sys.stderr)\n"
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)\n"
            "sys.exit(rc)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in (0, 4):  # 4: a run ended in a simulated oops (reported, not an error here)
        raise RuntimeError(f"sga run failed ({p.returncode}): {p.stderr[-2000:]}")
    peak = after.ru_maxrss / 1024
    for line in p.stderr.splitlines():
        if line.startswith("PEAK"):
            peak = max(peak, float(line.split()[1]))
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, peak


def median_of(fn: Callable[[], float | tuple], repeat: int) -> list[float]:
    runs = [fn() for _ in range(repeat)]
    if isinstance(runs[0], tuple):
        return [statistics.median(r[i] for r in runs) for i in range(len(runs[0]))]
    return [statistics.median(runs)]


def measure_sim(repeat: int, sga: bool) -> dict[str, float]:
    fig: dict[str, float] = {}
    fig["faults/s"], = median_of(sim_touch_faults, repeat)
    fig["faults/s pt_shared"], = median_of(lambda: sim_touch_faults(("pt_shared",)), repeat)
    fig["single faults/s"], = median_of(sim_single_faults, repeat)
    fig["single faults/s pt_shared"], = median_of(lambda: sim_single_faults(("pt_shared",)), repeat)
    fig["fork ms"], fig["fork+exit ms"] = median_of(sim_fork, repeat)
    fig["mmap+munmap us"], = median_of(sim_mmap_small, repeat)
    if sga:
        fig["sga s"], fig["sga cpu s"], fig["sga MiB"] = sim_sga()
    return fig


def measure_host(repeat: int) -> dict[str, float]:
    ws = [Workload("write_faults", FAULT_REGION, repeat), Workload("fork", FORK_REGION, repeat),
          Workload("fork_exit", FORK_REGION, repeat), Workload("mmap_small", repeats=repeat, loops=SMALL_LOOPS)]
    run = run_host(ws, progress=False)
    got = {w.kind: run.measurements[w.key].median for w in ws if w.key in run.measurements}
    return {"faults/s": (FAULT_REGION // PAGE_SIZE) / (got["write_faults"] / 1e9),
            "fork ms": got["fork"] / 1e6, "fork+exit ms": got["fork_exit"] / 1e6,
            "mmap+munmap us": got["mmap_small"] / 1e3}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--sga", action="store_true", help="also the full sga scenario (minutes)")
    ap.add_argument("--baseline", help="a JSON file of an earlier run's figures (--save)")
    ap.add_argument("--save", help="write this run's figures to a JSON file")
    ap.add_argument("--cpu", action="store_true", help="time the simulator by its CPU time (the host kernel's "
                    "workloads stay wall time): on a host loaded by others, wall time mostly measures them")
    a = ap.parse_args(argv)
    global clock
    if a.cpu:
        clock = time.process_time
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1/5/15 min), {os.cpu_count()} CPUs; median of {a.repeat}; simulator timed by "
          f"{'CPU' if a.cpu else 'wall'} time")
    host = measure_host(a.repeat)
    sim = measure_sim(a.repeat, a.sga)
    base = json.loads(Path(a.baseline).read_text())["sim"] if a.baseline else {}
    if a.save:
        Path(a.save).write_text(json.dumps({"sim": sim, "host": host, "load": os.getloadavg()}, indent=1))

    def sp(k: str, higher_is_better: bool) -> str:
        if k not in base or k not in sim:
            return "-"
        r = sim[k] / base[k] if higher_is_better else base[k] / sim[k]
        return f"{r:.2f}x"

    rows = []
    for label, k, hk, better, target in (
            ("anonymous write faults/s, touch() of 256 MiB", "faults/s", "faults/s", True, ">= 0.8x"),
            ("  the same with pt_shared (its fault hook defers)", "faults/s pt_shared", "faults/s", True,
             "within 5% of above"),
            ("  one do_page_fault per page (no bulk path)", "single faults/s", "faults/s", True, "-"),
            ("  the same with pt_shared", "single faults/s pt_shared", "faults/s", True, "-"),
            ("fork of 1 GiB resident, ms", "fork ms", "fork ms", False, "<= 3x"),
            ("fork+exit+wait of 1 GiB resident, ms", "fork+exit ms", "fork+exit ms", False, "<= 3x"),
            ("mmap+munmap of one page, us per pair", "mmap+munmap us", "mmap+munmap us", False, ">= 0.3x rate")):
        s, h = sim[k], host[hk]
        if better:
            ratio = f"{s / h:.2f}x rate"
        else:
            ratio = f"{s / h:.2f}x time" if k != "mmap+munmap us" else f"{h / s:.2f}x rate"
        rows.append([label, f"{s:,.1f}", f"{h:,.1f}", ratio, target, f"{base[k]:,.1f}" if k in base else "-",
                     sp(k, better)])
    for k, what in (("faults/s", "touch()"), ("single faults/s", "one fault per page")):
        if f"{k} pt_shared" in sim:
            rows.append([f"  pt_shared over no plugin, {what}", f"{sim[k + ' pt_shared'] / sim[k]:.3f}", "-", "-",
                         ">= 0.95", f"{base[k + ' pt_shared'] / base[k]:.3f}" if k + " pt_shared" in base else "-",
                         "-"])
    if "sga s" in sim:
        rows.append(["full sga scenario, wall s", f"{sim['sga s']:.1f}", "-", "-", "< 30 s",
                     f"{base['sga s']:.1f}" if "sga s" in base else "-", sp("sga s", False)])
        rows.append(["full sga scenario, CPU s (user + system)", f"{sim['sga cpu s']:.1f}", "-", "-", "< 30 s",
                     f"{base['sga cpu s']:.1f}" if "sga cpu s" in base else "-", sp("sga cpu s", False)])
        rows.append(["full sga scenario, peak host MiB", f"{sim['sga MiB']:,.0f}", "-", "-", "< 1,430 MiB (1.5 GB)",
                     f"{base['sga MiB']:,.0f}" if "sga MiB" in base else "-", sp("sga MiB", False)])
    print(table(["figure", "mmframe", "host kernel", "vs host", "target", "baseline", "speed-up"], rows))


if __name__ == "__main__":
    main()
