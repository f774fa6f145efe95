"""The site checker (.ci/check_site.py) against tiny hand-written sites.

Each page of the synthetic site is a good notebook page with exactly one thing
broken; the test for that breakage asserts that the checker fails that page
and says why. One browser run checks them all (module fixture), so the module
stays fast. Needs Debian's Chromium ($CHROMIUM or /usr/bin/chromium) and the
MathJax that scripts/vendor_mathjax.py vendors; skipped without them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .scripts import load_script

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"Chromium not installed at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)",
        allow_module_level=True,
    )


check_site = load_script(".ci/check_site.py")
vendor_mathjax = load_script("scripts/vendor_mathjax.py")

OWNER_REPO = "example/book"
COLAB = "https://colab.research.google.com/github/example/book/blob/main"
PNG = base64.b64decode(  # 1x1 pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
OUTPUT_PNG = hashlib.sha256(PNG).hexdigest() + ".png"  # how MyST-NB names output images
MATHJAX_CONFIG = {
    "tex": {"macros": {"E": "\\mathbb{E}", "argmax": "\\operatorname*{arg\\,max}"}},
    "options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"},
}
CONFIG_YML = f"""\
title: Test book
repository:
  url: https://github.com/{OWNER_REPO}
  path_to_book: ""
  branch: main
launch_buttons:
  colab_url: "https://colab.research.google.com"
"""
NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def front_matter(figures: int, animations: int) -> str:
    return (
        "---\nkernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n"
        f"rlbook:\n  ci_seconds: 10\n  figures: {figures}\n  animations: {animations}\n"
        "---\n\n# A chapter\n"
    )


def player_html(frames: int = 3, drop_frames: bool = False) -> str:
    """A real matplotlib to_jshtml player, its CDN stylesheet link removed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import animation

    fig = plt.figure(figsize=(0.4, 0.4), dpi=20)
    image = fig.add_axes((0, 0, 1, 1)).imshow(np.zeros((2, 2)), vmin=0, vmax=frames)

    def draw(i: int) -> tuple:
        image.set_data(np.full((2, 2), i))
        return (image,)

    anim = animation.FuncAnimation(fig, draw, frames=frames, interval=100, blit=True)
    html = anim.to_jshtml()
    plt.close(fig)
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*">', "", html)
    if drop_frames:
        html = re.sub(r'frames\[\d+\] = "data:[^"]*"', "", html)
    return html


GOOD_BODY = """
<p>Inline <span class="math notranslate nohighlight">\\(x^2 + \\E[y]\\)</span>, display:</p>
<div class="math notranslate nohighlight">\\[\\argmax_a Q(s, a)\\]</div>
<p>Return: <span class="pasted-text">195.5</span>;
steps <span class="output text_plain">42</span>.</p>
<div class="cell docutils container"><div class="cell_output docutils container">
<div class="output stream highlight-myst-ansi notranslate"><div class="highlight">
<pre>episode 10: return 12.0, loss 0.31</pre></div></div>
<img alt="figure" src="../_images/{png}" />
</div></div>
<figure class="align-default" id="fig-glued"><img alt="glued" src="../_images/{png}" />
<figcaption><p>A glued figure.</p></figcaption></figure>
<div class="cell docutils container"><div class="cell_output docutils container">
<div class="output text_html">{player}</div></div></div>
"""


def page_html(
    docname: str,
    body: str,
    *,
    mathjax: str | None = "_static/mathjax/tex-mml-chtml.js",
    colab: str | None = None,
    head: str = "",
) -> str:
    up = "../" * docname.count("/")
    scripts = ""
    if mathjax:
        scripts = (
            f"<script>window.MathJax = {json.dumps(MATHJAX_CONFIG)}</script>\n"
            f'<script defer="defer" src="{up}{mathjax}"></script>'
        )
    colab = colab or f"{COLAB}/{docname}.ipynb"
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{docname}</title>{scripts}{head}</head>
<body><div class="header-article">
<div class="dropdown dropdown-launch-buttons"><ul class="dropdown-menu">
<li><a href="{colab}" class="btn btn-sm dropdown-item">Colab</a></li></ul></div>
<div class="dropdown dropdown-download-buttons"><ul class="dropdown-menu">
<li><a href="{up}_sources/{docname}.ipynb"
  class="btn-download-notebook-button dropdown-item">.ipynb</a></li>
