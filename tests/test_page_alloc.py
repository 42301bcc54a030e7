"""Physical memory: conservation, zonelists, watermarks, __GFP_HIGH, hot/cold lists, OOM, meminfo."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings, strategies as st

from tests.support import active_policies, examples
from mmframe.config import load_config
from mmframe.errors import ConfigError
from mmframe.machine import Machine
from mmframe.mm.page import (DMA_END_PFN, GFP_ATOMIC, GFP_DMA, GFP_HIGHUSER, GFP_KERNEL, LOWMEM_END_PFN,
                             MAX_ORDER, PAGE_SIZE, ZONE_DMA, ZONE_HIGHMEM, ZONE_NORMAL, __GFP_COLD)

MiB = 1 << 20


def machine(memory="1GiB", **kw):
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(active_policies()))
    from mmframe.units import parse_size
    size = parse_size(memory)
    kw.setdefault("pae", size > 4 << 30)  # what pae = "auto" decides
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=size, **kw)))


def zone(m, idx):
    return m.pagealloc.zone_by_idx[idx]


def test_zones_and_watermarks_follow_2_5_49():
    m = machine("4GiB")
    dma, normal, high = (zone(m, i) for i in (ZONE_DMA, ZONE_NORMAL, ZONE_HIGHMEM))
    assert (dma.start_pfn, dma.end_pfn, normal.end_pfn, high.end_pfn) == (0, DMA_END_PFN, LOWMEM_END_PFN, 1 << 20)
    # clamp(zone_pages / 128, 20, 255); low = 2 min, high = 3 min (reference worked numbers)
    assert (dma.pages_min, dma.pages_low, dma.pages_high) == (32, 64, 96)
    assert (normal.pages_min, high.pages_min) == (255, 255)
    assert zone(machine("16MiB"), ZONE_DMA).pages_min == 32
    assert zone(machine("96MiB"), ZONE_NORMAL).pages_min == 20480 // 128
    m.pagealloc.check()


@pytest.mark.parametrize("order", range(MAX_ORDER))
def test_every_order_conserves_pages(order):
    m = machine("64MiB")
    pa = m.pagealloc
    pa.drain_pages()  # boot-time allocations (the radix-tree mempool) leave pages on per-CPU lists
    free0 = pa.nr_free_pages()
    got = [m.alloc_pages(GFP_KERNEL, order) for _ in range(3)]
    assert all(p >= 0 and p % (1 << order) == 0 for p in got)
    pa.check()
    for p in got:
        m.free_pages(p, order)
    pa.check()
    pa.drain_pages()
    pa.check()
    assert pa.nr_free_pages() == free0


def test_checker_catches_a_double_free_and_a_leak():
    m = machine("64MiB")
    pa = m.pagealloc
    p = m.alloc_pages(GFP_KERNEL, 2)
    pa.mem_map.count[p] = 0  # the page lost its reference without being freed: a leak
    with pytest.raises(AssertionError, match="leak"):
        pa.check()
    pa.mem_map.count[p] = 1
    m.free_pages(p, 2)
    z = zone(m, ZONE_NORMAL)
    z.free_area[0][p] = None  # free it again behind the allocator's back
    z.free_pages += 1
    with pytest.raises(AssertionError):
        pa.check()


@pytest.mark.parametrize("odd", [0, 1])
def test_a_zone_is_used_only_strictly_above_its_incremental_min(odd):
    # __alloc_pages (2.5.49): min = 1 << order, plus pages_min in pass 2; a zone is used only while
    # free_pages > min.  Order-1 requests from DMA (no per-CPU list) step free_pages by 2; one
    # order-0 page taken first flips the parity, so one of the two runs meets the boundary exactly.
    m = machine("64MiB")
    pa, dma = m.pagealloc, zone(m, ZONE_DMA)
    pa.drain_pages()
    held = [m.alloc_pages(GFP_DMA, 0) for _ in range(odd)]
    pa.drain_pages()  # the refill's batch goes back: the buddy lists lost exactly `odd` pages
    f0 = dma.free_pages
    got = []
    while (p := m.alloc_pages(GFP_DMA, 1)) >= 0:
        got.append(p)
    limit = dma.pages_min + 2  # used while free_pages > limit
    expect = f0 - 2 * max(0, -(-(f0 - limit) // 2))
    assert dma.free_pages == expect and expect <= limit < expect + 2
    assert held or not odd
    pa.check()


def test_expand_hands_out_the_upper_half_of_a_split_block():
    m = machine("64MiB")
    pa, z = m.pagealloc, zone(m, ZONE_NORMAL)
    pa.drain_pages()
    taken = [m.alloc_pages(GFP_KERNEL, 1) for _ in range(len(z.free_area[1]))]  # no order-1 block left
    assert taken and not z.free_area[1]
    before = {o: set(a) for o, a in enumerate(z.free_area)}
    p = m.alloc_pages(GFP_KERNEL, 1)
    split = [(o, b) for o, a in before.items() for b in a - set(z.free_area[o])]
    assert len(split) == 1
    order, head = split[0]
    assert order >= 1 and p == head + (1 << order) - 2  # the last two pages of the block taken
    base = head
    for o in range(order - 1, 0, -1):  # each lower half went back to the free list of its order
        assert base in z.free_area[o]
        base += 1 << o
    assert base == p
    pa.check()


def test_freeing_coalesces_back_to_the_boot_blocks():
    m = machine("64MiB")
    pa, z = m.pagealloc, zone(m, ZONE_NORMAL)
    pa.drain_pages()
    boot = [dict(a) for a in z.free_area]
    pages = [m.alloc_pages(GFP_KERNEL, 0) for _ in range(3000)]
    for p in reversed(pages):
        m.free_pages(p, 0)
    pa.drain_pages()
    assert [set(a) for a in z.free_area] == [set(a) for a in boot]
    pa.check()


def test_gfp_kernel_never_gets_highmem_highuser_prefers_it():
    m = machine("2GiB")
    assert all(m.alloc_pages(GFP_KERNEL) < LOWMEM_END_PFN for _ in range(2000))
    assert all(m.alloc_pages(GFP_HIGHUSER) >= LOWMEM_END_PFN for _ in range(2000))
    assert all(m.alloc_pages(GFP_DMA) < DMA_END_PFN for _ in range(100))


def test_lowmem_only_machine_serves_highuser_from_normal():
    m = machine("512MiB")
    assert ZONE_HIGHMEM not in m.pagealloc.zone_by_idx
    assert DMA_END_PFN <= m.alloc_pages(GFP_HIGHUSER) < LOWMEM_END_PFN


def _fill(m, gfp, limit=10**7):
    got = []
    while len(got) < limit:
        p = m.alloc_pages(gfp)
        if p < 0:
            break
        got.append(p)
    return got


def test_incremental_min_falls_back_and_protects_lower_zones():
    m = machine("1GiB")
    high, normal = zone(m, ZONE_HIGHMEM), zone(m, ZONE_NORMAL)
    pages = _fill(m, GFP_HIGHUSER | 0)  # waiting: runs until OOM
    # highmem was drained to its pass-2 min, then NORMAL down to min + highmem's min, then DMA
    assert high.free_pages <= high.pages_min + 1 and normal.fallback_count > 0
    assert normal.free_pages >= normal.pages_min  # protected by the incremental min
    assert ("oom", GFP_HIGHUSER, 0) in m.pagealloc.events
    m.pagealloc.check()
    assert len(pages) > 250_000


def test_gfp_high_dips_to_a_quarter_of_min():
    m = machine("64MiB")
    normal = zone(m, ZONE_NORMAL)
    plain = _fill(m, 0)  # atomic, not __GFP_HIGH: stops at the pass-2 min
    assert ("oom", 0, 0) not in m.pagealloc.events  # atomic fails, it does not OOM
    left_plain = normal.free_pages + normal.pcp_pages()
    high = _fill(m, GFP_ATOMIC)
    assert len(high) > 0
    # __GFP_HIGH checks against a quarter of min; a per-CPU refill then takes up to one batch more
    batch = normal.pageset[0][0].batch
    assert normal.free_pages < left_plain and normal.free_pages >= normal.pages_min // 4 + 1 - batch
    m.pagealloc.check()
    assert plain


def test_hot_pages_come_back_lifo_and_cold_from_the_cold_list():
    m = machine("256MiB")
    m.pagealloc.drain_pages()  # empty the lists boot-time allocations left
    z = zone(m, ZONE_NORMAL)
    hot, cold = z.pageset[0]
    p = m.alloc_pages(GFP_KERNEL)
    assert len(hot.list) == hot.batch - 1 and not cold.list  # rmqueue_bulk: one batch, one taken
    for q in [m.alloc_pages(GFP_KERNEL) for _ in range(3 * hot.batch)]:
        m.free_pages(q)  # the list is now above low, so the next allocation does not refill
    m.free_pages(p)
    assert m.alloc_pages(GFP_KERNEL) == p  # LIFO: the cache-hot page is reused
    c = m.alloc_pages(GFP_KERNEL | __GFP_COLD)
    assert len(cold.list) == cold.batch - 1 and c not in hot.list


def test_hot_list_drains_a_batch_at_high():
    m = machine("256MiB")
    z = zone(m, ZONE_NORMAL)
    hot = z.pageset[0][0]
    pages = [m.alloc_pages(GFP_KERNEL) for _ in range(hot.high + 2 * hot.batch)]
    for p in pages:
        m.free_pages(p)
        assert len(hot.list) <= hot.high
    m.pagealloc.check()


def test_per_cpu_lists_are_per_cpu(isolated):
    """An allocation made inside a task's system call uses the lists of the CPU it runs on."""
    from mmframe.usr import clone, getpid, wait
    m = machine("256MiB", cpus=2)
    got = {}
    m.sched.handlers["getpid"] = lambda task: got.setdefault(task.lineage, (task.cpu.id, m.alloc_pages(GFP_KERNEL)))

    def thread(ctx):
        yield getpid()

    def prog(ctx):
        yield clone(thread)
        yield getpid()
        yield wait()

    m.run(prog)
    pagesets = zone(m, ZONE_NORMAL).pageset
    assert pagesets[0][0].list and pagesets[1][0].list  # each CPU refilled its own hot list
    assert sorted(cpu for cpu, _ in got.values()) == [0, 1]


