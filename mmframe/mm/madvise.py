"""``madvise`` (2.5.49 ``mm/madvise.c``) and ``mincore`` (2.5.49 ``mm/filemap.c``).

madvise: an unaligned start is -EINVAL; an empty range 0; then VMA by VMA, a hole noted and
reported as -ENOMEM at the end, an error stopping it.  MADV_NORMAL/RANDOM/SEQUENTIAL set the VMA's
read hint (splitting it; -EAGAIN without a vm_area_struct), MADV_WILLNEED reads a file's pages into
the cache (-EBADF for anonymous memory), MADV_DONTNEED zaps the range (-EINVAL on a locked VMA:
anonymous pages then read zero, private file pages the file again); other values are -EINVAL.

mincore: which pages of the range are in their *file's* page cache (2.5 looked at the page cache,
not the page tables): anonymous memory is -ENOMEM; a hole is -ENOMEM after the rest.  The vector is
returned (a list of 0/1) instead of stored at a user address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm import filemap
from mmframe.mm.mmap import split_vma
from mmframe.mm.page import PAGE_SHIFT
from mmframe.mm.vma import VM_LOCKED, VM_RAND_READ, VM_SEQ_READ
from mmframe.usr import (EAGAIN, EBADF, EINVAL, ENOMEM, MADV_DONTNEED, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
                         MADV_WILLNEED, PAGE_SIZE)

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.sched import Task


def _walk(mm: MMStruct, start: Any, length: Any, each) -> Any:
    """The loop sys_madvise and sys_mincore share: VMA pieces of the range; -ENOMEM for a hole,
    reported after the rest unless a piece fails."""
    if type(start) is not int or type(length) is not int or start & (PAGE_SIZE - 1) or length < 0 or start < 0:
        return -EINVAL
    end = start + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    if end == start:
        return 0
    unmapped = 0
    while True:
        v = mm.vmas.find(start)
        if v is None:
            return -ENOMEM
        if start < v.start:
            unmapped, start = -ENOMEM, v.start
            if start >= end:
                return unmapped
        stop = min(end, v.end)
        err = each(v, start, stop)
        if err:
            return err
        if stop >= end:
            return unmapped
        start = stop


def sys_madvise(vm: Memory, task: Task, start: Any, length: Any, advice: Any) -> int:
    mm = task.mm

    def each(v, lo, hi) -> int:
        if advice in (MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL):
            for at in (lo, hi):
                w = mm.vmas.find(at)
                if w is not None and w.start < at < w.end and not split_vma(vm, mm, w, at):
                    return -EAGAIN
            w = mm.vmas.find(lo)
            hint = {MADV_NORMAL: 0, MADV_RANDOM: VM_RAND_READ, MADV_SEQUENTIAL: VM_SEQ_READ}[advice]
            w.set_flags(w.flags & ~(VM_RAND_READ | VM_SEQ_READ) | hint)
            return 0
        if advice == MADV_WILLNEED:
            if v.obj is None:
                return -EBADF
            inode = getattr(v.obj, "inode", None)
            if inode is not None:  # do_page_cache_readahead: the pages up to end of file
                first = v.pgoff + ((lo - v.start) >> PAGE_SHIFT)
                last = min(v.pgoff + ((hi - v.start) >> PAGE_SHIFT), (inode.size + PAGE_SIZE - 1) >> PAGE_SHIFT)
                for index in range(first, last):
                    if filemap.read_cache_page(vm, inode, index) < 0:
                        break
            return 0
        if advice == MADV_DONTNEED:
            if v.flags & VM_LOCKED:
                return -EINVAL
            vm.zap_page_range(mm, lo, hi)
            vm.m.tlb.flush_tlb_range(mm, vm._cpu(), lo, hi)
            return 0
        return -EINVAL

    return _walk(mm, start, length, each)


def sys_mincore(vm: Memory, task: Task, start: Any, length: Any) -> Any:
    vec: list[int] = []

    def each(v, lo, hi) -> int:
        if v.obj is None:
            return -ENOMEM
        tree = v.obj.mapping.page_tree
        first = v.pgoff + ((lo - v.start) >> PAGE_SHIFT)
        vm.acct.charge(vm.P_pcl, (hi - lo) >> PAGE_SHIFT)
        vec.extend(int(tree.lookup(i) is not None) for i in range(first, first + ((hi - lo) >> PAGE_SHIFT)))
        return 0

    r = _walk(task.mm, start, length, each)
    return vec if r == 0 else r
