"""Attach sharing (pt_shared's ``attach_2002`` and ``attach_2005``): unrelated processes mapping one
object share its PTE pages.  The differential promise holds (generated programs with exec'd
attachers of a SysV segment or a shared file, partial detaches, mprotect, writes, reads and forks of
attachers: the same results as mainline, the checker on), and the sharing really happens."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests import test_attach as sysv
from tests.support import examples, look, region_call, region_ops, run_image_ops, shm_attach, spawn
from mmframe import usr
from mmframe.config import load_config
from mmframe.differential import compare_results
from mmframe.machine import Machine
from mmframe.mm import pgtable
from mmframe.usr import MAP_FIXED, MAP_SHARED, PAGE_SIZE, PROT_READ, execve, mmap, touch, wait, write

P = PAGE_SIZE
MiB = 1 << 20
RW = PROT_READ | usr.PROT_WRITE
YEARS = ("attach_2002", "attach_2005")


def machine(policies=(), pae=False, memory=96 << 20, **opts) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=memory, pae=pae, debug_vm="syscall",
                                                 shmmax=sysv.SEG))
    if opts:
        cfg = attrs.evolve(cfg, plugin_options={**cfg.plugin_options, "pt_shared": {
            **cfg.plugin_options.get("pt_shared", {}), **opts}})
    return Machine(cfg)


# --- the SysV form: tests/test_attach.py's programs, under each year's attach sharing --------------
@settings(max_examples=examples(8), deadline=None)
@given(sysv.PROGRAM, st.booleans(), st.sampled_from(YEARS))
def test_sysv_attachers_see_the_same_with_attach_sharing(program, pae, year):
    a = machine(pae=pae).run(sysv._root, program)
    m = machine(["pt_shared"], pae=pae, **{year: True})
    b = m.run(sysv._root, program)
    assert not compare_results(a, b).differences, year
    m.close()


# --- the file form: unrelated processes mapping one file MAP_SHARED at one address ----------------
FILE_LEN = 8 * MiB  # two whole PTE pages without PAE, four with PAE
AT = 0x2000_0000
FOP = st.one_of(*region_ops(FILE_LEN), st.tuples(st.just("msync"), st.integers(0, 1)))
FLEAF = st.lists(FOP, max_size=4)
FMAPPER = st.tuples(st.sampled_from([RW, PROT_READ]), st.lists(st.one_of(FOP, st.tuples(st.just("fork"), FLEAF)),
                                                               max_size=6))
FPROGRAM = st.tuples(st.lists(FMAPPER, min_size=1, max_size=3), st.lists(FOP, max_size=4))


def _fops(ctx, fd, ops):
    def call(op):
        if op[0] == "msync":
            return usr.msync(AT + op[1] * FILE_LEN // 2, FILE_LEN // 2, usr.MS_SYNC)
        return region_call(AT, FILE_LEN, op)
    yield from run_image_ops(ctx, ops, call, _flook)


def _flook():
    return look(AT, FILE_LEN, 89)


@usr.program(text_pages=4, data_pages=1, bss_pages=1)
def fmapper(ctx, prot, ops):
    """A process started on its own: opens the file and maps it shared at AT (read-only or writable)."""
    fd = yield usr.open("/f", usr.O_RDWR if prot & usr.PROT_WRITE else usr.O_RDONLY)
    yield mmap(AT, FILE_LEN, prot, MAP_SHARED | MAP_FIXED, fd, 0)
    yield from _fops(ctx, fd, ops)
    yield from _flook()


@usr.program(text_pages=4, data_pages=1, bss_pages=1)
def finstance(ctx, mappers, own):
    fd = yield usr.open("/f", usr.O_RDWR | usr.O_CREAT)
    yield usr.ftruncate(fd, FILE_LEN)
    yield mmap(AT, FILE_LEN, RW, MAP_SHARED | MAP_FIXED, fd, 0)
    yield touch(AT, FILE_LEN // 2, True)
    for i in range(0, FILE_LEN // P, 67):
        yield write(AT + i * P, 500 + i)
    for prot, ops in mappers:
        pid = yield from spawn(ctx, fmapper, prot, ops)
        yield wait(pid)
    yield from _fops(ctx, fd, own)
    yield from _flook()
    yield usr.fsync(fd)


def _froot(ctx, program):
    yield execve(finstance, *program)


def _frun(m, program):
    r = m.run(_froot, program)
    return r, m.fs.dev.blocks, sorted(m.fs.inodes["/f"].mapping.dirty)


@settings(max_examples=examples(8), deadline=None)
@given(FPROGRAM, st.booleans(), st.sampled_from(YEARS))
# a mapper whose first access is a write: a file's table attached write-protected had to unshare at once
@example(([(RW, [("write", 0, 1)])], []), False, "attach_2002")
@example(([(RW, [("write", 1203, 1)])], []), False, "attach_2005")
def test_file_mappers_see_the_same_with_attach_sharing(program, pae, year):
    a = _frun(machine(pae=pae), program)
    m = machine(["pt_shared"], pae=pae, **{year: True})
    b = _frun(m, program)
    assert not compare_results(a[0], b[0]).differences, year
    assert a[1:] == b[1:]  # the same blocks written back, the same pages left dirty
    m.close()


# --- the sharing happens, and only when asked for --------------------------------------------------
@usr.program(text_pages=4, data_pages=1, bss_pages=1)
def reader(ctx, aligned):
    base = yield from shm_attach(sysv.KEY, sysv.SEG, sysv.ALIGNED if aligned else 0)
    yield touch(base, sysv.SEG, False)
    yield usr.sleep(10**9)  # alive while the instance counts


@usr.program(text_pages=4, data_pages=1, bss_pages=1)
def readers_instance(ctx, n, aligned):
    base = yield from shm_attach(sysv.KEY, sysv.SEG, sysv.ALIGNED, create=True)
    yield touch(base, sysv.SEG, True)
    pids = []
    for _ in range(n):
        pids.append((yield from spawn(ctx, reader, aligned)))
    yield usr.sleep(10**8)
    yield ("count",)
    for pid in pids:
        yield wait(pid)


def _readers_root(ctx, n, aligned=True):
    yield execve(readers_instance, n, aligned)


def _count(m, n, aligned=True):
    tables = []
    m.sched.handlers["count"] = lambda task: tables.append(m.meminfo()["PageTables"]) or 0
    r = m.run(_readers_root, n, aligned)
    return r, m.close(), tables[0]


@pytest.mark.parametrize("year", YEARS)
def test_unrelated_attachers_share_the_segments_pte_pages(year):
    plain, fp, tp = _count(machine(["pt_shared"], attach_2002=False), 3)
    shared, fs, ts = _count(machine(["pt_shared"], **{year: True}), 3)
    assert not compare_results(plain, shared).differences
    assert fp["pt_shared.attached"] == 0  # attach_2002 off: sharing between relatives only
    assert fs["pt_shared.attached"] == 3 * 2  # three servers, two whole PTE pages of the segment each
    assert ts == tp - 3 * 2 * 4  # while all run: six fewer 4 KiB PTE pages


def test_the_walk_for_a_table_is_charged():
    m = machine(["pt_shared"], attach_2005=True)
    m.run(_readers_root, 2)
    totals = m.acct.totals()
    m.close()
    assert totals["i_mmap_visit"] >= 2 * 2 * 2  # each attach: the instance's VMA examined, its PMD read


def test_an_unaligned_attach_shares_only_whole_pte_pages():
    """shmat without an address places the segment after libc, not on a PTE-page boundary: of its
    8 MiB only the PTE pages it covers whole can be shared, and only with mms mapping it at the same
    address (the instance attached it elsewhere; the servers at one place).  (The 2005 patch also
    shared a page holding only that VMA; mmframe does not: docs/pt_shared.md.)"""
    r, figures, tables = _count(machine(["pt_shared"], attach_2005=True), 3, aligned=False)
    # 8 MiB after libc spans three slots: libc's (not empty), one whole, a partial last one
    assert figures["pt_shared.attached"] == 2  # the whole one, for the second and third server


def test_2005_drops_instead_of_copying():
    """A partial detach of a shared PTE page under the 2005 design drops this mm's reference (it
    faults a table of its own later) and copies nothing."""
    program = ([(True, [("touch", 0, False), ("munmap", 3, 10), ("read", 1), ("read", 5)])], [], True)
    m = machine(["pt_shared"], attach_2005=True)
    r = m.run(sysv._root, program)
    figures = m.close()
    assert figures["pt_shared.dropped"] >= 1 and figures["pt_shared.unshares"] == 0
    assert not compare_results(machine().run(sysv._root, program), r).differences


def test_attach_2002_is_the_default_and_attach_2005_replaces_it():
    """2.5.49-mm1's pt_shared had pte_try_to_share (in -mm from 2.5.41-mm3 past 2.5.49-mm1): on by
    default; the 2005 rewrite, when asked for, replaces it (it replaced pte_try_to_share)."""
    _, default, tables = _count(machine(["pt_shared"]), 3)
    _, explicit, tables_2002 = _count(machine(["pt_shared"], attach_2002=True), 3)
    assert default["pt_shared.attached"] == explicit["pt_shared.attached"] == 3 * 2 and tables == tables_2002
    for opts in ({"attach_2005": True}, {"attach_2002": True, "attach_2005": True}):
        m = machine(["pt_shared"], **opts)
        assert m.plugin_state["pt_shared"]["attach"] == "2005"
        m.close()


@pytest.mark.parametrize("year", YEARS)
def test_sga_attach_form_shares_with_attach_sharing(isolated, year):
    """The sga scenario's attach form (exec'd servers attaching the SGA by key): with attach sharing
    their page tables and pte_chains in lowmem shrink; with sharing between relatives only
    (``attach_2002 = false``) they do not."""
    from mmframe.scenario import run_scenario
    got = {}
    for on in (False, True):
        (isolated / "run.toml").write_text(
            '[scenario]\nname = "sga"\npolicies = [["pt_shared"]]\nmemory = "256MiB"\nsize = "32MiB"\n'
            f'children = 6\nforms = ["attach"]\n[plugins.pt_shared]\n'
            + (f'{year} = true\n' if on else 'attach_2002 = false\n'))
        scen, (col,) = run_scenario(load_config(isolated / "run.toml", env={}))
        got[on] = col.figures
    for tag in ("attach no HIGHPTE", "attach HIGHPTE"):
        assert got[True][f"children {tag}"] == got[False][f"children {tag}"] == 6
        assert got[True][f"page tables {tag}"] < got[False][f"page tables {tag}"] / 2
        assert got[True][f"pte_chains {tag}"] < got[False][f"pte_chains {tag}"] / 5


@pytest.mark.parametrize("year", YEARS)
def test_attach_sharing_touches_only_the_facade(year):
    """The attach paths (the walk, vma_mapping, pmd_share, the drops) through the facade's guard
    (tests/test_architecture.py): the same run as unguarded."""
    from tests.test_architecture import guarded
    pt_shared = __import__("mmframe_plugins.pt_shared", fromlist=["x"])
    prog = ([(RW, [("read", 3), ("munmap", 0, 2), ("mprotect", 1024, 1024, PROT_READ), ("fork", [("read", 7)])]),
             (RW, [("touch", 1, False), ("write", 1500, 2)])], [("write", 2000, 4)])
    runs = []
    for name, extra in (("pt_shared", {}), ("pt_shared_guarded", {"pt_shared_guarded": guarded(pt_shared, "g")})):
        cfg = load_config(use_pyproject=False, env={}, cli_plugins=[name], extra_plugins=extra)
        cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=96 << 20, debug_vm="syscall", shmmax=sysv.SEG),
                           plugin_options={**cfg.plugin_options, name: {**cfg.plugin_options.get(name, {}), year: True}})
        m = Machine(cfg)
        r = _frun(m, prog)
        s = m.run(_readers_root, 2)
        runs.append((r, s, m.close()))
    (a, sa, fa), (b, sb, fb) = runs
    assert a[0].tasks == b[0].tasks and a[1:] == b[1:] and sa.tasks == sb.tasks
    assert fa == fb and fa["pt_shared.attached"] > 0


@pytest.mark.parametrize("year", YEARS)
def test_touch_one_fault_at_a_time_takes_no_fault_on_what_an_attach_filled(monkeypatch, year):
    """touch's single path after a fault that attached another mm's filled table: the entries that
    table brought are the MMU's hits, not faults, as on the bulk path, so both charge the same
    (the single path used to fault each of them again)."""
    totals = []
    for bulk_min in (1, 10**9):
        monkeypatch.setattr(pgtable, "BULK_MIN", bulk_min)
        m = machine(["pt_shared"], **{year: True})
        m.run(_readers_root, 3)
        totals.append(dict(m.acct.totals()))
        assert m.close()["pt_shared.attached"] == 3 * 2
    assert totals[0] == totals[1]
