"""fullrun.project: what the projects' full-run scripts share."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fullrun import project as script
from rlbook.checkpoint import CheckpointError
from rlbook.data import DataError

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_dataset_exits_2_with_the_loaders_message(capsys):
    def loader(split):
        raise DataError(f"no {split} files under /nowhere; set RLBOOK_DATA")

    with pytest.raises(SystemExit) as stop:
        script.load(loader)
    assert stop.value.code == 2
    assert (
        "error: no train files under /nowhere; set RLBOOK_DATA"
        in capsys.readouterr().err
    )
    assert script.load(lambda split: split) == ("train", "test")


def test_export_refuses_a_dirty_tree_before_training(monkeypatch, capsys):
    def dirty(root=None):
        raise CheckpointError("uncommitted changes: src/x.py")

    monkeypatch.setattr(script, "require_clean_tree", dirty)
    args = script.parser("doc", "vae", "vae-mnist").parse_args(["--export"])
    with pytest.raises(SystemExit) as stop:
        script.start(args, "vae")
    assert stop.value.code == 2
    assert "--export: uncommitted changes" in capsys.readouterr().err
    # without --export the tree may be dirty; the default folder names the budget
    args = script.parser("doc", "vae", "vae-mnist").parse_args(["--budget", "smoke"])
    _, runs = script.start(args, "vae")
    assert runs.parts[-2:] == ("_build", "vae-smoke")


def test_epoch_seconds_sums_every_epochs_own_time():
    assert script.epoch_seconds([{"seconds": 1.5}, {"seconds": 2.0}]) == 3.5


def run_vae(tmp_path, data):
    env = {**os.environ, "RLBOOK_DATA": str(data), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_vae.py"),
            "--budget",
            "smoke",
            "--runs",
            str(tmp_path / "runs"),
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_a_project_script_trains_resumes_and_reports(tmp_path, shared_data):
    done = run_vae(tmp_path, shared_data)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary) == {"best_epoch", "best_test_loss", "final_test_loss"}
    assert (tmp_path / "runs" / "checkpoint.pt").exists()
    again = run_vae(tmp_path, shared_data)  # goes on from the finished checkpoint
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1]) == summary


@pytest.mark.parametrize("ships", ["best", "final"])
def test_ship_writes_the_weights_the_project_says_ship(monkeypatch, tmp_path, ships):
    """#27 item 9: the ResNet's one-cycle run ships its final weights; the
    other projects their best validation's."""
    from dataclasses import dataclass
    from types import SimpleNamespace

    @dataclass
    class Config:
        epochs: int = 1

    saved = {}
    monkeypatch.setattr(script, "require_clean_tree", lambda root: None)
    monkeypatch.setattr(script, "make_provenance", lambda **kw: {})
    monkeypatch.setattr(script, "save_model", lambda folder, **kw: saved.update(kw))
    run = SimpleNamespace(best="best weights", final="final weights", resumed_from=0)
    script.ship(
        "x",
        script="train_x.py",
        args=SimpleNamespace(budget="full", seed=0),
        config=Config(),
        device="cpu",
        run=run,
        metrics={"seconds": 1.0, "data": {}},
        summary={},
        score={},
        kind="x",
        spec={},
        root=tmp_path,
        ships=ships,
    )
    assert saved["model"] == f"{ships} weights"
    with pytest.raises(ValueError, match="ships must be"):
        script.ship(
            "x",
            script="",
            args=None,
            config=None,
            device="cpu",
            run=run,
            metrics={},
            summary={},
            score={},
            kind="x",
            spec={},
            root=tmp_path,
            ships="last",
        )
