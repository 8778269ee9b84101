"""Integrated Gradients for the scratch LeNet-5 and baselines to integrate from (chapter 9; the figures
are in :mod:`lenet_core.viz`).

Integrated Gradients (Sundararajan, Taly & Yan, 2017) attributes a model output ``F`` to the input
pixels by integrating the gradient along the straight path from a baseline ``x'`` to the input ``x``::

    IG_i(x) = (x_i - x'_i) * integral_0^1 dF/dx_i (x' + a (x - x')) da
           ~= (x_i - x'_i) * sum_k w_k dF/dx_i (x' + a_k (x - x'))

The gradient ``dF/dx`` is the scratch model's own backward pass (:meth:`Sequential.backward`), run on
all path points at once (in chunks of ``chunk_size`` points to bound memory). *Completeness* says
``sum_i IG_i(x) = F(x) - F(x')`` for the exact integral; the numerical gap is the
*convergence delta* ``sum_i IG_i - (F(x) - F(x'))``, which :func:`integrated_gradients` returns.

What ``F`` is
-------------
``output="logit"`` (the default): ``F`` is the logit of ``target``, the pre-softmax score
``model.forward(x)[:, target]``. This is what captum's ``IntegratedGradients(twin)`` attributes for
:class:`lenet_core.twin.TorchLeNet5`, whose forward returns logits. The logit is the natural choice:
it is what the network computes linearly from its last features, and it does not saturate (a
probability already near 1 barely changes along most of the path, so its attributions crowd into
the first few path points). ``output="probability"``: ``F = softmax(logits)[target]``; captum
matches it when the twin's forward is wrapped in a softmax (:func:`torch_forward`).

Quadrature
----------
``method`` names one of captum's rules with captum's points ``a_k`` and weights ``w_k``
(:func:`quadrature`): ``"riemann_trapezoid"`` (default here; ``steps`` equally spaced points from 0
to 1, end weights halved), ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"`` and
``"gausslegendre"`` (captum's default). captum casts every weight to float32 and builds the Riemann
points with ``torch.linspace`` in float32, so the same rounding is applied here. The weights and
the Gauss-Legendre points are captum's exactly. The Riemann points are computed in float64 and
rounded to float32 once, while torch computes them in float32 arithmetic, so many of them differ
from captum's by one float32 step (at most 2**-24, 6e-8). Measured against captum 0.9 with torch
2.x, for the four Riemann rules: 9 (trapezoid, right) to 17 (left) of 50 points differ, and 51
(trapezoid), 175 (middle), 188 (right) and 196 (left) of 500 points; none by more than that
step. Scratch and captum therefore evaluate nearly the same path and agree far below 1e-6 (about
1e-8 relative for the Riemann rules, 1e-15 for Gauss-Legendre).

A quirk worth knowing: captum's ``"riemann_trapezoid"`` puts ``steps`` points on [0, 1] (spacing
``1/(steps-1)``) but weighs them with ``1/steps`` (halved at both ends), so its weights sum to
``1 - 1/steps``: the integral, and so ``sum(attributions)``, comes out short by about
``1/steps`` of ``F(x) - F(x')`` (2% at 50 steps, 0.5% at 200), which shows up in the convergence
delta. ``method="trapezoid"`` (not in captum) is the textbook trapezoid rule on the same points,
weights ``1/(steps-1)`` halved at the ends; its error falls as ``1/steps^2``.

Shapes
------
``x`` is either one prepared image ``(1, 32, 32)`` or a batch ``(N, 1, 32, 32)``
(:func:`lenet_core.data.prepare`). ``target`` is a class in 0..9, or for a batch a sequence of N
classes. The baseline has the same shape as ``x``. Attributions have the shape of ``x``; the delta is a
float for one image and an array ``(N,)`` for a batch.

Note on captum's default baseline: captum integrates from ``0`` when no baseline is given. After
:func:`lenet_core.data.prepare`, ``0`` is the *mean pixel* (a dim grey), not black. Here the default
baseline is black, the normalised value of a 0 pixel, ``(0 - MNIST_MEAN) / MNIST_STD``.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..data import MNIST_MEAN, MNIST_STD, normalize, prepare
from ..layers import input_grad
from ..losses import softmax

__all__ = ["METHODS", "OUTPUTS", "BASELINES", "quadrature", "model_output", "output_gradient",
           "integrated_gradients", "make_baseline", "gaussian_blur", "torch_forward"]

METHODS = ("riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle", "gausslegendre", "trapezoid")
OUTPUTS = ("logit", "probability")
BASELINES = ("black", "blur", "uniform", "mean", "zero")
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 32, 32)


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------

def _as_batch(x, name: str = "image") -> tuple[np.ndarray, bool]:
    """``(1, 32, 32)`` -> ``((1, 1, 32, 32), True)``; ``(N, 1, 32, 32)`` -> ``(x, False)``; else ValueError."""
    x = np.asarray(x)
    if x.shape == IMAGE_SHAPE:
        return x[None], True
    if x.ndim == 4 and x.shape[1:] == IMAGE_SHAPE and x.shape[0] >= 1:
        return x, False
    raise ValueError(f"{name} must have shape (1, 32, 32) (one prepared digit) or (N, 1, 32, 32) (a batch), "
                     f"got shape {x.shape}; use lenet_core.data.prepare on (N, 28, 28) digits")


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite numbers (got NaN, infinity or non-numeric dtype {x.dtype})")


def _targets(target, n: int) -> np.ndarray:
    """An int, or a sequence of ``n`` ints, in 0..9 -> int array (n,); anything else is a ValueError."""
    t = np.asarray(target)
    if t.dtype == bool or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"target must be an integer class in 0..{NUM_CLASSES - 1}, got {target!r}")
    if t.ndim == 0:
        t = np.full(n, int(t))
    elif t.shape != (n,):
        raise ValueError(f"target must be one class or {n} classes (one per image), got shape {t.shape}")
    bad = t[(t < 0) | (t >= NUM_CLASSES)]
    if bad.size:
        raise ValueError(f"target {int(bad[0])} is outside 0..{NUM_CLASSES - 1}")
    return t.astype(np.int64)


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {OUTPUTS}")


# ----------------------------------------------------------------------------------------------
# Quadrature: captum's points and weights, in NumPy
# ----------------------------------------------------------------------------------------------

def quadrature(method: str = "riemann_trapezoid", steps: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alphas`` in [0, 1] and weights, both ``(steps,)`` float64, of the rule ``method``.

    ``integral_0^1 f(a) da ~= sum(weights * f(alphas))``. ``"trapezoid"`` is the textbook trapezoid
    rule in float64; every other method is captum's rule of that name, as in
    ``captum.attr._utils.approximation_methods``: Gauss-Legendre points from
    ``np.polynomial.legendre.leggauss`` mapped from [-1, 1] to [0, 1] (captum's exactly); Riemann
    points from a float64 ``linspace`` rounded to float32. captum's come from ``torch.linspace``
    computed in float32 arithmetic, so they are not always the same float32 number: for all four
    Riemann rules many points differ by one float32 step (up to 2**-24; e.g. 175 to 196 of 500
    points for middle, right and left, 51 of 500 for trapezoid). Every weight is rounded to
    float32, as captum's ``torch.tensor(step_sizes).float()`` does, so the weights are captum's
    exactly; the 1e-9 floor of Gauss-Legendre's convergence delta comes from that rounding.
    """
    if method not in METHODS:
        raise ValueError(f"unknown integration method {method!r}; choose one of {METHODS}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise ValueError(f"steps must be an integer, got {steps!r}")
    steps = int(steps)
    minimum = 1 if method == "gausslegendre" else 2
    if steps < minimum:
        raise ValueError(f"{method} needs steps >= {minimum}, got {steps}")
    n = steps
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = 0.5 * (1 + nodes), 0.5 * w
    elif method == "trapezoid":                   # the textbook rule, not captum's: exact weights, float64
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1 / (n - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    else:
        kind = method.split("_")[1]
        start, stop = {"trapezoid": (0.0, 1.0), "left": (0.0, 1 - 1 / n),
                       "middle": (1 / (2 * n), 1 - 1 / (2 * n)), "right": (1 / n, 1.0)}[kind]
        alphas = np.linspace(start, stop, n).astype(np.float32).astype(np.float64)
        weights = np.full(n, 1 / n)
        if kind == "trapezoid":
            weights[0] /= 2
            weights[-1] /= 2
    return alphas, weights.astype(np.float32).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# F and dF/dx with the scratch model
# ----------------------------------------------------------------------------------------------

def _forward_output(model, xb: np.ndarray, t: np.ndarray, output: str, need_grad: bool):
    """F (n,) for images xb (n, 1, 32, 32) and targets t (n,); with ``need_grad`` also dF/dx (n, 1, 32, 32)."""
    logits = model.forward(xb)
    rows = np.arange(len(t))
    if output == "logit":
        f = logits[rows, t]
        dout = np.zeros_like(logits)
        dout[rows, t] = 1
    else:
        p = softmax(logits)
        f = p[rows, t]
        dout = -f[:, None] * p                    # d p_t / d z_j = p_t (delta_tj - p_j)
        dout[rows, t] += f
    if not need_grad:
        return f, None
    return f, model.backward(dout)


def model_output(model, x, target, output: str = "logit", batch_size: int = 1000):
    """F of the scratch ``model`` for images ``x`` ((1, 32, 32) or (N, 1, 32, 32)) and ``target``.

    ``output="logit"``: the target's logit; ``"probability"``: its softmax probability. Returns a
    float for one image, an array (N,) for a batch. Computed in the model's dtype.
    """
    _check_output(output)
    xb, single = _as_batch(x)
    t = _targets(target, len(xb))
    xb = xb.astype(model.dtype, copy=False)
    f = np.concatenate([_forward_output(model, xb[i:i + batch_size], t[i:i + batch_size], output, False)[0]
                        for i in range(0, len(xb), batch_size)])
    return float(f[0]) if single else f


def output_gradient(model, x, target, output: str = "logit"):
    """``(F, dF/dx)`` from one forward and one backward pass of the scratch ``model``.

    x: (1, 32, 32) or (N, 1, 32, 32); returns F as a float or (N,), and dF/dx with the shape of x.
    (The backward pass also overwrites the model's parameter gradients.)
    """
    _check_output(output)
    xb, single = _as_batch(x)
    t = _targets(target, len(xb))
    with input_grad(model):
        f, g = _forward_output(model, xb.astype(model.dtype, copy=False), t, output, True)
    return (float(f[0]), g[0]) if single else (f, g)


def integrated_gradients(model, x, target, baseline=None, steps: int = 50, method: str = "riemann_trapezoid",
                         output: str = "logit", chunk_size: int = 128):
    """Integrated Gradients of the scratch ``model``'s output ``F`` for ``target``; see the module docstring.

    x: one prepared image ``(1, 32, 32)`` or a batch ``(N, 1, 32, 32)``.
    target: a class in 0..9 (for every image) or a sequence of N classes.
    baseline: same shape as x; ``None`` means black (:func:`make_baseline` ``("black", x)``).
    steps, method: the quadrature (:func:`quadrature`, captum's points and weights).
    output: ``"logit"`` (F = target logit, captum's default on a logit model) or ``"probability"``.
    chunk_size: how many path points go through the model in one forward/backward pass.

    Returns ``(attributions, delta)``: attributions with the shape of x (in the model's dtype) and the
    convergence delta ``sum(attributions) - (F(x) - F(baseline))``, a float for one image and ``(N,)``
    for a batch. Raises ``ValueError`` naming the problem for a target outside 0..9, an image of the
    wrong shape, or a baseline whose shape differs from the image's.
    """
    _check_output(output)
    alphas, weights = quadrature(method, steps)
    xb, single = _as_batch(x)
    _check_finite(xb, "image")
    t = _targets(target, len(xb))
    if baseline is None:
        baseline = make_baseline("black", x)
    baseline = np.asarray(baseline)
    if baseline.shape != np.shape(x):
        raise ValueError(f"baseline shape {baseline.shape} differs from the input's shape {np.shape(x)}")
    _check_finite(baseline, "baseline")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    dtype = model.dtype
    xb = xb.astype(dtype, copy=False)
    bb = baseline.reshape(xb.shape).astype(dtype, copy=False)
    diff = xb - bb
    n = len(xb)
    total = np.zeros_like(xb)                               # sum_k w_k dF/dx(path point k), per image
    per_sample = min(n, chunk_size)                         # images per chunk
    per_alpha = max(1, chunk_size // per_sample)            # path points per image per chunk
    with input_grad(model):
        for i in range(0, n, per_sample):
            sl = slice(i, i + per_sample)
            for k in range(0, len(alphas), per_alpha):
                a = alphas[k:k + per_alpha].astype(dtype)
                points = bb[None, sl] + a[:, None, None, None, None] * diff[None, sl]   # (a, m, 1, 32, 32)
                m = points.shape[1]
                _, g = _forward_output(model, points.reshape(-1, *IMAGE_SHAPE), np.tile(t[sl], len(a)),
                                       output, True)
                total[sl] += np.tensordot(weights[k:k + per_alpha].astype(dtype), g.reshape(len(a), m, -1),
                                          axes=1).reshape(m, *IMAGE_SHAPE)
    attributions = total * diff
    f_x = model_output(model, xb, t, output)
    f_b = model_output(model, bb, t, output)
    delta = attributions.reshape(n, -1).sum(axis=1) - (f_x - f_b)
    if single:
        return attributions[0], float(delta[0])
    return attributions, delta


# ----------------------------------------------------------------------------------------------
# Baselines
# ----------------------------------------------------------------------------------------------

def gaussian_blur(x, sigma: float) -> np.ndarray:
    """Gaussian blur of the last two axes of ``x`` (any leading shape), in NumPy.

    A separable kernel ``exp(-d^2 / (2 sigma^2))``, normalised to sum 1, truncated at
    ``ceil(3 sigma)`` pixels; borders are extended with the edge pixels (the black background of a
    prepared digit), so a constant image stays constant. ``sigma = 0`` returns a copy.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"gaussian_blur needs an image with at least 2 axes, got shape {x.shape}")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    if sigma == 0:
        return x.astype(dtype, copy=True)
    radius = int(np.ceil(3 * sigma))
    d = np.arange(-radius, radius + 1)
    kernel = np.exp(-d ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).astype(dtype)
    out = x.astype(dtype)
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=axis)
        out = windows @ kernel
    return out


def make_baseline(kind: str, x, *, sigma: float = 3.0, seed=0, images=None) -> np.ndarray:
    """A baseline with the shape and dtype of ``x`` ((1, 32, 32) or (N, 1, 32, 32), prepared images).

    - ``"black"``: every pixel the normalised value of a 0 pixel, ``(0 - MNIST_MEAN) / MNIST_STD``
      (the value of the padding that :func:`lenet_core.data.prepare` adds), "no ink at all";
    - ``"blur"``: ``x`` blurred with a Gaussian of ``sigma`` pixels (:func:`gaussian_blur`): the
      digit's rough mass is kept, its strokes removed;
    - ``"uniform"``: independent uniform noise between the normalised values of black and white,
      from ``np.random.default_rng(seed)``;
    - ``"mean"``: the mean digit of ``images`` (required: prepared ``(M, 1, 32, 32)`` or raw uint8
      ``(M, 28, 28)``, e.g. the training set), repeated for every image of ``x``;
    - ``"zero"``: all zeros, captum's default baseline, which after normalisation is the *mean pixel
      intensity* (a dim grey), not black.
    """
    xb, _ = _as_batch(x, "the image a baseline is made for")
    x = np.asarray(x)
    dtype = x.dtype.type if np.issubdtype(x.dtype, np.floating) else np.float32
    if kind == "black":
        return normalize(np.zeros(x.shape, dtype=np.uint8), dtype=dtype)
    if kind == "blur":
        return gaussian_blur(x.astype(dtype), sigma)
    if kind == "uniform":
        low, high = (0 - MNIST_MEAN) / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD
        return np.random.default_rng(seed).uniform(low, high, size=x.shape).astype(dtype)
    if kind == "mean":
        if images is None:
            raise ValueError("the 'mean' baseline needs images= (e.g. the prepared training images)")
        images = np.asarray(images)
        if images.ndim == 3 and images.shape[1:] == (28, 28):
            images = prepare(images, dtype=np.float64)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or len(images) == 0:
            raise ValueError(f"images for the 'mean' baseline must have shape (M, 1, 32, 32) or (M, 28, 28), "
                             f"got shape {images.shape}")
        mean = images.mean(axis=0, dtype=np.float64).astype(dtype)          # (1, 32, 32)
        return np.broadcast_to(mean, x.shape).copy()
    if kind == "zero":
        return np.zeros(x.shape, dtype=dtype)
    raise ValueError(f"unknown baseline {kind!r}; choose one of {BASELINES}")


# ----------------------------------------------------------------------------------------------
# The same F for captum
# ----------------------------------------------------------------------------------------------

def torch_forward(module, output: str = "logit"):
    """The forward function to hand captum so that it attributes the same F as :func:`integrated_gradients`.

    ``"logit"``: the module itself (its forward returns logits); ``"probability"``: ``softmax(module(x))``.
    """
    _check_output(output)
    if output == "logit":
        return module
    import torch

    def probability(x):
        return torch.softmax(module(x), dim=1)
    return probability
