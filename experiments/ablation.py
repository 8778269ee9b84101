"""What made 99%? From LeNet-5 as in 1998 to the book's recipe and past it, one change at a time.

    export PYTHONPATH=$PWD LENET_MNIST_DIR=../shared/mnist
    python -m experiments.ablation                   # full: 39 runs of 8 epochs, ~45 min on 2 cores
    python -m experiments.ablation --quick --out /tmp/ablation.json          # code path only

Every rung changes one thing with respect to the rung it starts from (``base``) and is trained for
``--epochs`` epochs (a reduced budget: the same for every rung) on the 55,000 images left by
lenet_core.data.split_validation (or their first ``--limit``), for each seed; its validation error (the 5,000 held-out images)
is reported as mean and sd over the seeds whose runs trained to the end (a run the training loop
stops as diverged is kept in ``runs`` with its validation error where it stopped, counted in
``diverged`` and left out of the means). The test set is read once, at the end of training, for
the models of the rungs listed in FINAL only. Then the "overfit 100 images" sanity check: the 1998
network and the book's recipe on 100 training images, until they fit them.
Writes results/ablation.json (rewritten after every run; ``complete`` says whether all are in).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # before NumPy loads: runs go in parallel, one core each
import numpy as np

from lenet_core.data import load_mnist, load_splits, prepare
from lenet_core.lenet1998 import (MLP, LeNet5_1998, RBFLoss, evaluate_1998, fit_1998,
                                  prepare_1998, trainable_parameters)
from lenet_core.losses import MSELoss, SoftmaxCrossEntropy
from lenet_core.records import RECORDS_DIR, write_record
from lenet_core.train import DivergenceError

#: the 1998 starting point: model switches and training options
BASE = dict(output="rbf", activation="scaled_tanh", c3="partial", pooling="trainable", init="1998",
            loss="rbf", input="1998", optimizer="sdlm", augment=0, model="lenet")

#: (key, label, the rung it starts from, what changes). In order: the ladder towards the book's recipe,
#: then past it, then two side branches.
RUNGS = [
    ("lenet1998", "LeNet-5 as in 1998", None, {}),
    ("softmax", "RBF + eq. 9 -> linear + softmax CE", "lenet1998", dict(output="linear", loss="ce")),
    ("momentum", "SDLM -> SGD momentum + cosine", "softmax", dict(optimizer="momentum")),
    ("tanh", "scaled tanh -> tanh", "momentum", dict(activation="tanh")),
    ("full_c3", "partial -> full C3", "tanh", dict(c3="full")),
    ("avg_pool", "trainable subsampling -> average pooling", "full_c3", dict(pooling="avg")),
    ("lecun_init", "1998 init -> LeCun uniform", "avg_pool", dict(init="lecun")),
    ("standardise", "input levels -> standardised (the book's recipe)", "lecun_init", dict(input="standard")),
    ("augment", "+ augmentation (random shifts of 2 px)", "standardise", dict(augment=2)),
    ("relu", "tanh -> ReLU", "standardise", dict(activation="relu")),
    ("max_pool", "average -> max pooling", "relu", dict(pooling="max")),
    ("mse", "CE -> MSE (one-hot targets)", "standardise", dict(loss="mse")),
    ("mlp", "MLP, 1024-57-10 (59,005 parameters)", "standardise", dict(model="mlp")),
]

#: rungs whose final models are evaluated on the test set (once each)
FINAL = ("lenet1998", "standardise", "augment", "max_pool")


def rung_config(key):
    rungs = {k: (label, base, change) for k, label, base, change in RUNGS}
    label, base, change = rungs[key]
    config = dict(BASE) if base is None else rung_config(base)
    config.update(change)
    return config


def _data(limit, val_size):
    """The splits at the paper's input levels ("1998") and standardised ("standard")."""
    out = {}
    for name, prep in (("1998", prepare_1998), ("standard", prepare)):
        x, y, xv, yv, xt, yt = load_splits(prep, limit=limit, val_size=val_size)
        out[name] = (x, xv, xt)
    out.update(y=y, yv=yv, yt=yt)
    return out


def build(config, seed):
    if config["model"] == "mlp":
        model = MLP(seed=seed)
    else:
        model = LeNet5_1998(seed=seed, **{k: config[k] for k in ("output", "activation", "c3", "pooling", "init")})
    loss = {"rbf": RBFLoss, "ce": SoftmaxCrossEntropy, "mse": MSELoss}[config["loss"]]()
    return model, loss


def run_one(key, seed, epochs, batch_size, limit, val_size, test):
    config = rung_config(key)
    d = _data(limit, val_size)
    x, xv, xt = d[config["input"]]
    model, loss = build(config, seed)
    start = time.perf_counter()
    try:
        history = fit_1998(model, x, d["y"], epochs=epochs, loss_fn=loss, optimizer=config["optimizer"],
                           batch_size=batch_size, validation=(xv, d["yv"]), augment_shift=config["augment"],
                           seed=seed, quiet=True)
        diverged, val_error, train_loss = None, [1 - a for a in history["val_acc"]], history["loss"]
    except DivergenceError as error:          # stopped by the loop: the rung's error where it stopped
        diverged, val_error, train_loss = str(error), [1 - evaluate_1998(model, xv, d["yv"], loss)[1]], []
    result = {"rung": key, "seed": seed, "seconds": time.perf_counter() - start, "diverged": diverged,
              "val_error": val_error, "train_loss": train_loss, "parameters": trainable_parameters(model)}
    if test:
        result["test_error"] = 1 - evaluate_1998(model, xt, d["yt"], loss)[1]   # the test set, read once
    return result


