# Sourced by the top-level scripts: make (once) and activate the project's virtual environment.
# PICSORT_VENV overrides the location; the install is skipped when pyproject.toml has not changed.
VENV="${PICSORT_VENV:-$PWD/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
STAMP="$VENV/.picsort-installed"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    python -m pip install -q --upgrade pip
    python -m pip install -q -e ".[dev]"
    touch "$STAMP"
fi
