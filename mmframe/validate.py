"""``mmframe validate``: predict the held-out host workloads with a fitted table and measure them.

With the table ``mmframe calibrate`` wrote, every workload of the held-out set (fixed by the
validation issue; see :data:`mmframe.calibrate.HELD_OUT`) is counted in the model and priced, and
measured on the host in the same run: predicted, measured and their ratio side by side, with what
each prediction rests on (an entry the fit set determined, one known only as part of a fitted
sum, or one no fitted workload counts).  Then the default 2002 table's predictions beside the
published 2.5 figures, every fitted entry marked, and what would have to change to meet them.

Also registers the ``calibrate`` and ``validate`` subcommands (:func:`add_subcommands`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs
import numpy as np

from mmframe.calibrate import FIT_SET, HELD_OUT, cmd_calibrate, quick
from mmframe.costs import CostTable
from mmframe.errors import UsageError
from mmframe.host.harness import HostRun, Workload, parse_cap, run_host
from mmframe.host.model import model_counts

MiB = 1 << 20
TARGET = 0.25  # the target: each held-out ratio within 25%


@attrs.frozen(slots=True)
class Row:
    workload: Workload
    predicted_ns: float
    measured_ns: float | None
    spread: float | None
    n: int
    basis: tuple[tuple[str, float, str], ...]  # (entry, share of the prediction, how it was set)
    skipped: str = ""
    drift: float = 1.0  # largest over smallest round median on the host

    @property
    def ratio(self) -> float | None:
        return self.predicted_ns / self.measured_ns if self.measured_ns else None


def load_table(path: str | Path) -> tuple[CostTable, dict[str, Any]]:
    """The default table overridden by a calibrated cost file, and the file's [meta]."""
    import tomllib

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such cost table (run `mmframe calibrate -o {path}` first)")
    t = CostTable.default()
    t.override(p)
    meta = tomllib.loads(p.read_text(encoding="utf-8")).get("meta", {})
    return t, meta


def status_of(table: CostTable, meta: Mapping[str, Any]) -> dict[str, str]:
    """How each entry was set: ``fit`` (determined on its own), ``sum`` (part of a fitted sum or
    combination), ``scaled`` (not counted by the fit set), ``2002`` (not a host-fitted entry)."""
    groups = {n for g in meta.get("inseparable", []) for n in g} | set(meta.get("combined", []))
    out = {}
    for e in table.entries:
        if e.kind == "fitted" and "host fit set" in e.fitted_to:
            out[e.name] = "sum" if e.name in groups else "fit"
        elif e.name in meta.get("unreached", []):
            out[e.name] = "scaled"
        else:
            out[e.name] = "2002"
    return out


def predict(workloads: Sequence[Workload], table: CostTable, run: HostRun, status: Mapping[str, str]) -> list[Row]:
    ns = dict(zip((e.name for e in table.entries), table.ns))
    rows = []
    for w in workloads:
        m = run.measurements.get(w.key)
        if m is None:
            rows.append(Row(w, float("nan"), None, None, 0, (), run.skipped.get(w.key, "not measured")))
            continue
        counts = model_counts(w, m.shape)
        parts = {k: c * ns[k] for k, c in counts.items() if c * ns[k]}
        total = sum(parts.values())
        basis = tuple(sorted(((k, v / total, status.get(k, "?")) for k, v in parts.items()), key=lambda x: -x[1]))
        rows.append(Row(w, total, m.median, m.spread, len(m.samples), basis, "", m.drift))
    return rows


# --- the 2002 table against the published 2.5 figures ----------------------------------------
#: Published 2.5 figures (ms), their sources, and the cost entries fitted to them (empty: none).
PUBLISHED = (
    ("fork 40MiB", 28.4, "McCracken, 2.5.41, 40 MB shared memory, machine unknown (LKML 'shared page tables "
     "timing', Oct 2002; shpte thread, Message-ID 45850000.1033570655@baldur.austin.ibm.com)", ()),
    ("fork+exit 40MiB", 44.2, "McCracken, 2.5.41 (as above)", ()),
    ("fork+exec+exit 40MiB", 49.3, "McCracken, 2.5.41 (as above)", ()),
    ("lmbench fork proc", 0.274, "lmbench 'fork proc' 274-337 us, 2.5.54-mm2, P-III 790 MHz (LKML, "
     "reference id 8419967090)", ("copy_process", "exit_process")),
    ("lmbench exec proc", 1.211, "lmbench 'exec proc' 1211-1232 us, same run", ("copy_process", "exit_process",
                                                                              "exec_process")),
)


