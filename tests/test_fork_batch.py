"""fork's batched copy (``fork.copy_page_range_batch``, issue 24) leaves exactly the state, and
charges exactly the counts, of one default ``copy_page_range`` per PTE page: the same PTE pages
(the same pfns, allocated in the same order as the pte_chain slab pages), entries, references,
rmap entries with their ids and per-page link order, pte_chain objects, choke-point counts and
charged costs.  Each program runs twice, the batch on and off (off: the hook is called per PTE
page, as with a plugin), and everything is compared; runs where the batch must decline (a page
mapped twice, memory too short to be sure no reclaim runs) are compared too."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from tests.support import examples
from tests.test_bulk_alloc import alloc_state
from mmframe import usr
from mmframe.config import load_config
from mmframe.machine import Machine
from mmframe.mm import fork
from mmframe.mm.zap import Zap
from mmframe.usr import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE

MiB = 1 << 20
exits: list[bool] = []  # what the exit batch answered, in the last run_both's first run
PAGE = 4096
RW = PROT_READ | PROT_WRITE


def machine(memory: int, **kw) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=[])
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=memory, debug_vm="exit", **kw)))


def vm_state(m: Machine) -> dict:
    """The page tables of every mm, the reverse map (live entries by id, links, counts, chain
    modes, the ids it will hand out next), the slab caches and the allocator."""
    vm = m.mm
    r = vm.rmap
    mms = {}
    live: set[int] = set()
    for mid, mm in sorted(vm.mms.items()):
        tables = []
        for idx, pt in enumerate(mm.ptp):
            if pt is not None:
                tables.append((idx, pt.pfn, bytes(pt.ptes), list(pt.rid), pt.rss, pt.high, [o.id for o in pt.owners]))
                live.update(e for e in pt.rid if e >= 0)
        mms[mid] = (list(mm.pmd), tables)
    entries = {e: (r.page[e], r.ptep[e], r.next[e], r.prev[e]) for e in sorted(live)}
    # the ids it will hand out next: the free ones, last freed first, then fresh ones (how far the
    # table has grown is no state: one batch grows once where the single path grows in steps)
    upcoming = (list(reversed(r.free)) + list(range(len(r.page), len(r.page) + (1 << 16))))[:1 << 16]
    return {"mms": mms, "entries": entries, "head": bytes(r.head), "k": bytes(r.k), "chained": bytes(r.chained),
            "chains": r.chains, "upcoming": upcoming, "pte_changes": list(vm.pte_changes),
            "slabs": {n: (c.objects, list(c.pages)) for n, c in m.pagealloc.kernel_objects.items()},
            "alloc": alloc_state(m)}


def run_both(memory: int, prog, *args, on=("fork", "exit"), **kw) -> list[bool]:
    """Run ``prog`` with the batches named in ``on`` and with none; assert equal results and
    state; return what the fork batch answered in the first run (True: it copied)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _run_both(monkeypatch, memory, prog, *args, on=on, **kw)


def _run_both(monkeypatch, memory: int, prog, *args, on=(), **kw) -> list[bool]:
    real_fork, real_exit = fork.copy_page_range_batch, Zap.exit_zap_batch
    taken: list[bool] = []
    states = []
    for batch in (True, False):
        def spy(vm, src, dst, idxs, batch=batch):
            if not (batch and "fork" in on):
                return False
            done = real_fork(vm, src, dst, idxs)
            taken.append(done)
            return done

        def spy_exit(vm, mm, batch=batch):
            if not (batch and "exit" in on):
                return False
            done = real_exit(vm, mm)
            exits.append(done)
            return done

        monkeypatch.setattr(fork, "copy_page_range_batch", spy)
        monkeypatch.setattr(Zap, "exit_zap_batch", spy_exit)
        box: dict = {}
        m = machine(memory, **kw)

        def snap(task):
            box.setdefault("states", []).append(vm_state(m))
            return 0

        m.sched.handlers["snap"] = snap
        r = m.run(prog, *args)
        states.append((r.tasks, dict(r.counts), r.sim_ns, m.meminfo(), box.get("states"), vm_state(m)))
    for what, a, b in zip(("tasks", "counts", "sim_ns", "meminfo", "states at the snapshots", "state at the end"), *states):
        assert a == b, f"{what} differ: {_diff(a, b)}"
    return taken


