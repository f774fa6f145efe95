"""chapters/projects.md: whether the projects' ratios survive a rerun."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlbook.chapters.projects import (
    intervals_overlap,
    log_se,
    rerun_spread,
    rerun_table,
    widened,
)
from rlbook.projects.deploy import comparison_path


def test_intervals_that_touch_overlap_and_disjoint_ones_do_not() -> None:
    a = {"low": 0.8, "high": 0.9}
    assert intervals_overlap(a, {"low": 0.9, "high": 1.0})  # touching
    assert intervals_overlap({"low": 0.9, "high": 1.0}, a)
    assert intervals_overlap(a, {"low": 0.85, "high": 0.86})  # inside
    assert not intervals_overlap(a, {"low": 0.91, "high": 1.0})
    assert not intervals_overlap({"low": 0.5, "high": 0.79}, a)


def _table(ratios: dict[str, tuple[float, float, float]], **extra) -> dict:
    records = [
        {
            "mode": mode,
            "time": 1.0,
            "time_unit": "s",
            "repetitions": {
                "ratio": dict(zip(("ratio", "low", "high"), r, strict=True))
                | {"to": "eager"}
            },
        }
        for mode, r in ratios.items()
    ]
    meta = {"git_commit": "bbbbbbbbbb", "date": "2026-12-05", "budget": "full"}
    return {"meta": meta, "records": records, **extra}


@pytest.mark.parametrize("shipped", ["dqn", "resnet", "sentiment", "vae"])
def test_a_table_measured_once_says_so(shipped: str, tmp_path: Path) -> None:
    path = tmp_path / "project" / "comparison.json"  # no tables beside it
    path.parent.mkdir()
    path.write_text(json.dumps(_table({"train: eager": (1.0, 1.0, 1.0)})))
    assert rerun_table(path).startswith("This table has been measured once")
    assert "bbbbbbbb, 2026-12-05" in rerun_table(path)
    text = rerun_table(comparison_path(shipped))  # whatever the book ships
    assert text.startswith(("This table", "| mode |"))


def test_the_rerun_table_sets_each_ratio_beside_the_previous_runs(
    tmp_path: Path,
) -> None:
    previous = {
        "meta": {"git_commit": "aaaaaaaaaa", "date": "2026-12-01"},
        "ratios": {
            "train: compiled": {"ratio": 0.85, "low": 0.8, "high": 0.9},
            "train: bf16": {"ratio": 1.5, "low": 1.4, "high": 1.6},
        },
    }
    payload = _table(
        {
            "train: eager": (1.0, 1.0, 1.0),
            "train: compiled": (0.95, 0.9, 1.0),  # touches the previous
            "train: bf16": (1.2, 1.1, 1.3),  # does not overlap
            "train: new": (1.0, 0.9, 1.1),
        },
        previous_run=previous,
    )
    path = tmp_path / "project" / "comparison.json"  # no tables beside it
    path.parent.mkdir()
    path.write_text(json.dumps(payload))
    lines = rerun_table(path).splitlines()
    assert lines[0].count("|") == 6  # five columns
    rows = lines[2:5]
    assert (
        rows[0]
        == "| train: compiled | 0.95 [0.90, 1.00] | 0.85 [0.80, 0.90] | yes | yes |"
    )
    assert rows[1].endswith("| 1.50 [1.40, 1.60] | no | no |")
    assert "not measured" in rows[2]  # the baseline is left out
    assert lines[-1] == (
        "1 of 2 ratios' intervals overlap between the two runs, of commit "
        "aaaaaaaa (2026-12-01) and of commit bbbbbbbb (2026-12-05), both at "
        "budget 'full'."
    )


def _interval(ratio: float, se: float) -> dict[str, float]:
    """A ratio with a 95% interval of standard error ``se`` on the log scale."""
    half = 1.96 * se
    return {
        "ratio": ratio,
        "low": ratio * math.exp(-half),
        "high": ratio * math.exp(half),
    }


def _rerun(folder: Path, pairs: dict[str, tuple[float, float]], se: float) -> Path:
    """A project's table under ``folder`` whose every mode ran twice."""
    now = {mode: _interval(a, se) for mode, (a, _) in pairs.items()}
    before = {mode: _interval(b, se) for mode, (_, b) in pairs.items()}
    payload = _table(
        {mode: (r["ratio"], r["low"], r["high"]) for mode, r in now.items()},
        previous_run={"meta": {"git_commit": "a" * 10}, "ratios": before},
    )
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(payload))
    return folder / "comparison.json"


