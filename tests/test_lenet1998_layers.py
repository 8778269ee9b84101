"""lenet_core.lenet1998.layers: the 1998 layers' gradients and Gauss-Newton diagonals in float64, the RBF
loss, the whole network and its switches, the MLP, and the 1998 input scaling."""

import numpy as np
import pytest

from lenet_core import SoftmaxCrossEntropy
from lenet_core.gradcheck import (check_gauss_newton, check_layer, check_model, numerical_gradient,
                                  relative_error)
from lenet_core.lenet1998 import (A, BACKGROUND, FOREGROUND, MLP, C3_TABLE, LeNet5_1998, PartialConv2d, RBFLoss,
                                  RBFOutput, ScaledTanh, Subsampling2d, prepare_1998, rbf_codes,
                                  trainable_parameters)

TOL = 1e-7

LAYERS = [
    ("scaled tanh", lambda: ScaledTanh(), (3, 2, 4, 5)),
    ("subsampling 2x2", lambda: Subsampling2d(3, rng=1), (2, 3, 6, 8)),
    ("subsampling, odd size (last row and column unused)", lambda: Subsampling2d(2, rng=2), (2, 2, 7, 5)),
    ("C3, Table I", lambda: PartialConv2d(C3_TABLE, 5, rng=3), (2, 6, 9, 9)),
    ("RBF output", lambda: RBFOutput(), (4, 84)),
]


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_1998_layer_gradients(rng, name, make, shape):
    result = check_layer(make(), rng.standard_normal(shape), samples=150)
    print(name, result, sep="\n")
    assert set(result) == {"x", *make().params}
    assert result.passed(TOL), f"{name}\n{result}"


GN_LAYERS = [c for c in LAYERS if c[0] != "RBF output"]        # RBF's own rule is tested below


@pytest.mark.parametrize("name,make,shape", GN_LAYERS, ids=[c[0] for c in GN_LAYERS])
def test_1998_layer_gauss_newton(rng, name, make, shape):
    """Each layer's gauss_newton against the numerical Gauss-Newton diagonal of its Jacobian."""
    result = check_gauss_newton(make(), rng.standard_normal(shape))
    assert set(result) == {"x", *make().params}
    assert result.passed(TOL), (name, dict(result))


def test_gauss_newton_of_rbf_units_is_their_second_derivative(rng):
    """Each RBF penalty is a parabola in x (d2y_i/dx_j^2 = 2): the paper keeps that term, not (dy/dx)^2."""
    layer, x = RBFOutput(dtype=np.float64), rng.standard_normal((3, 84))
    d2out = rng.uniform(0.5, 1.5, (3, 10))
    layer.forward(x)
    d2x, h = layer.gauss_newton(d2out)
    step, j = 1e-2, 5
    shifted = [x.copy() for _ in range(3)]
    shifted[0][:, j] += step
    shifted[2][:, j] -= step
    f = [(layer.forward(v) * d2out).sum(axis=1) for v in shifted]
    assert h == {} and d2x.shape == x.shape
    assert relative_error(d2x[:, j], (f[0] - 2 * f[1] + f[2]) / step ** 2) < 1e-8


def test_rbf_loss_gradient(rng):
    y = rng.uniform(0, 120, (5, 10))
    labels = np.array([0, 3, 9, 3, 7])
    loss = RBFLoss(j=100.0)
    loss.forward(y, labels)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(y, labels), y)
    assert relative_error(analytic, numeric) < TOL


@pytest.mark.parametrize("switches", [dict(init="lecun"), dict(output="linear", pooling="avg", init="lecun",
                                                              activation="tanh", c3="full")])
def test_1998_model_gradients(rng, switches):
    """The whole network with its loss. Every 1998 layer is in the first case; it starts from LeCun's
    init because the 1998 init's tiny weights make d(loss)/d(image) so small next to a loss near 84
    that central differences drown in round-off (the layers are checked at any weights above)."""
    model = LeNet5_1998(seed=1, **switches)
    x = rng.standard_normal((3, 1, 32, 32))
    labels = np.array([1, 5, 8])
    loss = RBFLoss() if switches.get("output", "rbf") == "rbf" else SoftmaxCrossEntropy()
    result = check_model(model, x, labels, loss, samples=25)
    print(result)
    assert result.passed(TOL), str(result)


def test_1998_network_shape_and_counts():
    model = LeNet5_1998()
    assert trainable_parameters(model) == 60_000                      # the paper's figure
    assert model["C3"].num_trainable == 1_516
    assert model.forward(np.zeros((2, 1, 32, 32), np.float32)).shape == (2, 10)
    assert trainable_parameters(LeNet5_1998(c3="full", pooling="avg", output="linear")) == 61_706
    assert 58_000 < MLP().num_parameters() < 62_000
    w = model["C1"].params["W"]
    assert np.abs(w).max() <= 2.4 / 25 and np.abs(w).max() > 0.8 * 2.4 / 25      # U(-2.4/F, 2.4/F), F = 25
    c3 = model["C3"].params["W"]
    assert np.all(c3[~C3_TABLE.T] == 0)                                 # absent connections are zero
    with pytest.raises(ValueError, match="unknown pooling 'min'"):
        LeNet5_1998(pooling="min")


def test_scaled_tanh_and_inputs():
    f = ScaledTanh()
    assert f.forward(np.array([1.0, -1.0, 0.0])) == pytest.approx([1.0, -1.0, 0.0], abs=2e-5)
    assert f.forward(np.array([50.0]))[0] == pytest.approx(A)
    x = prepare_1998(np.array([[[0] * 28] * 27 + [[255] * 28]], dtype=np.uint8))
    assert x.shape == (1, 1, 32, 32)
    assert x.min() == pytest.approx(BACKGROUND) and x.max() == pytest.approx(FOREGROUND)
    assert x[0, 0, 0, 0] == pytest.approx(BACKGROUND)                   # the padding is background


def test_rbf_codes_are_distinct_bitmaps():
    codes = rbf_codes()
    assert codes.shape == (10, 84) and set(np.unique(codes)) == {-1.0, 1.0}
    hamming = (codes[:, None] != codes[None]).sum(axis=2)
    assert hamming[~np.eye(10, dtype=bool)].min() >= 6                  # every two digits differ in 6+ pixels
    layer = RBFOutput(dtype=np.float64)
    assert np.allclose(layer.forward(codes), 4 * hamming)               # (+-1 - -+1)^2 = 4 per differing pixel
