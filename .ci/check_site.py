"""Check a built Jupyter Book (1.x) HTML site in a real headless browser.

Usage:
    python .ci/check_site.py _build/html --toc _toc.yml [--screenshot-dir DIR]

Every `root`/`file` entry of the table of contents must exist as an HTML page.
Each page is served from 127.0.0.1 and loaded in Debian's Chromium (or $CHROMIUM)
through Playwright; a page fails when it is not HTTP 200, has no <h1>, shows
notebook error output (MyST-NB renders tracebacks as `div.output.traceback` and
stderr as `div.output.stderr` inside `div.cell_output`; cells tagged
`raises-exception` are exempt), has a broken same-origin <img>, or requests a
same-origin resource that fails (e.g. a 404).  Anything from another origin
(MathJax CDN, web fonts...) is blocked at DNS level and ignored, since CI has
no internet.  Exit status is 1 if any page fails, else 0.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from playwright.sync_api import ConsoleMessage, Page, Request, Response, sync_playwright

SOURCE_SUFFIXES = {".md", ".ipynb", ".rst", ".myst", ".py", ".txt"}
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No internet in CI: make every other host fail at once instead of hanging.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
NAV_TIMEOUT_MS = 30_000
IMAGE_TIMEOUT_MS = 10_000

# Runs in the page; returns notebook error outputs and <img> states.
PAGE_PROBE_JS = """async (timeoutMs) => {
  const root = document.querySelector('main') || document.body;
  const bad = '.output.traceback, .output.stderr, .output.error, .cell_output .traceback,'
            + ' .cell_output .stderr, .cell_output .error';
  const errors = new Set();
  const hits = [...root.querySelectorAll(bad)];
  for (const el of root.querySelectorAll('.cell_output pre, .cell_output div'))
    if (el.textContent.includes('Traceback (most recent call last)')) hits.push(el);
  for (const el of hits) {
    if (el.closest('.tag_raises-exception')) continue;
    const out = el.closest('.output') || el;
    const kind = out.classList.contains('stderr') ? 'stderr' : 'traceback/error';
    const text = (out.querySelector('pre') || out).textContent;
    const lines = text.split('\\n').map(s => s.trim()).filter(Boolean);
    const line = kind === 'stderr' ? lines[0] : lines[lines.length - 1];
    errors.add(`${kind} output: ${(line || '').slice(0, 120)}`);
  }
  const wait = (img) => Promise.race([
    img.decode().then(() => 'ok', () => 'broken'),
    new Promise(r => setTimeout(() => r('timeout'), timeoutMs)),
  ]);
  const imgs = [...document.images];
  imgs.forEach(img => { img.loading = 'eager'; });
  const states = await Promise.all(imgs.map(wait));
  const images = imgs.map((img, i) => {
    let state = states[i];
    if (state !== 'timeout' && img.complete && img.naturalWidth === 0
        && !/\\.svgz?($|[?#])/i.test(img.currentSrc || img.src)) state = 'broken';
    return {src: img.getAttribute('src') || '', url: img.currentSrc || img.src, state};
  });
  return {errors: [...errors], images};
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    """Static file handler that does not log every request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def toc_pages(toc_path: Path) -> list[str]:
    """Return the HTML page paths (relative to the site root) listed in a jb-book toc."""
    pages: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    stem = node[key].strip().lstrip("/")
                    base, ext = os.path.splitext(stem)
                    page = (base if ext.lower() in SOURCE_SUFFIXES else stem) + ".html"
                    if page not in pages:
                        pages.append(page)
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)

    walk(yaml.safe_load(toc_path.read_text(encoding="utf-8")))
    return pages


def start_server(html_dir: Path) -> ThreadingHTTPServer:
    """Serve html_dir on 127.0.0.1 on a free port, in a daemon thread."""
    handler = functools.partial(QuietHandler, directory=str(html_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def check_page(
    page: Page, base: str, rel: str, shot_dir: Path | None
) -> tuple[list[str], int]:
    """Load one page; return (failure reasons, number of images checked)."""
    origin = urlsplit(base).netloc
    failed_urls: dict[str, str] = {}

    def same_origin(url: str) -> bool:
        # Chromium's own /favicon.ico probe is not part of the site.
        parts = urlsplit(url)
        return parts.netloc == origin and parts.path != "/favicon.ico"

    def on_response(resp: Response) -> None:
        if resp.status >= 400 and same_origin(resp.url):
            failed_urls[resp.url] = f"HTTP {resp.status}"

    def on_request_failed(req: Request) -> None:
        if same_origin(req.url):
            failed_urls.setdefault(req.url, req.failure or "request failed")

    def on_console(msg: ConsoleMessage) -> None:
        url = msg.location.get("url", "")
        if (
            msg.type == "error"
            and "Failed to load resource" in msg.text
            and same_origin(url)
        ):
            failed_urls.setdefault(url, msg.text)

    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.on("console", on_console)

    reasons: list[str] = []
    response = page.goto(f"{base}/{rel}", wait_until="load", timeout=NAV_TIMEOUT_MS)
    if response is None or response.status != 200:
        return [f"HTTP status {response.status if response else 'none'}"], 0
    probe = page.evaluate(PAGE_PROBE_JS, IMAGE_TIMEOUT_MS)
    reasons += probe["errors"]
    if page.locator("h1").count() == 0:
        reasons.append("no <h1>")
    local_imgs = [
        i for i in probe["images"] if same_origin(i["url"]) or i["url"][:5] == "data:"
    ]
    for img in local_imgs:
        if img["state"] != "ok":
            state = "broken" if img["state"] == "broken" else "unloaded"
            reasons.append(f"{state} image: {img['src'] or '(empty src)'}")
            failed_urls.pop(img["url"], None)
    for url, why in sorted(failed_urls.items()):
        reasons.append(f"same-origin resource failed ({why}): {urlsplit(url).path}")
    if shot_dir is not None:
        page.screenshot(
            path=str(shot_dir / (rel.replace("/", "__")[:-5] + ".png")), full_page=True
        )
    return reasons, len(local_imgs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="built site, e.g. _build/html")
    parser.add_argument("--toc", type=Path, required=True, help="Jupyter Book _toc.yml")
    parser.add_argument(
        "--screenshot-dir", type=Path, help="save a full-page PNG per page here"
    )
    args = parser.parse_args()
    html_dir: Path = args.html_dir.resolve()
    if args.screenshot_dir:
        args.screenshot_dir.mkdir(parents=True, exist_ok=True)
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")

    pages = toc_pages(args.toc)
    failed = 0
    server = start_server(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for rel in pages:
                if not (html_dir / rel).is_file():
                    reasons, n_imgs = [f"missing page file {html_dir / rel}"], 0
                else:
                    page = context.new_page()
                    try:
                        reasons, n_imgs = check_page(
                            page, base, rel, args.screenshot_dir
                        )
                    except Exception as exc:  # a timeout or crash fails only this page
                        first_line = (str(exc).splitlines() or [""])[0]
                        reasons, n_imgs = [f"{type(exc).__name__}: {first_line}"], 0
                    finally:
                        page.close()
                if reasons:
                    failed += 1
                    print(f"FAIL {rel}: {'; '.join(reasons)}", flush=True)
                else:
                    print(
                        f"ok   {rel} ({n_imgs} image{'' if n_imgs == 1 else 's'})",
                        flush=True,
                    )
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    print(f"site check: {len(pages)} pages, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
