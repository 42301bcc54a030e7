"""Unrelated processes attaching one SysV segment (the sga scenario's attach form, and what
McCracken's 2005 design shared): generated programs with exec'd attachers, partial detaches
(munmap of part of an attachment), mprotect, writes and reads, and forks of attachers must see the
same results under every policy (the differential promise)."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import examples
from mmframe import usr
from mmframe.config import load_config
from mmframe.differential import compare_results
from mmframe.machine import Machine
from mmframe.usr import (IPC_CREAT, PAGE_SIZE, PROT_NONE, PROT_READ, SimSignal, after_fork, execve, exit, fork,
                         mprotect, munmap, read, shmat, shmdt, shmget, touch, wait, write)

P = PAGE_SIZE
KEY = 0x5EED
SEG = 8 << 20  # two whole PTE pages without PAE, four with PAE
ALIGNED = 0x2000_0000  # an attach address on a PTE-page boundary (the rest attach where shmat puts them)
RW = PROT_READ | usr.PROT_WRITE


def machine(policies=(), pae=False) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=96 << 20, pae=pae,
                                                          debug_vm="syscall", shmmax=SEG)))


PAGE = st.integers(0, SEG // P - 1)
OP = st.one_of(
    st.tuples(st.just("write"), PAGE, st.integers(1, 99)),
    st.tuples(st.just("read"), PAGE),
    st.tuples(st.just("touch"), st.integers(0, 3), st.booleans()),  # a quarter of the segment
    st.tuples(st.just("munmap"), PAGE, st.integers(1, 1100)),  # a partial detach
    st.tuples(st.just("mprotect"), PAGE, st.integers(1, 1100), st.sampled_from([PROT_NONE, PROT_READ, RW])),
    st.tuples(st.just("shmdt")),
)
LEAF = st.lists(OP, max_size=5)
ATTACHER = st.tuples(st.booleans(), st.lists(st.one_of(OP, st.tuples(st.just("fork"), LEAF)), max_size=8))
PROGRAM = st.tuples(st.lists(ATTACHER, min_size=1, max_size=3), st.lists(OP, max_size=4), st.booleans())


def _ops(ctx, base, ops):
    for op in ops:
        name, *a = op
        if name == "fork":
            pid = yield fork()
            yield from after_fork(ctx, pid)
            if pid == 0:
                yield from _ops(ctx, base, a[0])
                yield from _look(base)
                yield exit(0)
            yield wait(pid)
            continue
        try:
            if name == "write":
                yield write(base + a[0] * P, a[1])
            elif name == "read":
                yield read(base + a[0] * P)
            elif name == "touch":
                yield touch(base + a[0] * SEG // 4, SEG // 4, a[1])
            elif name == "munmap":
                yield munmap(base + a[0] * P, a[1] * P)
            elif name == "mprotect":
                yield mprotect(base + a[0] * P, a[1] * P, a[2])
            else:
                yield shmdt(base)
        except SimSignal:
            pass


def _look(base):
    for i in range(0, SEG // P, 97):
        try:
            yield read(base + i * P)
        except SimSignal:
            pass


@usr.program(text_pages=4, data_pages=1, bss_pages=1)
def attacher(ctx, aligned, ops):
    """A server started on its own: attaches the segment by key (at a PTE-page boundary or where
    shmat puts it, after libc) and works on it."""
    sid = yield shmget(KEY, SEG, 0)
    base = yield shmat(sid, ALIGNED if aligned else 0)
    yield from _ops(ctx, base, ops)
    yield from _look(base)


def _spawn(ctx, aligned, ops):
    yield from after_fork(ctx, 0)
    yield execve(attacher, aligned, ops)


@usr.program(text_pages=4, data_pages=1, bss_pages=1)
def instance(ctx, attachers, own, wait_each):
    sid = yield shmget(KEY, SEG, IPC_CREAT | 0o600)
    base = yield shmat(sid, ALIGNED)
    yield touch(base, SEG // 2, True)
    for i in range(0, SEG // P, 61):
        yield write(base + i * P, 1000 + i)
    pids = []
    for aligned, ops in attachers:
        pid = yield fork(_spawn, aligned, ops)
        yield from after_fork(ctx, pid)
        if wait_each:
            yield wait(pid)
        else:
            pids.append(pid)
    yield from _ops(ctx, base, own)
    for pid in pids:
        yield wait(pid)
    yield from _look(base)


def _root(ctx, program):
    yield execve(instance, *program)


@settings(max_examples=examples(10), deadline=None)
@given(PROGRAM, st.booleans())
def test_attachers_see_the_same_under_pt_shared(program, pae):
    a = machine(pae=pae).run(_root, program)
    b = machine(["pt_shared"], pae=pae).run(_root, program)
    assert not compare_results(a, b).differences
    # the attachers ran: each attached (a non-negative address) in its own exec'd image
    for k in range(1, len(program[0]) + 1):
        assert [v >= 0 for n, v in a.tasks[f"1.{k}"].calls if n == "shmat"] == [True]


def test_an_attacher_sees_the_instances_writes_and_its_own_detach():
    """A concrete case: the instance writes, an attacher reads it, detaches half of its view, and
    gets SIGSEGV there; the instance still reads its own."""
    program = ([(False, [("read", 61), ("munmap", 0, 1024), ("read", 61), ("read", 1100)])], [("read", 61)], True)
    r = machine().run(_root, program)
    reads = [v for n, v in r.tasks["1.1"].calls if n == "read"]
    assert reads[:3] == [1061, SimSignal(usr.SIGSEGV, usr.SEGV_MAPERR, reads[1].addr), 0]
    assert [v for n, v in r.tasks["1"].calls if n == "read"][0] == 1061
