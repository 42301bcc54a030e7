"""Page reservations (issue 21): the core's reservation sites, fault injection, the oops and the
-ENOMEM of 2.5.49, and the ``reserve`` plugin's per-CPU pools (docs/reserve.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from support import examples

from mmframe.config import load_config
from mmframe.errors import ConfigError, SimOops
from mmframe.facade import ReserveError, release_local_pages, reserve_local_pages
from mmframe.machine import Machine
from mmframe.mm import fault_inject
from mmframe.mm.page import GFP_ATOMIC, GFP_KERNEL, __GFP_RESERVE
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, O_CREAT, O_RDWR, PROT_READ, PROT_WRITE, exit, fork, mmap,
                         open, pread, pwrite, touch, wait)

MiB = 1 << 20
P = 4096
BASE = 0x10000000


def machine(plugins=(), **mc):
    cfg = load_config(env={}, cli_plugins=list(plugins), use_pyproject=False)
    import attrs
    mc = {"memory": 64 * MiB, "debug_vm": "exit", **mc}
    m = Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, **mc)))
    return m


def anon_fork(ctx):
    """Touch 64 anonymous pages and fork: the child's mappings make every page a pte_chain page."""
    a = yield mmap(BASE, 64 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(a, 64 * P, True)
    pid = yield fork(child)
    yield wait(pid)
    return 0


def child(ctx):
    yield exit(0)


def file_io(ctx):
    buf = yield mmap(BASE, 8 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(buf, 8 * P, True)
    fd = yield open("/f", O_CREAT | O_RDWR)
    w = yield pwrite(fd, buf, 8 * P, 0)
    r = yield pread(fd, buf, 8 * P, 0)
    return (w, r)


def fill_radix_slab(m):
    """Leave the radix-node mempool empty and the node slab's last page full, so the next node
    needs a fresh slab page from the allocator (the path 2.5.49's mempool rarely reached)."""
    pool = m.mm.radix_pool
    c = pool.cache
    pool.curr_nr = 0
    c.alloc(GFP_KERNEL, (-c.objects) % c.per_slab)


def result_of(res):
    return res.tasks["1"].calls[-1][1] if res.tasks["1"].calls else None


# --- without the plugin: 2.5.49's outcomes at each site ------------------------------------------

def test_pte_chain_failure_is_the_oops(isolated):
    m = machine(fail_nth=1, fail_match="pte_chain_alloc")
    with pytest.raises(SimOops, match="pte_chain_alloc") as e:
        m.run(anon_fork)
    res = e.value.result
    assert res.oops is not None and "pte_chain_alloc" in res.oops
    fi = m.pagealloc.fault_inject
    assert fi.injected == 1 and fi.seen == 1  # the first pte_chain page: the run ended there
    assert fi.log[0][2] == "pte_chain_alloc"
    assert ("oops", "pte_chain_alloc") in [e[:2] for e in m.pagealloc.events]


def test_nth_atomic_hits_the_pte_chain(isolated):
    m = machine(fail_nth=1)  # the default match: atomic allocations; here the first is a pte_chain's slab page
    with pytest.raises(SimOops, match="pte_chain_alloc") as e:
        m.run(anon_fork)
    res = e.value.result
    assert res.oops is not None and "pte_chain_alloc" in res.oops


def test_radix_insert_failure_is_enomem(isolated):
    m = machine(fail_nth=1, fail_match="radix_tree_insert")
    fill_radix_slab(m)
    res = m.run(file_io)
    assert res.oops is None
    calls = dict(res.tasks["1"].calls)
    assert calls["pwrite"] == -12 and calls["pread"] == 0  # the first page's insert: nothing written
    assert m.mm.radix_pool.failures == 1


def test_pte_alloc_failure_is_the_oom_kill(isolated):
    m = machine(fail_nth=1, fail_match="pte_alloc_map")
    res = m.run(anon_fork)
    assert res.oops is None
    assert "SIGKILL" in repr(res.tasks["1"].signal)  # VM_FAULT_OOM: SIGKILL, as 2.5.49's fault path
    assert m.pagealloc.fault_inject.log[0][2] == "pte_alloc_map"


def test_no_injection_no_failure(isolated):
    for prog in (anon_fork, file_io):
        m = machine()
        res = m.run(prog)
        assert res.oops is None and m.pagealloc.fault_inject is None
        assert m.pagealloc.alloc_pages == m.pagealloc._alloc_pages  # zero cost: nothing shadowed


# --- with the plugin: every __GFP_RESERVE allocation succeeds -----------------------------------

@pytest.mark.parametrize("site,prog", [("pte_chain_alloc", anon_fork), ("pte_alloc_map", anon_fork),
                                       ("radix_tree_insert", file_io)])
def test_plugin_survives_injection_at_each_site(isolated, site, prog):
    base = machine()
    want = base.run(prog)
    bare = machine(fail_nth=1, fail_match=site)  # the same injection without the plugin fails there
    if site == "radix_tree_insert":
        fill_radix_slab(bare)
    try:
        failed = bare.run(prog)
    except SimOops as oops:  # the pte_chain site: 2.5.49's oops ends the run
        failed = oops.result
    assert bare.pagealloc.fault_inject.log[0][2] == site
    assert failed.oops is not None or failed.tasks["1"].signal is not None or \
        -12 in [v for _, v in failed.tasks["1"].calls]
    m = machine(["reserve"], fail_nth=1, fail_match=site)
    if site == "radix_tree_insert":
        fill_radix_slab(m)
    res = m.run(prog)
    pools = m.plugin_state["reserve"]["pools"]
    assert res.oops is None and res.tasks["1"].signal is None
    assert [c for t in res.tasks.values() for c in t.calls] == [c for t in want.tasks.values() for c in t.calls]
    assert pools.taken > 0 and pools.missed == 0 and pools.failed == 0
    assert m.pagealloc.fault_inject.injected == 0  # pool pages never reach the allocator
    assert pools.held() == 0


def test_nth_atomic_with_plugin(isolated):
    m = machine(["reserve"], fail_nth=1)
    res = m.run(anon_fork)
    assert res.oops is None


# --- the pools ------------------------------------------------------------------------------------

def drain_free_lists(m):
    """Take every free page (an atomic allocation may dip below the watermarks; memalloc ignores them)."""
    pa, got = m.pagealloc, []
    while True:
        pfn = pa._alloc_pages(GFP_KERNEL, 0, 0, True)
        if pfn < 0:
            return got
        got.append(pfn)


def test_reserved_allocation_succeeds_with_free_lists_empty(isolated):
    m = machine(["reserve"])
    assert reserve_local_pages(m, GFP_KERNEL, 3, "test") == 0
    hog = drain_free_lists(m)
    assert m.pagealloc.nr_free_pages() == 0 and m.alloc_pages(GFP_ATOMIC, 0) == -1
    got = [m.alloc_pages(GFP_ATOMIC | __GFP_RESERVE, 0) for _ in range(3)]
    assert all(p >= 0 for p in got) and len(set(got)) == 3
    assert m.alloc_pages(GFP_ATOMIC | __GFP_RESERVE, 0) == -1  # the reservation is used up
    for p in got + hog:
        m.free_pages(p, 0)
    release_local_pages(m, GFP_KERNEL, 3, "test")


def test_pools_give_every_page_back(isolated):
    m = machine(["reserve"])
    pa = m.pagealloc
    pa.drain_pages()
    free0 = pa.nr_free_pages()
    assert reserve_local_pages(m, GFP_KERNEL, 5, "outer") == 0
    assert reserve_local_pages(m, GFP_KERNEL, 2, "inner") == 0  # A2: reservations nest
    pools = m.plugin_state["reserve"]["pools"]
    assert len(pools.pool[0]) == 7 and pools.reserved[0] == 7
    pools.check()
    pa.check()
    p = m.alloc_pages(GFP_ATOMIC | __GFP_RESERVE, 0)
    release_local_pages(m, GFP_KERNEL, 2, "inner")
    assert len(pools.pool[0]) == 5 and pools.reserved[0] == 5
    release_local_pages(m, GFP_KERNEL, 5, "outer")
    assert pools.held() == 0
    m.free_pages(p, 0)
    pa.drain_pages()
    assert pa.nr_free_pages() == free0  # conservation
    pa.check()


def test_pools_are_per_cpu(isolated):
    m = machine(["reserve"], cpus=2)
    pools = m.plugin_state["reserve"]["pools"]
    assert pools.reserve_local_pages(0, GFP_KERNEL, 2, "cpu0") == 0
    assert m.pagealloc.alloc_pages is not None
    on1 = m._alloc_hook(m.pagealloc, GFP_ATOMIC | __GFP_RESERVE, 0, 1)  # CPU 1 has no reservation
    assert on1 >= 0 and on1 not in [q for q, _ in pools.pool[0]] and len(pools.pool[0]) == 2 and pools.missed == 1
    on0 = m._alloc_hook(m.pagealloc, GFP_ATOMIC | __GFP_RESERVE, 0, 0)
    assert len(pools.pool[0]) == 1 and on0 >= 0
    plain = m._alloc_hook(m.pagealloc, GFP_ATOMIC, 0, 0)  # no __GFP_RESERVE: never from the pool
    assert len(pools.pool[0]) == 1 and plain >= 0
    with pytest.raises(ReserveError, match="cpu1"):
        pools.release_local_pages(1, GFP_KERNEL, 1, "cpu1")


def test_misuse_names_the_caller(isolated):
    m = machine(["reserve"])
    assert reserve_local_pages(m, GFP_KERNEL, 1, "do_anonymous_page") == 0
    with pytest.raises(ReserveError, match="copy_page_range.*release_local_pages\\(2\\)"):
        release_local_pages(m, GFP_KERNEL, 2, "copy_page_range")
    plain = machine()
    with pytest.raises(ReserveError, match="my_driver.*enable the 'reserve' plugin"):
        reserve_local_pages(plain, GFP_KERNEL, 1, "my_driver")


def test_failed_reservation_returns_enomem_and_keeps_nothing(isolated):
    m = machine(["reserve"])
    pa = m.pagealloc
    free = lambda: pa.nr_free_pages() + sum(z.pcp_pages() for z in pa.zones)  # noqa: E731
    before = free()
    fault_inject.install(pa, nth=3, match="any")  # the reservation gets two pages, then fails
    assert reserve_local_pages(m, GFP_KERNEL, 4, "t") == -12  # A1
    pools = m.plugin_state["reserve"]["pools"]
    assert pools.held() == 0 and pools.failed == 1 and pools.reserved[0] == 0
    assert free() == before and pa.fault_inject.seen == 3
    pa.check()


def test_pool_never_hands_a_page_out_twice(isolated):
    m = machine(["reserve"])
    assert reserve_local_pages(m, GFP_KERNEL, 4, "t") == 0
    got = [m.alloc_pages(GFP_ATOMIC | __GFP_RESERVE, 0) for _ in range(4)]
    assert len(set(got)) == 4
    pools = m.plugin_state["reserve"]["pools"]
    assert not set(got) & {q for q, _ in pools.pool[0]}
    for p in got:
        m.free_pages(p, 0)
    release_local_pages(m, GFP_KERNEL, 4, "t")
    m.pagealloc.check()


# --- configuration --------------------------------------------------------------------------------

def test_fault_inject_config_errors(isolated, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[machine]\nfail_match = "sometimes"\n')
    with pytest.raises(ConfigError) as e:
        load_config(bad, env={}, use_pyproject=False)
    text = str(e.value)
    assert "bad.toml" in text and "fail_match" in text and "pte_chain_alloc" in text
    bad.write_text('[machine]\nfail_nth = -1\n')
    with pytest.raises(ConfigError, match="fail_nth"):
        load_config(bad, env={}, use_pyproject=False)


def test_fault_inject_cli_exit_2(isolated, tmp_path, capsys):
    from mmframe.cli import main
    bad = tmp_path / "bad.toml"
    bad.write_text('[machine]\nfail_below_free = "lots"\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "fail_below_free" in err and "Traceback" not in err
    cfg = tmp_path / "ok.toml"
    cfg.write_text('[machine]\nfail_nth = 3\nfail_match = "any"\nfail_below_free = 10\n')
    c = load_config(cfg, env={}, use_pyproject=False)
    assert (c.machine.fail_nth, c.machine.fail_match, c.machine.fail_below_free) == (3, "any", 10)


def test_below_free_fails_everything(isolated):
    m = machine()
    fi = fault_inject.install(m.pagealloc, below_free=m.pagealloc.nr_free_pages() + 1)
    assert m.alloc_pages(GFP_KERNEL, 0) == -1 and fi.injected == 1


POOL_OPS = st.lists(st.tuples(st.sampled_from(["reserve", "release", "alloc_r", "alloc", "free"]),
                              st.integers(0, 1), st.integers(0, 4), st.integers(0, 10**6)), max_size=60)


@settings(max_examples=examples(40), deadline=None)
@given(POOL_OPS)
def test_generated_reservation_sequences(ops):
    """Any sequence of reservations, releases, reserved and plain allocations and frees on two
    CPUs: a reserved allocation succeeds while its CPU's reservation is not used up, no page is
    ever handed out twice, pools never exceed what is reserved, and every page comes back."""
    m = machine(["reserve"], cpus=2)
    pa = m.pagealloc
    pools = m.plugin_state["reserve"]["pools"]
    pa.drain_pages()
    total = pa.nr_free_pages()
    live: list[int] = []
    for op, cpu, n, pick in ops:
        if op == "reserve":
            assert pools.reserve_local_pages(cpu, GFP_KERNEL, n, "gen") == 0
        elif op == "release":
            n = min(n, pools.reserved[cpu])
            pools.release_local_pages(cpu, GFP_KERNEL, n, "gen")
        elif op in ("alloc_r", "alloc"):
            had = len(pools.pool[cpu])
            gfp = GFP_ATOMIC | (__GFP_RESERVE if op == "alloc_r" else 0)
            p = m._alloc_hook(pa, gfp, 0, cpu)
            if op == "alloc_r" and had:
                assert p >= 0 and len(pools.pool[cpu]) == had - 1
            else:
                assert len(pools.pool[cpu]) == had
            if p >= 0:
                assert p not in live and all(p not in [q for q, _ in pool] for pool in pools.pool)
                live.append(p)
        elif op == "free" and live:
            m._free_hook(pa, live.pop(pick % len(live)), 0, cpu)
        pools.check()
        pa.check()
    for cpu in (0, 1):
        pools.release_local_pages(cpu, GFP_KERNEL, pools.reserved[cpu], "gen")
    for p in live:
        m.free_pages(p, 0)
    assert pools.held() == 0
    pa.drain_pages()
    pa.check()
    assert pa.nr_free_pages() == total


def test_highmem_reservations_serve_only_highmem_requests(isolated):
    """A3: a page reserved with __GFP_HIGHMEM never goes to a request that needs lowmem."""
    from mmframe.mm.page import __GFP_HIGHMEM
    m = machine(["reserve"], memory=1 << 30)
    pools = m.plugin_state["reserve"]["pools"]
    assert pools.reserve_local_pages(0, GFP_KERNEL | __GFP_HIGHMEM, 1, "t") == 0
    assert m._alloc_hook(m.pagealloc, GFP_ATOMIC | __GFP_RESERVE, 0, 0) >= 0 and pools.missed == 1
    assert pools.held() == 1
    high = m._alloc_hook(m.pagealloc, GFP_ATOMIC | __GFP_RESERVE | __GFP_HIGHMEM, 0, 0)
    assert pools.held() == 0 and pools.taken == 1 and high >= m.pagealloc.first_high_pfn
