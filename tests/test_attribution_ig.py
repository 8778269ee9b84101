"""Integrated Gradients on the scratch LeNet-5: captum's quadrature, agreement with captum on the twin,
completeness on the trained model, baselines, and clear errors for bad input (real MNIST)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from captum.attr import IntegratedGradients  # noqa: E402
from captum.attr._utils.approximation_methods import approximation_parameters  # noqa: E402

from lenet_core import LeNet5, load_weights  # noqa: E402
from lenet_core.attribution import (METHODS, gaussian_blur, integrated_gradients, make_baseline,  # noqa: E402
                                    model_output, output_gradient, quadrature,
                                    torch_forward)
from lenet_core.data import MNIST_MEAN, MNIST_STD, prepare  # noqa: E402
from lenet_core.gradcheck import relative_error  # noqa: E402
from lenet_core.twin import to_torch  # noqa: E402

from conftest import REPO  # noqa: E402

WEIGHTS = REPO / "book" / "weights" / "lenet5.npz"


@pytest.fixture(scope="module")
def trained():
    """The book's trained LeNet-5 (book/weights/lenet5.npz), in float64."""
    if not WEIGHTS.is_file():
        pytest.fail(f"{WEIGHTS} is missing: train it with "
                    f"`python -m lenet_core train --epochs 10 --out book/weights/lenet5.npz`")
    return load_weights(LeNet5(dtype=np.float64), WEIGHTS)


@pytest.fixture(scope="module")
def digits(mnist):
    """The first 100 test digits, prepared in float64 (100, 1, 32, 32), and their labels."""
    return prepare(mnist.x_test[:100], dtype=np.float64), mnist.y_test[:100]


def captum_ig(module, x, target, baseline, steps, method, output="logit"):
    ig = IntegratedGradients(torch_forward(module, output))
    attr, delta = ig.attribute(torch.from_numpy(x), baselines=torch.from_numpy(baseline),
                               target=torch.as_tensor(target), n_steps=steps, method=method,
                               return_convergence_delta=True)
    return attr.detach().numpy(), delta.detach().numpy()


# ----------------------------------------------------------------------------------------------
# Quadrature and agreement with captum
# ----------------------------------------------------------------------------------------------

CAPTUM_METHODS = [m for m in METHODS if m != "trapezoid"]


@pytest.mark.parametrize("method", CAPTUM_METHODS)
@pytest.mark.parametrize("steps", [2, 7, 50, 200])
def test_quadrature_is_captums(method, steps):
    alphas, weights = quadrature(method, steps)
    step_sizes, captum_alphas = approximation_parameters(method)
    # captum multiplies by torch.tensor(step_sizes).float(): its weights are float32 numbers
    assert np.array_equal(weights, torch.tensor(step_sizes(steps)).float().double().numpy())
    # Riemann points come from torch.linspace in float32: equal up to one float32 ulp (2**-24 near 1)
    tol = 0.0 if method == "gausslegendre" else 2.0 ** -24
    assert np.abs(alphas - np.array(captum_alphas(steps))).max() <= tol
    assert np.all((alphas >= 0) & (alphas <= 1))
    # captum's trapezoid weighs its points by 1/steps, not 1/(steps - 1): the weights sum to 1 - 1/steps
    total = 1 - 1 / steps if method == "riemann_trapezoid" else 1.0
    assert weights.sum() == pytest.approx(total, abs=1e-6)


def test_textbook_trapezoid():
    alphas, weights = quadrature("trapezoid", 5)
    assert np.array_equal(alphas, [0, 0.25, 0.5, 0.75, 1]) and np.array_equal(weights, [0.125, 0.25, 0.25, 0.25, 0.125])
    a, w = quadrature("trapezoid", 101)
    assert np.sum(w * a ** 2) == pytest.approx(1 / 3 + 1 / (6 * 100 ** 2), abs=1e-15)     # trapezoid error h^2/6


@pytest.mark.parametrize("method", ["riemann_trapezoid", "gausslegendre"])
@pytest.mark.parametrize("kind,output", [("black", "logit"), ("blur", "logit"), ("uniform", "logit"),
                                         ("mean", "logit"), ("black", "probability")])
