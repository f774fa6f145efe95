"""Sphinx extension: each chapter's execution time against its declared CI budget.

A notebook chapter declares in its front matter (``rlbook: ci_seconds: N``)
how long it may take at the ``ci`` budget on :data:`REFERENCE`. Before the
chapters run, the build measures this machine on two short workloads that
stand for what chapters spend their time on (CartPole steps per second,
fp32 GFLOP/s on one thread) and counts its cores: the slowdown is the larger
speed ratio to :data:`REFERENCE` (at least 1) times the ratio of cores, and
a chapter's limit is ``TOLERANCE`` x ``ci_seconds`` x slowdown.

When the build finishes, every chapter's time goes to
``_build/chapter_times.json`` and the log. At the ``ci`` budget in CI (``CI``
true), a chapter past its limit or without a budget is a warning, which the
strict build (``-W``) fails on; anywhere else only information: a slow
laptop never fails the build.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml
from sphinx.application import Sphinx
from sphinx.util import logging

TOLERANCE = 1.5
"""A chapter fails the CI build past this multiple of its scaled budget."""

REFERENCE = {
    "machine": "AMD EPYC (family 25, model 17), 2 cores, AVX-512",
    "cartpole_steps_per_s": 137_000.0,
    "matmul_gflops": 78.0,
    "cores": 2,
}
"""The machine that declared every chapter's ``ci_seconds``, measured by
:func:`measure_machine` at the start of a CI build on it, idle (137,449 steps/s
and 78.6 GFLOP/s at commit 07a439c). Measured on a busy machine the
reference would read low, and every slower machine would get too little."""

logger = logging.getLogger(__name__)
_measured: dict[str, Any] = {}


def _best_rate(work: Any, seconds: float = 0.25, repeats: int = 5) -> float:
    """The best of ``repeats`` rates of ``work()`` (units per call) per second."""
    best = 0.0
    for _ in range(repeats):
        done = 0.0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            done += work()
        best = max(best, done / elapsed)
    return best


def measure_machine() -> dict[str, Any]:
    """This machine's speed on the two reference workloads (about 3 s)."""
    import gymnasium as gym
    import torch

    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    steps = [0]

    def step() -> float:
        for _ in range(200):
            steps[0] += 1
            _, _, terminated, truncated, _ = env.step(steps[0] % 2)
            if terminated or truncated:
                env.reset()
        return 200.0

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(512, 512), torch.randn(512, 512)
        cartpole = _best_rate(step)
        gflops = _best_rate(lambda: (a @ b, 2 * 512**3 / 1e9)[1])
    finally:
        torch.set_num_threads(threads)
        env.close()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return {
        "cartpole_steps_per_s": round(cartpole),
        "matmul_gflops": round(gflops, 1),
        "cores": cores,
    }


def slowdown(measured: dict[str, Any], reference: dict[str, Any] = REFERENCE) -> float:
    """How many times longer chapters may take here than on ``reference`` (>= 1)."""
    speed = max(
        reference["cartpole_steps_per_s"] / max(measured["cartpole_steps_per_s"], 1.0),
        reference["matmul_gflops"] / max(measured["matmul_gflops"], 1e-3),
        1.0,
    )
    return speed * max(1.0, reference["cores"] / max(measured["cores"], 1))


def declared(source: Path) -> dict[str, Any]:
    """The ``rlbook`` mapping of a chapter's YAML front matter ({} if none)."""
    text = source.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    front = yaml.safe_load(text[4:end]) if end > 0 else None
    block = (front or {}).get("rlbook") or {}
    return block if isinstance(block, dict) else {}


def calibrate(app: Sphinx | None = None) -> dict[str, Any]:
    """Measure this machine once per build, before the chapters execute."""
    from rlbook.budget import get_budget

    if not _measured and get_budget() == "ci":
        _measured.update(measure_machine())
        _measured["slowdown"] = round(slowdown(_measured), 2)
        logger.info(
            f"[rlbook] this machine: {_measured['cartpole_steps_per_s']} CartPole "
            f"steps/s, {_measured['matmul_gflops']} GFLOP/s (fp32, one thread), "
            f"{_measured['cores']} core(s); chapters get {_measured['slowdown']:g} x "
            f"the time declared on {REFERENCE['machine']}"
        )
    return _measured


def check_times(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None:
        return
    from myst_nb.sphinx_ import NbMetadataCollector

    from rlbook.budget import get_budget

    budget = get_budget()
    machine = calibrate() if budget == "ci" else {}
    scale = float(machine.get("slowdown", 1.0))
    strict = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
    report = logger.warning if strict else logger.info
    rows = {}
    for docname, data in sorted(NbMetadataCollector.get_doc_data(app.env).items()):
        exec_data = data.get("exec_data")
        if not exec_data or exec_data.get("runtime") is None:
            continue
        source = Path(app.env.doc2path(docname))
        ci_seconds = declared(source).get("ci_seconds")
        runtime = float(exec_data["runtime"])
        has_budget = isinstance(ci_seconds, (int, float)) and ci_seconds > 0
        limit = TOLERANCE * scale * ci_seconds if has_budget else None
        rows[docname] = {
            "seconds": round(runtime, 1),
            "ci_seconds": ci_seconds,
            "limit_seconds": round(limit, 1) if limit else None,
            "method": exec_data.get("method"),
            "budget": budget,
        }
        note = f"{ci_seconds} s declared" if has_budget else "no budget declared"
        if limit and budget == "ci":
            note += f", limit here {limit:.0f} s"
        logger.info(f"[rlbook] {docname}: executed in {runtime:.1f} s ({note})")
        if budget != "ci":
            continue
        if not has_budget:
            report(
                f"{docname} declares no CI execution budget: add `rlbook: ci_seconds: N` "
                f"to the front matter of {source.name}",
                location=docname,
            )
        elif runtime > limit:
            report(
                f"{docname} took {runtime:.0f} s to execute at the ci budget, more than "
                f"{TOLERANCE:g} x its declared ci_seconds: {ci_seconds} x this machine's "
                f"slowdown {scale:g} = {limit:.0f} s; make it faster or raise the budget "
                "in its front matter (and check the whole CI run stays under 45 minutes)"
                + (
                    ""
                    if strict
                    else " (information only: the build fails on this in CI)"
                ),
                location=docname,
            )
    out = Path(app.outdir).parent / "chapter_times.json"
    record = {"machine": {**machine, "reference": REFERENCE}, "chapters": rows}
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", calibrate)
    app.connect("build-finished", check_times)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
