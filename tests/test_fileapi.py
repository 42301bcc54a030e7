"""The rest of the period's process and file API (issue 19), the debug_vm checker after every call:
byte-granular I/O with the file position, lseek, readv/writev, the size limits, names (unlink of open
files, rename, mkdir, stat), /dev/zero, pipes between tasks, MAP_POPULATE, mlock, mincore, madvise,
mremap, SysV shm's IPC_STAT/IPC_SET/SHM_LOCK with uid/gid, the stack pointer rule; an errno table
per call; generated programs against the oracle and across policies."""

from __future__ import annotations

import pytest

from mmframe import usr
from mmframe.usr import (EACCES, EAGAIN, EBADF, EEXIST, EFAULT, EFBIG, EINVAL, EISDIR, ENODEV, ENOENT, ENOMEM,
                         ENOTDIR, ENOTEMPTY, EOVERFLOW, EPERM, EPIPE, ESPIPE, MAP_ANONYMOUS, MAP_FIXED, MAP_POPULATE,
                         MAP_PRIVATE, MAP_SHARED, O_APPEND, O_CREAT, O_EXCL, O_LARGEFILE, O_NONBLOCK, O_RDONLY,
                         O_RDWR, O_WRONLY, PAGE_SIZE, PIPE_BUF, PROT_READ, SEEK_CUR, SEEK_END, SEEK_SET, SIG_IGN, SIGPIPE,
                         SIGSEGV, SIGXFSZ, SimSignal, close, execve, exit, fork, fstat, ftruncate, load, lseek, llseek,
                         madvise, mincore, mkdir, mlock, mlockall, mmap, mremap, munlock, munlockall, munmap, open,
                         pipe, pread, pwrite, read, readv, rename, setuid, shmat, shmctl, shmget, signal, stat, store,
                         unlink, wait, write, writev)
from mmframe.usr import F_GETFL, F_SETFL, O_DIRECT, fcntl
from tests.test_memory import RW, anon, machine

P = PAGE_SIZE


def calls(r, lineage="1"):
    return [v for _, v in r.tasks[lineage].calls]


def test_a_few_bytes_written_read_back_exactly_and_the_rest_is_unchanged():
    def prog(ctx):
        fd = yield open("/f", O_RDWR | O_CREAT)
        buf = yield anon(4 * P)
        yield write(buf, 0x0102030405060708)  # a whole page: its tag
        yield write(buf + P, 77)
        n1 = yield pwrite(fd, buf, 2 * P, 0)  # two whole pages: compact
        yield store(buf + 2 * P + 100, b"hello")
        n2 = yield pwrite(fd, buf + 2 * P + 100, 5, 10)  # five bytes into page 0 at byte 10
        got = yield load(buf + 2 * P + 100, 5)
        n3 = yield pread(fd, buf + 3 * P + 3, 20, 5)  # into the middle of another page
        back = yield load(buf + 3 * P, 30)
        w0 = yield read(buf + 3 * P)  # the word at 0: bytes 0..2 are zero (untouched)
        return n1, n2, got, n3, back, w0

    m = machine()
    r = m.run(prog)
    n1, n2, got, n3, back, _ = [v for n, v in r.tasks["1"].calls if n in ("pwrite", "load", "pread")][:5] + [0]
    pattern = (0x0102030405060708).to_bytes(8, "little") * 4
    file0 = bytearray(pattern)
    file0[10:15] = b"hello"
    assert (n1, n2, got, n3) == (2 * P, 5, b"hello", 20)
    assert back == bytes(3) + bytes(file0[5:25]) + bytes(7)
    inode = m.fs.inodes["/f"]
    assert m.mm.tag[inode.mapping.page_tree.lookup(1)] == 77  # page 1 stayed compact
    assert inode.mapping.page_tree.lookup(0) in m.mm.fine  # page 0 holds bytes


def test_read_and_write_move_the_position_and_lseek_sets_it_with_holes():
    def prog(ctx):
        fd = yield open("/p", O_RDWR | O_CREAT)
        buf = yield anon(2 * P)
        yield store(buf, b"abcdefgh")
        out = [(yield write(fd, buf, 3)), (yield write(fd, buf + 3, 5)), (yield lseek(fd, 0, SEEK_CUR))]
        out.append((yield lseek(fd, 100, SEEK_END)))  # past the end: a hole
        out.append((yield write(fd, buf, 2)))  # size 110
        out.append((yield lseek(fd, 0, SEEK_SET)))
        out.append((yield read(fd, buf + P, 200)))  # up to EOF: 110
        out.append((yield load(buf + P, 12)))
        out.append((yield load(buf + P + 106, 4)))  # the hole reads zero, then "ab"
        out.append((yield read(fd, buf + P, 10)))  # at EOF
        out.append((yield lseek(fd, -1, SEEK_SET)))
        out.append((yield lseek(fd, 0, 3)))
        out.append((yield lseek(fd, 7, SEEK_SET)))
        out.append((yield lseek(fd, -5, SEEK_END)))  # from the end, not the position
        out.append((yield llseek(fd, 3 << 30, SEEK_SET)))  # past 2 GiB: only _llseek can say so
        out.append((yield lseek(fd, 0, SEEK_CUR)))  # -EOVERFLOW (and the position stays)
        return out

    r = machine().run(prog)
    got = calls(r)[-16:]
    assert got == [3, 5, 8, 108, 2, 0, 110, b"abcdefgh\0\0\0\0", b"\0\0ab", 0, -EINVAL, -EINVAL, 7, 105,
                   3 << 30, -EOVERFLOW]


