"""Training, evaluation and the command line, on real MNIST."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lenet_core import LeNet5, load_weights
from lenet_core._files import MAX_JSON_BYTES
from lenet_core.data import prepare
from lenet_core.optim import SGD
from lenet_core.train import DEFAULT_RECIPE, History, evaluate, fit, predict, predict_proba

from conftest import REPO


@pytest.fixture(scope="module")
def small(mnist):
    return prepare(mnist.x_train[:2000]), mnist.y_train[:2000], prepare(mnist.x_test[:1000]), mnist.y_test[:1000]


def test_fit_learns_and_is_deterministic(small):
    x, y, xt, yt = small
    runs = []
    for _ in range(2):
        model = LeNet5(seed=3)
        history = fit(model, x, y, epochs=2, batch_size=32, validation=(xt, yt), seed=7, quiet=True)
        runs.append((history, model.state_dict()))
    (h1, w1), (h2, w2) = runs
    assert h1["loss"] == h2["loss"] and h1["val_acc"] == h2["val_acc"]
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)
    assert h1["epoch"] == [1, 2] and len(h1["seconds"]) == 2 and all(s > 0 for s in h1["seconds"])
    assert h1["loss"][1] < h1["loss"][0]
    assert h1["val_acc"][-1] > 0.85                                    # 2,000 images, 2 epochs
    assert h1["lr"][0] == DEFAULT_RECIPE["lr"] and h1["lr"][1] < h1["lr"][0]   # the cosine schedule moved


def test_fit_on_raw_digits_equals_fit_on_prepared_images(mnist):
    raw, y = mnist.x_train[:256], mnist.y_train[:256]
    runs = []
    for x in (raw, prepare(raw)):                                      # uint8 (N, 28, 28), float32 (N, 1, 32, 32)
        model = LeNet5(seed=3)
        history = fit(model, x, y, epochs=1, batch_size=64, augment=1, seed=1, quiet=True)
        runs.append((history["loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    assert np.array_equal(predict(model, raw[:50]), predict(model, prepare(raw[:50])))


def test_fit_with_augmentation_is_deterministic_and_differs(small):
    x, y, _, _ = small
    x, y = x[:256], y[:256]
    runs = [fit(LeNet5(seed=3), x, y, epochs=1, batch_size=64, augment=2, seed=s, quiet=True)["loss"]
            for s in (1, 1, 2)]
    plain = fit(LeNet5(seed=3), x, y, epochs=1, batch_size=64, seed=1, quiet=True)["loss"]
    assert runs[0] == runs[1]                                          # same seed, same numbers
    assert runs[0] != runs[2] and runs[0] != plain                     # the shifts did something


def test_history_json_roundtrip(tmp_path):
    h = History()
    for i, val in enumerate([(0.3, 0.9), (None, None)], 1):
        for key, value in zip(History.KEYS, (i, 0.5 / i, 0.8 + i / 100, *val, 0.05 / i, 1.5)):
            h[key].append(value)
    path = h.save(tmp_path / "sub" / "h.json")
    back = History.load(path)
    assert isinstance(back, History) and back == h and back["val_acc"] == [0.9, None]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["h.json"]   # no temporary file left
    with pytest.raises(ValueError, match=r"must end in \.json"):
        h.save(tmp_path / "h.txt")
    (tmp_path / "bad.json").write_text('{"epoch": [1], "loss": [0.1]}')
    with pytest.raises(ValueError, match=r"bad.json is not a training history: missing \['train_acc'"):
        History.load(tmp_path / "bad.json")
    (tmp_path / "ragged.json").write_text(
        '{"epoch": [1, 2], "loss": [0.1], "train_acc": [1], "val_loss": [1], "val_acc": [1], "lr": [1], "seconds": [1]}')
    with pytest.raises(ValueError, match="different lengths"):
        History.load(tmp_path / "ragged.json")


def test_history_load_reads_through_the_bounded_reader(tmp_path):
    """History.load refuses special, oversized, over-nested and ill-typed files in one ValueError naming
    the file, as the other readers do (lenet_core._files)."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)                                          # no writer: an unbounded open would hang
    with pytest.raises(ValueError, match=r"fifo.json: is a FIFO \(named pipe\), not a regular file"):
        History.load(fifo)
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_JSON_BYTES + 1)                       # sparse: no disk used
    with pytest.raises(ValueError, match=r"big.json: .* more than the .* bytes such a file can need"):
        History.load(big)
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"nested.json: not readable JSON \(nested too deeply\)"):
        History.load(nested)
    lists = {k: [1] for k in History.KEYS}
    for key, value, problem in [("loss", 5, "not every one of"), ("loss", ["x"], "'loss' holds something other"),
                                ("val_acc", [float("nan")], "'val_acc' holds something other"),
                                ("epoch", [1.5], "'epoch' holds something other than integers")]:
        bad = tmp_path / f"{key}.json"
        bad.write_text(json.dumps({**lists, key: value}))
        with pytest.raises(ValueError, match=rf"{key}.json.*{problem}"):
            History.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        History.load(tmp_path / "missing.json")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_fit_stops_on_nan(small):
    x, y, _, _ = small
    model = LeNet5()
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 1, batch 2 \(lr=inf\)"):
        fit(model, x, y, epochs=1, optimizer=SGD(model.parameters(), lr=np.inf), quiet=True)


