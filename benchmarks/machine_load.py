"""How loaded the shared machine was while a benchmark ran (imported by the bench_*.py scripts).

``meter = LoadMeter()`` at the start, ``meter.report()`` at the end gives::

    {"load_average_1min": {"before": ..., "after": ...},
     "cpu_use": {"wall_s": ..., "own_cores": ..., "other_processes_cores": ...}}

``other_processes_cores`` is the CPU time that every other process used meanwhile (all cores, from
``/proc/stat``, minus this process and its finished children), divided by the wall time: 0 on a
quiet machine, up to the number of cores when others kept every core busy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _busy_seconds() -> float | None:
    """CPU seconds spent by the whole machine (all cores) outside idle and I/O wait, or None."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    def __init__(self):
        self.load_before = os.getloadavg()[0]
        self.start = (time.perf_counter(), _busy_seconds(), _own_seconds())

    def report(self) -> dict:
        (w0, b0, o0), (w1, b1, o1) = self.start, (time.perf_counter(), _busy_seconds(), _own_seconds())
        wall, own = w1 - w0, o1 - o0
        use = {"wall_s": wall, "own_cores": own / wall}
        if b0 is not None and b1 is not None:
            use["other_processes_cores"] = max(0.0, (b1 - b0) - own) / wall
        return {"load_average_1min": {"before": self.load_before, "after": os.getloadavg()[0]}, "cpu_use": use}


def thread_counts() -> dict:
    """The threads each library uses: PyTorch's intra-op pool, ``OPENBLAS_NUM_THREADS``, and NumPy's
    BLAS as ``threadpoolctl`` reports it (when installed)."""
    import torch
    info = {"torch": torch.get_num_threads(), "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture")}
                        for p in threadpool_info()]
    except ImportError:
        pass
    return info
