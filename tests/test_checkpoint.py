import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rlbook.paths
from rlbook.checkpoint import (
    NO_FINGERPRINT,
    CheckpointError,
    DirtyTreeError,
    ReproductionError,
    check_reproduction,
    git_commit,
    load_checkpoint,
    load_provenance,
    machine_fingerprint,
    make_provenance,
    provenance_path,
    reproduction_mismatch,
    require_clean_tree,
    save_checkpoint,
    uncommitted_changes,
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
    with pytest.raises(CheckpointError, match="not plain weights") as refused:
        load_checkpoint(path)
    assert "weights_only" not in str(refused.value)  # never torch's unsafe advice


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


# Provenance of shipped results: exported only from a clean tree.

REPO = Path(__file__).resolve().parents[1]
TINY_CHAPTER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Tiny

```{code-cell} ipython3
print("ran")
```
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def no_git_redirects(monkeypatch):
    """Run from a git hook, these would point git at the real repository."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def book_repo(tmp_path, monkeypatch, no_git_redirects):
    """A committed git repository shaped like the book, standing in for its root."""
    root = tmp_path / "book"
    (root / "src" / "rlbook").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "chapters").mkdir()
    (root / "artifacts" / "q-learning").mkdir(parents=True)
    (root / "_config.yml").write_text("title: test\n")
    (root / ".gitignore").write_text("_build/\n")
    (root / "src" / "rlbook" / "train.py").write_text("LR = 0.1\n")
    (root / "artifacts" / "q-learning" / "agent.json").write_text("{}\n")
    (root / "chapters" / "tiny.md").write_text(TINY_CHAPTER)
    shutil.copy(REPO / "scripts" / "run_chapter.py", root / "scripts")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    monkeypatch.setattr(rlbook.paths, "repo_root", lambda: root)
    return root


def provenance(**kwargs):
    return make_provenance(
        command="run", config={}, budget="full", device="cpu", wall_time_s=1.0, **kwargs
    )


def test_clean_tree_exports_with_its_commit(book_repo):
    head = git(book_repo, "rev-parse", "HEAD").strip()
    assert uncommitted_changes() == []
    assert provenance(require_clean=True)["git_commit"] == head


def test_provenance_records_the_commit_of_the_root_it_is_given(
    book_repo, tmp_path, monkeypatch
):
    """#28: a script passes its own checkout; the book's default is not asked."""
    head = git(book_repo, "rev-parse", "HEAD").strip()
    monkeypatch.setattr(rlbook.paths, "repo_root", lambda: tmp_path / "elsewhere")
    record = provenance(require_clean=True, root=book_repo)
    assert record["git_commit"] == head
    (book_repo / "src" / "rlbook" / "train.py").write_text("LR = 0.2\n")
    with pytest.raises(DirtyTreeError):
        provenance(require_clean=True, root=book_repo)
    assert provenance(root=book_repo)["git_commit"] == head + "+dirty"
    with pytest.raises(TypeError, match="pass root="):
        provenance(git_commit="0" * 40)


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "src" / "rlbook" / "train.py").write_text("LR = 0.2\n"),
        lambda root: (root / "notes.py").write_text("untracked\n"),
        lambda root: (root / "src" / "rlbook" / "train.py").unlink(),
        lambda root: (
            (root / "src" / "rlbook" / "train.py").write_text("LR = 0.3\n"),
            git(root, "add", "-A"),
        ),
    ],
    ids=["modified", "untracked", "deleted", "staged"],
)
def test_dirty_tree_refuses_to_export(book_repo, change):
    change(book_repo)
    with pytest.raises(DirtyTreeError) as caught:
        provenance(require_clean=True)
    message = str(caught.value)
    assert "train.py" in message or "notes.py" in message
    assert "commit or stash, then re-run the full-run command" in message
    assert isinstance(caught.value, CheckpointError)


