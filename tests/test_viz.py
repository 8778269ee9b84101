"""The plotting helpers of lenet_core.viz: they return Figures with titled axes, draw what they
claim to draw, and reject inputs of the wrong shape."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from lenet_core import filters, functional, viz


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def image_axes(fig):
    """The axes that are not colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def assert_titled(fig):
    assert isinstance(fig, Figure)
    axes = image_axes(fig)
    assert axes, "the figure has no axes"
    for ax in axes:
        if ax.get_visible() and ax.axison or ax.images:
            assert ax.get_title(), f"an axis without a title: {ax}"


@pytest.fixture
def digits(rng):
    x = np.zeros((40, 28, 28), dtype=np.uint8)
    x[:, 6:22, 12:16] = rng.integers(100, 256, size=(40, 16, 4))
    return x, np.arange(40) % 10


def test_show_images_one_titled_axis_and_colour_bar_per_image(rng):
    fig = viz.show_images([rng.normal(size=(5, 5)), rng.normal(size=(3, 4))], ["a", "b"], suptitle="s")
    assert [ax.get_title() for ax in image_axes(fig)] == ["a", "b"]
    assert len(fig.axes) == 4                       # two images, two colour bars
    assert fig._suptitle.get_text() == "s"


def test_show_images_rejects_non_2d_and_title_count(rng):
    with pytest.raises(ValueError, match="images\\[0\\]"):
        viz.show_images([np.zeros((2, 5, 5))], ["x"])
    with pytest.raises(ValueError, match="titles"):
        viz.show_images([np.zeros((5, 5))], ["a", "b"])


def test_plot_matrices_prints_every_value():
    m = np.array([[1.0, 2.0], [3.0, 4.5]])
    fig = viz.plot_matrices([m], ["m"], fmt="{:g}")
    texts = sorted(t.get_text() for t in image_axes(fig)[0].texts)
    assert texts == ["1", "2", "3", "4.5"]
    assert image_axes(fig)[0].get_xlabel() == "column"


def test_plot_matrices_highlight_must_match_shape():
    with pytest.raises(ValueError, match="highlight"):
        viz.plot_matrices([np.zeros((2, 2))], ["m"], highlight=[np.zeros((3, 3), dtype=bool)])
    with pytest.raises(ValueError, match="matrices\\[0\\]"):
        viz.plot_matrices([np.zeros(4)], ["v"])


def test_value_histograms(rng):
    fig = viz.plot_value_histograms([rng.normal(size=100), rng.uniform(size=50)], ["n", "u"])
    assert_titled(fig)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    with pytest.raises(ValueError):
        viz.plot_value_histograms([np.array([])], ["empty"])


def test_digit_grid_rows_are_classes(digits):
    x, y = digits
    fig = viz.plot_digit_grid(x, y, per_class=3, rng=0)
    assert len(fig.axes) == 30
    assert [fig.axes[3 * k].get_ylabel() for k in range(10)] == [str(k) for k in range(10)]
    assert fig._suptitle.get_text()


def test_digit_grid_is_reproducible_and_checks_inputs(digits):
    x, y = digits
    first = [ax.images[0].get_array().sum() for ax in viz.plot_digit_grid(x, y, per_class=4, rng=1).axes]
    again = [ax.images[0].get_array().sum() for ax in viz.plot_digit_grid(x, y, per_class=4, rng=1).axes]
    assert first == again
    with pytest.raises(ValueError, match="fewer than per_class"):
        viz.plot_digit_grid(x, y, per_class=5)
    with pytest.raises(ValueError, match="labels"):
        viz.plot_digit_grid(x, y[:-1])
    with pytest.raises(ValueError, match="images"):
        viz.plot_digit_grid(x[0], y)


def test_pixel_values_prints_the_nonzero_pixels():
    img = np.zeros((4, 4), dtype=np.uint8)
    img[1, 2], img[3, 0] = 200, 17
    fig = viz.plot_pixel_values(img, title="t")
    ax = image_axes(fig)[0]
    assert sorted(t.get_text() for t in ax.texts) == ["17", "200"]
    assert ax.get_title() == "t" and ax.get_xlabel() and ax.get_ylabel()
    assert len(fig.axes) == 2                      # with a colour bar
    with pytest.raises(ValueError):
        viz.plot_pixel_values(np.zeros((1, 4, 4)))


