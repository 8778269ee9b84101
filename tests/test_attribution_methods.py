"""Saliency, gradient x input, SmoothGrad (also on IG), occlusion and GradientSHAP from scratch equal
captum 0.9 on the PyTorch twin with the same weights (float64, 20 test digits, two baselines each).

How the random draws are matched: every scratch method takes its randomness as arguments. captum
draws SmoothGrad's noise with ``torch.normal`` (float32 noise, ``stdevs`` as a float32 tensor) and
GradientSHAP's baselines and path points with ``np.random.choice`` then ``np.random.uniform``; the
tests seed those generators, run unmodified captum, re-seed, repeat exactly the same draws and hand
them to the scratch functions (:func:`captum_noise`, :func:`captum_shap_draws`).

The acceptance measure is ``max_i |scratch_i - captum_i| / sum_i |captum_i|`` per digit (the max
abs difference relative to the attribution's L1 norm), required below 1e-8; saliency must agree to
rounding (1e-13). captum's Occlusion returns float32 whatever the model's dtype, so occlusion is
required to be equal after rounding the scratch float64 result to float32 (to one float32 ulp).
"""

import numpy as np
import pytest
import torch
from captum.attr import (GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, Occlusion,
                         Saliency)

from lenet_core import LeNet5, load_weights
from lenet_core.attribution import integrated_gradients, make_baseline, model_output
from lenet_core.attribution.methods import (draw_baselines, expected_gradients, gaussian_noise,
                                            gradient_shap, input_x_gradient, occlusion, occlusion_masks,
                                            saliency, smoothgrad)
from lenet_core.data import prepare
from lenet_core.gradcheck import relative_error
from lenet_core.twin import to_torch

from conftest import REPO

WEIGHTS = REPO / "book" / "weights" / "lenet5.npz"
N = 20                                            # digits per comparison


@pytest.fixture(scope="module")
def trained():
    return load_weights(LeNet5(dtype=np.float64), WEIGHTS)


@pytest.fixture(scope="module")
def twin(trained):
    return to_torch(trained)


@pytest.fixture(scope="module")
def digits(mnist):
    return prepare(mnist.x_test[:N], dtype=np.float64), mnist.y_test[:N]


@pytest.fixture(scope="module")
def baselines(digits):
    """Two baselines: black (no ink) and the digit blurred by a Gaussian of 3 pixels."""
    x = digits[0]
    return {"black": make_baseline("black", x), "blur": make_baseline("blur", x, sigma=3.0)}


def rel_l1(ours, theirs) -> float:
    """max over digits of max |ours - theirs| / L1 norm of the maps (the acceptance measure)."""
    return relative_error(ours, theirs, norm="l1", per_sample=True)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def captum_noise(seed, n, samples, stdev):
    """The noise captum's NoiseTunnel draws after ``torch.manual_seed(seed)``, as (n, S, 1, 32, 32)."""
    torch.manual_seed(seed)
    noise = torch.normal(0, torch.tensor(stdev).repeat((n * samples, 1, 32, 32)))
    return noise.double().numpy().reshape(n, samples, 1, 32, 32)


def captum_shap_draws(seed, pool, n, samples):
    """GradientSHAP's baselines and points after ``np.random.seed(seed)``: (n, S, 1, 32, 32), (n, S)."""
    np.random.seed(seed)
    idx = np.random.choice(len(pool), n * samples)
    alphas = np.random.uniform(0.0, 1.0, n * samples)
    return pool[idx].reshape(n, samples, 1, 32, 32), alphas.reshape(n, samples)


# ----------------------------------------------------------------------------------------------
# Gradient methods
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("absolute", [True, False])
def test_saliency_is_captums(trained, twin, digits, absolute):
    x, y = digits
    theirs = Saliency(twin).attribute(t(x).requires_grad_(), target=t(y), abs=absolute).detach().numpy()
    ours = saliency(trained, x, y, abs=absolute)
    err = rel_l1(ours, theirs)
    print(f"saliency abs={absolute}: {err:.1e}")
    assert ours.shape == x.shape and err < 1e-13
    assert np.all(ours >= 0) if absolute else np.any(ours < 0)
    one = saliency(trained, x[3], int(y[3]), abs=absolute)
    assert one.shape == (1, 32, 32) and np.allclose(one, ours[3], rtol=0, atol=1e-15)


