"""pte_chains by 2.5.49's rules, counted from first principles here, and a checker that catches a
wrong count: NRPTE for each cache line and pte_addr_t size, chains that stay after a page is left
with one mapping (2.5.49 never goes back to PageDirect while mapped), chains freed when the last
mapping goes."""

from __future__ import annotations

import pytest

from tests.test_memory import machine
from mmframe.usr import MAP_ANONYMOUS, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE, exit, fork, mmap, sleep, touch, wait

RW = PROT_READ | PROT_WRITE
MiB = 1 << 20
PAGES = 4


def _holder(ctx, base):
    yield touch(base, PAGES * PAGE_SIZE)
    yield sleep(10**9)
    yield exit(0)


def _chains(m) -> int:
    return m.pagealloc.kernel_objects["pte_chain"].objects


@pytest.mark.parametrize("l1, pae, highpte, slots", [
    (32, False, False, 7), (32, True, False, 7), (32, True, True, 3), (128, False, False, 31),
    (128, True, True, 15), (64, True, False, 15),
])
def test_chains_per_page_follow_nrpte(l1, pae, highpte, slots):
    """NRPTE = (L1_CACHE_BYTES - sizeof(void *)) / sizeof(pte_addr_t), pte_addr_t 8 bytes only with
    PAE+HIGHPTE: eight mappings of a page take ceil(8 / NRPTE) chains; one (PageDirect) none."""
    seen = []

    def prog(ctx):
        base = yield mmap(0, PAGES * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
        yield touch(base, PAGES * PAGE_SIZE, True)
        seen.append(_chains(m))
        pids = []
        for _ in range(7):
            pids.append((yield fork(_holder, base)))
        yield sleep(10**8)  # every child has mapped every page
        seen.append(_chains(m))
        for pid in pids:
            yield wait(pid)
        seen.append(_chains(m))

    m = machine(policies=(), memory=128 * MiB if highpte else 64 * MiB, pae=pae, highpte=highpte,
                l1_cache_bytes=l1)
    m.run(prog)
    assert seen == [0, PAGES * -(-8 // slots), PAGES]  # the last: one chain each, not PageDirect


def test_a_chain_outlives_its_second_mapping_and_is_reused():
    """2.5.49: a page left with one mapping keeps its pte_chain (no way back to PageDirect), so a
    later fork allocates none for it; the chain goes with the last mapping."""
    seen = []

    def prog(ctx):
        base = yield mmap(0, PAGES * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
        yield touch(base, PAGES * PAGE_SIZE, True)
        for _ in range(2):
            pid = yield fork(_holder, base)
            yield sleep(10**8)
            seen.append(_chains(m))
            yield wait(pid)
            seen.append(_chains(m))
        yield ("munmap", base, PAGES * PAGE_SIZE)
        seen.append(_chains(m))

    m = machine(policies=())
    m.run(prog)
    assert seen == [PAGES, PAGES, PAGES, PAGES, 0]


def _corrupt_after_setup(m, corrupt):
    def prog(ctx):
        base = yield mmap(0, PAGES * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
        yield touch(base, PAGES * PAGE_SIZE, True)
        pid = yield fork(_holder, base)
        yield sleep(10**8)
        yield ("corrupt",)
        yield wait(pid)

    m.sched.handlers["corrupt"] = lambda task: corrupt(m) or 0
    m.run(prog)


@pytest.mark.parametrize("corrupt", [
    lambda m: m.pagealloc.kernel_objects["pte_chain"].__setattr__(
        "objects", m.pagealloc.kernel_objects["pte_chain"].objects + 1),
    lambda m: m.mm.rmap.chained.__setitem__(next(p for p, k in enumerate(m.mm.rmap.k) if k == 2), 0),
    lambda m: m.mm.rmap.chained.__setitem__(next(p for p, k in enumerate(m.mm.rmap.k) if k == 0), 1),
], ids=["extra_chain", "mapped_twice_but_direct", "unmapped_on_a_chain"])
def test_the_checker_catches_a_wrong_pte_chain_state(corrupt):
    m = machine(policies=())
    with pytest.raises(AssertionError, match="pte_chain|PageDirect"):
        _corrupt_after_setup(m, corrupt)
