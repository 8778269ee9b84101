"""The tables of LeCun et al. (1998): Table I (which of S2's 6 maps feed each of C3's 16 maps,
:data:`C3_TABLE`), the parameter count of a partially connected convolution, and LeNet-5's
per-layer parameters and connections as the paper counts them (chapters 5 and 11)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..functional import output_size
from ..summary import format_table, shape_text

__all__ = ["C3_TABLE", "partial_conv_parameters", "format_connection_table", "PaperRow", "lecun1998_table",
           "format_paper_table"]


# ----------------------------------------------------------------------------------------------
# LeNet-5 as published: the partial C3 connections and the paper's own parameter count
# ----------------------------------------------------------------------------------------------

def _c3_table() -> np.ndarray:
    """Table I of LeCun et al. (1998): ``table[i, j]`` is True if S2 map ``i`` feeds C3 map ``j``.

    C3 maps 0-5 read 3 neighbouring S2 maps, 6-11 read 4 neighbouring ones, 12-14 read 4 maps that
    are not all neighbours, and map 15 reads all 6 (neighbours wrap around: map 5 is next to map 0).
    """
    inputs = [[(j + k) % 6 for k in range(3)] for j in range(6)]        # C3 maps 0..5
    inputs += [[(j + k) % 6 for k in range(4)] for j in range(6)]       # C3 maps 6..11
    inputs += [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]]                # C3 maps 12..14
    inputs += [list(range(6))]                                          # C3 map 15
    table = np.zeros((6, 16), dtype=bool)
    for j, rows in enumerate(inputs):
        table[rows, j] = True
    table.setflags(write=False)
    return table


#: LeCun et al. (1998), Table I: ``C3_TABLE[i, j]`` is True when S2 map ``i`` feeds C3 map ``j``; (6, 16).
C3_TABLE = _c3_table()


def partial_conv_parameters(table, kernel_size) -> int:
    """Parameters of a convolution whose output map ``j`` reads only the input maps ``i`` with ``table[i, j]``.

    table: (in_maps, out_maps) booleans; kernel_size: int or (kh, kw). Every connection carries its
    own kh x kw kernel, every output map one bias: ``kh * kw * table.sum() + out_maps``.
    With :data:`C3_TABLE` and 5x5 kernels: 25 * 60 + 16 = 1,516. A full table gives the usual
    ``out * (in * kh * kw + 1)``.
    """
    table = np.asarray(table, dtype=bool)
    if table.ndim != 2:
        raise ValueError(f"table must be 2-D (in_maps, out_maps), got shape {table.shape}")
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    return int(kh * kw * table.sum() + table.shape[1])


def format_connection_table(table, mark: str = "X") -> str:
    """A connection table as text in the layout of the paper's Table I: rows = input maps, columns = output maps."""
    table = np.asarray(table, dtype=bool)
    n_in, n_out = table.shape
    width = max(2, len(str(n_out - 1)))
    lines = ["   " + " ".join(f"{j:>{width}}" for j in range(n_out))]
    for i in range(n_in):
        lines.append(f"{i:>2} " + " ".join(f"{mark if table[i, j] else '.':>{width}}" for j in range(n_out)))
    return "\n".join(lines)


class PaperRow(NamedTuple):
    """One layer of LeNet-5 as published: trainable and fixed parameters, and connections."""
    name: str
    kind: str
    output_shape: tuple
    trainable: int
    fixed: int
    connections: int


def lecun1998_table(c3_table=C3_TABLE) -> list[PaperRow]:
    """LeNet-5's layers as LeCun et al. (1998) describe them, with every count computed from the rules.

    - C1, C3, C5: convolutions 5x5 with one bias per map; C3 connected by ``c3_table``.
    - S2, S4: each unit adds its 4 inputs, multiplies the sum by a trainable coefficient and adds a
      trainable bias (2 parameters per map); connections: 4 inputs + bias per unit.
    - F6: 84 units fully connected to C5's 120, with biases.
    - OUTPUT: 10 Euclidean RBF units, each comparing F6's 84 outputs with a fixed 7x12 bitmap of +-1:
      840 fixed parameters, none trained.

    A connection is one multiply (or bias) that a unit applies: the paper's totals are 60,000 trainable
    parameters and 340,908 connections.
    """
    c3_table = np.asarray(c3_table, dtype=bool)
    k = 5
    s1 = output_size(32, k)              # 28
    p1 = output_size(s1, 2, 2)           # 14
    s3 = output_size(p1, k)              # 10
    p3 = output_size(s3, 2, 2)           # 5
    s5 = output_size(p3, k)              # 1
    c1 = 6 * (1 * k * k + 1)
    c3 = partial_conv_parameters(c3_table, k)
    c5 = 120 * (16 * k * k + 1)
    f6 = 84 * (120 + 1)
    return [
        PaperRow("C1", "conv 6@5x5 + squash", (6, s1, s1), c1, 0, c1 * s1 * s1),
        PaperRow("S2", "subsample 2x2 (coef + bias) + squash", (6, p1, p1), 6 * 2, 0, 6 * p1 * p1 * (4 + 1)),
        PaperRow("C3", "conv 16@5x5, Table I + squash", (16, s3, s3), c3, 0, c3 * s3 * s3),
        PaperRow("S4", "subsample 2x2 (coef + bias) + squash", (16, p3, p3), 16 * 2, 0, 16 * p3 * p3 * (4 + 1)),
        PaperRow("C5", "conv 120@5x5 + squash", (120, s5, s5), c5, 0, c5 * s5 * s5),
        PaperRow("F6", "full 84 + squash", (84,), f6, 0, f6),
        PaperRow("OUTPUT", "10 RBF units, fixed 7x12 bitmaps", (10,), 0, 10 * 84, 10 * 84),
    ]


def format_paper_table(rows: list[PaperRow]) -> str:
    """The rows of :func:`lecun1998_table` as a text table with totals."""
    header = ["layer", "type", "output", "trainable", "fixed", "connections"]
    body = [[r.name, r.kind, shape_text(r.output_shape), f"{r.trainable:,}", f"{r.fixed:,}", f"{r.connections:,}"]
            for r in rows]
    total = ["total", "", "", f"{sum(r.trainable for r in rows):,}", f"{sum(r.fixed for r in rows):,}",
             f"{sum(r.connections for r in rows):,}"]
    return format_table(header, body, total, right=(3, 4, 5))
