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
     "        if mm.ptp[idx] is not None and not vm.pmd_writable(mm, idx) and not _unshare(vm, mm, idx):",
     "        if False:", (COW,), False),
]
