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
windows as the columns of one matrix for the whole batch (:func:`unfold`), and stores its images
batch-last in memory (:func:`batch_last`) while keeping the (N, C, H, W) shape and indexing.
Tests check the fast functions against the naive loops in float64.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "output_size",
    "pair",
    "conv_geometry",
    "batch_last",
    "new_batch_last",
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
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and (minimum is None or min(value) >= minimum):
        return value                                               # already a pair (the layers' own)
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

def _offset(x, p, q, stride, out_size):
    """The pixel at offset (p, q) of every window: ``x[:, :, p::sh, q::sw]`` cut to OH x OW (a view).

    x: (N, C, H, W) in any memory layout. Every fast loop below runs over these KH*KW views (25 for a
    5x5 kernel, 4 for 2x2 pooling), never over pixels or images.
    """
    (sh, sw), (OH, OW) = stride, out_size
    return x[:, :, p:p + sh * OH:sh, q:q + sw * OW:sw]


def _add_windows(x, patches, stride):
    """Add every window's patch back onto the pixels it came from, in place; returns ``x``.

    x: (N, C, H, W); patches: (KH, KW, N, C, OH, OW), ``patches[p, q]`` the values for offset (p, q)
    of every window. Overlapping windows add up. The one loop behind :func:`col2im` and :func:`fold`.
    """
    kh, kw, _, _, OH, OW = patches.shape
    for p in range(kh):
        for q in range(kw):
            window = _offset(x, p, q, stride, (OH, OW))
            window += patches[p, q]
    return x


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
    patches = cols.reshape(N, OH, OW, C, kh, kw).transpose(4, 5, 0, 3, 1, 2)  # (KH, KW, N, C, OH, OW)
    xp = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=cols.dtype)
    return _add_windows(xp, patches, (sh, sw))[:, :, ph:ph + H, pw:pw + Wd]


# ----------------------------------------------------------------------------------------------
# The fast engine. Same maths as above, arranged for speed (measured in benchmarks/):
#
# - Images are stored batch-last. Arrays keep PyTorch's (N, C, H, W) shape and indexing, but the
#   engine's outputs are the transposed view of a (C, H, W, N) array: the N images' values of one
#   pixel sit side by side in memory. NumPy treats such an array like any other (``np.tanh`` and
#   friends keep its layout); ``np.ascontiguousarray`` would give the usual layout back.
# - Why: every window offset (p, q) of every image is then one slice whose rows are OW*N contiguous
#   numbers (2,560 for C3 at batch 256), so unfolding windows, adding gradients back and pooling
#   stream through memory; and the product ``W.reshape(F, -1) @ cols`` (F, OH*OW*N) already is the
#   output in that layout, so no layer transposes its output and the next layer unfolds it as is.
# - ``unfold`` puts the windows in the columns of ONE matrix for the whole batch, (C*KH*KW, OH*OW*N),
#   so a layer is a few large matrix products (OpenBLAS is at its best on large products, not on N
#   small ones), copied from a strided view of every window in one call.
# - The forward pass unfolds the windows band by band of output positions (:data:`FORWARD_BAND_BYTES`
#   of windows at a time) and multiplies each band as soon as it is written, while it is still in the
#   core's cache; under :func:`lenet_core.layers.no_grad` (prediction) the bands share one small
#   buffer, so the whole matrix (78 MB for C1 at batch 1000) is never written. The engine runs one
#   BLAS thread per shard of the batch (:mod:`lenet_core.parallel`), so a small product costs no
#   waiting between threads.
# - The input gradient is the product ``W.reshape(F, -1).T @ dout`` (the column gradients) folded back
#   onto the windows, in bands of :data:`BAND_BYTES`: 25 slice additions per band for a 5x5 kernel,
#   each over long contiguous rows, so these bands are large.
# - Scratch arrays live in a :class:`Workspace` and are reused from one call to the next; arrays that
#   are returned to the caller are always new.
# ----------------------------------------------------------------------------------------------

#: bytes of column gradients the backward pass folds at a time (a band of output rows): LeNet's
#: layers at batch 256 fit in one band (C1's matrix is 20 MB), batch 1000 takes two or three
BAND_BYTES = 32 << 20

