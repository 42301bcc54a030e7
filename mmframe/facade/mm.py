"""The memory half of the facade: what a page-table or allocation policy receives, and may call.

The objects a hook gets are the core's own (no wrapper sits on the fault path); these Protocols
are the part of them that is contract.  Anything else on them is the core's business and may
change in any release; a test runs the shipped plugins with every argument wrapped so that
touching anything not declared here fails.

Costs: every primitive charges the cost-table entries (mmframe/data/costs_2002.toml) of what it
does, named below; a policy never charges core entries itself.  Counts made while a plugin's hook
runs are attributed to that plugin's row.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence

from mmframe.mm.fault import VM_FAULT_MAJOR, VM_FAULT_MINOR, VM_FAULT_OOM, VM_FAULT_SIGBUS
from mmframe.mm.page import (GFP_ATOMIC, GFP_HIGHUSER, GFP_KERNEL, GFP_NOFS, GFP_NOIO, GFP_USER, PAGE_SHIFT,
                             PAGE_SIZE, __GFP_HIGHMEM, __GFP_RESERVE, __GFP_WAIT)
from mmframe.mm.pgtable import _PAGE_DIRTY, _PAGE_RW, PTE_PRESENT_MASK
from mmframe.mm.pte_change import REASONS
from mmframe.mm.task_mmu import show_map
from mmframe.mm.vma import (VM_DONTCOPY, VM_IO, VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE,
                            VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE)

__all__ = [
    "VM_FAULT_OOM", "VM_FAULT_SIGBUS", "VM_FAULT_MINOR", "VM_FAULT_MAJOR", "REASONS",
    "VM_READ", "VM_WRITE", "VM_EXEC", "VM_SHARED", "VM_MAYREAD", "VM_MAYWRITE", "VM_MAYEXEC", "VM_MAYSHARE",
    "VM_GROWSDOWN", "VM_LOCKED", "VM_DONTCOPY", "VM_IO",
    "GFP_ATOMIC", "GFP_NOIO", "GFP_NOFS", "GFP_KERNEL", "GFP_USER", "GFP_HIGHUSER", "__GFP_HIGHMEM",
    "__GFP_RESERVE", "__GFP_WAIT", "ENOMEM", "ReserveError", "reserve_local_pages", "release_local_pages",
    "PAGE_SHIFT", "PAGE_SIZE",
    "pte_none", "pte_present", "pte_pfn", "pte_write", "pte_dirty", "show_map", "vma_mapping",
    "Allocator", "MachineView", "MM", "PteTable", "VM", "VMA", "VMAs",
]

# ``mmframe_handle_mm_fault`` results: 2.5.49's numbers (include/linux/mm.h), imported above from
# mmframe.mm.fault where the core's fault path returns them:
#   VM_FAULT_OOM    = -1  out of memory: the faulting task is killed (SIGKILL)
#   VM_FAULT_SIGBUS =  0  the access is past the backing object's end: SIGBUS (BUS_ADRERR)
#   VM_FAULT_MINOR  =  1  handled without I/O
#   VM_FAULT_MAJOR  =  2  handled, and the page was read from the device
# ``REASONS``: the ``reason`` strings ``mmframe_pte_change`` receives (fault, cow, zap, mprotect, exit,
# fork, mmap, swap_out, walker, unshare, msync; since contract 1.10 referenced and swap_in: reclaim's
# accessed-bit aging and a swap-in fault, and swap_out is try_to_unmap clearing one entry, after which
# the core flushes every sharer's TLB; since 1.13 mremap: move_page_tables moving entries); treat one
# you do not know as a write to the entries.



# --- reading entries (since 1.11, for page-table walkers; free: a walker's reads are its own) ------
def pte_none(pte: int) -> bool:
    """No entry at all (``pte_none``)."""
    return not pte


def pte_present(pte: int) -> bool:
    """``pte_present``: present, PROT_NONE entries included (i386 tests both bits)."""
    return bool(pte & PTE_PRESENT_MASK)


def pte_pfn(pte: int) -> int:
    """The page frame a present entry maps."""
    return pte >> PAGE_SHIFT


def pte_write(pte: int) -> bool:
    """The entry's write bit (a clear PMD write bit overrides it on x86: :meth:`VM.pmd_writable`)."""
    return bool(pte & _PAGE_RW)


def pte_dirty(pte: int) -> bool:
    return bool(pte & _PAGE_DIRTY)


