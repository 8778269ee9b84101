"""lenet_core.seed_paper: the seed paper's Appendix B pipeline, and experiments/seed_ladder.py."""


import numpy as np
import pytest

from lenet_core import Conv2d, functional
from lenet_core import seed_paper as S
from lenet_core.gradcheck import check_layer, check_model, numerical_gradient, relative_error
from lenet_core.losses import softmax

from conftest import run_quick


@pytest.fixture
def conv_case(rng):
    x = rng.standard_normal((2, 3, 7, 7))
    W = rng.standard_normal((4, 3, 5, 5))
    dout = rng.standard_normal((2, 4, 3, 3))
    return x, W, dout


def test_vectorised_printed_backward_equals_the_printed_loops(conv_case):
    x, W, dout = conv_case
    dx, dW, db = S.conv_backward_as_printed(dout, x, W)
    assert np.allclose(S.conv_input_grad_as_printed(dout, W, x.shape), dx, atol=1e-12)
    true_dx, true_dW, true_db = functional.conv2d_backward_naive(dout, x, W)
    assert np.allclose(dW, true_dW) and np.allclose(db, true_db)       # its dW and db are right
    assert not np.allclose(dx, true_dx)                                 # its dX is not


def test_printed_conv_backward_fails_the_gradient_check_and_ours_passes(conv_case):
    x, _, _ = conv_case
    computed = check_layer(S.SeedConv2d(3, 4, 5, keep_grads=True, rng=0, dtype=np.float64), x)
    ours = check_layer(Conv2d(3, 4, 5, rng=0, dtype=np.float64), x)
    assert computed["x"] > 0.5 and computed["W"] < 1e-7 and computed["b"] < 1e-7
    assert ours.passed()
    printed = S.SeedConv2d(3, 4, 5, rng=0, dtype=np.float64)          # as printed: dW, db never stored
    printed.backward(np.ones_like(printed.forward(x)))
    assert not printed.grads["W"].any() and not printed.grads["b"].any()


@pytest.mark.parametrize("padding, axes, passes", [(None, (0, 1), False), (4, (0, 1), False),
                                                   (None, (2, 3), False), (4, (2, 3), True)])
def test_both_fixes_are_needed(conv_case, padding, axes, passes):
    x, _, _ = conv_case
    layer = S.SeedConv2d(3, 4, 5, dout_padding=padding, rotate_axes=axes, keep_grads=True, rng=1,
                         dtype=np.float64)
    assert check_layer(layer, x).passed() is passes


def test_double_softmax_is_what_the_code_does(rng):
    model = S.SeedLeNet5(seed=0, dtype=np.float64)
    x = rng.standard_normal((3, 1, 28, 28))
    y = np.array([1, 7, 3])
    probs = model.forward(x)
    assert np.allclose(probs.sum(axis=1), 1)                             # forward ends in a softmax
    loss_fn = S.SeedCrossEntropy()
    loss = loss_fn.forward(probs, y)
    q = softmax(probs)                                                   # ... and the loss applies another
    assert np.isclose(loss, -np.mean(np.log(q[np.arange(3), y])))
    grad = loss_fn.backward()
    assert np.allclose(grad, q - np.eye(10)[y])                          # summed over the batch, not / N
    assert np.array_equal(model["softmax"].backward(grad), grad)         # the softmax's backward is skipped
    # what reaches the logits is not the gradient of the loss the code computes
    logits_model = S.SeedLeNet5(seed=0, softmax_output=False, conv_backward="true", dtype=np.float64)
    z = logits_model.forward(x)
    true = numerical_gradient(lambda: loss_fn.forward(softmax(z), y) * len(y), z)
    assert relative_error(grad, true) > 0.5


