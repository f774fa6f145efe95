"""DQN from CartPole's pixels: what surrounds the chapter's agent.

The agent itself (the Q-network, the run's settings, the loss, the loop and
its checkpoints) is written on the chapter's page, ``chapters/dqn_pixels.md``,
and generated into :mod:`rlbook.chapters.dqn_pixels`. This module holds:

* :class:`PixelQPolicy` and the ``pixel-q-network`` kind of shipped agent;
* :func:`test_weights`: greedy returns of some weights on the test episodes;
* the full run: its settings (:data:`FULL_RUN`), the variants and ablations,
  the rules fixed before the runs that pick the shipped agent
  (:func:`choose_winner`) and compare the ablations, and the export.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .agents import register_kind
from .chapters.dqn_pixels import PixelDQN, PixelDQNConfig, PixelQNetwork
from .checkpoint import load_checkpoint
from .pixels import evaluate_pixels, pipeline_for
from .seeding import TEST_SEED


@dataclass(frozen=True)
class PixelQPolicy:
    """Greedy policy of a pixel Q-network: ``(N, k, H, W)`` uint8 stacks in."""

    q_net: PixelQNetwork

    def act_batch(self, stacks: np.ndarray) -> np.ndarray:
        weight = next(self.q_net.parameters())
        with torch.inference_mode():
            values = self.q_net(torch.as_tensor(stacks, device=weight.device))
        return values.argmax(dim=1).cpu().numpy()

    def act(self, stacks: np.ndarray) -> int:
        return int(self.act_batch(stacks[None])[0])


@register_kind("pixel-q-network")
def _build_pixel_q_network(
    spec: Mapping[str, Any], weights: Mapping[str, torch.Tensor]
) -> PixelQPolicy:
    q_net = PixelQNetwork(**spec["network"])
    q_net.load_state_dict(weights["q_net"])  # float16 weights are cast to float32
    q_net.eval()
    return PixelQPolicy(q_net)


def test_weights(
    run: PixelDQN, state: Mapping[str, torch.Tensor], episodes: int = 100
) -> np.ndarray:
    """Greedy returns of weights ``state`` of ``run``'s network on the test
    episodes (reset with ``TEST_SEED``, +1, ...), on the run's own frames."""
    net = PixelQNetwork(**run.q_net.spec).to(run.device)
    net.load_state_dict(state)
    return evaluate_pixels(
        PixelQPolicy(net.eval()).act_batch,
        episodes=episodes,
        seed=TEST_SEED,
        stack=run.config.stack,
        frames=run.config.frames,
        envs=16,
    )


# -- the chapter's full run: variants, the rule that picks the shipped agent, export --

FULL_RUN = PixelDQNConfig(
    total_steps=100_000,
    envs=8,
    batch_size=32,
    train_every=4,
    learning_rate=1e-4,
    buffer_size=100_000,
    learning_starts=5_000,
    target_every=1_000,
    epsilon_fraction=0.1,
    validate_every=5_000,
    validate_episodes=32,
    frames="simple",
)
"""The settings every variant of the full run shares. A first sweep with the same
learning settings on Gymnasium's picture (``frames="batched"``, 200,000 steps)
was stopped at 80,000 steps with its best run's validation return at 63; the
chapter measures the difference the frames make."""

SMOKE_RUN = PixelDQNConfig(
    total_steps=2_000,
    envs=8,
    batch_size=32,
    train_every=8,
    buffer_size=2_000,
    learning_starts=500,
    target_every=50,
    validate_every=1_000,
    validate_episodes=2,
)
"""A run of seconds that exercises every part (its numbers mean nothing)."""


def base_config(budget: str) -> PixelDQNConfig:
    """:data:`FULL_RUN` at ``full``; a seconds-long stand-in otherwise (tests, smoke)."""
    return FULL_RUN if budget == "full" else SMOKE_RUN


VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "n-step 3": {"n_step": 3},
    "n-step 3 + shift 4": {"n_step": 3, "shift": 4},
}
"""Each variant changes :data:`FULL_RUN` in the listed fields only."""


def variant_config(name: str, base: PixelDQNConfig = FULL_RUN) -> PixelDQNConfig:
    """The config of variant ``name`` of :data:`VARIANTS`."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return PixelDQNConfig(**{**asdict(base), **VARIANTS[name]})


ABLATION_BASE = "n-step 3 + shift 4"
"""The recipe the ablations change: the shipped variant of :data:`VARIANTS`."""

ABLATIONS: dict[str, dict[str, Any]] = {
    "8 frames": {"stack": 8},
    "lecture network": {"arch": "lecture"},
}
"""The lecture's two choices this book did not take, each applied alone to
:data:`ABLATION_BASE`. They answer questions about the recipe, so they play no
part in :func:`choose_winner`."""

ABLATION_FRACTION = 0.5
"""Ablation runs stop at this share of the run's ``total_steps``. They keep the
full run's schedules (epsilon, replay size), so up to that step they are
compared validation for validation with the first part of the shipped
variant's own runs: an equal budget of environment steps."""


def ablation_config(name: str, base: PixelDQNConfig = FULL_RUN) -> PixelDQNConfig:
    """The config of ablation ``name``: :data:`ABLATION_BASE` with its change."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
    return PixelDQNConfig(
        **{**asdict(variant_config(ABLATION_BASE, base)), **ABLATIONS[name]}
    )


def ablation_steps(config: PixelDQNConfig) -> int:
    """The step an ablation run of ``config`` stops at (whole validations)."""
    every = config.validate_every
    return max(every, int(config.total_steps * ABLATION_FRACTION) // every * every)


def early_validation(result: Mapping[str, Any], until: int) -> float:
    """Mean validation return over a run's validations up to step ``until``.

    The ablations' criterion, fixed before any ablation ran: the area under the
    validation curve over an equal budget, so it rewards learning early and
    staying good, and it is computed the same way for the shipped variant's
    runs (cut at ``until``) as for the ablations' own.
    """
    scores = [
        score
        for step, score in zip(
            result["validation_step"], result["validation_return"], strict=True
        )
        if step <= until
    ]
    if not scores:
        raise ValueError(f"no validation at or before step {until}")
    return float(np.mean(scores))


def first_step_at_least(
    result: Mapping[str, Any], level: float, until: int | None = None
) -> int | None:
    """The first validation step whose return is at least ``level``, looking
    only at validations up to step ``until`` when given (None: never)."""
    for step, score in zip(
        result["validation_step"], result["validation_return"], strict=True
    ):
        if until is not None and step > until:
            return None
        if score >= level:
            return int(step)
    return None


def compare_to_base(
    ablation: list[Mapping[str, Any]], base: list[Mapping[str, Any]], until: int
) -> str:
    """``"higher"``, ``"lower"`` or ``"overlap"``: whether every seed of the
    ablation scores above (below) every seed of the base by
    :func:`early_validation` up to ``until``. With three seeds each, anything
    short of complete separation is reported as not separated."""
    a = [early_validation(r, until) for r in ablation]
    b = [early_validation(r, until) for r in base]
    if not a or not b:
        raise ValueError("compare_to_base needs runs on both sides")
    if min(a) > max(b):
        return "higher"
    if max(a) < min(b):
        return "lower"
    return "overlap"


def late_validation(result: Mapping[str, Any]) -> float:
    """Mean validation return over the last quarter of a run's validations."""
    scores = list(result["validation_return"])
    return float(np.mean(scores[-max(1, len(scores) // 4) :]))


def choose_winner(results: list[Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]]:
    """The rule that picks the shipped agent, fixed before any run finished.

    The winning variant has the highest mean over its seeds of
    :func:`late_validation` (how well and how steadily it plays at the end,
    on validation episodes only); ties go to the earlier variant in
    :data:`VARIANTS`. The shipped run is the winner's seed with the highest
    best validation score (ties: the lower seed); its best-validation
    weights ship, and its final weights ship beside them. Test episodes play
    no part.
    """
    by_variant: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        by_variant.setdefault(result["variant"], []).append(result)
    order = [v for v in VARIANTS if v in by_variant]
    if not order:
        raise ValueError("no results of any known variant")
    score = {
        v: float(np.mean([late_validation(r) for r in by_variant[v]])) for v in order
    }
    winner = max(order, key=lambda v: (score[v], -order.index(v)))
    runs = sorted(by_variant[winner], key=lambda r: (-r["best_validation"], r["seed"]))
    return winner, runs[0]


def export_artifact(runs: str | Path, out: str | Path, *, command: str) -> Path:
    """Write the shipped agent and every run's curves from a finished full run."""
    import json

    from .agents import save_agent
    from .checkpoint import git_commit

    folder = Path(runs)
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
    winner, run = choose_winner(results)
    weights = load_checkpoint(
        folder / f"{run['variant']}-s{run['seed']}" / "weights.pt"
    )
    provenance = dict(run["provenance"])
    provenance.update(
        command=command,
        exported_at_commit=git_commit(),
        winner=winner,
        chosen_by=(
            "variant: highest mean over seeds of the last quarter's validation returns; "
            "run: its seed with the best validation score; weights: that best validation's"
        ),
        score={
            "test_best_mean": float(np.mean(run["test_best"])),
            "test_final_mean": float(np.mean(run["test_final"])),
            "episodes": len(run["test_best"]),
            "seed": TEST_SEED,
            "frames": run["config"]["frames"],
        },
    )
    spec = {
        "network": run["network"],
        "observation": {
            **pipeline_for(run["config"]["frames"]),
            "stack": run["network"]["stack"],
        },
        "variant": winner,
        "seed": run["seed"],
        "best_step": run["best_step"],
    }
    metrics = {
        "winner": winner,
        "shipped": {"variant": winner, "seed": run["seed"]},
        "runs": [{k: v for k, v in r.items() if k != "provenance"} for r in results],
    }
    text = json.dumps(metrics, separators=(",", ":")) + "\n"
    save_agent(
        out,
        kind="pixel-q-network",
        env_id="CartPole-v1",
        spec=spec,
        weights={"q_net": weights["best"], "final_q_net": weights["final"]},
        provenance=provenance,
        files={"metrics.json": text.encode()},  # listed in the manifest, written last
    )
    return Path(out)


ABLATIONS_FILE = "ablations.json"
"""Where :func:`export_ablations` writes, inside the shipped agent's folder."""


def export_ablations(runs: str | Path, out: str | Path, *, command: str) -> Path:
    """Write every finished ablation run's curves to ``out/ablations.json``.

    ``runs`` is the full run's folder; the ablations live in its ``ablations/``
    subfolder. Unfinished ablations are simply absent (the chapter says so).
    """
    import json

    from .checkpoint import atomic_write, git_commit

    folder = Path(runs) / "ablations"
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
    if not results:
        raise FileNotFoundError(
            f"no finished ablation runs under {folder}; run "
            "scripts/train_dqn_pixels.py --ablations first"
        )
    unknown = sorted({r["variant"] for r in results} - set(ABLATIONS))
    if unknown:
        raise ValueError(
            f"results of unknown ablations {unknown}; known: {list(ABLATIONS)}"
        )
    steps = sorted({int(r["step"]) for r in results})
    if len(steps) != 1:
        raise ValueError(
            f"ablation runs stopped at different steps {steps}; rerun them"
        )
    record = {
        "base": ABLATION_BASE,
        "until": steps[0],
        "command": command,
        "exported_at_commit": git_commit(),
        "runs": results,
    }
    path = Path(out) / ABLATIONS_FILE
    text = json.dumps(record, separators=(",", ":")) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path
