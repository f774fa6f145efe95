"""Hostile input and faults (#28): bounded evaluation, clear errors, safe files."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlbook import evaluate as evaluate_module
from rlbook.agents import Agent, load_agent
from rlbook.chapters.dqn_state import evaluate_batched
from rlbook.evaluate import evaluate_artifact

from .scripts import load_script


def run_cli(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlbook", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **options,
    )


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


# -- item 1: evaluation plays in chunks of --envs ---------------------------------


def test_state_agent_evaluation_keeps_at_most_envs_environments(
    tabular_agent_dir, monkeypatch
):
    made = []
    make_vec = evaluate_module.gym.make_vec

    def counting(env_id, num_envs, **kwargs):
        made.append(num_envs)
        return make_vec(env_id, num_envs=num_envs, **kwargs)

    monkeypatch.setattr(evaluate_module.gym, "make_vec", counting)
    record = evaluate_artifact(tabular_agent_dir, episodes=11, seed=3, envs=4)
    assert made and max(made) <= 4
    # the same episodes as all at once
    policy = load_agent(tabular_agent_dir).policy
    whole = evaluate_batched(policy.act_batch, "CartPole-v1", episodes=11, seed=3)
    assert record["episodes"] == 11
    assert record["mean_return"] == round(whole.mean, 3)
    assert record["std_return"] == round(whole.std, 3)
    assert (record["min_return"], record["max_return"]) == (
        whole.returns.min(),
        whole.returns.max(),
    )


def test_return_stats_merge_chunks_like_one_array():
    from rlbook.evaluate import ReturnStats

    rng = np.random.default_rng(0)
    values = rng.integers(8, 501, size=1000).astype(float)
    stats = ReturnStats()
    for chunk in np.array_split(values, [1, 2, 10, 333, 334, 900]):
        stats.add(chunk)
    assert stats.count == 1000
    assert stats.mean == values.mean()  # whole-number returns sum exactly
    assert stats.std == pytest.approx(values.std(), rel=1e-12)
    assert (stats.min, stats.max) == (values.min(), values.max())


class _Stop(Exception):
    pass


def test_pixel_evaluation_memory_does_not_grow_with_episodes(monkeypatch, tmp_path):
    """A trillion episodes: nothing of that size is allocated; the run goes on
    until the policy stops it (the old code asked for an 8 TB array)."""
    from rlbook.chapters.dqn_pixels import PixelQPolicy, pipeline_for

    calls = itertools.count()

    class Policy(PixelQPolicy):  # plays as the page's policy, without a net
        def act_batch(self, obs):
            if next(calls) >= 30:
                raise _Stop
            return np.zeros(len(obs), dtype=np.int64)

    agent = Agent(
        tmp_path,
        "pixel-q-network",
        "CartPole-v1",
        Policy(None),
        {
            "observation": {**pipeline_for("batched"), "stack": 2},
            "network": {"stack": 2, "n_actions": 2, "frame_size": 80},
        },
    )
    monkeypatch.setattr(evaluate_module, "load_agent", lambda path: agent)
    with pytest.raises(_Stop):
        evaluate_artifact(tmp_path, episodes=10**12, seed=0, envs=2)


def test_pixel_returns_stream_in_finishing_order():
    from rlbook.chapters.dqn_pixels import evaluate_pixels, pixel_returns

    def left(obs):
        return np.zeros(len(obs), dtype=np.int64)

    streamed = dict(pixel_returns(left, 5, 40, 1, frames="simple", envs=2))
    whole = evaluate_pixels(left, 5, 40, 1, frames="simple", envs=2)
    assert sorted(streamed) == list(range(5))
    np.testing.assert_array_equal([streamed[i] for i in range(5)], whole)


MANY = ("--episodes", "1000000000")


def wait_for_cpu_seconds(pid: int, seconds: float) -> None:
    """Until process ``pid`` has run ``seconds`` of CPU time (at most a minute)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / tick >= seconds:
            return
        time.sleep(0.1)


