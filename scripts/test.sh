#!/usr/bin/env bash
# Set up (scripts/setup.sh --test) and run every test: Python (pytest, incl. browser tests in
# headless chromium), notebooks (nbval) and the JavaScript client (node --test).
# Extra arguments go to pytest, e.g. scripts/test.sh -k stream
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

status=0
echo "== JavaScript client tests (node --test)"
node --test tests/js/ || status=1
echo "== Python tests and notebooks (pytest + nbval)"
.venv/bin/python -m pytest -p no:cacheprovider tests notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg "$@" || status=1
exit $status