def _count_2002(size: int, shared_task: bool = True) -> dict[str, dict[str, float]]:
    """Counts of fork, fork+exit and fork+exec+exit as fork-scaling runs them (the default
    machine, mainline): McCracken's test; ``size`` 0 is a small task (lmbench's fork/exec proc)."""
    from mmframe.config import load_config
    from mmframe.machine import Machine
    from mmframe.workloads import fork_scaling as fs

    cfg = load_config(use_pyproject=False, env={})
    cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=4 << 30, costs=""))
    m = Machine(cfg)
    snaps: dict[str, dict[str, int]] = {}
    first: list[str] = []

    def mark(task: Any, name: str) -> int:
        if not first:
            first.append(task.lineage)
        snaps[name] = m.acct.totals(task=first[0] if name == "forked" else None)
        if name == "before":
            snaps["before parent"] = m.acct.totals(task=first[0])
        return 0

    m.sched.handlers["mark"] = mark
    m.run(fs.fork_program, size) if size else m.run(_small_program)
    m.close()

    def diff(a: str, b: str) -> dict[str, float]:
        x, y = snaps[a], snaps[b]
        d = {k: y.get(k, 0) - x.get(k, 0) for k in set(x) | set(y)}
        d["syscall"] = d.get("syscall", 0) - 1  # the closing mark
        return {k: v for k, v in d.items() if v}

    return {"fork": diff("before parent", "forked"), "fork_exit": diff("before", "reaped"),
            "fork_exec_exit": diff("reaped", "exec_reaped")}


def _small_program(ctx: Any) -> Any:
    from mmframe.usr import fork, wait
    from mmframe.workloads import fork_scaling as fs

    pid = yield fork(fs._exec_quit)  # warm the binary, as fork-scaling does
    yield wait(pid)
    yield ("mark", "before")
    pid = yield fork(fs._quit)
    yield ("mark", "forked")
    yield wait(pid)
    yield ("mark", "reaped")
    pid = yield fork(fs._exec_quit)
    yield wait(pid)
    yield ("mark", "exec_reaped")


