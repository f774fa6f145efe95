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


def test_add_to_class_attaches_methods_and_classmethods_a_cell_apart():
    from rlbook.chapters import add_to_class

    class Run:
        def __init__(self, x: int) -> None:
            self.x = x

    @add_to_class(Run)
    def double(self) -> int:
        return 2 * self.x

    @add_to_class(Run)
    @classmethod
    def from_half(cls, half: int) -> "Run":
        return cls(2 * half)

    assert Run(3).double() == 6 and Run.from_half(2).x == 4

    @add_to_class(Run)
    def double(self) -> int:  # noqa: F811  re-running an edited cell replaces it
        return 3 * self.x

    assert Run(3).double() == 9


def test_generated_modules_are_importable_and_say_where_they_come_from():
    for path in sorted((PACKAGE / "chapters").glob("*.py")):
        if path.stem == "__init__":
            continue
        module = importlib.import_module(f"rlbook.chapters.{path.stem}")
        assert f"Generated from chapters/{path.stem}.md" in (module.__doc__ or "")
