#!/usr/bin/env bash
# Install minsnr with its test extras, make sure a Chromium for the browser tests is present, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[dev]"
if [ ! -x /usr/bin/chromium ] && [ "${MINSNR_SKIP_BROWSER:-0}" != "1" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
python -m ruff check .
python -m pytest -q "$@"
