"""The tree-sorted deadline elevators: ``rbtree`` (the -mm patch), ``rbtree-2.5.58`` (mainline, later)
and ``rbtree-ablation`` (the tree under the list deadline's decisions).

Sources (docs/elevator_rbtree.md has the detail):

* ``rbtree`` -- Jens Axboe's patch as posted for 2.5.46-mm2 (LKML, 10 Nov 2002,
  Message-ID <20021110155851.GL31134@suse.de>; carried as rbtree-iosched.patch through 2.5.49-mm1,
  announced in <3DDEFE51.E1D9F8E7@digeo.com>) and its tunables document (attached to
  <20021110143208.GJ31134@suse.de>, "Nov 11 2002").  ``sort_list[2]`` became ``rb_list[2]``; front
  merges are a tree lookup of the bio's end sector (``front_merges``); the back-merge hash has 1024
  buckets; there is a **read FIFO only** (``struct list_head read_fifo``; the document lists
  read_expire, fifo_batch, seek_cost, stream_unit, writes_starved, front_merges and no write
  expiry); a batch starts at the expired read or at the **lowest** read (``rb_first``), walks
  ``rb_next`` and costs ``seek_cost`` per seek or ``ceil(size / stream_unit)`` per streaming
  request (stream_unit in KiB); a request whose sector is already in the tree ("this cannot
  happen") goes straight to the dispatch list; requests in the tree have no sort-list neighbours,
  so the core's request-to-request merging only happens on the dispatch list (``get_sort_head``
  returns ``dd->dispatch``, and ll_rw_blk.c's ``attempt_*_merge`` skip a self-linked queuelist).
  The patch raised ``queue_nr_requests``' cap from 128 to 1024.
* ``rbtree-2.5.58`` -- mainline 2.5.58 (commit 2ab8ee0147 "rbtree core for io scheduler", Jan
  2003): a FIFO per direction (read 500 ms, **write 5 s**), ``fifo_batch`` counted in requests
  (``batching``; a non-contiguous next request ends the batch), one request moved per call,
  ``next_drq`` continuing the sweep and a new sweep restarting at the lowest sector; duplicate
  sectors chained as aliases and dispatched with their node; former/latter by ``rb_prev``/
  ``rb_next`` -- with 2.5.58's ``elv_former_request`` calling the *latter* function (fixed in Feb
  2003, 100f587dd0), which is modelled.
* ``rbtree-ablation`` -- not a kernel: the core ``deadline`` with its sort lists held in the tree
  (:class:`~mmframe_plugins.elevator_rbtree.listorder.ListOrder`), every decision the list's.

Each elevator reports the tree's real steps (``visit``, ``rotate``, ``recolour``; the ablation
also ``run`` and ``relabel``) as they happen, and counts the steps spent inserting separately
(``insert_steps``) for the io-depth comparison.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from mmframe.facade import (ELEVATOR_FRONT_MERGE, ELEVATOR_NO_MERGE, INSERT_FRONT, REQ_BARRIER,
                            REQ_CMD, REQ_HARDBARRIER, BlockRequest, Deadline, Elevator, rq_mergeable)

from mmframe_plugins.elevator_rbtree.listorder import AFTER, FRONT, MERGE, SECTOR_MASK, ListOrder
from mmframe_plugins.elevator_rbtree.rbtree import RbNode, RbTree

READ, WRITE = 0, 1
PLUGIN = "elevator_rbtree"

TREE_STEPS = {"visit": f"{PLUGIN}.rb_visit", "rotate": f"{PLUGIN}.rb_rotate",
              "recolour": f"{PLUGIN}.rb_recolour", "hash": "elv_hash_lookup"}


QUEUE_NR_REQUESTS = 1024  # the -mm patch's cap on queue_nr_requests (ll_rw_blk.c blk_dev_init)


def queue_options(q: Any, given: dict[str, Any]) -> dict[str, Any]:
    """This queue's tunables: the plugin's options as ``init`` receives them (``[plugins.
    elevator_rbtree]`` overridden by ``[block.<disk>.elevator_rbtree]``), over their defaults."""
    from mmframe_plugins.elevator_rbtree import OPTIONS
    out = {o.name: o.coerce(o.default) for o in OPTIONS}
    out.update(given)
    return out


class Drq:
    """``struct deadline_rq``: a request's tree node, FIFO expiry and hash key."""

    __slots__ = ("rq", "node", "expires", "hash_key", "on_fifo")

    def __init__(self, rq: BlockRequest) -> None:
        self.rq = rq
        self.node: RbNode | None = None
        self.expires = 0.0
        self.hash_key: int | None = None
        self.on_fifo = False


