"""Execute chapters headless, outside the book build: the command for full runs.

    RLBOOK_BUDGET=full RLBOOK_EXPORT_ARTIFACTS=1 .venv/bin/python scripts/run_chapter.py \
        chapters/tabular_cartpole.md

runs each chapter given, in order, in a fresh kernel in the chapter's folder
(as the book build does), writes the executed notebook to
``_build/run_chapter/<name>.ipynb``, and stops at the first that fails.
``RLBOOK_EXPORT_ARTIFACTS=1`` makes chapters write their agents under
``artifacts/``; shipped results must come from committed code, so a tree with
uncommitted changes outside ``artifacts/`` is refused at once (exit status 2)
rather than when the chapter exports, at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

from rlbook.checkpoint import CheckpointError, require_clean_tree

ROOT = Path(__file__).resolve().parents[1]
EXPORT_ENV_VAR = "RLBOOK_EXPORT_ARTIFACTS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "chapters", type=Path, nargs="+", help="chapter .md files, run in this order"
    )
    args = parser.parse_args()
    chapters = [path.resolve() for path in args.chapters]
    for given, chapter in zip(args.chapters, chapters, strict=True):
        if not chapter.is_file():
            print(f"error: no chapter at {given}", file=sys.stderr)
            return 2
    if os.environ.get(EXPORT_ENV_VAR) == "1":
        try:
            require_clean_tree(ROOT)
        except CheckpointError as error:
            print(f"error: {EXPORT_ENV_VAR}=1: {error}", file=sys.stderr)
            return 2
    for chapter in chapters:
        notebook = jupytext.read(chapter)
        client = NotebookClient(
            notebook,
            timeout=6 * 3600,  # seconds per cell
            kernel_name="python3",
            resources={"metadata": {"path": str(chapter.parent)}},
        )
        start = time.perf_counter()
        client.execute()
        out = ROOT / "_build" / "run_chapter" / f"{chapter.stem}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, out)
        print(
            f"ran {chapter.name} in {time.perf_counter() - start:.1f} s; executed notebook: {out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
