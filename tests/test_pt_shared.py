"""pt_shared against mainline: the same program-visible results on generated workloads biased to the
hard cases, with the debug_vm checker after every system call; and what sharing saves."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support import examples
from mmframe.config import load_config
from mmframe import usr
from mmframe.differential import compare_results
from mmframe.machine import Machine
from mmframe.mm import pgtable
from mmframe.usr import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_NONE, PROT_READ,
                         PROT_WRITE, SimSignal, exit, fork, mmap, mprotect, munmap, read, touch, wait, write)

RW = PROT_READ | PROT_WRITE
MiB = 1 << 20
SMALL = 0x1040_0000 - 24 * PAGE_SIZE  # 48 pages across a 4 MiB (and 2 MiB) boundary
BIG = 0x2000_0000  # 8 MiB: two whole PTE pages without PAE, four with PAE


def machine(policies=(), memory=48 * MiB, pae=False, debug="syscall", **opts) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=memory, pae=pae, debug_vm=debug))
    if opts:
        cfg = attrs.evolve(cfg, plugin_options={**cfg.plugin_options, "pt_shared": {
            **cfg.plugin_options.get("pt_shared", {}), **opts}})
    return Machine(cfg)


PROTS = st.sampled_from([PROT_NONE, PROT_READ, RW])
HALF = st.integers(0, 1)
OP = st.one_of(
    st.tuples(st.just("mmap"), st.integers(0, 47), st.integers(1, 30), PROTS, st.booleans()),
    st.tuples(st.just("munmap"), st.integers(0, 47), st.integers(1, 30)),
    st.tuples(st.just("mprotect"), st.integers(0, 47), st.integers(1, 30), PROTS),
    st.tuples(st.just("write"), st.integers(0, 47), st.integers(1, 99)),
    st.tuples(st.just("read"), st.integers(0, 47)),
    st.tuples(st.just("touch"), st.integers(0, 47), st.integers(1, 30), st.booleans()),
    st.tuples(st.just("bigmap"), st.booleans()),
    st.tuples(st.just("bigtouch"), HALF, st.booleans()),
    st.tuples(st.just("bigwrite"), st.integers(0, 20), st.integers(1, 99)),  # pages _look reads
    st.tuples(st.just("bigmunmap"), HALF),
    st.tuples(st.just("bigmprotect"), HALF, PROTS),
    st.tuples(st.just("bigmapinto"), HALF, st.booleans()),  # mmap over part of a (shared) PTE page
)
LEAF = st.lists(OP, max_size=6)
NESTED = st.lists(st.one_of(OP, st.tuples(st.just("fork"), LEAF, st.booleans())), max_size=6)
PROGRAM = st.lists(st.one_of(OP, st.tuples(st.just("fork"), NESTED, st.booleans())), max_size=16)


def _call(op):
    name, *a = op
    flags = MAP_ANONYMOUS | MAP_FIXED
    if name == "mmap":
        return mmap(SMALL + a[0] * PAGE_SIZE, a[1] * PAGE_SIZE, a[2], flags | (MAP_SHARED if a[3] else MAP_PRIVATE))
    if name == "munmap":
        return munmap(SMALL + a[0] * PAGE_SIZE, a[1] * PAGE_SIZE)
    if name == "mprotect":
        return mprotect(SMALL + a[0] * PAGE_SIZE, a[1] * PAGE_SIZE, a[2])
    if name == "write":
        return write(SMALL + a[0] * PAGE_SIZE, a[1])
    if name == "read":
        return read(SMALL + a[0] * PAGE_SIZE)
    if name == "touch":
        return touch(SMALL + a[0] * PAGE_SIZE, a[1] * PAGE_SIZE, a[2])
    half = BIG + (a[0] & 1) * 4 * MiB if a else BIG
    if name == "bigmap":
        return mmap(BIG, 8 * MiB, RW, flags | (MAP_SHARED if a[0] else MAP_PRIVATE))
    if name == "bigtouch":
        return touch(half, 4 * MiB, a[1])
    if name == "bigwrite":
        return write(BIG + a[0] * 97 * PAGE_SIZE, a[1])
    if name == "bigmunmap":
        return munmap(half, 4 * MiB)
    if name == "bigmprotect":
        return mprotect(half, 4 * MiB, a[1])
    return mmap(half + 64 * PAGE_SIZE, 16 * PAGE_SIZE, RW, flags | (MAP_SHARED if a[1] else MAP_PRIVATE))


def _run_ops(ops):
    later = 0
    for op in ops:
        if op[0] == "fork":  # wait now, or let parent and child interleave and reap at the end
            pid = yield fork(_child, op[1])
            if pid > 0 and op[2]:
                yield wait(pid)
            else:
                later += pid > 0
            continue
        try:
            yield _call(op)
        except SimSignal:
            pass
    for _ in range(later):
        yield wait()


def _populate(shared_big):
    """Fork after populating: every generated program starts with memory in both windows."""
    yield mmap(SMALL, 48 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    for p in range(0, 48, 3):
        yield write(SMALL + p * PAGE_SIZE, 100 + p)
    yield mmap(BIG, 8 * MiB, RW, MAP_ANONYMOUS | MAP_FIXED | (MAP_SHARED if shared_big else MAP_PRIVATE))
    yield touch(BIG, 5 * MiB, True)
    for p in range(0, 2048, 97):
        yield write(BIG + p * PAGE_SIZE, 200 + p)


def _look():
    for addr in [SMALL + p * PAGE_SIZE for p in range(0, 48, 5)] + [BIG + p * 97 * PAGE_SIZE for p in range(21)]:
        try:
            yield read(addr)
        except SimSignal:
            pass


def _child(ctx, ops):
    yield from _run_ops(ops)
    yield from _look()


def _program(ctx, ops, shared_big):
    yield from _populate(shared_big)
    yield from _run_ops(ops)
    yield from _look()
    return 0


@settings(max_examples=examples(70), deadline=None)
@given(PROGRAM, st.booleans(), st.booleans())
@example(ops=[('read', 42), ('munmap', 12, 1), ('read', 23), ('bigmprotect', 1, 0), ('munmap', 46, 4),
              ('fork', [('bigmprotect', 1, 1), ('read', 5), ('bigtouch', 1, False)], False), ('bigmunmap', 0),
              ('mmap', 1, 12, 3, True), ('mmap', 25, 25, 1, False), ('bigmprotect', 1, 3)],
         pae=False, shared_big=True)  # PROT_NONE entries made readable by a PMD-level mprotect
def test_pt_shared_changes_cost_not_semantics(ops, pae, shared_big):
    a = machine(pae=pae).run(_program, ops, shared_big)
    b = machine(["pt_shared"], pae=pae).run(_program, ops, shared_big)
    assert not compare_results(a, b).differences


def _sga(ctx, size, children):
    base = yield mmap(0, size, RW, MAP_SHARED | MAP_ANONYMOUS)
    yield touch(base, size, True)
    pids = []
    for _ in range(children):
        pid = yield fork(_reader, base, size)
        pids.append(pid)
    yield ("snapshot",)
    for pid in pids:
        yield wait(pid)


def _reader(ctx, base, size):
    yield touch(base, size, True)
    yield ("wait_here",)
    yield exit(0)


def test_sharing_saves_page_tables_and_pte_chains():
    seen = {}
    for pol in ((), ("pt_shared",)):
        m = machine(pol, memory=256 * MiB, debug="exit")
        m.sched.handlers["snapshot"] = lambda task: seen.__setitem__(pol, m.meminfo()) or 0
        m.sched.handlers["wait_here"] = lambda task: 0
        m.run(_sga, 32 * MiB, 4)
    plain, shared = seen[()], seen[("pt_shared",)]
    # without sharing each child has 8 PTE pages and a pte_chain slot per page; with it, none
    assert plain["PageTables"] - shared["PageTables"] >= 4 * 8 * 4
    assert plain["ReverseMaps"] == 5 * 8192 and shared["ReverseMaps"] == 8192
    assert shared["mmframe.PteChainBytes"] == 0 < plain["mmframe.PteChainBytes"]


def test_min_rss_option_copies_sparse_pte_pages():
    def prog(ctx):
        a = yield mmap(0x2000_0000, 8 * MiB, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        yield touch(a, 4 * MiB, True)  # one dense PTE page
        yield write(a + 4 * MiB, 1)  # one sparse one
        pid = yield fork(_quiet)
        yield wait(pid)

    m = machine(["pt_shared"], memory=64 * MiB, min_rss=16)
    m.run(prog)
    assert m.close()["pt_shared.shared_at_fork"] == 1


def _quiet(ctx):
    yield exit(0)


def test_sga_scenario_sharing_fits_more_children(isolated):
    """Since reclaim (issue 20) the fork form's lowmem limit is the page tables: 2.5.49's shrink_list
    unmaps the sleeping children's shm pages through the reverse map (try_to_unmap comes before
    shmem_writepage, which fails without swap), and that frees their pte_chains, but nothing frees
    a live process's page tables.  So mainline runs out of lowmem when its private PTE pages fill
    it, at fewer children than pt_shared, which shares the segment's PTE pages.  Small machine:
    mainline reclaims and refaults the segment for each child near the limit."""
    from mmframe.scenario import run_scenario
    (isolated / "run.toml").write_text('[scenario]\nname = "sga"\npolicies = [[], ["pt_shared"]]\n'
                                       'memory = "16MiB"\nsize = "8MiB"\nchildren = 80\nforms = ["fork"]\n')
    scen, (plain, shared) = run_scenario(load_config(isolated / "run.toml", env={}))
    for tag in ("no HIGHPTE", "HIGHPTE"):
        assert 10 < plain.figures[f"children {tag}"] < 80 == shared.figures[f"children {tag}"]
        # lowmem (page tables and pte_chains) at ten tasks, before reclaim: each mainline child
        # has the segment's four PTE pages of its own, a pt_shared child shares them
        assert plain.figures[f"lowmem {tag}"][10] > 1.5 * shared.figures[f"lowmem {tag}"][10]
        # pt_shared's chains stay where a child's stores after fork unshared a PTE page (libc's,
        # which also maps the segment's first pages): well under what 81 private mappings of the
        # segment's 2048 pages take, ceil(81 / NRPTE) 32-byte chains a page (NRPTE 7, or 3)
        private = 2048 * -(-81 // (3 if tag == "HIGHPTE" else 7)) * 32 / 2**20
        assert 0 < shared.figures[f"pte_chains {tag}"] < private / 4
    # with PAE+HIGHPTE a pte_addr_t is 8 bytes: 3 slots per 32-byte chain instead of 7, so ten
    # tasks' chains take more lowmem (the machine has no highmem: the page tables are the same)
    assert plain.figures["lowmem HIGHPTE"][10] > plain.figures["lowmem no HIGHPTE"][10] + 0.1


def test_fork_scaling_side_by_side(isolated):
    from mmframe.scenario import run_scenario
    (isolated / "run.toml").write_text('[scenario]\nname = "fork-scaling"\npolicies = [[], ["pt_shared"]]\n'
                                       'sizes = ["4MiB", "40MiB"]\nmemory = "256MiB"\n')
    scen, (plain, shared) = run_scenario(load_config(isolated / "run.toml", env={}))
    assert plain.label == "mainline" and shared.label == "pt_shared"
    refs = {(r.figure, r.applies(("pt_shared",))): r.value for r in scen.references if r.at == 40 << 20}
    assert refs[("fork", True)] == 3.4 and 28.4 in refs.values()
    fork_p, fork_s = plain.figures["fork"], shared.figures["fork"]
    assert fork_s[40 << 20] < fork_p[40 << 20] / 5
    # sharing is nearly flat in size: ten times the memory, well under twice the fork time
    assert fork_s[40 << 20] < 2 * fork_s[4 << 20]


# --- dirty bits of shared file mappings: each mm's own, as without sharing -------------------------
def _dirty_unshare(ctx, fd, base):
    """The parent dirties a page, forks, dirties another in the same PTE page (it unshares), syncs."""
    yield write(base, 1)
    pid = yield fork(_dirty_sleeper, fd, base, False)
    yield write(base + PAGE_SIZE, 2)
    yield usr.msync(base, 8 * PAGE_SIZE, usr.MS_SYNC)
    yield wait(pid)


def _dirty_exit_first(ctx, fd, base):
    """The parent dirties a page, forks and exits while the child still shares the table; the child
    then fsyncs: the parent's exit must have marked the page dirty, as its zap would have."""
    yield write(base, 1)
    yield fork(_dirty_sleeper, fd, base, True)
    yield exit(0)


