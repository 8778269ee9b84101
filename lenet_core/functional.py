"""Convolution and pooling as plain functions: naive loops for teaching, im2col for speed.

Every function takes and returns NumPy arrays in PyTorch's layouts:

- images ``x``: ``(N, C, H, W)``
- convolution weights ``W``: ``(F, C, KH, KW)`` (out channels, in channels, kernel height, width)
- biases ``b``: ``(F,)``

The output size of a convolution or pooling window along one axis is::

    out = (size + 2 * padding - kernel) // stride + 1

What deep-learning libraries call "convolution" is a cross-correlation: the kernel slides over the
input *without* being flipped. The naive loops below say so literally; the vectorised versions
unfold every window into a row of a matrix (``im2col``) so the whole layer becomes one matrix product.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "output_size",
    "im2col",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv2d_naive",
    "conv2d_backward_naive",
    "pool2d",
    "pool2d_backward",
    "pool2d_naive",
    "pool2d_backward_naive",
]


def _pair(value, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 2)`` stays; anything else is an error that names ``name``."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Number of window positions along one axis: ``(size + 2*padding - kernel) // stride + 1``.

    Raises ``ValueError`` when the kernel does not fit or the arguments are not positive.
    """
    if kernel < 1 or stride < 1 or padding < 0:
        raise ValueError(f"need kernel >= 1, stride >= 1, padding >= 0; got kernel={kernel}, "
                         f"stride={stride}, padding={padding}")
    padded = size + 2 * padding
    if padded < kernel:
        raise ValueError(f"kernel {kernel} does not fit an input of size {size} padded by {padding}")
    return (padded - kernel) // stride + 1


def _check_images(x: np.ndarray, name: str = "x") -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {x.shape}")


def _pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _windows(x_padded: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """A read-only strided view ``(N, C, OH, OW, KH, KW)`` of every window; no copy is made."""
    return sliding_window_view(x_padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


# ----------------------------------------------------------------------------------------------
# Naive loops: the definition, written out. Slow; used for teaching and as the reference in tests.
# ----------------------------------------------------------------------------------------------

def conv2d_naive(x, W, b, stride=1, padding=0):
    """Cross-correlation by explicit loops.

    x: (N, C, H, W), W: (F, C, KH, KW), b: (F,) -> out: (N, F, OH, OW), where
    ``out[n, f, i, j] = b[f] + sum_{c,p,q} W[f, c, p, q] * x_pad[n, c, i*sh + p, j*sw + q]``.
    """
    _check_images(x)
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    N, C, H, Wd = x.shape
    F, Cw, KH, KW = W.shape
    if C != Cw:
        raise ValueError(f"x has {C} channels but W expects {Cw}")
    OH, OW = output_size(H, KH, sh, ph), output_size(Wd, KW, sw, pw)
    xp = _pad(x, ph, pw)
    out = np.zeros((N, F, OH, OW), dtype=np.result_type(x, W))
    for n in range(N):
        for f in range(F):
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, :, i * sh:i * sh + KH, j * sw:j * sw + KW]
                    out[n, f, i, j] = np.sum(window * W[f]) + b[f]
    return out


def conv2d_backward_naive(dout, x, W, stride=1, padding=0):
    """Gradients of :func:`conv2d_naive` by the same loops, read backwards.

    dout: (N, F, OH, OW) -> dx: (N, C, H, W), dW: (F, C, KH, KW), db: (F,).
    Each output element sent ``W[f] * x_window`` forward, so it sends ``dout * x_window`` to ``dW[f]``
    and ``dout * W[f]`` back to the window of ``dx``.
    """
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    N, C, H, Wd = x.shape
    F, _, KH, KW = W.shape
    _, _, OH, OW = dout.shape
    xp = _pad(x, ph, pw)
    dxp = np.zeros_like(xp, dtype=np.result_type(dout, W))
    dW = np.zeros_like(W, dtype=np.result_type(dout, x))
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(OH):
                for j in range(OW):
                    rows, cols = slice(i * sh, i * sh + KH), slice(j * sw, j * sw + KW)
                    dW[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dout[n, f, i, j] * W[f]
    dx = dxp[:, :, ph:ph + H, pw:pw + Wd]
    return dx, dW, db


def pool2d_naive(x, kernel_size, stride=None, mode="max"):
    """Average or max pooling by explicit loops. x: (N, C, H, W) -> (N, C, OH, OW)."""
    _check_images(x)
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw) = _pair(kernel_size if stride is None else stride, "stride")
    reduce = _pool_reducer(mode)
    N, C, H, Wd = x.shape
    OH, OW = output_size(H, kh, sh), output_size(Wd, kw, sw)
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    out[n, c, i, j] = reduce(x[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw])
    return out


def pool2d_backward_naive(dout, x, kernel_size, stride=None, mode="max"):
    """Gradient of :func:`pool2d_naive`. dout: (N, C, OH, OW) -> dx: (N, C, H, W).

    Average pooling spreads each ``dout`` evenly over its window. Max pooling sends it to the
    first (row-major) position holding the window's maximum, as PyTorch does; where windows overlap
    the contributions add up.
    """
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw) = _pair(kernel_size if stride is None else stride, "stride")
    _pool_reducer(mode)
    N, C, OH, OW = dout.shape
    dx = np.zeros(x.shape, dtype=np.result_type(dout, x))
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
                    if mode == "avg":
                        dx[n, c, rows, cols] += dout[n, c, i, j] / (kh * kw)
                    else:
                        p, q = np.unravel_index(np.argmax(x[n, c, rows, cols]), (kh, kw))
                        dx[n, c, i * sh + p, j * sw + q] += dout[n, c, i, j]
    return dx


