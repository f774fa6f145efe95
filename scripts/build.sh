#!/usr/bin/env bash
# Set up (scripts/setup.sh) and build the book strictly into _build/html:
# any Sphinx warning or failing cell fails the build.
#   RLBOOK_BUDGET=smoke|ci|full   compute budget (default: ci)
#   RLBOOK_FORCE_EXECUTE=1        re-execute every notebook, ignoring the cache
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# MathJax for the site, served from the site itself (pinned and checksum-verified).
.venv/bin/python scripts/vendor_mathjax.py
# Offline datasets for the PyTorch projects: ../shared/data when it exists.
if [ -z "${RLBOOK_DATA:-}" ] && [ -d ../shared/data ]; then
  export RLBOOK_DATA="$(cd ../shared/data && pwd)"
fi
export SDL_VIDEODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1 MPLBACKEND=module://matplotlib_inline.backend_inline
# The notebooks' progress bars draw nothing in the build (rlbook.report.progress).
export RLBOOK_BUILDING=1
config=_config.yml
if [ "${RLBOOK_FORCE_EXECUTE:-0}" = 1 ]; then
  mkdir -p _build
  # The copy lives in _build/, and Jupyter Book resolves local_extensions paths
  # from the config file's folder.
  sed -e 's/^  execute_notebooks: cache/  execute_notebooks: force/' \
    -e 's#^    rlbook_timeguard: _ext$#    rlbook_timeguard: ../_ext#' _config.yml > _build/_config.force.yml
  grep -q "execute_notebooks: force" _build/_config.force.yml
  grep -q "rlbook_timeguard: ../_ext" _build/_config.force.yml
  config=_build/_config.force.yml
fi
.venv/bin/jupyter-book build . --config "$config" -W -n --keep-going
echo "Built: open $(pwd)/_build/html/index.html"
