"""``benchmarks/projects_limit.py``: the projects' workloads against this
CPU's matrix-multiply peak, and its shipped table."""

import inspect
import json
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from rlbook.chapters.sentiment_imdb import SentimentLSTM
from rlbook.projects.deploy import ComparisonRecord, comparison_path, load_comparison

from .scripts import ROOT, load_script

sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import harness
limit = load_script("benchmarks/projects_limit.py")

CPU = {"model": "Test CPU", "isa": ["avx2"], "cores": 2}


def test_count_gives_a_products_flops_and_its_operations() -> None:
    a, b = torch.ones(3, 4), torch.ones(4, 5)
    assert limit.count(lambda: a @ b) == {"flops": 2 * 3 * 4 * 5, "ops": 1}
    assert limit.count(lambda: (a + 1, a * 2)) == {"flops": 0, "ops": 2}


def test_train_counts_skip_the_untimed_steps_and_count_each_timed_one() -> None:
    class Runner:  # step k multiplies a (1, k) row by a (k, 1) column
        done = 0

        def outputs(self) -> None:
            torch.ones(1, 100) @ torch.ones(100, 1)  # before training: not counted

        def step(self) -> None:
            self.done += 1
            torch.ones(1, self.done) @ torch.ones(self.done, 1)

    module = SimpleNamespace(
        __name__="fake_modes",
        TRAIN_MODES=("eager fp32", "bf16 autocast"),
        train_args=lambda args: (),
        train_mode=lambda mode: Runner(),
    )
    counts = limit.train_counts(module, SimpleNamespace(warmup=2, reps=3))
    # Steps 1 and 2 are the warm-up; the samples are steps 3, 4 and 5.
    assert [c["flops"] for c in counts] == [6, 8, 10]


def _record(mode: str, seconds: list[float], warmup: int = 1, **data: int):
    return ComparisonRecord(
        mode=mode,
        time=1.0,
        time_unit="s/1 steps (cpu time, mean of 2)",
        data={"batch": 8, **data},
        cpu=CPU,
        repetitions={
            "warmup": warmup,
            "samples": [{"cpu_s": s, "wall_s": 2 * s} for s in seconds],
        },
    )


def test_workloads_read_each_samples_cpu_seconds_per_call() -> None:
    module = SimpleNamespace(INFER_MODES=("eager", "aoti-python"))
    args = SimpleNamespace(reps=2, warmup=1, iters=4)
    records = [
        _record("train: eager fp32", [2.0, 4.0]),
        _record("train: bf16 autocast", [1.0, 3.0]),
        _record("infer batch 1: eager", [0.4, 0.8], batch=1, calls_per_step=4),
        _record("infer batch 1: aoti-python", [0.1, 0.1], batch=1, calls_per_step=4),
    ]
    train = [{"flops": 10, "ops": 3}, {"flops": 12, "ops": 3}]
    infer = {"batch 1": {"flops": 5, "ops": 2}}
    rows = limit.workloads("p", module, args, train, infer, records, CPU)
    assert rows[0] | {"cpu_s": None} == {
        "project": "p",
        "workload": "train",
        "unit": "1 step",
        "batch": 8,
        "records": {"float32": "train: eager fp32", "bfloat16": "train: bf16 autocast"},
        "flops": [10, 12],
        "ops": [3, 3],
        "cpu_s": None,
    }
    assert rows[0]["cpu_s"] == {"float32": [2.0, 4.0], "bfloat16": [1.0, 3.0]}
    assert (rows[1]["workload"], rows[1]["batch"], rows[1]["unit"]) == (
        "infer",
        1,
        "call",
    )
    assert rows[1]["flops"] == [5, 5]
    assert rows[1]["cpu_s"] == {"float32": [0.1, 0.2]}  # a sample is 4 calls


