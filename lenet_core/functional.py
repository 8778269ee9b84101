"""Convolution and pooling as plain functions: naive loops for teaching, unfolded windows for speed.

Every function takes and returns NumPy arrays in PyTorch's layouts:

- images ``x``: ``(N, C, H, W)``
- convolution weights ``W``: ``(F, C, KH, KW)`` (out channels, in channels, kernel height, width)
- biases ``b``: ``(F,)``

The output size of a convolution or pooling window along one axis is::

    out = (size + 2 * padding - kernel) // stride + 1

What deep-learning libraries call "convolution" is a cross-correlation: the kernel slides over the
input *without* being flipped. The naive loops below say so literally. ``im2col`` unfolds every
window into a row of a matrix, so that a whole layer becomes one matrix product; the fast engine
(:func:`conv2d`, :func:`pool2d` and their backward passes, used by the layers) does the same with the
windows as columns, one matrix per image (:func:`unfold`), which keeps every result in NCHW order.
Tests check the fast functions against the naive loops in float64.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "output_size",
    "im2col",
    "col2im",
    "unfold",
    "fold",
    "Workspace",
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
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")


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
    out = np.zeros((N, C, OH, OW), dtype=x.dtype if mode == "max" else _mean_dtype(x.dtype))
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


def _mean_dtype(dtype) -> np.dtype:
    """The dtype of an average, as ``np.mean`` chooses it: floats keep theirs, integers give float64."""
    return np.dtype(dtype) if np.issubdtype(dtype, np.inexact) else np.dtype(np.float64)


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


# ----------------------------------------------------------------------------------------------
# The fast engine. Same maths as above, arranged for speed:
#
# - ``unfold`` puts the windows in the *columns* of one matrix per image, (N, C*KH*KW, OH*OW), the
#   layout of ``torch.nn.functional.unfold``. Then ``W.reshape(F, -1) @ cols`` is a batch of N
#   matrix products whose result (N, F, OH*OW) is already in NCHW order: no transpose, no copy.
#   (With im2col's rows, the product comes out as (N, OH, OW, F) and must be transposed.)
# - Every loop runs over the KH*KW offsets inside a window, never over pixels or images: offset
#   (p, q) of *all* windows of *all* images is one strided slice of the input.
# - Scratch arrays (the columns, their gradient) can be handed in through ``out=``/``cols=`` and
#   reused from one call to the next; arrays that are returned to the caller are always new.
# ----------------------------------------------------------------------------------------------

class Workspace:
    """Named scratch arrays kept from one call to the next, so the hot path does not allocate them.

    ``ws.get("cols", shape, dtype)`` returns an uninitialised array of that shape, backed by a
    buffer kept under that name. The buffer is reused (its old contents overwritten) while it is
    large enough and grows when a larger array is asked for, so batches of different sizes share it.
    Only for arrays that stay inside a layer: anything handed to the caller must be a new array.
    """

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape, dtype) -> np.ndarray:
        shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)

    def nbytes(self) -> int:
        """Bytes held by all buffers."""
        return sum(b.nbytes for b in self._buffers.values())


def _conv_geometry(x_shape, kernel_size, stride, padding):
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    _, _, H, Wd = x_shape
    return (kh, kw), (sh, sw), (ph, pw), output_size(H, kh, sh, ph), output_size(Wd, kw, sw, pw)


def _whole_image(x_shape, kernel, padding) -> bool:
    """True when the kernel covers the whole unpadded input: a single window per image (LeNet's C5)."""
    return padding == (0, 0) and tuple(kernel) == tuple(x_shape[2:])


def unfold(x, kernel_size, stride=1, padding=0, out=None):
    """Windows as columns, one matrix per image: x (N, C, H, W) -> cols (N, C*KH*KW, OH*OW).

    Column ``i*OW + j`` of ``cols[n]`` is the window of image ``n`` at output position ``(i, j)``,
    flattened in ``(C, KH, KW)`` order, like a row of ``W.reshape(F, -1)``: this is :func:`im2col`
    transposed per image. ``out``, if given, is a C-contiguous array of that shape and of x's dtype
    to fill (a reused buffer); otherwise a new one is allocated. When the kernel covers the whole
    image (one window per image), the columns are ``x`` itself, reshaped, and nothing is copied.
    """
    _check_images(x)
    (kh, kw), (sh, sw), (ph, pw), OH, OW = _conv_geometry(x.shape, kernel_size, stride, padding)
    N, C = x.shape[:2]
    if _whole_image(x.shape, (kh, kw), (ph, pw)):
        return x.reshape(N, C * kh * kw, 1)
    if out is None:
        out = np.empty((N, C * kh * kw, OH * OW), dtype=x.dtype)
    elif out.shape != (N, C * kh * kw, OH * OW) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous array of shape {(N, C * kh * kw, OH * OW)}, "
                         f"got shape {out.shape}")
    xp = _pad(x, ph, pw)
    cols = out.reshape(N, C, kh, kw, OH, OW)                       # a view: writing it fills out
    for p in range(kh):
        for q in range(kw):
            cols[:, :, p, q] = xp[:, :, p:p + sh * OH:sh, q:q + sw * OW:sw]
    return out


