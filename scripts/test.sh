#!/usr/bin/env bash
# The whole test run: services up (or a loud failure), static checks, then pytest against the
# real PostgreSQL and Redis. `.ci/run` calls this through `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

bash scripts/services.sh
bash scripts/browser.sh
bash scripts/lint.sh
echo "== pytest"
"$BIN/pytest" "$@"
