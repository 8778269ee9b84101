"""Figures of chapters 5 and 11: parameters per layer, connection tables."""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap

from .common import COLUMN_INCHES
from ..summary import ModelSummary

__all__: list[str] = []

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
    from ..lenet1998.tables import partial_conv_parameters

    total = partial_conv_parameters(table, kernel_size)
    ax.set_title(title or f"Connection table (blue: S2 map i feeds C3 map j): {total:,} parameters")
    return fig


__all__ += ["plot_parameter_counts", "plot_connection_table"]
