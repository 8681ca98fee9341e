#!/usr/bin/env bash
# Set up everything labcam needs on a fresh machine, idempotently:
#   - a virtual environment in .venv with labcam installed (editable) and its extras;
#   - with --test: Debian's chromium for the browser tests (no browser is downloaded by tools),
#     Debian's janus (the WebRTC server, labcam serve --webrtc janus) and iproute2 (ip, tc) for the
#     link emulator.
# Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if [ "$want_test" = 1 ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
else
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[jupyter,recording]"
fi

apt_install() {  # apt_install PACKAGE WHY: Debian's package, with sudo unless root
    echo "setup: installing Debian's $1 $2"
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$1" >/dev/null
}
if [ "$want_test" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium "for the browser tests"
fi
if [ "$want_test" = 1 ] && ! command -v janus >/dev/null 2>&1; then
    apt_install janus "(the WebRTC server) for the WebRTC tests"
fi
if [ "$want_test" = 1 ] && ! { command -v ip && command -v tc; } >/dev/null 2>&1; then
    apt_install iproute2 "(ip, tc) for the link emulator, benchmarks/link.py"
fi
if [ "$want_test" = 1 ] || [ -d webrtc/node_modules ]; then
    # The WebRTC viewer (janus-gateway from npm) → labcam/web/dist/labcam-webrtc.js, never committed.
    if command -v npm >/dev/null 2>&1; then
        echo "setup: building the WebRTC viewer (webrtc/ → labcam/web/dist/)"
        (cd webrtc && npm ci --no-audit --no-fund --silent && npm run --silent build)
    else
        echo "setup: npm not found: the WebRTC viewer (labcam/web/dist/labcam-webrtc.js) is not built"
    fi
fi
echo "setup: done"
