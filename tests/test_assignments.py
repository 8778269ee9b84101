"""The classroom on nbgrader: every assignment generated, autograded and fed back in one temporary
course directory, with the solution, planted bugs and hostile submissions.

One course directory per test session; one ``grade_submissions.grade`` call (one in-process
NbGraderAPI) grades all submissions of an assignment, so the whole file costs a kernel start and
a run per submitted notebook.
"""

from __future__ import annotations

import html
import importlib.util
import io
import os
import re
import shutil

import nbformat
import pytest

from conftest import REPO

pytestmark = [pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")]

COURSE = REPO / "assignments"
ASSIGNMENTS = sorted(p.name for p in (COURSE / "source").iterdir() if (p / f"{p.name}.ipynb").is_file())

spec = importlib.util.spec_from_file_location("grade_submissions", REPO / "scripts" / "grade_submissions.py")
wrapper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wrapper)

#: per assignment: (student, answer cell, text to replace, replacement, test cell, feedback expected there)
BUGS = {
    "a1_convolution": [
        ("transposed_kernel", "conv_forward", "xp = np.pad(", "W = W.swapaxes(2, 3)\n    xp = np.pad(",
         "check_conv_forward", "FAIL  case '3x3 kernel, stride 1, no padding': output max abs error"),
        ("assigns_instead_of_adding", "conv_backward", "dxp[:, :, rows, cols] +=", "dxp[:, :, rows, cols] =",
         "check_conv_backward", "FAIL  case 'padding 1 keeps the size': dx max abs error"),
    ],
    "a2_pooling_softmax": [
        ("pool_assigns", "pool_backward", "dx[:, :, rows, cols] += dout / k ** 2",
         "dx[:, :, rows, cols] = dout / k ** 2", "check_avg_pool_backward",
         "FAIL  case 'overlapping 2x2 windows, stride 1, batch 1, 5x6': dx max abs error"),
        ("no_max_shift", "softmax_cross_entropy", "shifted = logits - logits.max(axis=1, keepdims=True)",
         "shifted = logits", "check_softmax", "FAIL  case 'logits near +1e4, batch 4': loss is inf"),
        ("no_mean", "softmax_cross_entropy", "return float(loss), dlogits / n", "return float(loss), dlogits",
         "check_softmax", "FAIL  case 'batch 5, 10 classes': dlogits max abs error"),
    ],
    "a3_backprop": [
        ("transposed_dW", "linear_backward", "dout.T @ x", "x.T @ dout", "check_linear_backward",
         "FAIL  case 'batch 4, 6 -> 3': expected dW shape (3, 6), got (6, 3)"),
        ("forward_difference", "numerical_gradient", "grad[i] = (plus - minus) / (2 * h)",
         "grad[i] = (plus - f()) / h", "check_numerical_gradient",
         "FAIL  case 'sum of squares': gradient relative error"),
        ("tanh_wrong", "tanh_backward", "dout * (1 - y ** 2)", "dout * (1 - y)", "check_tanh_backward",
         "FAIL  case 'batch 4, 10 features': dx max abs error"),
    ],
    "a4_training": [
        ("picks_by_training", "pick_by_validation", 'histories[name]["val_acc"][-1]',
         'histories[name]["train_acc"][-1]', "check_pick_by_validation",
         "FAIL  case 'validation and training accuracy disagree': chose 'lr 0.1', but 'lr 0.01'"),
        ("validates_on_test", "train_recipe", "validation=(x_val, y_val)",
         "validation=(prepare(mnist.x_test[:200]), mnist.y_test[:200])", "check_train_recipe",
         "FAIL  case 'measured on the validation split given': the history's last validation accuracy"),
    ],
    "a5_pytorch_twin": [
        ("no_bias", "copy_to_torch", "        for name, p in module.named_parameters():\n",
         "        for name, p in module.named_parameters():\n"
         "            if name.endswith('bias'):\n                continue\n",
         "check_copy_to_torch", "FAIL  case 'LeNet-5 seed 0, float64': logits max abs error"),
        ("transposed_weights", "copy_from_torch", "p.detach().numpy()", "p.detach().numpy().T",
         "check_copy_from_torch",
         "case 'TorchLeNet5 seed 0, float64': your function raised ValueError: state dict: 'C1.W' has shape"),
    ],
    "a6_integrated_gradients": [
        ("no_difference_factor", "integrated_gradients", "return diff * np.tensordot", "return np.tensordot",
         "check_integrated_gradients", "FAIL  case 'digit 0 (class 7): the path integral': attributions max abs"),
        ("gap_without_baseline", "completeness_gap", "(f_x - f_base)", "f_x", "check_completeness_gap",
         "FAIL  case 'digit 0 (class 7)': gap"),
    ],
}