class _DispatchHead:
    """The dispatch list as a sort head (2.5.46-mm's ``deadline_get_sort_head`` returns it)."""

    __slots__ = ("dispatch",)

    def __init__(self, dispatch: deque[BlockRequest]) -> None:
        self.dispatch = dispatch

    def former(self, rq: BlockRequest) -> BlockRequest | None:
        d = self.dispatch
        i = d.index(rq)
        return d[i - 1] if i else None

    def latter(self, rq: BlockRequest) -> BlockRequest | None:
        d = self.dispatch
        i = d.index(rq) + 1
        return d[i] if i < len(d) else None


class _TreeElevator(Elevator):
    """What the two tree-sorted deadlines share: a tree and a FIFO per direction, the back-merge
    hash, the dispatch list, and step reporting."""

    steps = TREE_STEPS

    def init(self, q: Any, options: dict[str, Any]) -> None:
        options = queue_options(q, options)
        self.sort = (RbTree(), RbTree())
        self.fifo: tuple[deque[BlockRequest], deque[BlockRequest]] = (deque(), deque())
        self.dispatch: deque[BlockRequest] = deque()
        self.hash: dict[int, list[BlockRequest]] = {}
        self.last_sector = 0
        self.starved = 0
        self.writes_starved = options.get("writes_starved", 2)
        self.front_merges = options.get("front_merges", True)
        self.fifo_batch = options.get("fifo_batch", 16)
        self.expire = (float(options.get("read_expire", 500_000_000)),
                       float(options.get("write_expire", 5_000_000_000)))
        self._seen = [0, 0, 0]           # tree counters already reported
        self.insert_steps = 0
        self.inserts = 0
        self.batches = [0, 0]
        self.expired_batches = 0
        self.aliases = 0

    # --- steps ----------------------------------------------------------------------------------
    def _flush(self) -> int:
        """Report the trees' steps taken since the last flush; return how many."""
        v = self.sort[0].visits + self.sort[1].visits
        r = self.sort[0].rotations + self.sort[1].rotations
        c = self.sort[0].recolours + self.sort[1].recolours
        seen = self._seen
        dv, dr, dc = v - seen[0], r - seen[1], c - seen[2]
        if dv:
            self.step("visit", dv)
        if dr:
            self.step("rotate", dr)
        if dc:
            self.step("recolour", dc)
        seen[0], seen[1], seen[2] = v, r, c
        return dv + dr + dc

    # --- hash (end sector -> requests), as deadline's -------------------------------------------------
    def _hash_add(self, rq: BlockRequest) -> None:
        drq = rq.elevator_private
        key = rq.sector + rq.nr_sectors
        self.hash.setdefault(key, []).append(rq)
        drq.hash_key = key

    def _hash_del(self, rq: BlockRequest) -> None:
        drq = rq.elevator_private
        key = drq.hash_key
        if key is not None:
            chain = self.hash[key]
            chain.remove(rq)
            if not chain:
                del self.hash[key]
            drq.hash_key = None

    def _find_hash(self, sector: int) -> BlockRequest | None:
        self.step("hash")
        chain = self.hash.get(sector)
        if chain:
            for rq in chain:
                if rq_mergeable(rq):
                    return rq
        return None

    def _invalidate_hash(self) -> None:
        for chain in self.hash.values():
            for rq in chain:
                rq.elevator_private.hash_key = None
        self.hash.clear()

    # --- merge ---------------------------------------------------------------------------------------
    def merge(self, bio: Any) -> tuple[int, Any]:
        """``deadline_merge``: the last-merge hint, the back-merge hash, then (``front_merges``) a
        tree lookup of the bio's end sector for a front merge.  No insertion point: the tree places."""
        found = self.hint_or_hash_merge(bio)
        if found is not None:
            return found
        if self.front_merges:
            node = self.sort[bio.rw].find(bio.sector + (bio.size >> 9))
            self.insert_steps += self._flush()
            if node is not None and self.try_merge(node.value.rq, bio) == ELEVATOR_FRONT_MERGE:
                return ELEVATOR_FRONT_MERGE, node.value.rq
        return ELEVATOR_NO_MERGE, None

    def merged(self, rq: BlockRequest) -> None:
        """``deadline_merged_request``: re-hash (the end moved); after a front merge re-key the tree."""
        drq = rq.elevator_private
        self._hash_del(rq)
        self._hash_add(rq)
        if drq.node is not None and drq.node.key != rq.sector:
            self._rb_del(drq)
            self._rb_add(drq)
            self._flush()
        self.q.last_merge = rq

    def merge_req(self, rq: BlockRequest, nxt: BlockRequest) -> None:
        """``deadline_merged_requests``: re-hash and re-key ``rq``; it takes ``nxt``'s earlier
        expiry and FIFO place."""
        drq, dnext = rq.elevator_private, nxt.elevator_private
        if drq.hash_key is not None:
            self._hash_del(rq)
            self._hash_add(rq)
        if drq.node is not None and drq.node.key != rq.sector:
            self._rb_del(drq)
            self._rb_add(drq)
            self._flush()
        if drq.on_fifo and dnext.on_fifo and dnext.expires < drq.expires:
            fifo = self.fifo[rq.rw]
            fifo.remove(rq)
            fifo.insert(fifo.index(nxt), rq)
            drq.expires = dnext.expires

    # --- tree ------------------------------------------------------------------------------------------
    def _rb_add(self, drq: Drq) -> None:
        raise NotImplementedError

    def _rb_del(self, drq: Drq) -> None:
        node = drq.node
        if node is not None:
            tree = self.sort[drq.rq.rw]
            if node.value is drq:
                if node.aliases:
                    node.value = node.aliases.pop(0)
                    node.value.node = node
                else:
                    tree.erase(node)
            else:
                node.aliases.remove(drq)
            drq.node = None

    # --- add, remove ------------------------------------------------------------------------------------
    def add_req(self, rq: BlockRequest, where: Any) -> None:
        """``deadline_add_request``: into the tree (``where`` is not used: the tree places), the
        hash and the direction's FIFO."""
        q = self.q
        drq = Drq(rq)
        rq.elevator_private = drq
        if rq.flags & REQ_HARDBARRIER:
            self._invalidate_hash()
            q.last_merge = None
        if not rq.flags & REQ_CMD:
            self._dispatch_insert(rq, where)
            return
        self._rb_add(drq)
        self.insert_steps += self._flush()
        self.inserts += 1
        if rq_mergeable(rq):
            self._hash_add(rq)
            if q.last_merge is None:
                q.last_merge = rq
        if self._has_fifo(rq.rw):
            drq.expires = rq.start_time + self.expire[rq.rw]
            drq.on_fifo = True
            self.fifo[rq.rw].append(rq)

    def _has_fifo(self, rw: int) -> bool:
        return True

    def _dispatch_insert(self, rq: BlockRequest, where: Any) -> None:
        d = self.dispatch
        if where is None or where is INSERT_FRONT and not d:
            d.append(rq)
        elif where is INSERT_FRONT:
            d.appendleft(rq)
        else:
            try:
                d.insert(d.index(where) + 1, rq)
            except ValueError:
                d.append(rq)

    def _fifo_del(self, drq: Drq) -> None:
        if drq.on_fifo:
            self.fifo[drq.rq.rw].remove(drq.rq)
            drq.on_fifo = False

    def remove_req(self, rq: BlockRequest) -> None:
        """``deadline_remove_request`` (and the core's dequeue): off the dispatch list, the FIFO,
        the hash and the tree."""
        drq = rq.elevator_private
        d = self.dispatch
        if d and d[0] is rq:
            d.popleft()
        elif drq is None or drq.node is None:
            try:
                d.remove(rq)
            except ValueError:
                pass
        if drq is None:
            return
        self._fifo_del(drq)
        self._hash_del(rq)
        self._rb_del(drq)
        self._flush()
        rq.elevator_private = None

    def queue_empty(self) -> bool:
        return not (self.dispatch or self.sort[0].root or self.sort[1].root)

    def figures(self) -> dict[str, Any]:
        out = super().figures()
        out.update({"insert_steps": self.insert_steps, "inserts": self.inserts,
                    "read_batches": self.batches[READ], "write_batches": self.batches[WRITE],
                    "expired_batches": self.expired_batches, "aliases": self.aliases})
        return out


