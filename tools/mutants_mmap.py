"""Named mutants of the address-space calls (mmframe/mm/mmap.py); see tools/mutants.py."""

T = ("tests/test_address_space.py::test_errno_of_each_call",)
MUTANTS = [
    ("mmap.length_signed", "mmframe/mm/mmap.py",
     "addr, length = addr & ULONG_MASK, length & ULONG_MASK", "addr = addr & ULONG_MASK", T, True),
]
