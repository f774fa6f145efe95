"""What the projects' dataset loaders share: finding, fetching and checking files.

Each project page holds its own loader (``rlbook.chapters.resnet_cifar``,
``vae_mnist``, ``sentiment_imdb``). Files come from :func:`rlbook.paths.data_dir`,
or are downloaded and MD5-checked; those a ``SHA256SUMS`` lists are checked
before use. A set says how much of its split it holds (:func:`describe`), so that
a page never presents a subset's accuracy as the dataset's. Anything missing or
corrupt is a :class:`DataError` saying what to put where.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .checkpoint import atomic_write
from .paths import DATA_ENV_VAR, data_dir

CHUNK = 1 << 20


class DataError(RuntimeError):
    """A dataset that is missing, corrupt, or cannot be downloaded."""


class ChecksumError(DataError):
    """Bytes whose digest is not the published one."""


@dataclass(frozen=True)
class Source:
    """One published file: where to fetch it and its published MD5."""

    filename: str
    md5: str
    urls: tuple[str, ...]


SPLITS = ("train", "test")


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 ``(N, C, H, W)`` with int64 labels, and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    split: str
    full_size: int
    source: Path

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def is_subset(self) -> bool:
        """True when the folder held fewer items than the official split."""
        return len(self) < self.full_size


_digests: dict[tuple[str, int, int, str], str] = {}


def file_digest(path: Path, algorithm: str) -> str:
    """The file's hex digest, remembered while its size and modification time stay."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, algorithm)
    if key not in _digests:
        digest = hashlib.new(algorithm)
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def check_md5(path: Path, md5: str) -> None:
    if file_digest(path, "md5") != md5:
        raise ChecksumError(
            f"{path} does not have the published MD5 {md5}: it is damaged or not the "
            "official file. Delete it and download it again."
        )


def check_listed_checksums(root: Path, paths: list[Path]) -> None:
    """Check each of ``paths`` that ``root/SHA256SUMS`` lists against its digest."""
    manifest = root / "SHA256SUMS"
    if not manifest.is_file():
        return
    listed: dict[str, str] = {}
    try:
        text = manifest.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{manifest} is not a text file of checksums ({error.reason} at byte "
            f"{error.start}); write it as `sha256sum FILES > SHA256SUMS` does, or delete it"
        ) from error
    except OSError as error:
        raise DataError(f"cannot read {manifest}: {error}") from error
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            listed[parts[1].lstrip("*").removeprefix("./")] = parts[0].lower()
    for path in paths:
        relative = path.relative_to(root).as_posix()
        expected = listed.get(relative)
        if expected is None:
            continue
        actual = file_digest(path, "sha256")
        if actual != expected:
            raise ChecksumError(
                f"{path} is corrupt: its SHA-256 is {actual[:12]}..., but {manifest} "
                f"lists {expected[:12]}.... Replace the file with an intact copy."
            )


def download(url: str, destination: Path, md5: str, *, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``destination`` if its MD5 is ``md5``, atomically; else
    (unreachable, other bytes) :class:`DataError`, nothing left behind."""

    def write(out: BinaryIO) -> None:
        digest = hashlib.md5()
        while chunk := response.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != md5:
            raise ChecksumError(
                f"the file downloaded from {url} has MD5 {digest.hexdigest()}, but the "
                f"published checksum is {md5}: the download is damaged or the file changed. "
                "It was deleted; try again, or download it by hand and check it."
            )

    try:
        # The network first: no folder is created for a download that cannot start.
        with urllib.request.urlopen(url, timeout=timeout) as response:
            atomic_write(destination, write)
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"cannot download {url}: {error}") from error
    return destination


def fetch_source(source: Source, folder: Path) -> Path:
    """Download ``source`` into ``folder`` from the first URL that works."""
    errors = []
    for url in source.urls:
        try:
            return download(url, folder / source.filename, source.md5)
        except DataError as error:
            errors.append(str(error))
            if isinstance(error, ChecksumError):
                raise
    raise DataError("; ".join(errors))


def missing(what: str, root: Path, put: str, error: DataError | None) -> DataError:
    reason = f" The download failed: {error}" if error else ""
    if not root.is_dir():
        named = f" (named by ${DATA_ENV_VAR})"
        if not os.environ.get(DATA_ENV_VAR, "").strip():
            named = ""

        return DataError(
            f"{what} is not there: the data folder {root}{named} does not exist.{reason} "
            f"Point {DATA_ENV_VAR} at a folder that holds it (the book's CI uses "
            f"../shared/data), or create {root} and put {put} there."
        )
    return DataError(
        f"{what} is not in the data folder {root}.{reason} Put {put} there, or point "
        f"{DATA_ENV_VAR} at a folder that holds it (the book's CI uses ../shared/data)."
    )


def resolve_root(root: Path | str | None) -> Path:
    return Path(root).expanduser().resolve() if root is not None else data_dir()


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use 'train' or 'test'")


def describe(dataset: ImageSet | Any) -> str:
    """``"4,660 of the 50,000 training images"``: how much of the split was
    loaded (of reviews for the sentiment page's ``TextSet``)."""
    noun = "reviews" if hasattr(dataset, "texts") else "images"
    part = "training" if dataset.split == "train" else "test"
    if dataset.is_subset:
        return f"{len(dataset):,} of the {dataset.full_size:,} {part} {noun}"
    return f"all {len(dataset):,} {part} {noun}"
