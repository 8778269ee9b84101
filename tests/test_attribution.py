"""Integrated Gradients on the scratch LeNet-5: captum's quadrature, agreement with captum on the twin,
completeness on the trained model, baselines, the plot, and clear errors for bad input (real MNIST)."""

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
                                    model_output, output_gradient, plot_attribution, quadrature,
                                    torch_forward)
from lenet_core.data import MNIST_MEAN, MNIST_STD, prepare  # noqa: E402
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


def rel_err(ours, theirs) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


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
    err = rel_err(ours, theirs)
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
    assert rel_err(ours, theirs[0]) < 1e-6
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
        assert rel_err(g, xt.grad.numpy()) < 1e-10


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


# ----------------------------------------------------------------------------------------------
# The figure
# ----------------------------------------------------------------------------------------------

def test_plot_attribution_labels_every_panel(trained, digits):
    x, label = digits[0][0], int(digits[1][0])
    attr, _ = integrated_gradients(trained, x, label, steps=16, method="gausslegendre")
    fig = plot_attribution(x, attr, title=f"Integrated Gradients for a {label}")
    try:
        panels, colorbars = fig.axes[:3], fig.axes[3:]
        assert len(panels) == 3 and len(colorbars) == 1
        for ax in panels:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert colorbars[0].get_ylabel() == "attribution"
        norm = panels[1].images[0].norm
        assert norm.vmin == -norm.vmax == -np.abs(attr).max()      # centred at 0
        assert fig._suptitle.get_text() == f"Integrated Gradients for a {label}"
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="same shape"):
        plot_attribution(x, attr[:, :28, :28])


# ----------------------------------------------------------------------------------------------
# The chapter's other figures
# ----------------------------------------------------------------------------------------------

def test_plot_attribution_grid_centres_every_map_at_zero():
    from lenet_core.attribution import plot_attribution_grid

    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 1, 32, 32))
    maps = rng.normal(size=(2, 3, 1, 32, 32))
    maps[1, 2] *= 5
    fig = plot_attribution_grid(images, maps, col_labels=["a", "b", "c"], row_labels=["first", "second"],
                                notes=[["n00", "n01", "n02"], ["n10", "n11", "n12"]], title="grid")
    try:
        panels = [ax for ax in fig.axes if ax.images]
        colorbars = [ax for ax in fig.axes if not ax.images]
        assert len(panels) == 2 * 4 and len(colorbars) == 2 * 3           # one colour bar per map
        assert fig._suptitle.get_text() == "grid"
        assert panels[0].get_title() == "first" and panels[4].get_title() == "second"
        assert panels[1].get_title() == "a\nn00" and panels[7].get_title() == "c\nn12"
        for r in range(2):
            for c in range(3):
                norm = panels[4 * r + c + 1].images[0].norm
                assert norm.vmin == -norm.vmax == -np.abs(maps[r, c]).max()
        assert np.array_equal(panels[7].images[0].get_array(), maps[1, 2, 0])
    finally:
        plt.close(fig)


def test_plot_attribution_grid_rejects_mismatched_input():
    from lenet_core.attribution import plot_attribution_grid

    images, maps = np.zeros((2, 32, 32)), np.zeros((2, 3, 32, 32))
    with pytest.raises(ValueError, match="attributions must have shape"):
        plot_attribution_grid(images, maps[:1], col_labels="abc")
    with pytest.raises(ValueError, match="attributions must have shape"):
        plot_attribution_grid(images, maps[..., :28, :28], col_labels="abc")
    with pytest.raises(ValueError, match="col_labels needs 3 entries"):
        plot_attribution_grid(images, maps, col_labels=["a", "b"])
    with pytest.raises(ValueError, match="row_labels needs 2 entries"):
        plot_attribution_grid(images, maps, col_labels="abc", row_labels=["x"])
    with pytest.raises(ValueError, match="notes must be 2 rows of 3 strings"):
        plot_attribution_grid(images, maps, col_labels="abc", notes=[["1", "2", "3"]])
    with pytest.raises(ValueError, match="images must have shape"):
        plot_attribution_grid(np.zeros((32, 32)), maps, col_labels="abc")
    plt.close("all")


def test_plot_path_outputs_draws_one_labelled_panel_per_curve():
    from lenet_core.attribution import plot_path_outputs

    alphas = np.linspace(0, 1, 11)
    fig = plot_path_outputs(alphas, {"logit": alphas ** 2, "probability": np.sqrt(alphas)}, title="path")
    try:
        assert len(fig.axes) == 2 and fig._suptitle.get_text() == "path"
        for ax, (label, values) in zip(fig.axes, {"logit": alphas ** 2, "probability": np.sqrt(alphas)}.items()):
            assert ax.get_title() == label and ax.get_ylabel() == label and ax.get_xlabel()
            assert np.allclose(ax.lines[0].get_ydata(), values) and np.allclose(ax.lines[0].get_xdata(), alphas)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="curve 'logit' has shape"):
        plot_path_outputs(alphas, {"logit": alphas[:5]})
    with pytest.raises(ValueError, match="curves is empty"):
        plot_path_outputs(alphas, {})
    plt.close("all")


def test_plot_convergence_is_log_log_with_means_and_guides():
    from lenet_core.attribution import plot_convergence

    steps = [5, 10, 20, 40]
    fast = np.array([[1e-2, 3e-2], [1e-4, 3e-4], [1e-8, 3e-8], [0.0, 0.0]])      # exact zeros: drawn at the floor
    slow = np.array([[0.2, 0.2], [0.1, 0.1], [0.05, 0.05], [0.025, 0.025]])
    fig = plot_convergence(steps, {"fast": fast, "slow": slow}, title="conv")
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_title() == "conv" and ax.get_xlabel() and ax.get_ylabel()
        lines = {line.get_label(): line for line in ax.lines}
        assert np.allclose(lines["fast (mean)"].get_ydata(), [2e-2, 2e-4, 2e-8, 1e-16])
        assert np.allclose(lines["slow (mean)"].get_ydata(), slow.mean(axis=1))
        guides = [line for label, line in lines.items() if label.startswith("slope")]
        assert len(guides) == 2
        assert np.allclose(guides[0].get_ydata(), 0.2 * 5 / np.array(steps))        # slope -1 through the top start
        assert len(ax.collections) == 2                                              # one min-max band per method
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match=r"must have shape \(4, N\)"):
        plot_convergence(steps, {"fast": fast[:3]})
    with pytest.raises(ValueError, match="finite and >= 0"):
        plot_convergence(steps, {"signed": -fast})
    with pytest.raises(ValueError, match="positive step counts"):
        plot_convergence([0, 10], {"a": np.ones((2, 1))})
    plt.close("all")
