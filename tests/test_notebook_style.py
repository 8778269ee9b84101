"""The notebooks' shape as a reader meets it: code that fits the page, outputs free of noise.

The HTML code block shows 81 characters at a 1280 px window and cuts the rest, so a code line
is at most 79 characters, in the book's chapters and in the assignments students open. A book
chapter is committed executed, with no warning or error among its stored outputs.
"""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = sorted((ROOT / "book").glob("*.ipynb"))
ASSIGNMENTS = sorted((ROOT / "assignments" / "source").glob("*/*.ipynb"))
MAX_CODE_LINE = 79


def code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def long_lines(path):
    """``["cell K: N chars"]`` for every code line over MAX_CODE_LINE characters."""
    return [f"cell {k}: {len(line)} chars" for k, cell in enumerate(code_cells(path))
            for line in "".join(cell["source"]).splitlines() if len(line) > MAX_CODE_LINE]


@pytest.mark.parametrize("path", BOOK + ASSIGNMENTS, ids=lambda p: p.name)
def test_code_lines_fit_the_page(path):
    assert not long_lines(path), f"{path.name}: {long_lines(path)}"


@pytest.mark.parametrize("path", BOOK, ids=lambda p: p.name)
def test_chapters_are_executed_without_noise(path):
    cells = code_cells(path)
    assert any(c["outputs"] for c in cells), f"{path.name} is committed without outputs"
    noisy = [k for k, c in enumerate(cells) for out in c["outputs"]
             if out.get("name") == "stderr"
             or (out["output_type"] == "error"
                 and "raises-exception" not in c["metadata"].get("tags", []))]
    assert not noisy, f"{path.name}: stderr or error outputs in code cells {noisy}"


def test_the_line_check_sees_a_long_line(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": ["x = 1\n", "y = '" + "a" * 80 + "'\n"],
                     "outputs": [], "metadata": {}}]}
    path = tmp_path / "long.ipynb"
    path.write_text(json.dumps(nb))
    assert long_lines(path) == ["cell 0: 86 chars"]
