"""lenet_core.losses: softmax cross-entropy and MSE, their gradients against central differences in
float64, stability, agreement with PyTorch and clear errors for bad labels."""

import numpy as np
import pytest

from lenet_core import MSELoss, SoftmaxCrossEntropy
from lenet_core.gradcheck import numerical_gradient, relative_error

TOL = 1e-7


def test_backward_before_forward_is_a_clear_error():
    for loss in (SoftmaxCrossEntropy(), MSELoss()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            loss.backward()


@pytest.mark.parametrize("batch", [1, 7])
def test_softmax_cross_entropy_gradient(rng, batch):
    logits = rng.standard_normal((batch, 10)) * 3
    labels = rng.integers(0, 10, batch)
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    numeric = numerical_gradient(lambda: loss.forward(logits, labels), logits)
    loss.forward(logits, labels)
    assert relative_error(loss.backward(), numeric) < TOL


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4 - 1.0]])
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, np.array([0, 2]))
    expected = (0.0 + np.log1p(np.exp(1.0))) / 2                      # row 2: log(1 + e) - 0
    assert np.isfinite(value) and np.isclose(value, expected, rtol=1e-12)
    grad = loss.backward()
    assert np.all(np.isfinite(grad))
    assert np.allclose(grad.sum(axis=1), 0)


def test_softmax_cross_entropy_matches_torch(rng):
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((7, 10)) * 5
    labels = rng.integers(0, 10, 7)
    lt = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(lt, torch.tensor(labels))
    expected.backward()
    loss = SoftmaxCrossEntropy()
    assert np.isclose(loss.forward(logits, labels), expected.item(), rtol=1e-12)
    assert np.allclose(loss.backward(), lt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_loss_rejects_bad_labels(rng):
    with pytest.raises(ValueError, match="label 10 is outside 0..9"):
        SoftmaxCrossEntropy().forward(rng.standard_normal((2, 10)), np.array([1, 10]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        SoftmaxCrossEntropy().forward(rng.standard_normal((2, 10)), np.array([1, 2, 3]))


@pytest.mark.parametrize("batch", [1, 7])
def test_mse_gradient(rng, batch):
    pred, target = rng.standard_normal((batch, 10)), rng.standard_normal((batch, 10))
    loss = MSELoss()
    numeric = numerical_gradient(lambda: loss.forward(pred, target), pred)
    loss.forward(pred, target)
    assert relative_error(loss.backward(), numeric) < TOL
    assert np.isclose(loss.forward(pred, target), np.mean((pred - target) ** 2))
