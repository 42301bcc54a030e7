"""Order-0 allocations+frees per second through the hook path, and the simulator's host memory for
a 64 GiB PAE machine.

Run: python benchmarks/bench_page_alloc.py
Targets (issue 4): at least 1,000,000 alloc+free per second; under 1 GiB of host memory at 64 GiB.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.machine import Machine  # noqa: E402
from mmframe.mm.page import GFP_HIGHUSER, GFP_KERNEL  # noqa: E402


def machine(memory: int, pae: bool = False) -> Machine:
    cfg = load_config(use_pyproject=False, env={})
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=memory, pae=pae)))


def pairs_per_second(gfp: int, n: int = 300_000, burst: int = 1, memory: int = 1 << 30) -> float:
    m = machine(memory)
    alloc, free = m.alloc_pages, m.free_pages
    t0 = time.perf_counter()
    if burst == 1:
        for _ in range(n):
            free(alloc(gfp))
        return n / (time.perf_counter() - t0)
    for _ in range(n // burst):
        pages = [alloc(gfp) for _ in range(burst)]
        for p in pages:
            free(p)
    return n / (time.perf_counter() - t0)


def host_memory_mib(memory_gib: int) -> tuple[float, float]:
    """Peak RSS (MiB) of a fresh process that builds the machine, and of one that only imports."""
    code = ("import resource, attrs; from mmframe.config import load_config; from mmframe.machine import Machine\n"
            "cfg = load_config(use_pyproject=False, env={})\n"
            f"m = Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory={memory_gib} << 30, pae=True)))\n"
            "m.pagealloc.check()\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    base = ("import resource, mmframe.machine; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    run = lambda c: float(subprocess.run([sys.executable, "-c", c], capture_output=True, text=True,  # noqa: E731
                                         check=True).stdout.strip())
    return run(code), run(base)


def main() -> None:
    single = pairs_per_second(GFP_KERNEL)
    burst = pairs_per_second(GFP_KERNEL, burst=64)
    high1 = pairs_per_second(GFP_HIGHUSER, memory=4 << 30)
    high = pairs_per_second(GFP_HIGHUSER, burst=64, memory=4 << 30)
    small = pairs_per_second(GFP_HIGHUSER, burst=64)
    rows = [["alloc+free, one at a time (GFP_KERNEL)", f"{single:,.0f}", "1,000,000", f"{single / 1e6:.2f}x"],
            ["alloc 64 then free 64 (GFP_KERNEL)", f"{burst:,.0f}", "1,000,000", f"{burst / 1e6:.2f}x"],
            ["alloc+free, one at a time (GFP_HIGHUSER, 4 GiB)", f"{high1:,.0f}", "1,000,000", f"{high1 / 1e6:.2f}x"],
            ["alloc 64 then free 64 (GFP_HIGHUSER, 4 GiB)", f"{high:,.0f}", "1,000,000", f"{high / 1e6:.2f}x"],
            ["alloc 64 then free 64 (GFP_HIGHUSER, 1 GiB: pcp high 48 < 64, bursts reach buddy)", f"{small:,.0f}", "-", "-"]]
    print("order-0 page allocation through the mmframe_alloc_pages/free_pages hooks, pairs per second "
          "(1 GiB machine unless stated)")
    print(table(["pattern", "per second", "target", "vs target"], rows))
    peak, base = host_memory_mib(64)
    print(f"\nhost memory, 64 GiB PAE machine built and checked: peak RSS {peak:,.0f} MiB "
          f"(interpreter + imports alone: {base:,.0f} MiB; target < 1024 MiB: "
          f"{'met' if peak < 1024 else 'NOT met'})")


if __name__ == "__main__":
    main()
