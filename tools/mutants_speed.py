"""Named mutants of the speed work (issue 24): the bulk allocation and freeing paths, the bulk
LRU moves, shmem_getpages' and readahead's runs and the bisect VMA list; see tools/mutants.py."""

T = "tests/test_bulk_alloc.py"
ALLOC = (f"{T}::test_take_pcp_and_free_pages_bulk_equal_the_single_calls",)
USER = (f"{T}::test_alloc_user_pages_and_release_pages_equal_the_single_paths",)
PROGRAMS = (f"{T}::test_programs_leave_the_same_state_with_the_bulk_paths_on_and_off",)
SMALL_ORACLE = "tests/test_memory.py::test_generated_programs_match_the_oracle"
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
    # --- branch small (issue 24: one-page mmap+munmap): one VMA lookup per call, cheap checks first
    # span: a VMA ending exactly at the range's start counted as meeting it (munmap takes a neighbour)
    ("speed.small_span_takes_left_neighbour", "mmframe/mm/vma.py",
     "        if i < 0 or self.vmas[i].end <= start:", "        if i < 0 or self.vmas[i].end < start:",
     ("tests/test_vma_span.py", SMALL_ORACLE), True),
    # do_munmap: a VMA straddling the range's end taken whole instead of split
    ("speed.small_munmap_ignores_end_straddler", "mmframe/mm/mmap.py",
     "    if first.start < start or last.end > end:  # a VMA straddles an edge",
     "    if first.start < start:  # a VMA straddles an edge", ("tests/test_vma_span.py", SMALL_ORACLE), True),
    # either_side: the hole's right neighbour one too far (vma_merge and free_pgtables see the wrong VMA)
    ("speed.small_either_side_skips_next", "mmframe/mm/vma.py",
     "        return vmas[i - 1] if i > 0 else None, vmas[i] if i < len(vmas) else None",
     "        return vmas[i - 1] if i > 0 else None, vmas[i + 1] if i + 1 < len(vmas) else None",
     ("tests/test_vma_span.py", SMALL_ORACLE), True),
    # do_munmap: pages left mapped when the range's page table is not the first slot's
    ("speed.small_zap_skip_first_slot_only", "mmframe/mm/mmap.py",
     "    if mm.ptp[lo:hi].count(None) != hi - lo:  # a page table to zap",
     "    if mm.ptp[lo] is not None:  # a page table to zap", ("tests/test_vma_span.py", SMALL_ORACLE), True),
    # free_pgtables: page tables never freed (the all-empty shortcut taken always)
    ("speed.small_pgtables_never_freed", "mmframe/mm/mmap.py",
     "    if ptp[lo:hi].count(None) == hi - lo:  # no page table there (a scan in C)",
     "    if True:  # no page table there (a scan in C)",
     ("tests/test_memory.py::test_free_pgtables_granularity_is_the_pgd_slot",), False),
    # flush_tlb_range: no IPI when this CPU has the mm too (another CPU's TLB left stale)
    ("speed.small_range_flush_no_ipi_with_self", "mmframe/cpu.py",
     "        if len(mask) > 1 or mask and here.id not in mask:  # another CPU has it loaded",
     "        if mask and here.id not in mask:  # another CPU has it loaded",
     ("tests/test_vma_span.py",), False),
    # vm_enough_memory: the early grant taken whenever any page is free
    ("speed.small_overcommit_early_grant", "mmframe/mm/overcommit.py",
     "        if nr_free > pages:  # enough whatever", "        if nr_free > 0:  # enough whatever",
     ("tests/test_reclaim.py::test_overcommit_heuristic_refuses_an_obvious_overcommit_and_grants_the_rest",), True),
    # kmem_cache_alloc: an object past the slabs held taken without a page
    ("speed.small_slab_fits_one_over", "mmframe/mm/slab.py",
     "        if objects <= len(pages) * self.per_slab:  # fits",
     "        if objects <= len(pages) * self.per_slab + 1:  # fits", ("tests/test_vma_span.py",), False),
    # the core's page policy called directly even when a plugin implements the hook
    ("speed.small_alloc_bypasses_plugin", "mmframe/machine.py",
     "        if self.core_alloc:  # the core's policy alone", "        if True:  # the core's policy alone",
     ("tests/test_vma_span.py",), False),
    # the scheduler's inline resume: a yielded non-call not reported
    ("speed.small_sched_inline_no_call_check", "mmframe/sched.py",
     "                    if type(call) is not tuple or not call or not isinstance(call[0], str):\n"
     "                        call = self._not_a_call(task, call)",
     "                    pass", ("tests/test_sched.py::test_program_bugs_are_program_errors",), False),
]

# --- branch defer (issue 24: a deferring plugin costs nothing; contract 1.15's HookScope) ------------
PTC = "tests/test_pt_shared_costs.py"
HOOKS = "tests/test_hookspecs.py"
LOCK = (f"{PTC}::test_every_fault_takes_the_pte_page_lock_on_the_single_and_the_bulk_path",)
MUTANTS += [
    # touch's bulk fill forgets the scoped plugin's fault_cost (the per-fault lock) for its run
    ("speed.bulk_forgets_fault_cost", "mmframe/mm/touch.py",
     "                    self.charge_fault_cost(row, row[self.P_fault] - before)", "                    pass",
     LOCK + (f"{HOOKS}::test_mmframe_hook_scope",), True),
    # the single path forgets it (do_page_fault's inline scoped dispatch)
    ("speed.single_forgets_fault_cost", "mmframe/mm/fault.py",
     "                if p >= 0:\n                    acct.row[p] += 1\n", "                if p >= 0:\n",
     LOCK + (f"{HOOKS}::test_mmframe_hook_scope",), True),
    # the scoped dispatch never asks the policy on a write through a write-protected PMD (no unshare)
    ("speed.scope_skips_pmd_wrprotect", "mmframe/mm/fault.py",
     "            if (sc & 1 if not e else write and sc & 2 and not e & _PAGE_RW",
     "            if (sc & 1 if not e else write and sc & 2 and not e & _PAGE_RW and False",
     ("tests/test_cow.py", f"{HOOKS}::test_mmframe_hook_scope"), True),
    # the scoped dispatch ignores the shared_pte case
    ("speed.scope_ignores_shared_pte", "mmframe/mm/fault.py",
     "                    or sc & 4 and self.count[e >> PAGE_SHIFT] > 1):\n                r = self._fault_policy",
     "                    or sc & 4 and self.count[e >> PAGE_SHIFT] > 99):\n                r = self._fault_policy",
     (f"{HOOKS}::test_mmframe_hook_scope_fault_cases",), True),
    # pte_change's scope ignores shared tables (pt_shared would never unshare on zap, cow, mprotect...)
    ("speed.pte_scope_ignores_shared", "mmframe/mm/pte_change.py",
     "                                            and self.count[pt.pfn] > 1 and self._pte_shared >> reason & 1):",
     "                                            and self.count[pt.pfn] > 1 and self._pte_shared >> reason & 0):",
     ("tests/test_cow.py", f"{HOOKS}::test_mmframe_hook_scope_fault_cases"), False),
    # a scoped plugin's first fault in an empty slot is not shown to it on touch's bulk path
    ("speed.bulk_skips_no_pte_scope", "mmframe/mm/touch.py",
     "            if self.fault_in_scope(mm, idx, write):  # the policy sees the first fault of the PTE page",
     "            if self._fault_scope is None:  # the policy sees the first fault of the PTE page",
     (f"{HOOKS}::test_mmframe_hook_scope_fault_cases",), True),
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
