"""Write each chapter's Colab twin: chapters/NAME.md -> chapters/NAME.ipynb (no outputs).

Colab opens .ipynb files only, so the launch button points at these twins; the
.md file is the source of truth, and tests/test_book.py fails when a twin is stale.
"""

from __future__ import annotations

from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        if "jupytext:" not in chapter.read_text():
            continue  # a plain page, not a notebook
        notebook = jupytext.read(chapter)
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"cell-{index:03d}"  # stable ids: no churn in git
        jupytext.write(notebook, chapter.with_suffix(".ipynb"))
        print(f"wrote {chapter.with_suffix('.ipynb').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
