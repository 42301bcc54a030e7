"""elevator_rbtree: Jens Axboe's tree-sorted deadline I/O scheduler, as three elevators registered
through the block layer (``mmframe_elevators``), chosen per queue with ``[block.<disk>] elevator``:

* ``rbtree`` -- the -mm version (2.5.46-mm2 .. 2.5.49-mm1): a red-black tree per direction, a read
  FIFO (no write FIFO), ``seek_cost``/``stream_unit`` batches, front merges by tree lookup, the
  back-merge hash, a queue of up to 1,024 requests;
* ``rbtree-2.5.58`` -- mainline 2.5.58 (later than 2.5.49): a write FIFO (5 s), ``fifo_batch`` in
  requests, new sweeps from the lowest sector;
* ``rbtree-ablation`` -- 2.5.49's list deadline with its sort lists in the tree (an mmframe
  ablation: only the insertion structure differs from ``deadline``).

Tunables are this plugin's options, ``[plugins.elevator_rbtree]``, overridden per queue in
``[block.<disk>.elevator_rbtree]``.  The tree's steps are costed by the entries below.  Sources and
figures: docs/elevator_rbtree.md.
"""

from __future__ import annotations

from typing import Any

from mmframe.facade import CostEntry, Option, hookimpl

NAME = "elevator_rbtree"

OPTIONS = (
    Option("read_expire", "duration", "500ms", "a read's deadline from queueing (HZ/2)", minimum=1, scope="queue"),
    Option("write_expire", "duration", "5s", "a write's deadline from queueing (5*HZ): rbtree-2.5.58 only "
           "(the -mm version has no write FIFO)", minimum=1, scope="queue"),
    Option("fifo_batch", "int", 16, "rbtree: budget of a batch (seek_cost a seek, stream units a streaming "
           "request); rbtree-2.5.58: sequential requests in a batch", minimum=1, scope="queue"),
    Option("seek_cost", "int", 16, "rbtree: budget cost of a non-contiguous request", minimum=1, scope="queue"),
    Option("stream_unit", "int", 256, "rbtree: KiB of a streaming request costing one unit", minimum=1,
           scope="queue"),
    Option("writes_starved", "int", 2, "read batches preferred before a pending write batch", minimum=0,
           scope="queue"),
    Option("front_merges", "bool", True, "look up front merges in the tree", scope="queue"),
    Option("queue_nr_requests", "int", 1024, "rbtree: cap of 2.5's queue_nr_requests ((RAM KiB >> 9) & ~7, "
           "at least 16): the 2.5.46-mm2 patch raised 128 to 1024; 128 is 2.5.49-mm1 with "
           "less-requests.patch", minimum=16, maximum=1 << 16, scope="queue"),
)

_COSTS = (
    ("rb_visit", 40, "no period measurement found: one node of a tree descent or walk (deadline_rb_find, "
     "__deadline_rb_add, rb_next/rb_first): load rb_key and a child link of a deadline_rq (a 1,024-request "
     "tree of ~40-byte nodes stays in the P-III's 256 KiB L2), compare, branch; ~30 cycles at 790 MHz, "
     "the same class of work as elv_list_entry", "one red-black tree node looked at"),
    ("rb_rotate", 40, "no period measurement found: __rb_rotate_left/right of lib/rbtree.c: six link stores "
     "and the parent's child test on lines the descent loaded, ~30 cycles", "one tree rotation"),
    ("rb_recolour", 5, "no period measurement found: one rb_color store in rb_insert_color/__rb_erase_color "
     "on a line already loaded, ~4 cycles", "one colour store of the rebalancing"),
    ("rb_relabel", 5, "not a kernel operation: rbtree-ablation's bookkeeping when a run of its list is split "
     "(one key store on a loaded node, ~4 cycles)", "one key rewritten by rbtree-ablation"),
)


@hookimpl
def mmframe_options() -> list[Option]:
    return list(OPTIONS)


@hookimpl
def mmframe_cost_entries() -> list[CostEntry]:
    return [CostEntry(f"{NAME}.{name}", ns, "estimate", source, help, owner=NAME)
            for name, ns, source, help in _COSTS]


@hookimpl
def mmframe_elevators() -> list[Any]:
    from mmframe_plugins.elevator_rbtree.iosched import ELEVATORS
    return list(ELEVATORS)
