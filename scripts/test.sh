#!/usr/bin/env bash
# Install, then run the default test suite (slow tests are deselected).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pytest -m "not slow" "$@"
