"""More attribution methods for the scratch LeNet-5, each equal to captum 0.9's on the PyTorch twin.

Every method explains a model output ``F`` (the logit of ``target`` by default, or its softmax
probability with ``output="probability"``, as in :mod:`lenet_core.attribution`) for prepared
images ``x`` of shape ``(1, 32, 32)`` or ``(N, 1, 32, 32)``, and returns attributions with the shape
of ``x``. The gradients are the scratch model's own backward pass
(:func:`lenet_core.attribution.output_gradient`). All of them are relatives of Integrated Gradients
(IG), ``IG_i = (x_i - x'_i) int_0^1 dF/dx_i(x' + a (x - x')) da``:

======================= ===================================================== ==========================
method                  equation                                              captum 0.9 equivalent
======================= ===================================================== ==========================
:func:`saliency`        ``dF/dx (x)``, or ``|dF/dx (x)|``                       ``Saliency(abs=...)``
:func:`input_x_gradient` ``(x - x') * dF/dx (x)`` (captum: ``x' = 0``)           ``InputXGradient``
:func:`smoothgrad`      ``1/S sum_s A(x + eps_s)``, ``eps_s ~ N(0, sigma^2 I)``  ``NoiseTunnel(A)``
:func:`occlusion`       ``mean over patches P containing i of F(x) - F(x_P->x')`` ``Occlusion``
:func:`gradient_shap`   ``1/S sum_s (x - x'_s) * dF/dx (x'_s + a_s (x - x'_s))`` ``GradientShap``
======================= ===================================================== ==========================

Randomness is always passed in (``noise``, ``baselines``, ``alphas``), never drawn inside, so the
scratch side and captum can see the same samples; :func:`gaussian_noise` and
:func:`draw_baselines` draw them with NumPy for everyday use. The tests reproduce captum's own draws
instead (``torch.normal`` after ``torch.manual_seed``, ``np.random.choice``/``np.random.uniform`` after
``np.random.seed``) and feed them to these functions, so the comparison is against unmodified captum.
"""

from __future__ import annotations

import numbers

import numpy as np

from .ig import (IMAGE_SHAPE, _as_batch, _check_finite, _check_output, _targets,
                          integrated_gradients, model_output, output_gradient)

__all__ = ["saliency", "input_x_gradient", "smoothgrad", "gaussian_noise", "SMOOTHGRAD_METHODS",
           "NT_TYPES", "occlusion", "occlusion_masks", "gradient_shap", "draw_baselines",
           "expected_gradients"]

SMOOTHGRAD_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _prepare(x, target, name="image"):
    xb, single = _as_batch(x, name)
    _check_finite(xb, name)
    return xb, single, _targets(target, len(xb))


def _baseline_like(baseline, xb, name="baseline"):
    """A baseline for the batch ``xb``: ``None`` -> zeros (captum's default); a number, one image
    ``(1, 32, 32)`` or one per image ``(N, 1, 32, 32)``; returned as an array of xb's shape."""
    if baseline is None:
        return np.zeros_like(xb)
    b = np.asarray(baseline, dtype=xb.dtype)
    if b.ndim == 0 or b.shape == IMAGE_SHAPE:
        b = np.broadcast_to(b, xb.shape)
    if b.shape != xb.shape:
        raise ValueError(f"{name} shape {b.shape} differs from the input's shape {xb.shape} "
                         f"(give a number, one image (1, 32, 32) or one per image)")
    _check_finite(b, name)
    return np.ascontiguousarray(b)


def _gradients(model, xb, t, output, batch_size=512):
    """dF/dx for a batch, in chunks of ``batch_size`` images (bounded memory)."""
    return np.concatenate([output_gradient(model, xb[i:i + batch_size], t[i:i + batch_size], output)[1]
                           for i in range(0, len(xb), batch_size)])


def _finish(a, single):
    return a[0] if single else a


# ----------------------------------------------------------------------------------------------
# Gradient methods
# ----------------------------------------------------------------------------------------------

