"""Assignment 1 (chapters 2 and 4): convolution forward and backward, with padding and stride.

Student functions: ``conv_forward(x, W, b, stride, padding) -> out`` and
``conv_backward(dout, x, W, b, stride, padding) -> (dx, dW, db)``; x: (N, C, H, W), W: (F, C, KH, KW),
b: (F,), out and dout: (N, F, OH, OW). Compared with :func:`lenet_core.functional.conv2d` and
:func:`~lenet_core.functional.conv2d_backward` (max abs error <= 1e-8), plus central differences.
"""

import numpy as np

from .. import functional
from .report import Case, Fail, Group, compare, compare_each, gradient_check, unpack

#: the student build: data only (the notebook plots a digit); no convolution anywhere
KEEP = ("data",)
ABSENT = {}
GRADING_ABSENT = {}
PRELUDE = """import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
"""

#: (name, N, C, H, W, F, KH, KW, stride, padding)
CONV_CASES = [
    ("3x3 kernel, stride 1, no padding", 2, 3, 6, 6, 4, 3, 3, 1, 0),
    ("padding 1 keeps the size", 2, 2, 5, 5, 3, 3, 3, 1, 1),
    ("stride 2", 2, 3, 7, 7, 2, 3, 3, 2, 0),
    ("stride 2, padding 1, batch 1, non-square 7x9", 1, 2, 7, 9, 4, 3, 3, 2, 1),
    ("non-square 2x4 kernel on 6x8", 2, 2, 6, 8, 3, 2, 4, 1, 0),
    ("non-square 3x2 kernel, stride 2, padding 2, batch 1, 5x4", 1, 3, 5, 4, 2, 3, 2, 2, 2),
    ("stride 3 leaves the last 2 rows and columns of 8x8 unused", 2, 1, 8, 8, 2, 3, 3, 3, 0),
    ("1x1 kernel", 2, 4, 5, 5, 3, 1, 1, 1, 0),
    ("kernel as large as the input, 5x5 -> 1x1 (LeNet C5)", 2, 4, 5, 5, 6, 5, 5, 1, 0),
    ("LeNet C1: 1 -> 6 channels, 5x5 kernel, 32x32", 2, 1, 32, 32, 6, 5, 5, 1, 0),
]
#: small float64 cases checked against central differences
CONV_GRADCHECK_CASES = [
    ("gradient check: stride 1, no padding, 4x4", 2, 2, 4, 4, 2, 2, 2, 1, 0),
    ("gradient check: stride 2, padding 1, batch 1, 5x6, 3x2 kernel", 1, 2, 5, 6, 2, 3, 2, 2, 1),
]
#: the hidden cases: other shapes, strides and paddings, (seed, N, C, H, W, F, KH, KW, stride, padding)
HIDDEN_FORWARD = [(20261125, 2, 3, 9, 7, 4, 3, 2, 1, 0), (20261125, 2, 3, 9, 7, 4, 3, 2, 2, 1),
                  (20261125, 2, 3, 9, 7, 4, 3, 2, 3, 2)]
HIDDEN_BACKWARD = [(20261126, 2, 2, 8, 6, 3, 3, 2, 1, 1), (20261126, 2, 2, 8, 6, 3, 3, 2, 2, 0)]


def _inputs(rng, N, C, H, W, F, KH, KW):
    return (rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, KH, KW)) / np.sqrt(C * KH * KW),
            rng.standard_normal(F))


def _forward_case(name, rng, N, C, H, W, F, KH, KW, s, p):
    x, w, b = _inputs(rng, N, C, H, W, F, KH, KW)
    expected = functional.conv2d(x, w, b, s, p)[0]
    return Case(name, "conv_forward", (x, w, b, s, p), lambda got: compare("output", got, expected),
                unchanged=((0, "x"), (1, "W"), (2, "b")))


def _backward_case(name, rng, N, C, H, W, F, KH, KW, s, p):
    x, w, b = _inputs(rng, N, C, H, W, F, KH, KW)
    out, cols = functional.conv2d(x, w, b, s, p)
    dout = rng.standard_normal(out.shape)
    expected = functional.conv2d_backward(dout, cols, x.shape, w, s, p)

    def check(got):
        compare_each(("dx", "dW", "db"), unpack(got, ("dx", "dW", "db")), expected)
    return Case(name, "conv_backward", (dout, x, w, b, s, p), check,
                unchanged=((0, "dout"), (1, "x"), (2, "W"), (3, "b")))


def _gradcheck_case(name, rng, N, C, H, W, F, KH, KW, s, p):
    x, w, b = _inputs(rng, N, C, H, W, F, KH, KW)
    R = rng.standard_normal(functional.conv2d(x, w, b, s, p)[0].shape)

    def check(got):
        grads = unpack(got, ("dx", "dW", "db"))
        compare_each(("dx", "dW", "db"), grads, (x, w, b),
                     lambda label, g, t: gradient_check(label, g, t, lambda: functional.conv2d(x, w, b, s, p)[0], R))
    return Case(name, "conv_backward", (R, x, w, b, s, p), check)


def forward_cases():
    return [_forward_case(c[0], np.random.default_rng([0, 1, i]), *c[1:]) for i, c in enumerate(CONV_CASES)]


def backward_cases():
    return ([_backward_case(c[0], np.random.default_rng([0, 2, i]), *c[1:]) for i, c in enumerate(CONV_CASES)]
            + [_gradcheck_case(c[0], np.random.default_rng([0, 3, i]), *c[1:])
               for i, c in enumerate(CONV_GRADCHECK_CASES)])


def hidden_forward_cases():
    return [_forward_case(f"hidden case {i + 1}", np.random.default_rng([c[0], i]), *c[1:])
            for i, c in enumerate(HIDDEN_FORWARD)]


def hidden_backward_cases():
    return [_backward_case(f"hidden case {i + 1}", np.random.default_rng([c[0], i]), *c[1:])
            for i, c in enumerate(HIDDEN_BACKWARD)]


def self_checks() -> dict:
    """The notebook's self-check case, stored with its answers (``self_checks.npz``): stride 2,
    padding 1, a non-square input and kernel."""
    rng = np.random.default_rng([1, 99])
    x, w, b = _inputs(rng, 2, 2, 5, 6, 3, 3, 2)
    out, cols = functional.conv2d(x, w, b, 2, 1)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = functional.conv2d_backward(dout, cols, x.shape, w, 2, 1)
    return {"x": x, "W": w, "b": b, "out": np.ascontiguousarray(out), "dout": dout, "dx": dx, "dW": dw, "db": db}


GROUPS = {
    "check_conv_forward": Group("conv forward", forward_cases),
    "hidden_conv_forward": Group("conv forward, hidden cases", hidden_forward_cases, hidden=True),
    "check_conv_backward": Group("conv backward", backward_cases),
    "hidden_conv_backward": Group("conv backward, hidden cases", hidden_backward_cases, hidden=True),
}
