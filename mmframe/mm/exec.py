"""exec's half of the memory model (``fs/exec.c`` and ``binfmt_elf.c`` of 2.5, reduced to what the
memory system sees).

A new mm is built first (``mm_alloc``; on failure the old image is intact and execve returns
-ENOMEM), the task switches to it (``exec_mmap``) and the old one is released (shm attachments
detach, the page tables and pages go).  Then the ELF image is mapped: text read-only and executable
and data private writable, both from the executable's page cache (``MAP_PRIVATE`` at file offsets
0 and ``text_pages``), bss anonymous, the heap starting after it, and a stack below TASK_SIZE; then
the image's shared objects (ld.so and libc for the period's dynamically linked programs), each
text, data and bss placed together by ``get_unmapped_area`` from TASK_UNMAPPED_BASE up, as
binfmt_elf placed the interpreter and ld.so its libraries.
The new program starts the way a real one does: ld.so reads the objects' tables and writes their
data and bss (relocations), then it executes its text (read faults on the shared
page-cache pages), writes its data (copy-on-write copies of the file pages), zeroes bss and touches
the top of its stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmframe.mm import mmap as MM
from mmframe.mm.fault import Killed
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE
from mmframe.mm.pgtable import TASK_SIZE
from mmframe.mm.vma import VM_EXEC, VM_GROWSDOWN, VM_MAYEXEC, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE
from mmframe.fs import FMODE_READ, File
from mmframe.usr import ENOMEM, SIGKILL, Layout

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.fs import Inode
    from mmframe.mm.memory import Memory
    from mmframe.sched import Task

ELF_TEXT_BASE = 0x0804_8000  # where i386 ld links executables
_MAY = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC


def exec_mmap(vm: Memory, task: Task, inode: Inode, file: File) -> int:
    """Replace ``task``'s address space with ``inode``'s image: 0 or -ENOMEM (nothing changed)."""
    new = vm.new_mm()
    if new is None:
        return -ENOMEM
    old, task.mm = task.mm, new
    vm.m.tlb.switch_mm(task.cpu, new)
    if old is not None:
        vm.mmput(old)
    img = inode.image
    text = ELF_TEXT_BASE
    data = text + img.text_pages * PAGE_SIZE
    bss = data + img.data_pages * PAGE_SIZE
    brk = bss + img.bss_pages * PAGE_SIZE
    stack = TASK_SIZE - img.stack_pages * PAGE_SIZE
    maps = [(text, img.text_pages, VM_READ | VM_EXEC | _MAY, file, 0),
            (data, img.data_pages, VM_READ | VM_WRITE | VM_EXEC | _MAY, file, img.text_pages),
            (bss, img.bss_pages, VM_READ | VM_WRITE | VM_EXEC | _MAY, None, 0),
            (stack, img.stack_pages, VM_READ | VM_WRITE | VM_EXEC | VM_GROWSDOWN | _MAY, None, 0)]
    _map_all(vm, task, maps)
    new.end_code, new.start_brk, new.brk, new.start_stack = data, brk, brk, TASK_SIZE
    libs, child_writes = [], []
    starts = []  # (start, pages, write) the program's start touches, in order
    for lib in img.libs:  # ld.so (binfmt_elf maps the interpreter), then what ld.so maps itself
        lfile = File(vm.m.fs.shared_lib(lib), FMODE_READ)
        span = (lib.text_pages + lib.data_pages + lib.bss_pages) << PAGE_SHIFT
        base = MM.get_unmapped_area(new, 0, span)
        if base is None:
            vm.put_object(lfile)
            _killed(vm, task)
        ldata = base + lib.text_pages * PAGE_SIZE
        lbss = ldata + lib.data_pages * PAGE_SIZE
        _map_all(vm, task, [(base, lib.text_pages, VM_READ | VM_EXEC | _MAY, lfile, 0),
                            (ldata, lib.data_pages, VM_READ | VM_WRITE | _MAY, lfile, lib.text_pages),
                            (lbss, lib.bss_pages, VM_READ | VM_WRITE | _MAY, None, 0)])
        vm.put_object(lfile)  # the mappings hold their own references
        libs.append((lib.path, base, ldata if lib.data_pages else 0))
        if lib.written_after_fork and lib.data_pages:
            child_writes.append(ldata)
        starts += [(base, min(lib.text_touched, lib.text_pages), False), (ldata, lib.data_pages, True),
                   (lbss, lib.bss_pages, True)]
    new.layout = Layout(text, data, bss, brk, TASK_SIZE, tuple(libs), tuple(child_writes))
    # the program starts: ld.so relocates the objects (reads their tables, writes their data),
    # then the program runs its text, initialises data and bss, pushes on its stack
    starts += [(text, img.text_pages, False), (data, img.data_pages, True), (bss, img.bss_pages, True),
               (TASK_SIZE - PAGE_SIZE, min(1, img.stack_pages), True)]
    for start, pages, write in starts:
        if pages:
            vm.sys_touch(task, start, pages << PAGE_SHIFT, write)
    return 0


def _map_all(vm: Memory, task: Task, maps: list) -> None:
    for start, pages, flags, obj, pgoff in maps:
        if pages and MM.do_mmap(vm, task, obj, start, pages << PAGE_SHIFT, flags, pgoff) < 0:
            _killed(vm, task)


def _killed(vm: Memory, task: Task) -> None:
    vm.m.sched.kill(task, SIGKILL)  # past the point of no return: 2.5 sends SIGKILL
    raise Killed()
