"""Wall time of a 32-run sweep on 1, 2 and all local workers and on each installed engine's local
cluster (Dask LocalCluster, local Ray), side by side, with the speed-up over one worker; every
executor's records are checked equal to the one-worker run's (wall times aside).

    python benchmarks/bench_sweep.py [--children N] [--pages N]

The sweep: ``spawn`` (children 16, pages 256 by default) under mainline and pt_shared, 16 seeds
each.  One worker runs the jobs in this process; more go to spawned processes (their start-up is
part of the time, as a user pays it); a local cluster's start-up is timed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import table  # noqa: E402

from mmframe.config import load_config, override_layer  # noqa: E402
from mmframe.executors import run_sweep  # noqa: E402
from mmframe.sweep import build_sweep, matrix_sets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, default=16)
    ap.add_argument("--pages", type=int, default=256)
    args = ap.parse_args()
    layer = override_layer({"scenario.name": "spawn", "scenario.children": args.children,
                            "scenario.pages": args.pages}, "benchmark")
    base = load_config(use_pyproject=False, env={}, extra_layers=[layer])
    sweep = build_sweep(base, [layer], [], policy_sets=matrix_sets(["pt_shared"]), seeds=16)
    assert len(sweep.jobs) == 32
    ncpu = os.cpu_count() or 1
    plans = [("local, 1 worker (in-process)", "local", 1), ("local, 2 workers", "local", 2),
             (f"local, all {ncpu} workers", "local", ncpu)]
    for engine, module in (("dask", "dask.distributed"), ("ray", "ray")):
        try:
            __import__(module)
            plans.append((f"{engine} local cluster, {ncpu} workers", engine, ncpu))
        except ImportError:
            print(f"({engine}: not installed, pip install 'mmframe[{engine}]')")
    rows, ref, t1 = [], None, None
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    for name, executor, workers in plans:
        t0 = time.perf_counter()
        recs = run_sweep(sweep.jobs, executor, workers=workers)
        wall = time.perf_counter() - t0
        assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs if r["status"] != "ok"]
        ref = strip(recs) if ref is None else ref
        same = strip(recs) == ref
        t1 = wall if t1 is None else t1
        rows.append([name, f"{wall:.2f}", f"{t1 / wall:.2f}x", f"{sum(r['wall_s'] for r in recs):.2f}",
                     "yes" if same else "NO"])
    print(f"32-run sweep: spawn children={args.children} pages={args.pages}, mainline and pt_shared x 16 seeds; "
          f"{ncpu} CPUs")
    print(table(["executor", "wall s", "vs 1 worker", "sum of run s", "same records"], rows))


if __name__ == "__main__":
    main()
