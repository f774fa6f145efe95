#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint with ruff, and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${RLBOOK_DATA:-}" ] && [ -d ../shared/data ]; then
  export RLBOOK_DATA="$(cd ../shared/data && pwd)"
fi
export SDL_VIDEODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1 MPLBACKEND=Agg
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
