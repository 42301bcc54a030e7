"""Config files: TOML layers validated into attrs records, with errors naming file, key and line.

Layers, lowest precedence first: the embedded default (``mmframe/data/default.toml``),
``[tool.mmframe]`` in the nearest pyproject.toml above the working directory, the config file named
on the command line, then ``MMFRAME_PLUGINS`` and ``-p`` for plugin selection.  Tables merge key by
key; ``[plugins] enable`` lists do not replace each other but stack as selection layers (see
:mod:`mmframe.plugin`).
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

from mmframe.block.elevators import registry
from mmframe.errors import ConfigError, PluginError, UsageError
from mmframe.options import Option
from mmframe.plugin import CORE, Catalog, Selection, call_one, resolve_selection

EMBEDDED = "<embedded default>"
ENV_PLUGINS = "MMFRAME_PLUGINS"

GiB = 1 << 30
NR_CPUS = 32  # i386 NR_CPUS in 2.5
DEFAULT_DISK = "hda"  # the disk a machine has when the config names none (the file system's)

MACHINE_OPTIONS: tuple[Option, ...] = (
    Option("cpus", "int", 2, "CPUs (SMP P-III class)", minimum=1, maximum=NR_CPUS),
    Option("memory", "size", "1GiB", "physical memory", minimum=16 << 20, maximum=64 * GiB),
    Option("pae", "choice", "auto", "PAE (3-level, 36-bit physical); auto = on above 4GiB",
           choices=("auto", "on", "off")),
    Option("highpte", "bool", False, "CONFIG_HIGHPTE: PTE pages from highmem"),
    Option("l1_cache_bytes", "int", 32, "L1_CACHE_BYTES: 32 on P-III, 128 on P4/Xeon (pte_chain size)",
           minimum=32, maximum=128),
    Option("seed", "int", 0, "seed of every random choice (task RNGs, generated workloads)", minimum=0),
    Option("timeslice", "int", 8, "syscalls a task runs before the next runnable task (logical, not timed)",
           minimum=1, maximum=1 << 20),
    Option("costs", "str", "", "cost table file (TOML) overriding entries of the default 2002 table"),
    Option("debug_vm", "choice", "off", "run the memory invariant checker: off, exit (when a run ends) or "
           "syscall (after every memory system call; slow)", choices=("off", "exit", "syscall")),
    Option("shmmax", "size", "32MiB", "kernel.shmmax: the largest SysV shm segment (2.5's SHMMAX is 32MiB)",
           minimum=1, maximum=4 * GiB),
    Option("aio_dio", "bool", False, "asynchronous O_DIRECT iocbs (2.5.49-mm1's AIO-DIO patch, merged in "
           "2.5.55); off: mainline 2.5.49 runs them synchronously inside io_submit"),
)
DISK_OPTIONS: tuple[Option, ...] = (
    Option("capacity", "size", "36GiB", "disk capacity", minimum=1 << 20),
    Option("elevator", "str", "deadline", "I/O scheduler of this queue (mmframe elevators lists them)"),
    Option("model", "choice", "ata-7200", "service-time model: ata-7200 (7200 rpm ATA of 2002), hp97560 "
           "(Ruemmler & Wilkes 1994), seekfree (no seek or rotation), ramdisk (rd.c, no queue)",
           choices=("ata-7200", "hp97560", "seekfree", "ramdisk")),
    Option("nr_requests", "int", 0, "requests per direction; 0 = 2.5.49's global queue_nr_requests "
           "((RAM KiB >> 9) & ~7, 16..128); a number = a per-queue depth (later: 2.6's "
           "/sys/block/<disk>/queue/nr_requests)", minimum=0, maximum=1 << 16),
    Option("bounce", "choice", "high", "bounce highmem pages (BLK_BOUNCE_HIGH, 2.5's default) or none "
           "(BLK_BOUNCE_ANY: the device reaches all memory)", choices=("high", "none")),
)
VM_OPTIONS: tuple[Option, ...] = (
    Option("overcommit_memory", "int", 0, "vm.overcommit_memory of 2.5.49 (mm/mmap.c vm_enough_memory): "
           "0 heuristic, 1 always, 2 strict (commit limit = swap + overcommit_ratio% of RAM)",
           minimum=0, maximum=2),
    Option("overcommit_ratio", "int", 50, "vm.overcommit_ratio: percent of RAM in mode 2's commit limit",
           minimum=0, maximum=1 << 20),
    Option("swap", "size", "0", "swap area size (0: no swap)", minimum=0, maximum=64 * GiB),
    Option("swap_disk", "str", "", "the [block.<name>] disk holding the swap area (empty: a disk 'swap' "
           "of its own, ata-7200 with deadline)"),
    Option("rlimit_data", "size", "0", "RLIMIT_DATA checked by brk (0: RLIM_INFINITY)", minimum=0),
    Option("rlimit_as", "size", "0", "RLIMIT_AS checked by mmap, brk and stack growth (0: RLIM_INFINITY)",
           minimum=0),
    Option("rlimit_stack", "size", "8MiB", "RLIMIT_STACK checked by stack growth (0: RLIM_INFINITY)",
           minimum=0),
    Option("dirty_background_ratio", "int", 10, "percent of memory dirty at which pdflush starts background "
           "write-back", minimum=0, maximum=100),
    Option("dirty_async_ratio", "int", 40, "percent of memory dirty or under write-back at which a writing task "
           "writes back pages itself (balance_dirty_pages; 2.6 renamed it dirty_ratio)", minimum=0, maximum=100),
    Option("dirty_writeback_centisecs", "int", 500, "interval of pdflush's periodic wb_kupdate (0: off)",
           minimum=0, maximum=1 << 20),
    Option("dirty_expire_centisecs", "int", 3000, "age at which wb_kupdate writes an inode's dirty pages",
           minimum=0, maximum=1 << 20),
    Option("readahead", "bool", True, "file readahead (mm/readahead.c); off: ra_pages = 0"),
)
TOP_KEYS = ("machine", "plugins", "block", "scenario", "sweep", "vm")
SWEEP_OPTIONS: tuple[Option, ...] = (  # [sweep]: what `mmframe compare` runs and where (docs/sweeps.md)
    Option("seeds", "int", 1, "seeds per combination, from [machine] seed on", minimum=1, maximum=100_000),
    Option("executor", "choice", "local", "where runs go: local processes, a Dask or a Ray cluster",
           choices=("local", "dask", "ray")),
    Option("address", "str", "", "the cluster: a Dask scheduler (tcp://HOST:8786) or Ray (ray://HOST:10001); "
           "empty: a local cluster"),
    Option("workers", "int", 0, "local processes or local cluster workers; 0: one per CPU", minimum=0,
           maximum=4096),
)


@attrs.frozen(slots=True)
class Layer:
    """One parsed TOML document and where it came from."""

    source: str
    text: str
    doc: dict[str, Any]


@attrs.frozen(slots=True)
class MachineConfig:
    cpus: int = 2
    memory: int = GiB
    pae: bool = False
    highpte: bool = False
    l1_cache_bytes: int = 32
    seed: int = 0
    timeslice: int = 8
    costs: str = ""
    debug_vm: str = "off"
    shmmax: int = 32 << 20
    aio_dio: bool = False


@attrs.frozen(slots=True)
class VmConfig:
    """The ``[vm]`` section: overcommit policy, swap, resource limits (0 limit = RLIM_INFINITY), and the
    write-back and readahead tunables."""

    overcommit_memory: int = 0
    overcommit_ratio: int = 50
    swap: int = 0
    swap_disk: str = ""
    rlimit_data: int = 0
    rlimit_as: int = 0
    rlimit_stack: int = 8 << 20
    # write-back and readahead (docs/buffered_io.md)
    dirty_background_ratio: int = 10
    dirty_async_ratio: int = 40
    dirty_writeback_centisecs: int = 500
    dirty_expire_centisecs: int = 3000
    readahead: bool = True


@attrs.frozen(slots=True)
class DiskConfig:
    name: str
    capacity: int
    elevator: str
    plugin_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    model: str = "ata-7200"
    nr_requests: int = 0
    bounce: str = "high"
    elevator_options: Mapping[str, Any] = attrs.field(factory=dict)  # the chosen elevator's tunables


@attrs.frozen(slots=True)
class ScenarioConfig:
    name: str
    policies: tuple[tuple[str, ...], ...]
    params: Mapping[str, Any]
    #: policy sets left out because a plugin in them is blocked (``no:NAME``): (set, who blocked it)
    skipped: tuple[tuple[tuple[str, ...], str], ...] = ()


@attrs.frozen(slots=True)
class SweepConfig:
    """``[sweep]``: seeds, option grids (dotted key -> values, every combination runs), executor."""

    seeds: int = 1
    grid: Mapping[str, tuple[Any, ...]] = attrs.field(factory=dict)
    executor: str = "local"
    address: str = ""
    workers: int = 0


@attrs.frozen(slots=True)
class Config:
    """A validated run configuration."""

    machine: MachineConfig
    selection: Selection
    plugin_options: Mapping[str, Mapping[str, Any]]
    disks: tuple[DiskConfig, ...]
    scenario: ScenarioConfig
    sources: tuple[str, ...]
    catalog: Catalog = attrs.field(eq=False, repr=False)
    elevators: Mapping[str, tuple[Any, str]] = attrs.field(factory=dict, eq=False, repr=False)
    vm: VmConfig = attrs.field(factory=VmConfig)
    sweep: SweepConfig = attrs.field(factory=SweepConfig)
    vm: VmConfig = attrs.field(factory=VmConfig)

    @property
    def enabled(self) -> tuple[str, ...]:
        return self.selection.enabled

    def elevator_entries(self) -> list[tuple[str, list[Any]]]:
        """``(owner, elevator classes)`` of the core and the enabled plugins."""
        by_owner: dict[str, list[Any]] = {}
        for cls, owner in self.elevators.values():
            if owner == CORE or owner in self.enabled:
                by_owner.setdefault(owner, []).append(cls)
        return list(by_owner.items())

    def with_policies(self, extra: Iterable[str]) -> Config:
        """This config with more plugins enabled (a policy column of a scenario)."""
        enabled = tuple(dict.fromkeys([*self.selection.enabled, *extra]))
        sel = Selection(enabled, self.selection.blocked, dict(self.selection.decided_by))
        return attrs.evolve(self, selection=sel)


# --- locating keys in TOML text ------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _norm(path: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in path.split("."))


def locate(text: str, key: tuple[str, ...]) -> int | None:
    """Best-effort 1-based line of a dotted key (or table header) in TOML text."""
    table: tuple[str, ...] = ()
    for n, line in enumerate(text.splitlines(), 1):
        if m := _HEADER.match(line):
            table = _norm(m.group(1))
            if table == key:
                return n
            continue
        if m := _KEY.match(line):
            if table + _norm(m.group(1)) == key:
                return n
    return None


def _err(layer: Layer, key: tuple[str, ...], message: str, allowed: str | None = None) -> ConfigError:
    return ConfigError(message, file=layer.source, key=".".join(key), line=locate(layer.text, key),
                       allowed=allowed)


# --- reading layers -------------------------------------------------------------------------

def parse_layer(text: str, source: str) -> Layer:
    """Parse TOML text; syntax errors become ConfigError with TOML's line."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        raise ConfigError(f"not valid TOML: {msg}", file=source,
                          line=int(m.group(1)) if m else None) from None
    return Layer(source, text, doc)


