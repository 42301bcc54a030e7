"""The memory subsystem of one machine, assembled from one module per concept (docs/architecture.md):

* :mod:`~mmframe.mm.mm_struct` -- address spaces and their lifecycle (``MMStruct``, ``new_mm``, ``mmput``);
* :mod:`~mmframe.mm.page_ref` -- references on user pages (``put_page``, ``release_pages``, pins);
* :mod:`~mmframe.mm.pmd` -- PTE pages and the PMD level: the sharing mechanism's primitives;
* :mod:`~mmframe.mm.pte_change` -- the choke point every write to a PTE page passes, and its reasons;
* :mod:`~mmframe.mm.fault` -- ``do_page_fault``, ``handle_mm_fault``, ``do_anonymous_page``,
  ``do_no_page``, ``do_wp_page`` and the ``VM_FAULT_*`` codes;
* :mod:`~mmframe.mm.uaccess` -- loads and stores checked by the "hardware" walk;
* :mod:`~mmframe.mm.touch` -- ``touch`` over a range, bulk where it can be;
* :mod:`~mmframe.mm.zap` -- ``zap_page_range``; :mod:`~mmframe.mm.mprotect` -- ``change_protection``;
* :mod:`~mmframe.mm.objects` -- shmem objects, references to mappings' objects, VMA structs;
* :mod:`~mmframe.mm.fork` / :mod:`~mmframe.mm.exit` -- ``dup_mmap``/``copy_page_range`` and ``exit_mmap``;
* :mod:`~mmframe.mm.vmscan` -- LRU lists, ``page_referenced``, ``try_to_unmap``, direct reclaim and kswapd;
  :mod:`~mmframe.mm.swapfile` -- the swap area and the swap cache; :mod:`~mmframe.mm.oom_kill`;
  :mod:`~mmframe.mm.overcommit` -- ``vm_enough_memory`` and the rlimits.

Accesses are checked through the page tables first; VMAs are consulted only on a fault.  Single
paths work an entry at a time; bulk paths (fork copy, zap, mprotect, touch) work a PTE page at a
time on numpy views and charge exactly what the single path would (``BULK_MIN`` in
:mod:`mmframe.mm.pgtable`).  Complexity: a fault is O(log V) for the VMA lookup plus O(1); fork and
exit are O(PTE pages) numpy operations plus O(pages freed).  Policies see this object through
:mod:`mmframe.facade`, never directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmframe.mm.debug_vm import check
from mmframe.mm.fault import Faults
from mmframe.mm.gup import Gup
from mmframe.mm.mm_struct import MM_STRUCT_BYTES, TASK_STRUCT_BYTES, VMA_BYTES, MMLifecycle, MMStruct
from mmframe.mm.mprotect import Mprotect
from mmframe.mm.objects import Objects
from mmframe.mm.page import GFP_HIGHUSER
from mmframe.mm.page_ref import PageRefs
from mmframe.mm.pgtable import Geometry, PtePage
from mmframe.mm.pmd import PmdOps
from mmframe.mm.pte_change import REASONS, PteChoke
from mmframe.mm.radix_tree import NodePool
from mmframe.mm.rmap import Rmap, nrpte
from mmframe.mm.swapfile import SwapSpace
from mmframe.mm.touch import Touch
from mmframe.mm.uaccess import UserAccess
from mmframe.mm.vma import ShmemObject
from mmframe.mm.vmscan import VmScan
from mmframe.mm.zap import Zap

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.mm import filemap


class Memory(MMLifecycle, PageRefs, PmdOps, PteChoke, Faults, UserAccess, Touch, Zap, Mprotect, Objects, Gup):
    """Everything behind the memory system calls of one machine: its state, set up here; its
    operations come from the concept modules above (each a class of methods on this state)."""

    def __init__(self, machine: Machine) -> None:
        m = self.m = machine
        cfg = m.config
        self.geo = geo = Geometry(cfg.pae)
        self.sh, self.mask = geo.pmd_shift, geo.ptrs_per_pte - 1
        self.pmd_shift, self.ptrs_per_pte = geo.pmd_shift, geo.ptrs_per_pte  # the facade's names
        self.plugin_state = m.plugin_state
        self.pgdir_shift = 30 if cfg.pae else 22
        self.pa = pa = m.pagealloc
        mem = pa.mem_map
        self.tag, self.count, self.flags = mem.tag, mem.count, mem.flags
        self.count_np, self.flags_np = mem.np("count"), mem.np("flags")
        self.acct = m.acct
        self.highpte = bool(cfg.highpte)
        self.first_high = pa.first_high_pfn
        self.nrpte = nrpte(cfg.l1_cache_bytes, cfg.pae, self.highpte)
        self.rmap = Rmap(m, mem.rmap, self.nrpte, cfg.l1_cache_bytes)
        self.ptpages: dict[int, PtePage] = {}  # every live PTE page by pfn
        self.mms: dict[int, MMStruct] = {}
        self.next_mm = 1
        self.objects: set[ShmemObject] = set()  # live shmem objects (MAP_SHARED anonymous, SysV shm)
        self.radix_pool = NodePool(m)
        self.page_cache: dict[int, tuple[filemap.AddressSpace, int]] = {}  # pfn -> (mapping, index)
        self.zero_tail: dict[int, int] = {}  # pfn -> offset where the zeroed tail past EOF starts
        self.fine: dict[int, bytearray] = {}  # pfn -> its bytes, for pages written partially (mm/content.py)
        self.gfp_cache = GFP_HIGHUSER  # mapping_gfp_mask of regular files
        self.pins: dict[int, int] = {}  # pfn -> references held by get_user_pages-style pins
        self.pte_changes = [0] * len(REASONS)
        self.c_mm = m.kmem_cache("mm_struct", MM_STRUCT_BYTES, 32)
        self.c_vma = m.kmem_cache("vm_area_struct", VMA_BYTES, 32)
        self.c_task = m.kmem_cache("task_struct", TASK_STRUCT_BYTES, 32)
        self.c_pgd = m.kmem_cache("pae_pgd", 32, 32) if cfg.pae else None
        self.c_mm_chain = m.kmem_cache("mm_chain", 8, 8)  # owners of shared PTE pages
        self.kstacks: dict[int, int] = {}  # task pid -> kernel stack (order 1)
        P = m.P
        self.P_fault, self.P_clear, self.P_copy, self.P_kmap = P.page_fault, P.clear_page, P.copy_page, P.kmap_atomic
        self.P_pte_set, self.P_pte_clear, self.P_pte_copy, self.P_ref = P.pte_set, P.pte_clear, P.pte_copy, P.page_ref
        self.P_vma, self.P_pcl = P.vma_op, P.page_cache_lookup
        ns = self.acct.ns_of  # the hot paths add these to acct.ns inline (one charge per operation)
        self.ns_fault, self.ns_pte_set, self.ns_clear = ns[P.page_fault], ns[P.pte_set], ns[P.clear_page]
        self.ns_clear_kmap = ns[P.clear_page] + ns[P.kmap_atomic]
        self.P_mmc_alloc, self.P_mmc_free, self.P_mmc_visit = P.mm_chain_alloc, P.mm_chain_free, P.mm_chain_visit
        self._copy_hook = m.policy("mmframe_copy_pte_page")
        self._pte_hook = m.policy("mmframe_pte_change")
        self.committed = 0  # vm_committed_space: pages charged by vm_enough_memory (Committed_AS)
        self.swap = SwapSpace(self, None, 0)  # attached to its device by the machine ([vm] swap)
        self.vmscan = VmScan(self)
        self.lru_cache_add = self.vmscan.lru_cache_add
        pa.reclaim = self.vmscan
        self.scope_hooks({})  # the fault dispatch; the machine redoes it with the plugins' scopes (1.15)

    # --- reports ---------------------------------------------------------------------------------
    def reverse_maps(self) -> int:
        return self.rmap.entries()

    def highmem_pte_pages(self) -> int:
        """PTE pages in highmem (HIGHPTE): PageTables counts them, lowmem does not hold them."""
        return sum(pt.high for pt in self.ptpages.values())

    def check(self) -> None:
        """The invariant checker (:mod:`mmframe.mm.debug_vm`) over this machine's memory."""
        check(self)
