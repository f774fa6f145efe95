"""scripts/train_pong.py: shipping a finished run and recording an unfinished one,
the agent the CLI rebuilds from the manifest, going on from the committed
checkpoint, and one run per runs folder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlbook.agents import ArtifactError, load_agent
from rlbook.chapters.pong import Reinforce, play_games
from rlbook.chapters.pong_ppo import PPO

from .conftest import tiny_pong_configs
from .scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
TINY_PG, TINY_PPO = tiny_pong_configs()


def test_first_reaching_needs_a_full_window():
    first_reaching = load_script("scripts/train_pong.py").first_reaching
    scores = np.array([-21.0, -1.0, 19.0, 21.0, 21.0])
    assert first_reaching(scores, 18.0, window=2) == 3
    assert first_reaching(scores, 21.0, window=3) is None
    assert first_reaching(scores, -11.0, window=2) == 1  # needs a full window


def evaluate_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m rlbook ARGS`` in this process: its status, stdout and stderr
    (test_cli.py runs the command itself in a fresh interpreter)."""
    from rlbook.__main__ import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["reinforce", "ppo"])
def test_export_ships_an_agent_that_the_cli_rebuilds_from_its_manifest(
    tmp_path, kind, request, monkeypatch, capsys
):
    pt = load_script("scripts/train_pong.py")

    # The finished tiny runs the other tests train (#28), and 2 test games
    # instead of TEST_GAMES' 10: the export must play and record as many as
    # TEST_GAMES says, whatever it is.
    run = request.getfixturevalue(
        "tiny_reinforce" if kind == "reinforce" else "tiny_ppo"
    )
    if kind == "reinforce":
        run = run[0]
    real_score_weights = pt.score_weights
    monkeypatch.setattr(pt, "TEST_GAMES", 2)
    monkeypatch.setattr(
        pt,
        "score_weights",
        lambda state, weights, games=None: real_score_weights(
            state, weights, pt.TEST_GAMES if games is None else games
        ),
    )
    early = (Reinforce(TINY_PG) if kind == "reinforce" else PPO(TINY_PPO)).state_dict()
    with pytest.raises(ValueError, match="finish it before exporting"):
        pt.export_pong(early, tmp_path / "early", command="test")
    # an unfinished run may only be recorded as in progress, without weights
    snapshot = json.loads(
        pt.snapshot_pong(early, tmp_path / "agent", command="test").read_text()
    )
    assert snapshot["update"] == 0 < snapshot["planned_updates"]
    assert snapshot["scores"] == [] and snapshot["provenance"]["command"] == "test"
    assert sorted(p.name for p in (tmp_path / "agent").iterdir()) == [
        "in-progress.json"
    ]
    assert run.update == pt.planned_updates(run.state_dict())  # finished
    with pytest.raises(ValueError, match="export it"):
        pt.snapshot_pong(run.state_dict(), tmp_path / "late", command="test")
    # the same run seen as halfway through a plan twice as long
    config = json.loads(run.state_dict()["config"])
    config["updates" if kind == "reinforce" else "total_steps"] *= 2
    halfway = {**run.state_dict(), "config": json.dumps(config)}
    path = pt.snapshot_pong(halfway, tmp_path / "halfway", command="test")
    snapshot = json.loads(path.read_text())
    assert snapshot["planned_updates"] == 2 * snapshot["update"] > 0
    assert snapshot["log"][-1]["games"] == len(snapshot["scores"])
    assert snapshot["scores"] or kind == "ppo"  # tiny PPO ends no game
    assert snapshot["log"][-1]["env_steps"] == snapshot["env_steps"]
    assert snapshot["validations"] and snapshot["cpu_seconds"] > 0
    out = pt.export_pong(run.state_dict(), tmp_path / "agent", command="test")
    assert not (out / "in-progress.json").exists()  # the finished run replaces it
    manifest = json.loads((out / "agent.json").read_text())
    spec = manifest["spec"]
    assert manifest["env_id"] == "ALE/Pong-v5" and spec["settings"]["frameskip"] == 4
    assert spec["observation"]["preprocess"] == "rlbook.pong.prepro_batch"
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["test"]["best"]) == len(metrics["test"]["final"]) == 2
    provenance = json.loads((out / "weights.provenance.json").read_text())
    assert provenance["score"]["test_best"] == metrics["test"]["best"]
    assert provenance["score"]["games"] == 2

    agent = load_agent(out)
    played = play_games(
        agent.policy.make_agent(),
        2,
        seed=4,
        purpose="evaluate",
        lanes=1,
        settings=spec["settings"],
        keep_scores=True,
    )
    code, stdout, stderr = evaluate_in_process(
        capsys, "evaluate", str(out), "--episodes", "2", "--envs", "1", "--seed", "4"
    )
    assert code == 0, stderr
    assert len(stdout.splitlines()) == 1
    record = json.loads(stdout)
    assert record["games"] == 2 and record["kind"] == manifest["kind"]
    # the command line lists no scores (its memory stays bounded), only their
    # statistics: those of the same games played here
    assert "scores" not in record and np.all(np.abs(played.scores) <= 21)
    assert record["mean_score"] == float(played.scores.mean())
    assert record["games_won"] == int((played.scores > 0).sum())
    assert record["min_score"] == played.scores.min()
    assert record["max_score"] == played.scores.max()

    code, _, stderr = evaluate_in_process(
        capsys, "evaluate", str(out), "--episodes", "1", "--frames", "simple"
    )
    assert code == 2 and "not to Pong" in stderr

    # #28: metrics.json is in the manifest's SHA-256 set, so a changed byte
    # fails on load; a manifest without the set (the folders shipped before
    # it) still loads
    assert set(manifest["sha256"]) == {
        "weights.pt",
        "weights.provenance.json",
        "metrics.json",
    }
    exported = (out / "metrics.json").read_bytes()
    (out / "metrics.json").write_bytes(
        exported.replace(b'"best_update":', b'"best_update": ')
    )
    with pytest.raises(ArtifactError, match=r"metrics\.json in .*changed or damaged"):
        load_agent(out)
    unhashed = {k: v for k, v in manifest.items() if k != "sha256"}
    (out / "agent.json").write_text(json.dumps(unhashed))
    load_agent(out)
    (out / "metrics.json").write_bytes(exported)

    spec["observation"]["preprocess"] = "somebody.else"
    (out / "agent.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="prepro_batch"):
        load_agent(out)
    spec["observation"]["preprocess"] = "rlbook.pong.prepro_batch"
    spec["settings"]["env_id"] = "ALE/Pongg-v5"
    (out / "agent.json").write_text(json.dumps(manifest))
    code, _, stderr = evaluate_in_process(
        capsys, "evaluate", str(out), "--episodes", "1"
    )
    assert code == 2 and stderr.startswith("error:")  # an uncaught error raises here


def train_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_pong.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_a_new_machine_goes_on_from_the_committed_checkpoint(tmp_path, tiny_reinforce):
    """The run longer than a session: main carries checkpoint.pt.xz, and a runs
    folder without a checkpoint starts from it and ends where a run that never
    stopped ends; a resume under another budget or seed is refused."""
    from rlbook.checkpoint import save_checkpoint

    script = load_script("scripts/train_pong.py")

    straight, halfway = tiny_reinforce  # trained once for the module (#28)
    state = {
        **halfway,
        "budget": "smoke",
        "commits": "[]",
        "resumed_at": "[]",
    }
    save_checkpoint(tmp_path / "old" / "checkpoint.pt", state)
    shipped = tmp_path / "artifacts"
    shipped.mkdir()
    data = (tmp_path / "old" / "checkpoint.pt").read_bytes()
    for odd in (b"", b"x", b"xy", b"xyz"):  # every padding
        assert script.unpack(script.pack(odd)) == odd
    packed = script.pack(data)  # and a checkpoint, compressed once (seconds, #28)
    assert script.unpack(packed) == data
    (shipped / script.COMMITTED_CHECKPOINT).write_bytes(packed)
    runs = tmp_path / "runs"
    said = []
    for option in (["--seed", "7"], ["--budget", "full"]):
        refused = train_script(
            "reinforce", "--runs", str(runs), "--out", str(shipped), *option
        )
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("error:") and option[0] in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        said.append(refused.stdout)
    assert "starting from" in said[0]  # the refused run was the committed one
    done = train_script("reinforce", "--runs", str(runs), "--out", str(shipped))
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    resumed = torch.load(runs / "reinforce" / "checkpoint.pt", weights_only=True)
    assert resumed["budget"] == "smoke" and resumed["update"] == 2
    assert json.loads(resumed["resumed_at"]) == [1]
    for k, v in straight.policy.state_dict().items():
        assert torch.equal(v, resumed["policy"][k]), k


def test_a_second_run_in_the_same_runs_folder_is_refused(tmp_path):
    from fullrun.lock import hold_runs_folder

    hold_runs_folder(tmp_path / "runs" / "reinforce")  # this process is the first run
    second = train_script(
        "reinforce", "--runs", str(tmp_path / "runs"), "--budget", "smoke"
    )
    assert second.returncode == 2
    assert second.stderr.startswith("error: another run") and "--runs" in second.stderr
    assert not (tmp_path / "runs" / "reinforce" / "checkpoint.pt").exists()


def test_a_timed_seed_counts_from_the_process_start_not_from_the_scripts_import():
    # a second spent before the script is even imported is in its wall time
    code = (
        "import time; time.sleep(1.0); import sys, runpy;"
        f"m = runpy.run_path({str(ROOT / 'scripts' / 'train_pong.py')!r});"
        "print(*m['since_process_start']())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    wall, cpu = map(float, out.split())
    assert 1.0 <= wall < 30.0
    assert 0.0 < cpu < wall  # the sleep took no CPU time


def test_a_fast_run_stops_at_the_first_running_mean_of_18():
    from types import SimpleNamespace

    script = load_script("scripts/train_pong.py")
    reached: list = []
    seen: list = []
    check = script.stop_at(18.0, reached, then=seen.append)
    run = SimpleNamespace(
        scores=[], update=0, env_steps=0, wall_seconds=0.0, cpu_seconds=0.0
    )
    games = [-21.0] * 5 + [20.0] * 19 + [18.0] * 10  # 20 games: mean 18 at game 25
    for update in range(1, 20):
        run.update, run.env_steps = update, 2048 * update
        run.scores = games[: 2 * update]
        if update < 13:
            check(run)
            assert not reached
            continue
        with pytest.raises(script.ReachedTarget):
            check(run)
        break
    assert len(seen) == 13  # the usual progress still ran
    hit = reached[0]
    assert (hit["game"], hit["update"], hit["env_steps"]) == (25, 13, 13 * 2048)
    assert hit["process_wall_seconds"] > 0 and hit["process_cpu_seconds"] > 0


def test_a_fast_run_gives_up_past_its_wall_time_without_claiming_the_target():
    from types import SimpleNamespace

    script = load_script("scripts/train_pong.py")
    reached: list = []
    run = SimpleNamespace(
        scores=[-21.0] * 30, update=5, env_steps=5, wall_seconds=0.0, cpu_seconds=0.0
    )
    script.stop_at(18.0, reached, max_wall_seconds=1e6)(run)  # within its time
    with pytest.raises(script.OutOfTime):
        script.stop_at(18.0, reached, max_wall_seconds=0.0)(run)
    assert not reached


def test_snapshot_scores_are_written_as_integers_only_when_whole():
    pt = load_script("scripts/train_pong.py")
    # The snapshot writes Pong's whole-point scores as -21, not -21.0 (the
    # committed record is near the tree's size cap); a fractional score
    # must keep its value.
    assert pt.whole_points([-21.0, 3.0]) == [-21, 3]
    assert json.dumps(pt.whole_points([-21.0, 3.0])) == "[-21, 3]"
    assert pt.whole_points([1.0, 0.5]) == [1.0, 0.5]


def test_an_extended_run_is_the_run_planned_that_long_from_the_start(
    tmp_path, tiny_reinforce
):
    """#25's continuation: --extend-to moves a finished run's end and changes
    nothing else, so 2 planned updates extended to 4 end where 4 planned do."""
    from dataclasses import replace

    from rlbook.checkpoint import save_checkpoint

    straight, _ = tiny_reinforce
    runs = tmp_path / "runs"
    state = {**straight.state_dict(), "budget": "smoke", "commits": "[]"}
    state["resumed_at"] = "[]"
    save_checkpoint(runs / "reinforce" / "checkpoint.pt", state)
    out = ["--runs", str(runs), "--out", str(tmp_path / "shipped")]
    early = train_script("reinforce", *out, "--extend-to", "1")
    assert early.returncode == 2 and "before the run's planned end" in early.stderr
    done = train_script("reinforce", *out, "--extend-to", "4")
    assert done.returncode == 0, done.stderr
    extended = torch.load(runs / "reinforce" / "checkpoint.pt", weights_only=True)
    assert json.loads(extended["extensions"]) == [{"at_update": 2, "from": 2, "to": 4}]
    assert json.loads(extended["config"])["updates"] == 4
    planned = Reinforce(replace(TINY_PG, updates=4), seed=3)
    planned.train()
    assert extended["scores"] == planned.scores
    assert json.loads(extended["validations"]) == planned.validations
    for k, v in planned.policy.state_dict().items():
        assert torch.equal(v, extended["policy"][k]), k
    again = train_script("reinforce", *out, "--extend-to", "4")  # nothing left
    assert again.returncode == 0, again.stderr
    state = torch.load(runs / "reinforce" / "checkpoint.pt", weights_only=True)
    assert json.loads(state["extensions"]) == [{"at_update": 2, "from": 2, "to": 4}]


def test_a_parked_checkpoint_is_read_back_from_history(tmp_path):
    """--park keeps the committed checkpoint in history only; a run without a
    checkpoint reads it back, checked against its SHA-256."""
    script = load_script("scripts/train_pong.py")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    folder = tmp_path / "artifacts" / "pong-pg"
    folder.mkdir(parents=True)
    packed = folder / script.COMMITTED_CHECKPOINT
    packed.write_bytes(b"packed checkpoint")
    git("init", "-q")
    with pytest.raises(ValueError, match="commit the snapshot first"):
        script.park(folder, tmp_path)  # not committed yet
    git("add", ".")
    git("commit", "-qm", "snapshot")
    packed.write_bytes(b"changed since")
    with pytest.raises(ValueError, match="commit the snapshot first"):
        script.park(folder, tmp_path)
    packed.write_bytes(b"packed checkpoint")
    pointer = script.park(folder, tmp_path)
    assert not packed.exists()
    assert json.loads(pointer.read_text())["commit"] == git("rev-parse", "HEAD").strip()
    git("add", "-A")
    git("commit", "-qm", "parked")
    assert script.unpark(pointer, tmp_path) == b"packed checkpoint"
    record = json.loads(pointer.read_text())
    pointer.write_text(json.dumps({**record, "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="SHA-256"):
        script.unpark(pointer, tmp_path)
    pointer.write_text(json.dumps({**record, "commit": "1" * 40}))
    with pytest.raises(ValueError, match="unshallow"):
        script.unpark(pointer, tmp_path)


def test_only_the_gpu_recipe_moves_the_learner_and_a_missing_gpu_is_named(
    tmp_path, monkeypatch
):
    runs = ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    runs += ["--budget", "smoke", "--max-minutes", "0.5"]  # should either start
    cpu_recipe = train_script("ppo", "--recipe", "fast", "--device", "cuda", *runs)
    assert cpu_recipe.returncode == 2 and "--recipe gpu" in cpu_recipe.stderr
    if torch.cuda.is_available():
        pytest.skip("this machine has the GPU whose absence is tested")
    monkeypatch.delenv("RLBOOK_DEVICE", raising=False)
    no_gpu = train_script("ppo", "--recipe", "gpu", "--device", "cuda", *runs)
    assert no_gpu.returncode == 2
    assert no_gpu.stderr.startswith("error: ") and "cuda" in no_gpu.stderr.lower()
    assert not (tmp_path / "out").exists()


MALFORMED = [("--lanes", "ENVSxSTEPS", v) for v in ("64by32", "64x", "0x32", "64x32x2")]
MALFORMED += [
    ("--change", "KEY=VALUE", v)
    for v in ("minibatches", "minibatches=eight", "=8", "a b=1", "minibatches=[8]")
]


@pytest.mark.parametrize(("option", "form", "value"), MALFORMED)
def test_a_malformed_value_is_named_before_anything_runs(tmp_path, option, form, value):
    """--lanes is ENVSxSTEPS, two positive integers; --change is KEY=VALUE with
    a number or a bool; anything else is a usage error that names the option,
    the value and the form, not a traceback."""
    out = tmp_path / "out"
    runs = ["--runs", str(tmp_path / "runs"), "--out", str(out)]
    done = train_script("ppo", "--recipe", "fast", option, value, *runs)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"'{value}'" in done.stderr and option in done.stderr
    assert form in done.stderr
    assert not out.exists()


def test_lanes_read_as_games_and_steps():
    script = load_script("scripts/train_pong.py")
    assert script.lanes_argument("64X32") == (64, 32)
    assert script.lanes_argument("16x128") == (16, 128)


def test_a_continued_run_keeps_its_earlier_exports_tests(
    tmp_path, tiny_reinforce, monkeypatch
):
    """#25: the run shipped at 20,000 games and went on; the export at 30,000
    replaces the weights but keeps what the first export tested, and only for
    the same run, continued."""
    pt = load_script("scripts/train_pong.py")
    monkeypatch.setattr(pt, "TEST_GAMES", 1)
    straight, _ = tiny_reinforce
    out = pt.export_pong(straight.state_dict(), tmp_path / "agent", command="t")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["earlier_exports"] == []
    scores = list(straight.scores)
    (earlier,) = pt.earlier_exports(out, [*scores, 21])  # the run went on
    assert earlier["games"] == len(scores) and earlier["updates"] == 2
    assert earlier["test"] == metrics["test"]
    assert earlier["best_update"] == metrics["best_update"]
    assert pt.earlier_exports(out, scores) == []  # the same run again
    assert pt.earlier_exports(out, [s - 1 for s in scores] + [21]) == []
    pt.export_pong(straight.state_dict(), out, command="t")  # re-exported
    assert json.loads((out / "metrics.json").read_text())["earlier_exports"] == []


def test_changes_read_as_a_field_and_a_number():
    script = load_script("scripts/train_pong.py")
    assert script.change_argument("minibatches=8") == ("minibatches", 8)
    assert script.change_argument("learning_rate=5e-4") == ("learning_rate", 5e-4)
    assert script.change_argument("bf16=False") == ("bf16", False)


def test_a_change_to_a_field_ppo_lacks_names_the_fields(tmp_path):
    out = tmp_path / "out"
    runs = ["--runs", str(tmp_path / "runs"), "--out", str(out)]
    done = train_script("ppo", "--recipe", "fast", "--change", "minibatch=8", *runs)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--change minibatch" in done.stderr and "minibatches" in done.stderr
    assert not out.exists()
    shipped = train_script("ppo", "--change", "minibatches=8", *runs)
    assert shipped.returncode == 2 and "--recipe fast or gpu" in shipped.stderr


def timed_record(seed: int, wall: float | None, updates: int) -> dict:
    """A timed seed's record, as far as the fast export reads it."""
    hit = None if wall is None else {"process_wall_seconds": wall, "game": 20}
    return {"seed": seed, "updates": updates, "first_running_mean_at_least_18": hit}


def test_the_median_seed_by_wall_time_to_18_ships_and_only_after_three(
    tmp_path, tiny_ppo, monkeypatch
):
    """#26: every timed seed is tested on its final and best weights, and the
    agent that ships is the middle seed by wall time, by the rule fixed
    before the timed runs."""
    from rlbook.checkpoint import save_checkpoint

    pt = load_script("scripts/train_pong.py")
    monkeypatch.setattr(pt, "FAST_TEST_GAMES", 1)
    monkeypatch.setattr(pt, "require_clean_tree", lambda root: None, raising=False)
    state = tiny_ppo.state_dict()
    # best weights unlike the final ones, so the test can tell which ship
    moved = {k: v + 1.0 for k, v in state["best"]["state"].items()}
    state = {**state, "best": {**state["best"], "state": moved}}
    walls = {1: 300.0, 2: 100.0, 3: 200.0}  # seed 3 is the middle one
    records = []
    for seed, wall in walls.items():
        records.append(tmp_path / f"minibatches-8-seed-{seed}.json")
        records[-1].write_text(json.dumps(timed_record(seed, wall, state["update"])))
        save_checkpoint(
            tmp_path / f"run{seed}" / "checkpoint.pt", {**state, "seed": seed}
        )

    def checkpoint_of(seed: int) -> Path:
        return tmp_path / f"run{seed}" / "checkpoint.pt"

    with pytest.raises(ValueError, match="after 3"):
        pt.export_fast(
            records[:2], checkpoint_of, tmp_path / "agent", command="t", root=ROOT
        )
    out = pt.export_fast(
        records, checkpoint_of, tmp_path / "agent", command="t", root=ROOT
    )
    provenance = json.loads((out / "weights.provenance.json").read_text())
    assert provenance["timed_record"] == "minibatches-8-seed-3.json"
    assert json.loads((out / "agent.json").read_text())["spec"]["seed"] == 3
    for path in records:
        test = json.loads(path.read_text())["test"]
        assert len(test["final"]) == len(test["best"]) == test["games"] == 1
        assert test["final_update"] == state["update"]
        assert test["best_update"] == state["best"]["update"]
    record = json.loads(records[2].read_text())
    assert provenance["score"]["test_final_mean"] == record["test"]["final_mean"]
    shipped = load_agent(out).policy.net.state_dict()
    for name, tensor in state["net"].items():  # the final weights, in float16
        assert torch.equal(shipped[name], tensor.half().float()), name

    # a seed short of +18, or a checkpoint of another run, ships nothing
    records[0].write_text(json.dumps(timed_record(1, None, state["update"])))
    with pytest.raises(ValueError, match=r"seed\(s\) \[1\] did not reach"):
        pt.export_fast(records, checkpoint_of, tmp_path / "a2", command="t", root=ROOT)
    records[0].write_text(json.dumps(timed_record(1, 300.0, state["update"] + 1)))
    with pytest.raises(ValueError, match="not the run"):
        pt.export_fast(records, checkpoint_of, tmp_path / "a2", command="t", root=ROOT)
    assert not (tmp_path / "a2").exists()


def test_a_timed_seed_goes_on_to_the_full_budget_in_a_folder_of_its_own(
    tmp_path, tiny_ppo
):
    """#26: --full continues a timed seed's +18 checkpoint to the end of its
    budget beside it, leaving the timed run as it stopped."""
    from rlbook.checkpoint import load_checkpoint, save_checkpoint

    pt = load_script("scripts/train_pong.py")
    state = tiny_ppo.state_dict()
    config = json.loads(state["config"])
    config["total_steps"] *= 2  # the tiny run seen as stopped halfway
    halfway = {**state, "config": json.dumps(config), "budget": "full"}
    runs, out = tmp_path / "runs", tmp_path / "out"
    timed = runs / "ppo-fast-minibatches-8-seed1" / "checkpoint.pt"
    save_checkpoint(timed, halfway)
    before = timed.read_bytes()
    args = ["ppo", "--recipe", "fast", "--change", "minibatches=8"]
    args += ["--runs", str(runs), "--out", str(out)]

    done = train_script(*args, "--seed", "1", "--full")
    assert done.returncode == 0, done.stderr
    full = load_checkpoint(runs / "ppo-fast-minibatches-8-seed1-full" / "checkpoint.pt")
    assert full["update"] == pt.planned_updates(full) == 2 * state["update"]
    assert json.loads(full["resumed_at"]) == [state["update"]]
    assert timed.read_bytes() == before  # the timed run stays as it stopped
    assert not out.exists()  # a continued run is no timed record

    missing = train_script(*args, "--seed", "2", "--full")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "no timed run at" in missing.stderr and "without --full" in missing.stderr
    capped = train_script(*args, "--seed", "1", "--full", "--max-minutes", "3")
    assert capped.returncode == 2 and "no --max-minutes" in capped.stderr


def test_the_continued_runs_ship_the_timed_pick_at_its_best_validation(
    tmp_path, tiny_ppo, monkeypatch
):
    """#26: every continued seed's best and final weights are tested; the seed
    that ships is the timed rule's pick, its best-validation weights the
    agent and its final ones beside them, by the rule written before the
    continued runs finished."""
    from rlbook.checkpoint import load_checkpoint, save_checkpoint

    pt = load_script("scripts/train_pong.py")
    monkeypatch.setattr(pt, "FAST_TEST_GAMES", 2)
    # a whole "score" that tells the weights apart, once per game
    monkeypatch.setattr(
        pt,
        "score_weights",
        lambda state, w, games: np.full(
            games, round(100 * sum(float(v.float().mean()) for v in w.values()))
        ),
    )
    state = tiny_ppo.state_dict()
    moved = {k: v + 1.0 for k, v in state["best"]["state"].items()}
    state = {**state, "best": {**state["best"], "state": moved}}
    went_on_from = 1  # the update each timed seed reached +18 at
    walls = {1: 300.0, 2: 100.0, 3: 200.0}  # seed 3 is the middle one
    records = []
    for seed, wall in walls.items():
        records.append(tmp_path / f"minibatches-8-seed-{seed}.json")
        records[-1].write_text(json.dumps(timed_record(seed, wall, went_on_from)))
        save_checkpoint(
            tmp_path / f"full{seed}" / "checkpoint.pt",
            {**state, "seed": seed, "resumed_at": json.dumps([went_on_from])},
        )

    def full_of(seed: int) -> Path:
        return tmp_path / f"full{seed}" / "checkpoint.pt"

    out = pt.export_full(records, full_of, tmp_path / "agent", command="t", root=ROOT)
    provenance = json.loads((out / "weights.provenance.json").read_text())
    assert provenance["chosen_by"] == pt.FULL_RULE and provenance["seed"] == 3
    assert provenance["timed_record"] == "minibatches-8-seed-3.json"
    assert provenance["score"]["games"] == 2
    agent = load_agent(out)
    shipped = agent.policy.net.state_dict()
    for name, tensor in moved.items():  # the best weights, in float16
        assert torch.equal(shipped[name], tensor.half().float()), name
    weights = torch.load(out / "weights.pt", weights_only=True)
    for name, tensor in state["net"].items():  # the final ones beside them
        assert torch.equal(weights["final_policy"][name], tensor.half()), name
    for path in records:
        seed_record = json.loads((out / "seeds" / path.name).read_text())
        test = seed_record["test"]
        assert len(test["best"]) == len(test["final"]) == test["games"] == 2
        assert test["best_mean"] > test["final_mean"]  # the moved weights
        assert test["best_update"] == state["best"]["update"]
        assert seed_record["went_on_from_update"] == went_on_from
    metrics = json.loads((out / "metrics.json").read_text())
    mine = json.loads((out / "seeds" / records[2].name).read_text())["test"]
    assert metrics["test"] == {"best": mine["best"], "final": mine["final"]}
    assert provenance["score"]["test_best_mean"] == mine["best_mean"]

    # a run that did not go on from the timed one, or has not finished,
    # or is not there, ships nothing
    for seed, changed, match in (
        (1, {"resumed_at": json.dumps([went_on_from + 1])}, "did not go on from"),
        (1, {"seed": 4}, "did not go on from"),
        (2, {"update": state["update"] - 1}, "finish it"),
    ):
        save_checkpoint(
            full_of(seed),
            {**state, "seed": seed, "resumed_at": json.dumps([1]), **changed},
        )
        with pytest.raises(ValueError, match=match):
            pt.export_full(records, full_of, tmp_path / "a2", command="t", root=ROOT)
        save_checkpoint(
            full_of(seed), {**state, "seed": seed, "resumed_at": json.dumps([1])}
        )
    full_of(2).unlink()
    with pytest.raises(ValueError, match=r"no checkpoint at .*--full without"):
        pt.export_full(records, full_of, tmp_path / "a2", command="t", root=ROOT)
    assert not (tmp_path / "a2").exists()
    assert load_checkpoint(full_of(1))["seed"] == 1
