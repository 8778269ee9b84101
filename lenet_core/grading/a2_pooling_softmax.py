"""Assignment 2 (chapters 3 and 4): average and max pooling forward and backward, softmax cross-entropy.

Student functions: ``avg_pool_forward(x, kernel_size, stride)``, ``max_pool_forward``, ``avg_pool_backward(dout,
x, kernel_size, stride) -> dx``, ``max_pool_backward``, ``softmax_cross_entropy(logits, labels) -> (loss,
dlogits)``. Compared with :func:`lenet_core.functional.pool2d`, :func:`~lenet_core.functional.pool2d_backward`
and :class:`lenet_core.losses.SoftmaxCrossEntropy`.
"""

import numpy as np

from .. import functional
from ..losses import SoftmaxCrossEntropy
from .report import Case, Fail, Group, as_array, compare, gradient_check, unpack

KEEP = ("data",)
ABSENT = {}
GRADING_ABSENT = {}
PRELUDE = '''import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def windows_of(x, kernel_size, stride):
    """A view (N, C, OH, OW, k, k) of every pooling window (no copy)."""
    k = kernel_size
    view = sliding_window_view(x, (k, k), axis=(2, 3))
    return view[:, :, ::stride, ::stride]
'''

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
POOL_GRADCHECK = ("gradient check: overlapping 3x3 windows, stride 2, 7x7", 1, 2, 7, 7, 3, 2)


def _pool_input(rng, shape, negative=False):
    """Distinct values in [-2, 2], no two closer than 3.6 / x.size: no max-pool window holds a tie."""
    n = int(np.prod(shape))
    x = ((rng.permutation(n) + rng.uniform(0, 0.1, n)) / n * 4 - 2).reshape(shape)
    return x - 3 if negative else x


def forward_cases(mode):
    cases = []
    for i, (name, N, C, H, W, k, s) in enumerate(POOL_CASES):
        x = _pool_input(np.random.default_rng([0, 4, i]), (N, C, H, W), "negative" in name)
        expected = functional.pool2d(x, k, s, mode)[0]
        cases.append(Case(name, f"{mode}_pool_forward", (x, k, s),
                          lambda got, e=expected: compare("output", got, e), unchanged=((0, "x"),)))
    return cases


def backward_cases(mode):
    cases = []
    for i, (name, N, C, H, W, k, s) in enumerate(POOL_CASES):
        rng = np.random.default_rng([0, 5, i])
        x = _pool_input(rng, (N, C, H, W), "negative" in name)
        out, cache = functional.pool2d(x, k, s, mode)
        dout = rng.standard_normal(out.shape)
        expected = functional.pool2d_backward(dout, cache, x.shape, k, s, mode)
        cases.append(Case(name, f"{mode}_pool_backward", (dout, x, k, s),
                          lambda got, e=expected: compare("dx", got, e), unchanged=((0, "dout"), (1, "x"))))
    name, N, C, H, W, k, s = POOL_GRADCHECK
    rng = np.random.default_rng([0, 6, 0])
    x = _pool_input(rng, (N, C, H, W))
    R = rng.standard_normal(functional.pool2d(x, k, s, mode)[0].shape)
    cases.append(Case(name, f"{mode}_pool_backward", (R, x, k, s),
                      lambda got: gradient_check("dx", got, x, lambda: functional.pool2d(x, k, s, mode)[0], R)))
    return cases


def hidden_pool_cases():
    rng = np.random.default_rng(20261127)
    x = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8) / 50.0
    cases = []
    for mode in ("avg", "max"):
        out, cache = functional.pool2d(x, 3, 2, mode)
        dout = rng.standard_normal(out.shape)
        expected = functional.pool2d_backward(dout, cache, x.shape, 3, 2, mode)
        cases.append(Case(f"hidden case: {mode} pooling", f"{mode}_pool_backward", (dout, x, 3, 2),
                          lambda got, e=expected: compare("dx", got, e)))
    return cases


_SOFTMAX_HINT = ("; hint: exp overflows beyond 709, so subtract each row's max logit before exponentiating, "
                 "and compute log(softmax) as shifted - log(sum(exp(shifted))), never as the log of a "
                 "probability that may have underflowed to 0")


