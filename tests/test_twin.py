"""The PyTorch twin: the same function, gradients and optimizer steps as the scratch LeNet-5 (float64,
real MNIST), weights copied both ways, and the same training recipe end to end."""

import numpy as np
import pytest
import torch

from lenet_core import LeNet5
from lenet_core import train as lenet_train
from lenet_core.data import prepare
from lenet_core.gradcheck import relative_error
from lenet_core.losses import SoftmaxCrossEntropy
from lenet_core.optim import SGD, Adam
from lenet_core.train import History, fit
from lenet_core.twin import (TorchLeNet5, evaluate_torch, fit_torch, from_torch, recipe_optimizer,
                             resolve_recipe, scratch_name, to_torch)


@pytest.fixture(scope="module")
def train_batches(mnist):
    """Three real training batches of 64 images (float64, (64, 1, 32, 32)) and their labels."""
    x = prepare(mnist.x_train[:192], dtype=np.float64)
    return [(x[i:i + 64], mnist.y_train[i:i + 64]) for i in range(0, 192, 64)]


def twin_pair(direction):
    """A scratch model and a torch module holding the same float64 weights, copied in ``direction``."""
    if direction == "to_torch":
        model = LeNet5(seed=5, dtype=np.float64)
        module = to_torch(model)
    else:                                   # torch's own initialisation, copied into a new scratch model
        torch.manual_seed(5)
        module = TorchLeNet5().double()
        model = from_torch(module)
    assert model.dtype == np.float64 and next(module.parameters()).dtype == torch.float64
    for name, p in module.named_parameters():
        assert np.array_equal(model.parameters()[scratch_name(name)], p.detach().numpy()), name
    return model, module


def scratch_pass(model, x, y):
    loss_fn = SoftmaxCrossEntropy()
    logits = model.forward(x)
    loss = loss_fn.forward(logits, y)
    dx = model.backward(loss_fn.backward())
    return logits, loss, dx, {k: g.copy() for k, g in model.gradients().items()}


def torch_pass(module, x, y):
    xt = torch.from_numpy(x).requires_grad_()
    module.zero_grad()
    logits = module(xt)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    grads = {scratch_name(n): p.grad.numpy().copy() for n, p in module.named_parameters()}
    return logits.detach().numpy(), loss.item(), xt.grad.numpy(), grads


@pytest.mark.parametrize("direction", ["to_torch", "from_torch"])
def test_forward_loss_and_gradients_match(train_batches, direction):
    model, module = twin_pair(direction)
    worst = dict(logits=0.0, loss=0.0, input_grad=0.0, param_grad=0.0)
    for x, y in train_batches:
        logits, loss, dx, grads = scratch_pass(model, x, y)
        t_logits, t_loss, t_dx, t_grads = torch_pass(module, x, y)
        worst["logits"] = max(worst["logits"], relative_error(logits, t_logits))
        worst["loss"] = max(worst["loss"], abs(loss - t_loss) / abs(t_loss))
        worst["input_grad"] = max(worst["input_grad"], relative_error(dx, t_dx))
        assert grads.keys() == t_grads.keys()
        worst["param_grad"] = max(worst["param_grad"], *(relative_error(grads[k], t_grads[k]) for k in grads))
    print(direction, {k: f"{v:.1e}" for k, v in worst.items()})
    assert worst["logits"] < 1e-10, worst
    assert worst["loss"] < 1e-12, worst
    assert worst["input_grad"] < 1e-9, worst
    assert worst["param_grad"] < 1e-9, worst


OPTIMIZERS = {
    "sgd_nesterov": (lambda p: SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    "adam": (lambda p: Adam(p, lr=1e-3, weight_decay=5e-4),
             lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=5e-4)),
}


