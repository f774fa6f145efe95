"""Load a file of the checkout that is not in a package (a script under
``scripts/``, ``.ci/`` or ``_ext/``) as a module, the one way tests do it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
"""The checkout these tests belong to (not the installed package's)."""


def load_script(relative: str, name: str | None = None) -> ModuleType:
    """Execute ``ROOT / relative`` as a fresh module called ``name``.

    ``name`` defaults to the file's stem. The module is put in ``sys.modules``
    before it runs, because dataclasses look their module up there; loading
    the same file again runs it anew and replaces that entry.
    """
    path = ROOT / relative
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