def test_readv_writev_and_o_append():
    def prog(ctx):
        fd = yield open("/v", O_RDWR | O_CREAT | O_APPEND)
        buf = yield anon(P)
        yield store(buf, b"0123456789")
        out = [(yield writev(fd, [(buf, 3), (buf + 5, 2), (buf, 0)])), (yield lseek(fd, 0, SEEK_SET)),
               (yield write(fd, buf + 9, 1))]  # appended, whatever the position
        yield lseek(fd, 0, SEEK_SET)
        out.append((yield readv(fd, [(buf + 100, 2), (buf + 200, 10)])))
        out.append((yield load(buf + 100, 2)) + (yield load(buf + 200, 4)))
        out.append((yield writev(fd, [(buf, -1)])))
        out.append((yield readv(fd, [(buf, 1)] * 1025)))
        return out

    r = machine().run(prog)
    assert calls(r)[-9:] == [5, 0, 1, 0, 6, b"01", b"2569", -EINVAL, -EINVAL]


def test_size_limits_of_the_period_efbig_and_sigxfsz():
    def prog(ctx):
        yield signal(SIGXFSZ, SIG_IGN)
        small = yield open("/s", O_RDWR | O_CREAT)
        large = yield open("/s", O_RDWR | O_LARGEFILE)
        buf = yield anon(P)
        out = [(yield pwrite(small, buf, 10, (1 << 31) - 4)),  # cut at 2 GiB - 1
               (yield pwrite(small, buf, 10, (1 << 31) - 1)),  # at the limit: -EFBIG
               (yield pwrite(large, buf, 10, (1 << 31) - 1)),  # O_LARGEFILE: fine
               (yield ftruncate(small, 1 << 31)), (yield ftruncate(large, 1 << 32)),
               (yield pwrite(large, buf, 10, (512 << 32) - P - 4)),  # ext2's s_maxbytes cuts it
               (yield pwrite(large, buf, 1, (512 << 32) - P)),
               (yield ftruncate(large, 512 << 32))]
        yield signal(SIGXFSZ, usr.SIG_DFL)
        yield pwrite(small, buf, 1, 1 << 31)  # not ignored: the signal's default action kills
        return out

    r = machine().run(prog)
    assert calls(r)[4:12] == [3, -EFBIG, 10, -EINVAL, 0, 4, -EFBIG, -EFBIG]
    assert r.tasks["1"].signal == SimSignal(SIGXFSZ)


def test_unlink_keeps_an_open_and_mapped_file_until_its_last_reference():
    def prog(ctx):
        fd = yield open("/u", O_RDWR | O_CREAT)
        buf = yield anon(P)
        yield write(buf, 42)
        yield pwrite(fd, buf, P, 0)
        m = yield mmap(0, P, RW, MAP_SHARED, fd, 0)
        out = [(yield unlink("/u")), (yield open("/u")), (yield stat("/u")), (yield read(m))]
        yield close(fd)
        yield write(m, 43)  # still mapped: the inode lives
        out.append((yield read(m)))
        again = yield open("/u", O_RDWR | O_CREAT)  # a new, empty file of the same name
        out.append((yield fstat(again)).size)
        yield munmap(m, P)  # the last reference: pages and blocks go
        return out

    m = machine()
    r = m.run(prog)
    got = [v for n, v in r.tasks["1"].calls if n in ("unlink", "open", "stat", "read")]
    assert got[1:] == [0, -ENOENT, -ENOENT, 42, 43, 0]
    assert [v.size for n, v in r.tasks["1"].calls if n == "fstat"] == [0]
    assert not m.fs.orphans and m.fs.free_blocks  # the last reference went: so did the block


def test_directories_rename_and_stat():
    def prog(ctx):
        out = [(yield mkdir("/d")), (yield mkdir("/d")), (yield mkdir("/x/y")),
               (yield open("/d/f", O_RDWR | O_CREAT)), (yield open("/nodir/f", O_RDWR | O_CREAT)),
               (yield open("/d/f/g", O_RDWR | O_CREAT)), (yield open("/d", O_RDWR)), (yield open("/d/", O_RDONLY)),
               (yield open("/d/f/")), (yield unlink("/d")), (yield rename("/d/f", "/d/g")), (yield stat("/d/f")),
               (yield rename("/d", "/e")), (yield stat("/e/g")).size, (yield rename("/e/g", "/e")),
               (yield mkdir("/k")), (yield rename("/k", "/e")), (yield rename("/e", "/e/sub")),
               (yield open("/d/g", O_CREAT | O_EXCL)), (yield open("/e/g", O_CREAT | O_EXCL))]
        out.append((yield stat("/e")))
        return out

    r = machine().run(prog)
    got = [v if not hasattr(v, "size") else ("stat", v.size) for v in calls(r)]
    assert got == [0, -EEXIST, -ENOENT, 0, -ENOENT, -ENOTDIR, -EISDIR, 1, -ENOTDIR, -EISDIR, 0, -ENOENT,
                        0, ("stat", 0), -EISDIR, 0, -ENOTEMPTY, -EINVAL, -ENOENT, -EEXIST, ("stat", P)]