def test_dirty_tree_error_lists_a_few_paths(book_repo):
    for i in range(8):
        (book_repo / f"extra{i}.py").write_text("")
    with pytest.raises(DirtyTreeError, match=r"8 uncommitted.*extra4\.py and 3 more"):
        require_clean_tree()


def test_changes_under_artifacts_do_not_count(book_repo):
    head = git(book_repo, "rev-parse", "HEAD").strip()
    (book_repo / "artifacts" / "q-learning" / "agent.json").write_text('{"new": 1}\n')
    (book_repo / "artifacts" / "sarsa").mkdir()
    (book_repo / "artifacts" / "sarsa" / "agent.json").write_text("{}\n")
    (book_repo / "_build").mkdir()  # ignored files do not count either
    (book_repo / "_build" / "out.ipynb").write_text("{}")
    assert uncommitted_changes() == []
    assert provenance(require_clean=True)["git_commit"] == head
    assert git_commit() == head  # a second artifact of one run is not "+dirty"


def test_a_declared_commit_that_git_does_not_confirm_is_marked(
    book_repo, monkeypatch
):
    head = provenance()["git_commit"]
    monkeypatch.setenv("RLBOOK_GIT_COMMIT", head)  # confirmed: plain
    assert provenance()["git_commit"] == head
    # a copy whose .git stands at an older commit than the tree it got
    monkeypatch.setenv("RLBOOK_GIT_COMMIT", "0123abc")
    assert provenance()["git_commit"] == "0123abc+declared"


def test_without_require_clean_a_dirty_tree_is_recorded_not_refused(book_repo):
    (book_repo / "src" / "rlbook" / "train.py").write_text("LR = 0.2\n")
    assert provenance()["git_commit"].endswith("+dirty")


