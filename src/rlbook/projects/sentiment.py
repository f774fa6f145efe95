"""Sentiment analysis on IMDb reviews: tokens, vocabulary, a BiLSTM and a bag-of-words baseline.

The pieces of the text-classification project, each usable alone:

* :func:`tokenize`, :class:`Vocabulary`, :func:`truncate` and
  :func:`encode_batch`: review text to padded ``(B, T)`` token ids and their
  ``(B,)`` lengths. The vocabulary is built from the training split only, so
  the test split's unknown words are measured (:meth:`Vocabulary.unknown_rate`)
  instead of leaking into the model.
* The model, ``SentimentLSTM`` (embedding, a 2-layer bidirectional LSTM, one
  logit), is on the chapter's page, generated into
  :mod:`rlbook.chapters.sentiment_imdb`. It trains on packed sequences and
  has a second path with the same weights on padded input
  (``forward_padded``, built on :func:`masked_lstm_scan`) that
  :func:`torch.export.export` and AOTInductor accept with a dynamic batch
  *and* length (:func:`export_lstm`). Both paths give the same logits.
* :class:`BagOfWordsLogReg` with :func:`bow_inputs`,
  :func:`inverse_document_frequency` and :func:`add_bigrams`: logistic
  regression on binary tf-idf bag-of-words features, the strong simple
  baseline (about 88% on the full IMDb with unigrams, about 90% with bigrams
  added; Maas et al., 2011; Wang and Manning, 2012).
* :func:`train_bow`, :func:`predict` and :func:`accuracy`; the LSTM's
  epoch (``train_lstm_epoch``) is on the chapter's page, generated into
  :mod:`rlbook.chapters.sentiment_imdb`, and stands on
  :func:`length_batches`, :func:`check_batch` and :func:`check_labels`.

Randomness: the data order comes from the ``torch.Generator`` passed in;
initial weights and dropout come from torch's global generator, so seed it
(``torch.manual_seed(stream_seed(seed, "init"))``, see :mod:`rlbook.seeding`)
before building the model and again before training. Two CPU runs with the
same seeds then end with bit-identical weights.

Introduced in the chapter *Sentiment analysis: an LSTM on IMDb reviews*.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch._higher_order_ops.scan import scan

__all__ = [
    "PAD",
    "PAD_INDEX",
    "TOKENIZER",
    "UNK",
    "UNK_INDEX",
    "BagOfWordsLogReg",
    "BowInputs",
    "EncodedReviews",
    "ExportableSentimentLSTM",
    "Vocabulary",
    "accuracy",
    "add_bigrams",
    "bow_inputs",
    "check_batch",
    "check_labels",
    "classify_reviews",
    "encode_batch",
    "encode_texts",
    "export_lstm",
    "inverse_document_frequency",
    "length_batches",
    "masked_lstm_scan",
    "model_device",
    "predict",
    "read_review_folder",
    "tokenize",
    "train_bow",
    "truncate",
]

PAD, UNK = "<pad>", "<unk>"
PAD_INDEX, UNK_INDEX = 0, 1  # fixed: every vocabulary starts with these two
TOKENIZER = "rlbook-imdb-v1"  # stored with a vocabulary; change it with tokenize()
VOCABULARY_FORMAT = "rlbook.sentiment.vocabulary/1"
POOLINGS = ("last", "max")  # how SentimentLSTM reads a review's representation


# ---------------------------------------------------------------- tokens

_LINE_BREAK = re.compile(r"<br\s*/?>")
# A rating like 7/10 (one token: it is the most explicit verdict a review can
# hold), a word or number with inner apostrophes kept (don't, it's, 90's), or
# one of the two punctuation marks that carry sentiment.
_TOKEN = re.compile(r"\d+(?:\.\d+)?/\d+|[^\W_]+(?:'[^\W_]+)*|[!?]")


def tokenize(text: str) -> list[str]:
    """Split a review into lowercase tokens.

    The choices, in order:

    * lowercase everything ("Great" and "great" are one word to a model that
      sees 25,000 reviews);
    * the ``<br />`` tags that IMDb reviews use as line breaks become spaces
      (they are markup, not words, and would otherwise glue two words);
    * curly apostrophes become straight ones;
    * tokens are runs of letters or digits (any alphabet) that may hold inner
      apostrophes, so "don't" and "isn't" stay whole: the negation is the
      point. Apostrophes used as quotes ('like this') are dropped;
    * ratings such as "7/10" or "4.5/5" stay one token;
    * every "!" and "?" is a token of its own; all other punctuation, hyphens
      included ("well-made" gives "well", "made"), separates tokens and is
      dropped.

    Example: ``tokenize("Don't watch it!<br /><br />3/10")`` is
    ``["don't", "watch", "it", "!", "3/10"]``.
    """
    if not isinstance(text, str):
        raise ValueError(f"tokenize expects a str, got {type(text).__name__}")
    text = _LINE_BREAK.sub(" ", text.lower()).replace("\u2019", "'")
    return _TOKEN.findall(text.replace("\u2018", "'"))


def add_bigrams(tokens: Sequence[str]) -> list[str]:
    """The tokens followed by each pair of neighbours as one token ``"not good"``.

    For the bag-of-words baseline: bigrams let a linear model see "not good"
    apart from "good". Build its vocabulary from the training reviews passed
    through this function.
    """
    return [*tokens, *(f"{a} {b}" for a, b in itertools.pairwise(tokens))]


class Vocabulary:
    """Token strings to indices: ``<pad>`` is 0, ``<unk>`` is 1, then by frequency.

    Build it with :meth:`build` from the *training* split's token lists only.
    Tokens are ordered by descending count, ties broken alphabetically, so
    the same reviews always give the same indices.

    Args:
        tokens: every token, index order, starting with ``<pad>`` and ``<unk>``.
        min_freq, max_size: how it was built (kept for :meth:`to_dict`).
    """

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
                f"a vocabulary starts with {PAD!r} (index {PAD_INDEX}) and {UNK!r} "
                f"(index {UNK_INDEX}); got {tokens[:2]!r}"
            )
        if not all(isinstance(token, str) for token in tokens):
            raise ValueError("every token of a vocabulary must be a str")
        if len(set(tokens)) != len(tokens):
            repeated = next(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"token {repeated!r} appears twice in the vocabulary")
        self.itos: tuple[str, ...] = tuple(tokens)
        """Index to token."""
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(tokens)}
        """Token to index."""
        self.min_freq = min_freq
        self.max_size = max_size

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count tokens over ``token_lists`` and keep those seen ``min_freq`` times.

        Args:
            token_lists: the training reviews, each a list of tokens.
            min_freq: a token seen fewer times becomes ``<unk>``.
            max_size: keep at most this many entries, the two specials
                included (so it is the embedding table's row count).

        Raises:
            ValueError: for ``min_freq < 1``, ``max_size < 2``, or a token
                spelled like one of the specials.
        """
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < 2):
            raise ValueError(
                f"max_size counts <pad> and <unk> too, so it must be an int >= 2 "
                f"(or None for no limit); got {max_size!r}"
            )
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise ValueError(
                    "token_lists must hold lists of tokens, got a str: pass "
                    "[tokenize(text) for text in texts]"
                )
            counts.update(tokens)
        for special in (PAD, UNK):
            if special in counts:
                raise ValueError(
                    f"the token lists contain {special!r}, which is reserved for the "
                    "vocabulary's special entries"
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

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    __hash__ = None  # type: ignore[assignment]  # mutable attributes: not hashable

    def __repr__(self) -> str:
        return f"Vocabulary({len(self):,} tokens, min_freq={self.min_freq})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token strings to indices; a token not in the vocabulary gives ``UNK_INDEX``."""
        if isinstance(tokens, str):
            raise ValueError(
                "encode expects a list of tokens, got a str: tokenize it first"
            )
        get = self.stoi.get
        return [get(token, UNK_INDEX) for token in tokens]

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Indices back to token strings (``<pad>``, ``<unk>`` where they stand)."""
        return [self.itos[int(i)] for i in indices]

    def unknown_rate(self, token_lists: Iterable[Sequence[str]]) -> float:
        """The share of all tokens in ``token_lists`` that this vocabulary maps to ``<unk>``.

        Measured on the test split, it says how much of what the model will
        read it has never seen in training (0.0 for no tokens at all).
        """
        total = unknown = 0
        stoi = self.stoi
        for tokens in token_lists:
            total += len(tokens)
            unknown += sum(1 for token in tokens if token not in stoi)
        return unknown / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record, to ship next to the weights (see :meth:`from_dict`)."""
        return {
            "format": VOCABULARY_FORMAT,
            "tokenizer": TOKENIZER,
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "tokens": list(self.itos),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Vocabulary:
        """The vocabulary :meth:`to_dict` wrote.

        Raises:
            ValueError: for a record of another format, or one written for
                another tokenizer (its indices would not match what
                :func:`tokenize` produces now).
        """
        if not isinstance(record, dict) or record.get("format") != VOCABULARY_FORMAT:
            found = record.get("format") if isinstance(record, dict) else type(record)
            raise ValueError(
                f"not a vocabulary record: expected format {VOCABULARY_FORMAT!r}, "
                f"got {found!r}"
            )
        if record.get("tokenizer") != TOKENIZER:
            raise ValueError(
                f"this vocabulary was built with tokenizer {record.get('tokenizer')!r}, "
                f"but tokenize() is {TOKENIZER!r}: rebuild the vocabulary"
            )
        return cls(
            record["tokens"], min_freq=record["min_freq"], max_size=record["max_size"]
        )


# ---------------------------------------------------------------- padded batches


class EncodedReviews(NamedTuple):
    """Reviews as padded token ids: what :class:`SentimentLSTM` reads.

    Attributes:
        tokens: ``(B, T)`` int64, each row's ids from column 0, then ``PAD_INDEX``.
        lengths: ``(B,)`` int64, each row's number of real tokens, ``1 <= length <= T``.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor


def truncate(
    token_ids: Sequence[int], max_len: int, head: int | None = None
) -> list[int]:
    """Shorten a review to ``max_len`` ids by keeping its start and its end.

    A review longer than ``max_len`` keeps its first ``head`` ids and its last
    ``max_len - head``, with the middle cut out. The default
    ``head = max_len // 4`` keeps a quarter from the start and three quarters
    from the end: reviews tend to open with the plot and close with the
    verdict ("avoid it", "8/10"), and Sun et al. (2019, *How to fine-tune BERT
    for text classification*) found head+tail truncation (128 + 382 of 512
    tokens) better than keeping only the head or the tail on IMDb. ``head =
    max_len`` keeps only the start; ``head = 0`` only the end.

    Raises:
        ValueError: for ``max_len < 1`` or ``head`` outside ``[0, max_len]``.
    """
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be an int >= 1, got {max_len!r}")
    if head is None:
        head = max_len // 4
    if not isinstance(head, int) or not 0 <= head <= max_len:
        raise ValueError(f"head must be an int in [0, max_len={max_len}], got {head!r}")
    ids = list(token_ids)
    if len(ids) <= max_len:
        return ids
    tail = max_len - head
    return ids[:head] + (ids[-tail:] if tail else [])


def encode_batch(
    token_id_lists: Sequence[Sequence[int]], max_len: int, *, head: int | None = None
) -> EncodedReviews:
    """Pad (and, past ``max_len``, :func:`truncate`) lists of ids into one batch.

    ``T`` is the longest kept review, at most ``max_len``. An empty review
    becomes one ``<unk>`` (length 1): an LSTM needs at least one step, and an
    unknown word is all an empty review says.

    Args:
        token_id_lists: ``B`` reviews as vocabulary indices.
        max_len: most tokens kept per review.
        head: tokens kept from the start of a long review (see :func:`truncate`).

    Returns:
        ``EncodedReviews(tokens (B, T) int64, lengths (B,) int64)``.

    Raises:
        ValueError: for no reviews, a negative id, or a bad ``max_len``/``head``.
    """
    if len(token_id_lists) == 0:
        raise ValueError("token_id_lists is empty: there is nothing to encode")
    kept = [truncate(ids, max_len, head) or [UNK_INDEX] for ids in token_id_lists]
    lengths = np.fromiter((len(ids) for ids in kept), dtype=np.int64, count=len(kept))
    tokens = np.full((len(kept), int(lengths.max())), PAD_INDEX, dtype=np.int64)
    for row, ids in zip(tokens, kept, strict=True):
        row[: len(ids)] = ids
    if tokens.min() < 0:
        raise ValueError(
            "token ids must be >= 0; a negative id is not a vocabulary index"
        )
    return EncodedReviews(torch.from_numpy(tokens), torch.from_numpy(lengths))


def encode_texts(
    texts: Iterable[str], vocab: Vocabulary, max_len: int, *, head: int | None = None
) -> EncodedReviews:
    """:func:`tokenize`, :meth:`Vocabulary.encode` and :func:`encode_batch` in one call."""
    return encode_batch(
        [vocab.encode(tokenize(text)) for text in texts], max_len, head=head
    )


# ---------------------------------------------------------------- the LSTM


def masked_lstm_scan(
    gates_x: torch.Tensor, inside: torch.Tensor, w_hh: torch.Tensor, reverse: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM direction over a padded batch, each row's state frozen outside its review.

    Under :func:`torch.export.export` (or :func:`torch.compile`) the steps are
    one ``scan`` loop, whatever ``T``; in eager mode, a Python loop of the same
    steps.

    Args:
        gates_x: ``(T, B, 4H)``, the input's share of the gates,
            ``x_t W_ih^T + b_ih + b_hh``, in PyTorch's gate order (i, f, g, o).
        inside: ``(T, B, 1)`` bool, True where step ``t`` is a real token of row ``b``.
        w_hh: ``(4H, H)``, the recurrent weights.
        reverse: run from step ``T - 1`` down to 0. The padding at the end of
            a row then comes first and leaves the zero state untouched, so the
            row's backward pass starts at its last real token, as when packed.

    Returns:
        ``h_last`` ``(B, H)``, each row's state after its last step in the scan's
        direction, and ``h_all`` ``(T, B, H)``, the state after every step
        (at padded steps, a copy of the state at the review's edge).
    """
    batch, hidden = gates_x.shape[1], w_hh.shape[1]

    def step(
        carry: tuple[torch.Tensor, torch.Tensor], xs: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        (h, c), (gates_t, inside_t) = carry, xs
        i, f, g, o = (gates_t + h @ w_hh.T).chunk(4, dim=1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(c_next)
        h = torch.where(inside_t, h_next, h)  # padding: keep the state as it was
        c = torch.where(inside_t, c_next, c)
        # Reading `batch` inside the step makes torch.export pass the batch size
        # into the loop; AOTInductor (torch 2.13) cannot size the loop's output
        # without it (InductorError: KeyError on the batch symbol).
        return (h, c), h.reshape(batch, hidden).clone()

    zeros = gates_x.new_zeros(batch, hidden)
    if torch.compiler.is_compiling():  # torch.export or torch.compile
        # One loop node in the graph, for any T (a Python loop would be unrolled
        # and fix T). In eager mode, scan compiles itself for every new shape,
        # which costs seconds, hence the plain loop below.
        (h_last, _), h_all = scan(
            step, (zeros, zeros.clone()), (gates_x, inside), reverse=reverse
        )
        return h_last, h_all
    steps = range(gates_x.shape[0])
    carry, h_steps = (zeros, zeros), [zeros] * gates_x.shape[0]
    for t in reversed(steps) if reverse else steps:
        carry, h_steps[t] = step(carry, (gates_x[t], inside[t]))
    return carry[0], torch.stack(h_steps)


def check_batch(tokens: torch.Tensor, lengths: torch.Tensor) -> None:
    """Raise a ValueError unless ``tokens`` is ``(B, T)`` int64 and ``lengths`` ``(B,)``."""
    if tokens.dim() != 2 or tokens.dtype != torch.int64:
        raise ValueError(
            f"tokens must be a (batch, time) int64 tensor, got {tuple(tokens.shape)} "
            f"{tokens.dtype}"
        )
    if lengths.dim() != 1 or lengths.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"lengths must be ({tokens.shape[0]},), one per review, got "
            f"{tuple(lengths.shape)}"
        )


class ExportableSentimentLSTM(nn.Module):
    """A :class:`SentimentLSTM` whose ``forward`` is its exportable padded path.

    It holds the model (its weights are shared, not copied) so that
    :func:`torch.export.export` traces :meth:`SentimentLSTM.forward_padded`.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``(B,)`` of ``tokens`` ``(B, T)`` int64 with ``lengths`` ``(B,)`` int64."""
        return self.model.forward_padded(tokens, lengths)


def export_lstm(
    model: nn.Module, *, max_batch: int = 1024, max_len: int = 4096
) -> torch.export.ExportedProgram:
    """Export ``model`` in eval mode for inference on any batch size and review length.

    The program takes ``tokens`` ``(B, T)`` int64 and ``lengths`` ``(B,)``
    int64, with ``1 <= B <= max_batch`` and ``1 <= T <= max_len``, and
    returns the logits ``(B,)``. Pass it to
    ``torch._inductor.aoti_compile_and_package`` for a C++ deployment. The
    model's training mode is restored afterwards.

    Raises:
        ValueError: for a bound below 2 (the example traced has batch 2 and
            length 2, and an exported dimension must admit its example).
    """
    if not hasattr(model, "forward_padded"):  # the chapter's SentimentLSTM
        raise ValueError(
            f"export_lstm exports a SentimentLSTM, got {type(model).__name__}"
        )
    for name, value in (("max_batch", max_batch), ("max_len", max_len)):
        if not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an int >= 2, got {value!r}")
    device = next(model.parameters()).device
    # Sizes that are neither 0 nor 1, so that export keeps them symbolic.
    tokens = torch.full((2, 2), UNK_INDEX, dtype=torch.int64, device=device)
    lengths = torch.tensor([2, 1], dtype=torch.int64, device=device)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    time = torch.export.Dim("time", min=1, max=max_len)
    was_training = model.training
    try:
        return torch.export.export(
            ExportableSentimentLSTM(model).eval(),
            (tokens, lengths),
            dynamic_shapes={"tokens": {0: batch, 1: time}, "lengths": {0: batch}},
        )
    finally:
        model.train(was_training)


# ---------------------------------------------------------------- bag of words


class BowInputs(NamedTuple):
    """Reviews as weighted bags of token ids: what :class:`BagOfWordsLogReg` reads.

    The format of :class:`torch.nn.EmbeddingBag`: review ``b``'s entries are
    ``ids[offsets[b]:offsets[b + 1]]`` (to the end for the last review).

    Attributes:
        ids: ``(E,)`` int64, the distinct token ids of every review, one after another.
        offsets: ``(B,)`` int64, where each review's entries start.
        weights: ``(E,)`` float32, each entry's feature value.
    """

    ids: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor

    def to(self, device: torch.device | str) -> BowInputs:
        """The same inputs on ``device``."""
        return BowInputs(*(tensor.to(device) for tensor in self))


def inverse_document_frequency(
    token_id_lists: Sequence[Sequence[int]], vocab_size: int
) -> torch.Tensor:
    """Smoothed inverse document frequency ``(vocab_size,)`` float32 of the training reviews.

    ``idf(w) = log((1 + N) / (1 + df(w))) + 1``, where ``df(w)`` counts the
    ``N`` reviews that contain ``w`` (scikit-learn's ``TfidfTransformer``):
    1 for a word every review has, about ``log N`` for one that only a few have.
    """
    doc, ids = _flatten(token_id_lists, vocab_size)
    present = np.unique(doc * vocab_size + ids) % vocab_size
    df = np.bincount(present, minlength=vocab_size)
    idf = np.log((1 + len(token_id_lists)) / (1 + df)) + 1
    return torch.from_numpy(idf.astype(np.float32))


def bow_inputs(
    token_id_lists: Sequence[Sequence[int]],
    idf: torch.Tensor,
    *,
    binary: bool = True,
    normalize: bool = True,
) -> BowInputs:
    """Bag-of-words features of reviews given as vocabulary ids.

    A token's feature is ``tf * idf[token]``, then each review's features are
    scaled to unit L2 norm. The defaults (binary ``tf``, idf weights, unit
    norm) are what scored best on a held-out fifth of the CI subset's training
    reviews, 2 to 3 points above binary or count features without idf (about
    88% unigrams, 89-90% with bigrams, trained on 4,000 reviews): idf lets the
    rare, telling words ("mesmerizing", "waste") outweigh "the" and "movie"
    before the regression has learned anything, and the norm keeps a long
    review from getting a larger logit only for being long. ``<pad>`` and
    ``<unk>`` are dropped: a bag has no padding, and one weight for "some word
    the training reviews lacked" would mostly measure length.

    Args:
        token_id_lists: ``B`` reviews as ids (:meth:`Vocabulary.encode`, of
            :func:`add_bigrams` tokens for a bigram model).
        idf: ``(vocab_size,)`` :func:`inverse_document_frequency` of the
            *training* reviews; ``torch.ones(len(vocab))`` for no idf weighting.
        binary: ``tf`` is 1 for a token the review holds (whether a review
            says "awful" tells more than how often; Wang and Manning, 2012,
            found binarised features better for sentiment); False: its count.
        normalize: scale each review's features to unit L2 norm.

    Returns:
        ``BowInputs(ids (E,), offsets (B,), weights (E,))``, each review's ids sorted.

    Raises:
        ValueError: for a misshapen ``idf``, or an id outside ``[0, len(idf))``.
    """
    if not isinstance(idf, torch.Tensor) or idf.dim() != 1:
        raise ValueError(
            "idf must be a (vocab_size,) tensor: inverse_document_frequency(training "
            "ids, len(vocab)), or torch.ones(len(vocab)) for no idf weighting"
        )
    vocab_size = idf.shape[0]
    doc, ids = _flatten(token_id_lists, vocab_size)
    keep = ids > UNK_INDEX
    keys, counts = np.unique(doc[keep] * vocab_size + ids[keep], return_counts=True)
    doc, ids = keys // vocab_size, keys % vocab_size
    tf = np.ones(len(ids)) if binary else counts.astype(np.float64)
    weights = tf * idf.detach().cpu().numpy().astype(np.float64)[ids]
    if normalize:
        norms = np.sqrt(
            np.bincount(doc, weights=weights**2, minlength=len(token_id_lists))
        )
        weights /= norms[doc]
    offsets = np.searchsorted(doc, np.arange(len(token_id_lists)))
    return BowInputs(
        torch.from_numpy(ids.astype(np.int64)),
        torch.from_numpy(offsets.astype(np.int64)),
        torch.from_numpy(weights.astype(np.float32)),
    )


def _flatten(
    token_id_lists: Sequence[Sequence[int]], vocab_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Review index and token id of every token, as two int64 arrays."""
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
    if len(token_id_lists) == 0:
        raise ValueError("token_id_lists is empty: there is nothing to encode")
    sizes = np.fromiter((len(ids) for ids in token_id_lists), dtype=np.int64)
    ids = np.fromiter(
        (i for row in token_id_lists for i in row),
        dtype=np.int64,
        count=int(sizes.sum()),
    )
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)][0]
        raise ValueError(f"token id {bad} is outside the vocabulary [0, {vocab_size})")
    doc = np.repeat(np.arange(len(token_id_lists), dtype=np.int64), sizes)
    return doc, ids


class BagOfWordsLogReg(nn.Module):
    """Logistic regression on bag-of-words features: one weight per token, one bias.

    ``logit = bias + sum_w weight[w] * feature[w]``, computed with
    :class:`torch.nn.EmbeddingBag` (``mode="sum"``, per-entry weights), so
    the ``(B, vocab_size)`` feature matrix is never built. Weights start at
    zero: the loss is convex, so the starting point changes only how long
    :func:`train_bow` takes, and zeros make it deterministic.
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        if (
            not isinstance(vocab_size, int)
            or isinstance(vocab_size, bool)
            or vocab_size < 2
        ):
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
        self.bag = nn.EmbeddingBag(vocab_size, 1, mode="sum")
        nn.init.zeros_(self.bag.weight)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(
        self, ids: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``(B,)`` of bags: ``ids``, ``weights`` ``(E,)`` and ``offsets`` ``(B,)``.

        (The three fields of :class:`BowInputs`: call ``model(*inputs)``.)
        """
        return self.bag(ids, offsets, per_sample_weights=weights).squeeze(1) + self.bias


# ---------------------------------------------------------------- training


def model_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    return (
        torch.device(device) if device is not None else next(model.parameters()).device
    )


def check_labels(labels: torch.Tensor, n: int) -> None:
    if labels.shape != (n,):
        raise ValueError(
            f"labels must be ({n},), one per review, got {tuple(labels.shape)}"
        )


def length_batches(
    lengths: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    pool_batches: int,
) -> list[torch.Tensor]:
    """Shuffled batches of indices, reviews of similar length batched together.

    The reviews are shuffled, cut into pools of ``pool_batches`` batches, each
    pool sorted by length and cut into batches, and the batches shuffled. A
    batch is then padded only to its own longest review, and the order still
    changes every epoch. ``pool_batches=1`` is a plain shuffle.
    """
    order = torch.randperm(len(lengths), generator=generator)
    pool = batch_size * pool_batches
    batches: list[torch.Tensor] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        by_length = torch.sort(lengths[chunk], stable=True).indices
        batches.extend(chunk[by_length].split(batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


def train_bow(
    model: BagOfWordsLogReg,
    inputs: BowInputs,
    labels: torch.Tensor,
    *,
    l2: float = 1e-4,
    max_iter: int = 200,
    tolerance: float = 1e-7,
) -> dict[str, float]:
    """Fit the logistic regression with full-batch L-BFGS; deterministic.

    Minimises ``mean BCE(logits, labels) + l2 / 2 * ||weights||^2`` (the bias
    is not penalised): a convex problem, so L-BFGS with a strong-Wolfe line
    search reaches its minimum without a learning rate to tune, and the
    result depends on no seed. ``l2`` plays the role of ``1 / (C N)`` in
    scikit-learn's ``LogisticRegression(C=...)`` on ``N`` reviews.

    Args:
        model: fitted in place, on whatever device it is.
        inputs: :func:`bow_inputs` of the training reviews.
        labels: ``(B,)`` 1 for positive, 0 for negative.
        l2: strength of the L2 penalty, >= 0.
        max_iter: most L-BFGS iterations.
        tolerance: stop once the loss or the gradient changes less than this.

    Returns:
        ``loss`` (the penalised objective at the end), ``iterations``, and
        ``accuracy`` on the training reviews.
    """
    check_labels(labels, inputs.offsets.shape[0])
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
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


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(
    model: nn.Module,
    inputs: EncodedReviews | BowInputs,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Probabilities ``(N,)`` float32 on the CPU that each review is positive.

    The model runs in eval mode (no dropout); its mode is restored afterwards.
    An LSTM reads ``inputs`` (:class:`EncodedReviews`) in batches of reviews
    of similar length; a bag-of-words model reads all of ``inputs``
    (:class:`BowInputs`) at once.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    device = model_device(model, device)
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, BagOfWordsLogReg):
            if not isinstance(inputs, BowInputs):
                raise ValueError("a BagOfWordsLogReg reads BowInputs (see bow_inputs)")
            return torch.sigmoid(model(*inputs.to(device))).cpu()
        # the chapter's SentimentLSTM, whichever cell or module defined it
        if not hasattr(model, "lstm") or not isinstance(inputs, EncodedReviews):
            raise ValueError(
                "predict takes a SentimentLSTM with EncodedReviews (see encode_batch) "
                "or a BagOfWordsLogReg with BowInputs"
            )
        tokens, lengths = inputs
        check_batch(tokens, lengths)
        lengths = lengths.cpu()
        order = torch.sort(lengths, stable=True).indices
        probabilities = torch.empty(len(lengths))
        for idx in order.split(batch_size):
            width = int(lengths[idx].max())
            x = tokens[idx.to(tokens.device), :width].to(device)
            probabilities[idx] = torch.sigmoid(model(x, lengths[idx])).float().cpu()
        return probabilities
    finally:
        model.train(was_training)


def accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of reviews whose probability is on the side of 0.5 their label says."""
    if probabilities.dim() != 1:
        raise ValueError(
            f"probabilities must be (N,), got {tuple(probabilities.shape)}"
        )
    check_labels(labels, probabilities.shape[0])
    predicted = probabilities.detach().cpu() >= 0.5
    return (predicted == (labels.detach().cpu() > 0.5)).float().mean().item()


# ---------------------------------------------------------------- a folder of reviews


def read_review_folder(
    folder: str | Path,
) -> tuple[list[str], torch.Tensor, list[Path]]:
    """The reviews under ``folder/pos/*.txt`` (label 1) and ``folder/neg/*.txt`` (label 0).

    The layout of ``aclImdb/test``, but any file names will do. Negative
    reviews come first, each polarity in file-name order.

    Returns:
        ``(texts, labels, paths)``: the texts, ``(N,)`` int64 labels, and the files.

    Raises:
        rlbook.data.DataError: if ``folder`` or one of its two subfolders is
            missing, if neither holds a ``.txt`` file, or if a file is not UTF-8,
            not a regular file (a FIFO, a device, a folder, a dangling link), or
            larger than :data:`rlbook.data.MAX_REVIEW_BYTES` (1 MB).
    """
    from ..data import DataError, read_review

    root = Path(folder)
    layout = (
        "expected <folder>/pos/*.txt (positive reviews) and <folder>/neg/*.txt "
        "(negative reviews), the layout of aclImdb/test"
    )
    if not root.is_dir():
        raise DataError(f"no folder at {str(root)!r}: {layout}")
    missing = [name for name in ("pos", "neg") if not (root / name).is_dir()]
    if missing:
        subfolders = " and ".join(f"{name}/" for name in missing)
        raise DataError(f"{str(root)!r} has no {subfolders} subfolder: {layout}")
    try:
        files = [
            (label, path)
            for label, name in ((0, "neg"), (1, "pos"))
            for path in sorted((root / name).glob("*.txt"))
        ]
    except OSError as error:
        raise DataError(f"cannot list the reviews in {str(root)!r}: {error}") from error
    if not files:
        raise DataError(f"{str(root)!r}: pos/ and neg/ hold no .txt file; {layout}")
    texts = [read_review(path) for _, path in files]
    labels = torch.tensor([label for label, _ in files], dtype=torch.int64)
    return texts, labels, [path for _, path in files]


def classify_reviews(
    artifact: str | Path, folder: str | Path, *, batch_size: int = 64
) -> dict[str, Any]:
    """Classify every review in ``folder`` with the shipped model in ``artifact``.

    What ``python -m rlbook classify-reviews <artifact> <folder>`` prints.

    Args:
        artifact: a ``sentiment-lstm`` model folder (see :mod:`rlbook.projects.shipping`).
        folder: reviews in the layout of :func:`read_review_folder`.
        batch_size: reviews per forward pass.

    Returns:
        ``artifact``, ``folder``, ``n`` (reviews read), ``positive`` and
        ``negative`` (their labels), ``predicted_positive``, ``accuracy``,
        and ``seconds`` (tokenizing and the forward passes, not loading).

    Raises:
        rlbook.projects.shipping.ModelArtifactError: for a missing or
            malformed artifact, or one holding another kind of model.
        rlbook.data.DataError: for a folder without that layout.
    """
    from .shipping import load_model

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