def test_meminfo_and_mem_map_in_lowmem():
    m = machine("16GiB", highpte=True)
    info = m.meminfo()
    pa = m.pagealloc
    assert m.config.pae and info["mmframe.MemMapBytes"] == (16 << 30) // PAGE_SIZE * 44
    assert info["HighTotal"] == ((16 << 30) - 896 * MiB) // 1024
    assert info["LowTotal"] + info["HighTotal"] == info["MemTotal"]
    assert info["LowTotal"] * 1024 <= 896 * MiB - info["mmframe.MemMapBytes"]  # mem_map is lowmem
    assert info["MemTotal"] == (pa.npages - pa.reserved_pages) * 4
    no_highpte = machine("16GiB").meminfo()
    assert no_highpte["mmframe.MemMapBytes"] == (16 << 30) // PAGE_SIZE * 40


def test_64gib_pae_mem_map_fits_and_checks():
    m = machine("64GiB")
    assert m.config.pae and m.pagealloc.mem_map_pages * PAGE_SIZE >= (64 << 30) // PAGE_SIZE * 40
    m.pagealloc.check()


def test_slab_accounts_kernel_objects_exactly():
    m = machine("64MiB")
    cache = m.kmem_cache("pte_chain", 32, 32)
    free0 = m.pagealloc.nr_free_pages() + sum(z.pcp_pages() for z in m.pagealloc.zones)
    objs = [cache.alloc() for _ in range(300)]
    assert cache.objects == 300 and cache.bytes == -(-300 // 128) * PAGE_SIZE
    assert m.meminfo()["mmframe.PteChainBytes"] == cache.bytes
    for o in objs:
        cache.free(o)
    assert cache.bytes == 0
    assert m.pagealloc.nr_free_pages() + sum(z.pcp_pages() for z in m.pagealloc.zones) == free0
    m.pagealloc.check()


def test_machine_config_rejects_8gib_without_pae(isolated):
    (isolated / "c.toml").write_text("[machine]\nmemory = '8GiB'\npae = 'off'\n")
    with pytest.raises(ConfigError, match="needs PAE"):
        load_config(isolated / "c.toml", env={})


OPS = st.lists(st.tuples(st.sampled_from(["alloc", "free", "drain"]), st.integers(0, 4),
                         st.sampled_from([GFP_KERNEL, GFP_HIGHUSER, GFP_ATOMIC, GFP_DMA, GFP_KERNEL | __GFP_COLD]),
                         st.integers(0, 1), st.integers(0, 10**6)), max_size=120)


@settings(max_examples=examples(60), deadline=None)
@given(OPS)
def test_generated_alloc_free_sequences_conserve_pages(ops):
    m = machine("48MiB", cpus=2)
    pa = m.pagealloc
    total = pa.nr_free_pages()
    live: list[tuple[int, int]] = []
    for op, order, gfp, cpu, pick in ops:
        if op == "alloc":
            p = m._alloc_hook(pa, gfp, order, cpu)
            if p >= 0:
                assert p not in {q for q, _ in live}
                live.append((p, order))
        elif op == "free" and live:
            p, o = live.pop(pick % len(live))
            m._free_hook(pa, p, o, cpu)
        elif op == "drain":
            pa.drain_pages()
        pa.check()
    for p, o in live:
        m.free_pages(p, o)
    pa.drain_pages()
    pa.check()
    assert pa.nr_free_pages() == total