PATCH_SCORE = """from lenet_core.grading import GradeReport
GradeReport.score = property(lambda self: self.max_score)
GradeReport.passed = property(lambda self: True)"""

OWN_REPORT = """import lenet_core.grading

class GradeReport:
    score = max_score = 10
    passed = True
    cases = [("everything", True, "ok")] * 10

def check_conv_forward(fn, **kwargs):
    return GradeReport()

def check_conv_backward(fn, **kwargs):
    return GradeReport()

lenet_core.grading.check_conv_forward = check_conv_forward
lenet_core.grading.check_conv_backward = check_conv_backward"""


def grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def edited(nb, cell_id, old, new):
    nb = nbformat.from_dict(nb)
    [cell] = [c for c in nb.cells if grade_id(c) == cell_id]
    assert old in cell.source, (cell_id, old)
    cell.source = cell.source.replace(old, new)
    return nb


def submit(course, student, assignment, nb):
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    if isinstance(nb, str):
        path.write_text(nb)
    else:
        nbformat.write(nb, path)


def solved(source, release):
    """What a student who solved everything submits: the student version, its answer cells filled in."""
    answers = {grade_id(c): c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        if grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return nb


def hostile_submissions(source, release):
    """Submissions of assignment 1 that try to get points without the work, or break the grader.

    ``source``: the solved student version; ``release``: the untouched student version."""
    a = {}
    a["untouched"] = release
    a["empty"] = nbformat.v4.new_notebook()
    a["not_a_notebook"] = "def conv_forward(x, W, b, stride, padding):\n    return x\n"
    a["deleted_answers"] = nbformat.from_dict(source)
    a["deleted_answers"].cells = [c for c in source.cells if not c.metadata.get("nbgrader", {}).get("solution")]
    a["renamed_answer"] = edited(source, "conv_forward", "def conv_forward(", "def my_conv_forward(")
    a["syntax_error"] = edited(source, "conv_forward", "def conv_forward(x, W, b, stride, padding):",
                               "def conv_forward(x, W, b, stride, padding)")
    for name, code in [("patches_score", PATCH_SCORE), ("own_reports", OWN_REPORT)]:
        nb = nbformat.from_dict(release)
        nb.cells.insert(2, nbformat.v4.new_code_cell(code))
        a[name] = nb
    a["tampered_test"] = nbformat.from_dict(release)
    [cell] = [c for c in a["tampered_test"].cells if grade_id(c) == "check_conv_forward"]
    cell.source = "10"
    a["deleted_test"] = nbformat.from_dict(source)
    a["deleted_test"].cells = [c for c in source.cells if grade_id(c) != "check_conv_forward"]
    a["allocates_4gib"] = edited(source, "conv_forward", "xp = np.pad(", "big = np.ones(2 ** 29)\n    xp = np.pad(")
    return a


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    """A temporary course directory, every assignment generated, every submission graded."""
    from nbgrader.apps import NbGraderAPI

    root = tmp_path_factory.mktemp("course")
    for item in ["nbgrader_config.py", "jupyter", "source"]:
        (shutil.copytree if (COURSE / item).is_dir() else shutil.copy)(COURSE / item, root / item)
    saved = dict(os.environ)
    try:
        config = wrapper.load_config(root, 60, 600, {"deadline": 0})
        api = NbGraderAPI(config=config)
        for assignment in ASSIGNMENTS:
            result = api.generate_assignment(assignment)
            assert result["success"], result.get("error")
        sources = {a: nbformat.read(root / "source" / a / f"{a}.ipynb", as_version=4) for a in ASSIGNMENTS}
        releases = {a: nbformat.read(root / "release" / a / f"{a}.ipynb", as_version=4) for a in ASSIGNMENTS}
        answers = {a: solved(sources[a], releases[a]) for a in ASSIGNMENTS}
        students = {a: ["solution"] for a in ASSIGNMENTS}
        for a in ASSIGNMENTS:
            submit(root, "solution", a, answers[a])
            for student, cell_id, old, new, *_ in BUGS.get(a, []):
                submit(root, student, a, edited(answers[a], cell_id, old, new))
                students[a].append(student)
        hostile = hostile_submissions(answers["a1_convolution"], releases["a1_convolution"])
        for student, nb in hostile.items():
            submit(root, student, "a1_convolution", nb)
            students["a1_convolution"].append(student)
        # the wrong notebook: assignment 1's student version handed in as assignment 2
        a2 = "a2_pooling_softmax"
        wrong = nbformat.from_dict(releases["a1_convolution"])
        submit(root, "wrong_notebook", a2, wrong)
        students[a2].append("wrong_notebook")
        submit(root, "infinite_loop", "a1_convolution",
               edited(answers["a1_convolution"], "conv_backward", "H, Wd = x.shape[2:]",
                      "while True:\n        pass\n    H, Wd = x.shape[2:]"))

        reports, results = {}, {}
        for a in ASSIGNMENTS:
            out = io.StringIO()
            results.update({(a, s): r for s, r in wrapper.grade(a, root, students[a], out=out).items()})
            reports[a] = out.getvalue()
        # the time limits, tight: 5 s per cell, 12 s per notebook
        out = io.StringIO()
        started = __import__("time").monotonic()
        r = wrapper.grade("a1_convolution", root, ["infinite_loop"], cell_timeout=5, notebook_timeout=12,
                          out=out, csv=root / "grades.csv")
        loop_seconds = __import__("time").monotonic() - started
        results[("a1_convolution", "infinite_loop")] = r["infinite_loop"]
        reports["loop"] = out.getvalue()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"root": root, "results": results, "reports": reports, "sources": sources, "releases": releases,
            "loop_seconds": loop_seconds}


