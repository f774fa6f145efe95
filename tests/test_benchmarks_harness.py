"""The benchmark harness: export, load, the C++ runner, timing, memory, tables, skeleton.

One tiny model with three inputs of different dtypes (float32 features, int64
tokens, uint8 pixels) and two outputs is exported once and the C++ runner built
once per session (module-scoped fixtures, about a minute of compiling on a
busy two-core machine); every other test reuses them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks import harness
from benchmarks.harness import (
    DeployError,
    build_cpp_runner,
    build_inputs,
    export_aoti,
    input_spec,
    load_aoti,
    time_cpp,
    write_comparison,
)
from rlbook.projects.deploy import (
    ComparisonRecord,
    comparison_path,
    load_comparison,
)

EXAMPLE_BATCH = 4
LATENCY_KEYS = ("median_ms", "mean_ms", "p10_ms", "p90_ms", "min_ms", "max_ms")


class TinyNet(nn.Module):
    """Features ``(B, 8)`` float32, tokens ``(B, 6)`` int64 and pixels ``(B, 4)``
    uint8 to logits ``(B, 3)`` and a code ``(B, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.head = nn.Linear(20, 3)
        self.dropout = nn.Dropout(0.5)  # so that eval mode matters

    def forward(
        self, features: torch.Tensor, tokens: torch.Tensor, pixels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.embed(tokens).mean(dim=1)
        joined = torch.cat([features, code, pixels.float() / 255], dim=1)
        return self.head(self.dropout(joined)).relu(), code


def tiny_inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 8, generator=generator),
        torch.randint(0, 50, (batch, 6), generator=generator),
        torch.randint(0, 256, (batch, 4), generator=generator, dtype=torch.uint8),
    )


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send this process's file descriptor 2 (C++ and subprocesses too) to ``path``."""
    saved = os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@pytest.fixture(scope="module")
