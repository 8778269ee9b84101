import numpy as np
import pytest

from lenet_core import AvgPool2d, Conv2d, LeNet5, Sequential, Tanh
from lenet_core.fields import forward_to, receptive_fields, top_patches, unit_gradient


def test_lenet5_fields_from_the_architecture():
    fields = {r.name: (r.size, r.jump) for r in receptive_fields(LeNet5(), 32)}
    assert fields["C1"] == (5, 1) and fields["S2"] == (6, 2)
    assert fields["C3"] == fields["C3_tanh"] == (14, 2)
    assert fields["S4"] == (16, 4) and fields["C5"] == (32, 4)
    assert fields["OUT"][0] == 32


@pytest.mark.parametrize("layer", ["C1", "S2", "C3", "S4", "C5"])
def test_gradient_support_is_the_computed_field(layer):
    """The unit's input gradient is non-zero exactly on a square of the computed side."""
    model = LeNet5(seed=0).astype(np.float64)
    image = np.random.default_rng(0).standard_normal((1, 32, 32))
    _, grad = unit_gradient(model, image, layer, channel=1)
    rows, cols = np.nonzero(grad[0])
    size = {r.name: r.size for r in receptive_fields(model, 32)}[layer]
    assert rows.max() - rows.min() + 1 == size == cols.max() - cols.min() + 1


def test_unit_gradient_matches_finite_differences():
    model = LeNet5(seed=0).astype(np.float64)
    image = np.random.default_rng(1).standard_normal((1, 32, 32))
    value, grad = unit_gradient(model, image, "C3_tanh", channel=2, position=(4, 5))
    bumped = image.copy()
    bumped[0, 10, 12] += 1e-6
    value2, _ = unit_gradient(model, bumped, "C3_tanh", channel=2, position=(4, 5))
    assert (value2 - value) / 1e-6 == pytest.approx(grad[0, 10, 12], rel=1e-4, abs=1e-9)


def test_forward_to_stops_at_the_named_layer():
    model = LeNet5(seed=0)
    x = np.random.default_rng(3).standard_normal((2, 1, 32, 32)).astype(np.float32)
    assert np.array_equal(forward_to(model, x, "OUT"), model.forward(x))
    assert forward_to(model, x, "C3").shape == (2, 16, 10, 10)


def test_unit_gradient_names_a_bad_layer_or_channel():
    with pytest.raises(ValueError, match="'C7'"):
        unit_gradient(LeNet5(), np.zeros((1, 32, 32)), "C7", 0)
    with pytest.raises(ValueError, match="channel 6"):
        unit_gradient(LeNet5(), np.zeros((1, 32, 32)), "C1", 6)


def test_top_patches_cut_the_strongest_units_field():
    net = Sequential(("C", Conv2d(1, 1, 3, rng=0)), ("t", Tanh()), ("S", AvgPool2d(2)))
    images = np.random.default_rng(2).standard_normal((5, 1, 12, 12))
    maps = net.forward(images)
    field = receptive_fields(net, 12)[-1]
    patches, values = top_patches(maps, images, field, k=3)
    assert patches.shape == (1, 3, 4, 4) and np.all(np.diff(values[0]) <= 0)
    n, i, j = np.unravel_index(maps[:, 0].argmax(), maps[:, 0].shape)
    assert np.array_equal(patches[0, 0], images[n, 0, 2 * i:2 * i + 4, 2 * j:2 * j + 4])
    assert values[0, 0] == maps.max()