def test_class_counts_bars_match_bincount():
    y_train, y_test = np.array([0, 1, 1, 2, 2, 2]), np.array([2, 1])
    fig = viz.plot_class_counts(y_train, y_test, num_classes=3)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [1, 2, 3]
    assert [p.get_height() for p in fig.axes[1].patches] == [0, 1, 1]
    assert_titled(fig)
    with pytest.raises(ValueError, match="y_test"):
        viz.plot_class_counts(y_train, np.zeros((2, 2), dtype=int))


def test_receptive_field_centres_titles_state_the_sizes(digits):
    fig = viz.plot_receptive_field_centres(digits[0][0])
    titles = [ax.get_title() for ax in image_axes(fig)]
    assert "28x28 input -> 24x24" in titles[0] and "32x32 input -> 28x28" in titles[1]
    with pytest.raises(ValueError, match="odd"):
        viz.plot_receptive_field_centres(digits[0][0], kernel=4)


def test_one_hot_labels_rows():
    fig = viz.plot_one_hot(np.array([2, 0]), np.eye(3)[[2, 0]])
    assert [t.get_text() for t in image_axes(fig)[0].get_yticklabels()] == ["#0: 2", "#1: 0"]
    with pytest.raises(ValueError):
        viz.plot_one_hot(np.array([2, 0, 1]), np.eye(3)[[2, 0]])


def test_classic_kernels_sums():
    k = filters.classic_kernels()
    assert set(k) >= {"Sobel x", "Sobel y", "Laplacian", "sharpen"}
    assert k["Sobel x"].sum() == 0 and k["Laplacian"].sum() == 0
    assert np.isclose(k["Gaussian 5x5 (σ=1)"].sum(), 1) and np.isclose(k["box blur 3x3"].sum(), 1)
    assert np.array_equal(k["Sobel y"], k["Sobel x"].T)


def test_filter2d_is_same_size_cross_correlation(rng):
    img = rng.normal(size=(6, 7))
    k = rng.normal(size=(3, 3))
    out = filters.filter2d(img, k)
    assert out.shape == img.shape
    padded = np.pad(img, 1)
    assert np.isclose(out[2, 3], np.sum(padded[2:5, 3:6] * k))       # not flipped
    with pytest.raises(ValueError, match="odd"):
        filters.filter2d(img, np.ones((2, 2)))


def test_kernel_figures(rng):
    img = rng.uniform(size=(10, 10))
    kernels = filters.classic_kernels()
    fig = viz.plot_kernel_responses(img, kernels)
    assert len(image_axes(fig)) == 2 * len(kernels)
    assert_titled(fig)
    fig = viz.kernel_explorer_figure(img, kernels["Sobel x"], "Sobel x")
    assert [ax.get_title() for ax in image_axes(fig)][:2] == ["input", "kernel: Sobel x"]
    fig = viz.plot_kernel_gallery(np.stack([img, img]), kernels, row_labels=["a", "b"])
    assert len(image_axes(fig)) == 2 * (len(kernels) + 1)
    assert_titled(fig)
    with pytest.raises(ValueError):
        viz.plot_kernel_gallery(img, kernels)
    with pytest.raises(ValueError, match="empty"):
        viz.plot_kernel_responses(img, {})


def test_pool_windows_draws_one_frame_per_output():
    x = np.arange(25.0).reshape(5, 5)
    fig = viz.plot_pool_windows(x, 3, 2, "avg")
    ax_in, ax_out = image_axes(fig)
    assert len(ax_in.patches) == 4 and len(ax_out.patches) == 4
    fig = viz.plot_pool_windows(x, 3, 2, "max")
    assert len(image_axes(fig)[0].patches) == 8       # frames + circled winners
    assert "2x2" in image_axes(fig)[1].get_title()


