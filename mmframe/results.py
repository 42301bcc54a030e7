"""Result records of runs and everything that shows them: tables, JSON, CSV.

A *record* is the plain-data outcome of one run (one scenario under one combination of policies,
elevator, seed and settings): its job, figures, counters, the programs' outcomes and the manifest.
Records are JSON-ready dicts, so a run made in another process or on another host gives the same
bytes; every renderer here reads only records and the scenario's declared figures
(:class:`mmframe.scenario.Figure`), so a new scenario gets tables, JSON and CSV for free.

Series values are stored as ``[[x, y], ...]`` sorted by x; distributions as lists of samples.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Iterable, Mapping, Sequence

import attrs
from rich import box
from rich.console import Console
from rich.table import Table

from mmframe import __version__
from mmframe.scenario import RATIO_KINDS, Figure, Scenario, summarize_outcomes
from mmframe.units import format_size

SCHEMA = "mmframe.results/1"
TABLE_WIDTH = 100
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("max", 100.0))
MAX_TABLE_POINTS = 12


# --- values ----------------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """A figure value as stored in a record: numbers, series as sorted [x, y] pairs, sample lists."""
    if isinstance(value, Mapping):
        return [[jsonable(x), jsonable(y)] for x, y in sorted(value.items(), key=lambda kv: _sort_key(kv[0]))]
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    try:  # numpy scalars
        return value.item()
    except AttributeError:
        return str(value)


def _sort_key(x: Any) -> tuple[int, Any]:
    return (0, x) if isinstance(x, (int, float)) else (1, str(x))


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``samples``; ``nan`` when empty."""
    if not samples:
        return math.nan
    s = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(s)))
    return float(s[rank - 1])


def figure_of(scen: Scenario | None, key: str) -> Figure:
    """The declared figure, or a plain one for a key the scenario did not declare (a plugin's)."""
    f = scen.figure(key) if scen is not None else None
    return f if f is not None else Figure(key, key, "", "count" if "." in key else "value")


def figure_meta(f: Figure) -> dict[str, Any]:
    return {"label": f.label, "unit": f.unit, "kind": f.kind, "axis": f.axis or None}


def scenario_meta(scen: Scenario) -> dict[str, Any]:
    """What a results file says about a scenario: its figures, axes, plot and references."""
    return {"help": scen.help, "models": scen.models, "sources": list(scen.sources),
            "figures": {f.key: figure_meta(f) for f in scen.figures},
            "axes": {a.name: {"label": a.label, "unit": a.unit, "log": a.log} for a in scen.axes},
            "references": [{"figure": r.figure, "at": r.at, "value": r.value, "source": r.source,
                            "requires": list(r.requires), "excludes": list(r.excludes)}
                           for r in scen.references]}


# --- formatting ------------------------------------------------------------------------------

