"""Engine events and trivial system calls per second of wall time.

Run: python benchmarks/bench_engine.py
Targets (issue 3): at least 500,000 events/s and 200,000 syscalls/s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.machine import Machine  # noqa: E402
from mmframe.sched import EventEngine  # noqa: E402
from mmframe.usr import clone, getpid, wait  # noqa: E402


def engine_events(n: int = 500_000) -> float:
    eng = EventEngine()
    fired = [0]

    def tick(k: int) -> None:
        fired[0] += 1
        if k:
            eng.at(eng.now + 1000 + (k * 7919) % 5000, tick, k - 1)

    for i in range(64):  # 64 chains of timers interleaving in the heap
        eng.at(i, tick, n // 64)
    t0 = time.perf_counter()
    while eng.heap:
        eng.fire_until(eng.heap[0][0])
    return fired[0] / (time.perf_counter() - t0)


def getpid_loop(ctx, n):
    for _ in range(n):
        yield getpid()


def threads(ctx, nthreads, n):
    for _ in range(nthreads):
        yield clone(getpid_loop, n)
    for _ in range(nthreads):
        yield wait()


def syscalls(program, *args) -> tuple[float, int]:
    m = Machine(load_config(use_pyproject=False, env={}))
    t0 = time.perf_counter()
    r = m.run(program, *args)
    return r.syscalls / (time.perf_counter() - t0), r.syscalls


def main() -> None:
    ev = engine_events()
    one, n1 = syscalls(getpid_loop, 300_000)
    four, n4 = syscalls(threads, 4, 75_000)
    rows = [["engine events (timer chains)", f"{ev:,.0f}", "500,000", f"{ev / 500_000:.2f}x"],
            [f"getpid, 1 task ({n1:,} calls)", f"{one:,.0f}", "200,000", f"{one / 200_000:.2f}x"],
            [f"getpid, 4 threads on 2 CPUs ({n4:,})", f"{four:,.0f}", "200,000", f"{four / 200_000:.2f}x"]]
    print("simulator speed, per second of wall time")
    print(table(["what", "per second", "target", "vs target"], rows))


if __name__ == "__main__":
    main()
