"""Grade a class with nbgrader and the sandbox, make a student build, or check the sandbox.

    python -m lenet_core.grading grade a1_convolution --csv grades.csv   # in the course directory
    python -m lenet_core.grading build a1_convolution DEST                # DEST/lenet_core/
    python -m lenet_core.grading check                                    # can this machine grade?
    python -m lenet_core.grading self-checks                              # assignments/source/*/self_checks.npz

``grade`` runs nbgrader's own steps through its API (``autograde`` with ``force``, so a second run
re-grades everyone; ``generate_feedback``; the CSV export with its status column), on the course
directory's ``nbgrader_config.py``, and prints one line per submission: the score out of the
assignment's maximum, then each test group that lost points or could not be graded. Exit status 0
when every submission was graded, 1 when some could not be, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import ASSIGNMENTS

STEPS = "grade a class (nbgrader autograde, feedback, CSV), make a student build, or check the sandbox"


def _config(course: Path):
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    path = course / "nbgrader_config.py"
    if path.is_file():
        config.merge(PyFileConfigLoader(path.name, path=str(course)).load_config())
    config.CourseDirectory.root = str(course)
    return config


def _lines(course: Path, assignment: str, student: str) -> list[str]:
    """The groups of an autograded submission that lost points or could not be graded, one line each."""
    import nbformat

    lines = []
    for path in sorted((course / "autograded" / student / assignment).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if not cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                continue
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            errors = [o.get("evalue", "") for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            first = text.splitlines()[0] if text else ""
            if errors:
                lines.append(f"{cell['metadata']['nbgrader'].get('grade_id')}: could not be graded ({errors[0]})")
            elif first and "all cases passed" not in first:
                lines.append(first)
    return lines


def grade(assignment: str, course: Path, students=None, *, csv: Path | None = None, feedback: bool = True,
          out=sys.stdout) -> dict:
    """Autograde every submission of ``assignment`` in ``course``; ``{student: (score, max, lines, status)}``."""
    import os

    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.apps import NbGraderAPI

    from .nbgrader_plugins import CsvExport, status

    course = course.resolve()
    if not (course / "gradebook.db").is_file():
        raise ValueError(f"{assignment} is not in {course / 'gradebook.db'}: run "
                         f"`nbgrader generate_assignment {assignment}` in {course} first")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise ValueError(f"{assignment} is not in {course / 'gradebook.db'}: run "
                             f"`nbgrader generate_assignment {assignment}` in {course} first") from None
    api = NbGraderAPI(config=_config(course))
    if students is None:
        students = sorted(p.parent.name for p in (course / "submitted").glob(f"*/{assignment}") if p.is_dir())
    results = {}
    for student in students:
        api.autograde(assignment, student, force=True, create=True)
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            try:
                sub = gb.find_submission(assignment, student)
                score, maximum = sub.score, sub.max_score
            except MissingEntry:
                score, maximum = 0.0, gb.find_assignment(assignment).max_score
        state = status(course, assignment, student)
        lines = ([] if state == "graded" else [state]) + _lines(course, assignment, student)
        results[student] = (score, maximum, lines, state)
        print(f"{student}: {score:g}/{maximum:g}" + "".join(f"\n    {line}" for line in lines), file=out, flush=True)
    if feedback:
        api.generate_feedback(assignment)
    if csv is not None:
        here = os.getcwd()
        try:
            os.chdir(course)
            with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
                CsvExport(to=str(Path(here, csv)), config=_config(course)).export(gb)
        finally:
            os.chdir(here)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet_core.grading", description=STEPS)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="autograde every submission of an assignment, then feedback and CSV")
    g.add_argument("assignment", help="the assignment's folder name in source/, e.g. a1_convolution")
    g.add_argument("--course", type=Path, default=Path("."), help="the nbgrader course directory (default: .)")
    g.add_argument("--student", action="append", help="grade only this student (repeatable)")
    g.add_argument("--csv", type=Path, help="export the gradebook to this CSV file (with a status column)")
    g.add_argument("--no-feedback", action="store_true", help="skip nbgrader generate_feedback")
    b = sub.add_parser("build", help="write the student build of lenet_core for an assignment")
    b.add_argument("assignment")
    b.add_argument("dest", type=Path, help="the folder to write lenet_core/ into")
    sub.add_parser("check", help="say whether this machine can run the grading sandbox")
    s = sub.add_parser("self-checks", help="write each source notebook's self_checks.npz (its self-check cases)")
    s.add_argument("--course", type=Path, default=None,
                   help="the course directory (default: this repository's assignments/)")
    args = parser.parse_args(argv)

    if args.command == "check":
        from .sandbox import available
        why = available()
        print(f"the grading sandbox cannot run here: {why}" if why else "the grading sandbox works here",
              file=sys.stderr if why else sys.stdout)
        return 1 if why else 0
    if args.command == "self-checks":
        from .build import REPO_COURSE, write_self_checks
        for assignment in ASSIGNMENTS:
            folder = (args.course or REPO_COURSE) / "source" / assignment
            path = write_self_checks(assignment, folder) if folder.is_dir() else None
            if path is not None:
                print(path)
        return 0
    if args.assignment not in ASSIGNMENTS:
        print(f"no assignment {args.assignment!r} in lenet_core.grading (known: {', '.join(ASSIGNMENTS)})",
              file=sys.stderr)
        return 2
    if args.command == "build":
        from .build import build
        print(build(args.assignment, args.dest))
        return 0
    if not (args.course / "source" / args.assignment).is_dir():
        print(f"no assignment {args.assignment!r}: {args.course / 'source' / args.assignment} is not a folder",
              file=sys.stderr)
        return 2
    try:
        results = grade(args.assignment, args.course, args.student, csv=args.csv, feedback=not args.no_feedback)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    return 0 if all(state in ("graded",) for *_, state in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
