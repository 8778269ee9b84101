"""Experiments that write the committed records in ``results/``, one module each, run from the
repository's root as modules (the records store that command line)::

    python -m experiments.headline_seeds      # chapter 6, 8 and the intro: LeNet-5 over seeds, both engines
    python -m experiments.seed_ladder         # chapter 7: the seed paper's pipeline, one change at a time
    python -m experiments.attribution_checks  # chapter 10: sanity checks and deletion/insertion curves
    python -m experiments.train_1998          # chapter 11: LeNet-5 as in 1998, SDLM, distortions
    python -m experiments.distortion_probe    # chapter 11: how often the first pass diverges
    python -m experiments.ablation            # chapter 12: from 1998 to today, one change per rung

Each has ``--quick`` (the code path on a small subset, written to a temporary folder; the tests
run it) and ``--help``. See ``results/README.md``.
"""
