"""Figures of chapters 9 and 10: attribution maps, the path, convergence, sanity checks and
deletion/insertion curves."""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.colors import Normalize
from matplotlib.patches import Patch

from .common import COLUMN_INCHES
from ..attribution.checks import scale_maps

__all__: list[str] = []

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


# ----------------------------------------------------------------------------------------------
# Figures for the chapter "Can we trust an attribution?"
# ----------------------------------------------------------------------------------------------

__all__ += ["plot_map_table", "plot_randomization", "plot_curves"]


def plot_map_table(maps, *, row_labels, col_labels, title=None, size=1.0):
    """A table of attribution magnitudes: ``maps`` (R, C, ..., 32, 32), each drawn as ``|map| / max|map|``
    (what :func:`lenet_core.attribution.checks.ssim` compares) on one shared scale from 0 to 1, rows
    labelled on the left, columns on top, one colour bar. Returns the figure."""
    m = np.asarray(maps, dtype=np.float64)
    r, c = m.shape[:2]
    if len(row_labels) != r or len(col_labels) != c:
        raise ValueError(f"need {r} row labels and {c} column labels for maps of shape {m.shape}")
    scaled = scale_maps(m.reshape(r * c, -1)).reshape(r, c, *m.shape[-2:])
    fig, axes = plt.subplots(r, c, figsize=(size * c + 1.6, size * r + 0.6), squeeze=False,
                             layout="constrained")
    for i in range(r):
        for j in range(c):
            ax = axes[i, j]
            im = ax.imshow(scaled[i, j], cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8, rotation=0, ha="right", va="center")
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, label="|attribution| / max")
    if title:
        fig.suptitle(title)
    return fig


def plot_randomization(methods: dict, *, threshold=None, title=None):
    """Two panels from a sanity-check record (``results["sanity"]["methods"]``): the median over the
    digits (line) and the quartiles (band) of the Spearman correlation of |map| and of the SSIM,
    against the cascade of re-initialised layers, with the shuffled-label network at the right.
    ``threshold`` draws the pass/fail line on the Spearman panel. Returns the figure."""
    names = list(methods)
    layers = [row["layer"] for row in methods[names[0]]["cascade"]]
    labels = ["trained"] + [f"+{layer}" if k else layer for k, layer in enumerate(layers)] + ["shuffled\nlabels"]
    x = np.arange(len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.8), layout="constrained", sharex=True)
    for ax, key, ylabel in ((axes[0], "spearman_abs", "Spearman rank correlation of |map|"),
                            (axes[1], "ssim_abs", "SSIM of |map|")):
        for k, name in enumerate(names):
            rows = [methods[name]["cascade"][i][key] for i in range(len(layers))]
            data = methods[name]["random_labels"][key]
            med = [1.0] + [r["median"] for r in rows]
            q1 = [1.0] + [r["q1"] for r in rows]
            q3 = [1.0] + [r["q3"] for r in rows]
            color = plt.get_cmap("tab10")(k)
            ax.plot(x[:-1], med, "o-", ms=3, color=color, label=name)
            ax.fill_between(x[:-1], q1, q3, color=color, alpha=0.12)
            ax.errorbar([x[-1] + 0.08 * (k - len(names) / 2)], [data["median"]],
                        yerr=[[data["median"] - data["q1"]], [data["q3"] - data["median"]]],
                        fmt="s", ms=4, color=color, capsize=2)
        ax.set_xticks(x, labels, fontsize=7, rotation=45)
        ax.set_xlabel("layers re-initialised (cumulative)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if threshold is not None:
        axes[0].axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold}")
    axes[0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(baselines: dict, *, title=None):
    """Deletion and insertion curves from a faithfulness record (``results["faithfulness"]["baselines"]``):
    one row per baseline, the mean over digits of the class probability against the fraction of
    pixels removed (left) or revealed (right), one line per method, the random order dashed black with
    its quartile band. Returns the figure."""
    kinds = list(baselines)
    fig, axes = plt.subplots(len(kinds), 2, figsize=(7.0, 3.2 * len(kinds)), squeeze=False,
                             layout="constrained", sharey=True)
    for r, kind in enumerate(kinds):
        methods = baselines[kind]["methods"]
        for c, mode in enumerate(("deletion", "insertion")):
            ax = axes[r, c]
            for k, (name, entry) in enumerate(methods.items()):
                curve = np.asarray(entry[mode]["curve_mean"])
                frac = np.linspace(0, 1, len(curve))
                if name == "random":
                    ax.plot(frac, curve, "k--", lw=1.5, label="random order (band: quartiles)")
                    ax.fill_between(frac, entry[mode]["curve_q1"], entry[mode]["curve_q3"], color="k", alpha=0.1)
                else:
                    ax.plot(frac, curve, lw=1.2, color=plt.get_cmap("tab10")(k - 1), label=name)
            ax.set_title(f"{mode}, {kind} baseline", fontsize=9)
            ax.set_xlabel("fraction of pixels " + ("removed" if mode == "deletion" else "revealed"))
            ax.set_ylabel("probability of the true class")
            ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    return fig
