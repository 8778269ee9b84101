"""The grading kernel: ipykernel with a memory limit, for ``nbgrader autograde``.

A student's code runs in the kernel that grades it, so a runaway allocation would take the
grading machine down with it. This kernel caps its own address space with
``resource.setrlimit(RLIMIT_AS)`` before ipykernel starts: an allocation past the cap raises
``MemoryError`` in the student's cell, that test scores zero with the error in the feedback, and
grading goes on. The time limits are nbgrader's (``Execute.timeout`` per cell) and the thin
wrapper's (``scripts/grade_submissions.py``: a wall clock per notebook).

The course directory ships the kernelspec (``assignments/jupyter/kernels/lenet-grading``), and its
``nbgrader_config.py`` puts that folder on ``JUPYTER_PATH`` and selects the kernel, so plain
``nbgrader autograde`` uses it. Jupyter starts it as::

    python -m lenet_core.grading_kernel -f CONNECTION_FILE

The cap is ``LENET_GRADING_MEMORY`` (bytes, or with a suffix ``K``, ``M``, ``G``), default
:data:`DEFAULT_LIMIT`. It bounds virtual memory, which is larger than what a process touches:
NumPy, PyTorch and the BLAS threads reserve address space they never use, so keep it above ~2 GiB.
"""

from __future__ import annotations

import os
import resource
import sys

ENV_VAR = "LENET_GRADING_MEMORY"
#: 3 GiB of address space: enough for PyTorch and a LeNet-5, far less than a 4 GiB allocation
DEFAULT_LIMIT = 3 * 1024 ** 3
_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def parse_limit(text: str) -> int:
    """``"3G"`` -> 3221225472; ``"1500M"``, ``"123456"`` (bytes). Raises ValueError naming the value."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[:-1] if unit else value
    try:
        limit = int(float(number) * _UNITS[unit])
    except ValueError:
        raise ValueError(f"{ENV_VAR}={text!r} is not a size such as 3G, 1500M or 123456 (bytes)") from None
    if limit <= 0:
        raise ValueError(f"{ENV_VAR}={text!r} must be positive")
    return limit


def memory_limit() -> int:
    text = os.environ.get(ENV_VAR, "")
    return parse_limit(text) if text.strip() else DEFAULT_LIMIT


def apply_memory_limit(limit: int) -> None:
    """Cap this process's address space at ``limit`` bytes (never raising an existing lower cap)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main() -> None:
    apply_memory_limit(memory_limit())
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    sys.exit(main())
