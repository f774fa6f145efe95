"""The full runs of the two Pong pages (REINFORCE, PPO) and the PPO page's
timed seeds; README.md says how to use every option.

Each run keeps its whole state in ``<runs>/<agent>/checkpoint.pt``, written
between updates: the same command goes on from it after an interruption,
with the budget and seed it started with. ``--export`` ships a finished run
to ``artifacts/pong-pg/`` or ``artifacts/pong-ppo/``; ``--snapshot`` records
an unfinished one there with its checkpoint, compressed, which ``--park``
moves into git history; a run started without a checkpoint goes on from
either. A timed seed (``--recipe fast`` or ``gpu``) stops at the first
running mean of +18 and writes ``artifacts/pong-ppo-fast/``, timed from the
process's start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = "checkpoint.pt"  # a run's, in its runs folder
CHECKPOINT_SECONDS = 300.0
COMMITTED_CHECKPOINT = "checkpoint.pt.xz"  # an unfinished run's, beside its snapshot
PARKED_CHECKPOINT = "checkpoint.parked.json"  # in its place, once --park moved it


def pack(data: bytes) -> bytes:
    """Compress a checkpoint losslessly: its bytes in four planes, then xz.

    A checkpoint is mostly aligned float32 arrays: every fourth byte together
    lets xz find the exponents' regularity (15.5 MB: 11.7, gzip's 14.0).
    """
    import lzma

    import numpy as np

    pad = (-len(data)) % 4
    planes = np.frombuffer(data + bytes(pad), np.uint8).reshape(-1, 4).T.tobytes()
    return bytes([pad]) + lzma.compress(planes, preset=6)


def unpack(packed: bytes) -> bytes:
    """The checkpoint :func:`pack` compressed, byte for byte."""
    import lzma

    import numpy as np

    pad, planes = packed[0], lzma.decompress(packed[1:])
    data = np.frombuffer(planes, np.uint8).reshape(4, -1).T.tobytes()
    return data[: len(data) - pad]


def park(folder: Path, root: Path) -> Path:
    """Replace the committed ``folder/checkpoint.pt.xz`` (HEAD must hold it as
    it is on disk) by a pointer to it in ``root``'s history."""
    import hashlib
    import subprocess

    from rlbook.checkpoint import atomic_write

    packed = folder / COMMITTED_CHECKPOINT
    rel = packed.resolve().relative_to(root.resolve()).as_posix()
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    held = subprocess.run(
        ["git", "show", f"HEAD:{rel}"], cwd=root, capture_output=True
    ).stdout
    if not packed.exists() or held != packed.read_bytes():
        raise ValueError(
            f"{rel} is not committed as it is on disk: commit the snapshot "
            "first, then --park"
        )
    pointer = {
        "commit": head,
        "path": rel,
        "sha256": hashlib.sha256(held).hexdigest(),
        "bytes": len(held),
        "how": "git show COMMIT:PATH; scripts/train_pong.py reads it back",
    }
    text = json.dumps(pointer, indent=1) + "\n"
    target = folder / PARKED_CHECKPOINT
    atomic_write(target, lambda h: h.write(text.encode()))
    packed.unlink()
    return target


def unpark(pointer_file: Path, root: Path) -> bytes:
    """The packed checkpoint ``pointer_file`` names, checked by its SHA-256."""
    import hashlib
    import subprocess

    pointer = json.loads(pointer_file.read_text())
    shown = subprocess.run(
        ["git", "show", f"{pointer['commit']}:{pointer['path']}"],
        cwd=root,
        capture_output=True,
    )
    if shown.returncode != 0:
        raise ValueError(
            f"{pointer_file} names {pointer['path']} at commit "
            f"{pointer['commit'][:12]}, which this clone lacks (a shallow clone? "
            "run git fetch --unshallow)"
        )
    if hashlib.sha256(shown.stdout).hexdigest() != pointer["sha256"]:
        raise ValueError(
            f"the checkpoint {pointer_file} names does not match its SHA-256"
        )
    return shown.stdout


def extend(state: dict[str, Any], to: int) -> dict[str, Any] | None:
    """Move the planned end of the run ``state`` to update ``to``, in place;
    the extension's record, or None where the run already plans ``to``."""
    config = json.loads(state["config"])
    planned = planned_updates(state)
    if to < planned:
        raise ValueError(
            f"--extend-to {to} is before the run's planned end at update {planned}"
        )
    if to == planned:
        return None
    config["updates"] = to
    state["config"] = json.dumps(config)
    return {"at_update": int(state["update"]), "from": planned, "to": to}


PROGRESS_FILE = "in-progress.json"  # --snapshot's, which the pages read
TEST_GAMES = 10  # each shipped agent's test games


def first_reaching(
    scores: np.ndarray, level: float, window: int | None = None
) -> int | None:
    """Index of the first game at which the running mean of ``window`` full
    games (default ``RUNNING_GAMES``) reaches ``level``, or None."""
    import numpy as np

    from rlbook.chapters.pong import RUNNING_GAMES, running_mean

    window = window or RUNNING_GAMES
    means = running_mean(scores, window)
    hit = np.flatnonzero(means[window - 1 :] >= level)
    return int(hit[0]) + window - 1 if hit.size else None


