#!/usr/bin/env python3
"""Colab-like test: run every chapter's notebook as "Open in Colab" would.

Usage, from the repository root (exit status 0 when every chapter passes, else 1)::

    python .ci/colab_check.py [--only chapters/X.ipynb ...]

How it rebuilds a fresh Colab runtime, what fails a chapter, and where this is
not Colab: .ci/README.md. The outer part uses the standard library only; the
part that drives the notebooks (``--driver``) runs under the venv's own Python,
whose nbclient is Colab's.
"""

from __future__ import annotations

import argparse
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
PYTHON = VENV / "bin" / "python"
PACKAGES_FILE = ROOT / ".ci" / "colab_packages.txt"
COLAB_FREEZE = ROOT.parent / "shared" / "colab" / "pip-freeze.txt"
TORCH_PIN = "torch==2.13.0"  # also in colab_packages.txt; checked below

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
    "PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE VIRTUAL_ENV CONDA_PREFIX"
    " JUPYTER_PATH JUPYTER_CONFIG_DIR JUPYTER_DATA_DIR JUPYTER_RUNTIME_DIR"
    " IPYTHONDIR MPLCONFIGDIR MPLBACKEND"
).split()
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

# ``google`` has no ``__init__.py``: it stays an implicit namespace package, as
# protobuf and the google-cloud packages need. The chapters detect Colab by
# ``"google.colab" in sys.modules``.
GOOGLE_COLAB_INIT = '''\
"""Stand-in for Colab's ``google.colab``, made by .ci/colab_check.py."""

IS_COLAB_LIKE_TEST = True
'''