<li><a href="{up}_sources/{docname}.md"
  class="btn-download-source-button dropdown-item">.md</a></li>
</ul></div></div>
<main><section class="tex2jax_ignore mathjax_ignore" id="{docname.rsplit("/", 1)[-1]}">
<h1>{docname}</h1>
{body}
</section></main></body></html>
"""


def build_site(root: Path, pages: dict[str, dict[str, Any]], mathjax_dir: Path) -> Path:
    """Write a repo with a toc, config, chapter sources and twins, and its built site."""
    html = root / "_build" / "html"
    (html / "_static").mkdir(parents=True)
    (html / "_static" / "mathjax").symlink_to(mathjax_dir, target_is_directory=True)
    (html / "_images").mkdir()
    (html / "_images" / OUTPUT_PNG).write_bytes(PNG)
    (root / "_config.yml").write_text(CONFIG_YML)
    chapters = [f"      - file: {name}" for name in pages]
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: Test\n    chapters:\n"
        + "\n".join(chapters)
        + "\n"
    )
    (root / "intro.md").write_text("# Intro\n")
    (html / "intro.html").write_text(
        "<!DOCTYPE html><html><head><title>Intro</title></head><body><main>"
        "<h1>Intro</h1><p>No math here.</p></main>"
        '<div class="dropdown dropdown-download-buttons"><ul class="dropdown-menu"><li>'
        '<a href="_sources/intro.md" class="btn-download-source-button">.md</a></li></ul>'
        "</div></body></html>"
    )
    (html / "_sources").mkdir()
    (html / "_sources" / "intro.md").write_text("# Intro\n")
    for name, spec in pages.items():
        source = root / f"{name}.md"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(
            front_matter(spec.get("figures", 2), spec.get("animations", 1))
        )
        if spec.get("twin", True):
            source.with_suffix(".ipynb").write_text(json.dumps(NOTEBOOK))
        out = html / f"{name}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page_html(name, spec["body"], **spec.get("page", {})))
        for suffix in (".md", ".ipynb"):
            target = html / "_sources" / f"{name}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(
                json.dumps(NOTEBOOK) if suffix == ".ipynb" else "# A chapter\n"
            )
    return html


def good(**changes: str) -> str:
    """The good page's body with some of its parts replaced."""
    parts = {"png": OUTPUT_PNG, "player": PLAYER}
    parts.update(changes)
    return GOOD_BODY.format(**parts)


PLAYER = player_html()
PAGES: dict[str, dict[str, Any]] = {
    "chapters/good": {"body": good()},
    "chapters/no_mathjax": {
        "body": good(),
        "page": {"mathjax": "_static/mathjax-missing/tex-mml-chtml.js"},
    },
    "chapters/merror": {
        "body": good()
        + '<div class="math notranslate nohighlight">\\[\\frac{1}\\]</div>'
    },
    "chapters/raw_dollars": {"body": good() + "<p>It costs $$x + y$$ per step.</p>"},
    "chapters/wide_math": {
        "body": good()
        + '<div class="math notranslate nohighlight">\\['
        + " + ".join(f"x_{{{i}}}^2" for i in range(80))
        + "\\]</div>"
    },
    "chapters/wide_code": {
        "body": good()
        + '<div class="cell docutils container"><div class="cell_input docutils container">'
        '<div class="highlight"><pre style="width: 400px; overflow-x: auto">'
        + "x = "
        + " + ".join(["value"] * 40)
        + "</pre></div></div></div>"
    },
    "chapters/wide_table": {
        "body": good()
        + '<div class="pst-scrollable-table-container" style="width: 400px; '
        'overflow-x: auto"><table><thead><tr>'
        + "".join(
            f'<th style="white-space: nowrap">column number {i}</th>' for i in range(12)
        )
        + "</tr></thead></table></div>"
    },
    "chapters/glued_nan": {
        "body": good() + '<p>Mean return <span class="pasted-text">nan</span>.</p>'
    },
    "chapters/output_none": {
        "body": good()
        + '<div class="cell docutils container"><div class="cell_output docutils container">'
        '<div class="output text_plain highlight-myst-ansi"><pre>None</pre></div></div></div>'
    },
    "chapters/allowed_inf": {
        "body": good() + '<div class="cell docutils container tag_allow-nan">'
        '<div class="cell_output docutils container"><div class="output stream">'
        "<pre>Box([-4.8 -inf], [4.8 inf])</pre></div></div></div>"
    },
    "chapters/traceback": {
        "body": good()
        + '<div class="cell docutils container"><div class="cell_output docutils container">'
        '<div class="output traceback highlight-ipythontb notranslate"><pre>'
        'Traceback (most recent call last):\n  File "x.py", line 1\n'
        "ValueError: the agent diverged</pre></div></div></div>"
    },
    "chapters/few_figures": {"body": good(), "figures": 3},
    "chapters/no_frames": {"body": good(player=player_html(drop_frames=True))},
    "chapters/missing_player": {"body": good(player=""), "animations": 1},
    "chapters/broken_image": {"body": good(png="0" * 64 + ".png")},
    "chapters/other_host": {
        "body": good(),
        "page": {
            "head": '<link rel="stylesheet" href="https://cdn.example.com/theme.css">'
            '<script src="https://cdn.example.org/lib.js"></script>'
        },
    },
    "chapters/wrong_colab": {
        "body": good(),
        "page": {"colab": f"{COLAB}/chapters/wrong_colab.md"},
    },
    "chapters/no_twin": {"body": good(), "twin": False},
}


