"""Convolution and pooling as plain functions: naive loops for teaching, unfolded windows for speed
(chapter 2 explains convolution and im2col, chapter 3 pooling, chapter 4 their backward passes).

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
    "pair",
    "conv_geometry",
    "conv_layout",
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


def pair(value, name: str, minimum: int | None = None) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 2)`` stays; anything else, or a value below ``minimum``, is an error that
    names ``name``.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    values = (value, value) if np.isscalar(value) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(values) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


_pair = pair          # the name the naive loops below use (chapter 2 prints their source)


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Number of window positions along one axis: ``(size + 2*padding - kernel) // stride + 1``.

    Raises ``ValueError`` when the kernel does not fit or the arguments are not positive.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
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

    Explained in chapter 2 (book/ch02_convolution.ipynb).
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
    """Gradients of :func:`conv2d_naive` by the same loops, read backwards (chapter 4).

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
    """Average or max pooling by explicit loops (chapter 3). x: (N, C, H, W) -> (N, C, OH, OW)."""
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
    """Gradient of :func:`pool2d_naive` (chapter 3). dout: (N, C, OH, OW) -> dx: (N, C, H, W).

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
    """Unfold windows into rows (chapter 2).

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

    Explained in chapter 4 (book/ch04_backprop.ipynb).
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
# The fast engine. Same maths as above, arranged for speed (measured in benchmarks/):
#
# - ``unfold`` puts the windows in the columns of ONE matrix for the whole batch, (C*KH*KW, N*OH*OW),
#   so a layer is one large matrix product ``W.reshape(F, -1) @ cols`` (OpenBLAS is at its best on
#   one large product, not on N small ones). The result goes back to (N, F, OH, OW) in the same pass
#   that adds the bias.
# - Inside a convolution the images take one of two layouts (:func:`conv_layout`), chosen for the
#   length of the contiguous rows that the offset loops copy. "CNHW" (channels first, then images:
#   a free transposed view of the input) when output rows are long, e.g. LeNet's C1 (28 wide).
#   "CHWN" (the batch axis last) when they are short, e.g. C3 (10 wide): offset (p, q) of every
#   window of every image is then one slice whose rows are OW*N contiguous numbers (640 at batch 64)
#   instead of 10, so copying windows out and adding gradients back stream through memory.
# - The input gradient is not unfolded at all: for each of the KH*KW offsets, one product
#   ``W[:, :, p, q]^T @ dout`` (C x F times F x N*OH*OW) is added onto the shifted slice of dx. The
#   column gradient (C*KH*KW x N*OH*OW, 3.8 MB for C3 at batch 64) never exists; each product is
#   small enough to stay in the cache while it is added.
# - Every loop runs over the KH*KW offsets inside a window, never over pixels or images.
# - Scratch arrays live in a :class:`Workspace` and are reused from one call to the next; arrays that
#   are returned to the caller are always new.
# ----------------------------------------------------------------------------------------------

class Workspace:
    """Named scratch arrays kept from one call to the next, so the hot path does not allocate them.

    ``ws.get("cols", shape, dtype)`` returns an uninitialised array of that shape, backed by a
    buffer kept under that name. The buffer is reused (its old contents overwritten) while it is
    large enough and grows when a larger array is asked for, so batches of different sizes share it.
    Only for arrays that stay inside a layer: anything handed to the caller must be a new array.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
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


def _scratch(workspace, name, shape, dtype):
    return np.empty(shape, dtype) if workspace is None else workspace.get(name, shape, dtype)


def conv_geometry(x_shape, kernel_size, stride, padding):
    """``(kh, kw), (sh, sw), (ph, pw), OH, OW`` of a convolution over images of shape ``x_shape``.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    (kh, kw) = pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    _, _, H, Wd = x_shape
    return (kh, kw), (sh, sw), (ph, pw), output_size(H, kh, sh, ph), output_size(Wd, kw, sw, pw)


def _whole_image(x_shape, kernel, padding) -> bool:
    """True when the kernel covers the whole unpadded input: a single window per image (LeNet's C5)."""
    return padding == (0, 0) and tuple(kernel) == tuple(x_shape[2:])


#: the two layouts of images inside the fast convolution: the axes of (N, C, H, W) they put first
LAYOUTS = {"CNHW": (1, 0, 2, 3), "CHWN": (1, 2, 3, 0)}
#: output rows narrower than this use the batch-last layout "CHWN"
SHORT_ROWS = 16


