"""Shipped models of the projects part: a folder that rebuilds a trained model.

A model folder holds three files::

    model.json                # format "rlbook-model/1", kind, spec, metrics
    weights.pt                # the state dict in float16; loads with weights_only=True
    weights.provenance.json   # command, config, budget, device, wall time, commit, score

``kind`` says which class to build from ``spec`` (its constructor's
arguments, plus whatever else the model needs to read its input, such as a
vocabulary). Weights ship in half precision to keep the repository small;
:func:`load_model` puts them back into a float32 model, and whoever reports
a shipped model's quality measures it on those rounded weights
(:func:`round_to_shipped`), not on the float32 ones they came from.

Introduced in the chapter *Sentiment analysis: an LSTM on IMDb reviews*.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, atomic_write, load_checkpoint, save_checkpoint

__all__ = [
    "FORMAT",
    "MANIFEST",
    "WEIGHTS",
    "ModelArtifactError",
    "ShippedModel",
    "known_kinds",
    "load_model",
    "round_to_shipped",
    "save_model",
]

FORMAT = "rlbook-model/1"
MANIFEST = "model.json"
WEIGHTS = "weights.pt"
SHIPPED_DTYPE = torch.float16


class ModelArtifactError(ValueError):
    """A model folder that is missing or malformed."""


@dataclass(frozen=True)
class ShippedModel:
    """A model rebuilt from its folder, in eval mode, float32, on the CPU.

    Attributes:
        folder: where it was read from.
        kind: e.g. ``"sentiment-lstm"``.
        spec: the manifest's spec (constructor arguments and input settings).
        model: the module, with the shipped weights.
        metrics: what the manifest says the model scored when it was exported.
        extras: what the kind needs besides the module (a vocabulary, say).
    """

    folder: Path
    kind: str
    spec: dict[str, Any]
    model: nn.Module
    metrics: dict[str, Any]
    extras: dict[str, Any]


Builder = Callable[[Mapping[str, Any]], tuple[nn.Module, dict[str, Any]]]


def _build_sentiment_lstm(spec: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    from .sentiment import SentimentLSTM, Vocabulary

    vocabulary = Vocabulary.from_dict(dict(spec["vocabulary"]))
    model = SentimentLSTM(**dict(spec["model"]))
    if model.embedding.num_embeddings != len(vocabulary):
        raise ValueError(
            f"the model embeds {model.embedding.num_embeddings} tokens but the "
            f"vocabulary has {len(vocabulary)}"
        )
    max_len = spec["max_len"]
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be an int >= 1, got {max_len!r}")
    return model, {"vocabulary": vocabulary, "max_len": max_len, "head": spec["head"]}


def _build_resnet18_cifar(spec: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    from .resnet import CIFAR10_MEAN, CIFAR10_STD, ResNet18

    model = ResNet18(**dict(spec["model"]))
    classes = spec["classes"]
    if classes is not None and (
        not isinstance(classes, list) or len(classes) != model.fc.out_features
    ):
        raise ValueError(
            f"classes must list {model.fc.out_features} names, got {classes!r}"
        )
    # normalize() uses CIFAR-10's statistics; a model trained with others
    # would read its inputs wrong.
    if (tuple(spec["mean"]), tuple(spec["std"])) != (CIFAR10_MEAN, CIFAR10_STD):
        raise ValueError(
            f"the model was trained with mean {spec['mean']} and std "
            f"{spec['std']}, not CIFAR-10's {CIFAR10_MEAN} and {CIFAR10_STD}"
        )
    return model, {"classes": classes}


def _build_vae_mnist(spec: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    from .vae import VAE

    return VAE(**dict(spec["model"])), {}


_BUILDERS: dict[str, Builder] = {
    "resnet18-cifar": _build_resnet18_cifar,
    "sentiment-lstm": _build_sentiment_lstm,
    "vae-mnist": _build_vae_mnist,
}


def known_kinds() -> list[str]:
    """The kinds :func:`load_model` can rebuild."""
    return sorted(_BUILDERS)


def round_to_shipped(model: nn.Module) -> nn.Module:
    """Round ``model``'s floating-point weights in place to what ships (float16), and back.

    Measure a model's quality after this, so the figure is that of the
    weights a reader downloads. Returns the model.
    """
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(SHIPPED_DTYPE))
    return model


def save_model(
    path: str | Path,
    *,
    kind: str,
    spec: Mapping[str, Any],
    model: nn.Module,
    provenance: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model folder that :func:`load_model` can read.

    The spec is checked by building the model from it before anything is
    written, so a folder that cannot be loaded is never shipped.

    Raises:
        ModelArtifactError: for an unknown kind, or a spec and model that do
            not fit each other.
    """
    if kind not in _BUILDERS:
        raise ModelArtifactError(
            f"unknown model kind {kind!r}; known: {', '.join(known_kinds())}"
        )
    state = {
        name: tensor.detach().cpu().to(SHIPPED_DTYPE)
        if tensor.is_floating_point()
        else tensor.detach().cpu()
        for name, tensor in model.state_dict().items()
    }
    try:
        rebuilt, _ = _BUILDERS[kind](spec)
        rebuilt.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelArtifactError(
            f"the spec does not describe this model ({type(error).__name__}: {error})"
        ) from error
    folder = Path(path)
    save_checkpoint(folder / WEIGHTS, state, provenance)
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "metrics": dict(metrics or {}),
        "spec": dict(spec),
    }
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(folder / MANIFEST, lambda handle: handle.write(text.encode()))
    return folder


def load_model(path: str | Path, *, kind: str | None = None) -> ShippedModel:
    """Rebuild the model in the folder ``path``, in eval mode on the CPU.

    Args:
        path: a folder written by :func:`save_model`.
        kind: the kind the caller expects; another kind is an error.

    Raises:
        ModelArtifactError: if the folder, its manifest or its weights are
            missing or malformed, or hold another kind; the message says which.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelArtifactError(
            f"no model folder at {str(folder)!r}; shipped models live under "
            "artifacts/ (for example artifacts/sentiment-lstm)"
        )
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as error:
        raise ModelArtifactError(
            f"{str(folder)!r} has no {MANIFEST}; it is not a model folder"
        ) from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelArtifactError(
            f"{str(manifest_path)!r} is not valid JSON: {error}"
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelArtifactError(f"{str(manifest_path)!r} is not a {FORMAT} manifest")
    missing = [key for key in ("kind", "spec") if key not in manifest]
    if missing:
        raise ModelArtifactError(f"{str(manifest_path)!r} lacks {', '.join(missing)}")
    found = manifest["kind"]
    if found not in _BUILDERS:
        raise ModelArtifactError(
            f"{str(manifest_path)!r} has unknown kind {found!r}; known: "
            f"{', '.join(known_kinds())}"
        )
    if kind is not None and found != kind:
        raise ModelArtifactError(
            f"{str(folder)!r} holds a {found!r} model, not a {kind!r} one"
        )
    try:
        state = load_checkpoint(folder / WEIGHTS)
        model, extras = _BUILDERS[found](manifest["spec"])
        model.load_state_dict(state)  # copies float16 into the float32 parameters
    except CheckpointError as error:
        raise ModelArtifactError(str(error)) from error
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelArtifactError(
            f"{str(folder)!r}: its spec and weights do not fit kind {found!r} "
            f"({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from error
    return ShippedModel(
        folder=folder,
        kind=found,
        spec=dict(manifest["spec"]),
        model=model.eval(),
        metrics=dict(manifest.get("metrics") or {}),
        extras=extras,
    )
