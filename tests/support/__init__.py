"""Helpers importable from any test module (tests/ is on pytest's pythonpath) and from the benchmarks,
which put tests/ on sys.path themselves. Nothing here imports pytest at module level, so a benchmark
can use the server harness (`support.servers`) without the test runner."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    return Path(os.environ.get("PICSORT_SHARED_DIR", REPO.parent / "shared"))


def need_shared(*parts: str) -> Path:
    """A path in the shared data folder; absent, the test skips locally and fails in CI."""
    import pytest

    path = shared_dir().joinpath(*parts)
    if not path.exists():
        message = f"{path} is absent (shared datasets/models live in ../shared; set PICSORT_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail("in CI the shared data must be present: " + message)
        pytest.skip(message)
    return path


def scan_for(root: Path, needle: bytes) -> list[Path]:
    """Files under root containing needle (used to prove a selfie was not stored)."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(path)
    return hits
