"""Named mutants of the elevator_rbtree plugin (plugins/elevator_rbtree); see tools/mutants.py."""

IOS = "plugins/elevator_rbtree/iosched.py"
TREE = "plugins/elevator_rbtree/rbtree.py"
LIST = "plugins/elevator_rbtree/listorder.py"
T_TREE = ("tests/test_elevator_rbtree_tree.py",)
T_ONCE = "tests/test_elevator_rbtree.py::test_every_request_completes_once_and_reads_return_the_last_write"
T_SAME = "tests/test_elevator_rbtree.py::test_ablation_and_deadline_dispatch_the_identical_sequence"
T_ELV = "tests/test_elevator_rbtree.py"

MUTANTS = [
    # a request lost, or handed to the driver twice
    ("elevator_rbtree.mm_drop_on_dispatch", IOS,
     "        self._fifo_del(drq)\n        self.dispatch.append(drq.rq)",
     "        self._fifo_del(drq)", (T_ONCE,), True),
    ("elevator_rbtree.mm_double_dispatch", IOS,
     "        self._fifo_del(drq)\n        self.dispatch.append(drq.rq)",
     "        self._fifo_del(drq)\n        self.dispatch.append(drq.rq)\n        self.dispatch.append(drq.rq)",
     (T_ONCE,), True),
    ("elevator_rbtree.2558_drops_aliases", IOS,
     "group = [node.value, *(node.aliases or ())]", "group = [node.value]", (T_ONCE,), False),
    ("elevator_rbtree.ablation_skips_in_batch", IOS,
     "            last_sec = rq.sector + rq.nr_sectors\n            rq = nxt\n        self._flush()",
     "            last_sec = rq.sector + rq.nr_sectors\n            rq = lst.next(nxt) or nxt\n        self._flush()",
     (T_SAME,), False),
    # the tree's own rules
    ("elevator_rbtree.tree_uncle_case_keeps_gparent_black", TREE,
     "                    gparent.red = True\n                    recolours += 3\n                    node = gparent\n"
     "                    parent = node.parent\n                    continue\n                if parent.right is node:",
     "                    recolours += 3\n                    node = gparent\n"
     "                    parent = node.parent\n                    continue\n                if parent.right is node:",
     T_TREE, True),
    ("elevator_rbtree.tree_erase_successor_parent", TREE,
     "            if node.parent is old:\n                parent = node\n", "", T_TREE, False),
    ("elevator_rbtree.list_wrap_rule", LIST,
     "(b <= asec and (x > asec or x < b))", "(b < asec and (x > asec or x < b))",
     ("tests/test_elevator_rbtree_listorder.py", T_SAME), False),
    # what the sources show
    ("elevator_rbtree.mm_write_fifo", IOS, "return rw == READ  # read_fifo only", "return True", (T_ELV,), False),
    ("elevator_rbtree.mm_stream_unit_in_sectors", IOS, "stream = self.stream_unit << 1",
     "stream = self.stream_unit", (T_ELV,), False),
    ("elevator_rbtree.2558_sweep_from_highest", IOS, "drq = self.sort[rw].first().value",
     "drq = self.sort[rw].last().value", (T_ELV,), False),
    ("elevator_rbtree.mm_queue_cap_128", IOS, "        q.set_depth_cap(cap)", "        q.set_depth_cap(128)", (T_ELV,), False),
]
