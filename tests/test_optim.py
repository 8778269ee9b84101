"""lenet_core.optim: the optimizers and schedules against torch.optim, and the one table of names."""

import numpy as np
import pytest

from lenet_core import Linear, Sequential, Tanh
from lenet_core.optim import SGD, Adam, CosineAnnealingLR, StepLR, make_optimizer


def _torch_twin_of_linear_model(torch, model):
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    with torch.no_grad():
        for tl, name in zip([net[0], net[2]], ["0", "2"]):
            tl.weight.copy_(torch.tensor(model[name].params["W"]))
            tl.bias.copy_(torch.tensor(model[name].params["b"]))
    return net


@pytest.mark.parametrize("kind,kwargs", [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", dict(lr=1e-2, weight_decay=1e-3)),
])
def test_optimizers_match_torch(rng, kind, kwargs):
    """Five steps on the same model, same data: the weights agree with torch.optim's to 1e-12."""
    torch = pytest.importorskip("torch")
    model = Sequential(Linear(4, 3, rng=0, dtype=np.float64), Tanh(), Linear(3, 2, rng=1, dtype=np.float64))
    net = _torch_twin_of_linear_model(torch, model)
    ours = (SGD if kind == "sgd" else Adam)(model.parameters(), **kwargs)
    theirs = (torch.optim.SGD if kind == "sgd" else torch.optim.Adam)(net.parameters(), **kwargs)
    for _ in range(5):
        x, t = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
        out = model.forward(x)
        model.backward(out - t)                       # gradient of 0.5 * sum((out - t)^2)
        ours.step(model.gradients())
        theirs.zero_grad()
        (0.5 * ((net(torch.tensor(x)) - torch.tensor(t)) ** 2).sum()).backward()
        theirs.step()
    for name, tl in [("0", net[0]), ("2", net[2])]:
        assert np.allclose(model[name].params["W"], tl.weight.detach().numpy(), rtol=0, atol=1e-12)
        assert np.allclose(model[name].params["b"], tl.bias.detach().numpy(), rtol=0, atol=1e-12)


def test_schedules():
    opt = SGD({"w": np.zeros(1)}, lr=1.0)
    step = StepLR(opt, step_size=2, gamma=0.5)
    assert [step.step() for _ in range(4)] == [1.0, 0.5, 0.5, 0.25]
    opt = SGD({"w": np.zeros(1)}, lr=1.0)
    cos = CosineAnnealingLR(opt, T_max=4, eta_min=0.0)
    assert np.allclose([cos.step() for _ in range(4)], [(1 + np.cos(np.pi * t / 4)) / 2 for t in range(1, 5)])
    assert opt.lr == 0.0


def test_optimizer_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", {"w": np.zeros(1)}, 0.1)
    with pytest.raises(ValueError, match="learning rate must be positive"):
        SGD({"w": np.zeros(1)}, lr=0)
    opt = SGD({"w": np.zeros(2)}, lr=0.1)
    with pytest.raises(ValueError, match=r"'w' has shape \(3,\), parameter has \(2,\)"):
        opt.step({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="do not match"):
        opt.step({"v": np.zeros(2)})


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_one_table_of_names_drives_both_engines():
    torch = pytest.importorskip("torch")
    from lenet_core import optim
    from lenet_core.twin import TorchLeNet5, recipe_optimizer
    for name, (cls, fixed) in optim.OPTIMIZERS.items():
        ours = optim.make_optimizer(name, {"w": np.zeros(1)}, 0.1)
        theirs, _ = recipe_optimizer(TorchLeNet5(), 3, {"optimizer": name, "schedule": "none"})
        assert type(ours).__name__ == type(theirs).__name__ == cls
        assert all(getattr(ours, k) == theirs.defaults[k] == v for k, v in fixed.items())
    for name, entry in optim.SCHEDULES.items():
        ours = optim.make_scheduler(name, SGD({"w": np.zeros(1)}, lr=1.0), 9)
        _, theirs = recipe_optimizer(TorchLeNet5(), 9, {"schedule": name})
        assert (ours is None) == (theirs is None) == (entry is None)
        if entry is not None:
            assert type(ours).__name__ == type(theirs).__name__ == entry[0]
            assert [ours.step() for _ in range(9)] == pytest.approx(
                [(theirs.step(), theirs.get_last_lr()[0])[1] / 0.05 for _ in range(9)])


def test_make_scheduler():
    from lenet_core.optim import make_scheduler
    opt = SGD({"w": np.zeros(1)}, lr=1.0)
    assert isinstance(make_scheduler("cosine", opt, 10), CosineAnnealingLR)
    step = make_scheduler("step", opt, 9)
    assert isinstance(step, StepLR) and step.step_size == 3
    assert make_scheduler("none", opt, 10) is None
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        make_scheduler("linear", opt, 10)
