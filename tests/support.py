"""Helpers importable from any test module (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("PICSORT_SHARED_DIR", REPO.parent / "shared"))


def need_shared(*parts: str) -> Path:
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        message = f"{path} is absent (shared datasets/models live in ../shared; set PICSORT_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail("in CI the shared data must be present: " + message)
        pytest.skip(message)
    return path


