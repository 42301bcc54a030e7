"""Copy-on-write and protection over shared page tables, as fixed programs with known answers, under
every policy set: mainline, pt_shared, and the run's own (MMFRAME_PLUGINS).  The region is whole
PTE pages (4 MiB at a 4 MiB boundary: one PTE page, two with PAE), so pt_shared shares its tables at
fork and each operation below meets a shared table; debug_vm runs after every system call."""

from __future__ import annotations

import pytest

from tests.support import active_policies
from tests.test_memory import machine
from mmframe import usr
from mmframe.usr import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_NONE, PROT_READ,
                         PROT_WRITE, SimSignal, exit, fork, mmap, mprotect, munmap, read, sleep, touch, wait,
                         write)

RW = PROT_READ | PROT_WRITE
MiB = 1 << 20
BASE, SIZE, P = 0x2000_0000, 4 * MiB, PAGE_SIZE
POLICY_SETS = list(dict.fromkeys([(), ("pt_shared",), active_policies()]))
IDS = ["+".join(p) or "mainline" for p in POLICY_SETS]
SEGV = -1


def _read(addr):
    try:
        return (yield read(addr))
    except SimSignal:
        return SEGV


def _write(addr, tag):
    try:
        yield write(addr, tag)
        return 0
    except SimSignal:
        return SEGV


def _setup(prot=RW, shared=False):
    a = yield mmap(BASE, SIZE, RW, MAP_ANONYMOUS | MAP_FIXED | (MAP_SHARED if shared else MAP_PRIVATE))
    yield touch(a, SIZE, True)  # every entry present: the tables are worth sharing
    for i in range(4):
        yield write(a + i * 300 * P, 1 + i)  # pages 0, 300, 600, 900 hold 1..4
    if prot != RW:
        yield mprotect(a, SIZE, prot)
    return a


def run(policies, prog, pae=False):
    """Run ``prog`` under ``policies`` and return what it returns (a list of what it saw)."""
    out = []

    def top(ctx):
        out.append((yield from prog(ctx)))

    machine(policies=policies, pae=pae).run(top)
    return out[0]


def _reads(addrs):
    out = []
    for addr in addrs:
        out.append((yield from _read(addr)))
    return out


def _status(st):
    return usr.WEXITSTATUS(st) if usr.WIFEXITED(st) else -usr.WTERMSIG(st)


@pytest.fixture(params=POLICY_SETS, ids=IDS)
def pols(request):
    return request.param


