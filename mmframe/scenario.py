"""Scenarios: named programs with options, run once per policy combination and shown side by side.

A scenario declares what it measures, so tables, JSON, CSV, ``mmframe compare`` and ``--plot`` work
for it without code of their own (docs/scenarios.md):

- :class:`Figure` records name a result's key, label, unit and kind; a figure with an ``axis``
  is a series (``{axis value: number}``, e.g. fork time per resident size), a ``distribution``
  figure is a list of samples (e.g. read latencies);
- :class:`Axis` records name the series' x values and their unit;
- :class:`Plot` says what the scenario's natural picture is;
- :class:`Reference` records name published figures the model is compared with, as a ratio.

``run(ctx)`` builds machines with ``ctx.machine()`` (so the manifest, counters and the programs'
outcomes are collected for it) and returns ``{figure key: value}``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Mapping

import attrs

from mmframe.errors import ConfigError, PluginError, UsageError
from mmframe.options import Option
from mmframe.plugin import CORE, Catalog, call_one

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.config import Config
    from mmframe.machine import Machine

#: Kinds of figures.  ``time``, ``memory``, ``count`` and ``value`` come from the model and get a
#: ratio to the baseline run; ``ratio`` is already one; ``host`` is measured on the host (simulator
#: wall time, host memory): noisy, shown only with ``--timings`` and never in a ratio;
#: ``distribution`` is a list of samples, shown as percentiles and drawn as a CDF.
FIGURE_KINDS = ("value", "time", "memory", "count", "ratio", "host", "distribution")
RATIO_KINDS = frozenset({"value", "time", "memory", "count"})


@attrs.frozen(slots=True)
class Figure:
    """One figure a scenario reports: ``key`` in its result, a label, a unit and a kind.

    With ``axis`` (the name of one of the scenario's :class:`Axis`) the value is a series
    ``{x: number}``; a ``distribution`` figure's value is a list of numbers.
    """

    key: str
    label: str
    unit: str = ""
    kind: str = attrs.field(default="value", validator=attrs.validators.in_(FIGURE_KINDS))
    axis: str = ""


@attrs.frozen(slots=True)
class Axis:
    """The x values of series figures: ``unit`` ``"B"`` prints as sizes (4MiB); ``log`` for plots."""

    name: str
    label: str
    unit: str = ""
    log: bool = False


@attrs.frozen(slots=True)
class Plot:
    """The scenario's natural picture: one panel per figure in ``y``, one line per combination.

    Series figures are drawn against their axis (log scales as the axis says), ``distribution``
    figures as a CDF of their samples, scalar figures as one bar per combination.  With ``overlay``
    every figure of ``y`` shares one panel (its lines named by figure, and combination when several).
    """

    y: tuple[str, ...]
    title: str = ""
    logy: bool = False
    overlay: bool = False  # every figure in one panel (e.g. one read-latency CDF per elevator)


@attrs.frozen(slots=True)
class Reference:
    """A published figure the model is compared with (printed as model / published, never fitted to).

    It applies to runs whose enabled plugins include every name in ``requires`` and none in
    ``excludes``; ``at`` is the axis value for a series figure.
    """

    figure: str
    value: float
    source: str
    at: Any = None
    requires: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def applies(self, enabled: tuple[str, ...] | list[str]) -> bool:
        return set(self.requires) <= set(enabled) and not set(self.excludes) & set(enabled)


@attrs.frozen(slots=True)
class Scenario:
    """A named workload.  ``run(ctx)`` builds machines with ``ctx.machine()`` and returns its
    figures (key -> number, series or samples); ``figures`` orders, labels and types them.

    ``check(params, machine_config)`` may reject option values that pass their types but cannot run
    (a segment larger than memory) by raising :class:`OptionProblem` naming the option; the config
    loader turns it into a config error (exit 2).  ``models`` and ``sources`` are shown by
    ``mmframe scenarios`` and the README.
    """

    name: str
    help: str
    run: Callable[[ScenarioContext], Mapping[str, Any]]
    options: tuple[Option, ...] = ()
    figures: tuple[Figure, ...] = ()
    axes: tuple[Axis, ...] = ()
    plot: Plot | None = None
    references: tuple[Reference, ...] = ()
    check: Callable[[Mapping[str, Any], Any], None] | None = None
    models: str = ""
    sources: tuple[str, ...] = ()

    def figure(self, key: str) -> Figure | None:
        for f in self.figures:
            if f.key == key:
                return f
        return None

    def axis(self, name: str) -> Axis | None:
        for a in self.axes:
            if a.name == name:
                return a
        return None


class OptionProblem(ValueError):
    """Raised by a scenario's ``check``: option ``key`` has a value the scenario cannot run."""

    def __init__(self, key: str, message: str, allowed: str | None = None) -> None:
        self.key, self.message, self.allowed = key, message, allowed
        super().__init__(f"{key}: {message}")


@attrs.frozen(slots=True)
class Outcome:
    """How one simulated task ended: ``exited`` (with its exit code), ``killed`` (``signal``, and
    ``oom`` when the out-of-memory path sent it) or ``blocked`` (still asleep at the end)."""

    lineage: str
    how: str
    status: int | None = None
    signal: str | None = None
    oom: bool = False

    def describe(self) -> str:
        if self.how == "exited":
            return f"exited {self.status}"
        if self.how == "killed":
            return f"killed by {self.signal}" + (" (out of memory)" if self.oom else "")
        return "still blocked at the end"


def summarize_outcomes(outcomes: list[Mapping[str, Any]]) -> str:
    """'5 tasks: 3 exited 0, 2 killed by SIGKILL (out of memory)' from outcome records."""
    if not outcomes:
        return "no tasks"
    counts = Counter(Outcome(**o).describe() for o in outcomes)
    return f"{len(outcomes)} tasks: " + ", ".join(f"{n} {what}" for what, n in counts.most_common())


@attrs.define(slots=True)
class ScenarioContext:
    """What a scenario's ``run`` gets: the run's config (policies enabled) and its parameters.

    Every machine built with :meth:`machine` is recorded: its manifest, and when it closes its
    counters and its tasks' outcomes.  ``progress(done, total)`` reports progress within the run.
    """

    config: Config
    params: Mapping[str, Any]
    progress: Callable[[float, float], None] | None = None
    manifests: list[dict[str, Any]] = attrs.field(factory=list)
    counters: Counter = attrs.field(factory=Counter)
    outcomes: list[dict[str, Any]] = attrs.field(factory=list)
    _open: list[Any] = attrs.field(factory=list)

    def machine(self, **machine_changes: Any) -> Machine:
        """A new machine for this run; ``machine_changes`` evolve the ``[machine]`` config (memory,
        pae, highpte...) as a scenario's own options ask."""
        from mmframe.machine import Machine
        cfg = self.config
        if machine_changes:
            cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, **machine_changes))
        m = Machine(cfg)
        self.manifests.append(m.manifest())
        close = m.close
        ctx = self

        def recorded_close() -> dict[str, Any]:
            ctx._collect(m)
            return close()

        m.close = recorded_close  # type: ignore[method-assign]
        self._open.append(m)
        return m

    def report(self, done: float, total: float) -> None:
        """Progress within the run (shown on stderr by the CLI); cheap when nobody listens."""
        if self.progress is not None:
            self.progress(done, total)

    def _collect(self, m: Any) -> None:
        if m not in self._open:
            return
        self._open.remove(m)
        self.counters.update(m.acct.totals())
        oom = any(e[0] in ("oom", "oom_kill") for e in m.pagealloc.events)
        for t in m.sched.tasks.values():
            if t.kthread:  # kswapd: the kernel's, not the program's
                continue
            if t.signal is not None:
                name = _signal_name(t.signal.signo)
                o = Outcome(t.lineage, "killed", signal=name, oom=oom and name == "SIGKILL")
            elif t.status is not None:
                o = Outcome(t.lineage, "exited", status=t.status >> 8)  # WEXITSTATUS
            else:
                o = Outcome(t.lineage, "blocked")
            self.outcomes.append(attrs.asdict(o))

    def finish(self) -> None:
        """Collect machines the scenario did not close."""
        for m in list(self._open):
            self._collect(m)


