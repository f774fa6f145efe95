"""Datasets in their official on-disk formats: CIFAR-10, MNIST and IMDb.

Read from :func:`rlbook.paths.data_dir`: ``cifar-10-batches-bin/*.bin``,
``MNIST/raw/*-ubyte[.gz]``, ``aclImdb/`` or an ``aclImdb*.tar.gz`` (read straight
from the archive); where a network exists, the authors' files are downloaded,
MD5-checked. The folder may hold a subset (CI's): every set says how many items
it holds and how many the full split has, so that a page never presents a
subset's accuracy as the dataset's. Files listed in a ``SHA256SUMS`` are checked
before use. Anything missing, truncated or malformed is a :class:`DataError`
saying what to put where. Introduced in the part *PyTorch projects*.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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


CIFAR10_ARCHIVE = Source(
    "cifar-10-binary.tar.gz",
    "c32a1d4ab5d03f1284b67883e8d87530",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
)
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
CIFAR10_CLASSES = tuple(
    "airplane automobile bird cat deer dog frog horse ship truck".split()
)
CIFAR10_RECORD = 1 + 3 * 32 * 32

MNIST_FOLDER = "MNIST/raw"
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_SOURCES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_PREFIX = {"train": "train", "test": "t10k"}

IMDB_ARCHIVE = Source(
    "aclImdb_v1.tar.gz",
    "7c2ac02c03563afcf9b574c7e56c153a",
    ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
)
IMDB_REVIEW = re.compile(r"(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")

FULL_SIZE = {
    "cifar10": {"train": 50_000, "test": 10_000},
    "mnist": {"train": 60_000, "test": 10_000},
    "imdb": {"train": 25_000, "test": 25_000},
}
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


@dataclass(frozen=True)
class TextSet:
    """Reviews with labels (1 positive, 0 negative), star ratings and review ids."""

    texts: tuple[str, ...]
    labels: torch.Tensor
    ratings: torch.Tensor
    ids: tuple[int, ...]
    split: str
    full_size: int
    source: Path

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_subset(self) -> bool:
        return len(self) < self.full_size


# ---------------------------------------------------------------- checksums


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


# ---------------------------------------------------------------- download


def download(url: str, destination: Path, md5: str, *, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``destination`` if its MD5 is ``md5``, atomically; else
    (unreachable, other bytes) :class:`DataError`, nothing left behind."""
    digest = hashlib.md5()
    partial = None
    try:
        # The network first: no folder is created for a download that cannot start.
        with urllib.request.urlopen(url, timeout=timeout) as response:
            destination.parent.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(
                prefix=f".{destination.name}.", suffix=".part", dir=destination.parent
            )
            with os.fdopen(fd, "wb") as out:
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != md5:
            raise ChecksumError(
                f"the file downloaded from {url} has MD5 {digest.hexdigest()}, but the "
                f"published checksum is {md5}: the download is damaged or the file changed. "
                "It was deleted; try again, or download it by hand and check it."
            )
        os.chmod(partial, 0o644)  # mkstemp's files are private
        os.replace(partial, destination)
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"cannot download {url}: {error}") from error
    finally:
        if partial is not None and os.path.exists(partial):
            os.unlink(partial)
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
        named = (
            f" (named by ${DATA_ENV_VAR})"
            if os.environ.get(DATA_ENV_VAR, "").strip()
            else ""
        )
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


MAX_REVIEW_BYTES = 1_000_000
"""The most bytes a review file may hold: IMDb's longest review is about 14 KB,
so anything near this is not a review (and would cost memory to tokenize)."""


