"""lenet_core.lenet1998.sdlm: the learning-rate schedule and the SDLM step, and the curvature estimate
against the Gauss-Newton diagonal (exact where one path leads to the output, numerical on the network)."""

import numpy as np
import pytest
import torch

from lenet_core import Flatten, Linear, MSELoss, Sequential, Tanh
from lenet_core import functional
from lenet_core.gradcheck import numerical_gauss_newton, relative_error
from lenet_core.lenet1998 import (C3_TABLE, SDLM, LeNet5_1998, PartialConv2d, RBFLoss, estimate_curvature,
                                  prepare_1998, sdlm_learning_rate)


def test_sdlm_schedule_and_step():
    assert [sdlm_learning_rate(e) for e in range(1, 21)] == (
        [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8)
    p = {"w": np.array([1.0, 2.0, 3.0])}
    opt = SDLM(p, lr=0.1, mu=0.02)
    opt.set_curvature({"w": np.array([0.0, 0.98, 9.98])})
    opt.step({"w": np.array([1.0, 1.0, 1.0])})
    assert p["w"] == pytest.approx([1 - 5.0, 2 - 0.1, 3 - 0.01])


def test_curvature_is_the_gauss_newton_diagonal_where_that_is_exact(rng):
    """With one output unit every weight has one path to it: the paper's recursion (squared weights,
    squared derivatives) is then the exact Gauss-Newton diagonal, which torch computes from the Jacobian."""
    model = Sequential(("H", Linear(5, 4, rng=0, dtype=np.float64)), ("act", Tanh()),
                       ("O", Linear(4, 1, rng=1, dtype=np.float64)))
    x = rng.standard_normal((6, 5))
    h = estimate_curvature(model, x, np.zeros((6, 1)), MSELoss())
    W1, b1 = (torch.tensor(model["H"].params[k], requires_grad=True) for k in ("W", "b"))
    W2, b2 = (torch.tensor(model["O"].params[k], requires_grad=True) for k in ("W", "b"))
    expected = {k: np.zeros_like(v) for k, v in h.items()}
    for n in range(6):
        o = torch.tanh(torch.from_numpy(x[n]) @ W1.T + b1) @ W2.T + b2
        grads = torch.autograd.grad(o.sum(), [W1, b1, W2, b2])
        for k, g in zip(("H.W", "H.b", "O.W", "O.b"), grads):
            expected[k] += 2 * g.numpy() ** 2 / 6                       # per-sample loss (o - t)^2
    for k in h:
        assert relative_error(h[k], expected[k]) < 1e-12, k


def test_curvature_against_the_numerical_gauss_newton(mnist):
    """On the whole 1998 network: exact for C5 and F6 (one path per weight and sample), an
    approximation below them, where shared weights and units feeding several units add cross terms
    that the paper's recursion drops (chapter 11 measures by how much)."""
    model = LeNet5_1998(seed=0, dtype=np.float64)
    x, y = prepare_1998(mnist.x_train[:8]).astype(np.float64), mnist.y_train[:8]
    h = estimate_curvature(model, x, y, RBFLoss())
    below_out = list(model)[:-1]

    def features():                                    # F6's outputs; eq. 9's first term has Hessian 2 I there
        out = x
        for layer in below_out:
            out = layer.forward(out)
        return out
    params = model.parameters()
    for name in ("C5.W", "C5.b", "F6.W", "F6.b", "C1.W"):
        idx = np.random.default_rng(0).choice(params[name].size, 3, replace=False)
        gn = numerical_gauss_newton(features, params[name], indices=idx).reshape(-1)[idx]
        err = relative_error(h[name].reshape(-1)[idx], gn)
        assert (err < 1e-6) if name != "C1.W" else (err > 0.1), (name, err)


def test_curvature_of_shared_weights_sums_over_connections(rng):
    """For a convolution the paper sums d2E/da^2 x^2 over every connection of a shared weight."""
    conv = PartialConv2d(C3_TABLE, 5, rng=0, dtype=np.float64)
    model = Sequential(("C", conv), ("flat", Flatten()),
                       ("O", Linear(16 * 2 * 2, 3, rng=1, dtype=np.float64)))
    x = rng.standard_normal((2, 6, 6, 6))
    h = estimate_curvature(model, x, np.array([0, 2]), MSELoss())
    d2_o = np.full((2, 3), 2 / 3)
    d2_a = (d2_o @ model["O"].params["W"] ** 2).reshape(2, 16, 2, 2)
    _, hW, hb = functional.conv2d_backward_naive(d2_a, x ** 2, (conv.params["W"] * conv.mask) ** 2)
    assert relative_error(h["C.W"], hW * conv.mask / 2) < 1e-12
    assert relative_error(h["C.b"], hb / 2) < 1e-12
    assert np.all(h["C.W"][~C3_TABLE.T] == 0)