def fold(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of :func:`unfold`: add every column back onto its window. Returns a new (N, C, H, W) array.

    cols: (N, C*KH*KW, OH*OW). Overlapping windows add up; the loop runs over the KH*KW offsets.
    """
    (kh, kw), (sh, sw), (ph, pw), OH, OW = _conv_geometry(x_shape, kernel_size, stride, padding)
    N, C, H, Wd = x_shape
    if _whole_image(x_shape, (kh, kw), (ph, pw)):
        return cols.reshape(x_shape).copy()
    patches = cols.reshape(N, C, kh, kw, OH, OW)
    xp = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            xp[:, :, p:p + sh * OH:sh, q:q + sw * OW:sw] += patches[:, :, p, q]
    if ph or pw:
        return xp[:, :, ph:ph + H, pw:pw + Wd].copy()
    return xp


def conv2d(x, W, b, stride=1, padding=0, *, cols=None):
    """Vectorised :func:`conv2d_naive`. Returns ``(out, cols)``; keep ``cols`` for the backward pass.

    x: (N, C, H, W), W: (F, C, KH, KW), b: (F,) -> out: (N, F, OH, OW) (a new, C-contiguous array),
    cols: (N, C*KH*KW, OH*OW), the windows as columns (see :func:`unfold`). ``cols=`` optionally
    passes a buffer of that shape to fill instead of allocating one.

    The whole layer is one batched matrix product: ``out[n] = W.reshape(F, -1) @ cols[n] + b``.
    """
    _check_images(x)
    F, C, KH, KW = W.shape
    if x.shape[1] != C:
        raise ValueError(f"x has {x.shape[1]} channels but W expects {C} (x shape {x.shape})")
    N = x.shape[0]
    _, _, _, OH, OW = _conv_geometry(x.shape, (KH, KW), stride, padding)
    cols = unfold(x, (KH, KW), stride, padding, out=cols)
    W2 = W.reshape(F, -1)                                          # (F, C*KH*KW)
    if OH * OW == 1:
        # one window per image: a single (N, K) @ (K, F) product beats N matrix-vector products
        out = cols[:, :, 0] @ W2.T                                 # (N, F)
        out += b
    else:
        out = np.matmul(W2, cols)                                  # (F, K) @ (N, K, P) -> (N, F, P)
        out += b[:, None]
    return out.reshape(N, F, OH, OW), cols


def conv2d_backward(dout, cols, x_shape, W, stride=1, padding=0, need_dx=True, *, dcols=None):
    """Gradients of :func:`conv2d` from its cached ``cols``.

    dout: (N, F, OH, OW) -> dx: (N, C, H, W) (``None`` if ``need_dx`` is false), dW: W's shape, db: (F,).
    Per image, ``dW += dout[n] cols[n]^T`` and ``dcols[n] = W^T dout[n]``; :func:`fold` then adds
    ``dcols`` back onto the image, which amounts to a full convolution of ``dout`` with the flipped
    kernel. ``cols`` may also be im2col's rows (N*OH*OW, C*KH*KW). ``dcols=`` optionally passes a
    scratch buffer of shape (N, C*KH*KW, OH*OW) (dtype of ``dout @ W``) for the column gradient.
    A ``dout`` of any other shape than the forward pass's output is a ``ValueError``.
    """
    _check_images(dout, "dout")
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    expected = (x_shape[0], W.shape[0], output_size(x_shape[2], W.shape[2], sh, ph),
                output_size(x_shape[3], W.shape[3], sw, pw))
    if dout.shape != expected:
        raise ValueError(f"dout has shape {dout.shape}, but the forward pass produced output of shape {expected}")
    N, F, OH, OW = dout.shape
    W2 = W.reshape(F, -1)                                          # (F, K)
    if cols.ndim == 2:                                             # im2col's rows: view them as columns
        cols = cols.reshape(N, OH * OW, -1).transpose(0, 2, 1)
    d3 = dout.reshape(N, F, OH * OW)
    db = d3.sum(axis=2).sum(axis=0)                                # the contiguous axis first: faster
    dx = None
    if OH * OW == 1:                                               # one window per image: plain products
        d2 = d3[:, :, 0]                                           # (N, F)
        dW = d2.T @ cols[:, :, 0]
        if need_dx:
            dx = fold((d2 @ W2)[:, :, None], x_shape, W.shape[2:], stride, padding)
        return dx, dW.reshape(W.shape), db
    dW = np.matmul(d3, cols.transpose(0, 2, 1)).sum(axis=0)       # sum over n of (F, P) @ (P, K)
    if need_dx:
        dcols = np.matmul(W2.T, d3, out=dcols)                     # (K, F) @ (N, F, P) -> (N, K, P)
        dx = fold(dcols, x_shape, W.shape[2:], stride, padding)
    return dx, dW.reshape(W.shape), db


def _pool_geometry(x_shape, kernel_size, stride):
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw) = _pair(kernel_size if stride is None else stride, "stride")
    _, _, H, Wd = x_shape
    return (kh, kw), (sh, sw), output_size(H, kh, sh), output_size(Wd, kw, sw)


def pool2d(x, kernel_size, stride=None, mode="max"):
    """Vectorised pooling. x: (N, C, H, W) -> ``(out, cache)`` with out: (N, C, OH, OW).

    Loops over the KH*KW offsets inside a window (4 for 2x2): ``x[:, :, p::sh, q::sw]`` (cut to
    OH x OW) holds the pixel at offset (p, q) of every window, so average pooling is the mean of
    these slices and max pooling their running maximum. ``cache`` holds what :func:`pool2d_backward`
    needs: for max pooling, the offset ``p*KW + q`` of each window's winner (the first maximum in
    row-major order, as in PyTorch); for average pooling, ``None``.
    """
    _check_images(x)
    (kh, kw), (sh, sw), OH, OW = _pool_geometry(x.shape, kernel_size, stride)
    _pool_reducer(mode)

    def at(p, q):                                                  # offset (p, q) of every window
        return x[:, :, p:p + sh * OH:sh, q:q + sw * OW:sw]

    if mode == "avg":
        out = at(0, 0).astype(_mean_dtype(x.dtype))               # a copy; integers average as floats
        for k in range(1, kh * kw):
            out += at(*divmod(k, kw))
        out /= kh * kw
        return out, None
    out = at(0, 0).copy()
    argmax = np.zeros(out.shape, dtype=np.intp)
    for k in range(1, kh * kw):
        candidate = at(*divmod(k, kw))
        better = candidate > out                                   # strict: ties keep the first maximum
        np.copyto(out, candidate, where=better)
        argmax[better] = k
    return out, argmax


def pool2d_backward(dout, cache, x_shape, kernel_size, stride=None, mode="max"):
    """Gradient of :func:`pool2d`. dout: (N, C, OH, OW) -> dx: x_shape (a new array).

    Loops over the KH*KW offsets inside a window (4 for 2x2), sending each window's share to the
    pixel at that offset. When the windows tile the image (stride = kernel, LeNet's case) every pixel
    belongs to at most one window, so the shares are written, not added, into an uninitialised array.
    """
    (kh, kw), (sh, sw), OH, OW = _pool_geometry(x_shape, kernel_size, stride)
    _pool_reducer(mode)
    tiles = (sh, sw) == (kh, kw)
    covered = tiles and (OH * kh, OW * kw) == tuple(x_shape[2:])  # every pixel in exactly one window
    dx = (np.empty if covered else np.zeros)(x_shape, dtype=dout.dtype)
    share = dout / (kh * kw) if mode == "avg" else None
    for k in range(kh * kw):
        p, q = divmod(k, kw)
        grad = share if mode == "avg" else np.where(cache == k, dout, 0)
        target = dx[:, :, p:p + sh * OH:sh, q:q + sw * OW:sw]
        if tiles:
            target[...] = grad
        else:
            target += grad
    return dx