def test_dev_zero_reads_zeroes_and_maps_anonymous_or_shmem():
    def prog(ctx):
        z = yield open("/dev/zero", O_RDWR)
        buf = yield anon(P)
        yield write(buf, 9)
        out = [(yield read(z, buf + 8, 16)), (yield read(buf)), (yield read(buf + 8)), (yield write(z, buf, 100)),
               (yield lseek(z, 55, SEEK_SET))]
        pv = yield mmap(0, 2 * P, RW, MAP_PRIVATE, z, 0)
        sh = yield mmap(0, 2 * P, RW, MAP_SHARED, z, 0)
        yield write(pv, 5)
        yield write(sh, 6)
        pid = yield fork()
        if pid == 0:
            yield write(pv, 50)  # private: the child's copy
            yield write(sh, 60)  # shared: the parent sees it
            yield exit(0)
        yield wait(pid)
        out += [(yield read(pv)), (yield read(sh)), (yield read(pv + P))]
        p = yield pipe()
        out.append((yield mmap(0, P, PROT_READ, MAP_PRIVATE, p[0], 0)))
        out.append((yield mmap(0, P, PROT_READ, MAP_PRIVATE, (yield open("/", O_RDONLY)), 0)))
        return out

    r = machine().run(prog)
    got = [v for n, v in r.tasks["1"].calls if n in ("fd_read", "read", "fd_write", "lseek", "mmap")]
    assert got[1:6] == [16, 9, 0, 100, 0]
    assert got[-5:] == [5, 60, 0, -ENODEV, -ENODEV]


def test_pipe_blocks_readers_and_writers_between_tasks_and_epipe():
    big = bytes(range(256)) * 40  # 10240 bytes: more than the pipe holds

    def prog(ctx):
        rfd, wfd = yield pipe()
        buf = yield anon(4 * P)
        pid = yield fork()
        if pid == 0:
            yield close(wfd)
            got = b""
            while True:
                n = yield read(rfd, buf, 3000)
                if n <= 0:
                    break
                got += (yield load(buf, n))
            yield exit(1 if got == big else 2)
        yield close(rfd)
        yield store(buf, big)
        n = yield write(wfd, buf, len(big))  # blocks until the child has taken it all
        yield close(wfd)
        _, status = yield wait(pid)
        return n, usr.WEXITSTATUS(status)

    r = machine().run(prog)
    res = [v for n, v in r.tasks["1"].calls if n in ("fd_write", "wait")]
    assert res[0] == len(big) and usr.WEXITSTATUS(res[1][1]) == 1

    def epipe(ctx):
        rfd, wfd = yield pipe()
        buf = yield anon(P)
        yield close(rfd)
        yield signal(SIGPIPE, SIG_IGN)
        a = yield write(wfd, buf, 10)
        yield signal(SIGPIPE, usr.SIG_DFL)
        yield write(wfd, buf, 10)
        return a

    r = machine().run(epipe)
    assert -EPIPE in calls(r) and r.tasks["1"].signal == SimSignal(SIGPIPE)


def test_fcntl_setfl_makes_a_pipe_nonblocking_and_clears_append():
    """fs/fcntl.c of 2.5.49: F_GETFL has the access mode; F_SETFL changes O_APPEND, O_NONBLOCK and
    O_DIRECT only.  A non-blocking pipe gives -EAGAIN where a read or an atomic write would wait."""
    def prog(ctx):
        rfd, wfd = yield pipe()
        buf = yield anon(2 * P)
        fd = yield open("/ap", O_RDWR | O_CREAT | O_APPEND)
        yield fcntl(rfd, F_GETFL)
        yield fcntl(wfd, F_GETFL)
        yield fcntl(fd, F_GETFL)
        yield fcntl(rfd, F_SETFL, O_NONBLOCK | O_CREAT)  # O_CREAT is not settable: ignored
        yield fcntl(rfd, F_GETFL)
        yield read(rfd, buf, 10)  # empty, a writer open: would block
        yield fcntl(wfd, F_SETFL, O_NONBLOCK)
        yield write(wfd, buf, PIPE_BUF - 1)
        yield write(wfd, buf, 2)  # atomic, no room for both bytes
        yield write(wfd, buf, PIPE_BUF + 1)  # not atomic: the one byte of room
        yield fcntl(rfd, F_SETFL, O_DIRECT)
        yield fcntl(99, F_GETFL)
        yield fcntl(fd, 1)  # F_GETFD: not modelled
        yield store(buf, b"xyz")
        yield write(fd, buf, 3)
        yield fcntl(fd, F_SETFL, 0)  # O_APPEND off: writes go at the position again
        yield lseek(fd, 0, SEEK_SET)
        yield write(fd, buf + 1, 1)
        yield pread(fd, buf + 100, 3, 0)
        yield load(buf + 100, 3)
        return 0

    r = machine().run(prog)
    assert calls(r)[3:] == [0, O_WRONLY, O_RDWR | O_CREAT | O_APPEND, 0, O_NONBLOCK, -EAGAIN, 0, PIPE_BUF - 1,
                            -EAGAIN, 1, -EINVAL, -EBADF, -EINVAL, 0, 3, 0, 0, 1, 3, b"yyz"]


