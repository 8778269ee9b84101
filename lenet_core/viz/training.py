"""Figures of chapters 6 and 8: losses, histories, confusion matrices, mistakes, filters, feature maps,
the two engines side by side (the smoothing is :func:`lenet_core.filters.moving_average`)."""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .common import COLUMN_INCHES, _as_2d, _as_images, _colorbar, _text_colour
from ..filters import moving_average

__all__: list[str] = []

# --- Training: losses, histories, mistakes, filters, feature maps (chapters 6 and 8) ----------

def plot_loss_curves(curves: dict, *, window: int = 20, title: str = "Training loss per mini-batch",
                     xlabel: str = "training step (mini-batch)", ylabel: str = "training loss",
                     logy: bool = True) -> Figure:
    """One line per entry of ``curves`` (name -> per-step losses): the raw values faintly, their
    moving average over ``window`` steps boldly, in the same colour.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
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


def _named_histories(histories) -> dict:
    """``{name: history}``: one history (a mapping with ``epoch``) gets the empty name; none is an error."""
    if isinstance(histories, dict) and "epoch" in histories:
        histories = {"": histories}
    if not histories:
        raise ValueError("histories is empty")
    return histories


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

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    histories = _named_histories(histories)
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

    Explained in chapter 6 (book/ch06_training.ipynb).
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
    """A grid of digits (N, H, W), each titled with its true label, the prediction and its confidence.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
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
    centred at 0 (red positive, blue negative), with one shared colour bar.

    Explained in chapter 5 (book/ch05_lenet5.ipynb).
    """
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

    Explained in chapter 5 (book/ch05_lenet5.ipynb).
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


__all__ += ["plot_loss_curves", "plot_history", "plot_confusion_matrix", "plot_mistakes",
            "plot_filters", "plot_feature_maps"]


# --- Two engines side by side: time per epoch, overlaid histories (chapter 8) -----------------

def plot_epoch_seconds(histories, *, title: str = "Training time per epoch") -> Figure:
    """Grouped bars of the training seconds of each epoch, one colour per history (``{name: history}``),
    with each history's median drawn as a dashed line of the same colour (the median ignores the odd
    epoch slowed down by another job on a shared machine).

    A history is a mapping with per-epoch lists ``epoch`` and ``seconds`` (a
    :class:`lenet_core.train.History`).

    Explained in chapter 8 (book/ch08_pytorch_twin.ipynb).
    """
    histories = _named_histories(histories)
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
    exactly under another still shows as a halo around it.

    Explained in chapter 8 (book/ch08_pytorch_twin.ipynb).
    """
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
