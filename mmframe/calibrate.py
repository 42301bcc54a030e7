"""``mmframe calibrate``: measure the host kernel on the fit set, fit the cost table, write it.

Each fitted workload's equation is ``measured = sum(count[j] * ns[j])`` with the counts from the
same workload run in the model (:mod:`mmframe.host.model`).  The sets are fixed by the validation
issue: the **fit set** is fork and fork+exit with 16 and 64 MiB resident and anonymous write faults
(over 16 and 64 MiB); everything else is held out for ``mmframe validate``.  The fit
(:mod:`mmframe.fit`) reports the design matrix's rank and what it cannot separate; the table is
written as a cost file usable as ``[machine] costs = "host.toml"``, naming host, kernel, CPU and date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs
import numpy as np

from mmframe.costs import CostTable
from mmframe.fit import Fit, fit, relative_error
from mmframe.host.harness import HostRun, Workload, parse_cap, run_host
from mmframe.host.model import model_counts

MiB, GiB = 1 << 20, 1 << 30

#: The fit set, fixed by issue 23: changing it is a finding to report, not a fix.
FIT_SET: tuple[Workload, ...] = (
    Workload("fork", 16 * MiB, 11), Workload("fork", 64 * MiB, 11),
    Workload("fork_exit", 16 * MiB, 11), Workload("fork_exit", 64 * MiB, 11),
    Workload("write_faults", 16 * MiB, 11), Workload("write_faults", 64 * MiB, 9),
)
#: The held-out set, fixed by issue 23: predicted by ``mmframe validate``, never fitted.
HELD_OUT: tuple[Workload, ...] = (
    Workload("fork", 256 * MiB, 7), Workload("fork", GiB, 5), Workload("fork", 2 * GiB, 5),
    Workload("fork_exit", 256 * MiB, 7), Workload("fork_exit", GiB, 5), Workload("fork_exit", 2 * GiB, 5),
    Workload("fork_exec_exit", 16 * MiB, 11), Workload("fork_exec_exit", 256 * MiB, 7),
    Workload("read_faults", 64 * MiB, 9), Workload("read_faults", 256 * MiB, 5),
    Workload("munmap", 64 * MiB, 9), Workload("munmap", 256 * MiB, 5),
    Workload("mprotect", 64 * MiB, 9), Workload("mprotect", 256 * MiB, 5),
    Workload("mmap_small", 4096, 7),
)
#: NOT the issue's fit set: ``calibrate --extend`` adds these to ask what would reach the target.
#: Each is at a size the held-out set does not use; a table fitted with them says so (a finding).
EXTENDED: tuple[Workload, ...] = (
    Workload("read_faults", 16 * MiB, 11), Workload("munmap", 16 * MiB, 11), Workload("mprotect", 16 * MiB, 11),
    Workload("fork_exec_exit", 4 * MiB, 11),
)
ROUNDS = 5  # interleaved rounds: the host's speed drifts during a run (see run_host)
QUICK_DIVISOR = 16  # --quick: every size divided by this, three repeats (a smoke run, not the sets)


def quick(workloads: Sequence[Workload]) -> tuple[Workload, ...]:
    """The smoke-run versions of ``workloads``: sizes / 16, three repeats, 200 mmap pairs."""
    return tuple(attrs.evolve(w, size=max(w.size // QUICK_DIVISOR, 4096) if w.kind != "mmap_small" else w.size,
                              repeats=3, loops=200) for w in workloads)


def design(workloads: Sequence[Workload], shapes: Mapping[str, Mapping[str, Any]], names: Sequence[str],
           counts: Callable[[Workload, Mapping[str, Any]], Mapping[str, float]] | None = None) -> np.ndarray:
    """The design matrix: a row per workload, a column per cost entry, the model's counts."""
    counts = counts or model_counts
    rows = []
    for w in workloads:
        c = counts(w, shapes[w.key])
        rows.append([float(c.get(n, 0.0)) for n in names])
    return np.array(rows)


