"""Page faults (2.5.49 mm/memory.c and arch/i386/mm/fault.c): the trap (``do_page_fault``, with
``expand_stack``), the core's fault policy ``handle_mm_fault`` and its cases ``do_anonymous_page``
(zero-fill, ``ZERO_PAGE`` on read), ``do_no_page`` (a backing object's ``nopage``) and ``do_wp_page``
(copy-on-write decided by the page's reference count)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm import content
from mmframe.mm.filemap import NOPAGE_SIGBUS
from mmframe.mm.page import GFP_HIGHUSER, PAGE_SHIFT, PAGE_SIZE, PG_reserved
from mmframe.mm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_RW, PAGE_READONLY, PTE_PRESENT_MASK, TASK_SIZE
from mmframe.mm.overcommit import VM_ACCOUNT, over_rlimit_as, vm_enough_memory, vm_unacct_memory
from mmframe.mm.pte_change import COW, FAULT, REASONS, SWAP_IN
from mmframe.mm.vma import VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_READ, VM_SHARED, VM_WRITE, VMA
from mmframe.usr import SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGKILL, SIGSEGV, BUS_ADRERR, SimSignal

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.sched import Task

#: ``handle_mm_fault`` results, with 2.5.49's numbers (include/linux/mm.h): SIGBUS is 0.
VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_MINOR, VM_FAULT_MAJOR = -1, 0, 1, 2

_RESERVED = 1 << PG_reserved
#: the fault cases of a plugin's HookScope (contract 1.15), as bits of ``Memory._fault_scope``
SCOPE_NO_PTE, SCOPE_PMD_WP, SCOPE_SHARED_PTE = 1, 2, 4
_SCOPE_BITS = {"no_pte": SCOPE_NO_PTE, "pmd_wrprotect": SCOPE_PMD_WP, "shared_pte": SCOPE_SHARED_PTE}
ZERO_PFN = (1 << 20) >> PAGE_SHIFT  # empty_zero_page lives in the kernel image (reserved)


class Killed(Exception):
    """The task was killed inside a system call (SIGKILL from the out-of-memory path)."""


class Faults:
    """Part of :class:`~mmframe.mm.memory.Memory`: the fault path."""

    __slots__ = ()

    def do_page_fault(self, task: Task, addr: int, write: bool, user: bool = True) -> int:
        """The trap: find the VMA, check the access, hand over to ``handle_mm_fault`` (the hook).
        Below a stack VMA, a user-mode access more than 32 bytes below %esp is SIGSEGV (i386 2.5's
        "accessing the stack below %esp is always a bug"; 2.6 later allowed 65536 + 32 * 4 bytes);
        a task that never set its %esp (``setsp``) is not checked."""
        acct = self.acct
        acct.row[self.P_fault] += 1
        acct.ns += self.ns_fault
        mm = task.mm
        if not 0 <= addr < TASK_SIZE:
            raise SimSignal(SIGSEGV, SEGV_MAPERR, addr)
        vma = mm.vmas.find(addr)
        if vma is not None and vma.start > addr and vma.flags & VM_GROWSDOWN and user and \
                task.sp is not None and addr + 32 < task.sp:
            raise SimSignal(SIGSEGV, SEGV_MAPERR, addr)
        if vma is None or vma.start > addr and not self.expand_stack(mm, vma, addr):
            raise SimSignal(SIGSEGV, SEGV_MAPERR, addr)
        if not vma.flags & (VM_WRITE if write else VM_READ | VM_EXEC):
            raise SimSignal(SIGSEGV, SEGV_ACCERR, addr)
        sc = self._fault_scope
        if not sc:  # no policy's hook to ask (0), or one asked on every fault (None)
            r = self.handle_mm_fault(mm, vma, addr, write) if sc == 0 else self._fault_policy(self, mm, vma, addr, write)
        else:  # _scoped_fault, inline on this hot path (bits: SCOPE_NO_PTE 1, _PMD_WP 2, _SHARED_PTE 4)
            e = mm.pmd[addr >> self.sh]  # the PMD entry: 0 with no PTE page, else its pfn and bits
            if (sc & 1 if not e else write and sc & 2 and not e & _PAGE_RW
                    or sc & 4 and self.count[e >> PAGE_SHIFT] > 1):
                r = self._fault_policy(self, mm, vma, addr, write)
            else:
                p = self._fault_cost1  # the one fault_cost entry (-1: none, or several)
                if p >= 0:
                    acct.row[p] += 1
                    acct.ns += self._fault_cost_ns
                elif self._fault_cost:
                    self.charge_fault_cost(acct.row, 1)
                r = self.handle_mm_fault(mm, vma, addr, write)
        if r == VM_FAULT_OOM:
            self.m.sched.kill(task, SIGKILL)
            raise Killed()
        if r == VM_FAULT_SIGBUS:
            raise SimSignal(SIGBUS, BUS_ADRERR, addr)
        return r

    def scope_hooks(self, scopes: dict[str, Any]) -> None:
        """Set up the fault and ``pte_change`` dispatch for the scopes the enabled plugins declared
        (:func:`mmframe.plugin.hook_scopes`; ``{}`` before they are known).  ``_fault_hook`` is what
        every caller of ``handle_mm_fault`` calls: the core's own when no plugin implements the hook,
        the resolved policy when one does without a scope, else :meth:`_scoped_fault`."""
        m = self.m
        self._fault_policy = m.policy("mmframe_handle_mm_fault")
        self.fault_hook_is_core = m.hooks.resolved["mmframe_handle_mm_fault"].owners == ("mmframe.core",)
        cases = scopes.get("fault")
        cost = tuple(self.m.costs.id[n] for n in scopes.get("fault_cost", ()))
        self._fault_cost, self._fault_cost_ns = cost, sum(self.acct.ns_of[p] for p in cost)
        self._fault_cost1 = cost[0] if len(cost) == 1 else -1
        if self.fault_hook_is_core:
            self._fault_scope = 0  # nothing for a policy to do: never called
            self._fault_hook = type(self).handle_mm_fault
        elif cases is None and not cost:
            self._fault_scope = None  # every fault (touch's bulk path: the first of each PTE page)
            self._fault_hook = self._fault_policy
        else:
            self._fault_scope = sum(_SCOPE_BITS[c] for c in cases) if cases is not None else 7
            self._fault_hook = type(self)._scoped_fault
        # pte_change: bit r of _pte_scope calls the hook for reason r on any table, of _pte_shared on
        # a shared one, _pte_any is their union; no hook, no bits (a test installing one sets
        # every_pte_change())
        if self._pte_hook is None:
            self._pte_scope = self._pte_shared = self._pte_any = 0
        elif scopes.get("pte_change") is None:
            self.every_pte_change()
        else:
            shared = scopes.get("pte_change_shared")
            self._pte_scope = sum(1 << REASONS.index(r) for r in scopes["pte_change"])
            self._pte_shared = -1 if shared is None else sum(1 << REASONS.index(r) for r in shared)
            self._pte_any = self._pte_scope | self._pte_shared

    def every_pte_change(self) -> None:
        """Call ``_pte_hook`` on every write to a PTE page (no scope)."""
        self._pte_scope = self._pte_shared = self._pte_any = -1

    def _scoped_fault(self, mm: MMStruct, vma: VMA, addr: int, write: bool) -> int:
        """``handle_mm_fault`` under a plugin's declared scope: its hook for the faults in scope, the
        core's directly for the rest, charging the entries the hook would have (``fault_cost``)."""
        if self.fault_in_scope(mm, addr >> self.sh, write):
            return self._fault_policy(self, mm, vma, addr, write)
        cost = self._fault_cost
        if cost:
            acct = self.acct
            row = acct.row
            for p in cost:
                row[p] += 1
            acct.ns += self._fault_cost_ns
        return self.handle_mm_fault(mm, vma, addr, write)

    def fault_in_scope(self, mm: MMStruct, idx: int, write: bool) -> bool:
        """Would a fault in slot ``idx`` of ``mm`` call a plugin's fault hook now?  Without a scope,
        a plugin's hook is asked (``touch`` then asks it for the first fault of each PTE page)."""
        sc = self._fault_scope
        if sc is None:
            return True
        e = mm.pmd[idx]  # (0 exactly when the slot has no PTE page)
        if not e:
            return bool(sc & SCOPE_NO_PTE)
        return bool(write and sc & SCOPE_PMD_WP and not e & _PAGE_RW
                    or sc & SCOPE_SHARED_PTE and self.count[e >> PAGE_SHIFT] > 1)

    def charge_fault_cost(self, row: list[int], n: int) -> None:
        """The scoped plugin's ``fault_cost`` entries for ``n`` faults its hook was not called for
        (a bulk run's: once per run), on ``row``."""
        if n:
            for p in self._fault_cost:
                row[p] += n
            self.acct.ns += n * self._fault_cost_ns

    def expand_stack(self, mm: MMStruct, vma: VMA, addr: int) -> bool:
        """``expand_stack``: a fault below a VM_GROWSDOWN VMA (nothing lies between, find_vma saw
        to that) grows it down to the page, within RLIMIT_STACK and RLIMIT_AS ([vm] rlimit_*), charged
        to the committed total (vm_enough_memory).  i386 2.5 also refused an access
        more than 32 bytes below %esp (checked by ``do_page_fault``)."""
        start = addr & ~(PAGE_SIZE - 1)
        if not vma.flags & VM_GROWSDOWN:
            return False
        grow = (vma.start - start) >> PAGE_SHIFT
        if not vm_enough_memory(self, grow):  # overcommit accounting first, as 2.5.49
            return False
        stack = self.m.cfg.vm.rlimit_stack
        if stack and vma.end - start > stack or over_rlimit_as(self, mm, grow << PAGE_SHIFT):
            vm_unacct_memory(self, grow)
            return False
        if not vma.flags & VM_ACCOUNT:  # only an accounted VMA gives the charge back when it goes
            vm_unacct_memory(self, grow)
        old = vma.start
        mm.vmas.remove(vma)
        vma.start = start
        mm.vmas.insert(vma)
        self.acct.charge(self.P_vma)
        if vma.flags & VM_LOCKED:
            mm.locked_vm += (old - start) >> PAGE_SHIFT
        self.mapping_changed(mm, start, old)
        return True

    def handle_mm_fault(self, mm: MMStruct, vma: VMA, addr: int, write: bool) -> int:
        """2.5.49 ``handle_mm_fault`` / ``handle_pte_fault`` (the core's fault policy)."""
        idx = addr >> self.sh
        pt = mm.ptp[idx]
        if pt is None:
            pt = self.pte_alloc(mm, idx)
            if pt is None:
                return VM_FAULT_OOM
        i = (addr >> PAGE_SHIFT) & self.mask
        pte = pt.ptes[i]
        if not pte & PTE_PRESENT_MASK:
            if pte:
                return self.do_swap_page(mm, vma, idx, i, pte, write)
            if vma.obj is not None:
                return self.do_no_page(mm, vma, addr, idx, i, write)
            return self.do_anonymous_page(mm, vma, addr, idx, i, write)
        if write and not pte & _PAGE_RW:
            return self.do_wp_page(mm, vma, addr, idx, i, pte)
        if write and not mm.pmd[idx] & _PAGE_RW:
            raise AssertionError(f"write fault at {addr:#x}: PMD write-protected and no policy unshared it")
        return VM_FAULT_MINOR  # spurious: another sharer filled it, or a read of a present page

    def do_anonymous_page(self, mm: MMStruct, vma: VMA, addr: int, idx: int, i: int, write: bool) -> int:
        acct = self.acct
        if not write:
            pt = self.pte_change(mm, idx, FAULT, i, i + 1)
            pt.ptes[i] = (ZERO_PFN << PAGE_SHIFT) | PAGE_READONLY  # pte_wrprotect(ZERO_PAGE)
            acct.charge(self.P_pte_set)
            return VM_FAULT_MINOR
        pfn = self.alloc_user_page()
        if pfn < 0:
            return VM_FAULT_OOM
        self._map_page(mm, idx, i, pfn, vma.page_prot | _PAGE_RW | _PAGE_DIRTY)
        return VM_FAULT_MINOR

    def do_swap_page(self, mm: MMStruct, vma: VMA, idx: int, i: int, entry: int, write: bool) -> int:
        """2.5.49 ``do_swap_page``: the page of the swap entry in the PTE (from the swap cache, or
        read from the swap device: VM_FAULT_MAJOR), mapped in its place, the PTE's slot reference
        dropped; a write gets it writable when this mapping alone uses it
        (``remove_exclusive_swap_page``), otherwise it stays in the swap cache read-only."""
        swap = self.swap
        reads = swap.counts["swap_in"]
        pfn = swap.read_swap_cache(entry)
        if pfn < 0:
            return VM_FAULT_OOM
        pt = self.pte_change(mm, idx, SWAP_IN, i, i + 1)
        swap.swap_free(entry)
        prot = vma.page_prot
        if write and swap.remove_exclusive_swap_page(pfn):
            prot |= _PAGE_RW | _PAGE_DIRTY
        pt.ptes[i] = (pfn << PAGE_SHIFT) | prot
        self.acct.charge(self.P_pte_set)
        pt.rss += 1
        self.rss_walk(pt)
        self.rmap.page_add_rmap(pfn, pt, i)
        return VM_FAULT_MAJOR if swap.counts["swap_in"] > reads else VM_FAULT_MINOR

    def _map_page(self, mm: MMStruct, idx: int, i: int, pfn: int, prot: int) -> None:
        """A fault's new mapping of a page that is not reserved: the entry, rss, the rmap entry."""
        pt = self.pte_change(mm, idx, FAULT, i, i + 1)
        pt.ptes[i] = (pfn << PAGE_SHIFT) | prot
        acct = self.acct
        acct.row[self.P_pte_set] += 1
        acct.ns += self.ns_pte_set
        pt.rss += 1
        self.rss_walk(pt)
        self.rmap.page_add_rmap(pfn, pt, i)

    def do_no_page(self, mm: MMStruct, vma: VMA, addr: int, idx: int, i: int, write: bool) -> int:
        """A fault in a mapping with a backing object: the object's ``nopage`` (page cache, reading
        the file in; shmem zero-fill), SIGBUS past its end; a write to a private mapping gets a
        private copy at once (2.5's do_no_page), a write to a shared one maps it dirty."""
        pfn = vma.obj.nopage(self, vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT))
        if pfn < 0:
            return VM_FAULT_SIGBUS if pfn == NOPAGE_SIGBUS else VM_FAULT_OOM
        prot = vma.page_prot
        if write and not vma.flags & VM_SHARED:
            new = self.m.alloc_pages(GFP_HIGHUSER, 0)
            if new < 0:
                return VM_FAULT_OOM
            self.lru_cache_add(new)
            self._copy_user_highpage(pfn, new)
            pfn = new
            prot |= _PAGE_RW | _PAGE_DIRTY
        else:
            self.count[pfn] += 1
            self.acct.charge(self.P_ref)
            if write:
                prot |= _PAGE_RW | _PAGE_DIRTY
        self._map_page(mm, idx, i, pfn, prot)
        return VM_FAULT_MINOR

    def _copy_user_highpage(self, old: int, new: int) -> None:
        """``copy_user_highpage``: the content (and a zeroed tail past EOF) of ``old`` into ``new``."""
        self.acct.charge(self.P_copy)
        self.acct.charge(self.P_kmap, (new >= self.first_high) + (old >= self.first_high))
        content.copy_page(self, old, new)

    def do_wp_page(self, mm: MMStruct, vma: VMA, addr: int, idx: int, i: int, pte: int) -> int:
        """Copy-on-write: reuse the page if this mapping holds its only reference, else copy it."""
        acct = self.acct
        old = pte >> PAGE_SHIFT
        reserved = self.flags[old] & _RESERVED
        if not reserved and self.count[old] == 2 and self.swap.inuse and self.swap.in_swap_cache(old):
            self.swap.remove_exclusive_swap_page(old)  # can_share_swap_page: reuse it if ours alone
        if vma.flags & VM_SHARED or (not reserved and self.count[old] == 1):
            pt = self.pte_change(mm, idx, COW, i, i + 1)
            pt.ptes[i] = pte | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED
            acct.charge(self.P_pte_set)
            self.m.tlb.flush_tlb_page(mm, self._cpu(), addr)
            return VM_FAULT_MINOR
        new = self.m.alloc_pages(GFP_HIGHUSER, 0)
        if new < 0:
            return VM_FAULT_OOM
        self.lru_cache_add(new)
        # copy_cow_page: the ZERO_PAGE is cleared, not copied; highmem pages are kmapped
        if reserved:
            acct.charge(self.P_clear)
            acct.charge(self.P_kmap, new >= self.first_high)
            self.tag[new] = 0
        else:
            self._copy_user_highpage(old, new)
        pt = self.pte_change(mm, idx, COW, i, i + 1)
        if reserved:
            pt.rss += 1
        else:
            self.rmap.page_remove_rmap(old, pt, i)
        pt.ptes[i] = (new << PAGE_SHIFT) | vma.page_prot | _PAGE_RW | _PAGE_DIRTY
        acct.charge(self.P_pte_set)
        self.rmap.page_add_rmap(new, pt, i)
        self.m.tlb.flush_tlb_page(mm, self._cpu(), addr)
        if not reserved:
            self.put_page(old)
        return VM_FAULT_MINOR
