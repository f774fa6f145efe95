"""Sentiment project: tokens, vocabulary, padded batches, the BiLSTM's two paths, the
baseline; the run: the split, the LSTM's epochs, shipping.

The models are tiny (embeddings and states of size 8) and the "reviews" are
synthetic: filler words with one "good" or "bad" somewhere, so that a model
that learns anything reaches 100% within seconds on one CPU thread.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch

from fullrun.project import save_model
from rlbook.chapters.sentiment_imdb import (
    PAD,
    PAD_INDEX,
    UNK,
    UNK_INDEX,
    BagOfWordsLogReg,
    BowInputs,
    EncodedReviews,
    SentimentConfig,
    SentimentLSTM,
    Vocabulary,
    accuracy,
    add_bigrams,
    bag_of_words_baseline,
    bow_inputs,
    encode_batch,
    encode_texts,
    export_lstm,
    inverse_document_frequency,
    length_batches,
    predict,
    prepare_reviews,
    sentiment_spec,
    tokenize,
    train_bow,
    train_lstm_epoch,
    train_sentiment_lstm,
    truncate,
)
from rlbook.projects.shipping import load_model
from rlbook.seeding import stream_seed, torch_stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FILLER = [f"w{i}" for i in range(10)]


def synthetic_reviews(n: int, seed: int) -> tuple[list[list[str]], torch.Tensor]:
    """``n`` reviews of 2 to 12 filler words with "good" or "bad" at a random place."""
    rng = random.Random(seed)
    reviews, labels = [], []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(1, 11))
        label = rng.random() < 0.5
        words.insert(rng.randint(0, len(words)), "good" if label else "bad")
        reviews.append(words)
        labels.append(int(label))
    return reviews, torch.tensor(labels)


def tiny_lstm(vocab_size: int, **kwargs: object) -> SentimentLSTM:
    torch.manual_seed(0)
    settings: dict = {"embed_dim": 8, "hidden_size": 8, **kwargs}
    return SentimentLSTM(vocab_size, **settings)


def varied_batch(vocab_size: int, lengths: list[int], seed: int = 0) -> EncodedReviews:
    generator = torch.Generator().manual_seed(seed)
    ids = [
        torch.randint(2, vocab_size, (n,), generator=generator).tolist()
        for n in lengths
    ]
    return encode_batch(ids, max_len=max(lengths))


# ---------------------------------------------------------------- tokens


def test_tokenize_lowercases_and_turns_br_tags_into_spaces() -> None:
    assert tokenize("Great<br /><br />FILM<br/>Ever<BR>") == ["great", "film", "ever"]


def test_tokenize_keeps_inner_apostrophes_and_drops_quoting_ones() -> None:
    text = "I Don\u2019t think 'Heat' isn't the 90's best."
    assert tokenize(text) == [
        "i",
        "don't",
        "think",
        "heat",
        "isn't",
        "the",
        "90's",
        "best",
    ]


def test_tokenize_keeps_exclamation_question_marks_and_ratings_drops_other_punctuation() -> (
    None
):
    assert tokenize("Wow!! Really? 3/10, well-made... (sort of); 4.5/5") == [
        "wow",
        "!",
        "!",
        "really",
        "?",
        "3/10",
        "well",
        "made",
        "sort",
        "of",
        "4.5/5",
    ]


def test_add_bigrams_appends_each_neighbouring_pair() -> None:
    assert add_bigrams(["not", "good", "at"]) == [
        "not",
        "good",
        "at",
        "not good",
        "good at",
    ]
    assert add_bigrams(["one"]) == ["one"]


# ---------------------------------------------------------------- vocabulary


def test_vocabulary_starts_with_pad_and_unk_then_orders_by_count_then_alphabet() -> (
    None
):
    vocab = Vocabulary.build([["b", "a", "c", "b"], ["c", "d", "b"]])
    assert vocab.itos == (PAD, UNK, "b", "c", "a", "d")
    assert (vocab.stoi[PAD], vocab.stoi[UNK]) == (PAD_INDEX, UNK_INDEX) == (0, 1)
    shuffled = Vocabulary.build([["d", "b", "c"], ["b", "c", "a", "b"]])
    assert shuffled == vocab  # same counts in another order: same indices


def test_vocabulary_drops_tokens_below_min_freq_and_beyond_max_size() -> None:
    lists = [["x"] * 5 + ["y"] * 3 + ["z"] * 2 + ["once"]]
    assert Vocabulary.build(lists, min_freq=2).itos == (PAD, UNK, "x", "y", "z")
    assert Vocabulary.build(lists, min_freq=3).itos == (PAD, UNK, "x", "y")
    limited = Vocabulary.build(lists, max_size=4)
    assert limited.itos == (PAD, UNK, "x", "y") and len(limited) == 4


def test_vocabulary_knows_only_training_tokens_and_measures_unknown_rate() -> None:
    vocab = Vocabulary.build([["a", "great", "film"]])
    test_tokens = [["a", "dreadful", "film"], ["dreadful", "dreadful"]]
    assert vocab.encode(test_tokens[0]) == [
        vocab.stoi["a"],
        UNK_INDEX,
        vocab.stoi["film"],
    ]
    assert "dreadful" not in vocab.stoi
    assert vocab.unknown_rate(test_tokens) == pytest.approx(3 / 5)


def test_vocabulary_round_trips_through_json() -> None:
    vocab = Vocabulary.build(
        [["l'\u00e9t\u00e9", "b", "b", "!"]], min_freq=1, max_size=10
    )
    record = json.loads(json.dumps(vocab.to_dict()))
    again = Vocabulary.from_dict(record)
    assert again == vocab and again.stoi == vocab.stoi
    assert (again.min_freq, again.max_size) == (1, 10)


def test_vocabulary_from_dict_rejects_another_tokenizer_and_other_records() -> None:
    record = Vocabulary.build([["a"]]).to_dict()
    with pytest.raises(ValueError, match="tokenizer"):
        Vocabulary.from_dict({**record, "tokenizer": "other"})
    with pytest.raises(ValueError, match="not a vocabulary record"):
        Vocabulary.from_dict({"tokens": record["tokens"]})
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary.from_dict({**record, "tokens": ["a", PAD, UNK]})


# ---------------------------------------------------------------- padded batches


def test_encode_batch_pads_with_zero_to_the_longest_review_and_reports_lengths() -> (
    None
):
    tokens, lengths = encode_batch([[5, 6, 7], [8], [9, 10]], max_len=10)
    assert tokens.dtype == lengths.dtype == torch.int64
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert lengths.tolist() == [3, 1, 2]


def test_truncation_keeps_a_quarter_from_the_start_and_the_rest_from_the_end() -> None:
    ids = list(range(100))
    assert truncate(ids, 8) == [0, 1, 94, 95, 96, 97, 98, 99]
    assert truncate(ids, 8, head=8) == list(range(8))
    assert truncate(ids, 8, head=0) == list(range(92, 100))
    assert truncate(ids[:5], 8) == ids[:5]  # short reviews are untouched
    tokens, lengths = encode_batch([ids, [3, 4]], max_len=8)
    assert tokens[0].tolist() == [0, 1, 94, 95, 96, 97, 98, 99]
    assert lengths.tolist() == [8, 2]


def test_an_empty_review_becomes_one_unknown_token() -> None:
    tokens, lengths = encode_batch([[], [4, 5]], max_len=4)
    assert tokens.tolist() == [[UNK_INDEX, 0], [4, 5]] and lengths.tolist() == [1, 2]


def test_encode_texts_chains_tokenize_encode_and_pad() -> None:
    vocab = Vocabulary.build([["great", "film", "!"]])
    tokens, lengths = encode_texts(["Great film!<br />", "Awful."], vocab, max_len=5)
    great, film, bang = (vocab.stoi[t] for t in ("great", "film", "!"))
    assert tokens.tolist() == [[great, film, bang], [UNK_INDEX, 0, 0]]
    assert lengths.tolist() == [3, 1]


# ---------------------------------------------------------------- the LSTM


@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "pooling"),
    [(2, True, "last"), (1, True, "last"), (2, False, "last"), (2, True, "max")],
)
def test_padded_path_gives_the_packed_paths_logits(
    num_layers: int, bidirectional: bool, pooling: str
) -> None:
    model = tiny_lstm(
        30, num_layers=num_layers, bidirectional=bidirectional, pooling=pooling
    ).eval()
    tokens, lengths = varied_batch(30, [9, 1, 4, 9, 2, 7])
    with torch.no_grad():
        packed = model(tokens, lengths)
        padded = model.forward_padded(tokens, lengths)
    assert packed.shape == (6,)
    torch.testing.assert_close(padded, packed, rtol=1e-5, atol=1e-6)


def test_lstm_gives_one_logit_per_review() -> None:
    model = tiny_lstm(30)
    tokens, lengths = varied_batch(30, [5, 3, 2])
    logits = model(tokens, lengths)
    assert logits.shape == (3,) and logits.dtype == torch.float32
    assert model.head.in_features == 2 * 8  # both directions' final states


@pytest.mark.parametrize("pooling", ["last", "max"])
def test_extra_padding_does_not_change_a_reviews_logit(pooling: str) -> None:
    model = tiny_lstm(30, pooling=pooling).eval()
    tokens, lengths = varied_batch(30, [6, 2, 4])
    longer = torch.cat([tokens, torch.full((3, 5), PAD_INDEX)], dim=1)
    with torch.no_grad():
        for forward in (model.forward, model.forward_padded):
            torch.testing.assert_close(
                forward(longer, lengths), forward(tokens, lengths), rtol=0, atol=1e-6
            )
        alone = model(tokens[1:2, :2], lengths[1:2])  # the short review on its own
        torch.testing.assert_close(
            alone, model(tokens, lengths)[1:2], rtol=0, atol=1e-6
        )


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
@pytest.mark.parametrize("pooling", ["last", "max"])
def test_exported_lstm_runs_any_batch_size_and_length_with_the_packed_logits(
    pooling: str,
) -> None:
    # One layer: exporting costs ~5 s per layer on a busy CPU, and the layers
    # are one loop in forward_padded, which the 2-layer test above checks.
    model = tiny_lstm(30, num_layers=1, pooling=pooling).train()
    program = export_lstm(model, max_batch=16, max_len=64)
    assert model.training  # the caller's mode is restored
    exported = program.module()
    model.eval()
    with torch.no_grad():
        for lengths in ([1], [7, 3, 12, 1, 5]):
            tokens, lengths_t = varied_batch(30, lengths, seed=len(lengths))
            torch.testing.assert_close(
                exported(tokens, lengths_t),
                model(tokens, lengths_t),
                rtol=1e-5,
                atol=1e-6,
            )


def test_predict_returns_probabilities_in_the_input_order_and_restores_the_mode() -> (
    None
):
    model = tiny_lstm(30).train()
    batch = varied_batch(30, [3, 9, 1, 6, 2, 8, 4])
    probabilities = predict(model, batch, batch_size=3)
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(*batch))
    torch.testing.assert_close(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_length_batches_cover_every_review_once_and_group_similar_lengths() -> None:
    lengths = torch.randint(1, 200, (100,), generator=torch.Generator().manual_seed(0))
    batches = length_batches(
        lengths, 10, torch.Generator().manual_seed(1), pool_batches=10
    )
    assert sorted(torch.cat(batches).tolist()) == list(range(100))
    spread = sum(int(lengths[b].max() - lengths[b].min()) for b in batches)
    plain = length_batches(
        lengths, 10, torch.Generator().manual_seed(1), pool_batches=1
    )
    plain_spread = sum(int(lengths[b].max() - lengths[b].min()) for b in plain)
    assert spread < plain_spread / 5


def test_length_batches_draw_their_order_from_the_generator_only() -> None:
    lengths = torch.arange(1, 41)

    def contents(seed: int) -> list[list[int]]:
        torch.manual_seed(0)  # the global generator, the same for every call
        batches = length_batches(lengths, 8, torch.Generator().manual_seed(seed), 1)
        return [sorted(b.tolist()) for b in batches]

    assert contents(1) == contents(1)
    assert sorted(contents(1)) != sorted(contents(2))  # other reviews batched together


def lstm_run(
    data_seed: int, dropout_seed: int = 0, epochs: int = 6
) -> tuple[SentimentLSTM, list[dict[str, float]]]:
    """Train a tiny LSTM from fixed initial weights; the data order from ``data_seed``."""
    reviews, labels = synthetic_reviews(256, seed=0)
    vocab = Vocabulary.build(reviews)
    tokens, lengths = encode_batch([vocab.encode(r) for r in reviews], max_len=16)
    model = tiny_lstm(len(vocab), dropout=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    generator = torch_stream(data_seed, "data")
    torch.manual_seed(stream_seed(dropout_seed, "dropout"))
    history = [
        train_lstm_epoch(
            model,
            tokens,
            lengths,
            labels,
            optimizer,
            batch_size=16,
            generator=generator,
            pool_batches=4,
        )
        for _ in range(epochs)
    ]
    return model, history


def test_tiny_lstm_learns_which_word_makes_a_review_positive() -> None:
    model, history = lstm_run(data_seed=0)
    assert history[-1]["loss"] < history[0]["loss"]
    assert set(history[-1]) == {"loss", "accuracy", "grad_norm", "batches"}
    reviews, labels = synthetic_reviews(200, seed=1)  # unseen reviews
    vocab = Vocabulary.build(synthetic_reviews(256, seed=0)[0])
    held_out = encode_batch([vocab.encode(r) for r in reviews], max_len=16)
    assert accuracy(predict(model, held_out), labels) >= 0.97


def test_lstm_training_is_deterministic_for_fixed_seeds() -> None:
    first, history = lstm_run(data_seed=3, epochs=2)
    again, history_again = lstm_run(data_seed=3, epochs=2)
    assert history == history_again
    for name, weight in first.state_dict().items():
        assert torch.equal(weight, again.state_dict()[name]), name


def test_the_generator_alone_decides_the_data_order() -> None:
    first, _ = lstm_run(data_seed=3, epochs=1)
    other, _ = lstm_run(data_seed=4, epochs=1)  # same initial weights and dropout
    assert not torch.equal(first.head.weight, other.head.weight)


def test_gradient_clipping_bounds_each_step() -> None:
    model = tiny_lstm(30, dropout=0.0)
    tokens, lengths = varied_batch(30, [5, 3, 8, 2])
    before = [p.detach().clone() for p in model.parameters()]
    result = train_lstm_epoch(
        model,
        tokens,
        lengths,
        torch.tensor([1, 0, 1, 0]),
        torch.optim.SGD(model.parameters(), lr=1.0),
        batch_size=4,  # one step
        generator=torch.Generator().manual_seed(0),
        grad_clip=1e-3,
    )
    step = torch.cat(
        [(p - b).flatten() for p, b in zip(model.parameters(), before, strict=True)]
    )
    assert result["grad_norm"] > 1e-2  # the norm before clipping is reported
    assert step.norm().item() == pytest.approx(1e-3, rel=1e-3)


# ---------------------------------------------------------------- bag of words


def test_bow_inputs_are_idf_weighted_unit_norm_bags_without_pad_or_unk() -> None:
    idf = torch.tensor([9.0, 9.0, 1.0, 2.0, 1.0])
    bags = bow_inputs([[2, 3, 3, UNK_INDEX], [], [4, PAD_INDEX]], idf)
    assert bags.ids.tolist() == [2, 3, 4]
    assert bags.offsets.tolist() == [0, 2, 2]  # the empty review is an empty bag
    torch.testing.assert_close(bags.weights, torch.tensor([1, 2, 5**0.5]) / 5**0.5)


def test_bow_logit_is_the_bias_plus_the_weighted_sum_of_its_tokens_weights() -> None:
    model = BagOfWordsLogReg(5)
    with torch.no_grad():
        model.bag.weight.copy_(torch.tensor([[0.0], [0.0], [1.0], [-2.0], [3.0]]))
        model.bias.fill_(0.5)
        bags = BowInputs(
            torch.tensor([2, 3, 4]),
            torch.tensor([0, 2]),
            torch.tensor([0.5, 0.25, 2.0]),
        )
        logits = model(*bags)
    torch.testing.assert_close(logits, torch.tensor([0.5 + 0.5 - 0.5, 0.5 + 6.0]))


def test_inverse_document_frequency_counts_reviews_not_occurrences() -> None:
    idf = inverse_document_frequency([[2, 2, 2], [2, 3]], vocab_size=5)
    expected = torch.log(torch.tensor([3 / 1, 3 / 1, 3 / 3, 3 / 2, 3 / 1])) + 1
    torch.testing.assert_close(idf, expected)


def test_bow_logistic_regression_learns_which_word_makes_a_review_positive() -> None:
    reviews, labels = synthetic_reviews(200, seed=0)
    vocab = Vocabulary.build(reviews)
    ids = [vocab.encode(r) for r in reviews]
    idf = inverse_document_frequency(ids, len(vocab))
    model = BagOfWordsLogReg(len(vocab))
    result = train_bow(model, bow_inputs(ids, idf), labels, l2=1e-4)
    assert result["accuracy"] == 1.0
    test_reviews, test_labels = synthetic_reviews(200, seed=1)
    test_bags = bow_inputs([vocab.encode(r) for r in test_reviews], idf)
    assert accuracy(predict(model, test_bags), test_labels) == 1.0
    weight = model.bag.weight.squeeze(1)
    assert weight[vocab.stoi["good"]] > 0 > weight[vocab.stoi["bad"]]
    again = BagOfWordsLogReg(len(vocab))
    train_bow(again, bow_inputs(ids, idf), labels, l2=1e-4)
    assert torch.equal(again.bag.weight, model.bag.weight)  # deterministic


def test_l2_penalty_shrinks_the_bow_weights() -> None:
    reviews, labels = synthetic_reviews(100, seed=0)
    vocab = Vocabulary.build(reviews)
    bags = bow_inputs([vocab.encode(r) for r in reviews], torch.ones(len(vocab)))
    norms = []
    for l2 in (1e-4, 1e-1):
        model = BagOfWordsLogReg(len(vocab))
        train_bow(model, bags, labels, l2=l2)
        norms.append(model.bag.weight.norm().item())
    assert norms[1] < norms[0] / 3


# ---------------------------------------------------------------- bad arguments


@pytest.fixture
def parts() -> SimpleNamespace:
    """A tiny model, a batch and the rest, for the calls below to misuse."""
    model = tiny_lstm(10)
    tokens, lengths = varied_batch(10, [3, 2])
    return SimpleNamespace(
        model=model,
        tokens=tokens,
        lengths=lengths,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        generator=torch.Generator(),
        bow=BagOfWordsLogReg(10),
        bags=bow_inputs([[2, 3]], torch.ones(10)),
    )


def epoch(p: SimpleNamespace, **kwargs: object) -> dict[str, float]:
    settings: dict = {"batch_size": 2, "generator": p.generator, **kwargs}
    return train_lstm_epoch(
        p.model, p.tokens, p.lengths, torch.ones(2), p.optimizer, **settings
    )


BAD_CALLS: dict[str, tuple[Callable[[SimpleNamespace], object], str]] = {
    "tokenize a list": (lambda p: tokenize(["a"]), "expects a str"),
    "min_freq 0": (lambda p: Vocabulary.build([["a"]], min_freq=0), "min_freq"),
    "max_size 1": (lambda p: Vocabulary.build([["a"]], max_size=1), "max_size"),
    "reviews as str": (lambda p: Vocabulary.build(["a review"]), "lists of tokens"),
    "special token": (lambda p: Vocabulary.build([[UNK]]), "reserved"),
    "encode a str": (lambda p: Vocabulary.build([["a"]]).encode("a"), "tokenize"),
    "max_len 0": (lambda p: encode_batch([[2]], max_len=0), "max_len"),
    "head > max_len": (lambda p: encode_batch([[2]], 4, head=5), "head"),
    "no reviews": (lambda p: encode_batch([], max_len=4), "empty"),
    "negative id": (lambda p: encode_batch([[2, -1]], max_len=4), ">= 0"),
    "vocab_size 0": (lambda p: SentimentLSTM(0), "vocab_size"),
    "dropout 1": (lambda p: SentimentLSTM(10, dropout=1.0), "dropout"),
    "pad_index": (lambda p: SentimentLSTM(10, pad_index=10), "pad_index"),
    "pooling": (lambda p: SentimentLSTM(10, pooling="mean"), "pooling must be"),
    "float tokens": (lambda p: p.model(p.tokens.float(), p.lengths), "int64"),
    "lengths": (lambda p: p.model(p.tokens, p.lengths[:1]), "one per review"),
    "export max_len": (lambda p: export_lstm(p.model, max_len=1), "max_len"),
    "id >= vocab": (lambda p: bow_inputs([[2, 10]], torch.ones(10)), "outside"),
    "no idf": (lambda p: bow_inputs([[2]], None), "idf"),
    "l2 < 0": (lambda p: train_bow(p.bow, p.bags, torch.ones(1), l2=-1.0), "l2"),
    "labels": (lambda p: train_bow(p.bow, p.bags, torch.ones(2)), "one per review"),
    "batch_size 0": (lambda p: epoch(p, batch_size=0), "batch_size"),
    "grad_clip 0": (lambda p: epoch(p, grad_clip=0.0), "grad_clip"),
    "lstm with bags": (lambda p: predict(p.model, p.bags), "SentimentLSTM"),
    "bow with tokens": (lambda p: predict(p.bow, (p.tokens, p.lengths)), "BowInputs"),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_arguments_raise_a_clear_value_error(
    name: str, parts: SimpleNamespace
) -> None:
    call, message = BAD_CALLS[name]
    with pytest.raises(ValueError, match=message):
        call(parts)


# ---------------------------------------------------------------- the run

TINY = SentimentConfig(
    validation_share=0.2,
    min_freq=1,
    max_len=16,
    embed_dim=8,
    hidden_size=8,
    dropout=0.1,
    epochs=3,
    batch_size=16,
    lr=0.02,
)


def texts(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    reviews, labels = synthetic_reviews(n, seed)
    return [" ".join(words) for words in reviews], labels


@pytest.fixture(scope="module")
def split():
    torch.set_num_threads(1)
    train_texts, train_labels = texts(200, seed=0)
    test_texts, test_labels = texts(60, seed=1)
    return prepare_reviews(
        train_texts, train_labels, test_texts, test_labels, TINY, seed=0
    )


def test_the_validation_share_is_held_out_and_the_vocabulary_never_sees_it():
    train_texts = [f"w{i} word{i}" for i in range(100)]
    labels = torch.arange(100) % 2
    split = prepare_reviews(train_texts, labels, ["w1"], labels[:1], TINY, seed=3)
    assert len(split.valid_labels) == 20 and len(split.train_labels) == 80
    seen = {t for tokens in split.train_tokens for t in tokens}
    held_out = {f"word{i}" for i in range(100)} - seen
    assert len(held_out) == 20  # the 20 held-out reviews' unique words
    assert not held_out & set(split.vocabulary.itos)
    again = prepare_reviews(train_texts, labels, ["w1"], labels[:1], TINY, seed=3)
    assert torch.equal(again.valid.tokens, split.valid.tokens)
    other = prepare_reviews(train_texts, labels, ["w1"], labels[:1], TINY, seed=4)
    assert other.vocabulary != split.vocabulary  # another 20 reviews held out


def test_lstm_run_learns_and_tests_its_best_and_final_weights(split, tmp_path):
    run = train_sentiment_lstm(split, TINY, seed=0)
    assert [r["epoch"] for r in run.history] == [1, 2, 3]
    assert run.final_test_accuracy >= 0.9 and run.best_test_accuracy >= 0.9
    valid = [r["valid"] for r in run.history]
    assert run.best_epoch == valid.index(max(valid)) + 1
    # What it returns is what ships: a saved and reloaded model scores the same.
    folder = save_model(
        tmp_path / "m",
        kind="sentiment-lstm",
        spec=sentiment_spec(TINY, split.vocabulary),
        model=run.best,
        provenance={},
    )
    shipped = load_model(folder).model
    for name, weight in run.best.state_dict().items():
        assert torch.equal(weight, shipped.state_dict()[name]), name


def test_lstm_run_is_reproducible(split):
    first = train_sentiment_lstm(split, TINY, seed=0)
    again = train_sentiment_lstm(split, TINY, seed=0)
    for name, weight in first.final.state_dict().items():
        assert torch.equal(weight, again.final.state_dict()[name]), name


def test_bag_of_words_baseline_learns_the_telling_word(split):
    result = bag_of_words_baseline(split, bigrams=False)
    assert result["test_accuracy"] >= 0.95
    assert result["features"] < bag_of_words_baseline(split)["features"]


def test_a_bad_validation_share_is_a_clear_error():
    bad = SentimentConfig(validation_share=1.0)
    with pytest.raises(ValueError, match="validation_share"):
        prepare_reviews(
            ["a b"] * 4, torch.tensor([0, 1, 0, 1]), ["a"], torch.tensor([0]), bad, 0
        )