def _dirty_whole_page(ctx, fd, base):
    """A writable shared file mapping covering whole PTE pages: the child's msync writes back only
    what the child dirtied."""
    yield write(base, 1)
    pid = yield fork(_dirty_sleeper, fd, base + PAGE_SIZE, False, True)
    yield wait(pid)


def _dirty_sleeper(ctx, fd, addr, sync, write_then_msync=False):
    yield usr.sleep(1000)
    if write_then_msync:
        yield write(addr, 3)
        yield usr.msync(addr & ~(4 * MiB - 1), 4 * MiB, usr.MS_SYNC)
    if sync:
        yield usr.fsync(fd)
    yield exit(0)


def _dirty_setup(ctx, body):
    fd = yield usr.open("/d", usr.O_RDWR | usr.O_CREAT)
    yield usr.ftruncate(fd, 4 * MiB)
    base = yield mmap(0x2000_0000, 4 * MiB, RW, MAP_SHARED | MAP_FIXED, fd, 0)  # one whole PTE page
    yield from body(ctx, fd, base)


@pytest.mark.parametrize("body", [_dirty_unshare, _dirty_exit_first, _dirty_whole_page])
def test_shared_tables_keep_each_mms_dirty_bits(body):
    runs = []
    for policies in ((), ("pt_shared",)):
        m = machine(policies)
        r = m.run(_dirty_setup, body)
        runs.append((r, m.fs.dev.blocks, m.fs.dev.sectors, sorted(m.fs.inodes["/d"].mapping.dirty)))
    assert not compare_results(runs[0][0], runs[1][0]).differences
    assert runs[0][1:] == runs[1][1:]
    assert runs[0][2][1] > 0  # something was written back


