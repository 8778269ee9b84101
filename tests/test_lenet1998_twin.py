"""lenet_core.lenet1998.twin: the PyTorch twin of the 1998 network computes the same outputs, loss and
gradients in float64, under every switch; the stacked twin (several seeds as one computation) makes each
seed's own SDLM update."""

import numpy as np
import pytest
import torch

from lenet_core import SoftmaxCrossEntropy
from lenet_core.gradcheck import relative_error
from lenet_core.lenet1998 import LeNet5_1998, RBFLoss, prepare_1998
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


def test_stacked_step_is_each_seeds_own_step(rng):
    """One per-pattern SDLM step of 3 seeds stacked = the step of each seed's own twin, to 1e-6."""
    from experiments.per_pattern_1998 import stacked_update
    from experiments.sdlm_experiments import sdlm_update
    from lenet_core.lenet1998.twin import StackedLeNet5_1998

    models = [LeNet5_1998(seed=s) for s in range(3)]
    stack = StackedLeNet5_1998(models)
    x = torch.from_numpy(rng.standard_normal((3, 1, 1, 32, 32)).astype(np.float32))
    y = torch.tensor([[3], [7], [0]])
    steps = {n: torch.from_numpy(rng.uniform(0.01, 0.05, p.shape).astype(np.float32))
             for n, p in stack.params.items()}
    before = {n: p.detach().clone() for n, p in stack.params.items()}
    stacked_update(stack, x, y, [steps[n] for n in stack.names])
    moved = 0.0
    for k, model in enumerate(models):
        net = to_torch_1998(model)
        params = dict(net.named_parameters())
        names = list(params)
        assert names == stack.names
        assert all(torch.equal(before[n][k], params[n].detach()) for n in names)
        sdlm_update([params[n] for n in names], rbf_loss_torch(net(x[k]), y[k]),
                    [steps[n][k] for n in names])
        for n in names:
            delta = params[n].detach() - before[n][k]
            moved = max(moved, float(delta.abs().max()))
            assert float((stack.params[n][k].detach() - params[n].detach()).abs().max()) < 1e-6, n
    assert moved > 1e-3                                  # the step moved the weights


def test_stacked_training_is_sdlm_torch_per_seed(mnist):
    """The stacked per-pattern trainer follows sdlm_torch's batch-1 run of every seed."""
    from experiments.per_pattern_1998 import train
    from experiments.sdlm_experiments import sdlm_torch

    x, y = prepare_1998(mnist.x_train[:120]), mnist.y_train[:120]
    val = (prepare_1998(mnist.x_train[-100:]), mnist.y_train[-100:])
    history, *_ = train(x, y, val, seeds=[0, 1], passes=2, eta_scale=0.25, early_every=50,
                        progress=False)
    for k, seed in enumerate([0, 1]):
        own = sdlm_torch(x, y, val, passes=2, batch_size=1, seed=seed, eta_scale=0.25,
                         early_every=50)
        assert [h["val_error"][k] for h in history] == pytest.approx(own["val_error"], abs=0.011)
        assert [h["train_loss"][k] for h in history] == pytest.approx(own["train_loss"], rel=1e-4)
