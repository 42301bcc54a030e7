"""Address-space accounting (2.5.49 ``mm/mmap.c`` ``vm_enough_memory``, Alan Cox's strict overcommit
as Robert Love brought it to 2.5: "[patch 9/13] strict overcommit", Andrew Morton, LKML
<3D439E37.647FBA85@zip.com.au>, 28 Jul 2002, merged for 2.5.30) and the resource limits checked where
2.5.49 checked them.

``vm.overcommit_memory``:

* 0 (heuristic, the default): a request is granted when it is smaller than free pages + page-cache
  pages + free swap slots + swap-cache pages (counted twice, as the kernel's comment admits) + unused
  dentries and inodes (mmframe models none: 0);
* 1: always granted;
* 2 (strict): granted while the committed total stays below ``overcommit_ratio``% of RAM plus swap.

Every grant adds to the committed total (``Committed_AS``), a refusal takes it back.  Charged: every
anonymous mapping and every private writable one (``VM_ACCOUNT``, by ``do_mmap_pgoff``), ``brk``
growth, stack growth (``expand_stack``), each ``VM_ACCOUNT`` VMA again at ``fork`` (``dup_mmap``),
shmem objects at creation (``shmem_file_setup``: shared anonymous mappings, so charged twice as
2.5.49 did, and SysV segments); given back by ``munmap``, ``exit_mmap`` and the object's end.
``mprotect`` making a private file mapping writable is not charged here (2.5.49's mprotect_fixup
did): documented in docs/reclaim.md.

Limits (``[vm] rlimit_*``, 0 = RLIM_INFINITY): ``RLIMIT_AS`` in ``do_mmap_pgoff``, ``do_brk`` and
``expand_stack`` (total_vm + the request); ``RLIMIT_DATA`` in ``sys_brk`` (brk - start_data, the
model's start of data being ``end_code``); ``RLIMIT_STACK`` in ``expand_stack``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm.page import PAGE_SHIFT

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory

VM_ACCOUNT = 0x00100000  # include/linux/mm.h of 2.5.30+
OVERCOMMIT_GUESS, OVERCOMMIT_ALWAYS, OVERCOMMIT_NEVER = 0, 1, 2


def vm_enough_memory(vm: Memory, pages: int) -> bool:
    """2.5.49 ``vm_enough_memory``: charge ``pages`` and say whether the request may go on."""
    vm.committed += pages
    vc = vm.m.cfg.vm
    mode = vc.overcommit_memory
    if mode == OVERCOMMIT_ALWAYS:
        return True
    swap, pa = vm.swap, vm.pa
    if mode == OVERCOMMIT_GUESS:
        nr_free = pa.nr_free_pages()
        if nr_free > pages:  # enough whatever the other terms (each >= 0) add: the common case
            return True
        swap_cached = len(swap.cache.page_tree.values()) if swap.inuse else 0
        free = len(vm.page_cache) + nr_free + swap.nr_swap_pages() + swap_cached
        if free > pages:
            return True
        vm.committed -= pages
        return False
    allowed = (pa.npages - pa.reserved_pages) * vc.overcommit_ratio // 100 + max(swap.pages - 1, 0)
    if vm.committed < allowed:
        return True
    vm.committed -= pages
    return False


def vm_unacct_memory(vm: Memory, pages: int) -> None:
    vm.committed -= pages


def total_vm(mm: Any) -> int:
    return sum((v.end - v.start) >> PAGE_SHIFT for v in mm.vmas)


def over_rlimit_as(vm: Memory, mm: Any, length: int) -> bool:
    """``(mm->total_vm << PAGE_SHIFT) + len > current->rlim[RLIMIT_AS].rlim_cur``."""
    lim = vm.m.cfg.vm.rlimit_as
    return bool(lim) and (total_vm(mm) << PAGE_SHIFT) + length > lim