#: bytes of unfolded windows the forward pass multiplies at a time: small enough for a band to be
#: in the core's cache when the product reads it (``benchmarks/bench_shards.py`` measures the sizes)
FORWARD_BAND_BYTES = 512 << 10

#: a convolution with at least this many output channels keeps its unfolded windows for the backward
#: pass; one with fewer (LeNet's C1: 6) keeps its input and unfolds the windows again, band by band.
#: Its products do few multiply-adds per window value (one per output channel), so reading a kept
#: matrix back from memory costs more than unfolding it again from the small input; with C3's 16
#: channels it is the other way round (``benchmarks/bench_shards.py`` measures both)
KEEP_WINDOWS_FROM = 8


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


def batch_last(x) -> bool:
    """True when the (N, C, H, W) array ``x`` is stored batch-last, as the fast engine's outputs are:
    ``x.transpose(1, 2, 3, 0)`` is then a C-contiguous (C, H, W, N) array, x's own memory.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    return x.transpose(1, 2, 3, 0).flags.c_contiguous


def new_batch_last(shape, dtype, fill=None) -> np.ndarray:
    """A new (N, C, H, W) array stored batch-last (uninitialised, or filled with ``fill``).

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    N, C, H, W = shape
    stored = np.empty((C, H, W, N), dtype) if fill is None else np.full((C, H, W, N), fill, dtype)
    return stored.transpose(3, 0, 1, 2)


def _padded_batch_last(x, padding, workspace, name):
    """x (N, C, H, W), zero-padded by ``padding``, as a C-contiguous (C, H + 2ph, W + 2pw, N) array:
    x's own memory when it is stored batch-last and needs no padding, else a copy in the workspace."""
    ph, pw = padding
    xl = x.transpose(1, 2, 3, 0)
    if not (ph or pw) and xl.flags.c_contiguous:
        return xl
    N, C, H, Wd = x.shape
    out = _scratch(workspace, name, (C, H + 2 * ph, Wd + 2 * pw, N), x.dtype)
    if ph or pw:
        out[...] = 0
    out[:, ph:ph + H, pw:pw + Wd] = xl
    return out


