"""One run per runs folder: two runs would resume from, and overwrite, each
other's checkpoints. The system drops the ``flock`` on ``<folder>/.lock``
when the process ends, however it ends, so a killed run leaves no stale lock.
"""

from __future__ import annotations

import fcntl  # Linux and macOS, where the book runs
import os
from pathlib import Path

LOCK_FILE = ".lock"
_held: dict[Path, int] = {}  # folder -> the open lock file, kept for the process


class RunsFolderBusy(RuntimeError):
    """Another process is running in the same runs folder."""


def hold_runs_folder(folder: str | Path) -> Path:
    """Lock ``folder`` (created if need be) for this process, or raise
    :class:`RunsFolderBusy` naming the process that holds it."""
    folder = Path(folder).resolve()
    if folder in _held:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        try:
            owner = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise RunsFolderBusy(
            f"another run (process {owner}) is using the runs folder {str(folder)!r}; "
            "wait for it to finish or stop it, or give this run another --runs folder"
        ) from error
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[folder] = fd
    return folder
