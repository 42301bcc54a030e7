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
]
