"""nbgrader configuration of the LeNet-5 from Scratch course directory (this folder).

Run every nbgrader command from this folder (``cd assignments``):

    nbgrader generate_assignment a1_convolution    # source/ -> release/ (the student version)
    nbgrader autograde a1_convolution               # submitted/<student>/ -> autograded/<student>/
    nbgrader generate_feedback a1_convolution       # autograded/ -> feedback/<student>/ (HTML)
    nbgrader export --to grades.csv                 # the gradebook (gradebook.db) as CSV

Grading runs the students' notebooks in the memory-limited kernel ``lenet-grading``
(``lenet_core.grading_kernel``; the kernelspec lives in ./jupyter/kernels) with a time limit
per cell. ``scripts/grade_submissions.py`` wraps these commands with a wall clock per notebook
and a one-line report per submission.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "lenet5"
c.CourseDirectory.root = str(HERE)

# The student version: each solution region becomes a stub that raises, pointing at the HINT
# comment the source puts just above the region.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\n"
              "raise NotImplementedError(\"write your code here; the HINT comment above says how\")"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading: the memory-limited kernel, a time limit per cell (a timed-out cell is interrupted,
# scores zero and says CellTimeoutError; the cells after it still run).
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    p for p in [str(HERE / "jupyter"), os.environ.get("JUPYTER_PATH", "")] if p)
c.Execute.kernel_name = "lenet-grading"
c.Execute.timeout = int(os.environ.get("LENET_GRADING_CELL_TIMEOUT", "60"))
c.Execute.interrupt_on_timeout = True
# A kernel still busy after that interrupt must not fail the whole notebook (nbgrader's default
# would raise "Timeout waiting for IOPub output" and record no grades at all): log it, go on.
c.Execute.raise_on_iopub_timeout = False
# A test cell a student deleted is put back and run (and the log says so).
c.OverwriteCells.add_missing_cells = True
