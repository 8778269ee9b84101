"""The measurements behind three choices of the engine: shards in processes, C1's windows unfolded
again, and the forward pass's bands. Everything runs with one BLAS thread per process, as it does in
training (:mod:`lenet_core.parallel`).

- ``shards``: one training step (forward, loss, backward) of a shard of LeNet-5, in milliseconds:
  alone; with a second shard running at the same time in a second thread of the same process; and
  with the second shard in a second process. Threads hand Python's global lock to each other at every
  NumPy call, processes do not; the gap is why :class:`lenet_core.parallel.DataParallel` forks.
- ``windows``: forward plus backward pass of C1 and C3 (as in training: C1 computes no input
  gradient), keeping the unfolded windows for the backward pass or unfolding them again there
  (:data:`lenet_core.functional.KEEP_WINDOWS_FROM`).
- ``forward_bands``: the forward pass of C1 and C3 for several :data:`~lenet_core.functional.FORWARD_BAND_BYTES`.
- ``predictions``: the logits of 1,024, 4,096 and 10,000 images in batches of 256 (what ``evaluate``
  does), with the two shards in turn in this process, with the second in a worker process (started
  for the call, as it would be), and as one pass over each batch with BLAS's default threads.

Each figure is the median over ``--repeats`` calls, at shards of 32 and 128 images (batches of 64 and
256 split in two).

    python -m benchmarks.bench_shards          # writes results/bench_shards.json
    python -m benchmarks.bench_shards --quick --out /tmp/bench_shards.json
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import threading
import time

import numpy as np
from threadpoolctl import threadpool_limits

from lenet_core import LeNet5, functional
from lenet_core.layers import input_grad, no_grad
from lenet_core.parallel import DataParallel
from lenet_core.losses import SoftmaxCrossEntropy
from lenet_core.records import write_record
from benchmarks.common import parse_args
from benchmarks.machine_load import LoadMeter


def _alternating_ms(ways: dict, repeats: int, skip: int = 0) -> dict:
    """Median milliseconds of each function of ``ways``, the functions called in turn, round after
    round; the first ``skip`` rounds are not counted."""
    times = {name: [] for name in ways}
    for _ in range(skip + repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t[skip:]) * 1e3 for name, t in times.items()}


def _median_ms(fn, repeats: int) -> float:
    return _alternating_ms({"fn": fn}, repeats)["fn"]


def _training_step(n: int, seed: int):
    """A function that runs one forward, loss and backward pass of LeNet-5 on n fixed random images."""
    rng = np.random.default_rng(seed)
    model = LeNet5(seed=seed)
    x = rng.standard_normal((n, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, n)
    loss_fn = SoftmaxCrossEntropy()

    def step():
        with input_grad(model, False):
            loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
    step()                                                          # the scratch buffers, once
    return step


def _in_process(conn, n, repeats, start):
    with threadpool_limits(1, "blas"):
        step = _training_step(n, seed=1)
        start.wait()
        conn.send(_median_ms(step, repeats))
    conn.close()


def shards(n: int, repeats: int) -> dict:
    """Milliseconds per step of one shard of n images: alone, beside a thread, beside a process."""
    step = _training_step(n, seed=0)
    alone = _median_ms(step, repeats)
    other = _training_step(n, seed=1)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("other", _median_ms(other, repeats)))
    thread.start()
    with_thread = _median_ms(step, repeats)
    thread.join()
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    mine, theirs = context.Pipe()
    process = context.Process(target=_in_process, args=(theirs, n, repeats, start))
    process.start()
    start.wait()
    with_process = _median_ms(step, repeats)
    other_process = mine.recv()
    process.join()
    return {"alone_ms": alone, "beside_a_thread_ms": with_thread, "the_thread_ms": result["other"],
            "beside_a_process_ms": with_process, "the_process_ms": other_process}


def _conv_layer(n: int, in_channels: int, size: int, out_channels: int, input_grad_needed: bool):
    rng = np.random.default_rng(0)
    layer = LeNet5(seed=0)["C1" if in_channels == 1 else "C3"]
    layer.need_input_grad = input_grad_needed
    x = functional.new_batch_last((n, in_channels, size, size), np.float32)
    x[...] = rng.standard_normal(x.shape)
    dout = functional.new_batch_last((n, out_channels, size - 4, size - 4), np.float32)
    dout[...] = rng.standard_normal(dout.shape)
    return layer, x, dout


LAYERS = {"C1": (1, 32, 6, False), "C3": (6, 14, 16, True)}


@contextlib.contextmanager
def _setting(name: str, value):
    """``lenet_core.functional.<name>`` set to ``value`` within the block."""
    saved = getattr(functional, name)
    setattr(functional, name, value)
    try:
        yield
    finally:
        setattr(functional, name, saved)


def windows(n: int, repeats: int) -> dict:
    """ms of forward + backward of C1 and C3, windows kept or unfolded again (the two alternate)."""
    rows = {}
    for name, spec in LAYERS.items():
        layer, x, dout = _conv_layer(n, *spec)

        def both(threshold):
            with _setting("KEEP_WINDOWS_FROM", threshold):
                layer.forward(x)
                layer.backward(dout)
        rows[name] = _alternating_ms({"kept_ms": lambda: both(1), "unfolded_again_ms": lambda: both(1 << 30)},
                                     repeats, skip=1)                           # not the first round
    return rows


BAND_SIZES = {"one_band": 1 << 40, "2_MiB": 2 << 20, "512_KiB": 512 << 10, "128_KiB": 128 << 10}


def forward_bands(n: int, repeats: int) -> dict:
    """ms of the forward pass of C1 and C3 (training: windows kept as the layer keeps them) per band size."""
    rows = {}
    for name, spec in LAYERS.items():
        layer, x, _ = _conv_layer(n, *spec)
        rows[name] = {}
        for label, size in BAND_SIZES.items():
            with _setting("FORWARD_BAND_BYTES", size):
                layer.forward(x)
                rows[name][f"{label}_ms"] = _median_ms(lambda: layer.forward(x), repeats)
    return rows


def predictions(repeats: int, sizes=(1024, 4096, 10_000)) -> dict:
    """ms for the logits of n images in batches of 256, per way of computing them (median of repeats)."""
    model = LeNet5(seed=0)

    def sharded(x, workers):
        with no_grad(model), DataParallel(model, workers=workers) as net:
            return [net.forward(x[i:i + 256]) for i in range(0, len(x), 256)]

    def one_pass(x):                                               # with BLAS's default threads
        with no_grad(model):
            return [model.forward(x[i:i + 256]) for i in range(0, len(x), 256)]

    rows = {}
    for n in sizes:
        x = np.random.default_rng(0).standard_normal((n, 1, 32, 32)).astype(np.float32)
        rows[f"images_{n}"] = _alternating_ms({"shards_in_turn_ms": lambda: sharded(x, 0),
                                               "shard_in_a_worker_ms": lambda: sharded(x, 1),
                                               "one_pass_ms": lambda: one_pass(x)}, repeats)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--shard-sizes", type=int, nargs="+", default=[32, 128])
    args = parse_args(parser, argv, "bench_shards.json", "5 repeats at 8 images: checks the code path")
    repeats, sizes = (5, [8]) if args.quick else (args.repeats, args.shard_sizes)
    meter = LoadMeter()
    results = {}
    with threadpool_limits(1, "blas"):
        for n in sizes:
            row = {"shards": shards(n, repeats), "windows": windows(n, repeats),
                   "forward_bands": forward_bands(n, repeats)}
            results[f"shard_{n}"] = row
            s = row["shards"]
            print(f"shard of {n} images, one training step: alone {s['alone_ms']:.2f} ms, beside a thread "
                  f"{s['beside_a_thread_ms']:.2f} ms, beside a process {s['beside_a_process_ms']:.2f} ms")
            for name, w in row["windows"].items():
                print(f"  {name} forward + backward: windows kept {w['kept_ms']:.3f} ms, unfolded again "
                      f"{w['unfolded_again_ms']:.3f} ms; forward by band size: "
                      + ", ".join(f"{k[:-3]} {v:.3f}" for k, v in row["forward_bands"][name].items()))
    prediction_rows = predictions(3 if args.quick else 9, (300,) if args.quick else (1024, 4096, 10_000))
    results["predictions"] = prediction_rows
    for size, row in prediction_rows.items():
        print(f"logits of {size.split('_')[1]} images: shards in turn {row['shards_in_turn_ms']:.1f} ms, "
              f"second shard in a worker {row['shard_in_a_worker_ms']:.1f} ms, one pass "
              f"{row['one_pass_ms']:.1f} ms")
    results.update(meter.report())
    results["quiet_machine"] = False
    results["note"] = "medians of --repeats calls, one BLAS thread per process"
    path = write_record(args.out, results, seed=0, quick=args.quick)
    print(f"record written to {path}")


if __name__ == "__main__":
    main()
