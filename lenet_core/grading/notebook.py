"""Grade a submitted notebook: its answer cells, through the sandbox, against the test groups' cases.

The answer cells are the cells nbgrader marks as solutions (``nbgrader.solution``), whatever their
``grade_id`` (a renamed id costs nothing); nothing else of the student's notebook runs. A test cell
names its group with a marker line, ``# lenet-grading: <group>``; the group's cases live in the
assignment's module. Feedback goes into the test cell's outputs: the report as text and, as the cell's
value, its score (nbgrader's partial credit).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from . import build, load, sandbox
from .report import GradeReport, judge

MARKER = re.compile(r"^# lenet-grading: (\w+)\s*$", re.M)


def answer_cells(nb) -> list[tuple[str, str]]:
    """``(name, source)`` of every solution cell with code, in notebook order."""
    cells = []
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("solution"):
            cells.append((str(meta.get("grade_id") or f"#{i + 1}"), str(cell.get("source", ""))))
    return cells


def group_of(cell) -> str | None:
    """The test group a test cell names (its marker), or None."""
    match = MARKER.search(str(cell.get("source", "")))
    return match.group(1) if match else None


@lru_cache(maxsize=None)
def cases(assignment: str, group: str) -> tuple:
    """A group's cases, built once per process (their references are computed with the full lenet_core)."""
    return tuple(load(assignment).GROUPS[group].cases())


def _groups(assignment: str, groups) -> list[str]:
    spec = load(assignment)
    groups = list(spec.GROUPS) if groups is None else list(groups)
    unknown = [g for g in groups if g not in spec.GROUPS]
    if unknown:
        raise ValueError(f"{assignment} has no test group {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(spec.GROUPS)})")
    return groups


def run_groups(assignment: str, cells, groups=None, *, limits: sandbox.Limits = sandbox.Limits(),
               build_dir: Path | None = None) -> list:
    """The sandbox's part of grading: ``[(group, case, outcome)]``. It only runs processes and reads
    their results, so several submissions may run at once (threads); judging stays sequential.
    Raises :class:`~lenet_core.grading.sandbox.SandboxError` when the sandbox cannot run."""
    return run_many(assignment, [cells], groups, limits=limits, build_dir=build_dir)[0]


def run_many(assignment: str, submissions, groups=None, *, limits: sandbox.Limits = sandbox.Limits(),
             build_dir: Path | None = None, torch: bool | None = None) -> list[list]:
    """:func:`run_groups` for several submissions (lists of answer cells) in one sandbox, each case
    in a process of its own: one ``[(group, case, outcome)]`` per submission. ``torch``: mount
    PyTorch (default: when a group needs it)."""
    spec = load(assignment)
    groups = _groups(assignment, groups)
    todo = [(name, case) for name in groups for case in cases(assignment, name)]
    outcomes = sandbox.run_many(list(submissions), spec.PRELUDE,
                                [(i, case) for i in range(len(submissions)) for _, case in todo],
                                build.cached(assignment) if build_dir is None else build_dir,
                                torch=any(spec.GROUPS[g].torch for g in groups) if torch is None else torch,
                                limits=limits)
    return [[(name, case, outcome) for (name, case), outcome in zip(todo, outcomes[i * len(todo):])]
            for i in range(len(submissions))]


def judge_groups(assignment: str, groups, outcomes) -> dict[str, GradeReport]:
    """The reports of ``groups`` from :func:`run_groups`'s outcomes, or, given a
    :class:`~lenet_core.grading.sandbox.SandboxError`, reports that say the groups could not be graded."""
    spec = load(assignment)
    groups = _groups(assignment, groups)
    reports = {name: GradeReport(spec.GROUPS[name].title) for name in groups}
    if isinstance(outcomes, sandbox.SandboxError):
        for report in reports.values():
            report.graded, report.why = False, str(outcomes)
        return reports
    for name, case, outcome in outcomes:
        judge(reports[name], case, outcome, spec.GROUPS[name].hidden)
    return reports


def grade_groups(assignment: str, cells, groups=None, *, limits: sandbox.Limits = sandbox.Limits(),
                 build_dir: Path | None = None) -> dict[str, GradeReport]:
    """Run ``groups`` (default: all) of ``assignment`` on the answer ``cells``; a report per group.

    One sandbox runs every case of every group, each case in a process of its own (see
    :mod:`~lenet_core.grading.sandbox`). When the sandbox cannot run at all (bwrap missing, ...),
    every report has ``graded=False`` and the reason, not a zero.
    """
    try:
        outcomes = run_groups(assignment, cells, groups, limits=limits, build_dir=build_dir)
    except sandbox.SandboxError as e:
        outcomes = e
    return judge_groups(assignment, groups, outcomes)