def read_review(path: Path, max_bytes: int = MAX_REVIEW_BYTES) -> str:
    """The UTF-8 text of the review file ``path``, which must be a regular file
    (a link to one will do) of at most ``max_bytes`` bytes.

    Never blocks on a FIFO, never reads a device or a folder, and turns every
    ``OSError`` (a dangling link, a link loop, no permission) into a
    :class:`DataError` naming the file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise DataError(
            f"cannot read the review {str(path)!r}: {error.strerror or error} "
            "(a dangling link, a link loop, or no permission?)"
        ) from error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DataError(
                f"{str(path)!r} is not a regular file (a folder, a FIFO or a device): "
                "a review folder must hold review files only"
            )
        if info.st_size > max_bytes:
            raise DataError(
                f"{str(path)!r} holds {info.st_size:,} bytes, more than the "
                f"{max_bytes:,} a review may have: it is not a review"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise DataError(f"cannot read the review {str(path)!r}: {error}") from error
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while being read
        raise DataError(
            f"{str(path)!r} holds more than the {max_bytes:,} bytes a review may have"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{str(path)!r} is not UTF-8 text ({error.reason} at byte "
            f"{error.start}); save the review as UTF-8"
        ) from error


# ---------------------------------------------------------------- CIFAR-10


def extract_cifar10(archive: Path, root: Path) -> None:
    """Extract only the expected regular files of the CIFAR-10 binary archive."""
    wanted = {
        f"{CIFAR10_FOLDER}/{name}" for names in CIFAR10_FILES.values() for name in names
    }
    wanted.add(f"{CIFAR10_FOLDER}/batches.meta.txt")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name not in wanted or not member.isfile():
                    continue
                source = tar.extractfile(member)
                assert source is not None
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, partial = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".part", dir=target.parent
                )
                try:
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(source, out)
                    os.chmod(partial, 0o644)  # mkstemp's files are private
                    os.replace(partial, target)
                except BaseException:
                    Path(partial).unlink(missing_ok=True)
                    raise
                wanted.discard(name)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(
            f"{archive} is not a readable CIFAR-10 archive ({error}); delete it and "
            "download it again"
        ) from error
    if wanted:
        raise DataError(
            f"{archive} lacks {sorted(wanted)}: it is not the CIFAR-10 binary archive"
        )


def load_cifar10(
    split: str = "train", root: Path | str | None = None, *, download: bool = True
) -> ImageSet:
    """CIFAR-10's ``split`` from the binary version: uint8 ``(N, 3, 32, 32)`` and labels."""
    check_split(split)
    root = resolve_root(root)
    folder = root / CIFAR10_FOLDER
    paths = [folder / name for name in CIFAR10_FILES[split]]
    if not all(path.is_file() for path in paths):
        archive = root / CIFAR10_ARCHIVE.filename
        error = None
        if not archive.is_file() and download:
            try:
                fetch_source(CIFAR10_ARCHIVE, root)
            except ChecksumError:
                raise
            except DataError as caught:
                error = caught
        if archive.is_file():
            check_md5(archive, CIFAR10_ARCHIVE.md5)
            extract_cifar10(archive, root)
        absent = [path.name for path in paths if not path.is_file()]
        if absent:
            raise missing(
                f"CIFAR-10's {split} split ({', '.join(absent)})",
                root,
                f"{CIFAR10_FOLDER}/ from {CIFAR10_ARCHIVE.urls[0]} (the binary version)",
                error,
            )
    check_listed_checksums(root, paths)
    images, labels = [], []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % CIFAR10_RECORD:
            raise DataError(
                f"{path} is truncated or not a CIFAR-10 binary batch: its {raw.size:,} bytes "
                f"are not a whole number of {CIFAR10_RECORD:,}-byte records"
            )
        records = raw.reshape(-1, CIFAR10_RECORD)
        if records[:, 0].max() >= len(CIFAR10_CLASSES):
            bad = int(np.argmax(records[:, 0] >= len(CIFAR10_CLASSES)))
            raise DataError(
                f"{path} is corrupt: record {bad} has label byte {records[bad, 0]}, but "
                f"CIFAR-10 labels are 0-9"
            )
        labels.append(records[:, 0])
        images.append(records[:, 1:].reshape(-1, 3, 32, 32))
    return ImageSet(
        images=torch.from_numpy(np.concatenate(images)),
        labels=torch.from_numpy(np.concatenate(labels).astype(np.int64)),
        classes=CIFAR10_CLASSES,
        split=split,
        full_size=FULL_SIZE["cifar10"][split],
        source=folder,
    )


