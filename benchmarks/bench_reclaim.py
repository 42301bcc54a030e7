"""The ``pressure`` scenario: a workload touching 1.5x the machine's free memory, mainline beside
pt_shared: pages scanned, reclaimed, swapped out and in, sharers visited per unmapped PTE and page,
simulated time in reclaim, and the simulator's wall time.

Run: python benchmarks/bench_reclaim.py [memory, default 64MiB]
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import ScenarioConfig, load_config  # noqa: E402
from mmframe.scenario import run_scenario  # noqa: E402
from mmframe.units import parse_size  # noqa: E402
from mmframe.workloads import pressure  # noqa: E402


def main() -> None:
    cfg = load_config(use_pyproject=False, env={})
    params = {o.name: o.coerce(o.default) for o in pressure.SCENARIO.options}
    if len(sys.argv) > 1:
        params["memory"] = parse_size(sys.argv[1])
    cfg = attrs.evolve(cfg, scenario=ScenarioConfig(name="pressure", policies=((), ("pt_shared",)), params=params))
    scen, cols = run_scenario(cfg, lambda label: print(f"running pressure under {label}...", flush=True))
    rows = []
    for f in scen.figures:
        vals = [c.figures[f.key] for c in cols]
        rows.append([f.label, f.unit, *(f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" for v in vals)])
    # the run's wall time, as the scenario layer measures it (Column.wall_s: noisy, host-measured)
    rows.append(["simulator wall time", "s", *(f"{c.wall_s:,.2f}" for c in cols)])
    print(f"machine {params['memory'] >> 20} MiB, swap {(params['swap'] or 2 * params['memory']) >> 20} MiB, "
          f"factor {params['factor']}, {params['children']} children")
    print(table(["figure", "unit", *(c.label for c in cols)], rows))


if __name__ == "__main__":
    main()
