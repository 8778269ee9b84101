"""Assignment 5 (chapter 8): the PyTorch twin: weights copied both ways, parity of logits and of input
gradients (autograd).

Student functions: ``copy_to_torch(model) -> TorchLeNet5``, ``copy_from_torch(module) -> LeNet5``,
``torch_input_gradient(module, x, target) -> dF/dx``. The sandbox hands them models built from the
student build; it sends back the logits of what they return on fixed inputs, compared here with the
full lenet_core. The student build leaves out :func:`lenet_core.twin.to_torch` and
:func:`~lenet_core.twin.from_torch`, and holds no attribution module (no scratch input gradient).
When graded, the answers also go without the scratch model's backward passes: the input gradient
is autograd's, not LeNet-5's own (which students may call in the notebook to compare).
"""

import numpy as np

from ..attribution import output_gradient
from ..model import LeNet5
from ..twin import scratch_name, to_torch
from .report import Case, Fail, Group, Model, compare

KEEP = ("data", "model", "twin")
ABSENT = {"twin": ("to_torch", "from_torch")}
GRADING_ABSENT = {"model": ("Sequential.backward",),
                  "layers": tuple(f"{layer}.backward" for layer in ("Conv2d", "_Pool2d", "Linear", "Tanh",
                                                                    "Sigmoid", "ReLU", "Flatten")),
                  "functional": ("conv2d_backward", "conv2d_backward_naive", "pool2d_backward",
                                 "pool2d_backward_naive")}
PRELUDE = """import numpy as np
import torch
from lenet_core.model import LeNet5
from lenet_core.twin import TorchLeNet5, scratch_name, torch_name
"""


def _model(seed, dtype):
    model = LeNet5(seed=seed, dtype=dtype)
    return model, Model("LeNet5", {k: v.copy() for k, v in model.parameters().items()}, np.dtype(dtype).name)


def _logits_check(expected, tol, kind):
    def check(got):
        if not isinstance(got, dict) or "logits" not in got:
            kind_got = got.get("type") if isinstance(got, dict) else type(got).__name__
            raise Fail(f"expected a {kind}, got {kind_got}")
        compare("logits", got["logits"], expected, atol=tol)
    return check


def to_torch_cases():
    cases = []
    for i, (name, seed, dtype, tol) in enumerate([("LeNet-5 seed 0, float64", 0, np.float64, 1e-10),
                                                  ("LeNet-5 seed 1, float64, other weights", 1, np.float64, 1e-10),
                                                  ("LeNet-5 seed 2, float32", 2, np.float32, 1e-4)]):
        model, arg = _model(seed, dtype)
        x = np.random.default_rng([15, i]).standard_normal((4, 1, 32, 32)).astype(dtype)
        cases.append(Case(name, "copy_to_torch", (arg,), _logits_check(model.forward(x).astype(np.float64), tol,
                                                                       "torch.nn.Module"),
                          then="torch_logits", then_args=(x,)))
    return cases


def _torch_weights(seed, dtype):
    """A TorchLeNet5's weights as torch's default initialisation draws them (seeded), in scratch names."""
    import torch

    from ..twin import TorchLeNet5
    torch.manual_seed(seed)
    module = TorchLeNet5().to(getattr(torch, dtype))
    return module, {scratch_name(n): p.detach().numpy().copy() for n, p in module.named_parameters()}


def from_torch_cases():
    import torch

    cases = []
    for i, (dtype, tol) in enumerate([("float64", 1e-10), ("float64", 1e-10), ("float32", 1e-4)]):
        module, params = _torch_weights(i, dtype)
        x = np.random.default_rng([16, i]).standard_normal((4, 1, 32, 32))
        with torch.no_grad():
            expected = module(torch.from_numpy(x).to(getattr(torch, dtype))).double().numpy()
        cases.append(Case(f"TorchLeNet5 seed {i}, {dtype}", "copy_from_torch", (Model("TorchLeNet5", params, dtype),),
                          _logits_check(expected, tol, "lenet_core model"), then="scratch_logits",
                          then_args=(x.astype(dtype),)))
    return cases


def hidden_from_torch_cases():
    model, arg = _model(5, np.float64)
    expected = model.parameters()

    def check(got):
        state = got.get("state") if isinstance(got, dict) else None
        if not isinstance(state, dict):
            raise Fail("expected a lenet_core model")
        if set(state) != set(expected):
            raise Fail("the model's parameters are not LeNet-5's")
        for k, v in expected.items():
            if not (isinstance(state[k], np.ndarray) and state[k].shape == v.shape and np.array_equal(state[k], v)):
                raise Fail(f"{k} is not copied exactly")
    return [Case("hidden case: every parameter copied exactly", "copy_from_torch",
                 (Model("TorchLeNet5", arg.params, "float64"),), check, then="state_dict")]


def _gradient_case(name, seed, n, target, x_seed):
    model = LeNet5(seed=seed, dtype=np.float64)
    x = np.random.default_rng(x_seed).standard_normal((n, 1, 32, 32))
    _, expected = output_gradient(model, x, target)
    params = {scratch_name(k): v.numpy().copy() for k, v in to_torch(model).state_dict().items()}
    return Case(name, "torch_input_gradient", (Model("TorchLeNet5", params, "float64"), x, target),
                lambda got: compare("dF/dx", got, expected, atol=1e-10), unchanged=((1, "x"),))


def gradient_cases():
    return [_gradient_case(name, i, n, t, [17, i]) for i, (name, n, t) in
            enumerate([("one image, class 3", 1, 3), ("batch of 3, class 7", 3, 7), ("batch of 2, class 0", 2, 0)])]


def hidden_gradient_cases():
    return [_gradient_case("hidden case: another model", 9, 2, 5, 20261131)]


GROUPS = {
    "check_copy_to_torch": Group("copy LeNet-5 to PyTorch", to_torch_cases, torch=True),
    "check_copy_from_torch": Group("copy PyTorch weights into LeNet-5", from_torch_cases, torch=True),
    "hidden_copy_from_torch": Group("copy from PyTorch, hidden cases", hidden_from_torch_cases, hidden=True,
                                    torch=True),
    "check_torch_input_gradient": Group("input gradient with autograd", gradient_cases, torch=True),
    "hidden_torch_input_gradient": Group("input gradient, hidden cases", hidden_gradient_cases, hidden=True,
                                         torch=True),
}