# ---------------------------------------------------------------- MNIST


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``dims`` dimensions, gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:  # BadGzipFile is an OSError
        raise DataError(f"{path} is truncated or not a gzip file ({error})") from error
    if len(data) < 4 + 4 * dims or data[:4] != bytes([0, 0, 0x08, dims]):
        raise DataError(
            f"{path} is not an IDX file of {dims}-dimensional unsigned bytes: its header "
            f"starts {data[:4].hex()}, expected 000008{dims:02x}"
        )
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)
    )
    body = data[4 + 4 * dims :]
    size = math.prod(shape)  # exact: np.prod wraps around past 2**63
    if len(body) != size:
        raise DataError(
            f"{path} is truncated or corrupt: its header promises shape {shape} "
            f"({size:,} bytes), but {len(body):,} bytes follow"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def mnist_file(
    folder: Path, name: str, download: bool
) -> tuple[Path, DataError | None]:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate, None
    if not download:
        return folder / name, None
    source = Source(name, MNIST_SOURCES[name], tuple(m + name for m in MNIST_MIRRORS))
    try:
        return fetch_source(source, folder), None
    except ChecksumError:
        raise
    except DataError as error:
        return folder / name, error


def load_mnist(
    split: str = "train", root: Path | str | None = None, *, download: bool = True
) -> ImageSet:
    """MNIST's ``split`` from its IDX files: uint8 ``(N, 1, 28, 28)`` and labels."""
    check_split(split)
    root = resolve_root(root)
    folder = root / MNIST_FOLDER
    prefix = MNIST_PREFIX[split]
    found = [
        mnist_file(folder, f"{prefix}-{kind}-ubyte.gz", download)
        for kind in ("images-idx3", "labels-idx1")
    ]
    for path, error in found:
        if not path.is_file():
            raise missing(
                f"MNIST's {split} file {path.name}",
                root,
                f"{MNIST_FOLDER}/{path.name} (from {MNIST_MIRRORS[0]})",
                error,
            )
    (images_path, _), (labels_path, _) = found
    check_listed_checksums(root, [images_path, labels_path])
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_path} holds {images.shape[1:]} images; MNIST's are 28x28"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images):,} images but {labels_path} "
            f"{len(labels):,} labels: the two files do not belong together"
        )
    if len(labels) == 0:
        raise DataError(
            f"{labels_path} and {images_path} hold no images: put MNIST's {split} "
            "files (or a non-empty subset of them) there"
        )
    if labels.max() > 9:
        raise DataError(f"{labels_path} is corrupt: it holds label {labels.max()}")
    return ImageSet(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=tuple(str(d) for d in range(10)),
        split=split,
        full_size=FULL_SIZE["mnist"][split],
        source=folder,
    )


# ---------------------------------------------------------------- IMDb


Review = tuple[int, int, int, str]  # label, id, rating, text
_imdb_cache: dict[tuple[str, int, int], dict[str, list[Review]]] = {}


