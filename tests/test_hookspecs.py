"""One test per hook of the contract, through a plugin installed as a real distribution."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

from mmframe import HOOK_CONTRACT_VERSION, hookspecs
from mmframe.cli import hooks_reference, main
from mmframe.config import load_config
from mmframe.errors import PluginError
from mmframe.machine import Machine
from mmframe.scenario import all_scenarios, run_scenario

FULL = """
from mmframe.hookspecs import hookimpl
from mmframe.options import Option
from mmframe.costs import CostEntry
from mmframe.scenario import Scenario, Figure
EVENTS = []

@hookimpl
def mmframe_options():
    return [Option("level", "int", 1, "a level", minimum=0, maximum=9)]

@hookimpl
def mmframe_cost_entries():
    return [CostEntry("full.step", 42, "estimate", "test figure")]

def _run(ctx):
    m = ctx.machine()
    return {"steps": m.costs["full.step"].ns, **m.close()}

@hookimpl
def mmframe_scenarios():
    return [Scenario("full-demo", "demo", _run, figures=(Figure("steps", "step ns"),))]

@hookimpl
def mmframe_configure(machine, options):
    EVENTS.append(("configure", options["level"]))
    machine.plugin_state["full"] = options["level"]

@hookimpl
def mmframe_report(machine, figures):
    figures["full.level"] = machine.plugin_state["full"]

@hookimpl
def mmframe_unconfigure(machine):
    EVENTS.append(("unconfigure",))
