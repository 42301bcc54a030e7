"""The house rules (docs/architecture.md): which way imports go, no function-level imports in the
model, shipped plugins use only the facade (by their imports and, at run time, by what they touch
on the objects their hooks receive), and system calls come from the one table."""

from __future__ import annotations

import ast
import inspect
import sys
import types
import typing
from pathlib import Path

import attrs
import pytest

import mmframe
import mmframe_plugins
from mmframe import facade, syscalls
from mmframe.block.bio import Bio
from mmframe.config import load_config
from mmframe.facade import block as fblock
from mmframe.facade import mm as fmm
from mmframe.machine import Machine
from mmframe.mm.vma import VMA
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, exit, fork, mmap, mprotect,
                         munmap, read, touch, wait, write)

SRC = Path(mmframe.__file__).parent
PLUGINS = Path(mmframe_plugins.__file__).parent

# The layers, lowest first: a module may import its own layer and those below, never above.
BASE = ("mmframe", "mmframe.usr", "mmframe.units", "mmframe.errors", "mmframe.options")
RUN = ("mmframe.scenario", "mmframe.core_plugin", "mmframe.workloads", "mmframe.differential", "mmframe.results",
       "mmframe.sweep", "mmframe.executors", "mmframe.plot",
       "mmframe.host", "mmframe.calibrate", "mmframe.validate")  # the last three: validation against the host
CLI = ("mmframe.cli", "mmframe.compare",  # the command line and the subcommands in their own modules
       "mmframe.testing")  # the plugin author's kit: a client of everything, like the command line
LAYERS = {"base": 0, "model": 1, "run": 2, "facade": 3, "cli": 4}  # the facade re-exports the run layer's Scenario

# Known exceptions, each with its reason (keep this short).
ALLOWED_UPWARD = {
    # scenario names are validated against the registry while a config loads: config -> scenario -> machine
    # -> config; the run layer is where scenarios live, so config asks for it when it needs it
    ("mmframe.config", "mmframe.scenario"),
    # the run layer's own composition: scenario runs machines, built from configs that name scenarios
    ("mmframe.scenario", "mmframe.machine"),
}


def layer(mod: str) -> str:
    if mod in BASE:
        return "base"
    if mod in CLI or any(mod.startswith(c + ".") for c in CLI):
        return "cli"
    if mod == "mmframe.facade" or mod.startswith("mmframe.facade."):
        return "facade"
    if any(mod == r or mod.startswith(r + ".") for r in RUN):
        return "run"
    return "model"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, package: str) -> list[tuple[str, str]]:
    """(imported module, where) for every import in ``path``: where is "top", "type" (under
    ``if TYPE_CHECKING``) or "function"."""
    tree = ast.parse(path.read_text())
    out: list[tuple[str, str]] = []

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            mod = f"{base}.{node.module}" if node.module else base
        else:
            mod = node.module or ""
        # "from pkg import sub" imports the submodule when there is one
        return [f"{mod}.{a.name}" if _is_module(f"{mod}.{a.name}") else mod for a in node.names]

    def walk(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.extend((n, where) for n in names(child))
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                walk(child, "type")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                walk(child, "function")
            else:
                walk(child, where)

    walk(tree, "top")
    return out


def _is_module(name: str) -> bool:
    parts = name.split(".")
    for root in (SRC.parent, PLUGINS.parent):
        p = root.joinpath(*parts)
        if p.with_suffix(".py").exists() or (p / "__init__.py").exists():
            return True
    return name.startswith("mmframe_plugins.") and (PLUGINS / name.split(".", 1)[1]).exists()


def model_files() -> list[tuple[str, Path]]:
    return [(module_name(p), p) for p in sorted(SRC.rglob("*.py"))]


def own(mod: str) -> str:
    """The mmframe module an import names, or "" for the standard library and third parties."""
    if mod == "mmframe" or mod.startswith("mmframe."):
        return mod
    if mod.startswith("mmframe_plugins"):
        return mod
    return ""


def test_the_rules_see_the_imports_they_check():
    """The checker finds known imports of each kind (so an empty result means something)."""
    got = imports(SRC / "mm" / "memory.py", "mmframe.mm")
    assert ("mmframe.mm.fault", "top") in got and ("mmframe.machine", "type") in got
    got = imports(SRC / "config.py", "mmframe")
    assert ("mmframe.scenario", "function") in got


def test_imports_go_down_the_layers():
    bad = []
    for mod, path in model_files():
        here = LAYERS[layer(mod)]
        for target, where in imports(path, mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]):
            t = own(target)
            if not t:
                continue
            if t.startswith("mmframe_plugins"):
                bad.append(f"{mod} imports the plugin {t}: the model never imports a particular plugin")
                continue
            if where == "type" and mod == "mmframe.hookspecs":
                continue  # the specs name the types their hooks receive and return
            if LAYERS[layer(t)] > here and (mod, t) not in ALLOWED_UPWARD:
                bad.append(f"{mod} ({layer(mod)}) imports {t} ({layer(t)}) [{where}]")
    assert not bad, "\n".join(bad)