def published_comparison() -> list[dict[str, Any]]:
    """The 2002 table's predictions beside the published figures; for each, the entries whose
    count grows with the resident size and the factor on them that would meet the figure."""
    t = CostTable.default()
    ns = dict(zip((e.name for e in t.entries), t.ns))
    big, small, tiny = _count_2002(40 * MiB), _count_2002(4 * MiB), _count_2002(0)
    out = []
    for key, fig, source, fitted in PUBLISHED:
        if key.startswith("lmbench"):
            counts = tiny["fork_exit" if "fork" in key else "fork_exec_exit"]
            grow: dict[str, float] = {}
        else:
            kind = {"fork 40MiB": "fork", "fork+exit 40MiB": "fork_exit", "fork+exec+exit 40MiB": "fork_exec_exit"}[key]
            counts = big[kind]
            grow = {k: c for k, c in counts.items() if c > small[kind].get(k, 0) * 1.5 and c >= 512}
        pred = sum(c * ns[k] for k, c in counts.items()) / 1e6
        per_page = sum(c * ns[k] for k, c in grow.items()) / 1e6
        fixed = pred - per_page
        need = (fig - fixed) / per_page if per_page else None
        marks = sorted(k for k in counts if t[k].kind == "fitted")
        out.append({"figure": key, "published_ms": fig, "predicted_ms": pred, "ratio": pred / fig, "source": source,
                    "fitted_to_this": list(fitted), "fitted_entries_used": marks,
                    "per_page_entries": {k: ns[k] for k in sorted(grow)},
                    "per_page_ns": per_page * 1e6 / (40 * MiB // 4096) if per_page else None,
                    "factor_to_meet": need})
    return out


# --- output -----------------------------------------------------------------------------------
def _ms(ns: float | None, w: Workload) -> str:
    if ns is None or ns != ns:
        return "-"
    return f"{ns / 1e3:.3f} us" if w.unit == "us" else f"{ns / 1e6:.3f} ms"


def _basis(row: Row, k: int = 3) -> str:
    return ", ".join(f"{n}({s}) {share:.0%}" for n, share, s in row.basis[:k])


def why(row: Row, fit_rows: Sequence[Row], run: HostRun) -> str:
    """Why a held-out row misses, mechanically: where the fit set counts the entry it rests on most."""
    top, share, how = row.basis[0]
    if how == "scaled":
        return f"{share:.0%} of it is {top}, which no fitted workload counts: the 2002 figure times the common scale"
    carriers = [f.workload.key for f in fit_rows if f.workload.key in run.measurements
                and model_counts(f.workload, run.measurements[f.workload.key].shape).get(top)]
    if not carriers:
        return f"{share:.0%} of it is {top}"
    return (f"{share:.0%} of it is {top}, which the fit set counts only inside {', '.join(carriers)}, always with "
            f"other entries: the fit knows their sum there, not {top}'s share, which stays near the 2002 proportions")


def print_report(rows: list[Row], fit_rows: list[Row], run: HostRun, meta: Mapping[str, Any], path: str,
                 published: list[dict[str, Any]], console: Any, quick_run: bool, again: list[Row] = ()) -> None:
    from rich.table import Table

    h = run.host
    console.print(f"[bold]mmframe validate[/bold] with {path} (fitted on {meta.get('host', '?')}, "
                  f"{meta.get('date', '?')}); measured now on {h['host']}: {h['kernel']}; {h['cpu']} x{h['cpus']}",
                  soft_wrap=True)
    if meta.get("extended"):
        console.print("[yellow]this table was fitted on an EXTENDED fit set (calibrate --extend): a finding about "
                      "what the issue's fit set leaves out, not the issue's validation[/yellow]")
    if quick_run or meta.get("quick"):
        console.print("[yellow]--quick or a quick table: sizes / 16, three repeats - a smoke run, NOT the fixed "
                      "held-out set[/yellow]")
    console.print(f"memory cap {run.cap >> 20} MiB; runner peak {run.peak_over_baseline / MiB:.1f} MiB above its "
                  f"{run.baseline_rss / MiB:.1f} MiB baseline; pinned to CPU {run.cpu}{', SCHED_FIFO' if run.rt else ''}; "
                  f"model: PAE, HIGHPTE off, "
                  f"1 CPU, mainline (no policy)", soft_wrap=True)
    t = Table(title="held-out set: predicted by the fitted table, measured on the host")
    for col in ("workload", "predicted", "measured", "spread", "drift", "n", "pred/meas", "rests on (fit/sum/scaled)"):
        t.add_column(col, justify="left" if col in ("workload", "rests on (fit/sum/scaled)") else "right")
    for r in rows:
        if r.skipped:
            t.add_row(r.workload.key, _ms(r.predicted_ns, r.workload), "-", "-", "-", "0", "-", f"skipped: {r.skipped}")
            continue
        ok = abs(r.ratio - 1) <= TARGET
        t.add_row(r.workload.key, _ms(r.predicted_ns, r.workload), _ms(r.measured_ns, r.workload),
                  f"{r.spread:.0%}", f"{r.drift:.2f}", str(r.n), f"[{'green' if ok else 'red'}]{r.ratio:.2f}x[/]",
                  _basis(r))
    if fit_rows:
        t.add_section()
        for r in fit_rows:
            t.add_row(f"(fit) {r.workload.key}", _ms(r.predicted_ns, r.workload), _ms(r.measured_ns, r.workload),
                      f"{r.spread:.0%}", f"{r.drift:.2f}", str(r.n), f"{r.ratio:.2f}x", "fitted: not a prediction")
    console.print(t)
    got = [r for r in rows if r.ratio is not None]
    inside = sum(abs(r.ratio - 1) <= TARGET for r in got)
    fitted = [r.ratio for r in fit_rows if r.ratio]
    if fitted:
        g = float(np.exp(np.mean(np.log(fitted))))
        console.print(f"the table predicts its own fit set, measured again in this run, at {g:.2f}x (geometric "
                      f"mean): {'the host held its speed' if abs(g - 1) <= 0.1 else 'the host ran at another speed than when the table was fitted; --refit takes that out'}",
                      soft_wrap=True)
    for r in got:
        if abs(r.ratio - 1) > TARGET and r.basis:
            console.print(f"  {r.workload.key} {r.ratio:.2f}x: {why(r, fit_rows, run)}", soft_wrap=True, markup=False)
    console.print(f"{inside} of {len(got)} held-out rows within {TARGET:.0%} of the host "
                  f"(geometric mean ratio {float(np.exp(np.mean([np.log(r.ratio) for r in got]))):.2f}x)"
                  if got else "no held-out row was measured", soft_wrap=True)
    if again:
        t = Table(title="held-out set again, predicted by the same fit made on this run's fit-set measurements "
                        "(--refit: the host's drift between runs taken out)")
        for col in ("workload", "predicted", "measured", "pred/meas", "rests on"):
            t.add_column(col, justify="left" if col in ("workload", "rests on") else "right")
        for r in again:
            if r.ratio is None:
                continue
            ok = abs(r.ratio - 1) <= TARGET
            t.add_row(r.workload.key, _ms(r.predicted_ns, r.workload), _ms(r.measured_ns, r.workload),
                      f"[{'green' if ok else 'red'}]{r.ratio:.2f}x[/]", _basis(r))
        console.print(t)
        got2 = [r for r in again if r.ratio is not None]
        console.print(f"same-run fit: {sum(abs(r.ratio - 1) <= TARGET for r in got2)} of {len(got2)} held-out rows "
                      f"within {TARGET:.0%} (geometric mean ratio "
                      f"{float(np.exp(np.mean([np.log(r.ratio) for r in got2]))):.2f}x)", soft_wrap=True)
    console.print("drift: the largest over the smallest median of the interleaved rounds (1.00: the host held still)",
                  style="dim", soft_wrap=True)
    console.print("(fit) an entry the fit set determined on its own; (sum) known only as part of a fitted sum "
                  "or combination (its split is not measured); (scaled) no fitted workload counts it: "
                  "the 2002 figure times the fit's common scale", style="dim", soft_wrap=True, markup=False)
    if not published:
        return
    t = Table(title="the default 2002 table beside the published 2.5 figures (* fitted entry)")
    for col in ("figure", "2002 model", "published", "model/published", "fitted entries used"):
        t.add_column(col, justify="left" if col in ("figure", "fitted entries used") else "right")
    for p in published:
        t.add_row(p["figure"], f"{p['predicted_ms']:.3f} ms", f"{p['published_ms']:.3f} ms", f"{p['ratio']:.2f}x",
                  ", ".join(f"{e}*" for e in p["fitted_entries_used"]) or "none")
    console.print(t)
    for p in published:
        if p["fitted_to_this"]:
            console.print(f"  {p['figure']}: {', '.join(p['fitted_to_this'])} fitted to it - a check of the "
                          "arithmetic, not a validation", soft_wrap=True)
        elif p["factor_to_meet"] is not None:
            console.print(f"  {p['figure']}: to meet it with every other entry as it is, the entries counted once "
                          f"per resident page ({', '.join(f'{k} {v:g}' for k, v in p['per_page_entries'].items())}; "
                          f"{p['per_page_ns']:.0f} ns a page) would all have to be x{p['factor_to_meet']:.2f}",
                          soft_wrap=True)
    if published:
        console.print("  (findings, not a refit: the 2002 table is unchanged; McCracken's machine is unknown - its "
                      "400 KiB fork took 1.7 ms)", soft_wrap=True)


def plot(rows: list[Row], path: str, again: Sequence[Row] = ()) -> None:
    """Predicted against measured, log-log, one point per held-out row (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None
    got = [r for r in rows if r.ratio is not None]
    fig, ax = plt.subplots(figsize=(7, 6))
    xs = [r.measured_ns / 1e6 for r in got]
    ys = [r.predicted_ns / 1e6 for r in got]
    ax.scatter(xs, ys, label="the table's prediction")
    more = [r for r in again if r.ratio is not None]
    if more:
        ax.scatter([r.measured_ns / 1e6 for r in more], [r.predicted_ns / 1e6 for r in more], marker="x",
                   label="the same fit on this run's fit set (--refit)")
        ys = ys + [r.predicted_ns / 1e6 for r in more]
    for r, x, y in zip(got, xs, ys):
        ax.annotate(r.workload.key, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo, hi = min(xs + ys) / 2, max(xs + ys) * 2
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="predicted = measured")
    ax.fill_between([lo, hi], [lo * (1 - TARGET), hi * (1 - TARGET)], [lo * (1 + TARGET), hi * (1 + TARGET)],
                    alpha=0.15, label=f"within {TARGET:.0%}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured on the host (ms)")
    ax.set_ylabel("predicted by the model with the fitted table (ms)")
    ax.set_title("mmframe validate: held-out set")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def refit_rows(held: Sequence[Workload], fits: Sequence[Workload], run: HostRun, quick_run: bool) -> list[Row]:
    """The held-out set predicted by the same fit (same fit set, same method) made on the fit-set
    measurements of this very run: what is left once the host's drift between runs is out."""
    from mmframe.calibrate import calibrate

    cal = calibrate(fits, run=run, quick_run=quick_run)
    an = cal.fit.analysis
    meta = {"inseparable": [list(g) for g in an.groups], "combined": list(an.combined),
            "unreached": list(an.unreached)}
    return predict(held, cal.table, run, status_of(cal.table, meta))


def validate(path: str, *, cap: int | None = None, progress: bool = True, quick_run: bool = False,
             with_fit: bool = True, rt: bool = False, refit: bool = False, rounds: int = 5
             ) -> tuple[list[Row], list[Row], HostRun, dict[str, Any], list[Row]]:
    table, meta = load_table(path)
    held = quick(HELD_OUT) if quick_run else HELD_OUT
    fits: Sequence[Workload] = ()
    if with_fit:  # the table's own fit set, measured again beside the held-out one
        fits = tuple(Workload(k, int(sz), int(r)) for k, sz, r in meta["fit_workloads"]) \
            if meta.get("fit_workloads") else FIT_SET
        fits = quick(fits) if quick_run and not meta.get("quick") else fits
    run = run_host([*held, *fits], cap, progress=progress, rt=rt, rounds=rounds)
    status = status_of(table, meta)
    again = refit_rows(held, fits, run, quick_run or bool(meta.get("quick"))) if refit and fits else []
    return predict(held, table, run, status), predict(fits, table, run, status), run, meta, again


def cmd_validate(args: argparse.Namespace, console: Any) -> int:
    if args.plot is not None:  # fail before measuring anything
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None
    cap = parse_cap(args.cap)
    rows, fit_rows, run, meta, again = validate(args.table, cap=cap, progress=not args.json, quick_run=args.quick,
                                                rt=args.rt, refit=args.refit,
                                                rounds=1 if args.quick else args.rounds)
    published = [] if args.no_published else published_comparison()
    if args.plot is not None:
        plot(rows, args.plot, again)
    if args.json:
        def enc(r: Row) -> dict[str, Any]:
            return {"workload": r.workload.key, "kind": r.workload.kind, "size": r.workload.size,
                    "predicted_ns": r.predicted_ns, "measured_ns": r.measured_ns, "ratio": r.ratio,
                    "spread": r.spread, "drift": r.drift, "n": r.n, "skipped": r.skipped,
                    "basis": [{"entry": n, "share": s, "set_by": how} for n, s, how in r.basis]}
        print(json.dumps({"table": args.table, "table_meta": meta, "quick": args.quick, "target": TARGET,
                          "held_out": [enc(r) for r in rows], "fit_set": [enc(r) for r in fit_rows],
                          "held_out_same_run_fit": [enc(r) for r in again],
                          "host": run.as_dict(), "published_2002": published}, indent=2, default=str))
        return 0
    print_report(rows, fit_rows, run, meta, args.table, published, console, args.quick, again)
    if args.plot is not None:
        console.print(f"wrote {args.plot}")
    return 0


def add_subcommands(sub: Any) -> dict[str, Any]:
    """Register ``calibrate`` and ``validate`` on the CLI's subparsers; their command functions."""
    cp = sub.add_parser("calibrate", help="measure the host kernel on the fit set and fit a cost table to it")
    cp.add_argument("-o", "--output", default="host.toml", help="cost file to write (default host.toml)")
    vp = sub.add_parser("validate", help="predict the held-out host workloads with a fitted table, measure them")
    vp.add_argument("table", nargs="?", default="host.toml", help="the cost file calibrate wrote (default host.toml)")
    vp.add_argument("--plot", nargs="?", const="validate.png", default=None, metavar="FILE",
                    help="also draw predicted against measured (needs matplotlib; default validate.png)")
    vp.add_argument("--refit", action="store_true", help="also predict with the same fit made on this run's own "
                    "fit-set measurements (takes the host's drift between runs out)")
    vp.add_argument("--no-published", action="store_true", help="skip the 2002 table against the 2.5 figures")
    for p in (cp, vp):
        p.add_argument("--cap", default=None, help="memory cap of the host runner (default: half the available "
                       "memory, at most 3GiB)")
        p.add_argument("--quick", action="store_true", help="smoke run: sizes / 16, three repeats (not the fixed sets)")
        p.add_argument("--json", action="store_true", help="print data as JSON")
        p.add_argument("--rounds", type=int, default=5, help="interleave the workloads in this many rounds, "
                       "their repeats shared out (default 5; the host's speed drifts during a run)")
        p.add_argument("--rt", action="store_true", help="run the host runner SCHED_FIFO (needs the privilege; "
                       "keeps other users' load out of the figures)")
    cp.add_argument("--extend", action="store_true", help="also fit read faults, munmap, mprotect and fork+exec+exit "
                    "at sizes the held-out set does not use (a finding: NOT the issue's fit set)")
    return {"calibrate": cmd_calibrate, "validate": cmd_validate}