def test_readv_writev_on_a_pipe_stop_at_a_segment_that_would_block():
    """A later segment that would wait ends the call with what moved (docs/files.md's departure);
    only a first segment blocks."""
    def prog(ctx):
        rfd, wfd = yield pipe()
        buf = yield anon(2 * P)
        yield store(buf, b"abc")
        yield writev(wfd, [(buf, 3)])
        yield readv(rfd, [(buf + 100, 2), (buf + 200, 1), (buf + 300, 5)])  # the third would wait
        yield load(buf + 100, 2)
        yield load(buf + 200, 1)
        yield store(buf + P, bytes(PIPE_BUF))
        yield writev(wfd, [(buf + P, PIPE_BUF - 10), (buf + P, 20)])  # the 20 would wait
        return 0

    r = machine().run(prog)
    assert calls(r)[-6:] == [3, 3, b"ab", b"c", 0, PIPE_BUF - 10]

    def nonblock(ctx):
        rfd, wfd = yield pipe()
        buf = yield anon(2 * P)
        out = [(yield pread(rfd, buf, 1, 0)), (yield lseek(rfd, 0, SEEK_SET)), (yield write(wfd, buf, 4096)),
               (yield write(wfd, buf, 0)), (yield fstat(rfd)).mode & usr.S_IFMT == usr.S_IFIFO]
        yield close(wfd)
        out += [(yield read(rfd, buf, 5000)), (yield read(rfd, buf, 5))]  # then end of file
        return out

    r = machine().run(nonblock)
    assert [v for n, v in r.tasks["1"].calls if n in ("pread", "lseek", "fd_write", "fd_read")] == [
        -ESPIPE, -ESPIPE, 4096, 0, 4096, 0]


# --- mapping calls ------------------------------------------------------------------------------
def test_mremap_grows_in_place_moves_and_shrinks_keeping_contents():
    def prog(ctx):
        a = yield anon(2 * P, addr=0x1000_0000, fixed=True)
        yield write(a, 1)
        yield write(a + P, 2)
        out = [(yield mremap(a, 2 * P, 4 * P))]  # room above: in place
        yield write(a + 3 * P, 4)
        yield anon(P, addr=a + 5 * P, fixed=True)  # a neighbour: no room to grow past it
        out.append((yield mremap(a, 4 * P, 8 * P)))  # -ENOMEM without MREMAP_MAYMOVE
        b = yield mremap(a, 4 * P, 8 * P, usr.MREMAP_MAYMOVE)
        out.append(b != a)
        out += [(yield read(b)), (yield read(b + P)), (yield read(b + 2 * P)), (yield read(b + 3 * P)),
                (yield read(b + 7 * P))]
        try:
            yield read(a)
        except SimSignal as s:
            out.append(s.code)
        out.append((yield mremap(b, 8 * P, P)))  # shrink: the tail goes
        try:
            yield read(b + P)
        except SimSignal as s:
            out.append(s.code)
        c = 0x2000_0000
        out.append((yield mremap(b, P, P, usr.MREMAP_MAYMOVE | usr.MREMAP_FIXED, c)))
        out.append((yield read(c)))
        pid = yield fork()  # a moved private page is still copy-on-write after a fork
        if pid == 0:
            yield write(c, 9)
            yield exit(0)
        yield wait(pid)
        out.append((yield read(c)))
        return out

    for policies in ((), ("pt_shared",)):
        r = machine(policies=policies).run(prog)
        got = [v for n, v in r.tasks["1"].calls if n in ("mremap", "read")]
        assert got[0] == 0x1000_0000 and got[1] == -ENOMEM
        assert got[3:9] == [1, 2, 0, 4, 0, SimSignal(SIGSEGV, usr.SEGV_MAPERR, 0x1000_0000)]
        assert got[9] == got[2] and got[10].code == usr.SEGV_MAPERR
        assert got[11:] == [0x2000_0000, 1, 1]


def test_mremap_errno_table_as_2_5_49():
    def prog(ctx):
        a = yield anon(4 * P, addr=0x1000_0000, fixed=True)
        yield anon(2 * P, addr=0x1000_6000, fixed=True)
        cases = [mremap(a + 1, P, 2 * P), mremap(a, P, 2 * P, 4), mremap(a, P, P, usr.MREMAP_FIXED, 0x3000_0000),
                 mremap(a, P, P, usr.MREMAP_FIXED | usr.MREMAP_MAYMOVE, 0x3000_0001),
                 mremap(a, 2 * P, 2 * P, usr.MREMAP_FIXED | usr.MREMAP_MAYMOVE, a + P),  # overlaps
                 mremap(a, P, P, usr.MREMAP_FIXED | usr.MREMAP_MAYMOVE, 0xBFFF_F000 + P),
                 mremap(0x5000_0000, P, 2 * P, usr.MREMAP_MAYMOVE),  # nothing there: -EFAULT
                 mremap(a, 5 * P, 6 * P, usr.MREMAP_MAYMOVE),  # across VMAs: -EFAULT
                 mremap(a, 2 * P, P, usr.MREMAP_FIXED | usr.MREMAP_MAYMOVE, 0x3000_0000),  # shrink+move: old len
                 mremap(a + 2 * P, 2 * P, 4 * P)]  # ends at the VMA's end, next VMA at +6: room for 4
        out = []
        for c in cases:
            out.append((yield c))
        return out

    r = machine().run(prog)
    assert calls(r)[2:] == [-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -usr.EFAULT, -usr.EFAULT,
                            -usr.EFAULT, 0x1000_2000]


