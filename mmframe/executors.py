"""Where a sweep's runs go: the local process pool, a Dask cluster or a Ray cluster.

Every executor ships the same pure :class:`~mmframe.sweep.Job` (plain data) to
:func:`~mmframe.sweep.run_job` and gathers the records by job number, so tables, JSON and CSV are
byte-identical whichever executor ran the sweep.  Dask (``pip install 'mmframe[dask]'``) and Ray
(``pip install 'mmframe[ray]'``) are optional; naming one that is not installed is a usage error
saying what to install.  Progress events (``submit``, ``start``, ``step``, ``done``) go to the
same reporter for every executor; a run that fails comes back as a failed record and the sweep
goes on.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from mmframe.errors import UsageError
from mmframe.sweep import Job, Progress, failed_record, run_job, run_jobs

EXECUTORS = ("local", "dask", "ray")
HINTS = {"dask": "pip install 'mmframe[dask]' (dask.distributed)", "ray": "pip install 'mmframe[ray]'"}


def require(executor: str) -> None:
    """Raise a UsageError naming the extra to install when ``executor`` cannot be imported."""
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor!r}: unknown (available: {', '.join(EXECUTORS)})")
    mod = {"dask": "dask.distributed", "ray": "ray"}.get(executor)
    if mod is None:
        return
    try:
        __import__(mod)
    except ImportError:
        raise UsageError(f"--executor {executor} needs {mod}, which is not installed: {HINTS[executor]}") from None


def run_sweep(jobs: Sequence[Job], executor: str = "local", *, address: str = "", workers: int | None = None,
              progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run ``jobs`` on ``executor``; records in job order."""
    require(executor)
    if not jobs:
        return []
    if executor == "dask":
        return run_dask(jobs, address, workers, progress)
    if executor == "ray":
        return run_ray(jobs, address, workers, progress)
    if address:
        raise UsageError("--address is for --executor dask or ray")
    return run_jobs(jobs, workers, progress)


def _gather(jobs: Sequence[Job], results: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [results[j.index] for j in jobs]


def run_dask(jobs: Sequence[Job], address: str, workers: int | None, progress: Progress | None) -> list[dict[str, Any]]:
    """A Dask scheduler at ``address``, or a LocalCluster of ``workers`` single-threaded processes."""
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if address:
        client = Client(address)
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    results: dict[int, dict[str, Any]] = {}
    try:
        futures = {client.submit(run_job, job, pure=False, key=f"mmframe-run-{job.index}-{os.getpid()}-{id(jobs)}"): job
                   for job in jobs}
        if progress:
            progress("submit", len(jobs))
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled future
                rec = failed_record(job, exc)
            results[job.index] = rec
            if progress:
                progress("done", rec)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return _gather(jobs, results)


def run_ray(jobs: Sequence[Job], address: str, workers: int | None, progress: Progress | None) -> list[dict[str, Any]]:
    """A Ray cluster at ``address`` (``ray://HOST:PORT``), or a local instance of ``workers`` CPUs."""
    import ray

    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
    remote = ray.remote(num_cpus=1, max_retries=0)(run_job)
    results: dict[int, dict[str, Any]] = {}
    try:
        refs = {remote.remote(job): job for job in jobs}
        if progress:
            progress("submit", len(jobs))
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                job = refs[ref]
                try:
                    rec = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a dead worker, a lost object
                    rec = failed_record(job, exc)
                results[job.index] = rec
                if progress:
                    progress("done", rec)
    finally:
        if started:
            ray.shutdown()
    return _gather(jobs, results)
