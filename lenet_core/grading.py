"""Autograder for the assignments: run a student's function on fixed cases, compare with lenet_core.

Each ``check_*`` function calls the student's function on seeded random inputs and on edge cases
(padding, stride 2, batch 1, non-square inputs and kernels, overlapping pooling windows, logits as
large as 1e4, ...), compares every result with the reference implementation in :mod:`lenet_core`,
prints a :class:`GradeReport` and returns it. One point per case.

Usage in an assignment's check cell::

    from lenet_core.grading import check_conv_forward

    def conv_forward(x, W, b, stride, padding):
        raise NotImplementedError("students write this")

    report = check_conv_forward(conv_forward)   # prints the feedback, case by case
    report.score, report.max_score, report.passed  # -> (0, 10, False) for the stub

which prints (a report in which every case failed the same way says it once)::

    conv forward: 0/10
      FAIL  every case, e.g. case '3x3 kernel, stride 1, no padding': your function raised NotImplementedError: students write this (in conv_forward, line 4)

and, once ``conv_forward`` is right, ``conv forward: 10/10, all cases passed``. Feedback names the
case and what went wrong, e.g. ``expected output shape (1, 4, 4, 5), got (1, 4, 5, 4)`` or
``dx max abs error 3.1e-01 (tolerance 1e-08); worst at index (0, 1, 2, 3): expected 0.4521, got 0.1420``.

Printed reports are deterministic (every input comes from a seeded generator, and passing cases print
no round-off numbers), so a check cell can be tagged ``# NBVAL_CHECK_OUTPUT``. The report is printed
by the call; as the last line of a cell its value then shows only a one-line summary, not the whole
report again. Pass ``verbose=False`` to print nothing.

Signatures expected from the student (``stride``, ``padding`` and ``kernel_size`` are ints):

========================================  ====================================================
checker                                   student function
========================================  ====================================================
:func:`check_conv_forward`                ``fn(x, W, b, stride, padding) -> out``
:func:`check_conv_backward`               ``fn(dout, x, W, b, stride, padding) -> (dx, dW, db)``
:func:`check_pool_forward` (mode)         ``fn(x, kernel_size, stride) -> out``
:func:`check_pool_backward` (mode)        ``fn(dout, x, kernel_size, stride) -> dx``
:func:`check_softmax_cross_entropy`       ``fn(logits, labels) -> (loss, dlogits)``
:func:`check_linear_backward`             ``fn(dout, x, W, b) -> (dx, dW, db)``
========================================  ====================================================

For the last assignment, :func:`check_trained_accuracy` evaluates a trained model on the MNIST
test set and :func:`check_completeness` checks that attributions (e.g. Integrated Gradients) add up
to ``F(input) - F(baseline)``.

A student function that raises scores 0 for that case and the exception is quoted in the feedback;
the grader itself does not crash. NumPy warnings raised by the student's code (overflow in ``exp``,
...) are captured and quoted in the feedback of the case instead of reaching stderr.
"""

from __future__ import annotations

import os
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from . import functional as Fn
from .gradcheck import numerical_gradient, relative_error
from .losses import SoftmaxCrossEntropy

__all__ = [
    "CaseResult",
    "GradeReport",
    "points",
    "check_conv_forward",
    "check_conv_backward",
    "check_pool_forward",
    "check_pool_backward",
    "check_softmax_cross_entropy",
    "check_linear_backward",
    "check_trained_accuracy",
    "check_completeness",
    "check_integrated_gradients",
    "lenet_with_planted_bug",
    "check_planted_bug",
    "check_tanh_backward",
    "check_numerical_gradient",
    "check_pick_by_validation",
    "check_train_recipe",
    "check_copy_to_torch",
    "check_copy_from_torch",
    "check_torch_input_gradient",
    "check_completeness_gap",
    "check_baseline_comparison",
]

#: float64 inputs of unit scale: a correct implementation is off by ~1e-15, a wrong one by ~1e-1
ATOL = 1e-8
#: relative error against central differences (the scale used by :mod:`lenet_core.gradcheck`)
GRADCHECK_TOL = 1e-6


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------

class CaseResult(NamedTuple):
    """One graded case: ``(name, passed, message)``; the message says what was wrong (or ``"ok"``)."""
    name: str
    passed: bool
    message: str


