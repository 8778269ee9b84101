"""Assignment 3 (chapters 4 and 5): a linear layer's backward pass, a numerical gradient, a planted bug.

Student answers: ``linear_backward(dout, x, W, b) -> (dx, dW, db)``; ``numerical_gradient(f, x, h) -> grad``
(central differences of a scalar ``f()`` that reads ``x``); ``tanh_backward(dout, y) -> dx``; the names
``buggy_layer`` and ``wrong_parameters`` (the planted bug of
:func:`lenet_core.gradcheck.lenet_with_planted_bug`).

The student build keeps LeNet-5, its layers and the gradient checks, which the notebook's gradient
check of the planted bug needs; it leaves out :func:`lenet_core.gradcheck.numerical_gradient`,
``Linear.backward`` and ``Tanh.backward`` (the notebook plugs the student's own functions into
the check and the layers, so the bug hunt runs on the student's code). When graded, the answers
also go without the convolution's backward pass, which computes a linear layer's as a 1x1
convolution (the notebook's gradient check of LeNet-5 needs it, no answer does).
"""

import numpy as np

from ..gradcheck import lenet_with_planted_bug, relative_error
from ..losses import SoftmaxCrossEntropy
from .report import Case, Fail, Group, as_array, compare, compare_each, gradient_check, unpack

KEEP = ("data", "gradcheck", "model")
# _central is numerical_gradient's loop and numerical_gauss_newton is built on it: both go too
ABSENT = {"gradcheck": ("numerical_gradient", "_central", "numerical_gauss_newton"),
          "layers": ("Linear.backward", "Tanh.backward")}
GRADING_ABSENT = {"layers": ("Conv2d.backward",), "functional": ("conv2d_backward", "conv2d_backward_naive")}
PRELUDE = """import numpy as np
from lenet_core import gradcheck, layers
from lenet_core.gradcheck import check_model, lenet_with_planted_bug
"""

#: the answer to the planted-bug exercise: the layer, and every parameter whose gradient it corrupts
PLANTED_BUG = ("C3_tanh", ("C1.W", "C1.b", "C3.W", "C3.b"))

#: (name, N, in_features, out_features)
LINEAR_CASES = [("batch 4, 6 -> 3", 4, 6, 3), ("batch 1", 1, 5, 4), ("one output feature", 3, 7, 1),
                ("LeNet F6: 120 -> 84, batch 2", 2, 120, 84)]


def _linear_inputs(rng, N, fin, fout):
    return (rng.standard_normal((N, fout)), rng.standard_normal((N, fin)),
            rng.standard_normal((fout, fin)) / np.sqrt(fin), rng.standard_normal(fout))


def _linear_case(name, dout, x, w, b):
    expected = (dout @ w, dout.T @ x, dout.sum(axis=0))
    return Case(name, "linear_backward", (dout, x, w, b),
                lambda got: compare_each(("dx", "dW", "db"), unpack(got, ("dx", "dW", "db")), expected),
                unchanged=((0, "dout"), (1, "x"), (2, "W"), (3, "b")))


def linear_cases():
    cases = [_linear_case(c[0], *_linear_inputs(np.random.default_rng([0, 9, i]), *c[1:]))
             for i, c in enumerate(LINEAR_CASES)]
    R, x, w, b = _linear_inputs(np.random.default_rng([0, 10]), 3, 4, 2)

    def gradcheck(got):
        compare_each(("dx", "dW", "db"), unpack(got, ("dx", "dW", "db")), (x, w, b),
                     lambda label, g, t: gradient_check(label, g, t, lambda: x @ w.T + b, R))
    return cases + [Case("gradient check: batch 3, 4 -> 2", "linear_backward", (R, x, w, b), gradcheck)]


def hidden_linear_cases():
    rng = np.random.default_rng(20261129)
    x, w, b = rng.standard_normal((6, 9)), rng.standard_normal((5, 9)), rng.standard_normal(5)
    return [_linear_case("hidden case", rng.standard_normal((6, 5)), x, w, b)]


#: (name, f as an expression in x, its gradient, shape)
GRADIENT_CASES = [
    ("sum of squares", "float(np.sum(x ** 2))", lambda x: 2 * x, (3, 4)),
    ("sin(x) * x, a matrix", "float(np.sum(np.sin(x) * x))", lambda x: np.cos(x) * x + np.sin(x), (2, 5)),
    ("a 4-d tensor, exp", "float(np.exp(0.3 * x).sum())", lambda x: 0.3 * np.exp(0.3 * x), (2, 1, 3, 3)),
    ("tanh(x) weighted by position", "float(np.sum(np.tanh(x) * np.arange(x.size).reshape(x.shape)))",
     lambda x: (1 - np.tanh(x) ** 2) * np.arange(x.size).reshape(x.shape), (2, 4)),
]


