"""The plugin contract: every hook mmframe calls, documented and versioned.

Plugins implement hooks with ``@mmframe.hookimpl`` on functions named ``mmframe_*`` in the module
their entry point (group ``mmframe``) names.  Installing a plugin never enables it: a run enables it
by name (config ``[plugins] enable``, ``MMFRAME_PLUGINS``, ``-p NAME``).

Two kinds of hook:

* **registration/lifecycle** hooks (``mmframe_options``, ``mmframe_scenarios``,
  ``mmframe_cost_entries``, ``mmframe_configure``, ``mmframe_unconfigure``, ``mmframe_report``) run
  when a machine is built or finishes; they are called per plugin and are never on a hot path.
* **policy** hooks are ``firstresult``: the first implementation returning non-``None`` decides; the
  core registers the mainline policy last (``trylast``), so a plugin returning ``None`` defers to it.
  Two enabled plugins implementing the same policy hook is an error naming both distributions.

When a machine is built each hook is resolved into one plain callable taking the spec's arguments
positionally in the order documented (see :mod:`mmframe.plugin`); hooks nobody implements are not
called at all.  ``CONTRACT_VERSION`` follows semver: a minor bump adds hooks, a major bump breaks.
Each spec's ``since`` says which contract version introduced it.

The objects a hook receives are typed by :mod:`mmframe.facade` (``VM``, ``MM``, ``VMA``, ``Allocator``,
``MachineView``), versioned with this contract: a plugin imports only from ``mmframe.facade`` and
uses only what it declares, each primitive documenting the cost it charges (since 1.4).

Contract history: 1.0 registration and lifecycle hooks; 1.1 ``mmframe_alloc_pages`` and
``mmframe_free_pages``; 1.2 the page-table hooks; 1.3 ``mmframe_pte_change`` reason ``msync``; 1.4
the facade (:mod:`mmframe.facade`): the hooks' arguments are typed by its Protocols and plugins use
nothing else (no hook changed: the objects passed are the same, and what the facade declares they
already offered, under the names it gives); 1.5 ``mmframe_elevators`` (I/O schedulers, the 2.5.49
elevator operations: :mod:`mmframe.block.elevator`, docs/block.md); 1.6 facade names a plugin
elevator builds on (``Deadline``, ``rq_mergeable``, ``READ``/``WRITE``, the queue's ``name`` and
``set_depth_cap``); 1.7 ``VM.ptes_follow_vma`` (whether a PTE page's entries already carry a VMA's
protection, so a whole-table mprotect may stay at the PMD); 1.8 the facade's names for a scenario's
results (``Figure``, ``Axis``, ``Plot``, ``Reference``, ``OptionProblem``: docs/scenarios.md); 1.9
``mmframe_get_user_pages`` (the user-page mapping step of direct I/O, docs/direct_io.md) and the
facade's ``VM.get_user_pages``, ``follow_page``, ``put_user_pages``, ``find_extend_vma``, ``fault_in``,
``pin_user_page``, ``VM_IO``; 1.10
``mmframe_pte_change`` reasons ``referenced`` and ``swap_in``, and ``swap_out`` now really called
(reclaim, docs/reclaim.md); 1.11
read-only views for page-table walkers (the walker plugin's per-level walker, maps and smaps):
``PteTable.ptes``, ``MM.pmd``, ``VM.pgdir_shift``, ``VM.page_count``, ``VM.page_reserved``,
``pte_none``/``pte_present``/``pte_pfn``/``pte_write``/``pte_dirty`` and ``show_map`` (a line of
2.5's /proc/PID/maps); all free; 1.12
the reservation hooks ``mmframe_reserve_enter``/``mmframe_reserve_exit`` at the sites where 2.5.49
allocated atomically under a lock (docs/reserve.md), and the facade's ``reserve_local_pages``,
``release_local_pages``, ``ReserveError``, ``__GFP_RESERVE`` and ``Allocator.set_reservations``.
1.13
``mmframe_pte_change`` reason ``mremap`` (mremap moving entries: ``move_page_tables`` clearing an
entry in the old range and setting it in the new), the byte-granular content model, file positions
and the file, directory, pipe, mlock, madvise, mincore and uid/gid system calls (docs/files.md).
1.14
the facade's ``VMA.obj`` and ``vma_mapping`` (the ``address_space`` a VMA maps, compared by identity), ``VM.pte_page_lock`` and
``VM.i_mmap_visit`` (cost-only primitives for the shared-page-table patch's per-PTE-page lock and its
walk of an object's mappings), and ``pte_page_lock`` charged by ``pmd_share``, ``unshare`` and a shared
``pmd_drop`` (docs/pt_shared.md).
1.15
``mmframe_hook_scope`` and the facade's ``HookScope``: a plugin declares when its fault and
``pte_change`` hooks can have anything to do, and the cost entries its fault hook charges on every
fault it defers on, so the core skips the calls where the policy would only defer (the policy then
costs nothing on the common path) and charges those entries itself, per fault on the single path and
once per run on ``touch``'s bulk path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import attrs
import pluggy

from mmframe import HOOK_CONTRACT_VERSION as CONTRACT_VERSION

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.costs import CostEntry
    from mmframe.facade.mm import MM, VM, VMA, Allocator, MachineView
    from mmframe.options import Option
    from mmframe.scenario import Scenario

PROJECT = "mmframe"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["CONTRACT_VERSION", "FAULT_CASES", "HOOKS", "HookInfo", "HookScope", "hookimpl", "hookspec"]

#: the fault cases a :class:`HookScope` may name (contract 1.15): the fault's PMD slot has no PTE
#: page; a write through a write-protected PMD entry; the PTE page has more than one user
FAULT_CASES = ("no_pte", "pmd_wrprotect", "shared_pte")


def _names(v: Any) -> frozenset[str] | None:
    return None if v is None else frozenset([v] if isinstance(v, str) else v)


def _entries(v: Any) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v)


@attrs.frozen(slots=True)
class HookScope:
    """When a plugin's page-table policy hooks can have anything to do (contract 1.15: what
    :func:`mmframe_hook_scope` returns).  A field left ``None`` means every call, as without a scope.

    ``fault``: the cases of :data:`FAULT_CASES` in which ``mmframe_handle_mm_fault`` is called;
    ``fault_cost``: cost entry names the fault hook charges once on each fault it defers on outside
    them (the core charges them there instead); ``pte_change``: the reasons for which
    ``mmframe_pte_change`` is called whatever the table; ``pte_change_shared``: the reasons for
    which it is called on a PTE page with more than one user (``None``: every reason).
    """

    fault: frozenset[str] | None = attrs.field(default=None, converter=_names)
    fault_cost: tuple[str, ...] = attrs.field(default=(), converter=_entries)
    pte_change: frozenset[str] | None = attrs.field(default=None, converter=_names)
    pte_change_shared: frozenset[str] | None = attrs.field(default=None, converter=_names)


@attrs.frozen(slots=True)
class HookInfo:
    """What the reference says of a hook beyond its docstring."""

    name: str
    since: str
    kind: str  # "registration", "lifecycle" or "policy"
    hot: str  # cost on the hot path, in words
    firstresult: bool


HOOKS: dict[str, HookInfo] = {}


def _spec(kind: str, since: str, hot: str, firstresult: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        HOOKS[fn.__name__] = HookInfo(fn.__name__, since, kind, hot, firstresult)
        return hookspec(firstresult=firstresult)(fn)

    return mark


# --- registration -------------------------------------------------------------------------

@_spec("registration", "1.0", "never called on a hot path: once per plugin at discovery")
def mmframe_options() -> list[Option]:
    """Declare this plugin's options (:class:`mmframe.options.Option`).

    Called once for each loaded plugin, enabled or not, so ``mmframe plugins`` can list them and a
    config's ``[plugins.<name>]`` table can be validated.  Options with ``scope="queue"`` may also be
    set per disk in ``[block.<disk>.<name>]``.  Return a list (possibly empty).
    """


@_spec("registration", "1.0", "never on a hot path: once per machine build")
def mmframe_scenarios() -> list[Scenario]:
    """Register named scenarios (:class:`mmframe.scenario.Scenario`) that ``[scenario] name`` picks.

    Only enabled plugins' scenarios (and the core's) can be run; ``mmframe scenarios`` lists the
    others with the plugin they need.  Two scenarios with one name is an error naming both plugins.
    """


@_spec("registration", "1.0", "never on a hot path: once per machine build")
def mmframe_cost_entries() -> list[CostEntry]:
    """Add primitive operations this plugin performs (an elevator's tree step, say) to the cost
    table.  Names must be prefixed ``<plugin>.``; each entry cites its source or is marked fitted.
    A cost file (``[machine] costs``) may override their nanoseconds like any core entry.
    """


# --- lifecycle -------------------------------------------------------------------------------

@_spec("lifecycle", "1.0", "never on a hot path: once per machine build")
def mmframe_configure(machine: MachineView, options: dict[str, Any]) -> None:
    """A machine with this plugin enabled has been built; ``options`` are this plugin's validated
    options (defaults filled in).  Called once per enabled plugin, in registration order, before
    any task runs.  Keep per-machine state on ``machine.plugin_state[<name>]``, not in globals.
    """


@_spec("lifecycle", "1.0", "never on a hot path: once per run")
def mmframe_report(machine: MachineView, figures: dict[str, Any]) -> None:
    """The run has finished: add this plugin's own figures to ``figures`` (name -> number or
    text).  Names should be prefixed with the plugin's name.  Called once per enabled plugin.
    """


@_spec("lifecycle", "1.15", "never on a hot path: once per machine build, after mmframe_configure; it takes "
       "calls off the fault path")
def mmframe_hook_scope(machine: MachineView, options: dict[str, Any]) -> HookScope | None:
    """Declare when this plugin's ``mmframe_handle_mm_fault`` and ``mmframe_pte_change`` can have
    anything to do, so the core calls them only then: a policy that defers on the common path then
    costs nothing there.  Return a :class:`HookScope` (``mmframe.facade``), or ``None`` for every
    call (as before contract 1.15).  Called once per enabled plugin after ``mmframe_configure``,
    with this plugin's options.

    ``HookScope.fault``: the cases in which the core calls the plugin's fault hook, checked where it
    would be called (after the VMA check): ``"no_pte"``, the fault's PMD slot has no PTE page;
    ``"pmd_wrprotect"``, a write fault through a write-protected PMD entry; ``"shared_pte"``, the PTE
    page has more than one user.  Any other fault goes to the core's ``handle_mm_fault`` directly.
    ``HookScope.fault_cost``: cost entry names (core or the plugin's own) the fault hook charges once
    on each fault it defers on outside those cases (a lock the patched kernel took on every fault,
    say); the core charges them in its place, per fault on the single path and once per run for
    the run's count of faults on ``touch``'s bulk path, to the task's row (not the plugin's).
    ``HookScope.pte_change``: the reasons (:data:`mmframe.facade.REASONS` names) for which the core
    calls the plugin's ``mmframe_pte_change`` whatever the table; ``HookScope.pte_change_shared``:
    those for which it calls it when the PTE page has more than one user (``None``, the default:
    every reason).  With ``pte_change`` left ``None`` the hook is called on every write; otherwise
    other writes to a PTE page are the core's alone (a plugin naming reasons it leaves alone should
    compute the set from ``REASONS``, so a reason added later reaches it).

    The declaration is a promise the tests hold a plugin to: outside the declared cases its hook
    would have returned ``None`` having charged only ``fault_cost`` (each fault) or nothing
    (``pte_change``), so a run is the same with the scope as with every call.  With a scoped fault
    hook ``touch`` calls it for exactly the faults in scope (the first of a PTE page or not),
    filling the others in bulk.  A plugin may scope only hooks it implements; an unknown case,
    reason or cost entry is an error naming the plugin and hook.
    """


@_spec("lifecycle", "1.0", "never on a hot path: once per machine teardown")
def mmframe_unconfigure(machine: MachineView) -> None:
    """The machine is being torn down; release what ``mmframe_configure`` set up."""


# --- policy: allocation (issue: core memory 1/3) ------------------------------------------------

@_spec("policy", "1.1", "every page allocation: keep it O(1); return None to defer", firstresult=True)
def mmframe_alloc_pages(alloc: Allocator, gfp_mask: int, order: int, cpu: int) -> int | None:
    """Allocate ``2**order`` pages for ``gfp_mask`` (``mmframe.mm.page`` GFP flags) on CPU ``cpu``.

    Return the first pfn, ``-1`` for failure, or ``None`` to defer to the next implementation; the
    core's (``trylast``) is 2.5.49's ``__alloc_pages`` (``alloc.alloc_pages``).  A policy takes pages
    only through ``alloc``'s primitives (:class:`mmframe.facade.Allocator`), which charge their own
    costs.  Counts made while a plugin's implementation runs are
    attributed to that plugin.
    """


@_spec("policy", "1.1", "every page free: keep it O(1); return None to defer", firstresult=True)
def mmframe_free_pages(alloc: Allocator, pfn: int, order: int, cpu: int) -> bool | None:
    """The last reference to the block at ``pfn`` is gone: free it.  Return ``True`` if handled (a
    reservation pool kept the page, say) or ``None`` to defer; the core's (``trylast``) returns it to
    the per-CPU hot list (order 0) or the buddy lists.
    """


# --- policy: reservations (issue 21) ------------------------------------------------------------

@_spec("policy", "1.12", "once per reservation site (a pte_chain allocation, a PTE page, a page-cache "
       "insert); not called at all when nothing implements it", firstresult=True)
def mmframe_reserve_enter(alloc: Allocator, site: str, gfp_mask: int, nr_pages: int, cpu: int) -> int | None:
    """The core is about to take a lock under which it allocates up to ``nr_pages`` order-0 pages
    with ``gfp_mask`` at ``site`` (``"pte_chain_alloc"``, ``"pte_alloc_map"``,
    ``"radix_tree_insert"``: docs/reserve.md lists them with their masks and locks), on CPU ``cpu``.

    Return the gfp mask the allocations under the lock use instead (a reservation plugin reserves
    pages first, as akpm's ``reserve_local_pages()`` before ``spin_lock()``, and returns an atomic
    mask with ``__GFP_RESERVE``), or ``None`` to keep the period's mask.  Every call that returns
    non-``None`` is followed by one :func:`mmframe_reserve_exit` for the same site and CPU.
    """


@_spec("policy", "1.12", "once after each reservation site whose enter returned a mask", firstresult=True)
def mmframe_reserve_exit(alloc: Allocator, site: str, nr_pages: int, cpu: int) -> bool | None:
    """The lock taken after :func:`mmframe_reserve_enter` at ``site`` is dropped: release what was
    reserved for it (``release_local_pages()``).  Return ``True`` if handled."""


# --- policy: page tables (issue: core memory 2/3) ------------------------------------------------

@_spec("policy", "1.2", "once per populated PMD slot at fork; return None to defer", firstresult=True)
def mmframe_copy_pte_page(vm: VM, src: MM, dst: MM, idx: int) -> bool | None:
    """fork (``dup_mmap``): give the child ``dst`` what the parent ``src`` has in PMD slot ``idx``.

    Called once per populated slot, however many VMAs span it (a PTE page maps 4 MiB, 2 MiB with
    PAE); ``dst`` already has all of ``src``'s VMAs.  Return ``True`` when done, ``None`` to defer;
    the core's (``trylast``) copies every present PTE into a new PTE page, write-protects private
    writable ones in both, and takes page references and rmap entries (``copy_page_range``).  A
    policy works only through ``vm``'s primitives (:class:`mmframe.facade.VM`: ``pmd_share``,
    ``pmd_set_writable``...), which charge their own costs.
    """


@_spec("policy", "1.2", "every page fault: keep it O(1) when not acting; return None to defer",
       firstresult=True)
def mmframe_handle_mm_fault(vm: VM, mm: MM, vma: VMA, address: int, write_access: bool) -> int | None:
    """A fault at ``address`` in ``vma`` (already checked: the access is allowed by the VMA).

    Return a ``VM_FAULT_*`` code (:mod:`mmframe.facade`: 2.5.49's numbers, ``VM_FAULT_SIGBUS`` is
    0, ``VM_FAULT_OOM`` -1, ``VM_FAULT_MINOR`` 1, ``VM_FAULT_MAJOR`` 2) when handled, or ``None`` to defer (a
    policy may first change the page tables, e.g. unshare a PTE page, then defer); the core's
    (``trylast``) is 2.5.49's ``handle_mm_fault``: zero-fill, ``ZERO_PAGE`` on read, copy-on-write
    decided by the page's reference count.

    ``touch`` over a range calls it for the first faulting entry of each PTE page; when every entry
    it must fault there is empty, the rest are then filled as the core's implementation would, in
    bulk (the costs are the same per entry).  Writes into a PTE page whose PMD is still read-only
    after that first fault take the single path, entry by entry.  Since 1.15 a plugin may declare
    when its hook can act (:func:`mmframe_hook_scope`): it is then called for those faults only, on
    every path, and not at all on the others.
    """


@_spec("policy", "1.2", "every write to a PTE page (each fault, each zap and mprotect range)",
       firstresult=True)
def mmframe_pte_change(vm: VM, mm: MM, idx: int, reason: str, start: int, end: int) -> bool | None:
    """The choke point: ``mm`` is about to write entries ``[start, end)`` of the PTE page in PMD slot
    ``idx`` for ``reason`` (one of :data:`mmframe.facade.REASONS`: fault, cow, zap, mprotect,
    exit, fork, mmap, swap_out, walker, unshare, and since 1.3 msync: ``filemap_sync`` clearing
    dirty bits; since 1.10 referenced and swap_in; since 1.13 mremap: ``move_page_tables`` clearing
    an entry in the old range and setting it in the new, each its own call).  Reclaim (since 1.10) calls it with ``swap_out``
    when ``try_to_unmap`` clears one entry (``start + 1 == end``; a swap entry is left for an
    anonymous page) -- the core then flushes the TLB of every mm using the PTE page and has checked
    ``VM_LOCKED`` in each; with ``referenced`` when ``page_referenced`` clears an accessed bit; with
    ``swap_in`` when ``do_swap_page`` maps a page read back from swap (a fault).  A sharing policy
    may leave the page shared for these three.  A policy must treat a reason it does not know as
    a write to the entries.

    Called before every write to a PTE page, so a policy can make the page private first (unshare)
    or do the whole change at the PMD level: return ``True`` when the policy has completed the
    change itself (only for zap, exit and mprotect over the whole page), ``None`` to let the core
    write the entries.  Nobody implements it in mainline, so it costs nothing there; a plugin that
    declares a scope (:func:`mmframe_hook_scope`, since 1.15) is called only for the reasons and
    shared tables it names.
    """


# --- registration: I/O scheduling (issue: the block layer) -----------------------------------

@_spec("registration", "1.5", "never on a hot path: once per plugin at config load; the elevator's own "
       "operations are plain method calls on the queue's instance")
def mmframe_elevators() -> list[Any]:
    """Register I/O schedulers: a list of classes derived from
    :class:`mmframe.block.elevator.Elevator`, each with a unique ``name``.

    A queue chooses one by name (``[block.<disk>] elevator = "<name>"``; an unknown name is a
    config error listing the registered ones; a plugin's elevator needs its plugin enabled).  The
    class declares its tunables (``tunables``: :class:`~mmframe.options.Option`, set in
    ``[block.<disk>.<name>]``), the period it comes from (``period``) and the cost entries of the
    steps it reports (``steps``: kind -> cost entry, a plugin's named ``<plugin>.<x>`` through
    ``mmframe_cost_entries``).  One instance serves one queue; the core calls the 2.5.49
    operations on it -- ``merge``, ``merged``, ``merge_req``, ``add_req`` (with the insertion
    point ``merge`` returned), ``next_req``, ``remove_req``, ``queue_empty``, ``get_sort_head``,
    ``init``, ``exit`` -- as documented in :mod:`mmframe.block.elevator` and docs/block.md.  The core
    registers ``deadline`` (2.5.49's default), ``noop`` and ``linus`` (2.5.38's, labelled).
    """


# --- policy: direct I/O (issue 17) ------------------------------------------------------------

@_spec("policy", "1.9", "once per direct I/O request (not per page): return None to defer", firstresult=True)
def mmframe_get_user_pages(vm: VM, mm: MM, start: int, nr_pages: int, write: bool, force: bool) -> list[int] | int | None:
    """Map the user pages direct I/O will build its bios on: ``nr_pages`` pages of ``mm`` from the
    page-aligned ``start``, looked up for writing when ``write`` (a read into memory: copy-on-write
    is broken first), faulting them in as an access would (through ``mmframe_handle_mm_fault``).

    Return the page array (pfns, in address order), each page holding one reference the caller
    releases when its I/O completes (none on a reserved page such as the ZERO_PAGE), or a negative
    errno (-EFAULT for a hole, a ``VM_IO`` area or a missing right, -ENOMEM), or ``None`` to defer.
    The core's (``trylast``) is 2.5.49's ``get_user_pages`` (:func:`mmframe.mm.gup.get_user_pages`,
    ``vm.get_user_pages``); the page-walk plugin answers with ``walk_user_pages``.  Whatever answers
    must return what the core would: the same pages, references and faults.
    """
