"""The facade: everything a plugin may use, in one documented, versioned place.

A plugin imports from ``mmframe.facade`` only, never from the model's modules, and touches only
what the Protocols here declare on the objects its hooks receive (tests/test_architecture.py
enforces both for the shipped plugins).  The facade is versioned with the hook contract
(:data:`FACADE_VERSION` is ``HOOK_CONTRACT_VERSION``): a minor bump adds names, a major bump
removes or changes one.

* :mod:`mmframe.facade.mm` -- memory: the page-table hooks' ``vm`` (:class:`VM`: sharing a PMD,
  unsharing, allocation, the core's fault policy), ``mm``/``vma``/PTE pages, the allocation hooks'
  ``alloc``, the ``VM_FAULT_*`` codes and ``pte_change`` reasons, ``VM_*`` and ``GFP_*`` flags.
* :mod:`mmframe.facade.block` (since 1.5) -- I/O scheduling: the :class:`Elevator` base class an
  elevator plugin derives from, the request queue, request and bio it sees (:class:`BlockQueue`,
  :class:`BlockRequest`, :class:`BlockBio`), sort lists, insertion points, merge results and
  ``REQ_*`` flags.

Registration: ``hookimpl`` marks a hook implementation; ``Option``, ``CostEntry`` and ``Scenario``
are what the registration hooks return, ``HookScope`` what ``mmframe_hook_scope`` does (since 1.15); a scenario declares its results with ``Figure``, ``Axis``,
``Plot`` and ``Reference`` and rejects option values it cannot run with ``OptionProblem``
(docs/scenarios.md).
"""

from __future__ import annotations

from mmframe import HOOK_CONTRACT_VERSION
from mmframe.costs import CostEntry
from mmframe.facade.mm import *  # noqa: F401,F403 - the memory facade is this package's namespace
from mmframe.facade.block import *  # noqa: F401,F403 - so is the block facade's
from mmframe.facade.block import __all__ as _block_all
from mmframe.facade.mm import __all__ as _mm_all
from mmframe.hookspecs import FAULT_CASES, HookScope, hookimpl
from mmframe.options import Option
from mmframe.scenario import Axis, Figure, OptionProblem, Plot, Reference, Scenario

FACADE_VERSION = HOOK_CONTRACT_VERSION

__all__ = ["FACADE_VERSION", "CostEntry", "Option", "Scenario", "Figure", "Axis", "Plot", "Reference", "OptionProblem",
           "hookimpl", "HookScope", "FAULT_CASES", *_mm_all, *_block_all]