# The other project: two pairs whose log ratios differ by 0.1 each, with
# intervals of standard error 0.01, so E[d^2] = 2 se^2 + 2 tau^2 gives:
OTHER_TAU = math.sqrt((0.1**2 - 2 * 0.01**2) / 2)


def _other_project(folder: Path) -> Path:
    pairs = {"a": (1.0, math.exp(0.1)), "b": (math.exp(0.1), 1.0)}
    return _rerun(folder / "other", pairs, se=0.01)


def test_the_spread_between_runs_comes_from_the_other_projects_only(
    tmp_path: Path,
) -> None:
    _other_project(tmp_path)
    own = _rerun(tmp_path / "own", {"a": (1.0, 2.0)}, se=0.01)  # a huge miss
    tau, pairs = rerun_spread(own)
    assert pairs == 2
    assert tau == pytest.approx(OTHER_TAU)
    # alone, a table has no other pairs and is not widened
    (tmp_path / "other" / "comparison.json").unlink()
    assert rerun_spread(own) == (0.0, 0)


def test_pairs_that_agree_better_than_their_intervals_give_no_spread(
    tmp_path: Path,
) -> None:
    _rerun(tmp_path / "other", {"a": (1.0, 1.0)}, se=0.05)
    own = _rerun(tmp_path / "own", {"a": (1.0, 1.0)}, se=0.05)
    assert rerun_spread(own) == (0.0, 1)


def test_widening_adds_the_spread_to_the_intervals_own_error() -> None:
    ratio = _interval(0.9, 0.03)
    assert log_se(ratio) == pytest.approx(0.03)
    same = widened(ratio, 0.0)
    assert (same["low"], same["high"]) == pytest.approx((ratio["low"], ratio["high"]))
    wide = widened(ratio, 0.04)
    assert log_se(wide) == pytest.approx(0.05)  # hypot(0.03, 0.04)
    assert wide["ratio"] == 0.9


def test_the_rerun_table_widens_with_the_other_projects_spread(
    tmp_path: Path,
) -> None:
    _other_project(tmp_path)
    # 0.95 against 0.85: disjoint as measured, overlapping once widened;
    # 0.95's interval excludes 1 ("faster") until widened
    own = _rerun(tmp_path / "own", {"train: compiled": (0.95, 0.85)}, se=0.01)
    lines = rerun_table(own).splitlines()
    assert lines[2].endswith("| no | yes |")
    assert f"spread between runs, {100 * OTHER_TAU:.1f}%" in lines[-1]
    assert "other projects' 2 rerun pairs" in lines[-1]
    assert "1 of 1 overlap." in lines[-1]
    assert lines[-1].endswith(
        "Widened, 1 reading above would read no measurable difference: "
        "train: compiled (faster)."
    )


@pytest.mark.parametrize("shipped", ["dqn", "resnet", "sentiment", "vae"])
def test_every_shipped_rerun_overlaps_once_widened(shipped: str) -> None:
    """Issue #27's target, on what the book ships: widened by the spread
    estimated from the other three projects, both runs' intervals overlap."""
    text = rerun_table(comparison_path(shipped))
    assert text.startswith("| mode |"), "the shipped table was run once"
    rows = [line for line in text.splitlines()[2:] if line.startswith("|")]
    assert rows
    assert all(row.endswith("| yes |") for row in rows), text
