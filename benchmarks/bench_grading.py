"""Grading a class: the seconds nbgrader and the sandbox take for 30 submissions of one assignment.

A temporary course directory (a copy of ``assignments/``) gets the assignment generated and
``--submissions`` notebooks submitted: a third the solution, a third the solution with debug output
and warnings, a third with one function delegated to lenet_core (which the student build refuses).
The figure is the wall-clock time of ``python -m lenet_core.grading grade``'s work: nbgrader's
autograde of every submission (each graded in its own bubblewrap sandbox, sandbox start-up
included), then the feedback pages, then the CSV. No MNIST is needed.

    python -m benchmarks.bench_grading     # writes results/bench_grading.json (run nothing else heavy meanwhile)
    python -m benchmarks.bench_grading --quick --out /tmp/bench_grading.json
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from lenet_core.grading.__main__ import _config, grade
from lenet_core.records import write_record

COURSE = Path(__file__).resolve().parents[1] / "assignments"
DELEGATE = {"a1_convolution": ("conv_forward", "    from lenet_core.functional import conv2d\n"
                               "    return conv2d(x, W, b, stride, padding)[0]\n")}
from benchmarks.common import parse_args


def submissions(course: Path, assignment: str, n: int) -> None:
    source = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    release = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    function, body = DELEGATE[assignment]
    for i in range(n):
        nb = nbformat.from_dict(release)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in answers:
                cell.source = answers[gid]
                if i % 3 == 1:
                    cell.source = cell.source.replace("### BEGIN SOLUTION\n", "### BEGIN SOLUTION\n    import sys\n"
                                                      "    print('debug', file=sys.stderr)\n")
                if i % 3 == 2 and gid == function:
                    head = cell.source.split("### BEGIN SOLUTION\n")[0]
                    cell.source = head + body
        folder = course / "submitted" / f"student{i:02d}" / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")


def measure(assignment: str, n: int) -> dict:
    from nbgrader.apps import NbGraderAPI

    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        course = Path(tmp) / "course"
        course.mkdir()
        shutil.copy(COURSE / "nbgrader_config.py", course)
        shutil.copytree(COURSE / "source", course / "source")
        result = NbGraderAPI(config=_config(course)).generate_assignment(assignment)
        if not result["success"]:
            raise RuntimeError(result.get("error"))
        submissions(course, assignment, n)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        results = grade(assignment, course, csv=Path(tmp) / "grades.csv", out=io.StringIO())
        seconds = time.perf_counter() - started
        load_after = os.getloadavg()[0]
    scores = sorted({r[0] for r in results.values()})
    return {"assignment": assignment, "submissions": n, "seconds": seconds, "seconds_per_submission": seconds / n,
            "scores_seen": scores, "all_graded": all(r[3] == "graded" for r in results.values()),
            "load_average_1min": [load_before, load_after]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="a1_convolution", choices=sorted(DELEGATE))
    parser.add_argument("--submissions", type=int, default=30)
    args = parse_args(parser, argv, "bench_grading.json", "3 submissions: checks the code path")
    n = 3 if args.quick else args.submissions
    results = measure(args.assignment, n)
    print(f"{results['submissions']} submissions of {args.assignment}: {results['seconds']:.1f} s "
          f"({results['seconds_per_submission']:.2f} s each, scores {results['scores_seen']})")
    write_record(args.out, results, quick=args.quick)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
