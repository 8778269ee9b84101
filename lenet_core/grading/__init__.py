"""The grader of the assignments: hidden tests run outside the student's kernel, on a sandboxed copy
of the student's answers.

Layout (one module per assignment, mirroring ``assignments/source/aN_*``):

- :mod:`~lenet_core.grading.report`: cases, outcomes, the comparisons and the feedback (the core);
- :mod:`~lenet_core.grading.sandbox`: runs a test group's cases on the student's answer cells in
  bubblewrap, with hard limits, and returns what the student's functions gave;
- :mod:`~lenet_core.grading.build`: the student build of lenet_core, without an assignment's answers;
- :mod:`~lenet_core.grading.notebook`: grades a submitted notebook (its answer cells), group by group;
- :mod:`~lenet_core.grading.nbgrader_plugins`: the preprocessors and the CSV export that plug this
  into nbgrader (``assignments/nbgrader_config.py``);
- ``aN_*.py``: an assignment's test groups (the hidden cases live here, on the teacher's side),
  the modules its student build keeps (``KEEP``), the names it leaves out (``ABSENT``), the names
  it also leaves out when graded (``GRADING_ABSENT``: what the notebook's own cells need but no
  answer may call) and the code run before the answer cells (``PRELUDE``). A new assignment is
  one new module.

``python -m lenet_core.grading --help`` lists the commands (grade a class, make a student build).
"""

from __future__ import annotations

import importlib
import pkgutil
import re

__all__ = ["ASSIGNMENTS", "load"]

#: the assignment modules, by name (``a1_convolution``, ...)
ASSIGNMENTS = sorted(m.name for m in pkgutil.iter_modules(__path__) if re.fullmatch(r"a\d+_\w+", m.name))


def load(assignment: str):
    """The module of ``assignment`` (``lenet_core.grading.a1_convolution``); ValueError naming it if none."""
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"no assignment {assignment!r} in lenet_core.grading (known: {', '.join(ASSIGNMENTS)})")
    return importlib.import_module(f"{__name__}.{assignment}")
