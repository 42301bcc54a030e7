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
def io_getevents(ctx_id: int, min_nr: int, nr: int) -> tuple: return ("io_getevents", ctx_id, min_nr, nr)

SYSCALLS = ("fork", "clone", "execve", "exit", "wait", "getpid", "sched_yield", "sleep", "mmap", "munmap",
            "mprotect", "msync", "brk", "shmget", "shmat", "shmdt", "shmctl", "read", "write", "touch", "open",
            "close", "ftruncate", "fsync", "pread", "pwrite", "io_setup", "io_submit", "io_getevents", "load",
            "store", "fd_read", "fd_write", "lseek", "llseek", "readv", "writev", "unlink", "rename", "mkdir", "stat",
            "fstat", "pipe", "signal", "getuid", "setuid", "setgid", "mremap", "mlock", "munlock", "mlockall",
            "munlockall", "mincore", "madvise", "setsp")


def program(**image: int) -> Callable[[Program], Program]:
    """Give a program's executable image a layout for ``execve`` (``text_pages``, ``data_pages``,
    ``bss_pages``, ``stack_pages``; see :class:`mmframe.fs.Image`)::

        @program(text_pages=40, data_pages=4)
        def sh(ctx): ...
    """
    allowed = {"text_pages", "data_pages", "bss_pages", "stack_pages"}
    bad = set(image) - allowed
    if bad or any(type(v) is not int or v < 0 for v in image.values()):
        raise ValueError(f"program(): layout keys are {sorted(allowed)}, non-negative ints; got {image}")

    def mark(fn: Program) -> Program:
        fn.mmframe_image = dict(image)  # type: ignore[attr-defined]
        return fn
    return mark
