"""The 2.5 reverse map: for each page, the PTEs that map it (``page->pte.direct`` / ``pte.chain``).

Storage is columnar, never an object per mapping: an entry table of ``(page, pte address)`` in two
arrays with a free-id stack, each PTE page's ``rid`` column pointing at the entry of each slot, and
the number of entries per page in ``mem_map.rmap``.  The kernel's representation follows from that
number ``k``: ``k == 1`` is PageDirect (no pte_chain), ``k >= 2`` uses ``ceil(k / NRPTE)`` packed
pte_chains (2.5.49's page_remove_rmap keeps chains packed by moving the head chain's first slot
into the hole), each one ``L1_CACHE_BYTES`` of lowmem from the ``pte_chain`` slab.  ZERO_PAGE and
reserved pages are not rmapped.

``NRPTE = (L1_CACHE_BYTES - sizeof(void *)) / sizeof(pte_addr_t)``; ``pte_addr_t`` is 4 bytes, or
8 with PAE+HIGHPTE (a 64-bit physical address).  Removal charges the chain blocks a search visits
(on average half the page's chains).  Costs go through the machine's account; the bulk forms
charge exactly what the single forms would, entry by entry.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from mmframe.mm.page import GFP_ATOMIC


def nrpte(l1_cache_bytes: int, pae: bool, highpte: bool) -> int:
    pte_addr = 8 if pae and highpte else 4
    return (l1_cache_bytes - 4) // pte_addr


class Rmap:
    """Entry table plus per-page counts; pte_chain objects are accounted in the ``pte_chain`` cache."""

    __slots__ = ("page", "ptep", "free", "nrpte", "k", "chains", "cache", "acct", "P", "events")

    def __init__(self, machine: Any, npages_k: array, nrpte_: int, l1: int) -> None:
        self.page = array("i")  # pfn per entry, -1 when free
        self.ptep = array("q")
        self.free = array("q")  # stack of free entry ids
        self.nrpte = nrpte_
        self.k = npages_k  # mem_map.rmap: entries per page
        self.chains = 0  # pte_chain objects in use
        self.cache = machine.kmem_cache("pte_chain", l1, l1)
        self.acct = machine.acct
        P = machine.P
        self.P = (P.page_add_rmap, P.page_remove_rmap, P.pte_chain_alloc, P.pte_chain_free, P.pte_chain_visit)
        self.events = machine.pagealloc.events

    def nchains(self, k: int) -> int:
        return 0 if k < 2 else -(-k // self.nrpte)

    def _grow(self, n: int) -> None:
        base = len(self.page)
        grow = max(n, base // 2, 1024)
        self.page.frombytes(bytes(4 * grow))
        self.ptep.frombytes(bytes(8 * grow))
        self.free.extend(range(base + grow - 1, base - 1, -1))

    def _chains_delta(self, delta: int) -> None:
        if delta > 0:
            if self.cache.alloc(GFP_ATOMIC, delta) < 0:
                # 2.5.49: a failed atomic pte_chain_alloc under page_table_lock oopsed; mmframe
                # records it and carries on with the chains unaccounted in lowmem
                self.events.append(("oops", "pte_chain_alloc", delta))
                self.cache.objects += delta
            self.acct.charge(self.P[2], delta)
        elif delta < 0:
            self.cache.free(0, -delta)
            self.acct.charge(self.P[3], -delta)
        self.chains += delta

    # --- single ------------------------------------------------------------------------------
    def page_add_rmap(self, pfn: int, pt: Any, i: int) -> None:
        """``page_add_rmap``: the PTE at slot ``i`` of ``pt`` now maps ``pfn``."""
        if not self.free:
            self._grow(1)
        e = self.free.pop()
        self.page[e] = pfn
        self.ptep[e] = pt.pfn * 1024 + i
        pt.rid[i] = e
        k = self.k[pfn]
        self.k[pfn] = k + 1
        acct = self.acct
        acct.charge(self.P[0])
        if k >= 1 and (k == 1 or k % self.nrpte == 0):  # direct -> chain, or every chain full
            self._chains_delta(1)

    def page_remove_rmap(self, pfn: int, pt: Any, i: int) -> None:
        """``page_remove_rmap`` of slot ``i`` of ``pt`` (which maps ``pfn``)."""
        e = pt.rid[i]
        self.page[e] = -1
        pt.rid[i] = -1
        self.free.append(e)
        k = self.k[pfn]
        self.k[pfn] = k - 1
        acct = self.acct
        acct.charge(self.P[0 + 1])
        c = self.nchains(k)
        if c:
            acct.charge(self.P[4], (c + 1) // 2)
            d = self.nchains(k - 1) - c
            if d:
                self._chains_delta(d)

    # --- bulk (a PTE page at a time) ----------------------------------------------------------
    def page_add_rmap_bulk(self, pfns: np.ndarray, pt: Any, slots: np.ndarray) -> None:
        """``page_add_rmap`` for each ``(pfns[j], slots[j])`` of one PTE page, charged per entry."""
        n = len(pfns)
        if not n:
            return
        if len(self.free) < n:
            self._grow(n - len(self.free))
        free = np.frombuffer(self.free, dtype=np.int64)
        ids = free[len(free) - n:][::-1].copy()
        del free
        del self.free[len(self.free) - n:]
        np.frombuffer(self.page, dtype=np.int32)[ids] = pfns
        np.frombuffer(self.ptep, dtype=np.int64)[ids] = pt.pfn * 1024 + slots
        pt.np_rid()[slots] = ids
        k = np.frombuffer(self.k, dtype=np.int32)
        before = k[pfns].astype(np.int64)
        np.add.at(k, pfns, 1)
        after = k[pfns].astype(np.int64)
        if not np.all(after - before == 1):  # a page mapped twice in this PTE page
            u, first = np.unique(pfns, return_index=True)
            after = k[u].astype(np.int64)
            before = after - np.bincount(np.searchsorted(u, pfns), minlength=len(u))
        self.acct.charge(self.P[0], n)
        delta = int(self._nchains_np(after).sum() - self._nchains_np(before).sum())
        if delta:
            self._chains_delta(delta)

    def page_remove_rmap_bulk(self, pfns: np.ndarray, pt: Any, slots: np.ndarray) -> None:
        """``page_remove_rmap`` for each slot of one PTE page, charged per entry (and chain visit)."""
        n = len(pfns)
        if not n:
            return
        rid = pt.np_rid()
        ids = rid[slots].copy()
        rid[slots] = -1
        np.frombuffer(self.page, dtype=np.int32)[ids] = -1
        self.free.frombytes(ids.tobytes())
        k = np.frombuffer(self.k, dtype=np.int32)
        # sequential semantics: the j-th removal of a page sees k minus the earlier removals
        order = np.argsort(pfns, kind="stable")
        sp = pfns[order]
        start = np.r_[0, np.flatnonzero(np.diff(sp)) + 1]
        rank = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
        kk = k[sp].astype(np.int64) - rank  # k seen by each removal
        c_before = self._nchains_np(kk)
        visits = int(((c_before + 1) // 2).sum())
        delta = int(self._nchains_np(kk - 1).sum() - c_before.sum())
        np.subtract.at(k, pfns, 1)
        acct = self.acct
        acct.charge(self.P[1], n)
        if visits:
            acct.charge(self.P[4], visits)
        if delta:
            self._chains_delta(delta)

    def _nchains_np(self, k: np.ndarray) -> np.ndarray:
        return np.where(k < 2, 0, -(-k // self.nrpte))

    # --- queries ------------------------------------------------------------------------------
    def entries(self) -> int:
        return len(self.page) - len(self.free)

    def pteps_of(self, pfn: int) -> list[int]:
        """The pte addresses mapping ``pfn`` (a scan of the table: for checkers and reclaim)."""
        page = np.frombuffer(self.page, dtype=np.int32)
        ids = np.flatnonzero(page == pfn)
        return np.frombuffer(self.ptep, dtype=np.int64)[ids].tolist()
