"""Vectorised convolution and pooling equal the naive loops, forward and backward, in float64."""

import numpy as np
import pytest

from lenet_core import Conv2d, LeNet5
from lenet_core import functional

# (N, C, H, W), (F, KH, KW), stride, padding: batch 1 and 7, padding, stride 2, non-square everything
CONV_CASES = [
    ((1, 1, 6, 6), (2, 3, 3), 1, 0),
    ((7, 3, 9, 7), (4, 3, 2), 2, 1),
    ((2, 2, 8, 11), (3, 5, 5), 1, 2),
    ((3, 2, 7, 10), (5, 3, 3), (2, 3), (0, 1)),
    ((1, 1, 32, 32), (6, 5, 5), 1, 0),
    ((3, 4, 5, 5), (6, 5, 5), 1, 0),           # the kernel covers the whole image (LeNet's C5)
    ((2, 2, 4, 6), (3, 4, 6), 2, 0),           # ... non-square
    ((2, 3, 3, 3), (4, 5, 5), 1, 1),           # one window per image, but over a padded image
]


def close(a, b, tol=1e-12):
    """Equal to ``tol`` relative to the values' scale (which is about 1 to 10 here)."""
    scale = max(1.0, np.abs(b).max())
    return np.abs(a - b).max() <= tol * scale


def stored(x, batch_last):
    """x as it is (C-contiguous), or the same values stored batch-last, as the engine's outputs are."""
    if not batch_last:
        return x
    out = functional.new_batch_last(x.shape, x.dtype)
    out[...] = x
    return out


@pytest.mark.parametrize("batch_last", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CONV_CASES)
def test_conv_fast_equals_naive(rng, x_shape, w_shape, stride, padding, batch_last):
    x = stored(rng.standard_normal(x_shape), batch_last)
    W = rng.standard_normal((w_shape[0], x_shape[1], *w_shape[1:]))
    b = rng.standard_normal(w_shape[0])
    out_naive = functional.conv2d_naive(x, W, b, stride, padding)
    out_fast, cols = functional.conv2d(x, W, b, stride, padding)
    assert out_fast.shape == out_naive.shape
    assert close(out_fast, out_naive)
    dout = stored(rng.standard_normal(out_naive.shape), batch_last)
    for fast, naive in zip(functional.conv2d_backward(dout, cols, x.shape, W, stride, padding),
                           functional.conv2d_backward_naive(dout, x, W, stride, padding)):
        assert fast.shape == naive.shape
        assert close(fast, naive)


POOL_CASES = [((1, 1, 4, 4), 2, None), ((7, 3, 9, 7), 3, 2), ((2, 2, 6, 9), (2, 3), (1, 2)), ((3, 6, 28, 28), 2, 2),
              ((2, 3, 7, 9), 2, 2),                # the windows tile the image but miss its last row and column
              ((2, 2, 6, 9), (2, 3), None),        # non-square tiles
              ((1, 2, 8, 8), 2, 3)]                # stride > kernel: gaps between the windows


@pytest.mark.parametrize("batch_last", [False, True])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("x_shape,kernel,stride", POOL_CASES)
def test_pool_fast_equals_naive(rng, mode, x_shape, kernel, stride, batch_last):
    x = stored(rng.standard_normal(x_shape), batch_last)
    out_naive = functional.pool2d_naive(x, kernel, stride, mode)
    out_fast, cache = functional.pool2d(x, kernel, stride, mode)
    assert close(out_fast, out_naive)
    dout = stored(rng.standard_normal(out_naive.shape), batch_last)
    assert close(functional.pool2d_backward(dout, cache, x.shape, kernel, stride, mode),
                 functional.pool2d_backward_naive(dout, x, kernel, stride, mode))


def test_max_pool_ties_match_naive_and_go_to_first_maximum(rng):
    x = rng.integers(0, 2, size=(2, 3, 6, 6)).astype(np.float64)   # many tied maxima
    out, cache = functional.pool2d(x, 2, 2, "max")
    dout = rng.standard_normal(out.shape)
    dx = functional.pool2d_backward(dout, cache, x.shape, 2, 2, "max")
    assert np.array_equal(dx, functional.pool2d_backward_naive(dout, x, 2, 2, "max"))
    window = x[0, 0, :2, :2].reshape(-1)
    first = int(np.argmax(window))
    expected = np.zeros(4)
    expected[first] = dout[0, 0, 0, 0]
    assert np.array_equal(dx[0, 0, :2, :2].reshape(-1), expected)


