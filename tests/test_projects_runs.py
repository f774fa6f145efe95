"""Epoch loops: interrupted and resumed runs end where uninterrupted ones do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rlbook.chapters.sentiment_imdb import (
    SentimentLSTM,
    Vocabulary,
    accuracy,
    encode_batch,
    predict,
    train_lstm_epoch,
)
from rlbook.checkpoint import CheckpointError
from rlbook.projects.runs import fit_epochs
from rlbook.seeding import stream_seed, torch_stream

from .test_sentiment_imdb import synthetic_reviews

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = {"lr": 0.02, "batch_size": 16}


def run(epochs: int, checkpoint: Path | None, scores: Iterator[float] | None = None):
    """A tiny LSTM (with dropout, so torch's global generator matters too)."""
    reviews, labels = synthetic_reviews(128, seed=0)
    vocab = Vocabulary.build(reviews)
    tokens, lengths = encode_batch([vocab.encode(r) for r in reviews], 16)
    torch.manual_seed(stream_seed(0, "init"))
    model = SentimentLSTM(len(vocab), embed_dim=8, hidden_size=8, dropout=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=CONFIG["lr"])
    generator = torch_stream(0, "data")
    torch.manual_seed(stream_seed(0, "dropout"))

    def train_epoch():
        return train_lstm_epoch(
            model,
            tokens,
            lengths,
            labels,
            optimizer,
            batch_size=CONFIG["batch_size"],
            generator=generator,
            pool_batches=2,
        )

    def validate():
        if scores is not None:
            return next(scores)
        return accuracy(predict(model, encode_batch([[2, 3]], 4)), labels[:1])

    result = fit_epochs(
        model,
        optimizer,
        epochs=epochs,
        train_epoch=train_epoch,
        validate=validate,
        generator=generator,
        checkpoint=checkpoint,
        config=CONFIG,
    )
    return model, result


def without_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    straight, whole = run(4, None)
    run(2, tmp_path / "run.pt")  # interrupted after two epochs
    resumed, rest = run(4, tmp_path / "run.pt")  # fresh objects, same command
    assert rest.resumed_from == 2 and whole.resumed_from == 0
    assert without_seconds(rest.history) == without_seconds(whole.history)
    for name, weight in straight.state_dict().items():
        assert torch.equal(weight, resumed.state_dict()[name]), name
    # Without the checkpoint's random states the run would differ.
    assert not torch.equal(
        run(2, None)[0].head.weight, straight.head.weight
    )  # two epochs fewer: the comparison above is not vacuous


def test_best_epoch_is_the_highest_validation_score_and_ties_go_to_the_earlier(
    tmp_path,
):
    scores = iter([0.5, 0.7, 0.7, 0.6])
    model, result = run(4, None, scores)
    assert result.best_epoch == 2 and result.best_valid == 0.7
    assert [r["valid"] for r in result.history] == [0.5, 0.7, 0.7, 0.6]
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    # The best state is the weights after epoch 2, not the final ones.
    _, two = run(2, None, iter([0.5, 0.7]))
    for name, weight in two.final_state.items():
        assert torch.equal(weight, result.best_state[name]), name
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, result.final_state[name]), name
    assert not torch.equal(result.best_state["head.weight"], model.head.weight)


def test_a_checkpoint_from_other_settings_or_a_corrupt_one_is_refused(
    tmp_path, monkeypatch
):
    run(1, tmp_path / "run.pt")
    monkeypatch.setitem(CONFIG, "lr", 0.01)
    with pytest.raises(CheckpointError, match="other settings"):
        run(2, tmp_path / "run.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        run(2, tmp_path / "bad.pt")


def test_epochs_must_be_positive():
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        run(0, None)
