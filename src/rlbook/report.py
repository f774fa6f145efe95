"""What a page says about how it ran: budget, device, and the shared admonition.
Introduced in the chapter *How to run this book*."""

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


def glue(name: str, value: Any, display: bool = True) -> None:
    """MyST-NB's ``glue`` in the book's build. Without MyST-NB (Colab) nothing
    reads glued values, so they are shown: a number or text glued with
    ``display=False`` as a ``name = value`` line, anything else as it is."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab: no MyST-NB
        myst_glue = None
    if myst_glue is not None:
        myst_glue(name, value, display=display)
        return
    from IPython.display import display as show

    if not display and isinstance(value, (bool, int, float, str)):
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"{name} = {shown}")
    else:
        show(value)


BUILD_ENV_VAR = "RLBOOK_BUILDING"
"""Set to ``1`` by ``scripts/build.sh``: the book's build runs the notebooks."""


def glue_anchors(*keys: str) -> dict[str, dict[str, Any]]:
    """Glue each number of entry ``key`` of ``anchors.json`` (published results) as
    ``{key}_{name}``, not displayed; return the entries, sources and quotes included."""

    import json

    from .paths import repo_root

    entries = json.loads((repo_root() / "anchors.json").read_text())
    for key in keys:
        for name, value in entries[key]["numbers"].items():
            glue(f"{key}_{name}", value, display=False)
    return {key: entries[key] for key in keys}


def progress(
    iterable: Any = None, *, total: int | None = None, desc: str | None = None
) -> Any:
    """A bar used as ``tqdm``: the notebook widget where ipywidgets is, else the
    text bar; in the book's build (``RLBOOK_BUILDING=1``) one that draws
    nothing, since its text on stderr would be an error output on the page."""
    import os
    from importlib.util import find_spec

    building = os.environ.get(BUILD_ENV_VAR) == "1"
    if building or find_spec("ipywidgets") is None:
        # tqdm.auto warns on stderr when ipywidgets is missing: avoid it.
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, disable=building)
