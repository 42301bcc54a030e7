"""The spine: deterministic schedule, fork replay, wait/exit, signals, timers, TLB accounting,
the differential runner and the run manifest."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support import active_policies, examples
from mmframe.config import load_config
from mmframe.costs import CostTable
from mmframe.differential import compare_results, differential
from mmframe.machine import Machine
from mmframe.sched import ProgramError
from mmframe.usr import (ECHILD, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE,
                         SEGV_ACCERR, SEGV_MAPERR, SIGSEGV, WEXITSTATUS, WIFEXITED, WIFSIGNALED, WTERMSIG,
                         SimSignal, clone, execve, exit, fork, getpid, mmap, mprotect, munmap, read,
                         sched_yield, sleep, wait, write)

RW = PROT_READ | PROT_WRITE
ANON_SHARED = MAP_SHARED | MAP_ANONYMOUS
ANON_PRIVATE = MAP_PRIVATE | MAP_ANONYMOUS


def scaled_costs(tmp_path, factor, name):
    """A cost file with every default entry's ns multiplied by ``factor``."""
    lines = []
    for e in CostTable.default().entries:
        lines += [f"[entries.{e.name}]", f"ns = {e.ns * factor + 1}", 'kind = "estimate"',
                  f'source = "test: default x {factor}"']
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture
def two_tables(isolated, tmp_path):
    """Two configs identical but for a cost table differing by a factor of 10^6."""
    cfgs = []
    for factor, name in ((0.001, "cheap.toml"), (1000.0, "dear.toml")):
        costs = scaled_costs(tmp_path, factor, name)
        (tmp_path / f"cfg-{name}").write_text(f'[machine]\ncpus = 3\ncosts = "{costs}"\n')
        cfgs.append(load_config(tmp_path / f"cfg-{name}", env={}))
    return cfgs


def machine(cpus=2, **kw):
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(active_policies()))
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, cpus=cpus, **kw)))


# --- programs -------------------------------------------------------------------------------

def sharing_program(ctx, children, rounds):
    """Forked children and threads hammer one shared mapping and private copies, no timers."""
    shared = yield mmap(0, 8 * PAGE_SIZE, RW, ANON_SHARED)
    private = yield mmap(0, 4 * PAGE_SIZE, RW, ANON_PRIVATE)
    yield write(private, 7)
    for c in range(children):
        pid = yield fork()
        if pid == 0:
            for r in range(rounds):
                slot = shared + ctx.rng.randrange(8) * PAGE_SIZE
                v = yield read(slot)
                yield write(slot, v + c + 1)
                yield write(private, (yield read(private)) + 1)
            yield exit((yield read(private)) & 0xFF)
    yield clone(thread_body, shared, rounds)
    for _ in range(children + 1):
        yield wait()
    total = 0
    for i in range(8):
        total += yield read(shared + i * PAGE_SIZE)
    yield exit(total & 0xFF)


def thread_body(ctx, shared, rounds):
    for _ in range(rounds):
        v = yield read(shared)
        yield write(shared, v * 3 + 1)
        yield sched_yield()


def timer_program(ctx, children):
    """Children sleep random times and publish into their own slot; the parent waits for each by
    pid in order, so the outcome does not depend on which wakes first."""
    shared = yield mmap(0, PAGE_SIZE * children, RW, ANON_SHARED)
    pids = []
    for c in range(children):
        pid = yield fork()
        if pid == 0:
            for k in range(3):
                yield sleep(ctx.rng.randrange(1, 2_000_000))
                yield write(shared + c * PAGE_SIZE, (yield read(shared + c * PAGE_SIZE)) + k + c)
            yield exit(c)
        pids.append(pid)
    for pid in pids:
        yield wait(pid)
    for c in range(children):
        yield read(shared + c * PAGE_SIZE)


# --- determinism ----------------------------------------------------------------------------

def test_same_results_and_interleaving_under_wildly_different_costs(two_tables):
    a, b = (Machine(c).run(sharing_program, 5, 20, trace=True) for c in two_tables)
    assert compare_results(a, b).same
    assert a.interleaving == b.interleaving and len(a.interleaving) > 300
    assert b.sim_ns > 1000 * a.sim_ns  # the costs really differed
    assert a.tasks["1"].status is not None and len(a.tasks) == 7


def test_same_seed_same_run_different_seed_different_choices(isolated):
    runs = [Machine(load_config(env={})).run(sharing_program, 3, 10, trace=True) for _ in range(2)]
    assert runs[0].tasks == runs[1].tasks and runs[0].interleaving == runs[1].interleaving
    other = Machine(attrs.evolve(load_config(env={}), machine=attrs.evolve(load_config(env={}).machine, seed=9)))
    assert other.run(sharing_program, 3, 10).tasks != runs[0].tasks


