#!/usr/bin/env bash
# Install minsnr with its test extras and the cluster extra (Ray), make sure a Chromium for the browser tests is present,
# check the code (Python and the page's JavaScript), run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[dev,cluster]"  # cluster: Ray, for the experiment runner's Ray backend
if [ ! -x /usr/bin/chromium ] && [ "${MINSNR_SKIP_BROWSER:-0}" != "1" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
python -m ruff check .
# The page's scripts (app/static/*.js): their syntax with node, then ESLint 9 (eslint.config.js) where npm can fetch it.
if command -v node >/dev/null 2>&1; then
  for script in app/static/*.js; do node --check "$script"; done
  if timeout 180 npx --yes eslint@9 --version >/dev/null 2>&1; then
    npx --yes eslint@9 app/static
  else
    echo "ESLint could not be installed (is npm offline?): app/static/*.js were checked with node --check only"
  fi
else
  echo "node not found: app/static/*.js were not checked"
fi
python -m pytest -q "$@"
