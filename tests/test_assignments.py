"""The six assignments graded as a teacher grades them: every answer cell runs in the sandbox.

For every assignment: the reference solution gets full marks; so does the same solution with a debug
print to stderr and warnings; a solution that delegates to lenet_core, one that patches numpy's testing,
one that patches the grader, one that writes outside its folder and one that leaves a process behind
each get zero for the function they did not implement (and full marks for the rest), with feedback
naming why; nothing outside the submission's folder changes; no process outlives the grading.
The submissions of all assignments are graded once per module, one after the other.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from lenet_core.grading import ASSIGNMENTS, load
from lenet_core.grading.notebook import answer_cells, grade_groups

COURSE = REPO / "assignments"
TOKEN = "lenet-grading-test-9f3c1a"

#: per assignment: the function a hostile submission leaves unimplemented, what delegating to
#: lenet_core looks like, the test groups that then score zero, and what the feedback says about it
DELEGATES = {
    "a1_convolution": ("conv_forward", "from lenet_core.functional import conv2d\n"
                       "return conv2d(x, W, b, stride, padding)[0]",
                       {"check_conv_forward", "hidden_conv_forward"},
                       "lenet_core.functional is not in the student build of lenet_core for a1_convolution"),
    "a2_pooling_softmax": ("softmax_cross_entropy", "from lenet_core.losses import SoftmaxCrossEntropy\n"
                           "loss_fn = SoftmaxCrossEntropy()\n"
                           "return loss_fn.forward(logits, labels), loss_fn.backward()",
                           {"check_softmax", "hidden_softmax"},
                           "lenet_core.losses is not in the student build of lenet_core for a2_pooling_softmax"),
    "a3_backprop": ("numerical_gradient", "from lenet_core.gradcheck import numerical_gradient as reference\n"
                    "return reference(f, x, h)", {"check_numerical_gradient"},
                    "lenet_core.gradcheck.numerical_gradient is left out of the student build of lenet_core "
                    "for a3_backprop: the assignment asks you to write it yourself"),
    "a4_training": ("pick_by_validation", "from lenet_core.grading import a4_training\n"
                    "return a4_training.PICK_CASES[0][2]",
                    {"check_pick_by_validation", "hidden_pick_by_validation"},
                    "No module named 'lenet_core.grading'"),
    "a5_pytorch_twin": ("copy_to_torch", "from lenet_core.twin import to_torch\nreturn to_torch(model)",
                        {"check_copy_to_torch"},
                        "lenet_core.twin.to_torch is left out of the student build of lenet_core for "
                        "a5_pytorch_twin: the assignment asks you to write it yourself"),
    "a6_integrated_gradients": ("integrated_gradients",
                                "from lenet_core.attribution import integrated_gradients as reference\n"
                                "return reference(model, image, target, baseline, steps=steps)[0]",
                                {"check_integrated_gradients", "hidden_integrated_gradients",
                                 "check_compare_baselines"},
                                "integrated_gradients is left out of the student build of lenet_core for a6"),
}

NOISE = ("import sys, warnings\nprint('debug: here', file=sys.stderr)\nprint('x' * 100000)\n"
         "warnings.warn('a harmless warning')\n_ = np.float64(1.0) / 0.0\n")

#: cheats that go into the answer cell of the function left unimplemented (answer cells are all that runs)
CHEATS = {
    "patches_numpy_testing": ("import numpy.testing\n"
                              "numpy.testing.assert_allclose = lambda *a, **k: None\n"
                              "numpy.testing.assert_array_equal = lambda *a, **k: None\n"
                              "np.allclose = lambda *a, **k: True\n"),
    "patches_grader": ("import sys\n"
                       "_runner = sys.modules['__main__']\n"
                       "_frame = getattr(_runner, 'frame', None)\n"
                       "if _frame:\n"
                       "    _runner.frame = lambda h, a: _frame({'result': 1.0, 'warnings': [], 'changed': []}, [])\n"
                       "for _name in ['lenet_core.grading', 'lenet_core.grading.report']:\n"
                       "    try:\n"
                       "        __import__(_name)\n"
                       "        sys.modules[_name].judge = lambda *a, **k: None\n"
                       "    except ImportError:\n"
                       "        pass\n"),
    "writes_outside": ("import os, pathlib\n"
                       "for _p in [{targets}]:\n"
                       "    try:\n"
                       "        pathlib.Path(_p).parent.mkdir(parents=True, exist_ok=True)\n"
                       "        pathlib.Path(_p).write_text('{token}')\n"
                       "    except OSError:\n"
                       "        pass\n"),
    "leaves_a_process": ("import subprocess, sys\n"
                         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)  # {token}'],\n"
                         "                 start_new_session=True, stdout=subprocess.DEVNULL,\n"
                         "                 stderr=subprocess.DEVNULL)\n"
                         "if __import__('os').fork() == 0:\n"
                         "    __import__('time').sleep(300)\n"),
}


def solution_cells(assignment):
    nb = nbformat.read(COURSE / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    return answer_cells(nb)


def replace_solution(cells, function, body):
    """The cells with ``function``'s solution region replaced by ``body`` (indented as the region)."""
    out, found = [], False
    for name, source in cells:
        start = source.find(f"def {function}(")
        if start >= 0:
            begin = source.index("### BEGIN SOLUTION\n", start)
            end = source.index("### END SOLUTION", begin)
            indent = re.search(r"([ \t]*)### BEGIN SOLUTION", source[:begin + 20]).group(1)
            text = "".join(indent + line + "\n" for line in body.splitlines())
            source = source[:begin + len("### BEGIN SOLUTION\n")] + text + indent + source[end:]
            found = True
        out.append((name, source))
    assert found, function
    return out


