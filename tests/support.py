"""Test support shared by the suite: the active policy set and the hypothesis budget.

* **Policy set.**  Policy-agnostic tests build their machines with :func:`active_policies`, the set
  named by ``MMFRAME_PLUGINS`` plus one variable per factor of the tox matrix (:data:`FACTORS`:
  ``MMFRAME_PT_SHARED=1`` enables pt_shared, ...) and the plugin owning ``MMFRAME_ELEVATOR``'s
  elevator; machine builders that do not choose an elevator use :func:`active_elevator` (the disk's
  elevator).  So every tox environment really runs them under its combination; tests about one
  policy, or that compare policies, name theirs.  A factor whose plugin is not installed, or an
  unknown elevator, stops the run with an error naming it (:func:`check_factors`).
* **Hypothesis.**  Profiles ``ci`` (derandomised: the same examples on every run, as CI needs),
  ``dev`` (random, the default outside CI) and ``long`` (random, :data:`LONG_FACTOR` times the
  examples) are chosen by ``MMFRAME_HYPOTHESIS_PROFILE``, else ``ci`` when ``CI`` is set, else
  ``dev``.  Tests size their budgets with :func:`examples`, so the long profile scales them.
  A failure found once is kept in the test as an ``@example``.
* **Programs in the period's images.**  :func:`run_image_ops` runs a generated list whose forks
  make the period's stores after fork; :func:`spawn` starts a server on its own (fork, exec);
  :func:`shm_attach` attaches a SysV segment by key; :func:`region_ops`/:func:`region_call` are
  the operations on a mapped region and :func:`look` reads it back (the attach and image tests).
"""

from __future__ import annotations

import functools
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from mmframe.usr import (IPC_CREAT, PAGE_SIZE as P, PROT_NONE, PROT_READ, PROT_WRITE, SimSignal, after_fork, execve,
                         exit, fork, mprotect, munmap, read, shmat, shmget, touch, wait, write)

LONG_FACTOR = 10

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])


def hypothesis_profile() -> str:
    return os.environ.get("MMFRAME_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")


settings.load_profile(hypothesis_profile())


def examples(n: int) -> int:
    """A test's example budget under the active profile (``long`` multiplies it)."""
    return n * LONG_FACTOR if hypothesis_profile() == "long" else n


# tox factor -> (environment variable set to 1, the plugin it enables)
FACTORS = {"pt_shared": ("MMFRAME_PT_SHARED", "pt_shared"), "reserve": ("MMFRAME_RESERVE", "reserve"),
           "walker": ("MMFRAME_WALKER", "walker")}
ENV_ELEVATOR = "MMFRAME_ELEVATOR"


def active_elevator() -> str | None:
    """The elevator ``MMFRAME_ELEVATOR`` names for machines whose test does not choose one (None: the
    config's default)."""
    return os.environ.get(ENV_ELEVATOR, "").strip() or None


@functools.lru_cache(maxsize=1)
def _elevator_owners() -> dict[str, str]:
    from mmframe.config import load_config
    from mmframe.plugin import discover_entry_points
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=[ep.name for ep in discover_entry_points()])
    return {name: owner for name, (_, owner) in cfg.elevators.items()}


def active_policies() -> tuple[str, ...]:
    """The policy set of the run: ``MMFRAME_PLUGINS`` (``no:NAME`` entries block, they enable
    nothing), each factor variable set to 1, and the plugin registering ``MMFRAME_ELEVATOR``."""
    raw = os.environ.get("MMFRAME_PLUGINS", "")
    out = [t.strip() for t in raw.split(",") if t.strip() and not t.strip().startswith("no:")]
    out += [plugin for var, plugin in FACTORS.values() if os.environ.get(var, "").strip() in ("1", "yes", "on")]
    elv = active_elevator()
    if elv:
        owner = _elevator_owners().get(elv)
        if owner and owner != "mmframe.core":
            out.append(owner)
    return tuple(dict.fromkeys(out))


def elevator_layers() -> list:
    """Config layers choosing :func:`active_elevator` for the default disk (none when unset): for
    machine builders of tests that do not choose an elevator and use :func:`active_policies`."""
    elv = active_elevator()
    if not elv:
        return []
    from mmframe.config import DEFAULT_DISK, override_layer
    return [override_layer({f"block.{DEFAULT_DISK}.elevator": elv}, ENV_ELEVATOR)]


def check_factors() -> None:
    """Stop with a clear error when a factor names a plugin that is not installed, or the elevator
    variable an elevator nobody registers (a tox environment must not pass by testing nothing)."""
    from mmframe.plugin import discover_entry_points
    installed = {ep.name for ep in discover_entry_points()}
    for var, plugin in FACTORS.values():
        if os.environ.get(var, "").strip() in ("1", "yes", "on") and plugin not in installed:
            raise SystemExit(f"tests/support.py: {var}=1 enables plugin {plugin!r}, which is not installed "
                             f"(installed: {', '.join(sorted(installed)) or 'none'})")
    elv = active_elevator()
    if elv:
        owners = _elevator_owners()
        if elv not in owners:
            raise SystemExit(f"tests/support.py: {ENV_ELEVATOR}={elv!r} is no installed elevator "
                             f"(allowed: {', '.join(sorted(owners))})")