@pytest.mark.parametrize("direction", ["to_torch", "from_torch"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_optimizer_steps_match(train_batches, direction, opt_name):
    """One step, then two more on new batches (momentum and Adam's moments in play): weights agree to 1e-9."""
    model, module = twin_pair(direction)
    make_ours, make_theirs = OPTIMIZERS[opt_name]
    ours, theirs = make_ours(model.parameters()), make_theirs(module.parameters())
    before = model.state_dict()
    errors = []
    for x, y in train_batches:
        *_, grads = scratch_pass(model, x, y)
        ours.step(grads)
        torch_pass(module, x, y)
        theirs.step()
        state = model.parameters()
        errors.append(max(relative_error(state[scratch_name(n)], p.detach().numpy()) for n, p in module.named_parameters()))
    print(opt_name, direction, "weight errors after each step:", [f"{e:.1e}" for e in errors])
    assert max(errors) < 1e-9, errors
    moved = max(np.abs(model.parameters()[k] - before[k]).max() for k in before)
    assert moved > 1e-4                                # the steps really changed the weights


def test_from_torch_refuses_a_mismatched_module():
    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="does not match the model"):
        from_torch(module)
    wrong = TorchLeNet5()
    wrong.F6 = torch.nn.Linear(120, 80)
    with pytest.raises(ValueError, match="F6.W"):
        from_torch(wrong)


# ----------------------------------------------------------------------------------------------
# Training the twin with the same recipe
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(mnist):
    """2,000 training and 1,000 test images, prepared in float64."""
    return (prepare(mnist.x_train[:2000], dtype=np.float64), mnist.y_train[:2000],
            prepare(mnist.x_test[:1000], dtype=np.float64), mnist.y_test[:1000])


def test_fit_torch_learns_and_returns_a_history(small):
    x, y, xt, yt = small
    module = to_torch(LeNet5(seed=0))                       # float32, the book's LeCun initialisation
    loss0, _ = evaluate_torch(module, xt, yt)
    history = fit_torch(module, x.astype(np.float32), y, epochs=1, validation=(xt, yt), seed=1)
    print(history)
    assert isinstance(history, History) and tuple(history) == History.KEYS
    assert all(len(v) == 1 for v in history.values())
    assert history["epoch"] == [1] and history["seconds"][0] > 0
    assert history["lr"] == [resolve_recipe()["lr"]]
    assert history["val_loss"][0] < 0.5 * loss0, (loss0, history["val_loss"])
    assert history["val_acc"][0] > 0.75                    # 2,000 images, one epoch
    assert (history["val_loss"][0], history["val_acc"][0]) == pytest.approx(evaluate_torch(module, xt, yt))


def test_fit_torch_matches_fit(small):
    """``fit`` with its defaults and ``fit_torch`` with its defaults (both from DEFAULT_RECIPE), same initial
    weights, same seed (so the same batches), float64, no augmentation: the two training runs end with the
    same weights and the same history, to rounding."""
    x, y, xt, yt = small
    model = LeNet5(seed=2, dtype=np.float64)
    module = to_torch(model)
    epochs = 2
    h_np = fit(model, x, y, epochs=epochs, validation=(xt, yt), seed=11, quiet=True)
    h_pt = fit_torch(module, x, y, epochs=epochs, validation=(xt, yt), seed=11)
    weights = model.parameters()
    w_err = max(relative_error(weights[scratch_name(n)], p.detach().numpy()) for n, p in module.named_parameters())
    print(f"after {epochs} epochs: weight error {w_err:.1e}\nscratch\n{h_np}\ntorch\n{h_pt}")
    assert h_np["lr"] == pytest.approx(h_pt["lr"], rel=1e-12), (
        f"learning rates differ: fit {h_np['lr']}, fit_torch {h_pt['lr']} for recipe {resolve_recipe()}")
    assert w_err < 1e-9
    assert h_np["epoch"] == h_pt["epoch"] and h_np["train_acc"] == h_pt["train_acc"]
    assert h_np["val_acc"] == h_pt["val_acc"]
    for key in ("loss", "val_loss"):
        assert np.allclose(h_np[key], h_pt[key], rtol=1e-10, atol=0), key


def test_fit_torch_mirrors_augmentation(small):
    """With ``augment`` the twin draws the same random shifts from the same generator as ``fit``."""
    x, y, _, _ = small
    model = LeNet5(seed=4, dtype=np.float64)
    module = to_torch(model)
    recipe = {"augment": 2, "schedule": "none"}
    optimizer, _ = recipe_optimizer(model, 1, recipe)
    fit(model, x[:512], y[:512], epochs=1, batch_size=resolve_recipe()["batch_size"], optimizer=optimizer,
        augment=2, seed=3, quiet=True)
    fit_torch(module, x[:512], y[:512], epochs=1, recipe=recipe, seed=3)
    weights = model.parameters()
    assert max(relative_error(weights[scratch_name(n)], p.detach().numpy()) for n, p in module.named_parameters()) < 1e-9


def test_recipe_is_read_at_call_time(monkeypatch):
    monkeypatch.setitem(lenet_train.DEFAULT_RECIPE, "lr", 0.0123)
    monkeypatch.setitem(lenet_train.DEFAULT_RECIPE, "optimizer", "adam")
    monkeypatch.setitem(lenet_train.DEFAULT_RECIPE, "schedule", "step")
    opt, sched = recipe_optimizer(TorchLeNet5(), epochs=6)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 0.0123
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and sched.step_size == 2
    monkeypatch.setitem(lenet_train.DEFAULT_RECIPE, "optimizer", "momentum")
    monkeypatch.setitem(lenet_train.DEFAULT_RECIPE, "schedule", "cosine")
    opt, sched = recipe_optimizer(TorchLeNet5(), epochs=6)
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD) and group["momentum"] == 0.9 and group["nesterov"]
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) and sched.T_max == 6
    monkeypatch.setitem(lenet_train.DEFAULT_RECIPE, "label_smoothing", 0.1)
    with pytest.raises(ValueError, match=r"\['label_smoothing'\] are not mirrored"):
        resolve_recipe()