class RbtreeMM(_TreeElevator):
    """``rbtree``: the tree-sorted deadline of 2.5.46-mm2 .. 2.5.49-mm1 (module doc)."""

    name = "rbtree"
    period = "2.5.49-mm1 (Jens Axboe's rbtree-iosched.patch, first in 2.5.46-mm2)"
    queue_nr_requests = QUEUE_NR_REQUESTS

    def init(self, q: Any, options: dict[str, Any]) -> None:
        super().init(q, options)
        options = queue_options(q, options)
        self.seek_cost = options["seek_cost"]
        self.stream_unit = options["stream_unit"]
        self._queue_depth(q, options["queue_nr_requests"])

    @staticmethod
    def _queue_depth(q: Any, cap: int) -> None:
        """2.5's global ``queue_nr_requests`` with the patch's cap (1024 instead of 128), unless
        the queue has a depth of its own (``[block.<disk>] nr_requests``)."""
        q.set_depth_cap(cap)

    def _has_fifo(self, rw: int) -> bool:
        return rw == READ  # read_fifo only

    def _rb_add(self, drq: Drq) -> None:
        """``deadline_rb_add``: a sector already in the tree "cannot happen"; the patch dumps the
        request's flags and puts it on the dispatch list."""
        rq = drq.rq
        node, new = self.sort[rq.rw].insert(rq.sector, drq)
        if new:
            drq.node = node
        else:
            self.aliases += 1
            self.dispatch.append(rq)

    def get_sort_head(self, rq: BlockRequest) -> Any:
        """Requests in the tree have a self-linked queuelist (no neighbours); on the dispatch list
        the dispatch list is the sort head."""
        drq = rq.elevator_private
        if drq is None or drq.node is not None:
            return None
        return _DispatchHead(self.dispatch) if rq in self.dispatch else None

    def next_req(self) -> BlockRequest | None:
        if not self.dispatch and not self._dispatch_requests():
            return None
        rq = self.dispatch[0]
        self.last_sector = rq.sector + rq.nr_sectors
        return rq

    def _dispatch_requests(self) -> bool:
        reads, writes = self.sort[READ], self.sort[WRITE]
        fifo = self.fifo[READ]
        has_writes = writes.root is not None
        if fifo and self.q.now() > fifo[0].elevator_private.expires:
            if has_writes and self._starve():
                return self._write_batch()
            self.expired_batches += 1
            self._move_requests(fifo[0].elevator_private)
            return True
        if reads.root is not None:
            if has_writes and self._starve():
                return self._write_batch()
            self._move_requests(reads.first().value)
            return True
        if has_writes:
            return self._write_batch()
        return False

    def _starve(self) -> bool:
        starved = self.starved >= self.writes_starved
        self.starved += 1
        return starved

    def _write_batch(self) -> bool:
        self.starved = 0
        self._move_requests(self.sort[WRITE].first().value)
        return True

    def _last_sector(self) -> int:
        """``deadline_get_last_sector``: the end of the dispatch list's last request, else of the
        last request handed to the driver."""
        if self.dispatch:
            rq = self.dispatch[-1]
            return rq.sector + rq.nr_sectors
        return self.last_sector

    def _move_requests(self, drq: Drq) -> None:
        """``deadline_move_requests``: move along the tree from ``drq`` while the batch budget
        lasts: ``seek_cost`` a seek, ``ceil(nr_sectors / stream_unit)`` a streaming request."""
        tree = self.sort[drq.rq.rw]
        self.batches[drq.rq.rw] += 1
        last_sec = self._last_sector()
        stream = self.stream_unit << 1
        budget = self.fifo_batch
        while True:
            nxt = tree.next(drq.node)
            rq = drq.rq
            self._move_to_dispatch(drq)
            if nxt is None:
                break
            cost = (rq.nr_sectors + stream - 1) // stream if rq.sector == last_sec else self.seek_cost
            budget -= cost
            if budget <= 0:
                break
            last_sec = rq.sector + rq.nr_sectors
            drq = nxt.value
        self._flush()

    def _move_to_dispatch(self, drq: Drq) -> None:
        """Off the tree and the FIFO onto the dispatch list (the hash keeps it: a request on the
        dispatch list may still back-merge)."""
        self._rb_del(drq)
        self._fifo_del(drq)
        self.dispatch.append(drq.rq)


