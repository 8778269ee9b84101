"""Figures of chapter 2: hand-made kernels and what they do to a digit (the computation is
:mod:`lenet_core.filters`)."""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .common import COLUMN_INCHES, _as_2d, _as_images, _colorbar, _text_colour, _per_axis
from ..filters import filter2d

__all__: list[str] = []

# --- Kernels and convolution (chapter 2) ------------------------------------------------------


def _kernel_axes(fig, ax, k, name):
    """Draw a kernel as an annotated, zero-centred heat map."""
    lim = float(np.abs(k).max()) or 1.0
    cm, norm = plt.get_cmap("RdBu_r"), plt.Normalize(-lim, lim)
    h = ax.imshow(k, cmap=cm, norm=norm, interpolation="nearest")
    small = k.shape[0] * k.shape[1] <= 25
    for (i, j), v in np.ndenumerate(k):
        if small:
            ax.text(j, i, f"{v:.2g}",
                    ha="center", va="center", fontsize=9 if k.shape[0] <= 3 else 7,
                    color=_text_colour(cm, norm, v))
    ax.set_title(f"kernel: {name}", fontsize=10)
    ax.axis("off")
    _colorbar(fig, h, ax, "weight")


def plot_kernel_responses(image, kernels: dict, *, ncols: int = 3) -> Figure:
    """Each kernel (values printed) above its response on ``image``, ``ncols`` kernels per row.

    Responses come from :func:`filter2d` (cross-correlation, same size) and are drawn with a
    zero-centred colour map (red positive, blue negative) and a colour bar.
    """
    img = _as_2d("image", image)
    if not kernels:
        raise ValueError("kernels is empty")
    n = len(kernels)
    ncols = min(n, ncols)
    nrows = 2 * -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(2.4 * ncols, COLUMN_INCHES), 2.2 * nrows + 0.4),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for j, (name, k) in enumerate(kernels.items()):
        k = _as_2d(f"kernels[{name!r}]", k)
        row, col = 2 * (j // ncols), j % ncols
        _kernel_axes(fig, axes[row, col], k, name)
        r = filter2d(img, k)
        lim = float(np.abs(r).max()) or 1.0
        h = axes[row + 1, col].imshow(r, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        axes[row + 1, col].set_title(f"response: {name}", fontsize=10)
        _colorbar(fig, h, axes[row + 1, col], "response")
    fig.suptitle("Classic kernels and, below each, what it does to a digit\n(red > 0 > blue)")
    return fig


def kernel_explorer_figure(image, kernel, name: str = "kernel") -> Figure:
    """One input, one kernel, one response, side by side, each with a colour bar (the widget's view)."""
    img, k = _as_2d("image", image), _as_2d("kernel", kernel)
    r = filter2d(img, k)
    fig, axes = plt.subplots(1, 3, figsize=(COLUMN_INCHES, 2.9), layout="constrained")
    h = axes[0].imshow(img, cmap="gray", interpolation="nearest")
    axes[0].set_title("input")
    axes[0].axis("off")
    _colorbar(fig, h, axes[0], "intensity")
    _kernel_axes(fig, axes[1], k, name)
    lim = float(np.abs(r).max()) or 1.0
    h = axes[2].imshow(r, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    axes[2].set_title(f"response\n(min {r.min():.2f}, max {r.max():.2f})")
    axes[2].axis("off")
    _colorbar(fig, h, axes[2], "response")
    fig.suptitle(f"Cross-correlation with '{name}'")
    return fig


def plot_kernel_gallery(images, kernels: dict, *, row_labels=None) -> Figure:
    """Every kernel on every image: one column per image, the input in the first row and one row
    per kernel below it, each response with its own colour bar.

    This is the static version of the chapter's kernel explorer widget. ``row_labels``: one name
    per image (the columns' titles; the argument kept its name from the transposed layout).
    """
    imgs = _as_images("images", images, 3)
    if not kernels:
        raise ValueError("kernels is empty")
    labels = _per_axis(row_labels, len(imgs), "row_labels")
    n = len(kernels) + 1
    fig, axes = plt.subplots(n, len(imgs), figsize=(min(1.8 * len(imgs) + 0.2, COLUMN_INCHES), 1.65 * n + 0.5),
                             squeeze=False, layout="constrained")
    for c, img in enumerate(imgs):
        img = img.astype(np.float64)
        axes[0, c].imshow(img, cmap="gray", interpolation="nearest")
        axes[0, c].set_title("input" if labels[c] is None else f"input: {labels[c]}", fontsize=9)
        axes[0, c].axis("off")
        for r, (name, k) in enumerate(kernels.items(), start=1):
            out = filter2d(img, k)
            lim = float(np.abs(out).max()) or 1.0
            h = axes[r, c].imshow(out, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            axes[r, c].set_title(name, fontsize=9)
            axes[r, c].axis("off")
            cb = _colorbar(fig, h, axes[r, c], "response")
            cb.ax.tick_params(labelsize=8)
            cb.ax.yaxis.label.set_fontsize(8)
    fig.suptitle("Every kernel (rows) on every digit (columns):\nred > 0 > blue, each panel on its own scale")
    return fig


__all__ += ["plot_kernel_responses", "kernel_explorer_figure", "plot_kernel_gallery"]
