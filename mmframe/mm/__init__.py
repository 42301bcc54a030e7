"""The memory model: physical pages, page tables, rmap, faults, mappings (see DESIGN.md section 3)."""
