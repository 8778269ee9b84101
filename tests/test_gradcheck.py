"""lenet_core.gradcheck, and with it every layer and LeNet-5 against central differences in float64
(max relative error < 1e-7). The losses' gradients are checked in tests/test_losses.py."""

import copy

import numpy as np
import pytest

from lenet_core import (AvgPool2d, Conv2d, Flatten, LeNet5, Linear, MaxPool2d, MSELoss, ReLU, Sequential,
                        Sigmoid, Tanh)
from lenet_core.gradcheck import (GradCheckResult, check_gauss_newton, check_layer, check_model, numerical_gradient,
                                  relative_error)

TOL = 1e-7


def distinct_values(rng, shape):
    """Random values with no two closer than 1e-3, so no max-pool window holds a near-tie."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 1e-2 + rng.uniform(0, 1e-3, n)).reshape(shape) / n * 10


LAYER_CASES = [
    ("conv batch 1", lambda: Conv2d(1, 2, 3), (1, 1, 6, 6)),
    ("conv padding, stride 2, non-square, batch 7", lambda: Conv2d(3, 4, (3, 2), stride=2, padding=1), (7, 3, 9, 7)),
    ("conv stride (2, 3), padding (0, 2)", lambda: Conv2d(2, 3, 3, stride=(2, 3), padding=(0, 2)), (2, 2, 8, 10)),
    ("conv 5x5 padding 2", lambda: Conv2d(2, 3, 5, padding=2), (2, 2, 7, 9)),
    ("conv kernel covers the whole input", lambda: Conv2d(4, 5, 5), (3, 4, 5, 5)),
    ("conv whole input, non-square", lambda: Conv2d(2, 3, (3, 4)), (2, 2, 3, 4)),
    ("avg pool 2x2", lambda: AvgPool2d(2), (7, 3, 8, 6)),
    ("avg pool 2x2 on odd sizes (last row and column unused)", lambda: AvgPool2d(2), (2, 3, 7, 9)),
    ("avg pool stride > kernel", lambda: AvgPool2d(2, stride=3), (2, 2, 8, 8)),
    ("avg pool overlapping 3/2, non-square", lambda: AvgPool2d(3, stride=2), (1, 2, 9, 7)),
    ("avg pool (2, 3) / (1, 2)", lambda: AvgPool2d((2, 3), stride=(1, 2)), (2, 2, 6, 9)),
    ("linear batch 1", lambda: Linear(5, 3), (1, 5)),
    ("linear batch 7", lambda: Linear(12, 4), (7, 12)),
    ("tanh", lambda: Tanh(), (7, 3, 4, 5)),
    ("sigmoid", lambda: Sigmoid(), (1, 2, 3, 4)),
    ("relu", lambda: ReLU(), (7, 10)),
    ("flatten", lambda: Flatten(), (7, 2, 3, 5)),
]


@pytest.mark.parametrize("name,make,shape", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_gradients(rng, name, make, shape):
    x = rng.standard_normal(shape)
    if isinstance(make(), ReLU):
        x[np.abs(x) < 1e-3] = 0.5                                   # keep clear of the kink at 0
    result = check_layer(make(), x)
    assert set(result) == {"x", *make().params}
    assert result.passed(TOL), f"{name}\n{result}"


GN_CASES = [
    ("conv", lambda: Conv2d(2, 3, 3, rng=0), (2, 2, 5, 5)),
    ("conv, stride 2, pad 1", lambda: Conv2d(2, 2, 3, stride=2, padding=1, rng=0), (1, 2, 5, 5)),
    ("conv, whole image (C5)", lambda: Conv2d(3, 4, 3, rng=0), (2, 3, 3, 3)),
    ("linear", lambda: Linear(5, 3, rng=0), (4, 5)),
    ("avg pool", lambda: AvgPool2d(2), (2, 2, 4, 4)),
    ("max pool", lambda: MaxPool2d(2), (2, 2, 4, 4)),
    ("tanh", lambda: Tanh(), (2, 3, 2, 2)),
    ("sigmoid", lambda: Sigmoid(), (2, 3, 2, 2)),
    ("relu", lambda: ReLU(), (2, 3, 2, 2)),
    ("flatten", lambda: Flatten(), (2, 3, 2, 2)),
]


@pytest.mark.parametrize("name,make,shape", GN_CASES, ids=[c[0] for c in GN_CASES])
def test_layer_gauss_newton(rng, name, make, shape):
    """Each layer's gauss_newton (SDLM's backward pass, chapter 11) against the numerical Gauss-Newton
    diagonal; the 1998 layers are checked in tests/test_lenet1998_layers.py."""
    result = check_gauss_newton(make(), rng.standard_normal(shape))
    assert set(result) == {"x", *make().params}
    assert result.passed(TOL), f"{name}\n{result}"


def test_gauss_newton_check_catches_a_planted_bug(rng):
    class HalfCurvature(Linear):
        def gauss_newton(self, d2out):
            d2x, h = super().gauss_newton(d2out)
            return d2x, {**h, "W": h["W"] / 2}                  # BUG: half of sum_i D_i x_j^2

    result = check_gauss_newton(HalfCurvature(5, 3, rng=0), rng.standard_normal((4, 5)))
    assert result["W"] > 0.3 and result["x"] < TOL and result["b"] < TOL


@pytest.mark.parametrize("kernel,stride,shape", [(2, None, (7, 3, 8, 6)), (3, 2, (1, 2, 9, 7)), (2, None, (2, 2, 7, 5)),
                                                 ((2, 3), (1, 2), (2, 2, 6, 9)), (3, 1, (1, 1, 5, 5))])
def test_max_pool_gradients(rng, kernel, stride, shape):
    """Overlapping windows share their maxima; values are distinct, so every maximum is unique."""
    result = check_layer(MaxPool2d(kernel, stride), distinct_values(rng, shape))
    assert result.passed(TOL), str(result)


def test_max_pool_ties_get_a_valid_subgradient(rng):
    """At a tie max() has no derivative. Each tied entry's one-sided derivatives are 1 (pushed up)
    and 0 (pushed down); the analytic gradient must lie between them, add up to the upstream
    gradient, and go to the first maximum, as PyTorch's does."""
    x = rng.integers(0, 3, size=(2, 2, 6, 6)).astype(np.float64)
    pool = MaxPool2d(2)
    dout = np.ones(pool.forward(x).shape)
    dx = pool.backward(dout)
    h = 2.0 ** -20                                                   # exact in binary: no rounding
    for idx in zip(*np.nonzero(x == x.max())):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        right = (pool.forward(up).sum() - pool.forward(x).sum()) / h
        left = (pool.forward(x).sum() - pool.forward(down).sum()) / h
        assert min(left, right) - 1e-9 <= dx[idx] <= max(left, right) + 1e-9
    assert np.allclose(dx.reshape(2, 2, 3, 2, 3, 2).sum(axis=(3, 5)), dout)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).sum().backward()
    assert np.array_equal(dx, xt.grad.numpy())


