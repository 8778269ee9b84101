"""Data parallelism on threads: a batch computed as shards, one thread each (chapter 8).

NumPy lets go of Python's global lock inside its array operations and matrix products, so Python
threads that run the layers on different images keep several cores busy. :class:`DataParallel` does
with threads what ``torch.nn.DataParallel`` does with devices: it scatters each batch into shards, runs
a replica of the model on each (:meth:`lenet_core.layers.Layer.replicate`: the model's own parameter
arrays, its own caches, gradients and scratch space), and gathers the outputs in order; its backward
pass sums the replicas' gradients into the model's.

Two choices make the numbers independent of the machine:

- the split is fixed (``shards``, 2 by default) whatever the number of threads; with one thread the
  shards simply run one after the other, and give the same numbers, bit for bit;
- while a DataParallel is open, BLAS (OpenBLAS, under NumPy's matrix products) runs one thread per
  caller, so the cores are shared out by shard and no product depends on the thread count.

The gradient is the batch's own: the loss's gradient rows are already divided by the whole batch's
size (``(p - t) / N``), so the shards' gradients add up to it; only the order of the floating-point
additions differs from one pass over the whole batch.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .layers import Layer, all_layers

__all__ = ["DataParallel", "SHARDS", "default_threads"]

#: shards per batch: one per core of a 2-core machine; the results do not depend on the thread count
SHARDS = 2

_blas = None


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries loaded in this process (looked up once)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def default_threads() -> int:
    """Threads a :class:`DataParallel` uses by default: the cores this process may run on, at most as
    many as BLAS is allowed (``OPENBLAS_NUM_THREADS=1`` gives one: the shards then run in turn)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    blas = [info["num_threads"] for info in _blas_controller().info()]
    return max(1, min([cores] + blas))


class DataParallel:
    """Run ``model`` on ``shards`` parts of every batch at once, in ``threads`` threads. Chapter 8.

    ``forward(x)`` (N, ...) -> the model's output for all N images, in order; ``backward(dout)`` fills
    ``model``'s gradients with the sum of the shards' (what ``model.backward`` would give, up to the
    order of additions) and returns ``None``. A batch of n < ``shards`` images has n shards. Use it as a
    context manager: the threads and the one-thread BLAS live inside the ``with`` block::

        with DataParallel(model) as net:
            loss = loss_fn(net.forward(x), y)
            net.backward(loss_fn.backward())
            optimizer.step(model.gradients())

    The replicas follow the model's flags (:func:`~lenet_core.layers.input_grad`,
    :func:`~lenet_core.layers.no_grad`) as they are at each ``forward``.
    """

    def __init__(self, model: Layer, shards: int = SHARDS, threads: int | None = None):
        if not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be a positive integer, got {shards!r}")
        self.model, self.shards = model, shards
        self.threads = min(shards, default_threads() if threads is None else max(1, int(threads)))
        self.replicas = [model] + [model.replicate() for _ in range(shards - 1)]
        self._pool = self._limits = self._slices = None

    def __enter__(self) -> "DataParallel":
        self._limits = _blas_controller().limit(limits=1)
        if self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="lenet-shard")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self._limits.restore_original_limits()
        self._pool = self._limits = None

    def _run(self, method: str, parts: list) -> list:
        """``replica.<method>(part)`` for every shard: the first in this thread, the others in the pool
        (or, with one thread, in turn); the results in shard order."""
        if self._limits is None:
            raise RuntimeError("DataParallel runs inside a `with` block (it starts its threads there)")
        calls = [(getattr(replica, method), part) for replica, part in zip(self.replicas, parts)]
        if self._pool is None:
            return [call(part) for call, part in calls]
        futures = [self._pool.submit(call, part) for call, part in calls[1:]]
        first = calls[0][0](calls[0][1])
        return [first] + [future.result() for future in futures]

    def forward(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        count = max(1, min(self.shards, n))
        bounds = [n * i // count for i in range(count + 1)]
        self._slices = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
        originals = all_layers(self.model)
        for replica in self.replicas[1:count]:
            for source, layer in zip(originals, all_layers(replica)):
                layer.need_input_grad, layer.need_backward = source.need_input_grad, source.need_backward
        outputs = self._run("forward", [x[s] for s in self._slices])
        return outputs[0] if count == 1 else np.concatenate(outputs)

    def backward(self, dout: np.ndarray) -> None:
        if self._slices is None:
            raise RuntimeError("DataParallel: backward called before forward")
        self._run("backward", [dout[s] for s in self._slices])
        grads = self.model.grads
        for replica in self.replicas[1:len(self._slices)]:
            for name, g in replica.grads.items():
                grads[name] += g
