"""Plugin discovery, opt-in selection, validation and resolved dispatch.

Discovery reads the entry-point group ``mmframe`` (shipped plugins register there too).  A plugin is
*loaded* (imported) unless blocked with ``no:NAME``, so it can be listed with its options; it takes
part in a run only when the run *enables* it.  Selection layers, lowest precedence first:
embedded default < ``[tool.mmframe]`` in pyproject.toml < config file < ``MMFRAME_PLUGINS`` <
command line.  Each layer is a list of tokens ``NAME`` (enable) or ``no:NAME`` (block); a later
layer's word on a name wins.

Dispatch: :func:`build_hooks` resolves every hook into one plain callable (or ``None`` when nothing
implements it) so hot paths pay a Python call, not pluggy's generic loop.  Ordering, firstresult and
wrapper semantics are pluggy's: hooks with a wrapper are called through pluggy's public ``HookCaller``
(a test checks the resolved callables against it for any mix of implementations).  Only pluggy's
public API is used.
"""

from __future__ import annotations

import importlib
import inspect
import importlib.metadata as md
import types
from typing import Any, Callable, Iterable, Sequence

import attrs
import pluggy

from mmframe import __version__, hookspecs
from mmframe.errors import PluginError, UsageError
from mmframe.mm.pte_change import REASONS
from mmframe.options import Option

ENTRY_POINT_GROUP = "mmframe"
CORE = "mmframe.core"
CORE_PLUGINS = ("mmframe.core_plugin",)  # modules registered in every run, always first


@attrs.define(slots=True)
class PluginInfo:
    """One discovered plugin: where it comes from and, once loaded, its module and options."""

    name: str
    dist: str
    version: str
    target: str  # module path the entry point names
    module: types.ModuleType | None = None
    options: tuple[Option, ...] = ()
    builtin: bool = False

    @property
    def hooks(self) -> list[str]:
        if self.module is None:
            return []
        return sorted(n for n in dir(self.module) if n.startswith("mmframe_")
                      and callable(getattr(self.module, n)))


def parse_tokens(tokens: Iterable[str], source: str) -> list[tuple[str, bool]]:
    """``["a", "no:b"]`` -> ``[("a", True), ("b", False)]``; bad tokens raise UsageError."""
    out = []
    for tok in tokens:
        if not isinstance(tok, str) or not tok.strip():
            raise UsageError(f"{source}: plugin names must be non-empty strings, got {tok!r}")
        tok = tok.strip()
        enable = not tok.startswith("no:")
        name = tok if enable else tok[3:].strip()
        if not name:
            raise UsageError(f"{source}: 'no:' must be followed by a plugin name")
        out.append((name, enable))
    return out


@attrs.frozen(slots=True)
class Selection:
    """The outcome of the precedence chain: enabled names in order of first enabling, blocked names,
    and for each name the layer that decided it (for error messages)."""

    enabled: tuple[str, ...]
    blocked: frozenset[str]
    decided_by: dict[str, str]


def resolve_selection(layers: Sequence[tuple[str, Iterable[str]]]) -> Selection:
    """Apply layers (``(source, tokens)``, lowest precedence first): a later layer wins per name."""
    state: dict[str, bool] = {}
    decided: dict[str, str] = {}
    for source, tokens in layers:
        for name, enable in parse_tokens(tokens, source):
            state.pop(name, None)  # re-insert so order follows the deciding layer
            state[name] = enable
            decided[name] = source
    return Selection(tuple(n for n, on in state.items() if on),
                     frozenset(n for n, on in state.items() if not on), decided)


def discover_entry_points() -> list[md.EntryPoint]:
    """Entry points of group ``mmframe`` across installed distributions, first per name kept."""
    seen: dict[str, md.EntryPoint] = {}
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)
    return sorted(seen.values(), key=lambda e: e.name)


