#!/usr/bin/env python3
"""Colab-like test: run every chapter's notebook as "Open in Colab" would.

A reader who presses "Open in Colab" gets the chapter's ``chapters/*.ipynb`` twin
in a fresh Colab runtime: Colab's preinstalled packages, ``google.colab``
imported in the kernel, an empty working folder, and nothing of this book until
the chapter's first cell clones it and pip-installs ``rlbook[colab]``. This
script rebuilds that situation on a CI machine and runs every notebook listed in
``_toc.yml`` in it, at ``RLBOOK_BUDGET=smoke``:

1. A virtual environment, ``_build/colab-venv`` (recreated on every run unless
   ``--reuse-venv``), holding only the packages listed in
   ``.ci/colab_packages.txt``, each at Colab's version: Colab's published
   ``pip freeze`` (``../shared/colab/pip-freeze.txt``) is pip's constraints file.
2. A stand-in for ``google.colab``: a tiny implicit-namespace package
   ``google/colab`` in the venv (``google`` stays a namespace, as protobuf and
   the google-cloud packages need), imported by the kernel at startup through
   ``colab_kernel_launcher``, the module Colab's own kernelspec starts. Only the
   kernel imports it, as in Colab: a ``python`` the notebook starts in a
   subprocess does not see it.
3. A stand-in for the clone: the repository's files as they are now (tracked
   ones, plus untracked ones git does not ignore), committed into a throw-away
   git repository outside the checkout and cloned ``--depth 1`` afresh for every
   chapter, as the first cell's ``git clone`` would; ``RLBOOK_CLONE`` points at
   it. A wheel of ``rlbook`` built from it (``RLBOOK_PACKAGE``) is what the first
   cell installs, with the ``[colab]`` extra; the venv does not have it before.
4. Each notebook runs under nbclient with the venv's kernel, in a fresh empty
   working folder (a chapter that needs this checkout fails), with
   ``RLBOOK_BUDGET=smoke``, no ``PYTHONPATH``, and ``rlbook`` uninstalled
   beforehand (every chapter gets the fresh runtime Colab gives it). A chapter
   fails on a cell error or timeout, on a traceback written to stderr (other
   stderr output is printed as a warning), or if its pip install added or
   changed any package but rlbook: Colab's versions must already satisfy the
   ``[colab]`` extra (``pip freeze`` is compared before and after).

Where this is not Colab, and why:

* Python 3.11 and torch 2.13.0 (the book's local CPU wheel) instead of Colab's
  Python 3.13 and torch 2.11.0+cpu: no CPU build of those can be installed on
  this machine. Everything else comes at Colab's version.
* setuptools is not held at Colab's 75.2.0: torch 2.13.0 requires
  setuptools>=77.0.3 (see DROPPED below); constraint lines that cannot apply
  here are printed.
* Only a subset of Colab's ~640 packages is installed: a chapter importing
  something Colab has but the list lacks fails here, not in Colab; add it to
  the list. A dependency pip pulls in that Colab lacks is uninstalled again
  (jedi: Colab's IPython 7.34 comes without it).
* The kernel's environment also has SDL_VIDEODRIVER=dummy,
  PYGAME_HIDE_SUPPORT_PROMPT=1 and MPLBACKEND set to the inline backend, as in
  the book's build, and RLBOOK_DATA when it is set.
* The machine is CPU-only Linux, like Colab's CPU runtime; pip may reach PyPI
  but the check above makes sure it needs nothing from it but rlbook.
* The venv is shared by the chapters rather than fresh for each: a chapter
  whose pip changed it fails, and the venv is put back to Colab's set
  (uninstall what was added, reinstall what was changed or overwritten)
  before the next chapter.

Usage, from the repository root (exit status 0 when every chapter passes, else 1)::

    python .ci/colab_check.py [--reuse-venv] [--only chapters/X.ipynb ...] [--keep]

The outer part uses the standard library only (any Python 3.8+); the part that
drives the notebooks (``--driver``) runs under the venv's own Python, whose
nbclient is Colab's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "_build" / "colab-venv"
PACKAGES_FILE = ROOT / ".ci" / "colab_packages.txt"
COLAB_FREEZE = ROOT.parent / "shared" / "colab" / "pip-freeze.txt"
TORCH_PIN = "torch==2.13.0"  # also in colab_packages.txt; checked below
VENV_RECIPE = 2  # part of the venv's fingerprint: bump it when build_venv changes

# Lines of Colab's pip-freeze.txt left out of the constraints, with the reason.
# (Lines `name @ url` and every torch* package are left out as well: a URL cannot
# be a constraint, and Colab's torch builds are cp313-only.)
DROPPED = {
    "setuptools": "torch 2.13.0 requires setuptools>=77.0.3; Colab has 75.2.0",
}

CELL_TIMEOUT_S = 900
# Environment variables a chapter's kernel must not inherit from CI or from the
# book's own build (RLBOOK_* are set afresh below; RLBOOK_DATA is passed on).
SCRUBBED = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "JUPYTER_PATH",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR",
    "IPYTHONDIR",
    "MPLCONFIGDIR",
    "MPLBACKEND",
)
# pip's warnings about this machine's local package indexes: not about the book.
PIP_NOISE = re.compile(
    r"^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$"
)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TRACEBACK_LIKE = re.compile(
    r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\", line \d+|"
    r"^\s*[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit): ",
    re.MULTILINE,
)

GOOGLE_COLAB_INIT = '''\
"""Stand-in for Colab's ``google.colab``, made by .ci/colab_check.py.

