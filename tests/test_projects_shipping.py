"""Shipped models: the folder format, and ``python -m rlbook classify-reviews``.

The sentiment model here is a tiny LSTM trained in a second on synthetic
reviews (filler words and one "good" or "bad"), written as review files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fullrun.project import save_model
from rlbook.chapters.sentiment_imdb import (
    SentimentLSTM,
    Vocabulary,
    classify_reviews,
    encode_texts,
    predict,
    read_review_folder,
    tokenize,
)
from rlbook.checkpoint import make_provenance
from rlbook.data import DataError
from rlbook.projects.shipping import (
    MANIFEST,
    ModelArtifactError,
    dequantize_int8,
    load_model,
    quantize_int8,
    round_to_shipped,
)
from rlbook.safeload import WEIGHTS, file_sha256

from .test_sentiment_imdb import lstm_run, synthetic_reviews

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MAX_LEN = 16


def spec_of(model: SentimentLSTM, vocab: Vocabulary) -> dict:
    return {
        "model": {
            "vocab_size": len(vocab),
            "embed_dim": model.embedding.embedding_dim,
            "hidden_size": model.lstm.hidden_size,
            "num_layers": model.lstm.num_layers,
            "bidirectional": model.directions == 2,
            "dropout": model.dropout.p,
        },
        "vocabulary": vocab.to_dict(),
        "max_len": MAX_LEN,
        "head": None,
    }


@pytest.fixture(scope="module")
def trained() -> tuple[SentimentLSTM, Vocabulary]:
    """The sentiment tests' tiny LSTM, trained to 100% on synthetic reviews."""
    torch.set_num_threads(1)
    model, _ = lstm_run(data_seed=0)
    return model, Vocabulary.build(synthetic_reviews(256, seed=0)[0])


@pytest.fixture
def artifact(tmp_path: Path, trained) -> Path:
    model, vocab = trained
    provenance = make_provenance(
        command="test", config={}, budget="smoke", device="cpu", wall_time_s=0.0
    )
    return save_model(
        tmp_path / "sentiment",
        kind="sentiment-lstm",
        spec=spec_of(model, vocab),
        model=model,
        provenance=provenance,
        metrics={"test_accuracy": 1.0},
    )


def write_reviews(folder: Path, n: int, seed: int) -> Path:
    reviews, labels = synthetic_reviews(n, seed=seed)
    for i, (words, label) in enumerate(zip(reviews, labels.tolist(), strict=True)):
        polarity = folder / ("pos" if label else "neg")
        polarity.mkdir(parents=True, exist_ok=True)
        (polarity / f"{i}_{7 if label else 2}.txt").write_text(" ".join(words))
    return folder


# ---------------------------------------------------------------- the folder format


def test_loaded_model_gives_the_logits_of_the_float16_rounded_weights(
    artifact, trained
):
    model, vocab = trained
    shipped = load_model(artifact)
    assert shipped.kind == "sentiment-lstm" and not shipped.model.training
    assert shipped.extras["vocabulary"] == vocab
    assert shipped.metrics == {"test_accuracy": 1.0}
    assert all(p.dtype == torch.float32 for p in shipped.model.parameters())
    saved = torch.load(artifact / WEIGHTS, weights_only=True)
    assert {t.dtype for t in saved.values()} == {torch.float16}
    rounded = SentimentLSTM(**spec_of(model, vocab)["model"])
    rounded.load_state_dict(model.state_dict())
    round_to_shipped(rounded)
    batch = encode_texts(["w1 good w2", "bad w3 w4 w5", "w6"], vocab, MAX_LEN)
    assert torch.equal(predict(shipped.model, batch), predict(rounded, batch))
    # The rounding is real: float16 weights are not the float32 ones.
    assert not torch.equal(rounded.head.weight, model.head.weight)


def test_int8_rounds_each_weight_to_its_channels_grid():
    weight = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    weight[2] = 0.0  # an all-zero channel must not divide by zero
    q, scale = quantize_int8(weight)
    assert q.dtype == torch.int8 and q.shape == weight.shape
    assert scale.shape == (6,) and scale[2] == 1.0
    back = dequantize_int8(q, scale)
    error = (back - weight).abs().flatten(1).amax(dim=1)
    assert torch.all(error <= scale / 2 + 1e-7)
    assert torch.equal(back[2], torch.zeros(3, 3, 3))
    # each channel's largest weight lands on the end of the grid
    assert torch.equal(
        q.flatten(1).abs().amax(dim=1)[[0, 1, 3, 4, 5]],
        torch.full((5,), 127, dtype=torch.int8),
    )


