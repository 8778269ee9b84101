"""Plotting helpers for the chapters of *LeNet-5 from Scratch*: every figure, none of the computation.

Every function returns a :class:`matplotlib.figure.Figure` whose axes carry a title and either
axis labels or ``axis("off")`` (for images), with a colour bar wherever the pixel values matter.
The notebooks call these helpers and end the cell with ``plt.show()``; the long plotting code
lives here so that the chapters stay short and the helpers can be unit-tested
(``tests/test_viz.py``).

Input checks raise :class:`ValueError` with a message naming the wrong argument, so a chapter
never silently draws the wrong thing.
"""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

# Sections by topic; each ends by adding its names to __all__.
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


# --- Digits and data sets (chapter 1) ---------------------------------------------------------

def plot_digit_grid(images, labels, *, per_class: int = 10, num_classes: int = 10, rng=0) -> Figure:
    """A ``num_classes`` x ``per_class`` grid of digits: row ``k`` shows random examples of class ``k``.

    images: (N, H, W); labels: (N,) integers. ``rng`` (a seed or ``np.random.Generator``) picks the
    examples, so a seed gives the same grid. Raises ``ValueError`` if a class has too few examples.
    """
    images = _as_images("images", images, 3)
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    rng = np.random.default_rng(rng)
    cell = min(0.65, (COLUMN_INCHES - 0.8) / per_class)
    fig, axes = plt.subplots(num_classes, per_class, figsize=(cell * per_class + 0.8, cell * num_classes + 0.6),
                             squeeze=False, layout="constrained")
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        if len(idx) < per_class:
            raise ValueError(f"class {k} has {len(idx)} examples, fewer than per_class={per_class}")
        for j, i in enumerate(rng.choice(idx, per_class, replace=False)):
            ax = axes[k, j]
            ax.imshow(images[i], cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{k}", rotation=0, labelpad=12, fontsize=12, va="center")
    fig.suptitle(f"{per_class} random training digits per class (row = label)")
    fig.supylabel("label")
    return fig


def plot_pixel_values(image, *, title: str = "pixel values", fontsize: float = 7, fmt: str = "{:d}") -> Figure:
    """A digit drawn large with every pixel's value printed on it, plus a colour bar.

    image: 2-D (e.g. 28x28 uint8). Values are formatted with ``fmt`` (``"{:d}"`` for integers,
    e.g. ``"{:.1f}"`` for floats).
    """
    img = np.asarray(image)
    _as_2d("image", img)
    H, W = img.shape
    cell = (COLUMN_INCHES - 0.7) / W       # the colour bar goes below: the values need the width
    fig, ax = plt.subplots(figsize=(cell * W + 0.7, cell * H + 1.3), layout="constrained")
    cm = plt.get_cmap("gray")
    norm = plt.Normalize(float(img.min()), float(img.max()) if img.max() > img.min() else float(img.min()) + 1)
    h = ax.imshow(img, cmap=cm, norm=norm, interpolation="nearest")
    for (i, j), v in np.ndenumerate(img):
        if v != 0:
            ax.text(j, i, fmt.format(v.item()), ha="center", va="center", fontsize=fontsize,
                    color=_text_colour(cm, norm, v))
    ax.set_xticks(range(0, W, 4))
    ax.set_yticks(range(0, H, 4))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title)
    fig.colorbar(h, ax=ax, orientation="horizontal", location="bottom", fraction=0.035, pad=0.01,
                 aspect=40, label="intensity")
    return fig


def plot_class_counts(y_train, y_test, *, num_classes: int = 10) -> Figure:
    """Grouped bars: how many training and test examples each class has, with the counts printed."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if y.ndim != 1 or y.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array of labels, got shape {y.shape}")
    train = np.bincount(y_train, minlength=num_classes)
    test = np.bincount(y_test, minlength=num_classes)
    x = np.arange(num_classes)
    fig, axes = plt.subplots(2, 1, figsize=(COLUMN_INCHES, 5.6), sharex=True, layout="constrained")
    for ax, counts, name, colour in ((axes[0], train, "training set", "tab:blue"),
                                     (axes[1], test, "test set", "tab:orange")):
        bars = ax.bar(x, counts, color=colour)
        ax.bar_label(bars, fontsize=8)
        ax.axhline(counts.mean(), color="black", ls="--", lw=1, label=f"uniform: {counts.mean():,.0f}")
        ax.set_xticks(x)
        ax.set_ylabel("number of images")
        ax.set_ylim(0, counts.max() * 1.15)
        ax.set_title(f"{name}: {counts.sum():,} images")
        ax.legend(loc="lower right", fontsize=8)
    axes[1].set_xlabel("class (digit)")
    fig.suptitle("MNIST class balance")
    return fig


def plot_receptive_field_centres(image, *, kernel: int = 5, pad: int = 2) -> Figure:
    """Where C1's receptive fields can be centred, without and with padding.

    Left: the raw 28x28 digit; a valid 5x5 convolution has 24x24 outputs whose centres cover only the
    inner square (dashed), so ink in the outer ``kernel // 2`` pixels is never at a centre. Right: the
    digit padded to 32x32; the 28x28 outputs are centred on every pixel of the original digit.
    A 5x5 receptive field is drawn in each corner.
    """
    img = _as_2d("image", image)
    if kernel % 2 == 0 or kernel < 1:
        raise ValueError(f"kernel must be a positive odd size, got {kernel}")
    padded = np.pad(img, pad)
    r = kernel // 2
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 3.9), layout="constrained")
    for ax, im, name in ((axes[0], img, "no padding"), (axes[1], padded, f"padded by {pad}")):
        n = im.shape[0]
        out = n - kernel + 1
        h = ax.imshow(im, cmap="gray", interpolation="nearest")
        # the square of all receptive-field centres
        ax.add_patch(plt.Rectangle((r - 0.5, r - 0.5), out, out, fill=False, ec="tab:red", lw=2, ls="--",
                                   label=f"centres of the {out}x{out} C1 outputs"))
        # one receptive field in the top-left and one in the bottom-right corner
        for c in (0, out - 1):
            ax.add_patch(plt.Rectangle((c - 0.5, c - 0.5), kernel, kernel, fill=True, fc="tab:blue",
                                       alpha=0.25, ec="tab:blue", lw=1.5))
            ax.plot(c + r, c + r, "o", color="tab:blue", ms=5)
        if im is padded:
            ax.add_patch(plt.Rectangle((pad - 0.5, pad - 0.5), img.shape[1], img.shape[0], fill=False,
                                       ec="tab:green", lw=1.5, label="original 28x28 digit"))
        ax.set_title(f"{name}: {n}x{n} input -> {out}x{out} C1 map", fontsize=9)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=8)
        _colorbar(fig, h, ax, "intensity")
    fig.suptitle(f"Where C1 can look: blue = a {kernel}x{kernel} receptive field and its\n"
                 "centre (dot), in two corners")
    return fig


def plot_one_hot(labels, encoded) -> Figure:
    """One-hot rows as a heat map: one row per example (labelled with its class), one column per class."""
    labels = np.asarray(labels)
    enc = _as_2d("encoded", encoded)
    if labels.shape != (enc.shape[0],):
        raise ValueError(f"labels must have shape ({enc.shape[0]},), got {labels.shape}")
    fig = plot_matrices([enc], ["one-hot encoding"], fmt="{:.0f}", cmap="Blues",
                        xlabels="class (column index)", ylabels="example: label")
    ax = fig.axes[0]
    ax.set_yticklabels([f"#{i}: {y}" for i, y in enumerate(labels)])
    return fig


__all__ += ["plot_digit_grid", "plot_pixel_values", "plot_class_counts", "plot_receptive_field_centres",
            "plot_one_hot"]


# --- Kernels and convolution (chapter 2) ------------------------------------------------------

def classic_kernels() -> dict[str, np.ndarray]:
    """The hand-made kernels of chapter 2, by name: edges (Sobel x/y, Laplacian), blur (box,
    Gaussian), sharpen. float64 arrays of odd size, written the way a cross-correlation applies them."""
    g = np.exp(-0.5 * (np.arange(-2, 3) / 1.0) ** 2)
    gauss = np.outer(g, g)
    return {
        "Sobel x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
        "Sobel y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
        "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
        "box blur 3x3": np.full((3, 3), 1 / 9),
        "Gaussian 5x5 (σ=1)": gauss / gauss.sum(),
        "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    }


def filter2d(image, kernel) -> np.ndarray:
    """Cross-correlate one 2-D image with one odd-sized 2-D kernel, zero-padded to keep the size.

    A thin wrapper around :func:`lenet_core.functional.conv2d` (one image, one channel, one filter).
    """
    from . import functional

    img, k = _as_2d("image", image), _as_2d("kernel", kernel)
    if k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"kernel must have odd height and width, got shape {k.shape}")
    out, _ = functional.conv2d(img[None, None], k[None, None], np.zeros(1), padding=(k.shape[0] // 2, k.shape[1] // 2))
    return out[0, 0]


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


__all__ += ["classic_kernels", "filter2d", "plot_kernel_responses", "kernel_explorer_figure", "plot_kernel_gallery"]


# --- Pooling windows (chapter 3) --------------------------------------------------------------

_WINDOW_COLOURS = plt.get_cmap("tab10").colors


def _pool(x2d, kernel_size, stride, mode):
    from . import functional

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
    from . import functional

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


# --- Computation graphs (chapter 4) -----------------------------------------------------------

def plot_computation_graph(nodes, edges, *, title: str = "Computation graph", fmt: str = "{:.4f}",
                           grad_name: str = "L") -> Figure:
    """A small scalar computation graph with its forward and backward pass written on it.

    nodes: ``{name: (x, y, label, value, grad)}``; each node is drawn as a box at ``(x, y)`` holding
    ``label = value`` (forward, black) and ``dL/d(name) = grad`` (backward, red; ``grad=None`` to omit).
    edges: ``[(source, target, local_derivative_text), ...]``; an arrow from source to target, labelled
    (in blue) with the local derivative ``d target / d source`` that the chain rule multiplies in.
    """
    if not nodes:
        raise ValueError("nodes is empty")
    for src, dst, _ in edges:
        for end in (src, dst):
            if end not in nodes:
                raise ValueError(f"edge ({src!r}, {dst!r}) names an unknown node {end!r}")
    xs = [v[0] for v in nodes.values()]
    ys = [v[1] for v in nodes.values()]
    fig, ax = plt.subplots(figsize=(1.9 * (max(xs) - min(xs)) + 3.0, 1.5 * (max(ys) - min(ys)) + 2.6),
                           layout="constrained")
    targets = {dst for _, dst, _ in edges}
    sources = {src for src, _, _ in edges}
    for name, (x, y, label, value, grad) in nodes.items():
        leaf = name not in targets
        text = f"{label} = {fmt.format(value)}"
        ax.text(x, y + 0.08, text, ha="center", va="bottom", fontsize=10, zorder=3,
                bbox=dict(boxstyle="round,pad=0.4", fc="whitesmoke" if leaf else "lightsteelblue",
                          ec="black" if name in sources or leaf else "darkred"))
        if grad is not None:
            ax.text(x, y - 0.08, f"$\\partial {grad_name}/\\partial {label}$ = {fmt.format(grad)}",
                    ha="center", va="top", fontsize=9.5, color="tab:red", zorder=3)
    for src, dst, local in edges:
        (x0, y0), (x1, y1) = nodes[src][:2], nodes[dst][:2]
        ax.annotate("", xy=(x1 - 0.45, y1), xytext=(x0 + 0.45, y0),
                    arrowprops=dict(arrowstyle="->", color="grey", lw=1.4, shrinkA=2, shrinkB=2), zorder=1)
        if local:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, local, ha="center", va="bottom", fontsize=9,
                    color="tab:blue", zorder=2, bbox=dict(fc="white", ec="none", alpha=0.8, pad=0.5))
    ax.set_xlim(min(xs) - 0.9, max(xs) + 0.9)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.set_xlabel("forward: left to right (values in boxes)  |  backward: right to left (red gradients)")
    ax.set_yticks([])
    ax.set_xticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(title)
    return fig


__all__ += ["plot_computation_graph"]


# --- Training: losses, histories, mistakes, filters, feature maps (chapters 6 and 8) ----------

def moving_average(values, window: int) -> np.ndarray:
    """Trailing moving average of a 1-D sequence, same length: entry i averages the last
    ``min(i + 1, window)`` values (so the start of the curve is not dropped)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be a 1-D sequence, got shape {values.shape}")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    csum = np.concatenate([[0.0], np.cumsum(values)])
    i = np.arange(1, len(values) + 1)
    lo = np.maximum(i - window, 0)
    return (csum[i] - csum[lo]) / (i - lo)


