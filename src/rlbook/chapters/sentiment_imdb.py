"""Generated from chapters/sentiment_imdb.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import itertools
import os
import re
import stat
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch._higher_order_ops.scan import scan
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rlbook.budget import validate_budget
from rlbook.chapters import add_to_class
from rlbook.data import (
    SPLITS,
    ChecksumError,
    DataError,
    Source,
    check_listed_checksums,
    check_md5,
    check_split,
    fetch_source,
    missing,
    resolve_root,
)
from rlbook.projects.runs import check_positive_int, fit_epochs, hold_out
from rlbook.projects.shipping import (
    load_model,
    register_kind,
    round_to_shipped,
)
from rlbook.seeding import stream_seed, torch_stream


@dataclass(frozen=True)
class TextSet:
    """Reviews with labels (1 positive, 0 negative), star ratings and
    review ids, and where they came from."""

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
        """True when the folder held fewer reviews than the split."""
        return len(self) < self.full_size


def load_imdb(
    split: str = "train",
    root: Path | str | None = None,
    *,
    download: bool = True,
) -> TextSet:
    """IMDb's labelled reviews of ``split``, negative first, then by
    review id, from ``aclImdb/``, else an ``aclImdb*.tar.gz``, else a
    download."""
    check_split(split)
    root = resolve_root(root)
    folder = root / "aclImdb"
    if folder.is_dir():
        reviews = read_imdb_folder(folder, split)
        source = folder
    else:
        archives = (
            sorted(root.glob("aclImdb*.tar.gz")) if root.is_dir() else []
        )
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
            f"{source} holds no positive or no negative reviews for "
            f"{split!r}: expected "
            f"aclImdb/{split}/pos/<id>_<rating>.txt and "
            f"aclImdb/{split}/neg/..."
        )
    reviews = sorted(reviews)
    return TextSet(
        texts=tuple(text for *_, text in reviews),
        labels=torch.tensor([r[0] for r in reviews], dtype=torch.int64),
        ratings=torch.tensor([r[2] for r in reviews], dtype=torch.int64),
        ids=tuple(r[1] for r in reviews),
        split=split,
        full_size=IMDB_FULL_SIZE[split],
        source=source,
    )


IMDB_ARCHIVE = Source(
    "aclImdb_v1.tar.gz",
    "7c2ac02c03563afcf9b574c7e56c153a",
    ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
)
IMDB_REVIEW = re.compile(
    r"(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt"
)
IMDB_FULL_SIZE = {"train": 25_000, "test": 25_000}

MAX_REVIEW_BYTES = 1_000_000
"""The most bytes a review file may hold: IMDb's longest review is about
14 KB, so anything near this is not a review (and would cost memory to
tokenize)."""


def read_review(path: Path, max_bytes: int = MAX_REVIEW_BYTES) -> str:
    """The UTF-8 text of the review file ``path``, which must be a regular
    file (a link to one will do) of at most ``max_bytes`` bytes.

    Never blocks on a FIFO, never reads a device or a folder, and turns
    every ``OSError`` (a dangling link, a link loop, no permission) into a
    :class:`DataError` naming the file.
    """
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_NOCTTY", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise DataError(
            f"cannot read the review {str(path)!r}: "
            f"{error.strerror or error} "
            "(a dangling link, a link loop, or no permission?)"
        ) from error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DataError(
                f"{str(path)!r} is not a regular file (a folder, a FIFO "
                "or a device): "
                "a review folder must hold review files only"
            )
        if info.st_size > max_bytes:
            raise DataError(
                f"{str(path)!r} holds {info.st_size:,} bytes, more than "
                f"the {max_bytes:,} a review may have: it is not a review"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise DataError(
            f"cannot read the review {str(path)!r}: {error}"
        ) from error
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while being read
        raise DataError(
            f"{str(path)!r} holds more than the {max_bytes:,} bytes a "
            "review may have"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{str(path)!r} is not UTF-8 text ({error.reason} at byte "
            f"{error.start}); save the review as UTF-8"
        ) from error


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
                reviews[split].append(
                    (label, int(review_id), int(rating), text)
                )
    except (
        tarfile.TarError,
        EOFError,
        OSError,
        UnicodeDecodeError,
    ) as error:
        raise DataError(
            f"{archive} is truncated or corrupt ({type(error).__name__}: "
            f"{error}); delete "
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


def tokenize(text: str) -> list[str]:
    """Split a review into lowercase tokens.

    * <br /> tags (IMDb's line breaks) become spaces;
    * curly apostrophes become straight ones;
    * tokens are runs of letters or digits (any alphabet) that may hold
      inner apostrophes, so "don't" and "isn't" stay whole: the negation
      is the point. Apostrophes used as quotes ('like this') are dropped;
    * ratings such as "7/10" or "4.5/5" stay one token;
    * every "!" and "?" is a token of its own; all other punctuation,
      hyphens included, separates tokens and is dropped.
    """
    if not isinstance(text, str):
        raise ValueError(
            f"tokenize expects a str, got {type(text).__name__}"
        )
    text = LINE_BREAK.sub(" ", text.lower()).replace("\u2019", "'")
    return TOKEN.findall(text.replace("\u2018", "'"))


LINE_BREAK = re.compile(r"<br\s*/?>")
# A rating like 7/10 (one token: it is the most explicit verdict a review
# can hold), a word or number with inner apostrophes kept (don't, it's,
# 90's), or one of the two punctuation marks that carry sentiment.
TOKEN = re.compile(r"\d+(?:\.\d+)?/\d+|[^\W_]+(?:'[^\W_]+)*|[!?]")
TOKENIZER = "rlbook-imdb-v1"  # stored with a vocabulary: change it with
# tokenize(), and a shipped vocabulary is refused instead of misread


PAD, UNK = "<pad>", "<unk>"
PAD_INDEX, UNK_INDEX = 0, 1  # every vocabulary starts with these two
VOCABULARY_FORMAT = "rlbook.sentiment.vocabulary/1"


class Vocabulary:
    """Token strings to indices: <pad> is 0, <unk> is 1, then the tokens
    by descending count, ties broken alphabetically (so the same reviews
    always give the same indices)."""

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> None:
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(
                f"a vocabulary starts with {PAD!r} (index {PAD_INDEX}) "
                f"and {UNK!r} (index {UNK_INDEX}); got {tokens[:2]!r}"
            )
        if not all(isinstance(token, str) for token in tokens):
            raise ValueError("every token of a vocabulary must be a str")
        if len(set(tokens)) != len(tokens):
            repeated = next(
                t for t, n in Counter(tokens).items() if n > 1
            )
            raise ValueError(
                f"token {repeated!r} appears twice in the vocabulary"
            )
        self.itos: tuple[str, ...] = tuple(tokens)  # index to token
        self.stoi: dict[str, int] = {  # token to index
            token: i for i, token in enumerate(tokens)
        }
        self.min_freq = min_freq
        self.max_size = max_size

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> "Vocabulary":
        """Count the tokens of the training reviews; keep those seen
        min_freq times, at most max_size entries with the specials."""
        check_positive_int(min_freq, "min_freq")
        if max_size is not None and (
            not isinstance(max_size, int) or max_size < 2
        ):
            raise ValueError(
                "max_size counts <pad> and <unk> too, so it must be an "
                f"int >= 2 (or None for no limit); got {max_size!r}"
            )
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise ValueError(
                    "token_lists must hold lists of tokens, got a str: "
                    "pass [tokenize(text) for text in texts]"
                )
            counts.update(tokens)
        for special in (PAD, UNK):
            if special in counts:
                raise ValueError(
                    f"the token lists contain {special!r}, which is "
                    "reserved for the vocabulary's special entries"
                )
        kept = sorted(
            (item for item in counts.items() if item[1] >= min_freq),
            key=lambda item: (-item[1], item[0]),
        )
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls(
            [PAD, UNK, *(token for token, _ in kept)],
            min_freq=min_freq,
            max_size=max_size,
        )

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        return (
            f"Vocabulary({len(self):,} tokens, min_freq={self.min_freq})"
        )

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token strings to indices; unknown tokens give UNK_INDEX."""
        if isinstance(tokens, str):
            raise ValueError(
                "encode expects a list of tokens, got a str: tokenize it"
            )
        get = self.stoi.get
        return [get(token, UNK_INDEX) for token in tokens]

    def unknown_rate(self, token_lists: Iterable[Sequence[str]]) -> float:
        """The share of all tokens that this vocabulary maps to <unk>
        (0.0 for no tokens at all)."""
        total = unknown = 0
        stoi = self.stoi
        for tokens in token_lists:
            total += len(tokens)
            unknown += sum(1 for token in tokens if token not in stoi)
        return unknown / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record, to ship next to the weights."""
        return {
            "format": VOCABULARY_FORMAT,
            "tokenizer": TOKENIZER,
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "tokens": list(self.itos),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "Vocabulary":
        """The vocabulary to_dict wrote, for the same tokenizer."""
        if (
            not isinstance(record, dict)
            or record.get("format") != VOCABULARY_FORMAT
        ):
            found = (
                record.get("format")
                if isinstance(record, dict)
                else type(record)
            )
            raise ValueError(
                "not a vocabulary record: expected format "
                f"{VOCABULARY_FORMAT!r}, got {found!r}"
            )
        if record.get("tokenizer") != TOKENIZER:
            raise ValueError(
                "this vocabulary was built with tokenizer "
                f"{record.get('tokenizer')!r}, but tokenize() is "
                f"{TOKENIZER!r}: rebuild the vocabulary"
            )
        return cls(
            record["tokens"],
            min_freq=record["min_freq"],
            max_size=record["max_size"],
        )


def truncate(
    token_ids: Sequence[int], max_len: int, head: int | None = None
) -> list[int]:
    """Keep a long review's first head ids and its last max_len - head
    (default head: max_len // 4); cut out the middle."""
    check_positive_int(max_len, "max_len")
    if head is None:
        head = max_len // 4
    if not isinstance(head, int) or not 0 <= head <= max_len:
        raise ValueError(
            f"head must be an int in [0, max_len={max_len}], got {head!r}"
        )
    ids = list(token_ids)
    if len(ids) <= max_len:
        return ids
    tail = max_len - head
    return ids[:head] + (ids[-tail:] if tail else [])


class EncodedReviews(NamedTuple):
    """Reviews as padded token ids: what SentimentLSTM reads."""

    tokens: torch.Tensor  # (B, T) int64: ids from column 0, then PAD
    lengths: torch.Tensor  # (B,) int64: real tokens, 1 <= length <= T


def encode_batch(
    token_id_lists: Sequence[Sequence[int]],
    max_len: int,
    *,
    head: int | None = None,
) -> EncodedReviews:
    """Pad (and, past max_len, truncate) lists of ids into one batch. An
    empty review becomes one <unk>: an LSTM needs at least one step."""
    if len(token_id_lists) == 0:
        raise ValueError(
            "token_id_lists is empty: there is nothing to encode"
        )
    kept = [
        truncate(ids, max_len, head) or [UNK_INDEX]
        for ids in token_id_lists
    ]
    lengths = np.fromiter(
        (len(ids) for ids in kept), dtype=np.int64, count=len(kept)
    )
    tokens = np.full(
        (len(kept), int(lengths.max())), PAD_INDEX, dtype=np.int64
    )
    for row, ids in zip(tokens, kept, strict=True):
        row[: len(ids)] = ids
    if tokens.min() < 0:
        raise ValueError(
            "token ids must be >= 0; a negative id is no vocabulary index"
        )
    return EncodedReviews(
        torch.from_numpy(tokens), torch.from_numpy(lengths)
    )


def encode_texts(
    texts: Iterable[str],
    vocab: Vocabulary,
    max_len: int,
    *,
    head: int | None = None,
) -> EncodedReviews:
    """tokenize, Vocabulary.encode and encode_batch in one call."""
    return encode_batch(
        [vocab.encode(tokenize(text)) for text in texts],
        max_len,
        head=head,
    )


@dataclass(frozen=True)
class SentimentConfig:
    """Every setting of the LSTM's run (and of the data it reads)."""

    validation_share: float = 0.1
    """share of the training reviews held out to pick the epoch"""
    min_freq: int = 2
    """vocabulary: least count of a kept word"""
    max_size: int = 20_000
    """vocabulary: most words kept, the most frequent first"""
    max_len: int = 400
    """most tokens read per review, head and tail kept (see truncate)"""
    embed_dim: int = 128
    """size of a word's embedding"""
    hidden_size: int = 128
    """LSTM hidden units per direction"""
    num_layers: int = 2
    """stacked LSTM layers"""
    dropout: float = 0.3
    """dropout probability in the model"""
    pooling: str = "max"
    """a review's features: the "last" states or the "max" over tokens"""
    epochs: int = 8
    """passes over the training reviews"""
    batch_size: int = 32
    """reviews per Adam step"""
    lr: float = 2e-3
    """Adam's learning rate"""
    weight_decay: float = 0.0
    """Adam's weight decay"""
    grad_clip: float = 1.0
    """largest gradient norm; larger gradients are scaled down to it"""


# The shipped model's run (scripts/train_sentiment.py).
FULL_CONFIG = SentimentConfig(
    max_len=400, embed_dim=64, hidden_size=64, pooling="max", epochs=6
)
SENTIMENT_CONFIGS: dict[str, SentimentConfig] = {
    # Seconds: proves the code runs; its accuracy means nothing.
    "smoke": SentimentConfig(
        max_size=2_000, max_len=64, embed_dim=16, hidden_size=16, epochs=1
    ),
    # The first two epochs of the full run: what the CI build trains.
    "ci": replace(FULL_CONFIG, epochs=2),
    "full": FULL_CONFIG,
}


def sentiment_config(budget: str) -> SentimentConfig:
    """The LSTM's settings at budget (smoke, ci or full)."""
    return SENTIMENT_CONFIGS[validate_budget(budget)]


POOLINGS = ("last", "max")  # how SentimentLSTM reads a review


class ReviewSplit(NamedTuple):
    """Reviews ready for the models: three encoded parts, their labels,
    and the token lists of the training and test reviews."""

    vocabulary: Vocabulary
    train: EncodedReviews
    valid: EncodedReviews
    test: EncodedReviews
    train_labels: torch.Tensor
    valid_labels: torch.Tensor
    test_labels: torch.Tensor
    train_tokens: list[list[str]]
    test_tokens: list[list[str]]


def prepare_reviews(
    train_texts: Sequence[str],
    train_labels: torch.Tensor,
    test_texts: Sequence[str],
    test_labels: torch.Tensor,
    config: SentimentConfig,
    seed: int,
) -> ReviewSplit:
    """Hold out a seeded share of the training reviews for validation,
    count the vocabulary on the rest, encode all three parts."""
    valid_idx, train_idx = (
        part.tolist()
        for part in hold_out(
            len(train_texts), config.validation_share, seed, "reviews"
        )
    )
    tokens = [tokenize(text) for text in train_texts]
    train_tokens = [tokens[i] for i in train_idx]
    vocabulary = Vocabulary.build(
        train_tokens, min_freq=config.min_freq, max_size=config.max_size
    )
    test_tokens = [tokenize(text) for text in test_texts]

    def encode(token_lists: Sequence[Sequence[str]]) -> EncodedReviews:
        return encode_batch(
            [vocabulary.encode(t) for t in token_lists], config.max_len
        )

    return ReviewSplit(
        vocabulary=vocabulary,
        train=encode(train_tokens),
        valid=encode([tokens[i] for i in valid_idx]),
        test=encode(test_tokens),
        train_labels=train_labels[train_idx],
        valid_labels=train_labels[valid_idx],
        test_labels=test_labels,
        train_tokens=train_tokens,
        test_tokens=test_tokens,
    )


def sentiment_spec_model(
    config: SentimentConfig, vocab_size: int
) -> dict[str, Any]:
    """The model's constructor arguments, as its shipped spec has them."""
    return {
        "vocab_size": vocab_size,
        "embed_dim": config.embed_dim,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "bidirectional": True,
        "dropout": config.dropout,
        "pooling": config.pooling,
    }


def sentiment_spec(
    config: SentimentConfig, vocabulary: Vocabulary
) -> dict[str, Any]:
    """The sentiment-lstm spec of a shipped model (projects.shipping)."""
    return {
        "model": sentiment_spec_model(config, len(vocabulary)),
        "vocabulary": vocabulary.to_dict(),
        "max_len": config.max_len,
        "head": None,
    }


@register_kind("sentiment-lstm")
def build_sentiment(spec: dict[str, Any]) -> tuple[nn.Module, dict]:
    """A shipped model's network, from its spec, and its extras."""
    vocabulary = Vocabulary.from_dict(dict(spec["vocabulary"]))
    model = SentimentLSTM(**dict(spec["model"]))
    if model.embedding.num_embeddings != len(vocabulary):
        raise ValueError(
            f"the model embeds {model.embedding.num_embeddings} tokens "
            f"but the vocabulary has {len(vocabulary)}"
        )
    max_len, head = spec["max_len"], spec["head"]
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be an int >= 1, got {max_len!r}")
    if head is not None and (
        not isinstance(head, int)
        or isinstance(head, bool)
        or not 0 <= head <= max_len
    ):
        raise ValueError(
            f"head must be null or an int in [0, max_len={max_len}], "
            f"got {head!r}"
        )
    extras = {"vocabulary": vocabulary, "max_len": max_len, "head": head}
    return model, extras


def add_bigrams(tokens: Sequence[str]) -> list[str]:
    """The tokens, then each pair of neighbours as one token: "not good"
    for a linear model to tell apart from "good"."""
    return [*tokens, *(f"{a} {b}" for a, b in itertools.pairwise(tokens))]


class BowInputs(NamedTuple):
    """Reviews as weighted bags of token ids, in the format of
    nn.EmbeddingBag: review b's entries are ids[offsets[b]:offsets[b+1]]
    (to the end for the last review)."""

    ids: torch.Tensor  # (E,) int64: every review's distinct token ids
    offsets: torch.Tensor  # (B,) int64: where each review's entries start
    weights: torch.Tensor  # (E,) float32: each entry's feature value

    def to(self, device: torch.device | str) -> "BowInputs":
        return BowInputs(*(tensor.to(device) for tensor in self))


def flatten_ids(
    token_id_lists: Sequence[Sequence[int]], vocab_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Review index and token id of every token, as two int64 arrays."""
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(
            f"vocab_size must be an int >= 2, got {vocab_size!r}"
        )
    if len(token_id_lists) == 0:
        raise ValueError(
            "token_id_lists is empty: there is nothing to encode"
        )
    sizes = np.fromiter(
        (len(ids) for ids in token_id_lists), dtype=np.int64
    )
    ids = np.fromiter(
        (i for row in token_id_lists for i in row),
        dtype=np.int64,
        count=int(sizes.sum()),
    )
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)][0]
        raise ValueError(
            f"token id {bad} is outside the vocabulary [0, {vocab_size})"
        )
    doc = np.repeat(np.arange(len(token_id_lists), dtype=np.int64), sizes)
    return doc, ids


def inverse_document_frequency(
    token_id_lists: Sequence[Sequence[int]], vocab_size: int
) -> torch.Tensor:
    """idf(w) = log((1 + N) / (1 + df(w))) + 1, float32 (vocab_size,),
    where df(w) counts the N reviews that contain w (scikit-learn's)."""
    doc, ids = flatten_ids(token_id_lists, vocab_size)
    present = np.unique(doc * vocab_size + ids) % vocab_size
    df = np.bincount(present, minlength=vocab_size)
    idf = np.log((1 + len(token_id_lists)) / (1 + df)) + 1
    return torch.from_numpy(idf.astype(np.float32))


def bow_inputs(
    token_id_lists: Sequence[Sequence[int]], idf: torch.Tensor
) -> BowInputs:
    """Bag-of-words features: idf[token] for each token a review holds,
    scaled to unit L2 norm per review; <pad> and <unk> dropped."""
    if not isinstance(idf, torch.Tensor) or idf.dim() != 1:
        raise ValueError(
            "idf must be a (vocab_size,) tensor: inverse_document_"
            "frequency(training ids, len(vocab)), or torch.ones("
            "len(vocab)) for no idf weighting"
        )
    vocab_size = idf.shape[0]
    doc, ids = flatten_ids(token_id_lists, vocab_size)
    keep = ids > UNK_INDEX
    keys = np.unique(doc[keep] * vocab_size + ids[keep])
    doc, ids = keys // vocab_size, keys % vocab_size
    tf = np.ones(len(ids))  # binary: whether, not how often
    weights = tf * idf.detach().cpu().numpy().astype(np.float64)[ids]
    n = len(token_id_lists)
    norms = np.sqrt(np.bincount(doc, weights=weights**2, minlength=n))
    weights /= norms[doc]
    offsets = np.searchsorted(doc, np.arange(n))
    return BowInputs(
        torch.from_numpy(ids.astype(np.int64)),
        torch.from_numpy(offsets.astype(np.int64)),
        torch.from_numpy(weights.astype(np.float32)),
    )


class BagOfWordsLogReg(nn.Module):
    """Logistic regression on bags of words: logit = bias + sum_w
    weight[w] * feature[w], by nn.EmbeddingBag (the (B, vocab_size)
    feature matrix is never built). Weights start at zero."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        if (
            not isinstance(vocab_size, int)
            or isinstance(vocab_size, bool)
            or vocab_size < 2
        ):
            raise ValueError(
                f"vocab_size must be an int >= 2, got {vocab_size!r}"
            )
        self.bag = nn.EmbeddingBag(vocab_size, 1, mode="sum")
        nn.init.zeros_(self.bag.weight)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(
        self,
        ids: torch.Tensor,
        offsets: torch.Tensor,
        weights: torch.Tensor,
    ) -> torch.Tensor:
        """Logits (B,) of the bags: model(*bow_inputs(...))."""
        return (
            self.bag(ids, offsets, per_sample_weights=weights).squeeze(1)
            + self.bias
        )


def train_bow(
    model: BagOfWordsLogReg,
    inputs: BowInputs,
    labels: torch.Tensor,
    *,
    l2: float = 1e-4,
    max_iter: int = 200,
    tolerance: float = 1e-7,
) -> dict[str, float]:
    """Minimise mean BCE + l2 / 2 * ||weights||^2 (the bias is not
    penalised) with full-batch L-BFGS: convex, so no learning rate to
    tune and no seed. l2 plays the role of scikit-learn's 1 / (C N)."""
    check_labels(labels, inputs.offsets.shape[0])
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2!r}")
    check_positive_int(max_iter, "max_iter")
    device = model_device(model, None)
    inputs = inputs.to(device)
    y = labels.to(device, torch.float32)
    optimizer = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tolerance,
        tolerance_change=tolerance,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    model.train()

    def objective() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(*inputs), y)
        loss = loss + 0.5 * l2 * model.bag.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    with torch.no_grad():
        logits = model(*inputs)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        loss = loss + 0.5 * l2 * model.bag.weight.square().sum()
        train_accuracy = ((logits > 0) == (y > 0.5)).float().mean()
    state = optimizer.state[optimizer._params[0]]
    return {
        "loss": loss.item(),
        "iterations": float(state.get("n_iter", 0)),
        "accuracy": train_accuracy.item(),
    }


def model_device(
    model: nn.Module, device: torch.device | str | None
) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device


def check_labels(labels: torch.Tensor, n: int) -> None:
    if labels.shape != (n,):
        raise ValueError(
            f"labels must be ({n},), one per review, got "
            f"{tuple(labels.shape)}"
        )


def check_batch(tokens: torch.Tensor, lengths: torch.Tensor) -> None:
    """Raise a ValueError unless tokens is (B, T) int64, lengths (B,)."""
    if tokens.dim() != 2 or tokens.dtype != torch.int64:
        raise ValueError(
            "tokens must be a (batch, time) int64 tensor, got "
            f"{tuple(tokens.shape)} {tokens.dtype}"
        )
    if lengths.dim() != 1 or lengths.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"lengths must be ({tokens.shape[0]},), one per review, got "
            f"{tuple(lengths.shape)}"
        )


@torch.no_grad()
def predict(
    model: nn.Module,
    inputs: EncodedReviews | BowInputs,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Probabilities (N,) float32 on the CPU that each review is
    positive, in eval mode (no dropout): an LSTM in batches of reviews of
    similar length, a bag-of-words model all at once."""
    check_positive_int(batch_size, "batch_size")
    device = model_device(model, device)
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, BagOfWordsLogReg):
            if not isinstance(inputs, BowInputs):
                raise ValueError(
                    "a BagOfWordsLogReg reads BowInputs (see bow_inputs)"
                )
            return torch.sigmoid(model(*inputs.to(device))).cpu()
        # the chapter's SentimentLSTM, whichever cell or module defined it
        if not hasattr(model, "lstm") or not isinstance(
            inputs, EncodedReviews
        ):
            raise ValueError(
                "predict takes a SentimentLSTM with EncodedReviews (see "
                "encode_batch) or a BagOfWordsLogReg with BowInputs"
            )
        tokens, lengths = inputs
        check_batch(tokens, lengths)
        lengths = lengths.cpu()
        order = torch.sort(lengths, stable=True).indices
        probabilities = torch.empty(len(lengths))
        for idx in order.split(batch_size):
            width = int(lengths[idx].max())
            x = tokens[idx.to(tokens.device), :width].to(device)
            probabilities[idx] = (
                torch.sigmoid(model(x, lengths[idx])).float().cpu()
            )
        return probabilities
    finally:
        model.train(was_training)


def accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of reviews whose probability is on their label's side of
    0.5."""
    if probabilities.dim() != 1:
        shape = tuple(probabilities.shape)
        raise ValueError(f"probabilities must be (N,), got {shape}")
    check_labels(labels, probabilities.shape[0])
    predicted = probabilities.detach().cpu() >= 0.5
    return (
        (predicted == (labels.detach().cpu() > 0.5)).float().mean().item()
    )


def bag_of_words_baseline(
    split: ReviewSplit, *, bigrams: bool = True, l2: float = 1e-4
) -> dict[str, float]:
    """The logistic regression on the LSTM's training reviews (with their
    bigrams), and its test accuracy; validation reviews are not used."""
    expand = add_bigrams if bigrams else list
    train_tokens = [expand(t) for t in split.train_tokens]
    test_tokens = [expand(t) for t in split.test_tokens]
    vocabulary = Vocabulary.build(train_tokens, min_freq=2)
    train_ids = [vocabulary.encode(t) for t in train_tokens]
    idf = inverse_document_frequency(train_ids, len(vocabulary))
    model = BagOfWordsLogReg(len(vocabulary))
    start = time.perf_counter()
    fit = train_bow(
        model, bow_inputs(train_ids, idf), split.train_labels, l2=l2
    )
    seconds = time.perf_counter() - start
    test = bow_inputs([vocabulary.encode(t) for t in test_tokens], idf)
    return {
        "test_accuracy": accuracy(
            predict(model, test), split.test_labels
        ),
        "train_accuracy": fit["accuracy"],
        "features": float(len(vocabulary)),
        "seconds": seconds,
    }


class SentimentLSTM(nn.Module):
    """Embedding, a (bidirectional) multi-layer LSTM, a linear layer to
    one logit; pooling "last" (final states) or "max" (over tokens)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.3,
        pad_index: int = PAD_INDEX,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(
                f"pooling must be one of {', '.join(POOLINGS)}, "
                f"got {pooling!r}"
            )
        self.pooling = pooling
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            check_positive_int(value, name)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"dropout must be in [0, 1), got {dropout!r}"
            )
        if not 0 <= pad_index < vocab_size:
            raise ValueError(
                "pad_index must be a valid index into the "
                f"{vocab_size} embeddings, got {pad_index!r}"
            )
        self.embedding = nn.Embedding(
            vocab_size, embed_dim, padding_idx=pad_index
        )
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.directions = 2 if bidirectional else 1
        self.head = nn.Linear(self.directions * hidden_size, 1)

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B,) of tokens (B, T), lengths (B,) each in [1, T]."""
        check_batch(tokens, lengths)
        embedded = self.dropout(self.embedding(tokens))
        packed = pack_padded_sequence(
            embedded,
            lengths.cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        # h_n: (layers * directions, B, H), in input order
        output, (h_n, _) = self.lstm(packed)
        if self.pooling == "max":
            # (B, longest, dirs * H); padding can never be the max
            padded, _ = pad_packed_sequence(
                output, batch_first=True, padding_value=float("-inf")
            )
            features = padded.amax(dim=1)
        else:
            # (B, dirs, H): forward, then backward
            last_layer = h_n[-self.directions :].transpose(0, 1)
            features = last_layer.reshape(tokens.shape[0], -1)
        return self.head(self.dropout(features)).squeeze(1)


def masked_lstm_scan(
    gates_x: torch.Tensor,
    inside: torch.Tensor,
    w_hh: torch.Tensor,
    reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM direction over a padded batch, each row's state frozen
    outside its review: gates_x (T, B, 4H) is the input's share of the
    gates (i, f, g, o), inside (T, B, 1) marks real tokens. Returns each
    row's last state (B, H) and every step's (T, B, H). Under
    torch.export or torch.compile the steps are one scan loop, whatever
    T; in eager mode, a Python loop of the same steps."""
    batch, hidden = gates_x.shape[1], w_hh.shape[1]

    def step(
        carry: tuple[torch.Tensor, torch.Tensor],
        xs: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        (h, c), (gates_t, inside_t) = carry, xs
        i, f, g, o = (gates_t + h @ w_hh.T).chunk(4, dim=1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(c_next)
        # padding: keep the state as it was
        h = torch.where(inside_t, h_next, h)
        c = torch.where(inside_t, c_next, c)
        # Reading `batch` inside the step makes torch.export pass the
        # batch size into the loop; AOTInductor (torch 2.13) cannot size
        # the loop's output without it (KeyError on the batch symbol).
        return (h, c), h.reshape(batch, hidden).clone()

    zeros = gates_x.new_zeros(batch, hidden)
    if torch.compiler.is_compiling():  # torch.export or torch.compile
        # One loop node in the graph, for any T (a Python loop would be
        # unrolled and fix T). In eager mode, scan compiles itself for
        # every new shape, which costs seconds: the plain loop below.
        (h_last, _), h_all = scan(
            step,
            (zeros, zeros.clone()),
            (gates_x, inside),
            reverse=reverse,
        )
        return h_last, h_all
    steps = range(gates_x.shape[0])
    carry, h_steps = (zeros, zeros), [zeros] * gates_x.shape[0]
    for t in reversed(steps) if reverse else steps:
        carry, h_steps[t] = step(carry, (gates_x[t], inside[t]))
    return carry[0], torch.stack(h_steps)


@add_to_class(SentimentLSTM)
def forward_padded(
    self, tokens: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """forward's logits, computed on the padded batch (exportable)."""
    check_batch(tokens, lengths)
    x = self.dropout(self.embedding(tokens))  # (B, T, E)
    steps = torch.arange(tokens.shape[1], device=tokens.device)
    lengths = lengths.to(tokens.device)
    inside = (steps[None, :] < lengths[:, None]).T  # (T, B)
    inside = inside.unsqueeze(-1)  # (T, B, 1): broadcasts over the state
    finals: list[torch.Tensor] = []
    for layer in range(self.lstm.num_layers):
        if layer > 0:
            x = F.dropout(x, self.lstm.dropout, self.training)
        outputs, finals = [], []
        for reverse in (False, True)[: self.directions]:
            suffix = f"_l{layer}" + ("_reverse" if reverse else "")
            w_ih = getattr(self.lstm, "weight_ih" + suffix)
            w_hh = getattr(self.lstm, "weight_hh" + suffix)
            bias = getattr(self.lstm, "bias_ih" + suffix) + getattr(
                self.lstm, "bias_hh" + suffix
            )
            # (T, B, 4H): the input's share of the gates, every step
            gates_x = (x @ w_ih.T + bias).transpose(0, 1)
            h_last, h_all = masked_lstm_scan(
                gates_x, inside, w_hh, reverse
            )
            outputs.append(h_all.transpose(0, 1))  # (B, T, H)
            finals.append(h_last)
        x = torch.cat(outputs, dim=2)
    if self.pooling == "max":
        real = inside.transpose(0, 1)  # (B, T, 1)
        features = torch.where(real, x, float("-inf")).amax(dim=1)
    else:
        features = torch.cat(finals, dim=1)  # (B, directions * H)
    return self.head(self.dropout(features)).squeeze(1)


def build_lstm(config: SentimentConfig, vocab_size: int) -> SentimentLSTM:
    """The BiLSTM of config (its weights from torch's global stream)."""
    return SentimentLSTM(**sentiment_spec_model(config, vocab_size))


def length_batches(
    lengths: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    pool_batches: int,
) -> list[torch.Tensor]:
    """Shuffle, cut into pools of pool_batches batches, sort each pool by
    length and cut it into batches, shuffle the batches: a batch is
    padded only to its own longest review (pool_batches=1: a shuffle)."""
    order = torch.randperm(len(lengths), generator=generator)
    pool = batch_size * pool_batches
    batches: list[torch.Tensor] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        by_length = torch.sort(lengths[chunk], stable=True).indices
        batches.extend(chunk[by_length].split(batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


def train_lstm_epoch(
    model: SentimentLSTM,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    grad_clip: float | None = 1.0,
    pool_batches: int = 32,
) -> dict[str, float]:
    """One pass over the reviews in minibatches, gradients clipped."""
    n = tokens.shape[0]
    check_batch(tokens, lengths)
    check_labels(labels, n)
    check_positive_int(batch_size, "batch_size")
    check_positive_int(pool_batches, "pool_batches")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(
            f"grad_clip must be > 0 or None, got {grad_clip!r}"
        )
    device = model_device(model, device)
    lengths = lengths.cpu()  # packing reads them on the CPU
    batches = length_batches(lengths, batch_size, generator, pool_batches)
    longest = torch.stack(
        [lengths[idx].max() for idx in batches]
    ).tolist()
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    norm_sum = torch.zeros((), device=device)
    for idx, width in zip(batches, longest, strict=True):
        x = tokens[idx.to(tokens.device), :width]
        x = x.to(device, non_blocking=True)
        y = labels[idx.to(labels.device)]
        y = y.to(device, torch.float32, non_blocking=True)
        logits = model(x, lengths[idx])
        loss = F.binary_cross_entropy_with_logits(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        else:
            norm = nn.utils.get_total_norm(
                [p.grad for p in model.parameters() if p.grad is not None]
            )
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
        correct += ((logits.detach() > 0) == (y > 0.5)).sum()
        norm_sum += norm.detach().to(device)
    return {
        "loss": loss_sum.item() / n,
        "accuracy": correct.item() / n,  # dropout on, as the epoch went
        "grad_norm": norm_sum.item() / len(batches),  # before clipping
        "batches": float(len(batches)),
    }


@dataclass
class LSTMRun:
    """A run's curves, and both sets of weights (rounded to float16, as
    they ship) with their test accuracy."""

    config: SentimentConfig
    history: list[dict[str, float]]
    best_epoch: int
    best: SentimentLSTM
    final: SentimentLSTM
    best_test_accuracy: float
    final_test_accuracy: float
    seconds: float
    resumed_from: int


def train_sentiment_lstm(
    split: ReviewSplit,
    config: SentimentConfig,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> LSTMRun:
    """Train config.epochs epochs; test the best and final weights."""
    device = torch.device(device)
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_lstm(config, len(split.vocabulary)).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch_stream(seed, "data")  # batch order
    torch.manual_seed(stream_seed(seed, "dropout"))

    def train_epoch() -> dict[str, float]:
        return train_lstm_epoch(
            model,
            *split.train,
            split.train_labels,
            optimizer,
            batch_size=config.batch_size,
            generator=generator,
            device=device,
            grad_clip=config.grad_clip,
        )

    def validate() -> float:
        probabilities = predict(model, split.valid, device=device)
        return accuracy(probabilities, split.valid_labels)

    start = time.perf_counter()
    result = fit_epochs(
        model,
        optimizer,
        epochs=config.epochs,
        train_epoch=train_epoch,
        validate=validate,
        generator=generator,
        checkpoint=checkpoint,
        config={**asdict(config), "seed": seed},
        on_epoch=on_epoch,
    )
    seconds = time.perf_counter() - start

    def shipped(state: dict[str, torch.Tensor]) -> SentimentLSTM:
        copy = build_lstm(config, len(split.vocabulary))
        copy.load_state_dict(state)
        return round_to_shipped(copy).eval()

    def test(model: SentimentLSTM) -> float:
        return accuracy(predict(model, split.test), split.test_labels)

    best, final = shipped(result.best_state), shipped(result.final_state)
    return LSTMRun(
        config=config,
        history=result.history,
        best_epoch=result.best_epoch,
        best=best,
        final=final,
        best_test_accuracy=test(best),
        final_test_accuracy=test(final),
        seconds=seconds,
        resumed_from=result.resumed_from,
    )


def read_review_folder(
    folder: str | Path,
) -> tuple[list[str], torch.Tensor, list[Path]]:
    """Texts, (N,) int64 labels and files of the reviews under
    folder/pos/*.txt (label 1) and folder/neg/*.txt (label 0), the layout
    of aclImdb/test: negative first, each in file-name order."""
    root = Path(folder)
    layout = (
        "expected <folder>/pos/*.txt (positive reviews) and "
        "<folder>/neg/*.txt (negative reviews), the layout of "
        "aclImdb/test"
    )
    if not root.is_dir():
        raise DataError(f"no folder at {str(root)!r}: {layout}")
    missing = [
        name for name in ("pos", "neg") if not (root / name).is_dir()
    ]
    if missing:
        subfolders = " and ".join(f"{name}/" for name in missing)
        raise DataError(
            f"{str(root)!r} has no {subfolders} subfolder: {layout}"
        )
    try:
        files = [
            (label, path)
            for label, name in ((0, "neg"), (1, "pos"))
            for path in sorted((root / name).glob("*.txt"))
        ]
    except OSError as error:
        raise DataError(
            f"cannot list the reviews in {str(root)!r}: {error}"
        ) from error
    if not files:
        raise DataError(
            f"{str(root)!r}: pos/ and neg/ hold no .txt file; {layout}"
        )
    texts = [read_review(path) for _, path in files]
    labels = torch.tensor(
        [label for label, _ in files], dtype=torch.int64
    )
    return texts, labels, [path for _, path in files]


def classify_reviews(
    artifact: str | Path, folder: str | Path, *, batch_size: int = 64
) -> dict[str, Any]:
    """Classify every review in folder with the shipped model in
    artifact: what python -m rlbook classify-reviews prints."""
    shipped = load_model(artifact, kind="sentiment-lstm")
    texts, labels, _ = read_review_folder(folder)
    start = time.perf_counter()
    inputs = encode_texts(
        texts,
        shipped.extras["vocabulary"],
        shipped.extras["max_len"],
        head=shipped.extras["head"],
    )
    probabilities = predict(shipped.model, inputs, batch_size=batch_size)
    seconds = time.perf_counter() - start
    positive = int(labels.sum())
    return {
        "artifact": str(artifact),
        "folder": str(folder),
        "n": len(texts),
        "positive": positive,
        "negative": len(texts) - positive,
        "predicted_positive": int((probabilities >= 0.5).sum()),
        "accuracy": accuracy(probabilities, labels),
        "seconds": round(seconds, 3),
    }


def write_review_folder(reviews: TextSet, folder: Path | str) -> Path:
    """Write ``reviews`` as ``folder/pos/<id>_<rating>.txt`` and
    ``folder/neg/...``.

    The layout of ``aclImdb/test``: what ``python -m rlbook
    classify-reviews`` reads, for reviews that came from an archive.
    Existing files of the same names are overwritten; a link of the same
    name is replaced, never followed, and a ``pos`` or ``neg`` that is a
    link is refused. Returns ``folder``.
    """
    folder = Path(folder)
    for polarity in ("pos", "neg"):
        sub = folder / polarity
        if sub.is_symlink():
            raise DataError(
                f"{str(sub)!r} is a link: reviews are written into "
                f"{str(folder)!r} "
                "itself, never through a link to elsewhere; remove the "
                "link"
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
            folder / polarity / f"{review_id}_{rating}.txt",
            text.encode("utf-8"),
        )
    return folder


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``; an existing link there is replaced,
    never followed."""
    if path.is_symlink():
        path.unlink()
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_TRUNC
        | getattr(os, "O_NOFOLLOW", 0)
    )
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        raise DataError(f"cannot write {str(path)!r}: {error}") from error
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class ExportableSentimentLSTM(nn.Module):
    """A SentimentLSTM (its weights shared) whose forward is its
    exportable padded path, forward_padded."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B,) of tokens (B, T) int64 with lengths (B,) int64."""
        return self.model.forward_padded(tokens, lengths)


def export_lstm(
    model: nn.Module, *, max_batch: int = 1024, max_len: int = 4096
) -> torch.export.ExportedProgram:
    """torch.export the model in eval mode, for 1 <= B <= max_batch
    reviews of 1 <= T <= max_len tokens; for AOTInductor."""
    if not hasattr(model, "forward_padded"):  # not a SentimentLSTM
        kind = type(model).__name__
        raise ValueError(f"export_lstm takes a SentimentLSTM, not {kind}")
    for name, value in (("max_batch", max_batch), ("max_len", max_len)):
        if not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an int >= 2, got {value!r}")
    device = next(model.parameters()).device
    # Sizes that are neither 0 nor 1, so that export keeps them symbolic.
    tokens = torch.full(
        (2, 2), UNK_INDEX, dtype=torch.int64, device=device
    )
    lengths = torch.tensor([2, 1], dtype=torch.int64, device=device)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    steps = torch.export.Dim("time", min=1, max=max_len)
    was_training = model.training
    try:
        return torch.export.export(
            ExportableSentimentLSTM(model).eval(),
            (tokens, lengths),
            dynamic_shapes={
                "tokens": {0: batch, 1: steps},
                "lengths": {0: batch},
            },
        )
    finally:
        model.train(was_training)
