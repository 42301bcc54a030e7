"""Named mutants of the oracle's own argument rules (mmframe/mm/oracle.py); see tools/mutants.py."""

T = ("tests/test_oracle_args.py",)
MUTANTS = [
    ("oracle.open_accmode_3_allowed", "mmframe/mm/oracle.py",
     "    return _ACCESS.get(flags & 3, -EINVAL)", "    return _ACCESS.get(flags & 3, 3)", T, True),
    ("oracle.io_negative_length", "mmframe/mm/oracle.py",
     "    if length < 0 or offset < 0:  # any byte offset and buffer", "    if offset < 0:  # any byte offset and buffer",
     T, False),
]
