"""The host side of the harness: a stdlib-only script run as ``python -S -E runner.py``.

It reads a plan (JSON on stdin), runs each workload on the host kernel with real processes and
memory, and writes one JSON line per finished repetition and a final result line on stdout.  It
imports nothing but the standard library so the process being forked stays small (its own
address space is measured and replayed in the model; see ``mmframe.host.model``).

Scheduling: pinned to one CPU when the plan names one; SCHED_FIFO (priority 1, the kernel's RT
throttling still leaves others 5%) when the plan asks for it and the runner may.

Memory cap: the runner sets RLIMIT_AS to its own size plus the cap (the kernel refuses anything
beyond) and refuses, before mapping anything, a workload whose planned size exceeds the cap.
A forked child _exits at once (``os._exit``), without Python teardown.
"""

import ctypes
import json
import mmap
import os
import resource
import sys
import time

PAGE = mmap.PAGESIZE
MiB = 1 << 20
PROT_READ, PROT_WRITE = mmap.PROT_READ, mmap.PROT_WRITE
MAP_PRIVATE, MAP_ANONYMOUS = mmap.MAP_PRIVATE, mmap.MAP_ANONYMOUS
now = time.perf_counter_ns

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
libc.labs.argtypes = (ctypes.c_long,)
MAP_FAILED = ctypes.c_void_p(-1).value


class OverCap(Exception):
    pass


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def shape(exclude=None):
    """This process's address space as fork sees it, less the workload's own region (``exclude``):
    how many VMAs, and for those holding anonymous pages (they have an anon_vma, so fork copies
    their present PTEs) where each starts and how many pages it has resident."""
    vmas, cur = [], None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                cur = {"start": lo, "end": hi, "rss": 0, "anon": 0, "name": line.split()[-1] if len(line.split()) > 5 else ""}
                vmas.append(cur)
            elif head == "Rss:":
                cur["rss"] = int(line.split()[1]) // (PAGE >> 10)
            elif head == "Anonymous:":
                cur["anon"] = int(line.split()[1]) // (PAGE >> 10)
    vmas = [v for v in vmas if v["name"] != "[vsyscall]" and v["start"] != exclude]
    anon = [{"start": v["start"], "rss": v["rss"]} for v in vmas if v["anon"]]
    return {"vmas": len(vmas), "anon_vmas": anon}


class Region:
    """A private anonymous mapping with THP off, touched or not; ``addr`` for ctypes calls."""

    def __init__(self, size, budget):
        budget.take(size)
        self.size, self.budget = size, budget
        self.m = mmap.mmap(-1, size, flags=MAP_PRIVATE | MAP_ANONYMOUS, prot=PROT_READ | PROT_WRITE)
        self.m.madvise(mmap.MADV_NOHUGEPAGE)
        view = ctypes.c_char.from_buffer(self.m)
        self.addr = ctypes.addressof(view)
        del view
        self.npages = size // PAGE
        self.ones = b"\x01" * self.npages

    def write_all(self):
        self.m[0:self.size:PAGE] = self.ones  # one store per page, a C loop: one write fault each

    def read_all(self):
        return self.m[0:self.size:PAGE]  # one load per page: a read fault each (the zero page)

    def close(self):
        if self.m is not None:
            self.m.close()
            self.m = None
            self.budget.give(self.size)


class Budget:
    """The cap: bytes the workloads may map at once (their page tables included)."""

    def __init__(self, cap):
        self.cap, self.used, self.peak = cap, 0, 0

    def need(self, size):
        return size + (size // PAGE) * 8 // 512 + PAGE  # the pages and their PTE pages

    def take(self, size):
        n = self.need(size)
        if self.used + n > self.cap:
            raise OverCap(f"{size >> 20} MiB needs {n >> 20} MiB, over the cap of {self.cap >> 20} MiB")
        self.used += n
        self.peak = max(self.peak, self.used)

    def give(self, size):
        self.used -= self.need(size)


def reap(pid):
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"child {pid} ended with status {status}")


def op_fork(r, _true):
    t0 = now()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    t1 = now()
    reap(pid)
    return t1 - t0


def op_fork_exit(r, _true):
    t0 = now()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    reap(pid)
    return now() - t0


def op_fork_exec_exit(r, true):
    t0 = now()
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(true, [true])
        finally:
            os._exit(127)
    reap(pid)
    return now() - t0


