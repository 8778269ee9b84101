"""Model summaries (chapter 5): the architecture table of any :class:`~lenet_core.model.Sequential`,
regenerated from the model itself.

- :func:`summary` runs one zero image through a copy of the model and lists, per layer, its name,
  what it does, its output shape (without the batch axis), its parameter count and how that count
  follows from the layer's sizes (``"6 x (1 x 5 x 5 + 1)"``).
- :func:`format_table` lays out any such table as text.

The historical LeNet-5 of LeCun et al. (1998) counted from its rules (Table I, the paper's
parameters and connections) is in :mod:`lenet_core.lenet1998.tables`.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from .layers import Layer

__all__ = ["LayerRow", "ModelSummary", "summary", "describe", "parameter_formula", "format_table",
           "shape_text"]

def shape_text(shape) -> str:
    """A shape as text: ``(6, 28, 28)`` -> ``"6 x 28 x 28"``."""
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
        body = [["input", "", shape_text(self.input_shape), "0"] + ([""] if formulas else [])]
        body += [[r.name, r.kind, shape_text(r.output_shape), f"{r.params:,}"] + ([r.formula] if formulas else [])
                 for r in self.rows]
        total = ["total", "", "", f"{self.total_params:,}"] + ([""] if formulas else [])
        return format_table(header, body, total, right=(3,))

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"ModelSummary({len(self.rows)} layers, {self.total_params:,} parameters)"

    def _repr_pretty_(self, printer, cycle):
        printer.text(self.table())


def format_table(header, body, total=None, right=()) -> str:
    """Rows of strings as a text table: a header, a rule, the body, an optional total row;
    the columns numbered in ``right`` are right-aligned."""
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