Colab's kernel imports ``google.colab`` at startup, and the book's chapters
detect Colab by ``"google.colab" in sys.modules``. ``google`` itself has no
``__init__.py`` here, so it stays an implicit namespace package (protobuf and
the google-cloud packages install into it too).
"""

IS_COLAB_LIKE_TEST = True
'''

KERNEL_LAUNCHER = '''\
"""Colab's kernel entry point, as Colab's kernelspec names it; made by .ci/colab_check.py.

It imports ``google.colab`` (so the kernel has it, as Colab's does), then starts
ipykernel as ``ipykernel_launcher`` would. A plain ``python`` does not import it.
"""

import sys

if __name__ == "__main__":
    if sys.path and sys.path[0] in ("", "."):  # as ipykernel_launcher: no cwd while loading
        del sys.path[0]
    import google.colab  # noqa: F401

    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
'''

PROBE = """\
import importlib.metadata as md, importlib.util, json, os, sys
import IPython
info = {
    "python": sys.version.split()[0],
    "prefix": sys.prefix,
    "colab_imported": "google.colab" in sys.modules,
    "google_path": list(sys.modules["google"].__path__) if "google" in sys.modules else None,
    "cwd": os.getcwd(),
    "cwd_entries": os.listdir("."),
    "rlbook_importable": importlib.util.find_spec("rlbook") is not None,
    "sys_path": sys.path,
    "PYTHONPATH": os.environ.get("PYTHONPATH"),
    "budget": os.environ.get("RLBOOK_BUDGET"),
    "IPython": IPython.__version__,
}
for name in ("torch", "numpy", "gymnasium", "ale-py", "matplotlib", "ipykernel", "nbclient"):
    info[name] = md.version(name)
print("PROBE" + json.dumps(info))
"""


# --------------------------------------------------------------------------- outer part


def say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def run(cmd: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run cmd, capturing its output; on failure print the output and raise SystemExit(1)."""
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, **kwargs
    )
    if done.returncode != 0:
        say(
            f"colab-like FAIL: {what} (exit status {done.returncode}): {' '.join(map(str, cmd))}"
        )
        for line in (done.stdout + done.stderr).splitlines():
            if not PIP_NOISE.match(line):
                say(f"  | {line}")
        raise SystemExit(1)
    return done


def pip_warnings(done: subprocess.CompletedProcess) -> None:
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip() and not PIP_NOISE.match(line):
            say(f"  pip: {line}")


