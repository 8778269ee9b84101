"""lenet_core.lenet1998.twin: the PyTorch twin of the 1998 network computes the same outputs, loss and
gradients in float64, under every switch."""

import numpy as np
import pytest
import torch

from lenet_core import SoftmaxCrossEntropy
from lenet_core.gradcheck import relative_error
from lenet_core.lenet1998 import LeNet5_1998, RBFLoss
from lenet_core.lenet1998.twin import rbf_loss_torch, to_torch_1998, torch_name_1998


@pytest.mark.parametrize("switches", [dict(), dict(output="linear", activation="tanh", c3="full", pooling="avg"),
                                      dict(output="linear", activation="relu", pooling="max", init="lecun")])
def test_twin_parity(rng, switches):
    model = LeNet5_1998(seed=2, dtype=np.float64, **switches)
    module = to_torch_1998(model)
    x = rng.standard_normal((4, 1, 32, 32))
    labels = np.array([0, 4, 7, 9])
    rbf = switches.get("output", "rbf") == "rbf"
    loss_fn = RBFLoss() if rbf else SoftmaxCrossEntropy()
    out = model.forward(x)
    loss = loss_fn.forward(out, labels)
    dx = model.backward(loss_fn.backward())
    xt = torch.from_numpy(x).requires_grad_(True)
    t_out = module(xt)
    t_labels = torch.from_numpy(labels)
    t_loss = rbf_loss_torch(t_out, t_labels) if rbf else torch.nn.functional.cross_entropy(t_out, t_labels)
    t_loss.backward()
    errors = {"output": relative_error(out, t_out.detach().numpy()), "loss": abs(loss - t_loss.item()) / abs(loss),
              "x": relative_error(dx, xt.grad.numpy())}
    t_params = dict(module.named_parameters())
    for name, g in model.gradients().items():
        errors[name] = relative_error(g, t_params[torch_name_1998(name)].grad.numpy())
    print(switches, {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-10, errors