def whole_points(scores: Any) -> list[float] | list[int]:
    """Scores as JSON integers (-21, not -21.0) when all are whole points."""
    import numpy as np

    array = np.asarray(scores, dtype=np.float64)
    whole = bool(np.all(array == np.rint(array)))
    return array.astype(np.int64).tolist() if whole else array.tolist()


def planned_updates(state: Mapping[str, Any]) -> int:
    """How many updates the run ``state`` was configured for."""
    config = json.loads(state["config"])
    if state["kind"] == "pong-reinforce":
        from rlbook.chapters.pong import ReinforceConfig

        return ReinforceConfig(**config).updates
    from rlbook.chapters.pong_ppo import PPOConfig

    return PPOConfig(**config).updates


def spec_for(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The agent kind and the manifest's spec of the run ``state``."""
    config = json.loads(state["config"])
    if state["kind"] == "pong-reinforce":
        from rlbook.chapters.pong import DIFFERENCE_OBSERVATION
        from rlbook.pong import INPUTS

        network = {
            "inputs": INPUTS,
            "hidden": config["hidden"],
            "actions": config["actions"],
        }
        return "pong-pg", {
            "network": network,
            "observation": dict(DIFFERENCE_OBSERVATION),
        }
    from rlbook.chapters.pong_ppo import STACK_OBSERVATION

    network = {"frames": config["frames"], "actions": config["actions"]}
    observation = {**STACK_OBSERVATION, "frames": config["frames"]}
    return "pong-actor-critic", {"network": network, "observation": observation}


def agent_for(
    kind: str, network: Mapping[str, Any], weights: Mapping[str, torch.Tensor]
) -> Any:
    """A fresh agent of ``kind`` playing ``network`` with ``weights``."""
    from rlbook.chapters.pong import DifferenceAgent, TorchPolicy, load_network

    if kind == "pong-pg":
        return DifferenceAgent(load_network(TorchPolicy, network, weights))
    from rlbook.chapters.pong_ppo import PongActorCritic, StackAgent

    return StackAgent(load_network(PongActorCritic, network, weights))


def playing_spec(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """:func:`spec_for` and how the shipped agent plays: the run's settings
    and actions, sampled."""
    from rlbook.chapters.pong import action_set

    config = json.loads(state["config"])
    kind, spec = spec_for(state)
    spec.update(
        settings=config["settings"],
        action_set=list(action_set(config["actions"])),
        play="actions sampled from the policy (greedy play repeats one game: Pong "
        "without sticky actions is deterministic)",
    )
    return kind, spec


def half(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights as shipped: floating-point tensors in float16."""
    return {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}


def score_weights(
    state: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor],
    games: int = TEST_GAMES,
) -> np.ndarray:
    """Scores of ``games`` test games with ``weights`` of the run ``state``."""
    from rlbook.chapters.pong import play_games
    from rlbook.seeding import PONG_TEST_SEED

    kind, spec = spec_for(state)
    agent = agent_for(kind, spec["network"], weights)
    settings = json.loads(state["config"])["settings"]
    return play_games(
        agent, games, seed=PONG_TEST_SEED, settings=settings, keep_scores=True
    ).scores


def run_provenance(
    state: Mapping[str, Any], command: str, root: str | Path | None, **extra: Any
) -> dict[str, Any]:
    """The provenance of a full run's record, as its checkpoint tells it."""
    from rlbook.checkpoint import make_provenance

    return make_provenance(
        command=command,
        config=json.loads(state["config"]),
        budget=state.get("budget", "full"),
        device="cpu",
        wall_time_s=state["wall_seconds"],
        trained_at_commits=json.loads(state.get("commits", "[]")),
        resumed_at_updates=json.loads(state.get("resumed_at", "[]")),
        extended=json.loads(state.get("extensions", "[]")),
        cpu_count=os.cpu_count(),
        root=root,
        **extra,
    )


def snapshot_pong(
    state: Mapping[str, Any],
    out: str | Path,
    *,
    command: str,
    root: str | Path | None = None,
) -> Path:
    """Write ``out/in-progress.json``: an unfinished run's curves so far and
    where they came from, no weights and no tests (the pages show it as a run
    in progress); ``root`` is the checkout whose commit the provenance names.
    """
    from rlbook.checkpoint import atomic_write

    planned = planned_updates(state)
    if state["update"] >= planned:
        raise ValueError(
            f"the run has finished ({state['update']} of {planned} updates): "
            "export it with --export instead"
        )
    record = {
        "kind": state["kind"],
        "update": int(state["update"]),
        "planned_updates": int(planned),
        "env_steps": int(state["env_steps"]),
        "wall_seconds": round(float(state["wall_seconds"]), 1),
        "cpu_seconds": round(float(state.get("cpu_seconds", 0.0)), 1),
        "scores": whole_points(state["scores"]),
        "log": json.loads(state["log"]),
        "validations": json.loads(state["validations"]),
        "provenance": run_provenance(state, command, root),
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, separators=(",", ":")) + "\n"
    target = Path(out) / PROGRESS_FILE
    atomic_write(target, lambda handle: handle.write(text.encode()))
    return target


EXPORT_RULE = "the weights of the best validation (10 games each); ties to the earlier"


def export_pong(
    state: Mapping[str, Any],
    out: str | Path,
    *,
    command: str,
    root: str | Path | None = None,
    tests: Mapping[str, np.ndarray] | None = None,
    chosen_by: str = EXPORT_RULE,
    **extra: Any,
) -> Path:
    """Ship a finished run: the weights of its best validation (the rule fixed
    before the runs; ties go to the earlier) as the agent, the final weights
    beside them, both tested on :data:`TEST_GAMES` games (or the ``tests``
    given: "best" and "final" scores). The manifest lists ``metrics.json``'s
    SHA-256 too, so a changed curve fails on load; ``extra`` goes into the
    provenance.
    """
    import numpy as np

    from rlbook.agents import save_agent
    from rlbook.chapters.pong import RUNNING_GAMES
    from rlbook.checkpoint import git_commit
    from rlbook.seeding import PONG_TEST_SEED

    config = json.loads(state["config"])
    updates = planned_updates(state)
    if state["update"] < updates:
        raise ValueError(
            f"the run is at update {state['update']} of {updates}: finish it before exporting"
        )

    net_key = "policy" if state["kind"] == "pong-reinforce" else "net"
    best, final = half(state["best"]["state"]), half(state[net_key])
    if tests is None:
        tests = {
            "best": score_weights(state, best),
            "final": score_weights(state, final),
        }
    games = {len(v) for v in tests.values()}
    if len(games) != 1:
        raise ValueError(f"best and final weights tested on {games} games: one count")
    kind, spec = playing_spec(state)
    spec["best_update"] = state["best"]["update"]
    log = json.loads(state["log"])
    scores = np.asarray(state["scores"])
    reached = first_reaching(scores, 18.0) if kind == "pong-actor-critic" else None
    reached_zero = first_reaching(scores, 0.0)
    game_update = np.searchsorted(
        [e["games"] for e in log], np.arange(1, scores.size + 1)
    )

    def at_game(g: int | None) -> dict[str, Any] | None:
        if g is None:
            return None
        entry = log[int(game_update[g])]
        return {
            "game": g + 1,
            "env_steps": entry["env_steps"],
            "wall_seconds": entry["wall_seconds"],
            "cpu_seconds": entry.get("cpu_seconds"),
        }

    score = {
        "test_best_mean": float(tests["best"].mean()),
        "test_final_mean": float(tests["final"].mean()),
        "test_best": tests["best"].tolist(),
        "test_final": tests["final"].tolist(),
        "games": games.pop(),
        "seed": PONG_TEST_SEED,
    }
    provenance = run_provenance(
        state,
        command,
        root,
        score=score,
        exported_at_commit=git_commit(root),
        env_steps=state["env_steps"],
        cpu_time_s=round(state.get("cpu_seconds", 0.0), 1),
        updates=state["update"],
        chosen_by=chosen_by,
        running_mean_games=RUNNING_GAMES,
        first_running_mean_at_least_18=at_game(reached),
        first_running_mean_at_least_0=at_game(reached_zero),
        **extra,
    )
    metrics = {
        "kind": kind,
        "scores": scores.tolist(),
        "log": log,
        "validations": json.loads(state["validations"]),
        "test": {k: np.asarray(v).tolist() for k, v in tests.items()},
        "best_update": state["best"]["update"],
    }
    metrics["earlier_exports"] = earlier_exports(Path(out), scores.tolist())
    text = json.dumps(metrics, separators=(",", ":")) + "\n"
    save_agent(
        out,
        kind=kind,
        env_id=config["settings"]["env_id"],
        spec=spec,
        weights={"policy": best, "final_policy": final},
        provenance=provenance,
        files={"metrics.json": text.encode()},  # listed in the manifest, written last
    )
    # the finished run replaces any snapshot of it in progress
    (Path(out) / PROGRESS_FILE).unlink(missing_ok=True)
    return Path(out)


FAST_TEST_GAMES = 30  # #26: each timed seed's final and best weights
FAST_SEEDS = 3  # #26: timed seeds of one change before an agent ships
FAST_RULE = (
    "of the timed seeds of one change (at least 3, every one at +18), the one "
    "in the middle by wall time to +18 (of an even count, the faster middle "
    "one); its final weights, those of the update that reached +18"
)


def median_seed(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The record whose agent ships, by :data:`FAST_RULE` (fixed before the
    timed seeds ran); ValueError says why none can."""
    if len(records) < FAST_SEEDS:
        raise ValueError(
            f"{len(records)} timed seed(s) of this change: an agent ships after "
            f"{FAST_SEEDS}, all of them at +18"
        )
    missed = [r["seed"] for r in records if not r["first_running_mean_at_least_18"]]
    if missed:
        raise ValueError(f"seed(s) {missed} did not reach +18: no agent ships")
    ordered = sorted(
        records,
        key=lambda r: (
            r["first_running_mean_at_least_18"]["process_wall_seconds"],
            r["seed"],
        ),
    )
    return ordered[(len(ordered) - 1) // 2]


def seed_runs(
    timed: list[Path], checkpoint_of: Callable[[int], Path], hint: str
) -> Iterator[tuple[Path, dict[str, Any], Path, dict[str, Any]]]:
    """Each timed record, its checkpoint's path and the state there;
    ValueError, with ``hint``, where a checkpoint is missing."""
    from rlbook.checkpoint import load_checkpoint

    for path in timed:
        record = json.loads(path.read_text())
        checkpoint = checkpoint_of(record["seed"])
        if not checkpoint.exists():
            raise ValueError(f"{path.name}: no checkpoint at {checkpoint}: {hint}")
        yield path, record, checkpoint, load_checkpoint(checkpoint)


def export_fast(
    timed: list[Path],
    checkpoint_of: Callable[[int], Path],
    out: Path,
    *,
    command: str,
    root: Path,
) -> Path:
    """Test every timed seed of one change (its record in ``timed``, its run's
    checkpoint at ``checkpoint_of(seed)``) on :data:`FAST_TEST_GAMES` test
    games, its final weights and its best validation's, into its record; then
    ship the final weights of the seed :func:`median_seed` picks as the agent
    in ``out``."""
    from rlbook.agents import save_agent
    from rlbook.checkpoint import atomic_write
    from rlbook.seeding import PONG_TEST_SEED

    records, states = {}, {}
    hint = "export where the seed trained, with the --runs it trained in"
    for path, record, checkpoint, state in seed_runs(timed, checkpoint_of, hint):
        if (state["seed"], state["update"]) != (record["seed"], record["updates"]):
            raise ValueError(
                f"{checkpoint} (seed {state['seed']}, update {state['update']}) is "
                f"not the run {path.name} records (seed {record['seed']}, update "
                f"{record['updates']})"
            )
        records[path], states[path] = record, state
    chosen = median_seed(list(records.values()))
    for path, record in records.items():
        state = states[path]
        weights = {"final": half(state["net"]), "best": half(state["best"]["state"])}
        scores = {
            k: score_weights(state, w, FAST_TEST_GAMES) for k, w in weights.items()
        }
        record["test"] = {
            "games": FAST_TEST_GAMES,
            "seed": PONG_TEST_SEED,
            "final_update": state["update"],
            "best_update": state["best"]["update"],
            **{f"{k}_mean": float(v.mean()) for k, v in scores.items()},
            **{k: whole_points(v) for k, v in scores.items()},
            "command": command,
        }
        text = json.dumps(record, separators=(",", ":")) + "\n"
        atomic_write(path, lambda h, text=text: h.write(text.encode()))
        print(
            f"{path.name}: final {record['test']['final_mean']:+.2f}, best validation "
            f"(update {state['best']['update']}) {record['test']['best_mean']:+.2f} over "
            f"{FAST_TEST_GAMES} test games"
        )
        if record is not chosen:
            continue
        config = json.loads(state["config"])
        kind, spec = playing_spec(state)
        spec.update(seed=record["seed"], update=state["update"])
        test = record["test"]
        save_agent(
            out,
            kind=kind,
            env_id=config["settings"]["env_id"],
            spec=spec,
            weights={"policy": weights["final"]},
            provenance=run_provenance(
                state,
                command,
                root,
                score={
                    "shipped": "final",
                    "test_final_mean": test["final_mean"],
                    "test_best_mean": test["best_mean"],
                    "games": FAST_TEST_GAMES,
                    "seed": PONG_TEST_SEED,
                },
                chosen_by=FAST_RULE,
                timed_record=path.name,
                first_running_mean_at_least_18=record["first_running_mean_at_least_18"],
                env_steps=state["env_steps"],
                cpu_time_s=round(state.get("cpu_seconds", 0.0), 1),
                updates=state["update"],
            ),
        )
    return out


FULL_RULE = (
    "the seed the timed rule picks (" + FAST_RULE + "), its run continued to "
    "the full budget; of that run, " + EXPORT_RULE + ", its final weights "
    "beside them; written before the continued runs finished"
)


def export_full(
    timed: list[Path],
    full_of: Callable[[int], Path],
    out: Path,
    *,
    command: str,
    root: Path,
) -> Path:
    """#26: every timed seed of one change (its record in ``timed``), continued
    from its +18 checkpoint to the full budget (that run's checkpoint at
    ``full_of(seed)``): its best-validation and final weights tested on
    :data:`FAST_TEST_GAMES` games, into ``out/seeds/<record name>``; then the
    run of the seed :func:`median_seed` picks ships from ``out`` by
    :data:`FULL_RULE`, all its curves in ``metrics.json``."""
    import numpy as np

    from rlbook.checkpoint import atomic_write
    from rlbook.seeding import PONG_TEST_SEED

    records, states = {}, {}
    hint = "run the seed to the full budget first (--full without --export)"
    for path, record, checkpoint, state in seed_runs(timed, full_of, hint):
        planned = planned_updates(state)
        went_on_from = json.loads(state.get("resumed_at", "[]"))[:1]
        if state["seed"] != record["seed"] or went_on_from != [record["updates"]]:
            raise ValueError(
                f"{checkpoint} (seed {state['seed']}, resumed at updates "
                f"{went_on_from}) did not go on from the run {path.name} records "
                f"(seed {record['seed']}, +18 at update {record['updates']})"
            )
        if state["update"] < planned:
            raise ValueError(
                f"{checkpoint} is at update {state['update']} of {planned}: "
                "finish it (rerun --full) before exporting"
            )
        records[path], states[path] = record, state
    chosen = median_seed(list(records.values()))
    (out / "seeds").mkdir(parents=True, exist_ok=True)
    for path, record in records.items():
        state = states[path]
        weights = {"best": half(state["best"]["state"]), "final": half(state["net"])}
        tests = {
            k: np.asarray(score_weights(state, w, FAST_TEST_GAMES))
            for k, w in weights.items()
        }
        summary = {
            "kind": "pong-ppo-full",
            "seed": record["seed"],
            "timed_record": path.name,
            "went_on_from_update": record["updates"],
            "updates": int(state["update"]),
            "env_steps": int(state["env_steps"]),
            "games": len(state["scores"]),
            # the run's own clocks, from the timed run's start; a continued
            # run may have waited, paused, between them: not a timing
            "run_cpu_seconds": round(float(state.get("cpu_seconds", 0.0)), 1),
            "last_20_mean": (
                float(np.mean(state["scores"][-20:])) if state["scores"] else None
            ),
            "validations": [
                {"update": v["update"], "mean": v["mean"]}
                for v in json.loads(state["validations"])
            ],
            "scores": whole_points(state["scores"]),
            # games finished by each update, from update 1
            "games_at_update": [e["games"] for e in json.loads(state["log"])],
            "test": {
                "games": FAST_TEST_GAMES,
                "seed": PONG_TEST_SEED,
                "best_update": state["best"]["update"],
                "final_update": int(state["update"]),
                **{f"{k}_mean": float(v.mean()) for k, v in tests.items()},
                **{k: whole_points(v) for k, v in tests.items()},
            },
            "provenance": run_provenance(state, command, root),
        }
        text = json.dumps(summary, separators=(",", ":")) + "\n"
        target = out / "seeds" / path.name
        atomic_write(target, lambda h, text=text: h.write(text.encode()))
        print(
            f"{target}: best validation (update {state['best']['update']}) "
            f"{summary['test']['best_mean']:+.2f}, final "
            f"{summary['test']['final_mean']:+.2f} over {FAST_TEST_GAMES} test games"
        )
        if record is chosen:
            export_pong(
                state,
                out,
                command=command,
                root=root,
                tests=tests,
                chosen_by=FULL_RULE,
                seed=record["seed"],
                timed_record=path.name,
            )
    return out


def fast_folder(args: argparse.Namespace, seed: int, full: bool = False) -> str:
    """A timed run's folder in ``--runs``: its recipe, changes and seed; its
    continuation's (``full``) beside it."""
    changed = "".join(f"-{k}-{v}" for k, v in args.change)
    return f"ppo-{args.recipe}{changed}-seed{seed}" + ("-full" if full else "")


def fast_prefix(args: argparse.Namespace) -> str:
    """A timed run's record name before ``seed-S.json``: recipe, lanes, changes."""
    prefix = "" if args.recipe == "fast" else f"{args.recipe}-"
    prefix += "{}x{}-".format(*args.lanes) if args.lanes else ""
    return prefix + "".join(f"{k}-{v}-" for k, v in args.change)


def lanes_argument(value: str) -> tuple[int, int]:
    """``--lanes ENVSxSTEPS``: two positive integers, e.g. ``64x32``."""
    match = re.fullmatch(r"([1-9]\d*)x([1-9]\d*)", value.lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not ENVSxSTEPS: games side by side, an x, then "
            "steps per update, both at least 1, e.g. 64x32"
        )
    return int(match[1]), int(match[2])


def change_argument(value: str) -> tuple[str, int | float | bool]:
    """``--change KEY=VALUE``: one PPOConfig field and its number or bool."""
    key, sep, text = value.partition("=")
    try:
        if not (sep and key.isidentifier()):
            raise ValueError
        parsed = json.loads(text.lower())
        if not isinstance(parsed, int | float):  # bool is an int
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not KEY=VALUE with a number or true/false, "
            "e.g. minibatches=8"
        ) from None
    return key, parsed


def earlier_exports(out: Path, scores: list) -> list[dict[str, Any]]:
    """What earlier exports of this run in ``out`` tested, kept when the run,
    continued (``--extend-to``: its scores begin with theirs), is exported
    over them; their weights stay in history."""
    try:
        metrics = json.loads((out / "metrics.json").read_text())
        provenance = json.loads((out / "weights.provenance.json").read_text())
    except FileNotFoundError:
        return []
    before = metrics["scores"]
    if len(before) >= len(scores) or before != scores[: len(before)]:
        return []  # another run, or this one again: replaced, not continued
    return [
        *metrics.get("earlier_exports", []),
        {
            "games": len(metrics["scores"]),
            "updates": provenance["updates"],
            "best_update": metrics["best_update"],
            "test": metrics["test"],
            "exported_at_commit": provenance["exported_at_commit"],
        },
    ]


def since_process_start() -> tuple[float, float]:
    """Wall and CPU seconds since this process started, imports included; the
    CPU adds the children this process has reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as handle:  # field 22: start, in ticks since boot
        started = int(handle.read().rsplit(")", 1)[1].split()[19]) / ticks
    wall = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    times = os.times()
    return wall, time.process_time() + times.children_user + times.children_system


class ReachedTarget(Exception):
    pass


class OutOfTime(Exception):
    pass


def stop_at(
    level: float,
    reached: list[dict[str, Any]],
    then: Any = None,
    max_wall_seconds: float | None = None,
) -> Any:
    """A ``progress`` callback for ``train``: after ``then(run)``, once the
    running mean first reaches ``level`` it appends where the run stands to
    ``reached`` (the CPU time with the collector's, still running) and raises
    :class:`ReachedTarget`; past ``max_wall_seconds`` without it,
    :class:`OutOfTime`."""
    import numpy as np

    def check(run: Any) -> None:
        if then is not None:
            then(run)
        game = first_reaching(np.asarray(run.scores), level)
        wall, cpu = since_process_start()
        if game is None:
            if max_wall_seconds is not None and wall > max_wall_seconds:
                raise OutOfTime
            return
        cpu += getattr(run, "collector_cpu_seconds", 0.0)
        reached.append(
            {
                "game": game + 1,
                "update": run.update,
                "env_steps": run.env_steps,
                "process_wall_seconds": round(wall, 2),
                "process_cpu_seconds": round(cpu, 2),
                "run_wall_seconds": round(run.wall_seconds, 2),
                "run_cpu_seconds": round(run.cpu_seconds, 2),
            }
        )
        raise ReachedTarget

    return check


def fast_record(
    run: Any,
    *,
    reached: dict[str, Any] | None,
    command: str,
    budget: str,
    resumed_at: list[int],
    load_at_start: tuple[float, ...],
    root: Path,
    recipe: str = "fast",
) -> dict[str, Any]:
    """The record of a timed seed: when it first reached +18, and its curve."""
    from rlbook.chapters.pong import RUNNING_GAMES
    from rlbook.checkpoint import make_provenance

    wall, cpu = since_process_start()  # the collector has been reaped
    return {
        "kind": "pong-ppo-fast",
        "recipe": recipe,
        "seed": run.seed,
        "target": 18.0,
        "running_mean_games": RUNNING_GAMES,
        "first_running_mean_at_least_18": reached,
        "updates": run.update,
        "env_steps": run.env_steps,
        "games": len(run.scores),
        "process_wall_seconds": round(wall, 2),
        "process_cpu_seconds": round(cpu, 2),
        "run_wall_seconds": round(run.wall_seconds, 2),
        "run_cpu_seconds": round(run.cpu_seconds, 2),
        "scores": [int(x) for x in run.scores],
        "steps_per_update": run.config.batch,
        # row u - 1: games finished, wall and CPU seconds of the run at update u
        "curve_columns": ["games", "run_wall_seconds", "run_cpu_seconds"],
        "curve": [
            [e["games"], round(e["wall_seconds"], 1), round(e["cpu_seconds"], 1)]
            for e in run.log
        ],
        "validations": [
            {"update": v["update"], "mean": v["mean"]} for v in run.validations
        ],
        "provenance": make_provenance(
            command=command,
            config=run.config,
            budget=budget,
            device=str(run.device),
            wall_time_s=wall,
            cpu_count=os.cpu_count(),
            torch_threads=__import__("torch").get_num_threads(),
            load_average_at_start=[round(x, 2) for x in load_at_start],
            load_average_at_end=[round(x, 2) for x in os.getloadavg()],
            resumed_at_updates=resumed_at,
            timed_from_process_start=not resumed_at,
            root=root,
        ),
    }


def ship(args: argparse.Namespace, checkpoint: Path, shipped: Path) -> Path:
    """``--export`` or ``--snapshot`` the run in ``checkpoint``, from committed
    code."""
    from rlbook.checkpoint import atomic_write, load_checkpoint, require_clean_tree

    require_clean_tree(ROOT)
    if not checkpoint.exists():
        what = "export" if args.export else "snapshot"
        raise ValueError(f"no run to {what}: {checkpoint} does not exist")
    state = load_checkpoint(checkpoint)
    budget = state.get("budget", "full")
    command = f"python scripts/train_pong.py {args.agent} --budget {budget}"
    committed = shipped / COMMITTED_CHECKPOINT
    if args.export:
        written = export_pong(state, shipped, command=command, root=ROOT)
        committed.unlink(missing_ok=True)
    else:
        written = snapshot_pong(state, shipped, command=command, root=ROOT)
        packed = pack(checkpoint.read_bytes())
        atomic_write(committed, lambda h: h.write(packed))
        print(f"wrote {committed} ({committed.stat().st_size / 1e6:.1f} MB)")
    (shipped / PARKED_CHECKPOINT).unlink(missing_ok=True)  # replaced
    return written


def start_run(
    args: argparse.Namespace, checkpoint: Path, shipped: Path, fast: bool
) -> tuple[Any, dict[str, Any]]:
    """The run to train, from its checkpoint or new, and what its checkpoints
    record beside its state."""
    from rlbook.checkpoint import atomic_write, load_checkpoint

    if args.agent == "reinforce":
        from rlbook.chapters.pong import Reinforce as Run
        from rlbook.chapters.pong import reinforce_config as make_config
    else:
        from rlbook.chapters.pong_ppo import PPO as Run  # type: ignore[assignment]
        from rlbook.chapters.pong_ppo import ppo_config as make_config  # type: ignore[assignment]

    committed = shipped / COMMITTED_CHECKPOINT
    parked = shipped / PARKED_CHECKPOINT
    if not checkpoint.exists() and (committed.exists() or parked.exists()):
        # A new machine: go on from the checkpoint committed on main.
        source = committed if committed.exists() else parked
        packed = committed.read_bytes() if committed.exists() else unpark(parked, ROOT)
        data = unpack(packed)
        atomic_write(checkpoint, lambda h: h.write(data))
        print(f"no checkpoint in {checkpoint.parent}: starting from {source}")
    if not checkpoint.exists():
        if args.extend_to is not None:
            raise ValueError("--extend-to goes on from a checkpoint, and there is none")
        budget = args.budget or "full"
        record = {"budget": budget, "commits": [], "resumed_at": [], "extensions": []}
        seed = args.seed or 0
        if not fast:
            return Run(make_config(budget), seed), record
        from dataclasses import replace

        from rlbook.device import select_device

        config = make_config(budget, recipe=args.recipe)  # type: ignore[call-arg]
        if args.lanes:
            config = replace(config, envs=args.lanes[0], steps=args.lanes[1])
        try:
            config = replace(config, **dict(args.change))
        except TypeError:
            fields = ", ".join(vars(config))
            raise ValueError(
                f"--change {' '.join(k for k, _ in args.change)}: PPOConfig's "
                f"fields are {fields}"
            ) from None
        # $RLBOOK_DEVICE can move a gpu run, never a CPU recipe
        device = select_device(args.device) if args.recipe == "gpu" else "cpu"
        return Run(config, seed, device=str(device)), record  # type: ignore[call-arg]

    state = load_checkpoint(checkpoint)
    budget = str(state.get("budget", "full"))
    for option, asked, stored in (
        ("--budget", args.budget, budget),
        ("--seed", args.seed, state.get("seed")),
    ):
        if asked is not None and asked != stored:
            raise ValueError(
                f"{checkpoint} is a run with {option} {stored}, not {asked}: drop "
                f"{option} to resume it, or use another --runs folder for a new run"
            )
    extensions = json.loads(state.get("extensions", "[]"))
    if args.extend_to is not None and (moved := extend(state, args.extend_to)):
        extensions.append(moved)
    run = Run.from_state(state)
    print(f"resuming {checkpoint} at update {run.update}", flush=True)
    return run, {
        "budget": budget,
        "commits": json.loads(state.get("commits", "[]")),
        "resumed_at": [*json.loads(state.get("resumed_at", "[]")), run.update],
        "extensions": extensions,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent", choices=["reinforce", "ppo"])
    parser.add_argument("--runs", type=Path, default=ROOT / "_build" / "pong")
    parser.add_argument("--seed", type=int, default=None, help="default 0")
    parser.add_argument(
        "--budget", default=None, choices=["smoke", "ci", "full"], help="default full"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--device", default="cpu", help="the learner's: cpu, cuda (--recipe gpu)"
    )
    ship_group = parser.add_mutually_exclusive_group()
    ship_group.add_argument("--export", action="store_true", help="ship a finished run")
    ship_group.add_argument(
        "--snapshot", action="store_true", help="record an unfinished run's curves"
    )
    ship_group.add_argument(
        "--park",
        action="store_true",
        help="move the committed checkpoint into main's history, leaving a pointer",
    )
    parser.add_argument(
        "--extend-to",
        type=int,
        default=None,
        metavar="N",
        help="REINFORCE: go on past the run's planned end to update N",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--agent-out",
        type=Path,
        default=None,
        help="--recipe fast --export: the agent's folder (artifacts/pong-ppo-fast)",
    )
    parser.add_argument(
        "--recipe",
        default="shipped",
        choices=["shipped", "fast", "gpu"],
        help="PPO only: fast and gpu stop at the first running mean of +18 (#26)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="fast and gpu recipes: go on from the timed seed's +18 checkpoint to "
        "the full budget; with --export, ship the rule's pick of those runs",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="fast recipe: give up (and record it) past this wall time",
    )
    parser.add_argument(
        "--lanes",
        type=lanes_argument,
        default=None,
        metavar="ENVSxSTEPS",
        help="fast and gpu recipes: games side by side x steps per update, e.g. 64x32",
    )
    parser.add_argument(
        "--change",
        type=change_argument,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fast and gpu recipes: one PPOConfig field changed, e.g. "
        "minibatches=8 (repeatable); the record is named after the changes",
    )
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    fast = args.recipe != "shipped"
    if fast and args.agent != "ppo":
        parser.error("--recipe is PPO's")
    if (args.lanes or args.change or args.full or args.max_minutes is not None) and (
        not fast
    ):
        parser.error(
            "--lanes, --change, --full and --max-minutes go with --recipe fast or gpu"
        )
    if args.full and args.max_minutes is not None:
        parser.error("--full runs to the budget's end: no --max-minutes")
    if args.device != "cpu" and args.recipe != "gpu":
        parser.error("--device goes with --recipe gpu: the other runs are CPU runs")
    if args.extend_to is not None and (
        args.agent != "reinforce" or args.export or args.snapshot or args.park
    ):
        parser.error("--extend-to resumes a REINFORCE run")
    if fast and args.snapshot:
        parser.error("a fast run writes its own record: no --snapshot")
    if args.agent_out is not None and not (fast and args.export):
        parser.error("--agent-out goes with --recipe fast --export")
    agent_out = args.agent_out or ROOT / "artifacts" / (
        "pong-ppo-minutes" if args.full else "pong-ppo-fast"
    )
    if fast:  # inductor compiles in this process, so its CPU time is counted
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

    import torch

    from fullrun.lock import RunsFolderBusy, hold_runs_folder
    from rlbook.checkpoint import (
        CheckpointError,
        atomic_write,
        git_commit,
        require_clean_tree,
        save_checkpoint,
    )

    torch.set_num_threads(args.threads)
    folder = args.runs / args.agent
    shipped = args.out or ROOT / "artifacts" / (
        "pong-pg" if args.agent == "reinforce" else "pong-ppo"
    )
    if fast:  # its own record, never the shipped run's committed checkpoint
        folder = args.runs / fast_folder(args, args.seed or 0, args.full)
        shipped = args.out or ROOT / "artifacts" / "pong-ppo-fast"
    checkpoint = folder / CHECKPOINT
    try:
        if args.park:
            print(f"wrote {park(shipped, ROOT)}: commit it")
            return 0
        if fast and args.export:  # every timed seed of this change, then its agent
            require_clean_tree(ROOT)
            records = sorted(shipped.glob(f"{fast_prefix(args)}seed-*.json"))
            written = (export_full if args.full else export_fast)(
                records,
                lambda seed: (
                    args.runs / fast_folder(args, seed, args.full) / CHECKPOINT
                ),
                agent_out,
                command=" ".join(["python scripts/train_pong.py", *sys.argv[1:]]),
                root=ROOT,
            )
            print(f"wrote {written}")
            return 0
        if args.export or args.snapshot:
            print(f"wrote {ship(args, checkpoint, shipped)}")
            return 0
        if fast and args.out is None:  # a shipped record comes from committed code
            require_clean_tree(ROOT)
        hold_runs_folder(folder)  # one run per runs folder
        if args.full and not checkpoint.exists():  # go on from the timed seed
            timed = args.runs / fast_folder(args, args.seed or 0) / CHECKPOINT
            if not timed.exists():
                raise ValueError(
                    f"no timed run at {timed}: time seed {args.seed or 0} first "
                    "(the same command without --full)"
                )
            data = timed.read_bytes()
            atomic_write(checkpoint, lambda h: h.write(data))
        run, record = start_run(args, checkpoint, shipped, fast and not args.full)
    except (ValueError, CheckpointError, RunsFolderBusy) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    commit = os.environ.get("RLBOOK_GIT_COMMIT") or git_commit(ROOT)

    def save(r: Any) -> None:
        state = r.state_dict()
        state["budget"] = record["budget"]
        state["commits"] = json.dumps(sorted({*record["commits"], commit}))
        state["resumed_at"] = json.dumps(record["resumed_at"])
        state["extensions"] = json.dumps(record["extensions"])
        save_checkpoint(checkpoint, state)
        progress = {
            "agent": args.agent,
            "update": r.update,
            "env_steps": r.env_steps,
            "wall_seconds": r.wall_seconds,
            "cpu_seconds": r.cpu_seconds,
            "scores": r.scores,
            "log": r.log,
            "validations": r.validations,
        }
        text = json.dumps(progress)
        atomic_write(folder / "progress.json", lambda h: h.write(text.encode()))

    last = [time.perf_counter()]

    def progress(r: Any) -> None:
        if time.perf_counter() - last[0] > 60:
            recent = r.scores[-20:]
            print(
                f"update {r.update} games {len(r.scores)} steps {r.env_steps} "
                f"wall {r.wall_seconds:.0f}s cpu {r.cpu_seconds:.0f}s last-20 mean "
                f"{sum(recent) / max(1, len(recent)):.2f}",
                flush=True,
            )
            last[0] = time.perf_counter()

    reached: list[dict[str, Any]] = []
    callback = progress
    if fast:
        budget_s = None if args.max_minutes is None else 60 * args.max_minutes
        if not args.full:
            callback = stop_at(18.0, reached, then=progress, max_wall_seconds=budget_s)
    try:
        run.train(
            checkpoint=save,
            checkpoint_seconds=CHECKPOINT_SECONDS,
            progress=callback,
        )
    except (ReachedTarget, OutOfTime):
        save(run)
    if not fast or args.full:
        print("done", flush=True)
        return 0

    command = (
        f"python scripts/train_pong.py ppo --recipe {args.recipe} --seed {run.seed}"
    )
    if args.device != "cpu":
        command += f" --device {args.device}"
    if args.lanes:
        command += " --lanes {}x{}".format(*args.lanes)
    command += "".join(f" --change {k}={v}" for k, v in args.change)
    if record["budget"] != "full":
        command += f" --budget {record['budget']}"
    if args.max_minutes is not None:
        command += f" --max-minutes {args.max_minutes:g}"
    hit = reached[0] if reached else None
    result = fast_record(
        run,
        reached=hit,
        command=command,
        budget=record["budget"],
        resumed_at=record["resumed_at"],
        load_at_start=load_at_start,
        root=ROOT,
        recipe=args.recipe,
    )
    text = json.dumps(result, separators=(",", ":")) + "\n"
    target = shipped / f"{fast_prefix(args)}seed-{run.seed}.json"
    shipped.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda h: h.write(text.encode()))
    if hit:
        print(
            f"wrote {target}: +18 at game {hit['game']}, {hit['env_steps']} steps, "
            f"{hit['process_wall_seconds']:.0f} s wall, "
            f"{hit['process_cpu_seconds']:.0f} s CPU from process start"
        )
    else:
        print(f"wrote {target}: never reached +18")
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # rlbook, fullrun
    sys.exit(main())