def test_an_int8_folder_loads_the_weights_round_to_shipped_measured(tmp_path, trained):
    model, vocab = trained
    spec = spec_of(model, vocab)
    provenance = make_provenance(
        command="test", config={}, budget="smoke", device="cpu", wall_time_s=0.0
    )
    folders = {
        fmt: save_model(
            tmp_path / fmt,
            kind="sentiment-lstm",
            spec=spec,
            model=model,
            provenance=provenance,
            weight_format=fmt,
        )
        for fmt in ("float16", "int8")
    }
    shipped = load_model(folders["int8"])
    rounded = SentimentLSTM(**spec["model"])
    rounded.load_state_dict(model.state_dict())
    round_to_shipped(rounded, "int8")
    for name, tensor in rounded.state_dict().items():
        assert torch.equal(shipped.model.state_dict()[name], tensor), name
    assert not torch.equal(rounded.head.weight, model.head.weight)
    for name, original in model.state_dict().items():
        if original.is_floating_point():  # within half a grid step (or float16)
            step = original.abs().max() / 127
            error = (shipped.model.state_dict()[name] - original).abs().max()
            assert error <= step / 2 + 1e-3 * original.abs().max(), name
    stored = torch.load(folders["int8"] / WEIGHTS, weights_only=True)
    assert stored["embedding.weight"].dtype == torch.int8
    assert stored["head.bias"].dtype == torch.float16
    sizes = {
        fmt: sum(
            t.numel() * t.element_size()
            for t in torch.load(f / WEIGHTS, weights_only=True).values()
        )
        for fmt, f in folders.items()
    }
    # tensor bytes; this tiny model has many small float16 biases and scales
    assert sizes["int8"] < 0.8 * sizes["float16"], sizes
    manifest = json.loads((folders["int8"] / MANIFEST).read_text())
    assert manifest["weight_format"] == "int8"
    # A float16 folder written before the field existed still loads.
    old = json.loads((folders["float16"] / MANIFEST).read_text())
    del old["weight_format"]
    (folders["float16"] / MANIFEST).write_text(json.dumps(old))
    assert load_model(folders["float16"]).kind == "sentiment-lstm"


def test_a_bad_weight_format_or_missing_scales_are_clear_errors(tmp_path, trained):
    model, vocab = trained
    spec = spec_of(model, vocab)
    with pytest.raises(ModelArtifactError, match="unknown weight format"):
        save_model(
            tmp_path / "a",
            kind="sentiment-lstm",
            spec=spec,
            model=model,
            provenance={},
            weight_format="int4",
        )
    folder = save_model(
        tmp_path / "b",
        kind="sentiment-lstm",
        spec=spec,
        model=model,
        provenance={},
        weight_format="int8",
    )
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "weight_format": "int4"}))
    with pytest.raises(ModelArtifactError, match="unknown weight format"):
        load_model(folder)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    from rlbook.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(folder / WEIGHTS)
    del state["head.weight.int8_scale"]
    save_checkpoint(folder / WEIGHTS, state, {})
    with pytest.raises(ModelArtifactError, match="no scales"):
        load_model(folder)


def test_save_refuses_an_unknown_kind_or_a_spec_that_does_not_fit(tmp_path, trained):
    model, vocab = trained
    spec = spec_of(model, vocab)
    with pytest.raises(ModelArtifactError, match="unknown model kind"):
        save_model(tmp_path / "a", kind="gpt", spec=spec, model=model, provenance={})
    wrong = {**spec, "model": {**spec["model"], "hidden_size": 9}}
    with pytest.raises(ModelArtifactError, match="does not describe"):
        save_model(
            tmp_path / "b",
            kind="sentiment-lstm",
            spec=wrong,
            model=model,
            provenance={},
        )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / MANIFEST).unlink(), "has no model.json"),
        (lambda f: (f / MANIFEST).write_text("{"), "not valid JSON"),
        (
            lambda f: (f / MANIFEST).write_text('{"format": "x"}'),
            "is not a rlbook-model/1",
        ),
        (lambda f: (f / WEIGHTS).write_bytes(b"\x00" * 10), "corrupt"),
        (lambda f: (f / WEIGHTS).unlink(), "does not exist"),
    ],
)
def test_a_damaged_folder_is_a_clear_error(artifact, damage, message):
    damage(artifact)
    with pytest.raises(ModelArtifactError, match=message):
        load_model(artifact)