def plot_loss_curves(curves: dict, *, window: int = 20, title: str = "Training loss per mini-batch",
                     xlabel: str = "training step (mini-batch)", ylabel: str = "training loss",
                     logy: bool = True) -> Figure:
    """One line per entry of ``curves`` (name -> per-step losses): the raw values faintly, their
    moving average over ``window`` steps boldly, in the same colour."""
    if not curves:
        raise ValueError("curves is empty")
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 4.2), layout="constrained")
    for i, (name, values) in enumerate(curves.items()):
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"curves[{name!r}] must be a non-empty 1-D sequence, got shape {values.shape}")
        steps = np.arange(1, len(values) + 1)
        colour = f"C{i}"
        ax.plot(steps, values, color=colour, alpha=0.2, lw=0.8)
        ax.plot(steps, moving_average(values, window), color=colour, lw=2, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (log scale)" if logy else ""))
    ax.set_title(title + (f"\n(faint: raw; bold: mean of the last {window})" if window > 1 else ""))
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


_HISTORY_KEYS = ("epoch", "loss", "train_acc", "val_loss", "val_acc")


def _check_history(name: str, h) -> None:
    missing = [k for k in _HISTORY_KEYS if k not in h]
    if missing:
        raise ValueError(f"history {name!r} has no {missing}")
    lengths = {k: len(h[k]) for k in _HISTORY_KEYS}
    if len(set(lengths.values())) != 1 or lengths["epoch"] == 0:
        raise ValueError(f"history {name!r}: per-epoch lists are empty or of different lengths {lengths}")


def plot_history(histories, *, title: str = "Training history") -> Figure:
    """Loss (left) and accuracy (right) per epoch of one history or of several (``{name: history}``).

    A history is a mapping with per-epoch lists ``epoch``, ``loss``, ``train_acc``, ``val_loss`` and
    ``val_acc`` (a :class:`lenet_core.train.History`); training curves are dashed, test (validation)
    curves solid, one colour per history. Epochs without validation (``None``) are skipped.
    """
    if isinstance(histories, dict) and "epoch" in histories:
        histories = {"": histories}
    if not histories:
        raise ValueError("histories is empty")
    for name, h in histories.items():
        _check_history(name, h)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 4.4), layout="constrained")
    for i, (name, h) in enumerate(histories.items()):
        colour, prefix = f"C{i}", (f"{name}: " if name else "")
        epochs = np.asarray(h["epoch"])
        for ax, train_key, val_key, scale in ((ax_loss, "loss", "val_loss", 1), (ax_acc, "train_acc", "val_acc", 100)):
            ax.plot(epochs, np.asarray(h[train_key], dtype=float) * scale, "--o", color=colour, ms=3, alpha=0.7,
                    label=prefix + "training (running mean over the epoch)")
            has_val = [v is not None for v in h[val_key]]
            if any(has_val):
                val = np.array([v for v in h[val_key] if v is not None], dtype=float) * scale
                ax.plot(epochs[has_val], val, "-o", color=colour, ms=4, label=prefix + "test (after the epoch)")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy loss (log scale)")
    ax_loss.set_title("Loss per epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("Accuracy per epoch")
    longest = max(len(h["epoch"]) for h in histories.values())
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if longest <= 20:
            ax.set_xticks(range(1, longest + 1))
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = ax_loss.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)   # below both panels
    fig.suptitle(title)
    return fig


