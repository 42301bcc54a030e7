"""Named mutants of the speed work (issue 24): the bulk allocation and freeing paths, the bulk
LRU moves, shmem_getpages' and readahead's runs and the bisect VMA list; see tools/mutants.py."""

T = "tests/test_bulk_alloc.py"
ALLOC = (f"{T}::test_take_pcp_and_free_pages_bulk_equal_the_single_calls",)
USER = (f"{T}::test_alloc_user_pages_and_release_pages_equal_the_single_paths",)
PROGRAMS = (f"{T}::test_programs_leave_the_same_state_with_the_bulk_paths_on_and_off",)
BUDDY = (f"{T}::test_rmqueue_bulk_and_free_blocks0_equal_one_buddy_call_each",)
MUTANTS = [
    # take_pcp: a run handed out oldest-first instead of LIFO
    ("speed.take_pcp_fifo", "mmframe/mm/page_alloc.py",
     "                got.reverse()  # LIFO: the last freed first\n", "", ALLOC, True),
    # take_pcp: the refill's page taken from the list's head
    ("speed.take_pcp_refill_head", "mmframe/mm/page_alloc.py",
     "            out.append(lst.pop())\n            need -= 1", "            out.append(lst.pop(0))\n            need -= 1",
     ALLOC, False),
    # take_pcp: past the pass-1 watermark (the single path would go to pass 2 / kswapd)
    ("speed.take_pcp_ignores_watermark", "mmframe/mm/page_alloc.py",
     "            if not (free > z.pages_low + 1 or free >= z.pages_high):\n                break  # pass 1",
     "            if False:\n                break  # pass 1", ALLOC, False),
    # take_pcp: the run's pages not counted as allocated
    ("speed.take_pcp_alloc_count", "mmframe/mm/page_alloc.py",
     "            z.alloc_count += k\n            acct = self.acct", "            acct = self.acct", ALLOC, False),
    # rmqueue_bulk: expand() frees the upper half and goes on with the lower
    ("speed.rmqueue_bulk_upper_half", "mmframe/mm/page_alloc.py",
     "                    areas[cur][lower] = None", "                    areas[cur][pfn] = None\n                    pfn = lower",
     BUDDY, False),
    # rmqueue_bulk: the split steps not charged
    ("speed.rmqueue_bulk_steps", "mmframe/mm/page_alloc.py",
     "                steps += cur\n", "", BUDDY, True),
    # free_pages_bulk: the drain happens one page late (a list one longer than pcp.high)
    ("speed.free_bulk_drain_late", "mmframe/mm/page_alloc.py",
     "                if len(lst) >= high:  # free_pages_bulk of a batch, oldest first",
     "                if len(lst) > high:  # free_pages_bulk of a batch, oldest first", ALLOC, True),
    # free_pages_bulk: the drained batch taken from the newest end
    ("speed.free_bulk_drains_newest", "mmframe/mm/page_alloc.py",
     "                    drained = lst[:batch]\n                    del lst[:batch]",
     "                    drained = lst[-batch:]\n                    del lst[-batch:]", ALLOC, False),
    # _free_blocks0: coalescing keeps the upper buddy's pfn
    ("speed.free_blocks_upper_head", "mmframe/mm/page_alloc.py",
     "                if buddy < pfn:\n                    pfn = buddy\n", "", BUDDY, False),
    # alloc_user_pages: a run's highmem pages not kmapped for the clear
    ("speed.user_run_no_kmap", "mmframe/mm/page_ref.py",
     "        if run[0] >= self.first_high:  # one zone's list: all high or none\n            acct.charge(self.P_kmap, k)\n",
     "", USER + PROGRAMS, True),
    # lru_cache_add_run: the run joins the active list's flags
    ("speed.lru_run_flags", "mmframe/mm/page_ref.py",
     "            flags[pfn] = (flags[pfn] | _LRU) & ~(_ACTIVE | _REF)", "            flags[pfn] = flags[pfn] | _LRU | _REF",
     USER, False),
    # release_pages: a repeated page's references dropped once
    ("speed.release_dup_once", "mmframe/mm/page_ref.py",
     "        unique = len(pfns) < 2 or bool((np.diff(np.sort(pfns)) != 0).all())", "        unique = True",
     USER, True),
    # release_pages: freed pages left on the LRU
    ("speed.release_keeps_lru", "mmframe/mm/page_ref.py",
     "        if on_lru:\n            self.lru_del_run(on_lru)", "        if False:\n            self.lru_del_run(on_lru)",
     USER + PROGRAMS, False),
    # shmem_getpages: a run taken for every missing slot of the leaf, past a swapped one
    ("speed.shmem_run_counts_hits", "mmframe/mm/filemap.py",
     "                        want += leaf[(ix & 63) + 1] is None", "                        want += 1",
     PROGRAMS, False),
    # readahead: a run's pages skip the lookup charge the single path makes for each
    ("speed.readahead_run_lookup", "mmframe/mm/readahead.py",
     "            vm.acct.charge(vm.P_pcl)  # the lookup that missed", "            pass  # the lookup that missed",
     PROGRAMS, True),
    # the VMA list: overlapping misses the VMA that starts below the range
    ("speed.vma_overlapping_skips_first", "mmframe/mm/vma.py",
     "        for j in range(i if i > 0 else 0, len(vmas)):\n            v = vmas[j]\n            if v.start >= end:",
     "        for j in range(i + 1 if i >= 0 else 0, len(vmas)):\n            v = vmas[j]\n            if v.start >= end:",
     ("tests/test_memory.py::test_generated_programs_match_the_oracle", "tests/test_address_space.py"), False),
    ("speed.fill_refs_after_reclaim", "mmframe/fs.py",
     "            vm.count[pfn] += 1\n            out.append(pfn)", "            out.append(pfn)",
     ("tests/test_bulk_alloc.py::test_programs_leave_the_same_state_with_the_bulk_paths_on_and_off",), False),
]

