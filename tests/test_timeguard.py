"""The build's time guard (_ext/rlbook_timeguard.py): a slow chapter fails the CI build."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlbook.paths import repo_root

from .scripts import load_script

ROOT = repo_root()
timeguard = load_script("_ext/rlbook_timeguard.py")


def fake_app(tmp_path: Path, chapters: dict[str, tuple[str, float]]) -> SimpleNamespace:
    """A Sphinx app stand-in: docname -> (front matter block, run time)."""
    sources = {}
    metadata = {}
    for name, (front, runtime) in chapters.items():
        path = tmp_path / f"{name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"---\n{front}---\n\n# {name}\n")
        sources[name] = path
        metadata[name] = {"exec_data": {"runtime": runtime, "method": "force"}}
    (tmp_path / "html").mkdir()
    env = SimpleNamespace(nb_metadata=metadata, doc2path=lambda d: str(sources[d]))
    return SimpleNamespace(env=env, outdir=str(tmp_path / "html"))


REFERENCE_SPEED = {
    "cartpole_steps_per_s": timeguard.REFERENCE["cartpole_steps_per_s"],
    "matmul_gflops": timeguard.REFERENCE["matmul_gflops"],
    "cores": timeguard.REFERENCE["cores"],
}


@pytest.fixture
def machine(monkeypatch):
    """This build's machine measurement, as the test sets it (default: the reference)."""
    speed = dict(REFERENCE_SPEED)
    monkeypatch.setattr(timeguard, "measure_machine", lambda: dict(speed))
    monkeypatch.setattr(timeguard, "_measured", {})
    return speed


@pytest.fixture
def warnings(monkeypatch, machine):
    monkeypatch.setenv("CI", "true")
    seen = []
    monkeypatch.setattr(timeguard.logger, "warning", lambda msg, **kw: seen.append(msg))
    monkeypatch.setattr(timeguard.logger, "info", lambda msg, **kw: None)
    return seen


def test_a_chapter_within_its_budget_passes_and_times_are_written(
    tmp_path, monkeypatch, warnings
):
    monkeypatch.setenv("RLBOOK_BUDGET", "ci")
    app = fake_app(tmp_path, {"chapters/a": ("rlbook:\n  ci_seconds: 100\n", 149.0)})
    timeguard.check_times(app, None)
    assert warnings == []
    times = json.loads((tmp_path / "chapter_times.json").read_text())
    assert times["chapters"]["chapters/a"]["seconds"] == 149.0
    assert times["chapters"]["chapters/a"]["ci_seconds"] == 100
    assert times["chapters"]["chapters/a"]["limit_seconds"] == 150.0
    assert times["machine"]["slowdown"] == 1.0


def test_a_chapter_past_one_and_a_half_times_its_budget_is_named(
    tmp_path, monkeypatch, warnings
):
    monkeypatch.setenv("RLBOOK_BUDGET", "ci")
    app = fake_app(tmp_path, {"chapters/slow": ("rlbook:\n  ci_seconds: 100\n", 151.0)})
    timeguard.check_times(app, None)
    assert len(warnings) == 1
    assert "chapters/slow took 151 s" in warnings[0]
    assert "ci_seconds: 100" in warnings[0]


@pytest.mark.parametrize(
    "change, runtime, fails",
    [
        (
            {"cartpole_steps_per_s": REFERENCE_SPEED["cartpole_steps_per_s"] / 2},
            299.0,
            False,
        ),
        (
            {"cartpole_steps_per_s": REFERENCE_SPEED["cartpole_steps_per_s"] / 2},
            301.0,
            True,
        ),
        ({"matmul_gflops": REFERENCE_SPEED["matmul_gflops"] / 3}, 449.0, False),
        ({"cores": 1}, 299.0, False),
        ({"cores": 1}, 301.0, True),
        (
            {"cartpole_steps_per_s": REFERENCE_SPEED["cartpole_steps_per_s"] * 4},
            151.0,
            True,
        ),
    ],
    ids=[
        "half-speed-python",
        "half-speed-too-slow",
        "third-speed-matmul",
        "one-core",
        "one-core-too-slow",
        "a-faster-machine-gets-no-less",
    ],
)
def test_a_slower_machine_gets_proportionally_more_time(
    tmp_path, monkeypatch, warnings, machine, change, runtime, fails
):
    """Measured on an Intel machine of this kind: Python ran at half speed, and
    chapters took up to 2.4x their time here; one core (taskset) halves a
    two-thread chapter's speed. A faster machine is held to the declared limit."""
    monkeypatch.setenv("RLBOOK_BUDGET", "ci")
    machine.update(change)
    app = fake_app(tmp_path, {"chapters/a": ("rlbook:\n  ci_seconds: 100\n", runtime)})
    timeguard.check_times(app, None)
    assert (len(warnings) == 1) == fails, warnings


def test_a_readers_build_reports_but_never_fails(tmp_path, monkeypatch, machine):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("RLBOOK_BUDGET", "ci")
    seen, said = [], []
    monkeypatch.setattr(timeguard.logger, "warning", lambda msg, **kw: seen.append(msg))
    monkeypatch.setattr(timeguard.logger, "info", lambda msg, **kw: said.append(msg))
    app = fake_app(tmp_path, {"chapters/slow": ("rlbook:\n  ci_seconds: 100\n", 900.0)})
    timeguard.check_times(app, None)
    assert seen == []
    assert any(
        "chapters/slow took 900 s" in line and "information only" in line
        for line in said
    )


def test_the_measurement_is_real_and_quick():
    start = time.perf_counter()
    measured = timeguard.measure_machine()
    assert time.perf_counter() - start < 20
    assert measured["cartpole_steps_per_s"] > 1_000
    assert measured["matmul_gflops"] > 0.5
    assert measured["cores"] >= 1


def test_a_chapter_without_a_budget_is_named(tmp_path, monkeypatch, warnings):
    monkeypatch.setenv("RLBOOK_BUDGET", "ci")
    app = fake_app(tmp_path, {"chapters/b": ("kernelspec:\n  name: python3\n", 1.0)})
    timeguard.check_times(app, None)
    assert len(warnings) == 1 and "declares no CI execution budget" in warnings[0]


def test_other_budgets_are_not_held_to_the_ci_budget(tmp_path, monkeypatch, warnings):
    monkeypatch.setenv("RLBOOK_BUDGET", "full")
    app = fake_app(tmp_path, {"chapters/a": ("rlbook:\n  ci_seconds: 1\n", 900.0)})
    timeguard.check_times(app, None)
    assert warnings == []


def test_every_notebook_chapter_declares_its_budget_and_figures():
    toc = (ROOT / "_toc.yml").read_text()
    for path in sorted((ROOT / "chapters").glob("*.md")):
        if "jupytext:" not in path.read_text() or path.stem not in toc:
            continue
        block = timeguard.declared(path)
        assert isinstance(block.get("ci_seconds"), int) and block["ci_seconds"] > 0, (
            path.name
        )
        for key in ("figures", "animations"):
            assert isinstance(block.get(key), int) and block[key] >= 0, (path.name, key)


def test_the_book_loads_the_guard():
    config = (ROOT / "_config.yml").read_text()
    assert "rlbook_timeguard: _ext" in config