def test_pool_backward_shows_routed_gradient():
    x = np.array([[1.0, 3.0], [3.0, 0.0]])          # a tie: the first maximum wins
    fig = viz.plot_pool_backward(x, np.array([[5.0]]), 2, 2, "max")
    ax_dx = image_axes(fig)[2]
    values = dict(((int(round(t.get_position()[1])), int(round(t.get_position()[0]))), t.get_text()) for t in ax_dx.texts)
    assert values == {(0, 0): "0", (0, 1): "5", (1, 0): "0", (1, 1): "0"}
    assert sum(isinstance(p, plt.Rectangle) for p in image_axes(fig)[0].patches) == 1
    with pytest.raises(ValueError, match="dout"):
        viz.plot_pool_backward(x, np.ones((2, 2)), 2, 2, "max")
    with pytest.raises(ValueError, match="mode"):
        viz.plot_pool_backward(x, np.ones((1, 1)), 2, 2, "median")


def test_pool_explorer_and_gallery(rng):
    img = rng.uniform(size=(12, 12))
    fig = viz.pool_explorer_figure(img, 3, 3, "max")
    assert image_axes(fig)[1].images[0].get_array().shape == (4, 4)
    fig = viz.plot_pool_gallery(img, kernel_sizes=(2,), strides=(1, 2), modes=("avg", "max"))
    titles = [ax.get_title() for ax in image_axes(fig) if ax.images]
    assert titles == ["input 12x12", "avg k=2 s=1: 11x11", "avg k=2 s=2: 6x6", "max k=2 s=1: 11x11", "max k=2 s=2: 6x6"]
    expected = functional.pool2d(img[None, None], 2, 2, "max")[0][0, 0]
    assert np.array_equal(image_axes(fig)[-1].images[0].get_array(), expected)
    with pytest.raises(ValueError):
        viz.plot_pool_gallery(img, kernel_sizes=())


def test_every_public_helper_is_exported():
    for name in viz.__all__:
        assert callable(getattr(viz, name)), name


# ---- chapter 6: training ----

def _history(n=3, val=True):
    return {"epoch": list(range(1, n + 1)), "loss": [0.5, 0.2, 0.1][:n], "train_acc": [0.8, 0.9, 0.95][:n],
            "val_loss": [0.4, 0.3, 0.2][:n] if val else [None] * n, "val_acc": [0.85, 0.9, 0.93][:n] if val else [None] * n,
            "lr": [0.1] * n, "seconds": [1.0] * n}


def test_moving_average_is_trailing_and_keeps_length():
    out = filters.moving_average([1, 2, 3, 4, 5], window=2)
    assert np.allclose(out, [1, 1.5, 2.5, 3.5, 4.5])
    assert np.allclose(filters.moving_average([3, 1], window=1), [3, 1])
    with pytest.raises(ValueError, match="window"):
        filters.moving_average([1, 2], window=0)
    with pytest.raises(ValueError, match="1-D"):
        filters.moving_average(np.ones((2, 2)), window=2)


def test_loss_curves_one_raw_and_one_smoothed_line_per_curve(rng):
    fig = viz.plot_loss_curves({"a": rng.uniform(0.1, 1, 50), "b": rng.uniform(0.1, 1, 40)}, window=5)
    assert_titled(fig)
    ax = fig.axes[0]
    assert len(ax.lines) == 4
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert np.allclose(ax.lines[3].get_ydata(), filters.moving_average(ax.lines[2].get_ydata(), 5))
    assert ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(ValueError):
        viz.plot_loss_curves({})
    with pytest.raises(ValueError, match="'x'"):
        viz.plot_loss_curves({"x": np.ones((3, 2))})


def test_history_plots_train_and_test_curves():
    fig = viz.plot_history({"run A": _history(), "run B": _history()}, title="t")
    assert_titled(fig)
    ax_loss, ax_acc = fig.axes
    assert len(ax_loss.lines) == 4 and len(ax_acc.lines) == 4          # train + test for each run
    assert np.allclose(ax_acc.lines[1].get_ydata(), [85, 90, 93])        # accuracies in percent
    assert ax_loss.get_xlabel() == "epoch" and ax_acc.get_ylabel()
    single = viz.plot_history(_history(val=False))                        # one history, no validation
    assert len(single.axes[0].lines) == 1
    assert [int(t) for t in ax_loss.get_xticks()] == [1, 2, 3]                # one tick per epoch
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 4   # one legend for both panels


def test_history_rejects_incomplete_histories():
    h = _history()
    del h["val_acc"]
    with pytest.raises(ValueError, match="val_acc"):
        viz.plot_history({"x": h})
    h = _history()
    h["loss"] = h["loss"][:2]
    with pytest.raises(ValueError, match="different lengths"):
        viz.plot_history(h)