def _signal_name(signo: int) -> str:
    from mmframe.usr import SIGNAL_NAMES
    return SIGNAL_NAMES.get(signo, f"signal {signo}")


@attrs.frozen(slots=True)
class Column:
    label: str
    policies: tuple[str, ...]
    figures: Mapping[str, Any]
    manifest: Mapping[str, Any]
    counters: Mapping[str, int] = attrs.field(factory=dict)
    outcomes: tuple[Mapping[str, Any], ...] = ()
    wall_s: float = 0.0


def all_scenarios(catalog: Catalog) -> dict[str, tuple[Scenario, str]]:
    """Every scenario registered by the core and by any loaded plugin: name -> (scenario, owner)."""
    found: dict[str, tuple[Scenario, str]] = {}
    for info in [catalog.core, *catalog.plugins.values()]:
        for scen in call_one(info, "mmframe_scenarios") or ():
            if not isinstance(scen, Scenario):
                raise PluginError(f"plugin {info.name!r}: mmframe_scenarios must return Scenario objects, "
                                  f"got {scen!r}", plugin=info.name, hook="mmframe_scenarios")
            if scen.name in found:
                raise PluginError(f"scenario {scen.name!r} is registered by both {found[scen.name][1]!r} "
                                  f"and {info.name!r}", plugin=info.name, hook="mmframe_scenarios")
            found[scen.name] = (scen, info.name)
    return found


