"""The six assignments graded as a teacher grades them: every answer cell runs in the sandbox.

For every assignment: the reference solution gets full marks; so does the same solution with a debug
print to stderr and warnings; a solution that takes any route to lenet_core's answers (or PyTorch's,
where NumPy is asked for), one that patches numpy's testing, one that patches the grader, one that
writes outside its folder and one that leaves a process behind each get zero for the function they
did not implement (and full marks for the rest), with feedback naming why; nothing outside the
submission's folder changes; no process outlives the grading. The submissions of each assignment
are graded once per module in one sandbox (each case in a process of its own).
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from lenet_core.grading import ASSIGNMENTS, load
from lenet_core.grading.notebook import answer_cells, cases, grade_groups, judge_groups, run_many
from lenet_core.grading.sandbox import SandboxError

COURSE = REPO / "assignments"
TOKEN = "lenet-grading-test-9f3c1a"

#: per assignment, every route to an assigned function's answer that the student's own machine
#: offers: lenet_core's implementation (a function, a layer's method, a helper that computes the
#: same), or PyTorch's op where the assignment asks for a NumPy one. Each route is
#: ({function: body}, the test groups it then scores zero on, what the feedback says about it);
#: with the full lenet_core and PyTorch each route scores full marks, in the grader's sandbox zero.
TORCH_ABSENT = "No module named 'torch'"
ROUTES = {
    "a1_convolution": [
        ({"conv_forward": "from lenet_core.functional import conv2d\n"
                          "return conv2d(x, W, b, stride, padding)[0]"},
         {"check_conv_forward", "hidden_conv_forward"},
         "lenet_core.functional is not in the student build of lenet_core for a1_convolution"),
        ({"conv_backward": "from lenet_core.functional import conv2d, conv2d_backward\n"
                           "_, cols = conv2d(x, W, b, stride, padding)\n"
                           "return conv2d_backward(dout, cols, x.shape, W, stride, padding)"},
         {"check_conv_backward", "hidden_conv_backward"},
         "lenet_core.functional is not in the student build of lenet_core for a1_convolution"),
        ({"conv_forward": "import torch\n"
                          "t = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(W),\n"
                          "                               torch.from_numpy(b), stride=stride, padding=padding)\n"
                          "return t.numpy()"},
         {"check_conv_forward", "hidden_conv_forward"}, TORCH_ABSENT),
    ],
    "a2_pooling_softmax": [
        ({"softmax_cross_entropy": "from lenet_core.losses import SoftmaxCrossEntropy\n"
                                   "loss_fn = SoftmaxCrossEntropy()\n"
                                   "return loss_fn.forward(logits, labels), loss_fn.backward()"},
         {"check_softmax", "hidden_softmax"},
         "lenet_core.losses is not in the student build of lenet_core for a2_pooling_softmax"),
        ({"avg_pool_backward": "from lenet_core import functional\n"
                               "_, cache = functional.pool2d(x, kernel_size, stride, 'avg')\n"
                               "return functional.pool2d_backward(dout, cache, x.shape, kernel_size, stride, 'avg')",
          "max_pool_backward": "from lenet_core import functional\n"
                               "_, cache = functional.pool2d(x, kernel_size, stride, 'max')\n"
                               "return functional.pool2d_backward(dout, cache, x.shape, kernel_size, stride, 'max')"},
         {"check_avg_pool_backward", "check_max_pool_backward", "hidden_pool_backward"},
         "lenet_core.functional is not in the student build of lenet_core for a2_pooling_softmax"),
        ({"max_pool_forward": "import torch\n"
                              "t = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel_size, stride)\n"
                              "return t.numpy()"},
         {"check_max_pool_forward"}, TORCH_ABSENT),
    ],
    "a3_backprop": [
        ({"numerical_gradient": "from lenet_core.gradcheck import numerical_gradient as reference\n"
                                "return reference(f, x, h, indices)"},
         {"check_numerical_gradient"},
         "lenet_core.gradcheck.numerical_gradient is left out of the student build of lenet_core "
         "for a3_backprop: the assignment asks you to write it yourself"),
        ({"linear_backward": "from lenet_core.layers import Linear\n"
                             "layer = Linear(W.shape[1], W.shape[0], dtype=W.dtype)\n"
                             "layer.params.update(W=W, b=b)\n"
                             "layer.forward(x)\n"
                             "dx = layer.backward(dout)\n"
                             "return dx, layer.grads['W'], layer.grads['b']"},
         {"check_linear_backward", "hidden_linear_backward"},
         "lenet_core.layers.Linear.backward is left out of the student build of lenet_core for a3_backprop"),
        ({"linear_backward": "from lenet_core import functional\n"
                             "x4, W4 = x[:, :, None, None], W[:, :, None, None]\n"
                             "_, cols = functional.conv2d(x4, W4, b)\n"
                             "dx, dW, db = functional.conv2d_backward(dout[:, :, None, None], cols, x4.shape, W4)\n"
                             "return dx[:, :, 0, 0], dW[:, :, 0, 0], db"},
         {"check_linear_backward", "hidden_linear_backward"},
         "lenet_core.functional.conv2d_backward is left out when a3_backprop is graded"),
        ({"linear_backward": "from lenet_core.layers import Conv2d, input_grad\n"
                             "layer = Conv2d(W.shape[1], W.shape[0], 1, dtype=W.dtype)\n"
                             "layer.params.update(W=W[:, :, None, None].copy(), b=b.copy())\n"
                             "layer.forward(x[:, :, None, None])\n"
                             "with input_grad(layer):\n"
                             "    dx = layer.backward(dout[:, :, None, None])\n"
                             "return dx[:, :, 0, 0], layer.grads['W'][:, :, 0, 0], layer.grads['b']"},
         {"check_linear_backward", "hidden_linear_backward"},
         "lenet_core.layers.Conv2d.backward is left out when a3_backprop is graded"),
        ({"tanh_backward": "from lenet_core.layers import Tanh\n"
                           "layer = Tanh()\n"
                           "layer.cache = {'y': y}\n"
                           "return layer.backward(dout)"},
         {"check_tanh_backward", "hidden_tanh_backward"},
         "lenet_core.layers.Tanh.backward is left out of the student build of lenet_core for a3_backprop"),
        ({"tanh_backward": "import torch\n"
                           "return torch.ops.aten.tanh_backward(torch.from_numpy(dout), torch.from_numpy(y)).numpy()"},
         {"check_tanh_backward", "hidden_tanh_backward"}, TORCH_ABSENT),
    ],
    "a4_training": [
        ({"pick_by_validation": "from lenet_core.grading import a4_training\n"
                                "return a4_training.PICK_CASES[0][2]"},
         {"check_pick_by_validation", "hidden_pick_by_validation"}, "No module named 'lenet_core.grading'"),
    ],
    "a5_pytorch_twin": [
        ({"copy_to_torch": "from lenet_core.twin import to_torch\nreturn to_torch(model)"},
         {"check_copy_to_torch"},
         "lenet_core.twin.to_torch is left out of the student build of lenet_core for a5_pytorch_twin"),
        ({"copy_from_torch": "from lenet_core.twin import from_torch\nreturn from_torch(module)"},
         {"check_copy_from_torch", "hidden_copy_from_torch"},
         "lenet_core.twin.from_torch is left out of the student build of lenet_core for a5_pytorch_twin"),
        ({"torch_input_gradient": "from lenet_core.layers import input_grad\n"
                                  "model = copy_from_torch(module)\n"
                                  "logits = model.forward(x)\n"
                                  "dout = np.zeros_like(logits)\n"
                                  "dout[:, target] = 1\n"
                                  "with input_grad(model):\n"
                                  "    return model.backward(dout)"},
         {"check_torch_input_gradient", "hidden_torch_input_gradient"},
         "lenet_core.model.Sequential.backward is left out when a5_pytorch_twin is graded"),
        ({"torch_input_gradient": "from lenet_core.attribution import output_gradient\n"
                                  "return output_gradient(copy_from_torch(module), x, target)[1]"},
         {"check_torch_input_gradient", "hidden_torch_input_gradient"},
         "lenet_core.attribution is not in the student build of lenet_core for a5_pytorch_twin"),
    ],
    "a6_integrated_gradients": [
        ({"integrated_gradients": "from lenet_core.attribution import integrated_gradients as reference\n"
                                  "return reference(model, image, target, baseline, steps=steps)[0]"},
         {"check_integrated_gradients", "hidden_integrated_gradients", "check_compare_baselines"},
         "integrated_gradients is left out of the student build of lenet_core for a6"),
        ({"integrated_gradients": "from lenet_core.attribution.ig import output_gradient, quadrature\n"
                                  "alphas, weights = quadrature('riemann_trapezoid', steps)\n"
                                  "points = baseline[None] + alphas[:, None, None, None] * (image - baseline)[None]\n"
                                  "_, grads = output_gradient(model, points, target)\n"
                                  "return (image - baseline) * np.tensordot(weights, grads, axes=1)"},
         {"check_integrated_gradients", "hidden_integrated_gradients", "check_compare_baselines"},
         "lenet_core.attribution.ig.quadrature is left out of the student build of lenet_core for a6"),
        ({"integrated_gradients": "from lenet_core.attribution.methods import gradient_shap\n"
                                  "alphas = (np.arange(steps) + 0.5)[None] / steps\n"
                                  "baselines = np.repeat(baseline[None, None], steps, axis=1)\n"
                                  "return gradient_shap(model, image, target, baselines, alphas)"},
         {"check_integrated_gradients", "hidden_integrated_gradients", "check_compare_baselines"},
         "lenet_core.attribution.methods.gradient_shap is left out of the student build of lenet_core for a6"),
    ],
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


def variants(assignment, cheats):
    """Every submission graded for ``assignment``: {student: answer cells}."""
    cells = solution_cells(assignment)
    jobs = {"solution": cells, "noisy": noisy(cells)}
    for i, (bodies, _, _) in enumerate(ROUTES[assignment]):
        jobs[f"delegates {i}"] = delegating(cells, bodies)
    function = next(iter(ROUTES[assignment][0][0]))
    stub = replace_solution(cells, function, 'raise NotImplementedError("write your code here")')
    for name, code in cheats.items():
        jobs[name] = with_code(stub, function, code)
    return jobs


def delegating(cells, bodies):
    for function, body in bodies.items():
        cells = replace_solution(cells, function, body)
    return cells


def grade_all(jobs: dict, **kwargs) -> dict:
    """{(assignment, student): {group: report}}: each assignment's submissions in one sandbox (each
    case in a process of its own, as in any grading), two sandboxes at a time."""
    assignments = sorted({a for a, _ in jobs})
    for a in assignments:                   # the cases' references, computed once, before the threads
        for group in load(a).GROUPS:
            cases(a, group)

    def run(a):
        students = [s for b, s in jobs if b == a]
        try:
            return a, students, run_many(a, [jobs[(a, s)] for s in students], **kwargs)
        except SandboxError as e:
            return a, students, [e] * len(students)
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(run, assignments))
    return {(a, s): judge_groups(a, None, outcomes) for a, students, runs in done
            for s, outcomes in zip(students, runs)}


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
    jobs = {(a, student): cells for a in ASSIGNMENTS for student, cells in variants(a, cheats).items()}
    results = grade_all(jobs)
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


def zero_for_what_was_not_implemented(reports, zero, expected):
    for name, report in reports.items():
        assert report.graded, str(report)
        if name in zero:
            assert report.score == 0, str(report)
            assert all(expected in case.message for case in report.cases), str(report)
        else:
            assert report.passed, str(report)


@pytest.mark.parametrize("student", list(CHEATS))
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_what_was_not_implemented_scores_zero_with_feedback_naming_why(graded, assignment, student):
    _, zero, _ = ROUTES[assignment][0]
    zero_for_what_was_not_implemented(graded["results"][(assignment, student)], zero,
                                      "NotImplementedError: write your code here")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_route_to_lenet_cores_answers_scores_zero_with_feedback_naming_why(graded, assignment):
    for i, (_, zero, why) in enumerate(ROUTES[assignment]):
        zero_for_what_was_not_implemented(graded["results"][(assignment, f"delegates {i}")], zero, why)


def test_every_route_is_an_answer_with_the_full_lenet_core_and_pytorch():
    """What the routes close is real: run with this repository's lenet_core (and PyTorch) in the
    sandbox, each route scores full marks (a route through lenet_core.grading only reads it)."""
    jobs = {(a, f"delegates {i}"): delegating(solution_cells(a), bodies) for a in ASSIGNMENTS
            for i, (bodies, _, why) in enumerate(ROUTES[a]) if "lenet_core.grading" not in why}
    results = grade_all(jobs, build_dir=REPO, torch=True)
    for key, reports in results.items():
        for report in reports.values():
            assert report.graded and report.passed, (key, str(report))


def test_nothing_outside_the_submission_changes_and_no_process_outlives_grading(graded):
    assert graded["after"] == graded["before"]
    for target in graded["targets"]:
        assert not Path(target).exists() or TOKEN not in Path(target).read_text(errors="ignore"), target
    assert graded["lingering"] == []


def test_hidden_feedback_names_no_input_or_expected_value(graded):
    reports = graded["results"][("a1_convolution", "delegates 0")]
    text = str(reports["hidden_conv_forward"])
    assert "hidden case 1" in text and "expected" not in text and "index" not in text
    broken = replace_solution(solution_cells("a1_convolution"), "conv_forward",
                              "return np.zeros((x.shape[0], W.shape[0], 3, 3)) + 0.5")
    report = grade_groups("a1_convolution", broken, ["hidden_conv_forward", "check_conv_forward"])
    hidden, visible = str(report["hidden_conv_forward"]), str(report["check_conv_forward"])
    assert "expected output shape" in visible and "(2, 4, " in visible
    assert "output has the wrong shape" in hidden and "(2, 4, " not in hidden
