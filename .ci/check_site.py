"""Check a built Jupyter Book (1.x) HTML site in a real headless browser.

Usage:
    python .ci/check_site.py _build/html --toc _toc.yml [--screenshot-dir DIR]
        [--max-page-mb 10]

Every page of the toc is loaded in Chromium with no network; what makes a page
fail, and how a chapter declares its figures and animations, is in
.ci/README.md. Exit status is 1 if any page fails, else 0.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import yaml
from playwright.sync_api import ConsoleMessage, Page, Request, Response, sync_playwright

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
MAX_PAGE_MB = 10.0
SHOWN_PER_KIND = 3  # problems of one kind listed per page; the rest are counted
MB = 1e6
# A common laptop screen, on which the book's text column holds about 77
# characters of code, 75 in a folded cell (chapters keep code cells to 74).
VIEWPORT = {"width": 1280, "height": 900}
# Uncaught JavaScript errors fail a page, except these known harmless ones:
# sphinx-thebe 0.3.1 inlines its config script twice on every page, so the
# second `const THEBE_JS_URL = ...` throws; the first one stands, and thebe
# (not enabled in this book) would still work.
KNOWN_JS_ERROR = re.compile(
    r"Identifier '(THEBE_JS_URL|thebe_selector\w*)' has already been declared"
)

# Runs in the page after `load`: waits for MathJax, then returns the page's
# problems as {kind: [one line each]}, and what the Python side checks itself.
PAGE_PROBE_JS = r"""async ({figuresDeclared, animationsDeclared, source, colabUrl}) => {
  const IMAGE_TIMEOUT_MS = 10000, MATH_TIMEOUT_MS = 30000, MIN_FRAMES = 2;
  const problems = {};
  const fail = (kind, line) => (problems[kind] = problems[kind] || []).push(line);
  const root = document.querySelector('main') || document.body;
  const timeout = (ms, value) => new Promise(r => setTimeout(() => r(value), ms));
  const where = (el) => {
    const sec = el.closest('section[id]');
    const cell = el.closest('.cell');
    const parts = [];
    if (cell && cell.id) parts.push(`cell #${cell.id}`);
    if (sec) parts.push(`section #${sec.id}`);
    return parts.length ? parts.join(', ') : el.closest('head') ? '<head>' : 'page';
  };
  const snippet = (text, index, len) =>
    text.slice(Math.max(0, index - 30), index + len + 30).replace(/\s+/g, ' ').trim();
  const SKIP_TEXT = 'script, style, noscript, template, textarea';
  const width = window.innerWidth;

  // --- MathJax: wait for the initial typeset, then inspect it.
  const mathEls = [...document.querySelectorAll('.math')]
    .filter(el => !el.parentElement.closest('.math'));
  const MJ = window.MathJax;
  let mathState = 'none';
  if (MJ && MJ.startup && MJ.startup.promise) {
    mathState = await Promise.race([
      MJ.startup.promise.then(() => 'ok', e => `failed: ${e}`),
      timeout(MATH_TIMEOUT_MS, 'timeout'),
    ]);
  } else if (mathEls.length) {
    mathState = 'missing';
    fail('math', `math not typeset: MathJax did not load, ${mathEls.length} math`
                 + ' element(s) show raw TeX');
  }
  if (mathState !== 'ok' && mathState !== 'none' && mathState !== 'missing')
    fail('math', `MathJax ${mathState} (after ${MATH_TIMEOUT_MS / 1000} s)`);
  const items = (MJ && MJ.startup && MJ.startup.document && MJ.startup.document.math)
    ? [...MJ.startup.document.math] : [];
  const texOf = (container) => {
    const item = items.find(i => i.typesetRoot === container);
    return (item ? item.math : (container.textContent || '')).trim().slice(0, 80);
  };
  for (const el of mathEls) {
    const box = el.querySelector('mjx-container');
    if (!box) {
      if (mathState !== 'missing')
        fail('untypeset math elements',
             `math not typeset in ${where(el)}: ${el.textContent.trim().slice(0, 80)}`);
    } else if (box.getAttribute('display') === 'true' && box.scrollWidth > box.clientWidth + 2) {
      fail('overflowing equations', `display math in ${where(el)} is `
           + `${box.scrollWidth - box.clientWidth} px wider than the column`
           + ` (clipped, scrolls sideways): ${texOf(box)}`);
    }
  }
  for (const err of document.querySelectorAll('mjx-merror')) {
    const box = err.closest('mjx-container');
    const message = err.getAttribute('data-mjx-error') || err.textContent || 'error';
    fail('MathJax errors',
         `MathJax error in ${where(err)}: ${message} (TeX: ${box ? texOf(box) : ''})`);
  }
  // Raw TeX delimiters left in text, outside code and MathJax output.
  const rawSkip = SKIP_TEXT + ', pre, code, .highlight, mjx-container, mjx-assistive-mml';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.nodeValue;
    const m = /\\\(|\\\[|\$\$/.exec(text);
    if (!m || node.parentElement.closest(rawSkip)) continue;
    fail('raw TeX fragments',
         `raw TeX in text in ${where(node.parentElement)}: "${snippet(text, m.index, 2)}"`);
  }
  if (document.fonts) await Promise.race([document.fonts.ready, timeout(5000)]);

  // --- Notebook error outputs (tracebacks, stderr); `raises-exception` cells aside.
  const bad = '.output.traceback, .output.stderr, .output.error, .cell_output .traceback,'
            + ' .cell_output .stderr, .cell_output .error';
  const hits = [...root.querySelectorAll(bad)];
  for (const el of root.querySelectorAll('.cell_output pre, .cell_output div'))
    if (el.textContent.includes('Traceback (most recent call last)')) hits.push(el);
  for (const el of hits) {
    if (el.closest('.tag_raises-exception')) continue;
    const out = el.closest('.output') || el;
    const kind = out.classList.contains('stderr') ? 'stderr' : 'traceback/error';
    const text = (out.querySelector('pre') || out).textContent;
    const lines = text.split('\n').map(s => s.trim()).filter(Boolean);
    const line = kind === 'stderr' ? lines[0] : lines[lines.length - 1];
    fail('error outputs', `${kind} output in ${where(out)}: ${(line || '').slice(0, 120)}`);
  }

  // --- nan / inf / None in outputs and glued values; `allow-nan` cells aside.
  const outSel = '.cell_output, .output, .pasted-text, .pasted-inline, .pasted-block, .pasted-math';
  const outRoots = [...root.querySelectorAll(outSel)]
    .filter(el => !el.parentElement.closest(outSel));
  const WORD = /(?<![A-Za-z0-9_])(nan|NaN|NAN|inf|Inf|INF|Infinity|None)(?![A-Za-z0-9_])/;
  for (const out of outRoots) {
    const w = document.createTreeWalker(out, NodeFilter.SHOW_TEXT);
    for (let node = w.nextNode(); node; node = w.nextNode()) {
      const m = WORD.exec(node.nodeValue);
      if (!m || node.parentElement.closest(SKIP_TEXT + ', .tag_allow-nan')) continue;
      const kind = out.matches('.cell_output') ? 'cell output' : 'glued value';
      fail('nan/inf/None values', `'${m[1]}' in ${kind} in ${where(out)}: `
           + `"${snippet(node.nodeValue, m.index, m[1].length)}"`);
    }
  }

  // --- Images: every local <img> must load.
  const imgs = [...document.images];
  imgs.forEach(img => { img.loading = 'eager'; });
  const states = await Promise.all(imgs.map(img => Promise.race([
    img.decode().then(() => 'ok', () => 'broken'),
    timeout(IMAGE_TIMEOUT_MS, 'unloaded'),
  ])));
  const badImages = [];
  let localImages = 0;
  imgs.forEach((img, i) => {
    const url = img.currentSrc || img.src;
    if (!url.startsWith(location.origin + '/') && !url.startsWith('data:')) return;
    localImages += 1;
    if (states[i] === 'ok' && img.complete && img.naturalWidth === 0
        && !/\.svgz?($|[?#])/i.test(url)) states[i] = 'broken';
    if (states[i] === 'ok') return;
    badImages.push(url);
    fail('images', `${states[i]} image in ${where(img)}: `
         + (img.getAttribute('src') || '(empty src)').slice(0, 100));
  });

  // --- Figures: images from cell outputs, and glued ones, which MyST-NB
  // writes as _images/<sha256>.<ext> wherever they are pasted.
  const OUTPUT_IMAGE = /\/_images\/[0-9a-f]{64}\.[A-Za-z]+$/;
  let figures = 0;
  imgs.forEach((img, i) => {
    if (img.closest('.animation')) return;
    let path = '';
    try { path = new URL(img.src).pathname; } catch (e) { /* no src */ }
    if ((img.closest('.cell_output') || OUTPUT_IMAGE.test(path)) && states[i] === 'ok')
      figures += 1;
  });
  if (figures < figuresDeclared)
    fail('figures', `${figures} figure(s) shown, ${figuresDeclared} declared in ${source}`);

  // --- Animation players (matplotlib to_jshtml): `anim<id>` holds the frames.
  const players = [...root.querySelectorAll('.animation')];
  if (players.length < animationsDeclared)
    fail('animations', `${players.length} animation player(s) shown, `
         + `${animationsDeclared} declared`);
  for (const div of players) {
    const img = div.querySelector('img[id^="_anim_img"]');
    const player = img ? window['anim' + img.id.slice('_anim_img'.length)] : undefined;
    const name = `animation ${img ? img.id : '(no player image)'} in ${where(div)}`;
    if (!player) {
      fail('animations', `${name}: player has no frames (its script did not create it)`);
      continue;
    }
    const frames = player.frames ? [...player.frames] : [];
    const ok = await Promise.all(frames.map(f => (f && f.src)
      ? Promise.race([f.decode().then(() => true, () => false),
                      timeout(IMAGE_TIMEOUT_MS, false)])
      : false));
    const loaded = ok.filter(Boolean).length;
    if (loaded < MIN_FRAMES)
      fail('animations', `${name}: ${loaded} of ${frames.length} frame(s) load,`
           + ` needs at least ${MIN_FRAMES}`);
  }

  // --- Notebook code a reader must scroll sideways to read (outputs may
  // scroll; package code shown by literalinclude keeps its 88 columns).
  for (const pre of root.querySelectorAll('.cell_input pre')) {
    if (pre.closest('.cell_output') || !pre.offsetParent) continue;
    if (pre.scrollWidth > pre.clientWidth + 2) {
      const longest = pre.textContent.split('\n')
        .reduce((a, b) => b.length > a.length ? b : a, '');
      fail('code blocks wider than the column', `code in ${where(pre)} is `
           + `${pre.scrollWidth - pre.clientWidth} px wider than its block at ${width} px`
           + ` (scrolls sideways): '${longest.trim().slice(0, 60)}'`);
    }
  }

  // --- Tables a reader must scroll sideways to read: the theme wraps each in
  // a scrolling container, which hides the columns that do not fit.
  for (const table of root.querySelectorAll('table')) {
    if (!table.offsetParent) continue;
    const box = table.closest('.pst-scrollable-table-container') || table.parentElement;
    if (box.scrollWidth > box.clientWidth + 2) {
      const head = [...table.querySelectorAll('th')].map(th => th.textContent.trim());
      fail('tables wider than the column', `table in ${where(table)} is `
           + `${box.scrollWidth - box.clientWidth} px wider than the column at ${width} px`
           + ` (scrolls sideways): '${head.join(' | ').slice(0, 60)}'`);
    }
  }
  if (!document.querySelector('h1')) fail('headings', 'no <h1>');

  // --- Resources the markup points at on another origin (loaded or not).
  const external = [];
  const LOADING_REL = new RegExp('(^|\\s)(stylesheet|preload|modulepreload|prefetch|'
      + 'preconnect|dns-prefetch|icon|manifest)(\\s|$)', 'i');
  const refs = [['script[src]', 'src'], ['link[href]', 'href'], ['img[src]', 'src'],
                ['iframe[src]', 'src'], ['source[src]', 'src'], ['video[src]', 'src'],
                ['audio[src]', 'src'], ['embed[src]', 'src'], ['object[data]', 'data'],
                ['video[poster]', 'poster']];
  for (const [sel, attr] of refs) for (const el of document.querySelectorAll(sel)) {
    if (el.tagName === 'LINK' && !LOADING_REL.test(el.rel)) continue;
    let url;
    try { url = new URL(el.getAttribute(attr), document.baseURI); } catch (e) { continue; }
    if (/^(https?|wss?|ftp):$/.test(url.protocol) && url.origin !== location.origin)
      external.push([url.href, `<${el.tagName.toLowerCase()}> in ${where(el)}`]);
  }

  const anchors = [...document.querySelectorAll('a[href]')];
  const downloads = [...document.querySelectorAll('.dropdown-download-buttons a[href],'
      + ' a.btn-download-source-button, a.btn-download-notebook-button')];
  return {
    problems, external, badImages,
    colab: anchors.map(a => a.href).filter(h => h.startsWith(colabUrl + '/')),
    downloads: downloads.map(a => [a.getAttribute('href'), a.href]),
    summary: `${localImages} images, ${figures} figures, ${players.length} animations,`
             + ` ${mathEls.length} math`,
  };
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    """Static file handler that does not log every request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class PageSpec:
    """One toc entry: its HTML page, its source, and what the source declares."""

    docname: str  # the toc entry without suffix: chapters/dqn_state
    source: Path | None  # the Markdown source next to the toc, if there is one
    notebook: bool = False  # a Jupyter notebook (kernelspec in front matter)
    figures: int = 0
    animations: int = 0

    @property
    def rel(self) -> str:
        return f"{self.docname}.html"


@dataclass
class Site:
    """What the checks need from _config.yml and the command line."""

    book_root: Path  # the toc's folder: chapter sources and their .ipynb twins
    colab_url: str
    colab_repo: str  # <colab_url>/github/<owner>/<repo>/blob/<branch>
    path_to_book: str
    max_page_bytes: float

    def notebook_path(self, docname: str) -> str:
        return f"{self.path_to_book}{docname}.ipynb"


@dataclass
class PageResult:
    reasons: list[str] = field(default_factory=list)
    summary: str = ""
    size: int = 0


def page_specs(toc_path: Path) -> list[PageSpec]:
    """Every `root`/`file` entry of the toc, with what its source declares.

    A page declares its figures and animations in the `rlbook:` block of its
    YAML front matter (0 without one).
    """
    root = toc_path.parent
    specs = []
    for line in toc_path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*(?:-\s*)?(?:file|root):\s*(\S+)", line.split("#")[0])
        if not match:
            continue
        name = re.sub(r"\.(md|ipynb)$", "", match.group(1).lstrip("/"))
        source = root / f"{name}.md"
        if not source.is_file():
            specs.append(PageSpec(name, None))
            continue
        text = source.read_text(encoding="utf-8")
        found = re.match(r"---\n(.*?)\n---$", text, re.DOTALL | re.MULTILINE)
        meta = (yaml.safe_load(found.group(1)) if found else None) or {}
        block = meta.get("rlbook") or {}
        specs.append(
            PageSpec(
                name,
                source,
                notebook="kernelspec" in meta,
                figures=int(block.get("figures") or 0),
                animations=int(block.get("animations") or 0),
            )
        )
    return specs


def read_site(config_path: Path, book_root: Path, max_page_mb: float) -> Site:
    """The repository and Colab settings of a Jupyter Book _config.yml."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    repository = config.get("repository") or {}
    launch = config.get("launch_buttons") or {}
    colab_url = launch.get("colab_url") or "https://colab.research.google.com"
    colab_url = colab_url.rstrip("/")
    match = re.match(
        r"https?://github\.com/([^/]+)/([^/#?]+?)(?:\.git)?/?$",
        str(repository.get("url") or ""),
    )
    if not match:
        raise SystemExit(
            f"{config_path}: repository.url is not a github.com/<owner>/<repo> URL,"
            " so no Colab link can be checked"
        )
    owner, repo = match.groups()
    branch = repository.get("branch") or "master"
    colab_repo = f"{colab_url}/github/{owner}/{repo}/blob/{branch}"
    prefix = str(repository.get("path_to_book") or "").strip("/")
    return Site(
        book_root,
        colab_url,
        colab_repo,
        f"{prefix}/" if prefix else "",
        max_page_mb * MB,
    )


def listed(kind: str, items: list[str]) -> list[str]:
    """At most SHOWN_PER_KIND problems of one kind, then a count of the rest."""
    shown = items[:SHOWN_PER_KIND]
    if len(items) > SHOWN_PER_KIND:
        shown.append(f"... and {len(items) - SHOWN_PER_KIND} more {kind}")
    return shown


def fmt_mb(size: float) -> str:
    return f"{size / MB:.1f} MB" if size >= 0.1 * MB else f"{size / 1e3:.0f} kB"


def check_links(
    page: Page, probe: dict[str, Any], spec: PageSpec, site: Site, page_url: str
) -> list[str]:
    reasons = []
    # Colab: the launch button opens the chapter's .ipynb twin on GitHub.
    if spec.notebook or probe["colab"]:
        expected = f"{site.colab_repo}/{site.notebook_path(spec.docname)}"
        if not probe["colab"]:
            reasons.append(f"no Colab launch link (expected {expected})")
        for href in sorted(set(probe["colab"]) - {expected}):
            reasons.append(f"Colab link {href} is not {expected}")
        twin = site.book_root / f"{spec.docname}.ipynb"
        if not twin.is_file():
            reasons.append(
                f"Colab opens {site.notebook_path(spec.docname)}, which is not in"
                f" the repository ({twin} missing)"
            )
    # Download menu: the .md source, and for a notebook the .ipynb.
    links = {
        urlsplit(url).path.rsplit(".", 1)[-1]: href for href, url in probe["downloads"]
    }
    wanted = [".md"] if spec.source is not None else []
    for suffix in wanted + ([".ipynb"] if spec.notebook else []):
        href = links.get(suffix[1:])
        if href is None:
            reasons.append(f"download menu has no {suffix} link")
            continue
        response = page.request.get(urljoin(page_url, href), fail_on_status_code=False)
        if response.status != 200:
            reasons.append(f"download {suffix} link {href}: HTTP {response.status}")
        elif suffix == ".ipynb":
            try:
                cells = response.json().get("cells")
            except ValueError:
                cells = None
            if not isinstance(cells, list):
                reasons.append(f"download .ipynb link {href} is not a notebook")
    return reasons


def check_page(
    page: Page,
    base: str,
    spec: PageSpec,
    site: Site,
    html_dir: Path,
    shots: Path | None,
) -> PageResult:
    """Load one page and judge it."""
    origin = urlsplit(base).netloc
    failed_urls: dict[str, str] = {}
    external: dict[str, str] = {}  # url -> what loaded it
    loaded: set[str] = {"/" + spec.rel}  # same-origin paths served
    js_errors: list[str] = []

    def local(url: str) -> bool:
        # Chromium's own /favicon.ico probe is not part of the site.
        parts = urlsplit(url)
        return parts.netloc == origin and parts.path != "/favicon.ico"

    def on_request_url(url: str, what: str) -> None:
        parts = urlsplit(url)
        if (
            parts.scheme in ("http", "https", "ws", "wss", "ftp")
            and parts.netloc != origin
        ):
            external.setdefault(url, what)

    def on_response(resp: Response) -> None:
        if not local(resp.url):
            return
        if resp.status >= 400:
            failed_urls[resp.url] = f"HTTP {resp.status}"
        else:
            loaded.add(unquote(urlsplit(resp.url).path))

    def on_request_failed(req: Request) -> None:
        if local(req.url):
            failed_urls.setdefault(req.url, req.failure or "request failed")

    def on_console(msg: ConsoleMessage) -> None:
        url = msg.location.get("url", "")
        if msg.type == "error" and "Failed to load resource" in msg.text and local(url):
            failed_urls.setdefault(url, msg.text)

    page.on("request", lambda req: on_request_url(req.url, req.resource_type))
    page.on("websocket", lambda ws: on_request_url(ws.url, "websocket"))
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: js_errors.append(str(exc).splitlines()[0][:160]))

    result = PageResult()
    page_url = f"{base}/{spec.rel}"
    response = page.goto(page_url, wait_until="load", timeout=NAV_TIMEOUT_MS)
    if response is None or response.status != 200:
        result.reasons.append(f"HTTP status {response.status if response else 'none'}")
        return result
    probe = page.evaluate(
        PAGE_PROBE_JS,
        {
            "figuresDeclared": spec.figures,
            "animationsDeclared": spec.animations,
            "source": spec.source.name if spec.source else "the source",
            "colabUrl": site.colab_url,
        },
    )
    reasons = []
    for kind, lines in probe["problems"].items():
        reasons += listed(kind, lines)
    for url in probe["badImages"]:
        failed_urls.pop(url, None)  # already reported as a broken image
    reasons += check_links(page, probe, spec, site, page_url)
    if shots is not None:
        page.screenshot(
            path=str(shots / (spec.docname.replace("/", "__") + ".png")), full_page=True
        )
    for url, what in probe["external"]:
        external.setdefault(url, what)
    for url, what in sorted(external.items()):
        reasons.append(f"request to another origin ({what}): {url}")
    for url, why in sorted(failed_urls.items()):
        reasons.append(f"same-origin resource failed ({why}): {urlsplit(url).path}")
    unknown = [e for e in js_errors if not KNOWN_JS_ERROR.search(e)]
    reasons += listed("JavaScript errors", [f"JavaScript error: {e}" for e in unknown])

    # Size: the HTML file and every same-origin file the page loaded.
    files = {html_dir / p.lstrip("/") for p in loaded}
    result.size = sum(f.stat().st_size for f in files if f.is_file())
    if result.size > site.max_page_bytes:
        reasons.append(
            f"page size {fmt_mb(result.size)} (HTML and {len(files) - 1} files it"
            f" loads) is over {fmt_mb(site.max_page_bytes)}"
        )
    result.reasons = list(dict.fromkeys(reasons))  # one line per distinct problem
    result.summary = f"{probe['summary']}, {fmt_mb(result.size)}"
    return result


def check_site(
    html_dir: Path,
    toc: Path,
    screenshot_dir: Path | None = None,
    max_page_mb: float = MAX_PAGE_MB,
    chromium: str | None = None,
    out: Any = None,
) -> int:
    """Check every toc page of a built site; print one line per page; return #failed."""
    out = out or sys.stdout
    html_dir = html_dir.resolve()
    toc = toc.resolve()
    site = read_site(toc.parent / "_config.yml", toc.parent, max_page_mb)
    specs = page_specs(toc)
    if screenshot_dir is not None:
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    chromium = chromium or os.environ.get("CHROMIUM", "/usr/bin/chromium")

    failed = 0
    largest = ("", 0)
    handler = functools.partial(QuietHandler, directory=str(html_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            context = browser.new_context(viewport=VIEWPORT)
            for spec in specs:
                if not (html_dir / spec.rel).is_file():
                    result = PageResult([f"missing page file {html_dir / spec.rel}"])
                else:
                    page = context.new_page()
                    try:
                        result = check_page(
                            page, base, spec, site, html_dir, screenshot_dir
                        )
                    except Exception as exc:  # a timeout or crash fails only this page
                        first_line = (str(exc).splitlines() or [""])[0]
                        result = PageResult([f"{type(exc).__name__}: {first_line}"])
                    finally:
                        page.close()
                if result.size > largest[1]:
                    largest = (spec.rel, result.size)
                if result.reasons:
                    failed += 1
                    size = f" ({fmt_mb(result.size)})" if result.size else ""
                    line = f"FAIL {spec.rel}{size}: {'; '.join(result.reasons)}"
                else:
                    line = f"ok   {spec.rel} ({result.summary})"
                print(line, file=out, flush=True)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    site_files = [f for f in html_dir.rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in site_files)
    print(
        f"site check: {len(specs)} pages, {failed} failed; site {fmt_mb(total)} in"
        f" {len(site_files)} files; largest page {largest[0] or '-'} {fmt_mb(largest[1])}"
        f" (limit {fmt_mb(max_page_mb * MB)})",
        file=out,
        flush=True,
    )
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="built site, e.g. _build/html")
    parser.add_argument(
        "--toc",
        type=Path,
        required=True,
        help="Jupyter Book _toc.yml (its"
        " _config.yml and the chapter sources lie next to it)",
    )
    parser.add_argument(
        "--screenshot-dir", type=Path, help="save a full-page PNG per page here"
    )
    parser.add_argument(
        "--max-page-mb",
        type=float,
        default=MAX_PAGE_MB,
        help=f"fail a page over this many MB (default {MAX_PAGE_MB:g})",
    )
    args = parser.parse_args(argv)
    failed = check_site(args.html_dir, args.toc, args.screenshot_dir, args.max_page_mb)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