class Catalog:
    """Every discovered plugin not blocked, loaded, its specs checked and options collected."""

    def __init__(self, blocked: Iterable[str] = (), extra: dict[str, types.ModuleType] | None = None,
                 extra_specs: Sequence[types.ModuleType | type] = ()) -> None:
        self.blocked = frozenset(blocked)
        self.extra_specs = tuple(extra_specs)  # specs beyond the contract (dispatch tests, benchmarks)
        self.plugins: dict[str, PluginInfo] = {}
        for ep in discover_entry_points():
            if ep.name in self.blocked:
                continue  # blocked before it loads: never imported
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else "?"
            info = PluginInfo(ep.name, dist, version, ep.value)
            try:
                mod = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's, named
                raise PluginError(f"plugin {ep.name!r} (distribution {dist} {version}) failed to load: "
                                  f"{type(exc).__name__}: {exc}", plugin=ep.name) from exc
            if not isinstance(mod, types.ModuleType):
                raise PluginError(f"plugin {ep.name!r} (distribution {dist}): entry point {ep.value!r} "
                                  "must name a module", plugin=ep.name)
            info.module = mod
            self.plugins[ep.name] = info
        for name, mod in (extra or {}).items():  # plugins handed in directly (tests, embedding)
            if name not in self.blocked:
                self.plugins[name] = PluginInfo(name, getattr(mod, "__dist__", name),
                                                str(getattr(mod, "__version__", "0")), mod.__name__, mod)
        core = PluginInfo(CORE, "mmframe", _version(), ",".join(CORE_PLUGINS), builtin=True)
        core.module = importlib.import_module(CORE_PLUGINS[0])
        self.core = core
        self._check_specs()
        for info in self.plugins.values():
            info.options = tuple(call_one(info, "mmframe_options") or ())
            _check_options(info)

    def _check_specs(self) -> None:
        for info in [self.core, *self.plugins.values()]:
            assert info.module is not None
            pm = _new_pm(self.extra_specs)
            try:
                pm.register(info.module, name=info.name)
                pm.check_pending()
            except pluggy.PluginValidationError as exc:
                raise PluginError(f"plugin {info.name!r} (distribution {info.dist}): {exc}",
                                  plugin=info.name) from exc

    def require(self, names: Iterable[str], source: str) -> None:
        """Raise naming ``source`` and what is available if any name is not an installed plugin."""
        missing = [n for n in names if n not in self.plugins]
        if missing:
            avail = ", ".join(sorted(self.plugins)) or "none installed"
            raise UsageError(f"{source}: unknown plugin {', '.join(map(repr, missing))} (available: {avail})")

    def options_of(self, name: str) -> dict[str, Option]:
        return {o.name: o for o in self.plugins[name].options}


def _version() -> str:
    return __version__


