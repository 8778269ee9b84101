"""The student versions of the assignments: generated from the solution notebooks, deterministic, up to date."""

import importlib.util
import subprocess
import sys

import nbformat
import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("make_assignments", REPO / "scripts" / "make_assignments.py")
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)

SOURCES = sorted(make.SOURCE.glob("*.ipynb"))


def test_region_becomes_a_stub_with_its_hint():
    source = ("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    ### HINT: use np.tanh\n    secret = 42\n"
              "    return secret\n    ### END SOLUTION\n\nprint('after')")
    new, top_level = make.strip_solutions(source, markdown=False, where="cell")
    assert new == "def f(x):\n    y = 1\n    raise NotImplementedError('use np.tanh')\n\nprint('after')"
    assert not top_level


def test_top_level_region_is_flagged_and_markdown_regions_become_prompts():
    new, top_level = make.strip_solutions("a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION", False, "cell")
    assert new == "a = 1\nraise NotImplementedError('write your solution here')" and top_level
    new, _ = make.strip_solutions("Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", True, "cell")
    assert new == "Why?\n\n*Your answer here.*"


@pytest.mark.parametrize("source,message", [
    ("### BEGIN SOLUTION\nx = 1", "without END"),
    ("x = 1\n### END SOLUTION", "line 2: END SOLUTION without BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2: BEGIN SOLUTION inside"),
])
def test_broken_markers_are_errors(source, message):
    with pytest.raises(make.MarkerError, match=message):
        make.strip_solutions(source, False, "a1.ipynb, cell 3")


def test_there_are_at_least_three_assignments():
    assert len(SOURCES) >= 3, [p.name for p in SOURCES]


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_student_version_hides_every_solution_and_is_deterministic(path):
    source = nbformat.read(path, as_version=4)
    first = make.render(make.student_version(source, path.name))
    assert first == make.render(make.student_version(nbformat.read(path, as_version=4), path.name))
    student = nbformat.reads(first, as_version=4)
    assert len(student.cells) == len(source.cells)
    stubs = 0
    for src_cell, cell in zip(source.cells, student.cells):
        assert "### BEGIN SOLUTION" not in cell.source and "### END SOLUTION" not in cell.source
        if "### BEGIN SOLUTION" in src_cell.source:
            stubs += 1
            solution_lines = src_cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            for line in solution_lines.strip().splitlines():
                if line.strip() and not line.strip().startswith("### HINT"):
                    assert line not in cell.source.splitlines(), f"solution line leaked: {line!r}"
        if cell.cell_type == "code":
            assert cell.outputs == []
    assert stubs >= 1


def test_committed_student_versions_are_up_to_date():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "make_assignments.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_grading_script_scores_solution_student_and_tampered_notebooks(tmp_path):
    """The instructor's grader gives the solution full marks, the stub 0, and ignores edited check cells."""
    source = make.SOURCE / "a1_convolution.ipynb"
    student = nbformat.read(make.STUDENT / "a1_convolution.ipynb", as_version=4)
    for cell in student.cells:                          # a student who fakes the checks instead of solving
        if "check_conv_forward(conv_forward)" in cell.source:
            cell.source = "print('conv forward: 10/10, all cases passed')"
    tampered = tmp_path / "tampered.ipynb"
    nbformat.write(student, tampered)
    out = tmp_path / "grades.csv"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "grade_submissions.py"), str(source),
                             str(source), str(make.STUDENT / "a1_convolution.ipynb"), str(tampered), "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "submission,forward_report,backward_report,total,max,error"
    assert rows[1] == "a1_convolution.ipynb,10,12,22,22,"
    assert rows[2] == "a1_convolution.ipynb,0,0,0,22,"
    assert rows[3] == "tampered.ipynb,0,0,0,22,"
