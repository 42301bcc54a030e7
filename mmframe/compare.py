"""``mmframe run`` and ``mmframe compare``: a scenario under every combination, side by side.

``run`` is the configured comparison (the config's policy sets, one seed); ``compare`` sweeps
``--matrix`` (every subset of the named plugins) or explicit ``--policy`` sets, ``--elevators``,
``--seeds`` and ``--set`` overrides.  Every combination is checked before anything runs, then runs
in parallel processes with progress on stderr; stdout gets the tables (or ``--json``/``--csv``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rich.console import Console

from mmframe.config import ENV_PLUGINS, Config, load_config, override_layer, parse_cli_plugins, user_layers
from mmframe.errors import ConfigError, UsageError
from mmframe.executors import EXECUTORS, require, run_sweep
from mmframe.results import SCHEMA, TABLE_WIDTH, render_text, to_csv, to_json
from mmframe.scenario import Scenario, all_scenarios
from mmframe.sweep import Job, Sweep, build_sweep, parse_set

Handler = Callable[[argparse.Namespace, Console], int]


# --- progress on stderr ------------------------------------------------------------------------

class ProgressReporter:
    """Runs done, running and failed, on stderr: a live bar on a terminal (one line per running
    job, with its own progress when the scenario reports it), plain lines otherwise."""

    def __init__(self, total: int, *, quiet: bool = False, stream: Any = None) -> None:
        self.total, self.quiet = total, quiet
        self.stream = stream if stream is not None else sys.stderr
        self.done = self.failed = self.started = 0
        self.running: dict[int, Any] = {}
        self.labels: dict[int, str] = {}
        self.t0 = time.monotonic()
        self.live = None
        self._last_line: dict[int, float] = {}
        if not quiet and getattr(self.stream, "isatty", lambda: False)():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self.live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(file=self.stream), transient=True)
            self.overall = self.live.add_task("runs", total=total)
            self.live.start()

    def _describe(self) -> str:
        running = max(0, self.started - self.done)
        return f"runs ({running} running" + (f", {self.failed} failed)" if self.failed else ")")

    def __call__(self, event: str, payload: Any) -> None:
        if event == "submit":  # a cluster took them all: "running" until done
            self.started = payload
        elif event == "start":
            self.started += 1
        if self.quiet:
            return
        if event == "submit":
            if self.live is not None:
                self.live.update(self.overall, description=self._describe())
            else:
                self._line(f"submitted {payload} runs")
        elif event == "start":
            job: Job = payload
            label = f"run {job.index + 1}/{self.total}: {job.scenario} {_job_text(job)}"
            self.labels[job.index] = label
            if self.live is not None:
                self.running[job.index] = self.live.add_task(f"  {label}", total=None)
                self.live.update(self.overall, description=self._describe())
            else:
                self._line(f"started {label}")
        elif event == "step":
            index, done, total = payload
            if self.live is not None and index in self.running:
                self.live.update(self.running[index], completed=done, total=total)
            elif self.live is None:
                now = time.monotonic()
                if now - self._last_line.get(index, self.t0) >= 10 and total:
                    self._last_line[index] = now
                    self._line(f"  {self.labels.get(index, index)}: {100 * done / total:.0f}%")
        elif event == "done":
            rec = payload
            index = rec["job"]["index"]
            self.done += 1
            ok = rec.get("status") == "ok"
            self.failed += not ok
            if self.live is not None:
                if index in self.running:
                    self.live.remove_task(self.running.pop(index))
                self.live.update(self.overall, completed=self.done, description=self._describe())
                if not ok:
                    self.live.console.print(f"run {index + 1} ({rec['job']['label']}) failed: "
                                            f"{rec['error'].splitlines()[0]}", markup=False, highlight=False)
            else:
                state = "done" if ok else f"FAILED: {rec['error'].splitlines()[0]}"
                self._line(f"[{self.done}/{self.total}] {rec['job']['label']} (seed {rec['job']['seed']}) {state}"
                           + (f" in {rec['wall_s']:.1f} s" if ok else ""))

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
        if not self.quiet:
            self._line(f"{self.done} runs in {time.monotonic() - self.t0:.1f} s"
                       + (f", {self.failed} failed" if self.failed else ""))


def _job_text(job: Job) -> str:
    return f"{job.label}, seed {job.seed}"


# --- the commands -----------------------------------------------------------------------------

def _selection(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    env = [t for t in os.environ.get(ENV_PLUGINS, "").split(",") if t.strip()]
    return [("env", env), ("cli", parse_cli_plugins(args.plugin))]


def _base(args: argparse.Namespace, settings: Mapping[str, Any]) -> tuple[Config, list[Any]]:
    extra = [override_layer(settings)] if settings else []
    load = partial(load_config, args.config, cli_plugins=parse_cli_plugins(args.plugin), extra_layers=extra)
    try:
        cfg = load()
    except ConfigError as exc:  # a value the [sweep] grid replaces is checked in each run's config
        if not (exc.key or "").startswith("scenario."):
            raise
        cfg = load(check_scenario=False)
        if exc.key not in cfg.sweep.grid:
            raise exc from None
    return cfg, [*user_layers(args.config), *extra]


def execute(args: argparse.Namespace, console: Console, sweep_of: Callable[[Config, list[Any]], Sweep]) -> int:
    settings = parse_set(getattr(args, "set", []) or [])
    if getattr(args, "program", None):
        file, sep, name = args.program.rpartition(":")
        if not sep or not file or not name:
            raise UsageError(f"--program {args.program!r}: expected FILE.py:NAME")
        settings.update({"scenario.name": "program", "scenario.file": str(Path(file).resolve()),
                         "scenario.entry": name})
    base, layers = _base(args, settings)
    sweep = sweep_of(base, layers)
    scenarios = {n: s for n, (s, _o) in all_scenarios(base.catalog).items()}
    for note in sweep.notes:
        print(f"mmframe: note: {note}", file=sys.stderr)
    if getattr(args, "dry_run", False):
        for job in sweep.jobs:
            print(f"{job.index}\t{job.scenario}\t{_job_text(job)}")
        return 0
    if args.plot:
        from mmframe.plot import _pyplot
        _pyplot()  # missing matplotlib is a usage error before anything runs
    executor = args.executor or base.sweep.executor
    address = args.address if args.address is not None else base.sweep.address
    workers = args.workers if args.workers is not None else (base.sweep.workers or None)
    require(executor)
    done: dict[str, dict[str, Any]] = {}
    resume = getattr(args, "resume", None)
    if resume:
        done = load_finished(resume, sweep, scenarios)
        if done:
            print(f"mmframe: resuming: {len(done)} of {len(sweep.jobs)} runs already in {resume}",
                  file=sys.stderr)
    todo = [j for j in sweep.jobs if j.key() not in done]
    checkpoint = Checkpoint(resume, scenarios, sweep, done) if resume else None
    progress = ProgressReporter(len(todo), quiet=args.quiet)
    try:
        fresh = run_sweep(todo, executor, address=address, workers=workers,
                          progress=checkpoint.wrap(progress) if checkpoint else progress)
    finally:
        progress.close()
    by_key = {**done, **{r["job"]["key"]: r for r in fresh}}
    records = [by_key[j.key()] for j in sweep.jobs]
    if checkpoint:
        checkpoint.save(records)
    return report(args, scenarios, records, sweep)


def load_finished(path: str, sweep: Sweep, scenarios: Mapping[str, Scenario]) -> dict[str, dict[str, Any]]:
    """Runs of ``sweep`` already finished in the results file ``path`` (missing: none), as records
    renumbered to this sweep; failed runs are run again."""
    import json

    p = Path(path)
    if not p.exists():
        return {}
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--resume {path}: not a results file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("runs"), list):
        raise UsageError(f"--resume {path}: not a results file (schema {SCHEMA})")
    wanted = {j.key(): j for j in sweep.jobs}
    out = {}
    for run in doc["runs"]:
        key = run.get("job", {}).get("key")
        if run.get("status") == "ok" and key in wanted:
            job = wanted[key]
            rec = dict(run, job={**run["job"], "index": job.index})
            rec["figures"] = {k: f["value"] if isinstance(f, dict) and "value" in f else f
                              for k, f in run.get("figures", {}).items()}
            out[key] = rec
    return out


class Checkpoint:
    """Keeps the ``--resume`` file current as runs finish, so an interrupted sweep resumes."""

    def __init__(self, path: str, scenarios: Mapping[str, Scenario], sweep: Sweep,
                 done: Mapping[str, dict[str, Any]]) -> None:
        self.path, self.scenarios, self.sweep = path, scenarios, sweep
        self.records = dict(done)

    def wrap(self, progress: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
        def on(event: str, payload: Any) -> None:
            if event == "done" and payload.get("status") == "ok":
                self.records[payload["job"]["key"]] = payload
                order = {j.key(): j.index for j in self.sweep.jobs}
                self.save(sorted(self.records.values(), key=lambda r: order[r["job"]["key"]]))
            progress(event, payload)
        return on

    def save(self, records: Sequence[Mapping[str, Any]]) -> None:
        tmp = Path(self.path + ".tmp")
        tmp.write_text(to_json(self.scenarios, records, sweep=self.sweep.description, timings=True),
                       encoding="utf-8")
        tmp.replace(self.path)


def report(args: argparse.Namespace, scenarios: Mapping[str, Scenario], records: Sequence[Mapping[str, Any]],
           sweep: Sweep) -> int:
    """Print and write the outputs; the exit status is that of the worst failed run (0 if none)."""
    out = {"json": args.json, "csv": args.csv}
    texts = {"json": lambda: to_json(scenarios, records, sweep=sweep.description, timings=args.timings),
             "csv": lambda: to_csv(scenarios, records, timings=args.timings)}
    to_stdout = [k for k, v in out.items() if v == "-"]
    if len(to_stdout) > 1:
        raise UsageError("--json and --csv cannot both go to stdout: give one of them a FILE")
    for kind, dest in out.items():
        if dest and dest != "-":
            Path(dest).write_text(texts[kind](), encoding="utf-8")
    if to_stdout:
        sys.stdout.write(texts[to_stdout[0]]())
    else:
        sys.stdout.write(render_text(scenarios, records, timings=args.timings, width=_width()))
    if args.plot:
        from mmframe.plot import make_figure, save_plot
        name = records[0]["job"]["scenario"] if records else sweep.scenario
        save_plot(make_figure(scenarios[name], records), args.plot)
        print(f"mmframe: wrote {args.plot}", file=sys.stderr)
    failed = [r for r in records if r.get("status") != "ok"]
    for r in failed:
        print(f"mmframe: run {r['job']['index'] + 1} ({r['job']['label']}, seed {r['job']['seed']}) failed: "
              f"{r['error']}", file=sys.stderr)
    return max((r.get("exit_code", 1) for r in failed), default=0)


def _width() -> int:
    """Tables fit 100 columns, or the terminal when it is narrower."""
    try:
        cols = os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else TABLE_WIDTH
    except (OSError, ValueError, AttributeError):
        cols = TABLE_WIDTH
    return max(40, min(cols, TABLE_WIDTH))


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    return execute(args, console, lambda base, layers: build_sweep(base, layers, _selection(args)))


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    def sweep_of(base: Config, layers: list[Any]) -> Sweep:
        sets = None
        if args.matrix and args.policy:
            raise UsageError("give --matrix or --policy, not both")
        if args.matrix:
            names = _names(args.matrix, "--matrix")
            base.catalog.require(names, "--matrix")
            from mmframe.sweep import matrix_sets
            sets = matrix_sets(names)
        elif args.policy:
            sets = [tuple(n for n in _names(p, "--policy", allow_empty=True) if n != "mainline")
                    for p in args.policy]
            base.catalog.require([n for s in sets for n in s], "--policy")
        elevators = _names(args.elevators, "--elevators") if args.elevators else None
        seeds = args.seeds if args.seeds is not None else base.sweep.seeds
        if seeds < 1:
            raise UsageError("--seeds must be at least 1")
        return build_sweep(base, layers, _selection(args), policy_sets=sets, elevators=elevators, seeds=seeds,
                           grid=base.sweep.grid)
    return execute(args, console, sweep_of)


def _names(text: str, flag: str, allow_empty: bool = False) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names and not allow_empty:
        raise UsageError(f"{flag} needs a comma-separated list of names")
    return names


def _outputs(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="every run's record (manifest, counters, figures with units) as JSON, to FILE or stdout")
    sp.add_argument("--csv", nargs="?", const="-", metavar="FILE",
                    help="figures in long format (one row per run, figure and point), to FILE or stdout")
    sp.add_argument("--plot", metavar="FILE.png", help="draw the scenario's picture (needs mmframe[plot])")
    sp.add_argument("--timings", action="store_true",
                    help="include host-measured figures (wall time, host memory): they vary run to run")
    sp.add_argument("--workers", type=int, default=None, metavar="N",
                    help="parallel processes or local cluster workers (default: one per CPU, at most one per run)")
    sp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sp.add_argument("--executor", choices=EXECUTORS, default=None,
                    help="local processes (default), a Dask or a Ray cluster (optional extras); [sweep] executor")
    sp.add_argument("--address", default=None, metavar="ADDR",
                    help="the cluster: tcp://HOST:8786 (Dask) or ray://HOST:10001 (Ray); none: a local cluster")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, e.g. scenario.children=8 or machine.cpus=4 (value as TOML)")


def register(sub: Any, common: Callable[..., None]) -> dict[str, Handler]:
    """Add ``run`` and ``compare`` to the CLI's subparsers (see :data:`mmframe.cli.COMMAND_MODULES`)."""
    rp = sub.add_parser("run", help="run the configured scenario under each policy set, side by side")
    common(rp, json=False)
    _outputs(rp)
    rp.add_argument("--program", metavar="FILE.py:NAME",
                    help="run your own program (a generator function) under the configured policy sets")
    cp = sub.add_parser("compare", help="every combination of policies, elevators and seeds, side by side")
    common(cp, json=False)
    _outputs(cp)
    cp.add_argument("--matrix", metavar="A,B,...", help="every subset of these plugins (mainline, each, pairs...)")
    cp.add_argument("--policy", action="append", metavar="A+B|A,B", type=lambda s: s.replace("+", ","),
                    help="one policy set (repeatable; 'mainline' or '' for none)")
    cp.add_argument("--elevators", metavar="E1,E2", help="run each combination under each elevator")
    cp.add_argument("--seeds", type=int, default=None, metavar="N",
                    help="seeds per combination, from [machine] seed on (default: [sweep] seeds, 1)")
    cp.add_argument("--resume", metavar="FILE",
                    help="a results file kept current as runs finish; runs already in it are not run again")
    cp.add_argument("--dry-run", action="store_true", help="check every combination and list the runs")
    return {"run": cmd_run, "compare": cmd_compare}
