"""The book's headline accuracies, over seeds, with an honest protocol: ``results/headline.json``.

    LENET_MNIST_DIR=../shared/mnist python -m experiments.headline_seeds

For each seed (default 0..4) it trains, on the 55,000-image training split of
:func:`lenet_core.data.split_validation` (the 5,000 held-out images are monitored after every
epoch, never trained on):

- ``default``: :func:`lenet_core.train.fit` with :data:`lenet_core.train.DEFAULT_RECIPE`;
- ``augmented``: the same with random shifts of up to 2 pixels (``--augment 2`` on the CLI);
- ``twin``: the PyTorch twin (:func:`lenet_core.twin.fit_torch`) from the same initial weights,
  recipe, batches and seed as ``default``;

and reads the 10,000 test images once per model, at the end. It reports mean and sample standard
deviation (ddof=1) of the test and validation accuracies, and paired exact McNemar tests on the
test images (augmented vs default and twin vs scratch, seed by seed: the two models of a pair share
the seed, the initial weights and the batch order).

The weight-decay decision of chapter 6 is judged here too, on the validation split only: the
recipe without weight decay is trained with seeds 0..``--wd-seeds``-1 and its final validation
accuracy compared, seed by seed, with the recipe's. Those models never see the test set.

``--quick`` checks the code path in seconds (a small subset, 1 epoch, 2 seeds) and writes to a
temporary folder, never to ``results/``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lenet_core.data import load_mnist, prepare, split_validation
from lenet_core.model import LeNet5
from lenet_core.optim import make_optimizer, make_scheduler
from lenet_core.records import RECORDS_DIR, write_record
from lenet_core.train import DEFAULT_RECIPE, fit, predict

#: the augmented recipe's shift, in pixels per axis (the CLI's ``--augment 2``)
AUGMENT = 2


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact (binomial) two-sided McNemar test of two classifiers on the same images.

    ``correct_a``, ``correct_b``: booleans (N,), whether each model got each image right.
    ``b`` counts images only A gets right, ``c`` images only B gets right; under the null
    hypothesis (equal error rates) each of the ``b + c`` discordant images is equally likely to
    fall either way, so ``p = min(1, 2 P[Binomial(b + c, 1/2) <= min(b, c)])``.
    """
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"paired results of different shapes {correct_a.shape} and {correct_b.shape}")
    b = int((correct_a & ~correct_b).sum())
    c = int((~correct_a & correct_b).sum())
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    p = min(1.0, 2 * tail / 2 ** n) if n else 1.0
    return {"only_a_right": b, "only_b_right": c, "p": p}


def mean_sd(values) -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of a list of numbers."""
    values = np.asarray(values, dtype=float)
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "sd": sd, "n": int(len(values)),
            "min": float(values.min()), "max": float(values.max())}


def train_numpy(data, seed, epochs, augment=0, weight_decay=None):
    """Train a scratch LeNet-5 on the training split; return (model, history)."""
    (x_tr, y_tr), val = data["train"], data["val"]
    model = LeNet5(seed=seed)
    optimizer = scheduler = None
    if weight_decay is not None:
        optimizer = make_optimizer(DEFAULT_RECIPE["optimizer"], model.parameters(),
                                   DEFAULT_RECIPE["lr"], weight_decay=weight_decay)
        scheduler = make_scheduler(DEFAULT_RECIPE["schedule"], optimizer, epochs)
    history = fit(model, x_tr, y_tr, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  validation=val, augment=augment, seed=seed, quiet=True)
    return model, history


def train_twin(data, seed, epochs):
    """Train the PyTorch twin from LeNet5(seed)'s weights; return (predict function, history)."""
    import torch

    from lenet_core.twin import fit_torch, to_torch

    (x_tr, y_tr), val = data["train"], data["val"]
    module = to_torch(LeNet5(seed=seed))
    history = fit_torch(module, x_tr, y_tr, epochs=epochs, validation=val, seed=seed)

    def predict_torch(x, batch_size=1000):
        module.eval()
        with torch.no_grad():
            return np.concatenate([module(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])))
                                   .argmax(dim=1).numpy() for i in range(0, len(x), batch_size)])
    return predict_torch, history


