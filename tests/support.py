"""Test support shared by the suite: the active policy set and the hypothesis budget.

* **Policy set.**  Policy-agnostic tests build their machines with :func:`active_policies`, the set
  named by ``MMFRAME_PLUGINS`` plus one variable per factor of the tox matrix (:data:`FACTORS`:
  ``MMFRAME_PT_SHARED=1`` enables pt_shared, ...) and the plugin owning ``MMFRAME_ELEVATOR``'s
  elevator; machine builders that do not choose an elevator use :func:`active_elevator` (the disk's
  elevator).  So every tox environment really runs them under its combination; tests about one
  policy, or that compare policies, name theirs.  A factor whose plugin is not installed, or an
  unknown elevator, stops the run with an error naming it (:func:`check_factors`).
* **Hypothesis.**  Profiles ``ci`` (derandomised: the same examples on every run, as CI needs),
  ``dev`` (random, the default outside CI) and ``long`` (random, :data:`LONG_FACTOR` times the
  examples) are chosen by ``MMFRAME_HYPOTHESIS_PROFILE``, else ``ci`` when ``CI`` is set, else
  ``dev``.  Tests size their budgets with :func:`examples`, so the long profile scales them.
  A failure found once is kept in the test as an ``@example``.
"""

from __future__ import annotations

import functools
import os

from hypothesis import HealthCheck, settings

LONG_FACTOR = 10

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])


def hypothesis_profile() -> str:
    return os.environ.get("MMFRAME_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")


settings.load_profile(hypothesis_profile())


def examples(n: int) -> int:
    """A test's example budget under the active profile (``long`` multiplies it)."""
    return n * LONG_FACTOR if hypothesis_profile() == "long" else n


# tox factor -> (environment variable set to 1, the plugin it enables)
FACTORS = {"pt_shared": ("MMFRAME_PT_SHARED", "pt_shared"), "reserve": ("MMFRAME_RESERVE", "reserve"),
           "walker": ("MMFRAME_WALKER", "walker")}
ENV_ELEVATOR = "MMFRAME_ELEVATOR"


def active_elevator() -> str | None:
    """The elevator ``MMFRAME_ELEVATOR`` names for machines whose test does not choose one (None: the
    config's default)."""
    return os.environ.get(ENV_ELEVATOR, "").strip() or None


@functools.lru_cache(maxsize=1)
def _elevator_owners() -> dict[str, str]:
    from mmframe.config import load_config
    from mmframe.plugin import discover_entry_points
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=[ep.name for ep in discover_entry_points()])
    return {name: owner for name, (_, owner) in cfg.elevators.items()}


def active_policies() -> tuple[str, ...]:
    """The policy set of the run: ``MMFRAME_PLUGINS`` (``no:NAME`` entries block, they enable
    nothing), each factor variable set to 1, and the plugin registering ``MMFRAME_ELEVATOR``."""
    raw = os.environ.get("MMFRAME_PLUGINS", "")
    out = [t.strip() for t in raw.split(",") if t.strip() and not t.strip().startswith("no:")]
    out += [plugin for var, plugin in FACTORS.values() if os.environ.get(var, "").strip() in ("1", "yes", "on")]
    elv = active_elevator()
    if elv:
        owner = _elevator_owners().get(elv)
        if owner and owner != "mmframe.core":
            out.append(owner)
    return tuple(dict.fromkeys(out))


def elevator_layers() -> list:
    """Config layers choosing :func:`active_elevator` for the default disk (none when unset): for
    machine builders of tests that do not choose an elevator and use :func:`active_policies`."""
    elv = active_elevator()
    if not elv:
        return []
    from mmframe.config import DEFAULT_DISK, override_layer
    return [override_layer({f"block.{DEFAULT_DISK}.elevator": elv}, ENV_ELEVATOR)]


def check_factors() -> None:
    """Stop with a clear error when a factor names a plugin that is not installed, or the elevator
    variable an elevator nobody registers (a tox environment must not pass by testing nothing)."""
    from mmframe.plugin import discover_entry_points
    installed = {ep.name for ep in discover_entry_points()}
    for var, plugin in FACTORS.values():
        if os.environ.get(var, "").strip() in ("1", "yes", "on") and plugin not in installed:
            raise SystemExit(f"tests/support.py: {var}=1 enables plugin {plugin!r}, which is not installed "
                             f"(installed: {', '.join(sorted(installed)) or 'none'})")
    elv = active_elevator()
    if elv:
        owners = _elevator_owners()
        if elv not in owners:
            raise SystemExit(f"tests/support.py: {ENV_ELEVATOR}={elv!r} is no installed elevator "
                             f"(allowed: {', '.join(sorted(owners))})")


# --- the tox matrix's economy --------------------------------------------------------------------
ENV_AGNOSTIC_ONLY = "MMFRAME_AGNOSTIC_ONLY"
_USES_FACTORS = ("active_policies", "active_elevator", "elevator_layers")


def agnostic_only() -> bool:
    """``MMFRAME_AGNOSTIC_ONLY=1`` (the tox matrix's environments but the mainline default's): run
    only the tests whose result the policy set can change -- those the others run identically in
    every environment (the mainline default's environment and CI run them once)."""
    return os.environ.get(ENV_AGNOSTIC_ONLY, "").strip() in ("1", "yes", "on")


def uses_the_policy_set(item) -> bool:
    """Whether a collected test builds its machines with the run's policy set: it takes the
    ``policies`` fixture, or its module calls :func:`active_policies`, :func:`active_elevator` or
    :func:`elevator_layers` (found in the module's syntax tree, so a new such test is never left
    out and a mere mention in a string or comment does not count)."""
    if "policies" in getattr(item, "fixturenames", ()):
        return True
    mod = getattr(item, "module", None)
    return mod is not None and _calls_a_factor(getattr(mod, "__file__", None) or "")


@functools.lru_cache(maxsize=None)
def _calls_a_factor(path: str) -> bool:
    import ast
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if name in _USES_FACTORS:
                return True
    return False
