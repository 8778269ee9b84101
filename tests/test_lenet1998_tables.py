"""lenet_core.lenet1998.tables: Table I of LeCun et al. (1998), partially connected convolutions' parameter
counts, and LeNet-5's parameters and connections as the paper counts them."""

import numpy as np
import pytest

from lenet_core import LeNet5
from lenet_core.lenet1998.tables import (C3_TABLE, format_connection_table, format_paper_table,
                                         lecun1998_table, partial_conv_parameters)
from lenet_core.summary import summary


def test_c3_connection_table_is_lecuns_table_one():
    assert C3_TABLE.shape == (6, 16)
    # Table I as printed in the paper (rows: S2 maps 0-5, columns: C3 maps 0-15), typed independently
    # of the rule that builds C3_TABLE
    table_one = ["X...XXX..XXXX.XX",
                 "XX...XXX..XXXX.X",
                 "XXX...XXX..X.XXX",
                 ".XXX..XXXX..X.XX",
                 "..XXX..XXXX.XX.X",
                 "...XXX..XXXX.XXX"]
    assert C3_TABLE.tolist() == [[c == "X" for c in row] for row in table_one]
    assert C3_TABLE.sum(axis=0).tolist() == [3] * 6 + [4] * 6 + [4] * 3 + [6]
    # the first row of Table I, read off the paper: S2 map 0 feeds C3 maps 0, 4-6, 9-12, 14, 15
    assert np.flatnonzero(C3_TABLE[0]).tolist() == [0, 4, 5, 6, 9, 10, 11, 12, 14, 15]
    assert np.flatnonzero(C3_TABLE[:, 13]).tolist() == [1, 2, 4, 5]
    assert len({tuple(col) for col in C3_TABLE.T}) == 16                # no two C3 maps read the same inputs
    assert partial_conv_parameters(C3_TABLE, 5) == 1516
    assert partial_conv_parameters(np.ones((6, 16)), 5) == 2416 == summary(LeNet5(), (1, 32, 32))["C3"].params
    assert partial_conv_parameters(np.ones((2, 3)), (3, 2)) == 3 * (2 * 3 * 2 + 1)
    text = format_connection_table(C3_TABLE)
    assert text.splitlines()[1].split() == ["0", "X", ".", ".", ".", "X", "X", "X", ".", ".", "X", "X", "X", "X",
                                            ".", "X", "X"]
    with pytest.raises(ValueError):
        C3_TABLE[0, 1] = True                                           # the published table is read-only


def test_lecun1998_counts_match_the_papers_text():
    rows = {r.name: r for r in lecun1998_table()}
    assert {k: r.trainable for k, r in rows.items()} == {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120,
                                                         "F6": 10164, "OUTPUT": 0}
    assert {k: r.connections for k, r in rows.items()} == {"C1": 122304, "S2": 5880, "C3": 151600, "S4": 2000,
                                                           "C5": 48120, "F6": 10164, "OUTPUT": 840}
    assert sum(r.trainable for r in rows.values()) == 60000
    assert sum(r.connections for r in rows.values()) == 340908
    assert rows["OUTPUT"].fixed == 840
    full = {r.name: r.trainable for r in lecun1998_table(np.ones((6, 16), dtype=bool))}
    assert full["C3"] == 2416
    assert "60,000" in format_paper_table(lecun1998_table()) and "340,908" in format_paper_table(lecun1998_table())
