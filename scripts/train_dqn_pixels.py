"""The full run of *Deep Q-learning from CartPole's pixels*: every variant, three seeds.

    .venv/bin/python scripts/train_dqn_pixels.py --runs _build/dqn-pixels --workers 12

trains each variant of ``rlbook.chapters.dqn_pixels.VARIANTS`` with seeds 0, 1 and 2,
``--workers`` runs at a time in separate processes (one CPU thread each, all
on ``--device``). Each run keeps its whole state in
``<runs>/<variant>-s<seed>/checkpoint.pt`` (written every ``--checkpoint-every``
transitions): run the same command again after any interruption and every
run goes on from its last checkpoint, to the same weights it would have
reached without stopping. A finished run writes ``result.json`` (its curves
and the test returns of its best and final weights) and ``weights.pt``
(both, in float16, as they would ship).

``--ablations`` trains instead the lecture's choices this book did not take
(``rlbook.chapters.dqn_pixels.ABLATIONS``: its network, 8 frames), each applied alone to
the shipped variant and stopped at half the run's steps, into
``<runs>/ablations/``; with ``--export`` it then writes their curves to
``artifacts/dqn-pixels/ablations.json`` and leaves the agent as it is::

    .venv/bin/python scripts/train_dqn_pixels.py --runs _build/dqn-pixels --ablations --export

``--course-eval`` trains nothing: it plays the shipped agent
(``artifacts/dqn-pixels``) by NPFL139's protocol, three evaluation seeds of
100 episodes each (``rlbook.chapters.dqn_pixels.COURSE_SEEDS``), through
``python -m rlbook evaluate``'s code, and writes every return with its
provenance and the weights' SHA-256 to ``<runs>/course_eval.json``; with
``--export``, to ``artifacts/dqn-pixels/course_eval.json`` (``--budget
smoke`` plays 2 episodes per seed, to check the command)::

    .venv/bin/python scripts/train_dqn_pixels.py --course-eval --export

``--export`` picks the shipped agent by the rule fixed in
``rlbook.chapters.dqn_pixels.choose_winner`` and writes ``artifacts/dqn-pixels/``
(agent, provenance, and every run's curves in ``metrics.json``); it refuses a
tree with uncommitted changes outside ``artifacts/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]


def fail(message: str) -> NoReturn:
    """One ``error:`` line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def resume_problem(
    checkpoint: Path, stored_config, stored_seed: int, config, seed: int
) -> str | None:
    """Why the run saved in ``checkpoint`` is not the one asked for, or None."""
    from dataclasses import asdict

    if stored_seed != seed:
        return (
            f"{checkpoint} is a run with seed {stored_seed}, not {seed}: move it away "
            "to start this run afresh"
        )
    if stored_config != config:
        have, want = asdict(stored_config), asdict(config)
        differ = ", ".join(
            f"{key} {have[key]!r} (asked {want[key]!r})"
            for key in want
            if have.get(key) != want[key]
        )
        return (
            f"{checkpoint} holds a run with other settings ({differ}): resume it with "
            "the --budget it was started with, or move it away to start afresh"
        )
    return None


def check_resumable(runs: Path, jobs, budget: str, ablation: bool) -> None:
    """Refuse, before any run starts, a checkpoint of another budget, config or
    seed, and a finished run of another budget.

    Reads only each checkpoint's config and seed (memory-mapped: the replay
    memory it also holds is not read)."""
    import torch

    from rlbook.chapters.dqn_pixels import (
        PixelDQNConfig,
        ablation_config,
        base_config,
        variant_config,
    )
    from rlbook.checkpoint import load_failure, refusal

    make_config = ablation_config if ablation else variant_config
    for variant, seed in jobs:
        result = runs / f"{variant}-s{seed}" / "result.json"
        if result.is_file():  # a finished run: made at the budget asked for?
            try:
                made = json.loads(result.read_text())["provenance"]["budget"]
            except (OSError, ValueError, KeyError, TypeError) as error:
                fail(f"{result} is damaged ({one_line(error)}); move its folder away")
            if made != budget:
                fail(
                    f"{result} is a finished run at --budget {made}, not {budget}: "
                    f"use --budget {made}, or another --runs folder"
                )
            continue
        checkpoint = runs / f"{variant}-s{seed}" / "checkpoint.pt"
        if not checkpoint.is_file():
            continue
        try:
            state = torch.load(
                checkpoint, map_location="cpu", weights_only=True, mmap=True
            )
            stored = PixelDQNConfig(**state["config"])
            stored_seed = int(state["seed"])
        except Exception as error:  # torch raises several types for bad files
            if refusal(error) is not None:
                fail(
                    "cannot resume "
                    + load_failure(checkpoint, error, "Move it away to start afresh.")
                )
            fail(
                f"cannot resume {checkpoint}: it is corrupt or not a run's checkpoint "
                f"({type(error).__name__}: {one_line(error)}); move it away to start "
                "this run afresh"
            )
        problem = resume_problem(
            checkpoint,
            stored,
            stored_seed,
            make_config(variant, base_config(budget)),
            seed,
        )
        if problem:
            fail(problem)


