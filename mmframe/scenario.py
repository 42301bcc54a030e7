"""Scenarios: named programs with options, run once per policy set and shown side by side."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import attrs

from mmframe.errors import PluginError, UsageError
from mmframe.options import Option
from mmframe.plugin import CORE, Catalog, call_one

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.config import Config
    from mmframe.machine import Machine


@attrs.frozen(slots=True)
class Figure:
    """One row of a scenario's table: key in the figures dict, label, unit."""

    key: str
    label: str
    unit: str = ""


@attrs.frozen(slots=True)
class Scenario:
    """A named workload.  ``run(ctx)`` builds machines with ``ctx.machine()`` and returns its
    figures (key -> number); ``figures`` orders and labels them."""

    name: str
    help: str
    run: Callable[[ScenarioContext], Mapping[str, Any]]
    options: tuple[Option, ...] = ()
    figures: tuple[Figure, ...] = ()


@attrs.define(slots=True)
class ScenarioContext:
    """What a scenario's ``run`` gets: the column's config (policies enabled) and its parameters."""

    config: Config
    params: Mapping[str, Any]

    def machine(self) -> Machine:
        from mmframe.machine import Machine
        return Machine(self.config)


@attrs.frozen(slots=True)
class Column:
    label: str
    policies: tuple[str, ...]
    figures: Mapping[str, Any]
    manifest: Mapping[str, Any]


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


def run_scenario(config: Config, progress: Callable[[str], None] | None = None) -> tuple[Scenario, list[Column]]:
    """Run the configured scenario once per policy set; each column adds its simulator wall time."""
    scen, owner = all_scenarios(config.catalog)[config.scenario.name]
    columns = []
    for policies in config.scenario.policies:
        cfg = config.with_policies(policies)
        if owner != CORE and owner not in cfg.enabled:
            raise UsageError(f"scenario {scen.name!r} comes from plugin {owner!r}, which this run does not "
                             f"enable (add it to [plugins] enable or use -p {owner})")
        label = "+".join(policies) if policies else "mainline"
        if progress:
            progress(label)
        ctx = ScenarioContext(cfg, dict(config.scenario.params))
        t0 = time.perf_counter()
        figures = dict(scen.run(ctx))
        figures["wall_ms"] = (time.perf_counter() - t0) * 1e3
        from mmframe.machine import Machine
        columns.append(Column(label, tuple(policies), figures, Machine(cfg).manifest()))
    return scen, columns