def read_packages() -> list:
    packages = []
    for line in PACKAGES_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            packages.append(line)
    if TORCH_PIN not in packages:
        raise SystemExit(f"colab-like FAIL: {PACKAGES_FILE} must pin {TORCH_PIN}")
    return packages


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints_text() -> str:
    """Colab's pip freeze, less what cannot be a constraint here; prints what it leaves out."""
    if not COLAB_FREEZE.is_file():
        raise SystemExit(
            f"colab-like FAIL: Colab's package list {COLAB_FREEZE} is missing"
        )
    kept, urls, torches, dropped = [], [], [], []
    for line in COLAB_FREEZE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = canonical(re.split(r"[=<>!~ @\[;]", line, maxsplit=1)[0])
        if name.startswith("torch"):
            torches.append(line.split(" @ ")[0].split("==")[0])
        elif " @ " in line:
            urls.append(name)
        elif name in DROPPED:
            dropped.append(f"{line} ({DROPPED[name]})")
        else:
            kept.append(line)
    say(
        f"colab-like: constraints: {len(kept)} of Colab's pins; left out: "
        f"torch packages ({', '.join(torches)}; torch here is {TORCH_PIN}, the local CPU wheel), "
        f"URL requirements ({', '.join(urls)}), " + "; ".join(dropped)
    )
    return "\n".join(kept) + "\n"


def venv_python() -> Path:
    return VENV / "bin" / "python"


def site_packages(python: Path) -> Path:
    out = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        "locate the venv's site-packages",
    )
    return Path(out.stdout.strip())


def freeze(python: Path) -> dict:
    """{canonical name: the freeze line} for the venv."""
    out = run([python, "-m", "pip", "freeze", "--all"], "pip freeze", env=pip_env())
    result = {}
    for line in out.stdout.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            result[canonical(re.split(r"==| @ ", line, maxsplit=1)[0])] = line
    return result


def pip_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def base_python() -> str:
    """The interpreter the venv is made from: this machine's python3.11 if there is one."""
    for name in ("python3.11", "python3"):
        found = shutil.which(name)
        if found:
            return found
    return sys.executable


def build_venv(reuse: bool) -> dict:
    """Create (or reuse) the venv; returns its baseline pip freeze."""
    packages = read_packages()
    constraints = constraints_text()
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                VENV_RECIPE,
                packages,
                constraints,
                DROPPED,
                GOOGLE_COLAB_INIT,
                KERNEL_LAUNCHER,
            ]
        ).encode()
    ).hexdigest()
    marker = VENV / "colab-like.json"
    python = venv_python()
    if reuse and marker.is_file() and python.exists():
        recorded = json.loads(marker.read_text())
        current = freeze(python)
        current.pop("rlbook", None)  # a run that stopped half-way may have left it
        if recorded.get("fingerprint") == fingerprint:
            say(f"colab-like: reusing {VENV.relative_to(ROOT)} (same package list)")
            remove_rlbook()
            if recorded.get("freeze") == current:
                return current
            return restore_venv(recorded["freeze"], "an earlier run")
        say(
            f"colab-like: {VENV.relative_to(ROOT)} is stale or was changed: recreating it"
        )
    if VENV.exists():
        shutil.rmtree(VENV)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    run([base_python(), "-m", "venv", VENV], "create the venv")
    (VENV / "colab-constraints.txt").write_text(constraints)
    pip = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "-c",
        VENV / "colab-constraints.txt",
    ]
    # pip itself first (Colab's 24.1.2), then everything else in one resolution.
    pip_warnings(run([*pip, "pip"], "install Colab's pip", env=pip_env()))
    pip_warnings(run([*pip, *packages], "install Colab's packages", env=pip_env()))
    # A dependency Colab does not ship (its IPython comes without jedi) goes again.
    colab_names = {
        canonical(re.split(r"==| @ ", line, maxsplit=1)[0])
        for line in COLAB_FREEZE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    extra = sorted(set(freeze(python)) - colab_names)
    if extra:
        run(
            [python, "-m", "pip", "uninstall", "--quiet", "--yes", *extra],
            "uninstall what Colab lacks",
            env=pip_env(),
        )
        say(
            f"colab-like: removed {', '.join(extra)} (pulled in by pip; Colab lacks it)"
        )

    # google.colab, an implicit namespace package; and Colab's kernel launcher.
    site = site_packages(python)
    if (site / "google" / "__init__.py").exists():
        raise SystemExit(
            "colab-like FAIL: google/__init__.py exists: `google` must stay a namespace"
        )
    (site / "google" / "colab").mkdir(parents=True, exist_ok=True)
    (site / "google" / "colab" / "__init__.py").write_text(GOOGLE_COLAB_INIT)
    (site / "colab_kernel_launcher.py").write_text(KERNEL_LAUNCHER)
    # The kernelspec "python3" (the notebooks' kernel), starting the venv's python.
    # It replaces ipykernel's own one in the venv; JUPYTER_PATH puts it first.
    spec = VENV / "share" / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    str(python),
                    "-m",
                    "colab_kernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "Python 3 (Colab-like)",
                "language": "python",
            },
            indent=1,
        )
    )
    baseline = freeze(python)
    marker.write_text(
        json.dumps({"fingerprint": fingerprint, "freeze": baseline}, indent=1)
    )
    return baseline