def test_the_model_never_imports_a_workload_the_cli_or_a_plugin():
    bad = [(mod, t) for mod, path in model_files() if layer(mod) in ("base", "model", "facade")
           for t, _ in imports(path, mod.rsplit(".", 1)[0])
           if own(t).startswith(("mmframe.workloads", "mmframe.cli", "mmframe_plugins"))]
    assert not bad


def test_no_function_level_imports_in_the_model():
    bad = [(mod, t) for mod, path in model_files() if layer(mod) in ("base", "model", "facade")
           for t, where in imports(path, mod.rsplit(".", 1)[0])
           if where == "function" and own(t) and (mod, own(t)) not in ALLOWED_UPWARD]
    assert not bad


# --- the facade -------------------------------------------------------------------------------

def plugin_files() -> list[Path]:
    return sorted(p for p in PLUGINS.rglob("*.py") if p.parent != PLUGINS)


def test_shipped_plugins_import_only_the_facade():
    assert plugin_files(), "no shipped plugin found"
    bad = []
    for path in plugin_files():
        pkg = "mmframe_plugins." + path.parent.relative_to(PLUGINS).as_posix().replace("/", ".")
        for target, _ in imports(path, pkg):
            t = own(target)
            if t and not (t == "mmframe.facade" or t.startswith("mmframe.facade.") or t.startswith(pkg)):
                bad.append(f"{path.relative_to(PLUGINS.parent)} imports {t}: plugins use only mmframe.facade")
    assert not bad, "\n".join(bad)


def test_the_import_check_catches_a_plugin_reaching_into_the_model(tmp_path):
    p = tmp_path / "bad.py"
    p.write_text("from mmframe.mm.memory import Memory\nfrom mmframe.facade import VM\nimport mmframe.mm.pmd\n")
    got = {own(t) for t, _ in imports(p, "mmframe_plugins.bad")}
    assert {"mmframe.mm.memory", "mmframe.facade", "mmframe.mm.pmd"} <= got


def test_vm_fault_codes_keep_2_5_49s_numbers():
    # include/linux/mm.h, 2.5.49: VM_FAULT_OOM (-1), VM_FAULT_SIGBUS 0, VM_FAULT_MINOR 1, VM_FAULT_MAJOR 2
    assert (facade.VM_FAULT_OOM, facade.VM_FAULT_SIGBUS, facade.VM_FAULT_MINOR, facade.VM_FAULT_MAJOR) == (-1, 0, 1, 2)
    assert facade.FACADE_VERSION == mmframe.HOOK_CONTRACT_VERSION


PROTOCOLS = (fmm.VM, fmm.MM, fmm.VMA, fmm.VMAs, fmm.PteTable, fmm.Allocator, fmm.MachineView,
             fblock.BlockQueue, fblock.BlockRequest, fblock.BlockBio)


def members(proto: type) -> set[str]:
    names = set(getattr(proto, "__annotations__", {}))
    names |= {n for n, v in vars(proto).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return names | ({"__iter__", "__len__"} if proto is fmm.VMAs else set())


@pytest.mark.parametrize("proto", PROTOCOLS, ids=lambda p: p.__name__)
def test_every_facade_member_is_documented(proto):
    for name in members(proto):
        if name.startswith("__"):
            continue
        v = vars(proto).get(name)
        if v is not None and (callable(v) or isinstance(v, property)):
            assert (v.__doc__ or "").strip(), f"{proto.__name__}.{name} has no docstring"


def test_the_core_objects_offer_what_the_facade_declares():
    """The Protocols are over the real objects: every declared member exists on them."""
    cfg = load_config(use_pyproject=False, env={})
    m = Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=16 << 20)))
    vm = m.mm
    mm = vm.new_mm()
    vm.pte_alloc(mm, 1)
    objs = {fmm.VM: vm, fmm.MM: mm, fmm.VMAs: mm.vmas, fmm.PteTable: mm.ptp[1], fmm.Allocator: m.pagealloc,
            fmm.MachineView: m, fmm.VMA: VMA(0, 4096, 0)}
    q = m.block.device().queue
    q.make_request(Bio(0, 8, [(vm.alloc_user_page(), 0, 4096)]))
    objs.update({fblock.BlockQueue: q, fblock.BlockRequest: q.last_merge, fblock.BlockBio: q.last_merge.bio})
    for proto, obj in objs.items():
        missing = [n for n in members(proto) if not hasattr(obj, n)]
        assert not missing, f"{type(obj).__name__} lacks {proto.__name__} members {missing}"


