"""scripts/thin_pong_run.py: a run's small record keeps what the page reads."""

import json
import sys

import pytest

from rlbook.checkpoint import save_checkpoint

from .scripts import load_script

thin_run = load_script("scripts/thin_pong_run.py")


def fake_run(updates=21, games_per_update=2):
    log, scores = [], []
    for u in range(1, updates + 1):
        scores += [-21 + (u % 5)] * games_per_update
        log.append(
            {
                "update": u,
                "env_steps": 2048 * u,
                "wall_seconds": 3.0 * u,
                "cpu_seconds": 1.5 * u,
                "games": len(scores),
                "entropy": 1.0,
            }
        )
    progress = {
        "update": updates,
        "env_steps": 2048 * updates,
        "wall_seconds": 3.0 * updates,
        "cpu_seconds": 1.5 * updates,
        "scores": [float(s) for s in scores],
        "log": log,
        "validations": [{"update": 10, "mean": -20.5, "scores": [-20.0, -21.0]}],
    }
    state = {
        "update": updates,
        "seed": 3,
        "config": json.dumps({"frames": 2, "bf16": True}),
        "budget": "full",
        "commits": json.dumps(["abc"]),
        "resumed_at": "[]",
    }
    return progress, state


def test_the_thinned_curve_keeps_every_nth_update_the_last_and_every_score():
    progress, state = fake_run()
    record = thin_run.thin(progress, state, every=8)
    assert [row[0] for row in record["curve"]] == [8, 16, 21]
    last = record["curve"][-1]
    assert dict(zip(record["curve_columns"], last, strict=True)) == {
        "update": 21,
        "env_steps": 2048 * 21,
        "games": 42,
        "run_wall_seconds": 63.0,
        "run_cpu_seconds": 31.5,
    }
    assert record["scores"] == [int(s) for s in progress["scores"]]
    assert record["games"] == len(record["scores"]) == last[2]
    assert (record["seed"], record["config"]["frames"]) == (3, 2)
    assert record["trained_at_commits"] == ["abc"]
    assert record["validations"] == [{"update": 10, "mean": -20.5}]
    with pytest.raises(ValueError, match="every"):
        thin_run.thin(progress, state, every=0)


def test_the_last_logged_line_is_read_past_the_last_checkpoint(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text(
        "update 6 games 1 steps 12288 wall 57s cpu 17s last-20 mean -21.00\n"
        "resuming\n"
        "update 380 games 310 steps 778240 wall 4095s cpu 955s last-20 mean -5.90\n"
    )
    assert thin_run.last_logged(log) == {
        "update": 380,
        "games": 310,
        "env_steps": 778240,
        "wall_seconds": 4095.0,
        "cpu_seconds": 955.0,
        "running_mean": -5.9,
    }


def test_the_command_writes_a_small_compact_record(tmp_path, monkeypatch):
    progress, state = fake_run(updates=400, games_per_update=1)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "progress.json").write_text(json.dumps(progress))
    save_checkpoint(folder / "checkpoint.pt", state)
    out = tmp_path / "out" / "curve.json"
    argv = ["thin_pong_run.py", str(folder), "--out", str(out), "--what", "a test"]
    monkeypatch.setattr(sys, "argv", argv)
    assert thin_run.main() == 0
    text = out.read_text()
    assert len(text) < 10_000 and '": ' not in text  # compact
    record = json.loads(text)
    assert record["provenance"]["what"] == "a test"
    assert record["curve"][-1][0] == 400
    # a progress file that is not the checkpoint's is refused
    progress["update"] = 399
    (folder / "progress.json").write_text(json.dumps(progress))
    assert thin_run.main() == 2
