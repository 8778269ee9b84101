"""Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Appendix C): the paper's schedule, the
per-parameter steps ``eta / (mu + h_kk)`` and the Gauss-Newton estimate of the diagonal Hessian."""

from __future__ import annotations

import numpy as np

__all__ = ["SDLM", "sdlm_learning_rate", "SDLM_SCHEDULE", "SDLM_LAST_RATE", "estimate_curvature"]


# ----------------------------------------------------------------------------------------------
# Stochastic diagonal Levenberg-Marquardt (Appendix C)
# ----------------------------------------------------------------------------------------------

#: the paper's global learning rate per pass (Section III-C): (number of passes, eta); 1e-5 thereafter
SDLM_SCHEDULE = ((2, 5e-4), (3, 2e-4), (3, 1e-4), (4, 5e-5))
SDLM_LAST_RATE = 1e-5


def sdlm_learning_rate(epoch: int) -> float:
    """eta for pass ``epoch`` (1-based): 0.0005 for 2 passes, 0.0002 for 3, 0.0001 for 3, 0.00005 for 4,
    then 0.00001.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """
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

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
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


def estimate_curvature(model, x, labels, loss_fn, batch_size=100) -> dict:
    """Average over the samples ``x`` of the Gauss-Newton diagonal Hessian of the per-sample loss.

    For a unit with weighted sum ``a_i = sum_j w_ij x_j``: ``d2E/da_i^2 = f'(a_i)^2 * sum_k w_ki^2
    d2E/da_k^2`` backwards through the network, and for a (shared) weight
    ``h_kk = sum over its connections of d2E/da_i^2 x_j^2`` (Appendix C). It is the backward pass with
    squared weights, squared inputs and squared derivatives, started from the loss's own second
    derivative (``loss_fn.curvature``). Every layer does its own part (``gauss_newton``, in the layer
    contract of :mod:`lenet_core.layers`). Returns ``{parameter name: h}`` with the shapes of
    ``model.parameters()``.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """
    total = {k: np.zeros(p.shape, dtype=np.float64) for k, p in model.params.items()}
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].astype(model.dtype, copy=False)
        out = model.forward(xb)
        d2 = loss_fn.curvature(out, labels[start:start + batch_size]).astype(out.dtype)
        _, h = model.gauss_newton(d2)
        for name, value in h.items():
            total[name] += value
    return {k: v / len(x) for k, v in total.items()}
