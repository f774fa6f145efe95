"""rlbook.pixel_dqn: networks, augmentation, resumable runs, the winner rule, export."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from rlbook.chapters.dqn_pixels import (
    PixelDQN,
    PixelDQNConfig,
    PixelQNetwork,
    random_shift,
)
from rlbook.checkpoint import CheckpointError, save_checkpoint
from rlbook.pixel_dqn import VARIANTS, choose_winner, export_artifact

from .test_cli import run_cli

TINY = PixelDQNConfig(
    total_steps=480,
    envs=4,
    buffer_size=400,
    batch_size=8,
    learning_starts=160,
    train_every=8,
    target_every=5,
    n_step=2,
    shift=2,
    validate_every=240,
    validate_episodes=2,
)


def test_network_sizes_and_the_lectures_linear_layer():
    nature = PixelQNetwork(3, 2, "nature")
    assert nature.hidden[0].in_features == 64 * 6 * 6
    lecture = PixelQNetwork(3, 2, "lecture")
    assert lecture.hidden[0].in_features == 128 * 8 * 8  # 80x80 frames
    # The lecture's Linear(128 * 9 * 9, 512) fits 84x84 frames with padding 1.
    assert (
        PixelQNetwork(3, 2, "lecture", frame_size=84).hidden[0].in_features
        == 128 * 9 * 9
    )
    frames = torch.randint(0, 256, (5, 3, 80, 80), dtype=torch.uint8)
    assert nature(frames).shape == (5, 2) and lecture.eval()(frames).shape == (5, 2)
    dueling = PixelQNetwork(3, 2, "nature", dueling=True)
    assert dueling(frames).shape == (5, 2)
    with pytest.raises(ValueError, match="arch must be one of"):
        PixelQNetwork(3, 2, "resnet")


def test_random_shift_moves_each_stack_as_a_whole():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 3, 20, 20)
    x[:, :, 8:12, 8:12] = 1.0  # a square away from the edges
    shifted = random_shift(x, 3, gen)
    assert shifted.shape == x.shape
    for stack in shifted:
        assert int(stack[0].sum()) == 16  # the square is moved, not cut or stretched
        assert torch.equal(stack[1], stack[0]) and torch.equal(stack[2], stack[0])
    offsets = {
        (int(torch.nonzero(s[0])[0, 0]), int(torch.nonzero(s[0])[0, 1]))
        for s in shifted
    }
    assert len(offsets) > 10  # different stacks, different shifts
    assert torch.equal(random_shift(x, 0, gen), x)


def test_a_resumed_run_ends_with_the_same_weights(tmp_path):
    straight = PixelDQN(TINY, seed=3).train()
    stopped = PixelDQN(TINY, seed=3).train(until=240, checkpoint=tmp_path / "run.pt")
    assert stopped.step == 240 and stopped.updates > 0
    resumed = PixelDQN.resume(tmp_path / "run.pt").train()
    for a, b in zip(
        straight.q_net.state_dict().values(),
        resumed.q_net.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    assert straight.history == resumed.history
    assert straight.updates == resumed.updates == (480 - 160) // 8 + 1
    # A seeded run repeats itself; another seed does not.
    other = PixelDQN(TINY, seed=4).train()
    assert not torch.equal(straight.q_net.head.weight, other.q_net.head.weight)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    PixelDQN(TINY, seed=0).save(tmp_path / "run.pt")
    with pytest.raises(CheckpointError, match="another config or seed"):
        PixelDQN(replace(TINY, n_step=1), seed=0).load_state_dict(
            torch.load(tmp_path / "run.pt", weights_only=True)
        )
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        PixelDQN.resume(tmp_path / "bad.pt")


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match="arch"):
        PixelDQNConfig(arch="vit")
    with pytest.raises(ValueError, match="validate_every"):
        PixelDQNConfig(total_steps=100, validate_every=1000)
    with pytest.raises(ValueError, match="n_step"):
        PixelDQNConfig(n_step=0)


def result(variant, seed, validations, best):
    return {
        "variant": variant,
        "seed": seed,
        "validation_return": validations,
        "best_validation": best,
    }


def test_the_winner_is_the_steadiest_late_variant_then_its_best_seed():
    first, second = list(VARIANTS)[:2]
    results = [
        # first variant: a high peak early, poor at the end
        result(first, 0, [500, 500, 500, 100, 100, 100, 100, 100], 500),
        result(first, 1, [500, 500, 500, 100, 100, 100, 100, 100], 500),
        # second variant: steady at the end
        result(second, 0, [10, 10, 10, 10, 10, 10, 400, 400], 400),
        result(second, 1, [10, 10, 10, 10, 10, 10, 400, 450], 450),
        result(second, 2, [10, 10, 10, 10, 10, 10, 400, 450], 450),
    ]
    winner, run = choose_winner(results)
    assert winner == second
    assert run["seed"] == 1  # the best validation; the tie goes to the lower seed
    # equal scores: the earlier variant wins
    tie = [result(second, 0, [300] * 4, 300), result(first, 0, [300] * 4, 300)]
    assert choose_winner(tie)[0] == first
    with pytest.raises(ValueError, match="no results"):
        choose_winner([result("unknown", 0, [1], 1)])


def write_run(folder, variant, seed, late, frames="batched"):
    net = PixelQNetwork(3, 2, "nature")
    half = {k: v.half() for k, v in net.state_dict().items()}
    run_dir = folder / f"{variant}-s{seed}"
    run_dir.mkdir(parents=True)
    save_checkpoint(run_dir / "weights.pt", {"best": half, "final": half})
    record = {
        **result(variant, seed, [late] * 4, late),
        "config": {"frames": frames},
        "best_step": 1000,
        "test_best": [9.0, 10.0],
        "test_final": [9.0, 9.0],
        "network": net.spec,
        "provenance": {"command": "test", "device": "cpu", "packages": {}},
        "episode_end": [10, 20],
        "episode_return": [10.0, 10.0],
        "validation_step": [250, 500, 750, 1000],
    }
    (run_dir / "result.json").write_text(json.dumps(record))


def test_export_writes_an_agent_the_cli_evaluates_from_its_manifest(tmp_path):
    first, second = list(VARIANTS)[:2]
    write_run(tmp_path / "runs", first, 0, 50.0)
    write_run(tmp_path / "runs", second, 0, 60.0)
    out = export_artifact(tmp_path / "runs", tmp_path / "agent", command="test")
    manifest = json.loads((out / "agent.json").read_text())
    assert (
        manifest["kind"] == "pixel-q-network" and manifest["spec"]["variant"] == second
    )
    observation = manifest["spec"]["observation"]
    assert observation["stack"] == 3 and observation["crop_rows"] == [160, 320]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["winner"] == second and len(metrics["runs"]) == 2

    for frames in ("batched", "gymnasium"):
        done = run_cli(
            "evaluate",
            str(out),
            "--episodes",
            "3",
            "--seed",
            "7",
            "--frames",
            frames,
            "--envs",
            "2",
        )
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert record["frames"] == frames and record["episodes"] == 3
        assert 8 <= record["mean_return"] <= 500

    # A manifest whose pipeline this rlbook does not build is a clear error.
    manifest["spec"]["observation"]["crop_rows"] = [100, 300]
    (out / "agent.json").write_text(json.dumps(manifest))
    done = run_cli("evaluate", str(out), "--episodes", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        "crop_rows" in done.stderr and "unsupported observation pipeline" in done.stderr
    )


def test_an_agent_of_simple_frames_records_them_and_plays_only_them(tmp_path):
    write_run(tmp_path / "runs", next(iter(VARIANTS)), 0, 50.0, frames="simple")
    out = export_artifact(tmp_path / "runs", tmp_path / "agent", command="test")
    observation = json.loads((out / "agent.json").read_text())["spec"]["observation"]
    assert observation["frames"] == "simple"
    assert observation["renderer"] == "rlbook.pixels.render_simple_batch"
    done = run_cli("evaluate", str(out), "--episodes", "2", "--envs", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames"] == "simple"
    done = run_cli("evaluate", str(out), "--episodes", "1", "--frames", "gymnasium")
    assert done.returncode == 2 and "learned from 'simple' frames" in done.stderr


def test_frames_option_is_refused_for_agents_that_do_not_see_pixels(tabular_agent_dir):
    done = run_cli("evaluate", str(tabular_agent_dir), "--frames", "batched")
    assert done.returncode == 2 and "pixels" in done.stderr


def test_the_loss_is_the_n_step_double_dqn_target():
    from rlbook.replay import FrameBatch

    config = replace(TINY, shift=0, huber=False)
    run = PixelDQN(config, seed=0)
    torch.manual_seed(1)
    run.target_net.head.bias.data += 1.0  # target and online nets differ
    gen = torch.Generator().manual_seed(2)
    batch = FrameBatch(
        obs=torch.randint(0, 256, (6, 3, 80, 80), dtype=torch.uint8, generator=gen),
        action=torch.tensor([0, 1, 0, 1, 0, 1]),
        reward=torch.tensor([1.0, 2.0, 1.0, 2.71, 1.0, 1.0]),
        next_obs=torch.randint(
            0, 256, (6, 3, 80, 80), dtype=torch.uint8, generator=gen
        ),
        terminated=torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
        steps=torch.tensor([1.0, 2.0, 2.0, 3.0, 1.0, 3.0]),
    )
    with torch.no_grad():
        q = run.q_net(batch.obs)
        online_next = run.q_net(batch.next_obs)
        target_next = run.target_net(batch.next_obs)
    want = []
    for i in range(6):
        a_star = int(online_next[i].argmax())  # Double DQN: online net chooses
        bootstrap = 0.0 if batch.terminated[i] else float(target_next[i, a_star])
        target = float(batch.reward[i]) + 0.99 ** float(batch.steps[i]) * bootstrap
        want.append((float(q[i, batch.action[i]]) - target) ** 2)
    assert run.loss(batch).item() == pytest.approx(np.mean(want), rel=1e-5)


def test_each_ablation_changes_the_shipped_recipe_in_its_own_fields_only():
    from dataclasses import asdict

    from rlbook.pixel_dqn import (
        ABLATION_BASE,
        ABLATIONS,
        FULL_RUN,
        ablation_config,
        ablation_steps,
        variant_config,
    )

    base = asdict(variant_config(ABLATION_BASE))
    for name, change in ABLATIONS.items():
        config = asdict(ablation_config(name))
        assert {k for k in config if config[k] != base[k]} == set(change)
    assert ablation_config("8 frames").stack == 8
    assert ablation_config("lecture network").arch == "lecture"
    assert ablation_steps(FULL_RUN) == 50_000  # whole validations, half the run
    with pytest.raises(ValueError, match="unknown ablation"):
        ablation_config("baseline")


def curve(variant, seed, validations):
    return {
        "variant": variant,
        "seed": seed,
        "validation_step": [10 * (i + 1) for i in range(len(validations))],
        "validation_return": validations,
    }


def test_the_ablation_criterion_cuts_at_the_equal_budget():
    from rlbook.pixel_dqn import compare_to_base, early_validation, first_step_at_least

    run = curve("x", 0, [0, 100, 500, 500])
    assert early_validation(run, 20) == 50.0  # steps 10 and 20 only
    assert early_validation(run, 40) == 275.0
    with pytest.raises(ValueError, match="no validation"):
        early_validation(run, 5)
    assert first_step_at_least(run, 450) == 30
    assert first_step_at_least(run, 501) is None
    assert first_step_at_least(run, 450, until=30) == 30
    assert first_step_at_least(run, 450, until=20) is None  # 500 comes later
    fast = [curve("a", s, [400, 500]) for s in range(3)]
    slow = [curve("b", s, [10, 100 + s]) for s in range(3)]
    mixed = [curve("c", 0, [10, 10]), curve("c", 1, [500, 500])]
    assert compare_to_base(fast, slow, 20) == "higher"
    assert compare_to_base(slow, fast, 20) == "lower"
    assert compare_to_base(mixed, slow, 20) == "overlap"
    # up to step 10 the slow runs' later climb does not count
    assert compare_to_base([curve("d", 0, [20, 0])], slow, 10) == "higher"


def train_script(*args):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_dqn_pixels.py"
    done = subprocess.run(
        [sys.executable, str(script), "--budget", "smoke", "--workers", "1", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr


def test_a_variant_run_of_the_script_ships_weights_and_tests_them(tmp_path):
    train_script("--runs", str(tmp_path), "--variants", "baseline", "--seeds", "0")
    folder = tmp_path / "baseline-s0"
    record = json.loads((folder / "result.json").read_text())
    assert record["step"] == 2_000 and record["config"]["n_step"] == 1
    assert len(record["test_best"]) == len(record["test_final"]) == 100
    assert (folder / "weights.pt").exists() and not (folder / "checkpoint.pt").exists()


def test_ablation_runs_train_and_export_their_curves(tmp_path):
    from rlbook.pixel_dqn import ABLATION_BASE, export_ablations

    with pytest.raises(FileNotFoundError, match="--ablations"):
        export_ablations(tmp_path / "runs", tmp_path, command="test")
    runs = str(tmp_path / "runs")
    train_script("--runs", runs, "--ablations", "8 frames", "--seeds", "0")
    folder = tmp_path / "runs" / "ablations" / "8 frames-s0"
    record = json.loads((folder / "result.json").read_text())
    assert record["config"]["stack"] == 8 and record["config"]["n_step"] == 3
    assert record["step"] == 1_000  # half of the smoke run's 2,000 steps
    assert record["validation_step"] == [1_000]
    assert not (folder / "checkpoint.pt").exists()
    assert not (tmp_path / "runs" / "8 frames-s0").exists()  # not among variants
    assert "test_best" not in record and not (folder / "weights.pt").exists()
    path = export_ablations(tmp_path / "runs", tmp_path / "out", command="test")
    exported = json.loads(path.read_text())
    assert exported["base"] == ABLATION_BASE and exported["until"] == 1_000
    assert [r["variant"] for r in exported["runs"]] == ["8 frames"]
    # runs that stopped at different steps are not comparable
    other = folder.parent / "8 frames-s1"
    other.mkdir()
    (other / "result.json").write_text(json.dumps({**record, "seed": 1, "step": 2_000}))
    with pytest.raises(ValueError, match="different steps"):
        export_ablations(tmp_path / "runs", tmp_path / "out", command="test")