def test_convolution_is_cross_correlation():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    W = np.array([[[[1.0, 0], [0, 0]]]])                          # picks each window's top-left pixel
    out, _ = functional.conv2d(x, W, np.zeros(1))
    assert np.array_equal(out[0, 0], [[0, 1], [3, 4]])


def test_im2col_col2im_are_adjoint(rng):
    """<im2col(x), c> == <x, col2im(c)>: col2im is exactly the transpose of im2col."""
    x = rng.standard_normal((2, 3, 7, 6))
    cols = functional.im2col(x, (3, 2), (2, 1), (1, 1))
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * functional.col2im(c, x.shape, (3, 2), (2, 1), (1, 1))), rtol=1e-12)


@pytest.mark.parametrize("size,kernel,stride,padding,expected", [(28, 5, 1, 0, 24), (32, 5, 1, 0, 28),
                                                                 (28, 5, 1, 2, 28), (7, 3, 2, 1, 4), (28, 2, 2, 0, 14)])
def test_output_size(size, kernel, stride, padding, expected):
    assert functional.output_size(size, kernel, stride, padding) == expected


@pytest.mark.parametrize("args,message", [((4, 5, 1, 0), "does not fit"), ((8, 3, 0, 0), "stride"),
                                          ((8, 3, 1, -1), "padding")])
def test_output_size_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        functional.output_size(*args)


def test_bad_shapes_are_named(rng):
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\).*\(5, 5\)"):
        functional.conv2d(rng.standard_normal((5, 5)), rng.standard_normal((1, 1, 3, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="3 channels but W expects 2"):
        functional.conv2d(rng.standard_normal((1, 3, 5, 5)), rng.standard_normal((1, 2, 3, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="unknown pooling mode 'min'"):
        functional.pool2d(rng.standard_normal((1, 1, 4, 4)), 2, mode="min")


# ------------------------------------------------------------------------------------------------
# The fast engine's own pieces: unfold/fold, the batch-last layout, reused buffers, the workspace.
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape,kernel,stride,padding", [((2, 3, 7, 6), (3, 2), (2, 1), (1, 1)),
                                                           ((3, 1, 8, 8), 5, 1, 0), ((2, 4, 6, 5), 5, 1, 0)])
def test_unfold_is_im2col_reordered_and_fold_is_its_adjoint(rng, x_shape, kernel, stride, padding):
    x = rng.standard_normal(x_shape)
    cols = functional.unfold(x, kernel, stride, padding)
    rows = functional.im2col(x, kernel, stride, padding)                   # (N*OH*OW, K), image-major
    n, k = x_shape[0], rows.shape[1]
    oh = functional.output_size(x_shape[2], functional.pair(kernel, "k")[0], functional.pair(stride, "s")[0],
                                functional.pair(padding, "p")[0])
    assert cols.shape == (k, rows.shape[0])
    # columns position-major, image-minor: column (i*OW + j)*N + n
    assert np.array_equal(cols, rows.reshape(n, oh, -1, k).transpose(3, 1, 2, 0).reshape(k, -1))
    c = rng.standard_normal(cols.shape)
    folded = functional.fold(c, x.shape, kernel, stride, padding)
    assert np.isclose(np.sum(cols * c), np.sum(x * folded), rtol=1e-12)
    back = c.reshape(k, oh, -1, n).transpose(3, 1, 2, 0).reshape(-1, k)
    assert np.allclose(folded, functional.col2im(back, x.shape, kernel, stride, padding), rtol=0, atol=1e-12)


def test_engine_outputs_are_stored_batch_last_and_read_without_a_copy(rng):
    """conv2d returns its output stored batch-last; the next convolution unfolds it as it is (its
    one-window-per-image columns are that very memory), and pooling keeps the layout."""
    x = rng.standard_normal((3, 2, 9, 9))
    assert not functional.batch_last(x)
    out, _ = functional.conv2d(x, rng.standard_normal((4, 2, 5, 5)), np.zeros(4))
    assert out.shape == (3, 4, 5, 5) and functional.batch_last(out)
    pooled, _ = functional.pool2d(out, 2, 1, "avg")
    assert functional.batch_last(pooled)
    _, cols = functional.conv2d(out, rng.standard_normal((6, 4, 5, 5)), np.zeros(6))   # whole image: x itself
    assert np.shares_memory(cols, out)
    dx = functional.pool2d_backward(stored(rng.standard_normal(pooled.shape), True), None, out.shape, 2, 1, "avg")
    assert functional.batch_last(dx)                                        # the gradient keeps dout's layout


@pytest.mark.parametrize("band_bytes", [1, 1000, 4000, 20000])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding", [((5, 3, 9, 7), (4, 3, 2), 2, 1),
                                                            ((4, 2, 10, 10), (3, 5, 5), 1, 0)])
