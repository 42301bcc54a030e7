"""Named mutants of page reservations (plugins/reserve, the core's sites, fault injection); see
tools/mutants.py."""

T = "tests/test_reserve.py"
MUTANTS = [
    # the pool hands a page out and keeps it: the same page goes to two allocations
    ("reserve.pool_hands_page_twice", "plugins/reserve/__init__.py",
     "        return pool.pop(pick)[0]\n", "        return pool[pick][0]\n",
     (f"{T}::test_pool_never_hands_a_page_out_twice",), True),
    # release keeps the pages: pools do not give every page back
    ("reserve.release_keeps_pages", "plugins/reserve/__init__.py",
     "        while len(pool) > left:\n", "        while len(pool) > left + nr:\n",
     (f"{T}::test_pools_give_every_page_back",), True),
    # misuse not caught: releasing more than reserved goes negative silently
    ("reserve.release_unchecked", "plugins/reserve/__init__.py",
     "        if nr < 0 or left < 0:\n", "        if nr < 0:\n", (f"{T}::test_misuse_names_the_caller",), True),
    # any allocation on the CPU takes from the pool, not only __GFP_RESERVE ones
    ("reserve.pool_for_everyone", "plugins/reserve/__init__.py",
     "    if not gfp_mask & __GFP_RESERVE or order:\n", "    if order:\n",
     (f"{T}::test_pools_are_per_cpu",), True),
    # a failed reservation keeps what it got (not all or nothing)
    ("reserve.partial_reservation_kept", "plugins/reserve/__init__.py",
     "                for p, _ in got:  # A1: all or nothing\n                    m.free_pages(p, 0)\n",
     "                pool.extend(got)\n", (f"{T}::test_failed_reservation_returns_enomem_and_keeps_nothing",), False),
    # the pte_chain failure carries on instead of oopsing (mmframe before issue 21)
    ("reserve.pte_chain_no_oops", "mmframe/mm/rmap.py", "                oops = True\n", "",
     (f"{T}::test_pte_chain_failure_is_the_oops",), True),
    # the page-cache insert bypasses its reservation site
    ("reserve.radix_site_skipped", "mmframe/mm/filemap.py", "    if not m.reserving:\n", "    if True:\n",
     (f"{T}::test_plugin_survives_injection_at_each_site",), False),
    # fault injection counts from zero: the Nth becomes the (N+1)th
    ("reserve.inject_off_by_one", "mmframe/mm/fault_inject.py", "            fail = fi.seen == fi.nth\n",
     "            fail = fi.seen == fi.nth + 1\n", (f"{T}::test_pte_chain_failure_is_the_oops",), True),
    # sga: the oops ends the whole scenario run (the full run lost mainline's attach columns)
    ("reserve.sga_oops_ends_scenario", "mmframe/workloads/sga.py", "    except SimOops as oops:",
     "    except ZeroDivisionError as oops:",
     ("tests/test_pt_shared.py::test_sga_oops_ends_the_measurement_not_the_scenario",), True),
]
