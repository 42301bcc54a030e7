"""Every write to a PTE page passes the choke point (``pte_change``) and writes the table the policy
leaves: fork's copy asks before it write-protects the source (a policy that unshares there gets its
copy written, one that does the change itself gets nothing written); a shared table's dirty bits
and the last owner's zap in ``pmd_drop`` are announced too."""

from __future__ import annotations

import pytest

from tests.test_memory import machine
from tests.test_pt_shared import _dirty_exit_first, _dirty_setup, _dirty_unshare
from mmframe.mm import pgtable
from mmframe.mm.pgtable import _PAGE_DIRTY, _PAGE_RW, PTE_PRESENT_MASK
from mmframe.usr import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, exit, fork,
                         mmap, read, sleep, touch, wait, write)

RW = PROT_READ | PROT_WRITE
MiB = 1 << 20
BASE = 0x2000_0000


def _spy(m, log, act=None):
    """Wrap the machine's pte_change policy: log ``(reason, table pfn, dirty entries, entries)``
    at each call, then let ``act`` (a test policy) or the real policy answer."""
    inner = m.mm._pte_hook

    def hook(vm, mm, idx, reason, start, end):
        pt = mm.ptp[idx]
        v = pt.np() if pt is not None else None
        log.append((reason, pt.pfn if pt is not None else None,
                    int(((v & _PAGE_DIRTY) != 0).sum()) if v is not None else 0, v.copy() if v is not None else None))
        if act is not None:
            return act(vm, mm, idx, reason, start, end)
        return inner(vm, mm, idx, reason, start, end) if inner is not None else None

    m.mm._pte_hook = hook
    m.mm.every_pte_change()  # every call (a plugin's declared scope would skip some: contract 1.15)


def _quiet(ctx):
    yield sleep(10**8)
    yield exit(0)


@pytest.mark.parametrize("pages", [4, 40], ids=["single", "bulk"])
def test_fork_writes_nothing_when_the_policy_did_the_change(pages, monkeypatch):
    """A policy answering True for "fork" has done the write-protection itself: the core's copy
    must leave the source entries as they are."""
    monkeypatch.setattr(pgtable, "BULK_MIN", 24)
    snap = {}

    def prog(ctx):
        a = yield mmap(BASE, pages * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        yield touch(a, pages * PAGE_SIZE, True)
        pid = yield fork(_quiet)
        yield ("look",)
        yield wait(pid)

    m = machine(policies=(), debug="exit")
    log = []
    _spy(m, log, act=lambda vm, mm, idx, reason, s, e: reason == "fork" or None)

    def look(task):
        mm = m.mm.mms[min(m.mm.mms)]
        v = mm.ptp[BASE >> m.mm.sh].np()
        snap["rw"] = int((((v & PTE_PRESENT_MASK) != 0) & ((v & _PAGE_RW) != 0)).sum())
        return 0

    m.sched.handlers["look"] = look
    m.run(prog)
    assert "fork" in [r for r, *_ in log]
    assert snap["rw"] == pages  # the parent's entries untouched by the core


@pytest.mark.parametrize("pages", [4, 40], ids=["single", "bulk"])
def test_fork_writes_the_copy_a_policy_unshares_into(pages, monkeypatch):
    """pt_shared shares at the first fork; the second fork copies as mainline (share off), and a
    test policy unshares the parent on "fork": the write-protection goes into the parent's new
    table, the old one (the first child's alone now) is not written, and copy-on-write holds."""
    monkeypatch.setattr(pgtable, "BULK_MIN", 24)
    seen = {}

    def child2(ctx):
        yield sleep(10**7)
        yield exit((yield read(BASE)))

    def child1(ctx):
        yield sleep(5 * 10**7)
        yield exit((yield read(BASE)))

    def prog(ctx):
        a = yield mmap(BASE, pages * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        yield touch(a, pages * PAGE_SIZE, True)
        yield write(a, 5)
        p1 = yield fork(child1)
        yield ("noshare",)
        p2 = yield fork(child2)
        yield write(a, 6)
        _, s2 = yield wait(p2)
        _, s1 = yield wait(p1)
        seen["status"] = (s1 >> 8, s2 >> 8, (yield read(a)))

    m = machine(policies=("pt_shared",))
    log = []

    def unshare_on_fork(vm, mm, idx, reason, s, e):
        if reason == "fork" and vm.sharers(mm.ptp[idx]) > 1:
            seen["old"] = mm.ptp[idx]
            seen["old_entries"] = mm.ptp[idx].np().copy()
            vm.unshare(mm, idx)
            return None
        return inner(vm, mm, idx, reason, s, e)

    inner = m.mm._pte_hook
    _spy(m, log, act=unshare_on_fork)
    m.sched.handlers["noshare"] = lambda task: m.plugin_state["pt_shared"].__setitem__("share", False) or 0
    m.run(prog)
    assert seen["status"] == (5, 5, 6)
    assert "old" in seen  # the parent's table was shared when the core's copy asked


def _dirty_calls(policies, body):
    m = machine(policies=policies)
    log = []
    _spy(m, log)
    m.run(_dirty_setup, body)
    return [(r, d) for r, _, d, _ in log]


def test_a_shared_tables_dirty_bits_are_cleared_through_the_choke_point():
    """The first owner's exit carries the shared table's dirty bits to the pages and clears them
    (an "exit" write); the first owner's unshare clears them in the table left to the others (an
    "unshare" write)."""
    assert ("exit", 1) in _dirty_calls(("pt_shared",), _dirty_exit_first)
    assert ("unshare", 1) in _dirty_calls(("pt_shared",), _dirty_unshare)


def test_the_last_owners_zap_in_pmd_drop_passes_the_choke_point():
    seen = {}

    def prog(ctx):
        a = yield mmap(BASE, 8 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        yield touch(a, 8 * PAGE_SIZE, True)
        yield ("drop",)
        seen["after"] = yield read(a)  # faults a fresh zero page in a fresh table

    m = machine(policies=())
    log = []
    _spy(m, log)

    def drop(task):
        mm = m.mm.mms[min(m.mm.mms)]
        idx = BASE >> m.mm.sh
        seen["pfn"] = mm.ptp[idx].pfn
        log.clear()
        m.mm.pmd_drop(mm, idx)
        return 0

    m.sched.handlers["drop"] = drop
    m.run(prog)
    assert [(r, pfn) for r, pfn, *_ in log][:1] == [("exit", seen["pfn"])]
    assert seen["after"] == 0
