"""The autograder: reference implementations get full marks, planted bugs lose points with named cases."""

import numpy as np
import pytest

from lenet_core import LeNet5
from lenet_core import functional as Fn
from lenet_core.grading import (CONV_CASES, CONV_GRADCHECK_CASES, LINEAR_CASES, POOL_CASES, CaseResult,
                                GradeReport, check_completeness, check_conv_backward, check_conv_forward,
                                check_linear_backward, check_pool_backward, check_pool_forward,
                                check_softmax_cross_entropy, check_trained_accuracy)
from lenet_core.losses import SoftmaxCrossEntropy

N_CONV = len(CONV_CASES)                    # 10
N_CONV_BACK = N_CONV + len(CONV_GRADCHECK_CASES)
N_POOL = len(POOL_CASES)                    # 9; backward adds one gradient check
N_SOFTMAX = 9


def failing(report):
    return {case.name: case.message for case in report.failures}


# ----------------------------------------------------------------------------------------------
# Reference implementations, written as a student would call them
# ----------------------------------------------------------------------------------------------

def conv_forward(x, W, b, stride, padding):
    return Fn.conv2d(x, W, b, stride, padding)[0]


def conv_backward(dout, x, W, b, stride, padding):
    _, cols = Fn.conv2d(x, W, b, stride, padding)
    return Fn.conv2d_backward(dout, cols, x.shape, W, stride, padding)


def conv_backward_naive(dout, x, W, b, stride, padding):
    return Fn.conv2d_backward_naive(dout, x, W, stride, padding)


def pool_forward(mode):
    return lambda x, k, s: Fn.pool2d_naive(x, k, s, mode)


def pool_backward(mode):
    return lambda dout, x, k, s: Fn.pool2d_backward_naive(dout, x, k, s, mode)


def softmax_ce(logits, labels):
    loss_fn = SoftmaxCrossEntropy()
    return loss_fn.forward(logits, labels), loss_fn.backward()


def linear_backward(dout, x, W, b):
    return dout @ W, dout.T @ x, dout.sum(axis=0)


# ----------------------------------------------------------------------------------------------
# Planted bugs
# ----------------------------------------------------------------------------------------------

