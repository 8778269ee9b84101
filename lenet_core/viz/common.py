"""What every figure of *LeNet-5 from Scratch* shares: the page width, input checks, colour bars,
and the generic image, matrix and histogram plots.

The figures live in one module per topic (:mod:`lenet_core.viz`'s ``digits``, ``kernels``,
``pooling``, ``graphs``, ``training``, ``architecture``, ``fields``, ``attribution``); every
function returns a :class:`matplotlib.figure.Figure` whose axes carry a title and either
axis labels or ``axis("off")`` (for images), with a colour bar wherever the pixel values matter.
Input checks raise :class:`ValueError` with a message naming the wrong argument, so a chapter
never silently draws the wrong thing.
"""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__: list[str] = []

# The book's content column is about 730 px wide at a 1280 px window, and the notebooks' inline
# backend draws at 100 dpi: a figure at most this wide (inches) is shown at (nearly) its natural
# size, so a 10-pt label stays about 13 px tall. Wider figures are scaled down in the page.
COLUMN_INCHES = 7.2


def _as_2d(name: str, a) -> np.ndarray:
    """Return ``a`` as a 2-D float array, or raise ``ValueError`` naming ``name``."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def _as_images(name: str, a, ndim: int = 3) -> np.ndarray:
    """Return ``a`` as an array with ``ndim`` dimensions, or raise ``ValueError`` naming ``name``."""
    a = np.asarray(a)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return a


def _colorbar(fig: Figure, im, ax, label: str | None = None):
    """A colour bar as tall as the image it belongs to."""
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if label:
        cb.set_label(label)
    return cb


def _text_colour(cmap, norm, value) -> str:
    """Black on light cells, white on dark ones (luminance of the cell colour)."""
    r, g, b, _ = cmap(norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _per_axis(value, n: int, name: str) -> list:
    """A single value for every axis, or a list with one value per axis."""
    if value is None or isinstance(value, str):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} needs {n} entries, got {len(value)}")
    return value


def show_images(images, titles, *, suptitle: str | None = None, cmap: str = "gray",
                colorbar: bool = True, cbar_label: str | None = None, vmin=None, vmax=None,
                center_zero: bool = False, ncols: int | None = None, size: float = 3.0) -> Figure:
    """Draw 2-D images side by side (``ncols`` per row), each with its title and a colour bar.

    images: a sequence of 2-D arrays (they may differ in size); titles: one string per image.
    ``center_zero`` uses a diverging colour map symmetric around 0 (for signed responses);
    ``vmin``/``vmax`` fix a common colour scale, otherwise every image gets its own.
    """
    images = [_as_2d(f"images[{i}]", im) for i, im in enumerate(images)]
    if not images:
        raise ValueError("images is empty")
    titles = _per_axis(titles, len(images), "titles")
    ncols = min(len(images), ncols or len(images))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.6 * colorbar * ncols, size * nrows + 0.4),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(images):]:
        ax.remove()
    for ax, im, title in zip(axes.flat, images, titles):
        lo, hi = vmin, vmax
        cm = cmap
        if center_zero:
            m = float(np.abs(im).max()) or 1.0
            lo, hi, cm = -m, m, "RdBu_r"
        h = ax.imshow(im, cmap=cm, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
        if colorbar:
            _colorbar(fig, h, ax, cbar_label)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_matrices(matrices, titles, *, suptitle: str | None = None, annotate: bool = True,
                  fmt: str = "{:g}", cmap: str = "viridis", center_zero: bool = False,
                  xlabels="column", ylabels="row", colorbar: bool = True, cell: float = 0.6,
                  fontsize: float = 9, highlight=None, cbar_labels="value", ncols: int | None = None,
                  max_width: float = COLUMN_INCHES) -> Figure:
    """Small matrices as annotated heat maps, ``ncols`` per row: the way to *read* a tiny example.

    matrices: a sequence of 2-D arrays; titles: one per matrix. Every cell prints its value with
    ``fmt``. ``xlabels``/``ylabels``/``cbar_labels``: one string for all axes or one per matrix.
    ``highlight``: an optional sequence (one entry per matrix, or ``None``) of boolean masks whose
    ``True`` cells get a red frame (e.g. the winners of a max pool). ``cell`` is the side of one
    matrix cell in inches, shrunk so that the figure is at most ``max_width`` inches wide.
    """
    mats = [_as_2d(f"matrices[{i}]", m) for i, m in enumerate(matrices)]
    if not mats:
        raise ValueError("matrices is empty")
    n = len(mats)
    titles = _per_axis(titles, n, "titles")
    xlabels, ylabels = _per_axis(xlabels, n, "xlabels"), _per_axis(ylabels, n, "ylabels")
    cbar_labels = _per_axis(cbar_labels, n, "cbar_labels")
    highlight = [None] * n if highlight is None else _per_axis(highlight, n, "highlight")
    ncols = min(n, ncols or n)
    nrows = -(-n // ncols)
    slots = [mats[r * ncols:(r + 1) * ncols] for r in range(nrows)]
    widths = [max(max(row[c].shape[1], 2) for row in slots if c < len(row)) for c in range(ncols)]
    heights = [max(max(m.shape[0], 2) for m in row) for row in slots]
    cell = min(cell, (max_width - 0.8 * ncols) / sum(widths))      # ~0.8 in of labels per panel
    fig, axes = plt.subplots(nrows, ncols,
                             figsize=(min(cell * sum(widths) + 1.6 * ncols, max_width),
                                      sum(cell * h + 1.0 for h in heights) + 0.3 + 0.3 * bool(suptitle)),
                             width_ratios=widths, height_ratios=heights, squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.remove()
    for ax, m, title, xl, yl, cl, mask in zip(axes.flat, mats, titles, xlabels, ylabels, cbar_labels,
                                              highlight):
        cm = plt.get_cmap("RdBu_r" if center_zero else cmap)
        if center_zero:
            lim = float(np.abs(m).max()) or 1.0
            norm = plt.Normalize(-lim, lim)
        else:
            lo, hi = float(m.min()), float(m.max())
            norm = plt.Normalize(lo, hi if hi > lo else lo + 1)
        h = ax.imshow(m, cmap=cm, norm=norm, interpolation="nearest")
        if annotate:
            for (i, j), v in np.ndenumerate(m):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                        color=_text_colour(cm, norm, v))
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != m.shape:
                raise ValueError(f"highlight mask has shape {mask.shape}, matrix has {m.shape}")
            for i, j in zip(*np.nonzero(mask)):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2.5))
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
        ax.tick_params(labelsize=8)
        ax.set_title(title)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        if colorbar and 3 * m.shape[0] <= m.shape[1]:          # a flat row: its colour bar below
            fig.colorbar(h, ax=ax, location="bottom", fraction=0.15, aspect=30, label=cl)
        elif colorbar:
            _colorbar(fig, h, ax, cl)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_value_histograms(arrays, titles, *, suptitle: str | None = None, bins: int = 50,
                          xlabel: str = "pixel value") -> Figure:
    """Histograms (log count) of the values of several arrays, one panel each, with mean and std."""
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("arrays must be a non-empty sequence of non-empty arrays")
    titles = _per_axis(titles, len(arrays), "titles")
    width = min(4.0, COLUMN_INCHES / len(arrays))
    fig, axes = plt.subplots(1, len(arrays), figsize=(width * len(arrays), 3.4), squeeze=False,
                             layout="constrained")
    for ax, a, title in zip(axes[0], arrays, titles):
        ax.hist(a, bins=bins, color="tab:blue")
        ax.set_yscale("log")
        ax.axvline(a.mean(), color="tab:red", ls="--", label=f"mean {a.mean():.3f}")
        ax.axvspan(a.mean() - a.std(), a.mean() + a.std(), color="tab:red", alpha=0.1,
                   label=f"± std {a.std():.3f}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count (log scale)")
        ax.legend(fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


__all__ += ["show_images", "plot_matrices", "plot_value_histograms"]