def test_fit_rejects_bad_input(small):
    x, y, _, _ = small
    with pytest.raises(ValueError, match=r"2000 images but labels of shape \(1999,\)"):
        fit(LeNet5(), x, y[:-1], epochs=1, quiet=True)
    bad = x[:10].copy()
    bad[3, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="training images contain NaN"):
        fit(LeNet5(), bad, y[:10], epochs=1, quiet=True)


def test_predict_and_evaluate_agree(small):
    _, _, xt, yt = small
    model = LeNet5()
    labels = predict(model, xt, batch_size=300)
    probs = predict_proba(model, xt)
    assert np.array_equal(labels, probs.argmax(axis=1))
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert evaluate(model, xt, yt)[1] == pytest.approx(np.mean(labels == yt))


def run_cli(*args, env_dir):
    env = {**os.environ, "LENET_MNIST_DIR": str(env_dir)}
    return subprocess.run([sys.executable, "-m", "lenet_core", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=900)


def test_cli_one_epoch_reaches_97_percent(tmp_path, mnist_root):
    """The whole pipeline on all of MNIST: one epoch of the default recipe, then `evaluate`."""
    out, hist = tmp_path / "weights.npz", tmp_path / "history.json"
    result = run_cli("train", "--epochs", "1", "--out", str(out), "--history", str(hist), "--quiet",
                     env_dir=mnist_root)
    assert result.returncode == 0, result.stderr
    assert "epoch  1" in result.stdout and "peak memory" in result.stdout
    history = History.load(hist)
    assert history["epoch"] == [1] and history["val_acc"][0] >= 0.97
    assert f"val acc {history['val_acc'][0]:.2%}" in result.stdout
    model = load_weights(LeNet5(), out)
    result = run_cli("evaluate", str(out), env_dir=mnist_root)
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("test accuracy ")[1].split("%")[0]) / 100
    print(result.stdout)
    assert accuracy >= 0.97
    assert model.num_parameters() == 61706


def test_cli_errors(tmp_path, mnist_root):
    result = run_cli("train", "--optimizer", "rmsprop", env_dir=mnist_root)
    assert result.returncode != 0 and "invalid choice: 'rmsprop'" in result.stderr
    result = run_cli("evaluate", str(tmp_path / "missing.npz"), env_dir=mnist_root)
    assert result.returncode != 0 and "missing.npz does not exist" in result.stderr
    result = run_cli("train", "--history", str(tmp_path / "h.csv"), env_dir=mnist_root)
    assert result.returncode != 0 and "--history must end in .json" in result.stderr


def test_train_loop_hooks_run_in_order():
    """on_epoch_start comes before the epoch's batches; transform sees every batch with the loop's rng."""
    from lenet_core.train import train_loop
    events, x, y = [], np.zeros((10, 1, 4, 4), np.float32), np.zeros(10, int)

    def forward(xb, yb):
        events.append(("batch", float(xb.mean())))
        return 1.0, 0, 10

    def transform(xb, rng):
        assert isinstance(rng, np.random.Generator)
        return xb + 1

    history = train_loop(forward, lambda: None, x, y, epochs=2, batch_size=4, dtype=np.float32,
                         optimizer_settings=lambda: (0.1, 0.0, False), quiet=True, transform=transform,
                         on_epoch_start=lambda epoch: events.append(("start", epoch)))
    assert events[0] == ("start", 1) and events[4] == ("start", 2) and len(events) == 8
    assert all(e == ("batch", 1.0) for e in events if e[0] == "batch")       # transformed
    assert history["epoch"] == [1, 2]