def test_a_stack_grown_in_one_sharer_is_not_seen_by_the_other():
    """expand_stack changes a VMA under a shared table: the policy must hear of it (as for mmap),
    or a page the parent faults in below its stack is present for the child, whose stack never
    grew there (its mprotect would then fail where mainline's succeeds)."""
    top = 0xC000_0000

    def child(ctx):
        yield usr.sleep(1000)
        v = yield read(top - 40 * PAGE_SIZE)  # grows the child's own stack (a fault), or not
        yield exit(v + 10 * ((yield mprotect(top - 40 * PAGE_SIZE, PAGE_SIZE, PROT_READ)) == 0))

    def img(ctx):
        pid = yield fork(child)
        yield read(top - 40 * PAGE_SIZE)  # the parent's stack grows
        yield wait(pid)

    def prog(ctx):
        yield usr.execve(img)

    runs = [machine(p).run(prog) for p in ((), ("pt_shared",))]
    assert not compare_results(*runs).differences
    assert runs[0].tasks["1.1"].status >> 8 == 10


def test_sga_oops_ends_the_measurement_not_the_scenario(isolated):
    """2.5.49 oopsed on a failed atomic pte_chain_alloc (mm/rmap.c page_add_rmap): in ``sga`` that
    is the first failure, so the measurement stops there with the children that fitted, and the
    scenario goes on to its next column and policy (the full run's mainline hit it with HIGHPTE)."""
    from mmframe.scenario import run_scenario
    (isolated / "run.toml").write_text('[machine]\nfail_nth = 3\nfail_match = "pte_chain_alloc"\n'
                                       '[scenario]\nname = "sga"\npolicies = [[], ["pt_shared"]]\n'
                                       'memory = "16MiB"\nsize = "1MiB"\nchildren = 12\nforms = ["fork"]\n')
    scen, (plain, shared) = run_scenario(load_config(isolated / "run.toml", env={}))
    for tag in ("no HIGHPTE", "HIGHPTE"):
        assert plain.figures[f"children {tag}"] < 12  # stopped by the oops, with its figures
        assert plain.figures[f"page tables {tag}"] > 0 and plain.figures[f"pte_chains {tag}"] > 0
    assert "children HIGHPTE" in shared.figures  # the next policy ran (it meets the injected failure too)


