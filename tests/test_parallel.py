"""DataParallel: shards of a batch, in this process or in a forked worker, give the batch's numbers."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from benchmarks.bench_memory import process_tree
from lenet_core import LeNet5, parallel
from lenet_core.__main__ import EXIT_CODES
from lenet_core.checkpoint import load_checkpoint
from lenet_core.data import load_mnist
from lenet_core.layers import input_grad, no_grad
from lenet_core.losses import SoftmaxCrossEntropy
from lenet_core.optim import make_optimizer
from lenet_core.parallel import MIN_WORKER_BATCH, DataParallel
from lenet_core.train import evaluate, fit, predict

needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="worker processes are forked")


def images(rng, n, dtype=np.float32):
    return rng.standard_normal((n, 1, 32, 32)).astype(dtype), rng.integers(0, 10, n)


def step(net, model, x, y, loss_fn):
    """One forward and backward pass through ``net``; returns (outputs, copies of the gradients)."""
    out = net.forward(x)
    loss_fn.forward(out, y)
    net.backward(loss_fn.backward())
    return out, {k: g.copy() for k, g in model.grads.items()}


def test_replicate_shares_parameters_not_state():
    model = LeNet5(seed=0)
    twin = model.replicate()
    for name, layer in model.layers.items():
        copy = twin[name]
        assert copy is not layer and copy.params is layer.params
        assert all(copy.params[k] is p for k, p in layer.params.items())
        assert copy.grads is not layer.grads
    assert twin["C1"].workspace is not model["C1"].workspace
    model.forward(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        twin["OUT"].backward(np.zeros((2, 10), np.float32))


@pytest.mark.parametrize("n", [1, 2, 37])
def test_shards_add_up_to_the_batch_in_float64(rng, n):
    """Three shards in this process: the outputs and gradients of one pass over the whole batch."""
    model = LeNet5(seed=1).astype(np.float64)
    x, y = images(rng, n, np.float64)
    loss_fn = SoftmaxCrossEntropy()
    whole = model.forward(x)
    loss_fn.forward(whole, y)
    model.backward(loss_fn.backward())
    reference = {k: g.copy() for k, g in model.grads.items()}
    with DataParallel(model, shards=3, workers=0) as net:
        out, grads = step(net, model, x, y, loss_fn)
    np.testing.assert_allclose(out, whole, rtol=1e-13, atol=1e-13)
    for name, g in reference.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-12, atol=1e-14, err_msg=name)


@needs_fork
def test_a_worker_gives_the_numbers_of_shards_run_in_turn(rng):
    """Bit for bit, over two steps (the second after an optimizer step, so the worker must get the
    new parameters), in training and under no_grad."""
    x, y = images(rng, 2 * MIN_WORKER_BATCH)
    results = []
    for workers in (0, 1):
        model = LeNet5(seed=2)
        optimizer = make_optimizer("momentum", model.parameters(), 0.05, weight_decay=5e-4)
        loss_fn, run = SoftmaxCrossEntropy(), []
        with input_grad(model, False), DataParallel(model, workers=workers) as net:
            for _ in range(2):
                run.append(step(net, model, x, y, loss_fn))
                optimizer.step(model.gradients())
            assert len(net._workers) == workers
            with no_grad(model):
                run.append((net.forward(x), {}))
        results.append(run)
    for (out0, grads0), (out1, grads1) in zip(*results):
        assert np.array_equal(out0, out1)
        assert all(np.array_equal(grads0[k], grads1[k]) for k in grads0)


@needs_fork
def test_fit_with_a_worker_matches_fit_without(monkeypatch):
    mnist = load_mnist()
    x, y = mnist.x_train[:640], mnist.y_train[:640]
    weights = []
    for workers in (0, 1):
        monkeypatch.setattr(parallel, "default_workers", lambda: workers)
        model = LeNet5(seed=3)
        fit(model, x, y, epochs=1, batch_size=64, quiet=True)
        weights.append(model.state_dict())
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_predictions_never_start_a_worker(monkeypatch, rng):
    """Forward passes alone run their shards in turn, here (bench_shards' "predictions")."""
    def refuse(*args, **kwargs):
        raise AssertionError("a worker process was started")
    monkeypatch.setattr(parallel, "default_workers", lambda: 1)
    monkeypatch.setattr(parallel._Worker, "__init__", refuse)
    model = LeNet5(seed=3)
    x, y = images(rng, 600)
    labels = predict(model, x, batch_size=300)
    assert evaluate(model, x, y)[1] == pytest.approx(np.mean(labels == y))
    with no_grad(model):
        assert np.array_equal(labels, model.forward(x).argmax(axis=1))


@needs_fork
def test_a_failing_shard_raises_here_and_leaves_the_worker_usable(rng):
    model = LeNet5(seed=4)
    x, y = images(rng, MIN_WORKER_BATCH)
    loss_fn = SoftmaxCrossEntropy()
    with DataParallel(model, workers=1) as net:
        with pytest.raises(ValueError, match=r"expects input \(N, 1, H, W\)"):
            net.forward(np.zeros((MIN_WORKER_BATCH, 3, 32, 32), np.float32))
        out, grads = step(net, model, x, y, loss_fn)              # no answer was left in the pipe
        worker = net._workers[0].process
        assert worker.is_alive()
    assert not worker.is_alive() and worker.exitcode == 0         # the block stops its worker
    with DataParallel(model, workers=0) as net:
        assert np.array_equal(out, step(net, model, x, y, loss_fn)[0])


@needs_fork
def test_a_worker_that_died_is_one_clear_error(rng):
    model = LeNet5(seed=5)
    x, _ = images(rng, MIN_WORKER_BATCH)
    with DataParallel(model, workers=1) as net:
        net.forward(x)
        net._workers[0].process.kill()
        net._workers[0].process.join()
        with pytest.raises(RuntimeError, match="worker process .* ended"):
            net.forward(x)


def test_small_batches_and_blas_threads(rng):
    from threadpoolctl import threadpool_info
    model = LeNet5(seed=6)
    with DataParallel(model, workers=1) as net:
        net.forward(images(rng, MIN_WORKER_BATCH - 1)[0])
        assert net._workers == []                                  # too small to hand out
        assert all(info["num_threads"] == 1 for info in threadpool_info() if info["user_api"] == "blas")
        assert DataParallel(model).max_workers == net.max_workers  # nested: the same cores
    with pytest.raises(RuntimeError, match="inside a `with` block"):
        DataParallel(model).forward(images(rng, 2)[0])
    with pytest.raises(ValueError, match="shards must be a positive integer, got 0"):
        DataParallel(model, shards=0)


# ----------------------------------------------------------------------------------------------
# The command line with a worker process: the numbers of one core, and nothing left behind
# ----------------------------------------------------------------------------------------------

def cli_env(mnist_root, blas_threads: int) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "LENET_MNIST_DIR": str(mnist_root),
            "OPENBLAS_NUM_THREADS": str(blas_threads)}


