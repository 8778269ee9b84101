"""No number in the prose may drift from the computation or record that produced it.

A thin caller of the prose check, ``python -m tools.prose_check`` (its rules and settings:
``tools/prose_check.py``, ``book/_prose_check.yml``, CONTRIBUTING.md "Numbers in prose"); the tests
that show the check can fail are in tests/test_prose_check.py.
"""

from __future__ import annotations

import pytest

from tools import prose_check as pc

SETTINGS = pc.load_settings()
IN_BOOK = pc.book_pages()


def _id(path) -> str:
    return pc.where_of(path)


@pytest.mark.parametrize("path", pc.pages(), ids=_id)
def test_page_agrees_with_its_sources(path):
    problems = pc.check_page(path, SETTINGS, IN_BOOK)
    assert not problems, "\n".join(problems)


def test_settings_name_what_exists():
    problems = pc.check_settings(SETTINGS)
    assert not problems, "\n".join(problems)


def test_every_strict_page_is_checked():
    checked = {pc.where_of(p) for p in pc.pages()}
    assert set(SETTINGS.strict) <= checked, set(SETTINGS.strict) - checked


@pytest.mark.parametrize("chapter", SETTINGS.bookkeeping_chapters, ids=str)
def test_bookkeeping_stays_out_of_sight(chapter):
    """Glue calls, record look-ups and nbval comments: at most 5% of the code a reader sees."""
    kept, total = pc.bookkeeping(pc.REPO / chapter)
    assert total > 0, f"{chapter}: no visible code"
    assert kept / total <= SETTINGS.bookkeeping_max_share, (
        f"{chapter}: {kept} of {total} visible code lines are bookkeeping ({kept / total:.1%})")