def plot_confusion_matrix(cm, *, class_names=None, title: str = "Confusion matrix",
                          xlabel: str = "predicted class", ylabel: str = "true class") -> Figure:
    """A K x K matrix of counts (rows: true class, columns: prediction), every count printed.

    Colours are on a log scale so that the few mistakes are visible next to the large diagonal;
    zero cells are left white.
    """
    from matplotlib.colors import LogNorm

    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"cm must be a square K x K matrix, got shape {cm.shape}")
    if not np.issubdtype(cm.dtype, np.integer) or (cm < 0).any():
        raise ValueError("cm must hold non-negative integer counts")
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else list(class_names)
    if len(names) != k:
        raise ValueError(f"class_names needs {k} entries, got {len(names)}")
    cell = min(0.62, (COLUMN_INCHES - 2.2) / k)
    fig, ax = plt.subplots(figsize=(cell * k + 2.2, cell * k + 1.2), layout="constrained")
    cmap = plt.get_cmap("Blues")
    norm = LogNorm(vmin=1, vmax=max(int(cm.max()), 2))
    im = ax.imshow(np.ma.masked_equal(cm, 0), cmap=cmap, norm=norm, interpolation="nearest")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, f"{cm[i, j]:d}", ha="center", va="center", fontsize=8,
                        color=_text_colour(cmap, norm, cm[i, j]))
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _colorbar(fig, im, ax, "count (log scale; blank = 0)")
    return fig


