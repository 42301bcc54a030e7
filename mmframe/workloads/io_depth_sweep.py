"""``io-depth-sweep``: the io-depth workload (random reads held at a depth, each completion
submitting the next) at several depths, per elevator, measuring what inserting a request costs --
the question of the rbtree elevator (docs/elevator_rbtree.md): does placing a request scan the queue?

Per depth and elevator, on a fresh machine whose first disk runs that elevator with a queue as deep
as the depth: the **insertion steps** per request (the steps the elevator reported while placing
bios -- ``merge`` and ``add_req``: the hash lookup and the list scan, or the tree's visits,
rotations and recolourings), the **modelled CPU** of those steps (steps times the cost table's
nanoseconds), the elevator's whole modelled CPU per request (dispatch included), and the
**simulator's wall time per insertion** (Python time inside ``merge`` + ``add_req``).  Then, per
elevator, least-squares fits of insertion steps against n and against log2 n (n = depth) and which
of the two fits.

Depths past the period's queue sizes are labelled: 2.5.49 allows at most 128 requests a direction
(``queue_nr_requests``), the -mm rbtree patch 1,024; beyond that the setting is **synthetic**.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import attrs

import numpy as np

from mmframe.block.bio import PAGE_SECTORS
from mmframe.errors import UsageError
from mmframe.options import Option
from mmframe.scenario import Figure, Scenario, ScenarioContext
from mmframe.workloads.io_scenarios import _machine_for
from mmframe.workloads.iodriver import Driver, random_depth

DEPTHS = ["16", "128", "1024", "10000"]
ELEVATORS = ["deadline", "noop"]  # examples/configs/io-depth-rbtree.toml compares deadline and rbtree-ablation
LIMIT_2549, LIMIT_MM = 128, 1024


def period_label(depth: int) -> str:
    if depth <= LIMIT_2549:
        return "within 2.5.49's queue_nr_requests (128)"
    if depth <= LIMIT_MM:
        return "past 2.5.49's 128; within the -mm rbtree patch's 1,024"
    return "synthetic: past every period queue size (128; -mm 1,024)"


def measure(cfg: Any, elevator: str, depth: int, requests: int, read_fraction: float = 1.0,
            size: int = 4096) -> dict[str, Any]:
    """io-depth at ``depth`` under ``elevator``, with its insertions instrumented."""
    m = _machine_for(attrs.evolve(cfg, disks=(attrs.evolve(cfg.disks[0], nr_requests=depth), *cfg.disks[1:])),
                     elevator)
    m.block.keep_log = False
    dev = m.block.device()
    elv = dev.queue.elevator
    counts = elv.step_counts
    inserting = dict.fromkeys(counts, 0)
    wall = [0.0]
    inserts = [0]
    merge, add_req = elv.merge, elv.add_req
    perf = time.perf_counter

    def timed_merge(bio: Any) -> Any:
        before = dict(counts)
        t0 = perf()
        out = merge(bio)
        wall[0] += perf() - t0
        for k, v in counts.items():
            inserting[k] += v - before[k]
        return out

    def timed_add(rq: Any, where: Any) -> None:
        before = dict(counts)
        t0 = perf()
        add_req(rq, where)
        wall[0] += perf() - t0
        inserts[0] += 1
        for k, v in counts.items():
            inserting[k] += v - before[k]

    elv.merge, elv.add_req = timed_merge, timed_add
    nsect = max(1, size >> 9)
    drv = Driver(m, dev, min(depth, requests), -(-nsect // PAGE_SECTORS))
    random_depth(drv, depth, requests, read_fraction, nsect, dev.nr_sectors, m.config.seed)
    drv.run()
    completed = sum(1 for r in drv.records if r.completions)
    ns = {k: m.costs[e].ns for k, e in elv.steps.items()}
    n_ins = max(1, inserts[0])
    return {
        "insert_steps": sum(inserting.values()) / n_ins,
        "insert_cpu_ns": sum(c * ns[k] for k, c in inserting.items()) / n_ins,
        "elevator_cpu_us": sum(c * ns[k] for k, c in counts.items()) / 1e3 / max(1, completed),
        "wall_us_per_insert": wall[0] * 1e6 / n_ins,
        "requests": inserts[0],
        "completed": completed,
    }


def fit_growth(depths: list[int], steps: list[float]) -> dict[str, Any]:
    """Least squares of ``steps`` against n and against log2 n: coefficients, R^2, which fits."""
    y = np.asarray(steps, dtype=float)
    out: dict[str, Any] = {}
    for name, x in (("n", np.asarray(depths, dtype=float)), ("log_n", np.log2(np.asarray(depths, dtype=float)))):
        b, a = np.polyfit(x, y, 1)
        resid = y - (a + b * x)
        ss_tot = float(((y - y.mean()) ** 2).sum())
        r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
        out[name] = (float(a), float(b), r2)
    out["fits"] = "log n" if out["log_n"][2] >= out["n"][2] else "n"
    return out


def _fit_text(f: dict[str, Any]) -> str:
    a, b, r = f["n"]
    la, lb, lr = f["log_n"]
    return (f"{f['fits']} (steps = {la:.1f} + {lb:.2f}*log2 n: R2 {lr:.3f}; "
            f"steps = {a:.1f} + {b:.4f}*n: R2 {r:.3f})")


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    p = ctx.params
    try:
        depths = [int(d) for d in p["depths"]]
    except ValueError:
        raise UsageError(f"scenario depths: {list(p['depths'])!r} (allowed: whole numbers >= 1, e.g. "
                         f"{DEPTHS!r})") from None
    if len(depths) < 2 or min(depths) < 1:
        raise UsageError(f"scenario depths: {depths!r} (allowed: at least two whole numbers >= 1)")
    out: dict[str, Any] = {}
    per: dict[str, list[float]] = {e: [] for e in p["elevators"]}
    for d in depths:
        out[f"d{d}.queue_size"] = period_label(d)
        res = {e: measure(ctx.config, e, d, max(p["min_requests"], p["rounds"] * d), p["read_fraction"], p["size"])
               for e in p["elevators"]}
        for k in next(iter(res.values())):
            for e in p["elevators"]:
                out[f"d{d}.{e}.{k}"] = res[e][k]
        for e in p["elevators"]:
            per[e].append(res[e]["insert_steps"])
    for e, steps in per.items():
        out[f"{e}.growth"] = _fit_text(fit_growth(depths, steps))
    return out


LABELLED = ("deadline", "noop", "linus", "rbtree", "rbtree-2.5.58", "rbtree-ablation")  # rows with labels
MEASURES = (("insert_steps", "insertion steps per request", ""),
            ("insert_cpu_ns", "modelled insertion CPU per request", "ns"),
            ("elevator_cpu_us", "modelled elevator CPU per request", "us"),
            ("wall_us_per_insert", "simulator wall time per insertion", "us"))


def _figures() -> tuple[Figure, ...]:
    """Labelled rows for the default depths and the elevators mmframe ships (a row nobody fills is
    not printed); other depths and elevators print under their keys."""
    rows: list[Figure] = []
    for d in DEPTHS:
        rows.append(Figure(f"d{d}.queue_size", f"depth {d}: queue size"))
        for k, label, unit in MEASURES:
            rows += [Figure(f"d{d}.{e}.{k}", f"depth {d}: {label}: {e}", unit) for e in LABELLED]
    rows += [Figure(f"{e}.growth", f"{e}: insertion steps grow as") for e in LABELLED]
    return tuple(rows)


SCENARIO = Scenario(
    name="io-depth-sweep",
    help="io-depth (random reads held at a depth) at several depths per elevator: insertion steps and their "
         "modelled CPU per request, the growth fitted to the steps, the simulator's wall time per insertion",
    run=run,
    models="the cost of finding an insertion point in each elevator's sort structure as the queue grows: the "
           "2.5.49 deadline's linear list scan against a red-black tree (the -mm rbtree elevator), counted "
           "step by step; depths past 2.5.49's queue_nr_requests (128) are synthetic",
    sources=("Linux 2.5.49 drivers/block/deadline-iosched.c (deadline_add_request's list scan)",
             "Jens Axboe, rbtree deadline for 2.5.46-mm2, LKML Message-ID 20021110155851.GL31134@suse.de",
             "Linux 2.5.49 lib/rbtree.c (rb_insert_color)"),
    options=(
        Option("depths", "list[str]", list(DEPTHS), "depths (whole numbers; the queue is made as deep)"),
        Option("elevators", "list[str]", list(ELEVATORS), "elevators compared, each on a fresh machine"),
        Option("rounds", "int", 3, "requests submitted per depth, as a multiple of the depth", minimum=1,
               maximum=1000),
        Option("min_requests", "int", 2000, "at least this many requests per depth", minimum=1,
               maximum=10_000_000),
        Option("read_fraction", "float", 1.0, "share of reads", minimum=0.0, maximum=1.0),
        Option("size", "size", "4KiB", "bytes an I/O (whole sectors)", minimum=512, maximum=127 * 1024),
    ),
    figures=_figures(),
)
