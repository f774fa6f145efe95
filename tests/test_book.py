"""The book's structure: table of contents, Colab cells, citations."""

import re
from pathlib import Path

import yaml

from rlbook.paths import repo_root

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


def test_colab_cells_use_the_configured_repository():
    url = CONFIG["repository"]["url"]
    chapters = notebook_chapters()
    assert chapters
    for path in chapters:
        text = path.read_text()
        assert "google.colab" in text, f"{path.name} lacks the Colab setup cell"
        clones = re.findall(r"git clone -q (\S+)", text)
        assert clones == [url], f"{path.name} clones {clones}, _config.yml says {url}"


def test_colab_notebook_twins_match_their_chapters():
    import jupytext

    for path in notebook_chapters():
        twin = path.with_suffix(".ipynb")
        assert twin.is_file(), f"run scripts/sync_notebooks.py to create {twin.name}"
        source = [c["source"] for c in jupytext.read(path).cells]
        assert [c["source"] for c in jupytext.read(twin).cells] == source, (
            f"{twin.name} is stale: run scripts/sync_notebooks.py"
        )


def test_every_citation_is_in_references_bib():
    keys = set(re.findall(r"@\w+\{([^,]+),", (ROOT / "references.bib").read_text()))
    for name in toc_files():
        text = (ROOT / f"{name}.md").read_text()
        for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", text):
            for key in group.split(","):
                assert key.strip() in keys, f"{name}: unknown citation {key}"


# Code a chapter writes in its cells and the helper package keeps a copy of
# (d2l's "saved" functions): chapter -> {module: [names]}.
SAVED = {
    "chapters/dqn_state.md": {
        "rlbook.dqn": ["td_loss"],
        "rlbook.cartpole_dqn": [
            "DQNConfig",
            "epsilon_at",
            "make_buffer",
            "update",
            "train_dqn",
        ],
    },
}


def chapter_definitions(path: Path) -> dict[str, str]:
    """Top-level functions and classes of a chapter's code cells, as ``ast.dump``."""
    import ast

    import jupytext

    found = {}
    for cell in jupytext.read(path).cells:
        if cell["cell_type"] != "code":
            continue
        # IPython magics and shell escapes are not Python.
        lines = [
            line
            for line in cell["source"].splitlines()
            if not line.lstrip().startswith(("%", "!"))
        ]
        for node in ast.parse("\n".join(lines)).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                found[node.name] = ast.dump(node)
    return found


def test_chapter_code_and_its_saved_copy_are_the_same_code():
    import ast
    import importlib
    import inspect

    for chapter, modules in SAVED.items():
        defined = chapter_definitions(ROOT / chapter)
        for module_name, names in modules.items():
            module = importlib.import_module(module_name)
            for name in names:
                assert name in defined, f"{chapter} no longer defines {name}"
                saved = ast.dump(ast.parse(inspect.getsource(getattr(module, name))).body[0])
                assert defined[name] == saved, (
                    f"{chapter}'s {name} differs from {module_name}.{name}: "
                    "change both, or neither"
                )
