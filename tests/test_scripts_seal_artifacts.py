"""scripts/seal_artifacts.py: the SHA-256 of a shipped folder's weights,
recorded in its manifest, so damaged bytes stop the load (issue #28)."""

import json
import shutil

import pytest

from rlbook.agents import ArtifactError, load_agent
from rlbook.paths import artifacts_dir
from tests.scripts import load_script

seal_artifacts = load_script("scripts/seal_artifacts.py")

AGENTS = ["q-learning", "sarsa", "dqn-state", "dqn-pixels", "pong-ppo"]
MODELS = ["resnet18-cifar", "sentiment-lstm", "vae-mnist"]


@pytest.mark.parametrize("name", AGENTS + MODELS)
def test_every_shipped_folder_records_the_sha256_of_its_weights(name):
    folder = artifacts_dir() / name
    manifest_name = "agent.json" if name in AGENTS else "model.json"
    listed = json.loads((folder / manifest_name).read_text()).get("sha256", {})
    expected = {"weights.pt", "weights.provenance.json"}
    if name == "sentiment-lstm":
        expected.add("vocabulary")
    assert expected <= set(listed), f"{name} lacks {expected - set(listed)}"


def unsealed_copy(tmp_path, name="sarsa"):
    folder = tmp_path / name
    shutil.copytree(artifacts_dir() / name, folder)
    manifest = json.loads((folder / "agent.json").read_text())
    manifest.pop("sha256", None)
    (folder / "agent.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def test_a_sealed_folder_refuses_a_damaged_weights_file(tmp_path):
    folder = unsealed_copy(tmp_path)
    weights = folder / "weights.pt"
    data = bytearray(weights.read_bytes())
    assert seal_artifacts.main([str(folder)]) == 0
    load_agent(folder)
    middle = slice(len(data) // 2, len(data) // 2 + 8)
    data[middle] = bytes(b ^ 1 for b in data[middle])  # 8 bits flipped
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"weights\.pt in .* has SHA-256"):
        load_agent(folder)


def test_a_folder_that_does_not_load_is_not_sealed(tmp_path, capsys):
    folder = unsealed_copy(tmp_path)
    (folder / "weights.pt").write_bytes(b"not weights")
    before = (folder / "agent.json").read_bytes()
    assert seal_artifacts.main([str(folder)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert (folder / "agent.json").read_bytes() == before
