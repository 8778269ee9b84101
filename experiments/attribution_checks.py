"""Can we trust an attribution? Sanity checks and faithfulness curves for eight attribution methods.

1. Sanity checks (Adebayo et al., 2018). For every method of
   lenet_core.attribution.checks.standard_methods, maps of the true class's logit on SANITY_DIGITS
   test digits are computed for the trained LeNet-5 (book/weights/lenet5.npz) and compared with the
   maps of
   - the cascade: the same network with its layers re-initialised from the output down to C1, one
     more at a time (model randomisation);
   - a LeNet-5 trained on 2,000 training images with shuffled labels until it has memorised them
     (running train accuracy >= 90% on the shuffled labels, Adam, at most 200 epochs: data
     randomisation).
   Measures per digit: Spearman's rank correlation of |map| (the pass/fail measure), of the signed
   maps, of |map| on the digit's ink only (pixels that differ from the black baseline), and the SSIM
   of |map| scaled to [0, 1]. Spread: quartiles over the digits.
2. Faithfulness (deletion and insertion, Petsiuk et al., 2018) on FAITH_DIGITS test digits, for each
   method and for a random order (the control), with two baselines (black, and captum's default
   zero, which is the mean grey after normalisation): the probability of the true class as the
   pixels are removed (set to the baseline) or revealed (on the baseline) in the order of the map,
   64 pixels per step; area under each curve per digit.

Stated before measuring (the verdicts are computed from these constants, never adjusted after):
- SANITY_THRESHOLD = 0.5: a method passes the model-randomisation test if the median over the
  digits of the Spearman rank correlation of |map| between the trained network and the fully
  randomised one (all five layers re-initialised) is below 0.5; it passes the data-randomisation
  test if that median between the trained network and the shuffled-label network is below 0.5;
  it passes the sanity check if it passes both.
- A method's order is more faithful than a random order (for a baseline and a curve) if the mean
  over digits of the paired difference of areas (random minus method for deletion, method minus
  random for insertion) is positive and its 95% interval, mean +- 1.96 sd / sqrt(n), excludes 0.

    LENET_MNIST_DIR=../shared/mnist python -m experiments.attribution_checks
    python -m experiments.attribution_checks --quick        # a smoke run, written to a temp folder

Writes results/attribution_checks.json (lenet_core.records) and the shuffled-label network's weights
results/attribution_random_labels.npz, unless --quick or --out says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lenet_core import LeNet5, load_weights, save_weights
from lenet_core.attribution import make_baseline
from lenet_core.attribution.checks import (CASCADE, METHOD_NAMES, cascading_randomization,
                                           curve_auc, deletion_insertion, pixel_order, scale_maps,
                                           spearman, ssim, standard_methods)
from lenet_core.data import load_mnist, prepare, split_validation
from lenet_core.optim import make_optimizer
from lenet_core.records import RECORDS_DIR, write_record
from lenet_core.train import evaluate, fit

REPO = Path(__file__).resolve().parents[1]

SANITY_THRESHOLD = 0.5
SANITY_DIGITS, FAITH_DIGITS = 50, 500
RANDOM_LABEL_IMAGES = 2000
FULL = dict(sanity_digits=SANITY_DIGITS, faith_digits=FAITH_DIGITS, random_images=RANDOM_LABEL_IMAGES,
            random_max_epochs=200, memorise=0.9, random_lr=2e-3, pool=1000, steps=16,
            methods=dict(smooth_samples=8, ig_steps=16, sg_ig_samples=4, sg_ig_steps=8, eg_samples=16,
                         occlusion_window=4, occlusion_stride=4))
QUICK = dict(sanity_digits=4, faith_digits=6, random_images=300, random_max_epochs=1, memorise=0.95,
             random_lr=1e-3, pool=50,
             steps=8, methods=dict(smooth_samples=2, ig_steps=4, sg_ig_samples=2, sg_ig_steps=2,
                                   eg_samples=2, occlusion_window=8, occlusion_stride=8))


def summary(values) -> dict:
    """Median, quartiles, mean and sd of per-digit values (NaNs, from constant maps, left out and counted)."""
    v = np.asarray(values, dtype=np.float64)
    ok = v[np.isfinite(v)]
    q1, med, q3 = np.percentile(ok, [25, 50, 75]) if len(ok) else (np.nan,) * 3
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(ok.mean()) if len(ok) else None,
            "sd": float(ok.std(ddof=1)) if len(ok) > 1 else None, "n": int(len(ok)), "nan": int(len(v) - len(ok))}


def compare(original, other, ink) -> dict:
    """The four similarity measures of two batches of maps, per digit, summarised."""
    per_digit_abs = spearman(np.abs(original), np.abs(other))
    ink_rho = [spearman(np.abs(original[i][ink[i]])[None], np.abs(other[i][ink[i]])[None])[0]
               for i in range(len(original))]
    return {"spearman_abs": summary(per_digit_abs), "spearman_abs_per_digit": np.round(per_digit_abs, 4).tolist(),
            "spearman_signed": summary(spearman(original, other)),
            "spearman_abs_ink": summary(ink_rho),
            "ssim_abs": summary(ssim(scale_maps(original), scale_maps(other)))}


def train_random_labels(x, y, cfg, seed, progress):
    """A LeNet-5 trained on ``x`` with the labels ``y`` shuffled: Adam at a constant learning rate,
    one epoch at a time, until its running train accuracy reaches ``memorise`` or ``max_epochs``."""
    shuffled = np.random.default_rng(seed).permutation(y)
    model = LeNet5(seed=seed + 1)
    opt = make_optimizer("adam", model.parameters(), cfg["random_lr"])
    losses, accs = [], []
    while len(accs) < cfg["random_max_epochs"] and (not accs or accs[-1] < cfg["memorise"]):
        h = fit(model, x, shuffled, epochs=1, optimizer=opt, batch_size=64, seed=seed + len(accs),
                quiet=True, progress=False)
        losses.append(round(h["loss"][0], 4))
        accs.append(round(h["train_acc"][0], 4))
        if progress:
            print(f"  epoch {len(accs)}: loss {losses[-1]:.3f}, train accuracy (shuffled labels) "
                  f"{accs[-1]:.3f}", flush=True)
    return model, shuffled, {"loss": losses, "train_acc": accs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a few digits, into a temp folder")
    parser.add_argument("--out", type=Path, help="record path (default results/attribution_checks.json)")
    parser.add_argument("--weights", type=Path, default=REPO / "book" / "weights" / "lenet5.npz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.out is None:
        args.out = (Path(tempfile.mkdtemp(prefix="attribution_checks_")) / "attribution_checks.json"
                    if args.quick else RECORDS_DIR / "attribution_checks.json")
    random_weights = args.out.with_name("attribution_random_labels.npz")
    from tqdm.auto import tqdm

    seed = args.seed
    started = time.perf_counter()
    mnist = load_mnist()
    (x_tr, y_tr), _ = split_validation(mnist.x_train, mnist.y_train, seed=0)
    rng = np.random.default_rng(seed)
    pool = prepare(x_tr[rng.choice(len(x_tr), cfg["pool"], replace=False)])
    model = load_weights(LeNet5(), args.weights)
    methods = standard_methods(pool, seed=seed, **cfg["methods"])
    test_idx = rng.permutation(len(mnist.x_test))
    n_sanity, n_faith = cfg["sanity_digits"], cfg["faith_digits"]

    # --- the shuffled-label network --------------------------------------------------------
    print(f"training LeNet-5 on {cfg['random_images']} training images with shuffled labels "
          f"(until it has memorised {cfg['memorise']:.0%} of them, at most {cfg['random_max_epochs']} epochs)",
          flush=True)
    x_rand = prepare(x_tr[:cfg["random_images"]])
    random_model, shuffled, history = train_random_labels(x_rand, y_tr[:cfg["random_images"]], cfg, seed,
                                                          progress=not args.quick)
    save_weights(random_model, random_weights)
    x_test_all = prepare(mnist.x_test)
    random_labels = {"images": cfg["random_images"], "epochs": len(history["loss"]), "optimizer": "adam",
                     "lr": cfg["random_lr"], "schedule": "none", "batch_size": 64, "memorise": cfg["memorise"],
                     "train_acc_shuffled_labels": float(evaluate(random_model, x_rand, shuffled)[1]),
                     "train_acc_true_labels": float(evaluate(random_model, x_rand, y_tr[:cfg["random_images"]])[1]),
                     "test_acc": float(evaluate(random_model, x_test_all, mnist.y_test)[1]),
                     "trained_model_test_acc": float(evaluate(model, x_test_all, mnist.y_test)[1]),
                     "weights": str(random_weights.name), "loss_by_epoch": history["loss"],
                     "train_acc_by_epoch": history["train_acc"]}
    print(f"shuffled-label network: train accuracy {random_labels['train_acc_shuffled_labels']:.3f} on its "
          f"shuffled labels, test accuracy {random_labels['test_acc']:.3f}", flush=True)

    # --- 1. sanity checks -------------------------------------------------------------------
    xs, ys = x_test_all[test_idx[:n_sanity]], mnist.y_test[test_idx[:n_sanity]]
    black = make_baseline("black", xs)
    ink = ~np.isclose(xs, black)
    cascade = cascading_randomization(model, seed=seed + 100)
    sanity = {}
    bar = tqdm(METHOD_NAMES, desc="sanity checks", disable=args.quick)
    for name in bar:
        f = methods[name]
        original = f(model, xs, ys, black)
        rows = []
        for layer, randomized in cascade:
            rows.append({"layer": layer, **compare(original, f(randomized, xs, ys, black), ink)})
        data = compare(original, f(random_model, xs, ys, black), ink)
        model_med = rows[-1]["spearman_abs"]["median"]
        data_med = data["spearman_abs"]["median"]
        sanity[name] = {"cascade": rows, "random_labels": data,
                        "passes_model_randomization": bool(model_med < SANITY_THRESHOLD),
                        "passes_data_randomization": bool(data_med < SANITY_THRESHOLD)}
        sanity[name]["passes"] = sanity[name]["passes_model_randomization"] and \
            sanity[name]["passes_data_randomization"]
        print(f"{name:22s} median Spearman |map|: all layers random {model_med:+.3f}, shuffled labels "
              f"{data_med:+.3f} -> {'pass' if sanity[name]['passes'] else 'FAIL'}", flush=True)

    # --- 2. faithfulness --------------------------------------------------------------------
    xf, yf = x_test_all[test_idx[n_sanity:n_sanity + n_faith]], mnist.y_test[test_idx[n_sanity:n_sanity + n_faith]]
    steps = cfg["steps"]
    faith = {}
    independent = {}                                   # maps that do not depend on the baseline
    for kind in ("black", "zero"):
        base = make_baseline(kind, xf)
        rows = {}
        random_scores = np.random.default_rng(seed + 7).random((len(xf), 1024))
        orders = {"random": pixel_order(random_scores, seed=seed)}
        for name in tqdm(METHOD_NAMES, desc=f"maps, {kind} baseline", disable=args.quick):
            if name in ("gradient", "|gradient|", "SmoothGrad", "expected gradients"):
                if name not in independent:
                    independent[name] = methods[name](model, xf, yf, base)
                maps = independent[name]
            else:
                maps = methods[name](model, xf, yf, base)
            orders[name] = pixel_order(maps, seed=seed)
        aucs = {}
        for name, order in tqdm(orders.items(), desc=f"curves, {kind} baseline", disable=args.quick):
            entry = {}
            for mode in ("deletion", "insertion"):
                curves = deletion_insertion(model, xf, yf, order, base, mode=mode, steps=steps)
                auc = curve_auc(curves)
                aucs[(name, mode)] = auc
                entry[mode] = {"auc": summary(auc),
                               "curve_mean": np.round(curves.mean(axis=0), 5).tolist(),
                               "curve_q1": np.round(np.percentile(curves, 25, axis=0), 5).tolist(),
                               "curve_q3": np.round(np.percentile(curves, 75, axis=0), 5).tolist()}
            rows[name] = entry
        for name in METHOD_NAMES:
            for mode, sign in (("deletion", -1), ("insertion", 1)):
                gain = sign * (aucs[(name, mode)] - aucs[("random", mode)])      # > 0: better than random
                mean, sd = float(gain.mean()), float(gain.std(ddof=1))
                half = 1.96 * sd / np.sqrt(len(gain))
                rows[name][mode]["vs_random"] = {"mean_gain": mean, "sd": sd, "ci95": [mean - half, mean + half],
                                                 "fraction_better": float(np.mean(gain > 0)),
                                                 "better_than_random": bool(mean - half > 0)}
        faith[kind] = {"methods": rows}
        print(f"faithfulness, {kind} baseline: deletion AUC (lower is better) / insertion AUC (higher is better)")
        for name in ("random", *METHOD_NAMES):
            d, i = rows[name]["deletion"]["auc"], rows[name]["insertion"]["auc"]
            print(f"  {name:22s} {d['mean']:.3f} +- {d['sd']:.3f}   {i['mean']:.3f} +- {i['sd']:.3f}", flush=True)

    results = {
        "threshold": {"sanity_spearman_abs_median": SANITY_THRESHOLD,
                      "statement": "a method passes a randomisation test if the median over digits of the "
                                   "Spearman rank correlation of |map| between the trained and the randomised "
                                   "network (all layers re-initialised; shuffled labels) is below the "
                                   "threshold; it passes the sanity check if it passes both",
                      "faithfulness": "better than random if the 95% interval of the mean paired AUC gain "
                                      "(mean +- 1.96 sd / sqrt(n)) is above 0"},
        "settings": {"target": "logit of the true class", "dtype": "float32", "sanity_digits": n_sanity,
                     "faith_digits": n_faith, "sanity_baseline": "black", "pool": cfg["pool"],
                     "deletion_steps": steps, "pixels_per_step": 1024 // steps, "cascade": list(CASCADE),
                     "cascade_seed": seed + 100, "pool_seed": seed, "method_seed": seed,
                     "methods": cfg["methods"], "test_digits": "a seeded "
                     "permutation of the test set: the first sanity_digits for the sanity checks, the next "
                     "faith_digits for faithfulness"},
        "random_labels": random_labels,
        "sanity": {"methods": sanity},
        "faithfulness": {"baselines": faith},
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = write_record(args.out, results, seed=seed, quick=args.quick)
    print(f"wrote {path} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