def test_weights_of_another_shape_or_kind_are_clear_errors(artifact, tmp_path):
    manifest = json.loads((artifact / MANIFEST).read_text())
    manifest["spec"]["model"]["embed_dim"] = 4
    (artifact / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match="do not fit kind 'sentiment-lstm'"):
        load_model(artifact)
    manifest["kind"] = "resnet-cifar10"
    (artifact / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match="unknown kind 'resnet-cifar10'"):
        load_model(artifact)
    with pytest.raises(ModelArtifactError, match="no model folder"):
        load_model(tmp_path / "nowhere")


def test_load_refuses_a_kind_other_than_the_one_asked_for(artifact, monkeypatch):
    from rlbook.projects import shipping

    builder = shipping.KINDS.find("sentiment-lstm")
    monkeypatch.setitem(shipping.KINDS.builders, "other", builder)
    assert load_model(artifact, kind="sentiment-lstm").kind == "sentiment-lstm"
    with pytest.raises(ModelArtifactError, match="not a 'other' one"):
        load_model(artifact, kind="other")


# ---------------------------------------------------------------- a folder of reviews


def test_read_review_folder_labels_pos_one_and_neg_zero(tmp_path):
    write_reviews(tmp_path, 20, seed=1)
    texts, labels, paths = read_review_folder(tmp_path)
    assert len(texts) == len(labels) == len(paths) == 20
    for text, label, path in zip(texts, labels.tolist(), paths, strict=True):
        assert path.parent.name == ("pos" if label else "neg")
        assert ("good" if label else "bad") in tokenize(text)
    assert labels.tolist() == sorted(labels.tolist())  # negatives first


def test_read_review_folder_errors_say_what_layout_is_expected(tmp_path):
    with pytest.raises(DataError, match="no folder at"):
        read_review_folder(tmp_path / "missing")
    (tmp_path / "pos").mkdir()
    with pytest.raises(DataError, match=r"has no neg/ subfolder.*pos/\*\.txt"):
        read_review_folder(tmp_path)
    (tmp_path / "neg").mkdir()
    with pytest.raises(DataError, match=r"hold no \.txt file"):
        read_review_folder(tmp_path)
    (tmp_path / "neg" / "1_1.txt").write_bytes(b"bad \xff\xfe film")
    with pytest.raises(DataError, match=r"1_1\.txt' is not UTF-8"):
        read_review_folder(tmp_path)


def test_classify_reviews_scores_the_folder_with_the_shipped_model(artifact, tmp_path):
    folder = write_reviews(tmp_path / "reviews", 40, seed=2)
    record = classify_reviews(artifact, folder)
    _, labels, _ = read_review_folder(folder)
    assert record["n"] == 40
    assert record["positive"] == int(labels.sum())
    assert record["negative"] == 40 - int(labels.sum())
    assert record["accuracy"] == 1.0  # the tiny model learned the task
    assert record["predicted_positive"] == record["positive"]
    # A model that says the opposite scores 0: the accuracy is measured, not assumed.
    weights = torch.load(artifact / WEIGHTS, weights_only=True)
    weights["head.weight"] = -weights["head.weight"]
    weights["head.bias"] = -weights["head.bias"]
    torch.save(weights, artifact / WEIGHTS)
    # another model, exported as such: its manifest records its weights' SHA-256
    manifest = json.loads((artifact / MANIFEST).read_text())
    manifest["sha256"]["weights.pt"] = file_sha256(artifact / WEIGHTS)
    (artifact / MANIFEST).write_text(json.dumps(manifest))
    assert classify_reviews(artifact, folder)["accuracy"] == 0.0


# ---------------------------------------------------------------- the command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlbook", "classify-reviews", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prints_one_json_line(artifact, tmp_path):
    folder = write_reviews(tmp_path / "reviews", 12, seed=3)
    result = run_cli(str(artifact), str(folder))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert {"artifact", "n", "accuracy"} <= set(record)
    assert record["n"] == 12 and record["artifact"] == str(artifact)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-layout", "has no pos/ and neg/ subfolder"),
        ("empty", "hold no .txt file"),
        ("bad-artifact", "corrupt"),
        ("not-a-model", "has no model.json"),
        ("batch", "--batch-size must be >= 1"),
    ],
)
def test_cli_bad_input_is_exit_2_with_one_error_line(artifact, tmp_path, case, message):
    folder = write_reviews(tmp_path / "reviews", 4, seed=4)
    args = [str(artifact), str(folder)]
    if case == "no-layout":
        args[1] = str(tmp_path)
    elif case == "empty":
        for path in folder.glob("*/*.txt"):
            path.unlink()
    elif case == "bad-artifact":
        (artifact / WEIGHTS).write_bytes(b"\x00" * 10)
    elif case == "not-a-model":
        args[0] = str(folder)
    else:
        args += ["--batch-size", "0"]
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr
