"""Layers with a forward and a backward pass, in PyTorch's names and layouts (chapters 2 to 5).

Every layer follows one small contract (chapter 4 derives each backward pass):

- ``forward(x)`` computes the output and stores what the backward pass will need in ``self.cache``,
  a dict (e.g. Tanh keeps ``cache["y"]``, Conv2d ``cache["cols"]`` or ``cache["x"]``, and ``cache["x_shape"]``);
- ``backward(dout)`` takes dL/d(output), reads ``self.cache``, fills ``grads`` (dL/d each parameter)
  and returns dL/dx. Calling it before any ``forward`` raises ``RuntimeError("... backward called
  before forward")``;
- ``params`` and ``grads`` are dicts with the same keys and shapes (empty for layers without weights);
- ``describe()`` and ``parameter_formula()`` give the layer's row of :func:`lenet_core.summary.summary`;
- ``need_input_grad``: set it to ``False`` (best through :func:`input_grad`) when nobody reads the
  returned dL/dx; a layer may then skip computing it and return ``None``.
- ``need_backward``: set it to ``False`` (best through :func:`no_grad`) when no backward pass
  follows the forward passes (prediction); a layer may then skip keeping what ``backward`` needs.
- ``replicate()`` returns a layer that computes with the same parameter arrays but keeps its own
  cache, gradients and scratch space: :class:`lenet_core.parallel.DataParallel` runs one on each
  shard of a batch that it computes in this process (a worker process has its own forked copy).
- ``gauss_newton(d2out)`` is the backward pass of second derivatives that SDLM needs (chapter 11):
  from the per-sample diagonal ``d2E/dy^2`` it returns ``(d2E/dx^2, {name: h})``, squared weights,
  squared inputs and squared derivatives in place of the plain ones (Gauss-Newton: the curvature of
  the layer's own function is dropped, so nothing is negative). It reads ``self.cache`` too.

A container of layers, :class:`lenet_core.model.Sequential`, is itself a layer. Adding a layer means
one class here (or in a module of its own) and its test; see CONTRIBUTING.md.

Inputs are ``(N, C, H, W)`` images or ``(N, features)`` rows. Convolution weights ``W`` are
``(out_channels, in_channels, kh, kw)``, linear weights ``(out_features, in_features)``, biases ``(out,)``.
Weights start from LeCun's uniform initialisation, ``U(-sqrt(3/fan_in), sqrt(3/fan_in))``, which
gives every unit's pre-activation unit variance for unit-variance inputs: the range where tanh
neither saturates nor stays linear.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np

from . import functional

__all__ = ["Layer", "Conv2d", "AvgPool2d", "MaxPool2d", "Linear", "Tanh", "ReLU", "Sigmoid", "Flatten",
           "input_grad", "no_grad", "all_layers", "lecun_uniform"]


def _rng(seed_or_rng) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def lecun_uniform(shape, fan_in: int, rng, dtype) -> np.ndarray:
    """Weights drawn from ``U(-sqrt(3/fan_in), sqrt(3/fan_in))`` (variance ``1/fan_in``); chapter 5."""
    bound = np.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _pair_text(pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


class Cached:
    """``self.cache``: the dict that ``forward`` fills for ``backward`` (layers and losses alike).

    Reading it before any ``forward`` raises ``RuntimeError("... backward called before forward")``.

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """

    _cache: dict | None = None

    @property
    def cache(self) -> dict:
        """What the last ``forward`` kept for ``backward``; ``RuntimeError`` if there was no forward yet."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward (nothing cached yet)")
        return self._cache

    @cache.setter
    def cache(self, value: dict) -> None:
        self._cache = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Layer(Cached):
    """Base class of every layer (and of :class:`~lenet_core.model.Sequential`); see the module docstring.

    Class attributes a subclass may override: ``elementwise`` (True for activations, which
    ``summary(merge_activations=True)`` folds into the row before them) and ``need_input_grad``.

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """

    elementwise = False
    need_input_grad = True
    need_backward = True

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def gauss_newton(self, d2out: np.ndarray) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """Gauss-Newton backward pass: d2E/dy^2 (output's shape) -> ``(d2E/dx^2, h)``, where ``h`` holds
        the diagonal curvature of each parameter (``params``' names and shapes), summed over the batch.

        For ``y = f(x; w)`` and a loss whose Hessian in ``y`` is taken diagonal, ``d2x_j = sum_i
        d2out_i (dy_i/dx_j)^2`` and ``h_k = sum_i d2out_i (dy_i/dw_k)^2``. Explained in chapter 11
        (book/ch11_lenet1998.ipynb).
        """
        raise NotImplementedError(f"{self!r} has no Gauss-Newton backward pass (gauss_newton)")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def astype(self, dtype) -> "Layer":
        """Cast parameters (and gradients) to ``dtype`` in place; returns ``self``."""
        for group in (self.params, self.grads):
            for name, value in group.items():
                group[name] = value.astype(dtype)
        return self

    def replicate(self) -> "Layer":
        """A copy that shares this layer's parameter arrays (``params`` is the same dict) but has its own
        cache, gradients and scratch space, so it can run on another shard of the batch
        (:class:`~lenet_core.parallel.DataParallel`). Its flags are copied; its gradients start empty.

        Explained in chapter 8 (book/ch08_pytorch_twin.ipynb).
        """
        twin = copy.copy(self)
        twin.grads, twin._cache = {}, None
        return twin

    def _zero_grads(self) -> None:
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def describe(self) -> str:
        """What the layer does, in a few words (the "type" column of a summary): ``"conv 6@5x5"``."""
        return type(self).__name__.lower() if self.elementwise else type(self).__name__

    def parameter_formula(self) -> str:
        """How the parameter count follows from the sizes, e.g. ``"6 x (1 x 5 x 5 + 1)"``; ``""`` if none.

        By default the shapes of the parameter tensors, e.g. ``"W 3x4 + b 3"``.
        """
        return " + ".join(f"{name} {'x'.join(map(str, p.shape))}" for name, p in self.params.items())

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