class _ElvFormerBug:
    """2.5.58's sort neighbours: ``rb_prev``/``rb_next``, with ``elv_former_request`` calling the
    latter function (the "copy'n pasting" fixed in 100f587dd0, Feb 2003)."""

    __slots__ = ("elv",)

    def __init__(self, elv: Rbtree2558) -> None:
        self.elv = elv

    def latter(self, rq: BlockRequest) -> BlockRequest | None:
        elv = self.elv
        node = rq.elevator_private.node
        nxt = elv.sort[rq.rw].next(node)
        elv._flush()
        return None if nxt is None else nxt.value.rq

    former = latter


class Rbtree2558(_TreeElevator):
    """``rbtree-2.5.58``: mainline 2.5.58's deadline (later than 2.5.49; module doc)."""

    name = "rbtree-2.5.58"
    period = "2.5.58 (mainline, January 2003): later than 2.5.49"

    def init(self, q: Any, options: dict[str, Any]) -> None:
        super().init(q, options)
        self.next_drq: list[Drq | None] = [None, None]
        self.batching = 0
        self.new_sweeps = 0

    def _rb_add(self, drq: Drq) -> None:
        """``deadline_add_drq_rb``: a sector already in the tree chains the request on that node as
        an alias; they go to the dispatch list together."""
        rq = drq.rq
        tree = self.sort[rq.rw]
        node, new = tree.insert(rq.sector, drq)
        if not new:
            tree.add_alias(node, drq)
            self.aliases += 1
        drq.node = node

    def _rb_del(self, drq: Drq) -> None:
        """``deadline_del_drq_rb``: the cached next request moves on if it is this one."""
        rw = drq.rq.rw
        node = drq.node
        if self.next_drq[rw] is drq and node is not None:
            if node.value is drq and node.aliases:
                nxt_drq: Drq | None = node.aliases[0]   # promoted to hold the node
            else:
                nxt = self.sort[rw].next(node)
                nxt_drq = None if nxt is None else nxt.value
            super()._rb_del(drq)
            self.next_drq[rw] = nxt_drq
        else:
            super()._rb_del(drq)

    def get_sort_head(self, rq: BlockRequest) -> Any:
        drq = rq.elevator_private
        return None if drq is None or drq.node is None else _ElvFormerBug(self)

    def next_req(self) -> BlockRequest | None:
        if not self.dispatch and not self._dispatch_requests():
            return None
        return self.dispatch[0]

    def _check_fifo(self, rw: int) -> bool:
        fifo = self.fifo[rw]
        return bool(fifo) and self.q.now() > fifo[0].elevator_private.expires

    def _dispatch_requests(self) -> bool:
        """``deadline_dispatch_requests`` of 2.5.58: continue a batch while it is sequential and
        under ``fifo_batch`` requests; else pick a direction (reads, unless writes have been
        starved ``writes_starved`` times), and in it the expired FIFO head, else the next request
        in sort order, else the lowest sector (a new one-way sweep)."""
        reads, writes = bool(self.fifo[READ]), bool(self.fifo[WRITE])
        drq = self.next_drq[READ] or self.next_drq[WRITE]
        if drq is not None:
            if self.last_sector != drq.rq.sector:
                self.batching += self.fifo_batch
            if self.batching < self.fifo_batch:
                return self._move_request(drq)
        if reads and not (writes and self._starve()):
            rw = READ
        elif writes:
            self.starved = 0
            rw = WRITE
        else:
            return False
        if self._check_fifo(rw):
            self.batching = 0
            self.expired_batches += 1
            self.batches[rw] += 1
            drq = self.fifo[rw][0].elevator_private
        elif self.next_drq[rw] is not None:
            drq = self.next_drq[rw]
        else:
            self.batching = 0
            self.new_sweeps += 1
            self.batches[rw] += 1
            drq = self.sort[rw].first().value
        return self._move_request(drq)

    def _starve(self) -> bool:
        starved = self.starved >= self.writes_starved
        self.starved += 1
        return starved

    def _move_request(self, drq: Drq) -> bool:
        """``deadline_move_request``: remember the next request in sort order, move this one (and
        the aliases of its node) to the dispatch list."""
        rw = drq.rq.rw
        node = drq.node
        tree = self.sort[rw]
        nxt = tree.next(node)
        group = [node.value, *(node.aliases or ())]
        self.next_drq[READ] = self.next_drq[WRITE] = None
        for d in group:
            self._remove_merge_hints(d)
            self._fifo_del(d)
            d.node = None
        node.aliases = None
        tree.erase(node)
        self.next_drq[rw] = None if nxt is None else nxt.value
        self.batching += len(group) - 1
        self.batching += 1
        for d in group:
            self.dispatch.append(d.rq)
        last = group[-1].rq
        self.last_sector = last.sector + last.nr_sectors
        self._flush()
        return True

    def _remove_merge_hints(self, drq: Drq) -> None:
        """2.5.58 takes a dispatched request off the hash and the ``last_merge`` hint."""
        self._hash_del(drq.rq)
        if self.q.last_merge is drq.rq:
            self.q.last_merge = None

    def figures(self) -> dict[str, Any]:
        out = super().figures()
        out["new_sweeps"] = self.new_sweeps
        return out