def test_confusion_matrix_prints_the_nonzero_counts():
    cm = np.array([[5, 0, 1], [0, 7, 0], [2, 0, 9]])
    fig = viz.plot_confusion_matrix(cm, title="cm")
    ax = image_axes(fig)[0]
    assert sorted(int(t.get_text()) for t in ax.texts) == [1, 2, 5, 7, 9]
    assert ax.get_title() == "cm" and ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert len(fig.axes) == 2                                              # with a colour bar
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="integer"):
        viz.plot_confusion_matrix(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="class_names"):
        viz.plot_confusion_matrix(np.eye(2, dtype=int), class_names=["a"])


def test_mistakes_titles_state_truth_prediction_and_confidence(digits):
    x, _ = digits
    fig = viz.plot_mistakes(x[:3], [1, 2, 3], [7, 7, 8], [0.99, 0.5, 0.875], ncols=2)
    assert [ax.get_title() for ax in fig.axes] == ["true 1, pred 7\n99.0% sure", "true 2, pred 7\n50.0% sure",
                                                   "true 3, pred 8\n87.5% sure"]
    assert fig._suptitle.get_text()
    with pytest.raises(ValueError, match="predictions"):
        viz.plot_mistakes(x[:3], [1, 2, 3], [7, 7], [0.9, 0.9, 0.9])
    with pytest.raises(ValueError, match="images"):
        viz.plot_mistakes(x[0], [1], [2], [0.5])


def test_filters_share_a_colour_scale_centred_at_zero(rng):
    W = rng.normal(size=(6, 1, 5, 5))
    W[2, 0, 1, 1] = -3.0
    fig = viz.plot_filters(W, ncols=3)
    axes = image_axes(fig)
    assert [ax.get_title() for ax in axes] == [f"filter {i}" for i in range(6)]
    m = np.abs(W).max()
    for ax in axes:
        assert ax.images[0].get_clim() == (-m, m)
    assert np.array_equal(axes[2].images[0].get_array(), W[2, 0])
    assert len(fig.axes) == 7                                              # one shared colour bar
    with pytest.raises(ValueError, match="one input channel"):
        viz.plot_filters(rng.normal(size=(16, 6, 5, 5)))
    with pytest.raises(ValueError):
        viz.plot_filters(rng.normal(size=(5, 5)))


def test_feature_maps_with_input_image(rng):
    maps = np.tanh(rng.normal(size=(6, 8, 8)))
    fig = viz.plot_feature_maps(maps, image=rng.normal(size=(12, 12)), image_title="digit", ncols=4)
    assert_titled(fig)
    titles = [ax.get_title() for ax in image_axes(fig)]
    assert titles == ["digit"] + [f"map {i}" for i in range(6)]
    lo, hi = image_axes(fig)[1].images[0].get_clim()
    assert lo == -hi
    assert np.array_equal(image_axes(fig)[3].images[0].get_array(), maps[2])
    with pytest.raises(ValueError, match="maps"):
        viz.plot_feature_maps(rng.normal(size=(8, 8)))
    with pytest.raises(ValueError, match="image"):
        viz.plot_feature_maps(maps, image=np.zeros((1, 8, 8)))


# ----------------------------------------------------------------------------------------------
# Chapter 8: time per epoch of two histories
# ----------------------------------------------------------------------------------------------

def test_epoch_seconds_bars_and_medians():
    numpy_h = {"epoch": [1, 2, 3], "seconds": [36.0, 7.0, 8.0]}
    torch_h = {"epoch": [1, 2, 3], "seconds": [6.0, 7.5, 6.5]}
    fig = viz.plot_epoch_seconds({"NumPy": numpy_h, "PyTorch": torch_h}, title="t")
    assert_titled(fig)
    ax = fig.axes[0]
    assert ax.get_title() == "t" and ax.get_xlabel() == "epoch" and "(s)" in ax.get_ylabel()
    heights = [p.get_height() for p in ax.patches]
    assert heights == [36.0, 7.0, 8.0, 6.0, 7.5, 6.5]                    # one bar per epoch and history
    xs = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    assert xs[0] < 1 < xs[3] and xs[1] < 2 < xs[4]                         # grouped around each epoch
    medians = sorted(line.get_ydata()[0] for line in ax.lines)
    assert medians == [6.5, 8.0]                                           # the 36 s outlier does not count
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "NumPy: median 8.0 s" in labels and "PyTorch: median 6.5 s" in labels
    single = viz.plot_epoch_seconds(numpy_h)                               # one bare history
    assert len(single.axes[0].patches) == 3