def test_seed_lenet5_with_both_fixes_passes_a_model_check(rng):
    model = S.SeedLeNet5(seed=0, softmax_output=False, conv_backward="true", conv_grads="stored")
    result = check_model(model, rng.standard_normal((2, 1, 28, 28)), np.array([0, 5]), samples=8)
    assert result.passed()
    printed = check_model(S.SeedLeNet5(seed=0, softmax_output=False, conv_grads="stored"),
                          rng.standard_normal((2, 1, 28, 28)), np.array([0, 5]), samples=8)
    assert printed["conv1.W"] > 1e-2 and printed["conv2.W"] < 1e-7        # only what lies below conv2 is wrong


RUNNABLE = dict(model="seed_lenet5", input_shape="image", maxpool="renamed")


@pytest.mark.parametrize("conv_grads", ["discarded", "stored"])
def test_printed_seed_lenet5_convolutions_change_only_by_weight_decay(rng, conv_grads):
    config = S.SEED_AS_PRINTED.replace(**RUNNABLE, conv_grads=conv_grads, steps=6, batch_size=8,
                                       softmax_output=False, lr=1e-3)
    x = rng.standard_normal((40, 1, 28, 28))
    y = rng.integers(0, 10, 40)
    model = S.build_model(config, seed=0)
    before = {k: v.copy() for k, v in model.parameters().items()}
    S.train_model(config, model, x, y, seed=0, progress=False)
    decayed = {k: v * (1 - config.reg) ** config.steps for k, v in before.items()}
    after = model.parameters()
    only_decay = {k: np.allclose(after[k], decayed[k], rtol=1e-12, atol=0) for k in after}
    assert not any(only_decay[k] for k in after if k.startswith("FC"))      # the FC layers learn either way
    conv = [k for k in after if k.startswith("conv")]
    assert len(conv) == 4
    if conv_grads == "discarded":                                           # as printed
        assert all(only_decay[k] for k in conv)
    else:
        assert not any(only_decay[k] for k in conv)
        assert all(np.abs(after[k] - decayed[k]).max() > 1e-6 for k in conv)


def test_printed_seed_lenet5_cannot_run_under_the_printed_script(rng):
    images = rng.integers(0, 256, (80, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 80)
    config = S.SEED_AS_PRINTED.replace(model="seed_lenet5", steps=2)
    result = S.run(config, images, labels, {"test": (images, labels)})
    assert not result["ran"] and "(N, 784)" in result["error"] and "test_acc" not in result
    result = S.run(config.replace(input_shape="image"), images, labels, {"test": (images, labels)})
    assert not result["ran"] and "_forward" in result["error"]
    assert S.run(config.replace(input_shape="image", maxpool="renamed"), images, labels,
                 {"test": (images, labels)}, progress=False)["ran"]


def test_nan_is_carried_on_as_printed_or_stops_the_run(rng):
    images = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 300)
    config = S.SEED_AS_PRINTED.replace(lr=1e6, steps=50)                  # blows up within a few steps
    carried = S.run(config, images, labels, {"test": (images, labels)}, progress=False)
    assert carried["ran"] and not carried["stopped"] and carried["nan_step"] is not None
    assert carried["test_acc"] == np.mean(labels == 0)                     # arg-max of NaN outputs: class 0
    assert carried["steps_skipped"] > 0 and carried["nan_step"] + carried["steps_skipped"] <= 50
    stopped = S.run(config.replace(on_nan="stop"), images, labels, {"test": (images, labels)}, progress=False)
    assert stopped["stopped"] and stopped["nan_step"] == carried["nan_step"] and "test_acc" not in stopped


def test_seed_optimizer_update_rule():
    p = np.array([1.0, -2.0])
    opt = S.SeedSGDMomentum({"p": p}, lr=0.1, momentum=0.8, reg=0.01)
    g = np.array([0.5, 1.0])
    opt.step({"p": g})
    v = 0.2 * g
    expected = np.array([1.0, -2.0]) - (0.1 * v + 0.01 * np.array([1.0, -2.0]))
    assert np.allclose(p, expected)
    before = p.copy()
    opt.step({"p": g})
    v = 0.8 * v + 0.2 * g
    assert np.allclose(p, before - (0.1 * v + 0.01 * before))