def plot_mistakes(images, labels, predictions, confidences, *, ncols: int = 6,
                  title: str = "Misclassified digits") -> Figure:
    """A grid of digits (N, H, W), each titled with its true label, the prediction and its confidence."""
    images = _as_images("images", images, 3)
    n = len(images)
    labels, predictions, confidences = (np.asarray(a) for a in (labels, predictions, confidences))
    for name, a in (("labels", labels), ("predictions", predictions), ("confidences", confidences)):
        if a.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) like the images, got {a.shape}")
    if n == 0:
        raise ValueError("images is empty")
    ncols = min(n, ncols)
    nrows = -(-n // ncols)
    size = min(1.75, COLUMN_INCHES / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.3) * nrows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.remove()
    for ax, img, t, p, c in zip(axes.flat, images, labels, predictions, confidences):
        ax.imshow(img, cmap="gray", interpolation="nearest")
        ax.set_title(f"true {t}, pred {p}\n{c:.1%} sure", fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    return fig


def plot_filters(W, *, title: str = "Learned filters", ncols: int | None = None, annotate: bool = False,
                 size: float = 1.9) -> Figure:
    """Convolution kernels ``W`` (F, 1, k, k) or (F, k, k) as images on one diverging colour scale
    centred at 0 (red positive, blue negative), with one shared colour bar."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim == 4:
        if W.shape[1] != 1:
            raise ValueError(f"W must have one input channel (F, 1, k, k), got shape {W.shape}; pick a channel")
        W = W[:, 0]
    if W.ndim != 3 or W.shape[0] == 0:
        raise ValueError(f"W must have shape (F, 1, k, k) or (F, k, k), got shape {W.shape}")
    f = W.shape[0]
    ncols = min(f, ncols or (3 if annotate else 8))
    nrows = -(-f // ncols)
    size = min(size, (COLUMN_INCHES - 1.0) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 1.0, size * nrows + 0.5), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[f:]:
        ax.remove()
    m = float(np.abs(W).max()) or 1.0
    cmap = plt.get_cmap("RdBu_r")
    for i, (ax, w) in enumerate(zip(axes.flat, W)):
        im = ax.imshow(w, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
        if annotate:
            for (r, c), v in np.ndenumerate(w):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(v) > 0.6 * m else "black")
        ax.set_title(f"filter {i}")
        ax.axis("off")
    cb = fig.colorbar(im, ax=list(axes.flat[:f]), shrink=0.8)
    cb.set_label("weight")
    fig.suptitle(title)
    return fig


def plot_feature_maps(maps, *, title: str = "Feature maps", ncols: int | None = None, image=None,
                      image_title: str = "input", size: float = 1.9, label: str = "activation") -> Figure:
    """Feature maps (C, H, W) of one image on one colour scale centred at 0, with a shared colour bar.

    ``image`` (2-D), if given, is drawn first in grey, with its own title.
    """
    maps = _as_images("maps", maps, 3).astype(np.float64)
    if maps.shape[0] == 0:
        raise ValueError("maps is empty")
    if image is not None:
        image = _as_2d("image", image)
    c = maps.shape[0]
    n = c + (image is not None)
    ncols = min(n, ncols or 8)
    nrows = -(-n // ncols)
    size = min(size, (COLUMN_INCHES - 1.0) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 1.0, size * nrows + 0.5), squeeze=False,
                             layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.remove()
    if image is not None:
        flat[0].imshow(image, cmap="gray", interpolation="nearest")
        flat[0].set_title(image_title)
        flat[0].axis("off")
        flat = flat[1:]
    m = float(np.abs(maps).max()) or 1.0
    for i, (ax, fm) in enumerate(zip(flat, maps)):
        im = ax.imshow(fm, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
        ax.set_title(f"map {i}")
        ax.axis("off")
    cb = fig.colorbar(im, ax=flat[:c], shrink=0.8)
    cb.set_label(label)
    fig.suptitle(title)
    return fig


__all__ += ["moving_average", "plot_loss_curves", "plot_history", "plot_confusion_matrix", "plot_mistakes",
            "plot_filters", "plot_feature_maps"]


# --- Two engines side by side: time per epoch, overlaid histories (chapter 8) -----------------

def plot_epoch_seconds(histories, *, title: str = "Training time per epoch") -> Figure:
    """Grouped bars of the training seconds of each epoch, one colour per history (``{name: history}``),
    with each history's median drawn as a dashed line of the same colour (the median ignores the odd
    epoch slowed down by another job on a shared machine).

    A history is a mapping with per-epoch lists ``epoch`` and ``seconds`` (a
    :class:`lenet_core.train.History`).
    """
    if isinstance(histories, dict) and "epoch" in histories:
        histories = {"": histories}
    if not histories:
        raise ValueError("histories is empty")
    for name, h in histories.items():
        missing = [k for k in ("epoch", "seconds") if k not in h]
        if missing:
            raise ValueError(f"history {name!r} has no {missing}")
        if len(h["epoch"]) != len(h["seconds"]) or len(h["epoch"]) == 0:
            raise ValueError(f"history {name!r}: 'epoch' and 'seconds' are empty or of different lengths "
                             f"({len(h['epoch'])} and {len(h['seconds'])})")
        seconds = np.asarray(h["seconds"], dtype=np.float64)
        if not np.all(np.isfinite(seconds)) or (seconds < 0).any():
            raise ValueError(f"history {name!r}: seconds must be finite and non-negative")
    k = len(histories)
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    epochs_all = set()
    for i, (name, h) in enumerate(histories.items()):
        epochs = np.asarray(h["epoch"], dtype=np.float64)
        seconds = np.asarray(h["seconds"], dtype=np.float64)
        epochs_all.update(int(e) for e in epochs)
        colour = f"C{i}"
        median = float(np.median(seconds))
        ax.bar(epochs + (i - (k - 1) / 2) * width, seconds, width=width, color=colour, alpha=0.85,
               label=(name or "training"))
        ax.axhline(median, color=colour, ls="--", lw=1.2,
                   label=f"{name + ': ' if name else ''}median {median:.1f} s")
    ax.set_xticks(sorted(epochs_all))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training time of the epoch (s)")
    ax.set_title(title)
    ax.legend(fontsize=9, ncols=2)
    ax.grid(alpha=0.3, axis="y")
    return fig


__all__ += ["plot_epoch_seconds"]


def plot_history_overlay(histories: dict, *, title: str = "Training histories") -> Figure:
    """:func:`plot_history` for runs whose curves may coincide (a model and its twin): the same two
    panels, but each history is drawn wider and more transparent than the next, so a curve hidden
    exactly under another still shows as a halo around it."""
    if not isinstance(histories, dict) or "epoch" in histories or len(histories) < 2:
        raise ValueError("histories must map at least two names to histories: {name: history, ...}")
    if any(not name for name in histories):
        raise ValueError("every history needs a non-empty name (it labels the curves)")
    fig = plot_history(histories, title=title)
    names = list(histories)
    n = len(names)
    for ax in fig.axes:
        for line in ax.get_lines():
            for i, name in enumerate(names):
                if line.get_label().startswith(f"{name}: "):
                    line.set_linewidth(1.5 + 3.5 * (n - 1 - i) / (n - 1))
                    line.set_alpha(1.0 if i == n - 1 else 0.45)
                    line.set_markersize(3 + 4 * (n - 1 - i) / (n - 1))
                    line.set_zorder(2 + i)
    return fig


__all__ += ["plot_history_overlay"]


# --- Architecture: parameters per layer, connection tables (chapters 5 and 11) ----------------

def plot_parameter_counts(model_summary: ModelSummary, title: str | None = None):
    """Bars: the parameters of every layer that has any, each bar labelled with its count and share."""

    rows = [r for r in model_summary if r.params]
    if not rows:
        raise ValueError("the model has no parameters")
    total = model_summary.total_params
    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    bars = ax.bar([r.name for r in rows], [r.params for r in rows], color="tab:blue")
    ax.bar_label(bars, labels=[f"{r.params:,}\n({100 * r.params / total:.1f}%)" for r in rows], fontsize=8)
    ax.set_ylim(0, max(r.params for r in rows) * 1.25)
    ax.set_xlabel("layer")
    ax.set_ylabel("parameters")
    ax.set_title(title or f"Parameters per layer (total {total:,})")
    return fig


def plot_connection_table(table, kernel_size: int = 5, title: str | None = None):
    """A connection table as a grid (rows: input maps, columns: output maps), filled where connected.

    Under each column: the number of input maps and the output map's parameters ``k*k*inputs + 1``.
    """

    table = np.asarray(table, dtype=bool)
    n_in, n_out = table.shape
    cell = min(0.5, (COLUMN_INCHES - 1.6) / n_out)
    fig, ax = plt.subplots(figsize=(cell * n_out + 1.6, cell * n_in + 2.2), layout="constrained")
    ax.imshow(table, cmap=ListedColormap(["white", "tab:blue"]), vmin=0, vmax=1, aspect="equal")
    ax.set_xticks(range(n_out), [f"{j}\n{table[:, j].sum()}\n{kernel_size ** 2 * table[:, j].sum() + 1}"
                                 for j in range(n_out)], fontsize=8)
    ax.set_yticks(range(n_in))
    ax.set_xticks(np.arange(-0.5, n_out), minor=True)
    ax.set_yticks(np.arange(-0.5, n_in), minor=True)
    ax.grid(which="minor", color="grey", lw=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("C3 map j  /  number of S2 inputs  /  parameters of map j")
    ax.set_ylabel("S2 map i")
    from .summary import partial_conv_parameters

    total = partial_conv_parameters(table, kernel_size)
    ax.set_title(title or f"Connection table (blue: S2 map i feeds C3 map j): {total:,} parameters")
    return fig


__all__ += ["plot_parameter_counts", "plot_connection_table"]


# --- Receptive fields: what one unit sees (chapter 6) -------------------------------------------

def plot_unit_gradients(image, gradients, titles, sizes, *,
                        title: str = "What one unit sees: its gradient on the input") -> Figure:
    """The input, then one panel per unit: d(unit)/d(input), each scaled by its largest magnitude.

    image: (H, W); gradients: a sequence of (H, W); titles: one per gradient; sizes: each unit's
    receptive field side (pixels), drawn as a dashed square around the gradient's non-zero part.
    """
    img = _as_2d("image", image)
    grads = [_as_2d(f"gradients[{i}]", g) for i, g in enumerate(gradients)]
    titles, sizes = _per_axis(titles, len(grads), "titles"), _per_axis(sizes, len(grads), "sizes")
    n = len(grads) + 1
    size = (COLUMN_INCHES - 0.9) / n
    fig, axes = plt.subplots(1, n, figsize=(COLUMN_INCHES, size + 1.0), layout="constrained")
    axes[0].imshow(img, cmap="gray", interpolation="nearest")
    axes[0].set_title("input", fontsize=9)
    axes[0].axis("off")
    for ax, g, name, side in zip(axes[1:], grads, titles, sizes):
        m = float(np.abs(g).max()) or 1.0
        im = ax.imshow(g / m, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        rows, cols = np.nonzero(g)
        if rows.size:
            ax.add_patch(plt.Rectangle((cols.min() - 0.5, rows.min() - 0.5), side, side, fill=False,
                                       ec="black", lw=1, ls="--"))
        ax.set_title(f"{name}\n{side}x{side}", fontsize=9)
        ax.axis("off")
    cb = fig.colorbar(im, ax=list(axes[1:]), shrink=0.8)
    cb.set_label("gradient / its max |.|", fontsize=8)
    fig.suptitle(title)
    return fig


def plot_top_patches(patches, values, row_labels, *, title: str = "Input patches that drive units most") -> Figure:
    """Rows of input patches (M, k, s, s), strongest first, each titled with its unit's value."""
    patches = _as_images("patches", patches, 4)
    values = np.asarray(values)
    if values.shape != patches.shape[:2]:
        raise ValueError(f"values must have shape {patches.shape[:2]} like the patches, got {values.shape}")
    rows, k = patches.shape[:2]
    row_labels = _per_axis(row_labels, rows, "row_labels")
    size = min(1.0, (COLUMN_INCHES - 0.8) / k)
    fig, axes = plt.subplots(rows, k, figsize=(size * k + 0.8, (size + 0.25) * rows + 0.4), squeeze=False,
                             layout="constrained")
    for r in range(rows):
        for j in range(k):
            ax = axes[r, j]
            ax.imshow(patches[r, j], cmap="gray", interpolation="nearest")
            ax.set_title(f"{values[r, j]:.2f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    fig.suptitle(title)
    return fig


__all__ += ["plot_unit_gradients", "plot_top_patches"]


# --- Attributions: maps, the path, convergence (chapters 9 and 10) ----------------------------

def plot_attribution(image, attribution, *, title: str | None = None, cmap: str = "RdBu_r",
                     contour: float = 0.25, axes=None):
    """Three panels: the digit, the signed attribution heat map, and the attribution over the digit.

    image, attribution: ``(32, 32)``, ``(1, 32, 32)`` (or ``(28, 28)``) arrays of the same shape.
    The digit is drawn in grey (white ink on black, as MNIST); the heat map uses the diverging
    ``cmap`` on limits ``+-max|attribution|`` so 0 is its centre colour, with a colour bar. The
    overlay draws the attribution over the grey digit, opaque where it is large, and outlines the
    regions above ``contour * max|attribution|`` with solid (positive) and dashed (negative) lines,
    so the sign survives a greyscale print. Every panel has a title and axis labels.
    ``axes``: three matplotlib axes to draw into (a new figure otherwise). Returns the figure.
    """

    img = np.squeeze(np.asarray(image, dtype=np.float64))
    att = np.squeeze(np.asarray(attribution, dtype=np.float64))
    if img.ndim != 2 or att.shape != img.shape:
        raise ValueError(f"image and attribution must be one 2-D image each of the same shape, "
                         f"got {np.shape(image)} and {np.shape(attribution)}")
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), constrained_layout=True)
    else:
        fig = axes[0].figure
    lim = float(np.abs(att).max()) or 1.0
    norm = Normalize(-lim, lim)
    ax0, ax1, ax2 = axes
    ax0.imshow(img, cmap="gray")
    ax0.set_title("input digit")
    im = ax1.imshow(att, cmap=cmap, norm=norm)
    ax1.set_title("signed attribution (centred at 0)")
    fig.colorbar(im, ax=ax1, fraction=0.046, pad=0.04, label="attribution")
    ax2.imshow(img, cmap="gray")
    rgba = plt.get_cmap(cmap)(norm(att))
    rgba[..., 3] = np.clip(np.abs(att) / lim, 0, 1) ** 0.5
    ax2.imshow(rgba)
    if contour and np.any(np.abs(att) >= contour * lim):
        levels = contour * lim
        if att.max() >= levels:
            ax2.contour(att, levels=[levels], colors="k", linewidths=1.0, linestyles="solid")
        if att.min() <= -levels:
            ax2.contour(att, levels=[-levels], colors="k", linewidths=1.0, linestyles="dashed")
    ax2.set_title("overlay (solid +, dashed -)")
    for ax in axes:
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    if title:
        fig.suptitle(title)
    return fig



