"""Named mutants of the pt_shared plugin (plugins/pt_shared); see tools/mutants.py."""

COW = "tests/test_cow.py"
MUTANTS = [
    # the parent's PMD left writable at fork: its later writes reach pages the child reads
    ("pt_shared.fork_parent_pmd_writable", "plugins/pt_shared/__init__.py",
     "    if not writable and vm.pmd_writable(src, idx):\n        vm.pmd_set_writable(src, idx, False)\n",
     "", (COW,), True),
    # the 2002 patch's whole-page mprotect: flip the PMD whatever the entries carry (the crash)
    ("pt_shared.mprotect_pmd_without_entry_test", "plugins/pt_shared/__init__.py",
     "if readable and vm.ptes_follow_vma(mm, idx, v):", "if readable:",
     (f"{COW}::test_prot_none_before_fork_then_readable_in_the_child",), False),
    # a partial munmap of a shared table done at the PMD level (drops the whole table)
    ("pt_shared.partial_zap_at_pmd", "plugins/pt_shared/__init__.py",
     'if whole and reason == "zap":', 'if reason == "zap":', (COW,), False),
    # a write fault into a write-protected shared table not unsharing it
    ("pt_shared.write_fault_no_unshare", "plugins/pt_shared/__init__.py",
     "    if write_access and not vm.pmd_writable(mm, idx):", "    if False:", (COW,), False),
]

# --- issue 22: the patch's per-PTE-page lock, and attach sharing (attach_2002, attach_2005) --------
COSTS = "tests/test_pt_shared_costs.py"
ATTACH = "tests/test_pt_shared_attach.py"
MUTANTS += [
    # share_page_range's pgtable_add_rmap takes the PTE page's lock: a shared fork without it
    ("pt_shared.fork_without_pte_page_lock", "mmframe/mm/pmd.py",
     "        self.acct.charge(self.P_pte_set)\n        self.pte_page_lock()\n", "        self.acct.charge(self.P_pte_set)\n",
     (f"{COSTS}::test_fork_pays_per_shared_pte_page_and_nothing_per_entry",), True),
    # pte_unshare drops and retakes the old table's lock round the allocation and locks the new one
    ("pt_shared.unshare_one_lock", "mmframe/mm/pmd.py", "self.pte_page_lock(3)", "self.pte_page_lock(1)",
     (f"{COSTS}::test_unshare_pays_the_copy_the_references_the_rmap_and_the_flush",)),
    # unmap_all_pages locks every PTE page, not only the shared ones
    ("pt_shared.exit_private_tables_unlocked", "plugins/pt_shared/__init__.py",
     "        if reason in _LOCKED_WALKS:", "        if False:",
     (f"{COSTS}::test_exit_locks_every_pte_page_it_drops_or_zaps",)),
    # no attach at all: unrelated attachers keep their own tables
    ("pt_shared.attach_never", "plugins/pt_shared/__init__.py",
     "            _try_attach(vm, st, mm, vma, idx)", "            pass",
     (f"{ATTACH}::test_unrelated_attachers_share_the_segments_pte_pages",), True),
    # a PTE page shared though the mapping covers only part of it (libc's entries go with it)
    ("pt_shared.attach_partial_cover", "plugins/pt_shared/__init__.py",
     "    if v is None or v.obj is None or not _covers(vm, v, idx):", "    if v is None or v.obj is None:",
     (f"{ATTACH}::test_an_unaligned_attach_shares_only_whole_pte_pages",
      f"{ATTACH}::test_sysv_attachers_see_the_same_with_attach_sharing")),
    # the 2005 design copying (the 2002 unshare) where it drops
    ("pt_shared.attach_2005_copies", "plugins/pt_shared/__init__.py",
     '    if st["attach"] == "2005" and reason in _DROP_2005:', "    if False:",
     (f"{ATTACH}::test_2005_drops_instead_of_copying",)),
    # a write fault attaching a file's table write-protected and leaving it so (the core's assertion)
    ("pt_shared.attach_on_write_fault", "plugins/pt_shared/__init__.py",
     " and (not write_access or _attach_writable(vma)):", ":",
     (f"{ATTACH}::test_file_mappers_see_the_same_with_attach_sharing",)),
    # the walk for a table not charged
    ("pt_shared.attach_walk_free", "plugins/pt_shared/__init__.py",
     "        vm.i_mmap_visit(steps)\n        vm.pmd_share(other, mm, idx, _attach_writable(v))",
     "        vm.pmd_share(other, mm, idx, _attach_writable(v))",
     (f"{ATTACH}::test_the_walk_for_a_table_is_charged",)),
]

# --- issue 24 (branch defer): the patched handle_mm_fault's lock on every fault -----------------
MUTANTS += [
    # the plugin no longer declares the lock as its fault cost: the core charges nothing for it
    ("pt_shared.no_fault_lock_declared", "plugins/pt_shared/__init__.py",
     '                     fault_cost=("pte_page_lock",), pte_change=_LOCKED_WALKS,',
     '                     fault_cost=(), pte_change=_LOCKED_WALKS,',
     (f"{COSTS}::test_every_fault_takes_the_pte_page_lock_on_the_single_and_the_bulk_path",), True),
    # the hook charges the lock on an unsharing fault too (a fourth lock: unshare counts the caller's)
    ("pt_shared.unsharing_fault_locks_twice", "plugins/pt_shared/__init__.py",
     "        elif not _unshare(vm, mm, idx):\n            return VM_FAULT_OOM\n        return None",
     "        elif not _unshare(vm, mm, idx):\n            return VM_FAULT_OOM\n        vm.pte_page_lock()\n        return None",
     (f"{COSTS}::test_an_unsharing_fault_pays_its_lock_within_the_unshare",), True),
    # the hook forgets the lock on a fault into an empty slot (attach sharing calls it there)
    ("pt_shared.attach_fault_no_lock", "plugins/pt_shared/__init__.py",
     "            _try_attach(vm, st, mm, vma, idx)\n        vm.pte_page_lock()\n",
     "            _try_attach(vm, st, mm, vma, idx)\n",
     (f"{COSTS}::test_every_fault_takes_the_pte_page_lock_on_the_single_and_the_bulk_path",), True),
    # touch's single path faults again on entries an attached table already filled
    ("pt_shared.touch_refaults_attached", "mmframe/mm/touch.py",
     "                    continue  # the MMU's hit: no fault\n", "",
     ("tests/test_pt_shared_attach.py::test_touch_one_fault_at_a_time_takes_no_fault_on_what_an_attach_filled",),
     True),
]
