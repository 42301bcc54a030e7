"""A simple file system: inodes with a size and an inode-to-sector map onto a block device, open
files and per-task descriptor tables, buffered ``pread``/``pwrite`` through the page cache,
``ftruncate`` (2.5's ``vmtruncate``), ``fsync``, and executable images for ``execve``.

Content is a tag per 4 KiB page, so buffered I/O moves whole pages: ``offset`` and the user buffer
must be page aligned (else -EINVAL, a departure from byte-granular Linux, documented in
docs/files.md); ``length`` may end inside a page, as ``i_size`` may.  Blocks are allocated when a
page is first written (as ext2's ``get_block`` does in ``prepare_write``); unwritten pages are holes
and read as zero.  The device is the machine's first disk (:mod:`mmframe.block`): page-cache misses
and write-back go through its request queue and the caller sleeps until they complete.  ``O_DIRECT``
descriptors' ``pread``/``pwrite`` go to :mod:`mmframe.direct_io` (zero-copy, sector-aligned).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, Callable

import attrs

from mmframe.block.bio import PAGE_SECTORS, READ, WRITE, bio_pages
from mmframe.block.content import content_sectors, sectors_to_page
from mmframe.direct_io import DirectIO
from mmframe.mm import content, filemap, readahead
from mmframe.mm.page_writeback import Writeback
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE
from mmframe.mm.radix_tree import RadixTree
from mmframe.usr import (EACCES, EBADF, EFAULT, EINVAL, EISDIR, EMFILE, ENOENT, ENOMEM, ENOSPC, O_CREAT, O_DIRECT,
                         O_RDWR, O_TRUNC, O_WRONLY, SharedLib)

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.sched import Task

FMODE_READ, FMODE_WRITE = 1, 2
NR_OPEN = 1024  # the descriptor table's limit (EMFILE beyond)
DEVICE_BYTES = 4 << 30  # the stand-in device's capacity


@attrs.frozen(slots=True)
class Image:
    """An executable's layout: ``text`` and ``data`` pages in the file, then ``bss`` and stack
    pages of anonymous memory, and the shared objects the dynamic linker maps (``libs``:
    :data:`mmframe.usr.GLIBC_2002` for the period's dynamically linked programs; the default is
    the bare image, none); ``program`` is what runs."""

    program: Callable[..., Any]
    text_pages: int = 4
    data_pages: int = 1
    bss_pages: int = 1
    stack_pages: int = 32
    libs: tuple[SharedLib, ...] = ()


def open_mode(path: Any, flags: Any) -> int:
    """open(2)'s argument checks: the FMODE_* bits the access mode asks for, or -errno."""
    if not isinstance(path, str) or type(flags) is not int:
        return -EINVAL
    if not path or path.endswith("/"):
        return -EISDIR if path == "/" else -ENOENT
    acc = flags & 3
    if acc == 3:
        return -EINVAL
    return {0: FMODE_READ, O_WRONLY: FMODE_WRITE, O_RDWR: FMODE_READ | FMODE_WRITE}[acc]


def io_args(addr: Any, length: Any, offset: Any) -> int:
    """pread/pwrite's argument checks: 0 or -EINVAL (content is a tag per page, so buffered I/O
    moves whole pages: the offset and the buffer must be page aligned)."""
    if any(type(x) is not int for x in (addr, length, offset)) or length < 0 or offset < 0:
        return -EINVAL
    if offset & (PAGE_SIZE - 1) or addr & (PAGE_SIZE - 1):
        return -EINVAL
    return 0


class Inode:
    """A file: its size in bytes, its page cache, its block map (file page -> device block)."""

    __slots__ = ("ino", "path", "size", "mapping", "blocks", "writable", "image", "fs", "nlink")

    def __init__(self, fs: FileSystem, ino: int, path: str, writable: bool, image: Image | None) -> None:
        self.fs, self.ino, self.path = fs, ino, path
        self.size = 0
        self.mapping = filemap.AddressSpace(self, RadixTree(fs.m.mm.radix_pool), backed=True)
        self.blocks: dict[int, int] = {}
        self.writable, self.image = writable, image
        self.nlink = 1

    def __repr__(self) -> str:
        return f"<inode {self.ino} {self.path} size={self.size}>"


