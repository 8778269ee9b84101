"""LeNet-5's architecture, state dicts and .npz weights, and the optimizers against torch.optim."""

import numpy as np
import pytest

from lenet_core import LeNet5, Linear, Sequential, Tanh, load_weights, save_weights
from lenet_core.optim import SGD, Adam, CosineAnnealingLR, StepLR, make_optimizer


def test_lenet5_architecture(rng):
    model = LeNet5()
    assert model.num_parameters() == 61706
    expected = {"C1.W": (6, 1, 5, 5), "C1.b": (6,), "C3.W": (16, 6, 5, 5), "C3.b": (16,),
                "C5.W": (120, 16, 5, 5), "C5.b": (120,), "F6.W": (84, 120), "F6.b": (84,),
                "OUT.W": (10, 84), "OUT.b": (10,)}
    assert {k: v.shape for k, v in model.parameters().items()} == expected
    x = rng.standard_normal((3, 1, 32, 32)).astype(np.float32)
    shapes = []
    for layer in model:
        x = layer.forward(x)
        shapes.append(x.shape[1:])
    assert shapes == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5),
                      (120, 1, 1), (120, 1, 1), (120,), (84,), (84,), (10,)]
    assert x.dtype == np.float32


def test_seed_makes_the_same_model():
    a, b, c = LeNet5(seed=1), LeNet5(seed=1), LeNet5(seed=2)
    assert all(np.array_equal(a.parameters()[k], b.parameters()[k]) for k in a.parameters())
    assert not np.array_equal(a.parameters()["C1.W"], c.parameters()["C1.W"])


def test_input_shape_errors_name_the_layer(rng):
    with pytest.raises(ValueError, match=r"Conv2d\(1, 6.*expects input \(N, 1, H, W\), got shape \(2, 3, 32, 32\)"):
        LeNet5().forward(rng.standard_normal((2, 3, 32, 32)))
    with pytest.raises(ValueError, match=r"expects input \(N, 120\), got shape \(2, 480\)"):
        LeNet5().forward(rng.standard_normal((2, 1, 36, 36)))


def test_save_and_load_roundtrip(tmp_path, rng):
    model, other = LeNet5(seed=1), LeNet5(seed=2)
    path = save_weights(model, tmp_path / "w.npz")
    load_weights(other, path)
    x = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    assert np.array_equal(model.forward(x), other.forward(x))
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]            # no temporary file left
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(model.parameters())


def _write(path, state):
    np.savez(path, **state)
    return path


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("C3.b"), r"missing \['C3.b'\]"),
    (lambda s: s.update(extra=np.zeros(1)), r"unexpected \['extra'\]"),
    (lambda s: s.update({"F6.W": np.zeros((84, 121))}), r"'F6.W' has shape \(84, 121\), the model expects \(84, 120\)"),
    (lambda s: s.update({"OUT.b": np.full(10, np.nan)}), r"'OUT.b' contains NaN"),
])
def test_load_rejects_bad_weights_and_changes_nothing(tmp_path, change, message):
    state = LeNet5(seed=1).state_dict()
    change(state)
    path = _write(tmp_path / "bad.npz", state)
    model = LeNet5(seed=2)
    before = model.state_dict()
    with pytest.raises(ValueError, match=str(path).replace(".", r"\.") + ".*" + message):
        load_weights(model, path)
    assert all(np.array_equal(before[k], v) for k, v in model.parameters().items())


def test_load_refuses_pickled_objects_and_junk(tmp_path):
    state = LeNet5().state_dict()
    state["C1.b"] = np.array([object()] * 6, dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **state)
    with pytest.raises(ValueError, match="pickled.npz is not a plain .npz"):
        load_weights(LeNet5(), path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.npz is not a readable .npz"):
        load_weights(LeNet5(), junk)
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_weights(LeNet5(), tmp_path / "nothing.npz")


def test_save_refuses_other_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.npz"):
        save_weights(LeNet5(), tmp_path / "w.pkl")
    assert list(tmp_path.iterdir()) == []


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
