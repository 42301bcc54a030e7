"""pressure-atomic with and without the ``reserve`` plugin, side by side in one run (issue 21).

For each fault-injection setting (none; the Nth atomic allocation; the Nth allocation inside each
reservation site; every allocation below a free-page level) it prints, without and with the plugin:
simulated oopses and -ENOMEM returns, OOM kills, time inside reserve_local_pages, reservations that
failed up front, pages held in pools (mean, peak), system calls completed and simulated throughput.

Run: python benchmarks/bench_reserve.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.scenario import ScenarioContext  # noqa: E402
from mmframe.workloads.pressure_atomic import SCENARIO  # noqa: E402

SETTINGS = [
    ("no injection", {}, 512),
    ("fail_nth=5 atomic", {"fail_nth": 5}, 512),
    ("fail_nth=3 pte_chain_alloc", {"fail_nth": 3, "fail_match": "pte_chain_alloc"}, 512),
    ("fail_nth=3 pte_alloc_map", {"fail_nth": 3, "fail_match": "pte_alloc_map"}, 512),
    ("fail_nth=1 radix_tree_insert, mempool 0", {"fail_nth": 1, "fail_match": "radix_tree_insert"}, 0),
    ("fail_below_free=1200", {"fail_below_free": 1200}, 512),
]


def one(plugins: list[str], machine: dict, mempool: int, quick: bool) -> dict:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=plugins)
    params = {o.name: o.coerce(o.default) for o in SCENARIO.options}
    params["radix_mempool"] = mempool
    if quick:
        params["rounds"] = 3
    cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, **machine))
    return dict(SCENARIO.run(ScenarioContext(cfg, params)))


def main() -> None:
    quick = "--quick" in sys.argv
    rows = []
    t0 = time.perf_counter()
    for label, mc, mempool in SETTINGS:
        for plugins in ([], ["reserve"]):
            f = one(plugins, mc, mempool, quick)
            rows.append([label, "reserve" if plugins else "mainline", f["oopses"], f["enomem"], f["oom_kills"],
                         f["injected"], f"{f.get('reserve_ms', 0.0):.3f}", f.get("reserve_failed", "-"),
                         f"{f['pool_mean']:.2f}" if "pool_mean" in f else "-", f.get("pool_peak", "-"),
                         f["syscalls"], f"{f['throughput']:.0f}"])
    print("pressure-atomic (64 MiB, 2 hogs at 85% of free memory, 6 workers; reclaim on, no swap)")
    print(table(["injection", "policy", "oopses", "-ENOMEM", "OOM kills", "injected", "reserve ms", "resv failed",
                 "pool mean", "pool peak", "syscalls", "syscalls/busy s"], rows))
    print(f"host time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
