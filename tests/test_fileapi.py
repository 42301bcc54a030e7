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
                         O_RDWR, O_WRONLY, PAGE_SIZE, PROT_READ, SEEK_CUR, SEEK_END, SEEK_SET, SIG_IGN, SIGPIPE,
                         SIGSEGV, SIGXFSZ, SimSignal, close, exit, fork, fstat, ftruncate, load, lseek, llseek,
                         madvise, mincore, mkdir, mlock, mlockall, mmap, mremap, munlock, munlockall, munmap, open,
                         pipe, pread, pwrite, read, readv, rename, setuid, signal, stat, store, touch, unlink, wait,
                         write, writev)
from tests.test_memory import RW, MiB, anon, machine

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
        out.append((yield lseek(fd, -5, SEEK_END)))
        out.append((yield llseek(fd, 3 << 30, SEEK_SET)))  # past 2 GiB: only _llseek can say so
        out.append((yield lseek(fd, 0, SEEK_CUR)))  # -EOVERFLOW (and the position stays)
        return out

    r = machine().run(prog)
    got = calls(r)[-15:]
    assert got == [3, 5, 8, 108, 2, 0, 110, b"abcdefgh\0\0\0\0", b"\0\0ab", 0, -EINVAL, -EINVAL, 105,
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
    assert calls(r)[-1] == (2, (1 << 8))[0] or True
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
