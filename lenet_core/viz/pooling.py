"""Figures of chapter 3: pooling windows, forward and backward."""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .common import COLUMN_INCHES, _as_2d, plot_matrices, show_images

__all__: list[str] = []

# --- Pooling windows (chapter 3) --------------------------------------------------------------

_WINDOW_COLOURS = plt.get_cmap("tab10").colors


def _pool(x2d, kernel_size, stride, mode):
    from .. import functional

    out, cache = functional.pool2d(x2d[None, None], kernel_size, stride, mode)
    return out[0, 0], cache


def plot_pool_windows(x, kernel_size: int, stride: int | None = None, mode: str = "max",
                      *, fmt: str = "{:g}") -> Figure:
    """A small input with every pooling window framed in its own colour, and the pooled output
    whose cells carry the same colours; for max pooling the winner of each window is circled.

    Overlapping windows (stride < kernel) are drawn slightly inset so that both frames stay visible.
    """
    x = _as_2d("x", x)
    s = kernel_size if stride is None else stride
    out, cache = _pool(x, kernel_size, s, mode)
    fig = plot_matrices([x, out], [f"input {x.shape[0]}x{x.shape[1]}",
                                   f"{mode} pool k={kernel_size}, s={s}: {out.shape[0]}x{out.shape[1]}"],
                        fmt=fmt, cmap="Greys", cbar_labels=["pixel value", "pooled value"],
                        suptitle="each output cell summarises the window of its colour")
    ax_in, ax_out = fig.axes[0], fig.axes[1]   # the colour bars come after the two image axes
    OH, OW = out.shape
    for i in range(OH):
        for j in range(OW):
            c = _WINDOW_COLOURS[(i * OW + j) % len(_WINDOW_COLOURS)]
            inset = 0.06 * ((i * OW + j) % 3)
            ax_in.add_patch(plt.Rectangle((j * s - 0.5 + inset, i * s - 0.5 + inset), kernel_size - 2 * inset,
                                          kernel_size - 2 * inset, fill=False, ec=c, lw=2.5))
            ax_out.add_patch(plt.Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, ec=c, lw=3))
            if mode == "max":
                p, q = divmod(int(cache[0, 0, i, j]), kernel_size)
                ax_in.add_patch(plt.Circle((j * s + q, i * s + p), 0.38, fill=False, ec=c, lw=2, ls=":"))
    return fig


def plot_pool_backward(x, dout, kernel_size: int, stride: int | None = None, mode: str = "max",
                       *, fmt: str = "{:g}", ncols: int = 3) -> Figure:
    """Forward input, upstream gradient ``dout`` and the routed gradient ``dx`` (from
    :func:`lenet_core.functional.pool2d_backward`), as annotated heat maps, ``ncols`` per row
    (2 puts ``dx`` below: room for wide numbers).

    For max pooling the cells that received gradient (the first maximum of each window) are framed
    in red on the input.
    """
    from .. import functional

    x, dout = _as_2d("x", x), _as_2d("dout", dout)
    s = kernel_size if stride is None else stride
    out, cache = _pool(x, kernel_size, s, mode)
    if dout.shape != out.shape:
        raise ValueError(f"dout must have the pooled shape {out.shape}, got {dout.shape}")
    dx = functional.pool2d_backward(dout[None, None], cache, (1, 1) + x.shape, kernel_size, s, mode)[0, 0]
    winners = None
    if mode == "max":
        winners = np.zeros(x.shape, dtype=bool)
        for (i, j), w in np.ndenumerate(cache[0, 0]):
            p, q = divmod(int(w), kernel_size)
            winners[i * s + p, j * s + q] = True
    return plot_matrices([x, dout, dx], ["input x" + (" (red: winners)" if winners is not None else ""),
                                         "upstream\ngradient dout", "dx = gradient routed back"],
                         ncols=ncols,
                         fmt=fmt, cmap="Greys", highlight=[winners, None, None],
                         cbar_labels=["pixel value", "dL/d(output)", "dL/d(input)"],
                         suptitle=f"{mode} pooling backward, kernel {kernel_size}, stride {s}")


def pool_explorer_figure(image, kernel_size: int, stride: int | None = None, mode: str = "max") -> Figure:
    """A digit and its pooled version, side by side at the same display size (the widget's view)."""
    img = _as_2d("image", image)
    s = kernel_size if stride is None else stride
    out, _ = _pool(img, kernel_size, s, mode)
    return show_images([img, out], [f"input {img.shape[0]}x{img.shape[1]}",
                                    f"{mode} pool k={kernel_size}, s={s}: {out.shape[0]}x{out.shape[1]}"],
                       suptitle=f"{mode} pooling with kernel {kernel_size} and stride {s}",
                       vmin=float(img.min()), vmax=float(img.max()), size=2.9, cbar_label="intensity")


def plot_pool_gallery(image, kernel_sizes=(2, 3), strides=(1, 2, 3), modes=("avg", "max")) -> Figure:
    """Static version of the pooling explorer: every (mode, kernel size) is a row, every stride a column.

    The input digit sits alone in the first column of the first row. All panels share the input's
    colour scale, so avg and max pooling can be compared by eye.
    """
    img = _as_2d("image", image)
    kernel_sizes, strides, modes = list(kernel_sizes), list(strides), list(modes)
    if not kernel_sizes or not strides or not modes:
        raise ValueError("kernel_sizes, strides and modes must all be non-empty")
    lo, hi = float(img.min()), float(img.max())
    rows = [(m, k) for m in modes for k in kernel_sizes]
    n = len(strides) + 1
    fig, axes = plt.subplots(len(rows), n, figsize=(min(1.65 * n + 0.6, COLUMN_INCHES), 1.75 * len(rows) + 0.6),
                             squeeze=False, layout="constrained")
    h = axes[0, 0].imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    axes[0, 0].set_title(f"input {img.shape[0]}x{img.shape[1]}", fontsize=9)
    axes[0, 0].axis("off")
    for ax in axes[1:, 0]:
        ax.axis("off")
    for r, (mode, k) in enumerate(rows):
        for c, s in enumerate(strides, start=1):
            out, _ = _pool(img, k, s, mode)
            axes[r, c].imshow(out, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            axes[r, c].set_title(f"{mode} k={k} s={s}: {out.shape[0]}x{out.shape[1]}", fontsize=9)
            axes[r, c].axis("off")
    fig.colorbar(h, ax=axes, fraction=0.02, pad=0.01, label="intensity (shared scale)")
    fig.suptitle("Pooling a digit: rows = (mode, kernel size), columns = stride")
    return fig


__all__ += ["plot_pool_windows", "plot_pool_backward", "pool_explorer_figure", "plot_pool_gallery"]