def test_timers_same_results_even_when_wakeups_reorder(two_tables):
    a, b = (Machine(c).run(timer_program, 6, trace=True) for c in two_tables)
    cmp = compare_results(a, b)
    assert cmp.same, cmp.report()
    assert a.interleaving != b.interleaving  # wake-up order did change with the costs
    assert a.events == b.events == 18


# --- fork, replay, wait, exit, exec ---------------------------------------------------------

def test_fork_returns_in_both_with_parent_state(isolated):
    def prog(ctx):
        local = [ctx.rng.random()]
        base = yield mmap(0, PAGE_SIZE, RW, ANON_PRIVATE)
        yield write(base, 5)
        pid = yield fork()
        local.append(pid)
        if pid == 0:
            v = yield read(base)
            yield write(base, v + 100)
            yield exit(int(v) + len(local))
        got = yield wait(pid)
        yield exit(WEXITSTATUS(got[1]) + (yield read(base)))

    r = Machine(load_config(env={})).run(prog)
    child = r.tasks["1.1"]
    assert WEXITSTATUS(child.status) == 5 + 2  # child saw the parent's memory and local state
    assert WEXITSTATUS(r.tasks["1"].status) == 7 + 5  # the child's write was private
    assert r.tasks["1"].calls[2] == ("fork", "1.1")  # pids are reported as lineages


def test_fork_child_function(isolated):
    def child(ctx, x):
        yield exit(x)

    def prog(ctx):
        pid = yield fork(child, 9)
        pid2, status = yield wait()
        yield exit(WEXITSTATUS(status) + (pid == pid2))

    assert WEXITSTATUS(Machine(load_config(env={})).run(prog).tasks["1"].status) == 10


def test_nondeterministic_program_is_reported(isolated):
    state = {"n": 0}

    def prog(ctx):
        state["n"] += 1
        if state["n"] > 1:
            yield getpid()
        yield fork()

    with pytest.raises(ProgramError, match="not deterministic"):
        Machine(load_config(env={})).run(prog)


def test_program_bugs_are_program_errors(isolated):
    def raises(ctx):
        yield getpid()
        raise KeyError("bug")

    def yields_junk(ctx):
        yield 42

    def not_a_generator(ctx):
        return 1

    for prog, match in ((raises, "raised KeyError"), (yields_junk, "not a system call"),
                        (not_a_generator, "not a generator")):
        with pytest.raises(ProgramError, match=match):
            Machine(load_config(env={})).run(prog)


def test_wait_semantics(isolated):
    def prog(ctx):
        assert (yield wait()) == -ECHILD
        a = yield fork(exiter, 3)
        b = yield fork(exiter, 4)
        assert (yield wait(b)) == (b, 4 << 8)
        assert (yield wait(a)) == (a, 3 << 8)
        assert (yield wait()) == -ECHILD
        orphaner = yield fork(make_orphan)
        yield wait(orphaner)

    def exiter(ctx, code):
        yield sleep(1000 * code)
        yield exit(code)

    def make_orphan(ctx):
        yield fork(exiter, 1)  # exits before its child: the child is reaped by "init"

    r = Machine(load_config(env={})).run(prog)
    assert r.blocked == () and WIFEXITED(r.tasks["1"].status)
    assert all(t.status is not None for t in r.tasks.values())


def test_execve_replaces_program_and_address_space(isolated):
    def new_image(ctx, base):
        try:
            yield read(base)
        except SimSignal as sig:  # the old mapping is gone
            yield exit(40 + sig.code)

    def prog(ctx):
        base = yield mmap(0, PAGE_SIZE, RW, ANON_PRIVATE)
        yield write(base, 1)
        yield execve(new_image, base)
        yield exit(99)  # never reached

    r = Machine(load_config(env={})).run(prog)
    assert WEXITSTATUS(r.tasks["1"].status) == 40 + SEGV_MAPERR


# --- signals --------------------------------------------------------------------------------

