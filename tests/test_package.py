"""The package's map (``rlbook/__init__.py``) against the modules it holds."""

import importlib
import re
from pathlib import Path

import rlbook

PACKAGE = Path(rlbook.__file__).parent


def modules_in_the_tree() -> set[str]:
    files = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__")}
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return files | folders


def test_the_module_map_lists_every_module_and_no_other():
    in_tree = modules_in_the_tree()
    in_map = set(re.findall(r"``rlbook\.(\w+)``", rlbook.__doc__ or ""))
    assert in_map == in_tree, (sorted(in_tree - in_map), sorted(in_map - in_tree))
    assert rlbook._SUBMODULES == in_tree


def test_every_module_is_reached_lazily_from_the_package():
    for name in sorted(modules_in_the_tree()):
        assert getattr(rlbook, name) is importlib.import_module(f"rlbook.{name}")