@pytest.mark.parametrize("batch", [1, 7])
def test_lenet5_gradients(rng, batch):
    """Every tensor of LeNet-5 (the input's and all ten parameters'), 150 entries of each."""
    x = rng.standard_normal((batch, 1, 32, 32))
    y = rng.integers(0, 10, batch)
    result = check_model(LeNet5(seed=batch), x, y, samples=150, seed=batch)
    assert list(result) == ["x", "C1.W", "C1.b", "C3.W", "C3.b", "C5.W", "C5.b", "F6.W", "F6.b", "OUT.W", "OUT.b"]
    assert result.passed(TOL), str(result)


def test_small_model_every_entry_with_max_pool_relu_and_mse(rng):
    """A complete check (every entry) of a model with the other layers, padding and stride 2."""
    model = Sequential(Conv2d(1, 3, 3, stride=2, padding=1, rng=0), Sigmoid(), MaxPool2d(2), Flatten(),
                       Linear(3 * 2 * 3, 5, rng=1), ReLU(), Linear(5, 4, rng=2))
    x = rng.standard_normal((7, 1, 8, 11))
    result = check_model(model, x, rng.standard_normal((7, 4)), loss_fn=MSELoss())
    assert result.passed(TOL), str(result)


def test_gradient_check_catches_a_planted_bug(rng):
    """The check can fail: a Tanh whose backward forgets to square y is caught."""
    class BuggyTanh(Tanh):
        def backward(self, dout):
            return dout * (1 - self.cache["y"])
    result = check_layer(BuggyTanh(), rng.standard_normal((3, 4)))
    assert not result.passed(TOL)
    assert result["x"] > 1e-2


def test_check_layer_leaves_the_layer_untouched(rng):
    layer = Conv2d(1, 2, 3)
    before = copy.deepcopy(layer.params)
    check_layer(layer, rng.standard_normal((1, 1, 5, 5)))
    assert layer.params["W"].dtype == np.float32
    assert all(np.array_equal(before[k], layer.params[k]) for k in before)


def test_relative_error_scales_by_the_larger_tensor_in_either_norm():
    a, b = np.array([[1.0, -4.0], [0.0, 0.0]]), np.array([[1.0, -3.0], [0.0, 0.0]])
    assert relative_error(a, b) == 1 / 4 and relative_error(b, a) == 1 / 4          # symmetric
    assert relative_error(a, b, norm="l1") == 1 / 5
    c = np.array([[1.0, -4.0], [0.0, 0.1]])                                        # a tiny second sample
    assert relative_error(a, c) == 0.1 / 4
    assert relative_error(a, c, per_sample=True) == 1.0                            # on its own scale
    assert relative_error(a, c, norm="l1", per_sample=True) == 1.0
    assert relative_error(np.zeros((2, 3)), np.zeros((2, 3)), per_sample=True) == 0.0
    assert np.isnan(relative_error(np.array([np.nan]), np.array([1.0])))
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(a, b[0])
    with pytest.raises(ValueError, match="norm"):
        relative_error(a, b, norm="l2")


def test_numerical_gradient_rejects_float32():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


def test_gradcheck_verdict_bands():
    good = GradCheckResult(x=3e-11, W=2.5e-10)
    text = good.verdict()
    assert text.endswith("passed: True") and "max error < 1e-07: True" in text and "WRONG" not in text
    assert "3e-11" not in text                                          # raw errors never printed
    bad = GradCheckResult(x=3e-11, b=0.75)
    text = bad.verdict()
    assert text.endswith("passed: False")
    assert [line.split()[-1] for line in text.splitlines()[2:4]] == ["agrees", "WRONG"]
    assert "suspicious" in GradCheckResult(x=1e-4).verdict()
    with pytest.raises(ValueError):
        GradCheckResult().verdict()