def saliency(model, x, target, *, abs: bool = True, output: str = "logit", batch_size: int = 512):
    """The gradient ``dF/dx`` at the input (Simonyan, Vedaldi & Zisserman, 2014), or its absolute value.

    ``S_i(x) = dF/dx_i (x)``; with ``abs=True`` (captum's default) ``|dF/dx_i (x)|``.
    Relation to IG: the gradient is IG's integrand at the single point ``a = 1`` (the input itself),
    without the factor ``x_i - x'_i``; it says how F reacts to a small change of pixel i *here*,
    which for a saturated network is little. Equals captum's ``Saliency(twin).attribute(x, target,
    abs=abs)``. x: (1, 32, 32) or (N, 1, 32, 32); returns the shape of x.
    """
    _check_output(output)
    xb, single, t = _prepare(x, target)
    g = _gradients(model, xb.astype(model.dtype, copy=False), t, output, batch_size)
    return _finish(np.abs(g) if abs else g, single)


def input_x_gradient(model, x, target, baseline=None, *, output: str = "logit", batch_size: int = 512):
    """Gradient times input: ``(x_i - x'_i) * dF/dx_i (x)``; captum's ``InputXGradient`` when ``baseline=None``.

    captum multiplies by the input itself (``x' = 0``, which after normalisation is the mean grey,
    not black); pass ``baseline`` (a number, one image, or one per image) to multiply by ``x - x'``.
    Relation to IG: it is IG with the integral replaced by its integrand at ``a = 1`` (a one-point
    Riemann sum); exact when F is linear along the path, far from it for a saturated network, so
    ``sum_i`` of it does not add up to ``F(x) - F(x')`` (no completeness).
    """
    _check_output(output)
    xb, single, t = _prepare(x, target)
    xb = xb.astype(model.dtype, copy=False)
    b = _baseline_like(baseline, xb)
    return _finish((xb - b) * _gradients(model, xb, t, output, batch_size), single)


# ----------------------------------------------------------------------------------------------
# SmoothGrad (NoiseTunnel)
# ----------------------------------------------------------------------------------------------

def gaussian_noise(x, samples: int, stdev: float, seed=0) -> np.ndarray:
    """``samples`` draws of N(0, stdev^2) noise per image of ``x``: shape ``(N, samples, 1, 32, 32)``
    (``(samples, 1, 32, 32)`` for one image), from ``np.random.default_rng(seed)``, in x's dtype."""
    xb, single = _as_batch(x)
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if not stdev >= 0:
        raise ValueError(f"stdev must be >= 0, got {stdev}")
    dtype = xb.dtype if np.issubdtype(xb.dtype, np.floating) else np.float64
    noise = np.random.default_rng(seed).normal(0.0, stdev, size=(len(xb), samples, *IMAGE_SHAPE))
    noise = noise.astype(dtype)
    return noise[0] if single else noise


