"""Why the seed paper got 90.27%: its Appendix B pipeline reproduced, then its causes removed one at a time.

1. Reproduction: the seed's script as printed (lenet_core.seed_paper.SEED_AS_PRINTED: an MLP, 2500 steps of
   64 consecutive images, SGDMomentum lr 1e-4 on summed gradients, the test set centred by its own
   mean, float64, NaN carried on), trained on all 60,000 training images like the paper, over several
   seeds: train and test accuracy beside the paper's 90.1266% / 90.27%. Beside it, the seed's LeNet5
   class under the same script (what the paper's text describes): as printed it cannot run (recorded
   with the reason); with the two repairs that make it run (RUNNABLE) it trains with its conv
   gradients discarded, as printed.
2. The ladder: starting from the printed pipeline, each rung changes one more thing, ending at the
   book's recipe (lenet_core.LeNet5 with lenet_core.train.DEFAULT_RECIPE). Every rung is trained on
   the 55,000 images left by lenet_core.data.split_validation and judged on its 5,000 validation
   images; the test set is read once per rung's final models. The learning rate of the seed's
   optimizer is chosen on the validation split.

    LENET_MNIST_DIR=../shared/mnist python -m experiments.seed_ladder
    python -m experiments.seed_ladder --quick        # a smoke run on a small subset, written to a temp folder

Writes results/seed_ladder.json (lenet_core.records) unless --quick or --out says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lenet_core import seed_paper as S
from lenet_core.data import load_mnist, split_validation
from lenet_core.records import RECORDS_DIR, write_record
from lenet_core.train import DEFAULT_RECIPE

PRINTED = S.SEED_AS_PRINTED


#: the two repairs without which the seed's LeNet5 class cannot run under its script
RUNNABLE = {"input_shape": "image", "maxpool": "renamed"}


def ladder(epochs: int, lr: float):
    """The rungs, cumulative: ``(key, what changes, config)``; ``lr`` is the validated learning rate."""
    rungs = [("printed", "the seed's script as printed: an MLP 784-300-100-10", PRINTED)]

    def add(key, change, **kw):
        rungs.append((key, change, rungs[-1][2].replace(**kw)))
    add("train_mean", "test set centred by the training mean", test_centring="train")
    add("float32", "float32 arithmetic, not float64", dtype="float32")
    add("epochs", f"{epochs} shuffled epochs, not 2500 random windows",
        sampling="shuffle", epochs=epochs)
    add("lr", f"learning rate {lr:g}, chosen on validation", lr=lr)
    add("seed_lenet5", "the seed's LeNet5 class, not the MLP, made to run (images reshaped to "
        "(N, 1, 28, 28), MaxPool's forward called); its conv gradients still discarded",
        model="seed_lenet5", **RUNNABLE)
    add("lecun_init", "LeCun's initialisation, not the printed one", init="lecun")
    add("single_softmax", "one softmax: the model outputs logits", softmax_output=False)
    add("conv_grads", "the conv dW and db stored, so the convolutions learn", conv_grads="stored")
    add("true_conv_backward", "the true conv input gradient", conv_backward="true")
    add("book_optimizer", "the book's optimizer (DEFAULT_RECIPE)", optimizer="book")
    add("book_lenet5", "the book's LeNet-5 (tanh, average pooling, 32x32 input padded)", model="lenet5")
    add("book_recipe", "the book's input normalisation: the book's recipe", preprocessing="book")
    return rungs


def put_back(epochs: int):
    """From the CNN with every fault fixed and the book's optimizer (the ladder's ``book_optimizer``
    rung), put back one of the seed's choices at a time: ``(key, what is put back, config)``."""
    base = dict((k, c) for k, _, c in ladder(epochs, 1.0))["book_optimizer"]
    return [("double_softmax", "the softmax applied twice", base.replace(softmax_output=True)),
            ("conv_grads_discarded", "the conv dW and db discarded", base.replace(conv_grads="discarded")),
            ("printed_conv_backward", "the printed conv input gradient (dW, db stored)",
             base.replace(conv_backward="printed")),
            ("printed_init", "the printed initialisation", base.replace(init="seed")),
            ("seed_training", "the seed's optimizer and 2500 windows (lr 1e-4)",
             base.replace(optimizer="seed", lr=PRINTED.lr, sampling="window"))]


