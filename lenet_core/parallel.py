"""Data parallelism: a batch computed as shards, at once on several cores (chapter 8).

:class:`DataParallel` does with processes what ``torch.nn.DataParallel`` does with devices: it
scatters each batch into shards, runs the model on every shard at once, and gathers the outputs in
order; its backward pass sums the shards' gradients into the model's. ``fit`` trains through it;
``evaluate`` and ``predict`` use it without workers (for forward passes alone, sending the images to
a worker costs more than it saves on a few thousand images, and saves little on more). Shard 0 runs in this process;
given the cores, each other shard in a worker process forked from it, which keeps a copy of the
model (without them, in this process too, one after the other).

Why processes and not threads: NumPy lets go of Python's global lock inside each array operation, but
a training step is hundreds of small operations, and two threads hand the lock to each other at every
one of them, so each thread's shard takes longer than it takes alone, while two processes hardly
slow each other down (``benchmarks/bench_shards.py``: ``shards.beside_a_thread_ms`` and
``shards.beside_a_process_ms`` against ``shards.alone_ms`` in ``results/bench_shards.json``).

What a worker gets, per batch: the parameters (through memory shared with it, copied in before every
forward pass), its shard of the images and later of dL/d(output) (through a pipe, as raw bytes), the
flags of :func:`~lenet_core.layers.input_grad` and :func:`~lenet_core.layers.no_grad`; it sends back
its outputs and, through the shared memory, its gradients. Nothing is pickled.

Two choices make the numbers independent of the machine:

- the split is fixed (``shards``, 2 by default) whatever the number of cores: with one core, or for a
  small batch, the shards run one after the other in this process and give the same numbers, bit for
  bit;
- while a DataParallel is open, BLAS (OpenBLAS, under NumPy's matrix products) runs one thread per
  process, so no product depends on the number of cores.

The gradient is the batch's own: the loss's gradient rows are already divided by the whole batch's
size (``(p - t) / N``), so the shards' gradients add up to it; only the order of the floating-point
additions differs from one pass over the whole batch.
"""

from __future__ import annotations

import json
import math
import mmap
import multiprocessing
import os
import signal
from contextlib import contextmanager

import numpy as np

from .layers import Layer, all_layers

__all__ = ["DataParallel", "SHARDS", "MIN_WORKER_BATCH", "default_workers"]

#: shards per batch: one per core of a 2-core machine; the results do not depend on the core count
SHARDS = 2

#: batches smaller than this run their shards in turn in this process: for so few images, the round
#: trip to a worker (two messages through a pipe per pass) is a large part of the work
MIN_WORKER_BATCH = 32

_blas = None
_open: list = []                                                   # the DataParallel blocks now open

#: the most memory one worker process held that it did not share with this process (MiB), measured
#: when it stopped (its scratch arrays only grow, so that is its peak); ``None`` before any worker
worker_private_mib = None


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries loaded in this process (looked up once)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def default_workers() -> int:
    """Worker processes a :class:`DataParallel` may use: the cores this process may run on, at most
    as many as BLAS is allowed threads (``OPENBLAS_NUM_THREADS=1`` gives one core), minus this
    process's own; 0 where processes cannot be forked, or not by this one (a daemonic process may not
    have children): the shards then run in turn."""
    if "fork" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    blas = [info["num_threads"] for info in _blas_controller().info()]
    return max(0, min([cores, _cpu_quota()] + blas) - 1)


def _cpu_quota(path="/sys/fs/cgroup/cpu.max") -> float:
    """The cores a container's CPU quota allows (cgroup v2, e.g. on Binder), or infinity if unlimited
    or unknown: a quota of one core makes a second process wait, however many cores there are."""
    try:
        quota, period = open(path).read().split()[:2]
        return math.inf if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return math.inf


