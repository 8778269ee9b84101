"""lenet_core.summary: the architecture table regenerated from a model (LeNet-5 as published: test_lenet1998_tables.py)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from lenet_core import AvgPool2d, Conv2d, Flatten, LeNet5, Linear, MaxPool2d, ReLU, Sequential, Tanh
from lenet_core.summary import summary


def test_lenet5_table_has_the_papers_shapes_and_counts():
    s = summary(LeNet5(), (1, 32, 32))
    assert [r.name for r in s] == ["C1", "C1_tanh", "S2", "C3", "C3_tanh", "S4", "C5", "C5_tanh", "flatten",
                                   "F6", "F6_tanh", "OUT"]
    assert [r.output_shape for r in s] == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10),
                                           (16, 5, 5), (120, 1, 1), (120, 1, 1), (120,), (84,), (84,), (10,)]
    assert {r.name: r.params for r in s if r.params} == {"C1": 156, "C3": 2416, "C5": 48120, "F6": 10164, "OUT": 850}
    assert s.total_params == 61706 == LeNet5().num_parameters()
    assert s["C3"].formula == "16 x (6 x 5 x 5 + 1)" and eval(s["C3"].formula.replace("x", "*")) == 2416
    assert s["S2"].kind == "avg pool 2x2, stride 2"
    text = str(s)
    assert "61,706" in text and "120 x 1 x 1" in text and "48,120" in text


def test_merged_table_folds_activations_like_the_paper():
    s = summary(LeNet5(), (1, 32, 32), merge_activations=True)
    assert [r.name for r in s] == ["C1", "S2", "C3", "S4", "C5", "flatten", "F6", "OUT"]
    assert s["C5"].kind == "conv 120@5x5 + tanh" and s["C5"].output_shape == (120, 1, 1)
    assert s["OUT"].kind == "linear 84->10"
    assert s.total_params == 61706


def test_summary_works_for_another_sequential_and_leaves_the_model_alone():
    model = Sequential(Conv2d(3, 8, 3, padding=1, rng=0), ReLU(), MaxPool2d(2), Conv2d(8, 4, 3, stride=2, rng=1),
                       Flatten(), Linear(4 * 3 * 3, 5, rng=2))
    before = model.state_dict()
    attributes = [set(vars(layer)) for layer in model]
    s = summary(model, (3, 16, 16))
    assert [r.name for r in s] == ["0", "1", "2", "3", "4", "5"]
    assert [r.output_shape for r in s] == [(8, 16, 16), (8, 16, 16), (8, 8, 8), (4, 3, 3), (36,), (5,)]
    assert [r.params for r in s] == [8 * 27 + 8, 0, 0, 4 * 72 + 4, 0, 5 * 37]
    assert s.total_params == model.num_parameters()
    assert s["0"].kind == "conv 8@3x3, pad 1" and s["3"].kind == "conv 4@3x3, stride 2"
    assert s["2"].kind == "max pool 2x2, stride 2" and s["1"].kind == "relu"
    assert all(np.array_equal(before[k], v) for k, v in model.parameters().items())
    assert [set(vars(layer)) for layer in model] == attributes         # no cache written: the forward ran on a copy


def test_summary_of_parameter_free_model_and_single_layer():
    s = summary(Sequential(AvgPool2d(2), Tanh(), Flatten()), (2, 4, 4), merge_activations=True)
    assert [(r.kind, r.output_shape) for r in s] == [("avg pool 2x2, stride 2 + tanh", (2, 2, 2)), ("flatten", (8,))]
    assert s.total_params == 0
    leading = summary(Sequential(Tanh(), Linear(3, 2, rng=0)), (3,), merge_activations=True)
    assert [(r.name, r.kind) for r in leading] == [("0", "tanh"), ("1", "linear 3->2")]   # nothing to merge into
    one = summary(Linear(3, 2, rng=0), (3,))
    assert len(one) == 1 and one.total_params == 8 and one.output_shape == (2,)


def test_summary_names_the_layer_that_does_not_fit():
    with pytest.raises(ValueError, match=r"layer 'C5' \(conv 120@5x5\) cannot take an input of shape \(16, 4, 4\)"):
        summary(LeNet5(), (1, 28, 28))
    with pytest.raises(KeyError, match="no layer named 'C7'"):
        summary(LeNet5(), (1, 32, 32))["C7"]
    with pytest.raises(TypeError):
        summary(object(), (1, 32, 32))