def test_signals_reach_only_the_faulting_task(isolated):
    def prog(ctx):
        ro = yield mmap(0, PAGE_SIZE, PROT_READ, ANON_PRIVATE)
        shared = yield mmap(0, PAGE_SIZE, RW, ANON_SHARED)
        bad = yield fork(segv_child, 0x1000)
        acc = yield fork(segv_child, ro, True)
        ok = yield fork(good_child, shared)
        catcher = yield fork(catching_child, 0x2000)
        results = {}
        for pid in (bad, acc, ok, catcher):
            results[pid] = (yield wait(pid))[1]
        yield exit(0)

    def segv_child(ctx, addr, write_it=False):
        if write_it:
            yield write(addr, 1)
        else:
            yield read(addr)
        yield exit(0)

    def good_child(ctx, shared):
        yield write(shared, 5)
        yield exit(1)

    def catching_child(ctx, addr):
        try:
            yield read(addr)
        except SimSignal as sig:
            yield exit(sig.code)

    r = Machine(load_config(env={})).run(prog)
    t = r.tasks
    assert WIFSIGNALED(t["1.1"].status) and WTERMSIG(t["1.1"].status) == SIGSEGV
    assert t["1.1"].signal == SimSignal(SIGSEGV, SEGV_MAPERR, 0x1000)
    assert t["1.2"].signal.code == SEGV_ACCERR
    assert t["1.3"].signal is None and WEXITSTATUS(t["1.3"].status) == 1
    assert t["1.4"].signal is None and WEXITSTATUS(t["1.4"].status) == SEGV_MAPERR
    assert ("read", SimSignal(SIGSEGV, SEGV_MAPERR, 0x2000)) in t["1.4"].calls
    assert t["1"].signal is None and WEXITSTATUS(t["1"].status) == 0


# --- CPUs and TLBs --------------------------------------------------------------------------

def test_tlb_shootdown_for_threads_of_one_mm_on_several_cpus(isolated):
    def spin(ctx, n):
        for _ in range(n):
            yield getpid()

    def prog(ctx):
        base = yield mmap(0, 4 * PAGE_SIZE, RW, ANON_PRIVATE)
        yield clone(spin, 500)
        yield clone(spin, 500)
        for _ in range(20):  # let both threads get onto their CPUs
            yield sched_yield()
        yield munmap(base, PAGE_SIZE)  # flush_tlb_range: local flush + an IPI per other CPU of the mm
        yield mprotect(base + PAGE_SIZE, PAGE_SIZE, PROT_READ)  # change_protection flushes...
        yield mprotect(base + PAGE_SIZE, PAGE_SIZE, RW)  # ...upgrade or not (2.5.49)
        yield mprotect(base + PAGE_SIZE, PAGE_SIZE, RW)  # mprotect_fixup: unchanged, no flush
        yield wait()
        yield wait()

    m = machine(cpus=3)
    r = m.run(prog)
    assert [c.nr_tasks for c in m.cpus] == [0, 0, 0]
    assert r.tlb["flush_tlb_range"] == 3 and r.tlb["flush_tlb_mm"] == 1  # exit_mmap's
    # two IPIs per range flush; exit_mmap's flush finds the threads' CPUs idle, lazily holding the mm
    assert r.tlb["ipi"] == 8 and r.tlb["leave_mm"] == 2
    assert [c.ipis_received for c in m.cpus] == [0, 4, 4]
    assert r.counts["ipi_flush"] == 8
    assert r.tlb["switch_mm"] == 3  # each CPU loads the mm once; threads share it, no reloads


def test_lazy_tlb_cpu_leaves_mm_on_ipi(isolated):
    def prog(ctx):
        base = yield mmap(0, PAGE_SIZE, RW, ANON_PRIVATE)
        yield clone(quick)
        for _ in range(10):
            yield sched_yield()  # the thread has exited; its CPU keeps the mm loaded lazily
        yield munmap(base, PAGE_SIZE)
        yield munmap(base, PAGE_SIZE)  # nothing mapped: no flush
        yield wait()

    def quick(ctx):
        yield getpid()

    m = machine(cpus=2)
    r = m.run(prog)
    assert r.tlb["ipi"] == 1 and r.tlb["leave_mm"] == 1 and r.tlb["flush_tlb_range"] == 1


def test_threads_on_one_cpu_send_no_ipi(isolated):
    def prog(ctx):
        base = yield mmap(0, PAGE_SIZE, RW, ANON_PRIVATE)
        yield clone(quick)
        yield sched_yield()
        yield munmap(base, PAGE_SIZE)
        yield wait()

    def quick(ctx):
        yield getpid()

    r = machine(cpus=1).run(prog)
    assert r.tlb["ipi"] == 0 and r.tlb["flush_tlb_range"] == 1 and r.context_switches >= 2


def test_costs_are_counted_per_task(isolated):
    def prog(ctx):
        yield fork(kid)
        yield wait()

    def kid(ctx):
        for _ in range(9):
            yield getpid()

    m = Machine(load_config(env={}))
    r = m.run(prog)
    assert m.acct.totals(task="1.1")["syscall"] == 9 and m.acct.totals(task="1")["syscall"] == 2
    assert r.counts["syscall"] == r.syscalls == 11
    # simulated time is counts times the table: one CPU ran everything in sequence or in parallel
    assert r.sim_ns >= 9 * m.costs["syscall"].ns


# --- differential runner --------------------------------------------------------------------