def children(pid: int) -> list[int]:
    return process_tree(pid)[1:]


@needs_fork
def test_the_command_line_trains_the_same_weights_on_one_core_and_on_two(tmp_path, mnist_root):
    args = ["-m", "lenet_core", "train", "--epochs", "2", "--limit", "1024", "--validation", "128",
            "--no-checkpoint", "--quiet"]
    runs = {}
    for threads in (2, 1):
        out = tmp_path / f"w{threads}.npz"
        result = subprocess.run([sys.executable, *args, "--out", str(out)], capture_output=True, text=True,
                                cwd=tmp_path, env=cli_env(mnist_root, threads), timeout=300)
        assert result.returncode == 0, result.stderr
        runs[threads] = result.stdout
    assert "in the worker process" in runs[2] and "worker" not in runs[1]
    with np.load(tmp_path / "w1.npz") as one, np.load(tmp_path / "w2.npz") as two:
        assert all(np.array_equal(one[k], two[k]) for k in one.files)
    def rows(stdout):                                             # each epoch's line without its seconds
        return [line.rsplit("  ", 1)[0] for line in stdout.splitlines() if line.startswith("epoch")]
    assert len(rows(runs[1])) == 2 and rows(runs[1]) == rows(runs[2])


@needs_fork
def test_ctrl_c_with_a_worker_saves_the_checkpoint_and_leaves_no_process(tmp_path, mnist_root):
    proc = subprocess.Popen([sys.executable, "-m", "lenet_core", "train", "--epochs", "6", "--limit", "8192",
                             "--validation", "256", "--checkpoint", "ck.npz", "--out", "w.npz", "--quiet"],
                            cwd=tmp_path, env=cli_env(mnist_root, 2), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline, workers = time.monotonic() + 120, []
    while proc.poll() is None and time.monotonic() < deadline and not (tmp_path / "ck.npz").exists():
        workers = workers or children(proc.pid)
        time.sleep(0.01)
    workers = workers or children(proc.pid)
    assert workers, "no worker process was started"
    proc.send_signal(signal.SIGINT)                                # to the parent only
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_CODES["interrupted"], stderr
    assert "Traceback" not in stderr and "resume with" in stderr
    assert load_checkpoint(tmp_path / "ck.npz").epoch >= 1
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


@pytest.mark.parametrize("text,cores", [("max 100000", float("inf")), ("100000 100000", 1), ("150000 100000", 2),
                                        ("50000 100000", 1), ("not a quota", float("inf"))])
def test_a_container_quota_caps_the_cores(tmp_path, text, cores):
    (tmp_path / "cpu.max").write_text(text + "\n")
    assert parallel._cpu_quota(tmp_path / "cpu.max") == cores
    assert parallel._cpu_quota(tmp_path / "missing") == float("inf")


def test_when_no_process_can_be_started_the_shards_run_in_turn(rng, monkeypatch):
    def refuse(*args, **kwargs):
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(parallel._Worker, "__init__", refuse)
    x, y = images(rng, 2 * MIN_WORKER_BATCH)
    outputs = []
    for workers in (1, 0):
        model = LeNet5(seed=7)
        with DataParallel(model, workers=workers) as net:
            outputs.append(step(net, model, x, y, SoftmaxCrossEntropy()))
            assert net._workers == [] and net.max_workers == 0
    assert np.array_equal(outputs[0][0], outputs[1][0])
    assert all(np.array_equal(outputs[0][1][k], outputs[1][1][k]) for k in outputs[0][1])


@needs_fork
def test_sigterm_to_the_whole_group_ends_every_process_quietly(tmp_path, mnist_root):
    """A terminal's kill of the process group: the worker ends without a traceback, the parent as
    documented (SIGTERM is handled as Ctrl-C)."""
    proc = subprocess.Popen([sys.executable, "-m", "lenet_core", "train", "--epochs", "6", "--limit", "8192",
                             "--validation", "256", "--checkpoint", "ck.npz", "--out", "w.npz", "--quiet"],
                            cwd=tmp_path, env=cli_env(mnist_root, 2), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline, workers = time.monotonic() + 120, []
    while proc.poll() is None and time.monotonic() < deadline and not workers:
        workers = children(proc.pid)
        time.sleep(0.01)
    assert workers, "no worker process was started"
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_CODES["interrupted"], stderr
    assert "Traceback" not in stderr and stderr.startswith("error: terminated (SIGTERM)"), stderr
