"""Named mutants of the page allocator (mmframe/mm/page_alloc.py); see tools/mutants.py."""

T = ("tests/test_page_alloc.py",)
MUTANTS = [
    ("page_alloc.watermark_ge", "mmframe/mm/page_alloc.py",
     "if z.free_pages > min_ or z.free_pages >= z.pages_high:",
     "if z.free_pages >= min_ or z.free_pages >= z.pages_high:", T, True),
    ("page_alloc.no_coalesce", "mmframe/mm/page_alloc.py",
     "if buddy not in areas[order]:", "if True:", T, True),
    ("page_alloc.expand_lower_half", "mmframe/mm/page_alloc.py",
     "areas[cur][pfn] = None\n                    pfn += 1 << cur",
     "areas[cur][pfn + (1 << cur)] = None", T, False),
    ("page_alloc.watermarks_ratio", "mmframe/mm/page_alloc.py",
     "mask = min(max(self.present_pages // 128, 20), 255)",
     "mask = min(max(self.present_pages // 127, 20), 255)", T, False),
]
