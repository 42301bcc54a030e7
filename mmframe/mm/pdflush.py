"""pdflush: the pool of write-back kernel threads (2.5.49's ``mm/pdflush.c``, akpm, April 2002).

``pdflush_operation(fn)`` hands ``fn`` to an idle thread and wakes it, or returns -1 when every
thread is busy (the caller copes: ``balance_dirty_pages`` skips its background pass, the wb_timer
tries again a second later).  Each thread is a kernel thread of the scheduler: it runs its work on
a CPU, charged to the ``<pdflush>`` row, then sleeps on the idle list again.  The pool's rules, as
``__pdflush`` has them:

- between ``MIN_PDFLUSH_THREADS`` (2) and ``MAX_PDFLUSH_THREADS`` (8) threads;
- a thread that finishes its work when there has been no idle thread for more than a second starts
  another one;
- a thread that finishes its work when the thread that went to sleep least recently has slept for
  more than a second exits (one a second at most), while more than the minimum remain.

``pdflush_operation`` takes the idle thread that went to sleep last (the list's head); the exit
rule looks at the one that went to sleep first (its tail).

mmframe departure: 2.5.49 starts the two threads at boot (``pdflush_init``); mmframe starts them at
the first write-back need (a buffered write), as it does kswapd, so runs that never write back keep
their pids and schedule unchanged.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from mmframe.usr import ENOSYS

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.sched import Task

MIN_PDFLUSH_THREADS = 2
MAX_PDFLUSH_THREADS = 8
SECOND_NS = 1_000_000_000  # "1 * HZ" in __pdflush's rules
ROW = "<pdflush>"
EXIT = 1  # a round's result that ends the thread


class Pdflush:
    """The pool: idle threads (most recently asleep first), the work handed to each, counters."""

    __slots__ = ("m", "idle", "work", "slept_at", "nr_threads", "last_empty_ns", "stats")

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.idle: deque[Task] = deque()  # pdflush_list: head = went to sleep last
        self.work: dict[int, Callable[[], None]] = {}  # pid -> the work handed to that thread
        self.slept_at: dict[int, float] = {}  # pid -> when_i_went_to_sleep
        self.nr_threads = 0
        self.last_empty_ns = 0.0
        self.stats = {"operations": 0, "refused": 0, "started": 0, "exited": 0}

    def _now(self) -> float:
        cur = self.m.sched.current
        return cur.cpu.clock + self.m.acct.ns if cur is not None else self.m.engine.now

    def start(self) -> None:
        """``pdflush_init``: the minimum pool, started at the first need (see the module doc)."""
        while self.nr_threads < MIN_PDFLUSH_THREADS:
            self._start_one()

    def _start_one(self) -> None:
        """``start_one_pdflush_thread``: a new thread, on the idle list from its start."""
        task = self.m.sched.spawn_kthread("pdflush", pdflush_thread)
        task.row = self.m.acct.row_for(ROW, "core")
        self.nr_threads += 1
        self.stats["started"] += 1
        self.idle.appendleft(task)
        self.slept_at[task.pid] = self._now()

    def pdflush_operation(self, fn: Callable[[], None]) -> int:
        """Give ``fn`` to the idle thread that slept last and wake it: 0, or -1 if none is idle."""
        self.start()
        if not self.idle:
            self.stats["refused"] += 1
            return -1
        task = self.idle.popleft()
        if not self.idle:
            self.last_empty_ns = self._now()
        self.work[task.pid] = fn
        self.stats["operations"] += 1
        self.m.sched.wake(task, 0)  # (a thread not yet run finds its work on its first round)
        return 0

    def round(self, task: Task) -> Any:
        """One round of a pdflush thread (its system call): do the work it was given, apply the
        pool's start and exit rules, then sleep on the idle list.  ``EXIT`` ends the thread;
        -ENOSYS for a user task."""
        if not task.kthread:
            return -ENOSYS
        fn = self.work.pop(task.pid, None)
        if fn is None:
            if task in self.idle:  # started idle, or woken with no work: sleep
                return self.m.sched.block(task)
            self.idle.appendleft(task)
            self.slept_at[task.pid] = self._now()
            return self.m.sched.block(task)
        fn()
        now = self._now()
        if now - self.last_empty_ns > SECOND_NS and not self.idle and self.nr_threads < MAX_PDFLUSH_THREADS:
            self._start_one()
        if self.idle and self.nr_threads > MIN_PDFLUSH_THREADS:
            oldest = self.idle[-1]
            if now - self.slept_at[oldest.pid] > SECOND_NS:
                self.slept_at[oldest.pid] = now  # limit the exit rate
                self.nr_threads -= 1
                self.stats["exited"] += 1
                self.slept_at.pop(task.pid, None)
                return EXIT
        self.idle.appendleft(task)
        self.slept_at[task.pid] = now
        return self.m.sched.block(task)


def pdflush_thread(ctx: Any) -> Any:
    """A pdflush kernel thread's body: rounds until the pool lets it go."""
    while (yield ("pdflush",)) != EXIT:
        pass
