"""Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Appendix C): the paper's schedule, the
per-parameter steps ``eta / (mu + h_kk)`` and the Gauss-Newton estimate of the diagonal Hessian."""

from __future__ import annotations

import numpy as np

from .. import functional as Fn
from ..layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sigmoid, Tanh
from ..losses import MSELoss, SoftmaxCrossEntropy, log_softmax
from .layers import RBFLoss

__all__ = ["SDLM", "sdlm_learning_rate", "SDLM_SCHEDULE", "SDLM_LAST_RATE", "estimate_curvature"]


# ----------------------------------------------------------------------------------------------
# Stochastic diagonal Levenberg-Marquardt (Appendix C)
# ----------------------------------------------------------------------------------------------

#: the paper's global learning rate per pass (Section III-C): (number of passes, eta); 1e-5 thereafter
SDLM_SCHEDULE = ((2, 5e-4), (3, 2e-4), (3, 1e-4), (4, 5e-5))
SDLM_LAST_RATE = 1e-5


def sdlm_learning_rate(epoch: int) -> float:
    """eta for pass ``epoch`` (1-based): 0.0005 for 2 passes, 0.0002 for 3, 0.0001 for 3, 0.00005 for 4,
    then 0.00001."""
    if epoch < 1:
        raise ValueError(f"passes are counted from 1, got {epoch}")
    end = 0
    for passes, eta in SDLM_SCHEDULE:
        end += passes
        if epoch <= end:
            return eta
    return SDLM_LAST_RATE


class SDLM:
    """Stochastic diagonal Levenberg-Marquardt: ``w_k -= eta / (mu + h_kk) * g_k``.

    ``h_kk`` is an estimate of the diagonal of the Hessian of the per-sample loss (Gauss-Newton:
    second-derivative terms of the squashing functions dropped, so it is never negative), set by
    :meth:`set_curvature` from :func:`estimate_curvature` before every pass and kept fixed during
    the pass, as in the paper. ``mu`` (0.02) keeps the step bounded where the curvature is tiny.
    ``g`` is the gradient handed to :meth:`step`: :func:`fit_1998` passes the mini-batch's mean
    gradient of the per-sample loss (the paper updates after every single sample).
    """

    def __init__(self, params: dict, lr: float = 5e-4, mu: float = 0.02):
        if not params:
            raise ValueError("the optimizer got no parameters")
        self.params, self.lr, self.mu = dict(params), float(lr), float(mu)
        self.curvature = {k: np.zeros_like(p) for k, p in self.params.items()}
        self.steps = 0

    def set_curvature(self, h: dict) -> None:
        if h.keys() != self.params.keys():
            raise ValueError(f"curvature names {sorted(h)} do not match parameter names {sorted(self.params)}")
        self.curvature = {k: np.asarray(v, dtype=self.params[k].dtype) for k, v in h.items()}

    def step_sizes(self) -> dict:
        """The per-parameter learning rates ``eta / (mu + h_kk)``."""
        return {k: self.lr / (self.mu + h) for k, h in self.curvature.items()}

    def step(self, grads: dict) -> None:
        if grads.keys() != self.params.keys():
            raise ValueError(f"gradient names {sorted(grads)} do not match parameter names {sorted(self.params)}")
        self.steps += 1
        for k, p in self.params.items():
            p -= (self.lr / (self.mu + self.curvature[k]) * grads[k]).astype(p.dtype, copy=False)


def _gn_builtin(layer, x, y, d2out):
    """Gauss-Newton backward of lenet_core's own layers, from the layer's input x and output y."""
    if isinstance(layer, Conv2d):                               # PartialConv2d included (masked W)
        W = layer.params["W"] * getattr(layer, "mask", 1)
        cols = Fn.unfold(x, layer.kernel_size, layer.stride, layer.padding)
        d2x, hW, hb = Fn.conv2d_backward(d2out, cols * cols, x.shape, W * W, layer.stride, layer.padding)
        return d2x, {"W": hW * getattr(layer, "mask", 1), "b": hb}
    if isinstance(layer, Linear):
        W = layer.params["W"]
        return d2out @ (W * W), {"W": d2out.T @ (x * x), "b": d2out.sum(axis=0)}
    if isinstance(layer, Tanh):
        return d2out * (1 - y * y) ** 2, {}
    if isinstance(layer, Sigmoid):
        return d2out * (y * (1 - y)) ** 2, {}
    if isinstance(layer, ReLU):
        return d2out * (x > 0), {}
    if isinstance(layer, Flatten):
        return d2out.reshape(x.shape), {}
    if isinstance(layer, AvgPool2d):
        kh, kw = layer.kernel_size
        d2x = Fn.pool2d_backward(d2out, None, x.shape, layer.kernel_size, layer.stride, "avg")
        return d2x / (kh * kw), {}
    if isinstance(layer, MaxPool2d):
        _, argmax = Fn.pool2d(x, layer.kernel_size, layer.stride, "max")
        return Fn.pool2d_backward(d2out, argmax, x.shape, layer.kernel_size, layer.stride, "max"), {}
    raise TypeError(f"no Gauss-Newton backward for {layer!r}")


def _loss_curvature(loss_fn, out, labels):
    """Per-sample Gauss-Newton second derivative of the loss with respect to the model's output."""
    if isinstance(loss_fn, RBFLoss):
        return loss_fn.curvature(out, labels)
    if isinstance(loss_fn, SoftmaxCrossEntropy):
        p = np.exp(log_softmax(out))
        return p * (1 - p)
    if isinstance(loss_fn, MSELoss):                             # per-sample loss mean_k (o - t)^2
        return np.full_like(out, 2.0 / out.shape[1])
    raise TypeError(f"no curvature for loss {type(loss_fn).__name__}")


def estimate_curvature(model, x, labels, loss_fn, batch_size=100) -> dict:
    """Average over the samples ``x`` of the Gauss-Newton diagonal Hessian of the per-sample loss.

    For a unit with weighted sum ``a_i = sum_j w_ij x_j``: ``d2E/da_i^2 = f'(a_i)^2 * sum_k w_ki^2
    d2E/da_k^2`` backwards through the network, and for a (shared) weight
    ``h_kk = sum over its connections of d2E/da_i^2 x_j^2`` (Appendix C). It is the backward pass with
    squared weights, squared inputs and squared derivatives, started from the loss's own second
    derivative. Returns ``{parameter name: h}`` with the shapes of ``model.parameters()``.
    """
    names = list(model.layers)
    total = {k: np.zeros(p.shape, dtype=np.float64) for k, p in model.parameters().items()}
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].astype(model.dtype, copy=False)
        inputs, out = [], xb
        for layer in model:
            inputs.append(out)
            out = layer.forward(out)
        d2 = _loss_curvature(loss_fn, out, labels[start:start + batch_size]).astype(out.dtype)
        outputs = inputs[1:] + [out]
        for name, layer, x_in, y_out in reversed(list(zip(names, model, inputs, outputs))):
            if hasattr(layer, "gauss_newton"):
                d2, h = layer.gauss_newton(d2)
            else:
                d2, h = _gn_builtin(layer, x_in, y_out, d2)
            for pname, value in h.items():
                total[f"{name}.{pname}"] += value
    return {k: v / len(x) for k, v in total.items()}