def vma_mapping(vma: VMA) -> object | None:
    """(since 1.14) The ``address_space`` ``vma`` maps (2.5's ``vma->vm_file->f_dentry->d_inode->
    i_mapping``): one for every open of a file and every attach of a SysV segment; None for
    anonymous memory.  Opaque: compare by identity.  Free."""
    obj = vma.obj
    return None if obj is None else obj.mapping


# ``show_map(vma)``: the VMA's line of 2.5's /proc/PID/maps (mmframe/mm/task_mmu.py).  O(1).


class PteTable(Protocol):
    """A PTE page (``pte_t`` page): read its state; change it only through :class:`VM`'s primitives."""

    pfn: int  #: its page frame (its page count is the number of mms using it: :meth:`VM.sharers`)
    rss: int  #: present entries mapping pages that are not reserved
    high: bool  #: in highmem (CONFIG_HIGHPTE): every write costs a kmap_atomic
    idx: int  #: the PMD slot it was made for
    ptes: Sequence[int]  #: (since 1.11) its entries, to read (``pte_present`` and friends); free



class VMA(Protocol):
    """``vm_area_struct``: ``[start, end)`` with ``VM_*`` flags, read-only to a policy."""

    start: int
    end: int
    flags: int  #: VM_READ, VM_WRITE, VM_SHARED, VM_MAYWRITE... (re-exported here)
    pgoff: int  #: first page of the backing object mapped at ``start``
    #: (since 1.14) the backing object (shmem object, SysV segment or open file), None for anonymous
    #: memory: opaque (``vma_mapping`` gives what two mappings share)
    obj: object

    @property
    def file_backed(self) -> bool:
        """A mapping of a file (not anonymous memory, shmem or SysV shm)."""


class VMAs(Protocol):
    """An mm's VMAs, sorted by address."""

    def find(self, addr: int) -> VMA | None:
        """``find_vma``: the first VMA ending above ``addr`` (it may start above it).  O(log V)."""

    def overlapping(self, start: int, end: int) -> list[VMA]:
        """The VMAs meeting ``[start, end)``, in order.  O(log V + k)."""

    def __iter__(self) -> Iterator[VMA]: ...

    def __len__(self) -> int: ...


class MM(Protocol):
    """``mm_struct``, read-only to a policy: its PMD level is changed only through :class:`VM`."""

    id: int
    users: int  #: tasks using it (threads share one)
    ptp: Sequence[PteTable | None]  #: the PTE page in each user PMD slot, or None
    pmd: Sequence[int]  #: (since 1.11) the PMD entries themselves (x86 values: pfn and bits), to read
    vmas: VMAs

    def rss(self) -> int:
        """Resident pages (a shared PTE page's count in each sharer).  O(PMD slots)."""


