"""Figures of chapter 1: digits, pixel values, class counts, receptive-field centres, one-hot labels."""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .common import COLUMN_INCHES, _as_2d, _as_images, _colorbar, _text_colour, plot_matrices

__all__: list[str] = []

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