def test_outside_a_repository_git_commit_is_unknown_and_export_refused(
    tmp_path, monkeypatch, no_git_redirects
):
    monkeypatch.setattr(rlbook.paths, "repo_root", lambda: tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("RLBOOK_GIT_COMMIT", raising=False)
    assert git_commit() == "unknown"
    with pytest.raises(CheckpointError, match="cannot tell"):
        provenance(require_clean=True)
    # a tree sent without its history names its commit, marked as declared
    monkeypatch.setenv("RLBOOK_GIT_COMMIT", "0123abc")
    assert git_commit() == "0123abc+declared"
    with pytest.raises(CheckpointError, match="cannot tell"):
        provenance(require_clean=True)


def run_chapter(root: Path, export: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RLBOOK_EXPORT_ARTIFACTS"}
    if export:
        env["RLBOOK_EXPORT_ARTIFACTS"] = "1"
    return subprocess.run(
        [sys.executable, "scripts/run_chapter.py", "chapters/tiny.md"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_full_run_refuses_to_start_from_a_dirty_tree(book_repo):
    (book_repo / "src" / "rlbook" / "train.py").write_text("LR = 0.2\n")
    result = run_chapter(book_repo, export=True)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "src/rlbook/train.py" in lines[0] and "commit or stash" in lines[0]
    assert not (book_repo / "_build").exists()  # the chapter never started


@pytest.mark.parametrize(
    "export, change",
    [(True, "artifacts/q-learning/agent.json"), (False, "src/rlbook/train.py")],
    ids=["export-with-only-artifacts-changed", "no-export-with-a-dirty-tree"],
)
def test_run_chapter_starts_when_allowed(book_repo, export, change):
    (book_repo / change).write_text("changed\n")
    result = run_chapter(book_repo, export=export)
    assert result.returncode == 0, result.stderr
    assert (book_repo / "_build" / "run_chapter" / "tiny.ipynb").is_file()


def _here_provenance() -> dict:
    return make_provenance(
        command="x", config={}, budget="ci", device="cpu", wall_time_s=1.0
    )


def test_reproduction_is_expected_on_the_same_kind_of_machine():
    assert reproduction_mismatch(_here_provenance(), torch.device("cpu")) == []


def test_reproduction_is_not_expected_across_versions_devices_and_machines():
    provenance = _here_provenance()
    provenance["device"] = "cuda:0"
    machine = provenance["machine"]
    machine["packages"]["torch"] = "2.11.0+cpu"
    machine["cpu_capability"] = "NO AVX"
    machine["cpu_model"] = "Intel(R) Xeon(R) Platinum 8488C"
    machine["cpu_flags"] = [*machine["cpu_flags"], "amx_bf16"]
    machine["torch_threads"] += 1
    reasons = reproduction_mismatch(provenance, torch.device("cpu"))
    assert any(r.startswith("device cpu, shipped on cuda") for r in reasons)
    assert any("2.11.0+cpu when shipped" in r for r in reasons)
    assert any(r.startswith("cpu capability") for r in reasons)
    assert any("Xeon" in r for r in reasons)
    assert "CPU flags: this machine lacks amx_bf16" in reasons
    assert any(r.startswith("torch threads") for r in reasons)


def test_a_record_without_a_fingerprint_is_not_comparable():
    provenance = _here_provenance()
    del provenance["machine"]
    assert reproduction_mismatch(provenance, torch.device("cpu")) == [NO_FINGERPRINT]


def test_another_cpu_capability_changes_the_fingerprint():
    """ATEN_CPU_CAPABILITY stands in for a CPU whose kernels differ."""
    code = (
        "import json; from rlbook.checkpoint import machine_fingerprint;"
        "print(json.dumps(machine_fingerprint()))"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    there = json.loads(out)
    assert there["cpu_capability"] != machine_fingerprint()["cpu_capability"]


def _weights(value: float) -> dict:
    return {"w": torch.full((2, 2), value), "b": torch.zeros(2)}


def test_a_matching_machine_with_the_same_bits_reproduces():
    sentence = check_reproduction(
        _weights(1.0),
        _weights(1.0),
        _here_provenance(),
        torch.device("cpu"),
        code=["src"],
        command="run",
    )
    assert sentence.startswith("reproduced bit for bit: all 2 arrays are identical")


def test_another_machine_reports_instead_of_failing():
    provenance = _here_provenance()
    provenance["machine"]["cpu_model"] = "Intel(R) Xeon(R) Platinum 8488C"
    sentence = check_reproduction(
        _weights(1.0),
        _weights(2.0),
        provenance,
        torch.device("cpu"),
        code=["src"],
        command="run",
    )
    assert sentence.startswith("not compared bit for bit")
    assert "Xeon" in sentence and "1 of 2 arrays differ" in sentence
    del provenance["machine"]
    sentence = check_reproduction(
        _weights(1.0),
        _weights(1.0),
        provenance,
        torch.device("cpu"),
        code=["src"],
        command="run",
    )
    assert NO_FINGERPRINT in sentence and "identical all the same" in sentence


def test_a_matching_machine_with_other_bits_fails_and_says_why(book_repo):
    """Re-export is advised only when git shows the code changed."""
    provenance = _here_provenance()
    provenance["git_commit"] = git(book_repo, "rev-parse", "HEAD").strip()
    args = (_weights(1.0), _weights(2.0), provenance, torch.device("cpu"))
    with pytest.raises(ReproductionError) as unchanged:
        check_reproduction(*args, code=["src/rlbook"], command="run it")
    assert "has not changed" in str(unchanged.value)
    assert "do not re-export" in str(unchanged.value)
    (book_repo / "src" / "rlbook" / "train.py").write_text("LR = 0.2\n")
    with pytest.raises(ReproductionError) as changed:
        check_reproduction(*args, code=["src/rlbook"], command="run it")
    assert "src/rlbook/train.py" in str(changed.value)
    assert "re-export with `run it`" in str(changed.value)
    provenance["git_commit"] = "0" * 40  # a commit this clone lacks
    with pytest.raises(ReproductionError, match="git cannot tell"):
        check_reproduction(*args, code=["src/rlbook"], command="run it")
