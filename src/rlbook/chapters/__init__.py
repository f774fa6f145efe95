"""The chapters' own code, generated from their pages.

``rlbook.chapters.NAME`` is every code cell of ``chapters/NAME.md`` tagged
``export``, in page order, written by ``scripts/sync_notebooks.py``. The page
is the one source: edit the cell, run the script, and ``tests/test_book.py``
fails while a generated module is stale. Scripts, benchmarks and tests import
a chapter's algorithm from here; the page itself runs its own cells.

:func:`add_to_class` lets a page write a class over several cells, a method
per cell with prose between them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def add_to_class(cls: type) -> Callable[[T], T]:
    """Decorator: attach the function (or classmethod) below to ``cls``.

    A cell that redefines a method with it replaces the method of the class
    the page already built, so editing a method and re-running its cell and
    the training cell is enough.
    """

    def attach(member: T) -> T:
        function: Any = getattr(member, "__func__", member)
        setattr(cls, function.__name__, member)
        return member

    return attach
