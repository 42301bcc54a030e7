"""Named mutants of the reverse map (mmframe/mm/rmap.py) and its checker (mmframe/mm/debug_vm.py);
see tools/mutants.py."""

RMAP = "tests/test_rmap.py"
MUTANTS = [
    # NRPTE from the wrong size: the whole cache line, or an 8-byte pte_addr_t whenever PAE
    ("rmap.nrpte_whole_line", "mmframe/mm/rmap.py",
     "    return (l1_cache_bytes - 4) // pte_addr", "    return l1_cache_bytes // pte_addr", (RMAP,), True),
    ("rmap.nrpte_ignores_highpte", "mmframe/mm/rmap.py",
     "    pte_addr = 8 if pae and highpte else 4", "    pte_addr = 8 if pae else 4", (RMAP,), False),
    # back to PageDirect at one mapping (what mmframe did before; 2.5.49 never does)
    ("rmap.bulk_remove_collapses_to_direct", "mmframe/mm/rmap.py",
     "        c1 = c0 & (k1 > 0)", "        c1 = c0 & (k1 > 1)", (RMAP,), False),
    ("rmap.single_remove_leaves_chain_mode_early", "mmframe/mm/rmap.py",
     "            if k == 1:\n                self.chained[pfn] = 0", "            if k == 2:\n                self.chained[pfn] = 0",
     ("tests/test_memory.py", RMAP), False),
    # the checker's own rule broken, or not applied
    ("debug_vm.nrpte_whole_line", "mmframe/mm/debug_vm.py",
     "    return (l1_cache_bytes - 4) // (8 if pae and highpte else 4)",
     "    return l1_cache_bytes // (8 if pae and highpte else 4)", (RMAP,), True),
    ("debug_vm.pte_chain_count_unchecked", "mmframe/mm/debug_vm.py",
     '    assert objs == expect, f"pte_chain objects', '    assert True or objs == expect, f"pte_chain objects',
     (RMAP,), False),
    # the per-page links (head/next/prev): single forms, bulk forms, the walk, and the checker
    ("rmap.single_add_leaves_old_head_prev", "mmframe/mm/rmap.py",
     "        if h >= 0:\n            self.prev[h] = e", "        if h >= 0:\n            pass",
     (RMAP + "::test_bulk_forms_match_single_forms_and_the_lists",), False),
    ("rmap.single_remove_keeps_head", "mmframe/mm/rmap.py",
     "        else:\n            self.head[pfn] = b", "        else:\n            pass",
     (RMAP,), False),
    ("rmap.bulk_add_fast_path_no_back_link", "mmframe/mm/rmap.py",
     "            prv[old[has]] = ids[has]\n            head[pfns] = ids",
     "            head[pfns] = ids", (RMAP, "tests/test_memory.py"), False),
    ("rmap.bulk_add_repeats_oldest_first", "mmframe/mm/rmap.py",
     "        head[sp[ends]] = sid[ends]", "        head[sp[starts]] = sid[starts]", (RMAP,), False),
    ("rmap.bulk_remove_no_jump_over_runs", "mmframe/mm/rmap.py",
     "        if not once:\n            page = np.frombuffer", "        if False:\n            page = np.frombuffer",
     (RMAP + "::test_bulk_forms_match_single_forms_and_the_lists",), True),
    ("rmap.walk_stops_at_first", "mmframe/mm/rmap.py",
     "            out.append((ptpages[p >> 10], p & 1023))\n            e = nxt[e]",
     "            out.append((ptpages[p >> 10], p & 1023))\n            e = -1",
     (RMAP + "::test_reclaim_reaches_every_mapping_through_the_list",), False),
    ("rmap.pteps_of_skips_head", "mmframe/mm/rmap.py",
     "        e, nxt, ptep = self.head[pfn], self.next, self.ptep\n        while e >= 0:\n            out.append(ptep[e])",
     "        e, nxt, ptep = self.head[pfn], self.next, self.ptep\n        e = nxt[e] if e >= 0 else e\n"
     "        while e >= 0:\n            out.append(ptep[e])",
     (RMAP + "::test_bulk_forms_match_single_forms_and_the_lists",), False),
    ("debug_vm.rmap_cycles_unchecked", "mmframe/mm/debug_vm.py",
     '    assert (up[ids] == head[pfns]).all(), "an rmap entry not',
     '    assert True or (up[ids] == head[pfns]).all(), "an rmap entry not',
     (RMAP + "::test_the_checker_catches_broken_rmap_links",), False),
    ("debug_vm.rmap_next_unchecked", "mmframe/mm/debug_vm.py",
     '    assert (prv[n[on]] == ids[on]).all(), "rmap next and prev links disagree"',
     '    assert True, "rmap next and prev links disagree"',
     (RMAP + "::test_the_checker_catches_broken_rmap_links",), False),
]
