"""The measuring tools of the sanity checks and faithfulness curves: Spearman's rank correlation and
SSIM (hand-checked cases and independent brute-force versions), layer re-initialisation, pixel orders,
deletion/insertion curves and their area; and experiments/attribution_checks.py in --quick mode."""


import numpy as np
import pytest

from lenet_core import LeNet5, load_weights
from lenet_core.attribution import make_baseline, model_output
from lenet_core.attribution.checks import (CASCADE, METHOD_NAMES, cascading_randomization, curve_auc,
                                           deletion_insertion, pixel_order, rankdata, reinitialized,
                                           scale_maps, spearman, ssim, standard_methods)
from lenet_core.data import prepare
from lenet_core.losses import softmax

from conftest import REPO, run_quick

WEIGHTS = REPO / "book" / "weights" / "lenet5.npz"


# ----------------------------------------------------------------------------------------------
# Spearman and SSIM
# ----------------------------------------------------------------------------------------------

def test_rankdata_averages_ties():
    assert np.array_equal(rankdata([[10, 30, 20, 20]]), [[1, 4, 2.5, 2.5]])
    assert np.array_equal(rankdata([0, 0, 0]), [2, 2, 2])
    assert np.array_equal(rankdata([[3, 1, 2], [1, 1, 5]]), [[3, 1, 2], [1.5, 1.5, 3]])


def test_spearman_hand_checked_cases():
    a = np.array([[1.0, 2, 3, 4, 5]])
    assert spearman(a, a ** 3)[0] == pytest.approx(1)              # any increasing map: 1
    assert spearman(a, -a)[0] == pytest.approx(-1)
    # ranks (1,2,3,4,5) and (2,1,4,3,5): sum d^2 = 4, rho = 1 - 6*4 / (5*24) = 0.8
    assert spearman(a, np.array([[20.0, 10, 40, 30, 50]]))[0] == pytest.approx(0.8)
    # with ties: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): Pearson of the ranks = 0.9486...
    rho = spearman(np.array([[1.0, 2, 2, 3]]), np.array([[1.0, 2, 3, 4]]))[0]
    assert rho == pytest.approx(3 / np.sqrt(10), abs=1e-12)
    assert np.isnan(spearman(np.zeros((1, 4)), a[:, :4])[0])       # a constant map has no ranks


def test_spearman_agrees_with_a_brute_force_version():
    """Pearson of ranks, ranks counted pixel by pixel: (# smaller) + (# equal + 1) / 2."""
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(size=(4, 1, 6, 6)), 1)                  # rounding makes ties
    b = np.round(rng.normal(size=(4, 1, 6, 6)), 1)

    def ranks(v):
        return np.array([(v < e).sum() + ((v == e).sum() + 1) / 2 for e in v])
    for i in range(4):
        ra, rb = ranks(a[i].ravel()), ranks(b[i].ravel())
        assert spearman(a, b)[i] == pytest.approx(np.corrcoef(ra, rb)[0, 1], abs=1e-12)
    try:                                                            # an extra check where scipy happens to exist
        from scipy.stats import spearmanr
    except ImportError:
        return
    for i in range(4):
        assert spearman(a, b)[i] == pytest.approx(spearmanr(a[i].ravel(), b[i].ravel())[0], abs=1e-12)


def test_ssim_hand_checked_cases():
    rng = np.random.default_rng(1)
    img = rng.random((3, 1, 16, 16))
    assert np.allclose(ssim(img, img), 1)
    # two constant images c1 and c2: (2 c1 c2 + C1) / (c1^2 + c2^2 + C1), C1 = 0.01^2
    c = np.full((1, 16, 16), 0.2), np.full((1, 16, 16), 0.6)
    expected = (2 * 0.2 * 0.6 + 1e-4) / (0.04 + 0.36 + 1e-4)
    assert ssim(c[0][None], c[1][None])[0] == pytest.approx(expected, abs=1e-12)
    # unrelated noise is far from 1, an image against its negative is negative
    assert abs(ssim(img[:1], rng.random((1, 1, 16, 16)))[0]) < 0.3
    assert ssim(img[:1], 1 - img[:1])[0] < -0.5


