from pathlib import Path

from rlbook.paths import artifacts_dir, data_dir, repo_root


def test_repo_root_holds_the_book():
    root = repo_root()
    assert (root / "_config.yml").is_file() and (root / "_toc.yml").is_file()


def test_artifacts_dir_is_under_root():
    assert artifacts_dir() == repo_root() / "artifacts"


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RLBOOK_DATA", str(tmp_path))
    assert data_dir() == tmp_path.resolve()


def test_data_dir_default(monkeypatch):
    monkeypatch.delenv("RLBOOK_DATA", raising=False)
    assert data_dir() == repo_root() / "data"
    assert isinstance(data_dir(), Path)