def smoothgrad(model, x, target, noise, *, method: str = "saliency", nt_type: str = "smoothgrad", **kwargs):
    """SmoothGrad (Smilkov et al., 2017): an attribution method ``A`` averaged over noisy copies of x.

    ``SG_i(x) = 1/S sum_s A_i(x + eps_s)`` with ``eps_s ~ N(0, sigma^2 I)`` given in ``noise``:
    shape ``(N, S, 1, 32, 32)`` (or ``(S, 1, 32, 32)`` for one image), S samples per image.
    ``method``: ``"saliency"`` (kwargs ``abs``), ``"input_x_gradient"`` (kwargs ``baseline``) or
    ``"integrated_gradients"`` (kwargs ``baseline``, ``steps``, ``method`` as ``integrated_method``,
    ``chunk_size``); ``output`` as everywhere. ``nt_type``: ``"smoothgrad"`` (the mean),
    ``"smoothgrad_sq"`` (the mean of squares) or ``"vargrad"`` (their variance), as captum.

    This is captum's ``NoiseTunnel(A).attribute(x, nt_type, nt_samples=S, stdevs=sigma, ...)``:
    captum adds ``torch.normal`` noise to ``x.repeat_interleave(S, dim=0)``, i.e. sample s of image
    i is row ``i * S + s``, which is ``noise[i, s]`` here, and the baseline of image i is repeated
    for each of its samples. Relation to IG: SmoothGrad on IG is the average of IG over noisy inputs
    (each from the same baseline), so its completeness holds on average, for the noisy inputs:
    ``sum_i SG-IG_i = 1/S sum_s F(x + eps_s) - F(x')``.
    """
    if method not in SMOOTHGRAD_METHODS:
        raise ValueError(f"unknown method {method!r} for SmoothGrad; choose one of {SMOOTHGRAD_METHODS}")
    if nt_type not in NT_TYPES:
        raise ValueError(f"unknown nt_type {nt_type!r}; choose one of {NT_TYPES}")
    xb, single, t = _prepare(x, target)
    noise = np.asarray(noise)
    if single and noise.ndim == 4:
        noise = noise[None]
    if noise.ndim != 5 or noise.shape[0] != len(xb) or noise.shape[2:] != IMAGE_SHAPE or noise.shape[1] < 1:
        raise ValueError(f"noise must have shape (N, S, 1, 32, 32) = ({len(xb)}, S, 1, 32, 32) "
                         f"(S samples per image), got shape {noise.shape}")
    _check_finite(noise, "noise")
    n, s = noise.shape[:2]
    dtype = model.dtype
    noisy = (xb.astype(dtype)[:, None] + noise.astype(dtype)).reshape(n * s, *IMAGE_SHAPE)
    ts = np.repeat(t, s)
    if method == "saliency":
        a = saliency(model, noisy, ts, **kwargs)
    elif method == "input_x_gradient":
        baseline = kwargs.pop("baseline", None)
        b = None if baseline is None else np.repeat(_baseline_like(baseline, xb.astype(dtype)), s, axis=0)
        a = input_x_gradient(model, noisy, ts, b, **kwargs)
    else:
        b = np.repeat(_baseline_like(kwargs.pop("baseline", None), xb.astype(dtype)), s, axis=0)
        if "integrated_method" in kwargs:
            kwargs["method"] = kwargs.pop("integrated_method")
        a = integrated_gradients(model, noisy, ts, b, **kwargs)[0]
    a = a.reshape(n, s, *IMAGE_SHAPE)
    mean = a.mean(axis=1)
    if nt_type == "smoothgrad":
        out = mean
    else:
        mean_sq = (a * a).mean(axis=1)
        out = mean_sq if nt_type == "smoothgrad_sq" else mean_sq - mean * mean
    return _finish(out, single)


# ----------------------------------------------------------------------------------------------
# Occlusion
# ----------------------------------------------------------------------------------------------

def _pair(value, name):
    v = (value, value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else tuple(value)
    if len(v) != 2 or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) and a >= 1
                              for a in v):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return int(v[0]), int(v[1])


def occlusion_masks(window=4, stride=2, shape=(32, 32)) -> np.ndarray:
    """The patches that :func:`occlusion` replaces, as 0/1 masks ``(P, H, W)``, in captum's order.

    Along an axis of length H, a window of k pixels moved by ``stride`` s takes
    ``ceil((H - k) / s) + 1`` positions, starting at ``0, s, 2s, ...``; when ``(H - k)`` is not a
    multiple of s the last window runs past the edge and is cut off there (captum pads the window
    tensor with a negative amount). Positions run along the last axis fastest (captum's order).
    A stride larger than the window would skip pixels, so captum refuses it, and so does this.
    """
    kh, kw = _pair(window, "window")
    sh, sw = _pair(stride, "stride")
    h, w = shape
    if kh > h or kw > w:
        raise ValueError(f"window {(kh, kw)} is larger than the image {(h, w)}")
    if (sh > kh and h > kh) or (sw > kw and w > kw):
        raise ValueError(f"stride {(sh, sw)} is larger than the window {(kh, kw)}: some pixels would never "
                         f"be occluded")
    rows = [i * sh for i in range(int(np.ceil((h - kh) / sh)) + 1)]
    cols = [j * sw for j in range(int(np.ceil((w - kw) / sw)) + 1)]
    masks = np.zeros((len(rows), len(cols), h, w))
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            masks[a, b, r:r + kh, c:c + kw] = 1
    return masks.reshape(-1, h, w)