def read_file(path: str | os.PathLike[str]) -> Layer:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", file=str(p)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=str(p)) from None
    return parse_layer(text, str(p))


def embedded_layer() -> Layer:
    text = resources.files("mmframe").joinpath("data/default.toml").read_text(encoding="utf-8")
    return parse_layer(text, EMBEDDED)


def pyproject_layer(cwd: str | os.PathLike[str] | None = None) -> Layer | None:
    """``[tool.mmframe]`` of the nearest pyproject.toml at or above ``cwd``, if it has one."""
    here = Path(cwd or os.getcwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / "pyproject.toml"
        if candidate.is_file():
            layer = read_file(candidate)
            tool = layer.doc.get("tool", {})
            sub = tool.get("mmframe") if isinstance(tool, dict) else None
            if sub is None:
                return None
            if not isinstance(sub, dict):
                raise _err(layer, ("tool", "mmframe"), "must be a table")
            # keys are located under the [tool.mmframe] prefix
            return Layer(str(candidate), _strip_prefix(layer.text, "tool.mmframe"), sub)
    return None


def _strip_prefix(text: str, prefix: str) -> str:
    """Rewrite ``[tool.mmframe.x]`` headers to ``[x]`` so key lines are located as in a config file
    (line numbers are unchanged)."""
    out = []
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m and _norm(m.group(1))[:2] == ("tool", "mmframe"):
            rest = ".".join(_norm(m.group(1))[2:])
            line = f"[{rest}]" if rest else "[__root__]"
        elif m:
            line = "[__elsewhere__]"
        out.append(line)
    return "\n".join(out)


# --- validation ------------------------------------------------------------------------------

def _table(layer: Layer, key: tuple[str, ...], value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(layer, key, f"must be a table, got {_tname(value)}")
    return value


def _tname(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _check_keys(layer: Layer, key: tuple[str, ...], table: dict[str, Any], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for k in table:
        if k not in allowed:
            raise _err(layer, (*key, k), "unknown key", ", ".join(allowed) or "no keys")


def _coerce(layer: Layer, key: tuple[str, ...], opt: Option, value: Any) -> Any:
    try:
        return opt.coerce(value)
    except ValueError as exc:
        raise _err(layer, key, f"invalid value {value!r}", str(exc)) from None


def _layer_plugin_tokens(layer: Layer) -> list[str]:
    plugins = layer.doc.get("plugins", {})
    if not isinstance(plugins, dict):
        raise _err(layer, ("plugins",), "must be a table")
    tokens = plugins.get("enable", [])
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise _err(layer, ("plugins", "enable"), "must be a list of plugin names",
                   "strings 'NAME' to enable or 'no:NAME' to block")
    return tokens


def load_config(path: str | os.PathLike[str] | None = None, *, cli_plugins: Iterable[str] = (),
                env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
                extra_plugins: Mapping[str, Any] | None = None, use_pyproject: bool = True,
                extra_layers: Iterable[Layer] = (), check_scenario: bool = True) -> Config:
    """Read every layer, resolve the plugin selection, load the catalog and validate everything.

    ``extra_plugins`` hands plugin modules in directly (embedding, tests) as if discovered;
    ``extra_layers`` go above the config file (``--set``, a sweep's elevator; see :func:`override_layer`).
    ``check_scenario=False`` skips the scenario's own check of its option values (a sweep whose grid
    sets them checks each run's config instead).
    """
    env = os.environ if env is None else env
    layers = user_layers(path, cwd=cwd, use_pyproject=use_pyproject)
    layers[:0] = [embedded_layer()]
    layers.extend(extra_layers)
    for layer in layers:
        _check_keys(layer, (), layer.doc, TOP_KEYS)
    sel_layers: list[tuple[str, list[str]]] = [
        (f"{layer.source}: plugins.enable", _layer_plugin_tokens(layer)) for layer in layers]
    if env.get(ENV_PLUGINS, "").strip():
        sel_layers.append((ENV_PLUGINS, [t for t in env[ENV_PLUGINS].split(",") if t.strip()]))
    sel_layers.append(("command line (-p)", list(cli_plugins)))
    selection = resolve_selection(sel_layers)
    catalog = Catalog(blocked=selection.blocked, extra=dict(extra_plugins or {}))
    for name in selection.enabled:
        catalog.require([name], selection.decided_by[name])

    machine: dict[str, Any] = {}
    plugin_opts: dict[str, dict[str, Any]] = {}
    disks: dict[str, dict[str, Any]] = {}
    disk_plugin: dict[str, dict[str, dict[str, Any]]] = {}
    disk_elv: dict[str, dict[str, dict[str, Any]]] = {}
    elevators = _elevators(catalog)
    scenario: dict[str, Any] = {}
    vmvals: dict[str, tuple[Any, Layer]] = {}
    vm_opts = {o.name: o for o in VM_OPTIONS}
    sweep: dict[str, tuple[Any, Layer]] = {}
    machine_opts = {o.name: o for o in MACHINE_OPTIONS}
    disk_opts = {o.name: o for o in DISK_OPTIONS}
    for layer in layers:
        doc = layer.doc
        m = _table(layer, ("machine",), doc.get("machine", {}))
        _check_keys(layer, ("machine",), m, machine_opts)
        for k, v in m.items():
            machine[k] = (_coerce(layer, ("machine", k), machine_opts[k], v), layer)
        p = _table(layer, ("plugins",), doc.get("plugins", {}))
        for name, table in p.items():
            if name == "enable":
                continue
            _plugin_known(layer, ("plugins", name), name, catalog)
            if name not in catalog.plugins:
                continue  # blocked: its options are not checked
            table = _table(layer, ("plugins", name), table)
            opts = catalog.options_of(name)
            _check_keys(layer, ("plugins", name), table, opts)
            for k, v in table.items():
                plugin_opts.setdefault(name, {})[k] = _coerce(layer, ("plugins", name, k), opts[k], v)
        b = _table(layer, ("block",), doc.get("block", {}))
        for disk, table in b.items():
            table = _table(layer, ("block", disk), table)
            for k, v in table.items():
                if k in disk_opts:
                    val = _coerce(layer, ("block", disk, k), disk_opts[k], v)
                    if k == "elevator" and val not in elevators:
                        raise _err(layer, ("block", disk, k), f"unknown elevator {val!r}",
                                   ", ".join(sorted(elevators)))
                    disks.setdefault(disk, {})[k] = (val, layer)
                    continue
                known_plugin = k in catalog.plugins
                if k not in elevators and not known_plugin and k not in catalog.blocked:
                    raise _err(layer, ("block", disk, k), "unknown key",
                               ", ".join([*disk_opts, *(f"<elevator> table ({n})" for n in sorted(elevators)),
                                          *(f"<plugin> table ({n})" for n in sorted(catalog.plugins))]))
                if k not in elevators and not known_plugin:
                    continue  # a blocked plugin's table: not checked
                sub = _table(layer, ("block", disk, k), v)
                qopts = {o.name: o for o in catalog.plugins[k].options if o.scope == "queue"} if known_plugin else {}
                eopts = {o.name: o for o in elevators[k][0].tunables} if k in elevators else {}
                _check_keys(layer, ("block", disk, k), sub, {**eopts, **qopts})
                for ok, ov in sub.items():
                    val = _coerce(layer, ("block", disk, k, ok), eopts.get(ok) or qopts[ok], ov)
                    if ok in eopts:
                        disk_elv.setdefault(disk, {}).setdefault(k, {})[ok] = val
                    if ok in qopts:
                        disk_plugin.setdefault(disk, {}).setdefault(k, {})[ok] = val
            disks.setdefault(disk, {})
        v = _table(layer, ("vm",), doc.get("vm", {}))
        _check_keys(layer, ("vm",), v, vm_opts)
        for k, val in v.items():
            vmvals[k] = (_coerce(layer, ("vm", k), vm_opts[k], val), layer)
        sw = _table(layer, ("sweep",), doc.get("sweep", {}))
        _check_keys(layer, ("sweep",), sw, [*(o.name for o in SWEEP_OPTIONS), "grid"])
        for k, v in sw.items():
            sweep[k] = (v, layer)
        s = _table(layer, ("scenario",), doc.get("scenario", {}))
        if "name" in s and "name" in scenario and s["name"] != scenario["name"][0]:
            # another scenario: the options a lower layer gave the previous one do not apply
            scenario = {k: v for k, v in scenario.items() if k == "policies"}
        for k, v in s.items():
            scenario[k] = (v, layer)

    mc = _machine_config({k: v for k, (v, _) in machine.items()}, machine)
    disk_cfgs = tuple(_disk_config(name, vals, elevators, disk_elv.get(name, {}), disk_plugin.get(name, {}),
                                   selection) for name, vals in sorted((disks or {DEFAULT_DISK: {}}).items()))
    filled = {name: {**{o.name: o.coerce(o.default) for o in catalog.plugins[name].options},
                     **plugin_opts.get(name, {})} for name in catalog.plugins}
    vmc = VmConfig(**{k: val for k, (val, _) in vmvals.items()})
    if vmc.swap_disk and vmc.swap_disk not in {d.name for d in disk_cfgs}:
        raise _err(vmvals["swap_disk"][1], ("vm", "swap_disk"), f"no disk {vmc.swap_disk!r}",
                   ", ".join(d.name for d in disk_cfgs))
    if vmc.swap_disk and vmc.swap_disk == disk_cfgs[0].name:
        raise _err(vmvals["swap_disk"][1], ("vm", "swap_disk"), f"{vmc.swap_disk!r} holds the file system",
                   "another [block.<name>] disk")
    cap = {d.name: d.capacity for d in disk_cfgs}.get(vmc.swap_disk, 0)
    if vmc.swap_disk and vmc.swap > cap:
        raise _err(vmvals["swap"][1], ("vm", "swap"), f"{vmc.swap >> 20}MiB does not fit on {vmc.swap_disk!r}",
                   f"at most its capacity, {cap >> 20}MiB")
    sc = _scenario_config(scenario, catalog)
    cfg = Config(mc, selection, filled, disk_cfgs, sc, tuple(layer.source for layer in layers), catalog,
                 elevators, sweep=_sweep_config(sweep), vm=vmc)
    if check_scenario:
        _check_scenario(cfg, scenario)
    return cfg


def _sweep_config(values: dict[str, tuple[Any, Layer]]) -> SweepConfig:
    """``[sweep]``; a grid's values are checked when the sweep builds its runs (each one's config)."""
    opts = {o.name: o for o in SWEEP_OPTIONS}
    got = {k: _coerce(layer, ("sweep", k), opts[k], v) for k, (v, layer) in values.items() if k != "grid"}
    grid: dict[str, tuple[Any, ...]] = {}
    if "grid" in values:
        raw, layer = values["grid"]

        def walk(prefix: tuple[str, ...], node: Any) -> None:
            if isinstance(node, dict) and node:
                for k, v in node.items():
                    walk((*prefix, k), v)
            elif isinstance(node, list) and node and "." in ".".join(prefix):
                grid[".".join(prefix)] = tuple(node)
            else:
                raise _err(layer, ("sweep", "grid", *prefix), "must be a non-empty list of values for a dotted key",
                           "e.g. [sweep.grid] \"scenario.children\" = [8, 64]")

        walk((), _table(layer, ("sweep", "grid"), raw))
        if not grid:
            raise _err(layer, ("sweep", "grid"), "is empty", "keys like \"scenario.children\" = [8, 64]")
    return SweepConfig(grid=grid, **got)


def user_layers(path: str | os.PathLike[str] | None = None, *, cwd: str | os.PathLike[str] | None = None,
                use_pyproject: bool = True) -> list[Layer]:
    """The layers above the embedded default: ``[tool.mmframe]`` of pyproject.toml, the config file.
    Plain data (picklable): a sweep ships them to its workers instead of paths."""
    layers = []
    if use_pyproject and (pp := pyproject_layer(cwd)) is not None:
        layers.append(pp)
    if path is not None:
        layers.append(read_file(path))
    return layers


def override_layer(settings: Mapping[str, Any], source: str = "command line (--set)") -> Layer:
    """A layer from dotted keys (``{"scenario.sizes": ["4MiB"]}``); its errors name ``source``, the
    key and what is allowed (no line: it has no file)."""
    doc: dict[str, Any] = {}
    for dotted, value in settings.items():
        parts = [p.strip() for p in dotted.split(".")]
        if not all(parts):
            raise UsageError(f"{source}: {dotted!r} is not a dotted key like scenario.sizes")
        node = doc
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise UsageError(f"{source}: {dotted!r} sets a key under a value")
            node = nxt
        node[parts[-1]] = value
    return Layer(source, "", doc)


def _check_scenario(cfg: Config, values: dict[str, tuple[Any, Layer]]) -> None:
    """The scenario's own check of its options against the machine (a value that cannot run)."""
    from mmframe.scenario import OptionProblem, all_scenarios

    scen = all_scenarios(cfg.catalog)[cfg.scenario.name][0]
    if scen.check is None:
        return
    try:
        scen.check(cfg.scenario.params, cfg.machine)
    except OptionProblem as exc:
        layer = values.get(exc.key, values["name"])[1]
        raise _err(layer, ("scenario", exc.key), exc.message, exc.allowed) from None


def _plugin_known(layer: Layer, key: tuple[str, ...], name: str, catalog: Catalog) -> None:
    if name not in catalog.plugins and name not in catalog.blocked:
        raise _err(layer, key, f"unknown plugin {name!r}",
                   "'enable' or a table per installed plugin: " + (", ".join(sorted(catalog.plugins)) or "none installed"))


def _elevators(catalog: Catalog) -> dict[str, tuple[Any, str]]:
    """Every elevator the core and the loaded plugins register (``mmframe_elevators``):
    name -> (class, owner)."""
    entries = []
    for info in [catalog.core, *catalog.plugins.values()]:
        classes = call_one(info, "mmframe_elevators")
        if classes is not None and not isinstance(classes, (list, tuple)):
            raise PluginError(f"plugin {info.name!r}: mmframe_elevators must return a list of Elevator classes, "
                              f"got {classes!r}", plugin=info.name, hook="mmframe_elevators")
        entries.append((info.name, list(classes or ())))
    try:
        return registry(entries)
    except ValueError as exc:
        raise PluginError(f"mmframe_elevators: {exc}", hook="mmframe_elevators") from None


def _disk_config(name: str, vals: dict[str, tuple[Any, Layer]], elevators: dict[str, tuple[Any, str]],
                 elv_opts: dict[str, dict[str, Any]], plugin_opts: dict[str, dict[str, Any]],
                 selection: Selection) -> DiskConfig:
    get = {k: v for k, (v, _) in vals.items()}
    opts = {o.name: o for o in DISK_OPTIONS}
    elevator = get.get("elevator", opts["elevator"].default)
    cls, _owner = elevators[elevator]  # a plugin's elevator needs the plugin enabled: checked per machine
    tunables = {t.name: t.coerce(t.default) for t in cls.tunables}
    tunables.update(elv_opts.get(elevator, {}))
    return DiskConfig(name, get.get("capacity", opts["capacity"].coerce(opts["capacity"].default)), elevator,
                      plugin_opts, get.get("model", opts["model"].default), get.get("nr_requests", 0),
                      get.get("bounce", "high"), tunables)


def _machine_config(values: dict[str, Any], origin: dict[str, tuple[Any, Layer]]) -> MachineConfig:
    memory = values.get("memory", MACHINE_OPTIONS[1].coerce(MACHINE_OPTIONS[1].default))
    pae_choice = values.get("pae", "auto")
    pae = memory > 4 * GiB if pae_choice == "auto" else pae_choice == "on"
    if memory > 4 * GiB and not pae:
        layer = origin.get("pae", origin.get("memory"))[1]
        raise _err(layer, ("machine", "pae"), f"{memory >> 30}GiB of memory needs PAE "
                   "(without PAE i386 addresses at most 4GiB)", "pae = 'on' or 'auto', or memory <= 4GiB")
    if memory % 4096:
        raise _err(origin["memory"][1], ("machine", "memory"), "must be a whole number of 4KiB pages")
    l1 = values.get("l1_cache_bytes", 32)
    if l1 not in (32, 64, 128):
        raise _err(origin["l1_cache_bytes"][1], ("machine", "l1_cache_bytes"), f"invalid value {l1}",
                   "32, 64 or 128")
    return MachineConfig(cpus=values.get("cpus", 2), memory=memory, pae=pae,
                         highpte=values.get("highpte", False), l1_cache_bytes=l1,
                         seed=values.get("seed", 0), timeslice=values.get("timeslice", 8),
                         costs=values.get("costs", ""), debug_vm=values.get("debug_vm", "off"),
                         shmmax=values.get("shmmax", 32 << 20), aio_dio=values.get("aio_dio", False))


def _scenario_config(values: dict[str, tuple[Any, Layer]], catalog: Catalog) -> ScenarioConfig:
    from mmframe.scenario import all_scenarios

    if "name" not in values:
        raise ConfigError("no scenario named", key="scenario.name", allowed="a scenario name")
    name, layer = values["name"]
    known = all_scenarios(catalog)
    if not isinstance(name, str) or name not in known:
        raise _err(layer, ("scenario", "name"), f"unknown scenario {name!r}", ", ".join(sorted(known)))
    scen = known[name][0]
    policies_raw, player = values.get("policies", ([[]], layer))
    if not (isinstance(policies_raw, list) and policies_raw and all(
            isinstance(p, list) and all(isinstance(n, str) for n in p) for p in policies_raw)):
        raise _err(player, ("scenario", "policies"), "must be a non-empty list of lists of plugin names",
                   "e.g. [[], [\"pt_shared\"]]")
    kept, skipped = [], []
    for pset in policies_raw:
        blocked = [n for n in pset if n in catalog.blocked]
        if blocked:  # blocked with no:NAME on a higher layer: the set is left out, not an error
            skipped.append((tuple(pset), f"{', '.join(blocked)} blocked"))
            continue
        for n in pset:
            if n not in catalog.plugins:
                raise _err(player, ("scenario", "policies"), f"unknown plugin {n!r}",
                           ", ".join(sorted(catalog.plugins)) or "none installed")
        kept.append(pset)
    if not kept:
        raise _err(player, ("scenario", "policies"), "every policy set names a blocked plugin",
                   "a set without the blocked plugins, e.g. []")
    opts = {o.name: o for o in scen.options}
    params = {o.name: o.coerce(o.default) for o in scen.options}
    for k, (v, vlayer) in values.items():
        if k in ("name", "policies"):
            continue
        if k not in opts:
            raise _err(vlayer, ("scenario", k), f"unknown key for scenario {name!r}",
                       ", ".join(["name", "policies", *opts]))
        params[k] = _coerce(vlayer, ("scenario", k), opts[k], v)
    return ScenarioConfig(name, tuple(tuple(p) for p in kept), params, tuple(skipped))


def parse_cli_plugins(tokens: Iterable[str]) -> list[str]:
    """``-p`` values may be comma-separated, as ``MMFRAME_PLUGINS`` is."""
    out = []
    for tok in tokens:
        parts = [t for t in tok.split(",") if t.strip()]
        if not parts:
            raise UsageError("-p needs a plugin name or no:NAME")
        out.extend(parts)
    return out