def test_mlock_needs_root_faults_pages_in_and_is_not_inherited():
    def prog(ctx):
        fd = yield open("/m", O_RDWR | O_CREAT)
        buf = yield anon(2 * P)
        yield write(buf, 10)
        yield pwrite(fd, buf, 2 * P, 0)
        pv = yield mmap(0, 2 * P, RW, MAP_PRIVATE, fd, 0)
        out = [(yield mlock(pv, 2 * P))]  # write faults: the private pages are copied now
        yield write(buf, 11)
        yield pwrite(fd, buf, P, 0)
        out.append((yield read(pv)))  # 10: the copy made by mlock, not the file's new 11
        out.append((yield madvise(pv, P, usr.MADV_DONTNEED)))  # -EINVAL on a locked VMA
        out.append((yield mlock(0x7000_0000, P)))  # nothing mapped: -ENOMEM
        out.append((yield munlock(pv, P)))
        out.append((yield madvise(pv, P, usr.MADV_DONTNEED)))  # now allowed: the copy goes
        out.append((yield read(pv)))  # 11: the file again
        out.append((yield mlockall(0)))
        out.append((yield mlockall(usr.MCL_CURRENT | usr.MCL_FUTURE)))
        pid = yield fork()
        if pid == 0:
            yield exit(0)
        yield wait(pid)
        yield setuid(1000)
        out += [(yield mlock(pv, P)), (yield munlock(pv, P)), (yield munlockall()),
                (yield mmap(0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS | usr.MAP_LOCKED))]
        return out

    m = machine()
    seen = {}
    orig = m.sched.sys_exit

    def spy(task, code=0):
        seen[task.lineage] = (task.mm.locked_vm, task.mm.def_flags, sum(v.flags & 0x2000 != 0 for v in task.mm.vmas))
        return orig(task, code)

    m.sched.handlers["exit"] = spy
    r = m.run(prog)
    got = [v for n, v in r.tasks["1"].calls if n in ("mlock", "munlock", "mlockall", "munlockall", "madvise", "read")
           or n == "mmap" and v < 0]
    assert got == [0, 10, -EINVAL, -ENOMEM, 0, 0, 11, -EINVAL, 0, -EPERM, 0, -EPERM, -EPERM]
    assert seen["1.1"] == (0, 0x2000, 0)  # the child: no locks, but MCL_FUTURE's def_flags


def test_map_populate_mincore_and_madvise_willneed():
    def prog(ctx):
        fd = yield open("/c", O_RDWR | O_CREAT)
        yield ftruncate(fd, 4 * P + 10)
        sh = yield mmap(0, 8 * P, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0)  # up to EOF: 5 pages
        pv = yield mmap(0, 4 * P, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0)  # private: left alone
        a = yield anon(2 * P)
        out = [(yield mincore(sh, 8 * P)), (yield mincore(a, P)), (yield mincore(sh + 1, P)),
               (yield mincore(sh, 0))]
        fd2 = yield open("/c2", O_RDWR | O_CREAT)
        yield ftruncate(fd2, 3 * P)
        m2 = yield mmap(0, 3 * P, PROT_READ, MAP_PRIVATE, fd2, 0)
        out += [(yield mincore(m2, 3 * P)), (yield madvise(m2, 2 * P, usr.MADV_WILLNEED)),
                (yield mincore(m2, 3 * P)), (yield madvise(a, P, usr.MADV_WILLNEED)),
                (yield madvise(a, P, 99)), (yield madvise(a + 1, P, usr.MADV_NORMAL)),
                (yield madvise(m2, 9 * P, usr.MADV_SEQUENTIAL)), (yield madvise(pv, P, usr.MADV_RANDOM))]
        return out

    m = machine()
    r = m.run(prog)
    got = [v for n, v in r.tasks["1"].calls if n in ("mincore", "madvise")]
    assert got == [[1, 1, 1, 1, 1, 0, 0, 0], -ENOMEM, -EINVAL, [], [0, 0, 0], 0, [1, 1, 0], -usr.EBADF, -EINVAL,
                   -EINVAL, -ENOMEM, 0]


def test_the_stack_grows_only_near_the_stack_pointer():
    top = 0xC000_0000

    @usr.program(stack_pages=2)
    def img(ctx):
        out = []
        yield usr.setsp(top - 3 * P)
        for addr in (top - 3 * P - 32, top - 4 * P - 8):  # 32 bytes below %esp is the limit
            try:
                yield write(addr, 1)
                out.append(0)
            except SimSignal as s:
                out.append(s.code)
        buf = yield anon(P)
        fd = yield open("/st", O_RDWR | O_CREAT)
        yield pwrite(fd, buf, 8, 0)
        out.append((yield pread(fd, top - 10 * P, 8, 0)))  # a kernel-mode access: no %esp check
        yield exit(sum(o * 10 ** i for i, o in enumerate(out)))

    def prog(ctx):
        yield execve(img)

    r = machine().run(prog)
    assert r.tasks["1"].status >> 8 == 0 + usr.SEGV_MAPERR * 10 + 8 * 100 & 0xFF