def _new_pm(extra_specs: Sequence[types.ModuleType | type] = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for spec in extra_specs:
        pm.add_hookspecs(spec)
    return pm


def call_one(info: PluginInfo, hook: str, **kwargs: Any) -> Any:
    """Call one plugin's implementation of a registration/lifecycle hook, naming it if it raises."""
    fn = getattr(info.module, hook, None)
    if fn is None:
        return None
    impl_args = inspect.signature(fn).parameters
    try:
        return fn(**{k: v for k, v in kwargs.items() if k in impl_args})
    except Exception as exc:  # noqa: BLE001 - reported with plugin and hook
        raise PluginError(f"plugin {info.name!r} raised in {hook}: {type(exc).__name__}: {exc}",
                          plugin=info.name, hook=hook) from exc


def _check_options(info: PluginInfo) -> None:
    seen = set()
    for opt in info.options:
        if not isinstance(opt, Option):
            raise PluginError(f"plugin {info.name!r}: mmframe_options must return Option objects, "
                              f"got {opt!r}", plugin=info.name, hook="mmframe_options")
        if opt.name in seen:
            raise PluginError(f"plugin {info.name!r} declares option {opt.name!r} twice",
                              plugin=info.name, hook="mmframe_options")
        seen.add(opt.name)
        try:
            opt.coerce(opt.default)
        except ValueError as exc:
            raise PluginError(f"plugin {info.name!r}: default of option {opt.name!r} is not "
                              f"{exc}", plugin=info.name, hook="mmframe_options") from exc


# --- resolved dispatch ------------------------------------------------------------------------

@attrs.define(slots=True)
class ResolvedHook:
    """One hook after resolution: ``call`` is the plain callable (``None`` if nothing implements it);
    ``owners`` the plugin names in call order."""

    name: str
    call: Callable[..., Any] | None
    owners: tuple[str, ...]
    firstresult: bool


class Hooks:
    """The resolved hooks of one machine: ``hooks.mmframe_x`` is a plain callable or ``None``.

    Built once per machine by :func:`build_hooks`; ``pm`` is the pluggy manager it came from, kept
    for introspection and for raw calls in benchmarks.
    """

    def __init__(self, pm: pluggy.PluginManager, plugin_names: tuple[str, ...]) -> None:
        self.pm = pm
        self.plugin_names = plugin_names
        self.resolved: dict[str, ResolvedHook] = {}
        self.impl_codes: dict[types.CodeType, tuple[str, str]] = {}
        for name in _spec_names(pm):
            caller = getattr(pm.hook, name)
            impls = caller.get_hookimpls()
            for impl in impls:
                code = getattr(impl.function, "__code__", None)
                if code is not None:
                    self.impl_codes[code] = (impl.plugin_name, name)
            rh = ResolvedHook(name, resolve(caller), tuple(i.plugin_name for i in reversed(impls)),
                              bool(caller.spec and caller.spec.opts.get("firstresult")))
            self.resolved[name] = rh
            setattr(self, name, rh.call)

    def attribute(self, exc: BaseException) -> tuple[str, str] | None:
        """(plugin, hook) of the innermost hook implementation in ``exc``'s traceback, if any.

        Costs nothing until an exception happens: hot paths carry no try/except for this.
        """
        found = None
        tb = exc.__traceback__
        while tb is not None:
            hit = self.impl_codes.get(tb.tb_frame.f_code)
            if hit is not None:
                found = hit
            tb = tb.tb_next
        return found


def _spec_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(n for n in vars(pm.hook) if not n.startswith("_")
                  and getattr(getattr(pm.hook, n), "spec", None) is not None)


def resolve(caller: pluggy.HookCaller) -> Callable[..., Any] | None:
    """A plain callable equivalent to ``caller(**kwargs)`` taking the spec's arguments positionally.

    Built from pluggy's public API only (``HookCaller.get_hookimpls``, ``HookImpl.function`` and
    ``argnames``, ``HookCaller.spec``; a hook with a wrapper is the ``HookCaller`` itself, called
    with keywords), so no pluggy version pin is needed beyond the major.  None when there is no
    implementation.  One implementation taking exactly the spec's arguments on a firstresult hook
    resolves to the implementation itself; several to closures calling them in pluggy's order (:func:`_chain`).  Complexity: O(implementations) per call, no per-call dictionary unless an
    implementation takes a subset of the arguments or a wrapper takes part.
    """
    assert caller.spec is not None
    argnames = tuple(caller.spec.argnames)
    firstresult = bool(caller.spec.opts.get("firstresult"))
    impls = caller.get_hookimpls()
    if not impls:
        return None
    if any(i.wrapper or i.hookwrapper for i in impls):
        def via_pluggy(*args: Any) -> Any:
            return caller(**dict(zip(argnames, args)))

        return via_pluggy
    order = list(reversed(impls))  # pluggy calls the last registered / tryfirst first
    if all(tuple(i.argnames) == argnames for i in order):
        return _chain([i.function for i in order], firstresult, len(argnames))
    pickers = [(i.function, tuple(argnames.index(a) for a in i.argnames)) for i in order]
    return _chain([_picking(fn, idx) for fn, idx in pickers], firstresult, len(argnames))


def _picking(fn: Callable[..., Any], idx: tuple[int, ...]) -> Callable[..., Any]:
    """``fn`` called with the spec arguments it declares (pluggy passes an implementation only those)."""
    def call(*args: Any) -> Any:
        return fn(*[args[k] for k in idx])

    return call


def _chain(fns: list[Callable[..., Any]], firstresult: bool, arity: int) -> Callable[..., Any]:
    """Call ``fns`` in order with the same ``arity`` arguments: the first non-None result
    (firstresult), or the list of non-None results.

    A firstresult chain is nested fixed-arity closures (``_first_<arity>``): a policy alone is the
    function itself, a policy deferring to the core's costs one call more than the two functions
    (forwarding ``*args`` instead costs about three times as much per call, measured).  Hooks that
    return every result are lifecycle-like and take the plain loop.
    """
    if firstresult:
        if len(fns) == 1:
            return fns[0]
        first = _FIRST.get(arity)
        if first is not None:
            return first(fns[0], _chain(fns[1:], True, arity))

        def first_of(*args: Any) -> Any:
            for f in fns:
                r = f(*args)
                if r is not None:
                    return r
            return None

        return first_of

    def collect(*args: Any) -> list[Any]:
        out = []
        for f in fns:
            r = f(*args)
            if r is not None:
                out.append(r)
        return out

    return collect


def _first_0(f: Callable[..., Any], g: Callable[..., Any]) -> Callable[..., Any]:
    def first():  # type: ignore[no-untyped-def]
        r = f()
        return r if r is not None else g()

    return first

def _first_1(f: Callable[..., Any], g: Callable[..., Any]) -> Callable[..., Any]:
    def first(a0):  # type: ignore[no-untyped-def]
        r = f(a0)
        return r if r is not None else g(a0)

    return first

def _first_2(f: Callable[..., Any], g: Callable[..., Any]) -> Callable[..., Any]:
    def first(a0, a1):  # type: ignore[no-untyped-def]
        r = f(a0, a1)
        return r if r is not None else g(a0, a1)

    return first

def _first_3(f: Callable[..., Any], g: Callable[..., Any]) -> Callable[..., Any]:
    def first(a0, a1, a2):  # type: ignore[no-untyped-def]
        r = f(a0, a1, a2)
        return r if r is not None else g(a0, a1, a2)

    return first

def _first_4(f: Callable[..., Any], g: Callable[..., Any]) -> Callable[..., Any]:
    def first(a0, a1, a2, a3):  # type: ignore[no-untyped-def]
        r = f(a0, a1, a2, a3)
        return r if r is not None else g(a0, a1, a2, a3)

    return first

def _first_5(f: Callable[..., Any], g: Callable[..., Any]) -> Callable[..., Any]:
    def first(a0, a1, a2, a3, a4):  # type: ignore[no-untyped-def]
        r = f(a0, a1, a2, a3, a4)
        return r if r is not None else g(a0, a1, a2, a3, a4)

    return first

def _first_6(f: Callable[..., Any], g: Callable[..., Any]) -> Callable[..., Any]:
    def first(a0, a1, a2, a3, a4, a5):  # type: ignore[no-untyped-def]
        r = f(a0, a1, a2, a3, a4, a5)
        return r if r is not None else g(a0, a1, a2, a3, a4, a5)

    return first

_FIRST = {0: _first_0, 1: _first_1, 2: _first_2, 3: _first_3, 4: _first_4, 5: _first_5, 6: _first_6}


def build_hooks(catalog: Catalog, enabled: Sequence[str]) -> Hooks:
    """A pluggy manager with the core and the enabled plugins, validated and resolved.

    Raises PluginError for hooks without a spec and UsageError when two enabled plugins implement
    the same firstresult (policy) hook, naming both distributions.
    """
    catalog.require(enabled, "enabled plugins")
    pm = _new_pm(catalog.extra_specs)
    pm.register(catalog.core.module, name=CORE)
    for name in enabled:
        info = catalog.plugins[name]
        try:
            pm.register(info.module, name=name)
        except ValueError as exc:  # same module enabled under two names
            raise UsageError(f"plugin {name!r}: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc), plugin=exc.plugin if isinstance(exc.plugin, str) else None) from exc
    _check_conflicts(pm, catalog)
    return Hooks(pm, (CORE, *enabled))


def _check_conflicts(pm: pluggy.PluginManager, catalog: Catalog) -> None:
    for name in _spec_names(pm):
        caller = getattr(pm.hook, name)
        if not caller.spec.opts.get("firstresult"):
            continue
        claimants = [i.plugin_name for i in caller.get_hookimpls()
                     if not (i.wrapper or i.hookwrapper) and i.plugin_name != CORE]
        if len(claimants) > 1:
            dists = [f"{n} (distribution {catalog.plugins[n].dist})" for n in claimants]
            raise UsageError(f"policy hook {name} is implemented by more than one enabled plugin: "
                             f"{' and '.join(dists)}; enable only one of them")


#: the policy hooks a :class:`~mmframe.hookspecs.HookScope` may scope, by field
_SCOPED = (("fault", "mmframe_handle_mm_fault"), ("fault_cost", "mmframe_handle_mm_fault"),
           ("pte_change", "mmframe_pte_change"), ("pte_change_shared", "mmframe_pte_change"))


def hook_scopes(infos: Sequence[PluginInfo], hooks: Hooks, machine: Any, options: dict[str, dict[str, Any]],
                cost_ids: dict[str, int]) -> dict[str, Any]:
    """The scopes the enabled plugins declare (``mmframe_hook_scope``, contract 1.15), checked:
    ``{"fault": cases or None, "fault_cost": entry names, "pte_change": reasons or None,
    "pte_change_shared": reasons or None}``, each
    from the plugin implementing that hook (None: every call).  A plugin scoping a hook it does not
    implement, an unknown case or reason, or a cost entry not in the table is a PluginError naming
    the plugin and hook."""
    allowed = {"fault": frozenset(hookspecs.FAULT_CASES), "pte_change": frozenset(REASONS), "pte_change_shared": frozenset(REASONS)}
    out: dict[str, Any] = {"fault": None, "fault_cost": (), "pte_change": None, "pte_change_shared": None}
    hook = "mmframe_hook_scope"
    for info in infos:
        sc = call_one(info, hook, machine=machine, options=dict(options.get(info.name, {})))
        if sc is None:
            continue
        if not isinstance(sc, hookspecs.HookScope):
            raise PluginError(f"plugin {info.name!r}: {hook} must return a HookScope or None, got {sc!r}",
                              plugin=info.name, hook=hook)
        for field, scoped in _SCOPED:
            value = getattr(sc, field)
            if value is None or value == ():
                continue
            if info.name not in hooks.resolved[scoped].owners:
                raise PluginError(f"plugin {info.name!r}: {hook} scopes {scoped} ({field}), which it does not "
                                  "implement", plugin=info.name, hook=hook)
            known = allowed.get(field, cost_ids.keys())
            bad = sorted(set(value) - set(known))
            if bad:
                what = "cost entries" if field == "fault_cost" else "cases"
                raise PluginError(f"plugin {info.name!r}: {hook}: unknown {what} {bad} in {field} (allowed: "
                                  f"{', '.join(sorted(known)) if field != 'fault_cost' else 'the cost table'})",
                                  plugin=info.name, hook=hook)
            out[field] = value
    return out


def call_lifecycle(catalog: Catalog, enabled: Sequence[str], hook: str, **kwargs: Any) -> list[Any]:
    """Call a per-plugin lifecycle or registration hook on the core and each enabled plugin, in order,
    naming the plugin and hook if one raises."""
    return [call_one(info, hook, **kwargs)
            for info in [catalog.core, *(catalog.plugins[n] for n in enabled)]]