FORKS = {"fork": op_fork, "fork_exit": op_fork_exit, "fork_exec_exit": op_fork_exec_exit}


def run_workload(w, budget, true, progress):
    """Repeat one workload; return its samples (ns) and this process's shape while it ran."""
    kind, size, reps = w["kind"], w["size"], w["repeats"]
    samples, seen = [], None
    if kind in FORKS:
        r = Region(size, budget)
        try:
            r.write_all()
            seen = shape(r.addr)
            op = FORKS[kind]
            op(r, true)  # warm-up: caches, the binary, the slab
            for i in range(reps):
                samples.append(op(r, true))
                progress(i)
        finally:
            r.close()
        return samples, seen
    if kind == "mmap_small":
        loops = w.get("loops", 2000)
        seen = shape()
        mmap_, munmap_, labs = libc.mmap, libc.munmap, libc.labs
        rw, fl = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
        budget.take(PAGE)
        try:
            for i in range(reps + 1):
                t0 = now()
                for _ in range(loops):
                    p = mmap_(None, PAGE, rw, fl, -1, 0)
                    munmap_(p, PAGE)
                t1 = now()
                for _ in range(loops):  # the harness's own share: two ctypes calls that enter no kernel
                    labs(0)
                    labs(0)
                t2 = now()
                if i:  # the first round warms up
                    samples.append(((t1 - t0) - (t2 - t1)) / loops)
                    progress(i - 1)
        finally:
            budget.give(PAGE)
        return samples, seen
    for i in range(reps + 1):
        r = Region(size, budget)
        try:
            if kind == "write_faults":
                t0 = now()
                r.write_all()
                dt = now() - t0
                if seen is None:
                    seen = shape(r.addr)
            elif kind == "read_faults":
                t0 = now()
                r.read_all()
                dt = now() - t0
                if seen is None:
                    seen = shape(r.addr)
            elif kind == "munmap":
                r.write_all()
                if seen is None:
                    seen = shape(r.addr)
                t0 = now()
                r.close()
                dt = now() - t0
            elif kind == "mprotect":
                r.write_all()
                if seen is None:
                    seen = shape(r.addr)
                t0 = now()
                rc = libc.mprotect(r.addr, size, PROT_READ)
                dt = now() - t0
                if rc != 0:
                    raise OSError(ctypes.get_errno(), "mprotect failed")
            else:
                raise ValueError(f"unknown workload kind {kind!r}")
        finally:
            r.close()
        if i:  # the first round warms up
            samples.append(dt)
            progress(i - 1)
    return samples, seen


def main():
    plan = json.loads(sys.stdin.read())
    cap = int(plan["cap"])
    base_rss = status_kib("VmRSS") << 10
    vm_size = status_kib("VmSize") << 10
    resource.setrlimit(resource.RLIMIT_AS, (vm_size + cap + 64 * MiB, resource.RLIM_INFINITY))
    budget = Budget(cap)
    if plan.get("cpu") is not None:  # one CPU: a cross-CPU wake-up can wait for a tick in a VM
        os.sched_setaffinity(0, {int(plan["cpu"])})
    rt = False
    if plan.get("rt"):  # opt-in: SCHED_FIFO, so other users' load does not delay a wake-up or a fault
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            rt = True
        except (PermissionError, OSError):
            rt = False
    emit({"start": {"baseline_rss": base_rss, "vm_size": vm_size, "pid": os.getpid(), "rt": rt}})
    for n, w in enumerate(plan["workloads"]):
        def progress(i, n=n):
            emit({"progress": n, "rep": i})
        try:
            samples, seen = run_workload(w, budget, plan["true"], progress)
            emit({"done": n, "samples": samples, "shape": seen})
        except (OverCap, MemoryError) as exc:
            emit({"done": n, "skipped": f"over the memory cap: {exc}"})
        except OSError as exc:
            if exc.errno == 12:  # ENOMEM: RLIMIT_AS, the cap the kernel enforces
                emit({"done": n, "skipped": f"over the memory cap (RLIMIT_AS): {exc}"})
            else:
                raise
    # VmHWM, not getrusage's ru_maxrss: that one starts at exec from the forked parent's peak
    emit({"end": {"peak_rss": status_kib("VmHWM") << 10, "budget_peak": budget.peak}})


if __name__ == "__main__":
    main()