def conv_layout(out_width: int) -> str:
    """``"CHWN"`` (batch last) for output rows narrower than :data:`SHORT_ROWS`, else ``"CNHW"``.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    return "CHWN" if out_width < SHORT_ROWS else "CNHW"


def _to_layout(x, layout, padding, out):
    """x (N, C, H, W) -> ``out`` in ``layout`` with the spatial axes zero-padded (a copy)."""
    ph, pw = padding
    if ph or pw:
        out[...] = 0
    _at(out, layout, slice(ph, ph + x.shape[2]), slice(pw, pw + x.shape[3]))[...] = x.transpose(LAYOUTS[layout])
    return out


def _at(a, layout, rows, cols):
    """The slice ``rows, cols`` of the spatial axes of ``a`` (an array in ``layout``)."""
    return a[:, rows, cols] if layout == "CHWN" else a[:, :, rows, cols]


def _layout_shape(layout, N, C, H, W):
    return (C, H, W, N) if layout == "CHWN" else (C, N, H, W)


def unfold(x, kernel_size, stride=1, padding=0, out=None, *, layout=None, workspace=None):
    """Windows as the columns of one matrix for the whole batch: x (N, C, H, W) -> (C*KH*KW, M).

    Each column is one window, flattened in ``(C, KH, KW)`` order like a row of ``W.reshape(F, -1)``;
    the M = N*OH*OW columns are ordered as the layout's axes (default :func:`conv_layout`): "CNHW"
    column ``(n*OH + i)*OW + j``, "CHWN" column ``(i*OW + j)*N + n`` for image n, output position
    (i, j). This is :func:`im2col`, transposed, with its rows in that order. ``out``, if given, is a
    C-contiguous array of that shape and of x's dtype to fill (a reused buffer). The loop runs over
    the KH*KW offsets; each copies one slice of all the images.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    _check_images(x)
    (kh, kw), (sh, sw), (ph, pw), OH, OW = conv_geometry(x.shape, kernel_size, stride, padding)
    N, C, H, Wd = x.shape
    layout = layout or conv_layout(OW)
    shape = (C * kh * kw, N * OH * OW)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous array of shape {shape}, got shape {out.shape}")
    if layout == "CNHW" and not (ph or pw):
        xl = x.transpose(LAYOUTS[layout])                          # a view, no copy
    else:
        xl = _to_layout(x, layout, (ph, pw), _scratch(workspace, "x_layout",
                                                      _layout_shape(layout, N, C, H + 2 * ph, Wd + 2 * pw), x.dtype))
    cols = out.reshape(C, kh, kw, *_layout_shape(layout, N, 1, OH, OW)[1:])   # a view: writing it fills out
    for p in range(kh):
        for q in range(kw):
            cols[:, p, q] = _at(xl, layout, slice(p, p + sh * OH, sh), slice(q, q + sw * OW, sw))
    return out


