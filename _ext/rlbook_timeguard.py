"""Sphinx extension: each chapter's execution time against its declared CI budget.

Every notebook chapter declares, in its front matter, how long it may take to
execute at the ``ci`` budget::

    rlbook:
      ci_seconds: 180

When the build finishes, this extension writes every executed chapter's run
time to ``_build/chapter_times.json`` and logs one line per chapter. At the
``ci`` budget, a chapter that ran more than ``TOLERANCE`` times its declared
``ci_seconds``, or a notebook chapter that declares none, is a warning naming
the chapter, and the book's strict build (``-W``) fails on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from sphinx.application import Sphinx
from sphinx.util import logging

TOLERANCE = 1.5
"""A chapter fails the CI build past this multiple of its declared budget."""

logger = logging.getLogger(__name__)


def declared(source: Path) -> dict[str, Any]:
    """The ``rlbook`` mapping of a chapter's YAML front matter ({} if none)."""
    text = source.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    front = yaml.safe_load(text[4:end]) if end > 0 else None
    block = (front or {}).get("rlbook") or {}
    return block if isinstance(block, dict) else {}


def check_times(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None:
        return
    from myst_nb.sphinx_ import NbMetadataCollector

    from rlbook.budget import get_budget

    budget = get_budget()
    rows = {}
    for docname, data in sorted(NbMetadataCollector.get_doc_data(app.env).items()):
        exec_data = data.get("exec_data")
        if not exec_data or exec_data.get("runtime") is None:
            continue
        source = Path(app.env.doc2path(docname))
        ci_seconds = declared(source).get("ci_seconds")
        runtime = float(exec_data["runtime"])
        rows[docname] = {
            "seconds": round(runtime, 1),
            "ci_seconds": ci_seconds,
            "method": exec_data.get("method"),
            "budget": budget,
        }
        limit = f"{ci_seconds} s declared" if ci_seconds else "no budget declared"
        logger.info(f"[rlbook] {docname}: executed in {runtime:.1f} s ({limit})")
        if budget != "ci":
            continue
        if not isinstance(ci_seconds, (int, float)) or ci_seconds <= 0:
            logger.warning(
                f"{docname} declares no CI execution budget: add `rlbook: ci_seconds: N` "
                f"to the front matter of {source.name}",
                location=docname,
            )
        elif runtime > TOLERANCE * ci_seconds:
            logger.warning(
                f"{docname} took {runtime:.0f} s to execute at the ci budget, more than "
                f"{TOLERANCE:g} x its declared ci_seconds: {ci_seconds}; make it faster "
                "or raise the budget in its front matter (and check the whole CI run "
                "stays under 60 minutes)",
                location=docname,
            )
    out = Path(app.outdir).parent / "chapter_times.json"
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("build-finished", check_times)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
