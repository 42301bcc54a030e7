"""The memory model: physical pages, page tables, rmap, faults, mappings (see docs/memory.md)."""
