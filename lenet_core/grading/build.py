"""The student build of lenet_core for an assignment: the package without the assignment's answers.

``build(assignment, dest)`` writes ``dest/lenet_core/``: the modules the assignment's notebook needs
(its ``KEEP``, closed under their own imports) copied from this package, in which every name of the
assignment's ``ABSENT`` (a function, a class, or ``Class.method``) is replaced by a stub that raises
``NotImplementedError`` naming the assignment; every other module of the package is a stub whose
import raises ``ImportError`` saying the same; :mod:`lenet_core.grading` is never in it.
``nbgrader generate_assignment`` puts this build beside the student's notebook in ``release/``
(students import it from the notebook's folder). The sandbox grades against the same build with
``grading=True``, which also stubs the assignment's ``GRADING_ABSENT``: what the notebook's own
(ungraded) cells need but no answer may call, e.g. the convolution's backward pass that a3's
gradient check of LeNet-5 runs, which would also compute a linear layer's backward pass as a 1x1
convolution. A solution that calls lenet_core's own implementation fails, and says why.
"""

from __future__ import annotations

import ast
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parents[1]
NAME = PACKAGE.name
#: this repository's course directory (``assignments/``), where the source notebooks live
REPO_COURSE = PACKAGE.parent / "assignments"


def _modules() -> dict[str, Path]:
    """``{"functional": path, "viz.training": path, "viz": path/__init__.py, ...}`` without grading."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = rel.parts
        if parts[0] in ("grading", "__main__") or "__pycache__" in parts or parts == ("__init__",):
            continue
        name = ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """The package's own modules that module ``name`` imports (relative or absolute)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                stem = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == NAME:
                stem = node.module.split(".")[1:]
            else:
                continue
            targets += [".".join(stem + [a.name]) for a in node.names] + [".".join(stem)]
        elif isinstance(node, ast.Import):
            targets += [".".join(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == NAME]
        for t in targets:
            parts = t.split(".") if t else []
            for i in range(1, len(parts) + 1):       # a module and the packages above it
                if ".".join(parts[:i]) in modules:
                    found.add(".".join(parts[:i]))
    return found


def closure(keep) -> set[str]:
    modules = _modules()
    unknown = [k for k in keep if k not in modules]
    if unknown:
        raise ValueError(f"not modules of {NAME}: {', '.join(unknown)}")
    done, todo = set(), list(keep)
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules]
        todo += sorted(_imports(name, modules[name], modules) - done)
    return done


def _stub_lines(indent: str, kind: str, name: str, qualified: str, assignment: str,
                grading: bool = False) -> list[str]:
    message = (f"{qualified} is left out when {assignment} is graded: your answers compute it "
               f"themselves, without {NAME}'s own" if grading else
               f"{qualified} is left out of the student build of {NAME} for {assignment}: "
               f"the assignment asks you to write it yourself")
    if kind == "class":
        return [f"{indent}class {name}:",
                f'{indent}    """Left out of the student build: {assignment} asks you to write it."""',
                f"{indent}    def __init__(self, *args, **kwargs):",
                f"{indent}        raise NotImplementedError({message!r})", ""]
    return [f"{indent}def {name}(*args, **kwargs):",
            f'{indent}    """Left out of the student build: {assignment} asks you to write it."""',
            f"{indent}    raise NotImplementedError({message!r})", ""]


def strip(source: str, names, module: str, assignment: str, grading=()) -> str:
    """``source`` with each of ``names`` (``"f"``, ``"Class"``, ``"Class.method"``) replaced by a stub;
    the stubs of the names also in ``grading`` say they are left out when the assignment is graded."""
    tree = ast.parse(source)
    lines = source.splitlines()
    spans = []
    for wanted in names:
        owner, _, attr = wanted.rpartition(".")
        body = tree.body
        if owner:
            classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner]
            if not classes:
                raise ValueError(f"{NAME}.{module} has no class {owner}")
            body = classes[0].body
        nodes = [n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == attr]
        if not nodes:
            raise ValueError(f"{NAME}.{module} has no {wanted}")
        node = nodes[-1]
        start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)
        kind = "class" if isinstance(node, ast.ClassDef) else "def"
        spans.append((start, node.end_lineno, _stub_lines(indent, kind, attr, f"{NAME}.{module}.{wanted}",
                                                          assignment, wanted in grading)))
    for start, end, stub in sorted(spans, reverse=True):
        lines[start:end] = stub
    return "\n".join(lines) + "\n"


def build(assignment: str, dest: Path, *, grading: bool = False) -> Path:
    """Write the student build for ``assignment`` to ``dest/lenet_core``; returns that folder.
    ``grading``: the sandbox's build, which also leaves out the assignment's ``GRADING_ABSENT``."""
    from . import load

    spec = load(assignment)
    modules = _modules()
    keep = closure(spec.KEEP)
    absent = {m: tuple(names) for m, names in spec.ABSENT.items()}
    graded_only = dict(spec.GRADING_ABSENT) if grading else {}
    for module, names in graded_only.items():
        absent[module] = absent.get(module, ()) + tuple(names)
    for module in absent:
        if module not in keep:
            raise ValueError(f"{assignment}: ABSENT names {NAME}.{module}, which is not in the build")
    out = Path(dest) / NAME
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    left_out = [f"{NAME}.{m}.{n}" for m, names in sorted(absent.items()) for n in names]
    (out / "__init__.py").write_text(
        f'"""The student build of {NAME} for {assignment} (made by {NAME}.grading.build).\n\n'
        f"It holds the modules this assignment uses: {', '.join(sorted(keep)) or 'none'}.\n"
        + (f"Left out, because the assignment asks you to write them: {', '.join(left_out)}.\n" if left_out else "")
        + 'Every other module is left out too."""\n')
    for name, path in modules.items():
        target = out / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in keep:
            source = path.read_text()
            if name in absent:
                source = strip(source, absent[name], name, assignment, graded_only.get(name, ()))
            target.write_text(source)
        else:
            target.write_text(f'"""Left out of the student build for {assignment}."""\n'
                              f"raise ImportError({f'{NAME}.{name} is not in the student build of {NAME} for {assignment}: the assignment does not use it, or asks you to write what it holds'!r})\n")
    for path in [out, *out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


#: the self-check cases of an assignment's notebook, beside it in ``source/`` and ``release/``
SELF_CHECKS = "self_checks.npz"


def write_self_checks(assignment: str, folder: Path) -> Path | None:
    """Write ``folder/self_checks.npz``: the small cases (inputs and expected outputs, computed with
    the full lenet_core) that the notebook's self-check cells run the student's functions on. They
    are none of the graded cases. None when the assignment's self-checks need no stored data."""
    from . import load

    spec = load(assignment)
    if not hasattr(spec, "self_checks"):
        return None
    path = Path(folder) / SELF_CHECKS
    np.savez(path, **spec.self_checks())
    return path


_CACHE: dict[str, Path] = {}


def cached(assignment: str) -> Path:
    """The folder holding ``lenet_core/`` (the sandbox's build, ``grading=True``), built once per process."""
    if assignment not in _CACHE or not (_CACHE[assignment] / NAME).is_dir():
        root = Path(tempfile.mkdtemp(prefix=f"lenet-build-{assignment}-"))
        root.chmod(0o755)
        build(assignment, root, grading=True)
        _CACHE[assignment] = root
    return _CACHE[assignment]
