"""Grade students' submitted notebooks with the checks of the assignment's source notebook.

    python scripts/grade_submissions.py assignments/source/a1_convolution.ipynb submissions/*.ipynb --out grades.csv

For each submission, the notebook that is run is the *source* notebook in which only the cells that
hold a solution region (``### BEGIN SOLUTION``) are replaced by the student's cells with the same
cell id (the student version keeps the source's ids). Check cells, set-up cells and any cell the
student added or edited elsewhere come from the source, so a score cannot be faked by editing a
check cell. The notebook runs in a fresh kernel from the submission's folder; afterwards every
``GradeReport`` it created is collected. One CSV row per submission: the score of each report and
the total; a submission that cannot be read or run gets its error in the ``error`` column.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARK = "__LENET_GRADES__"
COLLECT = f"""
import json as _json
from lenet_core.grading import GradeReport as _GradeReport
print({MARK!r} + _json.dumps({{_k: [_v.score, _v.max_score] for _k, _v in list(globals().items())
                              if isinstance(_v, _GradeReport)}}))
"""


def graded_notebook(source, submission):
    """The source notebook with its solution cells taken from ``submission`` (matched by cell id)."""
    by_id = {cell.get("id"): cell for cell in submission.cells}
    nb = nbformat.from_dict(source)
    for i, cell in enumerate(nb.cells):
        if "### BEGIN SOLUTION" in cell.source and cell.get("id") in by_id:
            student = by_id[cell["id"]]
            nb.cells[i] = nbformat.from_dict({**cell, "source": student.source})
        if nb.cells[i].cell_type == "code":
            nb.cells[i].outputs, nb.cells[i].execution_count = [], None
    nb.cells.append(nbformat.v4.new_code_cell(COLLECT))
    return nb


def grade(source_path: Path, submission_path: Path, timeout: int = 900) -> dict[str, list[int]]:
    """Run one submission; returns ``{report variable: [score, max_score]}``."""
    source = nbformat.read(source_path, as_version=4)
    submission = nbformat.read(submission_path, as_version=4)
    nb = graded_notebook(source, submission)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(source_path.parent)}}).execute()
    for out in nb.cells[-1].outputs:
        if out.output_type == "stream" and MARK in out.text:
            return json.loads(out.text.split(MARK, 1)[1])
    raise RuntimeError("the notebook did not get as far as the end (see its errors)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the assignment's source (solution) notebook")
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="CSV file (default: print to the terminal)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    rows, names = [], []
    for path in args.submissions:
        try:
            scores, error = grade(args.source, path, args.timeout), ""
        except Exception as e:  # one broken submission must not stop the others
            scores, error = {}, f"{type(e).__name__}: {e}"
        names += [n for n in scores if n not in names]
        rows.append((path.name, scores, error))
        total = sum(s for s, _ in scores.values())
        print(f"{path.name}: {total}/{sum(m for _, m in scores.values())}" + (f"  ({error})" if error else ""))
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    writer = csv.writer(out)
    writer.writerow(["submission", *names, "total", "max", "error"])
    for name, scores, error in rows:
        writer.writerow([name, *(scores.get(n, [0])[0] for n in names), sum(s for s, _ in scores.values()),
                         sum(m for _, m in scores.values()), error])
    if args.out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
