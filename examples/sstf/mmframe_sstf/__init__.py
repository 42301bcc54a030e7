"""sstf: a shortest-seek-time-first elevator, as a third-party mmframe plugin.

Registers one elevator, ``sstf`` (choose it per disk: ``[block.hda] elevator = "sstf"``), and the
cost entry of its one step (``sstf.scan``: a queued request looked at while choosing).  Everything it
uses comes from ``mmframe.facade``.
"""

from __future__ import annotations

from typing import Any

from mmframe.facade import CostEntry, hookimpl

NAME = "sstf"


@hookimpl
def mmframe_cost_entries() -> list[CostEntry]:
    return [CostEntry(f"{NAME}.scan", 30, "estimate",
                      "no measurement: one list entry of the queue loaded and its sector compared with the "
                      "head position, the same class of work as the core's elv_list_entry (~25 cycles at "
                      "790 MHz)", "one queued request looked at while choosing the nearest", owner=NAME)]


@hookimpl
def mmframe_elevators() -> list[Any]:
    from mmframe_sstf.elevator import Sstf
    return [Sstf]
