"""What to tell a user whose weights file would not load safely.

:func:`rlbook.checkpoint.load_checkpoint` loads with ``weights_only=True``: a
file holding Python objects other than tensors and plain values is refused,
and nothing in it runs. PyTorch's own message then explains how to load it
anyway, unsafely; the book never repeats that advice. :func:`load_failure`
says instead what the file is and where a good copy comes from.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

REFUSED = "Weights only load failed"
"""How torch's message begins when ``weights_only=True`` refuses a file: for
pickled objects and for damaged bytes alike, followed by advice to load it
unsafely."""


def refusal(error: BaseException | None) -> BaseException | None:
    """torch's refusal among ``error`` and its causes, or None."""
    while error is not None:
        if isinstance(error, pickle.UnpicklingError) and REFUSED in str(error):
            return error
        error = error.__cause__
    return None


def holds_code(error: BaseException) -> bool:
    """Whether ``error`` is torch refusing a file because of the objects it pickles."""
    refused = refusal(error)
    return refused is not None and "Unsupported global" in str(refused)


def load_failure(path: str | Path, error: BaseException, remedy: str) -> str:
    """One line on why ``path`` did not load: ``error``'s own message, or, where
    torch refused the file, what it is (never torch's advice to load it anyway)."""
    if holds_code(error):
        return (
            f"{str(path)!r} is not plain weights: it holds pickled Python objects, "
            "which only code could rebuild, so it was not loaded and nothing in it ran; "
            "rlbook never writes such a file, so it did not come from this book's "
            f"training or export. {remedy}"
        )
    if refusal(error) is not None:
        return (
            f"{str(path)!r} is corrupt or not a weights file: it does not read as "
            f"tensors and plain values, so it was not loaded. {remedy}"
        )
    return " ".join(str(error).split())


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file ``path``, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def record_sha256(record: Any) -> str:
    """The SHA-256 of ``record`` (JSON data) written canonically: sorted keys,
    no spaces, UTF-8. A vocabulary kept inside a manifest is hashed this way."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_listed_digests(
    manifest_path: Path,
    listed: Any,
    records: dict[str, Callable[[], str]] | None = None,
) -> str | None:
    """Why a manifest's ``sha256`` object (file name, or a key of ``records``
    whose function computes that digest now -> hex digest) does not hold, or None."""
    if listed is None:
        return None
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in listed.items()
    ):
        return f"{str(manifest_path)!r}: sha256 must map file names to hex digests"
    folder = manifest_path.parent
    for name, expected in listed.items():
        if records and name in records:
            found = records[name]()
        elif "/" in name or "\\" in name or name.startswith(".") or not name:
            return f"{str(manifest_path)!r} lists a SHA-256 for {name!r}, not a file of its own"
        else:
            try:
                found = file_sha256(folder / name)
            except OSError as error:
                return (
                    f"{str(folder)!r} lacks {name}, which its manifest lists "
                    f"({error.strerror or error}): the folder is incomplete; restore it "
                    "from the repository or export it again"
                )
        if found != expected.lower():
            return (
                f"{name} in {str(folder)!r} has SHA-256 {found[:12]}..., but its "
                f"manifest records {expected[:12]}...: it was changed or damaged after "
                "export, or the export was interrupted; restore the folder from the "
                "repository or export it again"
            )
    return None


def write_files(folder: Path, files: Any) -> dict[str, str]:
    """Write each ``name -> bytes`` of ``files`` atomically into ``folder``; their
    SHA-256s. For the files an export writes before its manifest, which lists
    them: written last, the manifest is what makes the set complete."""
    from .checkpoint import atomic_write

    digests = {}
    for name, data in dict(files or {}).items():
        if "/" in name or name.startswith(".") or not name:
            raise ValueError(f"{name!r} is not a plain file name")
        atomic_write(folder / name, lambda handle, data=data: handle.write(data))
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def non_finite(tensors: Any, prefix: str = "") -> str | None:
    """The name of the first floating tensor holding a NaN or an infinity, or None."""
    import torch

    for key, value in tensors.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found = non_finite(value, f"{name}.")
            if found:
                return found
        elif (
            isinstance(value, torch.Tensor)
            and value.is_floating_point()
            and not bool(torch.isfinite(value).all())
        ):
            return name
    return None


def read_manifest(
    folder: Path, name: str, fmt: str, what: str, error: type[Exception]
) -> dict[str, Any]:
    """The JSON manifest ``folder/name`` of format ``fmt``, or ``error`` saying
    in one line what is wrong with it (missing, a folder, unreadable, not
    UTF-8, not JSON, another format). ``what`` names the folder's kind."""
    path = folder / name
    if not path.exists():
        raise error(f"{str(folder)!r} has no {name}; it is not {what}")
    if not path.is_file():
        raise error(
            f"{str(path)!r} is not a file; {what} holds its manifest "
            f"as a JSON file named {name}"
        )
    try:
        manifest = json.loads(path.read_bytes())
    except OSError as failure:
        raise error(f"cannot read {str(path)!r}: {failure}") from failure
    except UnicodeDecodeError as failure:
        raise error(
            f"{str(path)!r} is not UTF-8 text ({failure.reason} at byte "
            f"{failure.start}); restore it from the repository"
        ) from failure
    except json.JSONDecodeError as failure:
        raise error(f"{str(path)!r} is not valid JSON: {failure}") from failure
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise error(f"{str(path)!r} is not a {fmt} manifest")
    return manifest
