"""Write what each chapter page generates: its Colab twin and its module.

* chapters/NAME.md -> chapters/NAME.ipynb (no outputs). Colab opens .ipynb
  files only, so the launch button points at these twins.
* chapters/NAME.md -> src/rlbook/chapters/NAME.py: the page's code cells
  tagged ``export``, in page order, for the full-run scripts, benchmarks and
  tests (see :mod:`rlbook.chapters`). A page without such cells has none.

The .md file is the source of truth; tests/test_book.py fails when a twin or
a module is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "src" / "rlbook" / "chapters"


def exported_module(chapter: Path, notebook=None) -> str | None:
    """The text of ``rlbook.chapters.NAME`` for ``chapter`` (read from
    ``notebook`` when given, the page already read), or ``None`` when no cell
    of it is tagged ``export``."""
    notebook = notebook if notebook is not None else jupytext.read(chapter)
    cells = [
        cell.source.strip("\n")
        for cell in notebook.cells
        if cell.cell_type == "code" and "export" in cell.metadata.get("tags", [])
    ]
    if not cells:
        return None
    page = chapter.relative_to(ROOT).as_posix()
    header = (
        f'"""Generated from {page} by scripts/sync_notebooks.py: do not edit.\n\n'
        f"The page's code cells tagged ``export``, in page order. Edit them on the\n"
        f'page, then run scripts/sync_notebooks.py.\n"""'
    )
    return header + "\n\n" + "\n\n\n".join(cells) + "\n"


def compact_notebook(notebook: dict) -> str:
    """The notebook as JSON without indentation, one cell a line: 100 KB
    less over the twins than nbformat's indented layout (the tracked tree is
    near its 40 MB cap), and a changed cell is still a one-line diff."""

    def dump(value: object) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    rest = {k: v for k, v in notebook.items() if k != "cells"}
    cells = ",\n".join(dump(cell) for cell in notebook["cells"])
    return '{"cells":[\n' + cells + "\n]," + dump(rest)[1:] + "\n"


def main() -> None:
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        text = chapter.read_text()
        if "jupytext:" not in text:
            continue  # a plain page, not a notebook
        notebook = jupytext.reads(text, fmt="md:myst")
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"cell-{index:03d}"  # stable ids: no churn in git
        twin = json.loads(jupytext.writes(notebook, fmt="ipynb"))
        chapter.with_suffix(".ipynb").write_text(compact_notebook(twin))
        print(f"wrote {chapter.with_suffix('.ipynb').relative_to(ROOT)}")
        module = MODULES / f"{chapter.stem}.py"
        generated = exported_module(chapter, notebook)
        if generated is not None:
            module.write_text(generated)
            print(f"wrote {module.relative_to(ROOT)}")
        elif module.exists():
            module.unlink()
            print(f"removed {module.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
