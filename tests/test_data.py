"""Dataset loaders: official formats in, the same arrays out, and clear errors on bad files.

Most tests write small datasets in the official formats into a temporary folder,
so that what the loader returns can be compared with what was written. The last
test reads the real subsets in ``../shared/data`` (the folder CI points
``RLBOOK_DATA`` at) and checks the counts its README states.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rlbook import data
from rlbook.chapters import resnet_cifar, vae_mnist
from rlbook.chapters.resnet_cifar import load_cifar10
from rlbook.chapters.sentiment_imdb import (
    load_imdb,
    read_review_folder,
    write_review_folder,
)
from rlbook.chapters.vae_mnist import load_mnist
from rlbook.data import ChecksumError, DataError, describe

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- writers


def cifar_records(n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = RNG.integers(0, 10, n, dtype=np.uint8)
    images = RNG.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    return images, labels


def write_cifar(
    root: Path, per_batch: int = 4
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list] = {"train": [], "test": []}
    for split, names in resnet_cifar.CIFAR10_FILES.items():
        for name in names:
            images, labels = cifar_records(per_batch)
            records = np.concatenate(
                [labels[:, None], images.reshape(per_batch, -1)], axis=1
            )
            (folder / name).write_bytes(records.tobytes())
            written[split].append((images, labels))
    (folder / "batches.meta.txt").write_text("\n".join(resnet_cifar.CIFAR10_CLASSES) + "\n")
    return {
        split: (
            np.concatenate([i for i, _ in parts]),
            np.concatenate([lab for _, lab in parts]),
        )
        for split, parts in written.items()
    }


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n: int = 7, gz: bool = True) -> dict[str, tuple]:
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, prefix in vae_mnist.MNIST_PREFIX.items():
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, n, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
            else:
                (folder / name).write_bytes(idx_bytes(array))
        written[split] = (images, labels)
    return written


REVIEWS = {
    ("train", "pos", 3, 9): "A wonderful film.",
    ("train", "pos", 1, 10): "Loved it, truly — every minute.",
    ("train", "neg", 0, 2): "Dull.",
    ("test", "pos", 5, 8): "Good fun.",
    ("test", "neg", 4, 1): "Awful; I left early.",
    ("test", "neg", 2, 3): "Not for me.",
}


def write_imdb_folder(root: Path) -> Path:
    for (split, polarity, review_id, rating), text in REVIEWS.items():
        path = root / "aclImdb" / split / polarity / f"{review_id}_{rating}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "aclImdb" / "train" / "unsup").mkdir()
    (root / "aclImdb" / "train" / "unsup" / "7_0.txt").write_text("unlabelled")
    return root / "aclImdb"


def write_imdb_archive(root: Path, name: str = "aclImdb_subset.tar.gz") -> Path:
    source = write_imdb_folder(root / "staging")
    archive = root / name
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="aclImdb")
    return archive


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- CIFAR-10


def test_cifar10_returns_the_records_that_were_written(tmp_path):
    written = write_cifar(tmp_path)
    for split in ("train", "test"):
        loaded = load_cifar10(split, tmp_path, download=False)
        images, labels = written[split]
        assert loaded.images.dtype == torch.uint8
        assert torch.equal(loaded.images, torch.from_numpy(images))
        assert torch.equal(loaded.labels, torch.from_numpy(labels.astype(np.int64)))
        assert loaded.is_subset
    assert (
        describe(load_cifar10("train", tmp_path)) == "20 of the 50,000 training images"
    )


def test_cifar10_truncated_batch_is_a_clear_error(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"data_batch_3\.bin is truncated"):
        load_cifar10("train", tmp_path, download=False)


def test_cifar10_label_out_of_range_is_a_clear_error(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[resnet_cifar.CIFAR10_RECORD] = 10  # the second record's label byte
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="record 1 has label byte 10"):
        load_cifar10("test", tmp_path, download=False)


def test_cifar10_missing_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(DataError) as caught:
        load_cifar10("train", tmp_path, download=False)
    message = str(caught.value)
    assert "cifar-10-batches-bin/" in message
    assert "RLBOOK_DATA" in message
    assert str(tmp_path) in message


def cifar_archive(tmp_path: Path) -> tuple[Path, dict]:
    staging = tmp_path / "staging"
    written = write_cifar(staging)
    archive = tmp_path / "served" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
        note = staging / "note.txt"
        note.write_text("outside the dataset")
        tar.add(note, arcname="../evil.txt")  # must never be extracted
    return archive, written


def test_cifar10_downloads_checks_and_extracts_only_its_files(tmp_path, monkeypatch):
    archive, written = cifar_archive(tmp_path)
    source = data.Source(archive.name, md5_of(archive), (archive.as_uri(),))
    monkeypatch.setattr(resnet_cifar, "CIFAR10_ARCHIVE", source)
    root = tmp_path / "data"
    loaded = load_cifar10("test", root)
    assert torch.equal(loaded.images, torch.from_numpy(written["test"][0]))
    assert (root / "cifar-10-binary.tar.gz").is_file()
    assert not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in root.iterdir()) == [
        "cifar-10-batches-bin",
        "cifar-10-binary.tar.gz",
    ]


def test_download_with_a_wrong_checksum_is_deleted_and_an_error(tmp_path, monkeypatch):
    archive, _ = cifar_archive(tmp_path)
    source = data.Source(archive.name, "0" * 32, (archive.as_uri(),))
    monkeypatch.setattr(resnet_cifar, "CIFAR10_ARCHIVE", source)
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="published checksum is 0000"):
        load_cifar10("train", root)
    assert list(root.iterdir()) == []  # no archive, no partial file


def test_unreachable_download_says_so_and_what_to_put_where(tmp_path, monkeypatch):
    gone = (tmp_path / "nowhere" / "cifar-10-binary.tar.gz").as_uri()
    monkeypatch.setattr(
        resnet_cifar, "CIFAR10_ARCHIVE", data.Source("x.tar.gz", "0" * 32, (gone,))
    )
    with pytest.raises(DataError, match="The download failed: cannot download"):
        load_cifar10("train", tmp_path / "data")


def test_listed_checksums_are_checked(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(
        f"{digest}  cifar-10-batches-bin/test_batch.bin\n"
    )
    load_cifar10("test", tmp_path, download=False)
    raw = bytearray(path.read_bytes())
    raw[5] ^= 1  # same length, one pixel bit flipped
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(1, 1))  # a new modification time: the digest is recomputed
    with pytest.raises(ChecksumError, match=r"test_batch\.bin is corrupt"):
        load_cifar10("test", tmp_path, download=False)


def test_unknown_split_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load_cifar10("valid", tmp_path)


# ---------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_returns_the_idx_arrays_that_were_written(tmp_path, gz):
    written = write_mnist(tmp_path, gz=gz)
    for split in ("train", "test"):
        loaded = load_mnist(split, tmp_path, download=False)
        images, labels = written[split]
        assert loaded.images.shape == (7, 1, 28, 28)
        assert torch.equal(loaded.images[:, 0], torch.from_numpy(images))
        assert torch.equal(loaded.labels, torch.from_numpy(labels.astype(np.int64)))


def test_mnist_truncated_gzip_is_a_clear_error(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz is truncated"):
        load_mnist("test", tmp_path, download=False)


def test_mnist_short_body_is_a_clear_error(tmp_path):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-28])
    with pytest.raises(DataError, match=r"promises shape \(7, 28, 28\)"):
        load_mnist("train", tmp_path, download=False)


def test_mnist_wrong_magic_is_a_clear_error(tmp_path):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2] = 0x0D  # float data, not unsigned bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="not an IDX file"):
        load_mnist("train", tmp_path, download=False)


def test_mnist_images_and_labels_of_different_lengths_is_an_error(tmp_path):
    write_mnist(tmp_path, gz=False)
    labels = RNG.integers(0, 10, 6, dtype=np.uint8)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(
        idx_bytes(labels)
    )
    with pytest.raises(DataError, match="do not belong together"):
        load_mnist("test", tmp_path, download=False)


def test_mnist_missing_file_names_it(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz"):
        load_mnist("train", tmp_path, download=False)


# ---------------------------------------------------------------- IMDb


def expected_reviews(split: str) -> list[tuple[int, int, int, str]]:
    return sorted(
        (int(polarity == "pos"), review_id, rating, text)
        for (s, polarity, review_id, rating), text in REVIEWS.items()
        if s == split
    )


@pytest.mark.parametrize("layout", ["folder", "archive"])
def test_imdb_reads_the_labelled_reviews_in_order(tmp_path, layout):
    if layout == "folder":
        write_imdb_folder(tmp_path)
    else:
        write_imdb_archive(tmp_path)
    for split in ("train", "test"):
        loaded = load_imdb(split, tmp_path, download=False)
        expected = expected_reviews(split)
        assert loaded.texts == tuple(text for *_, text in expected)
        assert loaded.labels.tolist() == [label for label, *_ in expected]
        assert loaded.ratings.tolist() == [r[2] for r in expected]
        assert loaded.ids == tuple(r[1] for r in expected)
    assert describe(load_imdb("test", tmp_path)) == "3 of the 25,000 test reviews"


def test_written_review_folder_reads_back_as_the_same_reviews(tmp_path):
    write_imdb_archive(tmp_path)
    test = load_imdb("test", tmp_path, download=False)
    folder = write_review_folder(test, tmp_path / "out" / "aclImdb" / "test")
    again = load_imdb("test", tmp_path / "out", download=False)
    assert again.texts == test.texts and again.ids == test.ids
    assert torch.equal(again.labels, test.labels)
    assert torch.equal(again.ratings, test.ratings)
    texts, labels, _ = read_review_folder(folder)  # what classify-reviews reads
    assert sorted(zip(labels.tolist(), texts, strict=True)) == sorted(
        zip(test.labels.tolist(), test.texts, strict=True)
    )


def test_imdb_truncated_archive_is_a_clear_error(tmp_path):
    archive = write_imdb_archive(tmp_path)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_imdb("train", tmp_path, download=False)


def test_imdb_official_archive_name_must_have_the_published_md5(tmp_path):
    write_imdb_archive(tmp_path, name="aclImdb_v1.tar.gz")
    with pytest.raises(ChecksumError, match="published MD5 7c2ac02c"):
        load_imdb("train", tmp_path, download=False)


def test_imdb_folder_without_one_polarity_is_an_error(tmp_path):
    folder = write_imdb_folder(tmp_path)
    for path in (folder / "test" / "pos").iterdir():
        path.unlink()
    with pytest.raises(
        DataError, match="no positive or no negative reviews for 'test'"
    ):
        load_imdb("test", tmp_path, download=False)


def test_imdb_missing_says_what_to_put_where(tmp_path):
    with pytest.raises(
        DataError, match=r"aclImdb_v1\.tar\.gz from https://ai\.stanford\.edu"
    ):
        load_imdb("train", tmp_path, download=False)


# ---------------------------------------------------------------- the shared subsets


def test_shared_subsets_load_with_the_counts_their_readme_states(shared_data):
    root = shared_data
    assert len(load_cifar10("train", root, download=False)) == 5 * 932
    assert len(load_cifar10("test", root, download=False)) == 846
    assert len(load_mnist("train", root, download=False)) == 3_009
    mnist_test = load_mnist("test", root, download=False)
    assert len(mnist_test) == 10_000 and not mnist_test.is_subset
    imdb = load_imdb("train", root, download=False)
    assert len(imdb) == 5_000 and imdb.labels.sum() == 2_500
    assert len(load_imdb("test", root, download=False)) == 5_000
