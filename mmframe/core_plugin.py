"""The core's own hook implementations: the scenarios shipped with mmframe.

Registered in every run under the name ``mmframe.core``, through the same hooks a plugin uses.
"""

from __future__ import annotations

from mmframe.hookspecs import hookimpl
from mmframe.scenario import Scenario


@hookimpl
def mmframe_scenarios() -> list[Scenario]:
    from mmframe.workloads import spawn
    return [spawn.SCENARIO]
