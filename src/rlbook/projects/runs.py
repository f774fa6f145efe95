"""Epoch loops that survive interruption and pick their best epoch by a fixed rule.

The checkpoint after each epoch holds all the next depends on (model, optimizer,
scheduler, data-order and global generators, history, best weights), so a rerun
reaches the same weights as an uninterrupted run. Best epoch: the **highest
validation score, ties to the earlier**, fixed before any run; the final
weights are returned too. Introduced in *Sentiment analysis: an LSTM on IMDb reviews*.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..seeding import torch_stream

RUN_FORMAT = "rlbook.epoch-run/1"


@dataclass
class FitResult:
    """What :func:`fit_epochs` returns: per-epoch ``history`` (``train_epoch``'s
    figures, ``epoch`` from 1, ``valid``, ``seconds``), the best and final state
    dicts, and ``resumed_from``, the epochs done before this call."""

    history: list[dict[str, float]]
    best_epoch: int
    best_valid: float
    best_state: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    resumed_from: int


def check_positive_int(value: object, name: str) -> int:
    """``value``, or a ValueError unless it is an int >= 1 (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def hold_out(
    n: int, share: float, seed: int, what: str = "images"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(valid, train)`` of ``n`` training items: a seeded random
    ``share`` (stream ``split``) held out to pick the epoch, and the rest."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"validation_share must be in (0, 1), got {share!r}")
    n_valid = max(1, round(n * share))
    if n_valid >= n:
        raise ValueError(f"{n} training {what} are too few to hold {n_valid} out")
    order = torch.randperm(n, generator=torch_stream(seed, "split"))
    return order[:n_valid], order[n_valid:]


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _differences(stored: Any, asked: Mapping[str, Any]) -> str:
    """``"seed: 0 in the checkpoint, 7 now; ..."``: how two run settings differ."""
    if not isinstance(stored, Mapping):
        return f"the checkpoint records {stored!r:.80} instead of settings"
    keys = sorted(set(stored) | set(asked), key=str)
    return "; ".join(
        f"{key}: {stored.get(key)!r} in the checkpoint, {asked.get(key)!r} now"
        for key in keys
        if stored.get(key) != asked.get(key)
    )


def fit_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    train_epoch: Callable[[], Mapping[str, float]],
    validate: Callable[[], float],
    generator: torch.Generator,
    checkpoint: str | Path | None = None,
    scheduler: Any = None,
    config: Mapping[str, Any] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train to ``epochs`` epochs in all, resuming from ``checkpoint`` if it exists.

    ``train_epoch`` (one pass, returning its figures) must draw its data order
    from ``generator``; ``validate`` scores an epoch, higher is better. A
    checkpoint written with another ``config`` is refused (CheckpointError).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    config = dict(config or {})
    path = Path(checkpoint) if checkpoint is not None else None
    history: list[dict[str, float]] = []
    best_epoch, best_valid, best_state = 0, float("-inf"), _state_copy(model)
    if path is not None and path.exists():
        state = load_checkpoint(path)
        if state.get("format") != RUN_FORMAT:
            raise CheckpointError(f"{str(path)!r} is not an epoch-run checkpoint")
        if state.get("config") != config:
            raise CheckpointError(
                f"{str(path)!r} was written by a run with other settings "
                f"({_differences(state.get('config'), config)}); delete it to start "
                "again, or run with the settings it was written with"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            history = list(state["history"])
            best_epoch = int(state["best_epoch"])
            best_valid = float(state["best_valid"])

            best_state = state["best_model"]
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            detail = " ".join(str(error).split())
            raise CheckpointError(
                f"{str(path)!r} cannot be resumed ({type(error).__name__}: "
                f"{detail[:300]}); delete it to start again"
            ) from error
    resumed_from = len(history)
    for epoch in range(resumed_from + 1, epochs + 1):
        start = time.perf_counter()
        record = dict(train_epoch())
        score = float(validate())
        record.update(
            epoch=float(epoch), valid=score, seconds=time.perf_counter() - start
        )
        history.append(record)
        if score > best_valid:
            best_epoch, best_valid, best_state = epoch, score, _state_copy(model)
        if path is not None:
            save_checkpoint(
                path,
                {
                    "format": RUN_FORMAT,
                    "config": config,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler else None,
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "best_epoch": best_epoch,
                    "best_valid": best_valid,
                    "best_model": best_state,
                },
            )
        if on_epoch is not None:
            on_epoch(record)
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best_valid=best_valid,
        best_state=copy.deepcopy(best_state),
        final_state=_state_copy(model),
        resumed_from=resumed_from,
    )
