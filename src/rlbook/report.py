"""What a page says about how it ran: budget, device, and the shared admonition.

Introduced in the chapter *How to run this book*.
"""

from __future__ import annotations

from typing import Any

import torch

from .budget import ENV_VAR, get_budget
from .device import device_banner

_BUDGET_MEANING = {
    "smoke": "a seconds-long smoke test that proves every cell runs; its numbers mean nothing",
    "ci": "the budget the published site and CI build with, sized for a 2-core CPU",
    "full": "the full run",
}


def run_header_markdown(device: torch.device, budget: str | None = None) -> str:
    """The admonition at the top of each chapter, as MyST Markdown."""
    budget = get_budget() if budget is None else budget
    gpu = "with a GPU" if device.type in ("cuda", "mps") else "without a GPU"
    return (
        ":::{note}\n"
        f"This page ran with budget **`{budget}`**: {_BUDGET_MEANING[budget]}. "
        f"It was built {gpu} ({device_banner(device)}); every cell runs either way. "
        f"Choose the budget with `{ENV_VAR}` (`smoke`, `ci` or `full`) before starting Jupyter "
        "or building the book.\n"
        ":::"
    )


def run_header(device: torch.device, budget: str | None = None) -> Any:
    """Display :func:`run_header_markdown` in a notebook."""
    from IPython.display import Markdown

    return Markdown(run_header_markdown(device, budget))
