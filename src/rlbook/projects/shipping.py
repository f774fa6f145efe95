"""Shipped models of the projects part: a folder that rebuilds a trained model.

A :mod:`rlbook.safeload` folder whose ``model.json`` also records the weight format
and the metrics. Weights ship rounded, to keep the repository small: ``"float16"``,
or ``"int8"`` (tensors of 2+ dimensions as int8 with a float32 scale per output
channel, the rest float16; ResNet-18's 11 MB instead of 22); quality is measured on
the rounded weights (:func:`round_to_shipped`). Introduced in *Sentiment analysis:
an LSTM on IMDb reviews*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..safeload import Kinds, Layout, load_folder

SHIPPED_DTYPE = torch.float16
WEIGHT_FORMATS = ("float16", "int8")
SCALE_SUFFIX = ".int8_scale"  # the per-channel scales of tensor NAME: NAME + this


class ModelArtifactError(ValueError):
    """A model folder that is missing or malformed."""


MODEL = Layout(
    "rlbook-model/1",
    "model.json",
    "model",
    "sentiment-lstm",
    ModelArtifactError,
    hashed=("vocabulary",),
    compact=True,
)
MANIFEST = MODEL.manifest


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


# Each kind's builder, spec -> (model, extras), lives on the page that
# trains the model; register_kind(kind) decorates it there.
KINDS = Kinds(
    {
        "resnet18-cifar": "rlbook.chapters.resnet_cifar",
        "sentiment-lstm": "rlbook.chapters.sentiment_imdb",
        "vae-mnist": "rlbook.chapters.vae_mnist",
    }
)
register_kind, known_kinds = KINDS.register, KINDS.known


def check_format(weight_format: Any, where: str = "") -> str:
    """``weight_format``, if it is one of :data:`WEIGHT_FORMATS`."""
    if weight_format not in WEIGHT_FORMATS:
        raise ModelArtifactError(
            f"{where}unknown weight format {weight_format!r}; "
            f"known: {', '.join(WEIGHT_FORMATS)}"
        )
    return weight_format


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


def shipped_state(model: nn.Module, weight_format: str) -> dict[str, torch.Tensor]:
    """The state dict as it is written to ``weights.pt``."""
    check_format(weight_format)
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if weight_format == "int8" and tensor.is_floating_point() and tensor.dim() >= 2:
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
    readable = _readable_state(shipped_state(model, weight_format), weight_format)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(readable[name])
    return model


def rebuild(
    kind: str,
    spec: Mapping[str, Any],
    stored: Mapping[str, torch.Tensor],
    weight_format: str,
) -> tuple[nn.Module, dict[str, Any]]:
    """The model of ``kind`` built from ``spec`` with ``stored`` in float32, and
    its extras."""

    model, extras = KINDS.find(kind)(spec)
    model.load_state_dict(_readable_state(stored, weight_format))
    return model, extras


def load_model(path: str | Path, *, kind: str | None = None) -> ShippedModel:
    """Rebuild the model in the folder ``path`` (of ``kind``, if given), in eval
    mode on the CPU; :class:`ModelArtifactError` says what is missing or wrong."""

    def build(_: Any, manifest: dict[str, Any], stored: dict[str, Any]) -> Any:
        if kind is not None and manifest["kind"] != kind:
            raise ModelArtifactError(
                f"{str(path)!r} holds a {manifest['kind']!r} model, not a {kind!r} one"
            )
        # Folders written before int8 existed have no weight_format: float16.
        weight_format = manifest.get("weight_format", "float16")
        check_format(weight_format, f"{str(Path(path) / MANIFEST)!r} has ")
        return rebuild(manifest["kind"], manifest["spec"], stored, weight_format)

    manifest, (model, extras) = load_folder(path, MODEL, kinds=KINDS, build=build)
    return ShippedModel(
        folder=Path(path),
        kind=manifest["kind"],
        spec=dict(manifest["spec"]),
        model=model.eval(),
        metrics=dict(manifest.get("metrics") or {}),
        extras=extras,
    )