class File:
    """``struct file``: an open file description; mappings of the file hold references to it."""

    __slots__ = ("inode", "mode", "refs", "shm", "flags", "f_ra")

    def __init__(self, inode: Inode, mode: int, flags: int = 0) -> None:
        self.inode, self.mode, self.refs, self.flags = inode, mode, 1, flags
        self.shm = None
        self.f_ra = readahead.FileRaState()  # file_ra_state_init (ra_pages set by the file system)

    @property
    def mapping(self) -> filemap.AddressSpace:
        return self.inode.mapping

    def get(self) -> None:
        self.refs += 1

    def nopage(self, vm: Any, index: int) -> int:
        return filemap.filemap_nopage(vm, self.inode, index)

    def nopage_bulk(self, vm: Any, indices: list[int]) -> tuple[list[int], int]:
        """``nopage`` page by page (a bulk fill's interface): pfns, and the first failure's code."""
        out = []
        for index in indices:
            pfn = filemap.filemap_nopage(vm, self.inode, index)
            if pfn < 0:
                return out, pfn
            out.append(pfn)
        return out, 0

    def release(self, vm: Any) -> None:
        """The last reference went (fput): nothing to free, the inode stays in the file system."""


class FilesStruct:
    """``files_struct``: a task's descriptors; threads (clone) share one."""

    __slots__ = ("fds", "users")

    def __init__(self, fds: dict[int, File] | None = None) -> None:
        self.fds: dict[int, File] = fds or {}
        self.users = 1