class _Rqs:
    """What the core deadline reads of a sort list's ``rqs``: emptiness, the head, removal."""

    __slots__ = ("lst",)

    def __init__(self, lst: _TreeSortList) -> None:
        self.lst = lst

    def __len__(self) -> int:
        return len(self.lst)

    def __getitem__(self, i: int) -> BlockRequest:
        if i != 0:
            raise IndexError("a tree-held sort list gives its head only")
        head = self.lst.head()
        if head is None:
            raise IndexError("empty sort list")
        return head

    def remove(self, rq: BlockRequest) -> None:
        if not self.lst.remove(rq):
            raise ValueError("request not on this sort list")


class _TreeSortList(ListOrder):
    """A :class:`ListOrder` with the core ``SortList``'s interface (``insert(rq, where)``,
    ``remove``, ``former``/``latter``, membership, ``rqs``), remembering its barrier requests, so
    that the core deadline's own code runs on it unchanged except where it indexes the list."""

    __slots__ = ("barriers", "rqs")

    def __init__(self) -> None:
        super().__init__()
        self.barriers: list[BlockRequest] = []
        self.rqs = _Rqs(self)

    def insert(self, rq: BlockRequest, where: Any) -> None:
        if where is None:
            self.append(rq, rq.sector)
        elif where is INSERT_FRONT:
            self.link(rq, None, rq.sector)
        else:
            self.link(rq, where, rq.sector)
        if rq.flags & REQ_BARRIER:
            self.barriers.append(rq)

    def remove(self, rq: BlockRequest) -> bool:
        if rq not in self.node:
            return False
        self.unlink(rq)
        if rq.flags & REQ_BARRIER and rq in self.barriers:
            self.barriers.remove(rq)
        return True

    def last_barrier(self) -> BlockRequest | None:
        """The barrier nearest the tail (the one a backward scan meets first)."""
        if not self.barriers:
            return None
        node = self.node
        return max(self.barriers, key=lambda rq: node[rq].key)

    def former(self, rq: BlockRequest) -> BlockRequest | None:
        return self.prev(rq)

    def latter(self, rq: BlockRequest) -> BlockRequest | None:
        return self.next(rq)

    def rekey(self, rq: BlockRequest) -> None:
        """A front merge moved ``rq``'s start: same place in the list, new sector."""
        if self.node[rq].key & SECTOR_MASK != rq.sector:
            self.resector(rq, rq.sector)

    def __contains__(self, rq: BlockRequest) -> bool:
        return rq in self.node


