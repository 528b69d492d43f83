#!/usr/bin/env bash
# Install, then run the default test suite (slow tests are deselected).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# headless Chromium renders the report page in one test (it skips without it)
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
    echo ">> apt-get install chromium (for the report rendering test)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
        || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; } \
        || echo ">> chromium not installed; the rendering test will skip"
fi
.venv/bin/python -m pytest -m "not slow" "$@"
