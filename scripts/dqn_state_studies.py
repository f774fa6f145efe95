"""Two studies beside the state DQN's shipped seed sweep, one command each.

    .venv/bin/python scripts/dqn_state_studies.py truncation
    .venv/bin/python scripts/dqn_state_studies.py diagnostics

Both train like one worker of the sweep: ``train_dqn_batched`` on seeds 0-9
in one batch, the sweep's full-budget ``DQNConfig``, one thread.
``truncation`` trains the baseline with ``done = terminated or truncated``
(the "fix" ``chapters/dqn_state.md`` warns against) into
``artifacts/dqn-state/truncation.json``, in the sweep's record format without
the per-episode lists the chapter does not read. ``diagnostics`` trains the
baseline and the no-target-network variant with a ``TrainingMonitor`` into
``diagnostics.json`` (4 significant digits), and says whether each run's
validation returns equal the shipped sweep's: equal means the logging
changed nothing and this machine trains the shipped bits. Writing to
``artifacts/`` needs a clean tree; ``--out``, ``--steps``, ``--seeds`` make
small runs for tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from rlbook.chapters.dqn_improvements import TrainingMonitor, train_dqn_batched
from rlbook.chapters.dqn_state import DQNConfig
from rlbook.checkpoint import atomic_write, make_provenance, require_clean_tree
from rlbook.paths import artifacts_dir, repo_root

ARTIFACT = artifacts_dir() / "dqn-state"
SEEDS = tuple(range(10))
TRUNCATION_VARIANT = "done = terminated or truncated"
OMITTED = ("episode_end", "episode_return", "test.returns", "final_test.returns")


def slim(record: dict) -> dict:
    """A sweep record without weights and per-episode lists."""
    out = {
        key: value
        for key, value in record.items()
        if key not in ("state", "final_state", "episode_end", "episode_return")
    }
    for key in ("test", "final_test"):
        out[key] = {k: v for k, v in record[key].items() if k != "returns"}
    return out


def significant(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")


def shipped_sweep() -> dict:
    """The shipped sweep's ``metrics.json`` ({} if absent)."""
    path = ARTIFACT / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def timed(train, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def truncation(config: DQNConfig, seeds: list[int]) -> tuple[dict, float, float]:
    runs, wall, cpu = timed(
        train_dqn_batched, config, seeds, truncation_as_termination=True
    )
    result = {
        "variant": TRUNCATION_VARIANT,
        "seeds": seeds,
        "omitted_fields": list(OMITTED),
        "runs": [slim(run) for run in runs],
    }
    return result, wall, cpu


def diagnostics(config: DQNConfig, seeds: list[int]) -> tuple[dict, float, float]:
    shipped = shipped_sweep().get("sweep", {}).get("variants", {})
    variants = {
        "baseline": config,
        "no target network": replace(config, target_every=0),
    }
    result: dict = {"seeds": seeds, "variants": {}}
    wall = cpu = 0.0
    for name, variant in variants.items():
        monitor = TrainingMonitor(len(seeds))
        runs, w, c = timed(train_dqn_batched, variant, seeds, monitor=monitor)
        wall, cpu = wall + w, cpu + c
        shipped_by_seed = {r["seed"]: r for r in shipped.get(name, [])}
        records = []
        for run, log in zip(runs, monitor.log, strict=True):
            old = shipped_by_seed.get(run["seed"])
            records.append(
                {
                    "seed": run["seed"],
                    "reproduces_shipped": (
                        None
                        if old is None
                        else old["validation_return"] == run["validation_return"]
                        and old["final_test"]["mean"] == run["final_test"]["mean"]
                    ),
                    **{
                        key: [
                            int(v) if key == "step" else significant(v) for v in values
                        ]
                        for key, values in log.items()
                    },
                }
            )
        result["variants"][name] = {"seconds": round(w, 1), "runs": records}
    return result, wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=("truncation", "diagnostics"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--steps", type=int, default=DQNConfig.total_steps)
    parser.add_argument("--validate-every", type=int, default=DQNConfig.validate_every)
    parser.add_argument("--out", type=Path, help="default: artifacts/dqn-state/")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as one worker of the sweep
    config = replace(
        DQNConfig(), total_steps=args.steps, validate_every=args.validate_every
    )
    shipping = args.out is None
    out = args.out or ARTIFACT / f"{args.study}.json"
    command = "scripts/dqn_state_studies.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    if shipping:  # refuse a dirty tree before training, not after
        require_clean_tree(repo_root())
    study = truncation if args.study == "truncation" else diagnostics
    result, wall, cpu = study(config, args.seeds)
    same = json.loads(json.dumps(asdict(config))) == shipped_sweep().get("config")
    provenance = make_provenance(
        command=".venv/bin/python " + command,
        config=config,
        budget="full" if config == DQNConfig() else "custom",
        device="cpu",
        wall_time_s=wall,
        require_clean=shipping,
        root=repo_root(),
        cpu_seconds=round(cpu, 1),
        torch_threads=torch.get_num_threads(),
        same_config_as_sweep=same,
    )
    text = json.dumps({"study": args.study, "provenance": provenance, **result})
    atomic_write(out, lambda handle: handle.write((text + "\n").encode()))
    print(
        f"{args.study}: {len(args.seeds)} seeds, {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU; wrote {out} ({len(text):,} bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
