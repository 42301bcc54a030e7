"""aio-dio: O_DIRECT iocbs of 4 KiB to 1 MiB kept in flight at several depths, synchronous (mainline
2.5.49: each iocb waits for its bios inside io_submit) beside asynchronous (2.5.49-mm1's AIO-DIO,
``[machine] aio_dio = true``), on the default machine (1 GiB: user pages are highmem, so each is
bounced by BLK_BOUNCE_HIGH), deadline, ata-7200.

Printed per size and depth: pages pinned and pages bounced per request, simulated CPU per request,
simulated throughput and latency, and the simulator's wall time per request; the async/sync ratio
of throughput.

Run: python benchmarks/bench_aio_dio.py [--quick]
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
    cfg = load_config(use_pyproject=False, env={})
    sizes = [(4096, "4KiB"), (65536, "64KiB"), (1 << 20, "1MiB")]
    depths = [1, 8, 32]
    rows = []
    for size, label in sizes:
        n = (40 if size >= 1 << 20 else 100) if quick else (100 if size >= 1 << 20 else 400)
        for depth in depths:
            per = {}
            for mode in ("sync", "async"):
                f = per[mode] = aio_dio_figures(cfg, mode == "async", size, depth, n, 0.5)
                rows.append([f"{label} d{depth} {mode}", f["requests"], f"{f['pages_pinned_per_req']:.0f}",
                             f"{f['bounce_pages_per_req']:.0f}", f"{f['cpu_us_per_req']:.1f}", f"{f['iops']:.1f}",
                             f"{f['mb_s']:.2f}", f"{f['lat_p50_ms']:.2f}", f"{f['lat_p99_ms']:.2f}",
                             f"{f['wall_us_per_req']:.0f}",
                             f"{per['async']['mb_s'] / per['sync']['mb_s']:.2f}x" if mode == "async" else ""])
    print("aio-dio: O_DIRECT iocbs, half reads, random size-aligned offsets (simulated unless marked wall)")
    print(table(["size depth mode", "reqs", "pinned/req", "bounced/req", "CPU us/req", "IO/s", "MB/s", "p50 ms",
                 "p99 ms", "wall us/req", "async/sync MB/s"], rows))


if __name__ == "__main__":
    main()
