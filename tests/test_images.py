"""Program images as the period's i386 processes had them (mmframe.usr: GLIBC_2002, Layout,
after_fork, malloc): the layout exec builds, the stores after fork, and the differential promise
with these images."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import examples, run_image_ops
from mmframe import usr
from mmframe.config import load_config
from mmframe.differential import compare_results
from mmframe.machine import Machine
from mmframe.usr import (PAGE_SIZE, PROT_READ, SimSignal, after_fork, execve, exit, fork, malloc, mprotect, munmap,
                         read, wait, write)

P = PAGE_SIZE


def machine(policies=(), pae=False, debug="syscall") -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=64 << 20, pae=pae, debug_vm=debug)))


def test_the_period_image_places_ld_so_and_libc_from_task_unmapped_base():
    seen = {}

    @usr.program(text_pages=4, data_pages=2, bss_pages=1)
    def app(ctx):
        mm = seen["m"].sched.current.mm
        seen["vmas"] = [(v.start, v.end, v.file_backed) for v in mm.vmas]
        seen["image"] = ctx.image
        seen["big"] = yield from malloc(200 << 10)
        seen["small"] = yield from malloc(100)
        seen["after"] = yield from malloc(1 << 20)
        seen["edge"] = yield from malloc(128 << 10)  # M_MMAP_THRESHOLD itself is mmapped

    def root(ctx):
        yield execve(app)

    m = machine()
    seen["m"] = m
    m.run(root)
    text, ld, top = 0x0804_8000, 0x4000_0000, 0xC000_0000
    libc = ld + (19 + 1 + 1) * P  # ld.so's text, data and bss, then the next gap
    assert seen["vmas"] == [
        (text, text + 4 * P, True), (text + 4 * P, text + 6 * P, True), (text + 6 * P, text + 7 * P, False),
        (ld, ld + 19 * P, True), (ld + 19 * P, ld + 20 * P, True), (ld + 20 * P, ld + 21 * P, False),
        (libc, libc + 300 * P, True), (libc + 300 * P, libc + 305 * P, True), (libc + 305 * P, libc + 309 * P, False),
        (top - 32 * P, top, False)]
    img = seen["image"]
    assert (img.data, img.bss, img.brk, img.stack_top) == (text + 4 * P, text + 6 * P, text + 7 * P, top)
    assert img.lib_data("/lib/libc-2.2.5.so") == libc + 300 * P and img.lib_data("/nope") is None
    # glibc's malloc: 128 KiB and more mmapped after the libraries (the 8-byte header takes a page
    # more), smaller from the brk heap
    assert seen["big"] == libc + 309 * P and seen["after"] == seen["big"] + 51 * P
    assert seen["small"] == text + 7 * P and seen["edge"] == seen["after"] + 257 * P
    # the libraries are files in the page cache, shared by every process mapping them
    assert "/lib/libc-2.2.5.so" in m.fs.inodes and "/lib/ld-2.2.5.so" in m.fs.inodes


def test_a_bare_image_has_no_shared_objects():
    seen = {}

    @usr.program(libs=usr.BARE)
    def static(ctx):
        seen["image"] = ctx.image
        yield exit(0)

    def root(ctx):
        seen["root"] = ctx.image
        yield execve(static)

    machine().run(root)
    assert seen["root"] is None and seen["image"].libs == ()


def test_after_fork_copies_the_three_pages_and_keeps_their_contents():
    """The child's stores to its stack, libc's data and the program's data each copy a page
    (mainline: copy-on-write); the parent then finds those pages its own again (no copy)."""
    counts = {}

    @usr.program(text_pages=4, data_pages=1)
    def app(ctx):
        img = ctx.image
        libc = img.lib_data("/lib/libc-2.2.5.so")
        yield write(img.data, 7)
        yield write(libc, 8)
        pid = yield fork()
        if pid == 0:
            before = m.acct.totals(task="1.1").get("copy_page", 0)
            yield from after_fork(ctx, pid)
            counts["child"] = m.acct.totals(task="1.1").get("copy_page", 0) - before
            yield exit((yield read(img.data)) + (yield read(libc)))
        before = m.acct.totals(task="1").get("copy_page", 0)
        yield from after_fork(ctx, pid)
        counts["parent"] = m.acct.totals(task="1").get("copy_page", 0) - before
        _, status = yield wait(pid)
        return usr.WEXITSTATUS(status)

    def root(ctx):
        yield execve(app)

    m = machine()
    r = m.run(root)
    # the parent runs first after fork: its stack and data stores copy; the child then has those
    # pages to itself and copies libc's data page only
    assert counts == {"parent": 2, "child": 1}
    assert r.tasks["1"].status >> 8 == 15


RW = usr.PROT_READ | usr.PROT_WRITE
OP = st.one_of(
    st.tuples(st.just("malloc"), st.sampled_from([64, 8 << 10, 128 << 10, 300 << 10, 5 << 20])),
    st.tuples(st.just("write"), st.integers(0, 9), st.integers(0, 400), st.integers(1, 99)),
    st.tuples(st.just("read"), st.integers(0, 9), st.integers(0, 400)),
    st.tuples(st.just("munmap"), st.integers(0, 9), st.integers(1, 64)),
    st.tuples(st.just("mprotect"), st.integers(0, 9), st.integers(1, 64), st.sampled_from([PROT_READ, RW])),
)
LEAF = st.lists(OP, max_size=6)
PROGRAM = st.lists(st.one_of(OP, st.tuples(st.just("fork"), LEAF, st.booleans())), max_size=12)


def _regions(ctx, blocks):
    img = ctx.image
    return [img.data, img.lib_data("/lib/libc-2.2.5.so"), img.stack_top - P] + blocks


def _ops(ctx, ops, blocks):
    def call(op):
        name, *a = op
        if name == "malloc":
            return _malloc(blocks, a[0])
        regions = _regions(ctx, blocks)
        base = regions[a[0] % len(regions)]
        if name == "write":
            return write(base + a[1] * P, a[2])
        if name == "read":
            return read(base + a[1] * P)
        if name == "munmap":
            return munmap(base, a[1] * P)
        return mprotect(base, a[1] * P, a[2])
    yield from run_image_ops(ctx, ops, call, lambda: _look(ctx, blocks))


def _malloc(blocks, size):
    blocks.append((yield from malloc(size)))


def _look(ctx, blocks):
    for base in _regions(ctx, blocks):
        for i in (0, 1, 7, 300):
            try:
                yield read(base + i * P)
            except SimSignal:
                pass


@usr.program(text_pages=8, data_pages=2, bss_pages=2)
def _app(ctx, ops):
    blocks = []
    yield from _ops(ctx, ops, blocks)
    yield from _look(ctx, blocks)


def _root(ctx, ops):
    yield execve(_app, ops)


@settings(max_examples=examples(25), deadline=None)
@given(PROGRAM, st.booleans())
def test_period_images_change_cost_not_semantics_under_pt_shared(ops, pae):
    a = machine(pae=pae).run(_root, ops)
    b = machine(["pt_shared"], pae=pae).run(_root, ops)
    assert not compare_results(a, b).differences


def test_fork_scaling_shows_the_share_of_fitted_costs():
    """Only copy_process is fitted in what the parent's fork is charged: its share is its ns over
    the fork's; fork+exit adds exit_process (its ns in the table, not a count the scenario makes)."""
    from mmframe.costs import CostTable
    from mmframe.scenario import ScenarioContext
    from mmframe.workloads import fork_scaling

    cfg = load_config(use_pyproject=False, env={})
    cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=64 << 20, debug_vm="off"))
    got = fork_scaling.measure(ScenarioContext(cfg, {}), 4 << 20)
    table = CostTable.default()
    cp, ex = table["copy_process"].ns, table["exit_process"].ns
    assert got["fork_fitted"] == pytest.approx(100 * cp / (got["fork"] * 1e6))
    assert got["fork_exit_fitted"] == pytest.approx(100 * (cp + ex) / (got["fork_exit"] * 1e6))
    assert 0 < got["fork_exec_exit_fitted"] < 100