def test_epoch_seconds_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        viz.plot_epoch_seconds({})
    with pytest.raises(ValueError, match="no \\['seconds'\\]"):
        viz.plot_epoch_seconds({"a": {"epoch": [1]}})
    with pytest.raises(ValueError, match="different lengths"):
        viz.plot_epoch_seconds({"a": {"epoch": [1, 2], "seconds": [1.0]}})
    with pytest.raises(ValueError, match="finite"):
        viz.plot_epoch_seconds({"a": {"epoch": [1], "seconds": [float("nan")]}})


def test_history_overlay_keeps_identical_curves_visible():
    h = {"epoch": [1, 2], "loss": [0.2, 0.1], "train_acc": [0.9, 0.95], "val_loss": [0.15, 0.1],
         "val_acc": [0.92, 0.96]}
    fig = viz.plot_history_overlay({"NumPy": h, "PyTorch": dict(h)}, title="twins")
    assert fig._suptitle.get_text() == "twins"
    ax_loss, ax_acc = fig.axes[:2]
    assert ax_loss.get_title() and ax_acc.get_title() and ax_loss.get_xlabel() == "epoch"
    for ax in (ax_loss, ax_acc):
        under = [line for line in ax.get_lines() if line.get_label().startswith("NumPy: ")]
        over = [line for line in ax.get_lines() if line.get_label().startswith("PyTorch: ")]
        assert len(under) == len(over) == 2
        for u, o in zip(under, over):
            assert np.array_equal(u.get_ydata(), o.get_ydata())            # the same data ...
            assert u.get_linewidth() > o.get_linewidth() and u.get_alpha() < 1 and o.get_zorder() > u.get_zorder()
    with pytest.raises(ValueError, match="at least two"):
        viz.plot_history_overlay(h)
    with pytest.raises(ValueError, match="non-empty name"):
        viz.plot_history_overlay({"": h, "b": h})


# ----------------------------------------------------------------------------------------------
# Attribution maps (lenet_core.attribution computes them)
# ----------------------------------------------------------------------------------------------

def test_plot_attribution_labels_every_panel(rng):
    x, label = rng.standard_normal((1, 32, 32)), 7
    attr = rng.standard_normal((1, 32, 32))
    fig = viz.plot_attribution(x, attr, title=f"Integrated Gradients for a {label}")
    try:
        panels, colorbars = fig.axes[:3], fig.axes[3:]
        assert len(panels) == 3 and len(colorbars) == 1
        for ax in panels:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert colorbars[0].get_ylabel() == "attribution"
        norm = panels[1].images[0].norm
        assert norm.vmin == -norm.vmax == -np.abs(attr).max()      # centred at 0
        assert fig._suptitle.get_text() == f"Integrated Gradients for a {label}"
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="same shape"):
        viz.plot_attribution(x, attr[:, :28, :28])


# ----------------------------------------------------------------------------------------------
# The IG chapter's other figures
# ----------------------------------------------------------------------------------------------

def test_plot_attribution_grid_centres_every_map_at_zero():
    from lenet_core.viz import plot_attribution_grid

    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 1, 32, 32))
    maps = rng.normal(size=(2, 3, 1, 32, 32))
    maps[1, 2] *= 5
    fig = plot_attribution_grid(images, maps, col_labels=["a", "b", "c"], row_labels=["first", "second"],
                                notes=[["n00", "n01", "n02"], ["n10", "n11", "n12"]], title="grid")
    try:
        panels = [ax for ax in fig.axes if ax.images]
        colorbars = [ax for ax in fig.axes if not ax.images]
        assert len(panels) == 2 * 4 and len(colorbars) == 2 * 3           # one colour bar per map
        assert fig._suptitle.get_text() == "grid"
        assert panels[0].get_title() == "first" and panels[4].get_title() == "second"
        assert panels[1].get_title() == "a\nn00" and panels[7].get_title() == "c\nn12"
        for r in range(2):
            for c in range(3):
                norm = panels[4 * r + c + 1].images[0].norm
                assert norm.vmin == -norm.vmax == -np.abs(maps[r, c]).max()
        assert np.array_equal(panels[7].images[0].get_array(), maps[1, 2, 0])
        assert all(cb.get_ylabel() == "attribution" for cb in colorbars)  # every colour bar labelled
    finally:
        plt.close(fig)


