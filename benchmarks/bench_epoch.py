"""Time one training epoch of the scratch LeNet-5 against its PyTorch twin, in one process.

Both models see the real 60,000 MNIST training images (already prepared and in memory), the same
architecture, batch size and optimizer (SGD, Nesterov momentum 0.9, lr 0.05), and do the same work
per mini-batch: gather the batch, forward, cross-entropy, backward, update, and count the loss and
correct predictions. Evaluation is not timed. PyTorch runs at its default thread count.

    flock /tmp/lenet-cpu.lock python benchmarks/bench_epoch.py --epochs 3

prints, for each batch size, the median seconds per epoch of both and their ratio; then inference
throughput on the 10,000 test images and the process's peak memory (max RSS). Speed is not a test:
the figures depend on the machine and on whatever else runs on it; benchmarks/README.md keeps the
latest ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from lenet_core import LeNet5  # noqa: E402
from lenet_core.data import load_mnist, prepare  # noqa: E402
from lenet_core.train import fit, predict  # noqa: E402
from lenet_core.twin import fit_torch, recipe_optimizer, to_torch  # noqa: E402

#: the same settings on both sides: SGD with Nesterov momentum, constant learning rate, no weight decay
RECIPE = dict(optimizer="momentum", lr=0.05, weight_decay=0.0, schedule="none", augment=0)


def scratch_epochs(x, y, batch_size, epochs, seed=0):
    """Seconds of each of ``epochs`` training epochs of the scratch model (fit's own timer)."""
    model = LeNet5(seed=seed)
    optimizer, _ = recipe_optimizer(model, epochs, {**RECIPE, "batch_size": batch_size})
    history = fit(model, x, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, seed=seed, quiet=True)
    return history["seconds"], model


def torch_epochs(x, y, batch_size, epochs, seed=0):
    """Seconds of each of ``epochs`` training epochs of :class:`TorchLeNet5`, from the same initial
    weights, batches and settings (:func:`lenet_core.twin.fit_torch`, the same loop as ``fit``)."""
    net = to_torch(LeNet5(seed=seed))
    history = fit_torch(net, x, y, epochs=epochs, recipe={**RECIPE, "batch_size": batch_size}, seed=seed)
    return history["seconds"], net


def throughput(fn, n, repeats=3):
    """Images per second of ``fn()`` over ``n`` images: the best of ``repeats`` runs."""
    best = min(_timed(fn) for _ in range(repeats))
    return n / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per model and batch size (median)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--data", default=None, help="MNIST folder (default: $LENET_MNIST_DIR or the cache)")
    args = parser.parse_args(argv)

    mnist = load_mnist(args.data)
    x, y = prepare(mnist.x_train), mnist.y_train
    x_test = prepare(mnist.x_test)
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{len(x):,} training images, median of {args.epochs} epochs")
    print(f"{'batch':>5}  {'scratch s/epoch':>15}  {'torch s/epoch':>13}  {'ratio':>5}")
    for batch_size in args.batch_sizes:
        ours, model = scratch_epochs(x, y, batch_size, args.epochs)
        theirs, net = torch_epochs(x, y, batch_size, args.epochs)
        m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
        print(f"{batch_size:>5}  {m_ours:>15.2f}  {m_theirs:>13.2f}  {m_ours / m_theirs:>5.2f}   "
              f"(scratch {', '.join(f'{s:.2f}' for s in ours)}; torch {', '.join(f'{s:.2f}' for s in theirs)})",
              flush=True)

    xt_test = torch.from_numpy(x_test)

    def torch_predict():
        with torch.no_grad():
            return torch.cat([net(xt_test[i:i + 1000]).argmax(dim=1) for i in range(0, len(xt_test), 1000)])

    ours = throughput(lambda: predict(model, x_test, batch_size=1000), len(x_test))
    theirs = throughput(torch_predict, len(x_test))
    print(f"inference on {len(x_test):,} test images (batches of 1000): scratch {ours:,.0f} images/s, "
          f"torch {theirs:,.0f} images/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # KiB on Linux
    print(f"peak memory of this process (max RSS, both models and the data): {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
