"""The projects' comparison tables: one row per execution mode, read by the chapters.

Each project's benchmark (``benchmarks/*_modes.py``) writes its table as
``artifacts/projects/<project>/comparison.json``::

    {"meta": {how it was made: command, budget, git commit, date, ...},
     "records": [one ComparisonRecord as an object, ...],
     "previous_run": {"meta": {...}, "ratios": {mode: ratio, ...}}}

``previous_run`` (the ratios of the run before at the same budget) once rerun.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..paths import artifacts_dir


@dataclass(frozen=True)
class ComparisonRecord:
    """One execution mode's row in a project's comparison table."""

    mode: str  # "eager", "torch.compile", "aoti-python", "aoti-cpp", ...
    time: float  # training: s per epoch or per fixed steps; inference: ms/call
    time_unit: str  # what time counts: "s/epoch", "s/200 steps", "ms/call"
    throughput: float | None = None  # items (images, reviews, codes) per second
    peak_memory_mb: float | None = None  # measured in the mode's own process
    quality: float | None = None  # None where the mode leaves it (inference)
    quality_name: str | None = None  # "test accuracy", "test loss (nats/image)"
    device: str = "cpu"  # "cpu (1 thread)", "cuda:0 (NVIDIA H100)"
    versions: Mapping[str, str] = field(default_factory=dict)  # torch, python, C++
    data: Mapping[str, int] = field(default_factory=dict)  # {"train": 50000, ...}
    notes: str = ""  # what a reader needs to read the row right (budget, threads)
    cpu: Mapping[str, Any] = field(default_factory=dict)  # model, cores, ISAs
    repetitions: Mapping[str, Any] = field(default_factory=dict)
    """Interleaved repetitions: samples (wall and CPU seconds), first calls,
    memory, the output check and the ratio to the baseline mode with its
    interval (``benchmarks/harness.py`` writes them); empty in older tables."""

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or not self.mode:
            raise ValueError(f"mode must be a non-empty string, got {self.mode!r}")
        if not float(self.time) >= 0:
            raise ValueError(f"time must be a number >= 0, got {self.time!r}")


def comparison_path(project: str) -> Path:
    """``artifacts/projects/<project>/comparison.json`` in the repository."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", project):
        raise ValueError(
            f"project must be a short lowercase name like 'cifar10', got {project!r}"
        )
    return artifacts_dir() / "projects" / project / "comparison.json"


def load_comparison(path: str | Path) -> tuple[list[ComparisonRecord], dict[str, Any]]:
    """A comparison table's ``(records, meta)``; FileNotFoundError where there
    is none, ValueError where the file is not one."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        records = [ComparisonRecord(**record) for record in payload["records"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{str(path)!r} is not a comparison table ({type(error).__name__}: "
            f"{error}); write it again with its benchmark"
        ) from error
    return records, dict(payload.get("meta", {}))


def verdict(ratio: Mapping[str, Any]) -> str:
    """A time ratio's reading: ``"no measurable difference"`` when its
    interval holds 1, else ``"faster"`` (below 1) or ``"slower"``."""
    if ratio["low"] <= 1 <= ratio["high"]:
        return "no measurable difference"
    return "faster" if ratio["high"] < 1 else "slower"


def repetitions_table(records: list[ComparisonRecord]) -> str:
    """Two Markdown tables of the records with ``repetitions``, split to fit the
    page's column: speed (time, ratio to the baseline, first call, cold and with a
    warm compiler cache), then memory, the fewest CPU seconds per wall second of any
    sample (below 1: the mode waited for the CPU) and the output check."""
    speed = [
        "| mode | n | time | ratio [95% interval] | reading | first call |",
        "|---|---|---|---|---|---|",
    ]
    check_rows = [
        "| mode | peak above baseline (MiB) | baseline (MiB) | CPU/wall, least "
        "| max abs diff (tolerance) |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        rep = r.repetitions
        if not rep:
            continue
        ratio, check, memory = rep["ratio"], rep["same_computation"], rep["memory"]
        samples = rep["samples"]
        if ratio["to"] == r.mode.rsplit(": ", 1)[-1]:
            reading, interval = "baseline", "1"
        else:
            reading = verdict(ratio)
            interval = f"{ratio['ratio']:.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}]"
        shares = [s["cpu_s"] / s["wall_s"] for s in samples if s.get("cpu_s")]
        peak = memory["peak_above_baseline_mb"]
        baseline = memory["baseline_mb"]
        if peak is None and memory.get("process_peak_mb") is not None:
            peak_text = f"{memory['process_peak_mb']:,.0f} (whole process)"
        else:
            peak_text = "" if peak is None else f"{peak:,.1f}"
        passed = "pass" if check["passed"] else "FAIL"
        first = f"{rep['first_call']['wall_s']:.2f} s"
        if "first_call_warm_cache" in rep:
            warm = rep["first_call_warm_cache"]["wall_s"]
            first += f" cold, {warm:.2f} s warm cache"
        speed.append(
            f"| {r.mode} | {len(samples)} | {r.time:.3g} {r.time_unit} "
            f"| {interval} | {reading} | {first} |"
        )
        check_rows.append(
            f"| {r.mode} | {peak_text} "
            f"| {'' if baseline is None else f'{baseline:,.0f}'} "
            f"| {f'{min(shares):.2f}' if shares else 'n/a'} "
            f"| {check['max_abs_diff']:.2g} ({check['atol']:g} + "
            f"{check['rtol']:g}·\\|ref\\|): {passed} |"
        )
    return "\n".join(speed) + "\n\n" + "\n".join(check_rows)


def table_note(records: list[ComparisonRecord]) -> str:
    """Two sentences: how the ratios' intervals were made (``method``), and what
    each row's outputs were checked against: its section's baseline, or the
    reference a record names (``same_computation["against"]``, the C++ rows)."""
    methods: list[str] = []
    for r in records:
        method = r.repetitions.get("ratio", {}).get("method")
        if method and method not in methods:
            methods.append(method)
    note = f"The intervals are by {' and '.join(methods) or 'unstated methods'}"
    if methods and not all(m.startswith("paired") for m in methods):
        note += " (each mode's samples resampled on their own, not by round)"
    return f"{note}. {_check_sentence(records)}"


def _check_sentence(records: list[ComparisonRecord]) -> str:
    baselines: list[str] = []
    own: dict[str, list[str]] = {}
    for r in records:
        if not r.repetitions:
            continue
        to = r.repetitions["ratio"]["to"]
        if to not in baselines:
            baselines.append(to)
        against = r.repetitions["same_computation"].get("against")
        if against:
            mode = r.mode.rsplit(": ", 1)[-1]
            modes = own.setdefault(against, [])
            if mode not in modes:
                modes.append(mode)
    sentence = (
        "Each row's outputs were checked against its section's baseline "
        f"({' and '.join(baselines)}) on the same inputs"
    )
    if not own:
        return sentence + ", every row included."
    parts = [
        f"the {', '.join(modes)} rows against {against}"
        for against, modes in own.items()
    ]
    return f"{sentence}, except {'; '.join(parts)}."


def gpu_path() -> Path:
    """``artifacts/projects/gpu.json``: ``benchmarks/projects_gpu.py``'s table."""
    return artifacts_dir() / "projects" / "gpu.json"


