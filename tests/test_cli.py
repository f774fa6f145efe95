import json
import subprocess
import sys

REQUIRED = {
    "artifact",
    "env_id",
    "episodes",
    "seed",
    "mean_return",
    "std_return",
    "min_return",
    "max_return",
}


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "rlbook", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_evaluate_prints_exactly_one_json_line(tabular_agent_dir):
    result = run_cli(
        "evaluate", str(tabular_agent_dir), "--episodes", "3", "--seed", "7"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert REQUIRED <= set(record)
    assert record["episodes"] == 3 and record["seed"] == 7


def test_unknown_directory_is_a_clear_error_not_a_traceback(tmp_path):
    result = run_cli("evaluate", str(tmp_path / "missing"), "--episodes", "1")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: no agent folder")
    assert "Traceback" not in result.stderr


def test_malformed_artifact_is_a_clear_error(tabular_agent_dir):
    (tabular_agent_dir / "weights.pt").write_bytes(b"\x00" * 10)
    result = run_cli("evaluate", str(tabular_agent_dir))
    assert result.returncode == 2
    assert "corrupt" in result.stderr and "Traceback" not in result.stderr


def test_bad_episode_count_is_a_clear_error(tabular_agent_dir):
    result = run_cli("evaluate", str(tabular_agent_dir), "--episodes", "0")
    assert result.returncode == 2
    assert "episodes must be >= 1" in result.stderr