@attrs.frozen(slots=True)
class Calibration:
    table: CostTable
    fit: Fit
    run: HostRun
    workloads: tuple[Workload, ...]
    a: np.ndarray
    quick: bool


def calibrate(workloads: Sequence[Workload] = FIT_SET, *, cap: int | None = None, progress: bool = True,
              run: HostRun | None = None, quick_run: bool = False, rt: bool = False,
              rounds: int = ROUNDS) -> Calibration:
    """Measure ``workloads`` on the host (unless ``run`` is given), count them in the model, fit."""
    prior = CostTable.default()
    names = [e.name for e in prior.entries]
    run = run if run is not None else run_host(workloads, cap, progress=progress, rt=rt, rounds=rounds)
    missing = [w.key for w in workloads if w.key not in run.measurements]
    if missing:
        from mmframe.errors import UsageError
        raise UsageError(f"cannot fit: {', '.join(missing)} not measured ({'; '.join(run.skipped.values())})")
    shapes = {w.key: run.measurements[w.key].shape for w in workloads}
    a = design(workloads, shapes, names)
    b = np.array([run.measurements[w.key].median for w in workloads])
    sigma = [relative_error(run.measurements[w.key].samples) for w in workloads]
    f = fit(a, b, names, prior.ns, sigma)
    return Calibration(host_table(prior, f, run, workloads, quick_run), f, run, tuple(workloads), a, quick_run)


def host_table(prior: CostTable, f: Fit, run: HostRun, workloads: Sequence[Workload], quick_run: bool) -> CostTable:
    """The fitted table: entries the fit set counts are ``fitted`` (saying what they could not be
    separated from), the others ``derived`` (the 2002 figure times the common scale)."""
    from mmframe.costs import CostEntry

    h = run.host
    where = f"{h['host']}, {h['kernel']}, {h['cpu']}, {h['date']}"
    extended = any(w.kind not in ("fork", "fork_exit", "write_faults") for w in workloads)
    fitted_to = (f"{'QUICK smoke run, not the fixed fit set: ' if quick_run else ''}"
                 f"{'EXTENDED (not the issue fit set): ' if extended else ''}host fit set "
                 f"({', '.join(w.key for w in workloads)}) measured on {where}")
    an = f.analysis
    group_of = {n: g for g in an.groups for n in g}
    entries = []
    for e in prior.entries:
        ns = round(f.ns[e.name], 3)
        if e.name in an.unreached:
            entries.append(CostEntry(e.name, round(e.ns * f.s0, 3), "derived",
                                     f"no fitted workload counts it: the 2002 figure {e.ns:g} ns times the common "
                                     f"scale {f.s0:.4f} of the fit ({where})", e.help))
            continue
        notes = []
        if e.name in group_of:
            notes.append("always counted with " + ", ".join(n for n in group_of[e.name] if n != e.name)
                         + " (their sum is fitted; the split stays near the 2002 proportions)")
        if e.name in an.combined:
            notes.append("determined only in combination with other entries (rank "
                         f"{an.rank} of {an.merged_columns} merged columns)")
        if not notes:
            notes.append("determined by the fit set on its own")
        entries.append(CostEntry(e.name, ns, "fitted",
                                 f"MAP fit (NNLS; prior: 2002 x common scale {f.s0:.4f}, width {f.tau:.0%}), scale {f.scale[e.name]:.4f} "
                                 f"of the 2002 figure {e.ns:g} ns; " + "; ".join(notes), e.help, fitted_to))
    t = CostTable(entries, f"host-{h['host']}", f"{h['cpu']}, {h['kernel']}, fitted {h['date']}")
    return t