def test_saliency_of_the_probability_is_captums(trained, twin, digits):
    x, y = digits
    forward = lambda z: torch.softmax(twin(z), dim=1)              # noqa: E731
    theirs = Saliency(forward).attribute(t(x).requires_grad_(), target=t(y), abs=False).detach().numpy()
    assert rel_l1(saliency(trained, x, y, abs=False, output="probability"), theirs) < 1e-12


def test_input_x_gradient_is_captums(trained, twin, digits, baselines):
    x, y = digits
    theirs = InputXGradient(twin).attribute(t(x).requires_grad_(), target=t(y)).detach().numpy()
    err = rel_l1(input_x_gradient(trained, x, y), theirs)
    print(f"input x gradient: {err:.1e}")
    assert err < 1e-12
    grad = Saliency(twin).attribute(t(x).requires_grad_(), target=t(y), abs=False).detach().numpy()
    for name, b in baselines.items():                     # (x - x') dF/dx(x): the one-point IG
        assert rel_l1(input_x_gradient(trained, x, y, b), (x - b) * grad) < 1e-12, name


# ----------------------------------------------------------------------------------------------
# SmoothGrad
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_smoothgrad_is_captums_noise_tunnel(trained, twin, digits, nt_type):
    x, y = digits
    samples, stdev = 6, 0.5
    torch.manual_seed(11)
    theirs = NoiseTunnel(Saliency(twin)).attribute(t(x), nt_type=nt_type, nt_samples=samples, stdevs=stdev,
                                                    target=t(y), abs=False).detach().numpy()
    noise = captum_noise(11, N, samples, stdev)
    ours = smoothgrad(trained, x, y, noise, nt_type=nt_type, abs=False)
    err = rel_l1(ours, theirs)
    print(f"SmoothGrad ({nt_type}): {err:.1e}")
    assert err < 1e-8
    other = smoothgrad(trained, x, y, captum_noise(12, N, samples, stdev), nt_type=nt_type, abs=False)
    assert rel_l1(other, theirs) > 1e-3                      # other noise, other map: the draws matter


@pytest.mark.parametrize("kind", ["black", "blur"])
def test_smoothgrad_of_integrated_gradients_is_captums(trained, twin, digits, baselines, kind):
    x, y = digits
    b = baselines[kind]
    samples, stdev, steps = 4, 0.4, 8
    torch.manual_seed(21)
    nt = NoiseTunnel(IntegratedGradients(twin))
    theirs = nt.attribute(t(x), nt_type="smoothgrad", nt_samples=samples, stdevs=stdev, target=t(y),
                          baselines=t(b), n_steps=steps, method="gausslegendre").numpy()
    noise = captum_noise(21, N, samples, stdev)
    ours = smoothgrad(trained, x, y, noise, method="integrated_gradients", baseline=b, steps=steps,
                      integrated_method="gausslegendre")
    err = rel_l1(ours, theirs)
    print(f"SmoothGrad on IG from {kind}: {err:.1e}")
    assert err < 1e-8
    # it is the mean of IG over the noisy inputs, so its sum is that of their IG sums
    noisy = (x[:, None] + noise).reshape(-1, 1, 32, 32)
    ig, delta = integrated_gradients(trained, noisy, np.repeat(y, samples), np.repeat(b, samples, axis=0),
                                     steps=steps, method="gausslegendre")
    assert np.allclose(ours, ig.reshape(N, samples, 1, 32, 32).mean(axis=1), rtol=0, atol=1e-13)


def test_smoothgrad_of_gradient_x_input_averages_the_noisy_maps(trained, digits, baselines):
    x, y = digits[0][:3], digits[1][:3]
    noise = gaussian_noise(x, 5, 0.3, seed=1)
    b = baselines["black"][:3]
    ours = smoothgrad(trained, x, y, noise, method="input_x_gradient", baseline=b)
    noisy = x[:, None] + noise
    each = [input_x_gradient(trained, noisy[:, s], y, b) for s in range(5)]
    assert np.allclose(ours, np.mean(each, axis=0), rtol=0, atol=1e-13)


