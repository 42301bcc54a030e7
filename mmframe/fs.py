"""A simple file system: directories, regular files with a size and an inode-to-block map onto a
block device, the character device /dev/zero, pipes; open files with a position and per-task
descriptor tables; buffered I/O through the page cache at any byte offset and length; ``ftruncate``
(2.5's ``vmtruncate``), ``fsync``, and executable images for ``execve``.

Content is kept at the granularity programs write it (:mod:`mmframe.mm.content`): a page written
whole by a page-aligned copy moves as its compact content, a partial page as bytes.  Blocks are
allocated when a page is first written (as ext2's ``get_block`` does in ``prepare_write``);
unwritten pages are holes and read as zero.  The device is the machine's first disk
(:mod:`mmframe.block`): page-cache misses and write-back go through its request queue and the
caller sleeps until they complete.  ``O_DIRECT`` descriptors' ``pread``/``pwrite`` go to
:mod:`mmframe.direct_io` (zero-copy, sector-aligned); an ``O_DIRECT`` open of anything but a regular
file is -EINVAL (no ``direct_IO`` method there, as 2.5's ``dentry_open`` answered).  Limits are ext2's with
4 KiB blocks (``s_maxbytes``) and the LFS rule (2 GiB - 1 without ``O_LARGEFILE``), as 2.5.49's
``generic_file_write`` applied them.  See docs/files.md.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import attrs

from mmframe.block.bio import PAGE_SECTORS, READ, WRITE, bio_pages
from mmframe.block.content import content_sectors, sectors_to_page
from mmframe.direct_io import DirectIO
from mmframe.mm import content, filemap, readahead
from mmframe.mm.page_writeback import Writeback
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE
from mmframe.mm.radix_tree import RadixTree
from mmframe.usr import (EACCES, EAGAIN, EBADF, EEXIST, EFAULT, EFBIG, EINVAL, EISDIR, EMFILE, ENOENT, ENOMEM,
                         ENOSPC, ENOTDIR, ENOTEMPTY, EOVERFLOW, EPIPE, ESPIPE, F_GETFL, F_SETFL, O_APPEND, O_CREAT,
                         O_DIRECT, O_EXCL, O_LARGEFILE, O_NONBLOCK, O_RDWR, O_TRUNC, O_WRONLY, PIPE_BUF, S_IFCHR,
                         S_IFDIR, S_IFIFO, S_IFREG, SIGPIPE, SIGXFSZ, SharedLib, SimSignal)

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.sched import Task

FMODE_READ, FMODE_WRITE = 1, 2
NR_OPEN = 1024  # the descriptor table's limit (EMFILE beyond)
DEVICE_BYTES = 4 << 30  # the stand-in device's capacity
MAX_NON_LFS = (1 << 31) - 1  # the largest offset without O_LARGEFILE (linux/fs.h)
S_MAXBYTES = (512 << 32) - PAGE_SIZE  # ext2_max_size(12): i_blocks' 2^32 sectors less a block
UIO_MAXIOV = 1024
BOOT_DIRS = ("/", "/bin", "/dev", "/etc", "/tmp")


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


@attrs.frozen(slots=True)
class Stat:
    """What ``stat``/``fstat`` report (``stat64``'s fields a program uses), returned instead of
    filling a user buffer."""

    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    blocks: int  # 512-byte sectors allocated


def open_mode(path: Any, flags: Any) -> int:
    """open(2)'s argument checks: the FMODE_* bits the access mode asks for, or -errno."""
    if not isinstance(path, str) or type(flags) is not int:
        return -EINVAL
    if not path:
        return -ENOENT
    acc = flags & 3
    if acc == 3:
        return -EINVAL
    return {0: FMODE_READ, O_WRONLY: FMODE_WRITE, O_RDWR: FMODE_READ | FMODE_WRITE}[acc]


def io_args(addr: Any, length: Any, offset: Any) -> int:
    """pread/pwrite's argument checks: 0 or -EINVAL (a negative offset or count; any byte offset
    and buffer are fine)."""
    if any(type(x) is not int for x in (addr, length, offset)) or length < 0 or offset < 0:
        return -EINVAL
    return 0


def split_path(path: str) -> tuple[str, str]:
    """The parent directory and the last component of an absolute path ("//" collapses)."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts[:-1]), (parts[-1] if parts else "")


def norm(path: str) -> str:
    return "/" + "/".join(p for p in path.split("/") if p)


class Inode:
    """A regular file: its size in bytes, its page cache, its block map (file page -> device
    block), its links and open references (an unlinked file lives until the last goes)."""

    __slots__ = ("ino", "path", "size", "mapping", "blocks", "writable", "image", "fs", "nlink", "opens")

    def __init__(self, fs: FileSystem, ino: int, path: str, writable: bool, image: Image | None) -> None:
        self.fs, self.ino, self.path = fs, ino, path
        self.size = 0
        self.mapping = filemap.AddressSpace(self, RadixTree(fs.m.mm.radix_pool), backed=True)
        self.blocks: dict[int, int] = {}
        self.writable, self.image = writable, image
        self.nlink = 1
        self.opens = 0  # open file descriptions (mappings hold theirs)

    def __repr__(self) -> str:
        return f"<inode {self.ino} {self.path} size={self.size}>"


class Node:
    """A directory or a character device: no data of its own."""

    __slots__ = ("ino", "mode", "dev")

    def __init__(self, ino: int, mode: int, dev: str = "") -> None:
        self.ino, self.mode, self.dev = ino, mode, dev


class File:
    """``struct file``: an open file description with its position; mappings of the file hold
    references to it."""

    __slots__ = ("inode", "mode", "refs", "shm", "pos", "flags", "f_ra")

    def __init__(self, inode: Any, mode: int, flags: int = 0) -> None:
        self.inode, self.mode, self.refs, self.flags = inode, mode, 1, flags
        self.shm = None
        self.pos = 0
        if isinstance(inode, Inode):
            inode.opens += 1
        self.f_ra = readahead.FileRaState()  # file_ra_state_init (ra_pages set by the file system)

    @property
    def mapping(self) -> filemap.AddressSpace:
        return self.inode.mapping

    def get(self) -> None:
        self.refs += 1

    def nopage(self, vm: Any, index: int) -> int:
        return filemap.filemap_nopage(vm, self.inode, index)

    def nopage_bulk(self, vm: Any, indices: list[int]) -> tuple[list[int], int]:
        """``nopage`` page by page (a bulk fill's interface): pfns, and the first failure's code.
        Each page comes with the reference its mapping will hold, taken as it is found (2.5.49's
        ``filemap_nopage`` returns it with ``page_cache_get``): reclaim that a later page's
        allocation runs must not free an earlier one before its PTE is written."""
        out = []
        for index in indices:
            pfn = filemap.filemap_nopage(vm, self.inode, index)
            if pfn < 0:
                return out, pfn
            vm.count[pfn] += 1
            out.append(pfn)
        return out, 0

    def release(self, vm: Any) -> None:
        """The last reference went (fput): an unlinked file with no other opening goes now."""
        inode = self.inode
        if isinstance(inode, Inode):
            inode.opens -= 1
            if inode.opens == 0 and inode.nlink == 0:
                inode.fs.destroy(inode)
        elif isinstance(inode, Pipe):
            inode.release(self.mode)


class Pipe:
    """A pipe (2.5's ``fs/pipe.c``): one page of buffer (PIPE_SIZE = PIPE_BUF = 4096), readers and
    writers, the tasks blocked on each side.  A blocked reader is served, and woken, by the write
    that gives it data (or the last writer's close: end of file); a blocked writer by the reads that
    make room for it (or the last reader's close: EPIPE)."""

    __slots__ = ("fs", "buf", "readers", "writers", "rwait", "wwait", "ino")

    def __init__(self, fs: FileSystem, ino: int) -> None:
        self.fs, self.ino = fs, ino
        self.buf = bytearray()
        self.readers = self.writers = 1
        self.rwait: deque[tuple[Task, int, int]] = deque()  # (task, addr, count)
        self.wwait: deque[list] = deque()  # [task, addr, count, done]

    def release(self, mode: int) -> None:
        if mode & FMODE_READ:
            self.readers -= 1
            if not self.readers:
                while self.wwait:
                    task, _, _, done = self.wwait.popleft()
                    self.fs.pipe_epipe(task, done)
        if mode & FMODE_WRITE:
            self.writers -= 1
            if not self.writers:
                while self.rwait:
                    self.fs.m.sched.wake(self.rwait.popleft()[0], 0)  # end of file


class FilesStruct:
    """``files_struct``: a task's descriptors; threads (clone) share one."""

    __slots__ = ("fds", "users")

    def __init__(self, fds: dict[int, File] | None = None) -> None:
        self.fds: dict[int, File] = fds or {}
        self.users = 1


class FileSystem:
    """Paths to directories, files and devices on a stand-in device; the file system calls."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.vm = machine.mm
        self.blk = machine.block
        self.dev = machine.block.device()  # the first configured disk ([block.<name>])
        self.inodes: dict[str, Inode] = {}  # regular files by path
        self.nodes: dict[str, Node] = {}  # directories and devices by path
        self.orphans: set[Inode] = set()  # unlinked, still open or mapped
        self.next_ino = 1
        self.next_block = 0
        self.free_blocks: list[int] = []
        self.images: dict[Any, Inode] = {}  # program -> its installed image
        for d in BOOT_DIRS:
            self._node(d, S_IFDIR)
        self._node("/dev/zero", S_IFCHR, "zero")
        self.dio = DirectIO(self)  # O_DIRECT (mmframe/direct_io.py)
        self.ra_pages = readahead.VM_MAX_READAHEAD * 1024 // PAGE_SIZE if machine.cfg.vm.readahead else 0
        self.ra_inflight: dict[int, tuple] = {}  # pfn -> (mapping, index, bio) of a page readahead brought
        self.ra_stats = {"pages": 0, "hits": 0, "misses": 0, "eagain": 0}
        self.wb = Writeback(self, machine.cfg.vm)  # mmframe.mm.page_writeback

    # --- names ------------------------------------------------------------------------------------
    def _node(self, path: str, mode: int, dev: str = "") -> Node:
        n = self.nodes[path] = Node(self.next_ino, mode, dev)
        self.next_ino += 1
        return n

    def lookup(self, path: str) -> Inode | Node | None:
        return self.inodes.get(path) or self.nodes.get(path)

    def parent_error(self, path: str) -> int:
        """``path_walk`` of the directories above ``path``: 0, -ENOENT or -ENOTDIR."""
        parts = [p for p in path.split("/") if p][:-1]
        at = ""
        for p in parts:
            at += "/" + p
            n = self.lookup(at)
            if n is None:
                return -ENOENT
            if not isinstance(n, Node) or n.mode != S_IFDIR:
                return -ENOTDIR
        return 0

    def resolve(self, path: Any) -> Inode | Node | int:
        """What ``path`` names, or -errno (-ENOENT, -ENOTDIR; a trailing slash needs a directory)."""
        if not isinstance(path, str) or not path.startswith("/"):
            return -ENOENT if isinstance(path, str) else -EFAULT
        err = self.parent_error(path)
        if err:
            return err
        n = self.lookup(norm(path))
        if n is None:
            return -ENOENT
        if path.endswith("/") and len(path) > 1 and not (isinstance(n, Node) and n.mode == S_IFDIR):
            return -ENOTDIR
        return n

    def live_inodes(self) -> list[Inode]:
        """Every regular file with data: those with a name and the unlinked ones still open."""
        return list(self.inodes.values()) + list(self.orphans)

    # --- inodes and blocks ---------------------------------------------------------------------
    def create(self, path: str, *, writable: bool = True, image: Image | None = None) -> Inode:
        """A regular file (boot-time and O_CREAT); directories above it are made as an installer
        would."""
        path = norm(path)
        if self.lookup(path) is not None:
            raise ValueError(f"{path} exists")
        parent = split_path(path)[0]
        if parent not in self.nodes:
            self.create_dirs(parent)
        inode = Inode(self, self.next_ino, path, writable, image)
        self.next_ino += 1
        self.inodes[path] = inode
        return inode

    def create_dirs(self, path: str) -> None:
        at = ""
        for p in [p for p in path.split("/") if p]:
            at += "/" + p
            if at not in self.nodes:
                if at in self.inodes:
                    raise ValueError(f"{at} is a file")
                self._node(at, S_IFDIR)

    def destroy(self, inode: Inode) -> None:
        """The last link and the last opening went (``iput`` of an unlinked inode): its pages and
        blocks are freed."""
        self.orphans.discard(inode)
        for index, _ in list(inode.mapping.page_tree.items()):
            filemap.remove_from_page_cache(self.vm, inode.mapping, index)
        self.free_blocks.extend(inode.blocks.values())
        inode.blocks.clear()

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
            while self.lookup(path) is not None:
                path += "_"
            inode = self.install(path, Image(program, **layout))
        return inode

    def open_exec(self, program: Any) -> Inode | int:
        """The executable ``execve`` names: a path (-ENOENT if none, -EACCES if not an image) or a
        program (its image, installed on first use)."""
        if isinstance(program, str):
            inode = self.resolve(program)
            if isinstance(inode, int):
                return inode
            return inode if isinstance(inode, Inode) and inode.image is not None else -EACCES
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
            content.set_tag(self.vm, pfn, 0)
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

    def truncate(self, inode: Inode, size: int) -> None:
        """``vmtruncate``: unmap and drop the pages past the new size, free their blocks, zero the
        new last page's tail (``block_truncate_page`` reads it in if it has a block).  2.5 walks the
        inode's i_mmap lists; the model scans the live mms."""
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
            index = size >> PAGE_SHIFT
            pfn = inode.mapping.page_tree.lookup(index)
            if pfn is None and index in inode.blocks:
                pfn = filemap.read_cache_page(vm, inode, index)  # (readpage zeroes the tail)
                if pfn < 0:
                    return
            if pfn is not None:
                self._zero_tail(inode, index, pfn)
                filemap.set_page_dirty(vm, pfn)

    def disk_state(self) -> dict[str, tuple]:
        """Per file: its size, what each of its blocks holds on the device and the pages still
        dirty in memory: what a program could read back from the disk."""
        dev = self.dev
        return {path: (i.size, tuple((k, dev.block_content(b)) for k, b in sorted(i.blocks.items())),
                       tuple(sorted(i.mapping.dirty))) for path, i in self.inodes.items()}

    def drop_caches(self) -> int:
        """Drop clean, unmapped page-cache pages of every file (2.6.16's ``drop_caches``, for tests
        and experiments; 2.5 had no such knob): how many went."""
        vm, n = self.vm, 0
        for inode in self.live_inodes():
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

    def install_fd(self, task: Task, f: File) -> int:
        table = self.files(task)
        fd = next((i for i in range(NR_OPEN) if i not in table.fds), None)
        if fd is None:
            return -EMFILE
        table.fds[fd] = f
        return fd

    # --- system calls: names ------------------------------------------------------------------------
    def sys_open(self, task: Task, path: Any, flags: int = 0) -> int:
        mode = open_mode(path, flags)
        if mode < 0:
            return mode
        if flags & O_CREAT and isinstance(path, str) and path.startswith("/") and path.endswith("/"):
            # open_namei: after the parent's lookup, "creat(2) an obvious directory" is -EISDIR
            return self.parent_error(path) or -EISDIR
        node = self.resolve(path)
        if node == -ENOENT and flags & O_CREAT and not path.endswith("/"):
            if self.parent_error(path):
                return self.parent_error(path)
            node = self.create(path)
        elif isinstance(node, int):
            return node
        elif flags & O_CREAT and flags & O_EXCL:
            return -EEXIST
        if isinstance(node, Node):
            if node.mode == S_IFDIR and (mode & FMODE_WRITE or flags & (O_CREAT | O_TRUNC)):
                return -EISDIR
        elif (mode & FMODE_WRITE or flags & O_TRUNC) and not node.writable:
            return -EACCES  # O_TRUNC needs write permission whatever the access mode
        if flags & O_DIRECT and not isinstance(node, Inode):
            return -EINVAL  # no a_ops->direct_IO here (a directory, a device node)
        if len(self.files(task).fds) >= NR_OPEN:
            return -EMFILE
        if flags & O_TRUNC and isinstance(node, Inode):  # Linux truncates even for O_RDONLY
            self.truncate(node, 0)
        return self.install_fd(task, File(node, mode, flags))

    def sys_close(self, task: Task, fd: Any) -> int:
        f = self.files(task).fds.pop(fd, None) if type(fd) is int else None
        if f is None:
            return -EBADF
        self.vm.put_object(f)
        return 0

    def sys_fcntl(self, task: Task, fd: Any, cmd: Any, arg: Any = 0) -> int:
        """fcntl(2) ``F_GETFL`` / ``F_SETFL`` as 2.5.49's fs/fcntl.c: GETFL gives the open flags
        with the access mode; SETFL changes only O_APPEND, O_NONBLOCK and O_DIRECT (``SETFL_MASK``;
        O_DIRECT -EINVAL where there is no ``direct_IO``).  Other commands: -EINVAL (*departure*:
        not modelled)."""
        f = self.files(task).fds.get(fd) if type(fd) is int else None
        if f is None:
            return -EBADF
        if cmd == F_GETFL:
            return (f.flags & ~(O_WRONLY | O_RDWR)) | (f.mode - 1)  # FMODE_READ/WRITE/both -> O_RDONLY/WRONLY/RDWR
        if cmd != F_SETFL or type(arg) is not int:
            return -EINVAL
        if arg & O_DIRECT and not isinstance(f.inode, Inode):
            return -EINVAL
        mask = O_APPEND | O_NONBLOCK | O_DIRECT
        f.flags = (f.flags & ~mask) | (arg & mask)
        return 0

    def sys_unlink(self, task: Task, path: Any) -> int:
        """``vfs_unlink``: the name goes; an open or mapped file lives until its last reference."""
        node = self.resolve(path)
        if isinstance(node, int):
            return node
        if isinstance(node, Node):
            if node.mode == S_IFDIR:
                return -EISDIR  # may_delete: 2.5 answers EISDIR (POSIX says EPERM)
            del self.nodes[norm(path)]
            return 0
        self._unlink_inode(node)
        return 0

    def _unlink_inode(self, inode: Inode) -> None:
        del self.inodes[inode.path]
        inode.nlink -= 1
        self.images = {p: i for p, i in self.images.items() if i is not inode}
        if inode.opens:
            self.orphans.add(inode)
        else:
            self.destroy(inode)

    def sys_rename(self, task: Task, old: Any, new: Any) -> int:
        """``vfs_rename``: a file replaces a file (the old target lives on while open); a
        directory an empty directory, never its own subdirectory."""
        src = self.resolve(old)
        if isinstance(src, int):
            return src
        if not isinstance(new, str) or not new.startswith("/"):
            return -ENOENT
        err = self.parent_error(new)
        if err:
            return err
        src_dir = isinstance(src, Node) and src.mode == S_IFDIR
        if not src_dir and new.endswith("/"):
            return -ENOTDIR  # a trailing slash names a directory (do_rename's "slashes")
        old, new = norm(old), norm(new)
        dst = self.lookup(new)
        if src_dir and (new + "/").startswith(old + "/") and new != old:
            return -EINVAL
        if dst is src:
            return 0
        if dst is not None:
            dst_dir = isinstance(dst, Node) and dst.mode == S_IFDIR
            if src_dir and not dst_dir:
                return -ENOTDIR
            if dst_dir and not src_dir:
                return -EISDIR
            if dst_dir:
                if any(p.startswith(new + "/") for p in list(self.inodes) + list(self.nodes)):
                    return -ENOTEMPTY
                del self.nodes[new]
            elif isinstance(dst, Inode):
                self._unlink_inode(dst)
            else:
                del self.nodes[new]
        moves = [p for p in list(self.inodes) + list(self.nodes) if p == old or p.startswith(old + "/")]
        for p in moves:
            q = new + p[len(old):]
            if p in self.inodes:
                inode = self.inodes.pop(p)
                inode.path = q
                self.inodes[q] = inode
            else:
                self.nodes[q] = self.nodes.pop(p)
        return 0

    def sys_mkdir(self, task: Task, path: Any, mode: Any = 0o755) -> int:
        if not isinstance(path, str) or not path.startswith("/"):
            return -ENOENT
        err = self.parent_error(path.rstrip("/") or "/")
        if err:
            return err
        if self.lookup(norm(path)) is not None:
            return -EEXIST
        self._node(norm(path), S_IFDIR)
        return 0

    def _stat(self, node: Any) -> Stat:
        if isinstance(node, Inode):
            return Stat(node.ino, S_IFREG | (0o644 if node.writable else 0o555), node.nlink, 0, 0, node.size,
                        len(node.blocks) * PAGE_SECTORS)
        if isinstance(node, Pipe):
            return Stat(node.ino, S_IFIFO | 0o600, 1, 0, 0, 0, 0)
        is_dir = node.mode == S_IFDIR
        return Stat(node.ino, node.mode | (0o755 if is_dir else 0o666), 2 if is_dir else 1, 0, 0,
                    PAGE_SIZE if is_dir else 0, PAGE_SECTORS if is_dir else 0)

    def sys_stat(self, task: Task, path: Any) -> Any:
        node = self.resolve(path)
        return node if isinstance(node, int) else self._stat(node)

    def sys_fstat(self, task: Task, fd: Any) -> Any:
        f = self.fget(task, fd)
        return -EBADF if f is None else self._stat(f.inode)

    # --- system calls: data -----------------------------------------------------------------------
    def file_read(self, task: Task, f: File, addr: int, count: int, pos: int) -> int:
        """``do_generic_file_read`` + ``file_read_actor``: copy from the page cache (reading pages
        in) up to end of file; bytes moved, -EFAULT at a bad buffer before any, -ENOMEM."""
        inode, vm = f.inode, self.vm
        n = max(0, min(count, inode.size - pos))
        done = 0
        ra = f.f_ra
        ra.ra_pages = self.ra_pages
        while done < n:
            p = pos + done
            off = p & (PAGE_SIZE - 1)
            k = min(n - done, PAGE_SIZE - off)
            index = p >> PAGE_SHIFT
            readahead.page_cache_readahead(self, inode, ra, index)  # do_generic_mapping_read
            if ra.ra_pages and inode.mapping.page_tree.lookup(index) is None:
                readahead.handle_ra_miss(self, ra, index)
            pfn = filemap.read_cache_page(vm, inode, index)
            if pfn < 0:
                return done or -ENOMEM
            vm.acct.charge(vm.P_copy)  # file_read_actor: __copy_to_user (a page's worth at most)
            if k == PAGE_SIZE and not (addr + done) & (PAGE_SIZE - 1):  # page to page: compact
                try:
                    content.copy_page(vm, pfn, vm.user_page(task, addr + done, True))
                    got = k
                except SimSignal:
                    got = 0
            else:
                got = vm.copy_bytes_to_user(task, addr + done, content.read_bytes(vm, pfn, off, k))
            done += got
            if got < k:
                return done or -EFAULT
        return done

    def write_limit(self, task: Task, f: File, pos: int, count: int) -> int:
        """``generic_file_write``'s limits: the count allowed at ``pos`` (cut short at the LFS
        limit without O_LARGEFILE, and at ``s_maxbytes``), or -EFBIG with SIGXFSZ when nothing can
        be written there."""
        if pos + count > MAX_NON_LFS and not f.flags & O_LARGEFILE:
            if pos >= MAX_NON_LFS:
                return self.xfsz(task)
            count = min(count, MAX_NON_LFS - pos)
        if pos >= S_MAXBYTES:
            if count or pos > S_MAXBYTES:
                return self.xfsz(task)
        count = min(count, S_MAXBYTES - pos)
        return count

    def xfsz(self, task: Task) -> int:
        """SIGXFSZ (default action: terminate), then -EFBIG if the task ignores it."""
        if SIGXFSZ not in task.sigign:
            raise SimSignal(SIGXFSZ)
        return -EFBIG

    def file_write(self, task: Task, f: File, addr: int, count: int, pos: int) -> int:
        """``generic_file_write``: copy into the page cache, allocating blocks as pages are first
        written (``prepare_write``), reading a page in first when it is written partially; the size
        grows; bytes moved or -errno (-EFAULT, -ENOSPC, -ENOMEM, -EFBIG)."""
        inode, vm = f.inode, self.vm
        count = self.write_limit(task, f, pos, count)
        if count <= 0:
            return count
        done = 0
        while done < count:
            p, a = pos + done, addr + done
            index, off = p >> PAGE_SHIFT, p & (PAGE_SIZE - 1)
            k = min(count - done, PAGE_SIZE - off)
            whole = k == PAGE_SIZE
            src = -1
            if whole and not a & (PAGE_SIZE - 1):
                try:
                    src = vm.user_page(task, a, False)
                except SimSignal:
                    return done or -EFAULT
                data = b""
            else:
                data = vm.copy_bytes_from_user(task, a, k)
                if len(data) < k:  # (2.5 could commit a partly copied page; the model writes none of it)
                    return done or -EFAULT
            if index not in inode.blocks:
                b = self._alloc_block()
                if b < 0:
                    return done or -ENOSPC
                inode.blocks[index] = b
            if whole:  # a whole page is written: no read needed
                pfn = filemap.find_get_page(vm, inode.mapping, index)
                if pfn < 0:
                    pfn = filemap.new_cache_page(vm, inode.mapping, index)
            else:
                pfn = filemap.read_cache_page(vm, inode, index)
            if pfn < 0:
                return done or -ENOMEM
            vm.acct.charge(vm.P_copy)
            if src >= 0:
                content.copy_page(vm, src, pfn)
            else:
                content.write_bytes(vm, pfn, off, data)
            filemap.set_page_dirty(vm, pfn)
            done += k
            if pos + done > inode.size:
                inode.size = pos + done
            self._zero_tail(inode, index, pfn)
            self.wb.balance_dirty_pages_ratelimited(inode)  # generic_file_write's throttle point
        return done

    def _read(self, task: Task, f: File, addr: int, count: int, pos: int | None) -> int:
        """One read at ``pos`` (None: the file position, advanced), by what the file is."""
        node = f.inode
        if isinstance(node, Pipe):
            return self.pipe_read(task, f, addr, count)
        if isinstance(node, Node):
            if node.mode == S_IFDIR:
                return -EISDIR
            got = self.vm.copy_bytes_to_user(task, addr, bytes(count))  # /dev/zero: zeroes
            return got or (-EFAULT if count else 0)
        start = f.pos if pos is None else pos
        n = self.file_read(task, f, addr, count, start)
        if pos is None and n > 0:
            f.pos += n
        return n

    def _write(self, task: Task, f: File, addr: int, count: int, pos: int | None) -> int:
        node = f.inode
        if isinstance(node, Pipe):
            return self.pipe_write(task, f, addr, count)
        if isinstance(node, Node):
            return count  # /dev/zero: write_zero swallows it
        start = f.pos if pos is None else pos
        if pos is None and f.flags & O_APPEND:
            start = node.size
        n = self.file_write(task, f, addr, count, start)
        if pos is None and n > 0:
            f.pos = start + n
        return n

    def sys_fd_read(self, task: Task, fd: Any, addr: Any, count: Any) -> Any:
        """read(2): ``vfs_read`` at the file position (EBADF, EINVAL for a negative count)."""
        f = self.fget(task, fd, FMODE_READ)
        if f is None:
            return -EBADF
        if type(addr) is not int or type(count) is not int or count < 0:
            return -EINVAL
        return self._read(task, f, addr, count, None)

    def sys_fd_write(self, task: Task, fd: Any, addr: Any, count: Any) -> Any:
        f = self.fget(task, fd, FMODE_WRITE)
        if f is None:
            return -EBADF
        if type(addr) is not int or type(count) is not int or count < 0:
            return -EINVAL
        return self._write(task, f, addr, count, None)

    def _check_io(self, task: Task, fd: Any, addr: Any, length: Any, offset: Any, mode: int) -> File | int:
        if type(offset) is int and offset < 0:
            return -EINVAL  # sys_pread64 checks the position before the descriptor
        f = self.fget(task, fd, mode)
        if f is None:
            return -EBADF
        if isinstance(f.inode, Pipe):
            return -ESPIPE  # pipe_read/pipe_write refuse a position other than the file's
        return io_args(addr, length, offset) or f  # (a directory reads -EISDIR, /dev/zero zeroes)

    def sys_pread(self, task: Task, fd: Any, addr: int, length: int, offset: int) -> int:
        f = self.fget(task, fd, FMODE_READ)
        if f is not None and f.flags & O_DIRECT and isinstance(f.inode, Inode):
            return self.dio.check(addr, length, offset) or self.dio.direct_io(task, f.inode, READ, addr, length, offset)
        f = self._check_io(task, fd, addr, length, offset, FMODE_READ)
        return f if isinstance(f, int) else self._read(task, f, addr, length, offset)

    def sys_pwrite(self, task: Task, fd: Any, addr: int, length: int, offset: int) -> int:
        f = self.fget(task, fd, FMODE_WRITE)
        if f is not None and f.flags & O_DIRECT and isinstance(f.inode, Inode):
            return self.dio.check(addr, length, offset) or self.dio.direct_io(task, f.inode, WRITE, addr, length, offset)
        f = self._check_io(task, fd, addr, length, offset, FMODE_WRITE)
        return f if isinstance(f, int) else self._write(task, f, addr, length, offset)

    def _iov(self, task: Task, fd: Any, iov: Any, mode: int) -> File | int:
        """``do_readv_writev``'s checks: EBADF, more than UIO_MAXIOV segments or a negative length
        or total: EINVAL."""
        f = self.fget(task, fd, mode)
        if f is None:
            return -EBADF
        if not isinstance(iov, list) or len(iov) > UIO_MAXIOV:
            return -EINVAL
        total = 0
        for seg in iov:
            if not (isinstance(seg, tuple) and len(seg) == 2 and all(type(x) is int for x in seg)) or seg[1] < 0:
                return -EINVAL
            total += seg[1]
        return -EINVAL if total > 0x7FFF_FFFF else f

    def sys_readv(self, task: Task, fd: Any, iov: Any) -> int:
        """readv(2): segment by segment from the file position; a short segment ends it."""
        return self._do_readv_writev(task, fd, iov, FMODE_READ)

    def sys_writev(self, task: Task, fd: Any, iov: Any) -> int:
        """writev(2): segment by segment at the file position; a short segment ends it."""
        return self._do_readv_writev(task, fd, iov, FMODE_WRITE)

    def _do_readv_writev(self, task: Task, fd: Any, iov: Any, mode: int) -> int:
        """``do_readv_writev``: the segments in turn, bytes moved in total.  On a pipe a later
        segment that would block ends the call instead (*departure*, see docs/files.md)."""
        f = self._iov(task, fd, iov, mode)
        if isinstance(f, int):
            return f
        reading = mode == FMODE_READ
        xfer = self._read if reading else self._write
        total, pipe = 0, f.inode if isinstance(f.inode, Pipe) else None
        for addr, n in iov:
            if pipe is not None and total and (
                    not pipe.buf if reading else pipe.wwait or PIPE_BUF - len(pipe.buf) < min(n, PIPE_BUF)):
                break
            got = xfer(task, f, addr, n, None)
            if not isinstance(got, int):
                return got  # blocked in the first segment
            if got < 0:
                return total or got
            total += got
            if got < n:
                break
        return total

    def _llseek(self, f: File, offset: Any, whence: Any) -> int:
        """``generic_file_llseek``: the new position, -EINVAL outside 0..s_maxbytes; a pipe has
        none (-ESPIPE); /dev/zero's is always 0 (``null_lseek``)."""
        if type(offset) is not int or whence not in (0, 1, 2):
            return -EINVAL
        node = f.inode
        if isinstance(node, Pipe):
            return -ESPIPE
        if isinstance(node, Node) and node.mode == S_IFCHR:
            f.pos = 0
            return 0
        size = node.size if isinstance(node, Inode) else PAGE_SIZE
        offset += (0, f.pos, size)[whence]
        if not 0 <= offset <= S_MAXBYTES:
            return -EINVAL
        f.pos = offset
        return offset

    def sys_lseek(self, task: Task, fd: Any, offset: Any, whence: Any) -> int:
        """lseek(2) with a 32-bit ``off_t``: a position past 2 GiB - 1 is -EOVERFLOW (and set,
        as 2.5's sys_lseek left it)."""
        f = self.fget(task, fd)
        if f is None:
            return -EBADF
        if type(offset) is int and not -(1 << 31) <= offset < 1 << 31:
            return -EINVAL  # (not an off_t: a C caller could not pass it)
        r = self._llseek(f, offset, whence)
        return -EOVERFLOW if r > MAX_NON_LFS else r

    def sys_llseek(self, task: Task, fd: Any, offset: Any, whence: Any) -> int:
        """_llseek(2): the 64-bit position, returned instead of stored through a pointer."""
        f = self.fget(task, fd)
        return -EBADF if f is None else self._llseek(f, offset, whence)

    def sys_ftruncate(self, task: Task, fd: Any, length: Any) -> int:
        """``do_sys_ftruncate``: EINVAL past 2 GiB - 1 without O_LARGEFILE, EFBIG past s_maxbytes."""
        f = self.fget(task, fd)
        if f is None:
            return -EBADF
        if type(length) is not int or length < 0:
            return -EINVAL
        if not isinstance(f.inode, Inode) or not f.mode & FMODE_WRITE:
            return -EINVAL
        if length > MAX_NON_LFS and not f.flags & O_LARGEFILE:
            return -EINVAL
        if length > S_MAXBYTES:
            return -EFBIG
        self.truncate(f.inode, length)
        return 0

    def sys_fsync(self, task: Task, fd: Any) -> int:
        f = self.fget(task, fd)
        if f is None:
            return -EBADF
        if not isinstance(f.inode, Inode):
            return -EINVAL  # no f_op->fsync
        return self.writeback(f.inode)

    def sys_sync(self, task: Task) -> int:
        """``sync``: write every file's dirty pages; the caller sleeps until they are written
        (2.5.49's ``sys_sync`` waits, as ``wakeup_bdflush`` + ``sync_inodes(1)``)."""
        return self.wb.sync()

    # --- pipes ----------------------------------------------------------------------------------------
    def sys_pipe(self, task: Task) -> Any:
        """pipe(2): ``(read fd, write fd)``, returned instead of stored in an int[2]."""
        p = Pipe(self, self.next_ino)
        self.next_ino += 1
        table = self.files(task)
        if len(table.fds) + 2 > NR_OPEN:
            return -EMFILE
        return (self.install_fd(task, File(p, FMODE_READ)), self.install_fd(task, File(p, FMODE_WRITE)))

    def pipe_read(self, task: Task, f: File, addr: int, count: int) -> Any:
        """``pipe_read``: what is there, up to ``count``; end of file with no writer; with none
        there, block (EAGAIN with O_NONBLOCK)."""
        p = f.inode
        if count == 0:
            return 0
        if not p.buf:
            if not p.writers:
                return 0
            if f.flags & O_NONBLOCK:
                return -EAGAIN
            p.rwait.append((task, addr, count))
            return self.m.sched.block(task)
        return self._pipe_take(task, p, addr, count)

    def _pipe_take(self, task: Task, p: Pipe, addr: int, count: int) -> int:
        k = min(count, len(p.buf))
        got = self.vm.copy_bytes_to_user(task, addr, bytes(p.buf[:k]))
        if not got:
            return -EFAULT
        del p.buf[:got]
        self._pipe_serve_writers(p)
        return got

    def _pipe_serve_writers(self, p: Pipe) -> None:
        """Room was made: move blocked writers' data in, waking each one done."""
        while p.wwait and len(p.buf) < PIPE_BUF:
            w = p.wwait[0]
            task, addr, count, done = w
            room = PIPE_BUF - len(p.buf)
            if count - done <= PIPE_BUF and room < count - done:
                break  # an atomic write waits for room for all of it
            k = min(room, count - done)
            data = self.vm.copy_bytes_from_user(task, addr + done, k)
            p.buf += data
            w[3] = done = done + len(data)
            if len(data) < k or done == count:
                p.wwait.popleft()
                self.m.sched.wake(task, done or -EFAULT)
        self._pipe_serve_readers(p)

    def _pipe_serve_readers(self, p: Pipe) -> None:
        while p.rwait and p.buf:
            task, addr, count = p.rwait.popleft()
            self.m.sched.wake(task, self._pipe_take(task, p, addr, count))

    def pipe_write(self, task: Task, f: File, addr: int, count: int) -> Any:
        """``pipe_write``: SIGPIPE and EPIPE with no reader; a write of up to PIPE_BUF bytes goes in
        at once (atomic) or waits for the room; a longer one fills the buffer as it empties."""
        p = f.inode
        if not p.readers:
            return self.pipe_epipe(task, 0, wake=False)
        if count == 0:
            return 0
        room = PIPE_BUF - len(p.buf)
        atomic = count <= PIPE_BUF
        done = 0
        if not p.wwait and (room >= count or not atomic and room):
            k = min(room, count)
            data = self.vm.copy_bytes_from_user(task, addr, k)
            p.buf += data
            done = len(data)
            if done < k:
                self._pipe_serve_readers(p)
                return done or -EFAULT
            self._pipe_serve_readers(p)
            if done == count:
                return done
        if f.flags & O_NONBLOCK:
            return done or -EAGAIN
        p.wwait.append([task, addr, count, done])
        return self.m.sched.block(task)

    def pipe_epipe(self, task: Task, done: int, wake: bool = True) -> Any:
        """No reader: a write that moved nothing gets SIGPIPE (then -EPIPE if it is ignored)."""
        if done:
            if wake:
                self.m.sched.wake(task, done)
            return done
        if SIGPIPE in task.sigign:
            if wake:
                self.m.sched.wake(task, -EPIPE)
            return -EPIPE
        if not wake:
            raise SimSignal(SIGPIPE)
        self.m.sched.wake_signal(task, SimSignal(SIGPIPE))
        return None
