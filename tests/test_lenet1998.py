"""LeNet-5 as in 1998 (lenet_core.lenet1998): gradient checks in float64, PyTorch parity, SDLM, distortions,
and the quick modes of experiments/train_1998.py and experiments/ablation.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet_core import (AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, MSELoss, ReLU, Sequential, Sigmoid,
                        SoftmaxCrossEntropy, Tanh)
from lenet_core import functional
from lenet_core.gradcheck import (check_gauss_newton, check_layer, check_model, gauss_newton_diagonal,
                                  numerical_gradient, relative_error)
from lenet_core.lenet1998 import (A, BACKGROUND, FOREGROUND, MLP, SDLM, LeNet5_1998, PartialConv2d, RBFLoss,
                                  RBFOutput, ScaledTanh, Subsampling2d, estimate_curvature, prepare_1998,
                                  random_affine, rbf_codes, sdlm_learning_rate, trainable_parameters)
from lenet_core.lenet1998 import C3_TABLE
from lenet_core.lenet1998.twin import rbf_loss_torch, to_torch_1998, torch_name_1998

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-7

LAYERS = [
    ("scaled tanh", lambda: ScaledTanh(), (3, 2, 4, 5)),
    ("subsampling 2x2", lambda: Subsampling2d(3, rng=1), (2, 3, 6, 8)),
    ("subsampling, odd size (last row and column unused)", lambda: Subsampling2d(2, rng=2), (2, 2, 7, 5)),
    ("C3, Table I", lambda: PartialConv2d(C3_TABLE, 5, rng=3), (2, 6, 9, 9)),
    ("RBF output", lambda: RBFOutput(), (4, 84)),
]


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_1998_layer_gradients(rng, name, make, shape):
    result = check_layer(make(), rng.standard_normal(shape), samples=150)
    print(name, result, sep="\n")
    assert set(result) == {"x", *make().params}
    assert result.passed(TOL), f"{name}\n{result}"


def test_rbf_loss_gradient(rng):
    y = rng.uniform(0, 120, (5, 10))
    labels = np.array([0, 3, 9, 3, 7])
    loss = RBFLoss(j=100.0)
    loss.forward(y, labels)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(y, labels), y)
    assert relative_error(analytic, numeric) < TOL


@pytest.mark.parametrize("switches", [dict(init="lecun"), dict(output="linear", pooling="avg", init="lecun",
                                                              activation="tanh", c3="full")])
def test_1998_model_gradients(rng, switches):
    """The whole network with its loss. Every 1998 layer is in the first case; it starts from LeCun's
    init because the 1998 init's tiny weights make d(loss)/d(image) so small next to a loss near 84
    that central differences drown in round-off (the layers are checked at any weights above)."""
    model = LeNet5_1998(seed=1, **switches)
    x = rng.standard_normal((3, 1, 32, 32))
    labels = np.array([1, 5, 8])
    loss = RBFLoss() if switches.get("output", "rbf") == "rbf" else SoftmaxCrossEntropy()
    result = check_model(model, x, labels, loss, samples=25)
    print(result)
    assert result.passed(TOL), str(result)


def test_1998_network_shape_and_counts():
    model = LeNet5_1998()
    assert trainable_parameters(model) == 60_000                      # the paper's figure
    assert model["C3"].num_trainable == 1_516
    assert model.forward(np.zeros((2, 1, 32, 32), np.float32)).shape == (2, 10)
    assert trainable_parameters(LeNet5_1998(c3="full", pooling="avg", output="linear")) == 61_706
    assert 58_000 < MLP().num_parameters() < 62_000
    w = model["C1"].params["W"]
    assert np.abs(w).max() <= 2.4 / 25 and np.abs(w).max() > 0.8 * 2.4 / 25      # U(-2.4/F, 2.4/F), F = 25
    c3 = model["C3"].params["W"]
    assert np.all(c3[~C3_TABLE.T] == 0)                                 # absent connections are zero
    with pytest.raises(ValueError, match="unknown pooling 'min'"):
        LeNet5_1998(pooling="min")


def test_scaled_tanh_and_inputs():
    f = ScaledTanh()
    assert f.forward(np.array([1.0, -1.0, 0.0])) == pytest.approx([1.0, -1.0, 0.0], abs=2e-5)
    assert f.forward(np.array([50.0]))[0] == pytest.approx(A)
    x = prepare_1998(np.array([[[0] * 28] * 27 + [[255] * 28]], dtype=np.uint8))
    assert x.shape == (1, 1, 32, 32)
    assert x.min() == pytest.approx(BACKGROUND) and x.max() == pytest.approx(FOREGROUND)
    assert x[0, 0, 0, 0] == pytest.approx(BACKGROUND)                   # the padding is background


def test_rbf_codes_are_distinct_bitmaps():
    codes = rbf_codes()
    assert codes.shape == (10, 84) and set(np.unique(codes)) == {-1.0, 1.0}
    hamming = (codes[:, None] != codes[None]).sum(axis=2)
    assert hamming[~np.eye(10, dtype=bool)].min() >= 6                  # every two digits differ in 6+ pixels
    layer = RBFOutput(dtype=np.float64)
    assert np.allclose(layer.forward(codes), 4 * hamming)               # (+-1 - -+1)^2 = 4 per differing pixel


# ----------------------------------------------------------------------------------------------
# PyTorch twin, float64
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# SDLM and the curvature estimate
# ----------------------------------------------------------------------------------------------

def test_sdlm_schedule_and_step():
    assert [sdlm_learning_rate(e) for e in range(1, 21)] == (
        [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8)
    p = {"w": np.array([1.0, 2.0, 3.0])}
    opt = SDLM(p, lr=0.1, mu=0.02)
    opt.set_curvature({"w": np.array([0.0, 0.98, 9.98])})
    opt.step({"w": np.array([1.0, 1.0, 1.0])})
    assert p["w"] == pytest.approx([1 - 5.0, 2 - 0.1, 3 - 0.01])


GN_LAYERS = [
    ("conv", lambda: Conv2d(2, 3, 3, rng=0), (2, 2, 5, 5)),
    ("conv, stride 2, pad 1", lambda: Conv2d(2, 2, 3, stride=2, padding=1, rng=0), (1, 2, 5, 5)),
    ("conv, whole image (C5)", lambda: Conv2d(3, 4, 3, rng=0), (2, 3, 3, 3)),
    ("linear", lambda: Linear(5, 3, rng=0), (4, 5)),
    ("avg pool", lambda: AvgPool2d(2), (2, 2, 4, 4)),
    ("max pool", lambda: MaxPool2d(2), (2, 2, 4, 4)),
    ("tanh", lambda: Tanh(), (2, 3, 2, 2)),
    ("sigmoid", lambda: Sigmoid(), (2, 3, 2, 2)),
    ("relu", lambda: ReLU(), (2, 3, 2, 2)),
    ("flatten", lambda: Flatten(), (2, 3, 2, 2)),
] + [c for c in LAYERS if c[0] != "RBF output"]


@pytest.mark.parametrize("name,make,shape", GN_LAYERS, ids=[c[0] for c in GN_LAYERS])
def test_gauss_newton_of_every_layer_is_its_jacobian_squared(rng, name, make, shape):
    """Each layer's gauss_newton: sum_i D_i (dy_i/dx_j)^2 and sum_i D_i (dy_i/dw_k)^2, from backward's rows."""
    result = check_gauss_newton(make(), rng.standard_normal(shape))
    assert result.passed(1e-12), (name, dict(result))


def test_gauss_newton_of_rbf_units_is_their_second_derivative(rng):
    """Each RBF penalty is a parabola in x (d2y_i/dx_j^2 = 2): the paper keeps that term, not (dy/dx)^2."""
    layer, x = RBFOutput(dtype=np.float64), rng.standard_normal((3, 84))
    d2out = rng.uniform(0.5, 1.5, (3, 10))
    layer.forward(x)
    d2x, h = layer.gauss_newton(d2out)
    step, j = 1e-2, 5
    shifted = [x.copy() for _ in range(3)]
    shifted[0][:, j] += step
    shifted[2][:, j] -= step
    f = [(layer.forward(v) * d2out).sum(axis=1) for v in shifted]
    assert h == {} and d2x.shape == x.shape
    assert relative_error(d2x[:, j], (f[0] - 2 * f[1] + f[2]) / step ** 2) < 1e-8


def test_a_layer_without_gauss_newton_says_so():
    from lenet_core.layers import Layer
    with pytest.raises(NotImplementedError, match="Gauss-Newton"):
        Layer().gauss_newton(np.zeros(2))


def test_curvature_is_the_gauss_newton_diagonal_where_that_is_exact(rng):
    """With one output unit every weight has one path to it: the paper's recursion (squared weights,
    squared derivatives) is then the exact Gauss-Newton diagonal, which torch computes from the Jacobian."""
    model = Sequential(("H", Linear(5, 4, rng=0, dtype=np.float64)), ("act", Tanh()),
                       ("O", Linear(4, 1, rng=1, dtype=np.float64)))
    x = rng.standard_normal((6, 5))
    h = estimate_curvature(model, x, np.zeros((6, 1)), MSELoss())
    W1, b1 = (torch.tensor(model["H"].params[k], requires_grad=True) for k in ("W", "b"))
    W2, b2 = (torch.tensor(model["O"].params[k], requires_grad=True) for k in ("W", "b"))
    expected = {k: np.zeros_like(v) for k, v in h.items()}
    for n in range(6):
        o = torch.tanh(torch.from_numpy(x[n]) @ W1.T + b1) @ W2.T + b2
        grads = torch.autograd.grad(o.sum(), [W1, b1, W2, b2])
        for k, g in zip(("H.W", "H.b", "O.W", "O.b"), grads):
            expected[k] += 2 * g.numpy() ** 2 / 6                       # per-sample loss (o - t)^2
    for k in h:
        assert relative_error(h[k], expected[k]) < 1e-12, k


def test_curvature_against_finite_differences_of_the_gauss_newton_diagonal(mnist):
    """On the whole 1998 network: exact for C5 and F6 (one path per weight and sample), an
    approximation below them, where shared weights and units feeding several units add cross terms
    that the paper's recursion drops (chapter 11 measures by how much)."""
    model = LeNet5_1998(seed=0, dtype=np.float64)
    x, y = prepare_1998(mnist.x_train[:8]).astype(np.float64), mnist.y_train[:8]
    h = estimate_curvature(model, x, y, RBFLoss())
    below_out = list(model)[:-1]

    def features():                                    # F6's outputs; eq. 9's first term has Hessian 2 I there
        out = x
        for layer in below_out:
            out = layer.forward(out)
        return out
    params = model.parameters()
    for name in ("C5.W", "C5.b", "F6.W", "F6.b", "C1.W"):
        idx = np.random.default_rng(0).choice(params[name].size, 3, replace=False)
        gn = gauss_newton_diagonal(features, params[name], indices=idx).reshape(-1)[idx]
        err = relative_error(h[name].reshape(-1)[idx], gn)
        assert (err < 1e-6) if name != "C1.W" else (err > 0.1), (name, err)


