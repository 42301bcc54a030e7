"""The core's own hook implementations: the mainline policies and the scenarios shipped with mmframe.

Registered in every run under the name ``mmframe.core``, through the same hooks a plugin uses.
"""

from __future__ import annotations

from mmframe.hookspecs import hookimpl
from mmframe.scenario import Scenario


@hookimpl
def mmframe_scenarios() -> list[Scenario]:
    from mmframe.workloads import spawn
    return [spawn.SCENARIO]


@hookimpl(trylast=True)
def mmframe_alloc_pages(alloc, gfp_mask: int, order: int, cpu: int) -> int:
    return alloc._alloc_pages(gfp_mask, order, cpu)


@hookimpl(trylast=True)
def mmframe_free_pages(alloc, pfn: int, order: int, cpu: int) -> bool:
    alloc.free_pages(pfn, order, cpu)
    return True
