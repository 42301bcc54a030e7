"""Named mutants of the sstf plugin, for mmframe's mutation script:

    python -m mmframe.testing.mutants --tree . --list-from mutants.py          # from this directory

Each: (name, file, exact old text, new text, tests that must fail, in the fast subset).
"""

E = "mmframe_sstf/elevator.py"
T_ORDER = "tests/test_sstf.py::test_the_nearest_request_to_the_head_goes_first"
T_BARRIER = "tests/test_sstf.py::test_nothing_passes_a_barrier_and_a_requeued_request_goes_first"

MUTANTS = [
    ("sstf.lowest_sector_not_nearest", E, "key=lambda rq: (abs(rq.sector - head), rq.sector)",
     "key=lambda rq: (rq.sector - head, rq.sector)", (T_ORDER,), True),
    ("sstf.head_never_moves", E, "            self.head = rq.sector + rq.nr_sectors", "            pass",
     (T_ORDER,), True),
    ("sstf.passes_barriers", E, "        if self.front or self.barriers:", "        if self.front:", (T_BARRIER,), True),
]
