"""The block layer's speed in wall time, and per elevator the simulated throughput and latency of
``io-depth`` and of a replayed trace.

Run: python benchmarks/bench_block.py [--quick]
Target (issue 14): at least 100,000 requests/s through the whole path (bio -> __make_request ->
elevator -> dispatch -> disk model -> completion -> bio end_io) at depth 128 with random 4 KiB
reads.  The machine's own speed is printed beside it (a fixed pure-Python loop), since the figure
scales with it: a loaded host runs both slower.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.machine import Machine  # noqa: E402
from mmframe.workloads.iodriver import Driver, random_depth  # noqa: E402

ELEVATORS = ("deadline", "noop", "linus")


def reference_loop_ns(n: int = 2_000_000) -> float:
    """ns per iteration of a fixed pure-Python loop: how fast this interpreter runs right now."""
    t0 = time.perf_counter()
    d: dict[int, int] = {}
    for i in range(n):
        d[i & 1023] = i
    return (time.perf_counter() - t0) / n * 1e9


def machine(elevator: str, model: str = "ata-7200") -> Machine:
    path = Path(tempfile.mkdtemp()) / "c.toml"
    path.write_text(f'[machine]\nmemory = "1GiB"\n[scenario]\nname = "io-depth"\n'
                    f'[block.hda]\nelevator = "{elevator}"\nmodel = "{model}"\n')
    return Machine(load_config(str(path), use_pyproject=False, env={}))


def requests_per_second(elevator: str, n: int, depth: int = 128) -> tuple[float, float]:
    m = machine(elevator)
    dev = m.block.device()
    m.block.keep_log = False  # the program-level completion log (for the differential) is not needed
    dev.keep_completed = False
    drv = Driver(m, dev, depth, 1)
    random_depth(drv, depth, n, 1.0, 8, dev.nr_sectors, 1)
    t0, c0 = time.perf_counter(), time.process_time()
    drv.run()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    assert len(drv.records) == n and all(r.completions == 1 for r in drv.records)
    return n / dt, n / dc


def main() -> None:
    quick = "--quick" in sys.argv
    n = 5_000 if quick else 50_000
    ref = reference_loop_ns()
    rows = []
    for elv in ELEVATORS:
        rate, cpu_rate = requests_per_second(elv, n if elv != "linus" else n // 5)
        rows.append([f"{elv}: random 4 KiB reads, depth 128", f"{rate:,.0f}", f"{cpu_rate:,.0f}", "100,000",
                     f"{rate / 100_000:.2f}x"])
    print("block layer speed: requests per second of wall time (and of this process's CPU time)")
    print(table(["what", "per wall s", "per CPU s", "target", "wall vs target"], rows))
    print(f"reference loop on this host now: {ref:.0f} ns/iteration (an idle 2020s x86 core: ~40-60); "
          "on a shared host the CPU-time rate is what the path costs")
    print()
    from mmframe.workloads import io_scenarios
    for name, figs in (("io-depth (depth 32, 2000 random 4 KiB reads)",
                        io_scenarios.compare_elevators(io_scenarios.depth_figures, ELEVATORS,
                                                       depth=32, requests=400 if quick else 2000)),
                       ("replay of the shipped blkparse sample", io_scenarios.compare_elevators(
                           io_scenarios.replay_figures, ELEVATORS, trace=str(io_scenarios.SAMPLES["blkparse"])))):
        print(f"{name}: simulated")
        rows = [[elv, f"{f['iops']:,.1f}", f"{f['mb_s']:.2f}", f"{f['lat_p50_ms']:.2f}", f"{f['lat_p99_ms']:.2f}",
                 f"{f['lat_max_ms']:.2f}"] for elv, f in figs.items()]
        print(table(["elevator", "IO/s", "MB/s", "p50 ms", "p99 ms", "max ms"], rows))
        print()


if __name__ == "__main__":
    main()
