"""The run's budget (``RLBOOK_BUDGET``): ``smoke`` (seconds; proves every cell
runs), ``ci`` (the site and CI, on a 2-core CPU) or ``full`` (long trainings
ship their results in ``artifacts/``). Introduced in *How to run this book*.
"""

from __future__ import annotations

import os
from typing import TypeVar

BUDGETS: tuple[str, ...] = ("smoke", "ci", "full")
"""The valid budget names, cheapest first."""

DEFAULT_BUDGET = "ci"
"""The budget used when ``RLBOOK_BUDGET`` is unset."""

ENV_VAR = "RLBOOK_BUDGET"

T = TypeVar("T")


class BudgetError(ValueError):
    """An unknown budget name."""


def validate_budget(name: str) -> str:
    """``name`` stripped and lower-cased, or a :class:`BudgetError` naming the
    valid budgets and how to set one."""
    normalised = name.strip().lower()
    if normalised not in BUDGETS:
        raise BudgetError(
            f"unknown budget {name!r}: valid budgets are {', '.join(BUDGETS)} "
            f"(set it with, for example, {ENV_VAR}=ci)"
        )
    return normalised


def get_budget() -> str:
    """The budget of this run: ``RLBOOK_BUDGET`` if set and non-empty, else ``ci``."""
    raw = os.environ.get(ENV_VAR, "")
    return validate_budget(raw) if raw.strip() else DEFAULT_BUDGET


def pick(*, smoke: T, ci: T, full: T, budget: str | None = None) -> T:
    """The value for ``budget`` (default: :func:`get_budget`)."""
    chosen = get_budget() if budget is None else validate_budget(budget)
    return {"smoke": smoke, "ci": ci, "full": full}[chosen]
