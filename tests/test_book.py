"""The book's structure: table of contents, Colab cells, citations."""

import re
from pathlib import Path

import pytest
import yaml

from rlbook.paths import repo_root

from .scripts import load_script

ROOT = repo_root()
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def notebook_chapters() -> list[Path]:
    return [
        ROOT / f"{f}.md"
        for f in toc_files()
        if "jupytext:" in (ROOT / f"{f}.md").read_text()
    ]


def test_every_toc_entry_exists():
    for name in toc_files():
        assert (ROOT / f"{name}.md").is_file(), name


def test_every_chapter_is_in_the_toc():
    listed = {f"{f}.md" for f in toc_files()}
    for path in (ROOT / "chapters").glob("*.md"):
        assert str(path.relative_to(ROOT)) in listed, path


def first_code_cell(path: Path) -> str:
    import jupytext

    return next(c["source"] for c in jupytext.read(path).cells if c["cell_type"] == "code")


def test_colab_cells_are_one_cell_with_the_configured_repository():
    url = CONFIG["repository"]["url"]
    chapters = notebook_chapters()
    assert chapters
    cell = first_code_cell(ROOT / "chapters" / "running.md")
    assert re.findall(r'BOOK_URL = "(\S+)"', cell) == [url], (
        f"the Colab cell must clone {url}, the repository in _config.yml"
    )
    for path in chapters:
        assert first_code_cell(path) == cell, (
            f"{path.name}: the first code cell must be the Colab setup cell of "
            "chapters/running.md, word for word"
        )


def test_chapters_run_without_myst_nb():
    """Colab has no MyST-NB: chapters glue through rlbook.report.glue."""
    for path in notebook_chapters():
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) myst_nb", text, re.M), (
            f"{path.name} imports myst_nb; use `from rlbook.report import glue`"
        )
        assert "sys.path.insert" not in text, f"{path.name} patches sys.path"


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;#]+)", line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def colab_extra() -> list:
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = project.get("optional-dependencies", {}).get("colab", [])
    assert extra, "pyproject.toml lacks the colab extra the Colab cell installs"
    return [Requirement(line) for line in extra]


def test_colab_extra_admits_the_book_pins():
    pinned = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for requirement in colab_extra():
        name = requirement.name.lower()
        assert "torch" not in name, "the colab extra must never (re)install torch"
        assert not requirement.extras, (
            f"{requirement}: an extra pulls in packages Colab may lack or have under "
            "another name (gymnasium[classic-control] adds pygame-ce beside Colab's pygame)"
        )
        assert name in pinned, f"{name} is in the colab extra but not pinned in requirements.txt"
        assert requirement.specifier.contains(pinned[name]), (
            f"requirements.txt pins {name}=={pinned[name]}, outside the colab extra's "
            f"{requirement.specifier}"
        )


def test_colab_extra_admits_what_colab_ships():
    freeze = ROOT.parent / "shared" / "colab" / "pip-freeze.txt"
    if not freeze.is_file():
        pytest.skip(f"Colab's package list is not beside the repository ({freeze})")
    colab = _pins(freeze.read_text().splitlines())
    for requirement in colab_extra():
        name = requirement.name.lower()
        assert name in colab and requirement.specifier.contains(colab[name]), (
            f"Colab ships {name} {colab.get(name, '(none)')}, outside the colab "
            f"extra's {requirement.specifier}: pip would change Colab's install"
        )


def test_colab_notebook_twins_match_their_chapters():
    import jupytext

    for path in notebook_chapters():
        twin = path.with_suffix(".ipynb")
        assert twin.is_file(), f"run scripts/sync_notebooks.py to create {twin.name}"
        source = [c["source"] for c in jupytext.read(path).cells]
        assert [c["source"] for c in jupytext.read(twin).cells] == source, (
            f"{twin.name} is stale: run scripts/sync_notebooks.py"
        )


def _sync_notebooks():
    return load_script("scripts/sync_notebooks.py")


def test_generated_chapter_modules_match_their_pages():
    sync = _sync_notebooks()
    pages = {path.stem: sync.exported_module(path) for path in notebook_chapters()}
    generated = {p.stem for p in sync.MODULES.glob("*.py") if p.stem != "__init__"}
    exporting = {name for name, text in pages.items() if text is not None}
    assert generated == exporting, (
        f"generated modules {sorted(generated)} but pages with export cells "
        f"{sorted(exporting)}: run scripts/sync_notebooks.py"
    )
    for name in exporting:
        module = sync.MODULES / f"{name}.py"
        assert module.read_text() == pages[name], (
            f"{module.relative_to(ROOT)} is stale against chapters/{name}.md: "
            "run scripts/sync_notebooks.py"
        )


def test_every_citation_is_in_references_bib():
    keys = set(re.findall(r"@\w+\{([^,]+),", (ROOT / "references.bib").read_text()))
    for name in toc_files():
        text = (ROOT / f"{name}.md").read_text()
        for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", text):
            for key in group.split(","):
                assert key.strip() in keys, f"{name}: unknown citation {key}"


def test_cells_that_draw_are_folded():
    """The rule in CONTRIBUTING.md: a cell that draws a figure or an animation
    is plumbing, tagged hide-input (its output stays visible)."""
    import jupytext

    draws = re.compile(r"plt\.subplots\(|plt\.figure\(|\banimate\(")
    for path in notebook_chapters():
        for cell in jupytext.read(path).cells:
            if cell["cell_type"] == "code" and draws.search(cell["source"]):
                tags = cell["metadata"].get("tags", [])
                first = cell["source"].strip().splitlines()[0]
                assert "hide-input" in tags, (
                    f"{path.name}: the cell starting {first!r} draws; tag it hide-input"
                )


CODE_COLUMNS = 74
"""What fits in the site's code blocks at 1280 px, folded cells included
(.ci/check_site.py checks the rendered page); ruff's 88 columns do not."""


def test_code_cells_fit_the_page():
    import jupytext

    for path in notebook_chapters():
        for cell in jupytext.read(path).cells:
            if cell["cell_type"] != "code":
                continue
            for line in cell["source"].splitlines():
                assert len(line) <= CODE_COLUMNS, (
                    f"{path.name}: a code line of {len(line)} columns scrolls sideways on "
                    f"the page; keep code cells to {CODE_COLUMNS}: {line.strip()[:60]!r}"
                )


def test_exercises_share_one_style():
    """Each exercise is a `tip` admonition titled 'Exercise N: ...', numbered
    from 1, and its solution a `Solution` admonition folded as a dropdown
    (CONTRIBUTING.md)."""
    for path in notebook_chapters():
        text = path.read_text()
        if "## Exercises" not in text:
            continue
        section = text.split("## Exercises", 1)[1].split("\n## ", 1)[0]
        numbers = [
            int(n)
            for n in re.findall(r"\{admonition\} Exercise (\d+): \S.*\n:class: tip\n", section)
        ]
        assert numbers == list(range(1, len(numbers) + 1)) and numbers, path.name
        solutions = re.findall(r"\{admonition\} Solution\n:class: dropdown\n", section)
        assert len(solutions) == len(numbers), (
            f"{path.name}: {len(numbers)} exercises, {len(solutions)} solution dropdowns"
        )


def test_chapters_show_progress_through_rlbook_not_tqdm():
    # tqdm's bars write to stderr, an error output on a built page;
    # rlbook.report.progress draws nothing in the build.
    for path in notebook_chapters():
        text = path.read_text()
        assert "import tqdm" not in text and "from tqdm" not in text, path.name
