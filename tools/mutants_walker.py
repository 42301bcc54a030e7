"""Named mutants of the per-level walker, maps and smaps (plugins/walker/pagewalk.py and the core's
mmframe/mm/task_mmu.py); see tools/mutants.py.  (The walk_user_pages mutants are in mutants_dio.py.)"""

LEVELS = "tests/test_walker_levels.py"
PW = "plugins/walker/pagewalk.py"
MUTANTS = [
    # the level walker skips a present PTE page (treats the first populated slot of a walk as empty)
    ("walker.levels_skip_pte_page", PW,
     "        if ptp[idx] is None or walk.vma is None:",
     "        if ptp[idx] is None or walk.vma is None or idx == addr >> sh and addr & ((1 << sh) - 1) == 0:",
     (f"{LEVELS}::test_walker_maps_and_smaps_on_a_fixed_space",), True),
    # pte_hole never called for an empty PMD slot
    ("walker.levels_no_pte_hole", PW,
     "            if walk.pte_hole is not None:\n                err = walk.pte_hole(addr, nxt, walk)",
     "            if walk.pte_hole is not None and walk.vma is None:\n                err = walk.pte_hole(addr, nxt, walk)",
     (f"{LEVELS}::test_walker_maps_and_smaps_on_a_fixed_space",), False),
    # test_walk's skip ignored: the VMA is walked anyway
    ("walker.levels_test_walk_ignored", PW,
     "                if err > 0:  # skip this VMA: purely control, never returned\n                    start = nxt\n                    continue\n",
     "", (f"{LEVELS}::test_walker_maps_and_smaps_on_a_fixed_space",), False),
    # the last page of each range not visited (an off-by-one in the PTE loop)
    ("walker.levels_pte_off_by_one", PW, "    while addr < end:\n        err = cb(",
     "    while addr < end - PAGE_SIZE:\n        err = cb(",
     (f"{LEVELS}::test_walker_maps_and_smaps_on_a_fixed_space",), False),
    # maps perms wrong: 's'/'p' from VM_SHARED instead of VM_MAYSHARE (a read-only shared mapping is 'p')
    ("walker.maps_perms_shared_bit", "mmframe/mm/task_mmu.py", "{'s' if f & VM_MAYSHARE else 'p'}",
     "{'s' if f & VM_WRITE and f & VM_MAYSHARE else 'p'}",
     (f"{LEVELS}::test_proc_maps_call_gives_the_tasks_lines",), True),
    # smaps Rss counting PROT_NONE entries out (pte_present includes them on i386)
    ("walker.smaps_rss_skips_protnone", PW, "    if not pte_present(pte):\n        return 0\n    s = walk.private",
     "    if not pte_present(pte) or not pte & 1:\n        return 0\n    s = walk.private",
     (f"{LEVELS}::test_walker_maps_and_smaps_on_a_fixed_space",), False),
]
