"""Losses: ``forward`` returns the mean loss over the batch and keeps what ``backward()`` needs in
``self.cache`` (as every layer does); ``backward()`` returns dL/d(input). Chapters 4 and 6."""

from __future__ import annotations

import numpy as np

from .data import one_hot
from .layers import Cached

__all__ = ["SoftmaxCrossEntropy", "MSELoss", "softmax", "log_softmax"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, shifted by each row's max so ``exp`` never overflows. (N, K) -> (N, K).

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax probabilities, stable for logits of any size. (N, K) -> (N, K).

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """
    return np.exp(log_softmax(logits))


def _labels_to_targets(labels: np.ndarray, n: int, k: int, dtype) -> np.ndarray:
    """Integer labels (N,) or target distributions (N, K) -> (N, K) probabilities."""
    labels = np.asarray(labels)
    if labels.shape == (n, k):
        return labels.astype(dtype, copy=False)
    if labels.shape != (n,):
        raise ValueError(f"targets must be labels of shape ({n},) or one-hot ({n}, {k}); got shape {labels.shape}")
    return one_hot(labels, k, dtype)


def _check_distributions(targets: np.ndarray) -> None:
    """Target rows (N, K) must be probability distributions; ``ValueError`` naming the first bad row."""
    sums = targets.sum(axis=1)
    bad = ~np.isfinite(targets).all(axis=1) | (targets < 0).any(axis=1) | (np.abs(sums - 1) > 1e-3)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"target row {i} is not a probability distribution (values must be finite and >= 0 "
                         f"and sum to 1; row {i} has min {targets[i].min():.4g} and sum {sums[i]:.4g})")


class SoftmaxCrossEntropy(Cached):
    """Softmax followed by cross-entropy, fused so that it is stable and its gradient is simple.

    ``forward(logits (N, K), targets)`` with integer labels ``(N,)`` or target rows ``(N, K)`` (each a
    probability distribution: finite, non-negative, summing to 1; anything else is a ``ValueError``) returns ``mean_n( -sum_k t[n,k] * log softmax(logits)[n,k] )``.
    ``backward()`` returns ``(softmax(logits) - t) / N``: (N, K). ``cache``: ``p`` (the softmax) and
    ``t`` (the targets as rows).
    Stable for logits as large as 1e4 (the log-sum-exp is shifted by each row's max).

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (N, K), got shape {logits.shape}")
        n, k = logits.shape
        log_p = log_softmax(logits)
        t = _labels_to_targets(targets, n, k, log_p.dtype)
        if np.shape(targets) == (n, k):
            _check_distributions(t)
        self.cache = {"p": np.exp(log_p), "t": t}
        return float(-(t * log_p).sum() / n)

    __call__ = forward

    def backward(self) -> np.ndarray:
        p, t = self.cache["p"], self.cache["t"]
        return (p - t) / p.shape[0]

    def curvature(self, logits: np.ndarray, targets) -> np.ndarray:
        """Per-sample Gauss-Newton diagonal ``d2E/dz_k^2 = p_k (1 - p_k)`` (N, K), for SDLM (chapter 11)."""
        p = softmax(logits)
        return p * (1 - p)


class MSELoss(Cached):
    """Mean squared error over all elements, as ``torch.nn.MSELoss()``.

    ``forward(pred, target)`` with equal shapes returns ``mean((pred - target)^2)``; integer labels
    ``(N,)`` for a ``(N, K)`` prediction are turned into one-hot targets first.
    ``backward()`` returns ``2 * (pred - target) / pred.size``. ``cache``: ``diff`` (pred - target).

    Explained in chapter 4 (book/ch04_backprop.ipynb).
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        target = np.asarray(target)
        if pred.ndim == 2 and target.shape == (pred.shape[0],):
            target = _labels_to_targets(target, *pred.shape, pred.dtype)
        if target.shape != pred.shape:
            raise ValueError(f"prediction shape {pred.shape} and target shape {target.shape} differ")
        diff = pred - target
        self.cache = {"diff": diff}
        return float(np.mean(diff ** 2))

    __call__ = forward

    def backward(self) -> np.ndarray:
        diff = self.cache["diff"]
        return 2 * diff / diff.size

    def curvature(self, pred: np.ndarray, target) -> np.ndarray:
        """Per-sample second derivative of ``mean_k (pred - target)^2``: ``2 / K`` everywhere, (N, K);
        for SDLM (chapter 11)."""
        return np.full_like(pred, 2.0 / pred.shape[1])
