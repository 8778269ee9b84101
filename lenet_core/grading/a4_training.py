"""Assignment 4 (chapter 6): choosing a training recipe on a validation split, the test set read once.

Student functions: ``pick_by_validation(histories) -> name`` (the recipe with the highest validation
accuracy at the last epoch) and ``train_recipe(recipe, x_tr, y_tr, x_val, y_val) -> (model, history)``.
The grader needs no MNIST: ``train_recipe`` is graded on synthetic digits (:func:`synthetic_digits`),
ten noisy patterns a sound recipe learns in one epoch; the model it returns is evaluated here, with
the full lenet_core, on the validation split it was given.
"""

import numpy as np

from ..model import LeNet5
from ..train import evaluate
from .report import Case, Fail, Group, unpack

KEEP = ("data", "model", "optim", "train")
ABSENT = {}
GRADING_ABSENT = {}
PRELUDE = """import numpy as np
from lenet_core.model import LeNet5
from lenet_core.optim import SGD
from lenet_core.train import evaluate, fit
"""

#: (name, {recipe: history}, the recipe to choose): final validation accuracy decides, nothing else
PICK_CASES = [
    ("validation and training accuracy disagree",
     {"lr 0.1": {"train_acc": [0.90, 0.99], "val_acc": [0.88, 0.93]},
      "lr 0.01": {"train_acc": [0.85, 0.95], "val_acc": [0.86, 0.95]}}, "lr 0.01"),
    ("the last epoch counts, not the best one",
     {"a": {"train_acc": [0.9, 0.9, 0.9], "val_acc": [0.97, 0.91, 0.92]},
      "b": {"train_acc": [0.9, 0.9, 0.9], "val_acc": [0.90, 0.93, 0.95]}}, "b"),
    ("histories of different lengths",
     {"1 epoch": {"train_acc": [0.95], "val_acc": [0.94]},
      "3 epochs": {"train_acc": [0.9, 0.95, 0.99], "val_acc": [0.90, 0.93, 0.935]},
      "2 epochs": {"train_acc": [0.9, 0.97], "val_acc": [0.91, 0.92]}}, "1 epoch"),
    ("a test accuracy is there too: never look at it",
     {"x": {"train_acc": [0.95], "val_acc": [0.96], "test_acc": [0.90]},
      "y": {"train_acc": [0.95], "val_acc": [0.95], "test_acc": [0.99]}}, "x"),
    ("lowest validation loss and highest accuracy agree on the last epoch",
     {"sgd": {"train_acc": [0.99], "val_acc": [0.975], "val_loss": [0.08]},
      "adam": {"train_acc": [0.999], "val_acc": [0.970], "val_loss": [0.10]},
      "rmsprop": {"train_acc": [0.97], "val_acc": [0.972], "val_loss": [0.09]}}, "sgd"),
]
HIDDEN_PICK = {"p": {"train_acc": [0.5, 0.99], "val_acc": [0.7, 0.80], "test_acc": [0.9, 0.99]},
               "q": {"train_acc": [0.5, 0.90], "val_acc": [0.9, 0.85], "test_acc": [0.9, 0.80]},
               "r": {"train_acc": [0.5, 0.95], "val_acc": [0.6, 0.83]}}


def _pick_case(name, histories, right, hidden=False):
    def check(got):
        if got != right:
            if hidden:
                raise Fail(f"chose {got!r}, not the recipe with the highest final validation accuracy")
            by = {k: v["val_acc"][-1] for k, v in histories.items()}
            raise Fail(f"chose {got!r}, but {right!r} has the highest final validation accuracy "
                       f"({', '.join(f'{k}: {v:.3f}' for k, v in by.items())})")
    return Case(name, "pick_by_validation", (histories,), check)


def pick_cases():
    return [_pick_case(*c) for c in PICK_CASES]


def hidden_pick_cases():
    return [_pick_case("hidden case", HIDDEN_PICK, "q", hidden=True)]


def synthetic_digits(n: int, seed: int):
    """``n`` prepared float32 images (n, 1, 32, 32) of ten classes and their labels: each class a
    fixed smooth pattern, each image that pattern plus noise. Learnable in one epoch; no MNIST."""
    rng = np.random.default_rng(1998)
    patterns = rng.standard_normal((10, 8, 8)).repeat(4, axis=1).repeat(4, axis=2)
    draw = np.random.default_rng(seed)
    labels = draw.integers(0, 10, n)
    images = patterns[labels] + 0.5 * draw.standard_normal((n, 32, 32))
    return images[:, None].astype(np.float32), labels


def _train_cases(name, recipe, n_train, n_val, seed, hidden=False):
    x_tr, y_tr = synthetic_digits(n_train, seed)
    x_val, y_val = synthetic_digits(n_val, seed + 1)
    got = {}

    def run(result):
        got.clear()                         # the cases are reused for every submission
        if result is None or not isinstance(result, dict) or "state" not in result:
            raise Fail("expected train_recipe to return (model, history)")
        history = result["history"]
        val = history.get("val_acc") if isinstance(history, dict) else None
        if not val or any(v is None for v in val):
            raise Fail("the history has no validation accuracy: pass validation=(x_val, y_val) to fit")
        if not isinstance(result["state"], dict):
            raise Fail("the model returned has no state_dict(): return the LeNet5 you trained")
        model = LeNet5()
        try:
            model.load_state_dict(result["state"])
        except Exception as e:              # noqa: BLE001 (the student's model, reported)
            raise Fail(f"the model returned is not a LeNet5: {e}") from None
        got.update(model=model, val=float(val[-1]))

    def same_split(result):
        if "model" not in got:
            raise Fail("skipped: the case above failed")
        _, acc = evaluate(got["model"], x_val, y_val)
        if abs(acc - got["val"]) > 1e-9:
            detail = "" if hidden else f" {got['val']:.4f}, the model's is {acc:.4f}"
            raise Fail(f"the history's last validation accuracy is not the model's accuracy on the validation "
                       f"split you were given{detail}: validate on (x_val, y_val), never on the test set")

    def learned(result):
        if "model" not in got:
            raise Fail("skipped: the case above failed")
        if not got["val"] > 0.5:
            raise Fail(f"validation accuracy {got['val']:.2%} after training: did the optimizer use the recipe's "
                       f"lr and momentum?")
    parts = [("the history holds a validation accuracy per epoch", run),
             ("measured on the validation split given", same_split),
             ("the model learned (validation accuracy > 50%)", learned)]
    if hidden:
        parts = [(name, lambda r: run(r) or same_split(r))]
    return [Case(name, "train_recipe", (recipe, x_tr, y_tr, x_val, y_val), None, then="model_and_history",
                 parts=tuple(parts))]


def train_cases():
    return _train_cases("train", {"lr": 0.05, "momentum": 0.9, "epochs": 1, "batch_size": 32}, 300, 200, 0)


def hidden_train_cases():
    return _train_cases("hidden case: another recipe, measured on the split given",
                        {"lr": 0.02, "momentum": 0.5, "epochs": 1, "batch_size": 50}, 200, 100, 7, hidden=True)


GROUPS = {
    "check_pick_by_validation": Group("pick a recipe by validation", pick_cases),
    "hidden_pick_by_validation": Group("pick a recipe, hidden cases", hidden_pick_cases, hidden=True),
    "check_train_recipe": Group("train a recipe", train_cases),
    "hidden_train_recipe": Group("train a recipe, hidden cases", hidden_train_cases, hidden=True),
}