def test_curvature_of_shared_weights_sums_over_connections(rng):
    """For a convolution the paper sums d2E/da^2 x^2 over every connection of a shared weight."""
    conv = PartialConv2d(C3_TABLE, 5, rng=0, dtype=np.float64)
    model = Sequential(("C", conv), ("flat", Flatten()),
                       ("O", Linear(16 * 2 * 2, 3, rng=1, dtype=np.float64)))
    x = rng.standard_normal((2, 6, 6, 6))
    h = estimate_curvature(model, x, np.array([0, 2]), MSELoss())
    d2_o = np.full((2, 3), 2 / 3)
    d2_a = (d2_o @ model["O"].params["W"] ** 2).reshape(2, 16, 2, 2)
    _, hW, hb = functional.conv2d_backward_naive(d2_a, x ** 2, (conv.params["W"] * conv.mask) ** 2)
    assert relative_error(h["C.W"], hW * conv.mask / 2) < 1e-12
    assert relative_error(h["C.b"], hb / 2) < 1e-12
    assert np.all(h["C.W"][~C3_TABLE.T] == 0)


def test_sdlm_keeps_absent_c3_connections_at_zero(mnist):
    from lenet_core.lenet1998 import fit_1998
    model = LeNet5_1998(seed=0)
    x, y = prepare_1998(mnist.x_train[:256]), mnist.y_train[:256]
    before = model.state_dict()
    history = fit_1998(model, x, y, epochs=1, batch_size=32, hessian_samples=64, quiet=True)
    assert np.all(model["C3"].params["W"][~C3_TABLE.T] == 0)
    assert max(np.abs(model.parameters()[k] - before[k]).max() for k in before) > 1e-4
    assert np.isfinite(history["loss"][0])


