"""Assignment 6 (chapter 9): Integrated Gradients with the model's backward pass, the completeness gap,
three baselines compared.

Student functions: ``integrated_gradients(model, image, target, baseline, steps) -> attributions``,
``completeness_gap(model, image, target, baseline, attributions) -> float``,
``compare_baselines(model, image, target, steps) -> {"black": a, "blur": a, "uniform": a}``.
Graded on an untrained float64 LeNet-5 and smooth random images (no MNIST): attribution needs a model
and images, not a good model. The student build leaves out
:func:`lenet_core.attribution.integrated_gradients` (and the methods that compute it along a given path).
"""

import numpy as np

from ..attribution import integrated_gradients, make_baseline, model_output
from ..model import LeNet5
from .report import Case, Fail, Group, Model, compare

KEEP = ("data", "model", "attribution")
#: Integrated Gradients, its quadrature (the trapezoid rule's points and weights are part of the
#: answer), and the two methods that compute it given a deterministic path (SmoothGrad's IG calls
#: the stub). The input gradient (output_gradient, saliency) stays: it is the model's backward
#: pass, the tool the assignment asks students to use.
ABSENT = {"attribution.ig": ("integrated_gradients", "quadrature"),
          "attribution.methods": ("gradient_shap", "expected_gradients")}
GRADING_ABSENT = {}
PRELUDE = """import numpy as np
from lenet_core.attribution import make_baseline, model_output
from lenet_core.model import LeNet5
"""


def images(n: int, seed: int) -> np.ndarray:
    """Smooth random images (n, 1, 32, 32) in the range of prepared digits."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-0.4, 2.8, (n, 1, 8, 8))
    return coarse.repeat(4, axis=2).repeat(4, axis=3) + 0.05 * rng.standard_normal((n, 1, 32, 32))


def _setup():
    model = LeNet5(seed=0, dtype=np.float64)
    arg = Model("LeNet5", {k: v.copy() for k, v in model.parameters().items()}, "float64")
    return model, arg


def _ig_cases(prefix, model, arg, image, target, baseline, steps, hidden=False):
    reference, _ = integrated_gradients(model, image, target, baseline, steps=300)
    gap = float(model_output(model, image, target) - model_output(model, baseline, target))

    def integral(got):
        compare("attributions", got, reference.astype(np.float64), atol=0.0, rtol=0.02)

    def completeness(got):
        integral(got)
        total = float(np.sum(got))
        if not abs(total - gap) <= 0.05 * abs(gap) + 1e-4:
            detail = "" if hidden else f" ({total:.4f} against {gap:.4f})"
            raise Fail(f"the attributions do not add up to F(x) - F(baseline){detail}: completeness fails by "
                       f"more than 5%")
    parts = [(f"{prefix}: the path integral", integral), (f"{prefix}: completeness", completeness)]
    return Case(prefix, "integrated_gradients", (arg, image, target, baseline, steps), None,
                parts=tuple(parts[:1] if hidden else parts), unchanged=((1, "image"), (3, "baseline")))


def ig_cases():
    model, arg = _setup()
    x = images(2, 0)
    return [_ig_cases(f"image {i} (class {t})", model, arg, x[i], t, make_baseline("black", x[i]), 50)
            for i, t in enumerate([7, 2])]


def hidden_ig_cases():
    model, arg = _setup()
    x = images(1, 20261132)[0]
    return [_ig_cases("hidden case: another image, the blur baseline", model, arg, x, 4,
                      make_baseline("blur", x), 64, hidden=True)]


def gap_cases():
    model, arg = _setup()
    x = images(3, 1)
    cases = []
    for i, target in enumerate([7, 2, 1]):
        rng = np.random.default_rng([18, i])
        baseline = rng.standard_normal(x[i].shape) * 0.1
        attributions = rng.standard_normal(x[i].shape) * 0.05
        expected = float(attributions.sum() - (model_output(model, x[i], target)
                                               - model_output(model, baseline, target)))

        def check(got, expected=expected):
            if isinstance(got, np.ndarray) and got.size == 1:
                got = float(got.reshape(()))
            if not isinstance(got, (int, float)) or isinstance(got, bool):
                raise Fail(f"expected one number, got {type(got).__name__}")
            if not abs(got - expected) <= 1e-8 * max(1.0, abs(expected)):
                raise Fail(f"gap {got:.6g}, expected {expected:.6g}: sum(attributions) - "
                           f"(F(image) - F(baseline)), F the target's logit")
        cases.append(Case(f"image {i} (class {target})", "completeness_gap",
                          (arg, x[i], target, baseline, attributions), check))
    return cases


def baseline_cases():
    model, arg = _setup()
    image, target = images(1, 2)[0], 3

    def part(kind):
        reference, _ = integrated_gradients(model, image, target, make_baseline(kind, image), steps=300)

        def check(got):
            if not isinstance(got, dict):
                raise Fail(f"expected a dict {{baseline: attributions}}, got {type(got).__name__}")
            if kind not in got:
                raise Fail(f"no {kind!r} entry in {sorted(got)}")
            compare("attributions", got[kind], reference.astype(np.float64), atol=0.0, rtol=0.02)
        return (f"the {kind} baseline", check)
    return [Case("compare baselines", "compare_baselines", (arg, image, target, 64), None,
                 parts=tuple(part(k) for k in ("black", "blur", "uniform")))]


GROUPS = {
    "check_integrated_gradients": Group("integrated gradients", ig_cases),
    "hidden_integrated_gradients": Group("integrated gradients, hidden cases", hidden_ig_cases, hidden=True),
    "check_completeness_gap": Group("completeness gap", gap_cases),
    "check_compare_baselines": Group("compare baselines", baseline_cases),
}