def test_gaussian_noise_is_seeded():
    x = np.zeros((3, 1, 32, 32))
    a, b = gaussian_noise(x, 50, 0.7, seed=4), gaussian_noise(x, 50, 0.7, seed=4)
    assert a.shape == (3, 50, 1, 32, 32) and np.array_equal(a, b)
    assert abs(a.std() - 0.7) < 0.01 and not np.array_equal(a, gaussian_noise(x, 50, 0.7, seed=5))
    assert gaussian_noise(x[0], 2, 1.0).shape == (2, 1, 32, 32)


# ----------------------------------------------------------------------------------------------
# Occlusion
# ----------------------------------------------------------------------------------------------

def test_occlusion_masks_follow_captums_windows():
    masks = occlusion_masks(2, 1, (3, 4))            # 2 x 3 positions of a 2x2 window
    assert masks.shape == (6, 3, 4)
    assert np.array_equal(masks[1], [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])   # last axis moves first
    assert np.array_equal(masks.sum(axis=0), [[1, 2, 2, 1], [2, 4, 4, 2], [1, 2, 2, 1]])
    cut = occlusion_masks(4, 3, (32, 32))            # ceil(28 / 3) + 1 = 11 positions: the last cut at 32
    assert cut.shape == (121, 32, 32) and cut[10].sum() == 4 * 2 and cut[-1].sum() == 2 * 2
    assert cut.sum(axis=0).min() >= 1
    with pytest.raises(ValueError, match="stride .* is larger than the window"):
        occlusion_masks(3, 4)
    with pytest.raises(ValueError, match="window must be a positive integer"):
        occlusion_masks(0, 1)
    with pytest.raises(ValueError, match="larger than the image"):
        occlusion_masks(40, 1)


@pytest.mark.parametrize("window,stride,n", [(4, 2, N), (4, 3, 4), (1, 1, 1)])
def test_occlusion_is_captums(trained, twin, digits, window, stride, n):
    """Equal after rounding to float32 (captum's output type); (4, 3) has cut-off last windows."""
    x, y = digits[0][:n], digits[1][:n]
    for kind in ("zero", "black"):
        b = None if kind == "zero" else make_baseline("black", x)
        theirs = Occlusion(twin).attribute(t(x), sliding_window_shapes=(1, window, window),
                                           strides=(1, stride, stride), perturbations_per_eval=64,
                                           baselines=None if b is None else t(b), target=t(y)).numpy()
        ours = occlusion(trained, x, y, window=window, stride=stride, baseline=b)
        assert theirs.dtype == np.float32 and ours.dtype == np.float64
        # one float32 ulp of each value; differences of F(x) - F(x) = 0 in float64 (1e-15) count as equal
        ulps = np.abs(ours.astype(np.float32) - theirs) / np.maximum(np.spacing(np.abs(theirs)), 1e-13)
        print(f"occlusion {window}/{stride} from {kind}: rel {rel_l1(ours, theirs):.1e}, "
              f"max {ulps.max():.2f} float32 ulp")
        assert ulps.max() <= 1, (kind, ulps.max())


def test_one_pixel_occlusion_is_a_finite_difference(trained, digits):
    x, y = digits[0][0], int(digits[1][0])
    b = make_baseline("black", x)
    o = occlusion(trained, x, y, window=1, stride=1, baseline=b)
    i, j = 10, 15
    moved = x.copy()
    moved[0, i, j] = b[0, i, j]
    assert o[0, i, j] == pytest.approx(model_output(trained, x, y) - model_output(trained, moved, y), abs=1e-12)
    assert np.abs(o[np.isclose(x, b)]).max() < 1e-12      # occluding black with black changes nothing