def summarise(runs, keys):
    """Counts, then mean and sd of ``keys`` over the runs that trained to the end (NaN carried on, as
    printed, counts as trained: its accuracy is what the printed script would print)."""
    out = {"n_runs": len(runs), "not_run": sum(not r["ran"] for r in runs),
           "stopped": sum(r.get("stopped", False) for r in runs),
           "nan_runs": sum(r.get("nan_step") is not None for r in runs)}
    for key in keys:
        values = [r[key] for r in runs if key in r]
        if values:
            out[f"{key}_mean"] = float(np.mean(values))
            out[f"{key}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny subset and few steps (a smoke test)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of each ladder rung")
    parser.add_argument("--repro-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="seeds of the reproduction on the full training set")
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs of the rungs that train by epochs (2: what one session's shared CPU allowed)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3],
                        help="learning rates of the seed's optimizer tried on the validation split")
    parser.add_argument("--put-back", action="store_true",
                        help="instead of the ladder: put the seed's faults back one at a time into the "
                             "fixed CNN (writes results/seed_putback.json)")
    parser.add_argument("--part", choices=["all", "reproduction", "ladder"], default="all",
                        help="the reproduction alone (writes results/seed_reproduction.json), the ladder "
                             "alone, or both in one record; the parts are independent, so they can run "
                             "as two processes")
    parser.add_argument("--out", type=Path, default=None, help="record path (default results/seed_ladder.json)")
    args = parser.parse_args(argv)

    mnist = load_mnist()
    x_train, y_train, x_test, y_test = mnist
    val_size, steps, epochs = 5000, PRINTED.steps, args.epochs
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], y_test[:1000]
        val_size, steps, epochs = 500, 30, 1
        args.seeds, args.repro_seeds, args.lrs = args.seeds[:1], args.repro_seeds[:2], args.lrs[:2]
    name = ("seed_putback.json" if args.put_back else
            "seed_reproduction.json" if args.part == "reproduction" else "seed_ladder.json")
    do_repro, do_ladder = args.part in ("all", "reproduction"), args.part in ("all", "ladder")
    out = args.out or (Path(tempfile.mkdtemp(prefix="seed_ladder_")) / name if args.quick
                       else RECORDS_DIR / name)
    (x_tr, y_tr), (x_val, y_val) = split_validation(x_train, y_train, size=val_size, seed=0)

    def cfg(config):
        return config.replace(steps=steps) if config.sampling == "window" else config.replace(epochs=epochs)

    lr_runs = len(args.lrs)
    total = (len(put_back(epochs)) * len(args.seeds) if args.put_back else
             (len(args.repro_seeds) + 1 + len(args.repro_seeds[:3])) * do_repro
             + (lr_runs + len(ladder(epochs, 1.0)) * len(args.seeds)) * do_ladder)
    from tqdm.auto import tqdm
    bar = tqdm(total=total, desc="seed ladder", file=sys.stdout, mininterval=5)
    start = time.perf_counter()

    def measure(config, x, y, held, seed, **kw):
        bar.set_postfix_str(f"{config.model} seed {seed}")
        t = time.perf_counter()
        result = S.run(cfg(config), x, y, held, seed=seed, progress=False, **kw)
        result["seconds"] = round(time.perf_counter() - t, 2)
        bar.update()
        note = (f" NOT RUN ({result['error']})" if not result["ran"] else
                f" loss NaN at step {result['nan_step']}" if result.get("nan_step") else "")
        bar.write(f"  {config.model:<11} seed {seed}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in result.items() if k.endswith("_acc")) + note +
            f"  [{result['seconds']:.0f}s]")
        return result

    if args.put_back:
        variants = []
        for key, change, config in put_back(epochs):
            runs = [measure(config, x_tr, y_tr, {"val": (x_val, y_val), "test": (x_test, y_test)}, s)
                    for s in args.seeds]
            variants.append({"key": key, "change": change, "config": dataclasses.asdict(cfg(config)),
                             "seeds": args.seeds, "runs": runs, **summarise(runs, ["val_acc", "test_acc"])})
        bar.close()
        results = {"base": "the seed_ladder.json rung book_optimizer (same split, seeds, epochs and commit)",
                   "variants": variants, "epochs": epochs, "seconds": round(time.perf_counter() - start, 1)}
        path = write_record(out, results, seed=args.seeds, quick=args.quick)
        for v in variants:
            print(f"{v['key']:<22} val {v.get('val_acc_mean', float('nan')):.2%}  "
                  f"test {v.get('test_acc_mean', float('nan')):.2%}  NaN runs {v['nan_runs']}")
        print(f"wrote {path}")
        return path

    # 1. the reproduction, on the whole training set as the paper did
    reproduction = {}
    for key, config, seeds in [("mlp", PRINTED, args.repro_seeds),
                               ("seed_lenet5_printed", PRINTED.replace(model="seed_lenet5"), args.repro_seeds[:1]),
                               ("seed_lenet5", PRINTED.replace(model="seed_lenet5", **RUNNABLE),
                                args.repro_seeds[:3])][:3 * do_repro]:
        runs = [measure(config, x_train, y_train, {"test": (x_test, y_test)}, s, train_accuracy=True)
                for s in seeds]
        reproduction[key] = {"config": dataclasses.asdict(cfg(config)), "seeds": seeds,
                             "runs": runs, **summarise(runs, ["train_acc", "test_acc"])}
    results = {"paper": S.SEED_PAPER,
               "split": {"train": int(len(x_tr)), "val": int(len(x_val)), "test": int(len(x_test)),
                         "full_train": int(len(x_train))}}
    if do_repro:
        results["reproduction"] = reproduction

    if do_ladder:
        # 2a. the learning rate of the seed's optimizer, chosen on the validation split (seed 0)
        sweep_base = dict((k, c) for k, _, c in ladder(epochs, PRINTED.lr))["epochs"]
        sweep = [{"lr": lr, **measure(sweep_base.replace(lr=lr), x_tr, y_tr, {"val": (x_val, y_val)}, 0)}
                 for lr in args.lrs]
        valid = [r for r in sweep if "val_acc" in r]
        best_lr = max(valid, key=lambda r: r["val_acc"])["lr"] if valid else PRINTED.lr

        # 2b. the ladder
        rungs = []
        for key, change, config in ladder(epochs, best_lr):
            runs = [measure(config, x_tr, y_tr, {"val": (x_val, y_val), "test": (x_test, y_test)}, s)
                    for s in args.seeds]
            rungs.append({"key": key, "change": change, "config": dataclasses.asdict(cfg(config)),
                          "seeds": args.seeds, "runs": runs, **summarise(runs, ["val_acc", "test_acc"])})
        results.update({"lr_sweep": {"base": dataclasses.asdict(cfg(sweep_base)), "runs": sweep,
                                     "chosen_lr": best_lr},
                        "ladder": rungs, "book_recipe": DEFAULT_RECIPE, "epochs": epochs})
    bar.close()
    results["seconds"] = round(time.perf_counter() - start, 1)
    path = write_record(out, results, seed={"ladder": args.seeds, "reproduction": args.repro_seeds},
                        quick=args.quick)
    if do_repro:
        print(f"reproduction (MLP): train {reproduction['mlp'].get('train_acc_mean', float('nan')):.2%}, "
              f"test {reproduction['mlp'].get('test_acc_mean', float('nan')):.2%} "
              f"(paper: {S.SEED_PAPER['train_acc']:.4%}, {S.SEED_PAPER['test_acc']:.2%})")
    for rung in results.get("ladder", []):
        print(f"{rung['key']:<20} val {rung.get('val_acc_mean', float('nan')):.2%}  "
              f"test {rung.get('test_acc_mean', float('nan')):.2%}  NaN runs {rung['nan_runs']}")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
