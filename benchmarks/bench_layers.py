"""Per-layer profile of the scratch LeNet-5: milliseconds per forward and backward pass of each layer.

Each layer runs on the activations LeNet-5 really gives it (random prepared-digit-sized input), in
float32, training mode (C1 skips its input gradient, as in ``fit``); the figure is the median of
``--repeats`` timed calls, measured round-robin over the layers so that a slow spell of a shared machine
spreads over all of them.

    python benchmarks/bench_layers.py          # writes results/bench_layers.json
    python benchmarks/bench_layers.py --quick --out /tmp/bench_layers.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from lenet_core import LeNet5
from lenet_core.layers import input_grad
from lenet_core.records import RECORDS_DIR, write_record


def profile(batch_size: int, repeats: int, seed: int = 0) -> dict:
    """``{layer: {"forward_ms": median, "backward_ms": median}}`` at ``batch_size``, plus ``"total"``."""
    rng = np.random.default_rng(seed)
    model = LeNet5(seed=seed)
    x = rng.standard_normal((batch_size, 1, 32, 32)).astype(np.float32)
    inputs, douts = {}, {}
    for name, layer in model.layers.items():            # each layer's real input, and a gradient for it
        inputs[name] = x
        x = layer.forward(x)
        douts[name] = rng.standard_normal(x.shape).astype(np.float32)
    times = {name: ([], []) for name in model.layers}
    with input_grad(model, False):
        for _ in range(repeats):
            for name, layer in model.layers.items():
                start = time.perf_counter()
                layer.forward(inputs[name])
                middle = time.perf_counter()
                layer.backward(douts[name])
                times[name][0].append((middle - start) * 1e3)
                times[name][1].append((time.perf_counter() - middle) * 1e3)
    result = {name: {"forward_ms": statistics.median(f), "backward_ms": statistics.median(b)}
              for name, (f, b) in times.items()}
    result["total"] = {key: sum(r[key] for r in result.values()) for key in ("forward_ms", "backward_ms")}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--quick", action="store_true", help="10 repeats: checks the code path")
    parser.add_argument("--out", default=None, help="default results/bench_layers.json")
    args = parser.parse_args(argv)
    if args.quick and args.out is None:
        parser.error("--quick runs write to a temporary --out, never to results/")
    repeats = 10 if args.quick else args.repeats
    load = os.getloadavg()[0]
    results = {}
    for batch_size in args.batch_sizes:
        rows = results[f"batch_{batch_size}"] = profile(batch_size, repeats)
        print(f"batch {batch_size} (median of {repeats}):")
        for name, row in rows.items():
            print(f"  {name:<8} forward {row['forward_ms']:6.3f} ms  backward {row['backward_ms']:6.3f} ms")
    results["load_average_1min"] = {"before": load, "after": os.getloadavg()[0]}
    results["quiet_machine"] = False
    results["note"] = "2-core machine shared with other jobs (not quiet); medians of round-robin timings"
    path = write_record(args.out or RECORDS_DIR / "bench_layers.json", results, seed=0, quick=args.quick)
    print(f"record written to {path}")


if __name__ == "__main__":
    main()
