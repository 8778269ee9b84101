"""nbgrader plug-ins: the course directory's ``nbgrader_config.py`` puts them in nbgrader's pipelines.

- :class:`StudentBuild` (in ``GenerateAssignment``): writes the student build of lenet_core beside the
  student version of the notebook, in ``release/<assignment>/lenet_core/``.
- :class:`RestoreAnswerIds` (in ``Autograde``, first): a renamed answer cell id costs nothing.
- :class:`SandboxTests` (in ``Autograde``, in place of nbgrader's ``Execute``): nbgrader never runs a
  submitted notebook in a kernel. This preprocessor takes the answer cells, runs each test cell's group
  of hidden cases in the sandbox, and writes each test cell's outputs itself (the report, then the score
  as the cell's value, which nbgrader records as partial credit). It records in the notebook's metadata
  (``lenet_grading``) whether every group could be graded and, if not, why.
- :class:`CsvExport` (``nbgrader export``): nbgrader's CSV plus a ``status`` column: ``graded``,
  ``could not be graded (why)``, or ``not submitted``, so an ungradable submission is not read as a zero.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nbformat
from nbformat.v4 import new_output
from nbgrader.plugins import CsvExportPlugin
from nbgrader.preprocessors import NbGraderPreprocessor

from . import ASSIGNMENTS, build, load
from .notebook import answer_cells, group_of, grade_groups

#: the most feedback text written into one test cell
FEEDBACK_CHARS = 20_000
METADATA = "lenet_grading"


def _course_root(config) -> Path:
    root = config.CourseDirectory.get("root") if "CourseDirectory" in config else None
    return Path(root or os.getcwd())


class StudentBuild(NbGraderPreprocessor):
    """Write ``release/<assignment>/lenet_core/``: the package without the assignment's answers."""

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        release = self.config.CourseDirectory.get("release_directory", "release")
        dest = _course_root(self.config) / release / assignment
        build.build(assignment, dest)
        self.log.info("Wrote the student build of lenet_core to %s", dest / build.NAME)
        return nb, resources


class RestoreAnswerIds(NbGraderPreprocessor):
    """Put back the ``grade_id`` of answer cells a student renamed (in ``Autograde``, before nbgrader's
    ``OverwriteCells``): the k-th answer cell with an id the source does not know gets the source's k-th
    answer id, if the notebook does not use it already. Any other cell with an unknown id loses its
    nbgrader metadata (it becomes a plain cell), so a renamed id never makes a notebook ungradable."""

    def preprocess(self, nb, resources):
        names = resources["nbgrader"]
        source = _course_root(self.config) / "source" / names["assignment"] / f"{names['notebook']}.ipynb"
        try:
            cells = nbformat.read(source, as_version=4).cells
        except (OSError, ValueError):
            return nb, resources
        known = {c.metadata.get("nbgrader", {}).get("grade_id") for c in cells} - {None}
        answers = [c.metadata["nbgrader"]["grade_id"] for c in cells
                   if c.metadata.get("nbgrader", {}).get("solution") and c.metadata["nbgrader"].get("grade_id")]
        used = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
        position = 0
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if not meta:
                continue
            if meta.get("solution") and not meta.get("grade"):
                if meta.get("grade_id") not in known and position < len(answers) and answers[position] not in used:
                    self.log.warning("Answer cell %r renamed: graded as %r", meta.get("grade_id"), answers[position])
                    meta["grade_id"] = answers[position]
                position += 1
            elif meta.get("grade_id") not in known:
                del cell.metadata["nbgrader"]
        return nb, resources


def _points(cell) -> float:
    return float(cell.metadata["nbgrader"].get("points", 0))


class SandboxTests(NbGraderPreprocessor):
    """Grade the answer cells in the sandbox and write every test cell's outputs (replaces ``Execute``)."""

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        tests = [c for c in nb.cells if c.get("cell_type") == "code" and c.metadata.get("nbgrader", {}).get("grade")]
        problems = []
        if assignment not in ASSIGNMENTS:
            reports, why = {}, f"lenet_core.grading has no module for assignment {assignment!r}"
        else:
            spec = load(assignment)
            wanted = [g for g in (group_of(c) for c in tests) if g in spec.GROUPS]
            reports, why = grade_groups(assignment, answer_cells(nb), wanted), None
        for cell in tests:
            cell.outputs = []
            cell.execution_count = None
            group = group_of(cell)
            report = reports.get(group)
            if report is None:
                message = why or f"test cell {cell.metadata['nbgrader'].get('grade_id')} names no test group"
                problems.append(message)
                cell.outputs.append(new_output("error", ename="NotGraded", evalue=message, traceback=[message]))
                continue
            text = str(report)
            if len(text) > FEEDBACK_CHARS:
                text = text[:FEEDBACK_CHARS] + "\n  ... (feedback cut)"
            cell.outputs.append(new_output("stream", name="stdout", text=text + "\n"))
            if not report.graded:
                problems.append(f"{group}: {report.why}")
                cell.outputs.append(new_output("error", ename="NotGraded", evalue=report.why,
                                               traceback=[f"could not be graded: {report.why}"]))
                continue
            score = round(_points(cell) * report.score / report.max_score, 4) if report.max_score else 0.0
            cell.outputs.append(new_output("execute_result", data={"text/plain": repr(score)}, execution_count=None))
        nb.metadata[METADATA] = {"graded": not problems, "problems": problems}
        return nb, resources


def status(root: Path, assignment: str, student: str, autograded: str = "autograded",
           submitted: str = "submitted") -> str:
    """``graded``, ``could not be graded (why)`` or ``not submitted``, from the course directory."""
    folder = root / autograded / student / assignment
    sent = root / submitted / student / assignment
    if not sent.is_dir():
        return "not submitted"
    expected = sorted(p.name for p in (root / "source" / assignment).glob("*.ipynb"))
    for name in expected or [f"{assignment}.ipynb"]:
        if not (sent / name).is_file():
            return f"could not be graded (no {name} in the submission)"
        try:
            nbformat.read(sent / name, as_version=4)
        except Exception as e:              # noqa: BLE001 (what the student sent)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return f"could not be graded ({name} is not a notebook: {first[:100]})"
        try:
            meta = json.loads((folder / name).read_text()).get("metadata", {}).get(METADATA)
        except (OSError, ValueError):
            meta = None
        if meta is None:
            return "could not be graded (not autograded yet, or nbgrader failed on it: see its log)"
        if not meta.get("graded"):
            return f"could not be graded ({'; '.join(meta.get('problems', []))[:300]})"
    return "graded"


class CsvExport(CsvExportPlugin):
    """nbgrader's CSV export with a ``status`` column (see :func:`status`)."""

    def export(self, gradebook) -> None:
        super().export(gradebook)
        dest = Path(self.to or "grades.csv")
        root = _course_root(self.config)
        with open(dest, newline="") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        a, s = header.index("assignment"), header.index("student_id")
        out = [header + ["status"]] + [row + [status(root, row[a], row[s])] for row in rows[1:]]
        with open(dest, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(out)
