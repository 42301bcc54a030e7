"""CPUs and their TLBs: per-CPU clocks and state, context switches, and TLB flush accounting.

The TLB model is i386 2.5's: each mm has ``cpu_vm_mask`` (CPUs that have it loaded, lazily or not);
``flush_tlb_mm``/``flush_tlb_page`` flush locally if this CPU runs the mm and send one IPI to every
other CPU in the mask (the sender spins for the acks, so the IPI cost is the sender's).  On i386
``flush_tlb_range`` is ``flush_tlb_mm``: it is counted apart but costs a full flush.  A CPU that has
the mm loaded only lazily (its current task is another mm's, or it is idle) answers the IPI with
``leave_mm`` and drops out of the mask, as 2.5's lazy-TLB mode did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.costs import Account


class CPU:
    """One simulated CPU: its clock (ns), current task, loaded mm and counters."""

    __slots__ = ("id", "clock", "current", "active_mm", "nr_running", "nr_tasks", "idle_ns",
                 "context_switches", "tlb_flushes", "ipis_received")

    def __init__(self, cpu_id: int) -> None:
        self.id = cpu_id
        self.clock = 0.0
        self.current: Any = None
        self.active_mm: Any = None
        self.nr_running = 0  # runnable tasks placed here (for the event horizon)
        self.nr_tasks = 0  # live tasks placed here (for placement)
        self.idle_ns = 0.0
        self.context_switches = 0
        self.tlb_flushes = 0
        self.ipis_received = 0


class TLB:
    """Counts and charges TLB flushes and shootdown IPIs for a set of CPUs."""

    __slots__ = ("cpus", "acct", "P_flush", "P_invlpg", "P_ipi", "counts")

    def __init__(self, cpus: list[CPU], acct: Account, ids: dict[str, int]) -> None:
        self.cpus, self.acct = cpus, acct
        self.P_flush, self.P_invlpg, self.P_ipi = ids["tlb_flush_local"], ids["invlpg"], ids["ipi_flush"]
        self.counts = {"flush_tlb_mm": 0, "flush_tlb_page": 0, "flush_tlb_range": 0, "switch_mm": 0,
                       "ipi": 0, "leave_mm": 0}

    def switch_mm(self, cpu: CPU, mm: Any) -> None:
        """Load ``mm`` on ``cpu`` (cr3 reload) unless it is already the active mm (threads, lazy)."""
        if cpu.active_mm is mm:
            return
        if cpu.active_mm is not None:
            cpu.active_mm.cpu_vm_mask.discard(cpu.id)
        cpu.active_mm = mm
        if mm is not None:
            mm.cpu_vm_mask.add(cpu.id)
            cpu.tlb_flushes += 1
            self.counts["switch_mm"] += 1
            self.acct.charge(self.P_flush)

    def _shootdown(self, mm: Any, here: CPU) -> None:
        for cid in sorted(mm.cpu_vm_mask):
            if cid == here.id:
                continue
            other = self.cpus[cid]
            other.ipis_received += 1
            self.counts["ipi"] += 1
            self.acct.charge(self.P_ipi)
            cur = other.current
            if cur is None or cur.mm is not mm:  # lazy: leave_mm instead of flushing
                mm.cpu_vm_mask.discard(cid)
                other.active_mm = None
                self.counts["leave_mm"] += 1
            else:
                other.tlb_flushes += 1

    def flush_tlb_mm(self, mm: Any, here: CPU) -> None:
        self.counts["flush_tlb_mm"] += 1
        if here.active_mm is mm:
            here.tlb_flushes += 1
            self.acct.charge(self.P_flush)
        self._shootdown(mm, here)

    def flush_tlb_page(self, mm: Any, here: CPU, addr: int) -> None:
        self.counts["flush_tlb_page"] += 1
        if here.active_mm is mm:
            self.acct.charge(self.P_invlpg)
        self._shootdown(mm, here)

    def flush_tlb_range(self, mm: Any, here: CPU, start: int, end: int) -> None:
        """i386 2.5: a whole-mm flush, counted as a range flush."""
        self.counts["flush_tlb_range"] += 1
        if here.active_mm is mm:
            here.tlb_flushes += 1
            self.acct.charge(self.P_flush)
        mask = mm.cpu_vm_mask
        if len(mask) > 1 or mask and here.id not in mask:  # another CPU has it loaded
            self._shootdown(mm, here)
