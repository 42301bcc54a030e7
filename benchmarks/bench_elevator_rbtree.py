"""The rbtree elevator's case, side by side with the list deadline: io-depth at depths 16, 128,
1,024 and 10,000 (past the period's queue sizes: synthetic), insertion steps and their modelled CPU
per request, the growth fitted to the steps, and the simulator's wall time per insertion; then the
sort structures alone in wall time (this plugin's red-black tree, counting its steps, against
sortedcontainers.SortedList, the library candidate).

Run: python benchmarks/bench_elevator_rbtree.py [--quick]
(the same sweep as ``mmframe run examples/configs/io-depth-rbtree.toml``)
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402

from mmframe.workloads.io_depth_sweep import fit_growth, measure, period_label  # noqa: E402
from mmframe_plugins.elevator_rbtree.rbtree import RbTree  # noqa: E402

ELEVATORS = ("deadline", "rbtree-ablation")


CONFIG = Path(__file__).resolve().parent.parent / "examples" / "configs" / "io-depth-rbtree.toml"


def sweep(depths: list[int], rounds: int = 3, min_requests: int = 2000) -> None:
    cfg = load_config(str(CONFIG), use_pyproject=False, env={})
    res = {(d, e): measure(cfg, e, d, max(min_requests, rounds * d)) for d in depths for e in ELEVATORS}
    rows = []
    for d in depths:
        a, b = res[(d, "deadline")], res[(d, "rbtree-ablation")]
        rows.append([d, f"{a['insert_steps']:.1f}", f"{b['insert_steps']:.1f}",
                     f"{a['insert_cpu_ns'] / 1e3:.2f}", f"{b['insert_cpu_ns'] / 1e3:.2f}",
                     f"{a['insert_cpu_ns'] / b['insert_cpu_ns']:.2f}x",
                     f"{a['elevator_cpu_us']:.2f}", f"{b['elevator_cpu_us']:.2f}",
                     f"{a['wall_us_per_insert']:.1f}", f"{b['wall_us_per_insert']:.1f}", period_label(d)])
    print(f"io-depth, random 4 KiB reads, queue as deep as the depth ({CONFIG.name}, seed {cfg.machine.seed})")
    print(table(["depth", "steps dl", "steps abl", "ins CPU dl us", "ins CPU abl us", "dl/abl",
                 "elv CPU dl us", "elv CPU abl us", "wall dl us", "wall abl us", "queue size"], rows))
    for e in ELEVATORS:
        f = fit_growth(depths, [res[(d, e)]["insert_steps"] for d in depths])
        (a, b, r), (la, lb, lr) = f["n"], f["log_n"]
        print(f"{e}: insertion steps fit {f['fits']}: {la:.1f} + {lb:.2f}*log2 n (R2 {lr:.3f}) | "
              f"{a:.1f} + {b:.4f}*n (R2 {r:.3f})")


def structures(sizes: list[int]) -> None:
    from sortedcontainers import SortedList

    rows = []
    for n in sizes:
        rng = random.Random(n)
        keys = rng.sample(range(1 << 40), n)
        reps = max(1, 50_000 // n)
        t0 = time.perf_counter()
        for _ in range(reps):
            tree = RbTree()
            for k in keys:
                tree.insert(k, None)
        rb = (time.perf_counter() - t0) / (reps * n) * 1e9
        steps = tree.steps / n
        t0 = time.perf_counter()
        for _ in range(reps):
            sl = SortedList()
            for k in keys:
                sl.add(k)
        so = (time.perf_counter() - t0) / (reps * n) * 1e9
        rows.append([n, f"{rb:.0f}", f"{steps:.1f}", f"{so:.0f}", f"{rb / so:.2f}x"])
    print("\nsort structures alone: random keys inserted into an empty structure, ns per insertion (wall)")
    print(table(["n", "RbTree ns", "RbTree steps/ins", "SortedList ns", "RbTree/SortedList"], rows))


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    sweep([16, 128, 1024] if quick else [16, 128, 1024, 10_000])
    structures([16, 128, 1024, 10_000])