class _SharedArrays:
    """Arrays of the given shapes and dtypes in one block of memory shared with forked processes."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        offsets, size = {}, 0
        for name, a in arrays.items():
            offsets[name] = size
            size += -(-a.nbytes // 64) * 64                        # each array on its own cache lines
        self._memory = mmap.mmap(-1, max(size, 1))                 # anonymous and shared: fork keeps it
        self.arrays = {name: np.frombuffer(self._memory, a.dtype, a.size, offsets[name]).reshape(a.shape)
                       for name, a in arrays.items()}


def _send_array(conn, header: dict, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    conn.send_bytes(json.dumps({**header, "shape": array.shape, "dtype": array.dtype.str}).encode())
    conn.send_bytes(memoryview(array).cast("B"))


def _receive(conn) -> tuple[dict, np.ndarray | None]:
    header = json.loads(conn.recv_bytes())
    if "error" in header:
        raise RuntimeError(f"DataParallel worker: {header['error']}")
    if "shape" not in header:
        return header, None
    data = conn.recv_bytes()                                      # copied into NumPy's own (aligned) memory
    return header, np.frombuffer(data, np.dtype(header["dtype"])).reshape(header["shape"]).copy()


def _private_mib() -> float | None:
    """Memory this process does not share with its parent (Linux's smaps_rollup), in MiB, or None."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith("Private_"))
    except OSError:
        return None
    return sum(int(v.split()[0]) for v in fields.values()) / 1024      # kB


def _flags(model: Layer) -> list[tuple[bool, bool]]:
    """``(need_input_grad, need_backward)`` of the model and of every layer in it (:func:`all_layers`)."""
    return [(layer.need_input_grad, layer.need_backward) for layer in all_layers(model)]


def _set_flags(model: Layer, flags) -> None:
    """Give the model and its layers the flags :func:`_flags` read from a model of the same structure."""
    for layer, (input_grad, backward) in zip(all_layers(model), flags):
        layer.need_input_grad, layer.need_backward = input_grad, backward


def _serve(conn, model: Layer, params: dict, grads: dict) -> None:
    """A worker's loop: forward and backward passes of ``model`` on the shards it is sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)                   # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)                  # not the parent's handler: end quietly
    _blas_controller().limit(limits=1)
    live = model.params
    while True:
        try:
            header, data = _receive(conn)
        except (EOFError, OSError):
            break                                                  # the parent is gone
        if header["op"] == "stop":
            conn.send_bytes(json.dumps({"private_mib": _private_mib()}).encode())
            break
        try:
            if header["op"] == "forward":
                _set_flags(model, header["flags"])
                for name, p in live.items():
                    p[...] = params[name]
                _send_array(conn, {}, model.forward(data))
            else:
                model.backward(data)
                for name, g in model.grads.items():
                    grads[name][...] = g
                conn.send_bytes(b"{}")
        except Exception as error:                                 # reported to the parent, raised there
            conn.send_bytes(json.dumps({"error": f"{type(error).__name__}: {error}"}).encode())
    conn.close()
    os._exit(0)


class _Worker:
    """One forked process that runs one shard (see :func:`_serve`)."""

    def __init__(self, model: Layer):
        self.params = _SharedArrays(model.params).arrays
        self.grads = _SharedArrays(model.params).arrays
        context = multiprocessing.get_context("fork")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, model, self.params, self.grads),
                                       daemon=True, name="lenet-shard")
        self.process.start()
        child.close()

    def forward(self, model: Layer, flags, x: np.ndarray) -> None:
        for name, p in model.params.items():
            self.params[name][...] = p
        self._send({"op": "forward", "flags": flags}, x)

    def backward(self, dout: np.ndarray) -> None:
        self._send({"op": "backward"}, dout)

    def _send(self, header: dict, array: np.ndarray) -> None:
        try:
            _send_array(self.conn, header, array)
        except OSError:
            raise RuntimeError(f"DataParallel: worker process {self.process.pid} has ended "
                               f"(exit code {self.process.exitcode})") from None

    def result(self) -> np.ndarray | None:
        try:
            return _receive(self.conn)[1]
        except (EOFError, OSError):
            raise RuntimeError(f"DataParallel: worker process {self.process.pid} ended unexpectedly") from None

    def stop(self) -> None:
        """Stop the process; note the memory it did not share with this one (:data:`worker_private_mib`)."""
        global worker_private_mib
        try:
            self.conn.send_bytes(json.dumps({"op": "stop"}).encode())
            private = json.loads(self.conn.recv_bytes()).get("private_mib")
            if private is not None:
                worker_private_mib = max(worker_private_mib or 0.0, private)
        except (OSError, EOFError, ValueError):
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


@contextmanager
def _collect(workers):
    """Yields a list that, after the block, holds every worker's answer (in order). The answers are
    read even when the block raises, so that no answer is left in a pipe; the block's error wins."""
    results = []
    try:
        yield results
    except BaseException:
        for worker in workers:
            try:
                worker.result()
            except RuntimeError:
                pass
        raise
    results.extend(worker.result() for worker in workers)


class DataParallel:
    """Run ``model`` on ``shards`` parts of every batch at once, on up to ``workers`` more cores.

    ``forward(x)`` (N, ...) -> the model's output for all N images, in order; ``backward(dout)`` fills
    ``model``'s gradients with the sum of the shards' (what ``model.backward`` would give, up to the
    order of additions) and returns ``None``. A batch of n < ``shards`` images has n shards. Use it as a
    context manager: the worker processes and the one-thread BLAS live inside the ``with`` block::

        with DataParallel(model) as net:
            loss = loss_fn(net.forward(x), y)
            net.backward(loss_fn.backward())
            optimizer.step(model.gradients())

    The shards follow the model's flags (:func:`~lenet_core.layers.input_grad`,
    :func:`~lenet_core.layers.no_grad`) as they are at each ``forward``.

    Explained in chapter 8 (book/ch08_pytorch_twin.ipynb).
    """

    def __init__(self, model: Layer, shards: int = SHARDS, workers: int | None = None):
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
            raise ValueError(f"shards must be a positive integer, got {shards!r}")
        self.model, self.shards = model, shards
        if workers is None:                      # inside another DataParallel (validation while training):
            workers = _open[-1].max_workers if _open else default_workers()       # the same cores
        self.max_workers = min(shards - 1, max(0, int(workers)))
        self.replicas = [model]                                    # for shards run in this process
        self._workers: list[_Worker] = []
        self._limits = self._slices = self._remote = None

    def __enter__(self) -> "DataParallel":
        self._limits = _blas_controller().limit(limits=1)
        _open.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _open.remove(self)
        for worker in self._workers:
            worker.stop()
        self._workers = []
        self._limits.restore_original_limits()
        self._limits = None

    def _local(self, i: int) -> Layer:
        """The model copy that runs shard ``i`` in this process (shard 0: the model itself)."""
        while len(self.replicas) <= i:
            self.replicas.append(self.model.replicate())
        return self.replicas[i]

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._limits is None:
            raise RuntimeError("DataParallel runs inside a `with` block (it starts its workers there)")
        n = len(x)
        count = max(1, min(self.shards, n))
        bounds = [n * i // count for i in range(count + 1)]
        self._slices = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
        remote = min(count - 1, self.max_workers) if n >= MIN_WORKER_BATCH else 0
        while len(self._workers) < remote:
            try:
                self._workers.append(_Worker(self.model))
            except OSError:                      # no process to be had (a process limit): run in turn,
                self.max_workers = remote = len(self._workers)          # which gives the same numbers
        self._remote = remote
        workers, flags = self._workers[:remote], _flags(self.model)
        for worker, s in zip(workers, self._slices[count - remote:]):
            worker.forward(self.model, flags, x[s])
        for i in range(1, count - remote):                       # copies in this process follow the model
            _set_flags(self._local(i), flags)
        with _collect(workers) as results:
            outputs = [self._local(i).forward(x[s]) for i, s in enumerate(self._slices[:count - remote])]
        outputs += results
        return outputs[0] if count == 1 else np.concatenate(outputs)

    def backward(self, dout: np.ndarray) -> None:
        if self._slices is None:
            raise RuntimeError("DataParallel: backward called before forward")
        count, remote = len(self._slices), self._remote
        workers = self._workers[:remote]
        for worker, s in zip(workers, self._slices[count - remote:]):
            worker.backward(dout[s])
        with _collect(workers):
            for i, s in enumerate(self._slices[:count - remote]):
                self._local(i).backward(dout[s])
        grads = self.model.grads                                 # shard 0's, then the others', in order
        for other in [self.replicas[i].grads for i in range(1, count - remote)] + [w.grads for w in workers]:
            for name, g in other.items():
                grads[name] += g
