"""What each fork-scaling column is made of: the cost entries that dominate the simulated fork,
fork+exit and fork+exec+exit times, mainline beside pt_shared (issue 22's closing note).

Run: python benchmarks/bench_fork_scaling_costs.py [SIZE_MiB ...]   (default: 40 2048; about a minute)
Prints, per size, combination and column, the simulated ms and the top cost entries with their
share of it (counts of each primitive times its cost-table entry, as the scenario charges them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.machine import Machine  # noqa: E402
from mmframe.workloads.fork_scaling import fork_program  # noqa: E402

MiB = 1 << 20
COLUMNS = (("fork", "before", "forked", True), ("fork+exit", "before", "reaped", False),
           ("fork+exec+exit", "reaped", "exec_reaped", False))


def breakdown(policies: tuple[str, ...], size: int, top: int = 5) -> list[tuple[str, float, list[tuple[str, float]]]]:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    m = Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=4 << 30)))
    ns = m.costs.ns
    marks: dict[str, tuple[dict[str, int], dict[str, int]]] = {}

    def mark(task, name):
        marks[name] = dict(m.acct.totals(task=task.lineage)), dict(m.acct.totals())
        return 0

    m.sched.handlers["mark"] = mark
    m.run(fork_program, size)
    m.close()
    out = []
    for col, a, b, own in COLUMNS:  # fork: the parent's own charges; the others: everything in between
        x, y = marks[a][0 if own else 1], marks[b][0 if own else 1]
        d = {k: (y.get(k, 0) - x.get(k, 0)) * ns[m.costs.id[k]] for k in set(x) | set(y)}
        total = sum(d.values())
        best = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        out.append((col, total / 1e6, [(k, 100 * v / total) for k, v in best]))
    return out


def main(argv: list[str]) -> None:
    sizes = [int(a) * MiB for a in argv] or [40 * MiB, 2048 * MiB]
    rows = []
    for size in sizes:
        for pol in ((), ("pt_shared",)):
            for col, ms, best in breakdown(pol, size):
                rows.append([f"{size // MiB} MiB", "+".join(pol) or "mainline", col, f"{ms:.4g}",
                             ", ".join(f"{k} {p:.0f}%" for k, p in best)])
    print(table(["resident", "combination", "column", "ms", "top cost entries (share of the column)"], rows))


if __name__ == "__main__":
    main(sys.argv[1:])
