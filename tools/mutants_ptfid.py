"""Named mutants of the period's program images and the honest fork-scaling figures (issue 22:
mmframe/usr.py, mmframe/mm/exec.py, mmframe/workloads/fork_scaling.py, sga.py); see tools/mutants.py."""

I = "tests/test_images.py"
LAYOUT = (f"{I}::test_the_period_image_places_ld_so_and_libc_from_task_unmapped_base",)
AFTER = (f"{I}::test_after_fork_copies_the_three_pages_and_keeps_their_contents",)
MUTANTS = [
    ("images.no_shared_objects", "mmframe/mm/exec.py",
     "    for lib in img.libs:  #", "    for lib in ():  #", LAYOUT, True),
    ("images.libs_not_from_task_unmapped_base", "mmframe/mm/exec.py",
     "base = MM.get_unmapped_area(new, 0, span)", "base = MM.get_unmapped_area(new, 0x5000_0000, span)", LAYOUT),
    ("images.malloc_threshold_exclusive", "mmframe/usr.py",
     "if size >= M_MMAP_THRESHOLD:", "if size > M_MMAP_THRESHOLD:", LAYOUT),
    ("images.child_skips_libc_data", "mmframe/usr.py",
     "for data in img.child_writes:", "for data in ():", AFTER),
    ("images.parent_skips_its_data", "mmframe/usr.py",
     "    if img.bss > img.data:\n        yield touch(img.data, PAGE_SIZE, True)",
     "    if pid == 0 and img.bss > img.data:\n        yield touch(img.data, PAGE_SIZE, True)", AFTER),
    ("images.fitted_share_inverted", "mmframe/workloads/fork_scaling.py",
     "            if fitted[i]:", "            if not fitted[i]:",
     (f"{I}::test_fork_scaling_shows_the_share_of_fitted_costs",)),
    ("images.sga_attach_inherits", "mmframe/workloads/sga.py",
     'pid = yield fork(_child if form == "fork" else _spawn_server, base, size)',
     "pid = yield fork(_child, base, size)", (f"{I}::test_sga_attach_form_starts_unrelated_servers",)),
    ("images.exec_fit_drift", "mmframe/data/costs_2002.toml",
     "ns = 723000", "ns = 798000", ("tests/test_address_space.py::test_the_fork_and_exec_fits_still_hold",)),
]
