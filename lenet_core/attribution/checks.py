"""Measuring whether an attribution can be trusted: sanity checks and faithfulness curves.

Sanity checks (Adebayo et al., 2018, "Sanity Checks for Saliency Maps"): an attribution that
explains the *model* must change when the model's weights are destroyed.

- :func:`cascading_randomization` re-initialises LeNet-5's layers from the output down to C1, one
  more at a time (``OUT``, then ``OUT`` and ``F6``, ..., then all five), with the layers' own
  initialisation (LeCun uniform weights, zero biases: a fresh :func:`lenet_core.model.LeNet5`);
- the data-randomisation test compares with a network trained on shuffled labels
  (``experiments/attribution_checks.py`` trains it);
- the maps are compared with :func:`spearman` (rank correlation, of the signed maps or of their
  absolute values) and :func:`ssim` (structural similarity of the absolute maps scaled to [0, 1]).

Faithfulness (Petsiuk et al., 2018, RISE): :func:`deletion_insertion` removes the pixels in the
order of an attribution (most positive first), replacing them with a baseline (deletion), or
reveals them on the baseline in the same order (insertion), and tracks the probability of the
class; a faithful map makes the deletion curve fall fast (small area) and the insertion curve rise
fast (large area). A random order (:func:`pixel_order` of random scores) is the control.

:func:`standard_methods` is the set of attribution methods the script and the chapter compare,
with their randomness fixed by a seed, so two models are explained with the same noise and draws.
"""

from __future__ import annotations

import numpy as np

from .ig import IMAGE_SHAPE, _as_batch, _targets, integrated_gradients
from .methods import (draw_baselines, gaussian_noise, gradient_shap, input_x_gradient,
                                  occlusion, saliency, smoothgrad)
from ..losses import softmax
from ..model import LeNet5

__all__ = ["rankdata", "spearman", "ssim", "scale_maps", "CASCADE", "reinitialized",
           "cascading_randomization", "pixel_order", "deletion_insertion", "curve_auc",
           "standard_methods", "METHOD_NAMES"]

#: LeNet-5's layers with parameters, from the output down to the input
CASCADE = ("OUT", "F6", "C5", "C3", "C1")


# ----------------------------------------------------------------------------------------------
# Comparing maps: Spearman rank correlation and SSIM
# ----------------------------------------------------------------------------------------------

def rankdata(a) -> np.ndarray:
    """Ranks 1..D along the last axis, ties getting the average of their ranks (float64)."""
    a = np.asarray(a, dtype=np.float64)
    flat = a.reshape(-1, a.shape[-1])
    out = np.empty_like(flat)
    for r, row in enumerate(flat):
        order = np.argsort(row, kind="stable")
        srt = row[order]
        new = np.r_[True, srt[1:] != srt[:-1]]                    # first element of each tie group
        group = np.cumsum(new) - 1                                  # tie group of each sorted element
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], len(row)]                          # one past each group's last position
        mean_rank = (starts + 1 + ends) / 2                         # average of ranks starts+1 .. ends
        out[r, order] = mean_rank[group]
    return out.reshape(a.shape)


def spearman(a, b) -> np.ndarray:
    """Spearman rank correlation of each pair of maps: ``a``, ``b`` of shape (N, ...) -> (N,).

    The Pearson correlation of the (tie-averaged) ranks of the flattened maps; NaN where a map is
    constant (its ranks have no spread).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"spearman needs two batches of maps of the same shape (N, ...), got {a.shape}, {b.shape}")
    ra = rankdata(a.reshape(len(a), -1))
    rb = rankdata(b.reshape(len(b), -1))
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(axis=1) / den


def scale_maps(a) -> np.ndarray:
    """``|a|`` divided by its maximum, per map: (N, ...) -> values in [0, 1] (an all-zero map stays 0)."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    top = a.reshape(len(a), -1).max(axis=1).reshape(-1, *([1] * (a.ndim - 1)))
    return np.divide(a, top, out=np.zeros_like(a), where=top > 0)


