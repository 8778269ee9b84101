"""lenet_core.model: LeNet-5's architecture, state dicts and .npz weights (Sequential as a layer: test_layers.py)."""

import numpy as np
import pytest

from lenet_core import LeNet5, load_weights, save_weights


def test_lenet5_architecture(rng):
    model = LeNet5()
    assert model.num_parameters() == 61706
    expected = {"C1.W": (6, 1, 5, 5), "C1.b": (6,), "C3.W": (16, 6, 5, 5), "C3.b": (16,),
                "C5.W": (120, 16, 5, 5), "C5.b": (120,), "F6.W": (84, 120), "F6.b": (84,),
                "OUT.W": (10, 84), "OUT.b": (10,)}
    assert {k: v.shape for k, v in model.parameters().items()} == expected
    x = rng.standard_normal((3, 1, 32, 32)).astype(np.float32)
    shapes = []
    for layer in model:
        x = layer.forward(x)
        shapes.append(x.shape[1:])
    assert shapes == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5),
                      (120, 1, 1), (120, 1, 1), (120,), (84,), (84,), (10,)]
    assert x.dtype == np.float32


def test_seed_makes_the_same_model():
    a, b, c = LeNet5(seed=1), LeNet5(seed=1), LeNet5(seed=2)
    assert all(np.array_equal(a.parameters()[k], b.parameters()[k]) for k in a.parameters())
    assert not np.array_equal(a.parameters()["C1.W"], c.parameters()["C1.W"])


def test_input_shape_errors_name_the_layer(rng):
    with pytest.raises(ValueError, match=r"Conv2d\(1, 6.*expects input \(N, 1, H, W\), got shape \(2, 3, 32, 32\)"):
        LeNet5().forward(rng.standard_normal((2, 3, 32, 32)))
    with pytest.raises(ValueError, match=r"expects input \(N, 120\), got shape \(2, 480\)"):
        LeNet5().forward(rng.standard_normal((2, 1, 36, 36)))


def test_save_and_load_roundtrip(tmp_path, rng):
    model, other = LeNet5(seed=1), LeNet5(seed=2)
    path = save_weights(model, tmp_path / "w.npz")
    load_weights(other, path)
    x = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    assert np.array_equal(model.forward(x), other.forward(x))
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]            # no temporary file left
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(model.parameters())


def _write(path, state):
    np.savez(path, **state)
    return path


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("C3.b"), r"missing \['C3.b'\]"),
    (lambda s: s.update(extra=np.zeros(1)), r"unexpected \['extra'\]"),
    (lambda s: s.update({"F6.W": np.zeros((84, 121))}), r"'F6.W' has shape \(84, 121\), the model expects \(84, 120\)"),
    (lambda s: s.update({"OUT.b": np.full(10, np.nan)}), r"'OUT.b' contains NaN"),
])
def test_load_rejects_bad_weights_and_changes_nothing(tmp_path, change, message):
    state = LeNet5(seed=1).state_dict()
    change(state)
    path = _write(tmp_path / "bad.npz", state)
    model = LeNet5(seed=2)
    before = model.state_dict()
    with pytest.raises(ValueError, match=str(path).replace(".", r"\.") + ".*" + message):
        load_weights(model, path)
    assert all(np.array_equal(before[k], v) for k, v in model.parameters().items())


def test_load_refuses_pickled_objects_and_junk(tmp_path):
    state = LeNet5().state_dict()
    state["C1.b"] = np.array([object()] * 6, dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **state)
    with pytest.raises(ValueError, match="pickled.npz is not a plain .npz"):
        load_weights(LeNet5(), path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.npz is not a readable .npz"):
        load_weights(LeNet5(), junk)
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_weights(LeNet5(), tmp_path / "nothing.npz")


def test_save_refuses_other_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.npz"):
        save_weights(LeNet5(), tmp_path / "w.pkl")
    assert list(tmp_path.iterdir()) == []
