"""Model summaries (chapter 5): the architecture table of any :class:`~lenet_core.model.Sequential`,
regenerated from the model itself, and the historical LeNet-5 of LeCun et al. (1998) counted from its rules.

- :func:`summary` runs one zero image through a copy of the model and lists, per layer, its name,
  what it does, its output shape (without the batch axis), its parameter count and how that count
  follows from the layer's sizes (``"6 x (1 x 5 x 5 + 1)"``).
- :data:`C3_TABLE` is Table I of the paper (which of S2's 6 maps feed each of C3's 16 maps);
  :func:`partial_conv_parameters` counts the parameters of such a partially connected convolution.
- :func:`lecun1998_table` recomputes the paper's per-layer trainable parameters and connections
  (totals 60,000 and 340,908, as the paper states).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from .functional import output_size
from .layers import Layer

__all__ = ["LayerRow", "ModelSummary", "summary", "describe", "parameter_formula", "C3_TABLE",
           "partial_conv_parameters", "format_connection_table", "PaperRow", "lecun1998_table",
           "format_paper_table"]

def _shape_text(shape) -> str:
    return " x ".join(str(s) for s in shape)


def describe(layer: Layer) -> str:
    """A short description: ``"conv 6@5x5"``, ``"avg pool 2x2, stride 2"``, ``"linear 120->84"``, ``"tanh"``.

    Each layer says it itself (:meth:`Layer.describe`); this function is kept for the chapters.
    """
    return layer.describe()


def parameter_formula(layer: Layer) -> str:
    """How the parameter count follows from the sizes, e.g. ``"6 x (1 x 5 x 5 + 1)"``; ``""`` if none.

    Each layer says it itself (:meth:`Layer.parameter_formula`): Conv2d ``out x (in x kh x kw + 1)``,
    Linear ``out x (in + 1)`` (the ``+ 1`` is the bias); by default its tensors' shapes, ``"W 3x4 + b 3"``.
    """
    return layer.parameter_formula()


class LayerRow(NamedTuple):
    """One row of a :class:`ModelSummary`. ``output_shape`` leaves out the batch axis."""
    name: str
    kind: str
    output_shape: tuple
    params: int
    formula: str


class ModelSummary:
    """The rows of :func:`summary`; ``str()`` gives the printable table.

    ``summary["C1"]`` is the row named ``C1``; iterate for all rows; :attr:`total_params` is their sum.
    """

    def __init__(self, rows: list[LayerRow], input_shape: tuple):
        self.rows = list(rows)
        self.input_shape = tuple(input_shape)

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def output_shape(self) -> tuple:
        return self.rows[-1].output_shape if self.rows else self.input_shape

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> LayerRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no layer named {name!r}; layers: {[r.name for r in self.rows]}")

    def table(self, formulas: bool = True) -> str:
        """The table as text: layer, type, output shape, parameters (and their formula)."""
        header = ["layer", "type", "output shape", "parameters"] + (["= formula"] if formulas else [])
        body = [["input", "", _shape_text(self.input_shape), "0"] + ([""] if formulas else [])]
        body += [[r.name, r.kind, _shape_text(r.output_shape), f"{r.params:,}"] + ([r.formula] if formulas else [])
                 for r in self.rows]
        total = ["total", "", "", f"{self.total_params:,}"] + ([""] if formulas else [])
        return _format_table(header, body, total, right=(3,))

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"ModelSummary({len(self.rows)} layers, {self.total_params:,} parameters)"

    def _repr_pretty_(self, printer, cycle):
        printer.text(self.table())


def _format_table(header, body, total=None, right=()) -> str:
    rows = [header, *body] + ([total] if total else [])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(cells):
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(header), rule, *(line(r) for r in body)]
    if total:
        out += [rule, line(total)]
    return "\n".join(out)


def _named_layers(model) -> list[tuple[str, Layer]]:
    layers = getattr(model, "layers", None)
    if isinstance(layers, dict):
        return list(layers.items())
    if isinstance(model, Layer):
        return [(type(model).__name__, model)]
    raise TypeError(f"summary needs a Sequential or a Layer, got {type(model).__name__}")


def summary(model, input_shape, *, merge_activations: bool = False, dtype=None) -> ModelSummary:
    """Regenerate the architecture table of ``model`` by running one zero input through a copy of it.

    model: a :class:`~lenet_core.model.Sequential` (or a single layer); input_shape: one example's
    shape without the batch axis, e.g. ``(1, 32, 32)``. The input has shape ``(1, *input_shape)`` and
    the model's dtype; ``model`` itself is not touched (a deep copy runs the forward pass).

    Returns a :class:`ModelSummary` with one :class:`LayerRow` per layer. ``merge_activations=True``
    folds each element-wise layer (Tanh, ReLU, Sigmoid: ``layer.elementwise``) into the row before it (``"conv 6@5x5 + tanh"``), the way the paper
    draws its table. A layer that cannot take its input raises ``ValueError`` naming the layer and the
    shape it received.
    """
    named = _named_layers(copy.deepcopy(model))
    if dtype is None:
        params = [p for _, layer in named for p in layer.params.values()]
        dtype = params[0].dtype if params else np.float64
    x = np.zeros((1, *tuple(input_shape)), dtype=dtype)
    rows: list[LayerRow] = []
    for name, layer in named:
        try:
            x = layer.forward(x)
        except ValueError as e:
            raise ValueError(f"layer {name!r} ({describe(layer)}) cannot take an input of shape "
                             f"{tuple(x.shape[1:])}: {e}") from e
        n_params = int(sum(p.size for p in layer.params.values()))
        if merge_activations and layer.elementwise and rows:
            prev = rows[-1]
            rows[-1] = prev._replace(kind=f"{prev.kind} + {describe(layer)}", output_shape=tuple(x.shape[1:]))
            continue
        rows.append(LayerRow(name, describe(layer), tuple(x.shape[1:]), n_params, parameter_formula(layer)))
    return ModelSummary(rows, input_shape)


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
    body = [[r.name, r.kind, _shape_text(r.output_shape), f"{r.trainable:,}", f"{r.fixed:,}", f"{r.connections:,}"]
            for r in rows]
    total = ["total", "", "", f"{sum(r.trainable for r in rows):,}", f"{sum(r.fixed for r in rows):,}",
             f"{sum(r.connections for r in rows):,}"]
    return _format_table(header, body, total, right=(3, 4, 5))
