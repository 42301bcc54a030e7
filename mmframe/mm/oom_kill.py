"""The out-of-memory killer (2.5.49 ``mm/oom_kill.c``).

``out_of_memory`` is called by ``try_to_free_pages`` when a ``__GFP_FS`` allocation's reclaim freed
less than SWAP_CLUSTER_MAX pages.  As 2.5.49 it does nothing while swap space is left, nor before
the tenth such failure in a row (2.5.49 also required the failures to span a second and five
seconds since the last kill; mmframe keeps the count and drops the wall-clock windows, see
docs/reclaim.md).  Then ``select_bad_process`` picks the task with the highest ``badness``:

    points = total_vm / int_sqrt(cpu_time_s >> 3) / int_sqrt(int_sqrt(run_time_min >> 1))

(2.5.49 shifts jiffies by SHIFT_HZ+3 and SHIFT_HZ+10: CPU time in units of 8 s, run time in
units of ~17 min; ``int_sqrt`` is never below 1), doubled for a niced task and quartered for root
or CAP_SYS_RAWIO (simulated programs are ordinary, un-niced, non-root tasks).  The victim and every
task sharing its mm get SIGKILL and their memory goes back.  A victim that is the task allocating
is not torn down under its own fault: the allocation fails and the fault path kills it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm.page import PAGE_SHIFT
from mmframe.usr import SIGKILL

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.sched import Task

OOM_COUNT = 10  # "If we have gotten only a few failures, we're not really oom." (count < 10)
NS_PER_S = 1_000_000_000


def int_sqrt(x: int) -> int:
    """2.5.49 oom_kill.c's ``int_sqrt`` (an approximation, at least 1)."""
    out = x
    while x & ~1:
        x >>= 2
        out >>= 1
    if x:
        out -= out >> 2
    return out if out else 1


def total_vm(mm: Any) -> int:
    """``mm->total_vm``: pages mapped by the mm's VMAs."""
    return sum((v.end - v.start) >> PAGE_SHIFT for v in mm.vmas)


def badness(task: Task, cpu_ns: float, run_ns: float) -> int:
    """2.5.49 ``badness``: 0 for a task without memory (a kernel thread)."""
    if task.mm is None or task.kthread:
        return 0
    points = total_vm(task.mm)
    cpu_time = int(cpu_ns // NS_PER_S) >> 3
    run_time = int(run_ns // NS_PER_S) >> 10 if run_ns else 0  # (jiffies >> (SHIFT_HZ + 10)) ~ s >> 10
    points //= int_sqrt(cpu_time)
    points //= int_sqrt(int_sqrt(run_time))
    return points


def select_bad_process(vm: Memory) -> tuple[Task | None, int]:
    """The live task with the highest badness (the first one on a tie), and its points."""
    best, best_points = None, 0
    sched = vm.m.sched
    now = max(c.clock for c in vm.m.cpus)
    for t in sched.tasks.values():
        if t.state not in ("runnable", "blocked") or t.mm is None or t.kthread:
            continue
        p = badness(t, 0.0, now - t.ready_at if t.ready_at < now else 0.0)
        vm.acct.charge(vm.m.P.oom_badness)
        if p > best_points:
            best, best_points = t, p
    return best, best_points


def oom_kill(vm: Memory) -> bool:
    """Kill the worst task and every task sharing its mm; True if one was chosen."""
    victim, points = select_bad_process(vm)
    if victim is None:
        return False
    sched = vm.m.sched
    cur = sched.current
    vs = vm.vmscan
    vs.counts["oom_kills"] += 1
    vm.pa.events.append(("oom_kill", victim.lineage, points))
    vs.oom_victims.append((victim.lineage, points))
    mm = victim.mm
    for t in list(sched.tasks.values()):
        if t.mm is mm and t.state in ("runnable", "blocked"):
            if cur is not None and t.mm is cur.mm:
                vs.oom_current = True  # the allocation fails; the fault path kills it
                continue
            sched.kill(t, SIGKILL)
    return True


def out_of_memory(vm: Memory) -> bool:
    """2.5.49 ``out_of_memory``: not while swap is left, nor before OOM_COUNT failures in a row."""
    if vm.swap.nr_swap_pages() > 0:
        return False
    vs = vm.vmscan
    vs.oom_failures += 1
    if vs.oom_failures < OOM_COUNT:
        return False
    vs.oom_failures = 0
    return oom_kill(vm)