def equation(w: Workload, row: np.ndarray, names: Sequence[str]) -> str:
    """``fork 16MiB = 1 copy_process + 5,397 pte_copy + ...`` (counts from the model, largest first)."""
    terms = sorted(((c, n) for c, n in zip(row, names) if c), key=lambda t: -t[0])
    return f"{w.key} = " + " + ".join(f"{c:,.4g} {n}" if c != int(c) else f"{int(c):,} {n}" for c, n in terms)


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def write_table(cal: Calibration, path: str | Path) -> None:
    """Write the fitted table as a cost file (``[machine] costs = ...`` loads it)."""
    h, f, an = cal.run.host, cal.fit, cal.fit.analysis
    lines = ["# A cost table fitted to this host's kernel by `mmframe calibrate` (docs/validation.md).",
             "# Use it as [machine] costs = \"<this file>\"; `mmframe validate` predicts the held-out set with it.",
             "", "[meta]",
             f"name = {_toml_str(cal.table.name)}", f"describes = {_toml_str(cal.table.describes)}"]
    for k in ("host", "kernel", "cpu", "date", "python"):
        lines.append(f"{k} = {_toml_str(h[k])}")
    lines += [f"quick = {'true' if cal.quick else 'false'}",
              f"extended = {'true' if any(w not in FIT_SET for w in cal.workloads) and not cal.quick else 'false'}",
              "fit_workloads = [" + ", ".join(f"[{_toml_str(w.kind)}, {w.size}, {w.repeats}]"
                                              for w in cal.workloads) + "]",
              f"cap_bytes = {cal.run.cap}", f"peak_rss_over_baseline_bytes = {cal.run.peak_over_baseline}",
              f"pinned_cpu = {-1 if cal.run.cpu is None else cal.run.cpu}",
              f"sched_fifo = {'true' if cal.run.rt else 'false'}",
              f"rank = {an.rank}", f"columns = {len(an.names)}", f"common_scale = {f.s0:.6f}", f"prior_width = {f.tau}",
              "inseparable = [" + ", ".join("[" + ", ".join(_toml_str(n) for n in g) + "]" for g in an.groups) + "]",
              "combined = [" + ", ".join(_toml_str(n) for n in an.combined) + "]",
              "unreached = [" + ", ".join(_toml_str(n) for n in an.unreached) + "]", ""]
    names = [e.name for e in cal.table.entries]
    for w, row in zip(cal.workloads, cal.a):
        lines.append(f"# equation: {equation(w, row, names)}")
    for w, r, sg in zip(cal.workloads, f.residuals, f.sigma):
        m = cal.run.measurements[w.key]
        lines.append(f"# fit {w.key}: measured {m.median / 1e6:.4f} ms (spread {m.spread:.1%}, n={len(m.samples)}, "
                     f"standard error {sg:.1%}), fitted residual {r:+.2%}")
    for e in cal.table.entries:
        lines += ["", f"[entries.{e.name}]", f"ns = {e.ns!r}", f"kind = {_toml_str(e.kind)}",
                  f"source = {_toml_str(e.source)}"]
        if e.fitted_to:
            lines.append(f"fitted_to = {_toml_str(e.fitted_to)}")
        if e.help:
            lines.append(f"help = {_toml_str(e.help)}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def report(cal: Calibration, console: Any, path: str | Path) -> None:
    from rich.table import Table

    h, f, an, run = cal.run.host, cal.fit, cal.fit.analysis, cal.run
    console.print(f"[bold]mmframe calibrate[/bold] on {h['host']}: {h['kernel']}; {h['cpu']} x{h['cpus']}",
                  soft_wrap=True)
    if cal.quick:
        console.print("[yellow]--quick: sizes / 16 and three repeats - a smoke run, NOT the fixed fit set[/yellow]")
    if any(w.kind not in ("fork", "fork_exit", "write_faults") for w in cal.workloads):
        console.print("[yellow]--extend: the fit set is the issue's plus read faults, munmap, mprotect and "
                      "fork+exec+exit at sizes the held-out set does not use - a finding, not the issue's "
                      "calibration[/yellow]")
    console.print(f"memory cap {run.cap >> 20} MiB; the runner's peak resident size was "
                  f"{run.peak_over_baseline / MiB:.1f} MiB above its {run.baseline_rss / MiB:.1f} MiB baseline; "
                  f"pinned to CPU {run.cpu}{', SCHED_FIFO' if run.rt else ''}", soft_wrap=True)
    t = Table(title="fit set: measured on the host, and the fitted table's value")
    for col in ("workload", "measured", "spread", "drift", "n", "std error", "fitted", "residual"):
        t.add_column(col, justify="left" if col == "workload" else "right")
    for w, r, sg, row in zip(cal.workloads, f.residuals, f.sigma, cal.a):
        m = run.measurements[w.key]
        fitted = float(row @ np.array(cal.table.ns))
        t.add_row(w.key, f"{m.median / 1e6:.4f} ms", f"{m.spread:.1%}", f"{m.drift:.2f}", str(len(m.samples)),
                  f"{sg:.1%}", f"{fitted / 1e6:.4f} ms", f"{r:+.2%}")
    console.print(t)
    names = [e.name for e in cal.table.entries]
    console.print("each fitted workload's equation, counts from the same workload run in the model:")
    for w, row in zip(cal.workloads, cal.a):
        console.print(f"  {equation(w, row, names)}", soft_wrap=True, markup=False)
    console.print(f"design matrix: {len(cal.workloads)} workloads x {len(an.names)} counted entries, rank {an.rank} "
                  f"({an.merged_columns} columns once always-together entries are merged)", soft_wrap=True)
    for g in an.groups:
        console.print(f"  cannot separate (one fitted sum): {' + '.join(g)}", soft_wrap=True)
    if an.combined:
        console.print(f"  known only in combination (where the data cannot tell, they stay near the common scale "
                      f"{f.s0:.4f}): {', '.join(an.combined)}", soft_wrap=True)
    if an.separable:
        console.print(f"  determined one by one: {', '.join(an.separable)}", soft_wrap=True)
    console.print(f"  not counted by the fit set (2002 figure x {f.s0:.4f}): {', '.join(an.unreached)}",
                  soft_wrap=True)
    t = Table(title="the fitted table")
    for col in ("entry", "2002 ns", "host ns", "scale", "kind"):
        t.add_column(col, justify="left" if col in ("entry", "kind") else "right")
    prior = CostTable.default()
    for e in cal.table.entries:
        t.add_row(e.name, f"{prior[e.name].ns:g}", f"{e.ns:.3f}", f"{e.ns / prior[e.name].ns:.4f}"
                  if prior[e.name].ns else "-", e.kind)
    console.print(t)
    console.print(f"wrote {path} (use it as [machine] costs = \"{path}\"; then `mmframe validate {path}`)")


def cmd_calibrate(args: Any, console: Any) -> int:
    cap = parse_cap(args.cap)
    workloads = FIT_SET + EXTENDED if args.extend else FIT_SET
    workloads = quick(workloads) if args.quick else workloads
    cal = calibrate(workloads, cap=cap, progress=not args.json, quick_run=args.quick, rt=args.rt,
                    rounds=1 if args.quick else args.rounds)
    write_table(cal, args.output)
    if args.json:
        an = cal.fit.analysis
        print(json.dumps({"output": str(args.output), "quick": cal.quick, "host": cal.run.as_dict(),
                          "rank": an.rank, "columns": list(an.names), "inseparable": [list(g) for g in an.groups],
                          "combined": list(an.combined), "separable": list(an.separable),
                          "unreached": list(an.unreached), "common_scale": cal.fit.s0,
                          "residuals": dict(zip((w.key for w in cal.workloads), cal.fit.residuals)),
                          "equations": {w.key: {n: float(c) for n, c in zip((e.name for e in cal.table.entries), row)
                                                if c} for w, row in zip(cal.workloads, cal.a)},
                          "table": {e.name: {"ns": e.ns, "kind": e.kind} for e in cal.table.entries}}, indent=2))
        return 0
    report(cal, console, args.output)
    return 0