def unfold(x, kernel_size, stride=1, padding=0, out=None, *, workspace=None):
    """Windows as the columns of one matrix for the whole batch: x (N, C, H, W) -> (C*KH*KW, OH*OW*N).

    Column ``(i*OW + j)*N + n`` is the window of image n at output position (i, j) (batch-last, like
    the engine's images), flattened in ``(C, KH, KW)`` order like a row of ``W.reshape(F, -1)``: this is
    :func:`im2col`, transposed, with its rows in that order. ``out``, if given, is a C-contiguous array
    of that shape to fill (a reused buffer). It is copied from a strided view of every window, one
    copy per band of output rows (``workspace`` holds the batch-last copy of x when one is needed).

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    _check_images(x)
    (kh, kw), stride, padding, OH, OW = conv_geometry(x.shape, kernel_size, stride, padding)
    N, C, _, _ = x.shape
    shape = (C * kh * kw, OH * OW * N)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous array of shape {shape}, got shape {out.shape}")
    for _ in _unfold_bands(x, (kh, kw), stride, padding, out, workspace):
        pass                                                       # each band is written into out
    return out


def _bands(OH: int, OW: int, N: int, window_bytes: int, limit: int):
    """Bands of output positions whose unfolded windows take at most ``limit`` bytes (at least
    one position each): ``(rows, cols, columns)``, the slices of output rows and columns of the band
    and of its columns in :func:`unfold`'s matrix (always contiguous). Whole rows when a row fits,
    else pieces of one row. ``window_bytes``: the bytes of one image's unfolded window.
    """
    position = max(1, N * window_bytes)                            # one output position, every image
    rows, width = max(1, limit // (OW * position)), max(1, limit // position)
    if rows > 1 or width >= OW:
        pieces = [(slice(i, min(i + rows, OH)), slice(0, OW)) for i in range(0, OH, rows)]
    else:
        pieces = [(slice(i, i + 1), slice(j, min(j + width, OW))) for i in range(OH) for j in range(0, OW, width)]
    return [(r, c, slice((r.start * OW + c.start) * N, ((r.stop - 1) * OW + c.stop) * N)) for r, c in pieces]


def _unfold_bands(x, kernel, stride, padding, cols, workspace):
    """Unfold x band by band (:func:`_bands`): yields ``(columns, matrix)``, the slice of the band's
    columns in :func:`unfold`'s matrix and the band's unfolded windows (K, width), once they are
    filled, so the caller can use them while they are still in the cache. They are written into
    ``cols`` (the whole matrix, C-contiguous) or, when ``cols`` is None, into one band-sized buffer
    of ``workspace`` reused from band to band.

    Each band is one copy from a strided view of every window (no loop over the kernel offsets).
    """
    (kh, kw), (sh, sw), padding, OH, OW = conv_geometry(x.shape, kernel, stride, padding)
    N, C, _, _ = x.shape
    K = C * kh * kw
    xp = _padded_batch_last(x, padding, workspace, "x_padded")    # (C, H', W', N)
    # windows[c, p, q, i, j, n] = xp[c, i*sh + p, j*sw + q, n]: a view, nothing is copied yet
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, :sh * OH:sh, :sw * OW:sw]
    windows = windows.transpose(0, 4, 5, 1, 2, 3)                  # (C, KH, KW, OH, OW, N)
    whole = None if cols is None else cols.reshape(C, kh, kw, OH, OW, N)
    for rows, columns, flat in _bands(OH, OW, N, K * xp.itemsize, FORWARD_BAND_BYTES):
        if whole is None:
            matrix = _scratch(workspace, "band", (K, flat.stop - flat.start), xp.dtype)
            target = matrix.reshape(C, kh, kw, rows.stop - rows.start, columns.stop - columns.start, N)
        else:
            matrix, target = cols[:, flat], whole[:, :, :, rows, columns]
        np.copyto(target, windows[:, :, :, rows, columns])
        yield flat, matrix


def fold(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of :func:`unfold`: add every column back onto its window.

    cols: (C*KH*KW, OH*OW*N) in :func:`unfold`'s order -> a new (N, C, H, W) array, stored batch-last.
    Overlapping windows add up; the loop runs over the KH*KW offsets.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    kernel, stride, (ph, pw), OH, OW = conv_geometry(x_shape, kernel_size, stride, padding)
    N, C, H, Wd = x_shape
    xp = new_batch_last((N, C, H + 2 * ph, Wd + 2 * pw), cols.dtype, fill=0)
    return _fold_band(xp, cols, (slice(0, OH), slice(0, OW)), kernel, stride)[:, :, ph:ph + H, pw:pw + Wd]


def _fold_band(xp, cols, band, kernel, stride):
    """Add ``cols``, the columns of the output positions ``band = (rows, cols)`` (slices, in
    :func:`unfold`'s order), back onto their windows of the padded images ``xp`` (N, C, H', W'), in
    place; returns ``xp``."""
    (kh, kw), (sh, sw), (rows, columns) = kernel, stride, band[:2]
    N, C = xp.shape[:2]
    shape = (C, kh, kw, rows.stop - rows.start, columns.stop - columns.start, N)
    patches = cols.reshape(shape).transpose(1, 2, 5, 0, 3, 4)     # (KH, KW, N, C, rows, cols)
    _add_windows(xp[:, :, rows.start * sh:, columns.start * sw:], patches, stride)
    return xp


def conv2d(x, W, b, stride=1, padding=0, *, workspace=None, keep_cols=True):
    """Vectorised :func:`conv2d_naive`. Returns ``(out, cols)``; keep ``cols`` for the backward pass.

    x: (N, C, H, W), W: (F, C, KH, KW), b: (F,) -> out: (N, F, OH, OW), a new array stored batch-last.
    cols: the windows, (C*KH*KW, OH*OW*N) (see :func:`unfold`); when the kernel covers the whole image
    (one window per image, LeNet's C5) simply x as a (C*H*W, N) matrix, a view when x is stored
    batch-last. ``workspace`` (a :class:`Workspace`) holds the scratch arrays, reused from call to
    call (``cols`` is one of them: the next call overwrites it).

    The whole layer is one matrix product: ``W.reshape(F, -1) @ cols`` (F, OH*OW*N), plus the bias,
    computed band by band of output rows as the windows are unfolded (:data:`FORWARD_BAND_BYTES`). With
    ``keep_cols=False`` (inference: no backward pass follows) the bands share one small buffer and
    ``cols`` is ``None``: the whole matrix (78 MB for C1 at batch 1000) is never written.

    Explained in chapter 2 (book/ch02_convolution.ipynb).
    """
    _check_images(x)
    F, C, KH, KW = W.shape
    if x.shape[1] != C:
        raise ValueError(f"x has {x.shape[1]} channels but W expects {C} (x shape {x.shape})")
    N = x.shape[0]
    kernel, _, padding, OH, OW = conv_geometry(x.shape, (KH, KW), stride, padding)
    out = np.empty((F, OH, OW, N), dtype=np.result_type(W, x))
    Wm, out_m, bias = W.reshape(F, -1), out.reshape(F, -1), b.reshape(F, 1)
    if _whole_image(x.shape, kernel, padding):                     # one window per image: x itself
        cols = _padded_batch_last(x, padding, workspace, "cols").reshape(C * KH * KW, N)
        np.matmul(Wm, cols, out=out_m)
        out_m += bias
        return out.transpose(3, 0, 1, 2), cols if keep_cols else None
    cols = _scratch(workspace, "cols", (C * KH * KW, OH * OW * N), x.dtype) if keep_cols else None
    for band, matrix in _unfold_bands(x, kernel, stride, padding, cols, workspace):
        np.matmul(Wm, matrix, out=out_m[:, band])                 # (F, K) @ (K, band), from the cache
        out_m[:, band] += bias
    return out.transpose(3, 0, 1, 2), cols


def conv2d_backward(dout, cols, x_shape, W, stride=1, padding=0, need_dx=True, *, workspace=None, x=None):
    """Gradients of :func:`conv2d` from its cached ``cols``. Chapter 4 derives them; chapter 2 checks
    the input gradient against the full convolution with the rotated kernel.

    dout: (N, F, OH, OW) -> dx: (N, C, H, W) (a new array stored batch-last; ``None`` if ``need_dx`` is
    false), dW: W's shape, db: (F,). With ``d = dout`` as (F, OH*OW*N), ordered like the columns of
    ``cols``: ``dW = d @ cols^T``, ``db`` = the sum of ``d`` over its columns, and dx is the column
    gradient ``W.reshape(F, -1)^T @ d`` folded back onto the windows (:func:`fold`). A ``dout`` of any
    other shape than the forward pass's output is a ``ValueError``. With ``cols=None``, the windows
    are unfolded again from the forward pass's images ``x``, band by band (:data:`KEEP_WINDOWS_FROM`).
    """
    _check_images(dout, "dout")
    kernel, stride, padding, OH, OW = conv_geometry(x_shape, W.shape[2:], stride, padding)
    expected = (x_shape[0], W.shape[0], OH, OW)
    if dout.shape != expected:
        raise ValueError(f"dout has shape {dout.shape}, but the forward pass produced output of shape {expected}")
    N, C, H, Wd = x_shape
    F = W.shape[0]
    d = _padded_batch_last(dout, (0, 0), workspace, "dout").reshape(F, -1)   # (F, OH*OW*N)
    db = d.sum(axis=1)
    if cols is not None:
        dW = (cols @ d.T).T.reshape(W.shape)                        # (K, M) @ (M, F): BLAS's faster order
    elif x is not None:
        dW = _weight_grad_in_bands(x, d, W.shape, stride, padding, workspace)
    else:
        raise ValueError("conv2d_backward needs the forward pass's windows (cols) or its images (x)")
    if not need_dx:
        return None, dW, db
    if _whole_image(x_shape, kernel, padding):                     # one window per image: no fold
        return (W.reshape(F, -1).T @ d).reshape(C, H, Wd, N).transpose(3, 0, 1, 2), dW, db
    (ph, pw), dtype = padding, np.result_type(W, d)
    dxp = new_batch_last((N, C, H + 2 * ph, Wd + 2 * pw), dtype, fill=0)
    # the column gradients W^T d, (K, OH*OW*N), one band of output rows at a time, each folded back
    # onto its windows while it is in the cache
    K = W.size // F                                                # C*KH*KW: one window's values
    bands = _bands(OH, OW, N, K * dtype.itemsize, BAND_BYTES)
    widest = max(band.stop - band.start for _, _, band in bands)
    dcols = _scratch(workspace, "dcols", (K, widest), dtype)
    for band in bands:
        dband = dcols[:, :band[2].stop - band[2].start]
        np.matmul(W.reshape(F, -1).T, d[:, band[2]], out=dband)  # (K, F) @ (F, band)
        _fold_band(dxp, dband, band, kernel, stride)
    return dxp[:, :, ph:ph + H, pw:pw + Wd], dW, db


def _weight_grad_in_bands(x, d, w_shape, stride, padding, workspace):
    """``dW = d @ cols^T`` with the windows of ``x`` unfolded again, band by band
    (:data:`FORWARD_BAND_BYTES`), each band multiplied while it is in the cache. d: (F, OH*OW*N)."""
    F, C, KH, KW = w_shape
    dW = np.zeros((C * KH * KW, F), dtype=np.result_type(x, d))
    for band, matrix in _unfold_bands(x, (KH, KW), stride, padding, None, workspace):
        dW += matrix @ d[:, band].T                                # (K, band) @ (band, F)
    return dW.T.reshape(w_shape)


def _pool_geometry(x_shape, kernel_size, stride):
    (kh, kw) = _pair(kernel_size, "kernel_size")
    (sh, sw) = _pair(kernel_size if stride is None else stride, "stride")
    _, _, H, Wd = x_shape
    return (kh, kw), (sh, sw), output_size(H, kh, sh), output_size(Wd, kw, sw)


def pool2d(x, kernel_size, stride=None, mode="max"):
    """Vectorised pooling. x: (N, C, H, W) -> ``(out, cache)`` with out: (N, C, OH, OW), stored like x.

    Loops over the KH*KW offsets inside a window (4 for 2x2): ``x[:, :, p::sh, q::sw]`` (cut to
    OH x OW) holds the pixel at offset (p, q) of every window, so average pooling is the mean of
    these slices and max pooling their running maximum. ``cache`` holds what :func:`pool2d_backward`
    needs: for max pooling, the offset ``p*KW + q`` of each window's winner (the first maximum in
    row-major order, as in PyTorch); for average pooling, ``None``.

    Explained in chapter 3 (book/ch03_pooling.ipynb).
    """
    _check_images(x)
    (kh, kw), stride, OH, OW = _pool_geometry(x.shape, kernel_size, stride)
    _pool_reducer(mode)

    def at(k):                                                     # offset k = p*KW + q of every window
        return _offset(x, *divmod(k, kw), stride, (OH, OW))

    if mode == "avg":
        out = at(0).astype(_mean_dtype(x.dtype))                   # a copy in x's layout; integers as floats
        for k in range(1, kh * kw):
            out += at(k)
        out /= kh * kw
        return out, None
    out = at(0).copy(order="K")
    argmax = np.zeros_like(out, dtype=np.intp)
    for k in range(1, kh * kw):
        candidate = at(k)
        # strict: ties keep the first maximum; a NaN beats any number (it propagates, as in PyTorch)
        better = (candidate > out) | (np.isnan(candidate) & ~np.isnan(out))
        np.copyto(out, candidate, where=better)
        argmax[better] = k
    return out, argmax


def pool2d_backward(dout, cache, x_shape, kernel_size, stride=None, mode="max"):
    """Gradient of :func:`pool2d`. dout: (N, C, OH, OW) -> dx: x_shape (a new array, stored like dout).

    Loops over the KH*KW offsets inside a window (4 for 2x2), sending each window's share to the
    pixel at that offset. When the windows tile the image (stride = kernel, LeNet's case) every pixel
    belongs to at most one window, so the shares are written, not added, into an uninitialised array.

    Explained in chapter 3 (book/ch03_pooling.ipynb).
    """
    (kh, kw), stride, OH, OW = _pool_geometry(x_shape, kernel_size, stride)
    _pool_reducer(mode)
    tiles = stride == (kh, kw)
    covered = tiles and (OH * kh, OW * kw) == tuple(x_shape[2:])  # every pixel in exactly one window
    dx = (np.empty_like if covered else np.zeros_like)(dout, shape=x_shape)   # dout's memory layout
    share = dout / (kh * kw) if mode == "avg" else None
    for k in range(kh * kw):
        p, q = divmod(k, kw)
        grad = share if mode == "avg" else np.where(cache == k, dout, 0)
        target = _offset(dx, p, q, stride, (OH, OW))
        if tiles:
            target[...] = grad
        else:
            target += grad
    return dx
