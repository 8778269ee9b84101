"""Time training epochs of the scratch LeNet-5 against its PyTorch twin, interleaved, in one process.

Both models see the real 60,000 MNIST training images, the same architecture, initial weights, batch
size and optimizer (SGD, Nesterov momentum 0.9, lr 0.05, constant), and run the same loop
(:func:`lenet_core.train.train_loop`, through ``fit`` and ``fit_torch``): gather and prepare the batch,
forward, cross-entropy, backward, update, count loss and correct predictions. Evaluation is not timed.
Both run at their default thread counts.

The machine may be shared, so the epochs are interleaved (scratch, PyTorch, scratch, PyTorch, ...):
a slow spell hits both, and the ratio is the median of the ratios of neighbouring epochs.

    python benchmarks/bench_epoch.py              # writes results/bench_epoch.json
    python benchmarks/bench_epoch.py --quick --out /tmp/bench_epoch.json    # a smoke run (never to results/)

Speed is not a test: no test reads these numbers; the book and READMEs quote the record.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from lenet_core import LeNet5
from lenet_core.data import load_mnist, prepare
from lenet_core.records import RECORDS_DIR, write_record
from lenet_core.train import fit, predict
from lenet_core.twin import fit_torch, recipe_optimizer, to_torch

#: the same settings on both sides: SGD with Nesterov momentum, constant learning rate, no weight decay
RECIPE = dict(optimizer="momentum", lr=0.05, weight_decay=0.0, schedule="none", augment=0)


def interleaved_epochs(x, y, batch_size: int, repeats: int, seed: int = 0):
    """``repeats`` pairs (scratch seconds, PyTorch seconds) of one epoch each, alternating engines.

    Each side keeps training the same model from epoch to epoch (as a real run does).
    """
    model = LeNet5(seed=seed)
    net = to_torch(model)
    recipe = {**RECIPE, "batch_size": batch_size}
    optimizer, _ = recipe_optimizer(model, repeats, recipe)
    torch_optimizer, _ = recipe_optimizer(net, repeats, recipe)
    pairs = []
    for r in range(repeats):
        ours = fit(model, x, y, epochs=1, batch_size=batch_size, optimizer=optimizer, seed=seed + r,
                   quiet=True)["seconds"][0]
        theirs = fit_torch(net, x, y, epochs=1, recipe=recipe, optimizer=torch_optimizer,
                           seed=seed + r)["seconds"][0]
        pairs.append((ours, theirs))
        print(f"  batch {batch_size}, pair {r + 1}/{repeats}: scratch {ours:.2f} s, PyTorch {theirs:.2f} s, "
              f"ratio {ours / theirs:.2f}", flush=True)
    return pairs, model, net


def throughput(fn, n: int, repeats: int = 3) -> float:
    """Images per second of ``fn()`` over ``n`` images: the best of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved epoch pairs per batch size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--quick", action="store_true", help="2,000 images, 1 pair: checks the code path")
    parser.add_argument("--out", default=None, help="record to write (default results/bench_epoch.json; "
                                                    "--quick needs --out outside results/)")
    parser.add_argument("--data", default=None, help="MNIST folder (default: $LENET_MNIST_DIR or the cache)")
    args = parser.parse_args(argv)
    out = args.out or str(RECORDS_DIR / "bench_epoch.json")
    if args.quick and args.out is None:
        parser.error("--quick runs write to a temporary --out, never to results/")

    mnist = load_mnist(args.data)
    x, y = mnist.x_train, mnist.y_train                      # uint8, prepared batch by batch (as the CLI)
    x_test = prepare(mnist.x_test)
    repeats = args.repeats
    if args.quick:
        x, y, x_test, repeats = x[:2000], y[:2000], x_test[:1000], 1
    load_before = os.getloadavg()
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{len(x):,} training images, {repeats} interleaved epoch pairs per batch size; "
          f"load average {load_before[0]:.1f}", flush=True)
    results = {}
    model = net = None
    for batch_size in args.batch_sizes:
        pairs, model, net = interleaved_epochs(x, y, batch_size, repeats)
        ours, theirs = [p[0] for p in pairs], [p[1] for p in pairs]
        ratios = [a / b for a, b in pairs]
        results[f"batch_{batch_size}"] = {
            "scratch_s": statistics.median(ours), "torch_s": statistics.median(theirs),
            "ratio": statistics.median(ratios), "scratch_all_s": ours, "torch_all_s": theirs, "ratios": ratios}
        row = results[f"batch_{batch_size}"]
        print(f"batch {batch_size}: scratch {row['scratch_s']:.2f} s/epoch, PyTorch {row['torch_s']:.2f} s/epoch, "
              f"ratio {row['ratio']:.2f}", flush=True)

    xt_test = torch.from_numpy(x_test)

    def torch_predict():
        with torch.no_grad():
            return torch.cat([net(xt_test[i:i + 1000]).argmax(dim=1) for i in range(0, len(xt_test), 1000)])

    results["inference_images_per_s"] = {
        "scratch": throughput(lambda: predict(model, x_test, batch_size=1000), len(x_test)),
        "torch": throughput(torch_predict, len(x_test))}
    load_after = os.getloadavg()
    results["threads"] = {"torch": torch.get_num_threads(),
                          "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    results["load_average_1min"] = {"before": load_before[0], "after": load_after[0]}
    results["quiet_machine"] = False
    results["note"] = ("measured on a 2-core machine shared with other jobs (not quiet): epochs interleaved, "
                       "ratio = median of the ratios of neighbouring epochs")
    print(f"inference (batches of 1000): scratch {results['inference_images_per_s']['scratch']:,.0f} images/s, "
          f"PyTorch {results['inference_images_per_s']['torch']:,.0f} images/s; "
          f"load average {load_after[0]:.1f}")
    path = write_record(out, results, seed=0, quick=args.quick)
    print(f"record written to {path}")


if __name__ == "__main__":
    main()
