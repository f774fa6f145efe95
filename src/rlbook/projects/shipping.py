"""Shipped models of the projects part: a folder that rebuilds a trained model.

``model.json`` (format, ``kind``, ``spec``: the constructor's arguments and
input settings, weight format, metrics, SHA-256 of every file), ``weights.pt``
(loads with ``weights_only=True``) and ``weights.provenance.json``. Weights ship
rounded to keep the repository small: ``"float16"``, or ``"int8"`` (tensors of
2+ dimensions as int8 with a float32 scale per output channel, the rest
float16; ResNet-18's 11 MB instead of 22). A shipped model's quality is
measured on the rounded weights (:func:`round_to_shipped`). Introduced in
*Sentiment analysis: an LSTM on IMDb reviews*.
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
from ..safeload import (
    check_listed_digests,
    file_sha256,
    load_failure,
    non_finite,
    read_manifest,
    record_sha256,
    write_files,
)

FORMAT = "rlbook-model/1"
MANIFEST = "model.json"
WEIGHTS = "weights.pt"
SHIPPED_DTYPE = torch.float16
WEIGHT_FORMATS = ("float16", "int8")
PROVENANCE = "weights.provenance.json"
VOCABULARY = "vocabulary"  # the sha256 entry of spec["vocabulary"]
SCALE_SUFFIX = ".int8_scale"  # the per-channel scales of tensor NAME: NAME + this


class ModelArtifactError(ValueError):
    """A model folder that is missing or malformed."""


@dataclass(frozen=True)
class ShippedModel:
    """A model rebuilt from its folder, in eval mode, float32, on the CPU, with
    what its kind needs besides the module (``extras``: a vocabulary, say)."""

    folder: Path
    kind: str
    spec: dict[str, Any]
    model: nn.Module
    metrics: dict[str, Any]
    extras: dict[str, Any]


Builder = Callable[[Mapping[str, Any]], tuple[nn.Module, dict[str, Any]]]


def _build_sentiment_lstm(spec: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    from ..chapters.sentiment_imdb import SentimentLSTM, Vocabulary

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
    head = spec["head"]
    if head is not None and (
        not isinstance(head, int) or isinstance(head, bool) or not 0 <= head <= max_len
    ):
        raise ValueError(
            f"head must be null or an int in [0, max_len={max_len}], got {head!r}"
        )
    return model, {"vocabulary": vocabulary, "max_len": max_len, "head": spec["head"]}


def _build_resnet18_cifar(spec: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    from ..chapters.resnet_cifar import CIFAR10_MEAN, CIFAR10_STD, ResNet18

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
    from ..chapters.vae_mnist import VAE

    return VAE(**dict(spec["model"])), {}


_BUILDERS: dict[str, Builder] = {
    "resnet18-cifar": _build_resnet18_cifar,
    "sentiment-lstm": _build_sentiment_lstm,
    "vae-mnist": _build_vae_mnist,
}


def known_kinds() -> list[str]:
    """The kinds :func:`load_model` can rebuild."""
    return sorted(_BUILDERS)


def _check_format(weight_format: str) -> str:
    if weight_format not in WEIGHT_FORMATS:
        raise ModelArtifactError(
            f"unknown weight format {weight_format!r}; known: {', '.join(WEIGHT_FORMATS)}"
        )
    return weight_format


def _quantized(tensor: torch.Tensor) -> bool:
    """Whether ``int8`` stores this tensor as int8: floating, two or more dimensions."""
    return tensor.is_floating_point() and tensor.dim() >= 2


def quantize_int8(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)``, symmetric per output channel (dimension 0):
    ``scale = max |w| / 127`` (1 for an all-zero channel), ``q = round(w / scale)``."""
    flat = tensor.detach().float().reshape(tensor.shape[0], -1)
    scale = flat.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(flat / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(tensor.shape), scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 ``scale * q``, the inverse of :func:`quantize_int8` up to rounding."""
    shape = (-1,) + (1,) * (q.dim() - 1)
    return q.float() * scale.float().reshape(shape)


def _shipped_state(model: nn.Module, weight_format: str) -> dict[str, torch.Tensor]:
    """The state dict as it is written to ``weights.pt``."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if weight_format == "int8" and _quantized(tensor):
            state[name], state[name + SCALE_SUFFIX] = quantize_int8(tensor)
        elif tensor.is_floating_point():
            state[name] = tensor.to(SHIPPED_DTYPE)
        else:
            state[name] = tensor
    return state


def _readable_state(
    stored: Mapping[str, torch.Tensor], weight_format: str
) -> dict[str, torch.Tensor]:
    """What ``load_state_dict`` takes, from the tensors of ``weights.pt``."""
    if weight_format == "float16":
        return dict(stored)
    state = {}
    for name, tensor in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if tensor.dtype == torch.int8:
            scale = stored.get(name + SCALE_SUFFIX)
            if scale is None:
                raise ValueError(f"the int8 tensor {name!r} has no scales")
            state[name] = dequantize_int8(tensor, scale)
        else:
            state[name] = tensor
    return state


def round_to_shipped(model: nn.Module, weight_format: str = "float16") -> nn.Module:
    """Round ``model``'s weights in place to what ships in ``weight_format``, and
    back, so that a measured quality is that of the weights a reader downloads."""
    _check_format(weight_format)
    readable = _readable_state(_shipped_state(model, weight_format), weight_format)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(readable[name])
    return model


def save_model(
    path: str | Path,
    *,
    kind: str,
    spec: Mapping[str, Any],
    model: nn.Module,
    provenance: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    weight_format: str = "float16",
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write a model folder that :func:`load_model` can read; ``files`` (name ->
    bytes) go in before the manifest, which lists every file's SHA-256. The
    model is first built from ``spec``, so a folder that cannot load never ships."""
    if kind not in _BUILDERS:
        raise ModelArtifactError(
            f"unknown model kind {kind!r}; known: {', '.join(known_kinds())}"
        )
    _check_format(weight_format)
    state = _shipped_state(model, weight_format)
    try:
        rebuilt, _ = _BUILDERS[kind](spec)
        rebuilt.load_state_dict(_readable_state(state, weight_format))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelArtifactError(
            f"the spec does not describe this model ({type(error).__name__}: {error})"
        ) from error
    folder = Path(path)
    save_checkpoint(folder / WEIGHTS, state, provenance)
    digests = {
        WEIGHTS: file_sha256(folder / WEIGHTS),
        PROVENANCE: file_sha256(folder / PROVENANCE),
        **write_files(folder, files),
    }
    if "vocabulary" in spec:
        digests[VOCABULARY] = record_sha256(spec["vocabulary"])
    # Written last, the manifest lists the set: a folder that an interrupted
    # export left with a mix of old and new files fails its check on load.
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "metrics": dict(metrics or {}),
        "sha256": digests,
        "spec": dict(spec),
        "weight_format": weight_format,
    }
    text = json.dumps(manifest, separators=(",", ":")) + "\n"
    atomic_write(folder / MANIFEST, lambda handle: handle.write(text.encode()))
    return folder


def load_model(path: str | Path, *, kind: str | None = None) -> ShippedModel:
    """Rebuild the model in the folder ``path`` (of ``kind``, if given), in eval
    mode on the CPU; :class:`ModelArtifactError` says what is missing or wrong."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelArtifactError(
            f"no model folder at {str(folder)!r}; shipped models live under "
            "artifacts/ (for example artifacts/sentiment-lstm)"
        )
    manifest_path = folder / MANIFEST
    manifest = read_manifest(
        folder, MANIFEST, FORMAT, "a model folder", ModelArtifactError
    )
    missing = [key for key in ("kind", "spec") if key not in manifest]
    if missing:
        raise ModelArtifactError(f"{str(manifest_path)!r} lacks {', '.join(missing)}")
    found = manifest["kind"]
    if not isinstance(found, str) or found not in _BUILDERS:
        raise ModelArtifactError(
            f"{str(manifest_path)!r} has unknown kind {found!r:.60}; known: "
            f"{', '.join(known_kinds())}"
        )
    if not isinstance(manifest["spec"], dict):
        raise ModelArtifactError(
            f"{str(manifest_path)!r}: spec must be a JSON object, not "
            f"{manifest['spec']!r:.60}"
        )
    if kind is not None and found != kind:
        raise ModelArtifactError(
            f"{str(folder)!r} holds a {found!r} model, not a {kind!r} one"
        )
    # Folders written before int8 existed have no weight_format: float16.
    weight_format = manifest.get("weight_format", "float16")
    if not isinstance(weight_format, str) or weight_format not in WEIGHT_FORMATS:
        raise ModelArtifactError(
            f"{str(manifest_path)!r} has unknown weight format {weight_format!r}; "
            f"known: {', '.join(WEIGHT_FORMATS)}"
        )
    try:
        stored = load_checkpoint(folder / WEIGHTS)
    except CheckpointError as error:
        raise ModelArtifactError(
            load_failure(
                folder / WEIGHTS,
                error,
                "Restore the folder from the repository or export the model again.",
            )
        ) from error
    for name, value in stored.items():
        if not isinstance(value, torch.Tensor):
            raise ModelArtifactError(
                f"{str(folder / WEIGHTS)!r} holds a {type(value).__name__} under "
                f"{name!r}, not a tensor: it is not a model's weights; restore it from "
                "the repository or export the model again"
            )
    bad = non_finite(stored)
    if bad:
        raise ModelArtifactError(
            f"{str(folder / WEIGHTS)!r}: {bad!r} holds NaN or infinite values, which "
            "no trained model has; restore the folder from the repository or export "
            "the model again"
        )
    try:
        state = _readable_state(stored, weight_format)
        model, extras = _BUILDERS[found](manifest["spec"])
        model.load_state_dict(state)  # copies the rounded weights into float32
    except Exception as error:  # a spec or weights of another shape or type
        raise ModelArtifactError(
            f"{str(folder)!r}: its spec and weights do not fit kind {found!r} "
            f"({type(error).__name__}: {' '.join(str(error).split())})"
        ) from error
    # Last, so that a damaged, foreign or misshapen file is named as such:
    # weights or a vocabulary that load and fit, but are not those exported.
    problem = check_listed_digests(
        manifest_path,
        manifest.get("sha256"),
        {VOCABULARY: lambda: record_sha256(manifest["spec"].get("vocabulary"))},
    )
    if problem:
        raise ModelArtifactError(problem)
    return ShippedModel(
        folder=folder,
        kind=found,
        spec=dict(manifest["spec"]),
        model=model.eval(),
        metrics=dict(manifest.get("metrics") or {}),
        extras=extras,
    )
