"""nbgrader configuration of the LeNet-5 from Scratch course directory (this folder).

Run every nbgrader command from this folder (``cd assignments``); book/instructor.md is the guide.

    nbgrader generate_assignment a1_convolution    # source/ -> release/: the student version and the
                                                    # student build of lenet_core beside it
    nbgrader autograde a1_convolution               # submitted/<student>/ -> autograded/<student>/
    nbgrader generate_feedback a1_convolution       # autograded/ -> feedback/<student>/ (HTML)
    nbgrader export --to grades.csv                 # the gradebook as CSV, with a status column

Autograding never runs a submitted notebook in a kernel: ``SandboxTests`` (lenet_core.grading) takes
its place in nbgrader's pipeline. It runs the answer cells in a bubblewrap sandbox against the hidden
cases of lenet_core/grading/aN_*.py and writes each test cell's outputs and score itself.
"""

from pathlib import Path

from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds, IgnorePattern,
                                    LimitOutput, OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

from lenet_core.grading.nbgrader_plugins import CsvExport, RestoreAnswerIds, SandboxTests, StudentBuild

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "lenet5"
c.CourseDirectory.root = str(HERE)

# The student version: each solution region becomes a stub that raises, pointing at the HINT
# comment the source puts just above the region; the student build of lenet_core goes beside it.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\n"
              "raise NotImplementedError(\"write your code here; the HINT comment above says how\")"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.GenerateAssignment.preprocessors = [*GenerateAssignment.class_traits()["preprocessors"].default(), StudentBuild]

# Grading: renamed answer cell ids put back, then nbgrader's own checks, then the sandbox instead of a
# kernel (nbgrader's Execute is not in the list).
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, RestoreAnswerIds, OverwriteKernelspec,
                                      OverwriteCells, CheckCellMetadata]
c.Autograde.autograde_preprocessors = [SandboxTests, IgnorePattern, LimitOutput, SaveAutoGrades,
                                       AssignLatePenalties, CheckCellMetadata]
# A test cell a student deleted is put back (and graded).
c.OverwriteCells.add_missing_cells = True

# nbgrader export: nbgrader's CSV plus a status column (graded / could not be graded (why) / not submitted).
c.ExportApp.plugin_class = CsvExport