def overfit_100(epochs, seed=0):
    """The 1998 network (SDLM at the paper's first rate) and the book's recipe on 100 training images."""
    mnist = load_mnist()
    out = {}
    for key, prep, config in (("lenet1998", prepare_1998, rung_config("lenet1998")),
                              ("standardise", prepare, rung_config("standardise"))):
        x, y = prep(mnist.x_train[:100]), mnist.y_train[:100]
        model, loss = build(config, seed)
        h = fit_1998(model, x, y, epochs=epochs, loss_fn=loss, optimizer=config["optimizer"], batch_size=10,
                     seed=seed, constant_lr=True, quiet=True)
        out[key] = {"train_error": [1 - a for a in h["train_acc"]], "train_loss": h["loss"],
                    "final_train_error": 1 - evaluate_1998(model, x, y, loss)[1]}
    return out


def summarise(runs):
    table = []
    for key, label, base, change in RUNGS:
        rs = [r for r in runs if r["rung"] == key]
        if not rs:
            continue
        trained = [r for r in rs if not r.get("diverged")]
        final = [r["val_error"][-1] for r in trained]
        row = {"rung": key, "label": label, "base": base, "change": change, "n": len(trained), "runs": len(rs),
               "parameters": rs[0]["parameters"], "val_error_mean": float(np.mean(final)) if final else None,
               "val_error_sd": float(np.std(final, ddof=1)) if len(final) > 1 else None,
               "val_errors": final, "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
               "diverged": sum(bool(r.get("diverged")) for r in rs)}
        tests = [r["test_error"] for r in trained if "test_error" in r]
        if tests:
            row.update(test_error_mean=float(np.mean(tests)),
                       test_error_sd=float(np.std(tests, ddof=1)) if len(tests) > 1 else None, test_errors=tests)
        table.append(row)
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=8, help="epochs per rung (a reduced budget, the same for all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overfit-epochs", type=int, default=30)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", nargs="+", help="run only these rungs (keys)")
    p.add_argument("--limit", type=int, default=0, help="train on the first N of the 55,000 images (0: all)")
    p.add_argument("--quick", action="store_true", help="every rung, 1 seed, 1 epoch, 1,000 images")
    p.add_argument("--out", type=Path, default=RECORDS_DIR / "ablation.json")
    args = p.parse_args(argv)
    limit, val_size = args.limit, 5000
    if args.quick:
        args.seeds, args.epochs, args.jobs, args.overfit_epochs = args.seeds[:1], 1, 1, 2
        limit, val_size = 1000, 500
        if args.out.resolve().parent == RECORDS_DIR.resolve():
            p.error("--quick writes to a temporary folder: pass --out elsewhere than results/")
    keys = args.only or [k for k, *_ in RUNGS]
    tasks = [(k, s, args.epochs, args.batch_size, limit, val_size, k in FINAL) for k in keys for s in args.seeds]
    runs, extra = [], {}
    config = {"epochs": args.epochs, "batch_size": args.batch_size, "seeds": args.seeds,
              "train_images": limit or 55000, "validation_images": val_size, "base": BASE, "final": list(FINAL),
              "sdlm": "the paper's first passes of its schedule, mu 0.02, Hessian on 500 samples per pass "
                      "and every 10 updates of the first pass",
              "momentum": "SGD Nesterov 0.9, lr 0.05, weight decay 5e-4, cosine over the epochs"}

    def record(complete):
        write_record(args.out, {"config": config, "complete": complete, "table": summarise(runs), **extra,
                                "runs": runs}, seed=args.seeds, quick=args.quick)

    print(f"{len(tasks)} runs of {args.epochs} epochs", flush=True)
    from tqdm.auto import tqdm
    with tqdm(total=len(tasks), desc="runs", disable=args.quick) as bar:
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                futures = [pool.submit(run_one, *t) for t in tasks]
                for f in as_completed(futures):
                    runs.append(f.result())
                    bar.update()
                    r = runs[-1]
                    print(f"{r['rung']} seed {r['seed']}: val error {r['val_error'][-1]:.2%}"
                          f"{' (stopped: diverged)' if r['diverged'] else ''}", flush=True)
                    record(False)
        else:
            for t in tasks:
                runs.append(run_one(*t))
                bar.update()
                record(False)
    extra["overfit_100"] = overfit_100(args.overfit_epochs)
    record(True)
    for row in summarise(runs):
        print(f"{row['label']:<55} {row['val_error_mean']:.2%} +- {row['val_error_sd'] or 0:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
