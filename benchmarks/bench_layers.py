"""Per-layer profile of both engines: milliseconds per forward and backward pass of each layer of LeNet-5.

Each layer runs on the activations LeNet-5 really gives it (random prepared-digit-sized input), in
float32, in training mode: C1 skips its input gradient, as in ``fit``, and the PyTorch side computes
no gradient for the images either. The gradients fed to each backward pass are stored the way the
engine's own backward passes produce them (batch-last for the scratch engine, see
:mod:`lenet_core.functional`).

- scratch engine: ``layer.forward`` / ``layer.backward`` of :func:`lenet_core.LeNet5`, timed with
  ``time.perf_counter``, with one BLAS thread: the work of the whole batch on one core (in training,
  each of the two cores does half of it, :mod:`lenet_core.parallel`);
- PyTorch: the same layers of :class:`lenet_core.twin.TorchLeNet5` (``nn.Conv2d``, ``torch.tanh``, ...),
  each forward and each ``backward`` call inside a ``torch.profiler.record_function`` named after the
  layer, so that ``torch.profiler`` attributes the CPU time of every operation (autograd's included)
  to its layer; the figure is the median over the calls of each range's CPU time.

Each figure is the median over ``--repeats`` calls, measured round-robin over the layers, the two engines
alternating in blocks of a quarter of the repeats, so that a slow spell of the shared machine spreads over
all of them. (Alternating them layer by layer would not be fair to either: each library's threads keep
spinning for a while after their last operation and would take the cores from the other's.)

    python -m benchmarks.bench_layers          # writes results/bench_layers.json
    python -m benchmarks.bench_layers --quick --out /tmp/bench_layers.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch.profiler import ProfilerActivity, profile, record_function

from lenet_core import LeNet5
from lenet_core.layers import input_grad
from lenet_core.records import write_record
from lenet_core.twin import to_torch
from benchmarks.common import parse_args
from benchmarks.machine_load import LoadMeter, thread_counts


def _torch_layers(net):
    """The twin's layers under the scratch model's layer names, as functions of one tensor."""
    return {"C1": net.C1, "C1_tanh": torch.tanh, "S2": net.S2, "C3": net.C3, "C3_tanh": torch.tanh,
            "S4": net.S4, "C5": net.C5, "C5_tanh": torch.tanh, "flatten": lambda t: torch.flatten(t, 1),
            "F6": net.F6, "F6_tanh": torch.tanh, "OUT": net.OUT}


def profile_both(batch_size: int, repeats: int, seed: int = 0) -> tuple[dict, dict]:
    """``({layer: {"forward_ms", "backward_ms"}}, same for PyTorch)`` at ``batch_size``, plus ``"total"``."""
    rng = np.random.default_rng(seed)
    model = LeNet5(seed=seed)
    net = to_torch(model)
    torch_layers = _torch_layers(net)
    x = rng.standard_normal((batch_size, 1, 32, 32)).astype(np.float32)
    inputs, douts = {}, {}
    for name, layer in model.layers.items():            # each layer's real input, and a gradient for it
        inputs[name] = x
        x = layer.forward(x)
        douts[name] = np.empty_like(x)                 # stored like the layer's output (batch-last)
        douts[name][...] = rng.standard_normal(x.shape)
    t_in = {name: torch.from_numpy(np.ascontiguousarray(v)).requires_grad_(name != "C1")
            for name, v in inputs.items()}
    t_dout = {name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in douts.items()}
    ours = {name: ([], []) for name in model.layers}
    blocks = 4                                           # the engines alternate in blocks of repeats
    with input_grad(model, False), profile(activities=[ProfilerActivity.CPU]) as prof:
        for block in range(blocks):
            with threadpool_limits(1, "blas"):           # one core, as each shard runs in training
                for _ in range(repeats // blocks):
                    for name, layer in model.layers.items():
                        start = time.perf_counter()
                        layer.forward(inputs[name])
                        middle = time.perf_counter()
                        layer.backward(douts[name])
                        ours[name][0].append((middle - start) * 1e3)
                        ours[name][1].append((time.perf_counter() - middle) * 1e3)
            for _ in range(repeats // blocks):
                for name in model.layers:
                    with record_function(f"{name}|forward"):
                        out = torch_layers[name](t_in[name])
                    with record_function(f"{name}|backward"):
                        out.backward(t_dout[name])
                    t_in[name].grad = None
                    for p in net.parameters():
                        p.grad = None
    scratch = {name: {"forward_ms": statistics.median(f), "backward_ms": statistics.median(b)}
               for name, (f, b) in ours.items()}
    calls = {}                                         # (layer, "forward"/"backward") -> ms of every call
    for event in prof.events():
        if "|" in event.name and event.name.split("|")[0] in model.layers:
            calls.setdefault(tuple(event.name.split("|")), []).append(event.cpu_time_total / 1e3)   # us -> ms
    theirs = {name: {f"{kind}_ms": statistics.median(calls[name, kind]) for kind in ("forward", "backward")}
              for name in model.layers}
    for rows in (scratch, theirs):
        rows["total"] = {key: sum(r[key] for r in rows.values()) for key in ("forward_ms", "backward_ms")}
    return scratch, theirs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    args = parse_args(parser, argv, "bench_layers.json", "8 repeats: checks the code path")
    repeats = 8 if args.quick else args.repeats
    meter = LoadMeter()
    results = {}
    for batch_size in args.batch_sizes:
        scratch, theirs = profile_both(batch_size, repeats)
        results[f"batch_{batch_size}"] = {"scratch": scratch, "torch": theirs}
        print(f"batch {batch_size} (median of {repeats}; ms):        scratch fwd  bwd  |  PyTorch fwd  bwd")
        for name in scratch:
            s, t = scratch[name], theirs[name]
            print(f"  {name:<8} {s['forward_ms']:8.3f} {s['backward_ms']:8.3f}  |  "
                  f"{t['forward_ms']:8.3f} {t['backward_ms']:8.3f}")
    results.update(meter.report())
    results["threads"] = thread_counts()
    results["quiet_machine"] = False
    results["note"] = ("2-core machine shared with other jobs (not quiet); medians of round-robin timings "
                       "(scratch) and of torch.profiler's CPU time per call (PyTorch)")
    path = write_record(args.out, results, seed=0, quick=args.quick)
    print(f"record written to {path}")


if __name__ == "__main__":
    main()