"""


def test_mmframe_options(isolated, install_plugin):
    install_plugin("full", FULL)
    cfg = load_config(env={})
    assert [o.name for o in cfg.catalog.plugins["full"].options] == ["level"]
    assert cfg.plugin_options["full"] == {"level": 1}
    (isolated / "c.toml").write_text("[plugins.full]\nlevel = 7\n")
    assert load_config(isolated / "c.toml", env={}).plugin_options["full"] == {"level": 7}


def test_mmframe_options_bad_default_is_named(isolated, install_plugin):
    install_plugin("baddef", "from mmframe.hookspecs import hookimpl\nfrom mmframe.options import Option\n"
                             "@hookimpl\ndef mmframe_options():\n"
                             "    return [Option('n', 'int', 'x', 'bad default')]\n")
    with pytest.raises(PluginError, match="'baddef'.*default of option 'n'"):
        load_config(env={})


def test_mmframe_scenarios(isolated, install_plugin):
    install_plugin("full", FULL)
    cfg = load_config(env={})
    assert all_scenarios(cfg.catalog)["full-demo"][1] == "full"
    (isolated / "c.toml").write_text("[scenario]\nname = 'full-demo'\n")
    with pytest.raises(Exception, match="does not enable"):
        run_scenario(load_config(isolated / "c.toml", env={}))
    scen, cols = run_scenario(load_config(isolated / "c.toml", env={}, cli_plugins=["full"]))
    assert cols[0].figures["steps"] == 42.0


def test_mmframe_scenarios_duplicate_names_are_an_error(isolated, install_plugin):
    install_plugin("dup", "from mmframe.hookspecs import hookimpl\nfrom mmframe.scenario import Scenario\n"
                          "@hookimpl\ndef mmframe_scenarios():\n    return [Scenario('spawn', 'x', None)]\n")
    with pytest.raises(PluginError, match="'spawn' is registered by both 'mmframe.core' and 'dup'"):
        load_config(env={})


def test_mmframe_cost_entries(isolated, install_plugin):
    install_plugin("full", FULL)
    m = Machine(load_config(env={}, cli_plugins=["full"]))
    assert m.costs["full.step"].owner == "full" and m.costs["full.step"].ns == 42
    assert "full.step" not in Machine(load_config(env={})).costs.id  # not enabled: not added


def test_mmframe_cost_entries_must_be_prefixed(isolated, install_plugin):
    install_plugin("loose", "from mmframe.hookspecs import hookimpl\nfrom mmframe.costs import CostEntry\n"
                            "@hookimpl\ndef mmframe_cost_entries():\n"
                            "    return [CostEntry('syscall', 1, 'estimate', 'x')]\n")
    with pytest.raises(PluginError, match="named 'loose.<primitive>'"):
        Machine(load_config(env={}, cli_plugins=["loose"]))


def test_mmframe_configure(isolated, install_plugin):
    mod = install_plugin("full", FULL)
    (isolated / "c.toml").write_text("[plugins]\nenable = ['full']\n[plugins.full]\nlevel = 5\n")
    m = Machine(load_config(isolated / "c.toml", env={}))
    assert sys.modules[mod].EVENTS == [("configure", 5)] and m.plugin_state["full"] == 5


def test_mmframe_configure_that_raises_is_named(isolated, install_plugin):
    install_plugin("boom", "from mmframe.hookspecs import hookimpl\n"
                           "@hookimpl\ndef mmframe_configure(machine):\n    raise KeyError('k')\n")
    with pytest.raises(PluginError, match="plugin 'boom' raised in mmframe_configure: KeyError"):
        Machine(load_config(env={}, cli_plugins=["boom"]))


def test_mmframe_report(isolated, install_plugin):
    install_plugin("full", FULL)
    m = Machine(load_config(env={}, cli_plugins=["full"]))
    assert m.close()["full.level"] == 1


def test_mmframe_unconfigure(isolated, install_plugin):
    mod = install_plugin("full", FULL)
    m = Machine(load_config(env={}, cli_plugins=["full"]))
    m.close()
    assert sys.modules[mod].EVENTS[-1] == ("unconfigure",)


def test_mmframe_elevators(isolated, install_plugin):
    install_plugin("elv", "from mmframe.hookspecs import hookimpl\n"
                          "from mmframe.block.noop import Noop\n"
                          "class Tail(Noop):\n    name = 'tail_test'\n    period = 'test'\n"
                          "@hookimpl\ndef mmframe_elevators():\n    return [Tail]\n")
    (isolated / "c.toml").write_text("[block.hda]\nelevator = 'tail_test'\n")
    cfg = load_config(isolated / "c.toml", env={}, cli_plugins=["elv"])
    assert cfg.elevators["tail_test"][1] == "elv" and "deadline" in cfg.elevators
    assert type(Machine(cfg).block.device().queue.elevator).__name__ == "Tail"


def test_every_hook_spec_has_its_own_test():
    names = {n for n, obj in globals().items() if n.startswith("test_") and callable(obj)}
    for hook in hookspecs.HOOKS:
        assert f"test_{hook}" in names, f"hook {hook} has no test_{hook} in this file"


def test_every_spec_is_documented_and_versioned():
    for name, info in hookspecs.HOOKS.items():
        fn = getattr(hookspecs, name)
        assert inspect.getdoc(fn) and info.since and info.hot
        assert tuple(int(x) for x in info.since.split(".")) <= tuple(int(x) for x in HOOK_CONTRACT_VERSION.split("."))


def test_hooks_reference_has_not_drifted():
    ref = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"
    assert ref.read_text() == hooks_reference(), "regenerate with: mmframe hooks > docs/hooks.md"


def test_hooks_command(capsys):
    assert main(["hooks"]) == 0
    assert capsys.readouterr().out == hooks_reference()


POOL = """
from mmframe.hookspecs import hookimpl
from mmframe.mm.page import GFP_KERNEL, __GFP_RESERVE
POOL = []
KEPT = []

@hookimpl
def mmframe_configure(machine):
    POOL.extend(machine.pagealloc._alloc_pages(GFP_KERNEL, 0, 0) for _ in range(4))

@hookimpl
def mmframe_alloc_pages(alloc, gfp_mask, order, cpu):
    if gfp_mask & __GFP_RESERVE and order == 0 and POOL:
        return POOL.pop()
    return None

@hookimpl
def mmframe_free_pages(alloc, pfn, order):
    if len(KEPT) < 2 and order == 0:
        KEPT.append(pfn)
        return True
    return None