@contextmanager
def input_grad(model: Layer, needed: bool = True):
    """Within the block, ``model.backward`` computes dL/d(input) or, with ``needed=False``, may skip it.

    Training uses ``input_grad(model, False)`` (nobody reads d(loss)/d(image), and C1 then skips the
    fold of its backward pass); gradient checks and attributions use ``input_grad(model)``. The flag
    is restored on exit. For a :class:`~lenet_core.model.Sequential` the flag is its first layer's.

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """
    saved = model.need_input_grad
    model.need_input_grad = needed
    try:
        yield model
    finally:
        model.need_input_grad = saved


def all_layers(model: Layer) -> list[Layer]:
    """``model`` and, nested, every layer in it (a :class:`~lenet_core.model.Sequential`'s ``layers``),
    parents before children, in the order of ``layers``.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    layers = [model]
    for layer in layers:
        layers.extend(getattr(layer, "layers", {}).values())
    return layers


@contextmanager
def no_grad(model: Layer):
    """Within the block, ``model`` and every layer in it only run forward passes (as under
    ``torch.no_grad()``): a layer may then skip keeping what ``backward`` needs, and a ``backward``
    after such a forward raises ``RuntimeError``. Prediction and evaluation use it (the convolutions
    then never write their whole unfolded matrix). The flags are restored on exit.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    layers = all_layers(model)
    saved = [layer.need_backward for layer in layers]
    for layer in layers:
        layer.need_backward = False
    try:
        yield model
    finally:
        for layer, flag in zip(layers, saved):
            layer.need_backward = flag


