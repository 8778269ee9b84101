"""DataParallel: shards of a batch, in this process or in a forked worker, give the batch's numbers."""

import multiprocessing

import numpy as np
import pytest

from lenet_core import LeNet5, parallel
from lenet_core.data import load_mnist
from lenet_core.layers import input_grad, no_grad
from lenet_core.losses import SoftmaxCrossEntropy
from lenet_core.optim import make_optimizer
from lenet_core.parallel import MIN_WORKER_BATCH, DataParallel
from lenet_core.train import fit, predict

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
def test_fit_and_predict_with_a_worker_match_them_without(monkeypatch):
    mnist = load_mnist()
    x, y = mnist.x_train[:640], mnist.y_train[:640]
    weights, predictions = [], []
    for workers in (0, 1):
        monkeypatch.setattr(parallel, "default_workers", lambda: workers)
        model = LeNet5(seed=3)
        fit(model, x, y, epochs=1, batch_size=64, quiet=True)
        weights.append(model.state_dict())
        predictions.append(predict(model, mnist.x_test[:300]))
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert np.array_equal(*predictions)


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
