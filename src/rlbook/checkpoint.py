"""Checkpoints: atomic writes, safe loads, and a provenance record beside each.

A checkpoint is a ``.pt`` file holding tensors and plain Python values only, so
it loads with ``torch.load(..., weights_only=True)``: loading never runs code
from the file. Beside ``NAME.pt`` lies ``NAME.provenance.json``: how the
weights were made (command, config, budget, device, wall time, git commit,
package versions, final score).

Introduced in the chapter *How to run this book*.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or not loadable safely."""


def atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``.

    A crash mid-write leaves the old file (or none), never half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(
            tmp_name, 0o644
        )  # mkstemp makes files private; these are meant to be shared
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def provenance_path(checkpoint: Path) -> Path:
    """``dir/NAME.pt`` -> ``dir/NAME.provenance.json``."""
    return checkpoint.with_name(checkpoint.stem + ".provenance.json")


def save_checkpoint(
    path: str | Path,
    state: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Atomically save ``state`` (tensors and plain values) and its provenance.

    Args:
        path: the ``.pt`` file to write.
        state: e.g. ``{"q_net": q_net.state_dict(), "step": 1000}``.
        provenance: a record from :func:`make_provenance`; written as JSON
            beside the checkpoint when given.
    """
    path = Path(path)
    atomic_write(path, lambda handle: torch.save(dict(state), handle))
    if provenance is not None:
        text = json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n"
        atomic_write(provenance_path(path), lambda handle: handle.write(text.encode()))
    return path


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint`, with ``weights_only=True``.

    Raises:
        CheckpointError: if the file is missing, truncated, corrupt, or holds
            objects other than tensors and plain values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist; train the model first or check the path"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for bad files
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or unsafe to load ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}); "
            "delete it and train again, or restore it from the repository"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict"
        )
    return state


def load_provenance(checkpoint: str | Path) -> dict[str, Any]:
    """Read the provenance record beside ``checkpoint``."""
    path = provenance_path(Path(checkpoint))
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError as error:
        raise CheckpointError(f"no provenance record at {str(path)!r}") from error
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"provenance record {str(path)!r} is not valid JSON: {error}"
        ) from error


class DirtyTreeError(CheckpointError):
    """Shipped results asked for from a tree with uncommitted changes."""


ARTIFACTS_FOLDER = "artifacts"
"""Changes here never make the tree dirty: a full run writes its artifacts one
after another, and the provenance records the code that made them."""

DIRTY_PATHS_SHOWN = 5  # how many changed paths an error message lists


def _git(args: list[str], root: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout


def _root(root: str | Path | None) -> Path:
    from .paths import repo_root

    return Path(root) if root is not None else repo_root()


def uncommitted_changes(root: str | Path | None = None) -> list[str]:
    """Paths that differ from the last commit, outside ``artifacts/``.

    Modified, staged, deleted and untracked files all count (``git status``);
    ignored ones (``.venv``, ``_build``) do not.

    Args:
        root: the repository; by default the book's (:func:`rlbook.paths.repo_root`).

    Raises:
        CheckpointError: if git cannot tell (no git, or not a repository).
    """
    folder = _root(root)
    try:
        status = _git(
            [
                "status",
                "--porcelain",
                "--untracked-files=normal",
                "--",
                ".",
                f":(exclude){ARTIFACTS_FOLDER}",
            ],
            folder,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise CheckpointError(
            f"cannot tell whether {str(folder)!r} has uncommitted changes: "
            f"{detail.strip().splitlines()[0] if detail.strip() else 'git failed'}"
        ) from error
    return [line[3:] for line in status.splitlines() if line.strip()]


def require_clean_tree(root: str | Path | None = None) -> None:
    """Raise :class:`DirtyTreeError` unless the tree outside ``artifacts/`` is clean.

    Shipped results must come from committed code, so that their provenance's
    ``git_commit`` is the code that made them.
    """
    changed = uncommitted_changes(root)
    if changed:
        shown = ", ".join(changed[:DIRTY_PATHS_SHOWN])
        more = len(changed) - DIRTY_PATHS_SHOWN
        if more > 0:
            shown += f" and {more} more"
        raise DirtyTreeError(
            f"refusing to export shipped results from a dirty tree: {len(changed)} "
            f"uncommitted change(s) outside {ARTIFACTS_FOLDER}/ ({shown}); "
            "commit or stash, then re-run the full-run command"
        )


def git_commit(root: str | Path | None = None) -> str:
    """The repository's current commit, or ``unknown`` where git cannot tell.

    ``+dirty`` is appended when the tree has uncommitted changes outside
    ``artifacts/`` (see :func:`uncommitted_changes`).
    """
    try:
        folder = _root(root)
        commit = _git(["rev-parse", "HEAD"], folder).strip()
        dirty = uncommitted_changes(folder)
    except (OSError, subprocess.CalledProcessError, CheckpointError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


PROVENANCE_PACKAGES = ("torch", "gymnasium", "ale-py", "numpy")


def package_versions(names: tuple[str, ...] = PROVENANCE_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``"not installed"`` where missing)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def make_provenance(
    *,
    command: str,
    config: Any,
    budget: str,
    device: str | torch.device,
    wall_time_s: float,
    score: Mapping[str, Any] | None = None,
    require_clean: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A provenance record: everything needed to say where a result came from.

    Args:
        command: the one command that reproduces the run.
        config: the run's config (a dataclass or a mapping).
        budget: the budget it ran with.
        device: where it trained.
        wall_time_s: training wall time in seconds.
        score: the final evaluation (e.g. mean and std of return).
        require_clean: refuse a tree with uncommitted changes outside
            ``artifacts/``; pass ``True`` when writing shipped results.
        **extra: anything else worth recording.

    Raises:
        DirtyTreeError: with ``require_clean``, if the tree is dirty (the
            message lists what changed); CheckpointError if git cannot tell.
    """
    if require_clean:
        require_clean_tree()
    is_record = is_dataclass(config) and not isinstance(config, type)
    config_dict = asdict(config) if is_record else dict(config)
    return {
        "command": command,
        "config": config_dict,
        "budget": budget,
        "device": str(device),
        "device_detail": _device_detail(torch.device(device)),
        "wall_time_s": round(float(wall_time_s), 2),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "platform": f"{platform.system()} {platform.machine()}, python {sys.version.split()[0]}",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "score": dict(score) if score is not None else None,
        **extra,
    }


def _device_detail(device: torch.device) -> str:
    from .device import device_banner

    return device_banner(device)


def reproduction_mismatch(provenance: Mapping[str, Any], device: torch.device) -> list[str]:
    """Why this machine cannot be expected to retrain a shipped result bit for bit.

    Training is deterministic for the same code, config, package versions and
    kind of device, and on a CPU for the same instruction set torch dispatches
    to (AVX2 and AVX-512 kernels round differently). Returns one line per
    difference from ``provenance``; empty when a bit-for-bit comparison is fair.
    A provenance record written before ``cpu_capability`` was recorded is
    compared on the rest.
    """
    reasons = []
    shipped_type = str(provenance.get("device", "")).split(":")[0]
    if shipped_type != device.type:
        reasons.append(f"device {device.type}, shipped on {shipped_type or 'unknown'}")
    here = package_versions()
    for name, version in provenance.get("packages", {}).items():
        if here.get(name) != version:
            reasons.append(f"{name} {here.get(name, 'not installed')}, shipped with {version}")
    recorded = provenance.get("cpu_capability")
    capability = torch.backends.cpu.get_cpu_capability()
    if device.type == "cpu" and recorded is not None and recorded != capability:
        reasons.append(f"CPU kernels {capability}, shipped with {recorded}")
    return reasons
