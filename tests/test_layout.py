"""The repository's code imports by package name: nothing edits sys.path or loads a file by path.

Scripts run as modules from the repository's root (``python -m experiments.ablation``,
``python -m benchmarks.bench_epoch``, ``python -m tools.prose_check``). The one exception is the
grader's runner inside the sandbox, which puts a student's build of lenet_core first on the path:
that is what it is for.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lenet_core", "experiments", "benchmarks", "tools")
SANDBOX_RUNNER = ROOT / "lenet_core" / "grading" / "_runner.py"
PATH_EDITS = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*[+]?=|"
                        r"spec_from_file_location|SourceFileLoader|runpy\.run_path")


def path_edits(files, root=ROOT):
    return [f"{p.relative_to(root)}:{n}" for p in files if p != SANDBOX_RUNNER
            for n, line in enumerate(p.read_text().splitlines(), 1) if PATH_EDITS.search(line)]


def test_no_code_edits_sys_path_or_loads_by_file_path():
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 40
    assert not path_edits(files)


def test_every_script_folder_is_a_package():
    assert all((ROOT / pkg / "__init__.py").is_file() for pkg in PACKAGES)


def test_the_scan_finds_an_edit(tmp_path):
    script = tmp_path / "x.py"
    script.write_text("import sys\nsys.path.insert(0, '..')\n")
    assert path_edits([script], root=tmp_path) == ["x.py:2"]