def gpu_summary(project: str, path: str | Path | None = None) -> tuple[str | None, str]:
    """The project's GPU table (Markdown) from :func:`gpu_path`, and a sentence
    for the page: ``(None, "GPU figures are not measured.")`` when the file or
    the project's entry is absent, or the project failed there."""
    path = Path(path) if path is not None else gpu_path()
    record = json.loads(path.read_text()) if path.is_file() else {}
    project_record = record.get("projects", {}).get(project)
    if not project_record or "error" in project_record:
        return None, "GPU figures are not measured."
    # two tables, each narrow enough for the page's column (as the CPU's)
    speed = [
        "| section | mode | median | ratio to eager [95% CI] | reading |",
        "|---|---|---:|---|---|",
    ]
    checks = [
        "| section | mode | first calls | peak GPU memory | outputs match |",
        "|---|---|---:|---:|---|",
    ]
    units = []
    for section, part in project_record.items():
        if not isinstance(part, dict):
            continue
        units.append(f"{section}, {part['unit'].removeprefix('s/')}")
        for mode, r in part["modes"].items():
            if "error" in r:
                speed.append(f"| {section} | {mode} | failed: {r['error'][:60]} |||")
                continue
            ratio = r["ratio"]
            peak = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:,.0f} MB"
            speed.append(
                f"| {section} | {mode} | {r['median_s']:.4f} s "
                f"| {ratio['ratio']:.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}] "
                f"| {'baseline' if mode.startswith('eager') else verdict(ratio)} |"
            )
            checks.append(
                f"| {section} | {mode} | {r['compile_s']:.1f} s | {peak} "
                f"| {'yes' if r['same_computation']['passed'] else 'no'} |"
            )
    note = f"Times are medians per sample: {'; '.join(units)}."
    rows = [*speed, "", *checks, "", note]
    train = project_record["train"]
    compiled = train["modes"]["torch.compile"].get("ratio")
    if compiled is None:
        return "\n".join(rows), (
            f"On a GPU ({record['device']}) the table above gives the modes; "
            "torch.compile failed there in training."
        )
    sentence = (
        f"On a GPU ({record['device']}, PyTorch {record['torch']}, budget "
        f"{record['budget']!r}; TF32 {'on' if record.get('tf32') else 'off'}; "
        "each sample timed between two CUDA synchronisations, "
        f"{train['reps']} rounds interleaved across the modes, peak memory from "
        "torch.cuda.max_memory_allocated), the GPU table above gives the same modes: "
        f"there torch.compile took {compiled['ratio']:.2f} times eager's training "
        f"time ({compiled['low']:.2f} to {compiled['high']:.2f}: {verdict(compiled)})."
    )
    return "\n".join(rows), sentence