def test_fit_1998_re_estimates_the_curvature_early(mnist, monkeypatch):
    """Before every pass, and every k updates of the first pass only (our departure from the paper)."""
    from lenet_core.lenet1998 import fit as lenet1998

    calls = []
    real = lenet1998.estimate_curvature
    monkeypatch.setattr(lenet1998, "estimate_curvature", lambda *a, **k: calls.append(1) or real(*a, **k))
    x, y = prepare_1998(mnist.x_train[:320]), mnist.y_train[:320]        # 10 updates of 32 per pass
    lenet1998.fit_1998(LeNet5_1998(seed=0), x, y, epochs=2, hessian_samples=32, early_curvature_every=3,
                       quiet=True)
    assert len(calls) == 1 + 3 + 1                                        # pass 1: after updates 3, 6, 9
    calls.clear()
    lenet1998.fit_1998(LeNet5_1998(seed=0), x, y, epochs=2, hessian_samples=32, early_curvature_every=None,
                       quiet=True)
    assert len(calls) == 2                                                # the paper: once per pass


def test_fit_1998_takes_the_names_of_optims_table(mnist):
    """Besides "sdlm", any optimizer and schedule of lenet_core.optim's one table; other names are refused."""
    from lenet_core.lenet1998 import fit_1998
    x, y = prepare_1998(mnist.x_train[:64]), mnist.y_train[:64]
    history = fit_1998(LeNet5_1998(seed=0), x, y, epochs=2, optimizer="adam", lr=1e-3, schedule="step",
                       quiet=True)
    assert history["lr"] == [1e-3, 1e-4]                              # StepLR: step_size max(1, 2 // 3)
    with pytest.raises(ValueError, match="choose 'sdlm' or one of 'sgd', 'momentum', 'adam'"):
        fit_1998(LeNet5_1998(seed=0), x, y, epochs=1, optimizer="rmsprop", quiet=True)
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        fit_1998(LeNet5_1998(seed=0), x, y, epochs=1, optimizer="sgd", schedule="linear", quiet=True)


