"""Layers with a forward and a backward pass, in PyTorch's names and layouts.

Every layer follows one small contract:

- ``forward(x)`` computes the output and caches what the backward pass will need;
- ``backward(dout)`` takes dL/d(output), fills ``grads`` (dL/d each parameter) and returns dL/dx;
- ``params`` and ``grads`` are dicts with the same keys and shapes (empty for layers without weights).

Inputs are ``(N, C, H, W)`` images or ``(N, features)`` rows. Convolution weights ``W`` are
``(out_channels, in_channels, kh, kw)``, linear weights ``(out_features, in_features)``, biases ``(out,)``.
Weights start from LeCun's uniform initialisation, ``U(-sqrt(3/fan_in), sqrt(3/fan_in))``, which
gives every unit's pre-activation unit variance for unit-variance inputs: the range where tanh
neither saturates nor stays linear.
"""

from __future__ import annotations

import numpy as np

from . import functional as Fn

__all__ = ["Layer", "Conv2d", "AvgPool2d", "MaxPool2d", "Linear", "Tanh", "ReLU", "Sigmoid", "Flatten"]


def _rng(seed_or_rng) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def lecun_uniform(shape, fan_in: int, rng, dtype) -> np.ndarray:
    """Weights drawn from ``U(-sqrt(3/fan_in), sqrt(3/fan_in))`` (variance ``1/fan_in``)."""
    bound = np.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Layer:
    """Base class: a layer without parameters that passes its input through unchanged."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def astype(self, dtype) -> "Layer":
        """Cast parameters (and gradients) to ``dtype`` in place; returns ``self``."""
        for group in (self.params, self.grads):
            for name, value in group.items():
                group[name] = value.astype(dtype)
        return self

    def _zero_grads(self) -> None:
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class Conv2d(Layer):
    """2-D convolution (cross-correlation), vectorised: one batched matrix product over unfolded windows.

    x: (N, in_channels, H, W) -> (N, out_channels, OH, OW), OH = (H + 2*padding - kh) // stride + 1.
    Parameters: ``W`` (out_channels, in_channels, kh, kw), ``b`` (out_channels,).
    Set ``need_input_grad = False`` on a first layer whose input gradient nobody reads to skip the fold
    (col2im) of the backward pass.

    The unfolded windows (``cols``) and their gradient live in a :class:`~lenet_core.functional.Workspace`
    that is reused from batch to batch; what ``forward`` and ``backward`` return is always a new array.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
                 rng=None, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = Fn._pair(kernel_size, "kernel_size")
        self.stride, self.padding = Fn._pair(stride, "stride"), Fn._pair(padding, "padding")
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        rng = _rng(rng)
        self.params = {"W": lecun_uniform((out_channels, in_channels, kh, kw), fan_in, rng, dtype),
                       "b": np.zeros(out_channels, dtype=dtype)}
        self._zero_grads()
        self.need_input_grad = True
        self.workspace = Fn.Workspace()

    def _scratch(self, name, x_shape, dtype):
        """A reused (N, C*kh*kw, OH*OW) buffer for an input of shape ``x_shape``."""
        (kh, kw), _, _, oh, ow = Fn._conv_geometry(x_shape, self.kernel_size, self.stride, self.padding)
        return self.workspace.get(name, (x_shape[0], x_shape[1] * kh * kw, oh * ow), dtype)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects input (N, {self.in_channels}, H, W), got shape {x.shape}")
        W, b = self.params["W"], self.params["b"]
        out, self._cols = Fn.conv2d(x, W, b, self.stride, self.padding,
                                    cols=self._scratch("cols", x.shape, x.dtype))
        self._x_shape = x.shape
        return out

    def backward(self, dout):
        W = self.params["W"]
        dcols = (self._scratch("dcols", self._x_shape, np.result_type(dout, W))
                 if self.need_input_grad else None)
        dx, self.grads["W"], self.grads["b"] = Fn.conv2d_backward(
            dout, self._cols, self._x_shape, W, self.stride, self.padding,
            need_dx=self.need_input_grad, dcols=dcols)
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class _Pool2d(Layer):
    mode = ""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = Fn._pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else Fn._pair(stride, "stride")

    def forward(self, x):
        out, self._cache = Fn.pool2d(x, self.kernel_size, self.stride, self.mode)
        self._x_shape = x.shape
        return out

    def backward(self, dout):
        return Fn.pool2d_backward(dout, self._cache, self._x_shape, self.kernel_size, self.stride, self.mode)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class AvgPool2d(_Pool2d):
    """Average pooling. x: (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size.

    Backward spreads each output gradient evenly, ``dout / (kh*kw)``, over its window.
    """
    mode = "avg"


class MaxPool2d(_Pool2d):
    """Max pooling. x: (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size.

    Backward routes each output gradient to the window's maximum; on a tie, to the first maximum in
    row-major order (as PyTorch does). At a tie max is not differentiable and that choice is one
    valid subgradient.
    """
    mode = "max"


class Linear(Layer):
    """Fully connected layer: ``y = x W^T + b``. x: (N, in_features) -> (N, out_features).

    Parameters: ``W`` (out_features, in_features), ``b`` (out_features,).
    """

    def __init__(self, in_features, out_features, *, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.params = {"W": lecun_uniform((out_features, in_features), in_features, _rng(rng), dtype),
                       "b": np.zeros(out_features, dtype=dtype)}
        self._zero_grads()

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self!r} expects input (N, {self.in_features}), got shape {x.shape}")
        self._x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = dout.T @ self._x
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"]

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Tanh(Layer):
    """``y = tanh(x)``; backward: ``dx = dout * (1 - y^2)``. Any shape."""

    def forward(self, x):
        self._y = np.tanh(x)
        return self._y

    def backward(self, dout):
        grad = np.multiply(self._y, self._y, dtype=np.result_type(self._y, dout))
        np.subtract(1, grad, out=grad)                             # 1 - y^2, in one new array
        grad *= dout
        return grad


class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))``; backward: ``dx = dout * y * (1 - y)``. Any shape; no overflow."""

    def forward(self, x):
        # 0.5 * (1 + tanh(x/2)) equals the logistic function and never overflows.
        self._y = 0.5 * (1 + np.tanh(0.5 * x))
        return self._y

    def backward(self, dout):
        return dout * self._y * (1 - self._y)


class ReLU(Layer):
    """``y = max(x, 0)``; backward passes ``dout`` where ``x > 0``. Any shape."""

    def forward(self, x):
        self._mask = x > 0
        return np.where(self._mask, x, 0).astype(x.dtype, copy=False)

    def backward(self, dout):
        return np.where(self._mask, dout, 0).astype(dout.dtype, copy=False)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), in C-order, as ``torch.flatten(x, 1)``."""

    def forward(self, x):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self._x_shape)
