"""experiments/headline_seeds.py: its quick mode runs the whole code path and writes a sound record;
its McNemar test is the exact binomial test."""

import math

import numpy as np
import pytest

from conftest import run_quick
from experiments import headline_seeds


def test_mcnemar_counts_discordant_pairs_and_gives_the_exact_p():
    a = np.array([1, 1, 1, 0, 0, 1, 1, 0], bool)
    b = np.array([1, 0, 0, 0, 1, 1, 0, 0], bool)
    result = headline_seeds.mcnemar(a, b)
    assert (result["only_a_right"], result["only_b_right"]) == (3, 1)
    assert result["p"] == pytest.approx(2 * (1 + 4) / 16)           # 2 P[Bin(4, 1/2) <= 1]
    assert headline_seeds.mcnemar(a, a)["p"] == 1.0
    big = headline_seeds.mcnemar(np.r_[np.ones(30, bool), np.zeros(5, bool)],
                                 np.r_[np.zeros(30, bool), np.ones(5, bool)])
    assert big["p"] == pytest.approx(2 * sum(math.comb(35, k) for k in range(6)) / 2 ** 35)
    assert big["p"] < 1e-4


def test_mean_sd_is_the_sample_sd():
    out = headline_seeds.mean_sd([0.99, 0.992, 0.994])
    assert out["mean"] == pytest.approx(0.992) and out["sd"] == pytest.approx(0.002)


def test_quick_run_writes_a_quick_record(tmp_path):
    record = run_quick("headline_seeds", tmp_path / "headline.json")
    assert record["quick"] is True
    res = record["results"]
    assert set(res["runs"]) == {"default", "augmented", "twin", "no_weight_decay"}
    assert all("test_acc" not in r for r in res["runs"]["no_weight_decay"])   # tuning runs never see test
    twin, scratch = res["runs"]["twin"][0], res["runs"]["default"][0]
    assert abs(twin["test_acc"] - scratch["test_acc"]) < 0.01     # same start, batches and recipe
    assert res["protocol"]["val_images"] > 0 and "mcnemar" in res
    assert res["weight_decay_decision"]["val_acc_without"]["n"] == 2