def plot_attribution_grid(images, attributions, *, col_labels, row_labels=None, notes=None,
                          title: str | None = None, image_title: str = "input", cmap: str = "RdBu_r",
                          size: float = 2.1, max_cols: int | None = None,
                          cbar_label: str = "attribution"):
    """A grid of attribution maps: one row per digit, the digit in grey first, then one map per column.

    images: R digits, ``(R, 32, 32)`` or ``(R, 1, 32, 32)``. attributions: ``(R, C, 32, 32)`` or
    ``(R, C, 1, 32, 32)``, C maps per digit (e.g. one per baseline, or per class).
    col_labels: C column titles; row_labels: R titles for the digits (default ``image_title``);
    notes: optional R x C strings added under each map's title (e.g. the sum of the attributions).
    Every map has its own diverging colour scale ``+-max|map|``, so 0 is always the centre colour
    (white for ``RdBu_r``: red pushes F up, blue pulls it down), and its own colour bar, labelled
    ``cbar_label``. ``max_cols``: at most this many maps per row; a digit with more maps continues on
    the next row (its digit drawn again), so wide grids fit the page. ``size``: inches per panel.
    Returns the figure.
    """

    imgs = np.asarray(images, dtype=np.float64)
    att = np.asarray(attributions, dtype=np.float64)
    if imgs.ndim == 4 and imgs.shape[1] == 1:
        imgs = imgs[:, 0]
    if att.ndim == 5 and att.shape[2] == 1:
        att = att[:, :, 0]
    if imgs.ndim != 3 or len(imgs) == 0:
        raise ValueError(f"images must have shape (R, 32, 32) or (R, 1, 32, 32), got {np.shape(images)}")
    r = len(imgs)
    if att.ndim != 4 or att.shape[0] != r or att.shape[2:] != imgs.shape[1:] or att.shape[1] == 0:
        raise ValueError(f"attributions must have shape (R, C, H, W) = ({r}, C, {imgs.shape[1]}, {imgs.shape[2]}) "
                         f"for {r} images of {imgs.shape[1:]}, got {np.shape(attributions)}")
    c = att.shape[1]
    col_labels = list(col_labels)
    if len(col_labels) != c:
        raise ValueError(f"col_labels needs {c} entries (one per column of maps), got {len(col_labels)}")
    row_labels = [image_title] * r if row_labels is None else list(row_labels)
    if len(row_labels) != r:
        raise ValueError(f"row_labels needs {r} entries (one per image), got {len(row_labels)}")
    if notes is not None:
        notes = [list(row) for row in notes]
        if len(notes) != r or any(len(row) != c for row in notes):
            raise ValueError(f"notes must be {r} rows of {c} strings")
    if max_cols is not None and (isinstance(max_cols, bool) or not isinstance(max_cols, int) or max_cols < 1):
        raise ValueError(f"max_cols must be a positive integer, got {max_cols!r}")
    per_row = min(c, max_cols or c)
    sub_rows = -(-c // per_row)                   # rows per digit
    fig, axes = plt.subplots(r * sub_rows, per_row + 1,
                             figsize=(size * (per_row + 1) + 0.55 * per_row,
                                      (size + 0.35) * r * sub_rows + 0.35),
                             squeeze=False, layout="constrained")
    for i in range(r):
        for k in range(sub_rows):
            ax = axes[i * sub_rows + k, 0]
            ax.imshow(imgs[i], cmap="gray", interpolation="nearest")
            ax.set_title(row_labels[i] if k == 0 else "(the same digit)", fontsize=9)
            ax.axis("off")
        for j in range(c):
            ax = axes[i * sub_rows + j // per_row, j % per_row + 1]
            a = att[i, j]
            lim = float(np.abs(a).max()) or 1.0
            im = ax.imshow(a, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
            label = col_labels[j] if notes is None else f"{col_labels[j]}\n{notes[i][j]}"
            ax.set_title(label, fontsize=9)
            ax.axis("off")
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            cb.ax.tick_params(labelsize=7)
            cb.set_label(cbar_label, fontsize=7, labelpad=1)
        for j in range(c, sub_rows * per_row):
            axes[i * sub_rows + j // per_row, j % per_row + 1].remove()
    if title:
        fig.suptitle(title)
    return fig


def plot_path_outputs(alphas, curves: dict, *, title: str = "F along the straight path from the baseline",
                      xlabel: str = "α  (0 = baseline, 1 = the digit)"):
    """One panel per entry of ``curves`` (``{y-axis label: values (len(alphas),)}``): F along the path.

    Each panel draws the values against ``alphas`` with dots, labels its axes and is titled with its label.
    """

    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or len(alphas) < 2:
        raise ValueError(f"alphas must be a 1-D array of at least 2 points, got shape {alphas.shape}")
    if not curves:
        raise ValueError("curves is empty")
    fig, axes = plt.subplots(1, len(curves), figsize=(min(3.6 * len(curves), COLUMN_INCHES), 3.3), squeeze=False,
                             layout="constrained")
    for ax, (label, values) in zip(axes[0], curves.items()):
        values = np.asarray(values, dtype=np.float64)
        if values.shape != alphas.shape:
            raise ValueError(f"curve {label!r} has shape {values.shape}, alphas {alphas.shape}")
        ax.plot(alphas, values, "o-", ms=3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def plot_convergence(steps, rel_deltas: dict, *, title: str = "Convergence of Integrated Gradients",
                     reference: bool = True, floor: float = 1e-16):
    """Relative convergence delta against the number of steps, on log-log axes.

    steps: the step counts ``(S,)``; rel_deltas: ``{method: array (S, N)}``, ``|delta| / |F(x) - F(x')|``
    for N digits at each step count. Each method is drawn as its mean over the digits (a line with
    markers) and the range from the smallest to the largest digit (a band, named in the legend). Values below ``floor``
    (rounding error of float64) are drawn at ``floor``. With ``reference``, dotted guides of slope
    -1 and -2 (errors falling as 1/steps and 1/steps^2) are drawn through the first point.
    """

    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim != 1 or len(steps) < 2 or np.any(steps <= 0):
        raise ValueError(f"steps must be at least 2 positive step counts, got {steps}")
    if not rel_deltas:
        raise ValueError("rel_deltas is empty")
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 4.6), layout="constrained")
    top = 0.0
    for method, values in rel_deltas.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != len(steps) or values.shape[1] == 0:
            raise ValueError(f"rel_deltas[{method!r}] must have shape ({len(steps)}, N), got {values.shape}")
        if np.any(values < 0) or not np.all(np.isfinite(values)):
            raise ValueError(f"rel_deltas[{method!r}] must be finite and >= 0 (use |delta| / |F(x) - F(x')|)")
        v = np.maximum(values, floor)
        line, = ax.plot(steps, v.mean(axis=1), "o-", label=f"{method} (mean)")
        ax.fill_between(steps, v.min(axis=1), v.max(axis=1), color=line.get_color(), alpha=0.18)
        top = max(top, float(v.mean(axis=1)[0]))
    if reference and top > 0:
        for power, style in ((1, ":"), (2, "--")):
            ax.plot(steps, top * (steps[0] / steps) ** power, color="grey", ls=style, lw=1,
                    label=f"slope -{power} (∝ 1/steps{'²' if power == 2 else ''})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("steps (points on the path)")
    ax.set_ylabel("|delta| / |F(x) - F(baseline)|")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(color="grey", alpha=0.3))          # what the bands mean
    labels.append("shaded: best to worst digit")
    ax.legend(handles, labels, fontsize=8)
    return fig


__all__ += ["plot_attribution", "plot_attribution_grid", "plot_path_outputs", "plot_convergence"]