def autograded(course, student, assignment):
    return nbformat.read(course["root"] / "autograded" / student / assignment / f"{assignment}.ipynb",
                         as_version=4)


def cell_output(nb, cell_id):
    [cell] = [c for c in nb.cells if grade_id(c) == cell_id]
    return "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) + " ".join(o.get("traceback", []))
                   for o in cell.outputs)


def total_points(nb):
    return sum(c.metadata["nbgrader"]["points"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))


def test_there_is_an_assignment_per_teaching_chapter():
    assert ASSIGNMENTS == ["a1_convolution", "a2_pooling_softmax", "a3_backprop", "a4_training",
                           "a5_pytorch_twin", "a6_integrated_gradients"]
    assert set(BUGS) == set(ASSIGNMENTS) and all(len(b) >= 2 for b in BUGS.values())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_has_stubs_and_no_solution(course, assignment):
    source, release = course["sources"][assignment], course["releases"][assignment]
    assert total_points(source) >= 10
    text = "\n".join(c.source for c in release.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    for cell in source.cells:
        if "### BEGIN SOLUTION" in cell.source:
            [student] = [c for c in release.cells if grade_id(c) == grade_id(cell)]
            assert 'raise NotImplementedError("write your code here; the HINT comment above says how")' \
                in student.source
            assert "# HINT:" in student.source
            for region in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S):
                for line in region.strip().splitlines():
                    assert line not in student.source.splitlines(), f"solution line left: {line!r}"
        if "### BEGIN HIDDEN TESTS" in cell.source:
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            for line in hidden.strip().splitlines():
                assert line not in text.splitlines(), f"hidden test left: {line!r}"
    first = release.cells[1] if release.cells[0].cell_type == "markdown" else release.cells[0]
    assert grade_id(first) == "setup" and "pip" in first.source and "load_mnist()" in first.source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_gets_full_marks(course, assignment):
    score, maximum, problems, graded = course["results"][(assignment, "solution")]
    assert graded and problems == [] and score == maximum == total_points(course["sources"][assignment])


@pytest.mark.parametrize("assignment,bug", [(a, b) for a, bugs in BUGS.items() for b in bugs],
                         ids=[f"{a}-{b[0]}" for a, bugs in BUGS.items() for b in bugs])
def test_planted_bug_gets_partial_marks_and_named_feedback(course, assignment, bug):
    student, _, _, _, test_cell, feedback = bug
    score, maximum, problems, graded = course["results"][(assignment, student)]
    assert graded and 0 < score < maximum, (score, maximum, problems)
    assert feedback in cell_output(autograded(course, student, assignment), test_cell)
    page = (course["root"] / "feedback" / student / assignment / f"{assignment}.html").read_text()
    assert feedback in html.unescape(page)


@pytest.mark.parametrize("student", ["untouched", "empty", "not_a_notebook", "deleted_answers",
                                     "patches_score", "own_reports", "tampered_test"])
def test_no_work_earns_nothing(course, student):
    score, maximum, problems, graded = course["results"][("a1_convolution", student)]
    assert (score, maximum) == (0, 24), problems


def test_the_wrong_notebook_earns_nothing(course):
    score, maximum, problems, graded = course["results"][("a2_pooling_softmax", "wrong_notebook")]
    assert (score, maximum) == (0, 49), problems


