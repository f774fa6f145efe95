"""``benchmarks/projects_gpu.py``: the four projects' modes on one device (the
GPU table); here on the CPU at the smoke budget, and its shipped table."""

import copy
import json
import os
import subprocess
import sys

import pytest

from .scripts import ROOT, load_script

sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports harness
gpu = load_script("benchmarks/projects_gpu.py")


@pytest.fixture(scope="module")
def smoke_record(tmp_path_factory) -> dict:
    folder = ROOT.parent / "shared" / "data"
    if not folder.is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must have ../shared/data")
        pytest.skip("no ../shared/data beside the repository")
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    env = {
        **os.environ,
        "RLBOOK_DATA": str(folder),
        "OMP_NUM_THREADS": "1",
        "TORCHINDUCTOR_COMPILE_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks")]),
    }
    command = [sys.executable, str(ROOT / "benchmarks" / "projects_gpu.py")]
    args = ["--device", "cpu", "--budget", "smoke", "--projects", "vae"]
    subprocess.run([*command, *args, "--out", str(out)], env=env, check=True)
    return json.loads(out.read_text())


def test_smoke_run_writes_every_section_with_intervals(smoke_record) -> None:
    record = smoke_record
    assert record["budget"] == "smoke" and record["torch"] and record["device"]
    vae = record["projects"]["vae"]
    assert set(vae) == {"train", "infer batch 1", "infer batch 64", "wall_s"}
    assert list(vae["train"]["modes"]) == [
        "eager fp32",
        "torch.compile",
        "bf16 autocast",
    ]
    assert list(vae["infer batch 1"]["modes"]) == ["eager", "torch.compile"]
    for section in ("train", "infer batch 1", "infer batch 64"):
        for r in vae[section]["modes"].values():
            assert len(r["samples_s"]) >= 2 and r["compile_s"] > 0
            assert r["same_computation"]["passed"]
            assert r["ratio"]["low"] <= r["ratio"]["ratio"] <= r["ratio"]["high"]
            assert r["peak_mb"] is None  # CPU: no CUDA allocator to read
    gpu.validate(record)


def test_validate_fails_without_a_ratio_interval(smoke_record) -> None:
    record = copy.deepcopy(smoke_record)
    del record["projects"]["vae"]["train"]["modes"]["bf16 autocast"]["ratio"]["low"]
    with pytest.raises(ValueError, match="no ratio interval"):
        gpu.validate(record)


def test_the_shipped_gpu_table_has_intervals() -> None:
    path = ROOT / "artifacts" / "projects" / "gpu.json"
    if not path.is_file():
        pytest.skip("no GPU table shipped")
    gpu.validate(json.loads(path.read_text()))


def test_staged_data_stays_small(tmp_path, monkeypatch) -> None:
    folder = ROOT.parent / "shared" / "data"
    if not folder.is_dir():
        pytest.skip("no ../shared/data beside the repository")
    monkeypatch.setenv("RLBOOK_DATA", str(folder))
    assert gpu.stage_data(tmp_path / "data") < 12e6  # what the GPU run carries


def test_the_pages_gpu_summary_reads_the_table_or_says_none(smoke_record, tmp_path):
    from rlbook.projects.deploy import gpu_summary

    assert gpu_summary("vae", tmp_path / "absent.json") == (
        None,
        "GPU figures are not measured.",
    )
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(smoke_record))
    table, sentence = gpu_summary("vae", path)
    speed, checks, units = table.split("\n\n")
    for part in (speed, checks):  # header, rule, 3 train + 2x2 infer modes
        assert part.count("\n") == 1 + 3 + 2 + 2
        assert all(row.count("|") == 6 for row in part.splitlines())  # 5 columns
    assert units.startswith("Times are medians per sample: train, ")
    assert "torch.compile" in sentence and "95%" not in sentence
    assert gpu_summary("resnet", path)[0] is None  # not measured in that run


def test_a_failing_mode_records_its_error_and_the_others_are_timed() -> None:
    import torch

    def broken():
        raise RuntimeError("no kernel for this mode")

    out = lambda: torch.ones(2)  # noqa: E731
    runners = {
        "eager": gpu.Runner(lambda: None, out),
        "broken": gpu.Runner(broken, out),
        "other": gpu.Runner(lambda: None, out),
    }
    settings = {**gpu.BUDGETS["smoke"], "reps": 3, "min_reps": 3}
    result = gpu.time_modes(runners, {}, torch.device("cpu"), settings)
    assert "no kernel" in result["modes"]["broken"]["error"]
    assert len(result["modes"]["other"]["samples_s"]) == 3
    gpu.validate({"projects": {"p": {"train": result}}})
