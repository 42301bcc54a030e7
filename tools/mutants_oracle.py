"""Named mutants of the oracle's own argument rules (mmframe/mm/oracle.py); see tools/mutants.py."""

T = ("tests/test_oracle_args.py",)
MUTANTS = [
    ("oracle.open_accmode_3_allowed", "mmframe/mm/oracle.py",
     "    return _ACCESS.get(flags & 3, -EINVAL)", "    return _ACCESS.get(flags & 3, 3)", T, True),
    ("oracle.io_negative_length", "mmframe/mm/oracle.py",
     "    if length < 0 or offset < 0:  # any byte offset and buffer", "    if offset < 0:  # any byte offset and buffer",
     T, False),
    ("oracle.anon_mmap_never_merges", "mmframe/mm/oracle.py",
     "        if a.anon:\n            mm.merge_around(addr, addr + length)\n", "",
     ("tests/test_address_space.py::test_generated_file_programs_match_the_oracle",), False),
    ("oracle.open_creat_trailing_slash_enoent", "mmframe/mm/oracle.py",
     "            return -EISDIR  # creating what a trailing slash says is a directory",
     "            return -ENOENT  # creating what a trailing slash says is a directory",
     ("tests/test_fileapi.py::test_open_creat_of_a_directory_name_as_open_namei_orders_its_checks",), False),
]
