"""The facade: everything a plugin may use, in one documented, versioned place.

A plugin imports from ``mmframe.facade`` only, never from the model's modules, and touches only
what the Protocols here declare on the objects its hooks receive (tests/test_architecture.py
enforces both for the shipped plugins).  The facade is versioned with the hook contract
(:data:`FACADE_VERSION` is ``HOOK_CONTRACT_VERSION``): a minor bump adds names, a major bump
removes or changes one.

* :mod:`mmframe.facade.mm` -- memory: the page-table hooks' ``vm`` (:class:`VM`: sharing a PMD,
  unsharing, allocation, the core's fault policy), ``mm``/``vma``/PTE pages, the allocation hooks'
  ``alloc``, the ``VM_FAULT_*`` codes and ``pte_change`` reasons, ``VM_*`` and ``GFP_*`` flags.
* The block layer's primitives (bio submission, the request queue an elevator hook receives)
  go in ``mmframe/facade/block.py`` as Protocols over ``mmframe.block``, exported here, each with
  the cost it charges, when those hooks are added (a minor contract bump).

Registration: ``hookimpl`` marks a hook implementation; ``Option``, ``CostEntry`` and ``Scenario``
are what the registration hooks return.
"""

from __future__ import annotations

from mmframe import HOOK_CONTRACT_VERSION
from mmframe.costs import CostEntry
from mmframe.facade.mm import *  # noqa: F401,F403 - the memory facade is this package's namespace
from mmframe.facade.mm import __all__ as _mm_all
from mmframe.hookspecs import hookimpl
from mmframe.options import Option
from mmframe.scenario import Scenario

FACADE_VERSION = HOOK_CONTRACT_VERSION

__all__ = ["FACADE_VERSION", "CostEntry", "Option", "Scenario", "hookimpl", *_mm_all]
