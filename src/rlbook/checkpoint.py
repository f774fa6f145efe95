"""Checkpoints: atomic writes, loads with ``weights_only=True`` (loading never runs
code from the file), and a provenance record beside each. Introduced in *How to
run this book*."""

from __future__ import annotations

import json
import os
import pickle
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or not loadable safely."""


def atomic_write(path: Path, write: Any) -> None:
    """Write through ``.NAME.<pid>-<random>.tmp`` in the same folder, then rename
    over ``path``: a crash leaves the old file (or none), never half a file. A
    temporary file left by a killed writer is removed by the next write to
    ``path`` once no live process of that id can own it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes files private; these are shared
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


# A temporary file without a writer's id (from before ids were recorded) is
# stale once untouched this long.
STALE_UNOWNED_SECONDS = 3600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is another user's
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``.NAME.*.tmp`` files beside ``path`` whose writer is gone."""
    prefix = f".{path.name}."
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        # .NAME.<pid>-<random>.tmp, or .NAME.<random>.tmp from before ids were kept
        # (a longer name, such as another file's .NAME.gz.*.tmp, is not ours)
        match = re.fullmatch(r"(?:(\d+)-)?[a-z0-9_]+\.tmp", entry.name[len(prefix) :])
        if match is None:
            continue
        owner = match[1]
        try:
            if owner is not None:
                if int(owner) == os.getpid() or _pid_alive(int(owner)):
                    continue
            elif time.time() - entry.stat(follow_symlinks=False).st_mtime < (
                STALE_UNOWNED_SECONDS
            ):
                continue
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
        except OSError:
            continue  # another writer's cleanup got there first, or no permission


def one_line(error: BaseException) -> str:
    """``error``'s whole message on one line (torch's size mismatches span several)."""
    return " ".join(str(error).split())


# How torch's message begins when weights_only=True refuses a file, pickled
# objects and damaged bytes alike (then advises loading it unsafely).
REFUSED = "Weights only load failed"


def refusal(error: BaseException | None) -> BaseException | None:
    """torch's refusal among ``error`` and its causes, or None."""
    while error is not None:
        if isinstance(error, pickle.UnpicklingError) and REFUSED in str(error):
            return error
        error = error.__cause__
    return None


def load_failure(path: str | Path, error: BaseException, remedy: str) -> str:
    """One line on why ``path`` did not load: ``error``'s own message, or, where
    torch refused the file, what it is (never torch's advice to load it anyway)."""
    refused = refusal(error)
    if refused is not None and "Unsupported global" in str(refused):
        return (
            f"{str(path)!r} is not plain weights: it holds pickled Python objects, "
            "which only code could rebuild, so it was not loaded and nothing in it ran; "
            "rlbook never writes such a file, so it did not come from this book's "
            f"training or export. {remedy}"
        )
    if refused is not None:
        return (
            f"{str(path)!r} is corrupt or not a weights file: it does not read as "
            f"tensors and plain values, so it was not loaded. {remedy}"
        )
    return one_line(error)


def provenance_path(checkpoint: Path) -> Path:
    """``dir/NAME.pt`` -> ``dir/NAME.provenance.json``."""
    return checkpoint.with_name(checkpoint.stem + ".provenance.json")