# --- the runtime check: a shipped plugin touches only what the facade declares -------------------

class FacadeViolation(AssertionError):
    pass


def _unwrap(x):
    return object.__getattribute__(x, "_obj") if isinstance(x, Guard) else x


def _guard(value, hint):
    """Wrap ``value`` per the facade type ``hint`` (a Protocol, optional, or a sequence of them)."""
    if value is None:
        return None
    if hint in PROTOCOLS:
        return Guard(value, hint)
    args = typing.get_args(hint)
    if type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return _guard(value, inner[0]) if len(inner) == 1 else value
    origin = typing.get_origin(hint)
    if origin is not None and args and any(a in PROTOCOLS or typing.get_args(a) for a in args):
        if origin is list or origin is typing.Sequence or str(origin).endswith("Sequence'>"):
            return GuardSeq(value, args[0])
        if origin is typing.Iterator or str(origin).endswith("Iterator'>"):
            return (_guard(v, args[0]) for v in value)
    return value


class GuardSeq:
    __slots__ = ("_obj", "_hint")

    def __init__(self, obj, hint):
        self._obj, self._hint = obj, hint

    def __getitem__(self, i):
        return _guard(self._obj[i], self._hint)

    def __len__(self):
        return len(self._obj)

    def __iter__(self):
        return (_guard(v, self._hint) for v in self._obj)

    def __setitem__(self, i, v):
        raise FacadeViolation("a plugin wrote into an mm's PTE page list: change it through VM's primitives")


class Guard:
    """An object seen through a facade Protocol: reading an undeclared member fails; writing any
    attribute fails; arguments are unwrapped on the way into the core, results wrapped on the way out."""

    __slots__ = ("_obj", "_proto")

    def __init__(self, obj, proto):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_proto", proto)

    def __getattr__(self, name):
        proto = object.__getattribute__(self, "_proto")
        obj = object.__getattribute__(self, "_obj")
        if name not in members(proto):
            raise FacadeViolation(f"a shipped plugin touched {proto.__name__}.{name}, which mmframe.facade "
                                  "does not declare")
        value = getattr(obj, name)
        hints = typing.get_type_hints(proto, vars(fmm))
        if name in hints:
            return _guard(value, hints[name])
        member = vars(proto).get(name)
        if isinstance(member, property):
            return value
        ret = typing.get_type_hints(member, vars(fmm)).get("return")

        def call(*args, **kw):
            r = value(*[_unwrap(a) for a in args], **{k: _unwrap(v) for k, v in kw.items()})
            return _guard(r, ret)

        return call

    def __setattr__(self, name, value):
        raise FacadeViolation(f"a shipped plugin set {object.__getattribute__(self, '_proto').__name__}.{name}")

    def __iter__(self):
        return iter(self.__getattr__("__iter__")())

    def __len__(self):
        return self.__getattr__("__len__")()


HOOK_TYPES = {
    "mmframe_copy_pte_page": (fmm.VM, fmm.MM, fmm.MM, None),
    "mmframe_handle_mm_fault": (fmm.VM, fmm.MM, fmm.VMA, None, None),
    "mmframe_pte_change": (fmm.VM, fmm.MM, None, None, None, None),
    "mmframe_alloc_pages": (fmm.Allocator, None, None, None),
    "mmframe_free_pages": (fmm.Allocator, None, None, None),
    "mmframe_configure": (fmm.MachineView, None),
    "mmframe_report": (fmm.MachineView, None),
    "mmframe_unconfigure": (fmm.MachineView,),
    "mmframe_get_user_pages": (fmm.VM, fmm.MM, None, None, None, None),
}