def ssim(a, b, *, data_range: float = 1.0, sigma: float = 1.5, size: int = 11,
         k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """Mean structural similarity (Wang et al., 2004) of each pair of images: (N, ..., H, W) -> (N,).

    Local means, variances and covariance are weighted by a ``size`` x ``size`` Gaussian window of
    ``sigma`` pixels (normalised to sum 1), at every position where the window fits inside the
    image (no padding); ``SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))``
    with ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, ``L = data_range``, averaged over the positions.
    1 for identical images. Use :func:`scale_maps` first to compare attribution magnitudes.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"ssim needs two batches of images of the same shape (N, ..., H, W), got {a.shape}, {b.shape}")
    h, w = a.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"the SSIM window ({size} pixels) is larger than the images {(h, w)}")
    a = a.reshape(len(a), -1, h, w)
    b = b.reshape(len(b), -1, h, w)
    d = np.arange(size) - (size - 1) / 2
    g = np.exp(-d ** 2 / (2 * sigma ** 2))
    win = np.outer(g, g) / np.outer(g, g).sum()

    def filt(z):
        return np.tensordot(np.lib.stride_tricks.sliding_window_view(z, (size, size), axis=(-2, -1)),
                            win, axes=2)
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.reshape(len(s), -1).mean(axis=1)


# ----------------------------------------------------------------------------------------------
# Model randomisation
# ----------------------------------------------------------------------------------------------

def reinitialized(model, layers, seed=0):
    """A copy of ``model`` (a LeNet-5) whose ``layers`` (names such as ``"OUT"``) are re-initialised
    as a fresh :func:`lenet_core.model.LeNet5` initialises them (``LeNet5(seed)``'s values); the
    other layers keep their weights. ``model`` itself is not changed."""
    fresh = LeNet5(seed=seed, dtype=model.dtype).parameters()
    state = model.state_dict()
    names = set(layers)
    unknown = names - {name.split(".")[0] for name in state}
    if unknown:
        raise ValueError(f"no layer(s) {sorted(unknown)} with parameters in this model; it has {list(CASCADE)}")
    for name in state:
        if name.split(".")[0] in names:
            state[name] = fresh[name].copy()
    copy = LeNet5(dtype=model.dtype)
    copy.load_state_dict(state)
    return copy


def cascading_randomization(model, seed=0, order=CASCADE):
    """``[(layer, model with order[0..k] re-initialised), ...]`` for k = 0..len(order) - 1: the
    cascade of Adebayo et al. from the output layer down to the first (all from ``LeNet5(seed)``)."""
    return [(layer, reinitialized(model, order[:k + 1], seed)) for k, layer in enumerate(order)]


# ----------------------------------------------------------------------------------------------
# Faithfulness: deletion and insertion curves
# ----------------------------------------------------------------------------------------------

def pixel_order(scores, seed=0) -> np.ndarray:
    """For each map of ``scores`` (N, ...) the flat pixel indices from the highest score to the
    lowest, ties in a random order (``np.random.default_rng(seed)``): (N, D) int."""
    s = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    tiebreak = np.random.default_rng(seed).random(s.shape)
    return np.lexsort((tiebreak, -s), axis=-1)


def deletion_insertion(model, x, target, order, baseline, *, mode: str = "deletion", steps: int = 32,
                       batch_size: int = 4096) -> np.ndarray:
    """The class probability as pixels are removed (``"deletion"``) or revealed (``"insertion"``).

    x: (N, 1, 32, 32) prepared images; target: N classes; order: (N, 1024) pixel indices, most
    important first (:func:`pixel_order`); baseline: a number or (N, 1, 32, 32), what a removed
    pixel becomes (deletion), or the image the pixels are revealed on (insertion).
    After step k of ``steps`` the first ``k * 1024 / steps`` pixels of the order are
    replaced/revealed. Returns the softmax probability of ``target``: (N, steps + 1), column 0 the
    unchanged image (deletion) or the baseline (insertion), the last column the other end.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"unknown mode {mode!r}; choose 'deletion' or 'insertion'")
    xb, _ = _as_batch(x)
    n, d = len(xb), int(np.prod(IMAGE_SHAPE))
    t = _targets(target, n)
    order = np.asarray(order)
    if order.shape != (n, d):
        raise ValueError(f"order must have shape ({n}, {d}) (a pixel order per image), got {order.shape}")
    if d % steps:
        raise ValueError(f"steps must divide {d} pixels, got {steps}")
    dtype = model.dtype
    xf = xb.astype(dtype).reshape(n, d)
    bf = np.broadcast_to(np.asarray(baseline, dtype=dtype), xb.shape).reshape(n, d)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(d)[None].repeat(n, axis=0), axis=1)   # position of each pixel
    thresholds = np.arange(steps + 1) * (d // steps)                                 # pixels changed after k steps
    probs = np.empty((n, steps + 1))
    per = max(1, batch_size // (steps + 1))
    for i in range(0, n, per):
        sl = slice(i, i + per)
        changed = rank[sl, None, :] < thresholds[None, :, None]                    # (m, steps+1, D)
        first, second = (bf, xf) if mode == "deletion" else (xf, bf)
        imgs = np.where(changed, first[sl, None], second[sl, None])
        m = imgs.shape[0]
        p = softmax(model.forward(imgs.reshape(-1, *IMAGE_SHAPE)))
        probs[sl] = p[np.arange(m * (steps + 1)), np.repeat(t[sl], steps + 1)].reshape(m, steps + 1)
    return probs


def curve_auc(curves) -> np.ndarray:
    """Area under each curve (N, K + 1) over the fraction of pixels, 0 to 1 (trapezoid rule): (N,)."""
    c = np.asarray(curves, dtype=np.float64)
    k = c.shape[-1] - 1
    return (c[..., 1:] + c[..., :-1]).sum(axis=-1) / (2 * k)


# ----------------------------------------------------------------------------------------------
# The methods compared
# ----------------------------------------------------------------------------------------------

#: the methods of :func:`standard_methods`, in the order of the chapter's table
METHOD_NAMES = ("gradient", "|gradient|", "gradient x input", "SmoothGrad", "Integrated Gradients",
                "SmoothGrad on IG", "occlusion", "expected gradients")

#: SmoothGrad's noise: 15% of the range of a prepared pixel (black -0.42 to white 2.82), as Smilkov et al.
SMOOTHGRAD_STDEV = 0.15 * (1.0 / 0.3081)


def standard_methods(pool, *, seed=0, smooth_samples=16, ig_steps=32, sg_ig_samples=8, sg_ig_steps=16,
                     occlusion_window=4, occlusion_stride=2, eg_samples=32):
    """``{name: f(model, x, target, baseline) -> maps}`` for the names in :data:`METHOD_NAMES`.

    The randomness (SmoothGrad's noise, expected gradients' baselines from ``pool`` (prepared
    training images) and path points) is drawn from ``seed`` on every call, so every model sees the
    same samples for the same images. ``baseline`` (one per image) is used by gradient x input
    (``x - x'``), IG, SmoothGrad on IG and occlusion; the others ignore it. IG uses captum's
    Gauss-Legendre rule.
    """
    def noise(x, samples):
        return gaussian_noise(x, samples, SMOOTHGRAD_STDEV, seed=seed)

    return {
        "gradient": lambda m, x, y, b: saliency(m, x, y, abs=False),
        "|gradient|": lambda m, x, y, b: saliency(m, x, y, abs=True),
        "gradient x input": lambda m, x, y, b: input_x_gradient(m, x, y, b),
        "SmoothGrad": lambda m, x, y, b: smoothgrad(m, x, y, noise(x, smooth_samples), abs=False),
        "Integrated Gradients": lambda m, x, y, b: integrated_gradients(
            m, x, y, b, steps=ig_steps, method="gausslegendre")[0],
        "SmoothGrad on IG": lambda m, x, y, b: smoothgrad(
            m, x, y, noise(x, sg_ig_samples), method="integrated_gradients", baseline=b, steps=sg_ig_steps,
            integrated_method="gausslegendre"),
        "occlusion": lambda m, x, y, b: occlusion(m, x, y, window=occlusion_window, stride=occlusion_stride,
                                                  baseline=b),
        "expected gradients": lambda m, x, y, b: gradient_shap(
            m, x, y, *draw_baselines(pool, len(x), eg_samples, seed=seed)),
    }