class VM(Protocol):
    """The memory system of one machine, as the page-table hooks (``mmframe_copy_pte_page``,
    ``mmframe_handle_mm_fault``, ``mmframe_pte_change``) receive it as ``vm``."""

    pmd_shift: int  #: log2 of the bytes one PTE page maps: 22, or 21 with PAE (slot = address >> pmd_shift)
    ptrs_per_pte: int  #: entries in a PTE page: 1024, or 512 with PAE
    pgdir_shift: int  #: (since 1.11) log2 of what one PGD entry maps: 30 with PAE, else 22 (the PMD folded)
    plugin_state: dict[str, Any]  #: per-machine plugin state (``plugin_state[<plugin name>]``)

    # --- the sharing mechanism (the 2002 shared-page-table patch's primitives) ---------------------
    def pmd_share(self, src: MM, dst: MM, idx: int, writable: bool) -> None:
        """Point ``dst``'s empty slot ``idx`` at ``src``'s PTE page.  Charges ``page_ref``, one
        ``pte_set``, ``pte_page_lock`` (since 1.14), and ``mm_chain_alloc`` for each owner-chain node
        (two at the second owner, one per owner after)."""

    def pmd_writable(self, mm: MM, idx: int) -> bool:
        """Whether ``mm``'s PMD entry for slot ``idx`` is writable.  Free."""

    def pmd_set_writable(self, mm: MM, idx: int, writable: bool) -> None:
        """``pmd_mkwrite``/``pmd_wrprotect`` (the TLB flush is the caller's).  One ``pte_set``."""

    def pmd_drop(self, mm: MM, idx: int) -> None:
        """Clear ``mm``'s slot ``idx`` and drop its reference.  ``page_ref`` and ``mm_chain_free``
        (and ``pte_page_lock`` when the table is shared, since 1.14); the last owner's drop also zaps what is left (``pte_clear``, ``page_ref`` and an rmap
        removal per entry) and frees the PTE page."""

    def unshare(self, mm: MM, idx: int) -> PteTable | None:
        """Give ``mm`` a private copy of the shared PTE page in slot ``idx`` (``pte_unshare``); with
        a single user only make its PMD writable.  Charges a PTE page (``clear_page``, a
        ``kmap_atomic`` if high), ``pte_copy``, ``page_ref`` and an rmap entry per present entry,
        ``pte_set`` for write-protected entries, and a TLB flush of ``mm``; ``pte_page_lock`` three
        times (once with a single user), since 1.14.  None if no page."""

    def pte_page_lock(self, n: int = 1) -> None:
        """(since 1.14) The 2002 patch's per-PTE-page lock taken and released ``n`` times, for the
        acquisitions a policy's own paths make (around a fault, a PTE-range change): charges
        ``pte_page_lock``.  Uncontended under the deterministic schedule: a cost, no effect."""

    def i_mmap_visit(self, n: int = 1) -> None:
        """(since 1.14) ``n`` steps of a walk of an object's mappings looking for a PTE page to
        share (a VMA examined, or a match's PMD entry read): charges ``i_mmap_visit``."""

    def sharers(self, pt: PteTable) -> int:
        """How many mms use this PTE page (its page count).  Free."""

    def ptes_follow_vma(self, mm: MM, idx: int, vma: VMA) -> bool:
        """True when every present entry of ``mm``'s PTE page ``idx`` already carries ``vma``'s
        protection (its ``protection_map`` bits; accessed and dirty aside, and the write bit of a
        copy-on-write mapping, which the PMD and the unshare's copy govern): a whole-page mprotect
        done at the PMD level then leaves what ``pte_modify`` would.  Free (a kernel keeping the
        entries in step with their VMA compares the old and new ``vm_page_prot``, O(1))."""

    def pte_alloc(self, mm: MM, idx: int) -> PteTable | None:
        """``pte_alloc_map``: a zeroed PTE page installed writable in ``mm``'s empty slot ``idx``.
        ``clear_page`` (and ``kmap_atomic`` in highmem) plus the allocation.  None if no page."""

    def flush_tlb_mm(self, mm: MM) -> None:
        """``flush_tlb_mm``: the TLB flush costs of the CPUs that have ``mm`` loaded."""

    # --- the core's own policy and pages --------------------------------------------------------
    def handle_mm_fault(self, mm: MM, vma: VMA, address: int, write_access: bool) -> int:
        """The core's fault policy (2.5.49 ``handle_mm_fault``), charging what it does: for a
        policy that acts on a fault (fault-around, say) and then lets the core map the page.
        Returns a ``VM_FAULT_*`` code."""

    def alloc_user_page(self) -> int:
        """A zeroed GFP_HIGHUSER page: the allocation, ``clear_page`` (and ``kmap_atomic`` in
        highmem).  The pfn, or -1."""

    def page_count(self, pfn: int) -> int:
        """(since 1.11) The page's reference count (``page_count``).  Free."""

    def page_reserved(self, pfn: int) -> bool:
        """(since 1.11) ``PageReserved`` (the ZERO_PAGE): not counted in rss.  Free."""

    def put_page(self, pfn: int) -> None:
        """Drop a reference on a page (``page_ref``); the last one frees it."""

    # --- user pages for I/O (since 1.9: the user-page mapping hook, ``mmframe_get_user_pages``) ----
    def get_user_pages(self, mm: MM, start: int, nr_pages: int, write: bool, force: bool = False) -> list[int] | int:
        """The core's 2.5.49 ``get_user_pages``: the pfns of ``nr_pages`` pages from ``start``,
        each faulted in through the fault hook as an access would (``page_fault`` and what the
        fault costs) and holding a reference (``page_ref``; none on the ZERO_PAGE); -EFAULT or
        -ENOMEM when none could be had.  What the mapping hook must return."""

    def follow_page(self, mm: MM, addr: int, write: bool) -> int:
        """``follow_page``: the pfn mapped at ``addr`` if present (for ``write``: writable through
        PTE and PMD; the PTE is marked dirty), else -1.  Free."""

    def put_user_pages(self, pages: list[int]) -> None:
        """Release what ``get_user_pages`` took (``page_ref`` each; the ZERO_PAGE is skipped)."""

    def find_extend_vma(self, mm: MM, addr: int) -> VMA | None:
        """``find_extend_vma``: the VMA holding ``addr``, growing a stack down to it.  O(log V)."""

    def fault_in(self, mm: MM, vma: VMA, addr: int, write: bool) -> int:
        """A fault at ``addr`` through the fault policy chain (``mmframe_handle_mm_fault``: what a
        hardware fault would run, so a write unshares under pt_shared); ``page_fault`` plus what the
        fault does.  A ``VM_FAULT_*`` code."""

    def pin_user_page(self, pfn: int) -> bool:
        """Take a reference on a page found for I/O (``page_ref``), unless it is reserved (the
        ZERO_PAGE): whether one was taken.  ``put_user_pages`` releases it."""


