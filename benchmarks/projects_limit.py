"""The projects' workloads against this CPU's matrix-multiply peak: one JSON file.

    RLBOOK_DATA=<data folder> OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/projects_limit.py

Counts the FLOPs and operator calls of the four mode benchmarks' eager
workloads and sets their shipped CPU seconds against this CPU's fp32 and
bf16 matrix-multiply peak; ``benchmarks/projects.md`` says how.
``--budget smoke`` counts the smoke workloads and reads no table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import harness
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from rlbook.checkpoint import atomic_write, git_commit
from rlbook.paths import artifacts_dir
from rlbook.projects.deploy import ComparisonRecord, comparison_path, load_comparison

PROJECTS = {
    "resnet": "resnet_modes",
    "sentiment": "sentiment_modes",
    "dqn": "dqn_port_modes",
    "vae": "vae_modes",
}
"""Each project's benchmark module (in ``benchmarks/``)."""
EAGER, BF16 = "eager fp32", "bf16 autocast"
PRECISIONS = {EAGER: "float32", BF16: "bfloat16"}
"""The training modes set against a peak, and the peak's precision."""
THREADS = 1
MATMUL_N = 1024


def limits_path() -> Path:
    """``artifacts/projects/limits.json`` in the repository."""
    return artifacts_dir() / "projects" / "limits.json"


class OpCounter(TorchDispatchMode):
    """Counts the aten operations that run inside it (changing nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def count(fn: Callable[[], Any]) -> dict[str, int]:
    """``{"flops", "ops"}`` of one call of ``fn``: the FLOPs
    ``FlopCounterMode`` counts and the aten operations dispatched."""
    with FlopCounterMode(display=False) as flops, OpCounter() as ops:
        fn()
    return {"flops": int(flops.get_total_flops()), "ops": ops.calls}


def train_counts(module: ModuleType, args: argparse.Namespace) -> list[dict]:
    """One :func:`count` per timed sample of the benchmark's eager fp32
    training: its runner built as the benchmark builds it, its outputs
    computed once, its ``--warmup`` untimed steps run (the first, timed
    apart, and ``warmup - 1`` more), then ``--reps`` counted steps."""
    if module.TRAIN_MODES[0] != EAGER:
        raise ValueError(f"{module.__name__}'s baseline is not {EAGER!r}")
    runner = module.train_mode(EAGER, *module.train_args(args))
    runner.outputs()
    for _ in range(args.warmup):
        runner.step()
    return [count(runner.step) for _ in range(args.reps)]


def infer_counts(module: ModuleType, args: argparse.Namespace) -> dict[str, dict]:
    """:func:`count` of one call of the benchmark's first (eager) inference
    mode, per timed input (``{"batch 1": ..., "batch N": ...}``)."""
    inputs = module.infer_inputs(args)
    counts = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "inputs.pt"
        torch.save({name: tuple(x) for name, x in inputs.items()}, path)
        for name in inputs:
            runner = module.infer_mode(
                module.INFER_MODES[0],
                *module.infer_args(args),
                "",  # the package: only the compiled modes load one
                str(path),
                name,
                args.iters,
            )
            counts[name] = count(runner.outputs)
    return counts


def options(module: ModuleType, budget: str) -> argparse.Namespace:
    """The options the benchmark runs with at ``budget``, its defaults."""
    return harness.parse_args(
        module.__doc__, module.DEFAULTS, module.SMOKE, ["--budget", budget]
    )


def _check(record: ComparisonRecord, cpu: Mapping[str, Any], **expected: Any) -> None:
    """Refuse a record made on another CPU or with other options."""
    found = {
        "cpu": (record.cpu.get("model"), record.cpu.get("isa")),
        "reps": len(record.repetitions["samples"]),
        "warmup": record.repetitions["warmup"],
        **{key: record.data.get(key) for key in ("batch", "calls_per_step")},
    }
    expected["cpu"] = (cpu["model"], cpu["isa"])
    wrong = {k: (found[k], v) for k, v in expected.items() if found[k] != v}
    if wrong:
        raise ValueError(
            f"{record.mode!r} does not match the workload counted here (found, "
            f"expected): {wrong}; run its benchmark again, then this script"
        )


def _cpu_seconds(record: ComparisonRecord, calls: int = 1) -> list[float]:
    return [s["cpu_s"] / calls for s in record.repetitions["samples"]]


def _unit(record: ComparisonRecord) -> str:
    """What one sample is, from its time unit: ``"1 step"``, ``"epoch"``."""
    what = record.time_unit.split(" (")[0].split("/", 1)[1]
    return re.sub(r"^1 (\w+)s\b", r"1 \1", what)


def workloads(
    project: str,
    module: ModuleType,
    args: argparse.Namespace,
    train: Sequence[Mapping[str, int]],
    infer: Mapping[str, Mapping[str, int]],
    records: Sequence[ComparisonRecord],
    cpu: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The project's workloads: its training sample (eager fp32 and bf16
    autocast) and each inference call (eager), each with its counts and
    the CPU seconds of every sample of the comparison's ``records``
    (per call for inference)."""
    by_mode = {record.mode: record for record in records}
    rows = []
    sources = {p: by_mode[f"train: {mode}"] for mode, p in PRECISIONS.items()}
    for record in sources.values():
        _check(record, cpu, reps=args.reps, warmup=args.warmup)
    rows.append(
        {
            "project": project,
            "workload": "train",
            "unit": _unit(sources["float32"]),
            "batch": sources["float32"].data["batch"],
            "records": {p: r.mode for p, r in sources.items()},
            "flops": [c["flops"] for c in train],
            "ops": [c["ops"] for c in train],
            "cpu_s": {p: _cpu_seconds(r) for p, r in sources.items()},
        }
    )
    for name, counted in infer.items():
        (record,) = (
            r
            for mode, r in by_mode.items()
            if mode.endswith(f" {name}: {module.INFER_MODES[0]}")
        )
        batch = int(name.split()[-1])
        _check(
            record,
            cpu,
            reps=args.reps,
            warmup=args.warmup,
            batch=batch,
            calls_per_step=args.iters,
        )
        rows.append(
            {
                "project": project,
                "workload": record.mode.split(" batch")[0],
                "unit": "call",
                "batch": batch,
                "records": {"float32": record.mode},
                "flops": [counted["flops"]] * args.reps,
                "ops": [counted["ops"]] * args.reps,
                "cpu_s": {"float32": _cpu_seconds(record, args.iters)},
            }
        )
    return rows