def fmt_number(v: Any) -> str:
    """About four significant digits, thousands separated; integers exact."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}"
        if abs(v) >= 10_000:
            return f"{v:,.0f}"
        return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.2e}"
    return str(v)


def fmt_ratio(r: float) -> str:
    if math.isnan(r) or math.isinf(r):
        return ""
    if r >= 100:
        return f"×{r:,.0f}"
    return f"×{r:.2g}" if r < 1 else f"×{r:.3g}"


def fmt_x(x: Any, unit: str) -> str:
    if unit == "B" and isinstance(x, int):
        return format_size(x)
    return fmt_number(x) + (f" {unit}" if unit and not isinstance(x, str) else "")


def header(label: str, unit: str) -> str:
    return f"{label} ({unit})" if unit else label


# --- aggregation -----------------------------------------------------------------------------

@attrs.frozen(slots=True)
class Column:
    """One column of a results table: a figure (or one statistic of a distribution)."""

    key: str
    stat: str  # "" for a number or series point; p50/p99/max for a distribution
    title: str
    unit: str
    ratio: bool


def _scalar(value: Any, stat: str) -> float | None:
    if value is None:
        return None
    if stat:
        return percentile(value, dict(PERCENTILES)[stat]) if isinstance(value, list) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _mean(values: list[float]) -> tuple[float | None, float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, 0.0
    mean = sum(vals) / len(vals)
    if all(isinstance(v, int) for v in vals) and mean == int(mean):
        mean = int(mean)
    return mean, (max(vals) - min(vals)) / 2


@attrs.frozen(slots=True)
class Group:
    """Runs of one combination (every seed): label and records, in sweep order."""

    label: str
    records: tuple[Mapping[str, Any], ...]


def baseline(g: Group, groups: Sequence[Group]) -> Group:
    """The group ``g`` is compared with: the first combination with the same settings (grid values),
    i.e. the mainline-default run at the same grid point when the sweep has one."""
    grid = json.dumps(g.records[0]["job"].get("grid", {}), sort_keys=True)
    for other in groups:
        if json.dumps(other.records[0]["job"].get("grid", {}), sort_keys=True) == grid:
            return other
    return groups[0]


def group_runs(records: Iterable[Mapping[str, Any]]) -> list[Group]:
    """Successful records grouped by combination label (seeds together), in first-seen order."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if r.get("status") == "ok":
            groups.setdefault(r["job"]["label"], []).append(r)
    return [Group(k, tuple(v)) for k, v in groups.items()]


def _series_value(value: Any, x: Any) -> Any:
    if isinstance(value, list):
        for px, py in value:
            if px == x:
                return py
    return None


# --- tables ----------------------------------------------------------------------------------