class Conv2d(Layer):
    """2-D convolution (cross-correlation), vectorised: one batched matrix product over unfolded windows.

    Chapter 2 explains the forward pass, chapter 4 the backward pass.
    x: (N, in_channels, H, W) -> (N, out_channels, OH, OW), OH = (H + 2*padding - kh) // stride + 1.
    Parameters: ``W`` (out_channels, in_channels, kh, kw), ``b`` (out_channels,).
    ``cache``: ``cols`` (the unfolded windows, :func:`~lenet_core.functional.unfold`; they live in
    the workspace and are overwritten by the next forward), ``x`` and ``x_shape``. A layer with
    fewer than :data:`~lenet_core.functional.KEEP_WINDOWS_FROM` output channels keeps its input
    ``x`` instead of ``cols`` (``None``), and its backward pass unfolds the windows again.
    With ``need_input_grad = False`` the backward pass skips dL/dx (the fold) and returns ``None``;
    with ``need_backward = False`` (:func:`no_grad`) the forward pass keeps no ``cols`` (``None``).

    The unfolded windows and their gradient live in a :class:`~lenet_core.functional.Workspace`
    that is reused from batch to batch; what ``forward`` and ``backward`` return is always a new array,
    stored batch-last (:func:`~lenet_core.functional.batch_last`), which the next layers keep.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
                 rng=None, dtype=np.float32):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Conv2d: {name} must be a positive integer, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = functional.pair(kernel_size, "kernel_size", minimum=1)
        self.stride = functional.pair(stride, "stride", minimum=1)
        self.padding = functional.pair(padding, "padding", minimum=0)
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        rng = _rng(rng)
        self.params = {"W": lecun_uniform((out_channels, in_channels, kh, kw), fan_in, rng, dtype),
                       "b": np.zeros(out_channels, dtype=dtype)}
        self._zero_grads()
        self.need_input_grad = True
        self.workspace = functional.Workspace()

    def forward(self, x):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r} expects a NumPy array (N, {self.in_channels}, H, W), got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects input (N, {self.in_channels}, H, W), got shape {x.shape}")
        W, b = self.params["W"], self.params["b"]
        keep = self.need_backward and self.out_channels >= functional.KEEP_WINDOWS_FROM
        out, cols = functional.conv2d(x, W, b, self.stride, self.padding, workspace=self.workspace,
                                      keep_cols=keep)
        self.cache = {"cols": cols, "x": x if self.need_backward and not keep else None, "x_shape": x.shape}
        return out

    def replicate(self):
        """A :meth:`Layer.replicate` with its own :class:`~lenet_core.functional.Workspace`."""
        twin = super().replicate()
        twin.workspace = functional.Workspace()
        return twin

    def _kept(self):
        """``(cols, x)`` of the last forward pass, one of them ``None`` (see
        :data:`~lenet_core.functional.KEEP_WINDOWS_FROM`); ``RuntimeError`` if the last forward ran
        under :func:`no_grad`."""
        cache = self.cache
        if cache["cols"] is None and cache["x"] is None:
            raise RuntimeError(f"{self!r}: backward after a forward pass under no_grad (nothing was kept)")
        return cache["cols"], cache["x"]

    def _cols(self):
        """The windows of the last forward pass (unfolded again when only its input was kept)."""
        cols, x = self._kept()
        return cols if cols is not None else functional.unfold(x, self.kernel_size, self.stride, self.padding)

    def gradients_of(self, dout, need_dx: bool):
        """``(dx, dW, db)`` of the last forward pass (:func:`~lenet_core.functional.conv2d_backward`;
        ``dx`` is ``None`` unless ``need_dx``), without storing them."""
        cols, x = self._kept()
        return functional.conv2d_backward(dout, cols, self.cache["x_shape"], self.params["W"], self.stride,
                                          self.padding, need_dx=need_dx, workspace=self.workspace, x=x)

    def backward(self, dout):
        dx, self.grads["W"], self.grads["b"] = self.gradients_of(dout, self.need_input_grad)
        return dx

    def describe(self):
        kh, kw = self.kernel_size
        text = f"conv {self.out_channels}@{kh}x{kw}"
        if self.stride != (1, 1):
            text += f", stride {_pair_text(self.stride)}"
        if self.padding != (0, 0):
            text += f", pad {_pair_text(self.padding)}"
        return text

    def parameter_formula(self):
        """``out x (in x kh x kw + 1)``: one kernel per (output, input) channel pair, one bias per output."""
        kh, kw = self.kernel_size
        return f"{self.out_channels} x ({self.in_channels} x {kh} x {kw} + 1)"

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")

    def gauss_newton(self, d2out):
        """The backward pass with squared windows and squared weights (skips d2x without ``need_input_grad``)."""
        cache = self.cache
        cols, W = self._cols(), self.params["W"]
        squared = np.ascontiguousarray(cols * cols)                  # C5's cols are a transposed view
        d2x, hW, hb = functional.conv2d_backward(d2out, squared, cache["x_shape"], W * W, self.stride,
                                                 self.padding, need_dx=self.need_input_grad)
        return d2x, {"W": hW, "b": hb}


class _Pool2d(Layer):
    mode = ""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = functional.pair(kernel_size, "kernel_size", minimum=1)
        self.stride = self.kernel_size if stride is None else functional.pair(stride, "stride", minimum=1)

    def forward(self, x):
        out, winners = functional.pool2d(x, self.kernel_size, self.stride, self.mode)
        self.cache = {"winners": winners, "x_shape": x.shape}
        return out

    def backward(self, dout):
        cache = self.cache
        return functional.pool2d_backward(dout, cache["winners"], cache["x_shape"], self.kernel_size,
                                          self.stride, self.mode)

    def describe(self):
        kh, kw = self.kernel_size
        return f"{self.mode} pool {kh}x{kw}, stride {_pair_text(self.stride)}"

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

    def gauss_newton(self, d2out):
        """Average: each pixel gets ``d2out / (kh*kw)^2``; max: the window's winner gets ``d2out``."""
        cache = self.cache
        d2x = functional.pool2d_backward(d2out, cache["winners"], cache["x_shape"], self.kernel_size,
                                         self.stride, self.mode)
        if self.mode == "avg":
            d2x /= self.kernel_size[0] * self.kernel_size[1]
        return d2x, {}