# --- branch forkbulk: fork's and exit's batches over every PTE page of an mm, the rmap's distinct
# batches, canonical rmap ids, pass1_sure, shmem_getpages' deferred references (four in CI's fast
# subset, the rest in the full mutation check: CI time) ---------------------------------------------
FB = "tests/test_fork_batch.py"
FB_ALL = (FB,)
FB_SPAN = (f"{FB}::test_the_batch_copies_a_program_spanning_pte_pages",)
FB_HIGH = (f"{FB}::test_batched_fork_equals_the_single_path_with_highmem_page_tables",)
MUTANTS += [
    # the batch copies without write-protecting the source's copy-on-write entries
    ("speed.fork_batch_src_writable", "mmframe/mm/fork.py",
     "            pts[j].np()[:] = S[j * P:(j + 1) * P]", "            pass", FB_SPAN, True),
    # shared entries copied dirty (the single path makes them clean)
    ("speed.fork_batch_shared_dirty", "mmframe/mm/fork.py",
     "(_PAGE_DIRTY if clean else 0)", "0", FB_SPAN, False),
    # the batch taken without knowing every allocation is served on pass 1
    ("speed.fork_batch_ignores_pass1", "mmframe/mm/fork.py",
     "    if not vm.pa.pass1_sure(", "    if False and vm.pa.pass1_sure(",
     (f"{FB}::test_under_pressure_the_batch_declines_and_the_runs_agree",), False),
    # the batch taken with a page mapped twice among the entries
    ("speed.fork_batch_no_distinct", "mmframe/mm/fork.py",
     "    if not rmap.distinct(rp):\n        return False", "    if False:\n        return False",
     (f"{FB}::test_a_page_mapped_twice_goes_a_pte_page_at_a_time",), True),
    # the choke point's kmap of a HIGHPTE source table written for copy-on-write not charged
    ("speed.fork_batch_kmap_changed", "mmframe/mm/fork.py",
     " + int(high_src[changed].sum())", "", FB_HIGH, False),
    # the pte_chain objects of each PTE page allocated after all the PTE pages (another pfn order)
    ("speed.fork_batch_chains_after_tables", "mmframe/mm/fork.py",
     "        dpts.append(dpt)\n        if d:\n            rmap._chains_delta(d)",
     "        dpts.append(dpt)\n    for d in deltas:\n        if d:\n            rmap._chains_delta(d)",
     FB_SPAN + FB_HIGH, False),
    # a second mapping leaves the page PageDirect in the batch add
    ("speed.add_distinct_no_chain_mode", "mmframe/mm/rmap.py",
     "        ch[pfns] |= (after >= 2).view(np.uint8)", "        pass", FB_SPAN, False),
    # the batch's chain count misses the PageDirect -> chain conversion
    ("speed.chain_deltas_direct_stays", "mmframe/mm/rmap.py",
     "        d *= c0 | (k0 >= 1)", "        d *= c0", FB_SPAN, False),
    # the batch remove charges fewer chain-block visits than the single path
    ("speed.remove_distinct_visits", "mmframe/mm/rmap.py",
     "        visits = int(((before + 1) // 2).sum())", "        visits = int((before // 2).sum())", FB_SPAN, False),
    # new rmap ids pushed on top of the free ones: the ids handed out depend on when the table grew
    ("speed.rmap_grow_ids_on_top", "mmframe/mm/rmap.py",
     "        new.extend(self.free)\n        self.free = new", "        self.free.extend(new)", FB_SPAN, False),
    # exit's batch frees each PTE page before its pages (another free-list order)
    ("speed.exit_batch_table_first", "mmframe/mm/zap.py",
     "            free(gone_list[gbounds[j]:gbounds[j + 1]] + [pt.pfn], cpu)",
     "            free([pt.pfn] + gone_list[gbounds[j]:gbounds[j + 1]], cpu)", FB_SPAN, True),
    # exit's batch does not count its choke-point passes
    ("speed.exit_batch_uncounted", "mmframe/mm/zap.py",
     "        self.pte_changes[pte_change.EXIT] += npt", "        pass", FB_SPAN, False),
    # pass1_sure forgets the per-CPU refill a request can take from the buddy lists
    ("speed.pass1_sure_no_refill", "mmframe/mm/page_alloc.py",
     "            got[2] += pcp.batch", "            pass",
     (f"{FB}::test_pass1_sure_counts_what_each_zone_gives",), False),
    # shmem_getpages lets a run's allocation (which may reclaim) see found pages without their references
    ("speed.shmem_refs_after_run", "mmframe/mm/filemap.py",
     "                    _take(vm, pending)\n                    pool = vm.alloc_user_run(want)",
     "                    pool = vm.alloc_user_run(want)",
     (f"{FB}::test_shmem_getpages_takes_the_found_pages_references_before_allocating",), True),
]
