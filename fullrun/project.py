"""The skeleton of ``scripts/train_resnet.py``, ``train_sentiment.py`` and
``train_vae.py``: each describes its chapter's part as a :class:`Project`;
:func:`run` does the rest.

A run trains one epoch at a time into ``<runs>/checkpoint.pt`` (default
``_build/<name>-<budget>``): the same command after an interruption goes on
from the last finished epoch to the weights it would have reached without
stopping. ``--export`` writes ``artifacts/<artifact>/`` (the model, its
provenance and ``metrics.json``) and refuses, before training, a tree with
uncommitted changes outside ``artifacts/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import torch

from rlbook.checkpoint import (
    CheckpointError,
    load_failure,
    make_provenance,
    require_clean_tree,
)
from rlbook.data import DataError
from rlbook.device import select_device
from rlbook.paths import repo_root
from rlbook.projects.shipping import (
    MODEL,
    ModelArtifactError,
    known_kinds,
    rebuild,
    shipped_state,
)
from rlbook.safeload import save_folder

T = TypeVar("T")


@dataclass
class Report:
    """What a finished run reports, besides the seed, config, device, threads
    and seconds that every ``metrics.json`` holds."""

    metrics: dict[str, Any]  # metrics.json's own entries: data, history, tests
    summary: dict[str, Any]  # the printed line; the shipped manifest's metrics
    score: dict[str, Any]  # the provenance's score
    spec: dict[str, Any]  # the shipped model's spec (rlbook.projects.shipping)
    printed: dict[str, Any] = field(default_factory=dict)  # more to print
    weight_format: str = "float16"
    ships: str = "best"  # the weights that ship: "best" (validation) or "final"


def _loss_and_valid(record: Mapping[str, Any]) -> Mapping[str, str]:
    return {"loss": f"{record['loss']:.3f}", "valid": f"{record['valid']:.3f}"}


@dataclass
class Project:
    """One project's part of its full run, from ``rlbook.chapters.NAME``."""

    load: Callable[[str], Any]  # the dataset's loader: "train" or "test"
    config: Callable[[str], Any]  # the settings at a budget
    prepare: Callable[[Any, Any, Any, int], Any]  # (train, test, config, seed)
    train: Callable[..., Any]  # (split, config, seed, device=, checkpoint=, on_epoch=)
    bar: str  # the progress bar's label
    # (train, test, split, config, run) to what it reports
    report: Callable[[Any, Any, Any, Any, Any], Report]
    postfix: Callable[[Mapping[str, Any]], Mapping[str, str]] = _loss_and_valid


def run(
    doc: str, path: str | Path, name: str, artifact: str, project: Callable[[], Project]
) -> int:
    """The full run of the script at ``path`` (its ``__file__``), in the
    checkout it belongs to. ``project()`` imports the chapter's code after
    the checks, so that a refused run is refused at once."""
    path = Path(path).resolve()
    root = path.parents[1]
    args = parser(doc, name, artifact).parse_args()
    device, runs = start(args, name, root)
    hold(runs)
    part = project()
    train, test = load(part.load)
    config = part.config(args.budget)
    split = part.prepare(train, test, config, args.seed)
    checkpoint = runs / "checkpoint.pt"
    with (
        resuming(checkpoint),
        epoch_bar(config.epochs, part.bar, part.postfix) as on_epoch,
    ):
        result = part.train(
            split,
            config,
            args.seed,
            device=device,
            checkpoint=checkpoint,
            on_epoch=on_epoch,
        )
    report = part.report(train, test, split, config, result)
    metrics = {
        "seed": args.seed,
        "config": asdict(config),
        **report.metrics,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds": epoch_seconds(result.history),
    }
    print(json.dumps({**report.summary, **report.printed}))
    if args.export:
        ship(
            artifact,
            root=root,
            script=path.name,
            args=args,
            config=config,
            device=device,
            run=result,
            metrics=metrics,
            summary=report.summary,
            score=report.score,
            kind=artifact,
            spec=report.spec,
            ships=report.ships,
            weight_format=report.weight_format,
        )
    return 0


def parser(doc: str, name: str, artifact: str) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=doc.splitlines()[0])
    result.add_argument(
        "--runs", type=Path, help=f"checkpoint folder (default _build/{name}-<budget>)"
    )
    result.add_argument(
        "--budget",
        default="full",
        choices=["smoke", "ci", "full"],
        help="full: the shipped model; smoke: seconds, to check the command",
    )
    result.add_argument("--seed", type=int, default=0)
    result.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    result.add_argument(
        "--threads", type=int, default=0, help="CPU threads (0: torch's default)"
    )
    result.add_argument(
        "--export", action="store_true", help=f"write artifacts/{artifact}"
    )
    return result