@pytest.fixture(scope="module")
def mathjax_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vendored = ROOT / "_vendor" / "mathjax"
    if (vendored / "tex-mml-chtml.js").is_file():
        return vendored
    dest = tmp_path_factory.mktemp("vendor") / "mathjax"
    try:
        vendor_mathjax.vendor(dest)
    except vendor_mathjax.VendorError as exc:
        pytest.skip(f"no local MathJax to test with: {exc}")
    return dest


@pytest.fixture(scope="module")
def report(
    tmp_path_factory: pytest.TempPathFactory, mathjax_dir: Path
) -> dict[str, str]:
    """Check the synthetic site once; return each page's output line, by page."""
    root = tmp_path_factory.mktemp("site")
    html = build_site(root, PAGES, mathjax_dir)
    out = io.StringIO()
    failed = check_site.check_site(
        html,
        root / "_toc.yml",
        screenshot_dir=root / "shots",
        chromium=CHROMIUM,
        out=out,
    )
    lines = out.getvalue().splitlines()
    by_page = {}
    for line in lines[:-1]:
        page = line.split()[1]
        by_page[page.rstrip(":")] = line
    by_page["(summary)"] = lines[-1]
    by_page["(failed)"] = str(failed)
    by_page["(shots)"] = str(root / "shots")
    return by_page


def failure(report: dict[str, str], docname: str) -> str:
    line = report[f"{docname}.html"]
    assert line.startswith("FAIL "), line
    return line


def test_good_page_passes(report: dict[str, str]) -> None:
    assert report["intro.html"].startswith("ok "), report["intro.html"]
    line = report["chapters/good.html"]
    assert line.startswith("ok "), line
    assert "2 figures, 1 animations, 2 math" in line
    assert report["chapters/allowed_inf.html"].startswith("ok ")


def test_summary_counts_failures_and_sizes(report: dict[str, str]) -> None:
    n_bad = len(PAGES) - 2  # all but good and allowed_inf
    assert report["(failed)"] == str(n_bad)
    assert re.match(
        rf"site check: {len(PAGES) + 1} pages, {n_bad} failed; site [\d.]+ [kM]B in \d+ files;"
        r" largest page chapters/\S+\.html [\d.]+ MB",
        report["(summary)"],
    ), report["(summary)"]


def test_screenshots_are_saved(report: dict[str, str]) -> None:
    shots = Path(report["(shots)"])
    assert (shots / "chapters__good.png").stat().st_size > 1000


def test_missing_mathjax_leaves_raw_tex(report: dict[str, str]) -> None:
    line = failure(report, "chapters/no_mathjax")
    assert (
        "math not typeset: MathJax did not load, 2 math element(s) show raw TeX" in line
    )
    assert 'raw TeX in text in section #no_mathjax: "\\(x^2 + \\E[y]\\)"' in line
    assert "same-origin resource failed (HTTP 404): /_static/mathjax-missing/" in line


def test_mathjax_error(report: dict[str, str]) -> None:
    line = failure(report, "chapters/merror")
    assert (
        "MathJax error in section #merror: Missing argument for \\frac (TeX: \\frac{1})"
        in line
    )


