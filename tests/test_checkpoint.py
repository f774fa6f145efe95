import json
import pickle

import pytest
import torch

from rlbook.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_provenance,
    make_provenance,
    provenance_path,
    save_checkpoint,
)


def test_round_trip(tmp_path):
    net = torch.nn.Linear(3, 2)
    path = save_checkpoint(tmp_path / "net.pt", {"net": net.state_dict(), "step": 7})
    state = load_checkpoint(path)
    assert state["step"] == 7
    for name, tensor in net.state_dict().items():
        assert torch.equal(state["net"][name], tensor)


def test_provenance_written_beside_checkpoint(tmp_path):
    record = make_provenance(
        command="python train.py",
        config={"lr": 0.1},
        budget="ci",
        device="cpu",
        wall_time_s=1.234,
        score={"mean_return": 500.0},
    )
    path = save_checkpoint(tmp_path / "a.pt", {"x": torch.zeros(1)}, record)
    assert provenance_path(path).name == "a.provenance.json"
    loaded = load_provenance(path)
    for key in (
        "command",
        "config",
        "budget",
        "device",
        "wall_time_s",
        "git_commit",
        "packages",
        "score",
    ):
        assert key in loaded
    assert loaded["score"] == {"mean_return": 500.0}
    assert loaded["packages"]["torch"] == torch.__version__


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", {"x": torch.arange(1000)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


class NotATensor:
    pass


def test_arbitrary_objects_are_refused_by_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"payload": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="unsafe"):
        load_checkpoint(path)


def test_failed_write_keeps_the_old_file(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", {"x": torch.ones(2)})
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        save_checkpoint(path, {"x": lambda: None})  # a lambda cannot be pickled
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary file left


def test_non_dict_checkpoint_is_refused(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(2), path)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(path)


def test_bad_provenance_json(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", {"x": torch.ones(1)})
    provenance_path(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_provenance(path)
    assert json.loads("{}") == {}
