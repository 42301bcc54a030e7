"""Named mutants of fork's copy (mmframe/mm/fork.py); see tools/mutants.py."""

CHOKE = "tests/test_choke_point.py"
MUTANTS = [
    # the source written whatever the policy answered (bulk path, then the entry-at-a-time path)
    ("fork.bulk_ignores_policy_answer", "mmframe/mm/fork.py",
     "                    pt = vm.pte_change(src_owner, idx, reason, i0, i1)\n                    if pt is not None:",
     "                    vm.pte_change(src_owner, idx, reason, i0, i1)\n                    pt = spt\n"
     "                    if pt is not None:", (CHOKE,), True),
    ("fork.slow_ignores_policy_answer", "mmframe/mm/fork.py",
     "                if pt is None:\n                    write_src = False", "                if False:\n                    pass",
     (CHOKE,), False),
    # copy-on-write entries left writable in the child
    ("fork.child_entries_writable", "mmframe/mm/fork.py",
     "                vals = vals & t(~_PAGE_RW & _mask(s))", "                pass", ("tests/test_cow.py",), False),
]
