"""Sequential models, LeNet-5, and weights saved as ``.npz`` (never pickle)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ._files import atomic_write, check_npz_array, npz_headers, read_npz
from .layers import AvgPool2d, Conv2d, Flatten, Layer, Linear, Tanh, _rng

__all__ = ["Sequential", "LeNet5", "save_weights", "load_weights"]


class Sequential(Layer):
    """Layers applied one after another; itself a :class:`~lenet_core.layers.Layer` (chapter 5).

    ``Sequential(layer, layer, ...)`` names its layers ``"0"``, ``"1"``, ...; pass ``(name, layer)``
    pairs to choose the names. Parameters are named ``"<layer>.<param>"``, e.g. ``"C1.W"``; ``params``
    and ``grads`` hold the live arrays under these names, so a Sequential can be checked, summarised
    or nested like any layer. It keeps no cache of its own: each layer keeps its own.
    """

    def __init__(self, *layers):
        self.layers: dict[str, Layer] = {}
        for i, item in enumerate(layers):
            name, layer = item if isinstance(item, tuple) else (str(i), item)
            if name in self.layers:
                raise ValueError(f"two layers are named {name!r}")
            self.layers[name] = layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Backpropagate dL/d(output) through every layer; returns dL/d(input) and fills each ``grads``."""
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        return dout

    def gauss_newton(self, d2out: np.ndarray) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """Each layer's :meth:`~lenet_core.layers.Layer.gauss_newton`, last to first; ``h`` is named as
        :meth:`parameters` (``"C1.W"``). Explained in chapter 11 (book/ch11_lenet1998.ipynb)."""
        h = {}
        for lname, layer in reversed(self.layers.items()):
            d2out, layer_h = layer.gauss_newton(d2out)
            h.update({f"{lname}.{pname}": value for pname, value in layer_h.items()})
        return d2out, h

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.parameters()

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.gradients()

    @property
    def need_input_grad(self) -> bool:
        """Whether ``backward`` returns dL/d(input): the first layer's flag (see :func:`input_grad`)."""
        return next(iter(self.layers.values())).need_input_grad if self.layers else True

    @need_input_grad.setter
    def need_input_grad(self, needed: bool) -> None:
        if self.layers:
            next(iter(self.layers.values())).need_input_grad = needed

    def describe(self) -> str:
        return f"sequential of {len(self.layers)} layers"

    def replicate(self) -> "Sequential":
        """A Sequential of every layer's :meth:`~lenet_core.layers.Layer.replicate`, under the same names:
        the same parameter arrays, its own caches, gradients and scratch space."""
        twin = copy.copy(self)
        twin.layers = {name: layer.replicate() for name, layer in self.layers.items()}
        return twin

    def __getitem__(self, name: str) -> Layer:
        return self.layers[name]

    def __iter__(self):
        return iter(self.layers.values())

    def __len__(self):
        return len(self.layers)

    def parameters(self) -> dict[str, np.ndarray]:
        """Every parameter array (the live arrays, not copies), by name: ``{"C1.W": ..., ...}``."""
        return {f"{lname}.{pname}": p for lname, layer in self.layers.items()
                for pname, p in layer.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last backward pass, with the same names as :meth:`parameters`."""
        return {f"{lname}.{pname}": g for lname, layer in self.layers.items()
                for pname, g in layer.grads.items()}

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters().values()))

    def astype(self, dtype) -> "Sequential":
        """Cast every parameter to ``dtype`` in place (float64 for gradient checks); returns ``self``."""
        for layer in self.layers.values():
            layer.astype(dtype)
        return self

    @property
    def dtype(self):
        params = self.parameters()
        return next(iter(params.values())).dtype if params else None

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, by name."""
        return {name: p.copy() for name, p in self.parameters().items()}

    def load_state_dict(self, state: dict[str, np.ndarray], source: str = "state dict") -> None:
        """Copy ``state`` into the parameters, in place and in their dtype.

        Every name and shape is checked before anything is written: a missing, unexpected or
        misshapen entry, a complex or non-finite value, or one too large for the parameter's dtype, raises ``ValueError`` naming it, and the model is left
        unchanged.
        """
        params = self.parameters()
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if missing or unexpected:
            raise ValueError(f"{source} does not match the model: missing {missing}, unexpected {unexpected}")
        for name, p in params.items():
            value = np.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(f"{source}: {name!r} has shape {value.shape}, the model expects {p.shape}")
            if not np.issubdtype(value.dtype, np.number):
                raise ValueError(f"{source}: {name!r} has non-numeric dtype {value.dtype}")
            if np.iscomplexobj(value):
                raise ValueError(f"{source}: {name!r} has complex dtype {value.dtype}; expected real numbers")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{source}: {name!r} contains NaN or infinite values")
            if value.size and np.abs(value).max() > np.finfo(p.dtype).max:
                raise ValueError(f"{source}: {name!r} holds {np.abs(value).max():.3g}, beyond the largest "
                                 f"{p.dtype} ({np.finfo(p.dtype).max:.3g}): it would load as infinity")
        for name, p in params.items():
            p[...] = state[name]

    def save(self, path) -> None:
        save_weights(self, path)

    def load(self, path) -> "Sequential":
        load_weights(self, path)
        return self

    def __repr__(self) -> str:
        lines = [f"  ({name}): {layer!r}" for name, layer in self.layers.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def LeNet5(seed=0, dtype=np.float32) -> Sequential:
    """LeNet-5 as in the table of LeCun et al. (1998), with plain tanh and a softmax output (chapter 5;
    chapter 11 builds the 1998 original).

    Input (N, 1, 32, 32) (MNIST's 28x28 zero-padded by 2) -> logits (N, 10). 61,706 parameters.

    ====== ========================= ============ ===========
    layer  operation                 output       parameters
    ====== ========================= ============ ===========
    C1     conv 6@5x5 + tanh         6 x 28 x 28  156
    S2     average pool 2x2, stride 2 6 x 14 x 14  0
    C3     conv 16@5x5 + tanh        16 x 10 x 10 2,416
    S4     average pool 2x2, stride 2 16 x 5 x 5   0
    C5     conv 120@5x5 + tanh       120 x 1 x 1  48,120
    F6     linear 84 + tanh          84           10,164
    OUT    linear 10                 10           850
    ====== ========================= ============ ===========

    The paper's C3 connects each map to a subset of S2's maps, its pooling layers have trainable
    coefficients, its tanh is scaled (1.7159 tanh(2x/3)) and its output is a layer of RBF units;
    this modern variant keeps the shapes and uses full connections, plain tanh and softmax.
    """
    rng = _rng(seed)
    return Sequential(
        ("C1", Conv2d(1, 6, 5, rng=rng, dtype=dtype)), ("C1_tanh", Tanh()),
        ("S2", AvgPool2d(2)),
        ("C3", Conv2d(6, 16, 5, rng=rng, dtype=dtype)), ("C3_tanh", Tanh()),
        ("S4", AvgPool2d(2)),
        ("C5", Conv2d(16, 120, 5, rng=rng, dtype=dtype)), ("C5_tanh", Tanh()),
        ("flatten", Flatten()),
        ("F6", Linear(120, 84, rng=rng, dtype=dtype)), ("F6_tanh", Tanh()),
        ("OUT", Linear(84, 10, rng=rng, dtype=dtype)),
    )


def save_weights(model: Sequential, path) -> Path:
    """Write ``model.state_dict()`` to ``path`` as ``.npz``, atomically (a temporary file renamed into place).

    Explained in chapter 5 (book/ch05_lenet5.ipynb).
    """
    return atomic_write(path, ".npz", lambda f: np.savez(f, **model.state_dict()))


def load_weights(model: Sequential, path) -> Sequential:
    """Load a ``.npz`` written by :func:`save_weights` into ``model`` (``allow_pickle=False``).

    The archive's ``.npy`` headers are checked first (names, shapes and real dtypes; see
    :func:`lenet_core._files.npz_headers`), so a small file that declares a huge array is refused without
    reading it; then the values (finite, and within the range of the model's dtype). Raises
    ``FileNotFoundError`` or ``ValueError`` naming the file and the wrong entry; the model is unchanged on error.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    headers = npz_headers(path)
    params = model.parameters()
    missing = [k for k in params if k not in headers]
    unexpected = [k for k in headers if k not in params]
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model: missing {missing}, unexpected {unexpected}")
    for name, (shape, dtype) in headers.items():
        check_npz_array(path, name, shape, dtype, expected_shape=params[name].shape)
    model.load_state_dict(read_npz(path, headers), source=str(path))
    return model