def _diff(a, b, path="") -> str:
    """Where two nested values first differ (a short message, not megabytes of bytes)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _diff(a.get(k), b.get(k), f"{path}[{k!r}]")
    if isinstance(a, (bytes, list, tuple)) and isinstance(b, type(a)) and len(a) == len(b):
        i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        return _diff(a[i], b[i], f"{path}[{i}]") if not isinstance(a, bytes) else f"{path}[{i}]: {a[i]} != {b[i]}"
    return f"{path}: {str(a)[:300]} != {str(b)[:300]}"


def _regions(ctx, spec):
    """Map and touch the regions of ``spec``: (kind, pages, touch) each; returns their addresses."""
    out = []
    fd = -1
    for kind, pages, how in spec:
        size = pages * PAGE if kind in ("anon", "shared") else min(pages * PAGE, 4 * MiB)
        if kind == "anon":
            a = yield usr.mmap(0, size, RW, MAP_PRIVATE | MAP_ANONYMOUS)
        elif kind == "shared":
            a = yield usr.mmap(0, size, RW, MAP_SHARED | MAP_ANONYMOUS)
        else:  # a file, shared or private
            if fd < 0:
                fd = yield usr.open("/f", usr.O_RDWR | usr.O_CREAT)
                yield usr.ftruncate(fd, 4 * MiB)
            a = yield usr.mmap(0, size, RW, MAP_SHARED if kind == "file" else MAP_PRIVATE, fd, 0)
        if how == "write":
            yield usr.touch(a, size, True)
        elif how == "read":
            yield usr.touch(a, size, False)
        elif how == "none":  # present entries made PROT_NONE
            yield usr.touch(a, size, True)
            yield usr.mprotect(a, size, PROT_NONE)
        elif how == "ro":
            yield usr.touch(a, size, True)
            yield usr.mprotect(a, size, PROT_READ)
        out.append(a)
    return out


def _program(ctx, spec, depth):
    addrs = yield from _regions(ctx, spec)
    yield ("snap",)
    pid = yield usr.fork()
    if pid == 0:
        yield ("snap",)  # the copy itself, before the child changes it
        for (kind, pages, how), a in zip(spec, addrs):
            if how in ("write", "read") and kind != "fpriv":
                yield usr.touch(a, min(pages * PAGE, 4 * MiB), True)  # copy-on-write breaks, shared writes
        if depth:
            g = yield usr.fork()
            if g == 0:
                yield usr.exit(0)
            yield usr.wait(g)
        yield usr.exit(0)
    yield usr.wait(pid)
    pid = yield usr.fork()  # again, with the parent's entries write-protected now
    if pid == 0:
        yield usr.exit(0)
    yield usr.wait(pid)
    return 0


REGION = st.tuples(st.sampled_from(["anon", "shared", "file", "fpriv"]),
                   st.sampled_from([1, 5, 23, 24, 300, 1024, 1500]),
                   st.sampled_from(["write", "read", "none", "ro", "skip"]))


@settings(max_examples=examples(12), deadline=None)
@given(st.lists(REGION, min_size=1, max_size=5), st.booleans())
@example([("anon", 1500, "write"), ("shared", 300, "write"), ("file", 23, "read"), ("fpriv", 24, "write"),
          ("anon", 5, "none")], True)
def test_batched_fork_equals_one_copy_per_pte_page(spec, depth):
    run_both(128 * MiB, _program, spec, depth)  # (the batch declines where a file page is mapped twice)


def test_the_batch_copies_a_program_spanning_pte_pages():
    spec = [("anon", 1500, "write"), ("shared", 1300, "write"), ("file", 23, "write"), ("fpriv", 24, "write"),
            ("anon", 5, "none"), ("anon", 40, "ro"), ("anon", 30, "read")]
    exits.clear()
    assert run_both(64 * MiB, _program, spec, True) == [True] * 3  # child, grandchild, second child
    assert exits.count(True) >= 4  # the three children and the parent (and the exec'd images)
    for on in (("fork",), ("exit",)):  # each batch alone against the single paths
        run_both(64 * MiB, _program, spec, True, on=on)


@pytest.mark.parametrize("memory,kw", [(1200 * MiB, {"highpte": True}), (1200 * MiB, {"pae": True}),
                                       (1200 * MiB, {"pae": True, "highpte": True})],
                         ids=["highpte", "pae", "pae-highpte"])
def test_batched_fork_equals_the_single_path_with_highmem_page_tables(memory, kw):
    spec = [("anon", 2000, "write"), ("shared", 700, "write"), ("file", 600, "read"), ("anon", 3, "ro")]
    taken = run_both(memory, _program, spec, True, **kw)
    assert any(taken)


def _twice(ctx):
    """A file page mapped at two addresses of one mm: the batch must decline (a page twice)."""
    fd = yield usr.open("/g", usr.O_RDWR | usr.O_CREAT)
    yield usr.ftruncate(fd, 4 * MiB)
    a = yield usr.mmap(0, 4 * MiB, RW, MAP_SHARED, fd, 0)
    b = yield usr.mmap(0, 4 * MiB, RW, MAP_SHARED, fd, 0)
    yield usr.touch(a, 4 * MiB, True)
    yield usr.touch(b, 4 * MiB, False)
    pid = yield usr.fork()
    if pid == 0:
        yield usr.exit(0)
    yield usr.wait(pid)
    return 0


def test_a_page_mapped_twice_goes_a_pte_page_at_a_time():
    taken = run_both(64 * MiB, _twice)
    assert taken == [False]


def _big(ctx, mib):
    a = yield usr.mmap(0, mib * MiB, RW, MAP_SHARED | MAP_ANONYMOUS)
    yield usr.touch(a, mib * MiB, True)
    for _ in range(3):
        pid = yield usr.fork()
        if pid == 0:
            yield usr.touch(a, mib * MiB, True)
            yield usr.exit(0)
        yield usr.wait(pid)
    return 0


def test_under_pressure_the_batch_declines_and_the_runs_agree():
    taken = run_both(24 * MiB, _big, 17)
    assert False in taken  # too little free to be sure no reclaim runs between the allocations


def test_pass1_sure_counts_what_each_zone_gives():
    m = machine(64 * MiB)
    pa = m.pagealloc
    from mmframe.mm.page import GFP_ATOMIC, GFP_KERNEL
    z = pa.zonelist_of[GFP_KERNEL & 3][0]
    room = z.free_pages - z.pages_low - 1 - z.pageset[0][0].batch
    assert pa.pass1_sure([(GFP_KERNEL, room - 1)], 0)
    assert not pa.pass1_sure([(GFP_KERNEL, room)], 0)
    # two requests on the same zone add up (and each brings its refill batch)
    assert not pa.pass1_sure([(GFP_KERNEL, room // 2), (GFP_ATOMIC, room // 2)], 0)


def test_distinct_finds_a_page_twice_among_pages_mapped_more_than_once():
    m = machine(64 * MiB)
    k = np.frombuffer(m.mm.rmap.k, dtype=np.int32)
    k[[3, 9, 11]] = [2, 1, 5]
    try:
        assert m.mm.rmap.distinct(np.array([3, 9, 11], dtype=np.int64))
        assert m.mm.rmap.distinct(np.array([9, 9], dtype=np.int64))  # k 1: once in all, by the caller's word
        assert not m.mm.rmap.distinct(np.array([3, 9, 11, 3], dtype=np.int64))
        assert not m.mm.rmap.distinct(np.array([11, 9, 3, 11], dtype=np.int64))
    finally:
        k[[3, 9, 11]] = 0


def _cached_then_missing(ctx):
    s = yield usr.mmap(0, 256 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    pid = yield usr.fork()
    if pid == 0:  # the first leaf's pages cached, then unmapped with the child; one page of the
        yield usr.touch(s, 64 * PAGE, True)  # second leaf too, so that leaf exists and its missing
        yield usr.touch(s + 100 * PAGE, PAGE, True)  # slots are allocated as a run
        yield usr.exit(0)
    yield usr.wait(pid)
    yield usr.touch(s, 256 * PAGE, True)  # one call: a cached slice, then a run allocated
    return 0


def test_shmem_getpages_takes_the_found_pages_references_before_allocating():
    """An allocation may reclaim: when shmem_getpages allocates a run for the missing slots, the
    cached pages it found before hold their mapping's reference already (count 2: the cache's and
    the mapping's), as one shmem_getpage each would have."""
    m = machine(64 * MiB)
    vm = m.mm
    seen: list[list[int]] = []
    real = vm.alloc_user_run

    def watched(n):
        for o in vm.objects:
            first = [o.mapping.page_tree.lookup(i) for i in range(64)]
            if None not in first:  # the parent's touch: the first leaf cached
                seen.append([vm.count[p] for p in first])
        return real(n)

    vm.alloc_user_run = watched
    m.run(_cached_then_missing)
    assert seen and all(c == 2 for counts in seen for c in counts), seen
