"""The report core of the grader: cases, their outcomes, the comparisons that decide them, the feedback.

Everything here runs in the grader's own process, never in the sandbox. An assignment module
(``lenet_core.grading.aN_*``) declares its test groups as lists of :class:`Case`; the sandbox returns
what the student's function gave for each case (an :class:`Outcome`), and the case's ``check``
compares it with the full :mod:`lenet_core` reference. A check raises :class:`Fail` with a message for
the student, or returns an optional note. One point per case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from ..gradcheck import projected_gradient_check

#: float64 inputs of unit scale: a correct implementation is off by ~1e-15, a wrong one by ~1e-1
ATOL = 1e-8
#: relative error against central differences (the scale used by :mod:`lenet_core.gradcheck`)
GRADCHECK_TOL = 1e-6


class Fail(Exception):
    """Ends a case with a message for the student."""


class Model(NamedTuple):
    """An argument the sandbox builds from the student build: ``kind`` is ``"LeNet5"`` (a scratch model)
    or ``"TorchLeNet5"``; ``params`` maps the scratch parameter names to arrays; ``dtype`` a NumPy name."""
    kind: str
    params: dict
    dtype: str = "float64"


@dataclass
class Case:
    """One graded case: call ``function(*args)`` in the sandbox, then ``then`` there (a named
    post-processing step of the runner, e.g. ``"torch_logits"``), and judge the result with
    ``check(result)`` here. ``args`` hold arrays, numbers, strings, lists, dicts and :class:`Model`."""
    name: str
    function: str
    args: tuple
    check: Callable[[Any], str | None]
    then: str | None = None
    then_args: tuple = ()
    unchanged: tuple = ()          # (index, name) of the array arguments that must not change in place
    parts: tuple = ()              # (name, check) pairs: several graded cases judged from this one call


@dataclass
class Group:
    """A test cell: a title, its cases, whether they are hidden (the feedback then names no input)."""
    title: str
    cases: Callable[[], list[Case]]
    hidden: bool = False
    torch: bool = False            # the sandbox needs PyTorch for this group


class Outcome(NamedTuple):
    """What the sandbox reported for one case: ``result`` (decoded), or ``error`` (a message), plus
    the warnings the student's code raised and the names of the inputs it changed in place."""
    result: Any = None
    error: str | None = None
    warnings: tuple = ()
    changed: tuple = ()


class CaseResult(NamedTuple):
    """One graded case: ``(name, passed, message)``; the message says what was wrong (or ``"ok"``)."""
    name: str
    passed: bool
    message: str


@dataclass
class GradeReport:
    """The result of one test group: a title and one :class:`CaseResult` per case, one point each.

    ``str(report)`` is the feedback: a score line, then one line per case (a report in which every
    case failed the same way says it once). ``graded`` is false when the group could not be run at
    all for a reason that is not the student's (``why`` says it).
    """
    title: str
    cases: list[CaseResult] = field(default_factory=list)
    graded: bool = True
    why: str = ""

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
        if not self.graded:
            return f"{self.title}: could not be graded ({self.why})"
        verdict = ", all cases passed" if self.passed else ""
        return f"{self.title}: {self.score}/{self.max_score}{verdict}"

    def __str__(self) -> str:
        lines = [self.summary()]
        if not self.graded:
            return lines[0]
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


def judge(report: GradeReport, case: Case, outcome: Outcome, hidden: bool) -> None:
    """Add ``case``'s verdicts on ``outcome`` to ``report`` (one, or one per part). Hidden cases keep
    their message to what went wrong (shape, size of the error), never the inputs or expected values."""
    for name, check in case.parts or [(case.name, case.check)]:
        try:
            if outcome.error is not None:
                raise Fail(outcome.error)
            if outcome.changed:
                raise Fail(f"your function changed its input {', '.join(outcome.changed)} in place; work on "
                           f"a copy (or write to a new array) so the caller's arrays stay intact")
            note = check(outcome.result)
        except Fail as failure:
            message = str(failure)
            if hidden:          # what went wrong, not where or with which shapes and values
                message = re.sub(r"expected (\S+) shape \([^)]*\), got \([^)]*\)", r"\1 has the wrong shape", message)
                message = message.split("; worst at index")[0].split(": expected ")[0]
            if outcome.warnings:
                message += "; NumPy warned: " + "; ".join(outcome.warnings)
            report.add(name, False, message)
        else:
            report.add(name, True, note or "ok")


