"""Tasks, the deterministic scheduler and the one event engine that mm and block share.

Order is logical: runnable tasks take turns from one FIFO run queue, each running up to
``timeslice`` system calls, so the interleaving of memory operations never depends on simulated
costs.  Time is simulated: every CPU has a clock advanced by the cost of what runs on it.  Timer and
I/O-completion events fire once every CPU with runnable work has passed their time (the *horizon*),
or, when nothing is runnable, in time order; a woken task joins the tail of the run queue.  So only
wake-ups depend on costs, which is why differential comparisons look at results per task, not at
the global order, for programs that block.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterator

from mmframe.fs import FMODE_READ, File
from mmframe.mm.exec import exec_mmap
from mmframe.mm.fault import Killed
from mmframe.usr import ECHILD, EINVAL, ENOMEM, ENOSYS, EPERM, SIG_DFL, SIG_IGN, SIGKILL, SimSignal

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine

RUNNABLE, BLOCKED, ZOMBIE, DEAD = "runnable", "blocked", "zombie", "dead"


class ProgramError(Exception):
    """A simulated program itself is broken (raised a Python exception, is not deterministic under
    fork replay, yielded something that is not a system call).  Names the task and program."""


class EventEngine:
    """A heap of (time, seq, callback, args): timers, I/O completions, wake-ups.  Ties fire in the
    order they were scheduled, so the engine is deterministic."""

    __slots__ = ("heap", "seq", "now", "fired", "daemons")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Callable[..., None], tuple]] = []
        self.seq = 0
        self.now = 0.0
        self.fired = 0
        self.daemons = 0  # pending events that do not keep a run alive (kernel timers: wb_timer)

    def at_daemon(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        """Like :meth:`at`, for a periodic kernel timer: a run whose only pending events are
        such timers is over (nothing a program waits for is left)."""
        self.daemons += 1
        self.at(when, self._fire_daemon, fn, args)

    def _fire_daemon(self, fn: Callable[..., None], args: tuple) -> None:
        self.daemons -= 1
        fn(*args)

    def idle(self) -> bool:
        """No event but kernel timers is pending."""
        return len(self.heap) == self.daemons

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        """Schedule ``fn(*args)`` at simulated time ``when`` (ns).  O(log n)."""
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, fn, args))

    def fire_until(self, horizon: float) -> int:
        """Fire every event due at or before ``horizon``; returns how many fired."""
        heap, n = self.heap, 0
        while heap and heap[0][0] <= horizon:
            when, _, fn, args = heapq.heappop(heap)
            if when > self.now:
                self.now = when
            fn(*args)
            n += 1
        self.fired += n
        return n


class UserContext:
    """What a program sees besides syscalls: a deterministic random generator, and where its image
    lies (``image``, as a program's symbols would say)."""

    __slots__ = ("rng", "image")

    def __init__(self, seed: str, image: Any = None) -> None:
        self.rng = random.Random(seed)
        self.image = image  # the exec'd image's addresses (mmframe.usr.Layout), None without one


class Task:
    """A simulated process or thread (``task_struct``)."""

    __slots__ = ("pid", "lineage", "parent", "children", "nforks", "program", "args", "gen", "log",
                 "replay", "cpu", "mm", "state", "status", "zombies", "wait_pid", "resume", "throw",
                 "ready_at", "signal", "nsys", "row", "nexec", "seed_key", "blocked_in", "files",
                 "io_wait", "io_pending", "io_result", "uid", "gid", "sigign", "sp", "kthread")

    def __init__(self, pid: int, lineage: str, parent: Task | None, program: Callable[..., Any],
                 args: tuple, cpu: Any, mm: Any) -> None:
        self.pid, self.lineage, self.parent = pid, lineage, parent
        self.children: list[Task] = []
        self.nforks = 0
        self.program, self.args = program, args
        self.gen: Iterator[Any] | None = None
        self.log: list[tuple[str, Any, bool]] = []  # (call, result, raised) for fork replay
        self.replay: list[tuple[str, Any, bool]] | None = None
        self.cpu, self.mm = cpu, mm
        self.state = RUNNABLE
        self.status: int | None = None  # wait status once exited
        self.zombies: deque[Task] = deque()
        self.wait_pid = 0
        self.resume: Any = None
        self.throw: SimSignal | None = None
        self.ready_at = 0.0
        self.signal: SimSignal | None = None  # the signal that killed it
        self.nsys = 0
        self.row: list[int] = []
        self.nexec = 0
        self.seed_key = lineage  # a forked child replays with its parent's key
        self.blocked_in = ""  # the call a blocked task sleeps in, logged when it is woken
        self.files: Any = None  # files_struct (mmframe.fs), made on first use
        self.io_wait = 0.0  # I/O this call waited for completes then (mmframe.block.genhd)
        self.io_pending = 0  # bios this call waits for, still in flight
        self.io_result: Any = None  # (result, logged) delivered when the I/O wait ends
        self.uid = self.gid = 0  # (real = effective) ids; inherited at fork; 0 has every capability
        self.sigign: frozenset[int] = frozenset()  # signals set to SIG_IGN (inherited, kept over exec)
        self.sp: int | None = None  # %esp as the program last set it (None: no rule below the stack)
        self.kthread = False  # a kernel thread (kswapd): no mm, not in a run's results

    def __repr__(self) -> str:
        return f"<Task pid={self.pid} {self.lineage} {self.state}>"


BLOCK = object()  # a handler's result meaning: the task sleeps until woken with its result
YIELD = object()  # sched_yield: the result is 0 and the time slice ends
RESTART = object()  # execve succeeded: the new program starts, nothing is returned or logged


class Scheduler:
    """Runs tasks: dispatches their system calls, blocks and wakes them, forks, waits and exits."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.engine = machine.engine
        self.rq: deque[Task] = deque()
        self.tasks: dict[int, Task] = {}
        self.next_pid = 1
        self.handlers: dict[str, Callable[..., Any]] = {}  # filled from mmframe.syscalls.SYSCALLS
        self.trace: list[tuple[str, int]] | None = None  # (lineage, nsys) when tracing interleaving
        self.current: Task | None = None  # the task whose system call is running

    # --- task creation and placement -----------------------------------------------------
    def _place(self) -> Any:
        return min(self.m.cpus, key=lambda c: (c.nr_tasks, c.id))

    def spawn(self, program: Callable[..., Any], args: tuple = (), *, parent: Task | None = None,
              mm: Any = None, replay: list | None = None) -> Task:
        pid = self.next_pid
        self.next_pid += 1
        if parent is None:
            lineage = str(pid)
        else:
            parent.nforks += 1
            lineage = f"{parent.lineage}.{parent.nforks}"
        cpu = self._place()
        cpu.nr_tasks += 1
        task = Task(pid, lineage, parent, program, args, cpu, mm)
        task.row = self.m.acct.row_for(lineage, "core")
        task.replay = replay
        if parent is not None:
            parent.children.append(task)
            task.ready_at = parent.cpu.clock
            task.uid, task.gid, task.sigign, task.sp = parent.uid, parent.gid, parent.sigign, parent.sp
        self.tasks[pid] = task
        self.m.pid_lineage[pid] = lineage
        self._make_runnable(task)
        return task

    def spawn_kthread(self, name: str, program: Callable[..., Any]) -> Task:
        """A kernel thread (``kernel_thread``): no mm, no parent, lineage ``name``, left out of
        a run's results.  Made on first use, so runs that never need one are unchanged."""
        pid = self.next_pid
        self.next_pid += 1
        cpu = self._place()
        cpu.nr_tasks += 1
        task = Task(pid, name, None, program, (), cpu, None)
        task.kthread = True
        task.row = self.m.acct.row_for(name, "core")
        cur = self.current
        task.ready_at = cur.cpu.clock + self.m.acct.ns if cur is not None else self.engine.now
        self.tasks[pid] = task
        self.m.pid_lineage[pid] = name
        self._make_runnable(task)
        return task

    def sys_kswapd(self, task: Task) -> Any:
        """The kswapd thread's round (:meth:`mmframe.mm.vmscan.VmScan.kswapd_round`): it sleeps
        until woken once the zones are balanced and its I/O is done.  -ENOSYS for a user task."""
        if not task.kthread:
            return -ENOSYS
        if self.m.mm.vmscan.kswapd_round(task):
            task.state = BLOCKED
            return BLOCK
        return 0

    def _start(self, task: Task) -> None:
        """Create the program's generator and, for a forked child, replay the parent's calls."""
        ctx = UserContext(f"{self.m.config.seed}:{task.seed_key}:{task.nexec}",
                          getattr(task.mm, "layout", None))
        gen = task.program(ctx, *task.args)
        if not hasattr(gen, "send"):
            raise ProgramError(f"task {task.lineage}: program {_pname(task.program)} is not a generator function")
        task.gen = gen
        if task.replay is None:
            return
        entries, task.replay = task.replay, None
        try:
            call = gen.send(None)
            for name, value, raised in entries:
                if not isinstance(call, tuple) or call[0] != name:
                    raise ProgramError(f"task {task.lineage}: program {_pname(task.program)} is not deterministic: "
                                       f"fork replay expected {name!r}, program issued {call!r}")
                call = gen.throw(value) if raised else gen.send(value)
        except StopIteration:
            raise ProgramError(f"task {task.lineage}: program ended during fork replay") from None
        if not isinstance(call, tuple) or call[0] != "fork":
            raise ProgramError(f"task {task.lineage}: program {_pname(task.program)} is not deterministic: "
                               f"fork replay reached {call!r} where the parent forked")
        task.log = list(entries) + [("fork", 0, False)]
        task.resume = 0

    def _make_runnable(self, task: Task) -> None:
        task.state = RUNNABLE
        task.cpu.nr_running += 1
        self.rq.append(task)

    def wake(self, task: Task, result: Any) -> None:
        """Make a blocked task runnable with ``result`` as its syscall's return value."""
        if task.state != BLOCKED:
            return
        task.resume = result
        task.log.append((task.blocked_in, result, False))
        task.ready_at = self.engine.now
        self._make_runnable(task)

    def wake_io(self, task: Task) -> None:
        """The I/O ``task`` slept for at the end of its call has completed: deliver the call's
        result (see :meth:`mmframe.block.genhd.BlockLayer.io_sleep`)."""
        if task.state != BLOCKED or task.io_result is None:
            return
        (result, logged), task.io_result = task.io_result, None
        task.resume = result
        if logged:
            task.log.append((task.blocked_in, result, False))
        task.ready_at = self.engine.now
        self._make_runnable(task)

    def block(self, task: Task) -> Any:
        """Put ``task`` to sleep in its system call: the handler returns this, and a later
        :meth:`wake` (or :meth:`wake_signal`) gives the call its result."""
        task.state = BLOCKED
        return BLOCK

    def wake_signal(self, task: Task, sig: SimSignal) -> None:
        """Make a blocked task runnable with ``sig`` raised into it at its system call (a write to
        a pipe whose last reader went: SIGPIPE)."""
        if task.state != BLOCKED:
            return
        task.resume, task.throw = None, sig
        task.log.append((task.blocked_in, sig, True))
        task.ready_at = self.engine.now
        self._make_runnable(task)

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        rq, engine, cpus = self.rq, self.engine, self.m.cpus
        while True:
            if not rq:
                if engine.idle() and not self.m.block.run_queues():
                    return
                if engine.idle():
                    continue
                engine.fire_until(engine.heap[0][0])
                continue
            task = rq.popleft()
            task.cpu.nr_running -= 1
            self._run_slice(task)
            if engine.heap:
                busy = [c.clock for c in cpus if c.nr_running]
                if busy:
                    engine.fire_until(min(busy))
                elif not engine.idle():  # kernel timers alone do not move an idle machine on
                    engine.fire_until(engine.heap[0][0])

    def _run_slice(self, task: Task) -> None:
        m = self.m
        cpu, acct = task.cpu, m.acct
        acct.row, acct.task = task.row, task.lineage
        self.current = task
        acct.ns = 0.0
        if task.ready_at > cpu.clock:
            cpu.idle_ns += task.ready_at - cpu.clock
            cpu.clock = task.ready_at
        if cpu.current is not task:
            if cpu.current is not None:
                cpu.context_switches += 1
                acct.charge(m.P.context_switch)
            cpu.current = task
            m.tlb.switch_mm(cpu, task.mm)
        if task.gen is None:
            self._start(task)
        handlers, trace, P_sys = self.handlers, self.trace, m.P.syscall
        ns_sys = acct.ns_of[P_sys]
        for _ in range(m.config.timeslice):
            if task.throw is None:  # _step's common case inline: resume with the last result
                try:
                    call = task.gen.send(task.resume)
                except Exception as exc:
                    call = self._ended(task, exc)
                else:
                    if type(call) is not tuple or not call or not isinstance(call[0], str):
                        call = self._not_a_call(task, call)
            else:
                call = self._step(task)
            if call is None:
                break
            task.nsys += 1
            if trace is not None:
                trace.append((task.lineage, task.nsys))
            acct.row[P_sys] += 1  # acct.charge(P_sys), inline
            acct.ns += ns_sys
            try:
                handler = handlers.get(call[0])
                result = handler(task, *call[1:]) if handler is not None else -ENOSYS
            except SimSignal as sig:
                task.throw = sig
                task.log.append((call[0], sig, True))
                continue
            except Killed:
                break
            except TypeError as exc:
                if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:  # binding failed
                    raise ProgramError(f"task {task.lineage}: bad arguments to {call[0]}: {exc}") from None
                raise
            if result is BLOCK:
                task.blocked_in = call[0]
                break
            if (task.io_pending or task.io_wait) and self.m.block.io_sleep(
                    task, call[0], None if result is RESTART else 0 if result is YIELD else result,
                    result is not RESTART):
                break
            if result is RESTART:
                task.resume = None
                continue
            if result is YIELD:
                task.log.append((call[0], 0, False))
                task.resume = 0
                break
            task.log.append((call[0], result, False))
            task.resume = result
            if task.state != RUNNABLE:
                break
        cpu.clock += acct.ns
        acct.ns = 0.0
        if task.state == RUNNABLE:
            self._make_runnable(task)

    def _step(self, task: Task) -> tuple | None:
        """Resume the program with its last result (or signal); its next call, or None if it ended.
        (:meth:`_run_slice` inlines the case without a signal.)"""
        try:
            if task.throw is not None:
                sig, task.throw = task.throw, None
                call = task.gen.throw(sig)
            else:
                call = task.gen.send(task.resume)
        except Exception as exc:
            return self._ended(task, exc)
        if type(call) is not tuple or not call or not isinstance(call[0], str):
            self._not_a_call(task, call)
        return call

    def _ended(self, task: Task, exc: Exception) -> None:
        """The program raised ``exc`` when resumed: it returned (exit with its code), a signal
        killed it, or it is broken (:class:`ProgramError`)."""
        if isinstance(exc, StopIteration):
            code = exc.value if isinstance(exc.value, int) else 0
            self.do_exit(task, (code & 0xFF) << 8)
            return None
        if isinstance(exc, SimSignal):  # uncaught: the default action kills the task
            task.signal = exc
            self.do_exit(task, exc.signo & 0x7F)
            return None
        if isinstance(exc, ProgramError):
            raise exc
        raise ProgramError(f"task {task.lineage}: program {_pname(task.program)} raised "
                           f"{type(exc).__name__}: {exc}") from exc

    def _not_a_call(self, task: Task, call: Any) -> None:
        raise ProgramError(f"task {task.lineage}: program {_pname(task.program)} yielded {call!r}, "
                           "not a system call (use the constructors in mmframe.usr)")

    # --- process system calls -------------------------------------------------------------
    def sys_getpid(self, task: Task) -> int:
        return task.pid

    def sys_signal(self, task: Task, signo: Any, handler: Any) -> int:
        """signal(2) for the dispositions the model has: SIG_IGN or SIG_DFL (the previous one is
        returned); SIGKILL cannot be ignored (-EINVAL)."""
        if type(signo) is not int or not 1 <= signo < 64 or signo == SIGKILL or handler not in (SIG_DFL, SIG_IGN):
            return -EINVAL
        old = SIG_IGN if signo in task.sigign else SIG_DFL
        task.sigign = task.sigign | {signo} if handler == SIG_IGN else task.sigign - {signo}
        return old

    def sys_getuid(self, task: Task) -> int:
        return task.uid

    def sys_setuid(self, task: Task, uid: Any) -> int:
        """setuid(2) without saved ids: root may become anyone; others only themselves (EPERM)."""
        if type(uid) is not int or not 0 <= uid < 1 << 16:
            return -EINVAL
        if task.uid != 0 and uid != task.uid:
            return -EPERM
        task.uid = uid
        return 0

    def sys_setgid(self, task: Task, gid: Any) -> int:
        if type(gid) is not int or not 0 <= gid < 1 << 16:
            return -EINVAL
        if task.uid != 0 and gid != task.gid:
            return -EPERM
        task.gid = gid
        return 0

    def sys_sched_yield(self, task: Task) -> Any:
        return YIELD

    def sys_sleep(self, task: Task, ns: int) -> Any:
        if not isinstance(ns, int) or ns < 0:
            return -EINVAL
        task.state = BLOCKED
        self.engine.at(task.cpu.clock + self.m.acct.ns + ns, self.wake, task, 0)
        return BLOCK

    def sys_fork(self, task: Task, child_fn: Callable[..., Any] | None = None, args: tuple = ()) -> int:
        self.m.acct.charge(self.m.P.copy_process)
        if not self.m.mm.task_created(self.next_pid):
            return -ENOMEM
        mm = self.m.mm.dup_mm(task) if task.mm is not None else None
        if isinstance(mm, int):  # -ENOMEM and friends from the mm layer
            self.m.mm.task_released(self.next_pid)
            return mm
        if child_fn is None:
            child = self.spawn(task.program, task.args, parent=task, mm=mm, replay=list(task.log))
            child.nexec, child.seed_key = task.nexec, task.seed_key
        else:
            child = self.spawn(child_fn, tuple(args), parent=task, mm=mm)
        self.m.fs.dup_files(task, child, share=False)
        return child.pid

    def sys_clone(self, task: Task, fn: Callable[..., Any], args: tuple = ()) -> int:
        if not callable(fn):
            return -EINVAL
        self.m.acct.charge(self.m.P.copy_process)
        if not self.m.mm.task_created(self.next_pid):
            return -ENOMEM
        if task.mm is not None:
            task.mm.users += 1
        child = self.spawn(fn, tuple(args), parent=task, mm=task.mm)
        self.m.fs.dup_files(task, child, share=True)
        return child.pid

    def sys_execve(self, task: Task, program: Any, args: tuple = ()) -> Any:
        """``program`` is a path of the file system or a program (its image is installed at
        /bin/<name> on first use).  -ENOENT for no such file, -EACCES for a file that is not an
        executable, -ENOMEM if no new mm could be had (the old image intact)."""
        inode = self.m.fs.open_exec(program)
        if isinstance(inode, int):
            return inode
        self.m.acct.charge(self.m.P.exec_process)
        file = File(inode, FMODE_READ)  # open_exec; the mappings take their own references
        r = exec_mmap(self.m.mm, task, inode, file)
        self.m.mm.put_object(file)
        if r < 0:
            return r
        task.program, task.args = inode.image.program, tuple(args)
        task.nexec += 1
        task.seed_key = task.lineage
        task.log = []
        task.gen = None
        self._start(task)
        return RESTART

    def sys_exit(self, task: Task, code: int = 0) -> Any:
        self.do_exit(task, (int(code) & 0xFF) << 8)
        return BLOCK

    def do_exit(self, task: Task, status: int) -> None:
        if task.state in (ZOMBIE, DEAD):
            return
        if task.state == RUNNABLE and task in self.rq:
            self.rq.remove(task)
            task.cpu.nr_running -= 1
        task.status = status
        task.cpu.nr_tasks -= 1
        self.m.acct.charge(self.m.P.exit_process)
        if task.mm is not None:
            self.m.mm.exit_mm(task)
        self.m.fs.exit_files(task)
        self.m.mm.task_released(task.pid)
        for child in task.children:  # orphans are reaped by "init" when they exit
            child.parent = None
            if child.state == ZOMBIE:
                child.state = DEAD
        task.gen = None
        parent = task.parent
        if parent is None or parent.state in (ZOMBIE, DEAD):
            task.state = DEAD
            return
        task.state = ZOMBIE
        if parent.wait_pid in (-1, task.pid):  # parent is blocked in wait() for it
            task.state = DEAD
            parent.children.remove(task)
            parent.wait_pid = 0
            self.wake(parent, (task.pid, status))
        else:
            parent.zombies.append(task)

    def kill(self, task: Task, signo: int) -> None:
        """Kill ``task`` from inside a system call (the out-of-memory killer's SIGKILL): the
        handler then raises :class:`~mmframe.mm.fault.Killed`, which ends the time slice."""
        task.signal = SimSignal(signo)
        self.do_exit(task, signo & 0x7F)

    def sys_wait(self, task: Task, pid: int = -1) -> Any:
        for z in task.zombies:
            if pid in (-1, z.pid):
                task.zombies.remove(z)
                task.children.remove(z)
                z.state = DEAD
                return (z.pid, z.status)
        if not any(pid in (-1, c.pid) for c in task.children):
            return -ECHILD
        task.wait_pid = pid
        task.state = BLOCKED
        return BLOCK



def _pname(fn: Any) -> str:
    return getattr(fn, "__qualname__", repr(fn))