@pytest.mark.parametrize("pae", [False, True])
def test_prot_none_before_fork_then_readable_in_the_child(pols, pae):
    """The issue's crash: 4 MiB at a PTE-page boundary, one page written, mprotect(PROT_NONE) of
    the whole, fork; the child makes it readable and reads the value."""
    def child(ctx):
        yield mprotect(BASE, SIZE, PROT_READ)
        yield exit((yield from _read(BASE + 5 * P)))

    def prog(ctx):
        a = yield mmap(BASE, SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        yield write(a + 5 * P, 42)
        yield mprotect(a, SIZE, PROT_NONE)
        pid = yield fork(child)
        _, st = yield wait(pid)
        return [_status(st), (yield from _read(a + 5 * P))]

    assert run(pols, prog, pae=pae) == [42, SEGV]


def test_writes_after_fork_on_each_side(pols):
    def child(ctx):
        yield sleep(10**7)  # the parent writes first
        v0 = yield from _read(BASE)
        yield write(BASE + 300 * P, 20)
        yield exit(v0 + 10 * ((yield from _read(BASE + 300 * P)) == 20))

    def prog(ctx):
        a = yield from _setup()
        pid = yield fork(child)
        yield write(a, 10)  # after the fork: the child must not see it
        _, st = yield wait(pid)
        return [_status(st), (yield from _read(a)), (yield from _read(a + 300 * P))]

    assert run(pols, prog) == [1 + 10, 10, 2]


def test_nested_forks(pols):
    def grandchild(ctx):
        v = yield from _read(BASE)  # the child's write, made before this fork
        yield write(BASE, 30)
        yield write(BASE + 300 * P, 31)
        yield exit(v)

    def child(ctx):
        yield write(BASE, 20)
        pid = yield fork(grandchild)
        _, st = yield wait(pid)
        yield exit(_status(st) + (yield from _read(BASE)) + (yield from _read(BASE + 300 * P)))  # 20+20+2

    def prog(ctx):
        a = yield from _setup()
        pid = yield fork(child)
        _, st = yield wait(pid)
        pid2 = yield fork(child)  # again, after the first child's tables went
        yield write(a + 600 * P, 50)
        _, st2 = yield wait(pid2)
        return [_status(st), _status(st2)] + (yield from _reads(a + i * 300 * P for i in range(4)))

    assert run(pols, prog) == [42, 42, 1, 2, 50, 4]


def test_mprotect_read_only_and_back_after_fork(pols):
    """RO -> RW round trip of the whole range in each sharer, then writes: each keeps its own."""
    def child(ctx):
        yield mprotect(BASE, SIZE, PROT_READ)
        v = yield from _read(BASE)
        w = yield from _write(BASE, 9)  # read-only: SIGSEGV
        yield mprotect(BASE, SIZE, RW)
        yield write(BASE, 8)
        yield sleep(2 * 10**7)  # the parent's round trip and write happen meanwhile
        yield exit(v + 10 * (w == SEGV) + 20 * ((yield from _read(BASE)) == 8)
                   + 40 * ((yield from _read(BASE + 300 * P)) == 2))

    def prog(ctx):
        a = yield from _setup()
        pid = yield fork(child)
        yield sleep(10**7)
        yield mprotect(a, SIZE, PROT_READ)
        yield mprotect(a, SIZE, RW)
        yield write(a + 300 * P, 7)
        _, st = yield wait(pid)
        return [_status(st), (yield from _read(a)), (yield from _read(a + 300 * P))]

    assert run(pols, prog) == [1 + 10 + 20 + 40, 1, 7]


# (operation in the child, pages it covers); the parent then writes everywhere and the child looks
CHILD_OPS = {
    "munmap_whole": (lambda: munmap(BASE, SIZE), range(1024)),
    "munmap_part": (lambda: munmap(BASE + 250 * P, 100 * P), range(250, 350)),
    "none_whole": (lambda: mprotect(BASE, SIZE, PROT_NONE), range(1024)),
    "none_part": (lambda: mprotect(BASE + 250 * P, 100 * P, PROT_NONE), range(250, 350)),
    "read_whole": (lambda: mprotect(BASE, SIZE, PROT_READ), ()),
    "read_part": (lambda: mprotect(BASE + 250 * P, 100 * P, PROT_READ), ()),
}


@pytest.mark.parametrize("op", list(CHILD_OPS))
@pytest.mark.parametrize("shared", [False, True], ids=["private", "shared"])
def test_one_sharer_changes_the_range_the_other_writes(pols, op, shared):
    call, gone = CHILD_OPS[op]

    def child(ctx):
        yield call()  # while the table is shared
        yield sleep(2 * 10**7)  # the parent writes meanwhile
        seen = yield from _reads(BASE + i * 300 * P for i in range(4))
        yield exit(sum((3 ** i) * (0 if v == SEGV else 1 if v == 1 + i else 2) for i, v in enumerate(seen)))

    def prog(ctx):
        a = yield from _setup(shared=shared)
        pid = yield fork(child)
        yield sleep(10**7)
        for i in range(4):
            yield write(a + i * 300 * P, 100 + i)
        _, st = yield wait(pid)
        return [_status(st)] + (yield from _reads(a + i * 300 * P for i in range(4)))

    # what the child sees of page i: SIGSEGV where it unmapped or made it PROT_NONE, else its own
    # copy (private) or the parent's write (shared)
    want = sum((3 ** i) * (0 if i * 300 in gone else 2 if shared else 1) for i in range(4))
    assert run(pols, prog) == [want, 100, 101, 102, 103]


@pytest.mark.parametrize("who", ["parent", "child"])
def test_prot_none_after_fork_in_one_sharer_only(pols, who):
    def child(ctx):
        if who == "child":
            yield mprotect(BASE, SIZE, PROT_NONE)
        yield sleep(10**7)
        yield exit(100 + (yield from _read(BASE + 300 * P)))

    def prog(ctx):
        a = yield from _setup()
        pid = yield fork(child)
        if who == "parent":
            yield mprotect(a, SIZE, PROT_NONE)
        mine = yield from _read(a + 300 * P)
        _, st = yield wait(pid)
        return [_status(st), mine]

    assert run(pols, prog) == ([100 + SEGV, 2] if who == "child" else [102, SEGV])


def test_prot_none_before_fork_made_writable_in_the_child_only(pols):
    def child(ctx):
        yield mprotect(BASE, SIZE, RW)
        yield write(BASE, 70)
        yield exit((yield from _read(BASE)) + (yield from _read(BASE + 300 * P)))

    def prog(ctx):
        a = yield from _setup(prot=PROT_NONE)
        pid = yield fork(child)
        _, st = yield wait(pid)
        yield mprotect(a, SIZE, PROT_READ)
        return [_status(st), (yield from _read(a)), (yield from _read(a + 300 * P))]

    assert run(pols, prog) == [72, 1, 2]


def test_unshare_write_protects_the_source_while_others_share_it(pols):
    """Three sharers; one unshares by writing (two remain on the table); another exits; the last
    writes a page it wrote before the fork: the first must keep the old value (the 2002 patch
    write-protected the source only when one sharer remained)."""
    def writer(ctx):
        yield sleep(10**7)  # all three share the table by now
        yield write(BASE + 600 * P, 60)  # unshares: its own table; two sharers remain on the old
        yield sleep(5 * 10**7)
        yield exit((yield from _read(BASE)))

    def quitter(ctx):
        yield sleep(2 * 10**7)
        yield exit(0)

    def prog(ctx):
        a = yield from _setup()
        w = yield fork(writer)
        q = yield fork(quitter)
        yield wait(q)  # the parent alone on its table again
        yield write(a, 11)  # a page written before the forks
        _, st = yield wait(w)
        return [_status(st), (yield from _read(a))]

    assert run(pols, prog) == [1, 11]
