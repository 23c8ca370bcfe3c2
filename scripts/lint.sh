#!/usr/bin/env bash
# Static checks: ruff, mypy (strict), and the layer contracts (import-linter).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
echo "== ruff"; "$BIN/ruff" check .
echo "== mypy"; "$BIN/mypy" server workers alerts config
echo "== import-linter"; "$BIN/lint-imports"
