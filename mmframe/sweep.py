"""Sweeps: every combination of policy sets, elevators, seeds and settings as small pure jobs.

A :class:`Job` is plain data (the config layers as parsed TOML, selection tokens, the combination):
:func:`run_job` rebuilds the config from it in whatever process runs it and returns the run's
*record* (:mod:`mmframe.results`), or a failed record naming the error -- a job never raises, so a
sweep goes on past a failure.  Jobs are numbered; results are gathered by number, so the output of a
sweep does not depend on which worker ran what, or when.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import traceback
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence

import attrs

from mmframe import config as config_module
from mmframe.config import DISK_OPTIONS, ENV_PLUGINS, Config, Layer, load_config, override_layer
from mmframe.errors import ConfigError, MmframeError, UsageError
from mmframe.plugin import CORE
from mmframe.results import jsonable
from mmframe.scenario import all_scenarios, policy_label, run_one


@attrs.frozen(slots=True)
class Job:
    """One run of a sweep, serialisable (pickle or JSON) and pure: the same job gives the same record."""

    index: int
    scenario: str
    policies: tuple[str, ...]  # plugins this combination enables on top of the config's
    elevator: str | None  # None: the config's own
    seed: int
    layers: tuple[Layer, ...]  # user layers: pyproject's [tool.mmframe], the config file, --set
    selection: tuple[tuple[str, tuple[str, ...]], ...]  # ("env"/"cli", tokens) above the layers
    grid: tuple[tuple[str, Any], ...] = ()  # dotted key -> value of this combination's settings
    disks: tuple[str, ...] = ()  # queues the elevator applies to
    label: str = ""  # the combination's name in tables (its enabled plugins, elevator, settings)

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"machine.seed": self.seed, **dict(self.grid)}
        if self.elevator is not None:
            for disk in self.disks:
                out[f"block.{disk}.elevator"] = self.elevator
        return out

    def key(self) -> str:
        """Identifies the run (for ``--resume``): everything that makes its result, the config's
        layers and plugin selection included (as a digest), so a changed config reruns."""
        layers = json.dumps([[layer.source, layer.doc] for layer in self.layers], sort_keys=True, default=str)
        digest = hashlib.sha256((layers + json.dumps(self.selection)).encode()).hexdigest()[:16]
        return json.dumps([self.scenario, list(self.policies), self.elevator, self.seed,
                           [[k, jsonable(v)] for k, v in self.grid], digest], sort_keys=True)

    def config(self) -> Config:
        env = {ENV_PLUGINS: ",".join(dict(self.selection).get("env", ()))}
        cfg = load_config(None, cli_plugins=dict(self.selection).get("cli", ()), env=env, use_pyproject=False,
                          extra_layers=(*self.layers, override_layer(self.settings(), "the sweep ([sweep] grid, --seeds, --elevators)")))
        return cfg.with_policies(self.policies)


def label_of(enabled: Sequence[str], elevator: str | None, grid: Sequence[tuple[str, Any]]) -> str:
    parts = [policy_label(enabled)]
    if elevator is not None:
        parts.append(elevator)
    parts += [f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in grid]
    return " / ".join(parts)


def _short(v: Any) -> str:
    from mmframe.units import format_size
    if isinstance(v, list):
        return "[" + ",".join(_short(x) for x in v) + "]"
    if isinstance(v, str):
        return v
    if isinstance(v, int) and v >= 1 << 20 and v % (1 << 20) == 0:
        return format_size(v)
    return str(v)


def run_job(job: Job, progress: Callable[[float, float], None] | None = None) -> dict[str, Any]:
    """Run one job; never raises: a failure is a record with ``status`` "failed" and the error."""
    head = job_head(job)
    try:
        cfg = job.config()
        head["policies"] = list(cfg.enabled)
        head["label"] = label_of(cfg.enabled, job.elevator, job.grid)
        col = run_one(cfg, progress)
    except Exception as exc:  # noqa: BLE001 - reported with the job, the sweep goes on
        from mmframe.sched import ProgramError  # a broken simulated program: its message says it all

        code = exc.exit_code if isinstance(exc, MmframeError) else 1
        text = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (MmframeError, ProgramError)):
            text += "\n" + "".join(traceback.format_exception(exc)[-3:]).rstrip()
        return {"job": head, "status": "failed", "error": text, "exit_code": code}
    return {"job": head, "status": "ok", "error": None,
            "params": {k: jsonable(v) for k, v in cfg.scenario.params.items()},
            "figures": {k: jsonable(v) for k, v in col.figures.items()},
            "counters": dict(sorted(col.counters.items())), "outcomes": [dict(o) for o in col.outcomes],
            "manifest": jsonable_manifest(col.manifest), "wall_s": col.wall_s}


def job_head(job: Job) -> dict[str, Any]:
    return {"index": job.index, "key": job.key(), "scenario": job.scenario, "label": job.label,
            "policies": list(job.policies), "elevator": job.elevator, "seed": job.seed,
            "grid": {k: jsonable(v) for k, v in job.grid}}


def failed_record(job: Job, exc: BaseException) -> dict[str, Any]:
    """The record of a job whose worker failed (died, or the executor lost it)."""
    return {"job": job_head(job), "status": "failed", "error": f"worker failed: {type(exc).__name__}: {exc}",
            "exit_code": 1}


def jsonable_manifest(m: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(m, default=str))


# --- building a sweep ----------------------------------------------------------------------------

@attrs.frozen(slots=True)
class Sweep:
    """The jobs of a sweep and what was decided while building them (notes for stderr)."""

    jobs: tuple[Job, ...]
    scenario: str
    notes: tuple[str, ...]
    description: Mapping[str, Any]


def matrix_sets(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Every subset of ``names``, smallest first (mainline, each alone, pairs, ..., all)."""
    return [c for n in range(len(names) + 1) for c in itertools.combinations(names, n)]


