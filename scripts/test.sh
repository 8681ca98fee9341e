#!/usr/bin/env bash
# Set up (scripts/setup.sh --test) and run every test: Python (pytest, incl. browser tests in
# headless chromium), notebooks (nbval), the JavaScript client (node --test) and the Vue component
# (frontend/: vitest, then Playwright against a real `labcam serve` run from $LABCAM_BIN).
# Extra arguments go to pytest, e.g. scripts/test.sh -k stream
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

status=0
echo "== JavaScript client tests (node --test)"
node --test tests/js/ || status=1
echo "== Vue component (frontend/: npm ci if needed, type check + vitest, Playwright e2e)"
export LABCAM_BIN="${LABCAM_BIN:-$PWD/.venv/bin/labcam}"
frontend_tests() (
    cd frontend || exit 1
    # npm ci only when node_modules is missing or was installed from another package-lock.json.
    lock=$(sha256sum package-lock.json | cut -d' ' -f1)
    if [ "$(cat node_modules/.labcam-lock-sha256 2>/dev/null)" != "$lock" ]; then
        npm ci --no-audit --no-fund --loglevel=error || exit 1
        echo "$lock" > node_modules/.labcam-lock-sha256
    fi
    rc=0
    npm test || rc=1
    npm run test:e2e || rc=1
    exit $rc
)
frontend_tests || status=1
echo "== Python tests and notebooks (pytest + nbval)"
.venv/bin/python -m pytest -p no:cacheprovider tests notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg "$@" || status=1
exit $status