"""


def test_mmframe_alloc_pages(isolated, install_plugin):
    from mmframe.mm.page import GFP_KERNEL, __GFP_RESERVE
    mod = install_plugin("pool", POOL)
    m = Machine(load_config(env={}, cli_plugins=["pool"]))
    pool = list(sys.modules[mod].POOL)
    booted = m.acct.totals(owner="pool").get("pcp_page", 0)  # boot-time slab pages went through it too
    assert m.alloc_pages(GFP_KERNEL | __GFP_RESERVE) == pool[-1]  # the plugin's page
    plain = m.alloc_pages(GFP_KERNEL)  # deferred to the core's __alloc_pages
    assert plain >= 0 and plain not in pool
    assert m.acct.totals(owner="pool").get("pcp_page") == booted + 1  # the core work ran under the plugin's hook
    mainline = Machine(load_config(env={}))
    assert mainline.alloc_pages(GFP_KERNEL | __GFP_RESERVE) >= 0 and mainline.acct.owners() == ["core"]


def test_mmframe_free_pages(isolated, install_plugin):
    from mmframe.mm.page import GFP_KERNEL
    mod = install_plugin("pool", POOL)
    m = Machine(load_config(env={}, cli_plugins=["pool"]))
    pages = [m.alloc_pages(GFP_KERNEL) for _ in range(3)]
    free_before = m.pagealloc.zone_by_idx[1].pcp_pages()
    for p in pages:
        m.free_pages(p)
    assert sys.modules[mod].KEPT == pages[:2]  # kept by the plugin
    assert m.pagealloc.zone_by_idx[1].pcp_pages() == free_before + 1  # the third went to the core


PT = """
from mmframe.hookspecs import hookimpl
COPIED, FAULTS, CHANGES = [], [], []
FAIL_COPY = []

@hookimpl
def mmframe_copy_pte_page(vm, src, dst, idx):
    COPIED.append(idx)
    return False if FAIL_COPY else None

@hookimpl
def mmframe_handle_mm_fault(vm, mm, vma, address, write_access):
    FAULTS.append((address, write_access))
    idx = address >> vm.sh
    if write_access and mm.ptp[idx] is not None and not vm.pmd_writable(mm, idx):
        vm.pmd_set_writable(mm, idx, True)
    return None

@hookimpl
def mmframe_pte_change(vm, mm, idx, reason, start, end):
    CHANGES.append((reason, idx, start, end))
    return None
