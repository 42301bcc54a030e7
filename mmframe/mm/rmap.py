"""The 2.5 reverse map: for each page, the PTEs that map it (``page->pte.direct`` / ``pte.chain``).

Storage is columnar, never an object per mapping: an entry table of ``(page, pte address)`` in two
arrays with a free-id stack, each PTE page's ``rid`` column pointing at the entry of each slot, and
the number of entries per page in ``mem_map.rmap``, and one byte per page saying whether the page
is on pte_chains (not PageDirect).  Each page's entries are linked as its pte_chains link its PTE
addresses: a per-page ``head`` array and per-entry ``next``/``prev`` arrays (a doubly linked list,
newest first, as ``page_add_rmap`` puts a new address in the head chain), so :meth:`Rmap.ptes_of`
and :meth:`Rmap.pteps_of` walk O(the page's mappings) and a removal unlinks in O(1).

2.5.49's rules (mm/rmap.c): the first mapping is PageDirect (no pte_chain); the second converts
the page to a chain; a chain page holds ``ceil(k / NRPTE)`` packed pte_chains
(``page_remove_rmap`` moves the head chain's first used slot into the hole and frees the head
chain when it empties), each ``L1_CACHE_BYTES`` of lowmem from the ``pte_chain`` slab; and a
page never goes back to PageDirect while mapped ("Do singleton->PageDirect here" is a comment, not
code): a page left with one mapping keeps its chain until that mapping goes, and a page that
leaves chain mode at ``k == 0`` starts PageDirect again.  ZERO_PAGE and reserved pages are not
rmapped.

``NRPTE = (L1_CACHE_BYTES - sizeof(void *)) / sizeof(pte_addr_t)``; ``pte_addr_t`` is 4 bytes, or
8 with PAE+HIGHPTE (a 64-bit physical address).  Removal charges the chain blocks a search visits
(on average half the page's chains).  Costs go through the machine's account; the bulk forms
charge exactly what the single forms would, entry by entry, and leave the same state (the same ids,
links and order) as the single forms applied in order: a bulk add links each page's new entries in
front of its list, the last first; a bulk remove finds, for each removed entry, the nearest kept
neighbours on either side by pointer jumping over runs of removed entries (numpy, O(n log run)).
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from mmframe.errors import SimOops
from mmframe.mm.page import GFP_ATOMIC


_CHUNK = 1 << 20  # entries appended at a time when the table grows


def nrpte(l1_cache_bytes: int, pae: bool, highpte: bool) -> int:
    pte_addr = 8 if pae and highpte else 4
    return (l1_cache_bytes - 4) // pte_addr


class Rmap:
    """Entry table plus per-page counts; pte_chain objects are accounted in the ``pte_chain`` cache."""

    __slots__ = ("page", "ptep", "next", "prev", "head", "free", "nrpte", "k", "chained", "chains", "cache", "acct",
                 "P", "events", "machine", "_mark")

    def __init__(self, machine: Any, npages_k: array, nrpte_: int, l1: int) -> None:
        self.page = array("i")  # pfn per entry, -1 when free
        self.ptep = array("q")
        self.next = array("i")  # the page's next (older) entry, -1 at the tail or when free
        self.prev = array("i")  # the page's previous (newer) entry, -1 at the head or when free
        self.head = array("i", [-1]) * len(npages_k)  # each page's newest entry, -1 when unmapped
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
        self.machine = machine
        self._mark: np.ndarray | None = None

    def distinct(self, pfns: np.ndarray) -> bool:
        """No page twice in ``pfns``, each the page of a mapping: a page mapped once in all is there
        once; among the others, each position writes itself into a per-page scratch array
        (allocated on first use and kept) and must read itself back.  O(n), no sort."""
        many = np.frombuffer(self.k, dtype=np.int32)[pfns] > 1
        if not many.any():
            return True
        pfns = pfns[many]
        if self._mark is None:
            self._mark = np.empty(len(self.k), dtype=np.int32)
        pos = np.arange(len(pfns), dtype=np.int32)
        self._mark[pfns] = pos
        return bool((self._mark[pfns] == pos).all())

    def nchains(self, pfn: int) -> int:
        """The pte_chains page ``pfn`` holds now."""
        return -(-self.k[pfn] // self.nrpte) if self.chained[pfn] else 0

    def _grow(self, n: int) -> None:
        """At least ``n`` more entries.  The new ids go under the free ones, the lowest on top:
        the ids handed out are then the freed ones (last freed first), then ``len(page)``,
        ``len(page) + 1``, ... whenever and by how much the table grows, so a batch that grows
        once hands out the ids a sequence of smaller adds would.  Appended a chunk at a time, so
        the host memory a big growth needs on the way is a chunk's, not the growth's again."""
        base = len(self.page)
        grow = max(n, base // 4, 1024)  # (a quarter: less idle room on a big table, still amortised O(1))
        c = min(grow, _CHUNK)
        zeros = memoryview(bytes(8 * c))  # (calloc'd: read, never written)
        none = memoryview(np.full(c, -1, dtype=np.int32).tobytes())
        new = array("q")
        for lo in range(0, grow, c):
            k = min(c, grow - lo)
            self.page.frombytes(zeros[:4 * k])
            self.ptep.frombytes(zeros[:8 * k])
            self.next.frombytes(none[:4 * k])
            self.prev.frombytes(none[:4 * k])
            top = base + grow - 1 - lo  # the new ids, highest first (the lowest ends on top)
            new.frombytes(np.arange(top, top - k, -1, dtype=np.int64).tobytes())
        new.extend(self.free)
        self.free = new

    def _chains_delta(self, delta: int) -> None:
        if delta > 0:
            oops = False
            m = self.machine
            need = self.cache.pages_needed(delta)
            site = need and m.reserving  # a reservation site (docs/reserve.md)
            gfp = m.reserve_enter("pte_chain_alloc", GFP_ATOMIC, need) if site else GFP_ATOMIC
            if self.cache.alloc(gfp, delta) < 0:
                # 2.5.49: a failed atomic pte_chain_alloc under page_table_lock oopsed (the
                # NULL chain is dereferenced): the run ends with the report, after reserve_exit
                self.events.append(("oops", "pte_chain_alloc", delta))
                self.cache.objects += delta
                oops = True
            if site:
                m.reserve_exit("pte_chain_alloc", need)
            if oops:
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
        h = self.head[pfn]
        self.next[e] = h
        if h >= 0:
            self.prev[h] = e
        self.head[pfn] = e
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
        nxt, prv = self.next, self.prev
        a, b = prv[e], nxt[e]
        if a >= 0:
            nxt[a] = b
        else:
            self.head[pfn] = b
        if b >= 0:
            prv[b] = a
        nxt[e] = prv[e] = -1
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
    def _take_ids(self, n: int) -> np.ndarray:
        """``n`` free entry ids in the order ``n`` single adds would pop them (the stack's top first)."""
        if len(self.free) < n:
            self._grow(n - len(self.free))
        free = np.frombuffer(self.free, dtype=np.int64)
        ids = free[len(free) - n:][::-1].copy()
        del free  # (the buffer must have no view left before it shrinks)
        del self.free[len(self.free) - n:]
        return ids

    def page_add_rmap_bulk(self, pfns: np.ndarray, pt: Any, slots: np.ndarray) -> None:
        """``page_add_rmap`` for each ``(pfns[j], slots[j])`` of one PTE page, charged per entry."""
        n = len(pfns)
        if not n:
            return
        ids = self._take_ids(n)
        np.frombuffer(self.page, dtype=np.int32)[ids] = pfns
        np.frombuffer(self.ptep, dtype=np.int64)[ids] = pt.pfn * 1024 + slots
        pt.np_rid()[slots] = ids
        k = np.frombuffer(self.k, dtype=np.int32)
        ch = np.frombuffer(self.chained, dtype=np.uint8)
        sp = np.sort(pfns)
        once = bool((sp[1:] != sp[:-1]).all())
        if once:  # each page once (fork, fault-around): plain fancy indexing
            u = pfns
            before = k[pfns].astype(np.int64)
            after = before + 1
            k[pfns] = after
        else:  # a page mapped twice in this PTE page
            np.add.at(k, pfns, 1)
            u = np.unique(sp)
            after = k[u].astype(np.int64)
            before = after - np.bincount(np.searchsorted(u, pfns), minlength=len(u))
        self._link_bulk(pfns, ids, once)
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
        ids = rid[slots].astype(np.int64)
        rid[slots] = -1
        # sequential semantics: the j-th removal of a page sees k minus the earlier removals; a
        # page's chain mode holds until its last mapping goes
        order = np.argsort(pfns, kind="stable")
        sp = pfns[order]
        start = np.r_[0, np.flatnonzero(np.diff(sp)) + 1]
        once = len(start) == n
        np.frombuffer(self.page, dtype=np.int32)[ids] = -1  # marks them removed for _unlink_bulk
        self._unlink_bulk(pfns, ids, once)
        self.free.frombytes(ids.tobytes())
        k = np.frombuffer(self.k, dtype=np.int32)
        ch = np.frombuffer(self.chained, dtype=np.uint8)
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
        if once:
            k[pfns] -= 1
        else:
            np.subtract.at(k, pfns, 1)
        acct = self.acct
        acct.charge(self.P[1], n)
        if visits:
            acct.charge(self.P[4], visits)
        if delta:
            self._chains_delta(delta)

    # --- batch over many PTE pages, each page mapped once (fork's batched copy) -------------------
    def chain_deltas_distinct(self, pfns: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """The pte_chain change (+objects) each group ``pfns[bounds[g]:bounds[g + 1]]`` of
        ``page_add_rmap`` calls would make, the groups in order, when no page appears twice in
        ``pfns`` (so each page's change is independent of the others).  No state changes."""
        k0 = np.frombuffer(self.k, dtype=np.int32)[pfns]  # (int32 arithmetic: counts stay far below 2**31)
        c0 = np.frombuffer(self.chained, dtype=np.uint8)[pfns]
        n = self.nrpte
        d = (k0 + n) // n
        d *= c0 | (k0 >= 1)  # nchains after: a second mapping puts the page on chains
        d -= ((k0 + (n - 1)) // n) * c0  # nchains before
        cs = np.zeros(len(d) + 1, dtype=np.int64)
        np.cumsum(d, out=cs[1:])
        return cs[bounds[1:]] - cs[bounds[:-1]]

    def add_distinct(self, pfns: np.ndarray, pteps: np.ndarray) -> np.ndarray:
        """``page_add_rmap`` of page ``pfns[j]`` at pte address ``pteps[j]`` for j in order, no page
        twice, with the pte_chain objects already taken (:meth:`chain_deltas_distinct`,
        :meth:`_chains_delta`): the entries, links, counts and chain modes, charged per entry.
        Returns the entry ids (the caller records them in its PTE pages' ``rid``).  O(n) numpy."""
        n = len(pfns)
        ids = self._take_ids(n)
        np.frombuffer(self.page, dtype=np.int32)[ids] = pfns
        np.frombuffer(self.ptep, dtype=np.int64)[ids] = pteps
        k = np.frombuffer(self.k, dtype=np.int32)
        after = k[pfns] + 1
        k[pfns] = after
        ch = np.frombuffer(self.chained, dtype=np.uint8)
        ch[pfns] |= (after >= 2).view(np.uint8)
        self._link_bulk(pfns, ids, True)
        self.acct.charge(self.P[0], n)
        return ids

    def remove_distinct(self, pfns: np.ndarray, ids: np.ndarray, bounds: np.ndarray) -> list[int]:
        """``page_remove_rmap`` of entry ``ids[j]`` (of page ``pfns[j]``) for j in order, no page
        twice: the entries freed (pushed in that order), the links bridged, the counts and chain
        modes, charged per entry with the chain blocks each search visits.  Returns the pte_chain
        change (<= 0) of each group ``[bounds[g], bounds[g + 1])``, for the caller to apply with
        :meth:`_chains_delta` in order, between its other frees.  O(n) numpy."""
        n = len(pfns)
        np.frombuffer(self.page, dtype=np.int32)[ids] = -1
        self._unlink_bulk(pfns, ids, True)
        self.free.frombytes(ids.astype(np.int64).tobytes())
        k = np.frombuffer(self.k, dtype=np.int32)
        ch = np.frombuffer(self.chained, dtype=np.uint8)
        k0 = k[pfns]
        c0 = ch[pfns]
        nr = self.nrpte
        before = (k0 + (nr - 1)) // nr
        before *= c0
        visits = int(((before + 1) // 2).sum())
        k1 = k0 - 1
        c1 = c0 & (k1 >= 1)  # chain mode holds until the last mapping goes
        d = (k1 + (nr - 1)) // nr
        d *= c1
        d -= before
        ch[pfns] = c1
        k[pfns] = k1
        self.acct.charge(self.P[1], n)
        if visits:
            self.acct.charge(self.P[4], visits)
        cs = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(d, out=cs[1:])
        return (cs[bounds[1:]] - cs[bounds[:-1]]).tolist()

    def _link_bulk(self, pfns: np.ndarray, ids: np.ndarray, once: bool) -> None:
        """Link entry ``ids[j]`` in front of page ``pfns[j]``'s list for j = 0, 1, ... in order
        (what the single adds do): a page's new entries go in front, the last one first.
        ``once``: no page appears twice in ``pfns``."""
        head = np.frombuffer(self.head, dtype=np.int32)
        nxt = np.frombuffer(self.next, dtype=np.int32)
        prv = np.frombuffer(self.prev, dtype=np.int32)
        if once:  # each page once (fork, a fault-around run): no sort needed
            old = head[pfns]
            nxt[ids] = old
            prv[ids] = -1
            has = old >= 0
            prv[old[has]] = ids[has]
            head[pfns] = ids
            return
        order = np.argsort(pfns, kind="stable")  # each page's entries together, in call order
        sid = ids[order]
        sp = pfns[order]
        n = len(sid)
        starts = np.r_[0, np.flatnonzero(np.diff(sp)) + 1]
        ends = np.r_[starts[1:], n] - 1  # the page's last (newest) entry
        old = head[sp[starts]]
        after = np.empty(n, dtype=np.int32)  # the next (older) entry of each
        after[1:] = sid[:-1]
        after[starts] = old
        before = np.empty(n, dtype=np.int32)  # the previous (newer) entry of each
        before[:-1] = sid[1:]
        before[ends] = -1
        nxt[sid] = after
        prv[sid] = before
        has = old >= 0
        prv[old[has]] = sid[starts][has]
        head[sp[ends]] = sid[ends]

    def _unlink_bulk(self, pfns: np.ndarray, ids: np.ndarray, once: bool) -> None:
        """Unlink the entries ``ids`` (of pages ``pfns``, already marked free in ``page``): each
        run of removed entries is bridged from its kept predecessor to its kept successor.
        ``once``: each page once, so every neighbour is kept; otherwise the neighbours are found by
        pointer jumping, each removed entry's own links holding its current estimate (O(log run)
        rounds)."""
        head = np.frombuffer(self.head, dtype=np.int32)
        nxt = np.frombuffer(self.next, dtype=np.int32)
        prv = np.frombuffer(self.prev, dtype=np.int32)
        a = prv[ids]
        b = nxt[ids]
        if not once:
            page = np.frombuffer(self.page, dtype=np.int32)
            for ends, links in ((a, prv), (b, nxt)):
                while True:
                    more = np.flatnonzero(ends >= 0)
                    more = more[page[ends[more]] < 0]  # the neighbour is being removed too
                    if not len(more):
                        break
                    ends[more] = links[ends[more]]  # its own current estimate: a jump
                    links[ids] = ends
        has_a = a >= 0
        nxt[a[has_a]] = b[has_a]
        head[pfns[~has_a]] = b[~has_a]
        has_b = b >= 0
        prv[b[has_b]] = a[has_b]
        nxt[ids] = -1
        prv[ids] = -1

    def _nchains_np(self, k: np.ndarray, chained: np.ndarray) -> np.ndarray:
        """:meth:`nchains` of each ``(k, chained)`` (k >= 0): ceil(k / NRPTE) on chains, else 0."""
        q = (k + (self.nrpte - 1)) // self.nrpte
        q *= chained != 0
        return q

    # --- queries ------------------------------------------------------------------------------
    def entries(self) -> int:
        return len(self.page) - len(self.free)

    def ptes_of(self, pfn: int, ptpages: dict[int, Any]) -> list[tuple[Any, int]]:
        """The ``(PTE page, slot)`` pairs mapping ``pfn``, newest first (``ptpages``: the live PTE
        pages by pfn): reclaim's walk of the page's pte_chains, O(its mappings)."""
        out = []
        e, nxt, ptep = self.head[pfn], self.next, self.ptep
        while e >= 0:
            p = ptep[e]
            out.append((ptpages[p >> 10], p & 1023))
            e = nxt[e]
        return out

    def pteps_of(self, pfn: int) -> list[int]:
        """The pte addresses mapping ``pfn``, newest first: a walk of its list, O(its mappings)."""
        out = []
        e, nxt, ptep = self.head[pfn], self.next, self.ptep
        while e >= 0:
            out.append(ptep[e])
            e = nxt[e]
        return out
