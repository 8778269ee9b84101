"""Train LeNet-5 as it was in 1998 (lenet_core.lenet1998), distortions off and on, over several seeds.

    export PYTHONPATH=$PWD LENET_MNIST_DIR=../shared/mnist
    python -m experiments.train_1998                     # full: ~25 min on 2 quiet cores
    python -m experiments.train_1998 --quick --out /tmp/lenet1998.json   # code path only

The network, its initialisation, the input scaling, the RBF loss (eq. 9) and stochastic diagonal
Levenberg-Marquardt with the paper's schedule over ``--passes`` passes, on the 55,000 training images
left after lenet_core.data.split_validation (the 5,000 held out are monitored after every pass).
The test set is read once per final model. Runs are independent; ``--jobs 2`` runs two at a time
(one BLAS thread each). The record (results/lenet1998.json) is rewritten after every run, so an
interrupted job keeps what it finished; ``complete`` says whether every run is in. The final
weights of the first seed of each condition go to book/weights/lenet1998.npz and lenet1998_distort.npz
(only when the record goes to results/lenet1998.json). ``--batch-size 8 --early-curvature-every 40
--conditions off --out results/lenet1998_batch8.json`` is chapter 11's test of smaller batches.
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

REPO = Path(__file__).resolve().parents[1]

from lenet_core.data import load_splits
from lenet_core.lenet1998 import DISTORTION, LeNet5_1998, RBFLoss, evaluate_1998, fit_1998, prepare_1998
from lenet_core.model import save_weights
from lenet_core.records import RECORDS_DIR, write_record
from lenet_core.train import DivergenceError

def run_one(seed, distort, passes, batch_size, early, limit, val_size, weights_path, quiet):
    x, y, xv, yv, xt, yt = load_splits(prepare_1998, limit=limit, val_size=val_size)
    model = LeNet5_1998(seed=seed)
    start = time.perf_counter()
    try:
        history = fit_1998(model, x, y, epochs=passes, batch_size=batch_size, validation=(xv, yv),
                           early_curvature_every=early, distort=distort, seed=seed, progress=not quiet, quiet=quiet)
    except DivergenceError as error:                 # stopped by the loop: reported, not hidden
        test_loss, test_acc = evaluate_1998(model, xt, yt, RBFLoss())
        return {"seed": seed, "distort": distort, "passes": passes, "diverged": str(error),
                "seconds": time.perf_counter() - start, "test_error": 1 - test_acc, "test_loss": test_loss}
    seconds = time.perf_counter() - start
    test_loss, test_acc = evaluate_1998(model, xt, yt, RBFLoss())          # the test set, read once
    if weights_path:
        save_weights(model, weights_path)
    return {"seed": seed, "distort": distort, "passes": passes, "seconds": seconds, "diverged": None,
            "test_error": 1 - test_acc, "test_loss": test_loss,
            "val_error": [1 - a for a in history["val_acc"]], "val_loss": history["val_loss"],
            "train_loss": history["loss"], "train_error": [1 - a for a in history["train_acc"]],
            "lr": history["lr"], "pass_seconds": history["seconds"]}


def summarise(runs):
    """Per condition: the runs, how many our loop stopped ("diverged", counted), and the mean and sd
    of the test error over the runs that trained to the end (stopped runs stay out of the means)."""
    out = {}
    for cond in ("off", "on"):
        cond_runs = [r for r in runs if r["distort"] == (cond == "on")]
        errs = [r["test_error"] for r in cond_runs if not r.get("diverged")]
        if cond_runs:
            out[cond] = {"runs": len(cond_runs), "n": len(errs),
                         "test_error_mean": float(np.mean(errs)) if errs else None,
                         "test_error_sd": float(np.std(errs, ddof=1)) if len(errs) > 1 else None,
                         "test_errors": errs, "diverged": len(cond_runs) - len(errs)}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--passes", type=int, default=20, help="passes without distortions (paper: 20)")
    p.add_argument("--passes-distorted", type=int, default=20, help="passes with distortions")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--early-curvature-every", type=int, default=10,
                   help="updates between curvature estimates in the first pass (0: once per pass, the paper)")
    p.add_argument("--conditions", nargs="+", choices=["off", "on"], default=["off", "on"],
                   help="distortions off, on, or both")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="1 seed, 1 pass each, 2,000 images: checks the code path")
    p.add_argument("--out", type=Path, default=RECORDS_DIR / "lenet1998.json")
    args = p.parse_args(argv)
    limit, val_size = 0, 5000
    if args.quick:
        args.seeds, args.passes, args.passes_distorted, args.jobs = args.seeds[:1], 1, 1, 1
        limit, val_size = 2000, 500
        if args.out.resolve().parent == RECORDS_DIR.resolve():
            p.error("--quick writes to a temporary folder: pass --out elsewhere than results/")
    config = {"batch_size": args.batch_size, "passes": args.passes, "passes_distorted": args.passes_distorted,
              "train_images": limit or 55000, "validation_images": val_size, "optimizer": "sdlm",
              "sdlm_reduction": "mean", "mu": 0.02, "hessian_samples": 500, "early_curvature_every": args.early_curvature_every or None,
              "rbf_j": RBFLoss().j,
              "distortion": DISTORTION,
              "paper_test_error": {"off": 0.0095, "on": 0.008}}
    tasks = []
    default_out = args.out.resolve() == (RECORDS_DIR / "lenet1998.json").resolve()   # weights only then
    for seed in args.seeds:
        for distort in [c == "on" for c in args.conditions]:
            weights = None
            if seed == args.seeds[0] and not args.quick and default_out:
                weights = REPO / "book" / "weights" / f"lenet1998{'_distort' if distort else ''}.npz"
            tasks.append((seed, distort, args.passes_distorted if distort else args.passes, args.batch_size,
                          args.early_curvature_every or None, limit, val_size, weights, args.jobs > 1 or args.quick))
    runs = []

    def record(complete):
        write_record(args.out, {"config": config, "complete": complete,
                                "summary": summarise(runs), "runs": sorted(runs, key=lambda r: (r["distort"], r["seed"]))},
                     seed=args.seeds, quick=args.quick)

    print(f"{len(tasks)} runs: seeds {args.seeds}, {args.passes} passes plain, {args.passes_distorted} distorted",
          flush=True)
    if args.jobs > 1:
        from tqdm.auto import tqdm
        with ProcessPoolExecutor(args.jobs) as pool, tqdm(total=len(tasks), desc="runs") as bar:
            futures = [pool.submit(run_one, *t) for t in tasks]
            for f in as_completed(futures):
                r = f.result()
                runs.append(r)
                bar.update()
                print(f"seed {r['seed']} distort {r['distort']}: test error {r['test_error']:.2%}, "
                      f"{r['diverged'] or 'trained'}, {r['seconds']:.0f}s", flush=True)
                record(False)
    else:
        for t in tasks:
            r = run_one(*t)
            runs.append(r)
            print(f"seed {r['seed']} distort {r['distort']}: test error {r['test_error']:.2%}"
                  f"{' (diverged)' if r['diverged'] else ''}", flush=True)
            record(False)
    record(True)
    print(summarise(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