class RbtreeAblation(Deadline):
    """``rbtree-ablation``: the core ``deadline`` (2.5.49's list deadline) with each direction's
    sort list held in the red-black tree.  Every placement and dispatch decision is the list's --
    the wrap rule, front insertion after the last dispatched sector, front merges lost past the
    insertion point, the stop at a barrier, batches along the list -- so against ``deadline`` the
    only difference is the insertion structure: a scan of list entries there, tree steps here.
    The core deadline's code runs unchanged but for the two places that index its lists: the
    scan (:meth:`merge`) and the batch walk (:meth:`move_requests`)."""

    name = "rbtree-ablation"
    period = "not a kernel: 2.5.49's list deadline with its sort lists in a red-black tree (an mmframe ablation)"
    tunables = ()  # the plugin's options (read_expire, writes_starved, fifo_batch, seek_cost)
    steps = {**TREE_STEPS, "run": f"{PLUGIN}.rb_visit", "relabel": f"{PLUGIN}.rb_relabel"}

    def init(self, q: Any, options: dict[str, Any]) -> None:
        super().init(q, queue_options(q, options))
        self.sort = (_TreeSortList(), _TreeSortList())  # type: ignore[assignment]
        self._seen = [0, 0, 0, 0, 0]
        self.insert_steps = 0
        self.inserts = 0

    def _flush(self) -> int:
        a, b = self.sort
        now = (a.tree.visits + b.tree.visits, a.tree.rotations + b.tree.rotations,
               a.tree.recolours + b.tree.recolours, a.run_visits + b.run_visits, a.relabels + b.relabels)
        total = 0
        for i, kind in enumerate(("visit", "rotate", "recolour", "run", "relabel")):
            d = now[i] - self._seen[i]
            if d:
                self.step(kind, d)
                total += d
        self._seen = list(now)
        return total

    def merge(self, bio: Any) -> tuple[int, Any]:
        """The core deadline's ``merge`` with its backward scan made by :meth:`ListOrder.scan`."""
        found = self.hint_or_hash_merge(bio)
        if found is not None:
            return found
        lst = self.sort[bio.rw]
        merged: list[int] = []

        def merge_ok(rq: BlockRequest) -> bool:
            r = self.try_merge(rq, bio)
            if r != ELEVATOR_NO_MERGE:
                merged.append(r)
                return True
            return False

        kind, at = lst.scan(bio.sector, bio.size >> 9, merge_ok, self.last_sector, lst.last_barrier())
        self.insert_steps += self._flush()
        if kind == MERGE:
            return merged[-1], at
        if kind == AFTER:
            return ELEVATOR_NO_MERGE, at
        if kind == FRONT:
            return ELEVATOR_NO_MERGE, INSERT_FRONT
        return ELEVATOR_NO_MERGE, None

    def merged(self, rq: BlockRequest) -> None:
        super().merged(rq)   # re-keys a front-merged request through the sort head's rekey
        self._flush()

    def merge_req(self, rq: BlockRequest, nxt: BlockRequest) -> None:
        super().merge_req(rq, nxt)
        self._flush()

    def add_req(self, rq: BlockRequest, where: Any) -> None:
        super().add_req(rq, where)
        self.insert_steps += self._flush()
        self.inserts += 1

    def remove_req(self, rq: BlockRequest) -> None:
        super().remove_req(rq)
        self._flush()

    def move_requests(self, rq: BlockRequest) -> None:
        """The core deadline's batch, walking the tree's list order."""
        lst = self.sort[rq.rw]
        last_sec = self.last_sector
        budget = self.fifo_batch
        self.batches[rq.rw] += 1
        while True:
            nxt = lst.next(rq)
            self._move_to_dispatch(rq)
            if nxt is None:
                break
            cost = (rq.nr_sectors + 255) >> 8 if rq.sector == last_sec else self.seek_cost
            budget -= cost
            if budget <= 0:
                break
            last_sec = rq.sector + rq.nr_sectors
            rq = nxt
        self._flush()

    def figures(self) -> dict[str, Any]:
        out = super().figures()
        out.update({"insert_steps": self.insert_steps, "inserts": self.inserts,
                    "runs": len(self.sort[0].runs) + len(self.sort[1].runs)})
        return out


ELEVATORS = (RbtreeMM, Rbtree2558, RbtreeAblation)