# --- the tox matrix's economy --------------------------------------------------------------------
ENV_AGNOSTIC_ONLY = "MMFRAME_AGNOSTIC_ONLY"
_USES_FACTORS = ("active_policies", "active_elevator", "elevator_layers")


def agnostic_only() -> bool:
    """``MMFRAME_AGNOSTIC_ONLY=1`` (the tox matrix's environments but the mainline default's): run
    only the tests whose result the policy set can change -- those the others run identically in
    every environment (the mainline default's environment and CI run them once)."""
    return os.environ.get(ENV_AGNOSTIC_ONLY, "").strip() in ("1", "yes", "on")


def uses_the_policy_set(item) -> bool:
    """Whether a collected test builds its machines with the run's policy set: it takes the
    ``policies`` fixture, or its module calls :func:`active_policies`, :func:`active_elevator` or
    :func:`elevator_layers` (found in the module's syntax tree, so a new such test is never left
    out and a mere mention in a string or comment does not count)."""
    if "policies" in getattr(item, "fixturenames", ()):
        return True
    mod = getattr(item, "module", None)
    return mod is not None and _calls_a_factor(getattr(mod, "__file__", None) or "")


@functools.lru_cache(maxsize=None)
def _calls_a_factor(path: str) -> bool:
    import ast
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if name in _USES_FACTORS:
                return True
    return False


# --- programs in the period's images (mmframe.usr): exec'd servers, forks with their stores --------
# The attach tests (tests/test_attach.py, tests/test_pt_shared_attach.py) and the image tests
# (tests/test_images.py) run generated lists in processes started as the period's were: one image
# creates a SysV segment (or a file) and starts unrelated servers (fork, then exec) that attach it
# by key; forks inside them store to their stack and data after fork (usr.after_fork).

def run_image_ops(ctx, ops, call, look):
    """Run a generated list in the calling process (``yield from``): ``("fork", child_ops)`` or
    ``("fork", child_ops, wait_now)`` forks with the period's stores after fork on both sides; the
    child runs its list, then ``look()``, and exits; the parent waits for it at once (``wait_now``
    true or absent) or at the end of the list.  Any other operation is ``call(op)``: a
    ``mmframe.usr`` call (a signal it raises ends that operation only) or a generator of calls,
    run as it is (its signals are its own)."""
    later = 0
    for op in ops:
        if op[0] == "fork":
            pid = yield fork()
            yield from after_fork(ctx, pid)
            if pid == 0:
                yield from run_image_ops(ctx, op[1], call, look)
                yield from look()
                yield exit(0)
            if len(op) < 3 or op[2]:
                yield wait(pid)
            else:
                later += 1
            continue
        c = call(op)
        if not isinstance(c, tuple):
            yield from c
            continue
        try:
            yield c
        except SimSignal:
            pass
    for _ in range(later):
        yield wait()


def spawn(ctx, image, *args):
    """Start a server on its own (``pid = yield from spawn(ctx, image, ...)``): fork, the child
    execs ``image(ctx, *args)`` at once (its stores after fork first), the parent makes its own
    stores after fork and gets the pid."""
    pid = yield fork(_exec_after_fork, image, args)
    yield from after_fork(ctx, pid)
    return pid


def _exec_after_fork(ctx, image, args):
    yield from after_fork(ctx, 0)
    yield execve(image, *args)


def region_ops(length):
    """Hypothesis strategies of the operations :func:`region_call` makes on a region of ``length``
    bytes (``munmap``/``mprotect`` of up to 1,100 pages: across a PTE page's end)."""
    page = st.integers(0, length // P - 1)
    return (st.tuples(st.just("write"), page, st.integers(1, 99)),
            st.tuples(st.just("read"), page),
            st.tuples(st.just("touch"), st.integers(0, 3), st.booleans()),  # a quarter of the region
            st.tuples(st.just("munmap"), page, st.integers(1, 1100)),  # a partial detach
            st.tuples(st.just("mprotect"), page, st.integers(1, 1100),
                      st.sampled_from([PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE])))


def region_call(base, length, op):
    """The call of a generated operation on a region of ``length`` bytes mapped at ``base`` (pages
    counted from its start): ``("write", page, tag)``, ``("read", page)``, ``("touch", quarter,
    for_write)``, ``("munmap", page, pages)`` and ``("mprotect", page, pages, prot)`` (a partial
    detach or change); None for any other name (the caller's own operations)."""
    name, *a = op
    if name == "write":
        return write(base + a[0] * P, a[1])
    if name == "read":
        return read(base + a[0] * P)
    if name == "touch":
        return touch(base + a[0] * length // 4, length // 4, a[1])
    if name == "munmap":
        return munmap(base + a[0] * P, a[1] * P)
    if name == "mprotect":
        return mprotect(base + a[0] * P, a[1] * P, a[2])
    return None


def look(base, length, step):
    """Read every ``step``-th page of ``length`` bytes at ``base`` (a signal is a result too: the
    call log has it)."""
    for i in range(0, length // P, step):
        try:
            yield read(base + i * P)
        except SimSignal:
            pass


def shm_attach(key, size, addr=0, create=False):
    """``base = yield from shm_attach(...)``: shmget of ``key`` (created, mode 0600, when
    ``create``) and shmat at ``addr`` (0: where shmat puts it)."""
    sid = yield shmget(key, size, IPC_CREAT | 0o600 if create else 0)
    return (yield shmat(sid, addr))