def test_scratch_ig_matches_captum(trained, digits, mnist, method, kind, output):
    """Same weights (float64), baseline, targets, steps and rule: the two implementations agree to 1e-6."""
    x, y = digits[0][:6], digits[1][:6]
    baseline = make_baseline(kind, x, images=mnist.x_train[:5000], seed=3)
    ours, delta = integrated_gradients(trained, x, y, baseline, steps=50, method=method, output=output)
    theirs, captum_delta = captum_ig(to_torch(trained), x, y, baseline, 50, method, output)
    err = relative_error(ours, theirs)
    print(f"{method} {kind} {output}: max |scratch - captum| / max |captum| = {err:.1e}")
    assert ours.shape == x.shape and delta.shape == (6,)
    assert err < 1e-6, err
    # the deltas sum 1,024 attributions each, so compare them on the scale of sum |attributions|
    assert np.all(np.abs(delta - captum_delta) < 1e-6 * np.abs(theirs).reshape(6, -1).sum(axis=1))


def test_single_image_matches_captum(trained, digits):
    """One image (1, 32, 32): attributions of that shape, a float delta, and captum's values."""
    x, label = digits[0][7], int(digits[1][7])
    ours, delta = integrated_gradients(trained, x, label, steps=32, method="gausslegendre")
    theirs, captum_delta = captum_ig(to_torch(trained), x[None], label, make_baseline("black", x[None]),
                                     32, "gausslegendre")
    assert ours.shape == (1, 32, 32) and isinstance(delta, float)
    assert relative_error(ours, theirs[0]) < 1e-6
    assert abs(delta - captum_delta[0]) < 1e-9


def test_chunking_does_not_change_the_result(trained, digits):
    x, y = digits[0][:3], digits[1][:3]
    a1, d1 = integrated_gradients(trained, x, y, steps=20, chunk_size=7)          # 1 image x 7 points
    a2, d2 = integrated_gradients(trained, x, y, steps=20, chunk_size=2)          # 2 images x 1 point
    a3, d3 = integrated_gradients(trained, x, y, steps=20)                        # everything at once
    assert np.allclose(a1, a3, rtol=0, atol=1e-12) and np.allclose(a2, a3, rtol=0, atol=1e-12)
    assert np.allclose([d1, d2], [d3, d3], rtol=0, atol=1e-12)


def test_output_gradient_is_the_twins(trained, digits):
    x, y = digits[0][:4], digits[1][:4]
    module = to_torch(trained)
    for output in ("logit", "probability"):
        f, g = output_gradient(trained, x, y, output)
        xt = torch.from_numpy(x).requires_grad_()
        out = torch_forward(module, output)(xt)[torch.arange(4), torch.from_numpy(y)]
        out.sum().backward()
        assert np.allclose(f, out.detach().numpy(), rtol=1e-12, atol=0)
        assert relative_error(g, xt.grad.numpy()) < 1e-10


# ----------------------------------------------------------------------------------------------
# Completeness on the trained model
# ----------------------------------------------------------------------------------------------

def test_completeness_on_100_test_digits(trained, digits):
    """sum(IG) = F(x) - F(black) to within 1% on each of 100 test digits (200 steps, trapezoid, logit)."""
    x, y = digits
    baseline = make_baseline("black", x)
    _, delta = integrated_gradients(trained, x, y, baseline, steps=200)
    gap = model_output(trained, x, y) - model_output(trained, baseline, y)
    ratio = np.abs(delta) / np.abs(gap)
    worst = int(ratio.argmax())
    message = (f"worst |delta| / |F(x) - F(baseline)| = {ratio[worst]:.2e} on test digit {worst} "
               f"(label {y[worst]}, F(x) - F(baseline) = {gap[worst]:.3f}, delta = {delta[worst]:.2e}); "
               f"median {np.median(ratio):.1e}")
    print(message)
    assert ratio.shape == (100,)
    assert np.all(ratio < 0.01), message


def test_how_fast_each_rule_converges(trained, digits):
    """captum's trapezoid falls short by ~1/steps of F(x) - F(x'); the textbook trapezoid and
    Gauss-Legendre close the gap (10 digits, 100 steps, black baseline)."""
    x, y = digits[0][:10], digits[1][:10]
    baseline = make_baseline("black", x)
    gap = model_output(trained, x, y) - model_output(trained, baseline, y)
    rel = {m: integrated_gradients(trained, x, y, baseline, steps=100, method=m)[1] / gap
           for m in ("riemann_trapezoid", "trapezoid", "gausslegendre")}
    print({m: f"{np.abs(r).max():.1e}" for m, r in rel.items()})
    assert np.all(np.abs(rel["riemann_trapezoid"] + 1 / 100) < 2e-3)
    assert np.abs(rel["trapezoid"]).max() < 2e-3
    assert np.abs(rel["gausslegendre"]).max() < 1e-5