class Allocator(Protocol):
    """The page allocator, as the allocation hooks (``mmframe_alloc_pages``,
    ``mmframe_free_pages``) receive it as ``alloc``."""

    npages: int  #: page frames in the machine
    plugin_state: dict[str, Any]  #: the machine's ``plugin_state`` (since 1.12)

    def alloc_pages(self, gfp: int, order: int, cpu: int) -> int:
        """The core's ``__alloc_pages`` (2.5.49): per-CPU lists, then the buddy lists of the
        zonelist, charging ``buddy_step``/``buddy_block``/``pcp_*`` as it goes.  A pfn, or -1."""

    def free_pages(self, pfn: int, order: int, cpu: int) -> None:
        """The core's free: to the per-CPU hot list (order 0) or the buddy lists."""

    def nr_free_pages(self) -> int:
        """Free pages in every zone.  O(zones)."""


class MachineView(Protocol):
    """The machine, as the lifecycle hooks (``mmframe_configure``, ``mmframe_report``,
    ``mmframe_unconfigure``) receive it as ``machine``."""

    plugin_state: dict[str, Any]  #: per-machine plugin state (``plugin_state[<plugin name>]``)

    def meminfo(self) -> dict[str, int]:
        """``/proc/meminfo`` figures (kB) with mmframe's labelled extras."""

    def alloc_pages(self, gfp: int, order: int = 0) -> int:
        """Allocate through the allocation policy hook on the current CPU: a pfn or -1 (since 1.12)."""

    def free_pages(self, pfn: int, order: int = 0) -> None:
        """Free a block through the free policy hook on the current CPU (since 1.12)."""

    def current_cpu(self) -> int:
        """The CPU the running task is on (0 outside a task) (since 1.12)."""


# --- page reservations (since 1.12; docs/reserve.md) -------------------------------------------------

ENOMEM = 12  # what a failed reservation returns, negated (an mmframe assumption: docs/reserve.md)


class ReserveError(RuntimeError):
    """Misuse of the reservation API (releasing more than was reserved; no provider enabled); the
    message names the caller."""


def reserve_local_pages(machine: MachineView, gfp: int, nr_pages: int, caller: str = "?") -> int:
    """akpm's ``reserve_local_pages(gfp, nr)`` (2.5.40-mm2 .. 2.5.50-mm, never merged): set
    ``nr_pages`` order-0 pages aside on the current CPU, allocated with ``gfp`` (which may wait),
    for ``__GFP_RESERVE`` allocations on that CPU.  0, or -ENOMEM with nothing kept.  The provider
    is the plugin registered as ``machine.plugin_state["reservations"]`` (the ``reserve`` plugin);
    without one this is a :class:`ReserveError` naming ``caller``."""
    prov = machine.plugin_state.get("reservations")
    if prov is None:
        raise ReserveError(f"{caller}: reserve_local_pages needs a reservation provider (enable the 'reserve' plugin)")
    return prov.reserve_local_pages(machine.current_cpu(), gfp, nr_pages, caller)


def release_local_pages(machine: MachineView, gfp: int, nr_pages: int, caller: str = "?") -> None:
    """``release_local_pages(gfp, nr)``: end a reservation of ``nr_pages`` on the current CPU; the
    pages it no longer needs go back to the allocator.  Releasing more than is reserved is a
    :class:`ReserveError` naming ``caller``."""
    prov = machine.plugin_state.get("reservations")
    if prov is None:
        raise ReserveError(f"{caller}: release_local_pages needs a reservation provider (enable the 'reserve' plugin)")
    prov.release_local_pages(machine.current_cpu(), gfp, nr_pages, caller)