def _pool_reducer(mode):
    if mode == "max":
        return np.max
    if mode == "avg":
        return np.mean
    raise ValueError(f"unknown pooling mode {mode!r}; expected 'max' or 'avg'")


# ----------------------------------------------------------------------------------------------
# Vectorised: im2col turns every window into one row, so a convolution is one matrix product.
# ----------------------------------------------------------------------------------------------

def im2col(x, kernel_size, stride=1, padding=0):
    """Unfold windows into rows.

    x: (N, C, H, W) -> cols: (N*OH*OW, C*KH*KW). Row ``(n, i, j)`` holds the window of image ``n``
    whose top-left corner is at ``(i*sh - ph, j*sw - pw)``, flattened in ``(C, KH, KW)`` order,
    the same order as a row of ``W.reshape(F, -1)``.
    """
    _check_images(x)
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    N, C, H, Wd = x.shape
    OH, OW = output_size(H, kh, sh, ph), output_size(Wd, kw, sw, pw)
    windows = _windows(_pad(x, ph, pw), kh, kw, sh, sw)          # (N, C, OH, OW, KH, KW)
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * OH * OW, C * kh * kw)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of :func:`im2col`: add every row back onto the window it came from.

    cols: (N*OH*OW, C*KH*KW) -> (N, C, H, W). Overlapping windows add up. The loop runs over the
    KH*KW kernel offsets (25 for a 5x5 kernel), never over pixels.
    """
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    N, C, H, Wd = x_shape
    OH, OW = output_size(H, kh, sh, ph), output_size(Wd, kw, sw, pw)
    patches = cols.reshape(N, OH, OW, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, KH, KW, OH, OW)
    xp = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            xp[:, :, p:p + sh * OH:sh, q:q + sw * OW:sw] += patches[:, :, p, q]
    return xp[:, :, ph:ph + H, pw:pw + Wd]


def conv2d(x, W, b, stride=1, padding=0):
    """Vectorised :func:`conv2d_naive`. Returns ``(out, cols)``; keep ``cols`` for the backward pass.

    x: (N, C, H, W), W: (F, C, KH, KW), b: (F,) -> out: (N, F, OH, OW), cols: (N*OH*OW, C*KH*KW).
    """
    _check_images(x)
    F, C, KH, KW = W.shape
    if x.shape[1] != C:
        raise ValueError(f"x has {x.shape[1]} channels but W expects {C} (x shape {x.shape})")
    N, _, H, Wd = x.shape
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    OH, OW = output_size(H, KH, sh, ph), output_size(Wd, KW, sw, pw)
    cols = im2col(x, (KH, KW), (sh, sw), (ph, pw))
    out = cols @ W.reshape(F, -1).T + b                            # (N*OH*OW, F)
    return out.reshape(N, OH, OW, F).transpose(0, 3, 1, 2), cols


def conv2d_backward(dout, cols, x_shape, W, stride=1, padding=0, need_dx=True):
    """Gradients of :func:`conv2d` from its cached ``cols``.

    dout: (N, F, OH, OW) -> dx: (N, C, H, W) (``None`` if ``need_dx`` is false), dW: W's shape, db: (F,).
    ``dW = dout^T cols`` and ``dcols = dout W``; col2im then folds ``dcols`` back onto the image,
    which amounts to a full convolution of ``dout`` with the flipped kernel.
    """
    F = W.shape[0]
    dout_rows = dout.transpose(0, 2, 3, 1).reshape(-1, F)          # (N*OH*OW, F)
    dW = (dout_rows.T @ cols).reshape(W.shape)
    db = dout_rows.sum(axis=0)
    dx = None
    if need_dx:
        dx = col2im(dout_rows @ W.reshape(F, -1), x_shape, W.shape[2:], stride, padding)
    return dx, dW, db


def pool2d(x, kernel_size, stride=None, mode="max"):
    """Vectorised pooling. x: (N, C, H, W) -> ``(out, cache)`` with out: (N, C, OH, OW).

    ``cache`` holds what :func:`pool2d_backward` needs: for max pooling, the index of the winning
    position inside each window (first maximum in row-major order, as in PyTorch).
    """
    _check_images(x)
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw) = _pair(kernel_size if stride is None else stride, "stride")
    _pool_reducer(mode)
    N, C, H, Wd = x.shape
    OH, OW = output_size(H, kh, sh), output_size(Wd, kw, sw)
    windows = _windows(x, kh, kw, sh, sw)                          # (N, C, OH, OW, KH, KW)
    if mode == "avg":
        return windows.mean(axis=(4, 5)), None
    flat = windows.reshape(N, C, OH, OW, kh * kw)
    argmax = flat.argmax(axis=4)
    out = np.take_along_axis(flat, argmax[..., None], axis=4)[..., 0]
    return out, argmax


def pool2d_backward(dout, cache, x_shape, kernel_size, stride=None, mode="max"):
    """Gradient of :func:`pool2d`. dout: (N, C, OH, OW) -> dx: x_shape.

    Loops over the KH*KW offsets inside a window (4 for 2x2), adding each window's share in place.
    """
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw) = _pair(kernel_size if stride is None else stride, "stride")
    _pool_reducer(mode)
    _, _, OH, OW = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    share = dout / (kh * kw) if mode == "avg" else None
    for p in range(kh):
        for q in range(kw):
            grad = share if mode == "avg" else np.where(cache == p * kw + q, dout, 0)
            dx[:, :, p:p + sh * OH:sh, q:q + sw * OW:sw] += grad
    return dx
