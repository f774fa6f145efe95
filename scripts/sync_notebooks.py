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

from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "src" / "rlbook" / "chapters"


def exported_module(chapter: Path) -> str | None:
    """The text of ``rlbook.chapters.NAME`` for ``chapter``, or ``None`` when no
    cell of it is tagged ``export``."""
    cells = [
        cell.source.strip("\n")
        for cell in jupytext.read(chapter).cells
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


def main() -> None:
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        if "jupytext:" not in chapter.read_text():
            continue  # a plain page, not a notebook
        notebook = jupytext.read(chapter)
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"cell-{index:03d}"  # stable ids: no churn in git
        jupytext.write(notebook, chapter.with_suffix(".ipynb"))
        print(f"wrote {chapter.with_suffix('.ipynb').relative_to(ROOT)}")
        module = MODULES / f"{chapter.stem}.py"
        text = exported_module(chapter)
        if text is not None:
            module.write_text(text)
            print(f"wrote {module.relative_to(ROOT)}")
        elif module.exists():
            module.unlink()
            print(f"removed {module.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
