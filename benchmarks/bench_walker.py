"""walker: O_DIRECT requests of 4 KiB to 1 MiB with and without the page-walk plugin answering the
user-page mapping hook, side by side (aio-dio's workload, synchronous, depth 1 and 8, half reads).

Printed per size: pages pinned per request (the buffers are touched first, so that is also the
follow_page lookups either path makes: one per page, none retried), pages bounced, simulated CPU
per request and throughput, and the simulator's wall time per request -- whatever they show,
including no difference: the walk charges what get_user_pages charges (page_ref per pin, the
faults); neither charges the page-table lookup or the page array itself (no cost-table entry for
them), so the simulated columns cannot differ.

Run: python benchmarks/bench_walker.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.workloads.aio_dio import aio_dio_figures  # noqa: E402


def main() -> None:
    quick = "--quick" in sys.argv
    rows = []
    for size, label in ((4096, "4KiB"), (65536, "64KiB"), (1 << 20, "1MiB")):
        n = (30 if size >= 1 << 20 else 100) if quick else (100 if size >= 1 << 20 else 400)
        for depth in (1, 8):
            base = None
            for plugins in ((), ("walker",)):
                cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(plugins))
                f = aio_dio_figures(cfg, False, size, depth, n, 0.5)
                name = "walker" if plugins else "core get_user_pages"
                rows.append([f"{label} d{depth} {name}", f["requests"], f"{f['pages_pinned_per_req']:.0f}",
                             f"{f['bounce_pages_per_req']:.0f}", f"{f['cpu_us_per_req']:.2f}",
                             f"{f['mb_s']:.2f}", f"{f['wall_us_per_req']:.0f}",
                             f"{f['cpu_us_per_req'] / base['cpu_us_per_req']:.3f}x" if base else ""])
                base = base or f
    print("walker vs core get_user_pages: O_DIRECT iocbs (sync), half reads, random offsets")
    print(table(["size depth path", "reqs", "pages pinned/req", "bounced/req",
                 "CPU us/req (sim)", "MB/s (sim)", "wall us/req", "CPU vs core"], rows))


if __name__ == "__main__":
    main()
