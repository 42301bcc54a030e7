"""The machine's block layer: its disks by name (2.5's ``drivers/block/genhd.c`` keeps the gendisk
list), the block devices' common part (sector data, the data transfer), bio completion, and how a
submitter waits for its I/O.

**Waiting.**  A system call runs to its end in mmframe's logical schedule, so a task waits for I/O
in one of two ways, both in simulated time through the one event engine:

* ``wait_async(bios)`` (write-back, fsync, msync): the call goes on; when it returns, the task
  sleeps until the last of its bios completes (the queue is unplugged then, as ``blk_run_queues``
  before sleeping), and its result is delivered on wake-up.
* ``wait_sync(bio)`` (a page-cache miss: ``readpage`` in a read or a fault, exec's faults): the
  data is needed now, so the device is run ahead until the bio completes -- in elevator order,
  with the requests queued so far -- and the task sleeps, when the call returns, until that
  completion time.  The simplification: requests other tasks submit in simulated time while the
  device runs ahead are not considered for the dispatches made ahead.

Either way the task's CPU is free while it sleeps.  Interrupt-time work (completion, dispatch,
the elevator choosing the next request) is counted on the ``<irq>`` row and not added to any
CPU's clock.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from mmframe.block.bio import Bio
from mmframe.block.bounce import bounce_end_io
from mmframe.block.device import BlockDevice
from mmframe.block.disk import PRESETS, Disk, RuemmlerWilkes, SeekFree
from mmframe.block.elevators import registry
from mmframe.block.ll_rw_blk import RequestQueue, queue_nr_requests
from mmframe.block.ramdisk import RamDisk
from mmframe.block.elevator import Elevator
from mmframe.errors import PluginError, UsageError
from mmframe.plugin import CORE

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.config import DiskConfig
    from mmframe.machine import Machine
    from mmframe.sched import Task

IRQ = "<irq>"


class BlockLayer:
    """The disks of one machine and the submit/complete/wait paths (see the module docstring)."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.engine = machine.engine
        self.P = machine.P
        self.irq_t: float | None = None
        self.log: list[tuple] = []  # completions: (owner, rw, sector, nr_sectors, data)
        self.keep_log = True
        self.elevators = registry(machine.cfg.elevator_entries())
        self.disks: dict[str, BlockDevice] = {}
        for dc in machine.cfg.disks:
            self.disks[dc.name] = make_device(self, dc)
        self._irq_row = machine.acct.row_for(IRQ, "core")
        self._p_end = self.P.blk_end_bio

    # --- time and interrupt context --------------------------------------------------------
    def now(self) -> float:
        """The submitting or completing context's simulated time (ns)."""
        if self.irq_t is not None:
            return self.irq_t
        cur = self.m.sched.current
        if cur is not None:
            return max(cur.cpu.clock + self.m.acct.ns, self.engine.now)
        return self.engine.now

    @contextmanager
    def irq(self, t: float) -> Iterator[None]:
        """Run as the device's interrupt at time ``t``: counted on the ``<irq>`` row, adding
        nothing to the interrupted context's time."""
        acct = self.m.acct
        prev_t, prev_row, prev_ns = self.irq_t, acct.row, acct.ns
        self.irq_t, acct.row = t, self._irq_row
        try:
            yield
        finally:
            self.irq_t, acct.row, acct.ns = prev_t, prev_row, prev_ns

    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        """Schedule ``fn(*args)`` to run in interrupt context at ``t`` (scenario drivers)."""
        self.engine.at(t, self._run_at, t, fn, args)

    def _run_at(self, t: float, fn: Callable[..., None], args: tuple) -> None:
        with self.irq(t):
            fn(*args)

    # --- submit and complete ------------------------------------------------------------------
    def device(self, name: str | None = None) -> BlockDevice:
        """The named disk, or the first configured one (the file system's)."""
        if name is None:
            return next(iter(self.disks.values()))
        return self.disks[name]

    def submit_bio(self, dev: BlockDevice, bio: Bio) -> None:
        """``submit_bio``: hand ``bio`` to ``dev`` (its queue, or a queueless driver)."""
        if not bio.owner:
            cur = self.m.sched.current
            bio.owner = cur.lineage if cur is not None and self.irq_t is None else ""
        bio.submitted_at = self.now()
        dev.submit_bio(bio)

    def end_bio(self, bio: Bio, err: int, t: float) -> None:
        """``bio_endio``: the bio is complete at ``t`` (once, whatever happens)."""
        if bio.bounced:
            bounce_end_io(self, bio)
        bio.done += 1
        bio.done_at = t
        bio.error = err
        acct = self.m.acct
        acct.row[self._p_end] += 1
        acct.ns += acct.ns_of[self._p_end]
        if self.keep_log:
            self.log.append((bio.owner, bio.rw, bio.sector, bio.size >> 9, err,
                             tuple(bio.data) if bio.data is not None else None))
        if bio.pinned:
            vm = self.m.mm
            for pfn, _, _ in bio.vecs:
                vm.unpin(pfn)
            bio.pinned = False
        if bio.end_io is not None:
            bio.end_io(bio, err)

    # --- waiting -------------------------------------------------------------------------------
    def pin_pages(self, bio: Bio) -> None:
        """Hold a reference on each page of ``bio`` while it is in flight (page under write-back)."""
        vm = self.m.mm
        pins, count = vm.pins, vm.count
        for pfn, _, _ in bio.vecs:
            count[pfn] += 1
            pins[pfn] = pins.get(pfn, 0) + 1
        bio.pinned = True

    def wait_sync(self, dev: BlockDevice, bio: Bio) -> None:
        """The caller needs ``bio`` done now: run ``dev`` ahead until it is; the current task then
        sleeps until its completion time when its system call returns."""
        if not bio.done:
            dev.run_until(bio)
        task = self.m.sched.current
        if task is not None and self.irq_t is None and bio.done_at > task.io_wait:
            task.io_wait = bio.done_at

    def wait_async(self, bios: list[Bio]) -> None:
        """The current task sleeps, when its call returns, until every bio in ``bios`` completes."""
        task = self.m.sched.current
        if task is None or self.irq_t is not None:
            return
        for bio in bios:
            if bio.done:
                if bio.done_at > task.io_wait:
                    task.io_wait = bio.done_at
                continue
            task.io_pending += 1
            prev = bio.end_io
            bio.end_io = _waiter(self, task, prev)

    def run_queues(self) -> bool:
        """``blk_run_queues``: unplug every plugged queue; True if any was plugged."""
        any_plugged = False
        for dev in self.disks.values():
            q = dev.queue
            if q is not None and q.plugged:
                any_plugged = True
                q.unplug()
        return any_plugged

    def io_sleep(self, task: Task, call: str, result: Any, log: bool) -> bool:
        """At the end of ``task``'s system call ``call``: if it waits for I/O, put it to sleep
        (delivering ``result`` on wake-up, logged if ``log``) and return True."""
        self.run_queues()
        sched = self.m.sched
        now = task.cpu.clock + self.m.acct.ns
        task.blocked_in = call
        task.io_result = (result, log)
        if task.io_pending:
            task.state = "blocked"
            return True
        until, task.io_wait = task.io_wait, 0.0
        if until <= now:
            task.io_result = None
            return False
        task.state = "blocked"
        self.engine.at(until, sched.wake_io, task)
        return True

    def close(self) -> None:
        """Machine teardown: each queue's elevator ``exit``."""
        for dev in self.disks.values():
            if dev.queue is not None:
                dev.queue.elevator.exit()

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, dev in self.disks.items():
            for k, v in dev.figures().items():
                out[f"{name}.{k}"] = v
        return out