def run_record(history, seed, test_pred=None, y_test=None) -> dict:
    """One trained model's record: per-epoch validation figures, then (once) its test result."""
    run = {"seed": seed, "val_acc": history["val_acc"], "val_loss": history["val_loss"],
           "train_loss": history["loss"], "seconds": history["seconds"]}
    if test_pred is not None:
        wrong = np.flatnonzero(test_pred != y_test)
        run["test_acc"] = float(1 - len(wrong) / len(y_test))
        run["test_errors"] = wrong.tolist()
    return run


def load_data(quick: bool) -> dict:
    mnist = load_mnist()
    x, y = mnist.x_train, mnist.y_train
    x_test, y_test = mnist.x_test, mnist.y_test
    val_size = 5000
    if quick:                               # a tiny subset: checks the code path, means nothing
        x, y, x_test, y_test, val_size = x[:1500], y[:1500], x_test[:500], y_test[:500], 300
    train, val = split_validation(x, y, size=val_size, seed=0)
    return {"train": (prepare(train[0]), train[1]), "val": (prepare(val[0]), val[1]),
            "test": (prepare(x_test), y_test)}


def correct_mask(run, n_test):
    mask = np.ones(n_test, bool)
    mask[run["test_errors"]] = False
    return mask


def summarise(runs: dict, n_test: int, wd_seeds: int) -> dict:
    """Mean ± sd per model, McNemar tests per seed, and the weight-decay decision on validation."""
    summary = {}
    for name, group in runs.items():
        if not group:
            continue
        entry = {"val_acc": mean_sd([r["val_acc"][-1] for r in group])}
        if all("test_acc" in r for r in group):
            entry["test_acc"] = mean_sd([r["test_acc"] for r in group])
            entry["test_errors"] = mean_sd([len(r["test_errors"]) for r in group])
        summary[name] = entry

    tests = {}
    for label, a, b in (("augmented_vs_default", "augmented", "default"),
                        ("twin_vs_scratch", "twin", "default")):
        per_seed = []
        by_seed = {r["seed"]: r for r in runs[b]}
        for ra in runs[a]:
            if ra["seed"] not in by_seed:
                continue
            rb = by_seed[ra["seed"]]
            result = mcnemar(correct_mask(ra, n_test), correct_mask(rb, n_test))
            per_seed.append({"seed": ra["seed"], **result,
                             "acc_difference": ra["test_acc"] - rb["test_acc"]})
        ps = [t["p"] for t in per_seed]
        if not ps:
            continue
        tests[label] = {"a": a, "b": b, "per_seed": per_seed,
                        "acc_difference": mean_sd([t["acc_difference"] for t in per_seed]),
                        "p_max": max(ps), "p_min": min(ps),
                        "seeds_p_below_5pct": sum(p < 0.05 for p in ps)}

    if not runs["no_weight_decay"]:
        return {"summary": summary, "mcnemar": tests}
    default_by_seed = {r["seed"]: r for r in runs["default"]}
    with_wd = [default_by_seed[r["seed"]]["val_acc"][-1] for r in runs["no_weight_decay"]]
    without = [r["val_acc"][-1] for r in runs["no_weight_decay"]]
    diffs = [a - b for a, b in zip(with_wd, without)]
    decision = {"seeds": [r["seed"] for r in runs["no_weight_decay"]],
                "weight_decay": DEFAULT_RECIPE["weight_decay"],
                "val_acc_with": mean_sd(with_wd), "val_acc_without": mean_sd(without),
                "difference": mean_sd(diffs),
                "seeds_with_better": sum(d > 0 for d in diffs)}
    return {"summary": summary, "mcnemar": tests, "weight_decay_decision": decision}


def write(runs, data, args, seeds, out, start, complete):
    """Write the record of the runs done so far (``complete`` says whether all are done)."""
    y_test = data["test"][1]
    results = {
        "protocol": {"train_images": len(data["train"][1]), "val_images": len(data["val"][1]),
                     "val_split_seed": 0, "test_images": len(y_test), "epochs": args.epochs,
                     "recipe": dict(DEFAULT_RECIPE), "augment_pixels": AUGMENT,
                     "sd": "sample standard deviation (ddof=1) over seeds",
                     "mcnemar": "exact two-sided binomial test on discordant test images, per seed"},
        "complete": complete,
        **summarise(runs, len(y_test), args.wd_seeds),
        "runs": runs,
        "wall_seconds_this_process": time.perf_counter() - start,
    }
    return write_record(out, results, seed=seeds, quick=args.quick)


