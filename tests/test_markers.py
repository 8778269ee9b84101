"""The per-assignment markers (root conftest.py, pyproject.toml): `pytest -m a3` selects assignment 3's
tests, and only them."""

import subprocess
import sys

from conftest import REPO

ASSIGNMENTS = sorted(p.name for p in (REPO / "assignments" / "source").iterdir() if p.is_dir())


def collected(*args):
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_every_assignment_has_a_registered_marker():
    text = (REPO / "pyproject.toml").read_text()
    assert [a.split("_")[0] for a in ASSIGNMENTS] == [f"a{i}" for i in range(1, len(ASSIGNMENTS) + 1)]
    for a in ASSIGNMENTS:
        assert f'"{a.split("_")[0]}: assignment {a}"' in text, a


def test_a_marker_selects_its_assignments_tests_only():
    ids = collected("-m", "a3", "--strict-markers", "assignments/source", "tests/test_grading.py")
    assert any(i.startswith("assignments/source/a3_backprop/a3_backprop.ipynb::") for i in ids)
    assert any(i.startswith("tests/test_grading.py::") for i in ids)
    assert ids and all("a3_backprop" in i for i in ids)