def check_params(scen: Scenario, params: Mapping[str, Any], config: Config, source: str = "<config>") -> None:
    """Run the scenario's own ``check``: a value it cannot run is a ConfigError naming the key."""
    if scen.check is None:
        return
    try:
        scen.check(params, config.machine)
    except OptionProblem as exc:
        raise ConfigError(exc.message, file=source, key=f"scenario.{exc.key}", allowed=exc.allowed) from None


def policy_label(enabled: tuple[str, ...] | list[str]) -> str:
    """The name of a run's policy set: its enabled plugins, whatever layer enabled them."""
    return "+".join(enabled) if enabled else "mainline"


def run_one(config: Config, progress: Callable[[float, float], None] | None = None) -> Column:
    """Run the configured scenario once under ``config`` as it is (its enabled plugins)."""
    scen, owner = all_scenarios(config.catalog)[config.scenario.name]
    if owner != CORE and owner not in config.enabled:
        raise UsageError(f"scenario {scen.name!r} comes from plugin {owner!r}, which this run does not "
                         f"enable (add it to [plugins] enable or use -p {owner})")
    ctx = ScenarioContext(config, dict(config.scenario.params), progress)
    t0 = time.perf_counter()
    figures = dict(scen.run(ctx))
    ctx.finish()
    wall = time.perf_counter() - t0
    manifest = dict(ctx.manifests[0]) if ctx.manifests else config_manifest(config)
    if len({repr(m.get("machine")) for m in ctx.manifests}) > 1:
        manifest["machines"] = list({repr(m["machine"]): m["machine"] for m in ctx.manifests}.values())
    return Column(policy_label(config.enabled), tuple(config.enabled), figures, manifest,
                  dict(ctx.counters), tuple(ctx.outcomes), wall)


def config_manifest(config: Config) -> dict[str, Any]:
    """The manifest of a run whose scenario built its machines itself (not with ``ctx.machine``):
    what Machine.manifest records, from the config, without building a machine."""
    from types import SimpleNamespace

    from mmframe.machine import Machine

    shell = SimpleNamespace(cfg=config, config=config.machine, enabled=config.enabled)
    shell.costs = Machine._cost_table(shell)  # type: ignore[arg-type]
    return Machine.manifest(shell)  # type: ignore[arg-type]


def run_scenario(config: Config, progress: Callable[[str], None] | None = None) -> tuple[Scenario, list[Column]]:
    """Run the configured scenario once per policy set (``[scenario] policies``), in order."""
    scen, _owner = all_scenarios(config.catalog)[config.scenario.name]
    columns = []
    for policies in config.scenario.policies:
        cfg = config.with_policies(policies)
        if progress:
            progress(policy_label(cfg.enabled))
        columns.append(run_one(cfg))
    return scen, columns