def _softmax_check(logits, labels):
    ref = SoftmaxCrossEntropy()
    loss_ref = np.float64(ref.forward(logits, labels))
    dlogits_ref = ref.backward()

    def check(got):
        loss, dlogits = unpack(got, ("loss", "dlogits"))
        loss = as_array("loss", loss)
        if loss.size != 1 or loss.ndim > 1:
            raise Fail(f"loss must be one number (the mean over the batch), got an array of shape {loss.shape}")
        problems = []
        for label, g, e, atol, rtol in (("loss", loss.reshape(()), loss_ref, 1e-10, 1e-10),
                                        ("dlogits", dlogits, dlogits_ref, 1e-10, 0.0)):
            try:
                compare(label, g, e, atol, rtol)
            except Fail as failure:
                problems.append(str(failure))
        if problems:
            nonfinite = any(" is nan" in p or " is inf" in p or "non-finite" in p for p in problems)
            raise Fail("; ".join(problems) + (_SOFTMAX_HINT if nonfinite else ""))
    return check


def softmax_cases():
    rng = np.random.default_rng([0, 7])

    def labels(n, k):
        return rng.integers(0, k, n)
    confident = np.zeros((3, 10))
    confident[np.arange(3), [3, 7, 1]] = 1e4
    wrong = np.zeros((2, 10))
    wrong[0, 4], wrong[1, 9] = 1e4, -1e4
    inputs = [
        ("batch 5, 10 classes", rng.standard_normal((5, 10)) * 2, labels(5, 10)),
        ("batch 1", rng.standard_normal((1, 10)) * 2, labels(1, 10)),
        ("batch 7, 3 classes", rng.standard_normal((7, 3)), labels(7, 3)),
        ("logits near +1e4, batch 4", 1e4 + rng.standard_normal((4, 10)), labels(4, 10)),
        ("logits between -1e4 and 1e4, batch 6", rng.uniform(-1e4, 1e4, (6, 10)), labels(6, 10)),
        ("logits near -1e4, batch 3", -1e4 + rng.standard_normal((3, 10)), labels(3, 10)),
        ("confident and right: logit 1e4 on the label, loss 0, batch 3", confident, np.array([3, 7, 1])),
        ("confident and wrong: logits +-1e4 off the label, batch 2", wrong, np.array([0, 0])),
    ]
    cases = [Case(name, "softmax_cross_entropy", (z, y), _softmax_check(z, y), unchanged=((0, "logits"), (1, "labels")))
             for name, z, y in inputs]
    z, y = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    R = np.ones(())

    def gradcheck(got):
        _, dlogits = unpack(got, ("loss", "dlogits"))
        gradient_check("dlogits", dlogits, z, lambda: np.float64(SoftmaxCrossEntropy().forward(z, y)), R)
    cases.append(Case("gradient check: dlogits against central differences of the loss, batch 4, 5 classes",
                      "softmax_cross_entropy", (z, y), gradcheck))
    return cases


def hidden_softmax_cases():
    rng = np.random.default_rng(20261128)
    z, y = rng.standard_normal((7, 10)) * 3000, rng.integers(0, 10, 7)
    return [Case("hidden case: huge logits", "softmax_cross_entropy", (z, y), _softmax_check(z, y))]


def self_checks() -> dict:
    """The notebook's self-check cases, stored with their answers (``self_checks.npz``):
    overlapping 3x3 windows with stride 2, and softmax cross-entropy with logits near 1e4."""
    rng = np.random.default_rng([2, 99])
    x = _pool_input(rng, (1, 2, 7, 7))
    checks = {"x": x}
    for mode in ("avg", "max"):
        out, cache = functional.pool2d(x, 3, 2, mode)
        dout = checks.setdefault("dout", rng.standard_normal(out.shape))
        checks[f"{mode}_out"] = np.ascontiguousarray(out)
        checks[f"{mode}_dx"] = functional.pool2d_backward(dout, cache, x.shape, 3, 2, mode)
    logits, labels = rng.standard_normal((3, 5)) * 3, np.array([4, 0, 2])
    logits[1] += 1e4
    loss = SoftmaxCrossEntropy()
    checks.update(logits=logits, labels=labels, loss=np.float64(loss.forward(logits, labels)),
                  dlogits=loss.backward())
    return checks


GROUPS = {
    "check_avg_pool_forward": Group("avg pool forward", lambda: forward_cases("avg")),
    "check_max_pool_forward": Group("max pool forward", lambda: forward_cases("max")),
    "check_avg_pool_backward": Group("avg pool backward", lambda: backward_cases("avg")),
    "check_max_pool_backward": Group("max pool backward", lambda: backward_cases("max")),
    "hidden_pool_backward": Group("pool backward, hidden cases", hidden_pool_cases, hidden=True),
    "check_softmax": Group("softmax cross-entropy", softmax_cases),
    "hidden_softmax": Group("softmax cross-entropy, hidden cases", hidden_softmax_cases, hidden=True),
}