def _waiter(layer: BlockLayer, task: Any, prev: Callable[[Bio, int], None] | None) -> Callable[[Bio, int], None]:
    def end_io(bio: Bio, err: int) -> None:
        if prev is not None:
            prev(bio, err)
        if bio.done_at > task.io_wait:
            task.io_wait = bio.done_at
        task.io_pending -= 1
        if task.io_pending == 0 and task.io_result is not None and task.state == "blocked":
            until, task.io_wait = task.io_wait, 0.0
            layer.engine.at(until, layer.m.sched.wake_io, task)
    return end_io


def make_device(layer: BlockLayer, dc: DiskConfig) -> BlockDevice:
    """A device for a ``[block.<name>]`` config."""
    nr_sectors = dc.capacity >> 9
    if dc.model == "ramdisk":
        return RamDisk(layer, nr_sectors, dc.name)
    if dc.elevator not in layer.elevators:
        owner = layer.m.cfg.elevators.get(dc.elevator, (None, "?"))[1]
        raise UsageError(f"[block.{dc.name}] elevator {dc.elevator!r} comes from plugin {owner!r}, which this run "
                         f"does not enable (add it to [plugins] enable or use -p {owner})")
    cls, owner = layer.elevators[dc.elevator]
    m = layer.m
    if dc.model == "seekfree":
        model: Any = SeekFree(PRESETS["ata-7200"], nr_sectors)
    else:
        model = RuemmlerWilkes(PRESETS[dc.model], nr_sectors)
        nr_sectors = min(nr_sectors, model.capacity)
    nr = dc.nr_requests or queue_nr_requests(m.config.memory)
    bounce = m.mm.first_high - 1 if dc.bounce == "high" else None
    hook = f"mmframe_elevators ({cls.name!r}, disk {dc.name})"
    if owner != CORE:  # an exception in the elevator's code is then named with its plugin
        for klass in cls.__mro__:
            if klass is Elevator or klass is object or klass.__module__.startswith("mmframe."):
                continue  # a core class a plugin's elevator derives from (deadline) stays the core's
            for op, fn in vars(klass).items():
                code = getattr(fn, "__code__", None)
                if code is not None:
                    m.hooks.impl_codes.setdefault(code, (owner, f"{hook}: {op}"))
    try:
        elv = cls()
        q = RequestQueue(layer, dc.name, elv, nr, bounce)
        q.own_depth = bool(dc.nr_requests)
        elv.bind(q, m.costs.id, m.acct)
        options = dict(dc.elevator_options)
        if owner in m.cfg.plugin_options:  # a plugin's elevator also gets its plugin's options (docs/block.md)
            options = {**m.cfg.plugin_options[owner], **dc.plugin_options.get(owner, {}), **options}
        elv.init(q, options)
    except Exception as exc:  # noqa: BLE001 - named with its plugin
        raise PluginError(f"plugin {owner!r} raised in {hook}: {type(exc).__name__}: {exc}", plugin=owner,
                          hook="mmframe_elevators") from exc
    return Disk(layer, dc.name, nr_sectors, model, q)
