"""The argument rules of open(2) and pread/pwrite, stated twice -- by the file system (mmframe/fs.py)
and by the oracle in its own terms (mmframe/mm/oracle.py) -- give the same errno, and the one
written here."""

from __future__ import annotations

import pytest

from tests.test_memory import machine
from mmframe.mm.oracle import install as install_oracle
from mmframe.usr import (EBADF, EINVAL, EISDIR, ENOENT, ENOTDIR, O_WRONLY, MAP_ANONYMOUS, MAP_PRIVATE, O_CREAT, O_RDONLY, O_RDWR,
                         PAGE_SIZE, PROT_READ, PROT_WRITE, mmap, open, pread, pwrite)

P = PAGE_SIZE
# (call, expected); ``fd`` is a read-write descriptor, ``ro`` a read-only one, ``buf`` a page-aligned buffer.
# Any byte offset and buffer is fine (issue 19's byte-granular content): pread at one counts what it reads.
CASES = {
    "open_path_not_str": (lambda fd, ro, buf: open(7, O_RDONLY), -EINVAL),
    "open_flags_not_int": (lambda fd, ro, buf: open("/a", "r"), -EINVAL),
    "open_root_for_write": (lambda fd, ro, buf: open("/", O_WRONLY), -EISDIR),
    "open_empty": (lambda fd, ro, buf: open("", O_RDONLY), -ENOENT),
    "open_trailing_slash": (lambda fd, ro, buf: open("/a/", O_RDONLY), -ENOTDIR),
    "open_accmode_3": (lambda fd, ro, buf: open("/a", 3), -EINVAL),
    "open_missing": (lambda fd, ro, buf: open("/none", O_RDONLY), -ENOENT),
    "pread_bad_fd": (lambda fd, ro, buf: pread(99, buf, P, 0), -EBADF),
    "pread_negative_length": (lambda fd, ro, buf: pread(fd, buf, -1, 0), -EINVAL),
    "pread_negative_offset": (lambda fd, ro, buf: pread(fd, buf, P, -P), -EINVAL),
    "pread_unaligned_offset": (lambda fd, ro, buf: pread(fd, buf, P, 100), 0),
    "pread_unaligned_buffer": (lambda fd, ro, buf: pread(fd, buf + 8, P, 0), 0),
    "pread_length_not_int": (lambda fd, ro, buf: pread(fd, buf, 1.5, 0), -EINVAL),
    "pwrite_read_only_fd": (lambda fd, ro, buf: pwrite(ro, buf, P, 0), -EBADF),
    "pwrite_negative_length": (lambda fd, ro, buf: pwrite(fd, buf, -P, 0), -EINVAL),
    "pwrite_ok": (lambda fd, ro, buf: pwrite(fd, buf, P, 0), P),
}


def _prog(ctx, call, out):
    fd = yield open("/a", O_RDWR | O_CREAT)
    ro = yield open("/a", O_RDONLY)
    buf = yield mmap(0, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    out.append((yield call(fd, ro, buf)))


@pytest.mark.parametrize("case", list(CASES))
def test_file_call_arguments_same_errno_in_model_and_oracle(case):
    call, want = CASES[case]
    got = []
    for m in (machine(policies=()), install_oracle(machine(policies=(), debug="off"), files=True)):
        m.run(_prog, call, got)
    assert got == [want, want]