def test_ssim_agrees_with_a_brute_force_window_loop():
    rng = np.random.default_rng(2)
    a, b = rng.random((2, 1, 13, 12)), rng.random((2, 1, 13, 12))
    d = np.arange(11) - 5
    g = np.exp(-d ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    for n in range(2):
        values = []
        for i in range(13 - 10):
            for j in range(12 - 10):
                pa, pb = a[n, 0, i:i + 11, j:j + 11], b[n, 0, i:i + 11, j:j + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                values.append((2 * ma * mb + 1e-4) * (2 * cov + 9e-4) / ((ma ** 2 + mb ** 2 + 1e-4) * (va + vb + 9e-4)))
        assert ssim(a, b)[n] == pytest.approx(np.mean(values), abs=1e-12)
    with pytest.raises(ValueError, match="window"):
        ssim(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))


def test_scale_maps():
    m = np.array([[[-2.0, 1.0]], [[0.0, 0.0]]])
    assert np.array_equal(scale_maps(m), [[[1.0, 0.5]], [[0.0, 0.0]]])


# ----------------------------------------------------------------------------------------------
# Randomisation
# ----------------------------------------------------------------------------------------------

def test_reinitialized_replaces_only_the_named_layers():
    trained = load_weights(LeNet5(dtype=np.float64), WEIGHTS)
    before = trained.state_dict()
    copy = reinitialized(trained, ["OUT", "F6"], seed=5)
    fresh = LeNet5(seed=5, dtype=np.float64).parameters()
    for name, value in copy.parameters().items():
        reference = fresh[name] if name.split(".")[0] in ("OUT", "F6") else before[name]
        assert np.array_equal(value, reference), name
    assert all(np.array_equal(v, before[k]) for k, v in trained.parameters().items())   # untouched
    cascade = cascading_randomization(trained, seed=5)
    assert [name for name, _ in cascade] == list(CASCADE)
    last = cascade[-1][1].parameters()
    assert all(np.array_equal(last[k], fresh[k]) for k in fresh)     # all layers fresh at the end
    with pytest.raises(ValueError, match="no layer"):
        reinitialized(trained, ["C7"])


# ----------------------------------------------------------------------------------------------
# Deletion and insertion
# ----------------------------------------------------------------------------------------------

def test_pixel_order_is_descending_with_random_ties():
    scores = np.array([[0.5, 2.0, 0.0, 0.0, 1.0, 0.0]])
    orders = {tuple(pixel_order(scores, seed=s)[0]) for s in range(20)}
    assert all(o[:3] == (1, 4, 0) for o in orders)
    assert len(orders) > 1 and all(sorted(o[3:]) == [2, 3, 5] for o in orders)


def test_deletion_and_insertion_curves(mnist):
    model = load_weights(LeNet5(dtype=np.float64), WEIGHTS)
    x, y = prepare(mnist.x_test[:3], dtype=np.float64), mnist.y_test[:3]
    black = make_baseline("black", x)
    order = pixel_order(np.random.default_rng(0).random((3, 1024)))
    dele = deletion_insertion(model, x, y, order, black, steps=8)
    ins = deletion_insertion(model, x, y, order, black, mode="insertion", steps=8)
    p_x = softmax(model.forward(x))[np.arange(3), y]
    p_b = softmax(model.forward(black))[np.arange(3), y]
    assert dele.shape == ins.shape == (3, 9)
    assert np.allclose(dele[:, 0], p_x) and np.allclose(dele[:, -1], p_b)
    assert np.allclose(ins[:, 0], p_b) and np.allclose(ins[:, -1], p_x)
    # after 3 of 8 steps the first 384 pixels of the order are black
    img = x[1].reshape(-1).copy()
    img[order[1, :384]] = black[1].reshape(-1)[order[1, :384]]
    assert dele[1, 3] == pytest.approx(model_output(model, img.reshape(1, 32, 32), int(y[1]), "probability"))
    # the area over the fraction of pixels: trapezoids of width 1/2
    assert np.allclose(curve_auc(np.array([[1.0, 0.0, 0.0]])), [0.25])
    with pytest.raises(ValueError, match="steps must divide 1024"):
        deletion_insertion(model, x, y, order, black, steps=7)
    with pytest.raises(ValueError, match="order must have shape"):
        deletion_insertion(model, x, y, order[:, :10], black)


def test_standard_methods_are_seeded_and_shaped(mnist):
    model = load_weights(LeNet5(dtype=np.float64), WEIGHTS)
    x, y = prepare(mnist.x_test[:2], dtype=np.float64), mnist.y_test[:2]
    pool = prepare(mnist.x_train[:50], dtype=np.float64)
    small = dict(smooth_samples=2, ig_steps=4, sg_ig_samples=2, sg_ig_steps=2, eg_samples=2,
                 occlusion_window=8, occlusion_stride=8)
    methods = standard_methods(pool, seed=3, **small)
    assert tuple(methods) == METHOD_NAMES
    b = make_baseline("black", x)
    for name, method in methods.items():
        first, again = method(model, x, y, b), method(model, x, y, b)
        assert first.shape == x.shape and np.array_equal(first, again), name
    other = standard_methods(pool, seed=4, **small)["SmoothGrad"](model, x, y, b)
    assert not np.array_equal(other, methods["SmoothGrad"](model, x, y, b))


# ----------------------------------------------------------------------------------------------
# The script, quick mode
# ----------------------------------------------------------------------------------------------

def test_attribution_checks_script_quick(tmp_path):
    record = run_quick("attribution_checks", tmp_path / "attribution_checks.json", timeout=600)
    assert record["quick"] is True
    res = record["results"]
    assert set(res["sanity"]["methods"]) == set(METHOD_NAMES)
    for name in METHOD_NAMES:
        cascade = res["sanity"]["methods"][name]["cascade"]
        assert [row["layer"] for row in cascade] == list(CASCADE)
        assert "passes" in res["sanity"]["methods"][name]
    assert set(res["faithfulness"]["baselines"]) == {"black", "zero"}
    assert (tmp_path / "attribution_random_labels.npz").is_file()      # beside the record, not in results/
    # the chapter's figures draw from such a record: every panel labelled
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lenet_core.viz import plot_curves, plot_map_table, plot_randomization

    fig = plot_randomization(res["sanity"]["methods"], threshold=0.5, title="t")
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    assert len(fig.axes[0].get_legend().get_texts()) == len(METHOD_NAMES) + 1
    fig = plot_curves(res["faithfulness"]["baselines"])
    assert len(fig.axes) == 4 and all(ax.get_title() and ax.get_xlabel() for ax in fig.axes)
    fig = plot_map_table(np.ones((2, 3, 1, 32, 32)), row_labels=["a", "b"], col_labels="xyz")
    assert fig.axes[-1].get_ylabel() == "|attribution| / max"
    with pytest.raises(ValueError, match="need 2 row labels and 3 column labels"):
        plot_map_table(np.ones((2, 3, 32, 32)), row_labels=["a"], col_labels="xyz")
    plt.close("all")