def toc_notebooks() -> list:
    """The ``.ipynb`` twins of the files listed in _toc.yml, in order."""
    found = []
    for line in (ROOT / "_toc.yml").read_text().splitlines():
        match = re.match(r"\s*(?:-\s*)?(?:file|root):\s*(\S+)", line.split("#", 1)[0])
        if match:
            stem = re.sub(r"\.(md|ipynb)$", "", match.group(1))
            if (ROOT / f"{stem}.ipynb").is_file():
                found.append(f"{stem}.ipynb")
    return found


def repository_files() -> tuple:
    out = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        "list the repository's files",
        cwd=ROOT,
    )
    tracked = set(
        run(["git", "ls-files", "-z"], "list tracked files", cwd=ROOT).stdout.split(
            "\0"
        )
    )
    files = [f for f in out.stdout.split("\0") if f and os.path.lexists(ROOT / f)]
    untracked = [f for f in files if f not in tracked]
    return files, untracked


GIT = [
    "git",
    "-c",
    "user.name=colab-like",
    "-c",
    "user.email=colab-like@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
]


def make_snapshot(temp: Path) -> Path:
    """The repository's files now, committed into a fresh git repository in temp."""
    files, untracked = repository_files()
    snapshot = temp / "origin"
    for name in files:
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    run([*GIT, "init", "-q"], "git init the snapshot", cwd=snapshot)
    run([*GIT, "add", "-A", "-f", "."], "git add the snapshot", cwd=snapshot)
    run(
        [*GIT, "commit", "-q", "--no-verify", "-m", "snapshot for the Colab-like test"],
        "commit the snapshot",
        cwd=snapshot,
    )
    note = (
        f" (of which {len(untracked)} untracked: {', '.join(untracked[:5])}"
        + (", ...)" if len(untracked) > 5 else ")")
        if untracked
        else ""
    )
    say(
        f"colab-like: the clone's stand-in holds {len(files)} files of the working tree{note}"
    )
    return snapshot


def clone(snapshot: Path, dest: Path) -> Path:
    run(
        [*GIT, "clone", "-q", "--depth", "1", f"file://{snapshot}", dest],
        "clone the snapshot",
    )
    return dest