# --- the declared scope (contract 1.15) is a promise: the same run as with every call ---------------

def _scope_program(ctx):
    from mmframe.usr import MAP_FIXED, O_CREAT, O_RDWR, ftruncate, msync, open as sopen
    n = 12 << 20
    a = yield mmap(0, n, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(a, n // 2, True)
    yield touch(a + n // 2, n // 4, False)
    s = yield mmap(0, 8 << 20, RW, MAP_SHARED | MAP_ANONYMOUS)
    yield touch(s, 8 << 20, True)
    fd = yield sopen("/f", O_RDWR | O_CREAT)
    yield ftruncate(fd, 4 << 20)
    f = yield mmap(0x2000_0000, 4 << 20, RW, MAP_SHARED | MAP_FIXED, fd, 0)
    yield touch(f, 2 << 20, True)

    def child(ctx):
        fd2 = yield sopen("/f", O_RDWR)
        yield munmap(0x2000_0000, 4 << 20)
        g = yield mmap(0x2000_0000, 4 << 20, RW, MAP_SHARED | MAP_FIXED, fd2, 0)
        yield touch(g, 4 << 20, False)  # attach sharing takes the parent's table
        yield write(g + 8192, 9)
        yield touch(a, n, False)
        yield write(a + 4096, 7)
        yield exit((yield read(a)))

    pid = yield fork(child)
    yield write(a, 3)
    yield touch(s, 8 << 20, True)
    yield wait(pid)
    yield mprotect(a, 4 << 20, PROT_READ)
    yield munmap(a + (4 << 20), 4 << 20)
    yield msync(f, 4 << 20)
    yield exit(0)


@pytest.mark.parametrize("opts", [{"attach_2002": False}, {}, {"attach_2005": True}],
                         ids=["relatives", "attach_2002", "attach_2005"])
def test_the_hook_scope_changes_nothing_but_which_calls_are_made(monkeypatch, opts):
    """pt_shared's HookScope (contract 1.15) against its hooks called on every fault and every
    pte_change (the single path, where that is every fault): the same counts, state and results."""
    monkeypatch.setattr(pgtable, "BULK_MIN", 10**9)
    runs = []
    for scoped in (True, False):
        cfg = load_config(use_pyproject=False, env={}, cli_plugins=["pt_shared"])
        cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=128 * MiB, debug_vm="exit"),
                           plugin_options={**cfg.plugin_options, "pt_shared": {
                               **cfg.plugin_options.get("pt_shared", {}), **opts}})
        m = Machine(cfg)
        if not scoped:
            m.mm.scope_hooks({})
            assert m.mm._fault_scope is None and m.mm._pte_scope == m.mm._pte_any == -1
        r = m.run(_scope_program)
        runs.append((r.tasks, dict(r.counts), r.sim_ns, m.meminfo(), m.close()))
    assert runs[0] == runs[1]
