"""The weights the book ships (book/weights/, see its README.md) load into LeNet5 and reach 99% on MNIST's test set."""

import numpy as np
import pytest

from lenet_core import LeNet5, load_weights
from lenet_core.data import prepare
from lenet_core.train import History, evaluate

from conftest import REPO

WEIGHTS = REPO / "book" / "weights"


@pytest.fixture(scope="module")
def test_set(mnist):
    return prepare(mnist.x_test), mnist.y_test


def test_book_weights_reach_99_percent(test_set):
    model = load_weights(LeNet5(), WEIGHTS / "lenet5.npz")
    loss, accuracy = evaluate(model, *test_set)
    assert accuracy >= 0.99, f"book/weights/lenet5.npz: test accuracy {accuracy:.2%}"
    assert np.isfinite(loss)


def test_book_weights_are_small_float32():
    path = WEIGHTS / "lenet5.npz"
    assert path.stat().st_size < 300_000                               # 61,706 float32 numbers
    with np.load(path, allow_pickle=False) as f:
        assert all(f[name].dtype == np.float32 for name in f.files)


@pytest.mark.parametrize("name,floor", [("lenet5_history.json", 0.99), ("lenet5_augment_history.json", 0.992)])
def test_book_histories_are_complete(name, floor):
    history = History.load(WEIGHTS / name)
    assert history["epoch"] == list(range(1, 11))
    assert history["val_acc"][-1] >= floor
    assert all(0 <= a <= 1 for a in history["train_acc"] + history["val_acc"])


def test_history_matches_the_weights(test_set):
    """The history's last test accuracy is the one the shipped weights give (same run)."""
    model = load_weights(LeNet5(), WEIGHTS / "lenet5.npz")
    _, accuracy = evaluate(model, *test_set)
    assert History.load(WEIGHTS / "lenet5_history.json")["val_acc"][-1] == pytest.approx(accuracy, abs=1e-4)
