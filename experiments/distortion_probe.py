"""Why did some first passes of the 1998 network diverge? A short probe over many seeds.

    export PYTHONPATH=$PWD LENET_MNIST_DIR=../shared/mnist
    python -m experiments.distortion_probe                                  # full: ~10 min on 1 core
    python -m experiments.distortion_probe --quick --out /tmp/probe.json    # code path only

For each distortion setting and each way of estimating the curvature below, and each seed, the
1998 network (lenet_core.lenet1998) trains one pass of SDLM at the paper's first rate on the first ``--images`` of the training split (600
updates of 32 by default: the divergences we saw happened within the first 100 updates). A run
has *diverged* when the training loop stops it (a batch's loss ten times its starting value:
lenet_core.train.DivergenceError; a network stuck at chance, its F6 saturated, sits between 50 and
100) or the mean loss of its last 100 updates is above ``DIVERGED`` (a healthy one is below 1).
Validation and test sets are not read. Writes results/lenet1998_probe.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np

from lenet_core.data import load_splits
from lenet_core.lenet1998 import DISTORTION, LeNet5_1998, RBFLoss, fit_1998, prepare_1998
from lenet_core.records import RECORDS_DIR, write_record
from lenet_core.train import DivergenceError

#: mean loss of the last 100 updates above which a run counts as diverged
DIVERGED = 10.0

#: (key, label, random_affine ranges or None for no distortion)
DISTORTIONS = [
    ("none", "no distortion", None),
    ("ours", "our distortions (shifts 2 px, scale 10%, squeeze 10%, shear 0.2)", dict(DISTORTION)),
    ("shift1", "our distortions with shifts of 1 px", dict(DISTORTION, shift=1.0)),
]
#: (key, label, fit_1998's early_curvature_every)
CURVATURE = [
    ("per_pass", "curvature estimated once per pass (the paper)", None),
    ("early", "re-estimated every 10 updates in the first pass (lenet_core's default)", 10),
]


class _TailLoss(RBFLoss):
    """RBFLoss that keeps every batch's loss."""

    def __init__(self):
        super().__init__()
        self.trace = []

    def forward(self, penalties, labels):
        value = super().forward(penalties, labels)
        self.trace.append(value)
        return value


def probe(ranges, early, seed, images):
    x, y, *_ = load_splits(prepare_1998, limit=images)
    loss = _TailLoss()
    try:
        fit_1998(LeNet5_1998(seed=seed), x, y, epochs=1, loss_fn=loss, distort=ranges is not None,
                 distortion=ranges, early_curvature_every=early, seed=seed, quiet=True)
        stopped = None
    except DivergenceError as error:                  # the training loop's own divergence check
        stopped = str(error)
    tail = float(np.mean(loss.trace[-100:]))
    return {"seed": seed, "tail_loss": tail, "diverged": stopped is not None or tail > DIVERGED,
            "stopped": stopped, "max_loss": float(np.max(loss.trace)), "updates": len(loss.trace)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per setting")
    p.add_argument("--images", type=int, default=19200, help="training images: 600 updates of 32")
    p.add_argument("--quick", action="store_true", help="2 seeds, 640 images: checks the code path")
    p.add_argument("--out", type=Path, default=RECORDS_DIR / "lenet1998_probe.json")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.images = 2, 640
        if args.out.resolve().parent == RECORDS_DIR.resolve():
            p.error("--quick writes to a temporary folder: pass --out elsewhere than results/")
    from tqdm.auto import tqdm
    table = []
    settings = [(d, c) for d in DISTORTIONS for c in CURVATURE]
    with tqdm(total=len(settings) * args.seeds, desc="probe runs", disable=args.quick) as bar:
        for (dkey, dlabel, ranges), (ckey, clabel, early) in settings:
            runs = []
            for seed in range(args.seeds):
                runs.append(probe(ranges, early, seed, args.images))
                bar.update()
            table.append({"distortion": dkey, "curvature": ckey, "label": f"{dlabel}; {clabel}",
                          "ranges": ranges, "early_curvature_every": early, "runs": runs,
                          "diverged": sum(r["diverged"] for r in runs), "n": len(runs)})
            print(f"{table[-1]['label']}: {table[-1]['diverged']} of {len(runs)} diverged", flush=True)
    write_record(args.out, {"config": {"images": args.images, "batch_size": 32, "diverged_above": DIVERGED,
                                       "optimizer": "sdlm, first pass, eta 5e-4, mu 0.02"},
                            "complete": True, "table": table},
                 seed=list(range(args.seeds)), quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