def build_wheel(snapshot: Path, temp: Path, python: Path) -> Path:
    source = clone(snapshot, temp / "wheel-source")
    out = temp / "wheel"
    pip_warnings(
        run(
            [
                python,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                out,
                source,
            ],
            "build the rlbook wheel",
            env=pip_env(),
        )
    )
    wheels = sorted(out.glob("rlbook-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(
            f"colab-like FAIL: expected one rlbook wheel in {out}, found {wheels}"
        )
    return wheels[0]


def kernel_env(temp: Path, clone_dir: Path, wheel: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SCRUBBED and not k.startswith(("RLBOOK_", "JUPYTER_"))
    }
    if os.environ.get("RLBOOK_DATA"):
        env["RLBOOK_DATA"] = os.environ["RLBOOK_DATA"]
    env.update(
        RLBOOK_BUDGET="smoke",
        RLBOOK_CLONE=str(clone_dir),
        RLBOOK_PACKAGE=str(wheel),
        SDL_VIDEODRIVER="dummy",
        PYGAME_HIDE_SUPPORT_PROMPT="1",
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV),
        JUPYTER_PATH=str(VENV / "share" / "jupyter"),
        JUPYTER_CONFIG_DIR=str(temp / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(temp / "jupyter-runtime"),
        IPYTHONDIR=str(temp / "ipython"),
        MPLCONFIGDIR=str(temp / "matplotlib"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",  # debugpy's note on frozen modules, at kernel start
    )
    return env


def drive(notebook: Path, workdir: Path, env: dict, result: Path) -> tuple:
    """Run one notebook with the venv's python (--driver); returns (result dict, output)."""
    done = subprocess.run(
        [
            str(venv_python()),
            str(Path(__file__).resolve()),
            "--driver",
            str(notebook),
            str(workdir),
            str(result),
        ],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    output = ANSI.sub("", done.stdout + done.stderr)
    if result.is_file():
        return json.loads(result.read_text()), output
    return {
        "ok": False,
        "problems": [f"the driver stopped (exit status {done.returncode})"],
    }, output


def indent(text: str, prefix: str = "  | ") -> list:
    return [prefix + line for line in text.rstrip().splitlines()]


def probe(temp: Path, env: dict) -> list:
    """Run a one-cell notebook in the kernel: print versions, check the kernel's setup."""
    notebook = temp / "probe.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "id": "probe",
                        "metadata": {},
                        "outputs": [],
                        "execution_count": None,
                        "source": PROBE,
                    }
                ],
                "metadata": {
                    "kernelspec": {
                        "name": "python3",
                        "display_name": "Python 3",
                        "language": "python",
                    }
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    workdir = temp / "probe-content"
    workdir.mkdir()
    result, output = drive(notebook, workdir, env, temp / "probe.json")
    text = "".join(result.get("stdout", []))
    match = re.search(r"PROBE(\{.*\})", text)
    if not result.get("ok") or not match:
        return [
            "the probe notebook failed",
            *result.get("problems", []),
            *indent(output),
        ]
    info = json.loads(match.group(1))
    say(
        f"colab-like: kernel: Python {info['python']} (Colab: 3.13), torch {info['torch']} "
        f"(Colab: 2.11.0+cpu), numpy {info['numpy']}, gymnasium {info['gymnasium']}, "
        f"ale-py {info['ale-py']}, matplotlib {info['matplotlib']}, IPython {info['IPython']}, "
        f"ipykernel {info['ipykernel']}, nbclient {info['nbclient']}"
    )
    problems = []
    if Path(info["prefix"]).resolve() != VENV.resolve():
        problems.append(f"the kernel runs {info['prefix']}, not the venv {VENV}")
    if not info["colab_imported"]:
        problems.append("google.colab is not imported in the kernel")
    if info["rlbook_importable"]:
        problems.append("rlbook is importable before any chapter installed it")

    def in_checkout(entry: str) -> bool:  # the venv lives in _build/, that is fine
        path = Path(entry).resolve()
        inside = {path, *path.parents}
        return bool(entry) and ROOT in inside and VENV.resolve() not in inside

    if info["PYTHONPATH"] or any(in_checkout(p) for p in info["sys_path"]):
        problems.append(
            f"the checkout leaks into the kernel's sys.path: {info['sys_path']}"
        )
    if Path(info["cwd"]).resolve() != workdir.resolve() or info["cwd_entries"]:
        problems.append(
            f"the kernel's working folder is {info['cwd']}, not an empty one"
        )
    if info["budget"] != "smoke":
        problems.append(f"RLBOOK_BUDGET is {info['budget']!r} in the kernel")
    if info["google_path"] is None or not all(
        Path(p).name == "google" for p in info["google_path"]
    ):
        problems.append(f"google is not a namespace package: {info['google_path']}")
    return problems


def remove_rlbook() -> None:
    """Uninstall rlbook if a chapter (or an earlier run) installed it."""
    python = venv_python()
    if "rlbook" in freeze(python):
        run(
            [python, "-m", "pip", "uninstall", "--quiet", "--yes", "rlbook"],
            "uninstall rlbook",
            env=pip_env(),
        )


OWNED_FILES = """\
import importlib.metadata as md, json, re
print(json.dumps({
    re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): [str(f) for f in d.files or []]
    for d in md.distributions()
}))
"""


def restore_venv(baseline: dict, name: str) -> dict:
    """Undo what a chapter's pip did to the venv, so that the next chapter sees Colab's set.

    Uninstalls what it added, and reinstalls at Colab's version what it changed or
    removed and every package whose files an added one overwrote (two distributions
    can own the same module: pygame and pygame-ce). Recreates the venv if that fails.
    """
    start = time.perf_counter()
    python = venv_python()
    remove_rlbook()
    changes = [c for c in freeze_diff(baseline, freeze(python)) if c[0] != "rlbook"]
    owned = json.loads(run([python, "-c", OWNED_FILES], "list the venv's files").stdout)
    added = [package for package, old, _ in changes if old is None]
    touched = set()
    for package, _, new in changes:
        if new is not None:
            touched.update(owned.get(package, []))
    reinstall = {package for package, old, _ in changes if old is not None}
    reinstall.update(
        other
        for other, files in owned.items()
        if other in baseline and other not in added and touched.intersection(files)
    )
    try:
        if added:
            run(
                [python, "-m", "pip", "uninstall", "--quiet", "--yes", *added],
                "uninstall what the chapter added",
                env=pip_env(),
            )
        if reinstall:
            run(
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--force-reinstall",
                    *(baseline[p] for p in sorted(reinstall)),
                ],
                "reinstall Colab's versions",
                env=pip_env(),
            )
        left = freeze_diff(
            {k: v for k, v in baseline.items() if k != "rlbook"}, freeze(python)
        )
    except SystemExit:
        left = ["pip failed"]
    restored = not left
    if restored:
        removed = ", ".join(added) or "nothing"
        reinstalled = ", ".join(sorted(reinstall)) or "nothing"
        seconds = time.perf_counter() - start
        say(
            f"colab-like: venv restored after {name} changed it (removed: {removed}; "
            f"reinstalled: {reinstalled}) in {seconds:.0f} s"
        )
        return baseline
    say(f"colab-like: could not restore the venv after {name} ({left}): recreating it")
    baseline = build_venv(reuse=False)
    seconds = time.perf_counter() - start
    say(f"colab-like: venv recreated after {name} changed it, in {seconds:.0f} s")
    return baseline


def freeze_diff(before: dict, after: dict) -> list:
    changes = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changes.append((name, before.get(name), after.get(name)))
    return changes


def check_chapter(
    name: str, temp: Path, snapshot: Path, wheel: Path, baseline: dict
) -> tuple:
    """Run one notebook; print its line. Returns (passed, whether it changed the venv)."""
    python = venv_python()
    here = temp / Path(name).stem
    here.mkdir()
    clone_dir = clone(snapshot, here / "deep-rl-pytorch")
    workdir = here / "content"  # the kernel's working folder, like Colab's /content
    workdir.mkdir()
    remove_rlbook()
    start = time.perf_counter()
    result, output = drive(
        ROOT / name, workdir, kernel_env(temp, clone_dir, wheel), here / "result.json"
    )
    seconds = time.perf_counter() - start
    problems = list(result.get("problems", []))  # what failed, each one line
    details = [f"  also: {line}" for line in problems[1:]] + list(
        result.get("details", [])
    )
    for warning in result.get("warnings", []):
        say(
            f"  warning: {name}: stderr in cell {warning['cell']}:",
            *indent(warning["text"][-1500:]),
        )
    if not result.get("ok") and output.strip():
        details += [
            "  driver and kernel output, last lines:",
            *indent("\n".join(output.splitlines()[-20:])),
        ]
    after = freeze(python)
    changes = [c for c in freeze_diff(baseline, after) if c[0] != "rlbook"]
    if changes:
        problem = (
            "pip changed Colab's packages, not only added rlbook (Colab's versions "
            "must satisfy rlbook[colab]); pip freeze, before -> after:"
        )
        if problems:
            details.append(f"  also: {problem}")
        problems.append(problem)
        details += [
            f"  | {package}: {old or '(absent)'} -> {new or '(removed)'}"
            for package, old, new in changes
        ]
    if result.get("ok") and "rlbook" not in after:
        details.append("  note: the chapter did not install rlbook")
    if problems:
        say(f"colab-like FAIL {name} in {seconds:.0f} s: {problems[0]}", *details)
        return False, bool(changes)
    slowest = result.get("slowest")
    extra = (
        f" (first cell {result['first_cell_s']:.1f} s"
        if "first_cell_s" in result
        else " ("
    )
    extra += f"; slowest: cell {slowest[0]} {slowest[1]:.1f} s)" if slowest else ")"
    say(f"colab-like ok {name} in {seconds:.0f} s{extra}", *details)
    return True, False


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reuse-venv",
        action="store_true",
        help=f"reuse {VENV.relative_to(ROOT)} if its package list is unchanged",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NOTEBOOK",
        help="run only these notebooks (paths from the repository root)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (clones, wheel, working folders)",
    )
    args = parser.parse_args(argv)
    total_start = time.perf_counter()
    notebooks = toc_notebooks()
    if args.only:
        wanted = [os.path.relpath(Path(p).resolve(), ROOT) for p in args.only]
        missing = [
            p for p in wanted if not (ROOT / p).is_file() or not p.endswith(".ipynb")
        ]
        if missing:
            say(f"colab-like FAIL: no such notebook: {', '.join(missing)}")
            return 1
        for p in wanted:
            if p not in notebooks:
                say(f"colab-like: note: {p} is not listed in _toc.yml")
        notebooks = wanted
    if not notebooks:
        say("colab-like FAIL: _toc.yml lists no notebook")
        return 1
    say(
        "colab-like: Colab's packages at Colab's versions, except this machine's Python "
        f"(3.11) and {TORCH_PIN}, the local CPU wheel (Colab: Python 3.13 and torch "
        "2.11.0+cpu, of which no CPU build installs here)"
    )

    start = time.perf_counter()
    try:
        baseline = build_venv(args.reuse_venv)
    except SystemExit as stop:
        if stop.code not in (None, 0, 1):
            say(str(stop.code))
        return 1
    venv_seconds = time.perf_counter() - start
    say(f"colab-like: venv ready in {venv_seconds:.0f} s ({len(baseline)} packages)")

    temp = Path(tempfile.mkdtemp(prefix="colab-like-"))
    failures = []
    try:
        start = time.perf_counter()
        snapshot = make_snapshot(temp)
        wheel = build_wheel(snapshot, temp, venv_python())
        say(f"colab-like: {wheel.name} built in {time.perf_counter() - start:.0f} s")
        probe_env = kernel_env(temp, temp / "no-clone", wheel)
        problems = probe(temp, probe_env)
        if problems:
            say(
                "colab-like FAIL: the kernel is not set up like Colab's:",
                *("  " + p for p in problems),
            )
            return 1
        for index, name in enumerate(notebooks):
            passed, changed = check_chapter(name, temp, snapshot, wheel, baseline)
            if not passed:
                failures.append(name)
            if changed and index + 1 < len(notebooks):
                baseline = restore_venv(
                    baseline, name
                )  # the next chapter: a fresh runtime
    except SystemExit as stop:
        if stop.code not in (None, 0, 1):
            say(str(stop.code))
        failures.append("(setup)")
    finally:
        if args.keep:
            say(f"colab-like: kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    total = time.perf_counter() - total_start
    if failures:
        say(
            f"colab-like FAILED: {len(failures)} of {len(notebooks)} notebooks "
            f"({', '.join(failures)}) in {total:.0f} s (venv {venv_seconds:.0f} s)"
        )
        return 1
    say(
        f"colab-like passed: {len(notebooks)} notebooks in {total:.0f} s "
        f"(venv {venv_seconds:.0f} s)"
    )
    return 0


# --------------------------------------------------------------------------- driver part


def driver(notebook: str, workdir: str, result_path: str) -> int:
    """Execute one notebook with nbclient (venv's python); write a JSON result."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import (
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )

    nb = nbformat.read(notebook, as_version=4)
    state = {"cell": None, "argv": None}

    def on_cell_start(cell, cell_index, **_):
        state["cell"] = (cell_index, cell.source)
        if state["argv"] is None and client.km is not None:
            state["argv"] = list(client.km.kernel_spec.argv)

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": workdir}},
        on_cell_start=on_cell_start,
    )
    result = {"ok": True, "problems": [], "details": [], "warnings": [], "stdout": []}
    try:
        client.execute()
        # the kernelspec must be the venv's: its argv[0] is this very python
        argv = state["argv"] or []
        if not argv or Path(argv[0]) != Path(sys.executable):
            result["problems"].append(
                f"the kernel was started as {argv}, not by {sys.executable}"
            )
    except Exception as error:  # a failing cell, a timeout, a dead kernel, no kernel
        result["ok"] = False
        index, source = state["cell"] or (None, "")
        head = "\n".join(source.splitlines()[:6])
        if isinstance(error, CellExecutionError):
            shown = [
                o
                for o in nb.cells[index].get("outputs", [])
                if o.get("output_type") == "error"
            ]
            text = (
                "\n".join(shown[-1]["traceback"]) if shown else (error.traceback or "")
            )
            tail = "\n".join(ANSI.sub("", text).rstrip().splitlines()[-15:])
            summary = f"{error.ename}: {error.evalue}".splitlines()[0][:300]
            result["problems"].append(f"cell {index} raised {summary}")
        elif isinstance(error, CellTimeoutError):
            tail = str(error)[-1500:]
            result["problems"].append(f"cell {index} ran past {CELL_TIMEOUT_S} s")
        elif isinstance(error, DeadKernelError):
            tail = str(error)[-1500:]
            result["problems"].append(f"the kernel died in cell {index}")
        else:
            tail = f"{type(error).__name__}: {error}"[-1500:]
            result["problems"].append(
                f"could not run (cell {index}): {type(error).__name__}"
            )
        result["details"] += [
            "  the cell begins:",
            *indent(head),
            "  traceback, last lines:",
            *indent(tail),
        ]
    times = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        timing = cell.metadata.get("execution", {})
        begin, end = (
            timing.get("iopub.execute_input"),
            timing.get("shell.execute_reply"),
        )
        if begin and end:
            from datetime import datetime

            seconds = (
                datetime.fromisoformat(end.replace("Z", "+00:00"))
                - datetime.fromisoformat(begin.replace("Z", "+00:00"))
            ).total_seconds()
            times.append((index, seconds))
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream":
                continue
            text = ANSI.sub("", output.get("text", ""))
            text = "".join(
                line
                for line in text.splitlines(True)
                if not PIP_NOISE.match(line.rstrip())
            )
            if output.get("name") == "stdout":
                result["stdout"].append(text)
            elif output.get("name") == "stderr" and text.strip():
                if TRACEBACK_LIKE.search(text):
                    result["ok"] = False
                    result["problems"].append(
                        f"cell {index} wrote a traceback to stderr"
                    )
                    result["details"] += [
                        f"  stderr of cell {index}:",
                        *indent(text[-2000:]),
                    ]
                else:
                    result["warnings"].append({"cell": index, "text": text})
    if times:
        first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        result["first_cell_s"] = dict(times).get(first_code, 0.0)
        result["slowest"] = max(times, key=lambda t: t[1])
    if result["problems"]:
        result["ok"] = False
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--driver":
        sys.exit(driver(*sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
