"""Time training epochs of the scratch LeNet-5 against a lean PyTorch loop, interleaved, in one process.

The yardstick is the training loop a PyTorch user writes (:func:`lean_torch_epoch`): the same LeNet-5
(:class:`lenet_core.twin.TorchLeNet5`), the training images normalised once into one float32 tensor,
and per epoch one ``torch.randperm``, then for each batch: index, forward, cross-entropy, ``zero_grad``,
backward, SGD step with Nesterov momentum. Nothing else: no running loss or accuracy, no checks.

Against it, on all 60,000 MNIST training images, at batch 64 and 256, the script times

- ``cli``: the command line's epoch, ``python -m lenet_core train --epochs 1 --validation 0
  --no-checkpoint --quiet`` run in this process (its own recipe and data path: uint8 digits prepared
  batch by batch, running loss and accuracy, divergence check); the time is the epoch's ``seconds``
  in its ``--history`` (training only: loading MNIST and reading the test set are not timed);
- ``fit``: :func:`lenet_core.train.fit` on the same uint8 digits with the same optimizer settings;
- ``twin``: :func:`lenet_core.twin.fit_torch`, the twin's loop of chapter 8 (same batches and updates
  as ``fit``), to show what the twin's bookkeeping costs over the lean loop.

Every side uses the recipe of the command line: learning rate 0.05, Nesterov momentum 0.9, weight
decay 5e-4 (the schedule only changes the rate between epochs). The engines alternate within each
round, in an order that is reversed every other round, so that a busy spell of the shared machine hits
all of them; a ratio is the median over rounds of the ratio of the two epochs of one round. Inference
(the 10,000 test images in batches of 1,000) is timed the same way, interleaved.

The record states how loaded the machine was: the 1-minute load average before and after, and the CPU
time that other processes used while it ran (in cores, from ``/proc/stat``), plus the thread counts and
whether ``OPENBLAS_CORETYPE`` was set (``machine``).

    python -m benchmarks.bench_epoch              # writes results/bench_epoch.json
    python -m benchmarks.bench_epoch --quick --out /tmp/bench_epoch.json    # a smoke run (never to results/)

Speed is not a test: no test reads these numbers; the book and READMEs quote the record.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lenet_core import LeNet5
from lenet_core.__main__ import main as cli_main
from lenet_core.data import load_mnist, prepare
from lenet_core.records import write_record
from lenet_core.train import DEFAULT_RECIPE, fit, predict
from lenet_core.twin import fit_torch, recipe_optimizer, to_torch
from benchmarks.common import parse_args
from benchmarks.machine_load import LoadMeter, thread_counts

#: the command line's optimizer settings, for every side (constant rate within an epoch)
RECIPE = dict(optimizer="momentum", lr=DEFAULT_RECIPE["lr"], weight_decay=DEFAULT_RECIPE["weight_decay"],
              schedule="none", augment=0)


def lean_torch_epoch(net: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                     generator: torch.Generator) -> float:
    """One epoch of the lean PyTorch loop; returns its seconds.

    x: all training images, normalised once, (N, 1, 32, 32) float32; y: labels (N,) int64.
    """
    start = time.perf_counter()
    net.train()
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def cli_epoch(batch_size: int, data_dir, limit: int | None) -> float:
    """Seconds of one epoch of ``python -m lenet_core train``, run in this process (training time only)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["train", "--epochs", "1", "--batch-size", str(batch_size), "--validation", "0",
                "--no-checkpoint", "--quiet", "--out", str(Path(tmp) / "w.npz"),
                "--history", str(Path(tmp) / "h.json")]
        argv += ["--data", str(data_dir)] if data_dir else []
        argv += ["--limit", str(limit)] if limit else []
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli_main(argv)
        if code != 0:
            raise SystemExit(f"python -m lenet_core {' '.join(argv)} failed with exit code {code}")
        return json.loads((Path(tmp) / "h.json").read_text())["seconds"][0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per batch size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--data", default=None, help="MNIST folder (default: $LENET_MNIST_DIR or the cache)")
    args = parse_args(parser, argv, "bench_epoch.json", "2,000 images, 1 round: checks the code path")

    meter = LoadMeter()
    mnist = load_mnist(args.data)
    x, y = mnist.x_train, mnist.y_train                      # uint8, prepared batch by batch (as the CLI)
    x_test = prepare(mnist.x_test)
    repeats, limit = args.repeats, None
    if args.quick:
        limit, repeats = 2000, 1
        x, y, x_test = x[:limit], y[:limit], x_test[:1000]
    xt = torch.from_numpy(prepare(x))                        # the lean loop normalises once, as users do
    yt = torch.from_numpy(y.astype(np.int64))
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{len(x):,} training images, {repeats} interleaved rounds per batch size; "
          f"load average {meter.load_before:.1f}", flush=True)

    results = {}
    model = lean = None
    for batch_size in args.batch_sizes:
        model = LeNet5(seed=0)
        lean, twin = to_torch(model), to_torch(model)
        recipe = {**RECIPE, "batch_size": batch_size}
        opt_fit, _ = recipe_optimizer(model, 1, recipe)
        opt_lean, _ = recipe_optimizer(lean, 1, recipe)
        opt_twin, _ = recipe_optimizer(twin, 1, recipe)
        generator = torch.Generator().manual_seed(0)
        sides = {
            "lean_torch": lambda r: lean_torch_epoch(lean, opt_lean, xt, yt, batch_size, generator),
            "cli": lambda r: cli_epoch(batch_size, args.data, limit),
            "fit": lambda r: fit(model, x, y, epochs=1, batch_size=batch_size, optimizer=opt_fit, seed=r,
                                 quiet=True)["seconds"][0],
            "twin": lambda r: fit_torch(twin, x, y, epochs=1, recipe=recipe, optimizer=opt_twin,
                                        seed=r)["seconds"][0],
        }
        times = {name: [] for name in sides}
        for r in range(repeats):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                times[name].append(sides[name](r))
            print(f"  batch {batch_size}, round {r + 1}/{repeats}: "
                  + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in sides), flush=True)
        lean_s = times["lean_torch"]
        row = {f"{name}_s": statistics.median(t) for name, t in times.items()}
        for name in ("cli", "fit", "twin"):
            ratios = [a / b for a, b in zip(times[name], lean_s)]
            row[f"{name}_ratio"] = statistics.median(ratios)
            row[f"{name}_ratios"] = ratios
        row.update({f"{name}_all_s": t for name, t in times.items()})
        results[f"batch_{batch_size}"] = row
        print(f"batch {batch_size}: lean PyTorch {row['lean_torch_s']:.2f} s/epoch; CLI {row['cli_s']:.2f} s "
              f"(ratio {row['cli_ratio']:.2f}), fit {row['fit_s']:.2f} s (ratio {row['fit_ratio']:.2f}), "
              f"twin loop {row['twin_s']:.2f} s (ratio {row['twin_ratio']:.2f})", flush=True)

    xt_test = torch.from_numpy(x_test)

    def torch_predict():
        with torch.no_grad():
            return torch.cat([lean(xt_test[i:i + 1000]).argmax(dim=1) for i in range(0, len(xt_test), 1000)])

    lean.eval()
    ours, theirs = [], []
    for r in range(5 * repeats):                                   # interleaved, like the epochs
        for fn, times in ((lambda: predict(model, x_test, batch_size=1000), ours), (torch_predict, theirs)):
            start = time.perf_counter()
            fn()
            times.append(len(x_test) / (time.perf_counter() - start))
    results["inference_images_per_s"] = {
        "batch_size": 1000, "scratch": statistics.median(ours), "torch": statistics.median(theirs),
        "ratio": statistics.median([b / a for a, b in zip(ours, theirs)])}    # time ours / time torch
    results["threads"] = thread_counts()
    results.update(meter.report())
    results["quiet_machine"] = False
    results["note"] = ("2-core machine shared with other jobs: the engines alternate within each round; a ratio is "
                       "the median over rounds of (epoch time) / (lean PyTorch epoch time of the same round)")
    inf = results["inference_images_per_s"]
    print(f"inference (batches of 1000): scratch {inf['scratch']:,.0f} images/s, PyTorch {inf['torch']:,.0f} "
          f"images/s (time ratio {inf['ratio']:.2f}); load average {results['load_average_1min']['after']:.1f}; "
          f"other processes used {results['cpu_use'].get('other_processes_cores', float('nan')):.2f} cores")
    path = write_record(args.out, results, seed=0, quick=args.quick)
    print(f"record written to {path}")


if __name__ == "__main__":
    main()
