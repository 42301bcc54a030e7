"""Test support shared by the suite: the active policy set and the hypothesis budget.

* **Policy set.**  Policy-agnostic tests build their machines with :func:`active_policies`, the set
  named by ``MMFRAME_PLUGINS`` (``tox -e pt_shared`` sets it), so every tox environment really runs
  them under its combination; tests about one policy, or that compare policies, name theirs.
* **Hypothesis.**  Profiles ``ci`` (derandomised: the same examples on every run, as CI needs),
  ``dev`` (random, the default outside CI) and ``long`` (random, :data:`LONG_FACTOR` times the
  examples) are chosen by ``MMFRAME_HYPOTHESIS_PROFILE``, else ``ci`` when ``CI`` is set, else
  ``dev``.  Tests size their budgets with :func:`examples`, so the long profile scales them.
  A failure found once is kept in the test as an ``@example``.
"""

from __future__ import annotations

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


def active_policies() -> tuple[str, ...]:
    """The policy set ``MMFRAME_PLUGINS`` enables (``no:NAME`` entries block, they enable nothing)."""
    raw = os.environ.get("MMFRAME_PLUGINS", "")
    return tuple(t.strip() for t in raw.split(",") if t.strip() and not t.strip().startswith("no:"))