def test_raw_dollars_outside_math(report: dict[str, str]) -> None:
    line = failure(report, "chapters/raw_dollars")
    assert (
        'raw TeX in text in section #raw_dollars: "It costs $$x + y$$ per step."'
        in line
    )


def test_display_math_wider_than_column(report: dict[str, str]) -> None:
    line = failure(report, "chapters/wide_math")
    assert "display math in section #wide_math is" in line
    assert "wider than the column" in line


def test_code_wider_than_its_block(report: dict[str, str]) -> None:
    line = failure(report, "chapters/wide_code")
    assert "code in section #wide_code is" in line
    assert "scrolls sideways): 'x = value + value" in line


def test_table_wider_than_the_column(report: dict[str, str]) -> None:
    line = failure(report, "chapters/wide_table")
    assert "table in section #wide_table is" in line
    assert "'column number 0 | column number 1" in line


def test_glued_nan(report: dict[str, str]) -> None:
    line = failure(report, "chapters/glued_nan")
    assert "'nan' in glued value in section #glued_nan: \"nan\"" in line


def test_none_in_output(report: dict[str, str]) -> None:
    line = failure(report, "chapters/output_none")
    assert "'None' in cell output in section #output_none: \"None\"" in line


def test_traceback_output(report: dict[str, str]) -> None:
    line = failure(report, "chapters/traceback")
    assert (
        "traceback/error output in section #traceback: ValueError: the agent diverged"
    ) in line


def test_fewer_figures_than_declared(report: dict[str, str]) -> None:
    line = failure(report, "chapters/few_figures")
    assert "2 figure(s) shown, 3 declared in few_figures.md" in line


def test_animation_without_frames(report: dict[str, str]) -> None:
    line = failure(report, "chapters/no_frames")
    assert re.search(
        r"animation _anim_img\w+ in section #no_frames: 0 of 3 frame\(s\) load", line
    )


def test_missing_animation_player(report: dict[str, str]) -> None:
    line = failure(report, "chapters/missing_player")
    assert "0 animation player(s) shown, 1 declared" in line


def test_broken_image(report: dict[str, str]) -> None:
    line = failure(report, "chapters/broken_image")
    assert f"broken image in section #broken_image: ../_images/{'0' * 64}.png" in line


def test_request_to_another_host(report: dict[str, str]) -> None:
    line = failure(report, "chapters/other_host")
    assert (
        "request to another origin (stylesheet): https://cdn.example.com/theme.css"
        in line
    )
    assert "request to another origin (script): https://cdn.example.org/lib.js" in line


def test_wrong_colab_link(report: dict[str, str]) -> None:
    line = failure(report, "chapters/wrong_colab")
    assert (
        f"Colab link {COLAB}/chapters/wrong_colab.md is not"
        f" {COLAB}/chapters/wrong_colab.ipynb"
    ) in line


def test_colab_notebook_missing_from_repository(report: dict[str, str]) -> None:
    line = failure(report, "chapters/no_twin")
    assert "Colab opens chapters/no_twin.ipynb, which is not in the repository" in line


def test_page_over_size_limit_fails_cli(tmp_path: Path, mathjax_dir: Path) -> None:
    """Through the command line: exit 1, and the big page named with its size."""
    pages = {
        "chapters/small": {
            "body": "<p>Small.</p>",
            "figures": 0,
            "animations": 0,
            "page": {"mathjax": None},
        },
        "chapters/big": {
            "body": f"<!-- {'x' * 60_000} --><p>Big.</p>",
            "figures": 0,
            "animations": 0,
            "page": {"mathjax": None},
        },
    }
    html = build_site(tmp_path, pages, mathjax_dir)
    cmd = [
        sys.executable,
        str(ROOT / ".ci" / "check_site.py"),
        str(html),
        "--toc",
        str(tmp_path / "_toc.yml"),
        "--max-page-mb",
        "0.05",
    ]
    run = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    lines = run.stdout.splitlines()
    assert run.returncode == 1, run.stdout + run.stderr
    assert lines[0].startswith("ok   intro.html"), lines
    assert lines[1].startswith("ok   chapters/small.html"), lines
    assert re.match(
        r"FAIL chapters/big\.html \(6\d kB\): page size 6\d kB \(HTML and 0 files it loads\)"
        r" is over 50 kB$",
        lines[2],
    ), lines[2]
    assert lines[3].startswith("site check: 3 pages, 1 failed;"), lines[3]
