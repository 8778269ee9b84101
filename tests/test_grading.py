"""The grader's parts: the student build, the sandbox and its limits, the report, the CLI's bad input."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from lenet_core.gradcheck import numerical_gradient, projected, projected_gradient_check, relative_error
from lenet_core.grading import ASSIGNMENTS, build, load, sandbox
from lenet_core.grading.__main__ import main
from lenet_core.grading.report import Case, CaseResult, Fail, GradeReport, Outcome, compare, judge


def run(code, cases, *, torch=False, limits=sandbox.Limits(), assignment="a1_convolution"):
    return sandbox.run([("answer", code)], load(assignment).PRELUDE, cases, build.cached(assignment),
                       torch=torch, limits=limits)


def probe(name, *args):
    return Case(name, "probe", args, lambda got: None)


# ----------------------------------------------------------------------------------------------
# The student build
# ----------------------------------------------------------------------------------------------

def test_student_build_leaves_out_the_answers(tmp_path):
    out = build.build("a3_backprop", tmp_path)
    assert not (out / "grading").exists()
    assert "import" in (out / "functional.py").read_text()            # kept: LeNet-5 needs it
    gradcheck = (out / "gradcheck.py").read_text()
    stub = gradcheck[gradcheck.index("def numerical_gradient("):].split("\n\n")[0]
    assert "flat[i] = old + h" not in gradcheck and "NotImplementedError" in stub
    assert "def check_model(" in gradcheck and "def lenet_with_planted_bug(" in gradcheck
    a1 = build.build("a1_convolution", tmp_path / "a1")
    assert "raise ImportError" in (a1 / "functional.py").read_text()
    assert "im2col" not in (a1 / "functional.py").read_text()
    assert "def load_mnist(" in (a1 / "data.py").read_text()
    result = subprocess.run([sys.executable, "-E", "-s", "-c",
                             "import inspect, lenet_core.gradcheck as g\n"
                             "print(inspect.getsource(g.numerical_gradient))\n"
                             "g.numerical_gradient(None, None)"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert "flat[i]" not in result.stdout
    assert ("NotImplementedError: lenet_core.gradcheck.numerical_gradient is left out of the student build of "
            "lenet_core for a3_backprop: the assignment asks you to write it yourself") in result.stderr


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_assignment_builds_and_its_prelude_imports(assignment, tmp_path):
    spec = load(assignment)
    build.build(assignment, tmp_path)
    assert spec.KEEP and set(spec.ABSENT) <= build.closure(spec.KEEP)
    if "torch" not in spec.PRELUDE:
        result = subprocess.run([sys.executable, "-E", "-s", "-c", spec.PRELUDE], cwd=tmp_path, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr


def test_self_check_files_hold_the_references_answers(tmp_path):
    """assignments/source/*/self_checks.npz are what ``python -m lenet_core.grading self-checks``
    writes from the full lenet_core, and none of their inputs is a graded case's."""
    for assignment in ASSIGNMENTS:
        committed = build.REPO_COURSE / "source" / assignment / build.SELF_CHECKS
        fresh = build.write_self_checks(assignment, tmp_path)
        if fresh is None:
            assert not committed.exists(), assignment
            continue
        with np.load(committed) as old, np.load(fresh) as new:
            assert sorted(old.files) == sorted(new.files), assignment
            for key in new.files:
                assert old[key].shape == new[key].shape and np.allclose(old[key], new[key], rtol=1e-12), key
            graded = [a for group in load(assignment).GROUPS.values() for case in group.cases()
                      for a in case.args if isinstance(a, np.ndarray)]
            assert not any(g.shape == new[k].shape and np.allclose(g, new[k]) for g in graded for k in new.files)


def test_build_refuses_a_name_that_is_not_there():
    with pytest.raises(ValueError, match="lenet_core.functional has no conv3d"):
        build.strip("def conv2d():\n    pass\n", ["conv3d"], "functional", "a1")


# ----------------------------------------------------------------------------------------------
# The sandbox
# ----------------------------------------------------------------------------------------------

def test_sandbox_sees_nothing_of_the_course_and_cannot_reach_out(tmp_path):
    secret = tmp_path / "gradebook.db"
    secret.write_text("scores")
    code = f"""
import os, socket, sys
def probe(what):
    if what == "secret":
        return os.path.exists({str(secret)!r})
    if what == "network":
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=1)
            return "connected"
        except OSError as e:
            return type(e).__name__
    if what == "write":
        for path in ["/usr/x", "/build/x", "/job/x", "/x"]:
            try:
                open(path, "w")
                return path
            except OSError:
                pass
        return "none"
    if what == "uid":
        return [os.getuid(), os.getgid(), open("/proc/self/status").read().split("CapEff:")[1].split()[0]]
    if what == "packages":
        found = []
        for name in ["numpy", "torch", "nbgrader", "matplotlib", "pytest"]:
            try:
                __import__(name)
                found.append(name)
            except ImportError:
                pass
        return found
    if what == "lenet_core":
        import lenet_core
        return lenet_core.__file__
"""
    names = ["secret", "network", "write", "uid", "packages", "lenet_core"]
    outcomes = run(code, [probe(n, n) for n in names])
    got = {n: o.result for n, o in zip(names, outcomes)}
    assert got["secret"] is False
    assert got["network"] != "connected"
    assert got["write"] == "none"
    assert got["uid"] == [65534, 65534, "0000000000000000"]
    assert got["packages"] == ["numpy"]
    assert got["lenet_core"] == "/build/lenet_core/__init__.py"


def test_a_crash_a_timeout_a_flood_or_a_huge_result_loses_only_its_own_case():
    code = """
import os, sys, time
def probe(what):
    if what == "exit":
        os._exit(3)
    if what == "loop":
        while True:
            pass
    if what == "sleep":
        time.sleep(60)
    if what == "flood":
        for _ in range(200):
            sys.stdout.write("x" * 100000)
            sys.stderr.write("y" * 100000)
        return "flooded"
    if what == "memory":
        return np.ones(2 ** 30).sum()
    if what == "huge":
        return np.zeros(2 ** 21)
    if what == "kill parent":
        os.kill(os.getppid(), 9)
        return "tried"
    if what == "fork bomb":
        pids = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                pids += 1
        except OSError:
            return pids
    return what
"""
    limits = sandbox.Limits(case_seconds=2, retry_seconds=1, cpu_seconds=2, result_bytes=1 << 20,
                            memory_bytes=2 * 1024 ** 3)
    whats = ["exit", "ok 1", "loop", "ok 2", "sleep", "flood", "memory", "huge", "kill parent", "fork bomb", "ok 3"]
    started = time.monotonic()
    outcomes = dict(zip(whats, run(code, [probe(w, w) for w in whats], limits=limits)))
    assert time.monotonic() - started < 30
    assert [outcomes[w].result for w in ["ok 1", "ok 2", "ok 3"]] == ["ok 1", "ok 2", "ok 3"]
    assert "ended the process" in outcomes["exit"].error
    assert "ran out of time" in outcomes["loop"].error and "ran out of time" in outcomes["sleep"].error
    assert outcomes["flood"].result == "flooded"
    assert "MemoryError" in outcomes["memory"].error
    assert "larger than the grader reads back" in outcomes["huge"].error
    assert "PermissionError" in outcomes["kill parent"].error     # a case runs as nobody, the runner does not
    assert 0 < outcomes["fork bomb"].result < sandbox.Limits().processes


def test_results_come_back_as_data_never_as_objects():
    code = "def probe(what):\n    return {'f': probe, 'a': np.arange(3), 't': (1, 'x', None), 'o': np.array([{}])}\n"
    [outcome] = run(code, [probe("objects", 0)])
    result = outcome.result
    assert result["f"].type == "function" and result["o"].type == "an array of dtype object"
    assert result["a"].tolist() == [0, 1, 2] and result["t"] == (1, "x", None)


def test_a_missing_sandbox_is_could_not_be_graded_not_zero(monkeypatch):
    from lenet_core.grading import notebook

    def broken(*args, **kwargs):
        raise sandbox.SandboxError("bwrap: No permission to create new namespace")
    monkeypatch.setattr(sandbox, "run_many", broken)
    reports = notebook.grade_groups("a1_convolution", [])
    assert all(not r.graded and "No permission" in r.why for r in reports.values())
    assert str(reports["check_conv_forward"]) == \
        "conv forward: could not be graded (bwrap: No permission to create new namespace)"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root (CI runs as root)")
def test_an_unprivileged_grader_gets_the_same_isolation_from_a_user_namespace():
    """bwrap run by an ordinary user (here nobody, through setpriv), with the flags the sandbox uses
    when the grader is not root: a user namespace maps it to nobody, without capabilities, alone in
    its PID namespace, without network. (The grader's own Python must be readable by that user.)"""
    script = "id -u; grep CapEff /proc/self/status; ls /proc | grep -c '^[0-9]'; tail -n +3 /proc/net/dev"
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             *sandbox.isolation_args(root=False), *sandbox.system_args(), "--proc", "/proc",
                             "/usr/bin/sh", "-c", script],
                            capture_output=True, text=True, timeout=30, cwd="/")
    assert result.returncode == 0, result.stderr
    uid, caps, processes, *links = result.stdout.split("\n")
    assert uid == "65534" and caps.split()[-1] == "0000000000000000"
    assert int(processes) <= 4 and [link.split(":")[0].strip() for link in links if link] == ["lo"]


def test_sandbox_check_command(capsys):
    assert main(["check"]) == 0
    assert capsys.readouterr().out.strip() == "the grading sandbox works here"


# ----------------------------------------------------------------------------------------------
# The report core
# ----------------------------------------------------------------------------------------------

def test_report_and_judge():
    report = GradeReport("demo", [CaseResult("a", True, "ok"), CaseResult("b", False, "wrong shape")])
    assert (report.score, report.max_score, report.passed) == (1, 2, False)
    assert str(report) == "demo: 1/2\n  ok    case 'a'\n  FAIL  case 'b': wrong shape"
    expected = np.arange(6.0).reshape(2, 3)
    case = Case("c", "f", (), lambda got: compare("output", got, expected))
    wrong = expected.copy()
    wrong[1, 2] = 9
    visible, hidden = GradeReport("v"), GradeReport("h")
    judge(visible, case, Outcome(result=wrong, warnings=("RuntimeWarning: overflow",)), hidden=False)
    judge(hidden, case, Outcome(result=wrong), hidden=True)
    assert visible.cases[0].message == ("output max abs error 4.0e+00 (tolerance 1e-08); worst at index (1, 2): "
                                        "expected 5, got 9; NumPy warned: RuntimeWarning: overflow")
    assert hidden.cases[0].message == "output max abs error 4.0e+00 (tolerance 1e-08)"
    judge(visible, case, Outcome(result=expected, changed=("x",)), hidden=False)
    assert visible.cases[1].message.startswith("your function changed its input x in place")
    with pytest.raises(Fail, match=r"expected output shape \(2, 3\), got \(3, 2\)"):
        compare("output", expected.T, expected)


def test_projected_gradient_check():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    R = rng.standard_normal((3, 2))
    assert projected(lambda: x @ w, R)() == pytest.approx(float(np.sum(x @ w * R)))
    assert projected_gradient_check(lambda: x @ w, R, x, R @ w.T) < 1e-9
    assert projected_gradient_check(lambda: x @ w, R, x, R @ w.T * 1.1) > 0.05
    idx = np.array([0, 5])
    err = projected_gradient_check(lambda: x @ w, R, x, R @ w.T, indices=idx)
    assert err == relative_error((R @ w.T).reshape(-1)[idx],
                                 numerical_gradient(projected(lambda: x @ w, R), x, 1e-5, idx).reshape(-1)[idx])


# ----------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------

def test_cli_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["grade", "a9_nothing", "--course", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"no assignment 'a9_nothing' in lenet_core.grading (known: "
                                               f"{', '.join(ASSIGNMENTS)})")
    assert main(["grade", "a1_convolution", "--course", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"no assignment 'a1_convolution': {tmp_path / 'source' / 'a1_convolution'} is not a folder"
    (tmp_path / "source" / "a1_convolution").mkdir(parents=True)
    assert main(["grade", "a1_convolution", "--course", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"a1_convolution is not in {tmp_path / 'gradebook.db'}: run `nbgrader generate_assignment "
        f"a1_convolution` in {tmp_path} first")
