"""Where things live: the repository, shipped artifacts, and datasets.

Introduced in the chapter *How to run this book*.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "RLBOOK_DATA"


def repo_root() -> Path:
    """The folder holding ``_config.yml``: above this file (an editable install),
    else the working directory or a parent."""
    candidates = [Path(__file__).resolve().parents[2], *Path.cwd().resolve().parents]
    candidates.insert(1, Path.cwd().resolve())
    for folder in candidates:
        if (folder / "_config.yml").is_file() and (folder / "src" / "rlbook").is_dir():
            return folder
    raise FileNotFoundError(
        "cannot find the book's repository root (a folder with _config.yml and src/rlbook); "
        "run from inside a clone of the repository"
    )


def artifacts_dir() -> Path:
    """``<repo>/artifacts``: full-run results shipped with the book."""
    return repo_root() / "artifacts"


def data_dir() -> Path:
    """``$RLBOOK_DATA`` if set, else ``<repo>/data`` (it may not exist yet)."""
    override = os.environ.get(DATA_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    return repo_root() / "data"
