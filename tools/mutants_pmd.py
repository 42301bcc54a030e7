"""Named mutants of the PMD level and the sharing mechanism (mmframe/mm/pmd.py); see tools/mutants.py."""

COW = "tests/test_cow.py"
CHOKE = "tests/test_choke_point.py"
MUTANTS = [
    # the 2002 patch's rule: write-protect the source only when one sharer remains
    ("pmd.unshare_wrprotect_last_only", "mmframe/mm/pmd.py",
     "copy_pte_range(self, mm, old, new, idx, wrprotect_src=True,",
     "copy_pte_range(self, mm, old, new, idx, wrprotect_src=self.count[old.pfn] == 1,",
     (f"{COW}::test_unshare_write_protects_the_source_while_others_share_it",), True),
    # a shared table's dirty bits cleared behind the choke point's back
    ("pmd.clear_dirty_bypasses_choke", "mmframe/mm/pmd.py",
     "        if self.pte_change(mm, idx, EXIT if to_pages else UNSHARE, 0, len(v)) is not pt:\n"
     "            return  # the policy did the change itself\n", "",
     (f"{CHOKE}::test_a_shared_tables_dirty_bits_are_cleared_through_the_choke_point",), False),
    # the last owner's zap behind the choke point's back
    ("pmd.drop_zap_bypasses_choke", "mmframe/mm/pmd.py",
     "            if self.pte_change(mm, idx, EXIT, 0, len(pt.ptes)) is pt:",
     "            if True:", (f"{CHOKE}::test_the_last_owners_zap_in_pmd_drop_passes_the_choke_point",), False),
    # mprotect at the PMD level trusted whatever the entries say
    ("pmd.ptes_follow_vma_always", "mmframe/mm/pmd.py",
     "        return bool(((pres & mask) == (vma.page_prot & mask)).all())", "        return True",
     (f"{COW}::test_prot_none_before_fork_then_readable_in_the_child",), False),
]