def occlusion(model, x, target, *, window=4, stride=2, baseline=None, output: str = "logit",
              batch_size: int = 1024):
    """Occlusion (Zeiler & Fergus, 2014): how much F drops when a patch is replaced by the baseline.

    For every patch P (a ``window`` of pixels moved by ``stride``, :func:`occlusion_masks`),
    ``d_P = F(x) - F(x with the pixels of P set to x')``; a pixel's attribution is the mean of
    ``d_P`` over the patches that contain it (overlapping windows are averaged):
    ``O_i = sum_{P contains i} d_P / #{P contains i}``. ``baseline``: a number (``None`` = 0,
    captum's default, the mean grey after normalisation), one image or one per image.

    This is captum's ``Occlusion(twin).attribute(x, sliding_window_shapes=(1, kh, kw),
    strides=(1, sh, sw), baselines=baseline, target=target)``, except that captum returns float32
    whatever the model's dtype (it divides ``total.float() / counts``): compare at float32 precision.
    Relation to IG: a finite difference instead of a gradient. For a one-pixel window and a linear F
    it equals gradient x (x - x') and IG; in general the patch differences do not add up to
    ``F(x) - F(x')`` (no completeness), but they see the whole nonlinear change of F, where the
    gradient sees only its slope at x. Costs one forward pass per patch (no backward pass).
    """
    _check_output(output)
    xb, single, t = _prepare(x, target)
    dtype = model.dtype
    xb = xb.astype(dtype, copy=False)
    b = _baseline_like(baseline, xb)
    masks = occlusion_masks(window, stride, IMAGE_SHAPE[1:]).astype(dtype)       # (P, 32, 32)
    counts = masks.sum(axis=0)
    p = len(masks)
    per_batch = max(1, batch_size // p)                                         # images per forward pass
    f_x = model_output(model, xb, t, output)
    out = np.empty_like(xb)
    m = masks[None, :, None]                                                    # (1, P, 1, 32, 32)
    for i in range(0, len(xb), per_batch):
        sl = slice(i, i + per_batch)
        occluded = xb[sl, None] * (1 - m) + b[sl, None] * m                     # (n, P, 1, 32, 32)
        n = occluded.shape[0]
        f_occ = model_output(model, occluded.reshape(n * p, *IMAGE_SHAPE), np.repeat(t[sl], p), output)
        diff = f_x[sl, None] - f_occ.reshape(n, p)                              # (n, P)
        out[sl, 0] = np.tensordot(diff, masks, axes=1) / counts
    return _finish(out, single)


# ----------------------------------------------------------------------------------------------
# Expected gradients / GradientSHAP
# ----------------------------------------------------------------------------------------------

def gradient_shap(model, x, target, baselines, alphas, *, noise=None, output: str = "logit",
                  batch_size: int = 512):
    """GradientSHAP (Lundberg & Lee, 2017) with the baselines and path points given.

    ``GS_i(x) = 1/S sum_s (x~_s,i - x'_s,i) * dF/dx_i (x'_s + a_s (x~_s - x'_s))`` where
    ``x'_s`` are S baselines per image (``baselines``: ``(N, S, 1, 32, 32)``), ``a_s`` S points in
    [0, 1] (``alphas``: ``(N, S)``) and ``x~_s = x + noise_s`` (``noise``: ``(N, S, 1, 32, 32)``,
    or ``None`` for no noise, captum's default ``stdevs=0``). With baselines drawn from the training
    images and ``a ~ U(0, 1)`` this is *expected gradients* (Erion et al., 2021), a Monte Carlo
    estimate of ``E_{x' ~ data, a ~ U(0,1)} [(x - x') * dF/dx (x' + a (x - x'))]``
    = ``E_{x' ~ data} [IG(x; x')]``: IG averaged over baselines from the data, each path integral
    estimated from one random point. Completeness holds in expectation:
    ``E sum_i EG_i = F(x) - E F(x')``.

    Equals captum's ``GradientShap(twin).attribute(x, baselines=pool, n_samples=S, stdevs=...,
    target=...)`` when ``baselines[i, s]`` is ``pool[idx[i * S + s]]`` with captum's
    ``idx = np.random.choice(len(pool), N * S)`` and ``alphas`` its following
    ``np.random.uniform(0, 1, N * S)`` (drawn after the indices), reshaped to ``(N, S)``.
    """
    _check_output(output)
    xb, single, t = _prepare(x, target)
    n = len(xb)
    bl, al = np.asarray(baselines), np.asarray(alphas, dtype=np.float64)
    if single and bl.ndim == 4:
        bl, al = bl[None], al.reshape(1, -1)
    if bl.ndim != 5 or bl.shape[0] != n or bl.shape[2:] != IMAGE_SHAPE or bl.shape[1] < 1:
        raise ValueError(f"baselines must have shape (N, S, 1, 32, 32) = ({n}, S, 1, 32, 32), got {bl.shape}")
    s = bl.shape[1]
    if al.shape != (n, s) or np.any((al < 0) | (al > 1)):
        raise ValueError(f"alphas must be {n} x {s} numbers in [0, 1] (one per baseline), got shape {al.shape}")
    _check_finite(bl, "baselines")
    dtype = model.dtype
    xs = np.broadcast_to(xb.astype(dtype)[:, None], bl.shape)
    if noise is not None:
        noise = np.asarray(noise)
        if noise.shape != bl.shape:
            raise ValueError(f"noise must have the baselines' shape {bl.shape}, got {noise.shape}")
        xs = xs + noise.astype(dtype)
    xs = xs.reshape(n * s, *IMAGE_SHAPE)
    bs = bl.astype(dtype).reshape(n * s, *IMAGE_SHAPE)
    a = al.reshape(-1, 1, 1, 1).astype(dtype)
    points = a * xs + (1 - a) * bs                       # captum's _scale_input: a x + (1 - a) x'
    g = _gradients(model, points, np.repeat(t, s), output, batch_size)
    out = ((xs - bs) * g).reshape(n, s, *IMAGE_SHAPE).mean(axis=1)
    return _finish(out, single)


def draw_baselines(pool, n: int, samples: int, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` baselines per image drawn (with replacement) from ``pool`` ``(M, 1, 32, 32)``, and
    as many path points ``a ~ U(0, 1)``: returns ``(baselines (n, S, 1, 32, 32), alphas (n, S))``,
    from ``np.random.default_rng(seed)``."""
    pool = np.asarray(pool)
    if pool.ndim != 4 or pool.shape[1:] != IMAGE_SHAPE or len(pool) == 0:
        raise ValueError(f"the baseline pool must have shape (M, 1, 32, 32) (prepared images), got {pool.shape}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(pool), size=(n, samples))
    return pool[idx], rng.uniform(0.0, 1.0, size=(n, samples))


def expected_gradients(model, x, target, pool, *, samples: int = 32, seed=0, output: str = "logit"):
    """Expected gradients: :func:`gradient_shap` with ``samples`` baselines per image drawn from
    ``pool`` (e.g. prepared training images) and uniform path points (:func:`draw_baselines`)."""
    xb, single = _as_batch(x)
    baselines, alphas = draw_baselines(pool, len(xb), samples, seed)
    return _finish(gradient_shap(model, xb, target, baselines, alphas, output=output), single)
