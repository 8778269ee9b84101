"""The instructor page's grading commands, run as written on a copy of the course directory."""

import os
import re
import shutil
import subprocess

import nbformat
import pytest

from conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

PAGE = REPO / "book" / "instructor.md"


def shown_commands():
    """The first ```bash block after the heading 'Grading a whole class'."""
    text = PAGE.read_text()
    section = text.split("## Grading a whole class", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_the_pages_commands_grade_a_class_and_export_csv(tmp_path):
    commands = shown_commands()
    assert commands[0] == "cd assignments"
    assert [c.split()[:2] for c in commands[1:]] == [["nbgrader", "generate_assignment"], ["nbgrader", "autograde"],
                                                    ["nbgrader", "generate_feedback"], ["nbgrader", "export"]]
    course = tmp_path / "assignments"
    course.mkdir()
    for item in ["nbgrader_config.py", "jupyter", "source"]:
        (shutil.copytree if (REPO / "assignments" / item).is_dir() else shutil.copy)(
            REPO / "assignments" / item, course / item)
    assignment = commands[1].split()[2]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def run(command):
        result = subprocess.run(command, shell=True, cwd=course, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])

    run(commands[1])
    # a class of one: the student version with the answers copied in, as a student would submit it
    source = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    student = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in student.cells:
        cell.source = answers.get(cell.metadata.get("nbgrader", {}).get("grade_id"), cell.source)
    (course / "submitted" / "alice" / assignment).mkdir(parents=True)
    nbformat.write(student, course / "submitted" / "alice" / assignment / f"{assignment}.ipynb")
    for command in commands[2:]:
        run(command)
    assert (course / "feedback" / "alice" / assignment / f"{assignment}.html").is_file()
    rows = (course / "grades.csv").read_text().splitlines()
    points = sum(c.metadata["nbgrader"]["points"] for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("grade"))
    assert rows[1].startswith(f"{assignment},,,alice,") and rows[1].endswith(f",{points:.1f},{points:.1f}"), rows
