"""Distortions (LeCun et al. 1998, Section III-C): random planar affine transformations, vectorised."""

from __future__ import annotations

import numpy as np

from ..layers import _rng

__all__ = ["random_affine", "DISTORTION"]


# ----------------------------------------------------------------------------------------------
# Distortions (Section III-C): random planar affine transformations, vectorised
# ----------------------------------------------------------------------------------------------

#: our distortion ranges (the paper lists the kinds, not the magnitudes)
DISTORTION = {"shift": 2.0, "scale": 0.1, "squeeze": 0.1, "shear": 0.2}


def random_affine(x: np.ndarray, rng, *, shift=DISTORTION["shift"], scale=DISTORTION["scale"],
                  squeeze=DISTORTION["squeeze"], shear=DISTORTION["shear"]) -> np.ndarray:
    """A random planar affine distortion of every image (N, C, H, W), each its own, bilinear.

    Per image: a translation of up to ``shift`` pixels along each axis, a scaling by ``1 + U(-scale,
    scale)``, a squeezing (width times ``q``, height divided by ``q``, ``q = 1 + U(-squeeze,
    squeeze)``) and a horizontal shear ``x' = x + k y``, ``k ~ U(-shear, shear)``, about the image
    centre: the kinds of distortion the paper lists; the magnitudes (:data:`DISTORTION`) are our
    choice (the paper does not give them). Pixels that come from outside the image take the value
    of the image's corner pixel (the background). No loop over pixels or images.
    """
    n, c, h, w = x.shape
    rng = _rng(rng)
    s = 1 + rng.uniform(-scale, scale, n)
    q = 1 + rng.uniform(-squeeze, squeeze, n)
    k = rng.uniform(-shear, shear, n)
    t = rng.uniform(-shift, shift, (2, n))
    # forward map (col, row) -> [[s q, s q k], [0, s / q]] (col, row) + t about the centre; invert it
    a11, a12, a22 = s * q, s * q * k, s / q
    cy, cx = (h - 1) / 2, (w - 1) / 2
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    u = cols[None] - cx - t[0][:, None, None]                       # (N, H, W)
    v = rows[None] - cy - t[1][:, None, None]
    src_r = v / a22[:, None, None] + cy
    src_c = (u - a12[:, None, None] * (v / a22[:, None, None])) / a11[:, None, None] + cx
    # bilinear sampling from the image padded by one background pixel
    fill = x[:, :, :1, :1]
    padded = np.concatenate([np.broadcast_to(fill, (n, c, h + 2, 1)),
                             np.concatenate([np.broadcast_to(fill, (n, c, 1, w)), x,
                                             np.broadcast_to(fill, (n, c, 1, w))], axis=2),
                             np.broadcast_to(fill, (n, c, h + 2, 1))], axis=3)
    r = np.clip(src_r + 1, 0, h + 1)
    cc = np.clip(src_c + 1, 0, w + 1)
    r0 = np.minimum(np.floor(r).astype(np.intp), h)
    c0 = np.minimum(np.floor(cc).astype(np.intp), w)
    fr, fc = (r - r0)[:, None], (cc - c0)[:, None]
    flat = padded.reshape(n, c, -1)

    def at(rr, ccc):
        idx = (rr * (w + 2) + ccc).reshape(n, 1, -1)
        return np.take_along_axis(flat, np.broadcast_to(idx, (n, c, idx.shape[-1])), axis=2).reshape(n, c, h, w)

    out = ((1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1))
           + fr * ((1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1)))
    return out.astype(x.dtype, copy=False)
