"""Grade a whole class with nbgrader, bounded in time and memory, with one report line per submission.

    python scripts/grade_submissions.py a1_convolution                      # course folder: assignments/
    python scripts/grade_submissions.py a1_convolution --course DIR --csv grades.csv

A thin wrapper around nbgrader's own API (``NbGraderAPI.autograde``, ``generate_feedback`` and
the CSV export plugin), run on the course directory's ``nbgrader_config.py``. It adds what plain
``nbgrader autograde`` does not have:

- a wall clock per notebook (``--notebook-timeout``) on top of nbgrader's time limit per cell
  (``--cell-timeout``, ``Execute.timeout``): once a notebook's time is up, every remaining cell
  gets one second, so its tests score zero and the feedback says ``CellTimeoutError``;
- the memory limit of the grading kernel (``--memory``, see :mod:`lenet_core.grading_kernel`);
- a report line per submission: the score out of the assignment's fixed maximum, then every problem
  nbgrader met: a file that is not a notebook, an empty notebook, a test cell edited (checksum
  changed) or deleted, a test that hit a time or memory limit or raised. One broken submission
  never stops the others.

The exit status is 0 when every submission was graded, 1 when at least one could not be.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPLAINED = {
    "CellTimeoutError": "time limit",
    "KeyboardInterrupt": "time limit",        # nbgrader interrupts a cell that runs out of time
    "MemoryError": "memory limit",
}


def load_config(course: Path, cell_timeout: int, notebook_timeout: float, clock: dict):
    """The course's nbgrader_config.py, plus the per-cell and per-notebook time limits."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    path = course / "nbgrader_config.py"
    if path.is_file():
        config.merge(PyFileConfigLoader(path.name, path=str(course)).load_config())
    config.CourseDirectory.root = str(course)
    config.Execute.timeout = cell_timeout

    def timeout_func(cell):
        # the per-notebook wall clock: what is left of it, capped by the per-cell limit
        left = clock["deadline"] - time.monotonic()
        return max(1, min(cell_timeout, int(left)))
    config.Execute.timeout_func = timeout_func
    return config


def read_problems(path: Path) -> str | None:
    """Why a submitted file cannot be graded as a notebook, or None."""
    import nbformat

    if not path.is_file():
        return f"no {path.name} submitted"
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # not JSON, not a notebook
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"{path.name} is not a notebook ({first[:120]})"
    if not nb.cells:
        return f"{path.name} is an empty notebook (no cells)"
    return None


def tampering(submitted: Path, release: Path) -> list[str]:
    """Read-only cells of the student version that the submission edited or deleted.

    nbgrader's checksums decide (``nbgrader.utils.compute_checksum``, the value nbgrader stores in
    each read-only cell of the student version); autograde has already put the source's version
    of every such cell back, so this only reports. The comparison is with the student version in
    ``release/``, not with the source, whose test cells still hold the hidden tests.
    """
    import nbformat
    from nbgrader.utils import compute_checksum, is_locked

    try:
        released = nbformat.read(release, as_version=4)
        student = nbformat.read(submitted, as_version=4)
    except Exception:
        return []
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in student.cells}
    found = []
    for cell in released.cells:
        if not is_locked(cell):
            continue
        grade_id = cell.metadata.nbgrader["grade_id"]
        kind = "test cell" if cell.metadata.nbgrader.get("grade") else "read-only cell"
        if grade_id not in cells:
            if student.cells:
                found.append(f"{kind} {grade_id} was deleted: nbgrader put it back")
        elif compute_checksum(cells[grade_id]) != cell.metadata.nbgrader["checksum"]:
            found.append(f"{kind} {grade_id} was edited (its checksum changed): graded with the original")
    return found


def cell_problems(notebook: Path, limits: dict) -> list[str]:
    """The test and answer cells of an autograded notebook that ended in an error, with the error."""
    import nbformat

    if not notebook.is_file():
        return []
    found = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not (meta.get("grade") or meta.get("solution")):
            continue
        kind = "test" if meta.get("grade") else "answer cell"
        for out in cell.outputs:
            if out.output_type == "error":
                why = EXPLAINED.get(out.ename)
                detail = f" ({why}: {limits[why]})" if why else f": {out.evalue}"[:160]
                found.append(f"{kind} {meta.get('grade_id')}: {out.ename}{detail}")
                break
    return found


