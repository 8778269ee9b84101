"""Peak memory of a training run from the command line, worker process included.

Runs ``python -m lenet_core train --epochs 10`` (the default recipe, all 60,000 images) as a child
process. The command line forks a worker process for the second shard of every batch
(:mod:`lenet_core.parallel`), which shares most of its memory with its parent, so resident sizes
cannot simply be added. The record gives:

- ``peak_mib``: the peak of the two processes' memory together, counted as Linux's proportional set
  size (PSS: every shared page split between the processes that share it), sampled every 50 ms
  from ``/proc/<pid>/smaps_rollup``; this is what the run takes from the machine;
- ``max_rss_mib``: the largest resident set of a single process (``getrusage`` of the children),
  for comparison with the earlier records;
- ``last_line``: what the command line itself reports (its own peak resident set, plus the memory its
  worker held that it did not share).

    python -m benchmarks.bench_memory          # writes results/bench_memory.json
    python -m benchmarks.bench_memory --quick --out /tmp/bench_memory.json
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lenet_core.records import write_record
from benchmarks.common import parse_args
from benchmarks.machine_load import LoadMeter

REPO = Path(__file__).resolve().parents[1]


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (from ``/proc/<pid>/stat``)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def _pss_kib(pid: int) -> int:
    """The proportional set size of a process in KiB (0 once it has ended)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parse_args(parser, argv, "bench_memory.json", "1 epoch on 2,000 images: checks the code path")
    meter = LoadMeter()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "lenet_core", "train", "--epochs", str(1 if args.quick else args.epochs),
                   "--quiet", "--out", str(Path(tmp) / "weights.npz")]
        if args.quick:
            command += ["--limit", "2000"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            process = subprocess.Popen(command, cwd=tmp, env=env, stdout=out, stderr=err, text=True)
            peak_kib = 0
            while process.poll() is None:
                peak_kib = max(peak_kib, sum(_pss_kib(pid) for pid in process_tree(process.pid)))
                time.sleep(0.05)
            out.seek(0), err.seek(0)
            run = subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode}):\n{run.stderr[-2000:]}")
    max_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024       # KiB on Linux
    peak_mib = peak_kib / 1024
    shown = " ".join(["python", *command[1:4], *command[4:6], *(["--limit", "2000"] if args.quick else [])])
    print(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "")
    print(f"peak memory of `{shown}` and its worker (PSS): {peak_mib:.0f} MiB; largest single process "
          f"(max RSS): {max_rss_mib:.0f} MiB")
    results = {"peak_mib": peak_mib, "measure": "peak of the summed PSS of the process and its children, "
               "sampled every 50 ms", "max_rss_mib": max_rss_mib, "train_command": shown,
               "last_line": run.stdout.strip().splitlines()[-1], **meter.report(), "quiet_machine": False}
    path = write_record(args.out, results, quick=args.quick)
    print(f"record written to {path}")


if __name__ == "__main__":
    main()