"""


def _pt_machine(install_plugin):
    mod = install_plugin("pt", PT)
    m = Machine(load_config(env={}, cli_plugins=["pt"]))
    return m, sys.modules[mod]


def _anon(length, shared=False):
    from mmframe import usr
    return usr.mmap(0, length, usr.PROT_READ | usr.PROT_WRITE,
                    (usr.MAP_SHARED if shared else usr.MAP_PRIVATE) | usr.MAP_ANONYMOUS)


def test_mmframe_copy_pte_page(isolated, install_plugin):
    from mmframe import usr
    m, plugin = _pt_machine(install_plugin)

    def prog(ctx):
        a = yield _anon(4 << 20)  # not 4 MiB aligned: spans two PTE pages
        b = yield _anon(64 << 10)  # right after it, in the second PTE page
        yield usr.touch(a, 4 << 20, True)
        yield usr.touch(b, 64 << 10, True)
        pid = yield usr.fork(quiet)
        yield usr.wait(pid)
        plugin.FAIL_COPY.append(1)
        return (yield usr.fork(quiet))

    def quiet(ctx):
        yield usr.exit(0)

    r = m.run(prog)
    first = 0x4000_0000 >> m.mm.sh
    assert plugin.COPIED[:2] == [first, first + 1]  # the first fork: each PTE page once, not per VMA
    assert plugin.COPIED[2] == first  # the second fork asks again and fails
    assert r.tasks["1"].calls[-1] == ("fork", -usr.ENOMEM)  # False from the hook: fork fails cleanly
    m.mm.check()


def test_mmframe_handle_mm_fault(isolated, install_plugin):
    from mmframe import usr
    m, plugin = _pt_machine(install_plugin)
    vm = m.mm
    m.sched.handlers["wrprotect_pmd"] = lambda task, addr: vm.pmd_set_writable(task.mm, addr >> vm.sh, False)

    def prog(ctx):
        a = yield _anon(4096)
        yield usr.write(a, 1)
        yield ("wrprotect_pmd", a)
        yield usr.write(a, 2)  # the hardware faults on the PMD; the plugin makes it writable
        return (yield usr.read(a))

    r = m.run(prog)
    assert r.tasks["1"].calls[-1] == ("read", 2)
    assert [w for _, w in plugin.FAULTS] == [True, True]


def test_mmframe_pte_change(isolated, install_plugin):
    from mmframe import usr
    m, plugin = _pt_machine(install_plugin)

    def prog(ctx):
        a = yield _anon(3 * 4096)
        yield usr.write(a, 1)
        yield usr.mprotect(a, 4096, usr.PROT_READ)
        yield usr.munmap(a, 4096)
        pid = yield usr.fork(quiet)
        yield usr.wait(pid)

    def quiet(ctx):
        yield usr.exit(0)

    m.run(prog)
    reasons = [c[0] for c in plugin.CHANGES]
    assert reasons[:3] == ["fault", "mprotect", "zap"] and reasons.count("exit") == 2  # child, parent
    assert plugin.CHANGES[0][2:] == (0, 1)

    def syncing(ctx):  # contract 1.3: msync's filemap_sync clears dirty bits through the choke point
        fd = yield usr.open("/f", usr.O_RDWR | usr.O_CREAT)
        yield usr.ftruncate(fd, 3 * 4096)
        f = yield usr.mmap(0, 3 * 4096, usr.PROT_READ | usr.PROT_WRITE, usr.MAP_SHARED, fd, 0)
        yield usr.write(f + 4096, 5)
        plugin.CHANGES.clear()
        yield usr.msync(f, 3 * 4096)

    m.run(syncing)
    assert [c[0] for c in plugin.CHANGES] == ["msync", "exit"]  # the one PTE page, then exit

    def remapping(ctx):  # contract 1.5: mremap moves each entry through the choke point, both ends
        a = yield _anon(2 * 4096)
        yield usr.write(a, 1)
        plugin.CHANGES.clear()
        yield usr.mremap(a, 2 * 4096, 2 * 4096, usr.MREMAP_MAYMOVE | usr.MREMAP_FIXED, 0x5000_0000)

    m.run(remapping)
    got = [c[0] for c in plugin.CHANGES]
    assert got[:3] == ["mmap", "mremap", "mremap"]  # the new VMA's range, then the entry: cleared, set
    mainline = Machine(load_config(env={}))
    assert mainline.mm._pte_hook is None  # nobody implements it: never called


SITES = """
from mmframe.hookspecs import hookimpl
from mmframe.mm.page import GFP_ATOMIC, __GFP_RESERVE
SEEN = []

@hookimpl
def mmframe_reserve_enter(alloc, site, gfp_mask, nr_pages, cpu):
    SEEN.append(("enter", site, gfp_mask, nr_pages, cpu))
    return GFP_ATOMIC if site == "pte_alloc_map" else None

@hookimpl
def mmframe_reserve_exit(alloc, site, nr_pages, cpu):
    SEEN.append(("exit", site, nr_pages, cpu))
    return True