def test_sga_attach_form_starts_unrelated_servers(isolated):
    """Servers exec'd and attaching the segment by key: with pt_shared sharing between forked
    relatives only (``attach_2002 = false``) none shares page tables with another, so pt_shared's
    lowmem is mainline's (the default's pte_try_to_share: tests/test_pt_shared_attach.py)."""
    from mmframe.scenario import run_scenario
    (isolated / "run.toml").write_text('[scenario]\nname = "sga"\npolicies = [[], ["pt_shared"]]\n'
                                       'memory = "128MiB"\nsize = "8MiB"\nchildren = 6\nforms = ["attach"]\n'
                                       '[plugins.pt_shared]\nattach_2002 = false\n')
    scen, (plain, shared) = run_scenario(load_config(isolated / "run.toml", env={}))
    for tag in ("attach no HIGHPTE", "attach HIGHPTE"):
        assert plain.figures[f"children {tag}"] == 6 == shared.figures[f"children {tag}"]
        assert plain.figures[f"page tables {tag}"] == shared.figures[f"page tables {tag}"]
        assert plain.figures[f"pte_chains {tag}"] == shared.figures[f"pte_chains {tag}"] > 0
    # without HIGHPTE each server's four PAE PTE pages for the 8 MiB segment are in lowmem
    assert plain.figures["page tables attach no HIGHPTE"] * 1024 >= 6 * 4 * 4


def test_sga_rejects_an_unknown_form(isolated):
    from mmframe.errors import ConfigError
    (isolated / "run.toml").write_text('[scenario]\nname = "sga"\nmemory = "64MiB"\nsize = "4MiB"\n'
                                       'children = 1\nforms = ["frok"]\n')
    with pytest.raises(ConfigError, match="scenario.forms.*fork.*attach"):
        load_config(isolated / "run.toml", env={})