def test_a_deleted_test_cell_is_put_back_run_and_reported(course):
    score, maximum, problems, graded = course["results"][("a1_convolution", "deleted_test")]
    assert (score, maximum) == (24, 24)
    assert problems == ["test cell check_conv_forward was deleted: nbgrader put it back"]


def test_a_renamed_answer_earns_nothing_for_it(course):
    # conv_forward renamed: its 10 + 1 points are lost, conv_backward's 12 + 1 stay
    score, maximum, problems, graded = course["results"][("a1_convolution", "renamed_answer")]
    assert (score, maximum) == (13, 24), problems


def test_report_lines_name_each_problem(course):
    results = course["results"]

    def problems(student):
        return "\n".join(results[("a1_convolution", student)][2])
    assert "a1_convolution.ipynb is an empty notebook (no cells)" in problems("empty")
    assert "a1_convolution.ipynb is not a notebook (Notebook does not appear to be JSON" in problems("not_a_notebook")
    assert not results[("a1_convolution", "not_a_notebook")][3]
    assert "test cell check_conv_forward was edited (its checksum changed): graded with the original" \
        in problems("tampered_test")
    assert "was edited" not in problems("untouched") and "was edited" not in problems("solution")
    assert "answer cell conv_forward: SyntaxError" in problems("syntax_error")
    assert "test check_conv_forward: NameError: name 'conv_forward' is not defined" in problems("renamed_answer")
    assert "test check_conv_forward: TypeError: expected the GradeReport of a lenet_core.grading check" \
        in problems("own_reports")
    report = course["reports"]["a1_convolution"]
    assert "\nsolution: 24/24\n" in "\n" + report and "empty: 0/24" in report


def test_syntax_error_keeps_the_other_tasks_points(course):
    score, maximum, _, _ = course["results"][("a1_convolution", "syntax_error")]
    assert (score, maximum) == (13, 24)          # conv_backward's 12 + 1 still count


def test_memory_limit_stops_a_4gib_allocation(course):
    score, maximum, problems, graded = course["results"][("a1_convolution", "allocates_4gib")]
    assert graded and (score, maximum) == (13, 24)
    assert "test hidden_conv_forward: MemoryError (memory limit: 3G)" in problems
    assert "MemoryError" in cell_output(autograded(course, "allocates_4gib", "a1_convolution"), "check_conv_forward")


def test_time_limits_stop_an_infinite_loop(course):
    score, maximum, problems, graded = course["results"][("a1_convolution", "infinite_loop")]
    assert graded and (score, maximum) == (11, 24), problems     # conv_forward's points stay
    interrupted = "KeyboardInterrupt (time limit: 5 s per cell, 12 s per notebook)"
    assert f"test check_conv_backward: {interrupted}" in problems
    # the hidden test loops too: the cell limit stops it (2 x 5 s fit in 12 s on a quiet machine), or, when
    # setting up took more than 2 s (a busy machine), the notebook limit does; either way it scores zero
    assert (f"test hidden_conv_backward: {interrupted}" in problems
            or "the notebook time limit (12 s) ran out: the tests after it scored zero" in problems), problems
    # bounded: the 12 s budget, then at most a second per remaining cell, plus feedback and export
    # (a generous bound: the machine may be busy; without the limits this call would never end)
    assert course["loop_seconds"] < 90


def test_feedback_and_csv(course):
    root = course["root"]
    html = (root / "feedback" / "solution" / "a1_convolution" / "a1_convolution.html").read_text()
    assert "conv forward: 10/10, all cases passed" in html
    rows = (root / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("assignment,duedate,timestamp,student_id")
    assert "a1_convolution,,,solution,,,,24.0,0.0,24.0,24.0" in rows
    assert "a1_convolution,,,empty,,,,0.0,0.0,0.0,24.0" in rows
    # one row per student of the course (a student who did not submit a1 gets 0 for it)
    students = {s for a, s in course["results"]}
    assert len([r for r in rows if r.startswith("a1_convolution,")]) == len(students)
    assert len(rows) == 1 + len(students) * len(ASSIGNMENTS)


def test_wrapper_bad_input_is_one_clear_line(tmp_path, capsys):
    assert wrapper.main(["a9_nothing", "--course", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"no assignment 'a9_nothing': {tmp_path / 'source' / 'a9_nothing'} is not a folder"
    (tmp_path / "source" / "a1").mkdir(parents=True)
    assert wrapper.main(["a1", "--course", str(tmp_path), "--memory", "lots"]) == 2
    assert capsys.readouterr().err.strip() == \
        "LENET_GRADING_MEMORY='lots' is not a size such as 3G, 1500M or 123456 (bytes)"
    assert not (tmp_path / "gradebook.db").exists()