def test_evaluate_interrupted_by_ctrl_c_prints_one_line(tabular_agent_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "rlbook", "evaluate", str(tabular_agent_dir), *MANY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_cpu_seconds(process.pid, 1.0)  # inside main(), importing or playing
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT, err  # 130 in a shell
    assert out == "" and "Traceback" not in err
    assert err.strip().startswith("error: evaluate interrupted")
    assert len(err.strip().splitlines()) == 1


# -- item 3: one error line, never a traceback ------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m rlbook ARGS`` in this process: (status, stdout, stderr).

    Any exception escaping ``main`` (a traceback for the user) fails the test."""
    from rlbook.__main__ import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_error(code: int, out: str, err: str, *words: str) -> None:
    assert_one_error_line(subprocess.CompletedProcess([], code, out, err), *words)


def rewrite_manifest(folder: Path, **changes) -> None:
    path = folder / "agent.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_agent_manifest_that_is_a_folder(tabular_agent_dir, capsys):
    (tabular_agent_dir / "agent.json").unlink()
    (tabular_agent_dir / "agent.json").mkdir()
    assert_error(
        *cli(capsys, "evaluate", str(tabular_agent_dir)), "agent.json", "not a file"
    )


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"kind": ["q-table"]}, ("kind", "string")),
        ({"env_id": 7}, ("env_id", "string")),
        ({"spec": []}, ("spec", "object")),
    ],
)
def test_agent_manifest_of_wrong_types(tabular_agent_dir, capsys, changes, words):
    rewrite_manifest(tabular_agent_dir, **changes)
    assert_error(*cli(capsys, "evaluate", str(tabular_agent_dir)), *words)


def test_agent_weights_that_are_not_tensors(tabular_agent_dir, capsys):
    import torch

    torch.save({"q_table": [[0.0, 1.0]]}, tabular_agent_dir / "weights.pt")
    assert_error(
        *cli(capsys, "evaluate", str(tabular_agent_dir)), "q_table", "not a tensor"
    )


def copy_sentiment_model(tmp_path: Path) -> Path:
    import shutil

    folder = tmp_path / "sentiment"
    shutil.copytree(ROOT / "artifacts" / "sentiment-lstm", folder)
    return folder


def review_folder(tmp_path: Path) -> Path:
    for polarity, text in (("pos", "a wonderful film"), ("neg", "dull and long")):
        (tmp_path / "reviews" / polarity).mkdir(parents=True)
        (tmp_path / "reviews" / polarity / "1_8.txt").write_text(text)
    return tmp_path / "reviews"


def test_sentiment_head_out_of_range(tmp_path, capsys):
    folder = copy_sentiment_model(tmp_path)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["spec"]["head"] = 10**6
    (folder / "model.json").write_text(json.dumps(manifest))
    code, out, err = cli(
        capsys, "classify-reviews", str(folder), str(review_folder(tmp_path))
    )
    assert_error(code, out, err, "head")


def test_model_manifest_that_is_a_folder_or_has_a_list_kind(tmp_path, capsys):
    folder = tmp_path / "model"
    (folder / "model.json").mkdir(parents=True)
    reviews = str(review_folder(tmp_path))
    assert_error(*cli(capsys, "classify-reviews", str(folder), reviews), "not a file")
    (folder / "model.json").rmdir()
    (folder / "model.json").write_text(
        json.dumps({"format": "rlbook-model/1", "kind": ["x"], "spec": {}})
    )
    assert_error(*cli(capsys, "classify-reviews", str(folder), reviews), "unknown kind")


def test_idx_header_whose_size_overflows_int64(tmp_path):
    from rlbook.chapters.vae_mnist import read_idx
    from rlbook.data import DataError

    path = tmp_path / "hostile-idx3-ubyte"
    # 2**31 * 2**31 * 4 = 2**64, which np.prod wraps to 0: the 0 bytes that follow
    header = bytes([0, 0, 8, 3]) + b"".join(
        n.to_bytes(4, "big") for n in (2**31, 2**31, 4)
    )
    path.write_bytes(header)
    with pytest.raises(DataError, match="promises shape"):
        read_idx(path, 3)


def idx_file(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        n.to_bytes(4, "big") for n in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_with_no_labels(tmp_path):
    from rlbook.chapters.vae_mnist import load_mnist
    from rlbook.data import DataError

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    idx_file(raw / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28)))
    idx_file(raw / "t10k-labels-idx1-ubyte", np.zeros((0,)))
    with pytest.raises(DataError, match="no images"):
        load_mnist("test", tmp_path, download=False)


def test_checksum_list_that_is_not_text(tmp_path):
    from rlbook.data import DataError, check_listed_checksums

    (tmp_path / "SHA256SUMS").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(DataError, match="SHA256SUMS"):
        check_listed_checksums(tmp_path, [tmp_path / "file"])


# -- items 2 and 3: the project and pixel scripts' resume ---------------------------


def epoch_run(tmp_path: Path, config: dict):
    import torch

    from rlbook.projects.runs import fit_epochs

    model = torch.nn.Linear(2, 1)
    return fit_epochs(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=1,
        train_epoch=lambda: {"loss": 0.0},
        validate=lambda: 0.0,
        generator=torch.Generator().manual_seed(0),
        checkpoint=tmp_path / "checkpoint.pt",
        config=config,
    )


def test_epoch_run_refuses_another_seed_and_names_it(tmp_path):
    from rlbook.checkpoint import CheckpointError

    epoch_run(tmp_path, {"epochs": 1, "seed": 0})
    with pytest.raises(CheckpointError, match="seed: 0 in the checkpoint, 7 now"):
        epoch_run(tmp_path, {"epochs": 1, "seed": 7})


def test_epoch_run_checkpoint_of_the_right_format_but_foreign_content(tmp_path):
    from rlbook.checkpoint import CheckpointError, save_checkpoint
    from rlbook.projects.runs import RUN_FORMAT

    save_checkpoint(tmp_path / "checkpoint.pt", {"format": RUN_FORMAT, "config": {}})
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        epoch_run(tmp_path, {})


def test_project_script_with_a_corrupt_checkpoint_is_one_error_line(
    tmp_path, monkeypatch, capsys
):
    from types import SimpleNamespace

    import torch

    from fullrun import project as script

    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "checkpoint.pt").write_bytes(b"not a checkpoint")
    digits = SimpleNamespace(images=torch.zeros((20, 1, 28, 28), dtype=torch.uint8))
    monkeypatch.setattr(script, "load", lambda loader: (digits, digits))
    module = load_script("scripts/train_vae.py", "train_vae_corrupt")
    argv = ["train_vae.py", "--budget", "smoke", "--threads", "1", "--runs", str(runs)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        module.main()
    err = capsys.readouterr().err
    assert_error(stop.value.code, "", err, "cannot resume", "checkpoint.pt")


ONE = ("--variants", "baseline", "--seeds", "0", "--budget", "full", "--runs")


def pixel_script_module():
    return load_script("scripts/train_dqn_pixels.py")


def test_pixel_script_refuses_to_resume_another_budget_or_seed(
    tmp_path, capsys, monkeypatch
):
    from dataclasses import asdict

    import torch

    from rlbook.chapters.dqn_pixels import base_config, variant_config

    script = pixel_script_module()
    folder = tmp_path / "baseline-s0"
    folder.mkdir()
    full = asdict(variant_config("baseline", base_config("full")))

    def refused(budget: str, *words: str) -> None:
        with pytest.raises(SystemExit) as stop:
            script.check_resumable(tmp_path, [("baseline", 0)], budget, False)
        err = capsys.readouterr().err
        assert_error(stop.value.code, "", err, *words)

    torch.save({"config": full, "seed": 0}, folder / "checkpoint.pt")
    script.check_resumable(tmp_path, [("baseline", 0)], "full", False)  # the same run
    refused("smoke", "--budget", "total_steps")
    torch.save({"config": full, "seed": 3}, folder / "checkpoint.pt")
    refused("full", "seed 3, not 0")
    (folder / "checkpoint.pt").write_bytes(b"junk")
    refused("full", "cannot resume", "corrupt")
    (folder / "checkpoint.pt").unlink()
    (folder / "result.json").write_text(json.dumps({"provenance": {"budget": "smoke"}}))
    refused("full", "--budget smoke")
    # the command itself: one line, exit 2, before any run starts
    monkeypatch.setattr(script.subprocess, "Popen", None)  # would fail if called
    monkeypatch.setattr(sys, "argv", ["train_dqn_pixels.py", *ONE, str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        script.main()
    assert_error(stop.value.code, "", capsys.readouterr().err, "--budget smoke")


# -- item 6: messages that say what is wrong, and never advise an unsafe load -----


class _Code:
    def __reduce__(self):
        return (print, ("this ran",))


def assert_no_unsafe_advice(text: str) -> None:
    assert "weights_only" not in text and "trust the source" not in text, text
    assert "not plain weights" in text and "\x1b" not in text, text


def test_agent_weights_that_hold_code(tabular_agent_dir, capsys):
    import torch

    torch.save({"q_table": _Code()}, tabular_agent_dir / "weights.pt")
    code, out, err = cli(capsys, "evaluate", str(tabular_agent_dir))
    assert_error(code, out, err, "weights.pt")
    assert_no_unsafe_advice(err)
    assert "this ran" not in out


def tiny_vae_folder(tmp_path: Path) -> Path:
    from fullrun.project import save_model
    from rlbook.chapters.vae_mnist import VAE
    from rlbook.checkpoint import make_provenance

    return save_model(
        tmp_path / "vae",
        kind="vae-mnist",
        spec={"model": {"hidden": [8], "latent": 2}},
        model=VAE(hidden=[8], latent=2),
        provenance=make_provenance(
            command="pytest", config={}, budget="smoke", device="cpu", wall_time_s=0.0
        ),
    )


def test_model_weights_that_hold_code(tmp_path):
    import torch

    from rlbook.projects.shipping import ModelArtifactError, load_model

    folder = tiny_vae_folder(tmp_path)
    torch.save({"encoder.0.weight": _Code()}, folder / "weights.pt")
    with pytest.raises(ModelArtifactError) as caught:
        load_model(folder)
    assert_no_unsafe_advice(str(caught.value))


def test_project_script_checkpoint_that_holds_code(tmp_path, capsys):
    import torch

    from fullrun import project as script

    torch.save({"format": _Code()}, tmp_path / "checkpoint.pt")
    with pytest.raises(SystemExit) as stop, script.resuming(tmp_path / "checkpoint.pt"):
        epoch_run(tmp_path, {})
    err = capsys.readouterr().err
    assert_error(stop.value.code, "", err, "cannot resume")
    assert_no_unsafe_advice(err)


def test_size_mismatch_names_every_tensor(tmp_path):
    from rlbook.chapters.vae_mnist import VAE
    from rlbook.checkpoint import save_checkpoint
    from rlbook.projects.shipping import ModelArtifactError, load_model

    folder = tiny_vae_folder(tmp_path)
    other = {k: v.half() for k, v in VAE(hidden=[9], latent=2).state_dict().items()}
    save_checkpoint(folder / "weights.pt", other)
    manifest = json.loads((folder / "model.json").read_text())
    del manifest["sha256"]  # as in a folder exported before hashes (or it would say so)
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError) as caught:
        load_model(folder)
    message = str(caught.value)
    assert "\n" not in message and message.count("size mismatch") >= 2, message


def test_agent_manifest_that_is_not_utf8_is_named(tabular_agent_dir, capsys):
    (tabular_agent_dir / "agent.json").write_bytes(b'{"format": "\xff"}')
    assert_error(
        *cli(capsys, "evaluate", str(tabular_agent_dir)), "agent.json", "UTF-8"
    )


def test_pixel_agent_seed_is_checked(capsys):
    code, out, err = cli(
        capsys, "evaluate", str(ROOT / "artifacts" / "dqn-pixels"), "--seed", "-1"
    )
    assert_error(code, out, err, "seed must be >= 0")


def test_pixel_script_seeds_are_checked(monkeypatch, capsys, tmp_path):
    script = pixel_script_module()

    def no_runs(*args, **kwargs):
        raise AssertionError("a run was started")

    monkeypatch.setattr(script.subprocess, "Popen", no_runs)
    monkeypatch.setattr(
        sys,
        "argv",
        ["train_dqn_pixels.py", "--runs", str(tmp_path), "--seeds", "0", "-1"],
    )
    with pytest.raises(SystemExit) as stop:
        script.main()
    assert_error(stop.value.code, "", capsys.readouterr().err, "--seeds")


def test_damaged_weights_message_gives_no_unsafe_advice(tabular_agent_dir, capsys):
    (tabular_agent_dir / "weights.pt").write_bytes(b"\x00" * 10)
    code, out, err = cli(capsys, "evaluate", str(tabular_agent_dir))
    assert_error(code, out, err, "corrupt", "weights.pt")
    assert "weights_only" not in err and "\x1b" not in err


# -- item 5: a review folder is read and written carefully ------------------------


def reviews_with(tmp_path: Path, name: str, make) -> Path:
    folder = review_folder(tmp_path)
    make(folder / "pos" / name)
    return folder


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.symlink_to(p), "cannot read"),
        (lambda p: p.symlink_to(p.parent / "missing.txt"), "cannot read"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
        (lambda p: p.write_bytes(b"a" * 1_000_001), "more than the 1,000,000"),
    ],
    ids=["loop", "dangling", "folder", "fifo", "dev-zero", "huge"],
)
def test_hostile_review_files_are_one_clear_error(tmp_path, make, words):
    from rlbook.chapters.sentiment_imdb import read_review_folder
    from rlbook.data import DataError

    folder = reviews_with(tmp_path, "2_9.txt", make)
    with pytest.raises(DataError) as caught:
        read_review_folder(folder)
    assert "2_9.txt" in str(caught.value) and words in str(caught.value), caught.value


def test_a_link_to_a_regular_file_is_read(tmp_path):
    from rlbook.chapters.sentiment_imdb import read_review_folder

    (tmp_path / "elsewhere.txt").write_text("linked review")
    folder = reviews_with(
        tmp_path, "2_9.txt", lambda p: p.symlink_to(tmp_path / "elsewhere.txt")
    )
    texts, _, _ = read_review_folder(folder)
    assert "linked review" in texts and len(texts) == 3


def test_writing_a_review_folder_never_follows_links(tmp_path):
    import torch

    from rlbook.chapters.sentiment_imdb import TextSet, write_review_folder
    from rlbook.data import DataError

    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    folder = tmp_path / "out"
    (folder / "pos").mkdir(parents=True)
    (folder / "pos" / "5_10.txt").symlink_to(outside)
    reviews = TextSet(
        texts=("great",),
        labels=torch.tensor([1]),
        ratings=torch.tensor([10]),
        ids=(5,),
        split="test",
        full_size=1,
        source=tmp_path,
    )
    write_review_folder(reviews, folder)
    assert outside.read_text() == "precious"
    written = folder / "pos" / "5_10.txt"
    assert not written.is_symlink() and written.read_text() == "great"
    # a pos/ that links elsewhere is refused
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "other" / "neg").mkdir(parents=True)
    (tmp_path / "other" / "pos").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="is a link"):
        write_review_folder(reviews, tmp_path / "other")
    assert not any((tmp_path / "elsewhere").iterdir())


# -- item 4: manifests checked against their weights and environment ---------------


def tabular_with(tmp_path: Path, table: np.ndarray, discretizer=None) -> Path:
    import torch

    from rlbook.agents import save_agent
    from rlbook.checkpoint import make_provenance

    from .conftest import CARTPOLE_DISCRETIZER

    return save_agent(
        tmp_path / "agent",
        kind="q-table",
        env_id="CartPole-v1",
        spec={"discretizer": (discretizer or CARTPOLE_DISCRETIZER).to_dict()},
        weights={"q_table": torch.from_numpy(table)},
        provenance=make_provenance(
            command="pytest", config={}, budget="smoke", device="cpu", wall_time_s=0.0
        ),
    )


def test_all_nan_q_table_is_refused(tmp_path, capsys):
    from .conftest import hand_made_cartpole_table

    table = np.full_like(hand_made_cartpole_table(), np.nan)
    folder = tabular_with(tmp_path, table)
    assert_error(*cli(capsys, "evaluate", str(folder)), "q_table", "NaN")


def test_q_table_with_more_actions_than_the_environment(tmp_path, capsys):
    from .conftest import CARTPOLE_DISCRETIZER

    table = np.zeros((CARTPOLE_DISCRETIZER.n_states, 3))
    table[:, 2] = 1.0  # always action 2, which CartPole lacks
    folder = tabular_with(tmp_path, table)
    assert_error(
        *cli(capsys, "evaluate", str(folder)), "3 actions", "CartPole-v1 has 2"
    )


def test_discretizer_of_another_observation_size(tmp_path, capsys):
    from rlbook.chapters.tabular_cartpole import Discretizer

    three = Discretizer.uniform([-1.0] * 3, [1.0] * 3, 4)
    folder = tabular_with(tmp_path, np.zeros((three.n_states, 2)), three)
    assert_error(*cli(capsys, "evaluate", str(folder)), "size 3", "(4,)")


def test_pixel_network_and_observation_stack_disagree(tmp_path, capsys):
    import shutil

    folder = tmp_path / "pixels"
    shutil.copytree(ROOT / "artifacts" / "dqn-pixels", folder)
    manifest = json.loads((folder / "agent.json").read_text())
    manifest["spec"]["observation"]["stack"] = 4  # the network reads 3
    (folder / "agent.json").write_text(json.dumps(manifest))
    assert_error(*cli(capsys, "evaluate", str(folder)), "stacks of 3", "stacks 4")


def test_weights_changed_after_export_are_refused(tabular_agent_dir, capsys):
    manifest = json.loads((tabular_agent_dir / "agent.json").read_text())
    assert set(manifest["sha256"]) == {"weights.pt", "weights.provenance.json"}
    data = bytearray((tabular_agent_dir / "weights.pt").read_bytes())
    middle = len(data) // 2  # inside the table's bytes: the file still loads
    data[middle : middle + 8] = bytes(8)  # eight zeroed bytes, as the issue found
    (tabular_agent_dir / "weights.pt").write_bytes(bytes(data))
    assert_error(
        *cli(capsys, "evaluate", str(tabular_agent_dir)), "SHA-256", "weights.pt"
    )


def test_a_manifest_without_a_hash_still_loads(tabular_agent_dir):
    manifest = json.loads((tabular_agent_dir / "agent.json").read_text())
    del manifest["sha256"]
    (tabular_agent_dir / "agent.json").write_text(json.dumps(manifest))
    assert load_agent(tabular_agent_dir).kind == "q-table"


def test_model_vocabulary_and_weights_are_hashed(tmp_path):
    from fullrun.project import save_model
    from rlbook.chapters.sentiment_imdb import SentimentLSTM, Vocabulary
    from rlbook.checkpoint import make_provenance
    from rlbook.projects.shipping import ModelArtifactError, load_model

    vocabulary = Vocabulary.build([["good", "bad", "good", "film", "bad"]], min_freq=1)
    arguments = {"vocab_size": len(vocabulary), "embed_dim": 4, "hidden_size": 4}
    model = SentimentLSTM(**arguments)
    folder = save_model(
        tmp_path / "lstm",
        kind="sentiment-lstm",
        spec={
            "model": arguments,
            "vocabulary": vocabulary.to_dict(),
            "max_len": 8,
            "head": None,
        },
        model=model,
        provenance=make_provenance(
            command="pytest", config={}, budget="smoke", device="cpu", wall_time_s=0.0
        ),
    )
    load_model(folder)
    manifest = json.loads((folder / "model.json").read_text())
    assert set(manifest["sha256"]) == {
        "weights.pt",
        "weights.provenance.json",
        "vocabulary",
    }
    tokens = manifest["spec"]["vocabulary"]["tokens"]
    tokens[-1], tokens[-2] = tokens[-2], tokens[-1]  # two tokens swapped
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match=r"vocabulary .* SHA-256"):
        load_model(folder)


# -- item 7: nothing left behind, nothing half-written --------------------------------


def test_atomic_write_removes_what_a_killed_writer_left(tmp_path):
    from rlbook.checkpoint import atomic_write

    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
        except OSError:
            dead += 1
    stale = tmp_path / f".x.json.{dead}-abcd1234.tmp"
    old_style = tmp_path / ".x.json.abcd1234.tmp"
    fresh_old_style = tmp_path / ".x.json.efgh5678.tmp"
    live = tmp_path / f".x.json.{os.getppid()}-abcd1234.tmp"
    other = tmp_path / f".x.json.gz.{dead}-abcd1234.tmp"
    for path in (stale, old_style, fresh_old_style, live, other):
        path.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(old_style, (two_hours_ago, two_hours_ago))
    atomic_write(tmp_path / "x.json", lambda handle: handle.write(b"{}"))
    assert (tmp_path / "x.json").read_bytes() == b"{}"
    assert not stale.exists() and not old_style.exists()
    assert fresh_old_style.exists() and live.exists() and other.exists()


def test_an_interrupted_export_is_found_on_load(tmp_path):
    from fullrun.project import save_model
    from rlbook.projects.shipping import ModelArtifactError, load_model

    folder = tiny_vae_folder(tmp_path)
    manifest = json.loads((folder / "model.json").read_text())
    assert {"weights.pt", "weights.provenance.json"} <= set(manifest["sha256"])
    # an export with metrics: written before the manifest, which lists them
    from rlbook.chapters.vae_mnist import VAE
    from rlbook.checkpoint import make_provenance

    save_model(
        folder,
        kind="vae-mnist",
        spec={"model": {"hidden": [8], "latent": 2}},
        model=VAE(hidden=[8], latent=2),
        provenance=make_provenance(
            command="again", config={}, budget="smoke", device="cpu", wall_time_s=1.0
        ),
        files={"metrics.json": b'{"loss": 1}\n'},
    )
    assert "metrics.json" in json.loads((folder / "model.json").read_text())["sha256"]
    load_model(folder)
    # the old manifest beside the new files: a crash between the renames
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match=r"weights.pt .* SHA-256"):
        load_model(folder)
    save_model(
        folder,
        kind="vae-mnist",
        spec={"model": {"hidden": [8], "latent": 2}},
        model=VAE(hidden=[8], latent=2),
        provenance=make_provenance(
            command="again", config={}, budget="smoke", device="cpu", wall_time_s=1.0
        ),
        files={"metrics.json": b'{"loss": 1}\n'},
    )
    (folder / "metrics.json").unlink()
    with pytest.raises(ModelArtifactError, match=r"lacks metrics\.json"):
        load_model(folder)


def test_a_failed_cifar_extraction_leaves_no_temporary_file(tmp_path):
    import io
    import tarfile

    from rlbook.chapters.resnet_cifar import CIFAR10_FOLDER, extract_cifar10
    from rlbook.data import DataError

    buffer = io.BytesIO()
    payload = (
        np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    )
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{CIFAR10_FOLDER}/data_batch_1.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # cut short
    root = tmp_path / "data"
    with pytest.raises(DataError):
        extract_cifar10(archive, root)
    left = [p.name for p in root.rglob("*") if p.is_file()]
    assert left == [], left


def test_a_download_that_cannot_start_creates_no_folder(tmp_path):
    from rlbook.data import DataError, download

    target = tmp_path / "nonexistent" / "MNIST" / "raw" / "x.gz"
    with pytest.raises(DataError, match="cannot download"):
        download("http://127.0.0.1:9/x.gz", target, "0" * 32, timeout=5)
    assert not (tmp_path / "nonexistent").exists()


def test_missing_data_says_when_the_data_folder_itself_does_not_exist(
    tmp_path, monkeypatch
):
    from rlbook.chapters.vae_mnist import load_mnist
    from rlbook.data import DataError

    monkeypatch.setenv("RLBOOK_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"does not exist") as caught:
        load_mnist("test", download=False)
    assert "$RLBOOK_DATA" in str(caught.value)


# -- item 8: a project script works in its own checkout ------------------------------


@pytest.mark.parametrize("name", ["resnet", "sentiment", "vae"])
def test_project_scripts_start_in_their_own_checkout(name, monkeypatch):
    from fullrun import project as script

    seen = []

    def start(args, short, root=None):
        seen.append(root)
        raise SystemExit(0)

    monkeypatch.setattr(script, "start", start)
    monkeypatch.setattr(sys, "argv", [f"train_{name}.py", "--budget", "smoke"])
    path = ROOT / "scripts" / f"train_{name}.py"
    module = load_script(f"scripts/train_{name}.py")
    with pytest.raises(SystemExit):
        module.main()
    assert seen == [path.resolve().parents[1]]


def test_ship_checks_and_writes_the_checkout_it_is_given(tmp_path):
    import argparse
    from types import SimpleNamespace

    from fullrun import project as script
    from rlbook.chapters.vae_mnist import VAE, vae_config, vae_spec
    from rlbook.checkpoint import load_provenance

    root = tmp_path / "clone"
    root.mkdir()
    (root / "README.md").write_text("a clone\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    config = vae_config("smoke")
    folder = script.ship(
        "vae-mnist",
        script="train_vae.py",
        args=argparse.Namespace(budget="smoke", seed=0),
        config=config,
        device="cpu",
        run=SimpleNamespace(resumed_from=0, best=VAE(config.hidden, config.latent)),
        metrics={"seconds": 1.0, "data": "none"},
        summary={},
        score={},
        kind="vae-mnist",
        spec=vae_spec(config),
        root=root,
    )
    assert folder == root / "artifacts" / "vae-mnist"
    assert load_provenance(folder / "weights.pt")["git_commit"] == head
    (root / "README.md").write_text("changed\n")
    with pytest.raises(SystemExit) as stop:
        script.ship(
            "vae-mnist",
            script="train_vae.py",
            args=argparse.Namespace(budget="smoke", seed=0),
            config=config,
            device="cpu",
            run=SimpleNamespace(resumed_from=0, best=VAE(config.hidden, config.latent)),
            metrics={"seconds": 1.0, "data": "none"},
            summary={},
            score={},
            kind="vae-mnist",
            spec=vae_spec(config),
            root=root,
        )
    assert stop.value.code == 2


# -- item 9: one run per runs folder ----------------------------------------------------


def hold_in_another_process(folder: Path) -> subprocess.Popen:
    """A process that holds ``folder``'s lock until its stdin closes."""
    code = (
        "import sys; from fullrun.lock import hold_runs_folder; "
        f"hold_runs_folder({str(folder)!r}); print('held', flush=True); sys.stdin.read()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,  # where fullrun is
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_in_a_runs_folder_is_refused(tmp_path, monkeypatch, capsys):
    from fullrun.lock import RunsFolderBusy, hold_runs_folder

    runs = tmp_path / "runs"
    monkeypatch.setenv("RLBOOK_DATA", str(tmp_path / "no-data"))  # never trains
    first = hold_in_another_process(runs)
    try:
        with pytest.raises(RunsFolderBusy, match=f"process {first.pid}"):
            hold_runs_folder(runs)
        # the project scripts: refused before loading any data
        module = load_script("scripts/train_vae.py")
        monkeypatch.setattr(
            sys, "argv", ["train_vae.py", "--budget", "smoke", "--runs", str(runs)]
        )
        with pytest.raises(SystemExit) as stop:
            module.main()
        assert_error(
            stop.value.code, "", capsys.readouterr().err, "another run", "--runs"
        )
        # the pixel script: refused before any run starts
        pixels = pixel_script_module()
        monkeypatch.setattr(pixels.subprocess, "Popen", None)  # would fail if called
        monkeypatch.setattr(sys, "argv", ["train_dqn_pixels.py", "--runs", str(runs)])
        with pytest.raises(SystemExit) as stop:
            pixels.main()
        assert_error(stop.value.code, "", capsys.readouterr().err, "another run")
    finally:
        first.stdin.close()
        first.wait(timeout=30)
    # once the first run has ended (however it ended), the folder is free
    hold_runs_folder(runs)
