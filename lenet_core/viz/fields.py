"""Figures of chapter 6: receptive fields, what one unit sees."""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .common import COLUMN_INCHES, _as_2d, _as_images, _per_axis

__all__: list[str] = []

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