class AvgPool2d(_Pool2d):
    """Average pooling (chapter 3). x: (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size.

    Backward spreads each output gradient evenly, ``dout / (kh*kw)``, over its window.
    ``cache``: ``x_shape`` (and ``winners``, always ``None`` here).
    """
    mode = "avg"


class MaxPool2d(_Pool2d):
    """Max pooling (chapter 3). x: (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size.

    Backward routes each output gradient to the window's maximum; on a tie, to the first maximum in
    row-major order (as PyTorch does). At a tie max is not differentiable and that choice is one
    valid subgradient. A NaN in a window is its maximum (it propagates, as in PyTorch).
    ``cache``: ``winners`` (offset ``p*kw + q`` of each window's maximum) and ``x_shape``.
    """
    mode = "max"


class Linear(Layer):
    """Fully connected layer: ``y = x W^T + b``. x: (N, in_features) -> (N, out_features). Chapter 4.

    Parameters: ``W`` (out_features, in_features), ``b`` (out_features,). ``cache``: ``x``.
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
        self.cache = {"x": x}
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = dout.T @ self.cache["x"]
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"]

    def describe(self):
        return f"linear {self.in_features}->{self.out_features}"

    def parameter_formula(self):
        """``out x (in + 1)``: one weight per (output, input) pair, one bias per output."""
        return f"{self.out_features} x ({self.in_features} + 1)"

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def gauss_newton(self, d2out):
        """``d2x = d2out @ W^2``, ``h_W = d2out^T @ x^2``, ``h_b = sum d2out``."""
        x, W = self.cache["x"], self.params["W"]
        return d2out @ (W * W), {"W": d2out.T @ (x * x), "b": d2out.sum(axis=0)}


class Tanh(Layer):
    """``y = tanh(x)``; backward: ``dx = dout * (1 - y^2)``. Any shape. Chapter 4. ``cache``: ``y``."""

    elementwise = True

    def forward(self, x):
        y = np.tanh(x)
        self.cache = {"y": y}
        return y

    def backward(self, dout):
        y = self.cache["y"]
        grad = np.multiply(y, y, dtype=np.result_type(y, dout))
        np.subtract(1, grad, out=grad)                             # 1 - y^2, in one new array
        grad *= dout
        return grad

    def gauss_newton(self, d2out):
        """``d2out * (1 - y^2)^2``."""
        y = self.cache["y"]
        return d2out * (1 - y * y) ** 2, {}


class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))``; backward: ``dx = dout * y * (1 - y)``. Any shape. Chapter 4.

    Computed from ``z = exp(-|x|)``, which never overflows: ``y = 1 / (1 + z)`` for ``x >= 0`` and
    ``z / (1 + z)`` for ``x < 0``, so that tiny values keep their relative precision (4.2e-18 at
    x = -40, not 0). ``1 - y`` is computed the same way (``cache``: ``y`` and ``one_minus_y``), so the
    derivative keeps its precision at large positive x too.
    """

    elementwise = True

    def forward(self, x):
        z = np.exp(-np.abs(x))
        small = z / (1 + z)                                        # sigmoid(-|x|), in (0, 0.5]
        large = 1 / (1 + z)                                        # sigmoid(|x|), in [0.5, 1)
        positive = x >= 0
        y = np.where(positive, large, small)
        self.cache = {"y": y, "one_minus_y": np.where(positive, small, large)}
        return y

    def backward(self, dout):
        return dout * self.cache["y"] * self.cache["one_minus_y"]

    def gauss_newton(self, d2out):
        """``d2out * (y (1 - y))^2``."""
        return d2out * (self.cache["y"] * self.cache["one_minus_y"]) ** 2, {}


class ReLU(Layer):
    """``y = max(x, 0)``; backward passes ``dout`` where ``x > 0``. Any shape. ``cache``: ``mask``.

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """

    elementwise = True

    def forward(self, x):
        mask = x > 0
        self.cache = {"mask": mask}
        return np.where(mask, x, 0).astype(x.dtype, copy=False)

    def backward(self, dout):
        return np.where(self.cache["mask"], dout, 0).astype(dout.dtype, copy=False)

    def gauss_newton(self, d2out):
        """``d2out`` where ``x > 0``, else 0 (the derivative squared is the derivative)."""
        return self.backward(d2out), {}


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), in C-order, as ``torch.flatten(x, 1)``. ``cache``: ``x_shape``.

    Explained in chapter 5 (book/ch05_lenet5.ipynb).
    """

    def forward(self, x):
        self.cache = {"x_shape": x.shape}
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.cache["x_shape"])

    def describe(self):
        return "flatten"

    def gauss_newton(self, d2out):
        """A reshape: ``d2out`` back to the input's shape."""
        return self.backward(d2out), {}
