"""The simulated kernel oops: a failure 2.5.49 could not survive, reported and ending the run.

2.5.53-mm2's announcement (akpm, 28 Dec 2002, <3E0E4744.8EE126ED@digeo.com>): "If pte_chain_alloc()
fails to allocate GFP_ATOMIC memory, the kernel oopses.  This is a long-standing rmap problem."
The core records the oops in the allocator's events (``("oops", site, n)``) and raises
:class:`KernelOops`; :meth:`mmframe.machine.Machine.run` catches it and ends the run, returning the
results so far with ``RunResult.oops`` naming the site.  Kept small and separate so the reclaim
work (which may oops for its own reasons) can share it.
"""

from __future__ import annotations


class KernelOops(Exception):
    """A simulated oops at ``site`` (a kernel function name) on behalf of task ``task``."""

    def __init__(self, site: str, detail: str = "", task: str | None = None) -> None:
        super().__init__(f"oops in {site}" + (f": {detail}" if detail else ""))
        self.site, self.detail, self.task = site, detail, task