"""


def _sites_run(install_plugin):
    from mmframe.usr import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, exit, fork, mmap, touch, wait
    mod = install_plugin("sites", SITES)
    m = Machine(load_config(env={}, cli_plugins=["sites"]))

    def child(ctx):
        yield exit(0)

    def prog(ctx):
        a = yield mmap(0x10000000, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield touch(a, 64 * 4096, True)
        yield wait((yield fork(child)))

    m.run(prog)
    return sys.modules[mod].SEEN


def test_mmframe_reserve_enter(isolated, install_plugin):
    from mmframe.mm.page import GFP_ATOMIC, GFP_KERNEL, __GFP_HIGHMEM
    seen = _sites_run(install_plugin)
    enters = [e for e in seen if e[0] == "enter"]
    assert {e[1] for e in enters} >= {"pte_alloc_map", "pte_chain_alloc"}
    assert all(e[2] in (GFP_KERNEL, GFP_KERNEL | __GFP_HIGHMEM) for e in enters if e[1] == "pte_alloc_map")
    assert all(e[2] == GFP_ATOMIC and e[3] >= 1 for e in enters if e[1] == "pte_chain_alloc")


def test_mmframe_reserve_exit(isolated, install_plugin):
    seen = _sites_run(install_plugin)
    # an exit follows exactly the enters that returned a mask (pte_alloc_map here), in order
    pairs = [(e[1], e[3]) for e in seen if e[0] == "enter" and e[1] == "pte_alloc_map"]
    exits = [(e[1], e[2]) for e in seen if e[0] == "exit"]
    assert exits == pairs and exits
    mainline = Machine(load_config(env={}))
    assert not mainline.reserving


def test_mmframe_get_user_pages(isolated, install_plugin):
    """Contract 1.9: the user-page mapping step of direct I/O; the plugin's answer is used (an
    error it returns is the system call's), ``None`` defers to the core's get_user_pages."""
    from mmframe import usr
    install_plugin("gup", """
        from mmframe.facade import hookimpl
        CALLS = []

        @hookimpl
        def mmframe_get_user_pages(vm, mm, start, nr_pages, write, force):
            CALLS.append((nr_pages, write))
            if nr_pages == 3:
                return -14  # -EFAULT: the plugin refuses
            if nr_pages == 2:
                return None  # defer to the core
            return vm.get_user_pages(mm, start, nr_pages, write, force)
    """)
    m = Machine(load_config(use_pyproject=False, env={}, cli_plugins=["gup"]))
    plugin = next(v for k, v in sys.modules.items() if k.startswith("mmtest_gup_"))

    def prog(ctx):
        fd = yield usr.open("/f", usr.O_CREAT | usr.O_RDWR | usr.O_DIRECT)
        buf = yield _anon(4 * 4096)
        yield usr.write(buf, 6)
        yield usr.pwrite(fd, buf, 2 * 4096, 0)
        yield usr.pwrite(fd, buf, 3 * 4096, 0)
        yield usr.pread(fd, buf + 3 * 4096, 4096, 0)
        yield usr.read(buf + 3 * 4096)

    r = m.run(prog)
    assert [v for _, v in r.tasks["1"].calls[-4:]] == [2 * 4096, -usr.EFAULT, 4096, 6]
    assert plugin.CALLS == [(2, False), (3, False), (1, True)]


SCOPED = """
from mmframe.facade import CostEntry, HookScope, hookimpl
FAULTS, CHANGES, SCOPE = [], [], {}

@hookimpl
def mmframe_cost_entries():
    return [CostEntry("scoped.lock", 40, "estimate", "test figure")]

@hookimpl
def mmframe_hook_scope(machine, options):
    return HookScope(**SCOPE)

@hookimpl
def mmframe_copy_pte_page(vm, src, dst, idx):
    vm.pmd_share(src, dst, idx, vm.pmd_writable(src, idx))  # shared writable: the test reads only
    return True

@hookimpl
def mmframe_handle_mm_fault(vm, mm, vma, address, write_access):
    FAULTS.append((address, write_access))
    idx = address >> vm.pmd_shift
    if write_access and mm.ptp[idx] is not None and not vm.pmd_writable(mm, idx):
        vm.pmd_set_writable(mm, idx, True)
    return None

@hookimpl
def mmframe_pte_change(vm, mm, idx, reason, start, end):
    CHANGES.append(reason)
    return None
