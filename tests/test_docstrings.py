"""Every public function and class of the teaching modules names the chapter that explains it (d2l's
habit: "Explained in chapter 4 (book/ch04_backprop.ipynb)."), and that chapter exists."""

import importlib
import inspect
import re
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = ["functional", "layers", "losses", "model", "optim", "train", "gradcheck", "data", "summary", "fields",
           "filters", "seed_paper"]
PACKAGES = ["viz", "attribution", "lenet1998"]
CHAPTERS = {int(p.name[2:4]): p for p in (REPO / "book").glob("ch[0-9][0-9]_*.ipynb")}


def _modules():
    names = [f"lenet_core.{m}" for m in MODULES]
    for package in PACKAGES:
        names += sorted(f"lenet_core.{package}.{p.stem}" for p in (REPO / "lenet_core" / package).glob("*.py")
                        if p.stem != "__init__")
    return names


def _public(module):
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__:
            yield name, obj


def _problems(module):
    """The public definitions naming no chapter, and the chapters or notebooks named that do not exist."""
    missing, wrong = [], []
    for attr, obj in _public(module):
        doc = obj.__doc__ or ""
        numbers = [int(n) for group in re.findall(r"[Cc]hapters? (\d+(?:(?:, | and | to )\d+)*)", doc)
                   for n in re.findall(r"\d+", group)]
        if not numbers:
            missing.append(attr)
        wrong += [f"{attr}: chapter {n}" for n in numbers if n not in CHAPTERS]
        wrong += [f"{attr}: {p}" for p in re.findall(r"book/ch\d\d_\w+\.ipynb", doc) if not (REPO / p).is_file()]
    return missing, wrong


@pytest.mark.parametrize("name", _modules())
def test_every_public_definition_names_an_existing_chapter(name):
    missing, wrong = _problems(importlib.import_module(name))
    assert not missing, f"{name}: no chapter named in the docstring of {missing}"
    assert not wrong, f"{name}: chapters that do not exist: {wrong}"


def test_the_check_finds_a_missing_or_wrong_chapter():
    fake = types.ModuleType("fake")

    def silent():
        """Does something."""

    def stale():
        """Explained in chapter 99 (book/ch99_missing.ipynb)."""

    def good():
        """Explained in chapters 2 and 4 (book/ch04_backprop.ipynb)."""

    for f in (silent, stale, good):
        f.__module__ = "fake"
        setattr(fake, f.__name__, f)
    assert _problems(fake) == (["silent"], ["stale: chapter 99", "stale: book/ch99_missing.ipynb"])
