"""Figures of chapter 4: computation graphs with values and gradients."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


__all__: list[str] = []

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