# --- SysV shm: ownership and permissions ------------------------------------------------------------
def test_shm_ipc_stat_ipc_set_shm_lock_and_permissions_with_uid_and_gid():
    def other(ctx, sid):
        yield usr.setgid(100)
        yield setuid(1000)
        out = [(yield shmat(sid)), (yield shmat(sid, 0, usr.SHM_RDONLY)), (yield shmctl(sid, usr.IPC_STAT))]
        st = (yield shmctl(sid, usr.IPC_STAT))
        out += [(yield shmctl(sid, usr.IPC_SET, st)), (yield shmctl(sid, usr.IPC_RMID)),
                (yield shmctl(sid, usr.SHM_LOCK)), (yield shmctl(12345, usr.SHM_LOCK)),
                (yield shmget(77, P, 0o600)), (yield shmget(77, P, 0o400))]
        yield exit(0)

    def prog(ctx):
        sid = yield shmget(77, P, usr.IPC_CREAT | 0o640)
        pid = yield fork(other, sid)
        yield wait(pid)
        st = yield shmctl(sid, usr.IPC_STAT)
        import attrs
        out = [(yield shmctl(sid, usr.IPC_SET, attrs.evolve(st, uid=1000, mode=0o604))),
               (yield shmctl(sid, usr.SHM_LOCK)), (yield shmctl(sid, usr.IPC_STAT))]
        pid = yield fork(other, sid)
        yield wait(pid)
        return out

    r = machine().run(prog)
    st0 = [v for n, v in r.tasks["1"].calls if n == "shmctl"][0]
    assert (st0.uid, st0.cuid, st0.mode, st0.cpid, st0.nattch) == (0, 0, 0o640, 1, 0)
    assert calls(r, "1.1")[2:] == [-EACCES, -EACCES, -EACCES, -EACCES, -EPERM, -EPERM, -EPERM, -EPERM, -EACCES,
                                   -EACCES]  # others: no access, not the owner, not root
    st1 = [v for n, v in r.tasks["1"].calls if n == "shmctl"][-1]
    assert (st1.uid, st1.cuid, st1.mode) == (1000, 0, 0o604 | 0o2000)  # SHM_LOCKED shows in the mode
    second = calls(r, "1.2")[2:]  # uid 1000 owns it now: read-write, IPC_SET and IPC_RMID allowed
    assert second[:2] == [0x4000_0000, 0x4000_1000] and (second[2].uid, second[2].lpid) == (1000, 3)
    assert second[4:] == [0, 0, -EPERM, -EPERM, -ENOENT, -ENOENT]


def test_a_partial_write_to_a_page_not_in_the_cache_reads_it_in_first():
    def first(ctx):
        fd = yield open("/pc", O_RDWR | O_CREAT)
        buf = yield anon(P)
        yield write(buf, 0x1111_2222_3333_4444)
        yield pwrite(fd, buf, P, 0)
        yield usr.fsync(fd)

    def second(ctx):
        fd = yield open("/pc", O_RDWR)
        buf = yield anon(P)
        yield store(buf, b"xyz")
        yield pwrite(fd, buf, 3, 5)  # prepare_write reads the block before changing 3 bytes
        return (yield pread(fd, buf + 100, 16, 0))

    m = machine()
    m.run(first)
    assert m.fs.drop_caches() == 1
    r = m.run(second)
    t = r.tasks[max(r.tasks)]
    page = bytearray((0x1111_2222_3333_4444).to_bytes(8, "little") * 2)
    page[5:8] = b"xyz"
    assert t.calls[-1] == ("pread", 16)
    inode = m.fs.inodes["/pc"]
    from mmframe.mm import content
    assert content.read_bytes(m.mm, inode.mapping.page_tree.lookup(0), 0, 16) == bytes(page)


# --- one errno table for the calls of issue 19 ------------------------------------------------------
BUF = 0x1000_0000