def fold(cols, x_shape, kernel_size, stride=1, padding=0, *, layout=None):
    """The adjoint of :func:`unfold`: add every column back onto its window. Returns a new (N, C, H, W) array.

    cols: (C*KH*KW, N*OH*OW) in ``layout`` (default :func:`conv_layout`). Overlapping windows add up;
    the loop runs over the KH*KW offsets.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    (kh, kw), (sh, sw), (ph, pw), OH, OW = conv_geometry(x_shape, kernel_size, stride, padding)
    N, C, H, Wd = x_shape
    layout = layout or conv_layout(OW)
    patches = cols.reshape(C, kh, kw, *_layout_shape(layout, N, 1, OH, OW)[1:])
    xl = np.zeros(_layout_shape(layout, N, C, H + 2 * ph, Wd + 2 * pw), dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            _at(xl, layout, slice(p, p + sh * OH, sh), slice(q, q + sw * OW, sw))[...] += patches[:, p, q]
    return _from_layout(xl, layout, x_shape, (ph, pw))


def _from_layout(xl, layout, x_shape, padding):
    """The unpadded images of ``xl`` (in ``layout``) as a new (N, C, H, W) array."""
    ph, pw = padding
    out = np.empty(x_shape, dtype=xl.dtype)
    inverse = np.argsort(LAYOUTS[layout])
    out[...] = _at(xl, layout, slice(ph, ph + x_shape[2]), slice(pw, pw + x_shape[3])).transpose(inverse)
    return out


def conv2d(x, W, b, stride=1, padding=0, *, workspace=None):
    """Vectorised :func:`conv2d_naive`. Returns ``(out, cols)``; keep ``cols`` for the backward pass.

    x: (N, C, H, W), W: (F, C, KH, KW), b: (F,) -> out: (N, F, OH, OW) (a new, C-contiguous array).
    cols: the windows, (C*KH*KW, N*OH*OW) in the layout :func:`conv_layout` picks (see :func:`unfold`);
    when the kernel covers the whole image (one window per image, LeNet's C5) simply
    ``x.reshape(N, C*KH*KW).T``, a view of x, no copy. ``workspace`` (a :class:`Workspace`) holds the scratch arrays,
    reused from call to call (``cols`` is one of them: the next call overwrites it).

    The whole layer is one matrix product: ``W.reshape(F, -1) @ cols`` (F, N*OH*OW), plus the bias.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    _check_images(x)
    F, C, KH, KW = W.shape
    if x.shape[1] != C:
        raise ValueError(f"x has {x.shape[1]} channels but W expects {C} (x shape {x.shape})")
    N = x.shape[0]
    (kh, kw), _, (ph, pw), OH, OW = conv_geometry(x.shape, (KH, KW), stride, padding)
    W2 = W.reshape(F, -1)                                          # (F, C*KH*KW)
    if _whole_image(x.shape, (kh, kw), (ph, pw)):
        rows = x.reshape(N, C * KH * KW)                           # one window per image: x itself
        out = rows @ W2.T                                          # (N, F)
        out += b
        return out.reshape(N, F, 1, 1), rows.T                     # cols (K, N): a view, no copy
    layout = conv_layout(OW)
    cols = unfold(x, (KH, KW), stride, padding, layout=layout, workspace=workspace,
                  out=_scratch(workspace, "cols", (C * KH * KW, N * OH * OW), x.dtype))
    product = _scratch(workspace, "product", (F, N * OH * OW), np.result_type(W, x))
    np.matmul(W2, cols, out=product)                               # (F, K) @ (K, N*OH*OW)
    out = np.empty((N, F, OH, OW), dtype=product.dtype)
    inverse = np.argsort(LAYOUTS[layout])
    np.add(product.reshape(_layout_shape(layout, N, F, OH, OW)).transpose(inverse), b[:, None, None], out=out)
    return out, cols


def conv2d_backward(dout, cols, x_shape, W, stride=1, padding=0, need_dx=True, *, workspace=None):
    """Gradients of :func:`conv2d` from its cached ``cols``. Chapter 4 derives them; chapter 2 checks
    the input gradient against the full convolution with the rotated kernel.

    dout: (N, F, OH, OW) -> dx: (N, C, H, W) (``None`` if ``need_dx`` is false), dW: W's shape, db: (F,).
    With ``d = dout`` as (F, N*OH*OW) in the layout of ``cols``: ``dW = d @ cols^T``, ``db`` = the sum
    of ``d`` over its columns, and dx adds, for every kernel offset (p, q), ``W[:, :, p, q]^T @ d``
    onto the input pixels that offset saw: the full convolution of ``dout`` with the flipped kernel,
    built offset by offset. A ``dout`` of any other shape than the forward pass's output is a ``ValueError``.
    """
    _check_images(dout, "dout")
    (kh, kw), (sh, sw), (ph, pw), OH, OW = conv_geometry(x_shape, W.shape[2:], stride, padding)
    expected = (x_shape[0], W.shape[0], OH, OW)
    if dout.shape != expected:
        raise ValueError(f"dout has shape {dout.shape}, but the forward pass produced output of shape {expected}")
    N, C, H, Wd = x_shape
    F = W.shape[0]
    W2 = W.reshape(F, -1)                                          # (F, K)
    if _whole_image(x_shape, (kh, kw), (ph, pw)):                 # one window per image: plain products
        d2 = dout.reshape(N, F)
        dx = (d2 @ W2).reshape(x_shape) if need_dx else None
        return dx, (d2.T @ cols.T).reshape(W.shape), d2.sum(axis=0)
    layout = conv_layout(OW)
    d = _scratch(workspace, "dout_layout", _layout_shape(layout, N, F, OH, OW), dout.dtype)
    d[...] = dout.transpose(LAYOUTS[layout])
    d = d.reshape(F, N * OH * OW)
    db = d.sum(axis=1)
    dW = (d @ cols.T).reshape(W.shape)
    if not need_dx:
        return None, dW, db
    dtype = np.result_type(dout, W)
    dxl = _scratch(workspace, "dx_layout", _layout_shape(layout, N, C, H + 2 * ph, Wd + 2 * pw), dtype)
    dxl[...] = 0
    share = _scratch(workspace, "share", (C, N * OH * OW), dtype)
    share_l = share.reshape(_layout_shape(layout, N, C, OH, OW))
    for p in range(kh):
        for q in range(kw):
            np.matmul(W[:, :, p, q].T, d, out=share)               # (C, F) @ (F, N*OH*OW)
            _at(dxl, layout, slice(p, p + sh * OH, sh), slice(q, q + sw * OW, sw))[...] += share_l
    return _from_layout(dxl, layout, x_shape, (ph, pw)), dW, db


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

    Explained in chapter 3 (book/ch03_pooling.ipynb).
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
        # strict: ties keep the first maximum; a NaN beats any number (it propagates, as in PyTorch)
        better = (candidate > out) | (np.isnan(candidate) & ~np.isnan(out))
        np.copyto(out, candidate, where=better)
        argmax[better] = k
    return out, argmax


def pool2d_backward(dout, cache, x_shape, kernel_size, stride=None, mode="max"):
    """Gradient of :func:`pool2d`. dout: (N, C, OH, OW) -> dx: x_shape (a new array).

    Loops over the KH*KW offsets inside a window (4 for 2x2), sending each window's share to the
    pixel at that offset. When the windows tile the image (stride = kernel, LeNet's case) every pixel
    belongs to at most one window, so the shares are written, not added, into an uninitialised array.

    Explained in chapter 3 (book/ch03_pooling.ipynb).
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
