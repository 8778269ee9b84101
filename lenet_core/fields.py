"""Receptive fields (chapter 6): which input pixels one unit of a layer can see, and what drives it.

- :func:`receptive_fields` computes, from the layers' kernel sizes and strides alone, the side of
  the square of input pixels that one unit of each layer depends on, and the distance on the
  input between two neighbouring units of its map;
- :func:`unit_gradient` backpropagates from a single hidden unit to the input: the gradient is
  non-zero only inside that unit's receptive field, which checks the computation above;
- :func:`top_patches` cuts out, for every map of a layer, the input patches under the units that
  responded most strongly over a set of images.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .layers import input_grad
from .summary import _named_layers, describe

__all__ = ["FieldRow", "receptive_fields", "forward_to", "unit_gradient", "top_patches"]


class FieldRow(NamedTuple):
    """One layer: its name, what it is, its field's side on the input and its units' spacing.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """

    name: str
    kind: str
    size: int   # side (pixels) of the input square one unit depends on
    jump: int   # input pixels between two neighbouring units of the layer's map


def receptive_fields(model, input_size: int) -> list[FieldRow]:
    """The receptive field of every layer of ``model`` (a Sequential) on a square input.

    Walks the layers in order with ``size += (k - 1) * jump`` and ``jump *= stride`` for a layer with
    a kernel (convolution, pooling); padding shifts a field but does not change its size. An
    element-wise layer keeps the field of the layer before; any other layer (Flatten, Linear) mixes
    all its inputs, so its units see the whole input (``input_size``).

    Explained in chapter 5 (book/ch05_lenet5.ipynb).
    """
    size, jump, rows = 1, 1, []
    for name, layer in _named_layers(model):
        if hasattr(layer, "kernel_size"):
            size += (layer.kernel_size[0] - 1) * jump
            jump *= layer.stride[0]
        elif not layer.elementwise:
            size = input_size
        rows.append(FieldRow(name, describe(layer), min(size, input_size), jump))
    return rows


def _layer_names(model, layer: str) -> list[str]:
    names = [name for name, _ in _named_layers(model)]
    if layer not in names:
        raise ValueError(f"layer {layer!r} is not in the model; its layers are {names}")
    return names[:names.index(layer) + 1]


def forward_to(model, x, layer: str) -> np.ndarray:
    """The output of ``layer`` (a name, e.g. "C3") for the batch ``x``: the layers of ``model`` up
    to and including it, run forward (each keeps its cache, so a backward pass can follow).

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    for name in _layer_names(model, layer):
        x = model[name].forward(x)
    return x


def unit_gradient(model, image, layer: str, channel: int, position=None):
    """``(value, d value / d image)`` for one unit of a hidden layer of ``model``.

    image: (1, H, W), one input; layer: the name of a layer ("C3"); channel: the unit's map;
    position: ``(row, col)`` in that map, its centre by default (ignored for a layer with flat
    output). Returns the unit's value (a float) and the gradient with the shape of ``image``.
    Only the pixels of the unit's receptive field can have a non-zero gradient.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    x = np.asarray(image, dtype=model.dtype)[None]
    with input_grad(model):
        h = forward_to(model, x, layer)
        if not 0 <= channel < h.shape[1]:
            raise ValueError(f"channel {channel} is out of range: {layer} has {h.shape[1]} maps")
        index = (0, channel)
        if h.ndim == 4:
            index += tuple(position) if position is not None else (h.shape[2] // 2, h.shape[3] // 2)
        dout = np.zeros_like(h)
        dout[index] = 1
        for name in reversed(_layer_names(model, layer)):
            dout = model[name].backward(dout)
    return float(h[index]), dout[0]


def top_patches(maps, images, field: FieldRow, k: int = 8):
    """The ``k`` input patches under the strongest units of every map.

    maps: (N, C, H, W), a layer's output for N images; images: (N, 1, S, S), the inputs that
    produced them (unpadded layers: the unit at (i, j) sees rows ``i * jump`` to
    ``i * jump + size - 1``). Returns patches (C, k, size, size) and their units' values (C, k),
    strongest first.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    maps = np.asarray(maps)
    if maps.ndim != 4 or len(maps) != len(images):
        raise ValueError(f"maps must be (N, C, H, W) for the {len(images)} images, got {maps.shape}")
    n, c, h, w = maps.shape
    flat = maps.transpose(1, 0, 2, 3).reshape(c, -1)
    best = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    img, i, j = np.unravel_index(best, (n, h, w))
    rows = i[..., None] * field.jump + np.arange(field.size)    # (C, k, size)
    cols = j[..., None] * field.jump + np.arange(field.size)
    patches = images[img[..., None, None], 0, rows[..., :, None], cols[..., None, :]]
    return patches, np.take_along_axis(flat, best, axis=1)
