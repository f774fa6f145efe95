"""Record the SHA-256 of each shipped folder's weights in its manifest.

    .venv/bin/python scripts/seal_artifacts.py [FOLDER ...]

For folders shipped before exports wrote ``sha256`` themselves (issue #28):
adds the digests of ``weights.pt``, ``weights.provenance.json`` and a model's
vocabulary, touching no other file. A folder must load cleanly first (damaged
bytes are never sealed as good) and is loaded again after, through the digest
check; one already sealed is left as it is. Without folders: every agent and
model folder under ``artifacts/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rlbook import agents  # noqa: E402
from rlbook.projects import shipping  # noqa: E402
from rlbook.safeload import (  # noqa: E402
    PROVENANCE,
    WEIGHTS,
    file_sha256,
    record_sha256,
    write_manifest,
)


def seal(folder: Path) -> str:
    """Add the digests to ``folder``'s manifest; what was done, in words."""
    is_agent = (folder / agents.MANIFEST).is_file()
    layout = agents.AGENT if is_agent else shipping.MODEL
    load = agents.load_agent if is_agent else shipping.load_model
    manifest = json.loads((folder / layout.manifest).read_text())
    if "sha256" in manifest:
        return f"{folder}: already sealed"
    load(folder)  # raises, naming the problem, for a folder that does not load
    digests = {name: file_sha256(folder / name) for name in (WEIGHTS, PROVENANCE)}
    for name in layout.hashed:
        if name in manifest["spec"]:
            digests[name] = record_sha256(manifest["spec"][name])
    write_manifest(folder, layout, {**manifest, "sha256": digests})
    load(folder)  # now through the digest check
    return f"{folder}: sealed {', '.join(digests)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    args = parser.parse_args(argv)
    folders = args.folders or sorted(
        path.parent
        for name in (agents.MANIFEST, shipping.MANIFEST)
        for path in (ROOT / "artifacts").glob(f"**/{name}")
    )
    for folder in folders:
        try:
            print(seal(folder))
        except (OSError, ValueError, agents.ArtifactError) as error:
            print(f"error: {folder}: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