def with_code(cells, function, code):
    """``code`` appended at the top level of the cell that defines ``function``."""
    return [(name, source + "\n" + code if f"def {function}(" in source else source) for name, source in cells]


def noisy(cells):
    """Every solution region starts by printing to stderr and stdout and raising warnings."""
    out = []
    for name, source in cells:
        def inject(match):
            indent = match.group(1)
            return match.group(0) + "".join(indent + line + "\n" for line in NOISE.splitlines())
        out.append((name, re.sub(r"([ \t]*)### BEGIN SOLUTION\n", inject, source)))
    return out


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def lingering() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and TOKEN.encode() in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every submission of every assignment, graded: {(assignment, student): {group: report}}."""
    course = tmp_path_factory.mktemp("course")
    (course / "source").mkdir()
    (course / "gradebook.db").write_text("the gradebook")
    targets = [course / "gradebook.db", course / "source" / "x.txt", course / "release" / "x.txt",
               Path("/tmp") / TOKEN, Path.home() / TOKEN, Path(os.getcwd()) / TOKEN]
    cheats = {k: v.replace("{targets}", ", ".join(repr(str(t)) for t in targets)).replace("{token}", TOKEN)
              for k, v in CHEATS.items()}
    before = tree_digest(course)
    jobs = {}
    for a in ASSIGNMENTS:
        cells = solution_cells(a)
        function, delegation, _, _ = DELEGATES[a]
        stub = replace_solution(cells, function, 'raise NotImplementedError("write your code here")')
        jobs[(a, "solution")] = cells
        jobs[(a, "noisy")] = noisy(cells)
        jobs[(a, "delegates")] = replace_solution(cells, function, delegation)
        for name, code in cheats.items():
            jobs[(a, name)] = with_code(stub, function, code)
    results = {key: grade_groups(key[0], cells) for key, cells in jobs.items()}
    return {"results": results, "course": course, "before": before, "targets": targets,
            "after": tree_digest(course), "lingering": lingering()}


def points(assignment):
    nb = nbformat.read(COURSE / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def test_every_assignment_has_a_grading_module_and_its_test_cells_name_its_groups():
    assert ASSIGNMENTS == sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
    for a in ASSIGNMENTS:
        assert set(points(a)) == set(load(a).GROUPS), a


@pytest.mark.parametrize("student", ["solution", "noisy"])
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_correct_work_gets_full_marks(graded, assignment, student):
    reports = graded["results"][(assignment, student)]
    assert set(reports) == set(load(assignment).GROUPS)
    for name, report in reports.items():
        assert report.graded and report.passed and report.max_score > 0, str(report)


@pytest.mark.parametrize("student", ["delegates", *CHEATS])
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_what_was_not_implemented_scores_zero_with_feedback_naming_why(graded, assignment, student):
    _, _, zero, why = DELEGATES[assignment]
    reports = graded["results"][(assignment, student)]
    for name, report in reports.items():
        assert report.graded, str(report)
        if name in zero:
            assert report.score == 0, str(report)
            expected = why if student == "delegates" else "NotImplementedError: write your code here"
            assert all(expected in case.message for case in report.cases), str(report)
        else:
            assert report.passed, str(report)


def test_nothing_outside_the_submission_changes_and_no_process_outlives_grading(graded):
    assert graded["after"] == graded["before"]
    for target in graded["targets"]:
        assert not Path(target).exists() or TOKEN not in Path(target).read_text(errors="ignore"), target
    assert graded["lingering"] == []


def test_hidden_feedback_names_no_input_or_expected_value(graded):
    reports = graded["results"][("a1_convolution", "delegates")]
    text = str(reports["hidden_conv_forward"])
    assert "hidden case 1" in text and "expected" not in text and "index" not in text
    broken = replace_solution(solution_cells("a1_convolution"), "conv_forward",
                              "return np.zeros((x.shape[0], W.shape[0], 3, 3)) + 0.5")
    report = grade_groups("a1_convolution", broken, ["hidden_conv_forward", "check_conv_forward"])
    hidden, visible = str(report["hidden_conv_forward"]), str(report["check_conv_forward"])
    assert "expected output shape" in visible and "(2, 4, " in visible
    assert "output has the wrong shape" in hidden and "(2, 4, " not in hidden