def fail(message: str) -> NoReturn:
    """Print ``error: message`` to stderr and exit with status 2 (bad input)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_clean(root: Path) -> None:
    try:
        require_clean_tree(root)
    except CheckpointError as error:
        fail(f"--export: {error}")


def start(
    args: argparse.Namespace, name: str, root: Path | None = None
) -> tuple[torch.device, Path]:
    """The device and checkpoint folder. ``root`` is the script's own checkout
    (the installed ``rlbook`` may be another clone's); with ``--export`` its
    dirty tree is refused now, before hours of training."""
    root = root or repo_root()
    if args.export:
        check_clean(root)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = args.runs or root / "_build" / f"{name}-{args.budget}"
    return select_device(args.device), runs


def load(loader: Callable[[str], T]) -> tuple[T, T]:
    """``loader("train"), loader("test")``; a missing or corrupt dataset exits 2
    with the loader's message (which says where it looked and how to fix it)."""
    try:
        return loader("train"), loader("test")
    except DataError as error:
        fail(str(error))


def hold(runs: Path) -> None:
    """One run per runs folder (see :mod:`fullrun.lock`)."""
    from .lock import RunsFolderBusy, hold_runs_folder

    try:
        hold_runs_folder(runs)
    except (RunsFolderBusy, OSError) as error:
        fail(str(error))


@contextmanager
def resuming(checkpoint: Path) -> Iterator[None]:
    """A checkpoint that cannot be resumed (corrupt, another model's, or written
    with another ``--budget`` or ``--seed``) exits 2 with one line saying so."""
    try:
        yield
    except CheckpointError as error:
        reason = load_failure(checkpoint, error, "Delete it to start the run again.")
        fail(
            f"cannot resume {checkpoint}: {reason} A resume keeps the --budget and "
            "--seed the run started with; for a new run use another --runs folder"
        )


@contextmanager
def epoch_bar(
    epochs: int, desc: str, postfix: Callable[[Mapping[str, Any]], Mapping[str, str]]
) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """A progress bar over the run's epochs, filled on exit (a resumed run skips
    some); yields the ``on_epoch`` callback."""
    from tqdm.auto import tqdm

    # Shown from the first update after a second: a run refused at once (a
    # checkpoint it cannot resume) prints its one error line and no bar.
    bar = tqdm(total=epochs, desc=desc, delay=1.0)

    def on_epoch(record: Mapping[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix(postfix(record))

    try:
        yield on_epoch
        bar.update(epochs - bar.n)
    finally:
        bar.close()


def epoch_seconds(history: list[Mapping[str, Any]]) -> float:
    """The run's training time even when it was resumed (each epoch's record
    keeps its own time in the checkpoint)."""
    return float(sum(record["seconds"] for record in history))


def save_model(
    path: str | Path,
    *,
    kind: str,
    spec: Mapping[str, Any],
    model: torch.nn.Module,
    provenance: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    weight_format: str = "float16",
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write a model folder that ``rlbook.projects.shipping.load_model`` can
    read; ``files`` (name -> bytes) go in before the manifest, which lists every
    file's SHA-256. The model is first rebuilt from ``spec``, so a folder that
    cannot load never ships."""
    if kind not in known_kinds():
        raise ModelArtifactError(
            f"unknown model kind {kind!r}; known: {', '.join(known_kinds())}"
        )
    state = shipped_state(model, weight_format)
    try:
        rebuild(kind, spec, state, weight_format)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelArtifactError(
            f"the spec does not describe this model ({type(error).__name__}: {error})"
        ) from error
    return save_folder(
        path,
        MODEL,
        kind=kind,
        spec=spec,
        weights=state,
        provenance=provenance,
        files=files,
        metrics=dict(metrics or {}),
        weight_format=weight_format,
    )


def ship(
    artifact: str,
    *,
    script: str,
    args: argparse.Namespace,
    config: Any,
    device: torch.device,
    run: Any,
    metrics: dict[str, Any],
    summary: Mapping[str, Any],
    score: Mapping[str, Any],
    kind: str,
    spec: Mapping[str, Any],
    root: Path | None = None,
    ships: str = "best",
    weight_format: str = "float16",
) -> Path:
    """Write ``<root>/artifacts/<artifact>/``: the model of ``run.best`` (or
    of ``run.final``, with ``ships="final"``), its provenance (``root``'s
    commit; a dirty tree is refused) and ``metrics.json``."""
    if ships not in ("best", "final"):
        raise ValueError(f"ships must be 'best' or 'final', got {ships!r}")
    if run.resumed_from:
        metrics["seconds_note"] = (
            f"resumed after epoch {run.resumed_from}; seconds sums every epoch's time"
        )
    root = root or repo_root()
    folder = root / "artifacts" / artifact
    check_clean(root)
    provenance = make_provenance(
        command=f"python scripts/{script} --budget {args.budget} --export",
        config={**asdict(config), "seed": args.seed},
        budget=args.budget,
        device=device,
        wall_time_s=metrics["seconds"],
        score=score,
        data=metrics["data"],
        root=root,  # this checkout's commit, checked clean above
    )
    text = json.dumps(metrics, separators=(",", ":")) + "\n"
    save_model(
        folder,
        kind=kind,
        spec=spec,
        model=run.best if ships == "best" else run.final,
        provenance=provenance,
        metrics=summary,
        files={"metrics.json": text.encode()},  # listed in the manifest, written last
        weight_format=weight_format,
    )
    print(f"wrote {folder}")
    return folder
