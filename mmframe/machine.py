"""Assemble a Machine from a config: cost table, CPUs and TLBs, event engine, scheduler, memory,
resolved plugin hooks; run programs on it and return their program-visible results and costs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Mapping

import attrs

from mmframe import HOOK_CONTRACT_VERSION, __version__, syscalls
from mmframe.config import Config, load_config
from mmframe.aio import Aio
from mmframe.block.genhd import BlockLayer, make_device
from mmframe.costs import Account, CostEntry, CostTable
from mmframe.cpu import CPU, TLB
from mmframe.config import DiskConfig
from mmframe.errors import PluginError, SimOops
from mmframe.fs import FileSystem
from mmframe.mm import fault_inject
from mmframe.mm.memory import Memory
from mmframe.mm.page import PAGE_SIZE, ZONE_HIGHMEM
from mmframe.mm.page_alloc import PageAllocator
from mmframe.mm.pdflush import Pdflush
from mmframe.mm.shm import ShmIds
from mmframe.mm.slab import KmemCache
from mmframe.plugin import CORE, build_hooks, call_lifecycle, call_one, hook_scopes
from mmframe.sched import BLOCKED, EventEngine, ProgramError, Scheduler
from mmframe.usr import SimSignal

PID_RESULTS = frozenset({"fork", "clone", "getpid"})


@attrs.frozen(slots=True)
class TaskResult:
    """What one task saw: its system calls and their results (pids as lineages), how it ended."""

    lineage: str
    calls: tuple[tuple[str, Any], ...]
    status: int | None
    signal: SimSignal | None


@attrs.frozen(slots=True)
class RunResult:
    """The outcome of :meth:`Machine.run`: program-visible results per task, and the costs."""

    tasks: Mapping[str, TaskResult]
    blocked: tuple[str, ...]
    sim_ns: float
    syscalls: int
    counts: Mapping[str, int]
    tlb: Mapping[str, int]
    context_switches: int
    events: int
    interleaving: tuple[tuple[str, int], ...] | None
    manifest: Mapping[str, Any]
    disk: Mapping[str, Any] | None = None  # per file: what the device holds and what is left to write
    io: tuple[tuple, ...] | None = None  # the set of bio completions (owner, rw, sector, sectors, error, data), sorted
    oops: str | None = None  # the simulated oops that ended the run (SimOops.result only), if any


class Machine:
    """One simulated i386 box built from a :class:`~mmframe.config.Config`."""

    def __init__(self, config: Config | None = None) -> None:
        self.cfg = config if config is not None else load_config()
        self.config = self.cfg.machine
        self.enabled = self.cfg.enabled
        catalog = self.cfg.catalog
        self.hooks = build_hooks(catalog, self.enabled)
        self.costs = self._cost_table()
        self.P = SimpleNamespace(**{n: i for n, i in self.costs.id.items() if n.isidentifier()})
        self.acct = Account(self.costs)
        self.cpus = [CPU(i) for i in range(self.config.cpus)]
        self.tlb = TLB(self.cpus, self.acct, self.costs.id)
        self.engine = EventEngine()
        self.pid_lineage: dict[int, str] = {}
        self.plugin_state: dict[str, Any] = {}
        self.sched = Scheduler(self)
        self.pagealloc = PageAllocator(self.config.memory, self.config.cpus, self.config.pae,
                                       self.config.highpte, self.acct, self.costs.id)
        self.pagealloc.plugin_state = self.plugin_state  # the allocation hooks' ``alloc.plugin_state``
        self._alloc_hook = self.policy("mmframe_alloc_pages")
        self._free_hook = self.policy("mmframe_free_pages")
        # the core's allocation policy alone: bulk paths may take runs from the allocator directly
        self.core_alloc = self.hooks.resolved["mmframe_alloc_pages"].owners == (CORE,)
        self.core_free = self.hooks.resolved["mmframe_free_pages"].owners == (CORE,)
        # reservation sites (docs/reserve.md): None unless a plugin implements the hooks
        self._reserve_enter = self.policy("mmframe_reserve_enter")
        self._reserve_exit = self.policy("mmframe_reserve_exit")
        self.reserving = self._reserve_enter is not None
        self._entered: list[bool] = []  # per open site: whether a plugin's enter returned a mask
        self.oops: SimOops | None = None  # the oops that ended the last run, if any
        self.mm = Memory(self)
        self.block = BlockLayer(self)
        self._attach_swap()
        self.pdflush = Pdflush(self)  # write-back kernel threads, started at the first need
        self.fs = FileSystem(self)
        self.shm = ShmIds(self)
        self.aio = Aio(self)
        self.sched.handlers.update(syscalls.bind(self))
        self.pagealloc.drain_pages()  # boot's allocations (the radix-tree mempool) leave no per-CPU pages
        fi = fault_inject.install(self.pagealloc, self.config.fail_nth, self.config.fail_match,
                                  self.config.fail_below_free)
        self.reserving = self.reserving or (fi is not None and fi.match in fault_inject.SITES)
        if self.config.debug_vm == "syscall":
            self._check_every_syscall()
        for info in self._infos():  # each plugin sees only its own options
            call_one(info, "mmframe_configure", machine=self,
                     options=dict(self.cfg.plugin_options.get(info.name, {})))
        # when the page-table policy hooks can act (contract 1.15): the rest never calls them
        self.mm.scope_hooks(hook_scopes(self._infos(), self.hooks, self, self.cfg.plugin_options, self.costs.id))

    def _attach_swap(self) -> None:
        """``swapon`` of the ``[vm] swap`` area: on the ``swap_disk`` disk, or on a disk of its own
        named ``swap`` (ata-7200, deadline) after the file system's; none when the size is 0."""
        vc = self.cfg.vm
        pages = vc.swap >> 12
        if not pages:
            return
        if vc.swap_disk:
            dev = self.block.device(vc.swap_disk)
        else:
            dev = make_device(self.block, DiskConfig("swap", vc.swap + 4096, "deadline"))
            self.block.disks["swap"] = dev
        self.mm.swap.dev, self.mm.swap.pages, self.mm.swap.blk = dev, pages, self.block
        self.mm.swap.swap_map = type(self.mm.swap.swap_map)("H", bytes(2 * pages))
        self.mm.swap.swap_map[0] = 0x7FFF  # the swap header

    def _check_every_syscall(self) -> None:
        """debug_vm = "syscall": run the memory invariant checker after every system call."""
        check, handlers = self.mm.check, self.sched.handlers

        def checked(handler: Callable[..., Any]) -> Callable[..., Any]:
            def run(*args: Any) -> Any:
                try:
                    return handler(*args)
                finally:
                    check()
            return run

        for name in list(handlers):
            handlers[name] = checked(handlers[name])

    # --- policy hooks and physical memory -----------------------------------------------------
    def policy(self, hook: str) -> Callable[..., Any]:
        """The resolved callable of a policy hook.  When a plugin implements it, the counts made
        during the call go to that plugin's row of the current task (the core's otherwise)."""
        rh = self.hooks.resolved[hook]
        owners = [o for o in rh.owners if o != CORE]
        call = rh.call
        if not owners:
            return call
        owner, acct = owners[0], self.acct
        rows: dict[str, list[int]] = {}  # task lineage -> this owner's row (Account.row_for's lists)

        def row_of(task: str) -> list[int]:
            row = rows[task] = acct.row_for(task, owner)
            return row

        # fixed-arity wrappers for the hot hooks (forwarding *args costs more), *args for the rest
        nargs = len(getattr(self.hooks.pm.hook, hook).spec.argnames)
        if nargs == 4:
            def attributed4(a: Any, b: Any, c: Any, d: Any) -> Any:
                prev = acct.row
                acct.row = rows.get(acct.task) or row_of(acct.task)
                try:
                    return call(a, b, c, d)
                finally:
                    acct.row = prev
            return attributed4
        if nargs == 5:
            def attributed5(a: Any, b: Any, c: Any, d: Any, e: Any) -> Any:
                prev = acct.row
                acct.row = rows.get(acct.task) or row_of(acct.task)
                try:
                    return call(a, b, c, d, e)
                finally:
                    acct.row = prev
            return attributed5
        if nargs == 6:
            def attributed6(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any) -> Any:
                prev = acct.row
                acct.row = rows.get(acct.task) or row_of(acct.task)
                try:
                    return call(a, b, c, d, e, f)
                finally:
                    acct.row = prev
            return attributed6

        def attributed(*args: Any) -> Any:
            prev = acct.row
            acct.row = rows.get(acct.task) or row_of(acct.task)
            try:
                return call(*args)
            finally:
                acct.row = prev

        return attributed

    def alloc_pages(self, gfp: int, order: int = 0) -> int:
        """Allocate through the allocation policy hook on the current CPU: a pfn, or -1."""
        cur = self.sched.current
        if self.core_alloc:  # the core's policy alone: its implementation, one call fewer
            return self.pagealloc._alloc_pages(gfp, order, cur.cpu.id if cur is not None else 0)
        return self._alloc_hook(self.pagealloc, gfp, order, cur.cpu.id if cur is not None else 0)

    def free_pages(self, pfn: int, order: int = 0) -> None:
        """Free a block whose last reference is gone, through the free policy hook."""
        cur = self.sched.current
        if self.core_free:  # the core's policy alone: its implementation, one call fewer
            self.pagealloc.free_pages(pfn, order, cur.cpu.id if cur is not None else 0)
            return
        self._free_hook(self.pagealloc, pfn, order, cur.cpu.id if cur is not None else 0)

    def current_cpu(self) -> int:
        """The CPU of the running task (0 outside a task)."""
        cur = self.sched.current
        return cur.cpu.id if cur is not None else 0

    def reserve_enter(self, site: str, gfp: int, nr_pages: int) -> int:
        """Before the lock of reservation site ``site`` (call only when ``reserving``): the gfp mask
        the allocations under the lock use (a plugin's, else ``gfp``).  Fault injection matching
        this site counts the allocations made from here to :meth:`reserve_exit`."""
        g = None
        if self._reserve_enter is not None:
            g = self._reserve_enter(self.pagealloc, site, gfp, nr_pages, self.current_cpu())
        self._entered.append(g is not None)
        fi = self.pagealloc.fault_inject
        if fi is not None:
            fi.site = site
        return gfp if g is None else g

    def reserve_exit(self, site: str, nr_pages: int) -> None:
        """After the lock of ``site``: the plugin's exit hook if its enter hook returned a mask."""
        fi = self.pagealloc.fault_inject
        if fi is not None:
            fi.site = None
        if self._entered.pop():
            self._reserve_exit(self.pagealloc, site, nr_pages, self.current_cpu())

    def kmem_cache(self, name: str, size: int, align: int = 4) -> KmemCache:
        """The named kernel-object cache, created on first use."""
        cache = self.pagealloc.kernel_objects.get(name)
        if cache is None:
            cache = self.pagealloc.kernel_objects[name] = KmemCache(self, name, size, align)
        return cache

    def meminfo(self) -> dict[str, int]:
        """``/proc/meminfo`` of 2.5.49 (kB) with mmframe's labelled extras (``mmframe.*``)."""
        pa = self.pagealloc
        kb = lambda pages: pages * (PAGE_SIZE >> 10)  # noqa: E731
        total = pa.npages - pa.reserved_pages
        high = pa.zone_by_idx.get(ZONE_HIGHMEM)
        high_total = high.present_pages if high else 0
        free = pa.nr_free_pages()
        high_free = high.free_pages if high else 0
        chains = pa.kernel_objects.get("pte_chain")
        vm, swap = self.mm, self.mm.swap
        return {
            "MemTotal": kb(total), "MemFree": kb(free),
            "HighTotal": kb(high_total), "HighFree": kb(high_free),
            "LowTotal": kb(total - high_total), "LowFree": kb(free - high_free),
            "Cached": kb(len(self.mm.page_cache)),
            "Dirty": kb(sum(len(i.mapping.dirty) for i in self.fs.live_inodes())),
            "Active": kb(vm.vmscan.nr_active()), "Inactive": kb(vm.vmscan.nr_inactive()),
            "SwapCached": kb(len(swap.cache.page_tree.values()) if swap.pages else 0),
            "SwapTotal": kb(max(swap.pages - 1, 0)), "SwapFree": kb(swap.nr_swap_pages()),
            "Writeback": kb(len(vm.pins)),
            "Committed_AS": kb(vm.committed),
            "PageTables": kb(pa.page_table_pages),
            "mmframe.PageTablesLow": kb(pa.page_table_pages - self.mm.highmem_pte_pages()),
            "ReverseMaps": self.reverse_maps(),
            "mmframe.PteChainBytes": chains.bytes if chains else 0,
            "mmframe.MemMapBytes": pa.mem_map_bytes,
            "mmframe.KernelObjectBytes": sum(c.bytes for c in pa.kernel_objects.values()),
            "mmframe.PerCpuPages": sum(z.pcp_pages() for z in pa.zones),
        }

    def reverse_maps(self) -> int:
        """Number of rmap entries (``ReverseMaps:``: pte addresses on all pages' chains)."""
        return self.mm.reverse_maps()

    def _infos(self) -> list[Any]:
        cat = self.cfg.catalog
        return [cat.core, *(cat.plugins[n] for n in self.enabled)]

    def close(self) -> dict[str, Any]:
        """Collect plugins' figures (``mmframe_report``) and tear down (``mmframe_unconfigure``)."""
        figures: dict[str, Any] = {}
        for info in self._infos():
            call_one(info, "mmframe_report", machine=self, figures=figures)
        for info in reversed(self._infos()):
            call_one(info, "mmframe_unconfigure", machine=self)
        self.block.close()
        return figures

    def _cost_table(self) -> CostTable:
        table = CostTable.default()
        catalog = self.cfg.catalog
        for owner, entries in zip((CORE, *self.enabled),
                                  call_lifecycle(catalog, self.enabled, "mmframe_cost_entries")):
            for e in entries or ():
                if not isinstance(e, CostEntry) or (owner != CORE and not e.name.startswith(owner + ".")):
                    raise PluginError(f"plugin {owner!r}: mmframe_cost_entries must return CostEntry objects "
                                      f"named '{owner}.<primitive>', got {e!r}", plugin=owner,
                                      hook="mmframe_cost_entries")
                try:
                    table.add(attrs.evolve(e, owner=owner))
                except ValueError as exc:
                    raise PluginError(f"plugin {owner!r}: {exc}", plugin=owner, hook="mmframe_cost_entries") from exc
        if self.config.costs:
            table.override(self.config.costs)
        return table

    def manifest(self) -> dict[str, Any]:
        """What makes a run reproducible: seed, config, plugins with versions, cost-table digest."""
        cat = self.cfg.catalog
        return {
            "mmframe": __version__,
            "hook_contract": HOOK_CONTRACT_VERSION,
            "seed": self.config.seed,
            "config_sources": list(self.cfg.sources),
            "machine": attrs.asdict(self.config),
            "plugins": {n: {"distribution": cat.plugins[n].dist, "version": cat.plugins[n].version,
                            "options": dict(self.cfg.plugin_options.get(n, {}))} for n in self.enabled},
            "cost_table": {"name": self.costs.name, "digest": self.costs.digest()},
        }

    def run(self, program: Callable[..., Any], *args: Any, trace: bool = False) -> RunResult:
        """Run ``program(ctx, *args)`` as pid 1 until every task has ended or blocks forever."""
        sched = self.sched
        self.mm.task_created(sched.next_pid)
        root = sched.spawn(program, tuple(args), mm=self.mm.new_mm())
        root.ready_at = max(c.clock for c in self.cpus)
        sched.trace = [] if trace else None
        try:
            sched.run()
            if self.config.debug_vm != "off":
                self.mm.check()
        except SimOops as oops:  # the run ends with its report; the state is an oopsed kernel's
            self.oops = oops
            oops.result = self._result(sched.trace)  # the results so far, with RunResult.oops set
            raise
        except (ProgramError, PluginError):
            raise
        except Exception as exc:
            hit = self.hooks.attribute(exc)
            if hit is not None:
                plugin, hook = hit
                raise PluginError(f"plugin {plugin!r} raised in {hook}: {type(exc).__name__}: {exc}",
                                  plugin=plugin, hook=hook) from exc
            raise
        return self._result(sched.trace)

    def _result(self, trace: list | None) -> RunResult:
        sched, lin = self.sched, self.pid_lineage
        tasks = {}
        for t in sched.tasks.values():
            calls = tuple((name, _normalize(name, value, raised, lin)) for name, value, raised in t.log)
            if t.kthread:
                continue
            tasks[t.lineage] = TaskResult(t.lineage, calls, t.status, t.signal)
        disk = self.fs.disk_state()
        return RunResult(
            tasks=tasks,
            blocked=tuple(t.lineage for t in sched.tasks.values() if t.state == BLOCKED and not t.kthread),
            sim_ns=max(c.clock for c in self.cpus),
            syscalls=sum(t.nsys for t in sched.tasks.values()),
            counts=self.acct.totals(),
            tlb=dict(self.tlb.counts),
            context_switches=sum(c.context_switches for c in self.cpus),
            events=self.engine.fired,
            interleaving=tuple(trace) if trace is not None else None,
            manifest=self.manifest(),
            disk=disk,
            io=tuple(sorted(self.block.log, key=repr)) if disk is not None else None,  # an oracle has no device
            oops=str(self.oops) if self.oops is not None else None,
        )


def _normalize(name: str, value: Any, raised: bool, lin: Mapping[int, str]) -> Any:
    if raised:
        return value
    if name in PID_RESULTS and isinstance(value, int) and value > 0:
        return lin.get(value, value)
    if name == "wait" and isinstance(value, tuple):
        return (lin.get(value[0], value[0]), value[1])
    return value