@dataclass
class GradeReport:
    """The result of one check: a title and one :class:`CaseResult` per case, one point each.

    ``str(report)`` is the feedback: a score line, then one line per case. ``report.passed`` is true
    when every case passed.
    """
    title: str
    cases: list[CaseResult] = field(default_factory=list)
    _printed: bool = field(default=False, repr=False, compare=False)

    @property
    def score(self) -> int:
        return sum(case.passed for case in self.cases)

    @property
    def max_score(self) -> int:
        return len(self.cases)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and self.score == self.max_score

    @property
    def failures(self) -> list[CaseResult]:
        return [case for case in self.cases if not case.passed]

    def add(self, name: str, passed: bool, message: str) -> None:
        self.cases.append(CaseResult(name, bool(passed), message))

    def summary(self) -> str:
        verdict = ", all cases passed" if self.passed else ""
        return f"{self.title}: {self.score}/{self.max_score}{verdict}"

    def __str__(self) -> str:
        lines = [self.summary()]
        messages = {case.message for case in self.cases}
        if len(self.cases) > 1 and self.score == 0 and len(messages) == 1:
            return f"{lines[0]}\n  FAIL  every case, e.g. case '{self.cases[0].name}': {self.cases[0].message}"
        for case in self.cases:
            status = "ok  " if case.passed else "FAIL"
            detail = "" if case.passed and case.message == "ok" else f": {case.message}"
            lines.append(f"  {status}  case '{case.name}'{detail}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"GradeReport({self.title!r}, score={self.score}/{self.max_score}, passed={self.passed})"

    def _repr_pretty_(self, printer, cycle):
        # The check already printed the whole report: as a cell's value, show one line, not a copy.
        printer.text(repr(self) if self._printed or cycle else str(self))

    def show(self) -> "GradeReport":
        print(self, flush=True)
        self._printed = True
        return self


def points(report: GradeReport) -> int:
    """The points a check earns in an nbgrader test cell: one per passed case.

    A test cell ends with ``grading.points(grading.check_...(student_function))``; nbgrader reads the
    number as the cell's partial credit (its maximum is the cell's fixed ``points`` metadata). The
    points are counted here from the case records, not read from ``report.score``: the student's
    code runs in the same kernel as the tests, so a patched ``GradeReport.score`` must not count,
    and an object that is not this module's :class:`GradeReport` (one the student built) raises
    ``TypeError``, which scores the cell zero.
    """
    if type(report) is not GradeReport:
        raise TypeError(f"expected the GradeReport of a lenet_core.grading check, got {type(report).__name__}")
    return sum(1 for case in report.cases if type(case) is CaseResult and case.passed is True)


# ----------------------------------------------------------------------------------------------
# Running one case
# ----------------------------------------------------------------------------------------------

class _Fail(Exception):
    """Ends a case with a message for the student."""


class _Case:
    """Runs the student's function for one case: copies the inputs, catches exceptions and warnings."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.warnings: list[str] = []

    def call(self, *args):
        inputs = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        with warnings.catch_warnings(record=True) as caught, \
                np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
            warnings.simplefilter("always")
            try:
                result = self.fn(*inputs)
            except Exception as e:  # the student's bug, reported rather than raised
                raise _Fail(f"your function raised {_describe_exception(e)}") from None
            finally:
                for w in caught:
                    text = f"{w.category.__name__}: {w.message}"
                    if text not in self.warnings:
                        self.warnings.append(text)
        return result, inputs


def _describe_exception(e: Exception) -> str:
    text = f"{type(e).__name__}: {str(e).strip()}" if str(e).strip() else type(e).__name__
    here = os.path.abspath(__file__)
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if "numpy" not in f.filename.replace("\\", "/").split("/") and os.path.abspath(f.filename) != here]
    if frames:
        text += f" (in {frames[-1].name}, line {frames[-1].lineno})"
    return text


def _check_unchanged(names, originals, passed_in):
    for name, original, arg in zip(names, originals, passed_in):
        if isinstance(original, np.ndarray) and not np.array_equal(original, arg, equal_nan=True):
            raise _Fail(f"your function changed its input {name} in place; work on a copy "
                        f"(or write to a new array) so the caller's {name} stays intact")


def _run(report: GradeReport, name: str, fn: Callable, body: Callable) -> None:
    """``body(case)`` raises :class:`_Fail` with a message, or returns an optional note."""
    case = _Case(fn)
    try:
        note = body(case)
    except _Fail as failure:
        message = str(failure)
        if case.warnings:
            message += "; NumPy warned: " + "; ".join(case.warnings)
        report.add(name, False, message)
    else:
        report.add(name, True, note or "ok")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _as_array(label: str, got) -> np.ndarray:
    if got is None:
        raise _Fail(f"{label} is None: did you forget a return statement?")
    if isinstance(got, tuple):
        raise _Fail(f"expected {label} as one array, got a tuple of {len(got)} items; return {label} only")
    try:
        arr = np.asarray(got)
    except Exception:
        arr = None
    if arr is None or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise _Fail(f"expected {label} as a NumPy array of numbers, got {type(got).__name__}")
    return arr


def _compare(label: str, got, expected: np.ndarray, atol: float = ATOL, rtol: float = 0.0) -> None:
    """Shape, finiteness, then ``max|got - expected| <= atol + rtol * max|expected|``."""
    got = _as_array(label, got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise _Fail(f"expected {label} shape {expected.shape}, got {got.shape}")
    bad = ~np.isfinite(got)
    if bad.any():
        kinds = "nan" if np.isnan(got).any() else "inf"
        if got.ndim == 0:
            raise _Fail(f"{label} is {kinds}")
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise _Fail(f"{label} has {int(bad.sum())} non-finite value(s) ({kinds}), the first at index {where}")
    if got.size == 0:
        return
    diff = np.abs(got.astype(np.float64) - expected)
    err = float(diff.max())
    allowed = atol + rtol * float(np.abs(expected).max())
    if err > allowed:
        where = np.unravel_index(int(diff.argmax()), diff.shape)
        idx = tuple(int(i) for i in where)
        at = f"; worst at index {idx}: expected {_fmt(expected[where])}, got {_fmt(got[where])}" if idx else \
            f": expected {_fmt(expected[()])}, got {_fmt(got[()])}"
        dtype_hint = ""
        if got.dtype != expected.dtype and np.issubdtype(got.dtype, np.floating) and got.dtype.itemsize < 8:
            dtype_hint = f" (your {label} has dtype {got.dtype}; compute in the inputs' dtype, float64)"
        raise _Fail(f"{label} max abs error {err:.1e} (tolerance {allowed:.2g}){at}{dtype_hint}")


def _check_each(check, labels, got, references) -> None:
    """``check(label, got, reference)`` for several results at once, reporting every one that fails."""
    problems = []
    for label, g, r in zip(labels, got, references):
        try:
            check(label, g, r)
        except _Fail as failure:
            problems.append(str(failure))
    if problems:
        raise _Fail("; ".join(problems))


def _unpack(result, names: tuple[str, ...]):
    what = "(" + ", ".join(names) + ")"
    if result is None:
        raise _Fail(f"your function returned None: did you forget `return {', '.join(names)}`?")
    if not isinstance(result, (tuple, list)):
        raise _Fail(f"expected a tuple {what}, got {type(result).__name__}")
    if len(result) != len(names):
        raise _Fail(f"expected a tuple of {len(names)} items {what}, got {len(result)} items")
    return result


def _gradcheck(label: str, analytic, tensor: np.ndarray, f: Callable) -> None:
    analytic = _as_array(label, analytic)
    if analytic.shape != tensor.shape:
        raise _Fail(f"expected {label} shape {tensor.shape}, got {analytic.shape}")
    if not np.all(np.isfinite(analytic)):
        raise _Fail(f"{label} has non-finite values (nan or inf)")
    err = relative_error(analytic.astype(np.float64), numerical_gradient(f, tensor))
    if not err < GRADCHECK_TOL:
        raise _Fail(f"{label} relative error against the numerical gradient {err:.1e} "
                    f"(tolerance {GRADCHECK_TOL:.0e})")


def _finish(report: GradeReport, verbose: bool) -> GradeReport:
    return report.show() if verbose else report


# ----------------------------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------------------------

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

#: small float64 cases for the numerical gradient check (name, N, C, H, W, F, KH, KW, stride, padding)
CONV_GRADCHECK_CASES = [
    ("gradient check: stride 1, no padding, 4x4", 2, 2, 4, 4, 2, 2, 2, 1, 0),
    ("gradient check: stride 2, padding 1, batch 1, 5x6, 3x2 kernel", 1, 2, 5, 6, 2, 3, 2, 2, 1),
]


def _conv_inputs(rng, N, C, H, W, F, KH, KW):
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, KH, KW)) / np.sqrt(C * KH * KW)
    b = rng.standard_normal(F)
    return x, w, b


def _conv_ref(x, w, b, stride, padding):
    return Fn.conv2d(x, w, b, stride, padding)[0]


def check_conv_forward(fn: Callable, *, seed: int = 0, verbose: bool = True) -> GradeReport:
    """Grade ``fn(x, W, b, stride, padding) -> out`` against :func:`lenet_core.functional.conv2d`.

    x: (N, C, H, W), W: (F, C, KH, KW), b: (F,), stride and padding ints -> out: (N, F, OH, OW).
    Cases (:data:`CONV_CASES`): padding, stride 2 and 3, batch 1, non-square inputs and kernels, 1x1
    and full-size kernels, LeNet's C1. Checks the shape, then the values (max abs error <= 1e-8), and
    that the inputs were not changed in place.
    """
    report = GradeReport("conv forward")
    for i, (name, N, C, H, W, F, KH, KW, s, p) in enumerate(CONV_CASES):
        def body(case, N=N, C=C, H=H, W=W, F=F, KH=KH, KW=KW, s=s, p=p, i=i):
            x, w, b = _conv_inputs(np.random.default_rng([seed, 1, i]), N, C, H, W, F, KH, KW)
            out, passed_in = case.call(x, w, b, s, p)
            _compare("output", out, _conv_ref(x, w, b, s, p))
            _check_unchanged(("x", "W", "b"), (x, w, b), passed_in)
        _run(report, name, fn, body)
    return _finish(report, verbose)


def check_conv_backward(fn: Callable, *, seed: int = 0, verbose: bool = True) -> GradeReport:
    """Grade ``fn(dout, x, W, b, stride, padding) -> (dx, dW, db)`` against :func:`~lenet_core.functional.conv2d_backward`.

    The same cases as :func:`check_conv_forward` with a random upstream gradient ``dout``; each of
    dx, dW, db must match (max abs error <= 1e-8). Two more cases (:data:`CONV_GRADCHECK_CASES`)
    compare them with central differences of the reference convolution in float64
    (:func:`lenet_core.gradcheck.numerical_gradient`, relative error < 1e-6).
    """
    report = GradeReport("conv backward")
    for i, (name, N, C, H, W, F, KH, KW, s, p) in enumerate(CONV_CASES):
        def body(case, N=N, C=C, H=H, W=W, F=F, KH=KH, KW=KW, s=s, p=p, i=i):
            rng = np.random.default_rng([seed, 2, i])
            x, w, b = _conv_inputs(rng, N, C, H, W, F, KH, KW)
            out, cols = Fn.conv2d(x, w, b, s, p)
            dout = rng.standard_normal(out.shape)
            expected = Fn.conv2d_backward(dout, cols, x.shape, w, s, p)
            result, passed_in = case.call(dout, x, w, b, s, p)
            grads = _unpack(result, ("dx", "dW", "db"))
            _check_each(_compare, ("dx", "dW", "db"), grads, expected)
            _check_unchanged(("dout", "x", "W", "b"), (dout, x, w, b), passed_in)
        _run(report, name, fn, body)

    for i, (name, N, C, H, W, F, KH, KW, s, p) in enumerate(CONV_GRADCHECK_CASES):
        def body(case, N=N, C=C, H=H, W=W, F=F, KH=KH, KW=KW, s=s, p=p, i=i):
            rng = np.random.default_rng([seed, 3, i])
            x, w, b = _conv_inputs(rng, N, C, H, W, F, KH, KW)
            R = rng.standard_normal(_conv_ref(x, w, b, s, p).shape)
            result, _ = case.call(R, x, w, b, s, p)
            grads = _unpack(result, ("dx", "dW", "db"))

            def f():  # sum(conv(x, W, b) * R): its gradient is the backward pass of dout = R
                return float(np.sum(_conv_ref(x, w, b, s, p) * R))

            _check_each(lambda label, got, tensor: _gradcheck(label, got, tensor, f),
                        ("dx", "dW", "db"), grads, (x, w, b))
        _run(report, name, fn, body)
    return _finish(report, verbose)


# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------

#: (name, N, C, H, W, kernel_size, stride)
POOL_CASES = [
    ("2x2, stride 2, 8x8 (LeNet S2)", 2, 3, 8, 8, 2, 2),
    ("batch 1, non-square 6x10", 1, 2, 6, 10, 2, 2),
    ("odd size 7x7: the last row and column are in no window", 2, 2, 7, 7, 2, 2),
    ("overlapping 3x3 windows, stride 2, non-square 7x9", 2, 2, 7, 9, 3, 2),
    ("overlapping 2x2 windows, stride 1, batch 1, 5x6", 1, 3, 5, 6, 2, 1),
    ("stride 3 larger than the 2x2 kernel, 8x8", 2, 1, 8, 8, 2, 3),
    ("one 4x4 window covers the whole input", 2, 3, 4, 4, 4, 4),
    ("all inputs negative", 2, 2, 6, 6, 2, 2),
    ("LeNet S2 size: 6 channels, 28x28 -> 14x14", 2, 6, 28, 28, 2, 2),
]

POOL_GRADCHECK_CASES = [
    ("gradient check: overlapping 3x3 windows, stride 2, 7x7", 1, 2, 7, 7, 3, 2),
]


def _pool_input(rng, shape, negative=False):
    """Distinct values in [-2, 2], no two closer than 3.6 / x.size: no max-pool window holds a tie."""
    n = int(np.prod(shape))
    x = ((rng.permutation(n) + rng.uniform(0, 0.1, n)) / n * 4 - 2).reshape(shape)
    return x - 3 if negative else x


def _check_mode(mode):
    if mode not in ("avg", "max"):
        raise ValueError(f"mode must be 'avg' or 'max', got {mode!r}")


def check_pool_forward(fn: Callable, mode: str = "max", *, seed: int = 0, verbose: bool = True) -> GradeReport:
    """Grade ``fn(x, kernel_size, stride) -> out`` against :func:`lenet_core.functional.pool2d`.

    ``mode`` is ``"avg"`` or ``"max"``. Cases (:data:`POOL_CASES`): non-square inputs, batch 1,
    sizes that leave rows unused, overlapping windows (stride < kernel), stride > kernel, one window
    over the whole input, all-negative inputs (a max that starts from 0 fails). Inputs hold no ties.
    """
    _check_mode(mode)
    report = GradeReport(f"{mode} pool forward")
    for i, (name, N, C, H, W, k, s) in enumerate(POOL_CASES):
        def body(case, N=N, C=C, H=H, W=W, k=k, s=s, i=i, name=name):
            x = _pool_input(np.random.default_rng([seed, 4, i]), (N, C, H, W), "negative" in name)
            out, passed_in = case.call(x, k, s)
            _compare("output", out, Fn.pool2d(x, k, s, mode)[0])
            _check_unchanged(("x",), (x,), passed_in)
        _run(report, name, fn, body)
    return _finish(report, verbose)


def check_pool_backward(fn: Callable, mode: str = "max", *, seed: int = 0, verbose: bool = True) -> GradeReport:
    """Grade ``fn(dout, x, kernel_size, stride) -> dx`` against :func:`lenet_core.functional.pool2d_backward`.

    The cases of :func:`check_pool_forward` with a random ``dout``; where windows overlap, a pixel's
    gradient is the sum over every window it belongs to. One more case compares dx with central
    differences of the reference pooling in float64.
    """
    _check_mode(mode)
    report = GradeReport(f"{mode} pool backward")
    for i, (name, N, C, H, W, k, s) in enumerate(POOL_CASES):
        def body(case, N=N, C=C, H=H, W=W, k=k, s=s, i=i, name=name):
            rng = np.random.default_rng([seed, 5, i])
            x = _pool_input(rng, (N, C, H, W), "negative" in name)
            out, cache = Fn.pool2d(x, k, s, mode)
            dout = rng.standard_normal(out.shape)
            dx, passed_in = case.call(dout, x, k, s)
            _compare("dx", dx, Fn.pool2d_backward(dout, cache, x.shape, k, s, mode))
            _check_unchanged(("dout", "x"), (dout, x), passed_in)
        _run(report, name, fn, body)

    for i, (name, N, C, H, W, k, s) in enumerate(POOL_GRADCHECK_CASES):
        def body(case, N=N, C=C, H=H, W=W, k=k, s=s, i=i):
            rng = np.random.default_rng([seed, 6, i])
            x = _pool_input(rng, (N, C, H, W))
            R = rng.standard_normal(Fn.pool2d(x, k, s, mode)[0].shape)
            dx, _ = case.call(R, x, k, s)
            _gradcheck("dx", dx, x, lambda: float(np.sum(Fn.pool2d(x, k, s, mode)[0] * R)))
        _run(report, name, fn, body)
    return _finish(report, verbose)


# ----------------------------------------------------------------------------------------------
# Softmax cross-entropy
# ----------------------------------------------------------------------------------------------

def _softmax_cases(rng):
    """(name, logits, labels): moderate, batch 1, other class counts, and logits as large as 1e4."""
    def labels(n, k):
        return rng.integers(0, k, n)
    confident = np.zeros((3, 10))
    confident[np.arange(3), [3, 7, 1]] = 1e4
    wrong = np.zeros((2, 10))
    wrong[0, 4], wrong[1, 9] = 1e4, -1e4
    return [
        ("batch 5, 10 classes", rng.standard_normal((5, 10)) * 2, labels(5, 10)),
        ("batch 1", rng.standard_normal((1, 10)) * 2, labels(1, 10)),
        ("batch 7, 3 classes", rng.standard_normal((7, 3)), labels(7, 3)),
        ("logits near +1e4, batch 4", 1e4 + rng.standard_normal((4, 10)), labels(4, 10)),
        ("logits between -1e4 and 1e4, batch 6", rng.uniform(-1e4, 1e4, (6, 10)), labels(6, 10)),
        ("logits near -1e4, batch 3", -1e4 + rng.standard_normal((3, 10)), labels(3, 10)),
        ("confident and right: logit 1e4 on the label, loss 0, batch 3", confident, np.array([3, 7, 1])),
        ("confident and wrong: logits +-1e4 off the label, batch 2", wrong, np.array([0, 0])),
    ]


_SOFTMAX_HINT = ("; hint: exp overflows beyond 709, so subtract each row's max logit before exponentiating, "
                 "and compute log(softmax) as shifted - log(sum(exp(shifted))), never as the log of a "
                 "probability that may have underflowed to 0")


def check_softmax_cross_entropy(fn: Callable, *, seed: int = 0, verbose: bool = True) -> GradeReport:
    """Grade ``fn(logits, labels) -> (loss, dlogits)`` against :class:`lenet_core.losses.SoftmaxCrossEntropy`.

    logits: (N, K) float64, labels: (N,) int -> loss: the mean over the batch (a scalar),
    dlogits: (N, K) = (softmax(logits) - one_hot(labels)) / N. Cases include batch 1, 3 classes, and
    logits as large as 1e4 in either sign, where both results must be finite and exact (loss within
    1e-10 relative, dlogits within 1e-10). A last case compares dlogits with central differences of
    the student's own loss.
    """
    report = GradeReport("softmax cross-entropy")
    cases = _softmax_cases(np.random.default_rng([seed, 7]))
    for name, logits, labels in cases:
        def body(case, logits=logits, labels=labels):
            ref = SoftmaxCrossEntropy()
            loss_ref = ref.forward(logits, labels)
            dlogits_ref = ref.backward()
            result, passed_in = case.call(logits, labels)
            loss, dlogits = _unpack(result, ("loss", "dlogits"))
            loss = _as_array("loss", loss)
            if loss.size != 1 or loss.ndim > 1:
                raise _Fail(f"loss must be one number (the mean over the batch), got an array of shape {loss.shape}")
            problems = []
            for label, got, exp, atol, rtol in (("loss", loss.reshape(()), np.float64(loss_ref), 1e-10, 1e-10),
                                                ("dlogits", dlogits, dlogits_ref, 1e-10, 0.0)):
                try:
                    _compare(label, got, exp, atol, rtol)
                except _Fail as failure:
                    problems.append(str(failure))
            if problems:
                nonfinite = any(" is nan" in p or " is inf" in p or "non-finite" in p for p in problems)
                raise _Fail("; ".join(problems) + (_SOFTMAX_HINT if nonfinite else ""))
            _check_unchanged(("logits", "labels"), (logits, labels), passed_in)
        _run(report, name, fn, body)

    def gradcheck_body(case):
        rng = np.random.default_rng([seed, 8])
        logits, labels = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
        result, _ = case.call(logits, labels)
        _, dlogits = _unpack(result, ("loss", "dlogits"))

        def f():
            out = _unpack(case.call(logits, labels)[0], ("loss", "dlogits"))
            return float(np.asarray(out[0]).reshape(-1)[0])
        _gradcheck("dlogits", dlogits, logits, f)

    _run(report, "gradient check: dlogits against your own loss, batch 4, 5 classes", fn, gradcheck_body)
    return _finish(report, verbose)


# ----------------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------------

#: (name, N, in_features, out_features)
LINEAR_CASES = [
    ("batch 4, 6 -> 3", 4, 6, 3),
    ("batch 1", 1, 5, 4),
    ("one output feature", 3, 7, 1),
    ("LeNet F6: 120 -> 84, batch 2", 2, 120, 84),
]


def check_linear_backward(fn: Callable, *, seed: int = 0, verbose: bool = True) -> GradeReport:
    """Grade ``fn(dout, x, W, b) -> (dx, dW, db)`` for ``out = x @ W.T + b`` (as :class:`lenet_core.layers.Linear`).

    x: (N, in), W: (out, in), b: (out,), dout: (N, out). Expected: ``dx = dout @ W``,
    ``dW = dout.T @ x``, ``db = dout.sum(0)``; plus one case against central differences.
    """
    report = GradeReport("linear backward")

    def inputs(rng, N, fin, fout):
        return (rng.standard_normal((N, fout)), rng.standard_normal((N, fin)),
                rng.standard_normal((fout, fin)) / np.sqrt(fin), rng.standard_normal(fout))

    for i, (name, N, fin, fout) in enumerate(LINEAR_CASES):
        def body(case, N=N, fin=fin, fout=fout, i=i):
            dout, x, w, b = inputs(np.random.default_rng([seed, 9, i]), N, fin, fout)
            result, passed_in = case.call(dout, x, w, b)
            grads = _unpack(result, ("dx", "dW", "db"))
            _check_each(_compare, ("dx", "dW", "db"), grads, (dout @ w, dout.T @ x, dout.sum(axis=0)))
            _check_unchanged(("dout", "x", "W", "b"), (dout, x, w, b), passed_in)
        _run(report, name, fn, body)

    def gradcheck_body(case):
        R, x, w, b = inputs(np.random.default_rng([seed, 10]), 3, 4, 2)
        grads = _unpack(case.call(R, x, w, b)[0], ("dx", "dW", "db"))

        def f():
            return float(np.sum((x @ w.T + b) * R))
        _check_each(lambda label, got, tensor: _gradcheck(label, got, tensor, f),
                    ("dx", "dW", "db"), grads, (x, w, b))

    _run(report, "gradient check: batch 3, 4 -> 2", fn, gradcheck_body)
    return _finish(report, verbose)


# ----------------------------------------------------------------------------------------------
# Assignment 3: a trained model and its explanations
# ----------------------------------------------------------------------------------------------

def check_trained_accuracy(model, threshold: float = 0.98, *, x=None, y=None, root=None,
                           batch_size: int = 1000, verbose: bool = True) -> GradeReport:
    """One point if ``model``'s accuracy on the MNIST test set is at least ``threshold``.

    Uses :func:`lenet_core.train.evaluate`. Without ``x`` and ``y``, the 10,000 test images come from
    :func:`lenet_core.data.load_mnist` (``root`` as there) through :func:`lenet_core.data.prepare`.
    """
    from .train import evaluate

    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold is a fraction between 0 and 1, got {threshold}")
    if (x is None) != (y is None):
        raise ValueError("pass both x and y, or neither (then the MNIST test set is used)")
    if x is None:
        from .data import load_mnist, prepare
        mnist = load_mnist(root)
        x, y = prepare(mnist.x_test), mnist.y_test
    report = GradeReport("trained model")
    name = f"test accuracy on {len(y):,} MNIST test images >= {threshold:.2%}"

    def body(case):
        with warnings.catch_warnings(record=True), np.errstate(all="ignore"):
            warnings.simplefilter("always")
            try:
                loss, acc = evaluate(model, x, y, batch_size=batch_size)
            except Exception as e:
                raise _Fail(f"evaluating the model raised {_describe_exception(e)}") from None
        if not np.isfinite(loss):
            raise _Fail(f"the test loss is {loss}: the weights hold nan or inf (diverged training?)")
        if acc < threshold:
            raise _Fail(f"accuracy {acc:.2%} (test loss {loss:.4f}) is below {threshold:.2%}: "
                        f"train longer, or check the learning rate")
        return f"accuracy {acc:.2%} (test loss {loss:.4f})"

    _run(report, name, None, body)
    return _finish(report, verbose)


def check_completeness(attributions, inputs, baseline, f_inputs, f_baseline, *, rtol: float = 0.05,
                       atol: float = 1e-4, names=None, zero_where_equal: bool = True,
                       verbose: bool = True) -> GradeReport:
    """Check attributions for completeness: ``sum(attributions) == F(input) - F(baseline)``, per example.

    attributions and inputs: ``(N, ...)`` with ``f_inputs`` and ``f_baseline`` of shape ``(N,)`` (or
    scalars for one example of any shape); ``baseline`` broadcasts against ``inputs``. ``F`` is the
    explained output (e.g. the logit of the predicted class). An example passes when
    ``|sum(attr) - (F(x) - F(x'))| <= atol + rtol * |F(x) - F(x')|``; the default 5% is the accuracy
    Sundararajan et al. (2017) expect from 20 to 300 steps of the Riemann sum. One point per example.

    With ``zero_where_equal`` (the default), one more case checks that pixels where the input equals
    the baseline get zero attribution: Integrated Gradients multiplies by ``(x - x')``. Turn it off
    for attribution methods without that property.
    """
    attributions = np.asarray(attributions, dtype=np.float64)
    inputs = np.asarray(inputs, dtype=np.float64)
    f_inputs, f_baseline = np.asarray(f_inputs, dtype=np.float64), np.asarray(f_baseline, dtype=np.float64)
    report = GradeReport("completeness of attributions")
    if attributions.shape != inputs.shape:
        report.add("shapes", False, f"attributions have shape {attributions.shape} but the inputs {inputs.shape}: "
                                    f"there must be one attribution per input value")
        return _finish(report, verbose)
    try:
        baseline = np.broadcast_to(np.asarray(baseline, dtype=np.float64), inputs.shape)
    except ValueError:
        report.add("shapes", False, f"baseline of shape {np.shape(baseline)} does not broadcast to the "
                                    f"inputs' shape {inputs.shape}")
        return _finish(report, verbose)

    single = f_inputs.ndim == 0
    if single:
        attributions, inputs, baseline = attributions[None], inputs[None], baseline[None]
    n = attributions.shape[0]
    try:
        f_inputs = np.broadcast_to(f_inputs.reshape(-1) if single else f_inputs, (n,))
        f_baseline = np.broadcast_to(f_baseline.reshape(-1), (n,))
    except ValueError:
        report.add("shapes", False, f"expected {n} values of F for {n} example(s), got F(inputs) of shape "
                                    f"{np.shape(f_inputs)} and F(baseline) of shape {np.shape(f_baseline)}")
        return _finish(report, verbose)
    names = [f"example {i}" for i in range(n)] if names is None else [str(s) for s in names]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} examples")

    for i in range(n):
        def body(case, i=i):
            if not np.all(np.isfinite(attributions[i])):
                raise _Fail("the attributions hold nan or inf")
            total = float(attributions[i].sum())
            delta = float(f_inputs[i] - f_baseline[i])
            gap, allowed = abs(total - delta), atol + rtol * abs(delta)
            text = f"sum of attributions {total:.4f}, F(input) - F(baseline) = {delta:.4f}"
            if not gap <= allowed:
                raise _Fail(f"{text}: gap {gap:.1e} (tolerance {allowed:.2g}); more integration steps, "
                            f"or is F the same output (class, logit vs probability) as the one explained?")
            return text
        _run(report, names[i], None, body)

    if zero_where_equal:
        def body(case):
            equal = inputs == baseline
            stray = np.abs(np.where(equal, attributions, 0))
            if equal.any() and stray.max() > atol:
                where = tuple(int(j) for j in np.unravel_index(int(stray.argmax()), stray.shape))
                raise _Fail(f"{int((stray > atol).sum())} value(s) equal to the baseline got a nonzero attribution, "
                            f"the largest {stray.max():.2g} at index {where}; Integrated Gradients multiplies "
                            f"the averaged gradient by (input - baseline)")
        _run(report, "zero attribution where the input equals the baseline", None, body)
    return _finish(report, verbose)


def check_integrated_gradients(fn: Callable, model, images, targets, baseline=None, *, steps: int = 50,
                               tolerance: float = 0.02, verbose: bool = True) -> GradeReport:
    """Grade ``fn(model, image, target, baseline, steps) -> attributions`` on a few digits.

    images: prepared digits ``(N, 1, 32, 32)``; targets: N classes; baseline: ``(1, 32, 32)``
    (default: black, see :func:`lenet_core.attribution.make_baseline`). F is the target's logit.
    Two cases per digit, one point each:

    - the attributions approximate the path integral: within ``tolerance`` (relative to their
      largest magnitude) of :func:`lenet_core.attribution.integrated_gradients` with 300 points,
      so any sound quadrature with ``steps`` intervals passes;
    - completeness: ``|sum(attributions) - (F(x) - F(baseline))| <= 5% of |F(x) - F(baseline)|``.
    """
    from .attribution import integrated_gradients, make_baseline, model_output

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (1, 32, 32):
        raise ValueError(f"images must be prepared digits (N, 1, 32, 32), got shape {images.shape}")
    targets = [int(t) for t in np.atleast_1d(targets)]
    if len(targets) != len(images):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    report = GradeReport("integrated gradients")
    for i, (image, target) in enumerate(zip(images, targets)):
        base = make_baseline("black", image) if baseline is None else np.asarray(baseline)
        reference, _ = integrated_gradients(model, image, target, base, steps=300)
        gap = float(model_output(model, image, target) - model_output(model, base, target))
        got = {}

        def integral(case, image=image, target=target, base=base, reference=reference):
            result, _ = case.call(model, image, target, base, steps)
            _compare("attributions", result, reference.astype(np.float64), atol=0.0, rtol=tolerance)
            got["attributions"] = np.asarray(result, dtype=np.float64)

        def completeness(case, gap=gap):
            if "attributions" not in got:
                raise _Fail("skipped: the attributions above are wrong")
            total = float(got["attributions"].sum())
            if not abs(total - gap) <= 0.05 * abs(gap) + 1e-4:
                raise _Fail(f"sum of attributions {total:.4f} but F(x) - F(baseline) = {gap:.4f}: "
                            f"completeness fails by more than 5%")

        _run(report, f"digit {i} (class {target}): the path integral", fn, integral)
        _run(report, f"digit {i} (class {target}): completeness", fn, completeness)
    return _finish(report, verbose)


# ----------------------------------------------------------------------------------------------
# Assignment 3: backpropagation through LeNet-5, a gradient check, a planted bug
# ----------------------------------------------------------------------------------------------

def _lenet_with_tanh_backward(backward: Callable, layer: str = "C3_tanh", seed: int = 0):
    """A float64 LeNet-5 whose ``layer`` (a Tanh) computes its backward pass as
    ``backward(dout, x, y)`` (x its input, y = tanh(x) its output)."""
    from .layers import Tanh
    from .model import LeNet5, Sequential

    class _Tanh(Tanh):
        def forward(self, x):
            self._x_in = x
            return super().forward(x)

        def backward(self, dout):
            return backward(dout, self._x_in, np.tanh(self._x_in))

    model = LeNet5(seed=seed, dtype=np.float64)
    return Sequential(*[(name, _Tanh() if name == layer else part) for name, part in model.layers.items()])


def lenet_with_planted_bug(seed: int = 0):
    """A float64 LeNet-5 with one planted bug in a backward pass (assignment 3: find it with a
    gradient check). Its forward pass is right; so are the gradients of the layers after the bug."""
    return _lenet_with_tanh_backward(lambda dout, x, y: dout * (1 - x ** 2), seed=seed)


#: the answer to the planted-bug exercise: the layer, and every parameter whose gradient it corrupts
PLANTED_BUG = ("C3_tanh", ("C1.W", "C1.b", "C3.W", "C3.b"))


def check_planted_bug(layer, wrong_parameters, *, verbose: bool = True) -> GradeReport:
    """Two cases: ``layer`` names the layer of :func:`lenet_with_planted_bug` whose backward pass is
    wrong; ``wrong_parameters`` lists exactly the parameters whose gradients are wrong."""
    report = GradeReport("the planted bug")
    right_layer, right_params = PLANTED_BUG

    def named(case):
        if not isinstance(layer, str):
            raise _Fail(f"expected the layer's name as a string, e.g. 'F6', got {type(layer).__name__}")
        if layer != right_layer:
            raise _Fail(f"{layer!r} is not the layer whose backward pass is wrong; a gradient check of "
                        f"every parameter shows where the errors start")

    def params(case):
        try:
            given = {str(p) for p in wrong_parameters}
        except TypeError:
            raise _Fail(f"expected a list of parameter names, got {type(wrong_parameters).__name__}") from None
        missing, extra = set(right_params) - given, given - set(right_params)
        if missing or extra:
            raise _Fail(f"not the parameters with wrong gradients: {len(missing)} missing, {len(extra)} "
                        f"that are right" + (f" (e.g. {sorted(extra)[0]!r})" if extra else ""))

    _run(report, "the layer with the bug", None, named)
    _run(report, "the parameters whose gradients are wrong", None, params)
    return _finish(report, verbose)


#: (name, shape)
TANH_CASES = [("batch 4, 10 features", (4, 10)), ("images (2, 3, 5, 5)", (2, 3, 5, 5)),
              ("saturated: |x| up to 6", (3, 7))]


def check_tanh_backward(fn: Callable, *, seed: int = 0, verbose: bool = True) -> GradeReport:
    """Grade ``fn(dout, y) -> dx`` for ``y = tanh(x)`` (the backward pass from the saved output).

    Three cases against ``dout * (1 - y**2)``, then the repaired network: LeNet-5 of
    :func:`lenet_with_planted_bug` with ``fn`` in place of the buggy backward must pass
    :func:`lenet_core.gradcheck.check_model` (every relative error below 1e-6).
    """
    from .gradcheck import check_model

    report = GradeReport("tanh backward")
    for i, (name, shape) in enumerate(TANH_CASES):
        def body(case, shape=shape, i=i, name=name):
            rng = np.random.default_rng([seed, 11, i])
            x = rng.uniform(-6, 6, shape) if "saturated" in name else rng.standard_normal(shape)
            y, dout = np.tanh(x), rng.standard_normal(shape)
            dx, passed_in = case.call(dout, y)
            _compare("dx", dx, dout * (1 - y ** 2))
            _check_unchanged(("dout", "y"), (dout, y), passed_in)
        _run(report, name, fn, body)

    def repaired(case):
        rng = np.random.default_rng([seed, 12])
        x, labels = rng.standard_normal((2, 1, 32, 32)), np.array([3, 7])
        model = _lenet_with_tanh_backward(lambda dout, x_in, y: case.call(dout, y)[0], seed=seed)
        result = check_model(model, x, labels, samples=6, seed=seed)
        bad = {k: v for k, v in result.items() if not v < GRADCHECK_TOL}
        if bad:
            name, err = max(bad.items(), key=lambda kv: kv[1])
            raise _Fail(f"the gradient check of LeNet-5 with your tanh backward in C3 still fails: "
                        f"{name} relative error {err:.1e}")
    _run(report, "LeNet-5 repaired with your tanh backward passes the gradient check", fn, repaired)
    return _finish(report, verbose)


def check_numerical_gradient(fn: Callable, *, verbose: bool = True) -> GradeReport:
    """Grade ``fn(f, x, h) -> grad``: central differences of a scalar ``f()`` that reads ``x`` (which
    ``fn`` perturbs in place and must restore). Four functions with known gradients; tolerance 1e-7
    relative (central differences at h=1e-5 are off by ~1e-10, forward differences by ~1e-5)."""
    report = GradeReport("numerical gradient")
    rng = np.random.default_rng(13)
    a = rng.standard_normal((4, 3))
    cases = [
        ("sum of squares", lambda x: float(np.sum(x ** 2)), lambda x: 2 * x, (3, 4)),
        ("sin(x) * x, a matrix", lambda x: float(np.sum(np.sin(x) * x)), lambda x: np.cos(x) * x + np.sin(x), (2, 5)),
        ("(x @ A).sum() ** 2", lambda x: float((x @ a).sum() ** 2),
         lambda x: 2 * (x @ a).sum() * np.broadcast_to(a.sum(axis=1), x.shape), (2, 4)),
        ("a 4-d tensor, exp", lambda x: float(np.exp(0.3 * x).sum()), lambda x: 0.3 * np.exp(0.3 * x), (2, 1, 3, 3)),
    ]
    for i, (name, f, grad, shape) in enumerate(cases):
        def body(case, f=f, grad=grad, shape=shape, i=i):
            x = np.random.default_rng([14, i]).standard_normal(shape)
            original = x.copy()
            case.fn = lambda: fn(lambda: f(x), x, 1e-5)     # x itself, not a copy: fn perturbs it
            got, _ = case.call()
            if not np.array_equal(x, original):
                raise _Fail("x is not restored after the perturbations: put each entry back")
            expected = grad(original)
            got = _as_array("gradient", got)
            if got.shape != expected.shape:
                raise _Fail(f"expected gradient shape {expected.shape}, got {got.shape}")
            err = relative_error(got.astype(np.float64), expected)
            if not err < 1e-7:
                raise _Fail(f"gradient relative error {err:.1e} (tolerance 1e-07): central differences "
                            f"(f(x+h) - f(x-h)) / 2h are accurate to ~h^2")
        _run(report, name, fn, body)
    return _finish(report, verbose)


# ----------------------------------------------------------------------------------------------
# Assignment 4: training, recipe choices judged on the validation split
# ----------------------------------------------------------------------------------------------

#: (name, {recipe: history}, the recipe to choose): final validation accuracy decides, nothing else
PICK_CASES = [
    ("validation and training accuracy disagree",
     {"lr 0.1": {"train_acc": [0.90, 0.99], "val_acc": [0.88, 0.93]},
      "lr 0.01": {"train_acc": [0.85, 0.95], "val_acc": [0.86, 0.95]}}, "lr 0.01"),
    ("the last epoch counts, not the best one",
     {"a": {"train_acc": [0.9, 0.9, 0.9], "val_acc": [0.97, 0.91, 0.92]},
      "b": {"train_acc": [0.9, 0.9, 0.9], "val_acc": [0.90, 0.93, 0.95]}}, "b"),
    ("histories of different lengths",
     {"1 epoch": {"train_acc": [0.95], "val_acc": [0.94]},
      "3 epochs": {"train_acc": [0.9, 0.95, 0.99], "val_acc": [0.90, 0.93, 0.935]},
      "2 epochs": {"train_acc": [0.9, 0.97], "val_acc": [0.91, 0.92]}}, "1 epoch"),
    ("a test accuracy is there too: never look at it",
     {"x": {"train_acc": [0.95], "val_acc": [0.96], "test_acc": [0.90]},
      "y": {"train_acc": [0.95], "val_acc": [0.95], "test_acc": [0.99]}}, "x"),
    ("lowest validation loss and highest accuracy agree on the last epoch",
     {"sgd": {"train_acc": [0.99], "val_acc": [0.975], "val_loss": [0.08]},
      "adam": {"train_acc": [0.999], "val_acc": [0.970], "val_loss": [0.10]},
      "rmsprop": {"train_acc": [0.97], "val_acc": [0.972], "val_loss": [0.09]}}, "sgd"),
]


def check_pick_by_validation(fn: Callable, *, verbose: bool = True) -> GradeReport:
    """Grade ``fn(histories) -> name``: the recipe with the highest validation accuracy at the last
    epoch, from ``{name: {"train_acc": [...], "val_acc": [...], ...}}``. Each case is built so that
    choosing by training accuracy, by the best epoch, or by a test accuracy picks another recipe."""
    import copy

    report = GradeReport("pick a recipe by validation")
    for name, histories, right in PICK_CASES:
        def body(case, histories=histories, right=right):
            given = copy.deepcopy(histories)
            case.fn = lambda: fn(given)
            got, _ = case.call()
            if got != right:
                by = {k: v["val_acc"][-1] for k, v in histories.items()}
                raise _Fail(f"chose {got!r}, but {right!r} has the highest final validation accuracy "
                            f"({', '.join(f'{k}: {v:.3f}' for k, v in by.items())})")
        _run(report, name, fn, body)
    return _finish(report, verbose)


def check_train_recipe(fn: Callable, x_train, y_train, x_val, y_val, recipe=None, *,
                       verbose: bool = True) -> GradeReport:
    """Grade ``fn(recipe, x_train, y_train, x_val, y_val) -> (model, history)`` on a small subset.

    Three cases: the history has a validation accuracy per epoch; its last value is the accuracy of
    the returned model on *the validation split given* (so the test set was not used for it); the
    model learned (validation accuracy above 50% after one epoch of a sound recipe).
    """
    from .train import evaluate

    recipe = {"lr": 0.05, "momentum": 0.9, "epochs": 1, "batch_size": 32} if recipe is None else recipe
    report = GradeReport("train a recipe")
    got = {}

    def run(case):
        case.fn = lambda: fn(dict(recipe), x_train, y_train, x_val, y_val)
        result, _ = case.call()
        model, history = _unpack(result, ("model", "history"))
        val = history.get("val_acc") if hasattr(history, "get") else None
        if not val or any(v is None for v in val):
            raise _Fail("the history has no validation accuracy: pass validation=(x_val, y_val) to fit")
        got.update(model=model, val=val)

    def same_split(case):
        if "model" not in got:
            raise _Fail("skipped: the case above failed")
        _, acc = evaluate(got["model"], x_val, y_val)
        if abs(acc - got["val"][-1]) > 1e-9:
            raise _Fail(f"the history's last validation accuracy {got['val'][-1]:.4f} is not the model's "
                        f"accuracy on the validation split you were given ({acc:.4f}): validate on "
                        f"(x_val, y_val), never on the test set")

    def learned(case):
        if "model" not in got:
            raise _Fail("skipped: the case above failed")
        if not got["val"][-1] > 0.5:
            raise _Fail(f"validation accuracy {got['val'][-1]:.2%} after training: did the optimizer "
                        f"use the recipe's lr and momentum?")

    _run(report, "the history holds a validation accuracy per epoch", fn, run)
    _run(report, "measured on the validation split given", fn, same_split)
    _run(report, "the model learned (validation accuracy > 50%)", fn, learned)
    return _finish(report, verbose)


# ----------------------------------------------------------------------------------------------
# Assignment 5: the PyTorch twin
# ----------------------------------------------------------------------------------------------

def _twin_models():
    from .model import LeNet5
    return [("LeNet-5 seed 0, float64", LeNet5(seed=0, dtype=np.float64), 1e-10),
            ("LeNet-5 seed 1, float64, other weights", LeNet5(seed=1, dtype=np.float64), 1e-10),
            ("LeNet-5 seed 2, float32", LeNet5(seed=2, dtype=np.float32), 1e-4)]


def check_copy_to_torch(fn: Callable, *, verbose: bool = True) -> GradeReport:
    """Grade ``fn(model) -> torch module``: the module's logits equal the scratch model's on 4 random
    inputs (max abs difference <= 1e-10 in float64, 1e-4 in float32), for three models."""
    import torch

    report = GradeReport("copy LeNet-5 to PyTorch")
    for i, (name, model, tol) in enumerate(_twin_models()):
        def body(case, model=model, tol=tol, i=i):
            x = np.random.default_rng([15, i]).standard_normal((4, 1, 32, 32)).astype(model.dtype)
            expected = model.forward(x).astype(np.float64)
            case.fn = lambda: fn(model)
            module, _ = case.call()
            if not isinstance(module, torch.nn.Module):
                raise _Fail(f"expected a torch.nn.Module, got {type(module).__name__}")
            dtype = next(module.parameters()).dtype
            with torch.no_grad():
                out = module(torch.from_numpy(x).to(dtype)).double().numpy()
            _compare("logits", out, expected, atol=tol)
        _run(report, name, fn, body)
    return _finish(report, verbose)


def check_copy_from_torch(fn: Callable, *, verbose: bool = True) -> GradeReport:
    """Grade ``fn(module) -> scratch LeNet5``: the scratch model's logits equal the torch module's
    (a :class:`lenet_core.twin.TorchLeNet5` with its own random weights) on 4 random inputs."""
    import torch

    from .twin import TorchLeNet5

    report = GradeReport("copy PyTorch weights into LeNet-5")
    for i, (name, dtype, tol) in enumerate([("torch seed 0, float64", torch.float64, 1e-10),
                                            ("torch seed 1, float64", torch.float64, 1e-10),
                                            ("torch seed 2, float32", torch.float32, 1e-4)]):
        def body(case, dtype=dtype, tol=tol, i=i):
            torch.manual_seed(i)
            module = TorchLeNet5().to(dtype)
            x = np.random.default_rng([16, i]).standard_normal((4, 1, 32, 32))
            with torch.no_grad():
                expected = module(torch.from_numpy(x).to(dtype)).double().numpy()
            case.fn = lambda: fn(module)
            model, _ = case.call()
            if not hasattr(model, "forward"):
                raise _Fail(f"expected a lenet_core model, got {type(model).__name__}")
            _compare("logits", np.asarray(model.forward(x.astype(model.dtype)), dtype=np.float64), expected,
                     atol=tol)
        _run(report, name.replace("torch", "TorchLeNet5"), fn, body)
    return _finish(report, verbose)


def check_torch_input_gradient(fn: Callable, *, verbose: bool = True) -> GradeReport:
    """Grade ``fn(module, x, target) -> dF/dx`` (F the target's logit, summed over the batch) computed
    with autograd, against the scratch model's own backward pass (float64, tolerance 1e-10)."""
    from .attribution import output_gradient
    from .model import LeNet5
    from .twin import to_torch

    report = GradeReport("input gradient with autograd")
    for i, (name, n, target) in enumerate([("one image, class 3", 1, 3), ("batch of 3, class 7", 3, 7),
                                           ("batch of 2, class 0", 2, 0)]):
        def body(case, n=n, target=target, i=i):
            model = LeNet5(seed=i, dtype=np.float64)
            x = np.random.default_rng([17, i]).standard_normal((n, 1, 32, 32))
            _, expected = output_gradient(model, x, target)
            case.fn = lambda: fn(to_torch(model), x.copy(), target)
            got, _ = case.call()
            if hasattr(got, "detach"):
                got = got.detach().numpy()
            _compare("dF/dx", got, expected, atol=1e-10)
        _run(report, name, fn, body)
    return _finish(report, verbose)


# ----------------------------------------------------------------------------------------------
# Assignment 6: Integrated Gradients
# ----------------------------------------------------------------------------------------------

def check_completeness_gap(fn: Callable, model, images, targets, *, verbose: bool = True) -> GradeReport:
    """Grade ``fn(model, image, target, baseline, attributions) -> float``: ``sum(attributions) -
    (F(image) - F(baseline))`` with F the target's logit. Attributions and baselines are made up
    (any array works), so the gap must be computed, not assumed to be zero."""
    from .attribution import model_output

    report = GradeReport("completeness gap")
    for i, (image, target) in enumerate(zip(images, targets)):
        def body(case, image=image, target=int(target), i=i):
            rng = np.random.default_rng([18, i])
            baseline = rng.standard_normal(image.shape) * 0.1
            attributions = rng.standard_normal(image.shape) * 0.05
            expected = float(attributions.sum() - (model_output(model, image, target)
                                                   - model_output(model, baseline, target)))
            case.fn = lambda: fn(model, image.copy(), target, baseline.copy(), attributions.copy())
            got, _ = case.call()
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise _Fail(f"expected one number, got {type(got).__name__}") from None
            if not abs(got - expected) <= 1e-8 * max(1.0, abs(expected)):
                raise _Fail(f"gap {got:.6g}, expected {expected:.6g}: sum(attributions) - "
                            f"(F(image) - F(baseline)), F the target's logit")
        _run(report, f"digit {i} (class {int(target)})", fn, body)
    return _finish(report, verbose)


def check_baseline_comparison(fn: Callable, model, image, target, *, steps: int = 64,
                              verbose: bool = True) -> GradeReport:
    """Grade ``fn(model, image, target, steps) -> {"black": a, "blur": a, "uniform": a}``: Integrated
    Gradients from each of :func:`lenet_core.attribution.make_baseline`'s baselines (default
    arguments), within 2% (of their largest magnitude) of :func:`integrated_gradients` with the same
    baseline and 300 steps."""
    from .attribution import integrated_gradients, make_baseline

    report = GradeReport("compare baselines")
    got = {}

    def call(case):
        if "result" not in got:
            case.fn = lambda: fn(model, image.copy(), int(target), steps)
            got["result"], _ = case.call()
            if not isinstance(got["result"], dict):
                raise _Fail(f"expected a dict {{baseline: attributions}}, got {type(got['result']).__name__}")
        return got["result"]

    for kind in ("black", "blur", "uniform"):
        def body(case, kind=kind):
            result = call(case)
            if kind not in result:
                raise _Fail(f"no {kind!r} entry in {sorted(result)}")
            reference, _ = integrated_gradients(model, image, int(target), make_baseline(kind, image), steps=300)
            _compare("attributions", result[kind], reference.astype(np.float64), atol=0.0, rtol=0.02)
        _run(report, f"the {kind} baseline", fn, body)
    return _finish(report, verbose)
