"""The user-space view: system call constructors, constants, and the signal a program can catch.

A simulated program is a generator function ``prog(ctx, *args)`` that ``yield``s system calls and
receives their results::

    def prog(ctx):
        pid = yield fork()
        if pid == 0:
            yield write(0x1000_0000, 42)
            yield exit(0)
        pid, status = yield wait()

A call returns what the syscall returns (a value or ``-errno``).  A synchronous signal (SIGSEGV,
SIGBUS) is raised into the program as :class:`SimSignal`; uncaught, it kills the task as the default
action would.  Programs must be deterministic given their syscall results and ``ctx.rng``: ``fork``
returns in both parent and child by replaying the parent's program with the recorded results (see
docs/programs.md).  Pass ``fork(child=fn)`` to run a separate function in the child instead.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

# errno (asm-i386/errno.h)
EPERM, ENOENT, ESRCH, EINTR, EIO, ENOEXEC, EBADF, ECHILD, EAGAIN, ENOMEM, EACCES, EFAULT = (
    1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14)
EBUSY, EEXIST, EISDIR, EINVAL, ENFILE, EMFILE, EFBIG, ENOSPC, ENOSYS, ERANGE, EIDRM = (
    16, 17, 21, 22, 23, 24, 27, 28, 38, 34, 43)
EXDEV, ENODEV, ENOTDIR, ESPIPE, EPIPE, ENOTEMPTY, EOVERFLOW = 18, 19, 20, 29, 32, 39, 75
ERRNO_NAMES = {v: k for k, v in dict(globals()).items() if k.startswith("E") and isinstance(v, int)}

# signals (asm-i386/signal.h) and si_code values
SIGBUS, SIGKILL, SIGSEGV, SIGPIPE, SIGCHLD, SIGXFSZ = 7, 9, 11, 13, 17, 25
SEGV_MAPERR, SEGV_ACCERR = 1, 2
BUS_ADRALN, BUS_ADRERR, BUS_OBJERR = 1, 2, 3
SIGNAL_NAMES = {SIGBUS: "SIGBUS", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGCHLD: "SIGCHLD",
                SIGXFSZ: "SIGXFSZ"}
SIG_DFL, SIG_IGN = 0, 1

# mmap / mprotect (asm-i386/mman.h)
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_LOCKED, MAP_NORESERVE, MAP_POPULATE = 0x2000, 0x4000, 0x8000  # MAP_POPULATE: 2.5.46
MAP_FAILED = -1
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
MCL_CURRENT, MCL_FUTURE = 1, 2
MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED = 0, 1, 2, 3, 4
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
# open (asm-i386/fcntl.h)
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NONBLOCK = 0, 1, 2, 0o100, 0o200, 0o1000, 0o2000, 0o4000
F_GETFL, F_SETFL = 3, 4  # fcntl (asm-i386/fcntl.h); the only commands modelled
O_DIRECT, O_LARGEFILE = 0o40000, 0o100000
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
PIPE_BUF = 4096
# stat (linux/stat.h)
S_IFMT, S_IFIFO, S_IFCHR, S_IFDIR, S_IFREG = 0o170000, 0o010000, 0o020000, 0o040000, 0o100000
# shm (linux/ipc.h, linux/shm.h)
IPC_PRIVATE, IPC_CREAT, IPC_EXCL, IPC_RMID, IPC_SET, IPC_STAT = 0, 0o1000, 0o2000, 0, 1, 2
SHM_RDONLY, SHM_RND, SHM_REMAP = 0o10000, 0o20000, 0o40000
SHM_LOCK, SHM_UNLOCK = 11, 12

PAGE_SIZE = 4096


class SimSignal(Exception):
    """A synchronous signal delivered to the program (catchable: a handler that longjmps out)."""

    def __init__(self, signo: int, code: int = 0, addr: int | None = None) -> None:
        self.signo, self.code, self.addr = signo, code, addr
        super().__init__(f"{SIGNAL_NAMES.get(signo, signo)} code={code} addr={addr if addr is None else hex(addr)}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimSignal) and (self.signo, self.code, self.addr) == (
            other.signo, other.code, other.addr)

    def __hash__(self) -> int:
        return hash((self.signo, self.code, self.addr))

    def __reduce__(self) -> tuple[Any, ...]:
        return (SimSignal, (self.signo, self.code, self.addr))


# wait status encoding (as waitpid's)
def WIFEXITED(status: int) -> bool:
    return (status & 0x7F) == 0


def WEXITSTATUS(status: int) -> int:
    return (status >> 8) & 0xFF


def WIFSIGNALED(status: int) -> bool:
    return (status & 0x7F) != 0


def WTERMSIG(status: int) -> int:
    return status & 0x7F


Program = Callable[..., Any]


# --- system call constructors: each returns the tuple the scheduler dispatches ---------------
def fork(child: Program | None = None, *args: Any) -> tuple: return ("fork", child, args)
def clone(fn: Program, *args: Any) -> tuple: return ("clone", fn, args)
def execve(program: Program, *args: Any) -> tuple: return ("execve", program, args)
def exit(code: int = 0) -> tuple: return ("exit", code)  # noqa: A001 - the syscall's name
def wait(pid: int = -1) -> tuple: return ("wait", pid)
def getpid() -> tuple: return ("getpid",)
def sched_yield() -> tuple: return ("sched_yield",)
def sleep(ns: int) -> tuple: return ("sleep", ns)
def mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> tuple:
    return ("mmap", addr, length, prot, flags, fd, offset)
def munmap(addr: int, length: int) -> tuple: return ("munmap", addr, length)
def mprotect(addr: int, length: int, prot: int) -> tuple: return ("mprotect", addr, length, prot)
def brk(addr: int) -> tuple: return ("brk", addr)
def proc_maps() -> tuple: return ("proc_maps",)  # the lines of /proc/self/maps (mmframe/mm/task_mmu.py)
def shmget(key: int, size: int, flags: int) -> tuple: return ("shmget", key, size, flags)
def shmat(shmid: int, addr: int = 0, flags: int = 0) -> tuple: return ("shmat", shmid, addr, flags)
def shmdt(addr: int) -> tuple: return ("shmdt", addr)
def shmctl(shmid: int, cmd: int, buf: Any = None) -> tuple:
    return ("shmctl", shmid, cmd) if buf is None else ("shmctl", shmid, cmd, buf)
def msync(addr: int, length: int, flags: int = MS_SYNC) -> tuple: return ("msync", addr, length, flags)
def touch(start: int, length: int, write: bool = False) -> tuple: return ("touch", start, length, write)
def open(path: str, flags: int = O_RDONLY) -> tuple: return ("open", path, flags)  # noqa: A001
def close(fd: int) -> tuple: return ("close", fd)
def ftruncate(fd: int, length: int) -> tuple: return ("ftruncate", fd, length)
def fsync(fd: int) -> tuple: return ("fsync", fd)
def sync() -> tuple: return ("sync",)
def pread(fd: int, addr: int, length: int, offset: int) -> tuple: return ("pread", fd, addr, length, offset)
def pwrite(fd: int, addr: int, length: int, offset: int) -> tuple: return ("pwrite", fd, addr, length, offset)
def load(addr: int, n: int) -> tuple: return ("load", addr, n)  # memcpy out of memory: bytes
def store(addr: int, data: bytes) -> tuple: return ("store", addr, data)  # memcpy into memory


def read(*args: Any) -> tuple:  # type: ignore[no-redef]
    """``read(addr)``: a load of the 64-bit word at ``addr`` (a page holding a whole-page tag gives
    the tag); ``read(fd, buf, count)``: read(2) from the file position."""
    return ("read", *args) if len(args) == 1 else ("fd_read", *args)


def write(*args: Any) -> tuple:  # type: ignore[no-redef]
    """``write(addr, tag)``: the whole page at ``addr`` holds ``tag``; ``write(fd, buf, count)``:
    write(2) at the file position."""
    return ("write", *args) if len(args) == 2 else ("fd_write", *args)


def lseek(fd: int, offset: int, whence: int) -> tuple: return ("lseek", fd, offset, whence)
def llseek(fd: int, offset: int, whence: int) -> tuple: return ("llseek", fd, offset, whence)
def readv(fd: int, iov: list) -> tuple: return ("readv", fd, list(iov))  # iov: [(addr, len), ...]
def writev(fd: int, iov: list) -> tuple: return ("writev", fd, list(iov))
def unlink(path: str) -> tuple: return ("unlink", path)
def rename(old: str, new: str) -> tuple: return ("rename", old, new)
def mkdir(path: str, mode: int = 0o755) -> tuple: return ("mkdir", path, mode)
def stat(path: str) -> tuple: return ("stat", path)
def fstat(fd: int) -> tuple: return ("fstat", fd)
def pipe() -> tuple: return ("pipe",)
def fcntl(fd: int, cmd: int, arg: int = 0) -> tuple: return ("fcntl", fd, cmd, arg)  # F_GETFL, F_SETFL
def signal(signo: int, handler: int) -> tuple: return ("signal", signo, handler)  # SIG_IGN or SIG_DFL
def getuid() -> tuple: return ("getuid",)
def setuid(uid: int) -> tuple: return ("setuid", uid)
def setgid(gid: int) -> tuple: return ("setgid", gid)
def mremap(addr: int, old_len: int, new_len: int, flags: int = 0, new_addr: int = 0) -> tuple:
    return ("mremap", addr, old_len, new_len, flags, new_addr)
def mlock(addr: int, length: int) -> tuple: return ("mlock", addr, length)
def munlock(addr: int, length: int) -> tuple: return ("munlock", addr, length)
def mlockall(flags: int) -> tuple: return ("mlockall", flags)
def munlockall() -> tuple: return ("munlockall",)
def mincore(addr: int, length: int) -> tuple: return ("mincore", addr, length)  # returns the vector
def madvise(addr: int, length: int, advice: int) -> tuple: return ("madvise", addr, length, advice)
def setsp(sp: int) -> tuple: return ("setsp", sp)  # the task's %esp (what a push or a call moves)
def io_setup(nr_events: int) -> tuple: return ("io_setup", nr_events)
def io_submit(ctx_id: int, iocbs: list) -> tuple: return ("io_submit", ctx_id, iocbs)
def io_getevents(ctx_id: int, min_nr: int, nr: int, timeout: int | None = None) -> tuple:
    return ("io_getevents", ctx_id, min_nr, nr, timeout)
def io_destroy(ctx_id: int) -> tuple: return ("io_destroy", ctx_id)
def io_cancel(ctx_id: int, iocb: Iocb) -> tuple: return ("io_cancel", ctx_id, iocb)


# AIO (include/linux/aio_abi.h of 2.5.49): the opcodes, a control block, a completion event
IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC = 0, 1, 2, 3


class Iocb(tuple):
    """``struct iocb``: ``(opcode, fd, buf, nbytes, offset, data)``; ``data`` is the caller's
    cookie, returned in the event.  Compared by value, like the user memory it stands for."""

    __slots__ = ()

    def __new__(cls, opcode: int, fd: int, buf: int, nbytes: int, offset: int, data: Any = 0) -> Iocb:
        return tuple.__new__(cls, (opcode, fd, buf, nbytes, offset, data))

    opcode = property(lambda self: self[0])
    fd = property(lambda self: self[1])
    buf = property(lambda self: self[2])
    nbytes = property(lambda self: self[3])
    offset = property(lambda self: self[4])
    data = property(lambda self: self[5])


def iocb_pread(fd: int, buf: int, nbytes: int, offset: int, data: Any = 0) -> Iocb:
    return Iocb(IOCB_CMD_PREAD, fd, buf, nbytes, offset, data)


def iocb_pwrite(fd: int, buf: int, nbytes: int, offset: int, data: Any = 0) -> Iocb:
    return Iocb(IOCB_CMD_PWRITE, fd, buf, nbytes, offset, data)

SYSCALLS = ("fork", "clone", "execve", "exit", "wait", "getpid", "sched_yield", "sleep", "mmap", "munmap",
            "mprotect", "msync", "brk", "shmget", "shmat", "shmdt", "shmctl", "read", "write", "touch", "open",
            "close", "ftruncate", "fsync", "pread", "pwrite", "io_setup", "io_submit", "io_getevents", "load",
            "store", "fd_read", "fd_write", "lseek", "llseek", "readv", "writev", "unlink", "rename", "mkdir", "stat",
            "fstat", "pipe", "signal", "getuid", "setuid", "setgid", "mremap", "mlock", "munlock", "mlockall",
            "munlockall", "mincore", "madvise", "setsp", "io_destroy", "io_cancel", "proc_maps")


# --- program images ---------------------------------------------------------------------------
# Where an i386 process of 2002 had its pieces (2.5.49: include/asm-i386/processor.h TASK_SIZE and
# TASK_UNMAPPED_BASE; binutils' i386 ELF link address).
ELF_TEXT_BASE = 0x0804_8000
TASK_UNMAPPED_BASE = 0x4000_0000
TASK_SIZE = 0xC000_0000
M_MMAP_THRESHOLD = 128 << 10  # glibc 2.2/2.3 malloc: requests this large get their own mmap


@attrs.frozen(slots=True)
class SharedLib:
    """A shared object as the dynamic linker maps it: ``text_pages`` (read/exec) and ``data_pages``
    (private writable) from the file, ``bss_pages`` anonymous after them, all placed together by
    ``get_unmapped_area`` from TASK_UNMAPPED_BASE up.  At start-up the program reads
    ``text_touched`` pages of its text (the dynamic symbol, string, hash and relocation tables and
    the code it runs) and writes its data and bss (relocations, libc's initialised state).
    ``written_after_fork``: a forked child stores to its first data page (libc's, see
    :func:`after_fork`)."""

    path: str
    text_pages: int
    data_pages: int
    bss_pages: int
    text_touched: int
    written_after_fork: bool = False


#: glibc 2.2.5 on i386 as Red Hat 7.3 (2002) mapped it: ``/proc/2441/maps`` in Steffen Persvold's
#: LKML message of 25 Sep 2002 (Message-ID Pine.LNX.4.44.0209250814230.1579-100000@dpc-27.office.scali.no):
#: ld-2.2.5.so 0x13000 text, 0x1000 data, 0x1000 bss; libc-2.2.5.so 0x12c000 text, 0x5000 data,
#: 0x4000 bss.  The pages touched at start-up are an estimate (ld.so runs all of itself; of libc,
#: its ~8 pages of .dynsym, ~5 of .dynstr, ~3 of .hash, the relocations and ~20 pages of code).
LD_SO = SharedLib("/lib/ld-2.2.5.so", 19, 1, 1, 19)
LIBC = SharedLib("/lib/libc-2.2.5.so", 300, 5, 4, 40, written_after_fork=True)
GLIBC_2002 = (LD_SO, LIBC)
#: The bare image: no shared objects, as a statically linked program (and mmframe before issue 22).
BARE = ()


@attrs.frozen(slots=True)
class Layout:
    """Where an exec'd image put its pieces, as a program's symbols would tell it (``ctx.image``):
    ``data`` (the program's first data page), ``bss``, ``brk`` (the heap's start), ``stack_top``
    and, per shared object, ``(path, text, data)`` addresses; ``child_writes``: the shared objects'
    data pages a forked child stores to (libc's)."""

    text: int
    data: int
    bss: int
    brk: int
    stack_top: int
    libs: tuple[tuple[str, int, int], ...] = ()
    child_writes: tuple[int, ...] = ()

    def lib_data(self, path: str) -> int | None:
        """The first data page of the shared object at ``path`` (None if the image has none)."""
        for p, _text, data in self.libs:
            if p == path:
                return data
        return None


def program(*, libs: tuple[SharedLib, ...] = GLIBC_2002, **image: int) -> Callable[[Program], Program]:
    """Give a program's executable image a layout for ``execve`` (``text_pages``, ``data_pages``,
    ``bss_pages``, ``stack_pages``; see :class:`mmframe.fs.Image`) and its shared objects: by
    default the period's dynamically linked image (ld.so and libc, :data:`GLIBC_2002`);
    ``libs=BARE`` for a static one::

        @program(text_pages=40, data_pages=4)
        def sh(ctx): ...

    A program exec'd without this decorator gets the bare default image (4 text, 1 data, 1 bss,
    32 stack pages, no shared objects).
    """
    allowed = {"text_pages", "data_pages", "bss_pages", "stack_pages"}
    bad = set(image) - allowed
    if bad or any(type(v) is not int or v < 0 for v in image.values()):
        raise ValueError(f"program(): layout keys are {sorted(allowed)}, non-negative ints; got {image}")
    if not isinstance(libs, tuple) or not all(isinstance(lib, SharedLib) for lib in libs):
        raise ValueError(f"program(): libs is a tuple of SharedLib (GLIBC_2002, BARE); got {libs!r}")

    def mark(fn: Program) -> Program:
        fn.mmframe_image = dict(image, libs=libs)  # type: ignore[attr-defined]
        return fn
    return mark


# --- what libc and the return path did: building blocks for programs ----------------------------
def after_fork(ctx: Any, pid: int) -> Any:
    """The stores every process made right after fork (``yield from after_fork(ctx, pid)``): the
    child (``pid == 0``) to its stack, libc's data and the program's data; the parent to its stack
    and its data (storing the pid).  McCracken, LKML 20 Dec 2002: "Almost every parent or child
    will touch three pages after fork: the current stack page, libc's data page, and the
    application's data page."  Each is a store that keeps the page's contents (``touch``), so a
    program's results do not change.  Nothing in an image-less task (a run's first program)."""
    img = getattr(ctx, "image", None)
    if img is None:
        return
    yield touch(img.stack_top - PAGE_SIZE, PAGE_SIZE, True)
    if pid == 0:
        for data in img.child_writes:
            yield touch(data, PAGE_SIZE, True)
    if img.bss > img.data:
        yield touch(img.data, PAGE_SIZE, True)


def malloc(size: int) -> Any:
    """glibc's malloc as far as the address space sees it (``addr = yield from malloc(n)``):
    requests of M_MMAP_THRESHOLD (128 KiB) and more get an anonymous private mmap (placed by
    ``get_unmapped_area`` after the shared objects), smaller ones grow the heap with ``brk``.
    Returns the address, or -ENOMEM."""
    if size >= M_MMAP_THRESHOLD:
        length = (size + 8 + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)  # the chunk header (2 size_t)
        return (yield mmap(0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS))
    cur = yield brk(0)
    want = cur + ((size + 7) & ~7)
    got = yield brk(want)
    return cur if got >= want else -ENOMEM
