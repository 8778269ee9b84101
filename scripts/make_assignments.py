"""Generate the student versions of the assignments from their solution notebooks.

    python scripts/make_assignments.py            # writes assignments/student/*.ipynb
    python scripts/make_assignments.py --check    # exits 1 if a committed student version is stale

Every ``assignments/source/*.ipynb`` is a complete, executed solution notebook. In its code cells a
solution region is written between two marker lines (as in nbgrader)::

    def conv_forward(x, W, b, stride, padding):
        ### BEGIN SOLUTION
        ### HINT: unfold the windows with im2col, then one matrix product
        cols = ...
        ### END SOLUTION

In the student version each region becomes one line, at the marker's indentation,
``raise NotImplementedError("<hint>")`` (the hint is the region's optional ``### HINT:`` line).
A markdown cell's region becomes "*Your answer here.*". Outputs are cleared, and so are
``# NBVAL_CHECK_OUTPUT`` lines (a student version has no stored output to compare). A cell whose
stub runs at the top level (not inside a function), or that the source tags ``student-raises``
(it calls the student's code outside a grader check), is tagged ``raises-exception`` in the
student version, so that notebook still executes from top to bottom (nbval accepts the error there);
the solution notebook keeps no such tag, so an error in it is still a failure.
The output is deterministic: running the script twice gives identical files.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOURCE, STUDENT = REPO / "assignments" / "source", REPO / "assignments" / "student"
BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
HINT = re.compile(r"^\s*### HINT:\s*(.*)$")
DEFAULT_HINT = "write your solution here"


class MarkerError(ValueError):
    pass


def strip_solutions(source: str, markdown: bool, where: str) -> tuple[str, bool]:
    """Replace every solution region of one cell. Returns (new source, whether a stub runs at top level)."""
    out, region, top_level = [], None, False
    for number, line in enumerate(source.splitlines(), 1):
        if region is None:
            begin = BEGIN.match(line)
            if begin:
                region = {"indent": begin.group(1), "hint": DEFAULT_HINT}
            elif END.match(line):
                raise MarkerError(f"{where}, line {number}: END SOLUTION without BEGIN SOLUTION")
            else:
                out.append(line)
            continue
        if BEGIN.match(line):
            raise MarkerError(f"{where}, line {number}: BEGIN SOLUTION inside another solution region")
        hint = HINT.match(line)
        if hint:
            region["hint"] = hint.group(1).strip()
        elif END.match(line):
            if markdown:
                out.append(region["indent"] + "*Your answer here.*")
            else:
                out.append(f'{region["indent"]}raise NotImplementedError({region["hint"]!r})')
                top_level |= region["indent"] == ""
            region = None
    if region is not None:
        raise MarkerError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out), top_level


def student_version(nb, name: str):
    nb = nbformat.from_dict(nb)                      # a copy
    for i, cell in enumerate(nb.cells):
        top_level = False
        if "### BEGIN SOLUTION" in cell.source or "### END SOLUTION" in cell.source:
            cell.source, top_level = strip_solutions(cell.source, cell.cell_type == "markdown", f"{name}, cell {i}")
        if cell.cell_type != "code":
            continue
        cell.source = "\n".join(line for line in cell.source.splitlines() if line.strip() != "# NBVAL_CHECK_OUTPUT")
        cell.outputs, cell.execution_count = [], None
        tags = cell.metadata.get("tags", [])
        if top_level or "student-raises" in tags:
            tags = [t for t in tags if t != "student-raises"] + ["raises-exception"]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    # only what a fresh notebook needs: no widget state, no record of the machine that ran the source
    nb.metadata = nbformat.from_dict({"kernelspec": nb.metadata.get("kernelspec", {}),
                                      "language_info": {"name": "python"}})
    return nb


def render(nb) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate student notebooks from assignments/source.")
    parser.add_argument("--check", action="store_true", help="only check that assignments/student is up to date")
    args = parser.parse_args(argv)
    sources = sorted(SOURCE.glob("*.ipynb"))
    if not sources:
        print(f"no notebooks in {SOURCE}", file=sys.stderr)
        return 1
    stale = []
    for path in sources:
        text = render(student_version(nbformat.read(path, as_version=4), path.name))
        target = STUDENT / path.name
        if args.check:
            if not target.is_file() or target.read_text() != text:
                stale.append(str(target.relative_to(REPO)))
            continue
        STUDENT.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target.relative_to(REPO)}")
    if stale:
        print("out of date (run python scripts/make_assignments.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
