"""Check a built Jupyter Book (1.x) HTML site in a real headless browser.

Usage:
    python .ci/check_site.py _build/html --toc _toc.yml [--screenshot-dir DIR]
        [--config _config.yml] [--max-page-mb 10]

Every `root`/`file` entry of the table of contents must exist as an HTML page.
The site is served from 127.0.0.1 and each page is loaded in Debian's Chromium
(or $CHROMIUM) through Playwright, with every other host unreachable. A page
fails, with one line naming each problem and where it is, when:

* it is not HTTP 200, or has no <h1>;
* it requests anything from another origin (a CDN, web fonts...): the site
  must work offline; or a same-origin resource fails (e.g. a 404);
* its math is not typeset: MathJax must load and finish, every Sphinx `.math`
  element must hold MathJax output (`mjx-container`), no `mjx-merror`, and no
  raw `\\(`, `\\[` or `$$` may be left in the text outside code;
* an <img> is broken, or it shows fewer figures or animation players than its
  source declares (below), or a player has fewer than 2 frames that load;
* a cell output shows a traceback or stderr (MyST-NB's `div.output.traceback`
  and `div.output.stderr`; cells tagged `raises-exception` are exempt), or a
  cell output or glued value (`{glue:text}`, `{glue}`) reads `nan`, `inf` or
  `None` as a word (cells tagged `allow-nan` are exempt: an output that must
  show one, e.g. a Box space's `-inf` bounds);
* a display equation, a code cell (folded ones included) or a table is wider
  than the text column at 1280 px (clipped: the reader must scroll sideways);
* the page throws an uncaught JavaScript error (KNOWN_JS_ERRORS aside);
* a notebook page's Colab launch link is not
  `<colab_url>/github/<owner>/<repo>/blob/<branch>/<path>.ipynb` (from
  `repository` and `launch_buttons` in _config.yml), or that `.ipynb` twin of
  the chapter is not in the repository;
* its download menu lacks the `.md` source or, for a notebook, the `.ipynb`,
  or a download link is not served;
* the page (its HTML plus every same-origin file it loads) is over
  --max-page-mb.

A chapter declares what it shows in the YAML front matter of its source (the
file the toc entry names); a page without an `rlbook:` block declares 0::

    rlbook:
      figures: 9      # at least this many figures (images from cell outputs,
                      # glued figures included)
      animations: 1   # at least this many matplotlib `to_jshtml` players

A full-page screenshot of each page goes to --screenshot-dir. The last line
gives the site's total size and its largest page. Exit status is 1 if any page
fails, else 0.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import yaml
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    sync_playwright,
)

SOURCE_SUFFIXES = (".md", ".ipynb", ".rst", ".myst", ".py", ".txt")
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
MATHJAX_TIMEOUT_MS = 30_000
MAX_PAGE_MB = 10.0
MIN_FRAMES = 2
SHOWN_PER_KIND = 3  # problems of one kind listed per page; the rest are counted
DEFAULT_COLAB_URL = "https://colab.research.google.com"
MB = 1e6
# Uncaught JavaScript errors fail a page, except these known harmless ones:
# sphinx-thebe 0.3.1 inlines its config script twice on every page, so the
# second `const THEBE_JS_URL = ...` throws; the first one stands, and thebe
# (not enabled in this book) would still work.
VIEWPORT = {"width": 1280, "height": 900}
"""The browser window: a common laptop screen, on which the book's text column
holds about 77 characters of code, 75 in a folded cell (chapters keep code
cells to 74)."""

KNOWN_JS_ERRORS = (
    re.compile(
        r"Identifier '(THEBE_JS_URL|thebe_selector\w*)' has already been declared"
    ),
)

# Runs in the page after `load`: waits for MathJax, then returns what the
# Python side judges. Nothing here decides pass or fail.
PAGE_PROBE_JS = r"""async ({imageTimeoutMs, mathTimeoutMs, colabUrl}) => {
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

  // --- MathJax: wait for the initial typeset, then inspect it.
  const math = {elements: 0, untypeset: [], overflow: [], errors: [], state: 'none', raw: []};
  const mathEls = [...document.querySelectorAll('.math')]
    .filter(el => !el.parentElement.closest('.math'));
  math.elements = mathEls.length;
  const MJ = window.MathJax;
  if (MJ && MJ.startup && MJ.startup.promise) {
    math.state = await Promise.race([
      MJ.startup.promise.then(() => 'ok', e => `failed: ${e}`),
      timeout(mathTimeoutMs, 'timeout'),
    ]);
  } else if (mathEls.length) {
    math.state = 'missing';
  }
  const items = (MJ && MJ.startup && MJ.startup.document && MJ.startup.document.math)
    ? [...MJ.startup.document.math] : [];
  const texOf = (container) => {
    const item = items.find(i => i.typesetRoot === container);
    return item ? item.math : (container.textContent || '');
  };
  for (const el of mathEls) {
    const box = el.querySelector('mjx-container');
    if (!box) {
      math.untypeset.push({tex: el.textContent.trim().slice(0, 80), where: where(el)});
    } else if (box.getAttribute('display') === 'true' && box.scrollWidth > box.clientWidth + 2) {
      math.overflow.push({tex: texOf(box).trim().slice(0, 80), where: where(el),
                          over: box.scrollWidth - box.clientWidth});
    }
  }
  for (const err of document.querySelectorAll('mjx-merror')) {
    const box = err.closest('mjx-container');
    math.errors.push({
      message: err.getAttribute('data-mjx-error') || err.textContent || 'error',
      tex: (box ? texOf(box) : '').trim().slice(0, 80),
      where: where(err),
    });
  }
  // Raw TeX delimiters left in text, outside code and MathJax output.
  const rawSkip = SKIP_TEXT + ', pre, code, .highlight, mjx-container, mjx-assistive-mml';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.nodeValue;
    const m = /\\\(|\\\[|\$\$/.exec(text);
    if (!m || node.parentElement.closest(rawSkip)) continue;
    math.raw.push({text: snippet(text, m.index, 2), where: where(node.parentElement)});
  }
  if (document.fonts) await Promise.race([document.fonts.ready, timeout(5000)]);

  // --- Notebook error outputs (tracebacks, stderr).
  const errors = new Set();
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
    errors.add(`${kind} output in ${where(out)}: ${(line || '').slice(0, 120)}`);
  }

  // --- nan / inf / None in outputs and glued values.
  const badWords = [];
  const outSel = '.cell_output, .output, .pasted-text, .pasted-inline, .pasted-block, .pasted-math';
  const outRoots = [...root.querySelectorAll(outSel)]
    .filter(el => !el.parentElement.closest(outSel));
  const WORD = /(?<![A-Za-z0-9_])(nan|NaN|NAN|inf|Inf|INF|Infinity|None)(?![A-Za-z0-9_])/;
  for (const out of outRoots) {
    const w = document.createTreeWalker(out, NodeFilter.SHOW_TEXT);
    for (let node = w.nextNode(); node; node = w.nextNode()) {
      const m = WORD.exec(node.nodeValue);
      if (!m || node.parentElement.closest(SKIP_TEXT + ', .tag_allow-nan')) continue;
      const glued = out.matches('.cell_output') ? 'cell output' : 'glued value';
      badWords.push({word: m[1], kind: glued, text: snippet(node.nodeValue, m.index, m[1].length),
                     where: where(out)});
    }
  }

  // --- Images: every <img> must load.
  const wait = (img) => Promise.race([
    img.decode().then(() => 'ok', () => 'broken'),
    timeout(imageTimeoutMs, 'timeout'),
  ]);
  const imgs = [...document.images];
  imgs.forEach(img => { img.loading = 'eager'; });
  const states = await Promise.all(imgs.map(wait));
  const images = imgs.map((img, i) => {
    let state = states[i];
    if (state !== 'timeout' && img.complete && img.naturalWidth === 0
        && !/\.svgz?($|[?#])/i.test(img.currentSrc || img.src)) state = 'broken';
    return {src: img.getAttribute('src') || '', url: img.currentSrc || img.src, state,
            where: where(img)};
  });

  // --- Figures: images from cell outputs, and glued ones, which MyST-NB
  // writes as _images/<sha256>.<ext> wherever they are pasted.
  const OUTPUT_IMAGE = /\/_images\/[0-9a-f]{64}\.[A-Za-z]+$/;
  let figures = 0;
  imgs.forEach((img, i) => {
    if (img.closest('.animation')) return;
    let path = '';
    try { path = new URL(img.src).pathname; } catch (e) { /* no src */ }
    if ((img.closest('.cell_output') || OUTPUT_IMAGE.test(path)) && images[i].state === 'ok')
      figures += 1;
  });

  // --- Animation players (matplotlib to_jshtml): `anim<id>` holds the frames.
  const animations = [];
  for (const div of root.querySelectorAll('.animation')) {
    const img = div.querySelector('img[id^="_anim_img"]');
    const id = img ? img.id.slice('_anim_img'.length) : '';
    const player = id ? window['anim' + id] : undefined;
    const frames = (player && player.frames) ? [...player.frames] : [];
    const ok = await Promise.all(frames.map(f => (f && f.src)
      ? Promise.race([f.decode().then(() => true, () => false), timeout(imageTimeoutMs, false)])
      : false));
    animations.push({id: img ? img.id : '(no player image)', initialised: !!player,
                     total: frames.length, loaded: ok.filter(Boolean).length, where: where(div)});
  }

  // --- Links: Colab launch button, download menu.
  const anchors = [...document.querySelectorAll('a[href]')];
  const colab = anchors.map(a => a.href).filter(h => h.startsWith(colabUrl + '/'));
  const downloads = [...document.querySelectorAll('.dropdown-download-buttons a[href],'
      + ' a.btn-download-source-button, a.btn-download-notebook-button')]
    .map(a => ({href: a.getAttribute('href'), url: a.href}));

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
      external.push({url: url.href, tag: el.tagName.toLowerCase(), where: where(el)});
  }

  // --- Notebook code a reader must scroll sideways to read (outputs may
  // scroll; package code shown by literalinclude keeps its 88 columns).
  const wideCode = [];
  for (const pre of root.querySelectorAll('.cell_input pre')) {
    if (pre.closest('.cell_output') || !pre.offsetParent) continue;
    if (pre.scrollWidth > pre.clientWidth + 2) {
      const longest = pre.textContent.split('\n').reduce((a, b) => b.length > a.length ? b : a, '');
      wideCode.push({where: where(pre), over: pre.scrollWidth - pre.clientWidth,
                     line: longest.trim().slice(0, 60)});
    }
  }

  // --- Tables a reader must scroll sideways to read: the theme wraps each in
  // a scrolling container, which hides the columns that do not fit.
  const wideTables = [];
  for (const table of root.querySelectorAll('table')) {
    if (!table.offsetParent) continue;
    const box = table.closest('.pst-scrollable-table-container') || table.parentElement;
    if (box.scrollWidth > box.clientWidth + 2) {
      const head = [...table.querySelectorAll('th')].map(th => th.textContent.trim());
      wideTables.push({where: where(table), over: box.scrollWidth - box.clientWidth,
                       head: head.join(' | ').slice(0, 60)});
    }
  }

  return {math, errors: [...errors], badWords, images, figures, animations, colab,
          downloads, external, wideCode, wideTables,
          hasH1: !!document.querySelector('h1')};
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    """Static file handler that does not log every request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class PageSpec:
    """One toc entry: its HTML page, its source, and what the source declares."""

    rel: str  # the page, relative to the site root: chapters/dqn_state.html
    docname: str  # the toc entry without suffix: chapters/dqn_state
    source: Path | None  # the source file in the repository, if found
    notebook: bool = False  # a Jupyter notebook (kernelspec in front matter, or .ipynb)
    figures: int = 0
    animations: int = 0


@dataclass
class SiteConfig:
    """What the checks need from _config.yml and the command line."""

    book_root: Path  # the toc's folder: chapter sources and their .ipynb twins
    colab_url: str = DEFAULT_COLAB_URL
    owner: str | None = None
    repo: str | None = None
    branch: str = "master"
    path_to_book: str = ""
    max_page_bytes: float = MAX_PAGE_MB * MB

    def colab_href(self, docname: str) -> str | None:
        if not (self.owner and self.repo):
            return None
        return (
            f"{self.colab_url}/github/{self.owner}/{self.repo}/blob/{self.branch}/"
            f"{self.notebook_path(docname)}"
        )

    def notebook_path(self, docname: str) -> str:
        prefix = self.path_to_book.strip("/")
        return f"{prefix}/{docname}.ipynb" if prefix else f"{docname}.ipynb"


@dataclass
class PageResult:
    reasons: list[str] = field(default_factory=list)
    summary: str = ""
    size: int = 0


def front_matter(source: Path) -> dict[str, Any]:
    """The YAML front matter of a Markdown file ({} when it has none)."""
    text = source.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    lines = text.splitlines()
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            data = yaml.safe_load("\n".join(lines[1:end]))
            return data if isinstance(data, dict) else {}
    return {}


def toc_docnames(toc_path: Path) -> list[str]:
    """The `root`/`file` entries of a jb-book toc, in order, without suffix."""
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    stem = node[key].strip().lstrip("/")
                    base, ext = os.path.splitext(stem)
                    name = base if ext.lower() in SOURCE_SUFFIXES else stem
                    if name not in names:
                        names.append(name)
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)

    walk(yaml.safe_load(toc_path.read_text(encoding="utf-8")))
    return names


def page_specs(toc_path: Path) -> list[PageSpec]:
    """Every toc page with its source file (next to the toc) and its declarations."""
    root = toc_path.resolve().parent
    specs = []
    for name in toc_docnames(toc_path):
        source = next(
            (
                root / f"{name}{s}"
                for s in SOURCE_SUFFIXES
                if (root / f"{name}{s}").is_file()
            ),
            None,
        )
        spec = PageSpec(rel=f"{name}.html", docname=name, source=source)
        if source is not None and source.suffix == ".ipynb":
            spec.notebook = True
            meta = json.loads(source.read_text(encoding="utf-8")).get("metadata", {})
            block = meta.get("rlbook") or {}
        elif source is not None:
            fm = front_matter(source)
            spec.notebook = "kernelspec" in fm
            block = fm.get("rlbook") or {}
        else:
            block = {}
        if isinstance(block, dict):
            spec.figures = int(block.get("figures") or 0)
            spec.animations = int(block.get("animations") or 0)
        specs.append(spec)
    return specs


def site_config(config_path: Path, book_root: Path, max_page_mb: float) -> SiteConfig:
    """Read the repository and Colab settings of a Jupyter Book _config.yml."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    repository = config.get("repository") or {}
    launch = config.get("launch_buttons") or {}
    site = SiteConfig(
        book_root=book_root,
        colab_url=(launch.get("colab_url") or DEFAULT_COLAB_URL).rstrip("/"),
        branch=str(repository.get("branch") or "master"),
        path_to_book=str(repository.get("path_to_book") or ""),
        max_page_bytes=max_page_mb * MB,
    )
    match = re.match(
        r"https?://github\.com/([^/]+)/([^/#?]+?)(?:\.git)?/?$",
        str(repository.get("url") or ""),
    )
    if match:
        site.owner, site.repo = match.groups()
    return site


def start_server(html_dir: Path) -> ThreadingHTTPServer:
    """Serve html_dir on 127.0.0.1 on a free port, in a daemon thread."""
    handler = functools.partial(QuietHandler, directory=str(html_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def listed(kind: str, items: list[str]) -> list[str]:
    """At most SHOWN_PER_KIND problems of one kind, then a count of the rest."""
    shown = items[:SHOWN_PER_KIND]
    if len(items) > SHOWN_PER_KIND:
        shown.append(f"... and {len(items) - SHOWN_PER_KIND} more {kind}")
    return shown


def http_status(url: str) -> tuple[int, bytes]:
    """GET a URL of the local server: (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError as exc:
        return 0, str(exc).encode()


def fmt_mb(size: float) -> str:
    return f"{size / MB:.1f} MB" if size >= 0.1 * MB else f"{size / 1e3:.0f} kB"


def check_math(math: dict[str, Any]) -> list[str]:
    reasons = []
    state = math["state"]
    if math["elements"] and state == "missing":
        reasons.append(
            f"math not typeset: MathJax did not load, {math['elements']} math"
            " element(s) show raw TeX"
        )
    elif state not in ("ok", "none"):
        reasons.append(f"MathJax {state} (after {MATHJAX_TIMEOUT_MS // 1000} s)")
    if math["untypeset"] and state != "missing":
        reasons += listed(
            "untypeset math elements",
            [
                f"math not typeset in {m['where']}: {m['tex']}"
                for m in math["untypeset"]
            ],
        )
    reasons += listed(
        "overflowing equations",
        [
            f"display math in {m['where']} is {m['over']} px wider than the column"
            f" (clipped, scrolls sideways): {m['tex']}"
            for m in math["overflow"]
        ],
    )
    reasons += listed(
        "MathJax errors",
        [
            f"MathJax error in {e['where']}: {e['message']} (TeX: {e['tex']})"
            for e in math["errors"]
        ],
    )
    reasons += listed(
        "raw TeX fragments",
        [f'raw TeX in text in {r["where"]}: "{r["text"]}"' for r in math["raw"]],
    )
    return reasons


def check_links(
    probe: dict[str, Any], spec: PageSpec, site: SiteConfig, page_url: str
) -> list[str]:
    reasons = []
    # Colab: the launch button opens the chapter's .ipynb twin on GitHub.
    expected = site.colab_href(spec.docname)
    if spec.notebook or probe["colab"]:
        if expected is None:
            reasons.append(
                "Colab link cannot be checked: repository.url in"
                " _config.yml is not a github.com/<owner>/<repo> URL"
            )
        elif not probe["colab"]:
            reasons.append(f"no Colab launch link (expected {expected})")
        for href in sorted(set(probe["colab"])):
            if expected is not None and href != expected:
                reasons.append(f"Colab link {href} is not {expected}")
        # The twin lies next to the source, in the book's folder.
        twin = site.book_root / f"{spec.docname}.ipynb"
        if not twin.is_file():
            reasons.append(
                f"Colab opens {site.notebook_path(spec.docname)}, which is not in"
                f" the repository ({twin} missing)"
            )
    # Download menu: the source, and for a notebook the .ipynb.
    wanted = []
    if spec.source is not None and spec.source.suffix == ".md":
        wanted.append(".md")
    if spec.notebook:
        wanted.append(".ipynb")
    links = {urlsplit(d["url"]).path.rsplit(".", 1)[-1]: d for d in probe["downloads"]}
    for suffix in wanted:
        link = links.get(suffix.lstrip("."))
        if link is None:
            reasons.append(f"download menu has no {suffix} link")
            continue
        status, body = http_status(urljoin(page_url, link["href"]))
        if status != 200:
            reasons.append(
                f"download {suffix} link {link['href']}: HTTP {status or body!r}"
            )
        elif suffix == ".ipynb":
            try:
                cells = json.loads(body).get("cells")
            except ValueError:
                cells = None
            if not isinstance(cells, list):
                reasons.append(f"download .ipynb link {link['href']} is not a notebook")
    return reasons


def check_page(
    page: Page,
    base: str,
    spec: PageSpec,
    site: SiteConfig,
    html_dir: Path,
    shot_dir: Path | None,
) -> PageResult:
    """Load one page and judge it."""
    origin = urlsplit(base).netloc
    failed_urls: dict[str, str] = {}
    external: dict[str, str] = {}  # url -> what loaded it
    loaded: set[str] = set()  # same-origin paths served
    js_errors: list[str] = []

    def same_origin(url: str) -> bool:
        return urlsplit(url).netloc == origin

    def ignorable(url: str) -> bool:
        # Chromium's own /favicon.ico probe is not part of the site.
        return urlsplit(url).path == "/favicon.ico"

    def on_request_url(url: str, what: str) -> None:
        scheme = urlsplit(url).scheme
        if scheme in ("http", "https", "ws", "wss", "ftp") and not same_origin(url):
            external.setdefault(url, what)

    def on_request(req: Request) -> None:
        on_request_url(req.url, req.resource_type)

    def on_response(resp: Response) -> None:
        if not same_origin(resp.url) or ignorable(resp.url):
            return
        if resp.status >= 400:
            failed_urls[resp.url] = f"HTTP {resp.status}"
        else:
            loaded.add(unquote(urlsplit(resp.url).path))

    def on_request_failed(req: Request) -> None:
        if same_origin(req.url) and not ignorable(req.url):
            failed_urls.setdefault(req.url, req.failure or "request failed")

    def on_console(msg: ConsoleMessage) -> None:
        url = msg.location.get("url", "")
        if (
            msg.type == "error"
            and "Failed to load resource" in msg.text
            and same_origin(url)
            and not ignorable(url)
        ):
            failed_urls.setdefault(url, msg.text)

    page.on("request", on_request)
    page.on("websocket", lambda ws: on_request_url(ws.url, "websocket"))
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: js_errors.append(str(exc).splitlines()[0][:160]))

    result = PageResult()
    reasons = result.reasons
    page_url = f"{base}/{spec.rel}"
    response = page.goto(page_url, wait_until="load", timeout=NAV_TIMEOUT_MS)
    if response is None or response.status != 200:
        reasons.append(f"HTTP status {response.status if response else 'none'}")
        return result
    probe = page.evaluate(
        PAGE_PROBE_JS,
        {
            "imageTimeoutMs": IMAGE_TIMEOUT_MS,
            "mathTimeoutMs": MATHJAX_TIMEOUT_MS,
            "colabUrl": site.colab_url,
        },
    )
    reasons += listed(
        "code blocks wider than the column",
        [
            f"code in {c['where']} is {c['over']} px wider than its block at "
            f"{VIEWPORT['width']} px (scrolls sideways): {c['line']!r}"
            for c in probe["wideCode"]
        ],
    )
    reasons += listed(
        "tables wider than the column",
        [
            f"table in {t['where']} is {t['over']} px wider than the column at "
            f"{VIEWPORT['width']} px (scrolls sideways): {t['head']!r}"
            for t in probe["wideTables"]
        ],
    )
    if not probe["hasH1"]:
        reasons.append("no <h1>")
    reasons += check_math(probe["math"])
    reasons += listed("error outputs", probe["errors"])
    reasons += listed(
        "nan/inf/None values",
        [
            f"'{b['word']}' in {b['kind']} in {b['where']}: \"{b['text']}\""
            for b in probe["badWords"]
        ],
    )

    # Images, figures, animations.
    local_imgs = [
        i for i in probe["images"] if same_origin(i["url"]) or i["url"][:5] == "data:"
    ]
    for img in local_imgs:
        if img["state"] != "ok":
            state = "broken" if img["state"] == "broken" else "unloaded"
            reasons.append(
                f"{state} image in {img['where']}: {(img['src'] or '(empty src)')[:100]}"
            )
            failed_urls.pop(img["url"], None)
    if probe["figures"] < spec.figures:
        reasons.append(
            f"{probe['figures']} figure(s) shown, {spec.figures} declared in"
            f" {spec.source.name if spec.source else 'the source'}"
        )
    players = probe["animations"]
    if len(players) < spec.animations:
        reasons.append(
            f"{len(players)} animation player(s) shown, {spec.animations} declared"
        )
    for a in players:
        if not a["initialised"]:
            reasons.append(
                f"animation {a['id']} in {a['where']}: player has no frames"
                " (its script did not create it)"
            )
        elif a["loaded"] < MIN_FRAMES:
            reasons.append(
                f"animation {a['id']} in {a['where']}: {a['loaded']} of {a['total']}"
                f" frame(s) load, needs at least {MIN_FRAMES}"
            )

    reasons += check_links(probe, spec, site, page_url)

    if shot_dir is not None:
        page.screenshot(
            path=str(shot_dir / (spec.rel.replace("/", "__")[:-5] + ".png")),
            full_page=True,
        )

    # Requests made by the page, to this site and elsewhere.
    for ext in probe["external"]:
        external.setdefault(ext["url"], f"<{ext['tag']}> in {ext['where']}")
    for url, what in sorted(external.items()):
        reasons.append(f"request to another origin ({what}): {url}")
    for url, why in sorted(failed_urls.items()):
        reasons.append(f"same-origin resource failed ({why}): {urlsplit(url).path}")
    reasons += listed(
        "JavaScript errors",
        [
            f"JavaScript error: {e}"
            for e in js_errors
            if not any(known.search(e) for known in KNOWN_JS_ERRORS)
        ],
    )

    # Size: the HTML file and every same-origin file the page loaded.
    loaded.add("/" + spec.rel)
    files = {html_dir / p.lstrip("/") for p in loaded}
    result.size = sum(f.stat().st_size for f in files if f.is_file())
    if result.size > site.max_page_bytes:
        reasons.append(
            f"page size {fmt_mb(result.size)} (HTML and {len(files) - 1} files it"
            f" loads) is over {fmt_mb(site.max_page_bytes)}"
        )
    result.reasons[:] = list(dict.fromkeys(reasons))  # one line per distinct problem
    n_players = len(players)
    result.summary = (
        f"{len(local_imgs)} images, {probe['figures']} figures, {n_players} animations,"
        f" {probe['math']['elements']} math, {fmt_mb(result.size)}"
    )
    return result


def check_site(
    html_dir: Path,
    toc: Path,
    config: Path | None = None,
    screenshot_dir: Path | None = None,
    max_page_mb: float = MAX_PAGE_MB,
    chromium: str | None = None,
    out: Any = None,
) -> int:
    """Check every toc page of a built site; print one line per page; return #failed."""
    out = out or sys.stdout
    html_dir = html_dir.resolve()
    config = config or toc.resolve().parent / "_config.yml"
    if not config.is_file():
        print(f"FAIL config: {config} not found (use --config)", file=out)
        return 1
    site = site_config(config, toc.resolve().parent, max_page_mb)
    specs = page_specs(toc)
    if screenshot_dir is not None:
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    chromium = chromium or os.environ.get("CHROMIUM", "/usr/bin/chromium")

    failed = 0
    largest = ("", 0)
    server = start_server(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as p:
            browser: Browser = p.chromium.launch(
                executable_path=chromium, args=LAUNCH_ARGS
            )
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
                    print(
                        f"FAIL {spec.rel}{size}: {'; '.join(result.reasons)}",
                        file=out,
                        flush=True,
                    )
                else:
                    print(f"ok   {spec.rel} ({result.summary})", file=out, flush=True)
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
    parser.add_argument("--toc", type=Path, required=True, help="Jupyter Book _toc.yml")
    parser.add_argument(
        "--config",
        type=Path,
        help="Jupyter Book _config.yml (default: next to the toc)",
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
    failed = check_site(
        args.html_dir, args.toc, args.config, args.screenshot_dir, args.max_page_mb
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