# ----------------------------------------------------------------------------------------------
# Comparisons used by the assignments' checks
# ----------------------------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return f"{value:.4g}"


def as_array(label: str, got) -> np.ndarray:
    if got is None:
        raise Fail(f"{label} is None: did you forget a return statement?")
    if isinstance(got, tuple):
        raise Fail(f"expected {label} as one array, got a tuple of {len(got)} items; return {label} only")
    if isinstance(got, Opaque):
        raise Fail(f"expected {label} as a NumPy array of numbers, got {got.type}")
    arr = np.asarray(got) if isinstance(got, (np.ndarray, int, float, bool, list)) else None
    if arr is None or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise Fail(f"expected {label} as a NumPy array of numbers, got {type(got).__name__}")
    return arr


def compare(label: str, got, expected, atol: float = ATOL, rtol: float = 0.0) -> None:
    """Shape, finiteness, then ``max|got - expected| <= atol + rtol * max|expected|``."""
    got = as_array(label, got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise Fail(f"expected {label} shape {expected.shape}, got {got.shape}")
    bad = ~np.isfinite(got)
    if bad.any():
        kinds = "nan" if np.isnan(got).any() else "inf"
        if got.ndim == 0:
            raise Fail(f"{label} is {kinds}")
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise Fail(f"{label} has {int(bad.sum())} non-finite value(s) ({kinds}), the first at index {where}")
    if got.size == 0:
        return
    diff = np.abs(got.astype(np.float64) - expected)
    err = float(diff.max())
    allowed = atol + rtol * float(np.abs(expected).max())
    if err > allowed:
        where = np.unravel_index(int(diff.argmax()), diff.shape)
        idx = tuple(int(i) for i in where)
        at = (f"; worst at index {idx}: expected {_fmt(expected[where])}, got {_fmt(got[where])}" if idx else
              f": expected {_fmt(expected[()])}, got {_fmt(got[()])}")
        hint = ""
        if got.dtype != expected.dtype and np.issubdtype(got.dtype, np.floating) and got.dtype.itemsize < 8:
            hint = f" (your {label} has dtype {got.dtype}; compute in the inputs' dtype, float64)"
        raise Fail(f"{label} max abs error {err:.1e} (tolerance {allowed:.2g}){at}{hint}")


def compare_each(labels, got, expected, check=compare) -> None:
    """``check(label, got, expected)`` for several results, reporting every one that fails."""
    problems = []
    for label, g, e in zip(labels, got, expected):
        try:
            check(label, g, e)
        except Fail as failure:
            problems.append(str(failure))
    if problems:
        raise Fail("; ".join(problems))


def unpack(result, names: tuple[str, ...]):
    what = "(" + ", ".join(names) + ")"
    if result is None:
        raise Fail(f"your function returned None: did you forget `return {', '.join(names)}`?")
    if not isinstance(result, (tuple, list)):
        raise Fail(f"expected a tuple {what}, got {getattr(result, 'type', type(result).__name__)}")
    if len(result) != len(names):
        raise Fail(f"expected a tuple of {len(names)} items {what}, got {len(result)} items")
    return result


def gradient_check(label: str, analytic, tensor: np.ndarray, forward: Callable, R: np.ndarray) -> None:
    """The student's ``analytic`` gradient of ``sum(forward() * R)`` with respect to ``tensor`` (which
    ``forward`` reads) against central differences, by :func:`lenet_core.gradcheck.projected_gradient_check`."""
    analytic = as_array(label, analytic)
    if analytic.shape != tensor.shape:
        raise Fail(f"expected {label} shape {tensor.shape}, got {analytic.shape}")
    if not np.all(np.isfinite(analytic)):
        raise Fail(f"{label} has non-finite values (nan or inf)")
    err = projected_gradient_check(forward, R, tensor, analytic.astype(np.float64))
    if not err < GRADCHECK_TOL:
        raise Fail(f"{label} relative error against the numerical gradient {err:.1e} "
                   f"(tolerance {GRADCHECK_TOL:.0e})")


class Opaque(NamedTuple):
    """A value the sandbox could not send back as data (a model, a function...): only its type's name."""
    type: str