def _errno_cases():
    """(what, call, expected): each made by a root task with four RW pages at BUF, "/r" (fd 0, read
    and write, one page long), "/dir" a directory, a pipe's ends as fds 1 and 2."""
    fix = usr.MREMAP_FIXED | usr.MREMAP_MAYMOVE
    return [
        ("read: bad fd", read(77, BUF, 1), -EBADF),
        ("read: negative count", read(0, BUF, -1), -EINVAL),
        ("read: write-only pipe end", read(2, BUF, 1), -EBADF),
        ("read: bad buffer", read(0, 0x10, 8), -EFAULT),
        ("write: bad fd", write(77, BUF, 1), -EBADF),
        ("write: read-only pipe end", write(1, BUF, 1), -EBADF),
        ("write: bad buffer", write(0, 0x10, 8), -EFAULT),
        ("pread: negative offset, before the fd", pread(77, BUF, 1, -1), -EINVAL),
        ("pread: a pipe", pread(1, BUF, 1, 0), -ESPIPE),
        ("pwrite: a pipe", pwrite(2, BUF, 1, 0), -ESPIPE),
        ("readv: too many segments", readv(0, [(BUF, 1)] * 1025), -EINVAL),
        ("readv: negative length", readv(0, [(BUF, -1)]), -EINVAL),
        ("writev: total over 2 GiB", writev(0, [(BUF, 1 << 30)] * 3), -EINVAL),
        ("lseek: bad whence", lseek(0, 0, 3), -EINVAL),
        ("lseek: before the start", lseek(0, -1, SEEK_SET), -EINVAL),
        ("lseek: a pipe", lseek(1, 0, SEEK_SET), -ESPIPE),
        ("lseek: past 2 GiB", lseek(0, (1 << 31) - 1, SEEK_END), -EOVERFLOW),
        ("llseek: bad fd", llseek(77, 0, SEEK_SET), -EBADF),
        ("ftruncate: past 2 GiB without O_LARGEFILE", ftruncate(0, 1 << 31), -EINVAL),
        ("fsync: a pipe", usr.fsync(1), -EINVAL),
        ("open: O_CREAT|O_EXCL of an existing file", open("/r", O_CREAT | O_EXCL), -EEXIST),
        ("open: a directory for write", open("/dir", O_WRONLY), -EISDIR),
        ("open: through a file", open("/r/x", O_CREAT), -ENOTDIR),
        ("open: a missing directory", open("/none/x", O_CREAT), -ENOENT),
        ("open: trailing slash on a file", open("/r/"), -ENOTDIR),
        ("read: a directory", read(3, BUF, 1), -EISDIR),
        ("unlink: a directory", unlink("/dir"), -EISDIR),
        ("unlink: missing", unlink("/none"), -ENOENT),
        ("rename: missing", rename("/none", "/x"), -ENOENT),
        ("rename: a file over a directory", rename("/r", "/dir"), -EISDIR),
        ("rename: a directory into itself", rename("/dir", "/dir/sub"), -EINVAL),
        ("mkdir: exists", mkdir("/dir"), -EEXIST),
        ("mkdir: under a file", mkdir("/r/d"), -ENOTDIR),
        ("stat: missing", stat("/none"), -ENOENT),
        ("fstat: bad fd", fstat(77), -EBADF),
        ("mmap: a pipe", mmap(0, P, PROT_READ, MAP_PRIVATE, 1, 0), -ENODEV),
        ("mmap: a directory", mmap(0, P, PROT_READ, MAP_PRIVATE, 3, 0), -ENODEV),
        ("mremap: unaligned", mremap(BUF + 1, P, P), -EINVAL),
        ("mremap: unknown flag", mremap(BUF, P, P, 4), -EINVAL),
        ("mremap: FIXED without MAYMOVE", mremap(BUF, P, P, usr.MREMAP_FIXED, 0x3000_0000), -EINVAL),
        ("mremap: FIXED overlapping", mremap(BUF, 2 * P, 2 * P, fix, BUF + P), -EINVAL),
        ("mremap: nothing mapped", mremap(0x5000_0000, P, 2 * P), -usr.EFAULT),
        ("mremap: not at the VMA end, may not move", mremap(BUF, 2 * P, 3 * P), -ENOMEM),
        ("mlock: a hole", mlock(0x5000_0000, P), -ENOMEM),
        ("mlock: more than half of memory", mlock(BUF, 1 << 30), -ENOMEM),
        ("mlockall: no flags", mlockall(0), -EINVAL),
        ("mlockall: unknown flag", mlockall(4), -EINVAL),
        ("madvise: unaligned", madvise(BUF + 1, P, 0), -EINVAL),
        ("madvise: unknown advice", madvise(BUF, P, 5), -EINVAL),
        ("madvise: WILLNEED on anonymous memory", madvise(BUF, P, usr.MADV_WILLNEED), -usr.EBADF),
        ("madvise: a hole", madvise(0x5000_0000, P, 0), -ENOMEM),
        ("mincore: unaligned", mincore(BUF + 1, P), -EINVAL),
        ("mincore: anonymous memory", mincore(BUF, P), -ENOMEM),
        ("signal: SIGKILL", signal(usr.SIGKILL, SIG_IGN), -EINVAL),
        ("signal: a bad handler", signal(SIGPIPE, 7), -EINVAL),
        ("setsp: above TASK_SIZE", usr.setsp(0xC000_1000), -EINVAL),
        ("shmctl: unknown command", shmctl(0, 99), -EINVAL),
        ("shmctl: IPC_SET without a record", shmctl(0, usr.IPC_SET, 5), -usr.EFAULT),
    ]


