"""Copy a pinned, checksum-verified MathJax 3 into _vendor/mathjax/ for the site.

    python scripts/vendor_mathjax.py [--dest _vendor/mathjax]

The built site must work offline, so it serves MathJax itself (Sphinx serves
DEST as `_static/mathjax/`, see _config.yml), copied from the PyPI package
`django-static-mathjax` (pinned in requirements.txt; it needs no Django):
the combined `tex-mml-chtml.js` and what it loads on demand (fonts, TeX
extensions, menu, accessibility), checked against the digest pinned below.
Does nothing when DEST already holds exactly those files; exit status 1 with
one `error:` line saying what to do when the package is missing, at another
version, or does not match the digest.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from importlib import metadata
from pathlib import Path

from rlbook.safeload import file_sha256

DIST = "django-static-mathjax"
VERSION = "3.2.2.1"
MATHJAX = "3.2.2"  # the MathJax release it holds
# Inside the installed package: <site-packages>/mathjax/static/mathjax/es5/
ES5 = Path("mathjax", "static", "mathjax", "es5")
# What the site serves, relative to ES5: the one combined component Sphinx
# loads, and every folder it may load more from (fonts, TeX extensions such as
# \boldsymbol or \cancel, and what the right-click menu offers).
ENTRY = "tex-mml-chtml.js"
LICENSE = "LICENSE"  # MathJax's Apache-2.0 license, one folder up from es5/
FOLDERS = ("a11y", "input", "output", "sre", "ui")
# SHA-256 of the manifest: one line "<sha256 of file>  <path>\n" per file,
# sorted by path. For a new pinned VERSION only, after checking its files:
# tree_digest(source_dir()).
TREE_SHA256 = "9d1e921901698ef2c4f1016d1cb6ec14c8f5d9a414c697f96ebbe656544dc11f"
FILE_COUNT = 92
DEFAULT_DEST = Path(__file__).resolve().parent.parent / "_vendor" / "mathjax"


class VendorError(Exception):
    """Something the reader must fix; the message says what."""


def tree_files(root: Path) -> list[str]:
    """Paths (posix, relative to root) of the files the site serves."""
    files = [ENTRY] if (root / ENTRY).is_file() else []
    for folder in FOLDERS:
        files += [
            p.relative_to(root).as_posix()
            for p in (root / folder).rglob("*")
            if p.is_file()
        ]
    return sorted(files)


def tree_digest(root: Path) -> tuple[str, int]:
    """(SHA-256 of the manifest of root's served files, number of files)."""
    files = tree_files(root)
    manifest = "".join(f"{file_sha256(root / rel)}  {rel}\n" for rel in files)
    return hashlib.sha256(manifest.encode()).hexdigest(), len(files)


def source_dir() -> Path:
    """The es5 folder of the installed, pinned package."""
    fix = f"install it: .venv/bin/pip install {DIST}=={VERSION} (requirements.txt pins it)"
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise VendorError(f"{DIST} is not installed; {fix}") from None
    if dist.version != VERSION:
        raise VendorError(f"{DIST} {dist.version} is installed, not {VERSION}; {fix}")
    return Path(str(dist.locate_file(ES5)))  # check() says if files are missing


def check(root: Path, what: str) -> None:
    """Fail unless root holds the pinned files (LICENSE aside, which is not in es5/)."""
    digest, count = tree_digest(root)
    if digest != TREE_SHA256 or count != FILE_COUNT:
        raise VendorError(
            f"checksum mismatch for MathJax {what} {root}: {count} files with"
            f" manifest sha256 {digest}, expected {FILE_COUNT} files with"
            f" {TREE_SHA256}; reinstall it: .venv/bin/pip install --force-reinstall"
            f" --no-cache-dir {DIST}=={VERSION}"
        )


def vendor(dest: Path) -> str:
    """Make dest hold exactly the pinned MathJax files; return what was done."""
    if (dest / LICENSE).is_file():
        try:
            check(dest, "copy in")
            return f"MathJax {MATHJAX} already in {dest} (checksum ok)"
        except VendorError:
            pass  # stale or damaged copy: replace it
    src = source_dir()
    check(src, "files in")
    shutil.rmtree(dest, ignore_errors=True)
    for rel in tree_files(src):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dest / rel)
    # Last: a copy cut short has no LICENSE, and is never taken as done.
    shutil.copyfile(src.parent / LICENSE, dest / LICENSE)
    check(dest, "copy in")
    return (
        f"MathJax {MATHJAX} ({DIST} {VERSION}): copied {FILE_COUNT} files"
        f" to {dest} (checksum ok)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="target folder")
    args = parser.parse_args(argv)
    try:
        print(vendor(args.dest.resolve()))
    except (VendorError, OSError) as exc:
        print(f"error: vendor_mathjax: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
