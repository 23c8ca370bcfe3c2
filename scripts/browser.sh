#!/usr/bin/env bash
# The board's end-to-end tests drive Debian's chromium: install it when it is missing
# (as root, or through sudo). Without it the e2e tests stop the run; they never skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x "${B40_CHROMIUM:-/usr/bin/chromium}" ]; then
  exit 0
fi
echo "browser: installing Debian's chromium for the end-to-end tests"
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq chromium
elif command -v sudo >/dev/null 2>&1; then
  sudo apt-get update -qq && sudo apt-get install -y -qq chromium
else
  echo "browser: FATAL: chromium is missing and this user cannot install it (apt-get install chromium)" >&2
  exit 1
fi
