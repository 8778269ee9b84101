"""lenet_core.lenet1998.fit: fit_1998 with SDLM (Table I kept, the curvature re-estimated early) and with
optim's names, and `python -m lenet_core train --model lenet1998`."""

import numpy as np
import pytest

from lenet_core.lenet1998 import C3_TABLE, LeNet5_1998, prepare_1998


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