def achieved(row: Mapping[str, Any], peaks: Mapping[str, float]) -> dict[str, Any]:
    """Per precision the row was timed in: GFLOP/s (all its samples' FLOPs
    over all their CPU seconds), that rate's share of the precision's peak,
    and the least and greatest rate of one sample."""
    flops = np.asarray(row["flops"], dtype=np.float64)
    out = {}
    for precision, seconds in row["cpu_s"].items():
        seconds = np.asarray(seconds, dtype=np.float64)
        if seconds.shape != flops.shape or np.any(seconds <= 0):
            raise ValueError(
                f"{row['records'][precision]!r}: need one positive time per sample"
            )
        rate = flops.sum() / seconds.sum() / 1e9
        per_sample = flops / seconds / 1e9
        out[precision] = {
            "gflops_per_s": float(rate),
            "share_of_peak": float(rate / peaks[precision]),
            "sample_gflops_per_s": [float(per_sample.min()), float(per_sample.max())],
        }
    return out


def peak_gflops() -> dict[str, float]:
    """This CPU's matrix-multiply rate on :data:`THREADS` thread(s), per
    precision (:func:`harness.matmul_gflops`)."""
    return {
        p: harness.matmul_gflops(getattr(torch, p), THREADS, MATMUL_N)
        for p in PRECISIONS.values()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=["smoke", "full"], default="full")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    smoke = args.budget == "smoke"
    torch.set_num_threads(THREADS)
    commit = git_commit()  # the tree the run started from
    cpu = harness.cpu_description()
    before = peak_gflops()
    counted = {}
    for project, name in PROJECTS.items():
        module = importlib.import_module(name)
        opts = options(module, args.budget)
        harness._progress(f"counting {project}")
        counted[project] = (module, opts, train_counts(module, opts))
        counted[project] += (infer_counts(module, opts),)
    after = peak_gflops()
    peaks = {p: max(before[p], after[p]) for p in before}
    rows, commits = [], {}
    if not smoke:
        for project, (module, opts, train, infer) in counted.items():
            records, meta = load_comparison(comparison_path(project))
            if meta.get("threads") != THREADS:
                raise ValueError(
                    f"{project}'s comparison ran on {meta.get('threads')} "
                    f"thread(s); the peak here is measured on {THREADS}"
                )
            commits[project] = meta["git_commit"]
            rows += workloads(project, module, opts, train, infer, records, cpu)
        for row in rows:
            row["achieved"] = achieved(row, peaks)
    meta = harness.benchmark_meta(
        "python benchmarks/projects_limit.py", args.budget, THREADS
    )
    meta |= {"git_commit": commit, "cpu": cpu, "versions": harness.software_versions()}
    payload = {
        "meta": meta,
        "peak_gflops_per_s": peaks,
        "peak_measurements": {
            "n": MATMUL_N,
            "threads": THREADS,
            "before": before,
            "after": after,
        },
        "comparison_commits": commits,
        "workloads": rows,
    }
    if smoke:
        payload["smoke_counts"] = {
            project: {"train": train, "infer": infer}
            for project, (_, _, train, infer) in counted.items()
        }
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False)
    if not smoke and not args.no_write:
        atomic_write(limits_path(), lambda handle: handle.write(text.encode()))
    summary = {
        f"{r['project']} {r['workload']} (batch {r['batch']})": {
            p: round(a["share_of_peak"], 4) for p, a in r["achieved"].items()
        }
        for r in rows
    }
    line = {"meta": meta, "peaks": peaks, "share_of_peak": summary}
    print(json.dumps(line | {"smoke_counts": payload.get("smoke_counts")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