def test_conv_in_bands_equals_naive(rng, monkeypatch, band_bytes, x_shape, w_shape, stride, padding):
    """Small bands (one output position, parts of a row, several rows) give the naive results:
    forward, input gradient folded band by band, and weight gradient."""
    monkeypatch.setattr(functional, "BAND_BYTES", band_bytes)
    monkeypatch.setattr(functional, "FORWARD_BAND_BYTES", band_bytes)
    x = rng.standard_normal(x_shape)
    W = rng.standard_normal((w_shape[0], x_shape[1], *w_shape[1:]))
    b = rng.standard_normal(w_shape[0])
    out, cols = functional.conv2d(x, W, b, stride, padding)
    assert close(out, functional.conv2d_naive(x, W, b, stride, padding))
    assert np.array_equal(cols, functional.unfold(x, w_shape[1:], stride, padding))
    dout = rng.standard_normal(out.shape)
    want = functional.conv2d_backward_naive(dout, x, W, stride, padding)
    for got, expected in zip(functional.conv2d_backward(dout, cols, x.shape, W, stride, padding), want):
        assert close(got, expected)
    # the windows unfolded again from x, band by band (a layer with few output channels)
    for got, expected in zip(functional.conv2d_backward(dout, None, x.shape, W, stride, padding, x=x), want):
        assert close(got, expected)


def test_unfold_into_a_buffer_and_reject_a_wrong_one(rng):
    x = rng.standard_normal((3, 2, 6, 6))
    buffer = np.full((2 * 9, 3 * 16), np.nan)
    cols = functional.unfold(x, 3, out=buffer)
    assert cols is buffer and np.array_equal(buffer, functional.unfold(x, 3))
    with pytest.raises(ValueError, match=r"out must be a C-contiguous array of shape \(18, 48\)"):
        functional.unfold(x, 3, out=np.empty((18, 47)))
    with pytest.raises(ValueError, match="C-contiguous"):
        functional.unfold(x, 3, out=np.empty((48, 18)).T)


def test_workspace_reuses_grows_and_follows_dtype():
    ws = functional.Workspace()
    a = ws.get("cols", (4, 5), np.float32)
    b = ws.get("cols", (2, 3), np.float32)                         # smaller: the same memory
    assert b.shape == (2, 3) and np.shares_memory(a, b)
    c = ws.get("cols", (10, 10), np.float32)                       # larger: a new buffer
    assert c.shape == (10, 10) and not np.shares_memory(a, c)
    d = ws.get("cols", (10, 10), np.float64)                       # other dtype: a new buffer
    assert d.dtype == np.float64 and not np.shares_memory(c, d)
    assert not np.shares_memory(d, ws.get("share", (10, 10), np.float64))   # names are separate
    assert ws.nbytes() == 2 * 100 * 8


@pytest.mark.parametrize("make,x_shape", [(lambda: Conv2d(3, 4, 3, stride=2, padding=1, rng=0, dtype=np.float64),
                                           (3, 9, 7)),
                                          (lambda: Conv2d(6, 16, 5, rng=0, dtype=np.float64), (6, 14, 14)),
                                          (lambda: Conv2d(16, 12, 5, rng=0, dtype=np.float64), (16, 5, 5))])
