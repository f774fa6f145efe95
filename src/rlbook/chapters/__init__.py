"""The chapters' own code, generated from their pages.

``rlbook.chapters.NAME`` is the cells of ``chapters/NAME.md`` tagged ``export``,
written by ``scripts/sync_notebooks.py`` (``tests/test_book.py`` fails while one
is stale). :func:`add_to_class` lets a page write a class a method per cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def add_to_class(cls: type) -> Callable[[T], T]:
    """Decorator: attach the function (or classmethod) below to ``cls``, replacing
    a method of that name, so that re-running an edited method's cell is enough."""

    def attach(member: T) -> T:
        function: Any = getattr(member, "__func__", member)
        setattr(cls, function.__name__, member)
        return member

    return attach