# ----------------------------------------------------------------------------------------------
# Distortions
# ----------------------------------------------------------------------------------------------

def test_random_affine(mnist):
    x = prepare_1998(mnist.x_train[:16])
    assert np.array_equal(random_affine(x, 0, shift=0, scale=0, squeeze=0, shear=0), x)
    a, b = random_affine(x, 5), random_affine(x, 5)
    assert np.array_equal(a, b) and a.dtype == x.dtype and a.shape == x.shape
    assert a.min() >= x.min() - 1e-6 and a.max() <= x.max() + 1e-6      # bilinear: convex combinations
    assert not np.allclose(a, x)
    assert a[:, :, 0, 0] == pytest.approx(BACKGROUND)                  # the background stays background
    ink = (x > 0.5).sum(axis=(1, 2, 3)), (a > 0.5).sum(axis=(1, 2, 3))
    assert np.all(np.abs(ink[1] / ink[0] - 1) < 0.5)                    # a distortion, not a new image


# ----------------------------------------------------------------------------------------------
# The experiments' quick modes: the code path, not the numbers
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["train_1998", "ablation", "distortion_probe", "sdlm_experiments",
                                    "per_pattern_1998"])
def test_script_quick_mode(tmp_path, script):
    out = tmp_path / "record.json"
    result = subprocess.run([sys.executable, "-m", f"experiments.{script}", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["quick"] is True and record["results"]["complete"] is True
    assert record["command"].split()[1:3] == ["-m", f"experiments.{script}"]      # as typed, rerunnable
    refused = subprocess.run([sys.executable, "-m", f"experiments.{script}", "--quick"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode != 0 and "temporary folder" in refused.stderr


def test_cli_model_lenet1998(mnist_root, tmp_path, capsys):
    from lenet_core import __main__ as cli
    from lenet_core.lenet1998 import LeNet5_1998
    from lenet_core.model import load_weights

    out = tmp_path / "l98.npz"
    argv = ["train", "--model", "lenet1998", "--epochs", "1", "--limit", "300", "--validation", "100", "--quiet",
            "--data", str(mnist_root), "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "LeNet-5 as in 1998 (60,000 trainable parameters), SDLM" in printed and "test accuracy" in printed
    trained = load_weights(LeNet5_1998(), out)
    assert not np.allclose(trained["C1"].params["W"], LeNet5_1998()["C1"].params["W"])      # it trained
    assert cli.main(["evaluate", str(out), "--data", str(mnist_root)]) == 0           # recognised as 1998
    trained_line = [line for line in printed.splitlines() if "test accuracy" in line][-1]
    assert trained_line.split("test accuracy")[1].split()[0] in capsys.readouterr().out   # the same accuracy
    assert cli.main(["train", "--model", "lenet1998", "--engine", "torch", "--data", str(mnist_root)]) != 0
    assert "--engine torch does not apply to --model lenet1998" in capsys.readouterr().err
