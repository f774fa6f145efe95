"""The projects' comparison tables, as the chapters read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlbook.projects.deploy import ComparisonRecord, comparison_path, load_comparison


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
    assert [vars(r) for r in records] == payload["records"]
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
