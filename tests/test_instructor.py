"""The instructor page's command blocks, run as written, one after the other, in a fresh folder.

The folder holds the repository as ``lenet-from-scratch/`` and, in ``inbox/``, what three students sent:
alice the solution, bob the solution with conv_forward delegated to lenet_core, carol a file that is
not a notebook, dave the solution with an answer cell's id renamed, a test cell edited and a hidden
test cell deleted. The page's commands then generate, collect, grade, return feedback, export, re-grade.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess

import nbformat
import pytest

from conftest import REPO

PAGE = REPO / "book" / "instructor.md"
ASSIGNMENT = "a1_convolution"

pytestmark = pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")


def blocks():
    return re.findall(r"```bash\n(.*?)```", PAGE.read_text(), re.S)


def test_the_pages_blocks_run_as_written(tmp_path):
    (tmp_path / "lenet-from-scratch").symlink_to(REPO)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = nbformat.read(REPO / "assignments" / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH")] if p),
           "LENET_MNIST_DIR": str(tmp_path / "no-mnist-here")}
    commands = blocks()
    assert any("nbgrader generate_assignment" in b for b in commands)
    assert any("--force" in b for b in commands) and any("python -m lenet_core.grading grade" in b for b in commands)
    for i, block in enumerate(commands):
        if i == 2:      # the students have worked on the released notebook: their answers are in
            release = nbformat.read(tmp_path / "course" / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                                    as_version=4)
            answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                       if c.metadata.get("nbgrader", {}).get("solution")}
            for cell in release.cells:
                cell.source = answers.get(cell.metadata.get("nbgrader", {}).get("grade_id"), cell.source)
            nbformat.write(release, inbox / "alice.ipynb")
            cell = next(c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "conv_forward")
            cell.source = ("def conv_forward(x, W, b, stride, padding):\n"
                           "    from lenet_core.functional import conv2d\n"
                           "    return conv2d(x, W, b, stride, padding)[0]\n")
            nbformat.write(release, inbox / "bob.ipynb")
            (inbox / "carol.ipynb").write_text("def conv_forward(x, W, b, stride, padding): ...")
            # dave: right answers, but an answer cell's id renamed, a test cell edited, a hidden one deleted
            dave = nbformat.read(inbox / "alice.ipynb", as_version=4)
            by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in dave.cells}
            by_id["conv_backward"].metadata["nbgrader"]["grade_id"] = "my_conv_backward"
            by_id["check_conv_forward"].source = "10"
            dave.cells.remove(by_id["hidden_conv_backward"])
            nbformat.write(dave, inbox / "dave.ipynb")
        result = subprocess.run(["bash", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == (1 if "lenet_core.grading grade" in block else 0), \
            (block, result.stdout[-3000:], result.stderr[-3000:])
        if "lenet_core.grading grade" in block:
            lines = result.stdout.splitlines()
            assert lines[:2] == ["alice: 24/24", "bob: 13/24"] and lines[-1] == "dave: 24/24", lines
            carol = lines.index("carol: 0/24")
            assert "could not be graded (a1_convolution.ipynb is not a notebook" in lines[carol + 1]
        # the only checksum nbgrader complains about is dave's edited test cell (hidden tests are markers,
        # the same in the source and the student version)
        assert all("check_conv_forward" in line for line in result.stderr.splitlines() if "checksum" in line)
    course = tmp_path / "course"
    assert (tmp_path / "course" / "a1_convolution.zip").is_file()
    assert (course / "release" / ASSIGNMENT / "lenet_core" / "data.py").is_file()
    assert (course / "release" / ASSIGNMENT / "self_checks.npz").is_file()      # the notebook's self-checks
    with open(course / "grades.csv") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert (rows["alice"]["score"], rows["alice"]["max_score"], rows["alice"]["status"]) == ("24.0", "24.0", "graded")
    assert (rows["bob"]["score"], rows["bob"]["status"]) == ("13.0", "graded")
    assert rows["carol"]["status"].startswith("could not be graded (a1_convolution.ipynb is not a notebook")
    assert (rows["dave"]["score"], rows["dave"]["status"]) == ("24.0", "graded")
    page = (course / "feedback" / "bob" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "lenet_core.functional is not in the student build of lenet_core for a1_convolution" in page
    assert "hidden case 1" in page and "20261125" not in page and "default_rng" not in page
