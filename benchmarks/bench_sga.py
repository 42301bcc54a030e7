"""The ``sga`` scenario at full size: a 16 GiB PAE machine, a 1 GiB shared segment, up to 1,000
children, HIGHPTE off and on, mainline beside pt_shared.

Run: python benchmarks/bench_sga.py  (several minutes: the mainline runs copy 1 GiB of page
tables per child until lowmem runs out)
Target (issue 7): each sharing run under 60 s of wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import ScenarioConfig, load_config  # noqa: E402
from mmframe.scenario import run_scenario  # noqa: E402


def main() -> None:
    cfg = load_config(use_pyproject=False, env={})
    from mmframe.workloads import sga
    params = {o.name: o.coerce(o.default) for o in sga.SCENARIO.options}
    cfg = attrs.evolve(cfg, scenario=ScenarioConfig(name="sga", policies=((), ("pt_shared",)), params=params))
    scen, cols = run_scenario(cfg, lambda label: print(f"running sga under {label}...", flush=True))
    rows = []
    for f in scen.figures:
        vals = [c.figures[f.key] for c in cols]
        rows.append([f.label, f.unit, *(f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" for v in vals)])
    print(table(["figure", "unit", *(c.label for c in cols)], rows))
    for tag in ("no HIGHPTE", "HIGHPTE"):
        wall = cols[1].figures[f"sim wall {tag}"]
        print(f"pt_shared run, {tag}: {wall:.1f} s wall (target < 60 s: {'met' if wall < 60 else 'NOT met'})")


if __name__ == "__main__":
    main()