def read_imdb_archive(archive: Path) -> dict[str, list[Review]]:
    stat = archive.stat()
    key = (str(archive.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _imdb_cache:
        return _imdb_cache[key]
    reviews: dict[str, list[Review]] = {split: [] for split in SPLITS}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = IMDB_REVIEW.fullmatch(member.name)
                if match is None or not member.isfile():
                    continue
                file = tar.extractfile(member)
                assert file is not None
                split, polarity, review_id, rating = match.groups()
                text = file.read().decode("utf-8")
                label = int(polarity == "pos")
                reviews[split].append((label, int(review_id), int(rating), text))
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as error:
        raise DataError(
            f"{archive} is truncated or corrupt ({type(error).__name__}: {error}); delete "
            "it and download it again"
        ) from error
    _imdb_cache.clear()
    _imdb_cache[key] = reviews
    return reviews


def read_imdb_folder(folder: Path, split: str) -> list[Review]:
    reviews = []
    for polarity in ("pos", "neg"):
        for path in (folder / split / polarity).glob("*.txt"):
            match = re.fullmatch(r"(\d+)_(\d+)\.txt", path.name)
            if match is None:
                continue
            text = read_review(path)
            label = int(polarity == "pos")
            reviews.append((label, int(match[1]), int(match[2]), text))
    return reviews


def load_imdb(
    split: str = "train", root: Path | str | None = None, *, download: bool = True
) -> TextSet:
    """IMDb's labelled reviews of ``split``, negative first, then by review id,
    from ``aclImdb/``, else an ``aclImdb*.tar.gz``, else a download."""
    check_split(split)
    root = resolve_root(root)
    folder = root / "aclImdb"
    if folder.is_dir():
        reviews = read_imdb_folder(folder, split)
        source = folder
    else:
        archives = sorted(root.glob("aclImdb*.tar.gz")) if root.is_dir() else []
        error = None
        if not archives and download:
            try:
                archives = [fetch_source(IMDB_ARCHIVE, root)]
            except ChecksumError:
                raise
            except DataError as caught:
                error = caught
        if not archives:
            raise missing(
                "IMDb (aclImdb/ or aclImdb_v1.tar.gz)",
                root,
                f"{IMDB_ARCHIVE.filename} from {IMDB_ARCHIVE.urls[0]}",
                error,
            )
        source = archives[0]
        if source.name == IMDB_ARCHIVE.filename:
            check_md5(source, IMDB_ARCHIVE.md5)
        check_listed_checksums(root, [source])
        reviews = read_imdb_archive(source)[split]
    if not reviews or len({label for label, *_ in reviews}) < 2:
        raise DataError(
            f"{source} holds no positive or no negative reviews for {split!r}: expected "
            f"aclImdb/{split}/pos/<id>_<rating>.txt and aclImdb/{split}/neg/..."
        )
    reviews = sorted(reviews)
    return TextSet(
        texts=tuple(text for *_, text in reviews),
        labels=torch.tensor([r[0] for r in reviews], dtype=torch.int64),
        ratings=torch.tensor([r[2] for r in reviews], dtype=torch.int64),
        ids=tuple(r[1] for r in reviews),
        split=split,
        full_size=FULL_SIZE["imdb"][split],
        source=source,
    )


def write_review_folder(reviews: TextSet, folder: Path | str) -> Path:
    """Write ``reviews`` as ``folder/pos/<id>_<rating>.txt`` and ``folder/neg/...``.

    The layout of ``aclImdb/test``: what ``python -m rlbook classify-reviews``
    reads, for reviews that came from an archive. Existing files of the same
    names are overwritten; a link of the same name is replaced, never followed,
    and a ``pos`` or ``neg`` that is a link is refused. Returns ``folder``.
    """
    folder = Path(folder)
    for polarity in ("pos", "neg"):
        sub = folder / polarity
        if sub.is_symlink():
            raise DataError(
                f"{str(sub)!r} is a link: reviews are written into {str(folder)!r} "
                "itself, never through a link to elsewhere; remove the link"
            )
        sub.mkdir(parents=True, exist_ok=True)
    for text, label, review_id, rating in zip(
        reviews.texts,
        reviews.labels.tolist(),
        reviews.ids,
        reviews.ratings.tolist(),
        strict=True,
    ):
        polarity = "pos" if label == 1 else "neg"
        _write_new(
            folder / polarity / f"{review_id}_{rating}.txt", text.encode("utf-8")
        )
    return folder


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``; an existing link there is replaced, never followed."""
    if path.is_symlink():
        path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        raise DataError(f"cannot write {str(path)!r}: {error}") from error
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def describe(dataset: ImageSet | TextSet) -> str:
    """``"4,660 of the 50,000 training images"``: how much of the split was loaded."""
    noun = "reviews" if isinstance(dataset, TextSet) else "images"
    part = "training" if dataset.split == "train" else "test"
    if dataset.is_subset:
        return f"{len(dataset):,} of the {dataset.full_size:,} {part} {noun}"
    return f"all {len(dataset):,} {part} {noun}"
