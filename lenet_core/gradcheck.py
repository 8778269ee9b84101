"""Numerical gradients by central differences, and checks of every analytic gradient against them
(chapter 4).

The relative error of a whole tensor is ``max|a - n| / max(max|a|, max|n|)``: the worst absolute
disagreement measured against the tensor's own scale. (An element-wise ratio would blow up on
entries that are nearly zero, where round-off alone dominates.) In float64, a correct gradient
typically gives 1e-10 or less; a wrong one gives 1e-2 or more.
"""

from __future__ import annotations

import copy

import numpy as np

from .layers import input_grad
from .losses import SoftmaxCrossEntropy

__all__ = ["numerical_gradient", "numerical_gauss_newton", "relative_error", "projected", "projected_gradient_check",
           "GradCheckResult", "check_layer", "check_model", "check_gauss_newton", "lenet_with_planted_bug"]


def _central(f, x: np.ndarray, h: float, indices):
    """Yield ``(i, f(x + h e_i), f(x - h e_i))`` for each flat index ``i``; ``x`` is perturbed in place
    and restored."""
    if x.dtype != np.float64:
        raise TypeError(f"numerical gradients need float64 arrays, got {x.dtype}")
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous so that it can be perturbed in place")
    for i in range(flat.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        yield i, plus, minus


def numerical_gradient(f, x: np.ndarray, h: float = 1e-5, indices=None) -> np.ndarray:
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` of a scalar function ``f()``.

    ``f`` takes no argument and reads ``x``, which is perturbed in place and restored. ``indices``
    (flat indices) limits the work to some entries; the others are left at 0 in the result.

    Explained in chapter 3 (book/ch03_pooling.ipynb).
    """
    grad = np.zeros_like(x)
    grad_flat = grad.reshape(-1)
    for i, plus, minus in _central(f, x, h, indices):
        grad_flat[i] = (plus - minus) / (2 * h)
    return grad


def numerical_gauss_newton(features, x: np.ndarray, *, outer: float = 2.0, h: float = 1e-5,
                           indices=None) -> np.ndarray:
    """The numerical reference for a Gauss-Newton diagonal, as :func:`numerical_gradient` is for a
    gradient: ``outer * mean_n sum_j (d features[n, j] / d x_i)^2`` by central differences, the
    diagonal of a loss whose Hessian with respect to ``features()`` is ``outer * I``.

    ``features()`` returns an (N, D) array and reads ``x`` (float64, perturbed in place and
    restored); entries not in ``indices`` are left at 0. :func:`check_gauss_newton` checks a layer's
    ``gauss_newton`` against it; chapter 11 compares it with the squared-weights backward pass of
    SDLM (:func:`lenet_core.lenet1998.estimate_curvature`) on a whole network.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """
    diag = np.zeros_like(x)
    diag_flat = diag.reshape(-1)
    for i, plus, minus in _central(features, x, h, indices):
        jac = (plus - minus) / (2 * h)
        diag_flat[i] = outer * np.mean(np.sum(jac.reshape(len(jac), -1) ** 2, axis=1))
    return diag


def relative_error(analytic: np.ndarray, numeric: np.ndarray, *, norm: str = "max",
                   per_sample: bool = False) -> float:
    """``max|a - n| / max(||a||, ||n||)``; 0 when both are exactly zero.

    ``||.||`` is the largest magnitude (``norm="max"``: a gradient against its reference, chapter 4;
    two engines' results, chapter 8) or the sum of magnitudes (``norm="l1"``: the size of an
    attribution map, chapter 10). ``per_sample=True`` measures each entry of axis 0 on its own scale
    and returns the worst.

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    if analytic.shape != numeric.shape:
        raise ValueError(f"shapes differ: {analytic.shape} vs {numeric.shape}")
    if norm not in ("max", "l1"):
        raise ValueError(f"norm must be 'max' or 'l1', got {norm!r}")
    rows = len(analytic) if per_sample and analytic.ndim else 1
    analytic, numeric = analytic.reshape(rows, -1), numeric.reshape(rows, -1)
    size = np.sum if norm == "l1" else np.max
    scale = np.maximum(size(np.abs(analytic), axis=1, initial=0), size(np.abs(numeric), axis=1, initial=0))
    diff = np.abs(analytic - numeric).max(axis=1, initial=0)
    return float(np.max(np.divide(diff, scale, out=np.zeros_like(diff, dtype=np.float64), where=scale != 0),
                        initial=0))


def projected(forward, R: np.ndarray):
    """The scalar ``sum(forward() * R)`` as a function of no argument (chapter 4).

    For a fixed random ``R`` shaped like the output, its gradient with respect to anything
    ``forward`` reads is exactly what a backward pass computes from ``dout = R``: one scalar checks
    a whole backward pass.
    """
    return lambda: float(np.sum(forward() * R))


def projected_gradient_check(forward, R: np.ndarray, x: np.ndarray, analytic: np.ndarray, h: float = 1e-5,
                             indices=None) -> float:
    """The relative error of ``analytic`` (the backward pass of ``dout = R`` with respect to ``x``)
    against central differences of ``sum(forward() * R)``, ``forward`` reading ``x`` (chapter 4).

    ``indices`` (flat) limits the comparison to some entries of ``x``.
    """
    numeric = numerical_gradient(projected(forward, R), x, h, indices)
    if indices is not None:
        return relative_error(np.asarray(analytic).reshape(-1)[indices], numeric.reshape(-1)[indices])
    return relative_error(analytic, numeric)


class GradCheckResult(dict):
    """``{tensor name: max relative error}``, printed as a table; see :attr:`worst`, :meth:`passed` and
    :meth:`verdict` (the same table as machine-independent error bands).

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """

    @property
    def worst(self) -> float:
        return max(self.values())

    def passed(self, tol: float = 1e-7) -> bool:
        return self.worst < tol

    def verdict(self, tol: float = 1e-7, wrong: float = 1e-2) -> str:
        """The table as error bands, then the verdict: machine-independent text (raw errors change in
        their last digits from machine to machine; the bands do not), so nbval can compare it.

        Each tensor ``agrees`` (error < ``tol``), is ``WRONG`` (>= ``wrong``) or ``suspicious`` (between);
        the last lines say whether every error is below ``tol``.
        """
        if not self:
            raise ValueError("the gradient check result is empty")

        def band(err):
            if err < tol:
                return f"< {tol:.0e}   agrees"
            return f">= {wrong:.0e}  WRONG" if err >= wrong else f"{tol:.0e} .. {wrong:.0e}  suspicious"
        return self._table(band) + f"\nmax error < {tol:.0e}: {self.passed(tol)}\npassed: {self.passed(tol)}"

    def _table(self, cell) -> str:
        width = max(len("tensor"), *(len(k) for k in self))
        lines = [f"{'tensor':<{width}}  max rel. error", f"{'-' * width}  --------------"]
        lines += [f"{name:<{width}}  {cell(err)}" for name, err in self.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._table(lambda err: f"{err:.2e}")

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def _float64_copy(layer_or_model):
    """A float64 deep copy (the original's parameters and flags stay untouched)."""
    return copy.deepcopy(layer_or_model).astype(np.float64)


def _sample(size, samples, rng):
    if samples is None or samples >= size:
        return None
    return rng.choice(size, samples, replace=False)


def _compare(analytic, tensor, f, h, samples, rng):
    idx = _sample(tensor.size, samples, rng)
    numeric = numerical_gradient(f, tensor, h, idx)
    if idx is not None:
        return relative_error(analytic.reshape(-1)[idx], numeric.reshape(-1)[idx])
    return relative_error(analytic, numeric)


def check_layer(layer, x, *, h=1e-5, seed=0, samples=None) -> GradCheckResult:
    """Check a layer's ``backward`` against central differences, in float64 (chapter 4).

    ``layer`` is any :class:`~lenet_core.layers.Layer`, a whole :class:`~lenet_core.model.Sequential` too.

    Works on a float64 copy of ``layer`` (the original is untouched). The scalar checked is
    ``sum(forward(x) * R)`` for a fixed random ``R``, so that ``backward(R)`` is its exact gradient.
    Returns the max relative error of dx (``"x"``) and of each parameter gradient. ``samples``
    limits each tensor to that many randomly chosen entries.
    """
    layer = _float64_copy(layer)
    x = np.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    R = rng.standard_normal(layer.forward(x).shape)
    with input_grad(layer):
        dx = layer.backward(R)
    analytic = {"x": dx, **{k: v.copy() for k, v in layer.grads.items()}}

    result = GradCheckResult()
    for name, tensor in [("x", x), *layer.params.items()]:
        idx = _sample(tensor.size, samples, rng)
        result[name] = projected_gradient_check(lambda: layer.forward(x), R, tensor, analytic[name], h, idx)
    return result


def check_model(model, x, y, loss_fn=None, *, h=1e-5, seed=0, samples=None) -> GradCheckResult:
    """Check a whole model: the loss's gradient with respect to the input and every parameter.

    Works on a float64 copy of ``model``; ``loss_fn`` defaults to :class:`SoftmaxCrossEntropy`.
    Returns ``{"x": error, "C1.W": error, ...}``. ``samples`` limits each tensor to that many entries.

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """
    model = _float64_copy(model)
    loss_fn = SoftmaxCrossEntropy() if loss_fn is None else loss_fn
    x = np.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    loss_fn.forward(model.forward(x), y)
    with input_grad(model):
        dx = model.backward(loss_fn.backward())
    analytic = {"x": dx, **{k: v.copy() for k, v in model.gradients().items()}}

    def f():
        return loss_fn.forward(model.forward(x), y)

    result = GradCheckResult()
    for name, tensor in [("x", x), *model.parameters().items()]:
        result[name] = _compare(analytic[name], tensor, f, h, samples, rng)
    return result


def lenet_with_planted_bug(seed: int = 0):
    """A float64 LeNet-5 with one planted bug in a backward pass, to find with a gradient check
    (chapter 4's exercise, assignment 3). Its forward pass is right; so are the gradients of the
    layers after the bug."""
    from .layers import Tanh
    from .model import LeNet5, Sequential

    class _Tanh(Tanh):
        def forward(self, x):
            self._x_in = x
            return super().forward(x)

        def backward(self, dout):
            return dout * (1 - self._x_in ** 2)

    model = LeNet5(seed=seed, dtype=np.float64)
    return Sequential(*[(name, _Tanh() if name == "C3_tanh" else part) for name, part in model.layers.items()])


def check_gauss_newton(layer, x, *, h=1e-5, seed=0) -> GradCheckResult:
    """Check a layer's ``gauss_newton`` against :func:`numerical_gauss_newton`, in float64, as
    :func:`check_layer` checks ``backward`` against :func:`numerical_gradient` (chapter 11).

    For a random positive diagonal ``D = d2E/dy^2`` the Gauss-Newton diagonal of one layer is
    ``d2x_j = sum_i D_i (dy_i/dx_j)^2`` and ``h_k = sum_i D_i (dy_i/dw_k)^2``, sums over every
    output element of the batch: the numerical diagonal of the features ``sqrt(D) * y`` with
    ``outer = N``. Exact for a single layer (for a stack of layers the recursion drops the cross
    terms). Works on a float64 copy; returns the max relative error of ``"x"`` and of each parameter.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """
    layer = _float64_copy(layer)
    x = np.array(x, dtype=np.float64)
    out = layer.forward(x)
    d2out = np.random.default_rng(seed).uniform(0.5, 1.5, out.shape)
    with input_grad(layer):
        d2x, curvature = layer.gauss_newton(d2out)
    analytic = {"x": d2x, **curvature}
    weight = np.sqrt(d2out).reshape(len(x), -1)

    def features():
        return layer.forward(x).reshape(len(x), -1) * weight

    return GradCheckResult({name: relative_error(analytic[name],
                                                 numerical_gauss_newton(features, tensor, outer=len(x), h=h))
                            for name, tensor in [("x", x), *layer.params.items()]})