"""


def _scoped(install_plugin, **scope):
    mod = install_plugin("scoped", SCOPED)
    plugin = sys.modules.get(mod) or __import__(mod)
    plugin.SCOPE.clear()
    plugin.SCOPE.update(scope)
    return Machine(load_config(env={}, cli_plugins=["scoped"])), plugin


def test_mmframe_hook_scope(isolated, install_plugin):
    """The hooks are called for the declared cases only; ``fault_cost`` is charged by the core for
    every other fault, one at a time and on touch's bulk path alike."""
    from mmframe import usr
    m, plugin = _scoped(install_plugin, fault={"pmd_wrprotect"}, fault_cost="scoped.lock", pte_change={"mprotect"})
    vm = m.mm
    m.sched.handlers["wrprotect_pmd"] = lambda task, addr: vm.pmd_set_writable(task.mm, addr >> vm.sh, False)

    def prog(ctx):
        a = yield _anon(4 << 20)
        yield usr.touch(a, 64 * 4096, True)  # bulk: 64 faults, none in scope
        yield usr.write(a + (1 << 20), 1)  # a single fault, not in scope
        yield ("wrprotect_pmd", a)
        yield usr.write(a + (1 << 20) + 4096, 2)  # a write through a write-protected PMD: the hook
        yield usr.mprotect(a, 4096, usr.PROT_READ)
        yield usr.munmap(a, 4 << 20)

    m.run(prog)
    assert [w for _, w in plugin.FAULTS] == [True]
    assert m.acct.totals()["scoped.lock"] == 64 + 1  # the faults the hook was not called for
    assert plugin.CHANGES == ["mprotect"]  # no fault, zap or exit call on an unshared table
    assert m.acct.totals()["page_fault"] == 64 + 2


@pytest.mark.parametrize("case", ["no_pte", "shared_pte"])
def test_mmframe_hook_scope_fault_cases(isolated, install_plugin, case):
    """``no_pte``: the first fault of each PTE page; ``shared_pte``: faults into a table another mm
    uses (here shared at fork by the test plugin's copy hook); ``pte_change_shared``: its reasons on
    a shared table only."""
    from mmframe import usr
    m, plugin = _scoped(install_plugin, fault={case}, pte_change=(), pte_change_shared={"fault"})
    seen = {}

    def child(ctx):
        seen["child"] = len(plugin.FAULTS), len(plugin.CHANGES)
        yield usr.read(0x4000_0000 + 5 * 4096)  # a fault in the shared table
        seen["child after"] = len(plugin.FAULTS), len(plugin.CHANGES)
        yield usr.exit(0)

    def prog(ctx):
        a = yield usr.mmap(0x4000_0000, 8 << 20, usr.PROT_READ | usr.PROT_WRITE,
                           usr.MAP_SHARED | usr.MAP_ANONYMOUS | usr.MAP_FIXED)
        yield usr.write(a, 1)  # first fault of the first PTE page
        yield usr.write(a + 4096, 1)  # second fault there
        yield usr.touch(a + (4 << 20), 64 * 4096, True)  # the second PTE page, on the bulk path
        seen["parent"] = len(plugin.FAULTS), len(plugin.CHANGES)
        yield usr.wait((yield usr.fork(child)))

    m.run(prog)
    if case == "no_pte":
        assert seen["parent"] == (2, 0)  # one per PTE page; no pte_change on unshared tables
        assert seen["child after"][0] == seen["child"][0]  # the child's table is there: not called
    else:
        assert seen["parent"] == (0, 0)
        assert seen["child after"][0] == seen["child"][0] + 1  # the shared table: called
    assert seen["child after"][1] == seen["child"][1] + 1  # pte_change "fault" on the shared table


@pytest.mark.parametrize("scope, message", [
    ({"fault": {"bogus"}}, "unknown cases \\['bogus'\\] in fault"),
    ({"pte_change": {"fork", "nope"}}, "unknown cases \\['nope'\\] in pte_change"),
    ({"fault_cost": "no.such"}, "unknown cost entries \\['no.such'\\]"),
])
def test_mmframe_hook_scope_bad_declarations_are_named(isolated, install_plugin, scope, message):
    with pytest.raises(PluginError, match=f"plugin 'scoped': mmframe_hook_scope: {message}"):
        _scoped(install_plugin, **scope)


def test_mmframe_hook_scope_only_for_hooks_the_plugin_implements(isolated, install_plugin):
    mod = install_plugin("half", """
from mmframe.facade import HookScope, hookimpl

@hookimpl
def mmframe_hook_scope(machine, options):
    return HookScope(pte_change={"zap"})
""")
    with pytest.raises(PluginError, match="'half'.*scopes mmframe_pte_change.*does not implement"):
        Machine(load_config(env={}, cli_plugins=["half"]))