def conv_backward_with(kernel_for_dx):
    """The naive backward loop, but dx is built from ``kernel_for_dx(W[f])`` instead of ``W[f]``."""
    def backward(dout, x, W, b, stride, padding):
        N, C, H, Wd = x.shape
        F, _, KH, KW = W.shape
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        dxp, dW = np.zeros_like(xp), np.zeros_like(W)
        for n in range(N):
            for f in range(F):
                for i in range(dout.shape[2]):
                    for j in range(dout.shape[3]):
                        rows = slice(i * stride, i * stride + KH)
                        cols = slice(j * stride, j * stride + KW)
                        dW[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
                        dxp[n, :, rows, cols] += dout[n, f, i, j] * kernel_for_dx(W[f])
        return dxp[:, :, padding:padding + H, padding:padding + Wd], dW, dout.sum(axis=(0, 2, 3))
    return backward


def pool_backward_assigning(mode):
    """Pooling backward that writes ``dx[...] = `` where it must add: wrong wherever windows overlap."""
    def backward(dout, x, k, s):
        dx = np.zeros_like(x)
        N, C, OH, OW = dout.shape
        for n in range(N):
            for c in range(C):
                for i in range(OH):
                    for j in range(OW):
                        window = x[n, c, i * s:i * s + k, j * s:j * s + k]
                        if mode == "avg":
                            dx[n, c, i * s:i * s + k, j * s:j * s + k] = dout[n, c, i, j] / (k * k)
                        else:
                            p, q = np.unravel_index(window.argmax(), window.shape)
                            dx[n, c, i * s + p, j * s + q] = dout[n, c, i, j]
        return dx
    return backward


def softmax_ce_unshifted(logits, labels):
    """No max-shift: exp(1e4) overflows to inf and inf / inf is nan."""
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -np.log(p[np.arange(n), labels]).mean()
    dlogits = p.copy()
    dlogits[np.arange(n), labels] -= 1
    return loss, dlogits / n


def softmax_ce_missing_mean(logits, labels):
    """Right loss, but the gradient forgot the 1/N of the mean."""
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(logits, labels)
    return loss, loss_fn.backward() * len(labels)


def stub(*args):
    raise NotImplementedError("implement this function")


# ----------------------------------------------------------------------------------------------
# Full marks for the references
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("check,fn,max_score", [
    (check_conv_forward, conv_forward, N_CONV),
    (check_conv_forward, lambda x, W, b, s, p: Fn.conv2d_naive(x, W, b, s, p), N_CONV),
    (check_conv_backward, conv_backward, N_CONV_BACK),
    (check_conv_backward, conv_backward_naive, N_CONV_BACK),
    (check_softmax_cross_entropy, softmax_ce, N_SOFTMAX),
    (check_linear_backward, linear_backward, len(LINEAR_CASES) + 1),
], ids=["conv forward", "conv forward naive", "conv backward", "conv backward naive", "softmax", "linear"])
def test_references_get_full_marks(check, fn, max_score, capsys):
    report = check(fn)
    assert report.max_score == max_score
    assert report.score == max_score and report.passed, str(report)
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(f"{max_score}/{max_score}, all cases passed")
    assert "FAIL" not in out and "e-1" not in out          # no round-off numbers: deterministic output


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_pool_references_get_full_marks(mode):
    forward = check_pool_forward(pool_forward(mode), mode, verbose=False)
    backward = check_pool_backward(pool_backward(mode), mode, verbose=False)
    assert (forward.score, forward.max_score) == (N_POOL, N_POOL), str(forward)
    assert (backward.score, backward.max_score) == (N_POOL + 1, N_POOL + 1), str(backward)
    # the vectorised reference too
    vectorised = check_pool_backward(
        lambda dout, x, k, s: Fn.pool2d_backward(dout, Fn.pool2d(x, k, s, mode)[1], x.shape, k, s, mode),
        mode, verbose=False)
    assert vectorised.passed, str(vectorised)


# ----------------------------------------------------------------------------------------------
# Planted bugs lose points, and the feedback names the case
# ----------------------------------------------------------------------------------------------

def test_conv_backward_with_transposed_kernel():
    report = check_conv_backward(conv_backward_with(lambda k: k.transpose(0, 2, 1)), verbose=False)
    # Only the 1x1 kernel is its own transpose; every other case fails (non-square kernels even raise).
    assert (report.score, report.max_score) == (1, N_CONV_BACK)
    assert [c.name for c in report.cases if c.passed] == ["1x1 kernel"]
    bad = failing(report)
    assert bad["3x3 kernel, stride 1, no padding"].startswith("dx max abs error ")
    assert "(tolerance 1e-08); worst at index (" in bad["3x3 kernel, stride 1, no padding"]
    assert "dW" not in bad["3x3 kernel, stride 1, no padding"]         # only dx is wrong, and it says so
    assert bad["non-square 2x4 kernel on 6x8"].startswith("your function raised ValueError: operands could not")
    assert "(in backward, line" in bad["non-square 2x4 kernel on 6x8"]
    assert "dx relative error against the numerical gradient" in bad["gradient check: stride 1, no padding, 4x4"]
    assert ("  FAIL  case 'stride 2, padding 1, batch 1, non-square 7x9': dx max abs error "
            in str(report))


def test_conv_backward_with_flipped_kernel():
    report = check_conv_backward(conv_backward_with(lambda k: k[:, ::-1, ::-1]), verbose=False)
    assert (report.score, report.max_score) == (1, N_CONV_BACK)
    assert "dx max abs error" in failing(report)["non-square 2x4 kernel on 6x8"]


def test_conv_forward_with_swapped_output_axes():
    def swapped(x, W, b, stride, padding):
        out = Fn.conv2d(x, W, b, stride, padding)[0]
        return out.transpose(0, 1, 3, 2)

    report = check_conv_forward(swapped, verbose=False)
    bad = failing(report)
    assert bad["stride 2, padding 1, batch 1, non-square 7x9"] == "expected output shape (1, 4, 4, 5), got (1, 4, 5, 4)"
    assert "non-square 2x4 kernel on 6x8" in bad
    # square outputs keep their shape but put values in the wrong places
    assert bad["3x3 kernel, stride 1, no padding"].startswith("output max abs error")
    # only the 1x1 outputs of the full-size kernel survive a transpose
    assert report.score == 1


def test_pool_backward_that_assigns_instead_of_accumulating():
    overlapping = {"overlapping 3x3 windows, stride 2, non-square 7x9", "overlapping 2x2 windows, stride 1, batch 1, 5x6",
                   "gradient check: overlapping 3x3 windows, stride 2, 7x7"}
    for mode in ("avg", "max"):
        report = check_pool_backward(pool_backward_assigning(mode), mode, verbose=False)
        assert (report.score, report.max_score) == (N_POOL + 1 - 3, N_POOL + 1), str(report)
        bad = failing(report)
        assert set(bad) == overlapping
        assert bad["overlapping 2x2 windows, stride 1, batch 1, 5x6"].startswith("dx max abs error")
        assert "relative error against the numerical gradient" in bad["gradient check: overlapping 3x3 windows, stride 2, 7x7"]


def test_max_pool_forward_starting_from_zero_fails_on_negative_inputs():
    def from_zero(x, k, s):
        N, C, H, W = x.shape
        out = np.zeros((N, C, (H - k) // s + 1, (W - k) // s + 1))
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                for p in range(k):
                    for q in range(k):
                        out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, i * s + p, j * s + q])
        return out

    report = check_pool_forward(from_zero, "max", verbose=False)
    # the overlapping 3x3 windows and the whole-input window always hold a positive value; every
    # other case has some all-negative window, and the all-negative case has nothing else
    assert (report.score, report.max_score) == (2, N_POOL)
    assert failing(report)["all inputs negative"].startswith("output max abs error 3.6e+00 (tolerance 1e-08)")
    assert failing(report)["all inputs negative"].endswith(", got 0")
    assert check_pool_forward(from_zero, "avg", verbose=False).score == 0      # not an average at all


def test_softmax_without_max_shift_fails_on_large_logits(capsys):
    report = check_softmax_cross_entropy(softmax_ce_unshifted)
    out = capsys.readouterr()
    assert out.err == ""                                              # overflow warnings are captured
    bad = failing(report)
    assert set(bad) == {"logits near +1e4, batch 4", "logits between -1e4 and 1e4, batch 6",
                        "logits near -1e4, batch 3",
                        "confident and right: logit 1e4 on the label, loss 0, batch 3",
                        "confident and wrong: logits +-1e4 off the label, batch 2"}
    assert report.score == N_SOFTMAX - 5
    message = bad["logits near +1e4, batch 4"]
    assert message.startswith("loss is nan; dlogits has 40 non-finite value(s) (nan), the first at index (0, 0); "
                              "hint: exp overflows beyond 709, so subtract each row's max logit")
    assert message.count("hint:") == 1
    assert message.endswith("NumPy warned: RuntimeWarning: overflow encountered in exp; "
                            "RuntimeWarning: invalid value encountered in divide")
    assert "FAIL  case 'logits near +1e4, batch 4': loss is nan; " in out.out
    # taking the log of an underflowed probability: inf, not nan
    assert bad["confident and wrong: logits +-1e4 off the label, batch 2"].startswith("loss is inf; ")


def test_softmax_gradient_missing_the_mean():
    report = check_softmax_cross_entropy(softmax_ce_missing_mean, verbose=False)
    bad = failing(report)
    # batch 1 is the one case where forgetting 1/N does no harm
    passed = [c.name for c in report.cases if c.passed]
    assert passed == ["batch 1", "confident and right: logit 1e4 on the label, loss 0, batch 3"]
    assert report.score == 2
    assert bad["batch 5, 10 classes"].startswith("dlogits max abs error")
    assert "loss" not in bad["batch 5, 10 classes"].split(";")[0]
    assert "relative error against the numerical gradient" in bad[
        "gradient check: dlogits against your own loss, batch 4, 5 classes"]


@pytest.mark.parametrize("check,args", [
    (check_conv_forward, ()), (check_conv_backward, ()), (check_pool_forward, ("avg",)),
    (check_pool_backward, ("max",)), (check_softmax_cross_entropy, ()), (check_linear_backward, ()),
])
def test_stub_gets_zero_with_the_exception(check, args):
    report = check(stub, *args, verbose=False)
    assert report.score == 0 and report.max_score > 0 and not report.passed
    for case in report.cases:
        assert case.message.startswith("your function raised NotImplementedError: implement this function (in stub, line ")
    assert str(report).splitlines()[1].startswith(
        f"  FAIL  every case, e.g. case '{report.cases[0].name}': your function raised NotImplementedError")
    assert len(str(report).splitlines()) == 2


def test_common_mistakes_get_specific_messages():
    report = check_conv_forward(lambda x, W, b, s, p: None, verbose=False)
    assert report.cases[0].message == "output is None: did you forget a return statement?"
    report = check_conv_forward(lambda x, W, b, s, p: Fn.conv2d(x, W, b, s, p), verbose=False)
    assert report.cases[0].message == "expected output as one array, got a tuple of 2 items; return output only"
    report = check_conv_backward(lambda *args: conv_backward(*args)[:2], verbose=False)
    assert report.cases[0].message == "expected a tuple of 3 items (dx, dW, db), got 2 items"
    report = check_conv_forward(lambda *args: conv_forward(*args).astype(np.float32), verbose=False)
    assert report.cases[0].message.endswith("(your output has dtype float32; compute in the inputs' dtype, float64)")

    def in_place(dout, x, k, s):
        x -= x.max()                                        # clobbers the caller's array
        return pool_backward("avg")(dout, x, k, s)
    report = check_pool_backward(in_place, "avg", verbose=False)
    assert report.cases[0].message.startswith("your function changed its input x in place")

    report = check_softmax_cross_entropy(lambda z, y: (np.zeros(len(y)), softmax_ce(z, y)[1]), verbose=False)
    assert report.cases[0].message == "loss must be one number (the mean over the batch), got an array of shape (5,)"


def test_output_is_deterministic(capsys):
    check_softmax_cross_entropy(softmax_ce_missing_mean)
    check_conv_backward(conv_backward_with(lambda k: k[:, ::-1, ::-1]))
    first = capsys.readouterr().out
    check_softmax_cross_entropy(softmax_ce_missing_mean)
    check_conv_backward(conv_backward_with(lambda k: k[:, ::-1, ::-1]))
    assert capsys.readouterr().out == first


def test_report_object():
    report = GradeReport("demo", [CaseResult("a", True, "ok"), CaseResult("b", False, "wrong shape")])
    assert (report.score, report.max_score, report.passed) == (1, 2, False)
    name, passed, message = report.cases[1]
    assert (name, passed, message) == ("b", False, "wrong shape")
    assert str(report) == "demo: 1/2\n  ok    case 'a'\n  FAIL  case 'b': wrong shape"
    assert repr(report) == "GradeReport('demo', score=1/2, passed=False)"
    assert not GradeReport("empty").passed

    class Printer:
        def __init__(self):
            self.texts = []

        def text(self, s):
            self.texts.append(s)
    printer = Printer()
    report._repr_pretty_(printer, False)
    assert printer.texts == [str(report)]
    # once a check printed it, the notebook's value line is only a summary
    report.show()
    report._repr_pretty_(printer, False)
    assert printer.texts[-1] == repr(report)
    with pytest.raises(ValueError, match="mode must be 'avg' or 'max'"):
        check_pool_forward(pool_forward("max"), "min")


# ----------------------------------------------------------------------------------------------
# Assignment 3
# ----------------------------------------------------------------------------------------------

class Oracle:
    """A 'model' whose logits come from the label written into pixel (0, 0): accuracy on demand."""
    dtype = np.float32

    def forward(self, x):
        return np.eye(10, dtype=np.float32)[x[:, 0, 0, 0].astype(int)] * 10


def test_check_trained_accuracy():
    y = np.arange(200) % 10
    x = np.zeros((200, 1, 32, 32), np.float32)
    x[:, 0, 0, 0] = y
    report = check_trained_accuracy(Oracle(), 0.98, x=x, y=y, verbose=False)
    assert report.passed and report.cases[0].message.startswith("accuracy 100.00% (test loss ")
    x[:10, 0, 0, 0] = (y[:10] + 1) % 10                                # 10 of 200 wrong: 95%
    report = check_trained_accuracy(Oracle(), 0.98, x=x, y=y, verbose=False)
    assert report.score == 0
    assert report.cases[0].name == "test accuracy on 200 MNIST test images >= 98.00%"
    assert report.cases[0].message.startswith("accuracy 95.00% (test loss")
    assert "is below 98.00%" in report.cases[0].message

    untrained = check_trained_accuracy(LeNet5(seed=0), 0.5, x=x[:50] * 0, y=y[:50], verbose=False)
    assert untrained.score == 0

    class Broken:
        dtype = np.float32

        def forward(self, x):
            raise NotImplementedError("train me")
    assert "evaluating the model raised NotImplementedError: train me" in \
        check_trained_accuracy(Broken(), x=x, y=y, verbose=False).cases[0].message


def test_check_trained_accuracy_loads_the_mnist_test_set(monkeypatch):
    import lenet_core.data as data

    labels = np.arange(30) % 10
    digits = np.zeros((30, 28, 28), np.uint8)
    digits[:, 0, 0] = labels                      # becomes pixel (2, 2) after padding by 2
    seen = {}

    def fake_load_mnist(root=None, **kwargs):
        seen["root"] = root
        return data.MNIST(None, None, digits, labels)
    monkeypatch.setattr(data, "load_mnist", fake_load_mnist)

    class PixelOracle(Oracle):
        def forward(self, x):
            assert x.shape[1:] == (1, 32, 32)
            return super().forward(np.round(x[:, :, 2:, 2:] * data.MNIST_STD * 255 + data.MNIST_MEAN * 255))

    report = check_trained_accuracy(PixelOracle(), root="somewhere", verbose=False)
    assert seen["root"] == "somewhere"
    assert report.passed and report.cases[0].name == "test accuracy on 30 MNIST test images >= 98.00%"
    with pytest.raises(ValueError, match="pass both x and y"):
        check_trained_accuracy(PixelOracle(), x=np.zeros((1, 1, 32, 32)))


def test_check_completeness():
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((3, 1, 4, 4))
    baseline = np.zeros((1, 1, 4, 4))
    inputs[:, :, 0] = 0                                               # a row equal to the baseline
    weights = rng.standard_normal((1, 4, 4))
    f_inputs = (inputs * weights).sum(axis=(1, 2, 3))                # a linear F: IG is exact
    attributions = (inputs - baseline) * weights
    report = check_completeness(attributions, inputs, baseline, f_inputs, 0.0, names=["a", "b", "c"],
                                verbose=False)
    assert (report.score, report.max_score) == (4, 4), str(report)

    off = attributions.copy()
    off[1] *= 1.2                                                     # 20% off: fails the default 5%
    report = check_completeness(off, inputs, baseline, f_inputs, 0.0, verbose=False)
    assert [c.name for c in report.failures] == ["example 1"]
    assert "gap" in report.failures[0].message and "F(input) - F(baseline)" in report.failures[0].message

    stray = attributions + 1e-2 * (inputs == 0)                       # attribution on baseline pixels
    report = check_completeness(stray, inputs, baseline, f_inputs, 0.0, rtol=1, verbose=False)
    assert [c.name for c in report.failures] == ["zero attribution where the input equals the baseline"]

    single = check_completeness(attributions[0], inputs[0], baseline[0], f_inputs[0], 0.0, verbose=False)
    assert single.passed and single.max_score == 2
    shapes = check_completeness(attributions[:, 0], inputs, baseline, f_inputs, 0.0, verbose=False)
    assert shapes.score == 0 and "attributions have shape (3, 4, 4) but the inputs (3, 1, 4, 4)" in str(shapes)


# ----------------------------------------------------------------------------------------------
# check_integrated_gradients
# ----------------------------------------------------------------------------------------------

def _trapezoid_ig(model, image, target, baseline, steps):
    alphas = np.linspace(0, 1, steps + 1)
    points = baseline[None] + alphas[:, None, None, None] * (image - baseline)[None]
    logits = model.forward(points)
    dout = np.zeros_like(logits)
    dout[:, target] = 1
    grads = model.backward(dout)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
    return (image - baseline) * np.tensordot(weights, grads, axes=1)


@pytest.fixture(scope="module")
def ig_setup():
    from lenet_core import LeNet5
    rng = np.random.default_rng(0)
    return LeNet5(seed=0, dtype=np.float64), rng.standard_normal((2, 1, 32, 32)), [3, 8]


def test_integrated_gradients_reference_passes(ig_setup):
    from lenet_core.grading import check_integrated_gradients
    model, images, targets = ig_setup
    report = check_integrated_gradients(_trapezoid_ig, model, images, targets, verbose=False)
    assert report.passed and report.max_score == 4, str(report)


def test_integrated_gradients_planted_bugs(ig_setup):
    from lenet_core.grading import check_integrated_gradients
    model, images, targets = ig_setup

    def no_difference(model, image, target, baseline, steps):      # forgets the (x - x') factor
        return _trapezoid_ig(model, image, target, baseline, steps) / (image - baseline)

    def stub(model, image, target, baseline, steps):
        raise NotImplementedError("build the path points")

    report = check_integrated_gradients(no_difference, model, images, targets, verbose=False)
    assert report.score == 0 and "attributions max abs error" in report.cases[0].message
    report = check_integrated_gradients(stub, model, images, targets, verbose=False)
    assert report.score == 0
    assert "NotImplementedError: build the path points" in report.cases[0].message
    assert "digit 1 (class 8): completeness" in str(report)


# ----------------------------------------------------------------------------------------------
# points(): what an nbgrader test cell counts
# ----------------------------------------------------------------------------------------------

def test_points_counts_passed_cases_not_the_score_property(monkeypatch):
    from lenet_core import grading

    report = check_conv_forward(stub, verbose=False)
    assert grading.points(report) == 0
    monkeypatch.setattr(GradeReport, "score", property(lambda self: self.max_score))
    assert report.score == report.max_score                  # the patched property lies
    assert grading.points(report) == 0                       # the count does not
    assert grading.points(check_conv_forward(conv_forward, verbose=False)) == N_CONV


def test_points_refuses_a_report_it_did_not_make():
    from lenet_core import grading

    class FakeReport:
        score = max_score = 10
        cases = [CaseResult("x", True, "ok")] * 10

    with pytest.raises(TypeError, match="expected the GradeReport of a lenet_core.grading check, got FakeReport"):
        grading.points(FakeReport())
    forged = GradeReport("forged", [("x", True, "ok")] * 3)   # plain tuples, not CaseResult
    assert grading.points(forged) == 0


def test_grading_kernel_memory_limit_parsing(monkeypatch):
    from lenet_core import grading_kernel as gk

    assert gk.parse_limit("3G") == 3 * 1024 ** 3
    assert gk.parse_limit("1500M") == 1500 * 1024 ** 2 and gk.parse_limit("2GiB") == 2 * 1024 ** 3
    assert gk.parse_limit("123456") == 123456
    for bad in ["lots", "-1G", "0"]:
        with pytest.raises(ValueError, match="LENET_GRADING_MEMORY"):
            gk.parse_limit(bad)
    monkeypatch.delenv(gk.ENV_VAR, raising=False)
    assert gk.memory_limit() == gk.DEFAULT_LIMIT
    monkeypatch.setenv(gk.ENV_VAR, "2G")
    assert gk.memory_limit() == 2 * 1024 ** 3


# ----------------------------------------------------------------------------------------------
# The checks of assignments 3-6 (their nbgrader runs are in test_assignments.py)
# ----------------------------------------------------------------------------------------------

def test_numerical_gradient_check():
    from lenet_core.gradcheck import numerical_gradient
    from lenet_core.grading import check_numerical_gradient

    assert check_numerical_gradient(numerical_gradient, verbose=False).passed

    def forward_difference(f, x, h=1e-5):
        f0, grad = f(), np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h
            grad[i] = (f() - f0) / h
            x[i] = old
        return grad

    def no_restore(f, x, h=1e-5):
        grad = numerical_gradient(f, x, h)
        x += 1
        return grad
    report = check_numerical_gradient(forward_difference, verbose=False)
    assert report.score == 0 and "gradient relative error" in report.cases[0].message
    report = check_numerical_gradient(no_restore, verbose=False)
    assert report.cases[0].message == "x is not restored after the perturbations: put each entry back"


def test_planted_bug_and_its_repair():
    from lenet_core.gradcheck import check_model
    from lenet_core.grading import PLANTED_BUG, check_planted_bug, check_tanh_backward, lenet_with_planted_bug

    result = check_model(lenet_with_planted_bug(), np.random.default_rng(0).standard_normal((2, 1, 32, 32)),
                         np.array([3, 7]), samples=4)
    assert {k for k, v in result.items() if v > 1e-4} == {"x", *PLANTED_BUG[1]}
    assert check_planted_bug(*PLANTED_BUG, verbose=False).passed
    report = check_planted_bug("C3", ["C1.W", "C3.W", "C5.W"], verbose=False)
    assert report.score == 0 and "1 that are right (e.g. 'C5.W')" in report.cases[1].message
    assert check_tanh_backward(lambda dout, y: dout * (1 - y ** 2), verbose=False).passed
    report = check_tanh_backward(lambda dout, y: dout * (1 - y), verbose=False)
    assert report.score == 0 and "still fails" in report.cases[-1].message


def test_pick_by_validation_check():
    from lenet_core.grading import PICK_CASES, check_pick_by_validation

    assert check_pick_by_validation(lambda h: max(h, key=lambda k: h[k]["val_acc"][-1]), verbose=False).passed
    by_train = check_pick_by_validation(lambda h: max(h, key=lambda k: h[k]["train_acc"][-1]), verbose=False)
    by_best = check_pick_by_validation(lambda h: max(h, key=lambda k: max(h[k]["val_acc"])), verbose=False)
    by_test = check_pick_by_validation(lambda h: max(h, key=lambda k: h[k].get("test_acc", [0])[-1]),
                                       verbose=False)
    for report in (by_train, by_best, by_test):
        assert 0 <= report.score < len(PICK_CASES)
    assert "a test accuracy is there too: never look at it" in {c.name for c in by_test.failures}
    assert "the last epoch counts, not the best one" in {c.name for c in by_best.failures}


def test_completeness_gap_check():
    from lenet_core.attribution import model_output
    from lenet_core.grading import check_completeness_gap

    model = LeNet5(seed=0, dtype=np.float64)
    images = np.random.default_rng(1).standard_normal((2, 1, 32, 32))

    def right(m, image, target, baseline, attributions):
        return attributions.sum() - (model_output(m, image, target) - model_output(m, baseline, target))

    def zero(*args):
        return 0.0
    assert check_completeness_gap(right, model, images, [1, 2], verbose=False).passed
    assert check_completeness_gap(zero, model, images, [1, 2], verbose=False).score == 0