def test_window_batches_never_start_at_zero():
    starts = [s.start for s in S.window_batches(100, 64, 2000, rng=0)]
    assert min(starts) == 1 and max(starts) == 36
    assert all(s.stop - s.start == 64 for s in S.window_batches(100, 64, 5, rng=0))
    with pytest.raises(ValueError, match="more than batch_size"):
        next(S.window_batches(64, 64, 1, rng=0))


def test_preprocessing_centres_the_test_set_by_its_own_mean(rng):
    train = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    test = (rng.integers(0, 256, (20, 28, 28)) // 2).astype(np.uint8)
    x, [own] = S.preprocess(S.SEED_AS_PRINTED, train, [test])
    _, [by_train] = S.preprocess(S.SEED_AS_PRINTED.replace(test_centring="train"), train, [test])
    assert x.shape == (50, 1, 28, 28) and abs(x.mean()) < 1e-6 and abs(own.mean()) < 1e-6
    assert np.isclose(by_train.mean(), test.mean() / 255 - train.mean() / 255, atol=1e-6)
    _, [book] = S.preprocess(S.SEED_AS_PRINTED.replace(model="lenet5", preprocessing="book"), train, [test])
    assert book.shape == (20, 1, 32, 32)


def test_seed_init_uses_the_printed_fan_ins():
    model = S.seed_init(S.SeedLeNet5(seed=0), np.random.default_rng(0))
    assert np.isclose(model["conv2"].params["W"].std(), np.sqrt(2 / 6), rtol=0.1)    # fan-in Cin = 6
    assert np.isclose(model["FC1"].params["W"].std(), np.sqrt(2 / 256), rtol=0.1)
    assert np.isclose(model["FC1"].params["b"].std(), 1, rtol=0.3)                  # N(0, 1) biases
    with pytest.raises(ValueError, match="SeedConfig.model"):
        S.SeedConfig(model="resnet")


def test_quick_ladder_runs_and_writes_a_record(tmp_path):
    record = run_quick("seed_ladder", tmp_path / "seed_ladder.json")
    assert record["quick"] is True
    res = record["results"]
    assert res["paper"]["test_acc"] == 0.9027
    keys = [r["key"] for r in res["ladder"]]
    assert keys[0] == "printed" and keys[-1] == "book_recipe" and len(set(keys)) == len(keys)
    for rung in res["ladder"]:
        assert len(rung["runs"]) == len(rung["seeds"])
        for run in rung["runs"]:
            assert run["stopped"] or {"val_acc", "test_acc"} <= set(run)
    assert res["lr_sweep"]["chosen_lr"] in [r["lr"] for r in res["lr_sweep"]["runs"]]
    assert all("test_acc" not in r for r in res["lr_sweep"]["runs"])       # the choice never sees the test set
    assert "train_acc" in res["reproduction"]["mlp"]["runs"][0]
    assert res["reproduction"]["seed_lenet5_printed"]["not_run"] == 1       # as printed it cannot run
    assert res["reproduction"]["seed_lenet5"]["config"]["conv_grads"] == "discarded"


def test_quick_put_back_writes_its_record(tmp_path):
    record = run_quick("seed_ladder", tmp_path / "seed_putback.json", "--put-back")
    assert record["quick"] is True
    variants = record["results"]["variants"]
    assert [v["key"] for v in variants] == ["double_softmax", "conv_grads_discarded", "printed_conv_backward",
                                            "printed_init", "seed_training"]
    assert variants[0]["config"]["softmax_output"] is True and variants[2]["config"]["conv_backward"] == "printed"
    assert variants[1]["config"]["conv_grads"] == "discarded" and variants[2]["config"]["conv_grads"] == "stored"