def save_checkpoint(
    path: str | Path,
    state: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Atomically write ``state`` (tensors and plain values) to ``path`` and
    ``provenance`` (:func:`make_provenance`), if given, beside it as JSON."""
    path = Path(path)
    atomic_write(path, lambda handle: torch.save(dict(state), handle))
    if provenance is not None:
        text = json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n"
        atomic_write(provenance_path(path), lambda handle: handle.write(text.encode()))
    return path


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    *,
    remedy: str = "Delete it and train again, or restore it from the repository.",
) -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint`, with ``weights_only=True``;
    :class:`CheckpointError` for a missing, corrupt or unsafe file, ending with
    ``remedy`` where torch refused it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist; train the model first or check the path"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for bad files
        raise CheckpointError(
            "checkpoint " + load_failure(path, error, remedy)
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


# Changes here never make the tree dirty: a full run writes its artifacts one
# after another, and the provenance records the code that made them.
ARTIFACTS_FOLDER = "artifacts"

DIRTY_PATHS_SHOWN = 5  # how many changed paths an error message lists


def _git(args: list[str], root: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout


def _root(root: str | Path | None) -> Path:
    from .paths import repo_root

    return Path(root) if root is not None else repo_root()


def uncommitted_changes(root: str | Path | None = None) -> list[str]:
    """Paths that differ from the last commit outside ``artifacts/``, untracked
    included, ignored not (``git status``); :class:`CheckpointError` where git
    cannot tell. ``root``: the repository, by default the book's."""
    folder = _root(root)
    try:
        args = ["status", "--porcelain", "--untracked-files=normal", "--", "."]
        status = _git([*args, f":(exclude){ARTIFACTS_FOLDER}"], folder)
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise CheckpointError(
            f"cannot tell whether {str(folder)!r} has uncommitted changes: "
            f"{detail.strip().splitlines()[0] if detail.strip() else 'git failed'}"
        ) from error
    return [line[3:] for line in status.splitlines() if line.strip()]


def require_clean_tree(root: str | Path | None = None) -> None:
    """Raise :class:`DirtyTreeError` unless the tree outside ``artifacts/`` is clean:
    a shipped result's recorded ``git_commit`` must be the code that made it."""
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
    """The current commit (``+dirty`` with uncommitted changes outside ``artifacts/``),
    or ``unknown`` where git cannot tell. A copy of the tree whose history is missing
    or stale (a lent GPU machine gets one) names its commit in ``$RLBOOK_GIT_COMMIT``:
    where git there cannot confirm it, it is recorded as ``<commit>+declared``."""
    declared = os.environ.get("RLBOOK_GIT_COMMIT", "").strip()
    try:
        folder = _root(root)
        commit = _git(["rev-parse", "HEAD"], folder).strip()
        dirty = uncommitted_changes(folder)
    except (OSError, subprocess.CalledProcessError, CheckpointError):
        return f"{declared}+declared" if declared else "unknown"
    if declared and declared != commit:
        return f"{declared}+declared"
    return commit + ("+dirty" if dirty else "")


PROVENANCE_PACKAGES = ("torch", "gymnasium", "ale-py", "numpy")


def package_versions() -> dict[str, str]:
    """Python's and :data:`PROVENANCE_PACKAGES`' versions."""
    versions = {"python": platform.python_version()}
    for name in PROVENANCE_PACKAGES:
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
    root: str | Path | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A provenance record: command, config, budget, device, wall time, commit,
    package versions, machine fingerprint, score, and ``**extra``.
    ``require_clean=True`` (shipped results) raises :class:`DirtyTreeError` for
    a dirty tree. ``root``: the checkout whose commit is recorded (a script
    passes its own; the installed ``rlbook`` may be another clone's)."""
    if "git_commit" in extra:
        raise TypeError(
            "make_provenance records the commit of its root: pass root=, the "
            "checkout that made the result, not git_commit="
        )
    from .device import device_banner

    if require_clean:
        require_clean_tree(root)
    is_record = is_dataclass(config) and not isinstance(config, type)
    config_dict = asdict(config) if is_record else dict(config)
    return {
        "command": command,
        "config": config_dict,
        "budget": budget,
        "device": str(device),
        "device_detail": device_banner(torch.device(device)),
        "wall_time_s": round(float(wall_time_s), 2),
        "git_commit": git_commit(root),
        "packages": package_versions(),
        "platform": f"{platform.system()} {platform.machine()}, python {sys.version.split()[0]}",
        "machine": machine_fingerprint(),
        "score": dict(score) if score is not None else None,
        **extra,
    }


# CPU flags that change which kernels torch and its math libraries run
KERNEL_FLAGS = tuple(
    "avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16 "
    "amx_tile amx_bf16 amx_int8".split()
)


def cpuinfo() -> dict[str, str]:
    """The first processor's fields from ``/proc/cpuinfo`` ({} where absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def machine_fingerprint() -> dict[str, Any]:
    """What decides whether two machines train the same bits: MKL and oneDNN
    pick kernels by CPU vendor, model and instruction set, and reductions split
    by thread count, so runs agree bit for bit only where every field is equal."""
    cpu = cpuinfo()
    flags = set(cpu.get("flags", "").split())
    wanted = ("Math Kernel Library", "MKL-DNN", "oneDNN", "OpenMP", "OpenBLAS")
    config = torch.__config__.show().splitlines()  # keep its math-library lines
    return {
        "cpu_vendor": cpu.get("vendor_id") or platform.machine(),
        "cpu_model": cpu.get("model name") or platform.processor() or "unknown",
        "cpu_family_model": f"{cpu.get('cpu family', '?')}/{cpu.get('model', '?')}",
        "cpu_flags": [flag for flag in KERNEL_FLAGS if flag in flags],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "math_libraries": [
            line.strip(" -") for line in config if any(n in line for n in wanted)
        ],
        "packages": package_versions(),
    }


NO_FINGERPRINT = (
    "the shipped record has no machine fingerprint (it predates it), so "
    "this machine cannot be matched to the one that trained it"
)


def reproduction_mismatch(
    provenance: Mapping[str, Any], device: torch.device
) -> list[str]:
    """One line per difference from the machine (and device type) that trained a
    shipped result; empty only when a bit-for-bit comparison is fair."""
    reasons = []
    shipped_type = str(provenance.get("device", "")).split(":")[0]
    if shipped_type != device.type:
        reasons.append(f"device {device.type}, shipped on {shipped_type or 'unknown'}")
    shipped = provenance.get("machine")
    if not isinstance(shipped, Mapping):
        return [*reasons, NO_FINGERPRINT]
    here = machine_fingerprint()
    for key, value in here.items():
        was = shipped.get(key)
        if key == "packages" and isinstance(was, Mapping):
            for name in {**was, **value}:
                if value.get(name) != was.get(name):
                    reasons.append(
                        f"{name} {value.get(name, 'not installed')} here, "
                        f"{was.get(name, 'not recorded')} when shipped"
                    )
        elif key == "cpu_flags" and isinstance(was, list):
            lacks = [flag for flag in was if flag not in value]
            adds = [flag for flag in value if flag not in was]
            if lacks:
                reasons.append(f"CPU flags: this machine lacks {', '.join(lacks)}")
            if adds:
                reasons.append(f"CPU flags: this machine has {', '.join(adds)} too")
        elif was != value:
            reasons.append(f"{key.replace('_', ' ')} {value} here, {was} when shipped")
    return reasons


class ReproductionError(AssertionError):
    """A live run that should have reproduced a shipped result, and did not."""


def changed_since(commit: str, paths: list[str]) -> list[str] | None:
    """Files under ``paths`` that differ now from ``commit`` (None: git cannot tell)."""
    commit = commit.removesuffix("+dirty")
    try:
        out = _git(["diff", "--name-only", commit, "--", *paths], _root(None))
    except (OSError, subprocess.CalledProcessError, CheckpointError):
        return None
    return [line for line in out.splitlines() if line.strip()]


def check_reproduction(
    live: Mapping[str, Any],
    shipped: Mapping[str, Any],
    provenance: Mapping[str, Any],
    device: torch.device,
    *,
    code: list[str],
    command: str,
) -> str:
    """Compare a live run's arrays (name -> tensor or array) with a shipped
    result's; return one sentence for the page. On a machine matching the shipped
    fingerprint every array must be equal, else :class:`ReproductionError`, which
    says to re-export (with ``command``) only if git shows that ``code`` (paths)
    changed since the recorded commit. Elsewhere nothing fails: the sentence says
    how this machine differs."""

    import numpy as np

    def equal(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)

    names = sorted(set(live) | set(shipped))
    differing = [name for name in names if not equal(live.get(name), shipped.get(name))]
    differences = reproduction_mismatch(provenance, device)
    every = "its one array is" if len(names) == 1 else f"all {len(names)} arrays are"
    if differences:
        record = (
            f"{every} identical all the same"
            if not differing
            else f"{len(differing)} of {len(names)} arrays differ, as they may here"
        )
        return (
            "not compared bit for bit: this machine differs from the one that "
            f"trained the shipped result ({'; '.join(differences)}); for the "
            f"record, {record}"
        )
    if not differing:
        return (
            f"reproduced bit for bit: {every} identical to the shipped "
            "result's, on a machine that matches the one that trained it"
        )
    commit = str(provenance.get("git_commit", "unknown"))
    changed = changed_since(commit, code)
    if changed is None:
        cause = (
            f"git cannot tell whether {', '.join(code)} changed since the "
            f"export at {commit[:12]}: if it did, re-export with `{command}` "
            "from a clean tree; if not, training is not deterministic here"
        )
    elif changed:
        shown = ", ".join(changed[:DIRTY_PATHS_SHOWN])
        cause = (
            f"the code changed since the export at {commit[:12]} ({shown}): "
            f"re-export with `{command}` from a clean tree"
        )
    else:
        cause = (
            f"the code has not changed since the export at {commit[:12]}, so "
            "training was not deterministic on this machine: do not re-export; "
            "find what made it differ"
        )
    more = f" (and {len(differing) - 1} more)" if len(differing) > 1 else ""
    raise ReproductionError(
        f"the live run's {differing[0]}{more} differs from the shipped result's, "
        f"on a machine that matches the one that trained it: {cause}"
    )
