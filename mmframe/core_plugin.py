"""The core's own hook implementations: the mainline policies and the scenarios shipped with mmframe.

Registered in every run under the name ``mmframe.core``, through the same hooks a plugin uses.
"""

from __future__ import annotations

from mmframe.hookspecs import hookimpl
from mmframe.mm.fork import copy_page_range
from mmframe.scenario import Scenario
from mmframe.block.elevators import core_elevators
from mmframe.workloads import (aio_dio, fork_scaling, io_depth_sweep, io_scenarios, io_stream, pressure, program,
                               sga, shell, spawn)


@hookimpl
def mmframe_scenarios() -> list[Scenario]:
    return [spawn.SCENARIO, fork_scaling.SCENARIO, shell.SCENARIO, sga.SCENARIO, io_scenarios.DEPTH,
            io_scenarios.REPLAY, io_depth_sweep.SCENARIO, program.SCENARIO, aio_dio.SCENARIO,
            pressure.SCENARIO, io_stream.SCENARIO]


@hookimpl
def mmframe_elevators() -> list[type]:
    return core_elevators()


@hookimpl(trylast=True)
def mmframe_alloc_pages(alloc, gfp_mask: int, order: int, cpu: int) -> int:
    return alloc._alloc_pages(gfp_mask, order, cpu)


@hookimpl(trylast=True)
def mmframe_free_pages(alloc, pfn: int, order: int, cpu: int) -> bool:
    alloc.free_pages(pfn, order, cpu)
    return True


@hookimpl(trylast=True)
def mmframe_copy_pte_page(vm, src, dst, idx: int) -> bool:
    return copy_page_range(vm, src, dst, idx)


@hookimpl(trylast=True)
def mmframe_handle_mm_fault(vm, mm, vma, address: int, write_access: bool) -> int:
    return vm.handle_mm_fault(mm, vma, address, write_access)


@hookimpl(trylast=True)
def mmframe_get_user_pages(vm, mm, start: int, nr_pages: int, write: bool, force: bool) -> list[int] | int:
    return vm.get_user_pages(mm, start, nr_pages, write, force)