CORRUPTING = """
from mmframe.hookspecs import hookimpl

@hookimpl
def mmframe_configure(machine):
    original = machine.sched.handlers["read"]
    machine.sched.handlers["read"] = lambda task, addr: original(task, addr) + (addr >> 12 == 0x40005)
"""


def test_differential_runner_reports_a_planted_difference(isolated, install_plugin):
    install_plugin("corrupt", CORRUPTING)
    base = load_config(env={})
    cmp = differential(sharing_program, (3, 10), base, base.with_policies(["corrupt"]))
    assert not cmp.same
    assert any(d.what.startswith("call") for d in cmp.differences), cmp.report()
    assert "task 1" in cmp.report()
    assert differential(sharing_program, (3, 10), base, base).same


def test_manifest_names_everything_needed_to_reproduce(isolated, install_plugin):
    install_plugin("corrupt", CORRUPTING)
    m = Machine(load_config(env={}, cli_plugins=["corrupt"]))
    man = m.manifest()
    assert man["seed"] == 0 and man["plugins"]["corrupt"]["version"] == "1.0"
    assert man["cost_table"]["digest"] == m.costs.digest() and len(man["cost_table"]["digest"]) == 16
    assert man["machine"]["cpus"] == 2 and man["config_sources"] == ["<embedded default>"]


# --- generated programs ---------------------------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["fork", "write", "read", "sleep", "yield", "clone", "munmap",
                                          "mprotect", "bad", "exit"]),
                         st.integers(0, 7), st.integers(0, 1000)), max_size=30).filter(
    lambda ops: sum(op == "fork" for op, _, _ in ops) <= 6)  # forks double the tasks: 64 at most


def generated(ctx, ops, timers):
    """Random operations.  With ``timers`` it sleeps, so it shares no memory (no shared mapping
    writes, no threads) and waits for children by pid: its outcome cannot depend on wake-up order."""
    base = yield mmap(0, 8 * PAGE_SIZE, RW, ANON_PRIVATE)
    shared = yield mmap(0, 8 * PAGE_SIZE, RW, ANON_SHARED)
    pids = []
    for op, i, v in ops:
        where = (base if i % 2 or timers else shared) + (i % 8) * PAGE_SIZE
        try:
            if op == "fork":
                pid = yield fork()
                pids = [] if pid == 0 else pids + [pid]
            elif op == "write":
                yield write(where, v)
            elif op == "read":
                yield read(where)
            elif op == "sleep" and timers:
                yield sleep(v * 1000)
            elif op == "yield":
                yield sched_yield()
            elif op == "clone" and not timers:
                pids.append((yield clone(thread_body, shared, 2)))
            elif op == "munmap":
                yield munmap(base + i * PAGE_SIZE, PAGE_SIZE)
            elif op == "mprotect":
                yield mprotect(base + i * PAGE_SIZE, PAGE_SIZE, PROT_READ if v % 2 else RW)
            elif op == "bad":
                yield read(0x100)
            elif op == "exit" and v % 3 == 0:
                yield exit(i)
        except SimSignal:
            yield getpid()
    for pid in pids:
        yield wait(pid)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS, st.booleans())
def test_generated_programs_give_the_same_results_under_both_tables(two_tables, ops, timers):
    a, b = (Machine(c).run(generated, ops, timers, trace=True) for c in two_tables)
    cmp = compare_results(a, b)
    assert cmp.same, cmp.report()
    assert a.blocked == ()
    if not timers:
        assert a.interleaving == b.interleaving


def test_events_fire_only_once_every_busy_cpu_has_passed_them(isolated):
    """The horizon: a timer due at t wakes its task only when no CPU with runnable work is behind t,
    so a woken task never runs 'in the past' of another CPU's pending work."""
    def napper(ctx):
        for _ in range(5):
            yield sleep(3000)
            yield getpid()

    def spinner(ctx, n):
        for _ in range(n):
            yield getpid()

    def prog(ctx):
        yield clone(napper)
        yield clone(spinner, 400)
        yield clone(spinner, 400)
        for _ in range(3):
            yield wait()

    m = machine(cpus=2)
    seen = []
    wake = m.sched.wake

    def checking_wake(task, result):
        busy = [c.clock for c in m.cpus if c.nr_running]
        seen.append((m.engine.now, min(busy) if busy else None))
        wake(task, result)

    m.sched.wake = checking_wake
    m.run(prog)
    timer_wakes = [(t, b) for t, b in seen if b is not None]
    assert len(timer_wakes) >= 3
    assert all(t <= b for t, b in timer_wakes), timer_wakes


def test_charge_counts_n_operations(isolated):
    m = machine()
    acct, P = m.acct, m.P
    acct.ns = 0.0
    acct.charge(P.invlpg, 7)
    assert acct.row[P.invlpg] == 7 and acct.ns == 7 * m.costs["invlpg"].ns