# Colab's kernelspec starts this module: the kernel imports google.colab, a plain
# ``python`` a notebook starts does not.
KERNEL_LAUNCHER = '''\
"""Colab's kernel entry point, as Colab's kernelspec names it; made by .ci/colab_check.py."""

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

GIT = (
    "git -c user.name=colab-like -c user.email=colab-like@localhost"
    " -c commit.gpgsign=false -c init.defaultBranch=main"
).split()


# --------------------------------------------------------------------------- outer part


def say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def indent(text: str, prefix: str = "  | ") -> list:
    return [prefix + line for line in text.rstrip().splitlines()]


def run(cmd: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run cmd, capturing its output; on failure print the output and raise SystemExit(1)."""
    cmd = [str(c) for c in cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        say(f"colab-like FAIL: {what} (exit status {done.returncode}): {' '.join(cmd)}")
        for line in (done.stdout + done.stderr).splitlines():
            if not PIP_NOISE.match(line):
                say(f"  | {line}")
        raise SystemExit(1)
    return done


def pip_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def pip(*args, what: str) -> None:
    """Run the venv's pip; print its warnings."""
    done = run([PYTHON, "-m", "pip", *args], what, env=pip_env())
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip() and not PIP_NOISE.match(line):
            say(f"  pip: {line}")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_freeze(text: str) -> dict:
    """{canonical name: line} of a `pip freeze` output."""
    lines = [line.strip() for line in text.splitlines()]
    return {
        canonical(re.split(r"==| @ ", line, maxsplit=1)[0]): line
        for line in lines
        if line and not line.startswith("#")
    }


def freeze() -> dict:
    """{canonical name: the freeze line} for the venv."""
    out = run([PYTHON, "-m", "pip", "freeze", "--all"], "pip freeze", env=pip_env())
    return parse_freeze(out.stdout)


def constraints_text(colab: dict) -> str:
    """Colab's pip freeze, less what cannot be a constraint here; prints what it leaves out."""
    kept, urls, torches, dropped = [], [], [], []
    for name, line in colab.items():
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


def build_venv() -> dict:
    """Create the venv afresh with Colab's packages; returns its pip freeze."""
    packages = []
    for line in PACKAGES_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            packages.append(line)
    if TORCH_PIN not in packages:
        raise SystemExit(f"colab-like FAIL: {PACKAGES_FILE} must pin {TORCH_PIN}")
    if not COLAB_FREEZE.is_file():
        raise SystemExit(
            f"colab-like FAIL: Colab's package list {COLAB_FREEZE} is missing"
        )
    colab = parse_freeze(COLAB_FREEZE.read_text())
    constraints = VENV / "colab-constraints.txt"
    text = constraints_text(colab)
    if VENV.exists():
        shutil.rmtree(VENV)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    base = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    run([base, "-m", "venv", VENV], "create the venv")
    constraints.write_text(text)
    # pip itself first (Colab's 24.1.2), then everything else in one resolution.
    pip("install", "--quiet", "-c", constraints, "pip", what="install Colab's pip")
    pip(
        "install",
        "--quiet",
        "-c",
        constraints,
        *packages,
        what="install Colab's packages",
    )
    # A dependency Colab does not ship (its IPython comes without jedi) goes again.
    extra = sorted(set(freeze()) - set(colab))
    if extra:
        pip("uninstall", "--quiet", "--yes", *extra, what="uninstall what Colab lacks")
        say(
            f"colab-like: removed {', '.join(extra)} (pulled in by pip; Colab lacks it)"
        )

    # google.colab, an implicit namespace package; and Colab's kernel launcher.
    out = run(
        [PYTHON, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        "locate the venv's site-packages",
    )
    site = Path(out.stdout.strip())
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
    argv = [str(PYTHON), "-m", "colab_kernel_launcher", "-f", "{connection_file}"]
    kernel = {
        "argv": argv,
        "display_name": "Python 3 (Colab-like)",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1))
    return freeze()


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


def make_snapshot(temp: Path) -> Path:
    """The repository's files now, committed into a fresh git repository in temp."""
    others = ["git", "ls-files", "-z", "--others", "--exclude-standard"]
    untracked = run(others, "list untracked files", cwd=ROOT).stdout.split("\0")
    tracked = run(["git", "ls-files", "-z"], "list files", cwd=ROOT).stdout.split("\0")
    untracked = [f for f in untracked if f and os.path.lexists(ROOT / f)]
    files = [f for f in tracked if f and os.path.lexists(ROOT / f)] + untracked
    snapshot = temp / "origin"
    for name in files:
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    run([*GIT, "init", "-q"], "git init the snapshot", cwd=snapshot)
    run([*GIT, "add", "-A", "-f", "."], "git add the snapshot", cwd=snapshot)
    message = "snapshot for the Colab-like test"
    run([*GIT, "commit", "-q", "--no-verify", "-m", message], "commit", cwd=snapshot)
    note = ""
    if untracked:
        more = ", ..." if len(untracked) > 5 else ""
        note = (
            f" (of which {len(untracked)} untracked: {', '.join(untracked[:5])}{more})"
        )
    say(
        f"colab-like: the clone's stand-in holds {len(files)} files of the working tree{note}"
    )
    return snapshot


def clone(snapshot: Path, dest: Path) -> Path:
    run([*GIT, "clone", "-q", "--depth", "1", f"file://{snapshot}", dest], "clone")
    return dest


def build_wheel(snapshot: Path, temp: Path) -> Path:
    source = clone(snapshot, temp / "wheel-source")
    out = temp / "wheel"
    pip(
        *("wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", out, source),
        what="build the rlbook wheel",
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


def drive(notebook: str, workdir: Path, env: dict, result: Path) -> tuple:
    """Run one notebook (or "probe") with the venv's python; returns (result dict, output)."""
    cmd = [PYTHON, Path(__file__).resolve(), "--driver", notebook, workdir, result]
    done = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=workdir, capture_output=True, text=True
    )
    output = ANSI.sub("", done.stdout + done.stderr)
    if result.is_file():
        return json.loads(result.read_text()), output
    return {
        "ok": False,
        "problems": [f"the driver stopped (exit status {done.returncode})"],
    }, output


def probe(temp: Path, env: dict) -> list:
    """Run the PROBE cell in the kernel: print versions, check the kernel's setup."""
    workdir = temp / "probe-content"
    workdir.mkdir()
    result, output = drive("probe", workdir, env, temp / "probe.json")
    match = re.search(r"PROBE(\{.*\})", "".join(result.get("stdout", [])))
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
        inside = {Path(entry).resolve(), *Path(entry).resolve().parents}
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
    google = info["google_path"]
    if google is None or not all(Path(p).name == "google" for p in google):
        problems.append(f"google is not a namespace package: {google}")
    return problems


def check_chapter(
    name: str, temp: Path, snapshot: Path, wheel: Path, baseline: dict
) -> tuple:
    """Run one notebook; print its line. Returns (passed, whether it changed the venv)."""
    here = temp / Path(name).stem
    here.mkdir()
    clone_dir = clone(snapshot, here / "deep-rl-pytorch")
    workdir = here / "content"  # the kernel's working folder, like Colab's /content
    workdir.mkdir()
    if "rlbook" in freeze():  # every chapter gets a fresh runtime, without rlbook
        pip("uninstall", "--quiet", "--yes", "rlbook", what="uninstall rlbook")
    start = time.perf_counter()
    env = kernel_env(temp, clone_dir, wheel)
    result, output = drive(str(ROOT / name), workdir, env, here / "result.json")
    seconds = time.perf_counter() - start
    problems = list(result.get("problems", []))  # what failed, each one line
    details = [f"  also: {line}" for line in problems[1:]] + result.get("details", [])
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
    # Colab's versions must already satisfy rlbook[colab]: pip may add only rlbook.
    after = freeze()
    changes = [
        (package, baseline.get(package), after.get(package))
        for package in sorted(set(baseline) | set(after))
        if package != "rlbook" and baseline.get(package) != after.get(package)
    ]
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
    extra = f"first cell {result.get('first_cell_s', 0.0):.1f} s"
    if result.get("slowest"):
        extra += f"; slowest: cell {result['slowest'][0]} {result['slowest'][1]:.1f} s"
    say(f"colab-like ok {name} in {seconds:.0f} s ({extra})", *details)
    return True, False


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NOTEBOOK",
        help="run only these notebooks instead of the toc's",
    )
    args = parser.parse_args(argv)
    total_start = time.perf_counter()
    notebooks = toc_notebooks()
    if args.only:
        notebooks = [os.path.relpath(Path(p).resolve(), ROOT) for p in args.only]
    missing = [
        p for p in notebooks if not p.endswith(".ipynb") or not (ROOT / p).is_file()
    ]
    if missing:
        say(f"colab-like FAIL: no such notebook: {', '.join(missing)}")
        return 1
    if not notebooks:
        say("colab-like FAIL: _toc.yml lists no notebook")
        return 1
    say(
        "colab-like: Colab's packages at Colab's versions, except this machine's Python "
        f"(3.11) and {TORCH_PIN}, the local CPU wheel (Colab: Python 3.13 and torch "
        "2.11.0+cpu, of which no CPU build installs here)"
    )

    temp = Path(tempfile.mkdtemp(prefix="colab-like-"))
    failures = []
    venv_seconds = 0.0
    try:
        start = time.perf_counter()
        baseline = build_venv()
        venv_seconds = time.perf_counter() - start
        say(
            f"colab-like: venv ready in {venv_seconds:.0f} s ({len(baseline)} packages)"
        )
        start = time.perf_counter()
        snapshot = make_snapshot(temp)
        wheel = build_wheel(snapshot, temp)
        say(f"colab-like: {wheel.name} built in {time.perf_counter() - start:.0f} s")
        problems = probe(temp, kernel_env(temp, temp / "no-clone", wheel))
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
                # The next chapter gets a fresh runtime: Colab's packages again.
                say(f"colab-like: {name} changed the venv: recreating it")
                baseline = build_venv()
    except SystemExit as stop:
        if stop.code not in (None, 0, 1):
            say(str(stop.code))
        failures.append("(setup)")
    finally:
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

    if notebook == "probe":
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    else:
        nb = nbformat.read(notebook, as_version=4)
    state = {"cell": None, "argv": None, "start": 0.0}
    times = []  # (cell index, seconds) of each code cell run

    def on_cell_start(cell, cell_index, **_):
        state.update(cell=(cell_index, cell.source), start=time.perf_counter())
        if state["argv"] is None and client.km is not None:
            state["argv"] = list(client.km.kernel_spec.argv)

    def on_cell_executed(cell_index, **_):
        times.append((cell_index, time.perf_counter() - state["start"]))

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": workdir}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    result = {"problems": [], "details": [], "warnings": [], "stdout": []}
    try:
        client.execute()
        # the kernelspec must be the venv's: its argv[0] is this very python
        argv = state["argv"] or []
        if not argv or Path(argv[0]) != Path(sys.executable):
            result["problems"].append(
                f"the kernel was started as {argv}, not by {sys.executable}"
            )
    except Exception as error:  # a failing cell, a timeout, a dead kernel, no kernel
        index, source = state["cell"] or (None, "")
        tail = str(error)[-1500:]
        if isinstance(error, CellExecutionError):
            shown = [o for o in nb.cells[index].outputs if o.output_type == "error"]
            text = (
                "\n".join(shown[-1]["traceback"]) if shown else (error.traceback or "")
            )
            tail = "\n".join(ANSI.sub("", text).rstrip().splitlines()[-15:])
            summary = f"{error.ename}: {error.evalue}".splitlines()[0][:300]
            result["problems"].append(f"cell {index} raised {summary}")
        elif isinstance(error, CellTimeoutError):
            result["problems"].append(f"cell {index} ran past {CELL_TIMEOUT_S} s")
        elif isinstance(error, DeadKernelError):
            result["problems"].append(f"the kernel died in cell {index}")
        else:
            tail = f"{type(error).__name__}: {error}"[-1500:]
            result["problems"].append(
                f"could not run (cell {index}): {type(error).__name__}"
            )
        result["details"] += [
            "  the cell begins:",
            *indent("\n".join(source.splitlines()[:6])),
            "  traceback, last lines:",
            *indent(tail),
        ]
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream":
                continue
            lines = ANSI.sub("", output.get("text", "")).splitlines(True)
            text = "".join(line for line in lines if not PIP_NOISE.match(line.rstrip()))
            if output.get("name") == "stdout":
                result["stdout"].append(text)
            elif output.get("name") == "stderr" and text.strip():
                if TRACEBACK_LIKE.search(text):
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
        result["first_cell_s"] = times[0][1]
        result["slowest"] = max(times, key=lambda t: t[1])
    result["ok"] = not result["problems"]
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--driver":
        sys.exit(driver(*sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