# ----------------------------------------------------------------------------------------------
# GradientSHAP / expected gradients
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pool_kind", ["train", "blur"])
def test_gradient_shap_is_captums(trained, twin, digits, mnist, pool_kind):
    """Two baseline distributions: 500 training digits, and those digits blurred."""
    x, y = digits
    pool = prepare(mnist.x_train[:500], dtype=np.float64)
    if pool_kind == "blur":
        pool = make_baseline("blur", pool, sigma=3.0)
    samples = 8
    np.random.seed(31)
    theirs = GradientShap(twin).attribute(t(x), baselines=t(pool), n_samples=samples, target=t(y)).numpy()
    bl, al = captum_shap_draws(31, pool, N, samples)
    ours = gradient_shap(trained, x, y, bl, al)
    err = rel_l1(ours, theirs)
    print(f"GradientSHAP from {pool_kind}: {err:.1e}")
    assert err < 1e-8


def test_gradient_shap_with_noise_is_captums(trained, twin, digits, mnist):
    x, y = digits
    pool = prepare(mnist.x_train[:500], dtype=np.float64)
    samples, stdev = 4, 0.3
    np.random.seed(41)
    torch.manual_seed(42)
    theirs = GradientShap(twin).attribute(t(x), baselines=t(pool), n_samples=samples, stdevs=stdev,
                                          target=t(y)).numpy()
    bl, al = captum_shap_draws(41, pool, N, samples)      # indices, then (after the noise) the points
    noise = captum_noise(42, N, samples, stdev)
    assert rel_l1(gradient_shap(trained, x, y, bl, al, noise=noise), theirs) < 1e-8


def test_expected_gradients_is_complete_on_average(trained, digits, mnist):
    """E sum EG = F(x) - E F(x'): with 256 draws, within 10% of the gap on 3 digits."""
    x, y = digits[0][:3], digits[1][:3]
    pool = prepare(mnist.x_train[:1000], dtype=np.float64)
    eg = expected_gradients(trained, x, y, pool, samples=256, seed=2)
    gap = model_output(trained, x, y) - np.array([model_output(trained, pool, int(c)).mean() for c in y])
    sums = eg.reshape(3, -1).sum(axis=1)
    print("sum EG", np.round(sums, 2), "F(x) - E F(x')", np.round(gap, 2))
    assert np.all(np.abs(sums - gap) < 0.1 * np.abs(gap))
    bl, al = draw_baselines(pool, 3, 256, seed=2)
    assert np.array_equal(eg, gradient_shap(trained, x, y, bl, al))


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------

def test_bad_input_raises_clear_errors(digits):
    model = LeNet5(dtype=np.float64)
    x, y = digits[0][:2], digits[1][:2]
    with pytest.raises(ValueError, match=r"noise must have shape \(N, S, 1, 32, 32\)"):
        smoothgrad(model, x, y, np.zeros((3, 2, 1, 32, 32)))
    with pytest.raises(ValueError, match="unknown method 'occlusion' for SmoothGrad"):
        smoothgrad(model, x, y, np.zeros((2, 2, 1, 32, 32)), method="occlusion")
    with pytest.raises(ValueError, match="unknown nt_type 'mean'"):
        smoothgrad(model, x, y, np.zeros((2, 2, 1, 32, 32)), nt_type="mean")
    with pytest.raises(ValueError, match=r"baseline shape \(3, 1, 32, 32\) differs"):
        occlusion(model, x, y, baseline=np.zeros((3, 1, 32, 32)))
    with pytest.raises(ValueError, match=r"baselines must have shape \(N, S, 1, 32, 32\)"):
        gradient_shap(model, x, y, np.zeros((2, 1, 32, 32)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"alphas must be 2 x 3 numbers in \[0, 1\]"):
        gradient_shap(model, x, y, np.zeros((2, 3, 1, 32, 32)), np.full((2, 3), 1.5))
    with pytest.raises(ValueError, match="target 10 is outside 0..9"):
        saliency(model, x, 10)
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        gaussian_noise(x, 0, 1.0)
    with pytest.raises(ValueError, match="baseline pool must have shape"):
        draw_baselines(np.zeros((5, 28, 28)), 2, 3)