def run_one(
    variant: str,
    seed: int,
    folder: Path,
    device: str,
    checkpoint_every: int,
    budget: str,
    ablation: bool = False,
) -> None:
    import torch

    from rlbook.chapters.dqn_pixels import (
        PixelDQN,
        ablation_config,
        ablation_steps,
        base_config,
        test_weights,
        variant_config,
    )
    from rlbook.checkpoint import (
        atomic_write,
        make_provenance,
        save_checkpoint,
    )
    from rlbook.device import select_device

    torch.set_num_threads(1)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "checkpoint.pt"
    dev = select_device(device)
    make_config = ablation_config if ablation else variant_config
    config = make_config(variant, base_config(budget))
    if checkpoint.exists():
        from rlbook.checkpoint import CheckpointError

        try:
            run = PixelDQN.resume(checkpoint, device=dev)
        except (
            CheckpointError,
            KeyError,
            TypeError,
            ValueError,
            RuntimeError,
        ) as error:
            fail(
                f"cannot resume {checkpoint} ({one_line(error)}); move it away to "
                "start this run afresh"
            )
        problem = resume_problem(checkpoint, run.config, run.seed, config, seed)
        if problem:
            fail(problem)
    else:
        run = PixelDQN(config, seed, device=dev)

    def write_json(name: str, record: dict) -> None:
        text = json.dumps(record) + "\n"
        atomic_write(folder / name, lambda handle: handle.write(text.encode()))

    def progress(r: PixelDQN) -> None:
        write_json(
            "progress.json",
            {
                "variant": variant,
                "seed": seed,
                "step": r.step,
                "updates": r.updates,
                "seconds": r.seconds,
                **r.history,
            },
        )

    run.train(
        ablation_steps(config) if ablation else None,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        progress=progress,
    )
    command = "python scripts/train_dqn_pixels.py" + (
        " --ablations" if ablation else ""
    )
    record = {
        "variant": variant,
        "seed": seed,
        "config": run.state_dict()["config"],
        "device": str(dev),
        "step": run.step,
        "updates": run.updates,
        "seconds": run.seconds,
        "best_step": run.best_step,
        "best_validation": run.best_score,
        "network": run.q_net.spec,
        "provenance": make_provenance(
            command=f"{command} (run {variant}, seed {seed})",
            config=run.config,
            budget=budget,
            device=dev,
            wall_time_s=run.seconds,
            root=ROOT,
        ),
        **run.history,
    }
    if not ablation:  # an ablation's result is its curves: no weights, no tests

        def as_shipped(state: dict) -> dict:  # float16, as the weights ship
            return {
                k: v.half() if v.is_floating_point() else v for k, v in state.items()
            }

        half = {
            "best": as_shipped(run.best_state),
            "final": as_shipped(run.q_net.state_dict()),
        }
        save_checkpoint(folder / "weights.pt", half)
        # load_state_dict casts float16 back into the float32 network
        tests = {name: test_weights(run, state) for name, state in half.items()}
        record.update(
            test_best=tests["best"].tolist(), test_final=tests["final"].tolist()
        )
    write_json("result.json", record)
    checkpoint.unlink()  # 0.7 GB of replay memory: not needed once the run is done


def course_eval(args: argparse.Namespace) -> int:
    """``--course-eval``: the shipped agent by the course's protocol."""
    import torch

    from rlbook.chapters.dqn_pixels import COURSE_RECORD, export_course_evaluation

    torch.set_num_threads(1)  # one core, as the shipped record says
    agent = ROOT / "artifacts" / "dqn-pixels"
    out = (agent if args.export else args.runs) / COURSE_RECORD
    path = export_course_evaluation(
        agent,
        out,
        command="python scripts/train_dqn_pixels.py " + " ".join(sys.argv[1:]),
        budget=args.budget,
        root=ROOT,
    )
    record = json.loads(path.read_text())
    for seed in record["seeds"]:
        print(
            f"seed {seed['seed']}: mean {seed['mean']:.1f} (std {seed['std']:.1f}, "
            f"min {seed['min']:.0f}) over {seed['n']} episodes"
        )
    print(
        f"{record['cpu_seconds']:.0f} CPU seconds, {record['wall_seconds']:.0f} "
        f"wall seconds; wrote {path}"
    )
    return 0


