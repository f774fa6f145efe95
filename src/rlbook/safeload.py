"""Shipped folders: one format for agents and models, one writer, one loader.

A folder holds ``weights.pt`` (tensors only, loaded with ``weights_only=True``),
``weights.provenance.json``, any other files of its export, and a JSON manifest
(``agent.json`` or ``model.json``): ``format``, ``kind`` (how to rebuild it),
``spec`` (what the rebuild needs) and the SHA-256 of every file, checked on load.
Written last, the manifest lists the set: a folder that an interrupted export
left with a mix of old and new files fails its check.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    one_line,
    save_checkpoint,
)

WEIGHTS = "weights.pt"
PROVENANCE = "weights.provenance.json"


@dataclass(frozen=True)
class Layout:
    """What differs between kinds of folder."""

    format: str  # the manifest's "format"
    manifest: str  # its file name
    noun: str  # "agent", "model": what messages call it
    example: str  # a shipped folder, named in messages
    error: type[Exception]  # raised, with one line, for a bad folder
    strings: tuple[str, ...] = ()  # manifest entries (JSON strings) besides kind
    hashed: tuple[str, ...] = ()  # spec entries whose SHA-256 the manifest lists
    compact: bool = False  # one line, keys sorted (a vocabulary is long)

    @property
    def a_noun(self) -> str:
        return ("an " if self.noun[0] in "aeiou" else "a ") + self.noun


class Kinds:
    """The builders of a folder's kinds. A kind in ``lazy`` (kind -> module,
    a page's generated one) registers its builder when that module is first
    imported, so loading a folder imports only the page it needs."""

    def __init__(self, lazy: Mapping[str, str]) -> None:
        self.builders: dict[str, Any] = {}
        self.lazy = dict(lazy)

    def find(self, kind: str) -> Any:
        if kind not in self.builders and kind in self.lazy:
            importlib.import_module(self.lazy[kind])
        return self.builders.get(kind)

    def known(self) -> list[str]:
        return sorted({*self.builders, *self.lazy})

    def register(self, kind: str) -> Callable[[Any], Any]:
        """A decorator: the function it decorates builds ``kind``."""

        def decorator(builder: Any) -> Any:
            self.builders[kind] = builder
            return builder

        return decorator


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


def write_manifest(folder: Path, layout: Layout, manifest: Mapping[str, Any]) -> None:
    """Write ``folder``'s manifest atomically, formatted as ``layout`` says."""
    if layout.compact:
        text = json.dumps(dict(sorted(manifest.items())), separators=(",", ":"))
    else:
        text = json.dumps(manifest, indent=2)
    data = (text + "\n").encode()
    atomic_write(folder / layout.manifest, lambda handle: handle.write(data))


def save_folder(
    path: str | Path,
    layout: Layout,
    *,
    kind: str,
    spec: Mapping[str, Any],
    weights: Mapping[str, Any],
    provenance: Mapping[str, Any],
    files: Mapping[str, bytes] | None = None,
    **entries: Any,
) -> Path:
    """Write a folder: the weights and their provenance, ``files`` (name ->
    bytes), then the manifest (``entries`` besides format, kind, spec), which
    lists the SHA-256 of each."""
    folder = Path(path)
    save_checkpoint(folder / WEIGHTS, weights, provenance)
    digests = {name: file_sha256(folder / name) for name in (WEIGHTS, PROVENANCE)}
    for name, data in dict(files or {}).items():
        if "/" in name or name.startswith(".") or not name:
            raise ValueError(f"{name!r} is not a plain file name")
        atomic_write(folder / name, lambda handle, data=data: handle.write(data))
        digests[name] = hashlib.sha256(data).hexdigest()
    for name in layout.hashed:
        if name in spec:
            digests[name] = record_sha256(spec[name])
    manifest = {"format": layout.format, "kind": kind, **entries, "spec": dict(spec)}
    write_manifest(folder, layout, {**manifest, "sha256": digests})
    return folder