def build_sweep(base: Config, layers: Sequence[Layer], selection: Sequence[tuple[str, Sequence[str]]], *,
                policy_sets: Sequence[Sequence[str]] | None = None, elevators: Sequence[str] | None = None,
                seeds: int = 1, grid: Mapping[str, Sequence[Any]] | None = None) -> Sweep:
    """Every combination, checked before anything runs: unknown plugins and elevators, plugin
    conflicts, option values (config errors, exit 2) are found here, not after earlier runs."""
    cat = base.catalog
    notes = [f"policy set {list(s)} left out: {why}" for s, why in base.scenario.skipped]
    sets = [tuple(s) for s in (policy_sets if policy_sets is not None else base.scenario.policies)]
    for s in sets:
        cat.require(s, "policy set " + (str(list(s))))
    disks = tuple(d.name for d in base.disks) or (getattr(config_module, "DEFAULT_DISK", "sda"),)
    if elevators:
        elevs: list[str | None] = list(dict.fromkeys(elevators))
        default = base.disks[0].elevator if base.disks else DISK_OPTIONS[1].default
        if default in elevs:  # the mainline-default run first: it is what ratios are taken to
            elevs.remove(default)
            elevs.insert(0, default)
    else:
        elevs = [None]
    grid_items = [(k, list(v)) for k, v in (grid or {}).items()]
    grids = [tuple(zip([k for k, _ in grid_items], combo)) for combo in
             itertools.product(*[v for _, v in grid_items])] if grid_items else [()]
    sel = tuple((src, tuple(toks)) for src, toks in selection)
    jobs: list[Job] = []
    seen: dict[tuple[Any, ...], tuple[str, ...]] = {}
    checked: dict[tuple[Any, ...], Config] = {}
    first_seed = base.machine.seed
    for g in grids:
        for elev in elevs:
            for pset in sets:
                probe = Job(0, base.scenario.name, (*pset, *_elevator_owner(base, elev, pset)), elev, first_seed,
                            tuple(layers), sel, g, disks)
                cfg = _check(probe, checked, elev)
                ident = (cfg.enabled, elev, g)
                if ident in seen:
                    notes.append(f"policy set {list(pset)} runs the same plugins as {list(seen[ident])} "
                                 f"({policy_label(cfg.enabled)}): run once")
                    continue
                seen[ident] = pset
                label = label_of(cfg.enabled, elev, g)
                for i in range(seeds):
                    jobs.append(attrs.evolve(probe, index=len(jobs), seed=first_seed + i, label=label))
    desc = {"scenario": base.scenario.name, "policy_sets": [list(s) for s in sets],
            "elevators": [e for e in elevs if e is not None], "seeds": [first_seed + i for i in range(seeds)],
            "grid": {k: [jsonable(x) for x in v] for k, v in grid_items}, "runs": len(jobs)}
    return Sweep(tuple(jobs), base.scenario.name, tuple(notes), desc)


