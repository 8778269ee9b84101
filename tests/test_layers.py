"""lenet_core.layers: the layer contract (cache, input_grad, self-description, Sequential is a Layer)
and two numerical edge cases checked against PyTorch (a NaN in a max-pool window, sigmoid far left)."""

import numpy as np
import pytest
import torch

from lenet_core import (AvgPool2d, Conv2d, Flatten, LeNet5, Linear, MaxPool2d, ReLU, Sequential, Sigmoid,
                        Tanh)
from lenet_core.gradcheck import check_layer
from lenet_core.layers import Layer, input_grad, no_grad

LAYERS = [
    (lambda: Conv2d(2, 3, 3, rng=0, dtype=np.float64), (2, 2, 6, 6)),
    (lambda: AvgPool2d(2), (2, 2, 4, 4)),
    (lambda: MaxPool2d(2), (2, 2, 4, 4)),
    (lambda: Linear(4, 3, rng=0, dtype=np.float64), (2, 4)),
    (Tanh, (2, 5)), (Sigmoid, (2, 5)), (ReLU, (2, 5)), (Flatten, (2, 2, 3, 3)),
    (lambda: Sequential(Linear(4, 3, rng=0, dtype=np.float64), Tanh()), (2, 4)),
]


@pytest.mark.parametrize("make,shape", LAYERS)
def test_backward_before_forward_is_a_clear_error(rng, make, shape):
    layer = make()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones(shape))


@pytest.mark.parametrize("make,shape", LAYERS[:-1])
def test_forward_keeps_what_backward_needs_in_cache(rng, make, shape):
    layer = make()
    layer.forward(rng.standard_normal(shape))
    assert isinstance(layer.cache, dict) and layer.cache


def test_sequential_is_a_layer_and_can_be_nested_and_checked(rng):
    inner = Sequential(("fc", Linear(4, 3, rng=1, dtype=np.float64)), ("act", Tanh()))
    model = Sequential(("block", inner), ("out", Linear(3, 2, rng=2, dtype=np.float64)))
    assert isinstance(model, Layer)
    assert set(model.params) == {"block.fc.W", "block.fc.b", "out.W", "out.b"}
    assert model.params["out.W"] is model["out"].params["W"]             # the live arrays
    result = check_layer(model, rng.standard_normal((3, 4)))
    assert set(result) == {"x", "block.fc.W", "block.fc.b", "out.W", "out.b"}
    assert result.passed()


def test_input_grad_switches_the_first_layer_and_restores_it(rng):
    model = LeNet5(dtype=np.float64)
    x = rng.standard_normal((2, 1, 32, 32))
    model.forward(x)
    dout = rng.standard_normal((2, 10))
    with input_grad(model, False):
        assert model["C1"].need_input_grad is False and model["C3"].need_input_grad is True
        assert model.backward(dout) is None
        with input_grad(model):
            assert model.backward(dout).shape == x.shape
        assert model.need_input_grad is False
    assert model.need_input_grad is True and model["C1"].need_input_grad is True


def test_no_grad_gives_the_same_outputs_keeps_nothing_and_restores_the_flags(rng):
    model = LeNet5(dtype=np.float64)
    nested = Sequential(("net", model))
    x = rng.standard_normal((3, 1, 32, 32))
    with no_grad(nested):
        assert not any(layer.need_backward for layer in [nested, *model])
        logits = nested.forward(x)
        assert model["C1"].cache["cols"] is None and "cols" not in model["C3"].workspace._buffers
        with pytest.raises(RuntimeError, match="backward after a forward pass under no_grad"):
            nested.backward(np.ones((3, 10)))
    assert all(layer.need_backward for layer in [nested, *model])
    assert np.allclose(logits, model.forward(x), rtol=0, atol=1e-12)
    assert model.backward(np.ones((3, 10))).shape == x.shape       # trains again as before


def test_layers_describe_themselves():
    assert Conv2d(1, 6, 5).describe() == "conv 6@5x5"
    assert Conv2d(1, 6, 5).parameter_formula() == "6 x (1 x 5 x 5 + 1)"
    assert Conv2d(2, 4, 3, stride=2, padding=(1, 0)).describe() == "conv 4@3x3, stride 2, pad 1x0"
    assert AvgPool2d(2).describe() == "avg pool 2x2, stride 2"
    assert MaxPool2d(3, stride=2).describe() == "max pool 3x3, stride 2"
    assert Linear(120, 84).describe() == "linear 120->84"
    assert Linear(120, 84).parameter_formula() == "84 x (120 + 1)"
    assert Tanh().describe() == "tanh" and Tanh().elementwise and not Linear(2, 2).elementwise
    assert Flatten().describe() == "flatten" and Flatten().parameter_formula() == ""

    class Scale(Layer):                          # a new layer gets a sensible default row
        def __init__(self):
            super().__init__()
            self.params = {"a": np.ones(3)}
    assert Scale().describe() == "Scale" and Scale().parameter_formula() == "a 3"


def test_max_pool_propagates_nan_like_torch():
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
    x[0, 0, 0, 1] = np.nan                       # not first in its window
    x[1, 2, 3, 3] = np.nan                       # last in its window
    layer = MaxPool2d(2)
    out = layer.forward(x)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    ref = torch.nn.functional.max_pool2d(xt, 2)
    np.testing.assert_array_equal(np.isnan(out), torch.isnan(ref).numpy())
    np.testing.assert_array_equal(np.nan_to_num(out), np.nan_to_num(ref.detach().numpy()))
    dout = np.random.default_rng(0).standard_normal(out.shape)
    ref.backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(layer.backward(dout), xt.grad.numpy())


def test_sigmoid_keeps_its_precision_far_left_like_torch():
    x = np.array([-700.0, -100.0, -40.0, -25.0, -1.0, 0.0, 1.0, 25.0, 40.0, 100.0])
    layer = Sigmoid()
    y = layer.forward(x)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    ref = torch.sigmoid(xt)
    ref.backward(torch.ones_like(xt))
    expected, dexpected = ref.detach().numpy(), xt.grad.numpy()
    assert y[2] > 0 and abs(y[2] - 4.248354255291589e-18) < 1e-30          # exp(-40), not 0
    np.testing.assert_allclose(y, expected, rtol=1e-15, atol=0)
    dx = layer.backward(np.ones_like(x))
    left = x <= 1                                # torch's y (1 - y) loses the derivative on the right ...
    np.testing.assert_allclose(dx[left], dexpected[left], rtol=1e-14, atol=0)
    flipped = Sigmoid()
    flipped.forward(-x)
    np.testing.assert_array_equal(dx, flipped.backward(np.ones_like(x)))     # ... ours is even, as it must be
    y32 = Sigmoid().forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    normal = x >= -40                            # float32 subnormals below: torch flushes them to 0
    ref32 = torch.sigmoid(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(y32[normal], ref32[normal], rtol=1e-6)


def test_a_layer_without_gauss_newton_says_so():
    with pytest.raises(NotImplementedError, match="Gauss-Newton"):
        Layer().gauss_newton(np.zeros(2))