def read_results(path):
    from lenet_core.records import read_record
    return read_record(path)["results"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per model (default 5)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--wd-seeds", type=int, default=3,
                        help="seeds of the no-weight-decay runs (validation only; default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1,500 images, 1 epoch, 2 seeds, to a temporary folder")
    parser.add_argument("--resume", default=None, metavar="RUNS.json",
                        help="runs already done (a record of this script, or its 'runs'): "
                             "they are kept and not repeated")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch threads for the twin (OpenBLAS: set OPENBLAS_NUM_THREADS)")
    parser.add_argument("--out", default=None,
                        help="record path (default results/headline.json; --quick: a temp folder)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.wd_seeds = 2, 1, 2
    if args.seeds < 2 or args.epochs < 1 or not 1 <= args.wd_seeds <= args.seeds:
        raise SystemExit("error: need --seeds >= 2, --epochs >= 1 and 1 <= --wd-seeds <= --seeds")
    out = Path(args.out) if args.out else (
        Path(tempfile.mkdtemp(prefix="headline-")) / "headline.json" if args.quick
        else RECORDS_DIR / "headline.json")

    from tqdm.auto import tqdm

    data = load_data(args.quick)
    x_test, y_test = data["test"]
    seeds = list(range(args.seeds))
    plan = ([("default", s) for s in seeds] + [("augmented", s) for s in seeds]
            + [("twin", s) for s in seeds]
            + [("no_weight_decay", s) for s in range(args.wd_seeds)])
    runs = {name: [] for name in ("default", "augmented", "twin", "no_weight_decay")}
    if args.resume:
        import json
        done = json.loads(Path(args.resume).read_text())
        done = done.get("results", {}).get("runs", done)
        for name in runs:
            runs[name] = [r for r in done.get(name, []) if r["seed"] in
                          (seeds if name != "no_weight_decay" else range(args.wd_seeds))]
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    todo = [(n, s) for n, s in plan if s not in {r["seed"] for r in runs[n]}]
    # cheap-to-expensive interleaving, so that an interrupted run still covers every model
    order = os.environ.get("HEADLINE_ORDER")          # e.g. "no_weight_decay:0,twin:0,..."
    if order:
        rank = {tuple((k, int(v))): i for i, (k, v) in
                enumerate(item.split(":") for item in order.split(","))}
        todo.sort(key=lambda item: rank.get(item, len(rank)))
    else:
        todo.sort(key=lambda item: (item[0] not in ("default", "augmented"), item[1]))
    start = time.perf_counter()
    bar = tqdm(todo, desc="headline runs", unit="run")
    for name, seed in bar:
        bar.set_postfix_str(f"{name} seed {seed}")
        if name == "twin":
            predict_fn, history = train_twin(data, seed, args.epochs)
            runs[name].append(run_record(history, seed, predict_fn(x_test), y_test))
        elif name == "no_weight_decay":          # a tuning run: validation only, no test read
            _, history = train_numpy(data, seed, args.epochs, weight_decay=0.0)
            runs[name].append(run_record(history, seed))
        else:
            model, history = train_numpy(data, seed, args.epochs,
                                         augment=AUGMENT if name == "augmented" else 0)
            runs[name].append(run_record(history, seed, predict(model, x_test), y_test))
        last = runs[name][-1]
        test = f"  test {last['test_acc']:.2%}" if "test_acc" in last else ""
        bar.write(f"{name:>16} seed {seed}: val {last['val_acc'][-1]:.2%}{test}"
                  f"  ({sum(last['seconds']):.0f}s training)")
        write(runs, data, args, seeds, out, start, complete=False)
    bar.close()
    path = write(runs, data, args, seeds, out, start, complete=True)
    results = read_results(path)

    for name, entry in results["summary"].items():
        test = entry.get("test_acc")
        test = f"test {test['mean']:.2%} ± {test['sd']:.2%}  " if test else ""
        print(f"{name:>16}: {test}val {entry['val_acc']['mean']:.2%} ± {entry['val_acc']['sd']:.2%}")
    for label, t in results["mcnemar"].items():
        print(f"McNemar {label}: p per seed "
              + ", ".join(f"{r['p']:.3g} ({r['only_a_right']}/{r['only_b_right']})" for r in t["per_seed"]))
    d = results.get("weight_decay_decision")
    if d:
        print(f"weight decay on validation: with {d['val_acc_with']['mean']:.2%}, without "
              f"{d['val_acc_without']['mean']:.2%}, better in {d['seeds_with_better']}/{len(d['seeds'])} seeds")
    print(f"record written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