def model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture(scope="module")
def exported(
    model: TinyNet, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, list[str]]:
    """The package, what the export wrote to stderr, and the warnings it let out."""
    folder = tmp_path_factory.mktemp("package")
    model.train()
    with warnings.catch_warnings(record=True) as caught, stderr_to(folder / "err"):
        warnings.simplefilter("always")
        path = export_aoti(model, tiny_inputs(EXAMPLE_BATCH), folder / "tiny.pt2")
    assert model.training, "export_aoti left the model in eval mode"
    model.eval()
    return path, (folder / "err").read_text(), [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def package(exported: tuple[Path, str, list[str]]) -> Path:
    return exported[0]


@pytest.fixture(scope="module")
def runner(cpp_program) -> Path:
    return cpp_program("aoti_infer")


@pytest.fixture(scope="module")
def compiled(package: Path) -> Iterator[harness.AOTIModel]:
    saved = os.environ.pop(harness.CHECK_INPUTS_ENV, None)  # the model must set it
    try:
        yield load_aoti(package)
    finally:
        os.environ.pop(harness.CHECK_INPUTS_ENV, None)
        if saved is not None:
            os.environ[harness.CHECK_INPUTS_ENV] = saved


def eager(
    model: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        return tuple(model.eval()(*inputs))


def run_runner(runner: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(runner), *map(str, args)], capture_output=True, text=True, check=False
    )


# ---------------------------------------------------------------- the runner's inputs


def test_input_specs_name_dtype_shape_and_the_largest_integer() -> None:
    features, tokens, pixels = tiny_inputs(4)
    assert input_spec(features) == "float32:4x8"
    assert input_spec(tokens) == f"int64:4x6:{int(tokens.max())}"
    assert input_spec(pixels) == f"uint8:4x4:{int(pixels.max())}"
    assert input_spec(torch.zeros(3, dtype=torch.int64)) == "int64:3:1"  # at least 1
    with pytest.raises(DeployError, match="cannot build inputs of dtype"):
        input_spec(torch.zeros(2, dtype=torch.complex64))


def test_built_inputs_follow_the_documented_formula() -> None:
    # (i % 256) / 256 for floating point, MAX - i % MAX for integers: the
    # formula deploy/cpp/aoti_infer.cpp's header states.
    floats, ints, flags, bare = build_inputs(
        ["float64:2x150", "int64:2x3:4", "bool:3", "uint8:2"]
    )
    assert floats.dtype == torch.float64 and floats.shape == (2, 150)
    assert floats.flatten()[[0, 1, 255, 256, 299]].tolist() == [
        0.0,
        1 / 256,
        255 / 256,
        0.0,
        43 / 256,
    ]
    assert ints.tolist() == [[4, 3, 2], [1, 4, 3]]
    assert flags.tolist() == [True, True, True]
    assert bare.dtype == torch.uint8 and bare.tolist() == [1, 1]


def test_built_integers_stay_within_the_real_inputs_range() -> None:
    tokens = torch.tensor([[7, 3, 0], [2, 9, 1]])
    built = build_inputs([input_spec(tokens)])[0]
    assert int(built.min()) >= 1 and int(built.max()) == 9


@pytest.mark.parametrize(
    "spec",
    [
        "float32",
        "float32:",  # 0-d: a package's every input has a batch dimension
        "float32:2x3:5",
        "int64:2x3:0",
        "int64:2xq",
        "complex64:2",
        "int8:2:3:4",
    ],
)
def test_bad_input_specs_are_refused(spec: str) -> None:
    with pytest.raises(DeployError, match="bad input spec"):
        build_inputs([spec])


# ---------------------------------------------------------------- export and Python


def test_export_is_quiet(exported: tuple[Path, str, list[str]]) -> None:
    # A notebook cell that writes to stderr or shows a warning fails the book's build.
    _, stderr, shown = exported
    assert stderr == ""
    assert shown == []


@pytest.mark.parametrize("batch", [1, 5])
def test_python_package_matches_eager(
    compiled: harness.AOTIModel, model: TinyNet, batch: int
) -> None:
    inputs = tiny_inputs(batch, seed=batch)
    got = compiled(*inputs)
    torch.testing.assert_close(tuple(got), eager(model, inputs))


def test_package_records_its_signature(compiled: harness.AOTIModel) -> None:
    assert compiled.signature == "float32[batch,8] int64[batch,6] uint8[batch,4]"
    assert compiled.metadata["rlbook.max_batch"] == "1024"
    assert compiled.metadata["rlbook.model"] == "TinyNet"


def test_python_package_rejects_wrong_inputs(compiled: harness.AOTIModel) -> None:
    features, tokens, pixels = tiny_inputs(2)
    with pytest.raises(DeployError, match=r"float64\[2, 8\].*takes float32\[batch,8\]"):
        compiled(features.double(), tokens, pixels)
    with pytest.raises(DeployError, match="rejected its inputs"):
        compiled(features[:, :5], tokens, pixels)


def test_missing_or_corrupt_package_is_a_clear_error_in_python(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="does not exist; export it"):
        load_aoti(tmp_path / "missing.pt2")
    (tmp_path / "bad.pt2").write_bytes(b"PK not really a zip")
    with pytest.raises(DeployError, match=r"not a \.pt2 archive"):
        load_aoti(tmp_path / "bad.pt2")


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # a branch on values: torch.export cannot trace it
            return x
        return -x


def test_export_failure_names_the_model(tmp_path: Path) -> None:
    model = DataDependent().train()
    with pytest.raises(DeployError, match="could not trace DataDependent"):
        export_aoti(model, (torch.randn(3, 2),), tmp_path / "m.pt2")
    assert model.training
    assert not (tmp_path / "m.pt2").exists()


def test_export_checks_the_batch_before_tracing(tmp_path: Path) -> None:
    model = TinyNet()
    with pytest.raises(DeployError, match="example batch of TinyNet is 1"):
        export_aoti(model, tiny_inputs(1), tmp_path / "m.pt2")
    features, tokens, pixels = tiny_inputs(3)
    with pytest.raises(DeployError, match=r"disagree.*\[3, 2, 3\]"):
        export_aoti(model, (features, tokens[:2], pixels), tmp_path / "m.pt2")


# ---------------------------------------------------------------- the C++ runner


TINY_SPECS = ["float32:3x8", "int64:3x6:49", "uint8:3x4:255"]
ECHO_SPECS = [
    "float32:2x300",  # past one period of 256
    "float64:2x3",
    "bfloat16:2x3",
    "float16:2x3",
    "int32:2x4:1000",
    "int8:2x3:100",
    "uint8:2x300:255",
    "bool:2x2",
]


class Echo(nn.Module):
    """Copies of its eight inputs (torch.export wants them named): run by the
    C++ runner, the inputs it built."""

    def forward(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        c: torch.Tensor,
        d: torch.Tensor,
        e: torch.Tensor,
        f: torch.Tensor,
        g: torch.Tensor,
        h: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        return tuple(x.clone() for x in (a, b, c, d, e, f, g, h))


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Echo, taking one input of every dtype the runner builds, exported."""
    folder = tmp_path_factory.mktemp("echo")
    return export_aoti(Echo(), tuple(build_inputs(ECHO_SPECS)), folder / "echo.pt2")


def test_cpp_builds_exactly_the_inputs_python_builds(runner: Path, echo: Path) -> None:
    specs = [spec.replace("2x", "3x", 1) for spec in ECHO_SPECS]
    report = time_cpp(runner, echo, specs, iters=1, warmup=0)
    built = build_inputs(specs)
    assert [t.dtype for t in report["outputs"]] == [t.dtype for t in built]
    for got, want in zip(report["outputs"], built, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("batch", [1, 5])
def test_cpp_outputs_match_the_package_in_python_and_eager(
    runner: Path, package: Path, model: TinyNet, batch: int
) -> None:
    inputs = tiny_inputs(batch, seed=10 + batch)
    report = time_cpp(runner, package, inputs, iters=2, warmup=1)  # checks itself
    assert report["max_abs_diff"] < 1e-5
    assert report["inputs"] == [input_spec(t) for t in inputs]
    # The runner built what build_inputs builds: its outputs are eager's on them.
    expected = eager(model, tuple(build_inputs(report["inputs"])))
    assert [t.shape for t in report["outputs"]] == [t.shape for t in expected]
    for got, want in zip(report["outputs"], expected, strict=True):
        torch.testing.assert_close(got, want)


def test_cpp_check_fails_when_the_outputs_differ_from_pythons(
    runner: Path, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = harness.build_inputs

    def shifted(specs: list[str]) -> list[torch.Tensor]:
        features, *rest = built(specs)
        return [features + 0.5, *rest]

    monkeypatch.setattr(harness, "build_inputs", shifted)
    with pytest.raises(DeployError, match=r"output 0 of the C\+\+ runner differs"):
        time_cpp(runner, package, TINY_SPECS, iters=1, warmup=0)


def test_cpp_report_has_the_promised_fields(runner: Path, package: Path) -> None:
    scratch = set(Path(tempfile.gettempdir()).glob("rlbook-aoti-*"))
    report = time_cpp(
        runner, package, tiny_inputs(5), iters=7, warmup=2, threads=3, check=False
    )
    assert set(Path(tempfile.gettempdir()).glob("rlbook-aoti-*")) == scratch
    for key in LATENCY_KEYS:
        assert isinstance(report[key], float) and report[key] > 0
    assert report["iters"] == 7 and report["warmup"] == 2
    assert report["threads"] == 3  # not the default: 1 or the 2 cores
    assert report["batch_size"] == 5
    assert report["check_inputs"] is True
    assert report["output_shapes"] == [[5, 3], [5, 8]]
    assert report["output_dtypes"] == ["float32", "float32"]
    assert report["model"] == "TinyNet"
    assert report["device"] == "cpu"
    assert report["torch"] == torch.__version__.split("+")[0]
    assert report["compiler"] and report["load_ms"] > 0
    assert 10 < report["peak_memory_mb"] < 2000  # libtorch alone is tens of MiB
    stats = [report[k] for k in ("min_ms", "p10_ms", "median_ms", "p90_ms", "max_ms")]
    assert stats == sorted(stats)


def test_cpp_outputs_file_is_a_plain_torch_load(
    runner: Path, package: Path, tmp_path: Path
) -> None:
    out = tmp_path / "outputs.pt"
    args = [f"--input={spec}" for spec in TINY_SPECS]  # not the runner's form
    assert run_runner(runner, package, *args).returncode == 2
    args = [word for spec in TINY_SPECS for word in ("--input", spec)]
    result = run_runner(runner, package, *args, "--iters", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    outputs = torch.load(out, weights_only=True)
    assert [t.shape for t in outputs] == [(3, 3), (3, 8)]


@pytest.mark.parametrize("check_inputs", [True, False])
def test_both_sides_check_inputs_alike(
    runner: Path, package: Path, check_inputs: bool
) -> None:
    # A batch above the package's bound of 1024 runs unchecked, and is refused
    # with the checks on, in C++ and in Python alike.
    over = [spec.replace("3x", "1025x") for spec in TINY_SPECS]
    if check_inputs:
        with pytest.raises(DeployError, match="expected to be <= 1024, but got: 1025"):
            time_cpp(runner, package, over, iters=1, check=False)
        with pytest.raises(DeployError, match="rejected its inputs"):
            harness.package_outputs(package, over, check_inputs=True)
    else:
        report = time_cpp(runner, package, over, iters=1, check_inputs=False)
        assert report["check_inputs"] is False
        assert report["output_shapes"] == [[1025, 3], [1025, 8]]
        assert report["max_abs_diff"] < 1e-5


def test_cpp_runner_with_checks_rejects_inputs_the_package_does_not_take(
    runner: Path, package: Path
) -> None:
    wrong_dtype = ["float32:2x8", "int32:2x6:49", "uint8:2x4:255"]
    with pytest.raises(
        DeployError, match=r"exit 1.*input_handles\[1\]: unmatched dtype"
    ):
        time_cpp(runner, package, wrong_dtype, iters=1, check=False)
    with pytest.raises(DeployError, match=r"exit 2.*package takes 3 inputs"):
        time_cpp(runner, package, TINY_SPECS[:2], iters=1, check=False)


def test_missing_or_corrupt_package_is_a_clear_error_in_cpp(
    runner: Path, tmp_path: Path
) -> None:
    args = [word for spec in TINY_SPECS for word in ("--input", spec)]
    result = run_runner(runner, tmp_path / "missing.pt2", *args)
    assert result.returncode == 1
    assert "missing.pt2' does not exist; export it" in result.stderr
    with pytest.raises(DeployError, match=r"failed \(exit 1\).*does not exist"):
        time_cpp(runner, tmp_path / "missing.pt2", tiny_inputs(2), iters=1)
    (tmp_path / "bad.pt2").write_bytes(b"garbage")
    result = run_runner(runner, tmp_path / "bad.pt2", *args)
    assert result.returncode == 1
    assert "cannot load package" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "float32:2x8", "--iters", "0"], "--iters needs an integer >= 1"),
        (["--iters", "3"], "no --input"),
        (["--input", "float32:2xq"], "needs an integer >= 0, got 'q'"),
        (["--input", "float32:2x8:5"], "is not DTYPE:SHAPE"),
        (["--input", "float32:"], "is not DTYPE:SHAPE"),
        (["--input", "complex64:2"], "is not DTYPE:SHAPE"),
        (["--input", "int64:2:0"], "MAX in int64:2:0 needs an integer >= 1"),
        (
            ["--input", "float32:2", "--check-inputs", "2"],
            "--check-inputs needs 0 or 1",
        ),
        (["--input", "float32:2", "--bogus", "1"], "unknown option --bogus"),
        (["--input"], "--input needs a value"),
    ],
)
def test_cpp_runner_rejects_bad_arguments(
    runner: Path, package: Path, args: list[str], message: str
) -> None:
    result = run_runner(runner, package, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage: aoti_infer" in result.stderr
    assert result.stdout == ""


def test_cpp_runner_needs_one_package(runner: Path, package: Path) -> None:
    result = run_runner(runner, "--input", "float32:2")
    assert result.returncode == 2 and "expected one PACKAGE.pt2" in result.stderr
    result = run_runner(runner, package, package, "--input", "float32:2")
    assert result.returncode == 2 and "expected one PACKAGE.pt2" in result.stderr


def test_up_to_date_runner_is_not_rebuilt(runner: Path) -> None:
    before = runner.stat().st_mtime_ns
    start = time.perf_counter()
    assert build_cpp_runner(runner.parent) == runner
    assert time.perf_counter() - start < 5
    assert runner.stat().st_mtime_ns == before


def test_build_flags_match_the_wheel() -> None:
    flags = harness.cpp_build_flags()
    assert f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}" in flags
    lib = Path(torch.__file__).resolve().parent / "lib"
    assert f"-Wl,-rpath,{lib}" in flags


def test_build_without_a_compiler_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        DeployError, match=r"'no-such-c\+\+' \(asked for\) was not found"
    ):
        build_cpp_runner(tmp_path, compiler="no-such-c++")
    monkeypatch.setenv("CXX", "/nowhere/g++")
    with pytest.raises(DeployError, match=r"named by \$CXX.*set CXX"):
        build_cpp_runner(tmp_path)
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", str(tmp_path))  # no c++, g++ or clang++ on it
    with pytest.raises(DeployError, match=r"no C\+\+ compiler found"):
        build_cpp_runner(tmp_path)


def test_failed_build_quotes_the_compiler(tmp_path: Path) -> None:
    fake = tmp_path / "fake-c++"
    fake.write_text("#!/bin/sh\necho 'aoti_infer.cpp:1: error: made up' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(DeployError, match=r"(?s)failed \(exit 1\).*error: made up"):
        build_cpp_runner(tmp_path / "bin", compiler=str(fake))
    assert not (tmp_path / "bin" / "aoti_infer").exists()


# ---------------------------------------------------------------- comparison tables


def test_write_comparison_writes_the_promised_fields(tmp_path: Path) -> None:
    versions = harness.software_versions()
    records = [
        ComparisonRecord(
            mode="eager",
            time=1.25,
            time_unit="ms/call",
            throughput=800.0,
            peak_memory_mb=310.5,
            device="cpu (1 thread)",
            versions=versions,
            data={"batch": 1},
        ),
        ComparisonRecord(
            mode="aoti-cpp", time=0.5, time_unit="ms/call", data={"batch": 1}
        ),
    ]
    path = write_comparison(
        tmp_path / "projects" / "tiny" / "comparison.json", records, {"budget": "ci"}
    )
    text = path.read_text()
    payload = json.loads(text)
    # Compact, as all shipped JSON (the tracked tree has little room left).
    assert text == json.dumps(payload, separators=(",", ":"), sort_keys=True)
    assert payload["meta"] == {"budget": "ci"}
    assert [r["mode"] for r in payload["records"]] == ["eager", "aoti-cpp"]
    fields = {
        "mode", "time", "time_unit", "throughput", "peak_memory_mb", "quality",
        "quality_name", "device", "versions", "data", "notes", "cpu",
        "repetitions",
    }  # fmt: skip
    assert set(payload["records"][0]) == fields
    assert set(payload["records"][0]["versions"]) == {"torch", "python", "compiler"}
    assert load_comparison(path) == (records, {"budget": "ci"})


def test_write_comparison_refuses_duplicates_and_nan(tmp_path: Path) -> None:
    row = ComparisonRecord(mode="eager", time=1.0, time_unit="s/epoch")
    with pytest.raises(ValueError, match="same mode"):
        write_comparison(tmp_path / "c.json", [row, row], {})
    with pytest.raises(ValueError, match="NaN or infinity"):
        write_comparison(tmp_path / "c.json", [row], {"score": float("nan")})
    assert not (tmp_path / "c.json").exists()


def _timed_row(mode: str, ratio: float) -> ComparisonRecord:
    interval = {"ratio": ratio, "low": ratio - 0.1, "high": ratio + 0.1}
    return ComparisonRecord(
        mode=mode,
        time=1.0,
        time_unit="s",
        repetitions={"ratio": interval | {"to": "eager", "clock": "cpu"}},
    )


def test_a_rerun_keeps_the_previous_runs_ratios_one_level_deep(
    tmp_path: Path,
) -> None:
    path = tmp_path / "comparison.json"
    meta = {"budget": "full", "git_commit": "aaa", "date": "d1", "threads": 1}
    write_comparison(path, [_timed_row("train: compiled", 0.8)], meta)
    assert "previous_run" not in json.loads(path.read_text())
    write_comparison(
        path, [_timed_row("train: compiled", 0.7)], meta | {"git_commit": "bbb"}
    )
    payload = json.loads(path.read_text())
    first = payload["previous_run"]
    assert first["meta"]["git_commit"] == "aaa" and "threads" not in first["meta"]
    assert first["ratios"] == {
        "train: compiled": {
            "ratio": 0.8, "low": 0.8 - 0.1, "high": 0.8 + 0.1,
            "clock": "cpu", "method": None,
        }
    }  # fmt: skip
    write_comparison(
        path, [_timed_row("train: compiled", 0.6)], meta | {"git_commit": "ccc"}
    )
    payload = json.loads(path.read_text())
    assert payload["previous_run"]["meta"]["git_commit"] == "bbb"
    assert payload["previous_run"]["ratios"]["train: compiled"]["ratio"] == 0.7
    assert set(payload["previous_run"]) == {"meta", "ratios"}  # no older runs
    # A run at another budget is no rerun of this one.
    write_comparison(path, [_timed_row("train: compiled", 0.6)], {"budget": "smoke"})
    assert "previous_run" not in json.loads(path.read_text())


def test_a_convolution_exported_with_a_large_example_batch_takes_every_batch(
    tmp_path: Path,
) -> None:
    # Traced with a batch of 2, torch 2.13's Inductor specialises CPU
    # convolutions to batches below 16; the ResNet benchmark exports with 64.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    package = harness.export_aoti(
        model, (torch.randn(64, 3, 8, 8),), tmp_path / "conv.pt2", max_batch=256
    )
    compiled = harness.load_aoti(package, check_inputs=True)
    for batch in (1, 15, 16, 256):
        x = torch.randn(batch, 3, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), model(x))


def test_benchmark_meta_records_how_the_table_was_made() -> None:
    meta = harness.benchmark_meta("python benchmarks/x.py", "full", 3)
    assert meta["command"] == "python benchmarks/x.py" and meta["threads"] == 3
    assert meta["git_commit"] and len(meta["load_average_at_end"]) == 3
    json.dumps(meta)


@pytest.mark.parametrize("project", ["dqn", "resnet", "sentiment", "vae"])
def test_shipped_tables_are_written_back_byte_for_byte(
    project: str, tmp_path: Path
) -> None:
    # The writer and the chapters' reader agree on the format the book ships,
    # and a benchmark rewriting its table keeps another one's record in it
    # (the DQN's "cpp_training").
    shipped = comparison_path(project)
    records, meta = load_comparison(shipped)
    path = tmp_path / "comparison.json"
    stale = {**json.loads(shipped.read_text()), "meta": {}, "records": []}
    path.write_text(json.dumps(stale))
    assert write_comparison(path, records, meta) == path
    assert path.read_bytes() == shipped.read_bytes()


def test_parse_args_gives_every_script_the_same_options_and_smoke_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.argv", ["x.py", "--threads", "2", "--steps", "9"])
    args = harness.parse_args("Doc.\n", {"steps": 6, "iters": 20}, {"steps": 1})
    assert (args.budget, args.threads, args.steps, args.iters) == ("full", 2, 9, 20)
    assert not args.no_write
    assert args.out is None
    monkeypatch.setattr("sys.argv", ["x.py", "--budget", "smoke", "--no-write"])
    args = harness.parse_args("Doc.\n", {"steps": 6, "iters": 20}, {"steps": 1})
    assert (args.steps, args.iters, args.no_write) == (1, 20, True)


def test_bench_never_writes_the_table_at_smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "comparison.json"
    monkeypatch.setattr(harness, "comparison_path", lambda project: written)
    for budget, no_write in (("smoke", False), ("full", True)):
        args = argparse.Namespace(budget=budget, threads=1, no_write=no_write)
        with harness.Bench("tiny", "tiny_modes.py", args) as bench:
            bench.add("x s", mode="x", time=1.0, time_unit="s")
            bench.finish()
        assert json.loads(capsys.readouterr().out)["figures"] == {"x s": 1.0}
    assert not written.exists()
    scratch = tmp_path / "scratch.json"
    args = argparse.Namespace(budget="smoke", threads=1, no_write=False, out=scratch)
    with harness.Bench("tiny", "tiny_modes.py", args) as bench:
        bench.add("x s", mode="x", time=1.0, time_unit="s")
        bench.finish()
    assert load_comparison(scratch)[1]["budget"] == "smoke"  # --out: any budget
    assert not written.exists()


# ---------------------------------------------------------------- interleaved modes


def _burn(cpu_seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < cpu_seconds:
        pass


class FakeRunner:
    """A mode for :func:`harness.interleave`: ``slow`` burns twice the CPU,
    ``off`` computes outputs 1.0 away, ``big`` touches 60 MiB while timed;
    every mode held 150 MiB once while it was built."""

    def __init__(self, mode: str, work: float) -> None:
        block = np.ones(150 * 2**20, dtype=np.uint8)  # a high-water mark
        del block
        self.mode, self.work = mode, work

    def outputs(self) -> torch.Tensor:
        return torch.tensor([1.0, 2.0]) + (1.0 if self.mode == "off" else 0.0)

    def step(self) -> dict:
        if self.mode == "big":
            block = np.ones(60 * 2**20, dtype=np.uint8)
            del block
        _burn(self.work * (2 if self.mode == "slow" else 1))
        return {"pid": os.getpid()}


def fake_mode(mode: str, work: float) -> FakeRunner:
    return FakeRunner(mode, work)


FAKE = "tests.test_benchmarks_harness:fake_mode"


def test_interleave_alternates_modes_each_in_a_process_of_its_own() -> None:
    modes = ("eager", "slow", "off")
    results = harness.interleave(
        FAKE,
        modes,
        (0.01,),
        reps=3,
        warmup=2,
        threads=1,
        tolerances={mode: (0.0, 0.0) for mode in modes},
    )
    orders = {mode: [s["order"] for s in results[mode]["samples"]] for mode in modes}
    assert orders == {"eager": [0, 3, 6], "slow": [1, 4, 7], "off": [2, 5, 8]}
    pids = {mode: {s["pid"] for s in results[mode]["samples"]} for mode in modes}
    assert all(len(p) == 1 for p in pids.values())  # one process a mode...
    assert len(set.union(*pids.values()) | {os.getpid()}) == 4  # ...its own
    for mode in modes:
        for call in ("check_call", "first_call"):
            assert results[mode][call]["cpu_s"] > 0 < results[mode][call]["wall_s"]
        assert results[mode]["warmup"] == 2
        assert all(s["cpu_s"] > 0 for s in results[mode]["samples"])


def test_interleave_checks_outputs_and_gives_ratios_with_intervals() -> None:
    modes = ("eager", "slow", "off")
    tolerances = {"eager": (0.0, 0.0), "slow": (0.0, 0.0), "off": (0.5, 0.0)}
    results = harness.interleave(
        FAKE, modes, (0.05,), reps=5, warmup=1, threads=1, tolerances=tolerances
    )
    check = results["off"]["same_computation"]
    assert check == {"max_abs_diff": 1.0, "atol": 0.5, "rtol": 0.0, "passed": False}
    assert results["slow"]["same_computation"]["passed"]
    ratio = results["slow"]["ratio"]
    assert ratio["to"] == "eager" and ratio["clock"] == "cpu" and ratio["n"] == 5
    assert 1.5 < ratio["low"] <= ratio["ratio"] <= ratio["high"] < 2.6


def test_interleave_peak_memory_is_the_timed_regions_above_the_baseline() -> None:
    results = harness.interleave(
        FAKE,
        ("eager", "big"),
        (0.001,),
        reps=2,
        warmup=1,
        threads=1,
        tolerances={"eager": (0.0, 0.0), "big": (0.0, 0.0)},
    )
    memory = results["big"]["memory"]
    assert memory["method"] == harness.MEMORY_METHOD
    assert memory["baseline_mb"] > 20  # the interpreter and torch
    # 60 MiB touched while timed; not the 150 MiB held while building.
    assert 50 < memory["peak_above_baseline_mb"] < 100
    assert results["eager"]["memory"]["peak_above_baseline_mb"] < 20


class OwnReferenceRunner:
    """A local mode, as the C++ runner is: its outputs are 1.0 away from the
    fake modes', on inputs of its own, and its ``reference()`` is theirs."""

    def outputs(self) -> torch.Tensor:
        return torch.tensor([2.0, 3.0])

    def reference(self) -> torch.Tensor:
        return torch.tensor([2.0, 3.0])

    def step(self) -> dict:
        return {"wall_s": 0.01, "cpu_s": None}

    def memory(self) -> dict:
        return {"baseline_mb": None, "peak_above_baseline_mb": None}


def test_interleave_checks_a_local_mode_against_its_own_reference() -> None:
    results = harness.interleave(
        FAKE,
        ("eager",),
        (0.001,),
        reps=2,
        warmup=1,
        threads=1,
        tolerances={"eager": (0.0, 0.0), "cpp": (0.0, 0.0)},
        local={"cpp": OwnReferenceRunner()},
    )
    check = results["cpp"]["same_computation"]
    assert check["passed"] and check["max_abs_diff"] == 0.0
    assert check["against"].startswith("the same package in Python")
    assert "against" not in results["eager"]["same_computation"]
    assert results["cpp"]["ratio"]["clock"] == "wall"


class CompiledRunner:
    """A compiled mode for :func:`harness.interleave`: a small network
    compiled with ``torch.compile(module)`` (``"compiled"``) or with
    ``module.compile()`` (``"module.compile"``), which in torch 2.13 compiles
    nothing; either way the runner says it compiles."""

    def __init__(self, mode: str) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.x = torch.ones(2, 4)
        self.compiled = None
        if mode != "eager":
            self.compiled = {"what": mode, **harness.explain(self.net, self.x)}
            if mode == "compiled":
                self.net = torch.compile(self.net, fullgraph=True)
            else:
                self.net.compile()  # as the VAE did; with fullgraph=True it raises

    def outputs(self) -> torch.Tensor:
        with torch.no_grad():
            return self.net(self.x)

    def step(self) -> None:
        self.net(self.x).sum().backward()


def compiled_mode(mode: str) -> CompiledRunner:
    return CompiledRunner(mode)


def test_interleave_records_what_compiled_and_refuses_a_mode_that_compiled_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The VAE's table once showed no compile cost: module.compile() had
    # compiled nothing, and its "torch.compile" row timed eager code.
    monkeypatch.setenv(harness.INDUCTOR_CACHE_ENV, str(tmp_path / "cache"))
    target = "tests.test_benchmarks_harness:compiled_mode"
    tolerances = {"eager": (0.0, 0.0), "compiled": (1e-5, 1e-5)}
    results = harness.interleave(
        target,
        ("eager", "compiled"),
        (),
        reps=2,
        warmup=1,
        threads=1,
        tolerances=tolerances,
    )
    assert "compiled" not in results["eager"]
    compiled = results["compiled"]["compiled"]
    assert compiled["graphs"] == 1 and compiled["graph_breaks"] == 0
    assert compiled["graphs_compiled"] >= 1
    # The first calls again in a fresh process find the cache the run
    # filled (it was empty): they compile faster than the cold ones.
    assert not {"check_call_warm_cache", "first_call_warm_cache"} & set(
        results["eager"]
    )
    rep = results["compiled"]
    cold, warm = (
        rep[f"check_call{end}"]["wall_s"] + rep[f"first_call{end}"]["wall_s"]
        for end in ("", "_warm_cache")
    )
    assert rep["first_call_warm_cache"]["cpu_s"] > 0
    assert warm < cold
    with pytest.raises(DeployError, match="compiled no graph"):
        harness.interleave(
            target,
            ("eager", "module.compile"),
            (),
            reps=2,
            warmup=1,
            threads=1,
            tolerances={"eager": (0.0, 0.0), "module.compile": (1e-5, 1e-5)},
        )


def test_explain_counts_graph_breaks() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        y = x + 1
        torch._dynamo.graph_break()
        return y * 2

    report = harness.explain(broken, torch.ones(3))
    assert (report["graphs"], report["graph_breaks"]) == (2, 1)
    assert report["break_reasons"]


def test_bench_interleaved_writes_records_with_their_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "comparison.json"
    monkeypatch.setattr(harness, "comparison_path", lambda project: written)
    args = argparse.Namespace(
        budget="full", threads=1, reps=2, warmup=1, no_write=False
    )
    # The script's stem names the module its modes are imported from.
    script = "tests.test_benchmarks_harness.py"
    with harness.Bench("tiny", script, args) as bench:
        bench.interleaved(
            fake_mode,
            ("eager", "slow"),
            0.01,
            prefix="train",
            unit="s/step",
            items=10,
            tolerances={"eager": (0.0, 0.0), "slow": (0.0, 0.0)},
            data={"batch": 10},
            notes="n",
        )
        bench.finish()
    records, _ = load_comparison(written)
    assert [r.mode for r in records] == ["train: eager", "train: slow"]
    assert records[1].cpu["model"] and len(records[1].repetitions["samples"]) == 2
    assert written.read_text().count("\n") == 0  # compact, as shipped JSON is
    line = json.loads(capsys.readouterr().out)
    assert list(line["ratios"]) == ["train slow / eager"]


def test_bootstrap_ratio_of_a_scaled_sample_is_the_scale_exactly():
    base = [1.0, 1.2, 0.9, 1.1, 1.05]
    ratio = harness.bootstrap_ratio(np.array(base) * 0.5, base)
    assert ratio.mean == pytest.approx(0.5)
    assert ratio.low <= 0.5 <= ratio.high
    assert ratio.excludes(1.0)


def test_bootstrap_ratio_of_two_draws_of_one_distribution_contains_one():
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 1, 8), rng.normal(10, 1, 8)
    ratio = harness.bootstrap_ratio(a, b)
    assert ratio.mean == pytest.approx(a.mean() / b.mean())
    assert not ratio.excludes(1.0)
    assert ratio.n == 8


def test_bootstrap_ratio_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        a, b = rng.normal(6, 1, 30), rng.normal(10, 1, 30)
        covered += not harness.bootstrap_ratio(
            a, b, resamples=2000, seed=trial
        ).excludes(0.6)
    assert 0.88 <= covered / 200 <= 0.99


def test_bootstrap_ratio_pairs_rounds_so_a_shared_drift_cancels():
    # Round k of both modes ran in the same slow or fast spell (x1 to x3).
    rng = np.random.default_rng(5)
    drift = np.linspace(1.0, 3.0, 10)
    base = drift * rng.normal(1.0, 0.01, 10)
    values = 0.8 * drift * rng.normal(1.0, 0.01, 10)
    paired = harness.bootstrap_ratio(values, base, resamples=4000)
    assert paired.mean == pytest.approx(values.mean() / base.mean())
    assert paired.method.startswith("paired")
    # The same samples, each side resampled on its own (pairing broken).
    picks = np.random.default_rng(0).integers(0, 10, (2, 4000, 10))
    unpaired = np.quantile(
        values[picks[0]].mean(axis=1) / base[picks[1]].mean(axis=1), [0.025, 0.975]
    )
    assert paired.high - paired.low < (unpaired[1] - unpaired[0]) / 5
    assert paired.excludes(1.0) and paired.low <= 0.8 <= paired.high


@pytest.mark.parametrize(
    ("values", "baseline", "message"),
    [
        ([], [1.0], "at least one"),
        ([1.0, 1.0], [0.0, 1.0], "positive"),
        ([1.0], [1.0, 1.0], "one value per round"),
        ([1.0], [np.nan], "finite"),
    ],
)
def test_bootstrap_ratio_bad_arguments_are_clear_errors(values, baseline, message):
    with pytest.raises(ValueError, match=message):
        harness.bootstrap_ratio(values, baseline)
