"""The projects' comparison tables, as the chapters read them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from rlbook.projects.deploy import (
    ComparisonRecord,
    comparison_path,
    load_comparison,
    repetitions_table,
    table_note,
    verdict,
)


def test_comparison_path_is_under_artifacts() -> None:
    path = comparison_path("cifar10")
    assert path.parts[-4:] == ("artifacts", "projects", "cifar10", "comparison.json")
    with pytest.raises(ValueError):
        comparison_path("../elsewhere")


@pytest.mark.parametrize("project", ["dqn", "resnet", "sentiment", "vae"])
def test_every_shipped_table_loads_as_its_json_says(project: str) -> None:
    path = comparison_path(project)
    records, meta = load_comparison(path)
    payload = json.loads(path.read_text())
    assert meta == payload["meta"] and meta["command"].endswith("_modes.py")
    # Tables written before interleaving have no cpu or repetitions.
    empty = {"cpu": {}, "repetitions": {}}
    assert [vars(r) for r in records] == [empty | r for r in payload["records"]]
    assert len({r.mode for r in records}) == len(records) > 0


def test_a_record_needs_a_mode_and_a_time() -> None:
    with pytest.raises(ValueError, match="mode"):
        ComparisonRecord(mode="", time=1.0, time_unit="s")
    with pytest.raises(ValueError, match="time"):
        ComparisonRecord(mode="eager", time=float("nan"), time_unit="s")


def test_a_missing_or_foreign_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_comparison(tmp_path / "comparison.json")
    (tmp_path / "comparison.json").write_text('{"records": [{"mode": "x"}]}')
    with pytest.raises(ValueError, match="is not a comparison table"):
        load_comparison(tmp_path / "comparison.json")


@pytest.mark.parametrize("project", ["dqn", "resnet", "sentiment", "vae"])
def test_the_interleaved_tables_meet_the_targets(project: str) -> None:
    """At least 5 samples a mode, taken in turns; an interval on every ratio;
    the CPU named; the output check and the memory method recorded; a
    compiled mode says what compiled and compiled something; measured from
    a committed tree."""
    records, meta = load_comparison(comparison_path(project))
    assert not meta["git_commit"].endswith("+dirty")
    groups: dict[str, list[ComparisonRecord]] = {}
    for record in records:
        groups.setdefault(record.mode.rsplit(": ", 1)[0], []).append(record)
    for group in groups.values():
        for record in group:
            rep = record.repetitions
            assert record.cpu["model"] and "cores" in record.cpu
            orders = [s["order"] for s in rep["samples"]]
            assert len(orders) >= 5
            assert {b - a for a, b in itertools.pairwise(orders)} == {len(group)}
            ratio = rep["ratio"]
            assert ratio["low"] <= ratio["ratio"] <= ratio["high"]
            assert ratio["n"] == len(orders) and ratio["level"] == 0.95
            assert {"max_abs_diff", "atol", "rtol", "passed"} <= set(
                rep["same_computation"]
            )
            assert rep["memory"]["method"]
            assert rep["first_call"]["wall_s"] > 0
            if record.mode.endswith("torch.compile"):
                compiled = rep["compiled"]
                assert compiled["graphs_compiled"] >= 1
                assert {"graphs", "graph_breaks", "what"} <= set(compiled)


def test_verdict_reads_the_interval() -> None:
    assert verdict({"low": 0.9, "high": 1.1}) == "no measurable difference"
    assert verdict({"low": 0.5, "high": 0.9}) == "faster"
    assert verdict({"low": 1.1, "high": 1.3}) == "slower"


def _interleaved(mode: str, ratio: tuple[float, float, float], passed: bool):
    samples = [{"wall_s": 2.0, "cpu_s": 1.0, "order": i} for i in range(5)]
    return ComparisonRecord(
        mode=f"train: {mode}",
        time=1.0,
        time_unit="s/epoch (cpu time, mean of 5)",
        repetitions={
            "samples": samples,
            "first_call": {"wall_s": 3.0, "cpu_s": 2.5},
            "memory": {"baseline_mb": 300.0, "peak_above_baseline_mb": 2.0},
            "same_computation": {
                "max_abs_diff": 0.25,
                "atol": 0.1,
                "rtol": 0.0,
                "passed": passed,
            },
            "ratio": dict(zip(("ratio", "low", "high"), ratio, strict=True))
            | {"to": "eager"},
        },
    )


def test_the_repetitions_table_gives_each_mode_its_reading() -> None:
    records = [
        _interleaved("eager", (1.0, 0.9, 1.1), True),
        _interleaved("compiled", (0.8, 0.7, 0.9), True),
        _interleaved("bf16", (1.02, 0.95, 1.1), False),
        ComparisonRecord(mode="old row", time=1.0, time_unit="s"),
    ]
    warm = {"first_call_warm_cache": {"wall_s": 1.25, "cpu_s": 1.0}}
    records[1] = records[1].__class__(
        **vars(records[1]) | {"repetitions": records[1].repetitions | warm}
    )
    speed, checks = repetitions_table(records).split("\n\n")
    rows, check_rows = speed.splitlines()[2:], checks.splitlines()[2:]
    assert (
        len(rows) == len(check_rows) == 3
    )  # the record without repetitions is left out
    assert "| 1 | baseline |" in rows[0]
    assert "0.80 [0.70, 0.90] | faster | 3.00 s cold, 1.25 s warm cache |" in rows[1]
    assert rows[0].endswith("| 3.00 s |")  # no compiler, no cache to warm
    assert "no measurable difference" in rows[2] and check_rows[2].endswith("FAIL |")
    assert "| 0.50 |" in check_rows[0]  # the least CPU per wall second
    # split so that each fits the page's column (the site check measures it)
    assert all(len(line.split("|")) - 2 <= 6 for line in speed.splitlines())


def test_the_table_note_names_the_method_and_each_rows_reference() -> None:
    records = [
        _interleaved("eager", (1.0, 1.0, 1.0), True),
        _interleaved("compiled", (0.8, 0.7, 0.9), True),
    ]
    assert table_note(records) == (
        "The intervals are by unstated methods. Each row's outputs were "
        "checked against its section's baseline "
        "(eager) on the same inputs, every row included."
    )
    against = "the same package in Python, on the inputs the runner built"
    rep = records[1].repetitions
    cpp = ComparisonRecord(
        mode="infer batch 1: aoti-cpp",
        time=1.0,
        time_unit="ms/call",
        repetitions=rep
        | {"same_computation": rep["same_computation"] | {"against": against}},
    )
    assert table_note([*records, cpp]).endswith(
        f"except the aoti-cpp rows against {against}."
    )
    for record in records:
        record.repetitions["ratio"]["method"] = "percentile bootstrap"
    assert table_note(records).startswith(
        "The intervals are by percentile bootstrap (each mode's samples "
        "resampled on their own, not by round). Each row's"
    )
    for record in records:
        record.repetitions["ratio"]["method"] = "paired bootstrap"
    assert table_note(records).startswith("The intervals are by paired bootstrap. ")
