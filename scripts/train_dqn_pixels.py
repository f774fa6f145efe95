"""The full run of *Deep Q-learning from CartPole's pixels*: every variant, three seeds.

    .venv/bin/python scripts/train_dqn_pixels.py --runs _build/dqn-pixels --workers 12

runs ``--workers`` runs at a time, each in its own process on one thread, in
``<runs>/<variant>-s<seed>/``: ``checkpoint.pt`` every ``--checkpoint-every``
transitions (the same command resumes every run from it, to the weights an
uninterrupted run reaches), then ``result.json`` (curves, test returns of the
best and final weights) and ``weights.pt`` (both, in float16). ``--export``
writes ``artifacts/dqn-pixels/`` by ``rlbook.chapters.dqn_pixels.choose_winner``.
``--ablations`` trains the lecture's other choices into ``<runs>/ablations/``
instead (``--export``: ``ablations.json``); ``--course-eval`` trains nothing
and plays the shipped agent by NPFL139's protocol (``--export``:
``course_eval.json``). README.md says more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This checkout's code runs (here and in the runs), its tree is checked.
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # fullrun, rlbook

from fullrun.project import check_clean, fail, hold  # noqa: E402


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def check_resumable(runs: Path, jobs, budget: str, ablation: bool) -> None:
    """Refuse, before any run starts, a checkpoint of another budget, config or
    seed, and a finished run of another budget.

    Reads only each checkpoint's config and seed (memory-mapped: the replay
    memory it also holds is not read)."""
    from dataclasses import asdict

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
        if stored_seed != seed:
            fail(
                f"{checkpoint} is a run with seed {stored_seed}, not {seed}: move it "
                "away to start this run afresh"
            )
        want = make_config(variant, base_config(budget))
        if stored != want:
            have, want = asdict(stored), asdict(want)
            differ = ", ".join(
                f"{key} {have[key]!r} (asked {want[key]!r})"
                for key in want
                if have.get(key) != want[key]
            )
            fail(
                f"{checkpoint} holds a run with other settings ({differ}): resume it "
                "with the --budget it was started with, or move it away to start afresh"
            )


def run_one(args: argparse.Namespace, runs: Path, ablation: bool) -> None:
    """``--one VARIANT SEED``: one run, in the process main started for it."""
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

    variant, seed, budget = args.one[0], int(args.one[1]), args.budget
    torch.set_num_threads(1)
    folder = runs / f"{variant}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "checkpoint.pt"
    dev = select_device(args.device)
    make_config = ablation_config if ablation else variant_config
    config = make_config(variant, base_config(budget))
    # main checked the checkpoint is this run's before starting any
    if checkpoint.exists():
        run = PixelDQN.resume(checkpoint, device=dev)
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
        checkpoint_every=args.checkpoint_every,
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
    if min(args.seeds) < 0:
        fail(
            f"--seeds must be whole numbers >= 0, got {' '.join(map(str, args.seeds))}"
        )
    if args.workers < 1 or args.checkpoint_every < 1:
        fail("--workers and --checkpoint-every must be >= 1")

    ablation = args.ablations is not None
    if args.course_eval and ablation:
        fail("--course-eval trains nothing: drop --ablations")
    names = (args.ablations or list(ABLATIONS)) if ablation else args.variants
    runs = args.runs / "ablations" if ablation else args.runs
    if args.one:
        run_one(args, runs, ablation)
        return 0
    if args.export:
        check_clean(ROOT)
    if args.course_eval:
        return course_eval(args)
    hold(runs)  # one command per runs folder; its runs are its own
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
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run_job(job: tuple[str, int]) -> int:
        variant, seed = job
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
        code = subprocess.Popen(command, env=env).wait()
        print(f"{variant}-s{seed}: exit {code}", flush=True)
        return code

    with ThreadPoolExecutor(args.workers) as pool:
        codes = list(pool.map(run_job, jobs))
    failed = [f"{v}-s{s}" for (v, s), code in zip(jobs, codes, strict=True) if code]
    if failed:
        print(f"error: runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.export:
        from rlbook.chapters import dqn_pixels

        export = dqn_pixels.export_ablations if ablation else dqn_pixels.export_artifact
        path = export(
            args.runs, ROOT / "artifacts" / "dqn-pixels", command=" ".join(sys.argv)
        )
        print(f"exported {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
