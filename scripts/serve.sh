#!/usr/bin/env bash
# Set up (scripts/setup.sh) and start the live stream: `labcam serve` on http://127.0.0.1:8001/
# with the test page, from a PixeLINK camera when one is present, else the simulated camera.
# Arguments go to `labcam serve` (see `labcam serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/labcam serve --open-browser "$@"