@pytest.mark.parametrize(
    "change",
    [
        {"warmup": 2},  # the counted steps would not be the timed ones
        {"seconds": [2.0, 4.0, 6.0]},  # 3 samples, 2 counted
        {"cpu": {"model": "Other CPU", "isa": ["avx2"]}},
    ],
)
def test_workloads_refuse_a_table_of_other_work_or_another_cpu(change: dict) -> None:
    module = SimpleNamespace(INFER_MODES=("eager",))
    args = SimpleNamespace(reps=2, warmup=1, iters=4)
    eager = _record(
        "train: eager fp32", change.get("seconds", [2.0, 4.0]), change.get("warmup", 1)
    )
    eager = replace(eager, cpu=change.get("cpu", CPU))
    records = [eager, _record("train: bf16 autocast", [1.0, 3.0])]
    train = [{"flops": 10, "ops": 3}] * 2
    with pytest.raises(ValueError, match="does not match"):
        limit.workloads("p", module, args, train, {}, records, CPU)


def test_achieved_is_all_flops_over_all_seconds_against_the_peak() -> None:
    row = {
        "records": {"float32": "a", "bfloat16": "b"},
        "flops": [1e9, 3e9],
        "cpu_s": {"float32": [1.0, 2.0], "bfloat16": [0.5, 0.5]},
    }
    got = limit.achieved(row, {"float32": 2.0, "bfloat16": 8.0})
    # 4 GFLOP in 3 s (not the mean of 1 and 1.5 GFLOP/s per sample)
    assert got["float32"]["gflops_per_s"] == pytest.approx(4 / 3)
    assert got["float32"]["share_of_peak"] == pytest.approx(2 / 3)
    assert got["float32"]["sample_gflops_per_s"] == pytest.approx([1.0, 1.5])
    assert got["bfloat16"]["share_of_peak"] == pytest.approx(0.5)


def test_an_lstms_products_are_counted_token_by_token() -> None:
    # On the CPU an LSTM may run as one oneDNN operation with no FLOP
    # formula, which FlopCounterMode would count as 0; the packed LSTM the
    # sentiment project trains must count every gate product of every token.
    torch.manual_seed(0)
    embed, hidden = 8, 6
    model = SentimentLSTM(50, embed, hidden, num_layers=2, pooling="max").eval()
    tokens = torch.randint(1, 50, (3, 7))
    lengths = torch.tensor([7, 4, 2])
    with torch.no_grad():
        flops = limit.count(lambda: model(tokens, lengths))["flops"]
    gates, n_tokens = 4 * hidden, int(lengths.sum())
    lstm = sum(
        2 * 2 * gates * (inputs + hidden) * n_tokens  # 2 directions
        for inputs in (embed, 2 * hidden)
    )
    head = 2 * 3 * 2 * hidden
    assert flops == lstm + head


def test_each_benchmark_gives_its_builders_the_arguments_they_take() -> None:
    for name in limit.PROJECTS.values():
        module = load_script(f"benchmarks/{name}.py")
        args = limit.options(module, "smoke")
        inspect.signature(module.train_mode).bind(
            module.TRAIN_MODES[0], *module.train_args(args)
        )
        inspect.signature(module.infer_mode).bind(
            module.INFER_MODES[0], *module.infer_args(args), "", "", "", 1
        )


def test_shipped_limits_hold_the_shipped_comparisons_seconds() -> None:
    # A benchmark run again without this script would leave the page's
    # table on the old seconds.
    shipped = json.loads(limit.limits_path().read_text())
    assert "+dirty" not in shipped["meta"]["git_commit"]
    assert set(shipped["comparison_commits"]) == set(limit.PROJECTS)
    for project, commit in shipped["comparison_commits"].items():
        assert load_comparison(comparison_path(project))[1]["git_commit"] == commit
    for row in shipped["workloads"]:
        records = {
            r.mode: r for r in load_comparison(comparison_path(row["project"]))[0]
        }
        for precision, mode in row["records"].items():
            record = records[mode]
            calls = record.data.get("calls_per_step", 1)
            assert row["cpu_s"][precision] == [
                s["cpu_s"] / calls for s in record.repetitions["samples"]
            ]
        assert row["achieved"] == limit.achieved(row, shipped["peak_gflops_per_s"])
    workloads = {(r["project"], r["workload"]) for r in shipped["workloads"]}
    assert workloads >= {(p, "train") for p in limit.PROJECTS}