def test_conv_layer_buffers_survive_changing_batch_sizes(rng, make, x_shape):
    """The layer reuses its column buffers from batch to batch; results must stay exact (== naive)
    whatever the batch sizes, and arrays returned earlier must not change afterwards."""
    layer = make()
    W, b = layer.params["W"], layer.params["b"]
    kept = []
    for n in [7, 2, 9, 1, 7]:
        x = rng.standard_normal((n, *x_shape))
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        ref_out = functional.conv2d_naive(x, W, b, layer.stride, layer.padding)
        ref_dx, ref_dW, ref_db = functional.conv2d_backward_naive(dout, x, W, layer.stride, layer.padding)
        assert close(out, ref_out) and close(dx, ref_dx)
        assert close(layer.grads["W"], ref_dW) and close(layer.grads["b"], ref_db)
        kept.append((out, out.copy(), dx, dx.copy()))
    for out, out_then, dx, dx_then in kept:                        # nothing handed out was overwritten
        assert np.array_equal(out, out_then) and np.array_equal(dx, dx_then)


def test_conv_layer_forward_twice_then_backward_uses_the_last_input(rng):
    layer = Conv2d(2, 3, 3, rng=0, dtype=np.float64)
    x1, x2 = rng.standard_normal((4, 2, 6, 6)), rng.standard_normal((5, 2, 6, 6))
    layer.forward(x1)
    out = layer.forward(x2)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    ref_dx, ref_dW, _ = functional.conv2d_backward_naive(dout, x2, layer.params["W"])
    assert close(dx, ref_dx) and close(layer.grads["W"], ref_dW)


def test_conv_layer_without_input_gradient(rng):
    layer = Conv2d(1, 6, 5, rng=0, dtype=np.float64)
    layer.need_input_grad = False
    x = rng.standard_normal((3, 1, 12, 12))
    dout = rng.standard_normal(layer.forward(x).shape)
    assert layer.backward(dout) is None
    _, ref_dW, ref_db = functional.conv2d_backward_naive(dout, x, layer.params["W"])
    assert close(layer.grads["W"], ref_dW) and close(layer.grads["b"], ref_db)


def test_float32_lenet_matches_float64(rng):
    """The float32 engine computes the same function as float64, to float32 precision."""
    model32, model64 = LeNet5(seed=5), LeNet5(seed=5).astype(np.float64)
    x = rng.standard_normal((9, 1, 32, 32))
    out32, out64 = model32.forward(x.astype(np.float32)), model64.forward(x)
    assert out32.dtype == np.float32 and out32.flags.c_contiguous
    assert np.allclose(out32, out64, rtol=1e-4, atol=1e-5)
    g = rng.standard_normal(out64.shape)
    dx32, dx64 = model32.backward(g.astype(np.float32)), model64.backward(g)
    assert dx32.dtype == np.float32
    assert np.allclose(dx32, dx64, rtol=1e-4, atol=1e-5 * np.abs(dx64).max())


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_pooling_integer_images(mode):
    """uint8 digits pool without overflow or truncation: averages are float64, maxima stay uint8."""
    x = np.array([[[[255, 254, 1, 2], [253, 252, 3, 4]]]], dtype=np.uint8)
    fast, _ = functional.pool2d(x, 2, 2, mode)
    naive = functional.pool2d_naive(x, 2, 2, mode)
    expected = [[[[253.5, 2.5]]]] if mode == "avg" else [[[[255, 4]]]]
    assert np.array_equal(fast, expected) and np.array_equal(naive, expected)
    assert fast.dtype == naive.dtype == (np.float64 if mode == "avg" else np.uint8)


def test_conv2d_backward_needs_windows_or_images(rng):
    x, W = rng.standard_normal((2, 1, 6, 6)), rng.standard_normal((3, 1, 3, 3))
    out, _ = functional.conv2d(x, W, np.zeros(3))
    with pytest.raises(ValueError, match=r"needs the forward pass's windows \(cols\) or its images \(x\)"):
        functional.conv2d_backward(out, None, x.shape, W)