def guarded(plugin: types.ModuleType, name: str) -> types.ModuleType:
    """A plugin module whose hooks call ``plugin``'s with every facade-typed argument guarded."""
    mod = types.ModuleType(name)
    for hook in dir(plugin):
        fn = getattr(plugin, hook)
        if not hook.startswith("mmframe_") or not callable(fn):
            continue
        if hook not in HOOK_TYPES:
            setattr(mod, hook, fn)  # registration hooks receive nothing to guard
            continue
        kinds = HOOK_TYPES[hook]

        def wrapper(*args, _fn=fn, _kinds=kinds):
            return _fn(*[Guard(a, k) if k is not None else a for a, k in zip(args, _kinds)])

        wrapper.__signature__ = inspect.signature(fn)
        wrapper.__name__ = hook
        setattr(mod, hook, facade.hookimpl(**_impl_opts(fn))(_positional(wrapper, fn)))
    return mod


def _impl_opts(fn):
    opts = dict(getattr(fn, "mmframe_impl", {}) or {})
    return {k: v for k, v in opts.items() if v and k in ("tryfirst", "trylast", "wrapper", "hookwrapper")}


def _positional(wrapper, fn):
    """pluggy calls implementations with keywords of the names they declare: take them in order."""
    params = list(inspect.signature(fn).parameters)
    src = f"def {fn.__name__}({', '.join(params)}):\n    return w({', '.join(params)})\n"
    env = {"w": wrapper}
    exec(src, env)  # noqa: S102 - a test shim with the plugin's own parameter names
    return env[fn.__name__]


def _facade_workload(ctx):
    a = yield mmap(0, 12 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    s = yield mmap(0, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    yield touch(a, 12 << 20, True)
    yield touch(s, 4 << 20, True)
    pid = yield fork()
    if pid == 0:
        yield write(a + 4096, 7)  # a write fault into a shared PTE page: unshare
        yield munmap(a + (4 << 20), 4 << 20)  # whole PTE pages (when aligned): a PMD operation
        yield mprotect(a, 1 << 20, PROT_READ)  # part of one: unshare first
        yield touch(s, 1 << 20, True)
        yield exit((yield read(a + 4096)))
    yield mprotect(a + (8 << 20), 4 << 20, PROT_READ)
    yield wait(pid)
    yield write(a, 3)
    return (yield read(a))


def _run(plugins: dict[str, types.ModuleType], enable: list[str]):
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=enable, extra_plugins=plugins)
    m = Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=64 << 20, debug_vm="exit")))
    r = m.run(_facade_workload)
    return r, m.close()


def test_pt_shared_touches_only_the_facade_at_run_time():
    pt_shared = sys.modules["mmframe_plugins.pt_shared"] if "mmframe_plugins.pt_shared" in sys.modules else \
        __import__("mmframe_plugins.pt_shared", fromlist=["x"])
    plain, plain_figs = _run({}, ["pt_shared"])
    g, g_figs = _run({"pt_shared_guarded": guarded(pt_shared, "pt_shared_guarded")}, ["pt_shared_guarded"])
    assert g.tasks == plain.tasks and dict(g.counts) == dict(plain.counts)
    assert g_figs == plain_figs and plain_figs["pt_shared.unshares"] > 0 and plain_figs["pt_shared.pmd_ops"] > 0


def test_the_guard_catches_a_plugin_touching_the_model():
    spy = types.ModuleType("spy")

    def mmframe_handle_mm_fault(vm, mm, vma, address, write_access):
        return vm.m.plugin_state  # not in the facade: vm.plugin_state is

    spy.mmframe_handle_mm_fault = facade.hookimpl(mmframe_handle_mm_fault)
    with pytest.raises(Exception, match="VM.m, which mmframe.facade does not declare"):
        _run({"spy": guarded(spy, "spy")}, ["spy"])


# --- system calls from one table ----------------------------------------------------------------

def test_system_calls_come_from_the_one_table():
    cfg = load_config(use_pyproject=False, env={})
    m = Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=16 << 20)))
    assert set(m.sched.handlers) == set(syscalls.SYSCALLS)
    for name, (owner, fn) in syscalls.SYSCALLS.items():
        h = m.sched.handlers[name]
        assert h.__self__ is getattr(m, owner) and h.__func__ is fn


def test_no_constructor_registers_system_calls():
    bad = [mod for mod, path in model_files() if layer(mod) == "model" and ".handlers[" in path.read_text()
           and mod not in ("mmframe.machine",)]  # (the machine wraps them all for debug_vm = "syscall")
    assert not bad, f"system calls are registered in mmframe/syscalls.py, not by {bad}"