def _elevator_owner(base: Config, elevator: str | None, pset: Sequence[str]) -> tuple[str, ...]:
    """A plugin's elevator runs with its plugin enabled (the block layer registers elevators by
    plugin, ``mmframe_elevators``): the owner joins the combination."""
    entry = getattr(base, "elevators", {}).get(elevator) if elevator else None
    owner = entry[1] if entry else None
    return (owner,) if owner and owner != CORE and owner not in pset and owner not in base.enabled else ()


def _check(job: Job, cache: dict[tuple[Any, ...], Config], elevator: str | None) -> Config:
    from mmframe.plugin import build_hooks

    key = (job.elevator, job.grid)
    if key not in cache:
        try:
            cache[key] = attrs.evolve(job, policies=()).config()
        except ConfigError as exc:
            if elevator is not None and exc.key and exc.key.endswith(".elevator"):
                raise UsageError(f"--elevators: {exc.message}"
                                 + (f" (available: {exc.allowed})" if exc.allowed else "")) from None
            raise
    cfg = cache[key].with_policies(job.policies)
    build_hooks(cfg.catalog, cfg.enabled)  # conflicting plugins: a UsageError now, not after other runs
    if cfg.machine.costs:
        from mmframe.machine import Machine
        Machine._cost_table(SimpleNamespace(cfg=cfg, enabled=cfg.enabled, config=cfg.machine))  # type: ignore[arg-type]
    scen, owner = all_scenarios(cfg.catalog)[cfg.scenario.name]
    if owner != CORE and owner not in cfg.enabled:
        raise UsageError(f"scenario {scen.name!r} comes from plugin {owner!r}, which this run does not "
                         f"enable (add it to [plugins] enable or use -p {owner})")
    return cfg


# --- running --------------------------------------------------------------------------------------

Progress = Callable[[str, Any], None]  # (event, payload): "start"/"done"/"step"


def run_serial(jobs: Sequence[Job], progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run jobs one after the other in this process (one worker, or a single job)."""
    out = []
    for job in jobs:
        if progress:
            progress("start", job)
        step = (lambda d, t, j=job: progress("step", (j.index, d, t))) if progress else None
        rec = run_job(job, step)
        if progress:
            progress("done", rec)
        out.append(rec)
    return out


_QUEUE: Any = None


def _init_worker(queue: Any) -> None:
    global _QUEUE
    _QUEUE = queue


def _worker_run(job: Job) -> dict[str, Any]:
    """Run a job in a pool worker, posting its start and in-run progress (throttled) to the queue."""
    q = _QUEUE
    last = [0.0]

    def step(done: float, total: float) -> None:
        now = time.monotonic()
        if q is not None and now - last[0] > 0.2:
            last[0] = now
            q.put(("step", (job.index, done, total)))

    if q is not None:
        q.put(("start", job.index))
    return run_job(job, step)


def run_pool(jobs: Sequence[Job], workers: int, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run jobs in ``workers`` fresh processes (spawned: nothing but the job crosses over)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    by_index = {j.index: j for j in jobs}
    results: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(queue,)) as pool:
        pending = {pool.submit(_worker_run, j): j for j in jobs}
        while pending:
            done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            _drain(queue, by_index, progress)
            for fut in done:
                job = pending.pop(fut)
                try:
                    rec = fut.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died (BrokenProcessPool...)
                    rec = failed_record(job, exc)
                results[job.index] = rec
                if progress:
                    progress("done", rec)
        _drain(queue, by_index, progress)
    queue.close()
    return [results[j.index] for j in jobs]


def _drain(queue: Any, by_index: Mapping[int, Job], progress: Progress | None) -> None:
    import queue as q

    while True:
        try:
            event, payload = queue.get_nowait()
        except (q.Empty, OSError, ValueError):
            return
        if progress is None:
            continue
        if event == "start":
            progress("start", by_index[payload])
        else:
            progress(event, payload)


def default_workers(njobs: int) -> int:
    return max(1, min(njobs, os.cpu_count() or 1))


def run_jobs(jobs: Sequence[Job], workers: int | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """The local executor: a process pool, or this process for one worker or one job."""
    workers = default_workers(len(jobs)) if workers is None else workers
    if workers <= 1 or len(jobs) <= 1:
        return run_serial(jobs, progress)
    return run_pool(jobs, workers, progress)


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``--set scenario.sizes=["4MiB"]``: the value is read as TOML, or taken as a string."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. scenario.children=8")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out