def test_plot_attribution_grid_wraps_wide_rows():
    from lenet_core.viz import plot_attribution_grid

    rng = np.random.default_rng(1)
    images, maps = rng.normal(size=(2, 32, 32)), rng.normal(size=(2, 5, 32, 32))
    fig = plot_attribution_grid(images, maps, col_labels="abcde", row_labels=["first", "second"],
                                max_cols=2, cbar_label="IG")
    try:
        panels = [ax for ax in fig.axes if ax.images]
        # per digit: 3 rows of (digit, 2 maps), the last row one map short
        assert len(panels) == 2 * (3 + 5) and len(fig.axes) == len(panels) + 2 * 5
        assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == (6, 3)
        titles = [ax.get_title() for ax in panels]
        assert titles[:8] == ["first", "a", "b", "(the same digit)", "c", "d", "(the same digit)", "e"]
        assert np.array_equal(panels[7].images[0].get_array(), maps[0, 4])
        assert np.array_equal(panels[11].images[0].get_array(), images[1])
        assert all(ax.get_ylabel() == "IG" for ax in fig.axes if not ax.images)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="max_cols must be a positive integer"):
        plot_attribution_grid(images, maps, col_labels="abcde", max_cols=0)


def test_plot_attribution_grid_rejects_mismatched_input():
    from lenet_core.viz import plot_attribution_grid

    images, maps = np.zeros((2, 32, 32)), np.zeros((2, 3, 32, 32))
    with pytest.raises(ValueError, match="attributions must have shape"):
        plot_attribution_grid(images, maps[:1], col_labels="abc")
    with pytest.raises(ValueError, match="attributions must have shape"):
        plot_attribution_grid(images, maps[..., :28, :28], col_labels="abc")
    with pytest.raises(ValueError, match="col_labels needs 3 entries"):
        plot_attribution_grid(images, maps, col_labels=["a", "b"])
    with pytest.raises(ValueError, match="row_labels needs 2 entries"):
        plot_attribution_grid(images, maps, col_labels="abc", row_labels=["x"])
    with pytest.raises(ValueError, match="notes must be 2 rows of 3 strings"):
        plot_attribution_grid(images, maps, col_labels="abc", notes=[["1", "2", "3"]])
    with pytest.raises(ValueError, match="images must have shape"):
        plot_attribution_grid(np.zeros((32, 32)), maps, col_labels="abc")
    plt.close("all")


def test_plot_path_outputs_draws_one_labelled_panel_per_curve():
    from lenet_core.viz import plot_path_outputs

    alphas = np.linspace(0, 1, 11)
    fig = plot_path_outputs(alphas, {"logit": alphas ** 2, "probability": np.sqrt(alphas)}, title="path")
    try:
        assert len(fig.axes) == 2 and fig._suptitle.get_text() == "path"
        for ax, (label, values) in zip(fig.axes, {"logit": alphas ** 2, "probability": np.sqrt(alphas)}.items()):
            assert ax.get_title() == label and ax.get_ylabel() == label and ax.get_xlabel()
            assert np.allclose(ax.lines[0].get_ydata(), values) and np.allclose(ax.lines[0].get_xdata(), alphas)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="curve 'logit' has shape"):
        plot_path_outputs(alphas, {"logit": alphas[:5]})
    with pytest.raises(ValueError, match="curves is empty"):
        plot_path_outputs(alphas, {})
    plt.close("all")