def results_tables(scen: Scenario, records: Sequence[Mapping[str, Any]], *, timings: bool = False,
                   width: int = TABLE_WIDTH) -> list[Table]:
    """The tables of one scenario's runs: per axis (rows x, combination), then scalar figures and
    distributions (rows combination); columns are figures with units in the header; a cell is the
    mean over seeds (± half the range when seeds differ) and its ratio to the first combination
    (the mainline-default run when the sweep has one).  Split so each table fits ``width``."""
    groups = group_runs(records)
    if not groups:
        return []
    keys: list[str] = []
    for g in groups:
        for r in g.records:
            for k in r["figures"]:
                if k not in keys:
                    keys.append(k)
    declared = [f.key for f in scen.figures if f.key in keys]
    keys = declared + [k for k in keys if k not in declared]
    figs = [figure_of(scen, k) for k in keys if timings or figure_of(scen, k).kind != "host"]
    tables: list[Table] = []
    by_axis: dict[str, list[Figure]] = {}
    for f in figs:
        if f.axis:
            by_axis.setdefault(f.axis, []).append(f)
    for axis_name, afigs in by_axis.items():
        axis = scen.axis(axis_name)
        xs: list[Any] = []
        for g in groups:
            for r in g.records:
                for f in afigs:
                    for x, _ in r["figures"].get(f.key) or []:
                        if x not in xs:
                            xs.append(x)
        xs.sort(key=_sort_key)
        note = ""
        if len(xs) > MAX_TABLE_POINTS:  # long series: every n-th point and the last (all in JSON/CSV/plot)
            step = -(-len(xs) // MAX_TABLE_POINTS)
            note = f", one row in {step} of {len(xs)} (all in --json, --csv, --plot)"
            xs = xs[::step] + ([xs[-1]] if (len(xs) - 1) % step else [])
        cols = [Column(f.key, "", header(f.label, f.unit), f.unit, f.kind in RATIO_KINDS) for f in afigs]
        rows = []
        for x in xs:
            for g in groups:
                cells = [_cell(c, g, baseline(g, groups), lambda r, c=c: _series_value(r["figures"].get(c.key), x),
                               len(groups)) for c in cols]
                rows.append(([fmt_x(x, axis.unit if axis else ""), g.label], cells))
        tables += _pack([axis.label if axis else axis_name, "combination"], cols, rows, width,
                        title=f"{scen.name}: by {axis.label if axis else axis_name}{note}")
    scalar_cols = []
    for f in figs:
        if f.axis:
            continue
        if f.kind == "distribution":
            scalar_cols += [Column(f.key, s, header(f"{f.label} {s}", f.unit), f.unit, True) for s, _ in PERCENTILES]
        else:
            scalar_cols.append(Column(f.key, "", header(f.label, f.unit), f.unit, f.kind in RATIO_KINDS))
    if timings:
        scalar_cols.append(Column("", "wall", "run wall time (s)", "s", False))
    if scalar_cols:
        rows = []
        for g in groups:
            cells = [_cell(c, g, baseline(g, groups), lambda r, c=c: r.get("wall_s") if c.stat == "wall"
                           else _scalar(r["figures"].get(c.key), c.stat), len(groups)) for c in scalar_cols]
            rows.append(([g.label], cells))
        tables += _pack(["combination"], scalar_cols, rows, width, title=scen.name)
    return tables


def _cell(col: Column, g: Group, base: Group, get: Any, ngroups: int) -> str:
    texts = [r["figures"].get(col.key) for r in g.records] if not col.stat else []
    if texts and all(isinstance(t, str) for t in texts):  # a figure that is text ("nothing", a list)
        return " | ".join(dict.fromkeys(texts))
    mean, spread = _mean([get(r) for r in g.records])
    text = fmt_number(mean)
    if mean is not None and spread:
        text += f" ±{fmt_number(spread)}"
    if col.ratio and g is not base and mean is not None:
        bmean, _ = _mean([get(r) for r in base.records])
        if bmean:
            text += " " + fmt_ratio(mean / bmean)
    return text


def _pack(keys: list[str], cols: list[Column], rows: list[tuple[list[str], list[str]]], width: int,
          title: str) -> list[Table]:
    """Greedy column packing: key columns repeated in each table, figure columns while the table,
    rendered ``width`` wide, shows every cell whole (cells never wrap; headers wrap at words)."""
    def build(chunk: list[int], name: str) -> Table:
        t = Table(title=name, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
        for i, k in enumerate(keys):
            t.add_column(k, no_wrap=True)
        for i in chunk:
            t.add_column(cols[i].title, justify="right")
        for keyvals, cells in rows:
            t.add_row(*keyvals, *(cells[i] for i in chunk))
        return t

    def fits(chunk: list[int]) -> bool:
        buf = io.StringIO()
        Console(width=width, file=buf, color_system=None).print(build(chunk, title))
        lines = buf.getvalue().splitlines()
        body = lines[-len(rows):] if rows else []
        return all(all(c in line for c in (*kv, *(cells[i] for i in chunk)))
                   for line, (kv, cells) in zip(body, rows)) and all(
            w in buf.getvalue() for i in chunk for w in cols[i].title.split())

    chunks: list[list[int]] = [[]]
    for i in range(len(cols)):
        trial = chunks[-1] + [i]
        if chunks[-1] and not fits(trial):
            chunks.append([i])
        else:
            chunks[-1] = trial
    n = len(chunks)
    return [build(c, title + (f" ({k + 1}/{n})" if n > 1 else "")) for k, c in enumerate(chunks)]


def reference_table(scen: Scenario, records: Sequence[Mapping[str, Any]]) -> Table | None:
    """Published figures next to the model's, as model / published (never fitted to)."""
    if not scen.references:
        return None
    t = Table(title=f"{scen.name}: the model against published figures", title_justify="left",
              box=box.SIMPLE_HEAD, show_edge=False)
    for name in ("combination", "figure", "model", "published", "model/published"):
        t.add_column(name, justify="right" if name not in ("combination", "figure") else "left")
    sources: list[str] = []
    for g in group_runs(records):
        enabled = g.records[0]["job"]["policies"]
        for ref in scen.references:
            if not ref.applies(enabled):
                continue
            f = figure_of(scen, ref.figure)
            mean, _ = _mean([_series_value(r["figures"].get(ref.figure), ref.at) if f.axis
                             else _scalar(r["figures"].get(ref.figure), "") for r in g.records])
            if mean is None:
                continue
            axis = scen.axis(f.axis) if f.axis else None
            where = f" at {fmt_x(ref.at, axis.unit if axis else '')}" if f.axis else ""
            if ref.source not in sources:
                sources.append(ref.source)
            t.add_row(g.label, f"{f.label}{where} [{sources.index(ref.source) + 1}]",
                      f"{fmt_number(mean)} {f.unit}".strip(), f"{fmt_number(ref.value)} {f.unit}".strip(),
                      fmt_ratio(mean / ref.value) if ref.value else "-")
    if not t.row_count:
        return None
    t.caption = "  ".join(f"[{i + 1}] {s}" for i, s in enumerate(sources))
    t.caption_justify = "left"
    return t


def outcome_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A readable summary of how the programs ended, per combination (and seed when they differ)."""
    groups = group_runs(records)
    n = sum(len(r["outcomes"]) for g in groups for r in g.records)
    if not n:
        return []  # a scenario that runs no program (its I/O is submitted directly)
    if all(o["how"] == "exited" and o["status"] == 0 for g in groups for r in g.records for o in r["outcomes"]):
        return [f"programs: every task exited 0 ({n} tasks in {sum(len(g.records) for g in groups)} runs)"]
    lines = ["programs:"]
    for g in groups:
        texts = [summarize_outcomes(list(r["outcomes"])) for r in g.records]
        if len(set(texts)) == 1:
            lines.append(f"  {g.label}: {texts[0]}")
        else:
            lines += [f"  {g.label}, seed {r['job']['seed']}: {t}" for r, t in zip(g.records, texts)]
    return lines


def failure_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"run {r['job']['index'] + 1} ({r['job']['label']}, seed {r['job']['seed']}) failed: "
            f"{r['error'].splitlines()[0]}"
            for r in records if r.get("status") != "ok"]


def render_text(scenarios: Mapping[str, Scenario], records: Sequence[Mapping[str, Any]], *,
                timings: bool = False, width: int = TABLE_WIDTH, notes: Sequence[str] = ()) -> str:
    """Everything ``mmframe run``/``compare`` print on stdout, as text ``width`` columns wide."""
    buf = io.StringIO()
    con = Console(file=buf, width=width, force_terminal=False, color_system=None, legacy_windows=False)
    by_scen: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        by_scen.setdefault(r["job"]["scenario"], []).append(r)
    for name, recs in by_scen.items():
        scen = scenarios[name]
        ok = [r for r in recs if r.get("status") == "ok"]
        con.print(f"{scen.name}: {scen.help}", soft_wrap=False, markup=False, highlight=False)
        if ok:
            m0 = ok[0]["manifest"]
            types = {o.name: o.type for o in scen.options}
            swept = {k.rsplit(".", 1)[-1] for r in ok for k in r["job"].get("grid", {})}
            params = ", ".join(f"{k}={_fmt_param(v, types.get(k, ''))}" for k, v in ok[0]["params"].items()
                               if k not in swept)
            ct = m0.get("cost_table") or {}
            con.print((f"cost table {ct.get('name')} ({ct.get('digest')}); " if ct else "")
                      + f"seeds {', '.join(sorted({str(r['job']['seed']) for r in ok}, key=int))}; {params}",
                      markup=False, highlight=False)
            groups = group_runs(ok)
            if len(groups) > 1:
                bases = list(dict.fromkeys(baseline(g, groups).label for g in groups))
                con.print(f"×: ratio to {bases[0]}" if len(bases) == 1 else
                          f"×: ratio to {groups[0].label.split(' / ')[0]} with the same settings",
                          markup=False, highlight=False)
        for t in results_tables(scen, recs, timings=timings, width=width):
            con.print(t)
        ref = reference_table(scen, recs)
        if ref is not None:
            con.print(ref)
        for line in outcome_lines(recs):
            con.print(line, soft_wrap=False, highlight=False, markup=False)
        for line in failure_lines(recs):
            con.print(line, soft_wrap=False, highlight=False, markup=False)
    for line in notes:
        con.print(line, soft_wrap=False, highlight=False, markup=False)
    return buf.getvalue()


def _fmt_param(v: Any, type_: str = "") -> str:
    """A scenario option's value as a user writes it: sizes as 4MiB, durations in ms."""
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_param(x, type_.removeprefix("list[").removesuffix("]")) for x in v) + "]"
    if type_ == "size" and isinstance(v, int):
        return format_size(v)
    if type_ == "duration" and isinstance(v, int):
        return f"{v / 1e6:g}ms"
    return str(v)


# --- JSON and CSV ----------------------------------------------------------------------------

def to_json(scenarios: Mapping[str, Scenario], records: Sequence[Mapping[str, Any]], *,
            sweep: Mapping[str, Any] | None = None, timings: bool = False) -> str:
    """The results file: schema, the scenarios' figure declarations, and every run's record (its
    job, status, params, figures with units, counters, outcomes and manifest).  Host-measured
    figures and wall times only with ``timings`` (they differ from run to run)."""
    used = list(dict.fromkeys(r["job"]["scenario"] for r in records))
    runs = []
    for r in records:
        scen = scenarios.get(r["job"]["scenario"])
        rr = dict(r)
        figures = {}
        for k, v in r.get("figures", {}).items():
            f = figure_of(scen, k)
            if f.kind == "host" and not timings:
                continue
            figures[k] = {**figure_meta(f), "value": v}
        rr["figures"] = figures
        if not timings:
            rr.pop("wall_s", None)
        runs.append(rr)
    doc = {"schema": SCHEMA, "mmframe": __version__, "sweep": dict(sweep or {}),
           "scenarios": {n: scenario_meta(scenarios[n]) for n in used if n in scenarios}, "runs": runs}
    return json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"


CSV_FIELDS = ("scenario", "combination", "policies", "elevator", "seed", "settings", "figure", "label", "unit",
              "kind", "x", "stat", "value", "ratio")


def to_csv(scenarios: Mapping[str, Scenario], records: Sequence[Mapping[str, Any]], *, timings: bool = False) -> str:
    """Long format: one row per run, figure, series point (x) or distribution statistic, with the
    ratio to the first combination's run of the same seed and settings."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    baselines: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    first_label = next((r["job"]["label"] for r in records if r.get("status") == "ok"), None)
    for r in records:
        j = r["job"]
        if r.get("status") == "ok" and j["label"] == first_label:
            baselines.setdefault((j["scenario"], j["seed"], json.dumps(j.get("grid", {}), sort_keys=True)), r)
    for r in records:
        if r.get("status") != "ok":
            continue
        j = r["job"]
        scen = scenarios.get(j["scenario"])
        base = baselines.get((j["scenario"], j["seed"], json.dumps(j.get("grid", {}), sort_keys=True)))
        for key, value in r["figures"].items():
            f = figure_of(scen, key)
            if f.kind == "host" and not timings:
                continue
            bval = base["figures"].get(key) if base is not None and base is not r else None
            for x, stat, v, b in _points(f, value, bval):
                ratio = ""
                if f.kind in RATIO_KINDS | {"distribution"} and isinstance(v, (int, float)) and isinstance(
                        b, (int, float)) and b and base is not r:
                    ratio = repr(v / b)
                w.writerow([j["scenario"], j["label"], "+".join(j["policies"]), j.get("elevator") or "",
                            j["seed"], json.dumps(j.get("grid", {}), sort_keys=True) if j.get("grid") else "",
                            key, f.label, f.unit, f.kind, "" if x is None else x, stat,
                            "" if v is None else repr(v) if isinstance(v, float) else v, ratio])
    return buf.getvalue()


def _points(f: Figure, value: Any, base: Any) -> list[tuple[Any, str, Any, Any]]:
    if f.kind == "distribution" and isinstance(value, list):
        out = [(None, "n", len(value), None)]
        for stat, q in PERCENTILES:
            out.append((None, stat, percentile(value, q), percentile(base, q) if isinstance(base, list) else None))
        return out
    if f.axis and isinstance(value, list):
        return [(x, "", y, _series_value(base, x)) for x, y in value]
    return [(None, "", value, base)]
