"""Small filters the chapters apply and plot: the hand-made kernels of chapter 2, one 2-D
cross-correlation of an image with a kernel, and the trailing moving average that smooths a loss
curve (chapter 6). The figures are in :mod:`lenet_core.viz`.
"""
from __future__ import annotations

import numpy as np

from . import functional

__all__ = ["classic_kernels", "filter2d", "moving_average"]


def classic_kernels() -> dict[str, np.ndarray]:
    """The hand-made kernels of chapter 2, by name: edges (Sobel x/y, Laplacian), blur (box,
    Gaussian), sharpen. float64 arrays of odd size, written the way a cross-correlation applies them."""
    g = np.exp(-0.5 * (np.arange(-2, 3) / 1.0) ** 2)
    gauss = np.outer(g, g)
    return {
        "Sobel x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
        "Sobel y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
        "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
        "box blur 3x3": np.full((3, 3), 1 / 9),
        "Gaussian 5x5 (σ=1)": gauss / gauss.sum(),
        "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    }


def filter2d(image, kernel) -> np.ndarray:
    """Cross-correlate one 2-D image with one odd-sized 2-D kernel, zero-padded to keep the size.

    A thin wrapper around :func:`lenet_core.functional.conv2d` (one image, one channel, one filter).
    """
    img, k = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
    for name, a in (("image", img), ("kernel", k)):
        if a.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    if k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"kernel must have odd height and width, got shape {k.shape}")
    out, _ = functional.conv2d(img[None, None], k[None, None], np.zeros(1), padding=(k.shape[0] // 2, k.shape[1] // 2))
    return out[0, 0]


def moving_average(values, window: int) -> np.ndarray:
    """Trailing moving average of a 1-D sequence, same length: entry i averages the last
    ``min(i + 1, window)`` values (so the start of the curve is not dropped)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be a 1-D sequence, got shape {values.shape}")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    csum = np.concatenate([[0.0], np.cumsum(values)])
    i = np.arange(1, len(values) + 1)
    lo = np.maximum(i - window, 0)
    return (csum[i] - csum[lo]) / (i - lo)