def grade(assignment: str, course: Path, students=None, *, cell_timeout: int = 60,
          notebook_timeout: float = 600, memory: str = "3G", csv: Path | None = None,
          feedback: bool = True, out=sys.stdout) -> dict:
    """Autograde every submission of ``assignment``.

    Returns ``{student: (score, max_score, [problem lines], graded)}``; ``graded`` is false when
    nbgrader could not grade the submission at all (it then scores zero).
    """
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.apps import NbGraderAPI
    from nbgrader.plugins import CsvExportPlugin

    from lenet_core.grading_kernel import ENV_VAR, parse_limit

    parse_limit(memory)                       # a bad value is one clear line, before any grading
    os.environ[ENV_VAR] = memory
    course = course.resolve()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise ValueError(f"{assignment} is not in {course / 'gradebook.db'}: "
                             f"run `nbgrader generate_assignment {assignment}` in {course} first") from None
    clock = {"deadline": time.monotonic() + notebook_timeout}
    api = NbGraderAPI(config=load_config(course, cell_timeout, notebook_timeout, clock))
    submitted = course / "submitted"
    if students is None:
        students = sorted(p.name for p in submitted.glob(f"*/{assignment}") if p.is_dir()
                          for p in [p.parent])
    limits = {"time limit": f"{cell_timeout} s per cell, {notebook_timeout:g} s per notebook",
              "memory limit": memory}
    notebooks = sorted(p.name for p in (course / "source" / assignment).glob("*.ipynb"))
    results = {}
    for student in students:
        problems = []
        for name in notebooks:
            problem = read_problems(submitted / student / assignment / name)
            if problem:
                problems.append(problem)
        clock["deadline"] = time.monotonic() + notebook_timeout
        result = api.autograde(assignment, student, force=True, create=True)
        if time.monotonic() > clock["deadline"]:
            problems.append(f"the notebook time limit ({notebook_timeout:g} s) ran out: "
                            f"the tests after it scored zero")
        for name in notebooks:
            problems += tampering(submitted / student / assignment / name, course / "release" / assignment / name)
            problems += cell_problems(course / "autograded" / student / assignment / name, limits)
        if not result.get("success"):
            error = (result.get("error") or "").strip().splitlines()
            problems.append("nbgrader could not grade it: " + (error[-1] if error else "unknown error"))
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            try:
                sub = gb.find_submission(assignment, student)
                score, maximum = sub.score, sub.max_score
            except MissingEntry:
                score, maximum = 0.0, gb.find_assignment(assignment).max_score
        results[student] = (score, maximum, problems, bool(result.get("success")))
        print(f"{student}: {score:g}/{maximum:g}" + "".join(f"\n    {p}" for p in problems), file=out, flush=True)
    if feedback:
        api.generate_feedback(assignment)
    if csv is not None:
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            CsvExportPlugin(to=str(csv)).export(gb)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", help="the assignment's folder name in source/, e.g. a1_convolution")
    parser.add_argument("--course", type=Path, default=REPO / "assignments",
                        help="the nbgrader course directory (default: assignments/)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--cell-timeout", type=int, default=60, help="seconds per cell (default 60)")
    parser.add_argument("--notebook-timeout", type=float, default=600, help="seconds per notebook (default 600)")
    parser.add_argument("--memory", default="3G", help="address-space limit of the grading kernel (default 3G)")
    parser.add_argument("--csv", type=Path, help="export the gradebook to this CSV file")
    parser.add_argument("--no-feedback", action="store_true", help="skip nbgrader generate_feedback")
    args = parser.parse_args(argv)
    if not (args.course / "source" / args.assignment).is_dir():
        print(f"no assignment {args.assignment!r}: {args.course / 'source' / args.assignment} is not a folder",
              file=sys.stderr)
        return 2
    try:
        results = grade(args.assignment, args.course, args.student, cell_timeout=args.cell_timeout,
                        notebook_timeout=args.notebook_timeout, memory=args.memory, csv=args.csv,
                        feedback=not args.no_feedback)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    return 0 if all(graded for *_, graded in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
