"""Asynchronous I/O (2.5.49 ``fs/aio.c``, Ben LaHaise; the system calls "first appeared in Linux
2.5", io_setup(2)): ``io_setup``, ``io_submit``, ``io_getevents``, ``io_destroy``, ``io_cancel``.

In mainline 2.5.49 an ``O_DIRECT`` iocb runs synchronously inside ``io_submit``
(``generic_file_direct_IO`` waits for its bios; the event is posted before ``io_submit`` returns),
as do buffered ones.  With ``[machine] aio_dio = true`` -- Badari Pulavarty's AIO-DIO patch
(``aio-direct-io.patch``, 2.5.49-mm1; merged in 2.5.55) -- an ``O_DIRECT`` iocb's bios are
submitted and ``io_submit`` returns; the event is posted when the last bio completes
(``dio_bio_end_aio`` -> ``aio_complete``), through the event engine.

Errnos as 2.5.49's: io_setup -EINVAL for ``nr_events <= 0``, -EAGAIN above ``aio_max_nr`` (65536)
in all; io_submit -EINVAL for a bad context or ``nr < 0``, per iocb -EFAULT (not an iocb), -EBADF
(descriptor, or one not opened for the operation), -EINVAL (opcode, argument overflow), -EAGAIN
(the ring is full); it returns how many it queued, or the first iocb's error.  An iocb's own I/O
error (a misaligned ``O_DIRECT`` request: -EINVAL) is its event's ``res``, as ``aio_complete``
posts it.  io_getevents -EINVAL for a bad context or ``min_nr > nr``; io_cancel -EINVAL for an
unknown iocb, -EAGAIN for one in flight (direct I/O has no ``ki_cancel``); io_destroy -EINVAL for
a bad context, else it waits for the context's requests and returns 0.

*Departures*: a context id is a small number, not the address of a ring mapped in the process
(``aio_setup_ring``), and the ring holds ``nr_events`` (2.5 rounds up to whole pages); an exiting
task does not wait for its contexts' requests (2.5's ``exit_aio`` does): they complete later, once,
release their pins, and their events are dropped (counted in ``events_dropped``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from mmframe.block.bio import READ, WRITE
from mmframe.fs import FMODE_READ, FMODE_WRITE
from mmframe.sched import BLOCK, BLOCKED
from mmframe.usr import (EAGAIN, EBADF, EFAULT, EINVAL, IOCB_CMD_PREAD, IOCB_CMD_PWRITE, O_DIRECT, Iocb)

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.sched import Task

AIO_MAX_NR = 0x10000  # /proc/sys/fs/aio-max-nr


class Kioctx:
    """``struct kioctx``: one context of one mm: in-flight requests, posted events, a waiter."""

    __slots__ = ("id", "mm", "nr", "active", "events", "waiter", "destroyer", "dead")

    def __init__(self, ctx_id: int, mm: Any, nr: int) -> None:
        self.id, self.mm, self.nr = ctx_id, mm, nr
        self.active: list[Iocb] = []  # in flight (identity: the iocb objects submitted)
        self.events: deque[tuple] = deque()  # (data, iocb, res, res2)
        self.waiter: tuple | None = None  # (task, min_nr, nr) sleeping in io_getevents
        self.destroyer: Task | None = None  # sleeping in io_destroy
        self.dead = False


class Aio:
    """The machine's AIO contexts and their system calls."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.async_dio = bool(machine.config.aio_dio)
        self.ctxs: dict[int, Kioctx] = {}
        self.next_id = 1
        self.aio_nr = 0
        self.stats = {"submitted": 0, "completed": 0, "reaped": 0, "events_dropped": 0, "async": 0}
        self.latencies: list[float] = []  # ns from io_submit to aio_complete, per iocb
        self._t0: dict[int, float] = {}

    def lookup_ioctx(self, task: Task, ctx_id: Any) -> Kioctx | None:
        ctx = self.ctxs.get(ctx_id) if type(ctx_id) is int else None
        if ctx is None or ctx.dead or ctx.mm is not task.mm or ctx.mm.dead:
            return None
        return ctx

    # --- system calls ----------------------------------------------------------------------
    def sys_io_setup(self, task: Task, nr_events: Any) -> int:
        if type(nr_events) is not int or nr_events <= 0:
            return -EINVAL
        if nr_events > AIO_MAX_NR or self.aio_nr + nr_events > AIO_MAX_NR:
            return -EAGAIN
        self.aio_nr += nr_events
        ctx = Kioctx(self.next_id, task.mm, nr_events)
        self.next_id += 1
        self.ctxs[ctx.id] = ctx
        return ctx.id

    def sys_io_submit(self, task: Task, ctx_id: Any, iocbs: Any) -> int:
        ctx = self.lookup_ioctx(task, ctx_id)
        if ctx is None or not isinstance(iocbs, (list, tuple)):
            return -EINVAL
        done = 0
        for iocb in iocbs:
            err = self._submit_one(task, ctx, iocb)
            if err:
                break
            done += 1
        if self.async_dio:
            self.m.block.run_queues()
        return done or (err if iocbs else 0)

    def _submit_one(self, task: Task, ctx: Kioctx, iocb: Any) -> int:
        if not isinstance(iocb, Iocb):
            return -EFAULT
        if any(type(x) is not int for x in iocb[:5]) or iocb.nbytes < 0 or iocb.offset < 0:
            return -EINVAL
        if iocb.opcode == IOCB_CMD_PREAD:
            mode, rw = FMODE_READ, READ
        elif iocb.opcode == IOCB_CMD_PWRITE:
            mode, rw = FMODE_WRITE, WRITE
        else:
            return -EINVAL
        fs = self.m.fs
        f = fs.fget(task, iocb.fd, mode)
        if f is None:
            return -EBADF
        if len(ctx.active) + len(ctx.events) >= ctx.nr:
            return -EAGAIN
        self.stats["submitted"] += 1
        ctx.active.append(iocb)
        self._t0[id(iocb)] = self.m.block.now()
        if f.flags & O_DIRECT:
            dio = fs.dio
            err = dio.check(iocb.buf, iocb.nbytes, iocb.offset)
            if err:
                self.aio_complete(ctx, iocb, err)
                return 0
        if f.flags & O_DIRECT and not self.async_dio:  # mainline 2.5.49: the iocb waits for its bios
            self.aio_complete(ctx, iocb, dio.direct_io(task, f.inode, rw, iocb.buf, iocb.nbytes, iocb.offset,
                                                       wait_now=True))
            return 0
        if f.flags & O_DIRECT:  # the -mm1 AIO-DIO path
            state = {"done": False}

            def on_done(res: int) -> None:
                state["done"] = True
                self.aio_complete(ctx, iocb, res)

            self.stats["async"] += 1
            r = dio.direct_io(task, f.inode, rw, iocb.buf, iocb.nbytes, iocb.offset, on_done)
            if r < 0 and not state["done"]:
                self.aio_complete(ctx, iocb, r)
            return 0
        # mainline 2.5.49: the request runs to its end here (a direct one sleeps for its bios)
        call = fs.sys_pread if rw == READ else fs.sys_pwrite
        res = call(task, iocb.fd, iocb.buf, iocb.nbytes, iocb.offset)
        self.aio_complete(ctx, iocb, res)
        return 0

    def aio_complete(self, ctx: Kioctx, iocb: Iocb, res: int) -> None:
        """Post ``iocb``'s event (once); wake a waiter whose ``min_nr`` is now met."""
        ctx.active.remove(iocb)
        self.stats["completed"] += 1
        t0 = self._t0.pop(id(iocb), None)
        if t0 is not None:
            blk, cur = self.m.block, self.m.sched.current
            t = blk.now()
            if blk.irq_t is None and cur is not None and cur.io_wait > t:
                t = cur.io_wait  # a synchronous iocb: done when its last bio completed
            self.latencies.append(t - t0)
        if ctx.dead or ctx.mm.dead:
            self.stats["events_dropped"] += 1
        else:
            ctx.events.append((iocb.data, iocb, res, 0))
        w = ctx.waiter
        if w is not None and len(ctx.events) >= w[1]:
            ctx.waiter = None
            self._wake(w[0], self._reap(ctx, w[2]))
        if ctx.destroyer is not None and not ctx.active:
            t, ctx.destroyer = ctx.destroyer, None
            self._wake(t, 0)

    def _wake(self, task: Task, result: Any) -> None:
        blk = self.m.block
        if task.state != BLOCKED:
            return
        self.m.sched.wake(task, result)
        t = blk.now()
        if t > task.ready_at:
            task.ready_at = t

    def _reap(self, ctx: Kioctx, nr: int) -> list[tuple]:
        out = []
        while ctx.events and len(out) < nr:
            out.append(ctx.events.popleft())
        self.stats["reaped"] += len(out)
        return out

    def sys_io_getevents(self, task: Task, ctx_id: Any, min_nr: Any, nr: Any, timeout: Any = None) -> Any:
        ctx = self.lookup_ioctx(task, ctx_id)
        if ctx is None or type(min_nr) is not int or type(nr) is not int or min_nr < 0 or nr < 0 or min_nr > nr:
            return -EINVAL
        if timeout is not None and (type(timeout) is not int or timeout < 0):
            return -EINVAL
        if len(ctx.events) >= min_nr or timeout == 0:
            return self._reap(ctx, nr)
        ctx.waiter = (task, min_nr, nr)
        task.state = BLOCKED
        if timeout is not None:
            self.m.engine.at(task.cpu.clock + self.m.acct.ns + timeout, self._timeout, ctx, task)
        self.m.block.run_queues()  # the sleeper's blk_run_queues
        return BLOCK

    def _timeout(self, ctx: Kioctx, task: Task) -> None:
        if ctx.waiter is not None and ctx.waiter[0] is task:
            _, _, nr = ctx.waiter
            ctx.waiter = None
            self.m.sched.wake(task, self._reap(ctx, nr))

    def sys_io_destroy(self, task: Task, ctx_id: Any) -> Any:
        ctx = self.lookup_ioctx(task, ctx_id)
        if ctx is None:
            return -EINVAL
        ctx.dead = True
        self.aio_nr -= ctx.nr
        del self.ctxs[ctx.id]
        if not ctx.active:
            return 0
        ctx.destroyer = task  # wait_for_all_aios
        task.state = BLOCKED
        self.m.block.run_queues()
        return BLOCK

    def sys_io_cancel(self, task: Task, ctx_id: Any, iocb: Any) -> int:
        ctx = self.lookup_ioctx(task, ctx_id)
        if ctx is None:
            return -EINVAL
        if any(a is iocb for a in ctx.active):
            return -EAGAIN  # no ki_cancel for direct I/O in 2.5
        return -EINVAL

    def figures(self) -> dict[str, Any]:
        return dict(self.stats)
