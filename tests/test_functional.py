"""Vectorised convolution and pooling equal the naive loops, forward and backward, in float64."""

import numpy as np
import pytest

from lenet_core import functional as F

# (N, C, H, W), (F, KH, KW), stride, padding: batch 1 and 7, padding, stride 2, non-square everything
CONV_CASES = [
    ((1, 1, 6, 6), (2, 3, 3), 1, 0),
    ((7, 3, 9, 7), (4, 3, 2), 2, 1),
    ((2, 2, 8, 11), (3, 5, 5), 1, 2),
    ((3, 2, 7, 10), (5, 3, 3), (2, 3), (0, 1)),
    ((1, 1, 32, 32), (6, 5, 5), 1, 0),
]


def close(a, b, tol=1e-12):
    """Equal to ``tol`` relative to the values' scale (which is about 1 to 10 here)."""
    scale = max(1.0, np.abs(b).max())
    return np.abs(a - b).max() <= tol * scale


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CONV_CASES)
def test_conv_fast_equals_naive(rng, x_shape, w_shape, stride, padding):
    x = rng.standard_normal(x_shape)
    W = rng.standard_normal((w_shape[0], x_shape[1], *w_shape[1:]))
    b = rng.standard_normal(w_shape[0])
    out_naive = F.conv2d_naive(x, W, b, stride, padding)
    out_fast, cols = F.conv2d(x, W, b, stride, padding)
    assert out_fast.shape == out_naive.shape
    assert close(out_fast, out_naive)
    dout = rng.standard_normal(out_naive.shape)
    for fast, naive in zip(F.conv2d_backward(dout, cols, x.shape, W, stride, padding),
                           F.conv2d_backward_naive(dout, x, W, stride, padding)):
        assert fast.shape == naive.shape
        assert close(fast, naive)


POOL_CASES = [((1, 1, 4, 4), 2, None), ((7, 3, 9, 7), 3, 2), ((2, 2, 6, 9), (2, 3), (1, 2)), ((3, 6, 28, 28), 2, 2)]


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("x_shape,kernel,stride", POOL_CASES)
def test_pool_fast_equals_naive(rng, mode, x_shape, kernel, stride):
    x = rng.standard_normal(x_shape)
    out_naive = F.pool2d_naive(x, kernel, stride, mode)
    out_fast, cache = F.pool2d(x, kernel, stride, mode)
    assert close(out_fast, out_naive)
    dout = rng.standard_normal(out_naive.shape)
    assert close(F.pool2d_backward(dout, cache, x.shape, kernel, stride, mode),
                 F.pool2d_backward_naive(dout, x, kernel, stride, mode))


def test_max_pool_ties_match_naive_and_go_to_first_maximum(rng):
    x = rng.integers(0, 2, size=(2, 3, 6, 6)).astype(np.float64)   # many tied maxima
    out, cache = F.pool2d(x, 2, 2, "max")
    dout = rng.standard_normal(out.shape)
    dx = F.pool2d_backward(dout, cache, x.shape, 2, 2, "max")
    assert np.array_equal(dx, F.pool2d_backward_naive(dout, x, 2, 2, "max"))
    window = x[0, 0, :2, :2].reshape(-1)
    first = int(np.argmax(window))
    expected = np.zeros(4)
    expected[first] = dout[0, 0, 0, 0]
    assert np.array_equal(dx[0, 0, :2, :2].reshape(-1), expected)


def test_convolution_is_cross_correlation():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    W = np.array([[[[1.0, 0], [0, 0]]]])                          # picks each window's top-left pixel
    out, _ = F.conv2d(x, W, np.zeros(1))
    assert np.array_equal(out[0, 0], [[0, 1], [3, 4]])


def test_im2col_col2im_are_adjoint(rng):
    """<im2col(x), c> == <x, col2im(c)>: col2im is exactly the transpose of im2col."""
    x = rng.standard_normal((2, 3, 7, 6))
    cols = F.im2col(x, (3, 2), (2, 1), (1, 1))
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * F.col2im(c, x.shape, (3, 2), (2, 1), (1, 1))), rtol=1e-12)


@pytest.mark.parametrize("size,kernel,stride,padding,expected", [(28, 5, 1, 0, 24), (32, 5, 1, 0, 28),
                                                                 (28, 5, 1, 2, 28), (7, 3, 2, 1, 4), (28, 2, 2, 0, 14)])
def test_output_size(size, kernel, stride, padding, expected):
    assert F.output_size(size, kernel, stride, padding) == expected


@pytest.mark.parametrize("args,message", [((4, 5, 1, 0), "does not fit"), ((8, 3, 0, 0), "stride"),
                                          ((8, 3, 1, -1), "padding")])
def test_output_size_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        F.output_size(*args)


def test_bad_shapes_are_named(rng):
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\).*\(5, 5\)"):
        F.conv2d(rng.standard_normal((5, 5)), rng.standard_normal((1, 1, 3, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="3 channels but W expects 2"):
        F.conv2d(rng.standard_normal((1, 3, 5, 5)), rng.standard_normal((1, 2, 3, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="unknown pooling mode 'min'"):
        F.pool2d(rng.standard_normal((1, 1, 4, 4)), 2, mode="min")
