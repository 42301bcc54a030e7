"""The page cache's speed: file-backed faults (cache warm and cold) beside anonymous faults as the
baseline, buffered pread/pwrite pages per second, the radix tree's raw insert and lookup rates, and
the shell scenario's commands per second of wall time (mainline and pt_shared side by side).

Run: python benchmarks/bench_page_cache.py
No targets in issue 6; the anonymous fault path (target 200,000/s, issue 5) is the baseline.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.machine import Machine  # noqa: E402
from mmframe.mm.radix_tree import RadixTree  # noqa: E402
from mmframe.scenario import ScenarioContext  # noqa: E402
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, O_RDWR, PAGE_SIZE, PROT_READ,  # noqa: E402
                         PROT_WRITE, mmap, open)
from mmframe.workloads import shell  # noqa: E402

GiB = 1 << 30
N = 100_000  # pages: 400 MiB


def machine(policies: tuple[str, ...] = ()) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=2 * GiB)))


def fault_rates() -> dict[str, float]:
    """Faults per second on the single path (do_page_fault per page) for anonymous memory, a file
    whose pages are cached, and a file read from the device; pread and pwrite pages per second."""
    m = machine()
    m.fs.populate("/big", [i + 1 for i in range(N)])
    vm, out = m.mm, {}

    def faults(task, name, base, write):
        t0 = time.perf_counter()
        for i in range(N):
            vm.do_page_fault(task, base + i * PAGE_SIZE, write)
        out[name] = N / (time.perf_counter() - t0)
        return 0

    def timed(task, name, call, *args):
        t0 = time.perf_counter()
        got = m.sched.handlers[call](task, *args)
        out[name] = N / (time.perf_counter() - t0)
        return got

    m.sched.handlers.update(faults=faults, timed=timed)

    def prog(ctx):
        rw = PROT_READ | PROT_WRITE
        a = yield mmap(0, N * PAGE_SIZE, rw, MAP_PRIVATE | MAP_ANONYMOUS)
        yield ("faults", "anonymous write (baseline)", a, True)
        fd = yield open("/big", O_RDWR)
        cold = yield mmap(0, N * PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0)
        yield ("faults", "file read, cold (readpage from the device)", cold, False)
        warm = yield mmap(0, N * PAGE_SIZE, rw, MAP_SHARED, fd, 0)
        yield ("faults", "file read, cached", warm, False)
        priv = yield mmap(0, N * PAGE_SIZE, rw, MAP_PRIVATE, fd, 0)
        yield ("faults", "file write, private (copy at fault)", priv, True)
        yield ("timed", "pread, cached, into mapped pages", "pread", fd, a, N * PAGE_SIZE, 0)
        yield ("timed", "pwrite over cached pages", "pwrite", fd, a, N * PAGE_SIZE, 0)

    m.run(prog)
    return out


def radix_rates() -> tuple[float, float]:
    m = machine()
    tree = RadixTree(m.mm.radix_pool)
    t0 = time.perf_counter()
    for i in range(N):
        tree.insert(i, i + 1)
    ins = N / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(N):
        tree.lookup(i)
    return ins, N / (time.perf_counter() - t0)


def shell_rate(policies: tuple[str, ...], commands: int = 2000) -> float:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    t0 = time.perf_counter()
    figures = shell.run(ScenarioContext(cfg, {"commands": commands, "jobs": 1}))
    assert figures["failed"] == 0
    return commands / (time.perf_counter() - t0)


def main() -> None:
    rates = fault_rates()
    base = rates["anonymous write (baseline)"]
    print("page faults and buffered I/O per second of wall time (checker off, 2 GiB machine, 100,000 pages)")
    print(table(["path", "per second", "vs anonymous faults"],
                [[k, f"{v:,.0f}", f"{v / base:.2f}x"] for k, v in rates.items()]))
    ins, look = radix_rates()
    print()
    print(table(["radix tree (64-slot nodes, 100,000 indices)", "per second"],
                [["insert (nodes from the mempool's slab)", f"{ins:,.0f}"], ["lookup", f"{look:,.0f}"]]))
    main_rate, shared_rate = shell_rate(()), shell_rate(("pt_shared",))
    print()
    print(table(["shell scenario, 2,000 commands", "commands/s of wall time", "vs mainline"],
                [["mainline", f"{main_rate:,.0f}", "1.00x"],
                 ["pt_shared", f"{shared_rate:,.0f}", f"{shared_rate / main_rate:.2f}x"]]))


if __name__ == "__main__":
    main()
