"""Unrelated processes attaching one SysV segment (the sga scenario's attach form, and what
McCracken's 2005 design shared): generated programs with exec'd attachers, partial detaches
(munmap of part of an attachment), mprotect, writes and reads, and forks of attachers must see the
same results under every policy (the differential promise)."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import examples, look, region_call, region_ops, run_image_ops, shm_attach, spawn
from mmframe import usr
from mmframe.config import load_config
from mmframe.differential import compare_results
from mmframe.machine import Machine
from mmframe.usr import PAGE_SIZE, SimSignal, execve, shmdt, touch, wait, write

P = PAGE_SIZE
KEY = 0x5EED
SEG = 8 << 20  # two whole PTE pages without PAE, four with PAE
ALIGNED = 0x2000_0000  # an attach address on a PTE-page boundary (the rest attach where shmat puts them)


def machine(policies=(), pae=False) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=96 << 20, pae=pae,
                                                          debug_vm="syscall", shmmax=SEG)))


OP = st.one_of(*region_ops(SEG), st.tuples(st.just("shmdt")))
LEAF = st.lists(OP, max_size=5)
ATTACHER = st.tuples(st.booleans(), st.lists(st.one_of(OP, st.tuples(st.just("fork"), LEAF)), max_size=8))
PROGRAM = st.tuples(st.lists(ATTACHER, min_size=1, max_size=3), st.lists(OP, max_size=4), st.booleans())


def _ops(ctx, base, ops):
    call = lambda op: shmdt(base) if op[0] == "shmdt" else region_call(base, SEG, op)  # noqa: E731
    yield from run_image_ops(ctx, ops, call, lambda: _look(base))


def _look(base):
    return look(base, SEG, 97)


@usr.program(text_pages=4, data_pages=1, bss_pages=1)
def attacher(ctx, aligned, ops):
    """A server started on its own: attaches the segment by key (at a PTE-page boundary or where
    shmat puts it, after libc) and works on it."""
    base = yield from shm_attach(KEY, SEG, ALIGNED if aligned else 0)
    yield from _ops(ctx, base, ops)
    yield from _look(base)


@usr.program(text_pages=4, data_pages=1, bss_pages=1)
def instance(ctx, attachers, own, wait_each):
    base = yield from shm_attach(KEY, SEG, ALIGNED, create=True)
    yield touch(base, SEG // 2, True)
    for i in range(0, SEG // P, 61):
        yield write(base + i * P, 1000 + i)
    pids = []
    for aligned, ops in attachers:
        pid = yield from spawn(ctx, attacher, aligned, ops)
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