def read_manifest(folder: Path, layout: Layout) -> dict[str, Any]:
    """The manifest of ``folder``, or ``layout.error`` saying in one line what is
    wrong (missing, a folder, unreadable, not UTF-8, not JSON, another format)."""

    name, error = layout.manifest, layout.error
    path = folder / name
    if not path.exists():
        raise error(f"{str(folder)!r} has no {name}; it is not {layout.a_noun} folder")
    if not path.is_file():
        raise error(
            f"{str(path)!r} is not a file; {layout.a_noun} folder holds its "
            f"manifest as a JSON file named {name}"
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
    if not isinstance(manifest, dict) or manifest.get("format") != layout.format:
        raise error(f"{str(path)!r} is not a {layout.format} manifest")
    return manifest


def _check_digests(folder: Path, layout: Layout, manifest: dict[str, Any]) -> None:
    """The manifest's ``sha256`` (a file's name, or a hashed spec entry's -> hex
    digest) must hold; ``layout.error`` names the first entry that does not."""
    listed, where = manifest.get("sha256"), repr(str(folder / layout.manifest))
    if listed is None:  # a folder written before the record
        return
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in listed.items()
    ):
        raise layout.error(f"{where}: sha256 must map file names to hex digests")
    for name, expected in listed.items():
        if name in layout.hashed:
            found = record_sha256(manifest["spec"].get(name))
        elif "/" in name or "\\" in name or name.startswith(".") or not name:
            raise layout.error(
                f"{where} lists a SHA-256 for {name!r}, not a file of its own"
            )
        else:
            try:
                found = file_sha256(folder / name)
            except OSError as error:
                raise layout.error(
                    f"{str(folder)!r} lacks {name}, which its manifest lists "
                    f"({error.strerror or error}): the folder is incomplete; restore "
                    "it from the repository or export it again"
                ) from error
        if found != expected.lower():
            raise layout.error(
                f"{name} in {str(folder)!r} has SHA-256 {found[:12]}..., but its "
                f"manifest records {expected[:12]}...: it was changed or damaged after "
                "export, or the export was interrupted; restore the folder from the "
                "repository or export it again"
            )


def _check_weights(
    weights: Mapping[str, Any], path: Path, layout: Layout, prefix=""
) -> None:
    """Every value (nested dicts allowed) a tensor, every floating one finite."""
    for key, value in weights.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_weights(value, path, layout, f"{name}.")
        elif not isinstance(value, torch.Tensor):
            raise layout.error(
                f"{str(path)!r} holds a {type(value).__name__} under {name!r}, not a "
                f"tensor: it is not the weights of {layout.a_noun}; restore it from the "
                f"repository or export the {layout.noun} again"
            )
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise layout.error(
                f"{str(path)!r}: {name!r} holds NaN or infinite values, which no "
                f"trained {layout.noun} has; restore the folder from the repository "
                f"or export the {layout.noun} again"
            )


def load_folder(
    path: str | Path,
    layout: Layout,
    *,
    kinds: Kinds,
    build: Callable[[Any, dict[str, Any], dict[str, Any]], Any],
) -> tuple[dict[str, Any], Any]:
    """``(manifest, build(builder, manifest, weights))`` for the folder ``path``,
    checked on the way; ``layout.error`` says in one line what is missing or
    malformed and how to fix it."""
    folder = Path(path)
    noun, error = layout.noun, layout.error
    if not folder.is_dir():
        raise error(
            f"no {noun} folder at {str(folder)!r}; shipped {noun}s live under "
            f"artifacts/ (for example artifacts/{layout.example})"
        )
    manifest = read_manifest(folder, layout)
    where = repr(str(folder / layout.manifest))
    missing = [key for key in ("kind", *layout.strings, "spec") if key not in manifest]
    if missing:
        raise error(f"{where} lacks {', '.join(missing)}")
    kind = manifest["kind"]
    builder = kinds.find(kind) if isinstance(kind, str) else None
    if builder is None:
        raise error(
            f"{where} has unknown kind {kind!r:.60}"
            f"{'' if isinstance(kind, str) else ', not a JSON string'}; "
            f"known: {', '.join(kinds.known())}"
        )
    for key in layout.strings:
        if not isinstance(manifest[key], str):
            raise error(
                f"{where}: {key} must be a JSON string, not {manifest[key]!r:.60}"
            )
    if not isinstance(manifest["spec"], dict):
        raise error(
            f"{where}: spec must be a JSON object, not {manifest['spec']!r:.60}"
        )
    remedy = f"Restore the folder from the repository or export the {noun} again."
    try:
        weights = load_checkpoint(folder / WEIGHTS, remedy=remedy)
    except CheckpointError as failure:
        raise error(str(failure)) from failure
    _check_weights(weights, folder / WEIGHTS, layout)
    try:
        built = build(builder, manifest, weights)
    except error:
        raise
    except Exception as failure:  # a spec or weights of another shape or type
        raise error(
            f"{str(folder)!r}: its spec and weights do not fit kind {kind!r} "
            f"({type(failure).__name__}: {one_line(failure)})"
        ) from failure
    # Last, so that a damaged, foreign or misshapen file is named as such:
    # weights or a record that load and fit, but are not those exported.
    _check_digests(folder, layout, manifest)
    return manifest, built
