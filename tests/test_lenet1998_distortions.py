"""lenet_core.lenet1998.distortions: random affine distortions of the training digits."""

import numpy as np
import pytest

from lenet_core.lenet1998 import BACKGROUND, prepare_1998, random_affine


def test_random_affine(mnist):
    x = prepare_1998(mnist.x_train[:16])
    assert np.array_equal(random_affine(x, 0, shift=0, scale=0, squeeze=0, shear=0), x)
    a, b = random_affine(x, 5), random_affine(x, 5)
    assert np.array_equal(a, b) and a.dtype == x.dtype and a.shape == x.shape
    assert a.min() >= x.min() - 1e-6 and a.max() <= x.max() + 1e-6      # bilinear: convex combinations
    assert not np.allclose(a, x)
    assert a[:, :, 0, 0] == pytest.approx(BACKGROUND)                  # the background stays background
    ink = (x > 0.5).sum(axis=(1, 2, 3)), (a > 0.5).sum(axis=(1, 2, 3))
    assert np.all(np.abs(ink[1] / ink[0] - 1) < 0.5)                    # a distortion, not a new image