def gradient_cases():
    cases = []
    for i, (name, expr, grad, shape) in enumerate(GRADIENT_CASES):
        x = np.random.default_rng([14, i]).standard_normal(shape)

        def check(got, x=x, grad=grad):
            result, (x_after,) = got
            if not np.array_equal(x_after, x):
                raise Fail("x is not restored after the perturbations: put each entry back")
            got = as_array("gradient", result)
            expected = grad(x)
            if got.shape != expected.shape:
                raise Fail(f"expected gradient shape {expected.shape}, got {got.shape}")
            err = relative_error(got.astype(np.float64), expected)
            if not err < 1e-7:
                raise Fail(f"gradient relative error {err:.1e} (tolerance 1e-07): central differences "
                           f"(f(x+h) - f(x-h)) / 2h are accurate to ~h^2")
        cases.append(Case(name, "numerical_gradient", ({"__lambda__": expr, "of": 1}, x, 1e-5), check,
                          then="and_args"))
    return cases


def planted_bug_cases():
    right_layer, right_params = PLANTED_BUG

    def named(layer):
        if not isinstance(layer, str):
            raise Fail(f"expected the layer's name as a string, e.g. 'F6', got {type(layer).__name__}")
        if layer != right_layer:
            raise Fail(f"{layer!r} is not the layer whose backward pass is wrong; a gradient check of "
                       f"every parameter shows where the errors start")

    def params(given):
        if not isinstance(given, (list, tuple)) or not all(isinstance(p, str) for p in given):
            raise Fail("expected a list of parameter names such as ['C1.W', 'C1.b']")
        missing, extra = set(right_params) - set(given), set(given) - set(right_params)
        if missing or extra:
            raise Fail(f"not the parameters with wrong gradients: {len(missing)} missing, {len(extra)} "
                       f"that are right" + (f" (e.g. {sorted(extra)[0]!r})" if extra else ""))
    return [Case("the layer with the bug", "=buggy_layer", (), named),
            Case("the parameters whose gradients are wrong", "=wrong_parameters", (), params)]


TANH_CASES = [("batch 4, 10 features", (4, 10)), ("images (2, 3, 5, 5)", (2, 3, 5, 5)),
              ("saturated: |x| up to 6", (3, 7))]


def _tanh_case(name, dout, y):
    return Case(name, "tanh_backward", (dout, y), lambda got: compare("dx", got, dout * (1 - y ** 2)),
                unchanged=((0, "dout"), (1, "y")))


def _c3_activations():
    """LeNet-5's C3_tanh output and the gradient arriving there, for two inputs (float64)."""
    model = lenet_with_planted_bug()
    rng = np.random.default_rng([0, 12])
    x, labels = rng.standard_normal((2, 1, 32, 32)), np.array([3, 7])
    loss = SoftmaxCrossEntropy()
    y = None
    out = x
    for name, layer in model.layers.items():
        out = layer.forward(out)
        if name == "C3_tanh":
            y = out.copy()
    loss.forward(out, labels)
    dout = loss.backward()
    for name, layer in reversed(list(model.layers.items())):
        if name == "C3_tanh":
            return dout, y
        dout = layer.backward(dout)
    raise AssertionError("LeNet-5 has no C3_tanh")


def tanh_cases():
    cases = []
    for i, (name, shape) in enumerate(TANH_CASES):
        rng = np.random.default_rng([0, 11, i])
        x = rng.uniform(-6, 6, shape) if "saturated" in name else rng.standard_normal(shape)
        cases.append(_tanh_case(name, rng.standard_normal(shape), np.tanh(x)))
    dout, y = _c3_activations()
    cases.append(_tanh_case("inside LeNet-5: the gradient at C3 for two digits", dout, y))
    return cases


def hidden_tanh_cases():
    rng = np.random.default_rng(20261130)
    y = np.tanh(rng.standard_normal((3, 4, 5)) * 2)
    return [_tanh_case("hidden case", rng.standard_normal(y.shape), y)]


def self_checks() -> dict:
    """The notebook's self-check cases, stored with their answers (``self_checks.npz``)."""
    rng = np.random.default_rng([3, 99])
    dout, x, w, b = _linear_inputs(rng, 3, 5, 4)
    y, tanh_dout = np.tanh(rng.standard_normal((2, 3, 4))), rng.standard_normal((2, 3, 4))
    return {"dout": dout, "x": x, "W": w, "b": b, "dx": dout @ w, "dW": dout.T @ x, "db": dout.sum(axis=0),
            "tanh_dout": tanh_dout, "tanh_y": y, "tanh_dx": tanh_dout * (1 - y ** 2)}


GROUPS = {
    "check_linear_backward": Group("linear backward", linear_cases),
    "hidden_linear_backward": Group("linear backward, hidden cases", hidden_linear_cases, hidden=True),
    "check_numerical_gradient": Group("numerical gradient", gradient_cases),
    "check_planted_bug": Group("the planted bug", planted_bug_cases),
    "check_tanh_backward": Group("tanh backward", tanh_cases),
    "hidden_tanh_backward": Group("tanh backward, hidden cases", hidden_tanh_cases, hidden=True),
}
