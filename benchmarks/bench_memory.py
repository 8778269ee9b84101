"""Peak memory (max resident set size) of a training run from the command line.

Runs ``python -m lenet_core train --epochs 10`` (the default recipe, all 60,000 images) as a child
process and reads its peak resident memory from the operating system (``getrusage`` of the children).

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
from pathlib import Path

from lenet_core.records import RECORDS_DIR, write_record
from benchmarks.machine_load import LoadMeter

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 2,000 images: checks the code path")
    parser.add_argument("--out", default=None, help="default results/bench_memory.json")
    args = parser.parse_args(argv)
    if args.quick and args.out is None:
        parser.error("--quick runs write to a temporary --out, never to results/")
    meter = LoadMeter()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "lenet_core", "train", "--epochs", str(1 if args.quick else args.epochs),
                   "--quiet", "--out", str(Path(tmp) / "weights.npz")]
        if args.quick:
            command += ["--limit", "2000"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        run = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode}):\n{run.stderr[-2000:]}")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024       # KiB on Linux
    shown = " ".join(["python", *command[1:4], *command[4:6], *(["--limit", "2000"] if args.quick else [])])
    print(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "")
    print(f"peak memory of `{shown}`: {peak_mib:.0f} MiB")
    results = {"peak_mib": peak_mib, "train_command": shown, "last_line": run.stdout.strip().splitlines()[-1],
               **meter.report(), "quiet_machine": False}
    path = write_record(args.out or RECORDS_DIR / "bench_memory.json", results, quick=args.quick)
    print(f"record written to {path}")


if __name__ == "__main__":
    main()
