"""The 2.5 reverse map: for each page, the PTEs that map it (``page->pte.direct`` / ``pte.chain``).

Storage is columnar, never an object per mapping: an entry table of ``(page, pte address)`` in two
arrays with a free-id stack, each PTE page's ``rid`` column pointing at the entry of each slot, and
the number of entries per page in ``mem_map.rmap``, and one byte per page saying whether the page
is on pte_chains (not PageDirect).  2.5.49's rules (mm/rmap.c): the first mapping is PageDirect (no
pte_chain); the second converts the page to a chain; a chain page holds ``ceil(k / NRPTE)`` packed
pte_chains (``page_remove_rmap`` moves the head chain's first used slot into the hole and frees the
head chain when it empties), each ``L1_CACHE_BYTES`` of lowmem from the ``pte_chain`` slab; and a
page never goes back to PageDirect while mapped ("Do singleton->PageDirect here" is a comment, not
code): a page left with one mapping keeps its chain until that mapping goes, and a page that
leaves chain mode at ``k == 0`` starts PageDirect again.  ZERO_PAGE and reserved pages are not
rmapped.

``NRPTE = (L1_CACHE_BYTES - sizeof(void *)) / sizeof(pte_addr_t)``; ``pte_addr_t`` is 4 bytes, or
8 with PAE+HIGHPTE (a 64-bit physical address).  Removal charges the chain blocks a search visits
(on average half the page's chains).  Costs go through the machine's account; the bulk forms
charge exactly what the single forms would, entry by entry.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from mmframe.errors import SimOops
from mmframe.mm.page import GFP_ATOMIC


def nrpte(l1_cache_bytes: int, pae: bool, highpte: bool) -> int:
    pte_addr = 8 if pae and highpte else 4
    return (l1_cache_bytes - 4) // pte_addr


class Rmap:
    """Entry table plus per-page counts; pte_chain objects are accounted in the ``pte_chain`` cache."""

    __slots__ = ("page", "ptep", "free", "nrpte", "k", "chained", "chains", "cache", "acct", "P", "events")

    def __init__(self, machine: Any, npages_k: array, nrpte_: int, l1: int) -> None:
        self.page = array("i")  # pfn per entry, -1 when free
        self.ptep = array("q")
        self.free = array("q")  # stack of free entry ids
        self.nrpte = nrpte_
        self.k = npages_k  # mem_map.rmap: entries per page
        self.chained = bytearray(len(npages_k))  # 1: on pte_chains (not PageDirect)
        self.chains = 0  # pte_chain objects in use
        self.cache = machine.kmem_cache("pte_chain", l1, l1)
        self.acct = machine.acct
        P = machine.P
        self.P = (P.page_add_rmap, P.page_remove_rmap, P.pte_chain_alloc, P.pte_chain_free, P.pte_chain_visit)
        self.events = machine.pagealloc.events

    def nchains(self, pfn: int) -> int:
        """The pte_chains page ``pfn`` holds now."""
        return -(-self.k[pfn] // self.nrpte) if self.chained[pfn] else 0

    def _grow(self, n: int) -> None:
        base = len(self.page)
        grow = max(n, base // 2, 1024)
        self.page.frombytes(bytes(4 * grow))
        self.ptep.frombytes(bytes(8 * grow))
        self.free.extend(range(base + grow - 1, base - 1, -1))

    def _chains_delta(self, delta: int) -> None:
        if delta > 0:
            if self.cache.alloc(GFP_ATOMIC, delta) < 0:
                # 2.5.49: a failed atomic pte_chain_alloc under page_table_lock oopsed (the
                # NULL chain is dereferenced): the run ends with the report
                self.events.append(("oops", "pte_chain_alloc", delta))
                self.cache.objects += delta
                raise SimOops(f"Oops: pte_chain_alloc(GFP_ATOMIC) failed under page_table_lock "
                              f"(2.5.49 mm/rmap.c page_add_rmap): {delta} chain(s) needed, lowmem exhausted")
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
        if not self.chained[pfn]:
            if k:  # PageDirect -> a chain
                self.chained[pfn] = 1
                self._chains_delta(1)
        elif k % self.nrpte == 0:  # every chain full
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
        if self.chained[pfn]:
            n = self.nrpte
            c = -(-k // n)
            acct.charge(self.P[4], (c + 1) // 2)
            if k == 1:
                self.chained[pfn] = 0
            if k % n == 1 or n == 1:  # the head chain emptied
                self._chains_delta(-1)

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
        ch = np.frombuffer(self.chained, dtype=np.uint8)
        before = k[pfns].astype(np.int64)
        np.add.at(k, pfns, 1)
        after = k[pfns].astype(np.int64)
        u = pfns
        if not np.all(after - before == 1):  # a page mapped twice in this PTE page
            u = np.unique(pfns)
            after = k[u].astype(np.int64)
            before = after - np.bincount(np.searchsorted(u, pfns), minlength=len(u))
        self.acct.charge(self.P[0], n)
        cb = ch[u]
        ca = cb | (after >= 2)
        delta = int(self._nchains_np(after, ca).sum() - self._nchains_np(before, cb).sum())
        ch[u] = ca
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
        ch = np.frombuffer(self.chained, dtype=np.uint8)
        # sequential semantics: the j-th removal of a page sees k minus the earlier removals; a
        # page's chain mode holds until its last mapping goes
        order = np.argsort(pfns, kind="stable")
        sp = pfns[order]
        start = np.r_[0, np.flatnonzero(np.diff(sp)) + 1]
        runs = np.diff(np.r_[start, n])
        rank = np.arange(n) - np.repeat(start, runs)
        kk = k[sp].astype(np.int64) - rank  # k seen by each removal
        visits = int(((self._nchains_np(kk, ch[sp]) + 1) // 2).sum())
        u = sp[start]
        k0 = k[u].astype(np.int64)
        k1 = k0 - runs
        c0 = ch[u]
        c1 = c0 & (k1 > 0)
        delta = int(self._nchains_np(k1, c1).sum() - self._nchains_np(k0, c0).sum())
        ch[u] = c1
        np.subtract.at(k, pfns, 1)
        acct = self.acct
        acct.charge(self.P[1], n)
        if visits:
            acct.charge(self.P[4], visits)
        if delta:
            self._chains_delta(delta)

    def _nchains_np(self, k: np.ndarray, chained: np.ndarray) -> np.ndarray:
        return np.where(chained != 0, -(-k // self.nrpte), 0)

    # --- queries ------------------------------------------------------------------------------
    def entries(self) -> int:
        return len(self.page) - len(self.free)

    def pteps_of(self, pfn: int) -> list[int]:
        """The pte addresses mapping ``pfn`` (a scan of the table: for checkers and reclaim)."""
        page = np.frombuffer(self.page, dtype=np.int32)
        ids = np.flatnonzero(page == pfn)
        return np.frombuffer(self.ptep, dtype=np.int64)[ids].tolist()
