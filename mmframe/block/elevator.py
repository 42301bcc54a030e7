"""The elevator (I/O scheduler) interface of 2.5.49 (``drivers/block/elevator.c``,
``include/linux/elevator.h`` at v2.5.49), as a Python base class, and the elevator registry.

An elevator is a class derived from :class:`Elevator`; one instance serves one request queue.  The
core (:mod:`mmframe.block.ll_rw_blk`) calls the operations below exactly where 2.5.49's
``__make_request``, ``attempt_merge``, ``elv_next_request`` and ``blkdev_dequeue_request`` call
``elevator_*_fn``.  Elevators are registered by name through the ``mmframe_elevators`` hook (the
core registers ``deadline``, ``noop`` and ``linus``) and chosen per queue in the config::

    [block.hda]
    elevator = "deadline"
    [block.hda.deadline]          # the elevator's tunables, validated against its declaration
    read_expire = "500ms"

The operations (2.5.49 names; signatures in Python shape):

``merge(bio) -> (ret, where)``
    ``elevator_merge_fn``.  ``ret`` is :data:`ELEVATOR_NO_MERGE`, :data:`ELEVATOR_FRONT_MERGE` or
    :data:`ELEVATOR_BACK_MERGE`.  For a merge ``where`` is the request to merge into; for no merge
    it is the insertion point handed back to ``add_req``: ``None`` (the elevator's default),
    a request (insert right after it on its sort list) or :data:`INSERT_FRONT` (at the front).
    The core checks the size and segment limits; if they refuse, it inserts a new request after
    (back) or before (front) the refused one.  Use :meth:`Elevator.try_last_merge` first (the
    one-shot ``q.last_merge`` hint) and :meth:`Elevator.try_merge` per candidate.
``merged(rq)``
    ``elevator_merged_fn``: a bio was merged into ``rq`` (its ``sector`` or ``nr_sectors``
    changed); re-key what depends on them (deadline re-hashes).
``merge_req(rq, next)``
    ``elevator_merge_req_fn``: ``next`` was appended to ``rq`` (request-to-request merge); the
    core then calls ``remove_req(next)``.
``add_req(rq, where)``
    ``elevator_add_req_fn``: queue a new request at the insertion point ``merge`` gave (or the
    core chose, see above).
``next_req() -> rq | None``
    ``elevator_next_req_fn``: the request the driver should start next, left queued; the core then
    calls ``remove_req(rq)`` (``blkdev_dequeue_request``) and starts it.  May move a batch to an
    internal dispatch list (deadline).
``remove_req(rq)``
    ``elevator_remove_req_fn``: take ``rq`` off every list the elevator keeps.
``queue_empty() -> bool``
    ``elevator_queue_empty_fn``.
``get_sort_head(rq) -> SortHead``
    ``elevator_get_sort_head_fn``: the sorted sequence ``rq`` sits on, as an object with
    ``former(rq)`` and ``latter(rq)`` (the neighbours the core tries to merge with after a bio
    merge; 2.5.58 turned this op into ``former_req``/``latter_req``).  ``None`` when ``rq`` has
    no sort neighbours.
``init(q, options)`` / ``exit()``
    ``elevator_init_fn`` / ``elevator_exit_fn``; ``options`` are the validated tunables.

Costs: the core charges what it does itself (a merge, a request allocation, an insertion, a
dispatch, a completion).  An elevator reports its own steps with :meth:`Elevator.step` (list
entries scanned, tree nodes visited...), each kind mapped to a cost-table entry in
:attr:`Elevator.steps`; the core multiplies counts by the table's nanoseconds.  An elevator never
charges anything else.

The interface is additive from contract 1.5 on: new optional operations may appear with defaults
here; none will change meaning.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any, ClassVar

from mmframe.block.blkdev import REQ_BARRIER, REQ_CMD, REQ_HARDBARRIER, RQ_NOMERGE_FLAGS, Request
from mmframe.options import Option

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.block.bio import Bio
    from mmframe.block.ll_rw_blk import RequestQueue

ELEVATOR_NO_MERGE, ELEVATOR_FRONT_MERGE, ELEVATOR_BACK_MERGE = 0, 1, 2


class _Front:
    __slots__ = ()

    def __repr__(self) -> str:
        return "INSERT_FRONT"


INSERT_FRONT: Any = _Front()  # an insertion point: the front of the sort list


class Elevator:
    """Base class of every elevator (see the module docstring for the contract).

    Class attributes a subclass sets:

    * ``name`` -- what ``[block.<disk>] elevator`` names;
    * ``period`` -- the kernel it comes from, e.g. ``"2.5.49"``, or a label saying it is later or
      earlier than 2.5.49 (shown by ``mmframe plugins`` and the docs);
    * ``tunables`` -- :class:`~mmframe.options.Option` declarations, validated from
      ``[block.<disk>.<name>]``;
    * ``steps`` -- step kind -> cost-table entry name (a plugin's entries are ``<plugin>.<x>``,
      added through ``mmframe_cost_entries``).
    """

    name: ClassVar[str] = ""
    period: ClassVar[str] = ""
    tunables: ClassVar[tuple[Option, ...]] = ()
    steps: ClassVar[dict[str, str]] = {}

    q: RequestQueue

    def __init__(self) -> None:
        self._step_ids: dict[str, int] = {}
        self._acct: Any = None
        self.step_counts: dict[str, int] = {}

    # --- the core's side -------------------------------------------------------------------
    def bind(self, q: RequestQueue, cost_ids: dict[str, int], acct: Any) -> None:
        """Called by the core before ``init``: resolve ``steps`` to cost ids."""
        self.q, self._acct = q, acct
        missing = [e for e in self.steps.values() if e not in cost_ids]
        if missing:
            raise ValueError(f"elevator {self.name!r}: step cost entries not in the cost table: {missing}")
        self._step_ids = {k: cost_ids[e] for k, e in self.steps.items()}
        self.step_counts = {k: 0 for k in self.steps}

    def step(self, kind: str, n: int = 1) -> None:
        """Report ``n`` steps of ``kind`` (a key of ``steps``); the core charges their cost."""
        self.step_counts[kind] += n
        acct, pid = self._acct, self._step_ids[kind]
        acct.row[pid] += n
        acct.ns += n * acct.ns_of[pid]

    def try_merge(self, rq: Request, bio: Bio) -> int:
        """``elv_try_merge``: BACK if ``bio`` starts where ``rq`` ends, FRONT if it ends where
        ``rq`` starts, when the two may merge (``elv_rq_merge_ok``); else NO_MERGE."""
        if rq.rw != bio.rw or rq.flags & _NOMERGE or not rq.flags & REQ_CMD or bio.flags & _BIO_BARRIER:
            return ELEVATOR_NO_MERGE
        if rq.sector + rq.nr_sectors == bio.sector:
            return ELEVATOR_BACK_MERGE
        if rq.sector - (bio.size >> 9) == bio.sector:
            return ELEVATOR_FRONT_MERGE
        return ELEVATOR_NO_MERGE

    def try_last_merge(self, bio: Bio) -> int:
        """``elv_try_last_merge``: try the queue's one-shot ``last_merge`` hint; a hint that can
        no longer merge is dropped."""
        q = self.q
        rq = q.last_merge
        if rq is None:
            return ELEVATOR_NO_MERGE
        if rq.flags & _NOMERGE or not rq.flags & REQ_CMD:  # rq_mergeable
            q.last_merge = None
            return ELEVATOR_NO_MERGE
        return self.try_merge(rq, bio)

    def hint_or_hash_merge(self, bio: Bio) -> tuple[int, Any] | None:
        """The first two steps of ``deadline_merge`` (and of the elevators built on it): the
        ``last_merge`` hint, then a back merge with the request the hash finds ending at the bio's
        sector (the elevator's ``_find_hash``).  ``(kind, rq)``, or None when neither merges."""
        ret = self.try_last_merge(bio)
        if ret != ELEVATOR_NO_MERGE:
            return ret, self.q.last_merge
        rq = self._find_hash(bio.sector)  # type: ignore[attr-defined]
        if rq is not None and self.try_merge(rq, bio) == ELEVATOR_BACK_MERGE:
            return ELEVATOR_BACK_MERGE, rq
        return None

    # --- the operations (override) -----------------------------------------------------------
    def init(self, q: RequestQueue, options: dict[str, Any]) -> None:
        """``elevator_init_fn``."""

    def exit(self) -> None:
        """``elevator_exit_fn``."""

    def merge(self, bio: Bio) -> tuple[int, Any]:
        raise NotImplementedError

    def merged(self, rq: Request) -> None:
        """``elevator_merged_fn`` (optional)."""

    def merge_req(self, rq: Request, nxt: Request) -> None:
        """``elevator_merge_req_fn`` (optional)."""

    def add_req(self, rq: Request, where: Any) -> None:
        raise NotImplementedError

    def next_req(self) -> Request | None:
        raise NotImplementedError

    def remove_req(self, rq: Request) -> None:
        raise NotImplementedError

    def queue_empty(self) -> bool:
        raise NotImplementedError

    def get_sort_head(self, rq: Request) -> Any:
        """``elevator_get_sort_head_fn`` (optional): an object with ``former(rq)`` and
        ``latter(rq)``, or None."""
        return None

    def figures(self) -> dict[str, Any]:
        """Counters to report (steps counted, batches...)."""
        return {f"steps.{k}": v for k, v in self.step_counts.items()}


_NOMERGE = RQ_NOMERGE_FLAGS  # REQ_NOMERGE | REQ_STARTED | barriers
_BIO_BARRIER = 1 << 2  # BIO_RW_BARRIER


class SortList:
    """A sort list of requests (a ``list_head`` chain): a Python list in list order, with
    ``former``/``latter`` for the core.  Index lookups are C-speed scans; the *modelled* cost of a
    walk is what the elevator reports with :meth:`Elevator.step`."""

    __slots__ = ("rqs",)

    def __init__(self) -> None:
        self.rqs: list[Request] = []

    def former(self, rq: Request) -> Request | None:
        i = self.rqs.index(rq)
        return self.rqs[i - 1] if i else None

    def latter(self, rq: Request) -> Request | None:
        rqs = self.rqs
        i = rqs.index(rq) + 1
        return rqs[i] if i < len(rqs) else None

    def insert(self, rq: Request, where: Any) -> None:
        """``list_add(&rq->queuelist, where)``: after ``where``, at the front, or (None) at the tail."""
        rqs = self.rqs
        if where is None:
            rqs.append(rq)
        elif where is INSERT_FRONT:
            rqs.insert(0, rq)
        else:
            rqs.insert(rqs.index(where) + 1, rq)

    def remove(self, rq: Request) -> bool:
        try:
            self.rqs.remove(rq)
        except ValueError:
            return False
        return True

    def __len__(self) -> int:
        return len(self.rqs)

    def __contains__(self, rq: Request) -> bool:
        return rq in self.rqs  # Request has no __eq__: identity, at C speed

    def rekey(self, rq: Request) -> None:
        """``rq``'s start moved (a front merge): a plain list keeps no keys, so nothing changes."""


class KeyedSortList(SortList):
    """A sort list that also keeps each request's start sector (``keys``) and where the ascending
    runs break (``desc``: the indices ``i`` with ``keys[i+1] <= keys[i]``), so that where a backward
    scan with ``bio_rq_in_between`` would stop is found by bisection, run by run, in
    O(runs * log n) instead of O(n) -- the same answer (tests compare the two); the elevator still
    reports the entries the scan would have looked at.  A request whose start sector changes (a
    front merge) must be ``rekey``-ed."""

    __slots__ = ("keys", "desc")

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[int] = []
        self.desc: list[int] = []

    def _fix(self, i: int) -> None:
        keys, desc = self.keys, self.desc
        is_d = 0 <= i < len(keys) - 1 and keys[i + 1] <= keys[i]
        k = bisect_left(desc, i)
        has = k < len(desc) and desc[k] == i
        if is_d and not has:
            desc.insert(k, i)
        elif has and not is_d:
            del desc[k]

    def _insert_at(self, p: int, rq: Request) -> None:
        keys, desc = self.keys, self.desc
        self.rqs.insert(p, rq)
        keys.insert(p, rq.sector)
        if desc:
            for j in range(bisect_left(desc, p), len(desc)):
                desc[j] += 1
        n = len(keys)
        # the pairs (p-1, p) and (p, p+1) are new; (p-1, p) replaced a pair that may have been a descent
        if p and (desc and bisect_left(desc, p - 1) < len(desc) and desc[bisect_left(desc, p - 1)] == p - 1
                  or keys[p] <= keys[p - 1]):
            self._fix(p - 1)
        if p + 1 < n and keys[p + 1] <= keys[p]:
            self._fix(p)

    def insert(self, rq: Request, where: Any) -> None:
        if where is None:
            p = len(self.rqs)
        elif where is INSERT_FRONT:
            p = 0
        else:
            p = self.rqs.index(where) + 1
        self._insert_at(p, rq)

    def delete_at(self, p: int) -> None:
        del self.rqs[p]
        del self.keys[p]
        desc = self.desc
        k = bisect_left(desc, p - 1)
        while k < len(desc) and desc[k] <= p:
            del desc[k]
        for j in range(k, len(desc)):
            desc[j] -= 1
        self._fix(p - 1)

    def remove(self, rq: Request) -> bool:
        try:
            p = self.rqs.index(rq)
        except ValueError:
            return False
        self.delete_at(p)
        return True

    def rekey(self, rq: Request) -> None:
        i = self.rqs.index(rq)
        self.keys[i] = rq.sector
        self._fix(i - 1)
        self._fix(i)

    def find_between(self, b: int) -> int:
        """The largest ``i`` with ``bio_rq_in_between`` true for a bio at sector ``b``, or -1."""
        keys, desc = self.keys, self.desc
        n = len(keys)
        end = n - 1
        for k in range(len(desc) - 1, -2, -1):
            st = desc[k] + 1 if k >= 0 else 0
            if end < n - 1 and (b > keys[end] or b < keys[end + 1]):  # the wrap point after this run
                return end
            j = bisect_left(keys, b, st, end + 1) - 1
            if st <= j < end and keys[j + 1] > b:
                return j
            end = st - 1
        return -1


def bio_rq_in_between(bio: Bio, rqs: list[Request], i: int) -> bool:
    """2.5's ``bio_rq_in_between(bio, rq, head)`` for ``rq = rqs[i]``: does ``bio`` belong between
    ``rq`` and its successor?  Strictly between two ordered neighbours; or, at the wrap point of a
    list made of ascending runs, after ``rq`` or before the successor.  False at the tail."""
    if i + 1 >= len(rqs):
        return False
    s, ns, b = rqs[i].sector, rqs[i + 1].sector, bio.sector
    if s < b < ns:
        return True
    if ns > s:
        return False
    return b > s or b < ns


def is_barrier(rq: Request) -> bool:
    return bool(rq.flags & REQ_BARRIER)


def is_hard_barrier(rq: Request) -> bool:
    return bool(rq.flags & REQ_HARDBARRIER)