# ----------------------------------------------------------------------------------------------
# Baselines
# ----------------------------------------------------------------------------------------------

def test_black_baseline_is_a_normalised_zero_pixel(mnist):
    x = prepare(mnist.x_test[:2], dtype=np.float64)
    black = make_baseline("black", x)
    assert black.shape == x.shape and black.dtype == x.dtype
    assert np.all(black == x[0, 0, 0, 0])                  # prepare's padding is black
    assert black[0, 0, 0, 0] == pytest.approx(-MNIST_MEAN / MNIST_STD) and black[0, 0, 0, 0] != 0
    assert np.all(make_baseline("zero", x) == 0)


def test_gaussian_blur():
    delta = np.zeros((1, 21, 21))
    delta[0, 10, 10] = 1.0
    out = gaussian_blur(delta, 1.5)
    d = np.arange(-10, 11)
    g = np.exp(-d ** 2 / 4.5) * (np.abs(d) <= 5)            # truncated at ceil(3 sigma) = 5 pixels
    g /= g.sum()
    assert np.allclose(out[0], np.outer(g, g), rtol=0, atol=1e-15)
    assert np.allclose(gaussian_blur(np.full((4, 32, 32), -0.42), 3.0), -0.42)   # constants stay
    assert np.array_equal(gaussian_blur(delta, 0), delta)


def test_blur_uniform_and_mean_baselines(mnist):
    x = prepare(mnist.x_test[:3], dtype=np.float64)
    blur = make_baseline("blur", x, sigma=2.0)
    assert blur.shape == x.shape and abs(blur.mean() - x.mean()) < 0.02
    assert blur.max() < 0.7 * x.max()                       # the strokes are gone
    low, high = -MNIST_MEAN / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD
    u1, u2 = make_baseline("uniform", x, seed=1), make_baseline("uniform", x, seed=1)
    assert np.array_equal(u1, u2) and not np.array_equal(u1, make_baseline("uniform", x, seed=2))
    assert u1.min() >= low and u1.max() <= high and u1.std() > 0.5
    train = mnist.x_train[:1000]
    mean = make_baseline("mean", x, images=train)
    assert mean.shape == x.shape and np.array_equal(mean[0], mean[2])
    assert np.allclose(mean[0], prepare(train, dtype=np.float64).mean(axis=0), atol=1e-12)
    assert np.allclose(make_baseline("mean", x[0], images=prepare(train)), mean[0], atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------

def test_bad_input_raises_clear_errors(digits):
    model = LeNet5(dtype=np.float64)
    x, y = digits[0][:2], digits[1][:2]
    for target in (10, -1):
        with pytest.raises(ValueError, match=f"target {target} is outside 0..9"):
            integrated_gradients(model, x, target, steps=4)
    with pytest.raises(ValueError, match="target must be an integer class"):
        integrated_gradients(model, x, 3.5, steps=4)
    with pytest.raises(ValueError, match=r"one class or 2 classes .* got shape \(3,\)"):
        integrated_gradients(model, x, [1, 2, 3], steps=4)
    for shape in [(28, 28), (32, 32), (2, 1, 28, 28), (1, 3, 32, 32), (0, 1, 32, 32)]:
        with pytest.raises(ValueError, match=r"image must have shape \(1, 32, 32\).*got shape"):
            integrated_gradients(model, np.zeros(shape), 1, steps=4)
    with pytest.raises(ValueError, match=r"baseline shape \(1, 1, 32, 32\) differs from the input's shape "
                                         r"\(2, 1, 32, 32\)"):
        integrated_gradients(model, x, y, baseline=x[:1], steps=4)
    with pytest.raises(ValueError, match="unknown integration method 'simpson'"):
        integrated_gradients(model, x, y, steps=4, method="simpson")
    with pytest.raises(ValueError, match="needs steps >= 2, got 1"):
        integrated_gradients(model, x, y, steps=1)
    with pytest.raises(ValueError, match="unknown output 'softmax'"):
        integrated_gradients(model, x, y, steps=4, output="softmax")
    nan = x.copy()
    nan[0, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="image must be finite"):
        integrated_gradients(model, nan, y, steps=4)
    with pytest.raises(ValueError, match="unknown baseline 'gray'"):
        make_baseline("gray", x)
    with pytest.raises(ValueError, match="'mean' baseline needs images="):
        make_baseline("mean", x)
