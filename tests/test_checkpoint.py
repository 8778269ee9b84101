"""Checkpoints (lenet_core.checkpoint) and the optimizer/scheduler state they carry: a run stopped after
any epoch and resumed from its checkpoint ends with weights bit-identical to an uninterrupted run."""

import numpy as np
import pytest

from lenet_core import LeNet5
from lenet_core.checkpoint import load_checkpoint, save_checkpoint
from lenet_core.data import prepare
from lenet_core.optim import make_optimizer, make_scheduler
from lenet_core.train import DivergenceError, History, fit, train_loop


@pytest.fixture(scope="module")
def tiny(mnist):
    return prepare(mnist.x_train[:256]), mnist.y_train[:256], prepare(mnist.x_train[-64:]), mnist.y_train[-64:]


def run(data, optimizer_name, epochs=3, stop_after=None, resume=None, path=None):
    """Train 3 epochs; with ``stop_after=k`` stop after k epochs (checkpoint at ``path``); with
    ``resume``, continue from that checkpoint in fresh objects."""
    x, y, xv, yv = data
    model = LeNet5(seed=3)
    optimizer = make_optimizer(optimizer_name, model.parameters(), 1e-2 if optimizer_name == "adam" else 0.05,
                               weight_decay=5e-4)
    scheduler = make_scheduler("cosine", optimizer, epochs)
    rng = np.random.default_rng(7)
    history = None
    if resume is not None:
        history = load_checkpoint(resume).restore(model, optimizer, scheduler, rng)

    def save(epoch, hist):
        save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, rng=rng, history=hist,
                        args={"seed": 3})
        if epoch == stop_after:
            raise KeyboardInterrupt

    try:
        history = fit(model, x, y, epochs=epochs, batch_size=32, optimizer=optimizer, scheduler=scheduler,
                      validation=(xv, yv), augment=1, seed=rng, quiet=True, history=history,
                      on_epoch_end=save if path is not None else None)
    except KeyboardInterrupt:
        pass
    return model, history


@pytest.mark.parametrize("optimizer_name", ["momentum", "adam"])
def test_resume_is_bit_identical(tiny, tmp_path, optimizer_name):
    ref_model, ref_history = run(tiny, optimizer_name)
    ckpt = tmp_path / "run.ckpt.npz"
    run(tiny, optimizer_name, stop_after=1, path=ckpt)
    assert load_checkpoint(ckpt).epoch == 1
    model, history = run(tiny, optimizer_name, resume=ckpt, path=ckpt)
    for name, value in ref_model.parameters().items():
        assert np.array_equal(model.parameters()[name], value), name
    for key in ("loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert history[key] == ref_history[key], key
    assert load_checkpoint(ckpt).epoch == 3


def test_checkpoint_refuses_other_files(tiny, tmp_path):
    weights = tmp_path / "w.npz"
    np.savez(weights, **LeNet5().state_dict())
    with pytest.raises(ValueError, match=r"w\.npz is not a lenet_core checkpoint \(no 'meta' entry\)"):
        load_checkpoint(weights)
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nothing\.npz does not exist"):
        load_checkpoint(tmp_path / "nothing.npz")
    ckpt = tmp_path / "c.ckpt.npz"
    model = LeNet5()
    optimizer = make_optimizer("sgd", model.parameters(), 0.1)
    save_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=None, rng=np.random.default_rng(0),
                    history=fit(model, *tiny[:2], epochs=1, optimizer=optimizer, quiet=True), args={})
    with pytest.raises(ValueError, match=r"c\.ckpt\.npz: the checkpoint's run had no learning-rate schedule"):
        load_checkpoint(ckpt).restore(model, optimizer, make_scheduler("cosine", optimizer, 2),
                                      np.random.default_rng(0))
    other = LeNet5()
    bigger = make_optimizer("momentum", other.parameters(), 0.1)
    with pytest.raises(ValueError, match=r"c\.ckpt\.npz: state does not fit"):
        ckpt_loaded = load_checkpoint(ckpt)
        ckpt_loaded.optimizer["state"]["C1.W"]["velocity"] = np.zeros(3)
        ckpt_loaded.restore(other, bigger, None, np.random.default_rng(0))


@pytest.mark.parametrize("last_loss,diverges", [(8.0, False), (40.0, True)])
def test_a_resumed_run_measures_divergence_from_the_original_start(tmp_path, last_loss, diverges):
    """Divergence is a batch's loss over 10x the run's first: the checkpoint keeps that first loss, so a
    run resumed after epoch 1 stops (or goes on) exactly where the uninterrupted run does, even when its
    own first batch has a much smaller loss (0.7 with 2 classes, above log 2: 10x that is below 8.0)."""
    script = [3.0, 3.0, 0.7, last_loss]                   # two batches per epoch, two epochs
    x, y = np.zeros((4, 1, 32, 32), np.float32), np.zeros(4, dtype=np.int64)
    model = LeNet5(seed=0)
    optimizer = make_optimizer("sgd", model.parameters(), 0.1)

    def loop(losses, epochs, history=None, rng=None, on_epoch_end=None):
        losses = iter(losses)
        return train_loop(lambda xb, yb: (next(losses), 0, 2), lambda: None, x, y, epochs=epochs, batch_size=2,
                          dtype=np.float32, optimizer_settings=lambda: (0.1, 0.0, False), seed=rng, quiet=True,
                          history=history, on_epoch_end=on_epoch_end)

    def outcome(run):
        try:
            return run()["loss"]
        except DivergenceError as e:
            return str(e)

    whole = outcome(lambda: loop(script, 2))
    rng, path = np.random.default_rng(0), tmp_path / "run.ckpt.npz"
    first = loop(script[:2], 1, rng=rng, on_epoch_end=lambda epoch, hist: save_checkpoint(
        path, model=model, optimizer=optimizer, scheduler=None, rng=rng, history=hist, args={}))
    assert first.start_loss == 3.0
    ckpt = load_checkpoint(path)
    assert ckpt.start_loss == 3.0
    history = ckpt.restore_rng(np.random.default_rng(1))
    assert isinstance(history, History) and history.start_loss == 3.0
    resumed = outcome(lambda: loop(script[2:], 2, history=history, rng=np.random.default_rng(0)))
    assert resumed == whole
    assert (isinstance(whole, str) and "epoch 2, batch 2" in whole and "starting value 3" in whole) == diverges