def test_errno_of_each_new_call():
    cases = _errno_cases()

    def prog(ctx):
        yield mmap(BUF, 4 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        yield open("/r", O_RDWR | O_CREAT)
        yield pipe()
        yield mkdir("/dir")
        yield open("/dir")
        yield ftruncate(0, P)
        yield shmget(usr.IPC_PRIVATE, P, 0o600)
        for _, call, _ in cases:
            yield call

    r = machine().run(prog)
    got = [v for _, v in r.tasks["1"].calls[7:]]
    assert {w: g for (w, _, _), g in zip(cases, got)} == {w: e for w, _, e in cases}


def test_errno_of_the_privileged_calls_for_an_ordinary_user():
    def prog(ctx):
        a = yield mmap(BUF, P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        sid = yield shmget(usr.IPC_PRIVATE, P, 0o600)
        yield usr.setgid(5)
        yield setuid(1000)
        return [(yield mlock(a, P)), (yield munlock(a, P)), (yield mlockall(usr.MCL_CURRENT)), (yield munlockall()),
                (yield mmap(0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS | usr.MAP_LOCKED)), (yield shmat(sid)),
                (yield shmctl(sid, usr.IPC_STAT)), (yield shmctl(sid, usr.IPC_RMID)), (yield shmctl(sid, usr.SHM_LOCK)),
                (yield setuid(0)), (yield usr.setgid(0))]

    r = machine().run(prog)
    assert calls(r)[4:] == [-EPERM, 0, -EPERM, -EPERM, -EPERM, -EACCES, -EACCES, -EPERM, -EPERM, -EPERM, -EPERM]


# --- the same programs against the oracle's own statement of the rules ---------------------------------
def _pipe_and_zero(ctx):
    big = bytes(range(256)) * 40
    rfd, wfd = yield pipe()
    buf = yield anon(4 * P)
    pid = yield fork()
    if pid == 0:
        yield close(wfd)
        got = b""
        while True:
            n = yield read(rfd, buf, 3000)
            if n <= 0:
                break
            got += (yield load(buf, n))
        yield exit(1 if got == big + big[:10] else 2)
    yield close(rfd)
    yield store(buf, big)
    yield write(wfd, buf, len(big))
    yield writev(wfd, [(buf, 10)])
    yield close(wfd)
    yield wait(pid)
    r2, w2 = yield pipe()
    yield writev(w2, [(buf, 4000), (buf, 200)])  # the second segment does not fit: not waited for
    yield readv(r2, [(buf + P, 100), (buf + 2 * P, 5000)])
    yield signal(SIGPIPE, SIG_IGN)
    yield close(r2)
    yield write(w2, buf, 1)
    yield lseek(w2, 0, SEEK_SET)
    z = yield open("/dev/zero", O_RDWR)
    yield read(z, buf + 5, 11)
    yield pread(z, buf + 20, 3, 99)
    yield load(buf, 40)
    pv = yield mmap(0, P, RW, MAP_PRIVATE, z, 0)
    sh = yield mmap(0, P, RW, MAP_SHARED, z, 0)
    yield write(pv, 3)
    yield write(sh, 4)
    pid = yield fork()
    if pid == 0:
        yield write(pv, 30)
        yield write(sh, 40)
        yield exit(0)
    yield wait(pid)
    yield read(pv)
    yield read(sh)
    yield usr.fsync(z)
    yield ftruncate(z, 0)


def _names(ctx):
    fd = yield open("/n1", O_RDWR | O_CREAT)
    buf = yield anon(P)
    yield store(buf, b"named")
    yield write(fd, buf, 5)
    for call in (mkdir("/d"), mkdir("/d/e"), rename("/n1", "/d/e/f"), open("/n1"), open("/d/e/f"),
                 rename("/d", "/d/e/g"), rename("/d/e", "/x"), unlink("/x/f"), open("/x/f"), mkdir("/x/f"),
                 unlink("/x"), open("/x", O_RDONLY), open("/x/", O_WRONLY), rename("/x", "/d")):
        yield call
    yield pread(fd, buf, 5, 0)  # unlinked, still open
    yield load(buf, 5)


@pytest.mark.parametrize("prog", [_pipe_and_zero, _names])
def test_pipes_dev_zero_and_names_match_the_oracle(prog):
    from mmframe.differential import compare_results
    from mmframe.mm.oracle import install
    real = machine()
    oracle = install(machine(debug="off"), files=True)
    a, b = real.run(prog), oracle.run(prog)
    assert not compare_results(a, b).differences
    assert a.tasks["1.1"].status >> 8 == 1 if prog is _pipe_and_zero else True


def test_bytes_written_partially_survive_the_device_and_sectors_convert_both_ways():
    from mmframe.block import content as B
    from mmframe.mm import content

    def writer(ctx):
        fd = yield open("/dv", O_RDWR | O_CREAT)
        buf = yield anon(2 * P)
        yield write(buf, 77)
        yield write(buf + P, 77)
        yield pwrite(fd, buf, 2 * P, 0)  # compact pages
        yield store(buf, b"sector!")
        yield pwrite(fd, buf, 7, P + 1000)  # page 1 holds bytes now
        yield usr.fsync(fd)

    def reader(ctx):
        fd = yield open("/dv")
        buf = yield anon(2 * P)
        yield pread(fd, buf, 2 * P, 0)
        return (yield load(buf + P + 996, 16))

    m = machine()
    m.run(writer)
    inode = m.fs.inodes["/dv"]
    assert m.fs.dev.block_content(inode.blocks[0]) == 77  # a compact page's sectors: compact again
    assert type(m.fs.dev.block_content(inode.blocks[1])) is bytes
    m.fs.drop_caches()
    r = m.run(reader)
    tag = (77).to_bytes(8, "little")
    want = bytearray((tag * 3)[4:20])
    want[4:11] = b"sector!"
    assert r.tasks[max(r.tasks)].calls[-1] == ("load", bytes(want))
    vm = m.mm
    a, b = vm.alloc_user_page(), vm.alloc_user_page()
    content.set_tag(vm, a, -5)
    content.zero_from(vm, a, 1000)
    content.write_bytes(vm, b, 0, bytes(range(256)) * 16)
    vals = B.page_to_sectors(vm, a)
    B.sectors_to_page(vm, b, vals[:3] + B.page_to_sectors(vm, b, 1536, 5), 0)  # a mix: sector by sector
    want = content.tag_bytes(-5, 1000)[:1536] + (bytes(range(256)) * 16)[1536:]
    assert content.page_bytes(vm, b) == want
    B.sectors_to_page(vm, b, vals)  # one compact page's eight sectors: compact again
    assert b not in vm.fine and vm.tag[b] == -5 and vm.zero_tail[b] == 1000
    vm.put_page(a)
    vm.put_page(b)