def main() -> int:
    # This checkout's rlbook, also in this process (the runs get it through
    # PYTHONPATH), so that the export checks and records this checkout.
    for folder in (ROOT, ROOT / "src"):  # fullrun, rlbook
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from rlbook.chapters.dqn_pixels import ABLATIONS, VARIANTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "_build" / "dqn-pixels")
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS)
    )
    parser.add_argument(
        "--ablations",
        nargs="*",
        choices=list(ABLATIONS),
        help="train these ablations (none named: all) instead of the variants",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument(
        "--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1)
    )
    parser.add_argument("--checkpoint-every", type=int, default=50_000)
    parser.add_argument(
        "--budget",
        default="full",
        choices=["smoke", "full"],
        help="full: the shipped run; smoke: seconds per run, to check the command",
    )
    parser.add_argument(
        "--export", action="store_true", help="write artifacts/dqn-pixels"
    )
    parser.add_argument(
        "--course-eval",
        action="store_true",
        help="evaluate the shipped agent by the course's protocol (3 seeds "
        "of 100 episodes) instead of training",
    )
    parser.add_argument(
        "--one", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if min(args.seeds) < 0 or (args.one and not args.one[1].isdigit()):
        fail(
            f"--seeds must be whole numbers >= 0, got {' '.join(map(str, args.seeds))}"
        )
    if args.workers < 1 or args.checkpoint_every < 1:
        fail("--workers and --checkpoint-every must be >= 1")

    ablation = args.ablations is not None
    if args.course_eval and (ablation or args.one):
        fail("--course-eval trains nothing: drop --ablations")
    names = (args.ablations or list(ABLATIONS)) if ablation else args.variants
    runs = args.runs / "ablations" if ablation else args.runs
    if args.one:
        variant, seed = args.one[0], int(args.one[1])
        run_one(
            variant,
            seed,
            runs / f"{variant}-s{seed}",
            args.device,
            args.checkpoint_every,
            args.budget,
            ablation,
        )
        return 0

    if args.export:
        from rlbook.checkpoint import CheckpointError, require_clean_tree

        try:
            require_clean_tree(ROOT)
        except CheckpointError as error:
            print(f"error: --export: {error}", file=sys.stderr)
            return 2
    if args.course_eval:
        return course_eval(args)
    from fullrun.lock import RunsFolderBusy, hold_runs_folder

    try:
        hold_runs_folder(runs)  # one command per runs folder; its runs are its own
    except (RunsFolderBusy, OSError) as error:
        fail(str(error))
    check_resumable(
        runs, [(v, s) for v in names for s in args.seeds], args.budget, ablation
    )
    jobs = [
        (v, s)
        for v in names
        for s in args.seeds
        if not (runs / f"{v}-s{s}" / "result.json").exists()
    ]
    # Interrupted runs first: they go on from their checkpoints.
    jobs.sort(
        key=lambda job: not (runs / f"{job[0]}-s{job[1]}" / "checkpoint.pt").exists()
    )
    running: list[tuple[subprocess.Popen, str]] = []
    failed = []
    path = os.pathsep.join(
        filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    while jobs or running:
        while jobs and len(running) < args.workers:
            variant, seed = jobs.pop(0)
            command = [
                sys.executable,
                __file__,
                "--runs",
                str(args.runs),
                "--device",
                args.device,
                "--checkpoint-every",
                str(args.checkpoint_every),
                "--budget",
                args.budget,
                *(["--ablations"] if ablation else []),
                "--one",
                variant,
                str(seed),
            ]
            running.append((subprocess.Popen(command, env=env), f"{variant}-s{seed}"))
        time.sleep(5)
        for process, name in list(running):
            if process.poll() is not None:
                running.remove((process, name))
                if process.returncode != 0:
                    failed.append(name)
                print(f"{name}: exit {process.returncode}", flush=True)
    if failed:
        print(f"error: runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.export and ablation:
        from rlbook.chapters.dqn_pixels import export_ablations

        path = export_ablations(
            args.runs, ROOT / "artifacts" / "dqn-pixels", command=" ".join(sys.argv)
        )
        print(f"exported {path}")
    elif args.export:
        from rlbook.chapters.dqn_pixels import export_artifact

        path = export_artifact(
            args.runs, ROOT / "artifacts" / "dqn-pixels", command=" ".join(sys.argv)
        )
        print(f"exported {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
