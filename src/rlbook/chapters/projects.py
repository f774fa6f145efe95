"""Generated from chapters/projects.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlbook.projects.deploy import verdict


def log_se(ratio: Mapping[str, float]) -> float:
    """A 95% interval's standard error, on the log scale."""
    return math.log(ratio["high"] / ratio["low"]) / (2 * 1.96)


def rerun_spread(path: str | Path) -> tuple[float, int]:
    """(tau, pairs): the spread between runs, from the rerun pairs of
    the other projects' tables beside `path`."""
    path = Path(path)
    terms = []
    for other in sorted(path.parent.parent.glob("*/comparison.json")):
        if other.parent == path.parent:
            continue  # never from the table's own pairs
        payload = json.loads(other.read_text())
        for _, now, before in rerun_pairs(payload):
            if before is not None:
                d = math.log(now["ratio"] / before["ratio"])
                terms.append(
                    d**2 - log_se(now) ** 2 - log_se(before) ** 2
                )
    if not terms:
        return 0.0, 0
    return math.sqrt(max(0.0, sum(terms) / len(terms) / 2)), len(terms)


def widened(ratio: Mapping[str, float], tau: float) -> dict[str, float]:
    """A ratio's 95% interval for a rerun: its own standard error and
    the spread between runs together, on the log scale."""
    half = 1.96 * math.hypot(log_se(ratio), tau)
    low, high = math.exp(-half), math.exp(half)
    return {
        "ratio": ratio["ratio"],
        "low": ratio["ratio"] * low,
        "high": ratio["ratio"] * high,
    }


def rerun_pairs(payload: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(mode, this run's ratio, the previous run's or None) for every
    ratio that is not a baseline's (1 in every run)."""
    before = (payload.get("previous_run") or {}).get("ratios", {})
    return [
        (r["mode"], ratio, before.get(r["mode"]))
        for r in payload["records"]
        if (ratio := r.get("repetitions", {}).get("ratio"))
        and ratio["to"] != r["mode"].rsplit(": ", 1)[-1]
    ]


def intervals_overlap(
    a: Mapping[str, float], b: Mapping[str, float]
) -> bool:
    """Whether intervals (low, high) share a point; touching ones do."""
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def rerun_table(path: str | Path) -> str:
    """Markdown for a chapter: each ratio of this run and of the previous
    one, whether their intervals overlap as measured and widened, and
    sentences counting them; for a table measured once, a sentence."""
    payload = json.loads(Path(path).read_text())
    meta, previous = payload.get("meta", {}), payload.get("previous_run")
    if not previous:
        return (
            f"This table has been measured once (commit "
            f"{str(meta.get('git_commit', '?'))[:8]}, "
            f"{meta.get('date', '?')}); a rerun of its benchmark at the "
            "same budget will set its ratios here beside these, to show "
            "whether they survive a rerun."
        )

    def cell(ratio: Mapping[str, float]) -> str:
        low, high = ratio["low"], ratio["high"]
        return f"{ratio['ratio']:.2f} [{low:.2f}, {high:.2f}]"

    tau, pairs = rerun_spread(path)
    rows = [
        "| mode | this run [95%] | previous run [95%] | overlap "
        "| widened |",
        "|---|---|---|---|---|",
    ]
    overlaps, wide, changed = [], [], []
    for mode, ratio, before in rerun_pairs(payload):
        if verdict(ratio) != verdict(widened(ratio, tau)):
            changed.append(f"{mode} ({verdict(ratio)})")
        if before is None:
            rows.append(f"| {mode} | {cell(ratio)} | not measured | | |")
            continue
        overlaps.append(intervals_overlap(ratio, before))
        wide.append(
            intervals_overlap(widened(ratio, tau), widened(before, tau))
        )
        yes = ("no", "yes")
        rows.append(
            f"| {mode} | {cell(ratio)} | {cell(before)} "
            f"| {yes[overlaps[-1]]} | {yes[wide[-1]]} |"
        )
    old = previous["meta"]
    then, now = (
        str(old.get("git_commit"))[:8],
        str(meta.get("git_commit"))[:8],
    )
    text = (
        f"{sum(overlaps)} of {len(overlaps)} ratios' intervals overlap "
        f"between the two runs, of commit {then} "
        f"({old.get('date')}) and of commit "
        f"{now} ({meta.get('date')}), both at "
        f"budget {meta.get('budget')!r}."
    )
    if not pairs:
        return "\n".join(rows) + "\n\n" + text
    text += (
        f" Widened by the spread between runs, {100 * tau:.1f}% (from "
        f"the other projects' {pairs} rerun pairs, as the part's first "
        f"page explains), {sum(wide)} of {len(wide)} overlap. "
    )
    if not changed:
        text += "Widened, every reading above holds."
    else:
        s = "" if len(changed) == 1 else "s"
        text += (
            f"Widened, {len(changed)} reading{s} above would read no "
            f"measurable difference: {'; '.join(changed)}."
        )
    return "\n".join(rows) + "\n\n" + text
