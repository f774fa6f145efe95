"""Epoch loops that survive interruption and pick their best epoch by a fixed rule.

:func:`fit_epochs` runs ``train_epoch`` then ``validate`` once per epoch. After
every epoch it can write a checkpoint holding all that the next epoch depends
on: the model, the optimizer (and scheduler), the data-order generator,
torch's global generator (dropout), the history, and the best weights so far.
Run the same call again after an interruption and it goes on from the last
finished epoch to the weights it would have reached without stopping.

The best epoch is the one with the **highest validation score; ties go to the
earlier epoch**. The rule is fixed here, before any run, and the final
weights are always returned beside the best ones, so a page reports both.

Introduced in the chapter *Sentiment analysis: an LSTM on IMDb reviews*.
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

__all__ = ["FitResult", "check_positive_int", "fit_epochs", "hold_out"]

RUN_FORMAT = "rlbook.epoch-run/1"


@dataclass
class FitResult:
    """What :func:`fit_epochs` returns.

    Attributes:
        history: one record per epoch: ``train_epoch``'s figures, then
            ``epoch`` (from 1), ``valid`` (the validation score) and
            ``seconds`` (that epoch's training and validation).
        best_epoch: the epoch with the highest validation score (ties: the earlier).
        best_valid: its score.
        best_state: a copy of the model's state dict after that epoch.
        final_state: a copy after the last epoch (the model itself also ends there).
        resumed_from: the epochs already done when this call began (0: a fresh run).
    """

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
    """Train ``epochs`` epochs, resuming from ``checkpoint`` if it exists.

    Args:
        model, optimizer: trained in place.
        epochs: how many epochs the run has in all (not how many more).
        train_epoch: one pass over the training data, returning its figures
            (e.g. :func:`rlbook.chapters.sentiment_imdb.train_lstm_epoch` bound to
            its arguments). It must draw its data order from ``generator``.
        validate: the validation score after an epoch, higher is better.
        generator: the data-order generator, saved and restored with the run.
        checkpoint: a ``.pt`` file written (atomically) after every epoch;
            None for a run that cannot be resumed.
        scheduler: a learning-rate scheduler stepped by ``train_epoch`` or
            here; its state is saved too. None if there is none.
        config: the run's settings. A checkpoint written with other settings
            is refused rather than continued.
        on_epoch: called with each epoch's record (a progress line, say).

    Raises:
        rlbook.checkpoint.CheckpointError: for a corrupt checkpoint, or one
            written by a run with another ``config``.
        ValueError: for ``epochs < 1``.
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
            best_epoch, best_valid = (
                int(state["best_epoch"]),
                float(state["best_valid"]),
            )
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