def test_fit_torch_rejects_bad_input(small):
    x, y, _, _ = small
    with pytest.raises(ValueError, match=r"2000 images but labels of shape \(1999,\)"):
        fit_torch(TorchLeNet5(), x, y[:-1], epochs=1)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        fit_torch(TorchLeNet5(), x, y, epochs=0)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        fit_torch(TorchLeNet5(), x, y, epochs=1, recipe={"optimizer": "rmsprop"})


# ----------------------------------------------------------------------------------------------
# The command line: python -m lenet_core train --engine torch
# ----------------------------------------------------------------------------------------------

def test_cli_engine_torch_trains_the_twin_and_saves_npz(mnist, mnist_root, tmp_path, monkeypatch, capsys):
    """``--engine torch`` trains TorchLeNet5 through fit_torch (same recipe, seed and batches as a direct
    call from LeNet5(seed)'s weights) and saves plain .npz weights that lenet_core loads and evaluates."""
    from lenet_core import __main__ as cli
    from lenet_core import twin
    from lenet_core.model import load_weights

    calls = []
    real_fit_torch = twin.fit_torch

    def spy(module, *args, **kwargs):
        calls.append((type(module).__name__, kwargs.get("recipe")))
        return real_fit_torch(module, *args, **kwargs)

    monkeypatch.setattr(twin, "fit_torch", spy)
    out, hist = tmp_path / "torch.npz", tmp_path / "torch.json"
    argv = ["train", "--engine", "torch", "--epochs", "1", "--limit", "1000", "--validation", "0", "--seed", "3", "--quiet",
            "--data", str(mnist_root), "--out", str(out), "--history", str(hist)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "engine torch" in printed and "1,000 training images" in printed
    assert len(calls) == 1 and calls[0][0] == "TorchLeNet5"
    assert calls[0][1] == dict(resolve_recipe(), augment=0)             # the default recipe, passed on in full

    with np.load(out, allow_pickle=False) as archive:                    # a plain npz, nothing pickled
        assert sorted(archive.files) == sorted(LeNet5().parameters())
        assert all(archive[k].dtype == np.float32 for k in archive.files)
    saved = load_weights(LeNet5(), out)
    history = History.load(hist)
    assert history["epoch"] == [1] and history["lr"] == [resolve_recipe()["lr"]]

    # the same run by hand: the CLI's weights are fit_torch's, not the NumPy engine's
    module = to_torch(LeNet5(seed=3))
    real_fit_torch(module, prepare(mnist.x_train[:1000]), mnist.y_train[:1000], epochs=1, seed=3)
    for name, p in module.named_parameters():
        assert np.allclose(saved.parameters()[scratch_name(name)], p.detach().numpy(), rtol=0, atol=1e-6), name
    start = LeNet5(seed=3).parameters()
    assert max(np.abs(saved.parameters()[k] - start[k]).max() for k in start) > 1e-3     # it trained
    xt, yt = prepare(mnist.x_test), mnist.y_test
    loss, acc = lenet_train.evaluate(saved, xt, yt)
    assert history["val_acc"] == [None] and acc > 0.75                   # --validation 0: no validation split
    assert f"test accuracy {acc:.2%}" in printed


def test_cli_engine_option_parsing():
    from lenet_core import __main__ as cli

    assert cli._parser().parse_args(["train"]).engine == "numpy"          # the default stays NumPy
    assert cli._parser().parse_args(["train", "--engine", "torch"]).engine == "torch"
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["train", "--engine", "jax"])
    with pytest.raises(SystemExit, match="2"):                           # tests/test_failures.py: the message
        cli.main(["train", "--limit", "0"])