def test_plot_convergence_is_log_log_with_means_and_guides():
    from lenet_core.viz import plot_convergence

    steps = [5, 10, 20, 40]
    fast = np.array([[1e-2, 3e-2], [1e-4, 3e-4], [1e-8, 3e-8], [0.0, 0.0]])      # exact zeros: drawn at the floor
    slow = np.array([[0.2, 0.2], [0.1, 0.1], [0.05, 0.05], [0.025, 0.025]])
    fig = plot_convergence(steps, {"fast": fast, "slow": slow}, title="conv")
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_title() == "conv" and ax.get_xlabel() and ax.get_ylabel()
        lines = {line.get_label(): line for line in ax.lines}
        assert np.allclose(lines["fast (mean)"].get_ydata(), [2e-2, 2e-4, 2e-8, 1e-16])
        assert np.allclose(lines["slow (mean)"].get_ydata(), slow.mean(axis=1))
        guides = [line for label, line in lines.items() if label.startswith("slope")]
        assert len(guides) == 2
        assert np.allclose(guides[0].get_ydata(), 0.2 * 5 / np.array(steps))        # slope -1 through the top start
        assert len(ax.collections) == 2                                              # one min-max band per method
        assert ax.get_legend().get_texts()[-1].get_text() == "shaded: best to worst digit"
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match=r"must have shape \(4, N\)"):
        plot_convergence(steps, {"fast": fast[:3]})
    with pytest.raises(ValueError, match="finite and >= 0"):
        plot_convergence(steps, {"signed": -fast})
    with pytest.raises(ValueError, match="positive step counts"):
        plot_convergence([0, 10], {"a": np.ones((2, 1))})
    plt.close("all")


def test_architecture_figures_have_titles_and_labels():
    from lenet_core import LeNet5, Sequential, Tanh
    from lenet_core.lenet1998 import C3_TABLE
    from lenet_core.summary import summary

    fig = viz.plot_parameter_counts(summary(LeNet5(), (1, 32, 32)))
    ax = fig.axes[0]
    assert "61,706" in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["C1", "C3", "C5", "F6", "OUT"]
    fig2 = viz.plot_connection_table(C3_TABLE)
    assert "1,516" in fig2.axes[0].get_title() and fig2.axes[0].get_ylabel() == "S2 map i"
    plt.close("all")
    with pytest.raises(ValueError):
        viz.plot_parameter_counts(summary(Sequential(Tanh()), (3,)))


def test_receptive_field_figures_fit_the_column_and_outline_the_field(rng):
    grads = [np.zeros((32, 32)), np.zeros((32, 32))]
    grads[0][10:15, 10:15] = rng.standard_normal((5, 5))
    grads[1][9:23, 9:23] = rng.standard_normal((14, 14))
    fig = viz.plot_unit_gradients(rng.random((32, 32)), grads, ["C1", "C3"], [5, 14])
    assert_titled(fig)
    assert fig.get_figwidth() <= viz.COLUMN_INCHES
    squares = [p for ax in fig.axes for p in ax.patches]
    assert [(s.get_xy(), s.get_width()) for s in squares] == [((9.5, 9.5), 5), ((8.5, 8.5), 14)]
    fig2 = viz.plot_top_patches(rng.random((2, 8, 14, 14)), rng.random((2, 8)), ["map 0", "map 5"])
    assert_titled(fig2)
    assert fig2.get_figwidth() <= viz.COLUMN_INCHES
    assert fig2.axes[8].get_ylabel() == "map 5"
    with pytest.raises(ValueError, match="values"):
        viz.plot_top_patches(rng.random((2, 8, 14, 14)), rng.random((2, 7)), ["a", "b"])


def test_chapter_figures_are_sized_for_the_content_column(rng, digits):
    """The page shows a figure at its natural size only if it is at most the column's width."""
    x, y = digits
    h = {"epoch": [1, 2], "loss": [1.0, 0.5], "train_acc": [0.5, 0.9], "val_loss": [1.0, 0.6],
         "val_acc": [0.5, 0.8]}
    figures = [viz.plot_digit_grid(x, y, per_class=4), viz.plot_pixel_values(x[0]),
               viz.plot_class_counts(y, y), viz.plot_receptive_field_centres(x[0]),
               viz.plot_mistakes(x[:12], y[:12], y[:12], np.ones(12)),
               viz.plot_filters(rng.random((6, 5, 5)), annotate=True),
               viz.plot_feature_maps(rng.random((16, 10, 10))),
               viz.plot_history_overlay({"a": h, "b": h})]
    for fig in figures:
        assert fig.get_figwidth() <= viz.COLUMN_INCHES + 1e-9, fig.axes[0].get_title()