class FileSystem:
    """Inodes by path on a stand-in device; the file system calls of every task."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.vm = machine.mm
        self.blk = machine.block
        self.dev = machine.block.device()  # the first configured disk ([block.<name>])
        self.inodes: dict[str, Inode] = {}
        self.next_ino = 1
        self.next_block = 0
        self.free_blocks: list[int] = []
        self.images: dict[Any, Inode] = {}  # program -> its installed image
        self.dio = DirectIO(self)  # O_DIRECT (mmframe/direct_io.py)
        self.ra_pages = readahead.VM_MAX_READAHEAD * 1024 // PAGE_SIZE if machine.cfg.vm.readahead else 0
        self.ra_inflight: dict[int, tuple] = {}  # pfn -> (mapping, index, bio) of a page readahead brought
        self.ra_stats = {"pages": 0, "hits": 0, "misses": 0, "eagain": 0}
        self.wb = Writeback(self, machine.cfg.vm)  # mmframe.mm.page_writeback

    # --- inodes and blocks ---------------------------------------------------------------------
    def create(self, path: str, *, writable: bool = True, image: Image | None = None) -> Inode:
        if path in self.inodes:
            raise ValueError(f"{path} exists")
        inode = Inode(self, self.next_ino, path, writable, image)
        self.next_ino += 1
        self.inodes[path] = inode
        return inode

    def install(self, path: str, image: Image) -> Inode:
        """An executable on the device, as if installed before boot (nothing is charged): text and
        data pages with tags derived from the path, read-only."""
        npages = image.text_pages + image.data_pages
        inode = self.populate(path, [zlib.crc32(f"{path}:{i}".encode()) for i in range(npages)], writable=False)
        inode.image = image
        self.images[image.program] = inode
        return inode

    def shared_lib(self, lib: SharedLib) -> Inode:
        """The file of a shared object (installed on first use, as if before boot)."""
        inode = self.inodes.get(lib.path)
        if inode is None:
            npages = lib.text_pages + lib.data_pages
            inode = self.populate(lib.path, [zlib.crc32(f"{lib.path}:{i}".encode()) for i in range(npages)],
                                  writable=False)
        return inode

    def populate(self, path: str, tags: list[int], *, writable: bool = True) -> Inode:
        """A file with one page per tag already on the device, as if written before boot."""
        inode = self.create(path, writable=writable)
        for i, tag in enumerate(tags):
            b = self._alloc_block()
            if b < 0:
                raise ValueError(f"{self.dev.name} is full")
            inode.blocks[i] = b
            self.dev.poke(b * PAGE_SECTORS, content_sectors(tag))
        inode.size = len(tags) * PAGE_SIZE
        return inode

    def preload(self, inode: Inode) -> None:
        """Put every block of ``inode`` in the page cache, as if it had been read before the run
        (no I/O; the page allocations are counted as usual).  For scenarios whose files are hot."""
        vm, dev = self.vm, self.dev
        for index, b in sorted(inode.blocks.items()):
            if inode.mapping.page_tree.lookup(index) is not None:
                continue
            pfn = filemap.new_cache_page(vm, inode.mapping, index)
            if pfn < 0:
                raise ValueError(f"no memory to preload {inode.path}")
            sectors_to_page(vm, pfn, [dev.data.get(b * PAGE_SECTORS + k) for k in range(PAGE_SECTORS)])
            self._zero_tail(inode, index, pfn)

    def image_for(self, program: Callable[..., Any]) -> Inode:
        """The installed image of ``program`` (installed at ``/bin/<name>`` on first use, with the
        layout its ``mmframe_image`` attribute gives, else the default :class:`Image`)."""
        inode = self.images.get(program)
        if inode is None:
            layout = getattr(program, "mmframe_image", {})
            name = getattr(program, "__name__", "prog").replace("<", "").replace(">", "")
            path = f"/bin/{name}"
            while path in self.inodes:
                path += "_"
            inode = self.install(path, Image(program, **layout))
        return inode

    def open_exec(self, program: Any) -> Inode | int:
        """The executable ``execve`` names: a path (-ENOENT if none, -EACCES if not an image) or a
        program (its image, installed on first use)."""
        if isinstance(program, str):
            inode = self.inodes.get(program)
            if inode is None:
                return -ENOENT
            return inode if inode.image is not None else -EACCES
        return self.image_for(program) if callable(program) else -ENOENT

    def _alloc_block(self) -> int:
        if self.free_blocks:
            return self.free_blocks.pop()
        if (self.next_block + 1) * PAGE_SECTORS > min(self.dev.nr_sectors, DEVICE_BYTES >> 9):
            return -1
        self.next_block += 1
        return self.next_block - 1

    def readpage(self, inode: Inode, index: int, pfn: int) -> None:
        """Fill a new cache page from its block (a hole is zero-filled); zero the tail past EOF."""
        b = inode.blocks.get(index)
        if b is None:
            self.vm.tag[pfn] = 0
            self.m.acct.charge(self.vm.P_clear)
        else:  # the block's content, tail and all, through the queue; the reader sleeps for it
            bio = bio_pages(READ, b * PAGE_SECTORS, [pfn])
            self.blk.submit_bio(self.dev, bio)
            self.blk.wait_sync(self.dev, bio)
        self._zero_tail(inode, index, pfn)

    def _zero_tail(self, inode: Inode, index: int, pfn: int) -> None:
        """The bytes of page ``index`` past EOF read zero (zeroes already there stay)."""
        if index == inode.size >> PAGE_SHIFT and inode.size & (PAGE_SIZE - 1):
            content.zero_from(self.vm, pfn, inode.size & (PAGE_SIZE - 1))

    def wait_on_page(self, inode: Inode, index: int, pfn: int) -> None:
        """A read reached a page readahead brought: wait for its read (mmframe.mm.readahead)."""
        readahead.wait_on_page(self, inode, index, pfn)

    def writeback(self, inode: Inode) -> int:
        """``filemap_fdatawrite`` + ``filemap_fdatawait`` (fsync, msync MS_SYNC): see
        :meth:`mmframe.mm.page_writeback.Writeback.fsync`.  0, or -ENOSPC."""
        return self.wb.fsync(inode)

    def fdatawrite(self, inode: Inode) -> tuple[list, int]:
        """``filemap_fdatawrite``: the dirty pages of ``inode`` submitted as bios, one per run of
        consecutive blocks (:meth:`mmframe.mm.page_writeback.Writeback.writepages`):
        (bios, 0 or -ENOSPC).  The caller waits for them (direct I/O's write-and-wait)."""
        bios: list = []
        _, err = self.wb.writepages(inode, bios)
        return bios, err

    def writepage(self, inode: Inode, index: int, pfn: int) -> int:
        """``writepage`` of one dirty cache page (reclaim's pageout; write-back can share it): the
        block allocated if the page has none, the page written through the queue and waited for
        (held until written, clean after).  0, or -ENOSPC when no block could be had."""
        b = inode.blocks.get(index)
        if b is None:
            b = self._alloc_block()
            if b < 0:
                return -ENOSPC
            inode.blocks[index] = b
        bio = bio_pages(WRITE, b * PAGE_SECTORS, [pfn])
        self.blk.pin_pages(bio)
        self.blk.submit_bio(self.dev, bio)
        filemap.clear_page_dirty(self.vm, pfn)
        self.blk.wait_sync(self.dev, bio)
        return 0

    def truncate(self, inode: Inode, size: int) -> None:
        """``vmtruncate``: unmap and drop the pages past the new size, free their blocks, zero the
        new last page's tail.  2.5 walks the inode's i_mmap lists; the model scans the live mms."""
        vm = self.vm
        old, inode.size = inode.size, size
        if size >= old:
            return
        first = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
        for mm in list(vm.mms.values()):
            for v in mm.vmas:
                if getattr(v.obj, "inode", None) is not inode:
                    continue
                lo = max(v.start, v.start + ((first - v.pgoff) << PAGE_SHIFT))
                if lo < v.end:
                    vm.zap_page_range(mm, lo, v.end)
                    vm.m.tlb.flush_tlb_range(mm, vm._cpu(), lo, v.end)
        for index, _ in list(inode.mapping.page_tree.items(first)):
            filemap.remove_from_page_cache(vm, inode.mapping, index)
        for index in [i for i in inode.blocks if i >= first]:
            self.free_blocks.append(inode.blocks.pop(index))
        if size & (PAGE_SIZE - 1):  # block_truncate_page: the new last page's tail zeroed, and dirty
            pfn = inode.mapping.page_tree.lookup(size >> PAGE_SHIFT)
            if pfn is not None:
                self._zero_tail(inode, size >> PAGE_SHIFT, pfn)
                filemap.set_page_dirty(vm, pfn)

    def disk_state(self) -> dict[str, tuple]:
        """Per file: its size, what each of its blocks holds on the device (tag, zeroed tail) and
        the pages still dirty in memory: what a program could read back from the disk."""
        dev = self.dev
        return {path: (i.size, tuple((k, *dev.block_content(b)) for k, b in sorted(i.blocks.items())),
                       tuple(sorted(i.mapping.dirty))) for path, i in self.inodes.items()}

    def drop_caches(self) -> int:
        """Drop clean, unmapped page-cache pages of every file (2.6.16's ``drop_caches``, for tests
        and experiments; 2.5 had no such knob): how many went."""
        vm, n = self.vm, 0
        for inode in self.inodes.values():
            for index, pfn in list(inode.mapping.page_tree.items()):
                if vm.count[pfn] == 1 and index not in inode.mapping.dirty:
                    filemap.remove_from_page_cache(vm, inode.mapping, index)
                    n += 1
        return n

    # --- descriptor tables ------------------------------------------------------------------------
    def files(self, task: Task) -> FilesStruct:
        if task.files is None:
            task.files = FilesStruct()
        return task.files

    def dup_files(self, parent: Task, child: Task, share: bool) -> None:
        """fork copies the table (each open file gains a reference); clone shares it."""
        if parent.files is None:
            return
        if share:
            parent.files.users += 1
            child.files = parent.files
            return
        for f in parent.files.fds.values():
            f.get()
        child.files = FilesStruct(dict(parent.files.fds))

    def exit_files(self, task: Task) -> None:
        fs, task.files = task.files, None
        if fs is None:
            return
        fs.users -= 1
        if fs.users == 0:
            for f in fs.fds.values():
                self.vm.put_object(f)

    def fget(self, task: Task, fd: Any, mode: int = FMODE_READ | FMODE_WRITE) -> File | None:
        """The open file of descriptor ``fd`` if it was opened with any of ``mode``'s rights."""
        f = self.files(task).fds.get(fd) if type(fd) is int else None
        return f if f is not None and f.mode & mode else None

    # --- system calls -------------------------------------------------------------------------------
    def sys_open(self, task: Task, path: Any, flags: int = 0) -> int:
        mode = open_mode(path, flags)
        if mode < 0:
            return mode
        inode = self.inodes.get(path)
        if inode is None:
            if not flags & O_CREAT:
                return -ENOENT
            inode = self.create(path)
        if (mode & FMODE_WRITE or flags & O_TRUNC) and not inode.writable:
            return -EACCES  # O_TRUNC needs write permission whatever the access mode
        table = self.files(task)
        fd = next((i for i in range(NR_OPEN) if i not in table.fds), None)
        if fd is None:
            return -EMFILE
        if flags & O_TRUNC:  # Linux truncates even for O_RDONLY (open(2): "undefined")
            self.truncate(inode, 0)
        table.fds[fd] = File(inode, mode, flags & O_DIRECT)
        return fd

    def sys_close(self, task: Task, fd: Any) -> int:
        f = self.files(task).fds.pop(fd, None) if type(fd) is int else None
        if f is None:
            return -EBADF
        self.vm.put_object(f)
        return 0

    def _check_io(self, task: Task, fd: Any, addr: Any, length: Any, offset: Any, mode: int) -> File | int:
        f = self.fget(task, fd, mode)
        if f is None:
            return -EBADF
        return io_args(addr, length, offset) or f

    def sys_pread(self, task: Task, fd: Any, addr: int, length: int, offset: int) -> int:
        f = self.fget(task, fd, FMODE_READ)
        if f is not None and f.flags & O_DIRECT:
            return self.dio.check(addr, length, offset) or self.dio.direct_io(task, f.inode, READ, addr, length, offset)
        f = self._check_io(task, fd, addr, length, offset, FMODE_READ)
        if isinstance(f, int):
            return f
        inode, vm = f.inode, self.vm
        n = max(0, min(length, inode.size - offset))
        done = 0
        ra = f.f_ra
        ra.ra_pages = self.ra_pages
        while done < n:
            index = (offset + done) >> PAGE_SHIFT
            readahead.page_cache_readahead(self, inode, ra, index)  # do_generic_mapping_read
            if ra.ra_pages and inode.mapping.page_tree.lookup(index) is None:
                readahead.handle_ra_miss(self, ra, index)
            pfn = filemap.read_cache_page(vm, inode, index)
            if pfn < 0:
                return done or -ENOMEM
            vm.acct.charge(vm.P_copy)  # file_read_actor: __copy_to_user of the page
            if not vm.copy_to_user(task, addr + done, vm.tag[pfn]):
                return done or -EFAULT
            if vm.fine and pfn in vm.fine:  # bytes a direct write left: the page's content, not a tag
                content.copy_page(vm, pfn, vm.follow_page(task.mm, addr + done, True))
            done = min(n, done + PAGE_SIZE)
        return done

    def sys_pwrite(self, task: Task, fd: Any, addr: int, length: int, offset: int) -> int:
        f = self.fget(task, fd, FMODE_WRITE)
        if f is not None and f.flags & O_DIRECT:
            return self.dio.check(addr, length, offset) or self.dio.direct_io(task, f.inode, WRITE, addr, length, offset)
        f = self._check_io(task, fd, addr, length, offset, FMODE_WRITE)
        if isinstance(f, int):
            return f
        inode, vm = f.inode, self.vm
        done = 0
        while done < length:
            index = (offset + done) >> PAGE_SHIFT
            tag = vm.copy_from_user(task, addr + done)
            if tag is None:
                return done or -EFAULT
            if index not in inode.blocks:
                b = self._alloc_block()
                if b < 0:
                    return done or -ENOSPC
                inode.blocks[index] = b
            pfn = filemap.find_get_page(vm, inode.mapping, index)
            if pfn < 0:  # a whole page is written: no read needed
                pfn = filemap.new_cache_page(vm, inode.mapping, index)
                if pfn < 0:
                    return done or -ENOMEM
            vm.acct.charge(vm.P_copy)
            src = vm.follow_page(task.mm, addr + done, False)
            if vm.fine and src in vm.fine:  # a buffer holding bytes (a direct read's sectors)
                content.copy_page(vm, src, pfn)
            else:
                content.set_tag(vm, pfn, tag)  # the whole page: no zeroed tail left
            filemap.set_page_dirty(vm, pfn)
            done = min(length, done + PAGE_SIZE)
            if offset + done > inode.size:
                inode.size = offset + done
            self._zero_tail(inode, index, pfn)
            self.wb.balance_dirty_pages_ratelimited(inode)  # generic_file_write's throttle point
        return done

    def sys_ftruncate(self, task: Task, fd: Any, length: Any) -> int:
        f = self.fget(task, fd)
        if f is None:
            return -EBADF
        if type(length) is not int or length < 0 or not f.mode & FMODE_WRITE:
            return -EINVAL
        self.truncate(f.inode, length)
        return 0

    def sys_fsync(self, task: Task, fd: Any) -> int:
        f = self.fget(task, fd)
        if f is None:
            return -EBADF
        return self.writeback(f.inode)

    def sys_sync(self, task: Task) -> int:
        """``sync``: write every file's dirty pages; the caller sleeps until they are written
        (2.5.49's ``sys_sync`` waits, as ``wakeup_bdflush`` + ``sync_inodes(1)``)."""
        return self.wb.sync()
