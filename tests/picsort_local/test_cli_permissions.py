"""What `picsort` writes is private to its user: files 0600, folders 0700 (the data dir holds faces)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from support import REPO
from support_images import gradient, jpeg_bytes


def _picsort(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PICSORT_DATA_DIR=str(data_dir))
    # a permissive umask in the caller must not leak into the data dir
    code = "import os, sys; os.umask(0o022); from picsort_local.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)


def test_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = _picsort(data, "event", "create", "Private party")
    assert created.returncode == 0, created.stderr
    event_id = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("event id:"))
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_bytes(gradient(320, 240)))
    indexed = _picsort(data, "index", event_id, str(photo))
    assert indexed.returncode == 0, indexed.stderr
    paths = [data, *data.rglob("*")]
    assert any(p.name == "picsort.sqlite3" for p in paths)
    loose = [(str(p.relative_to(tmp_path)), oct(stat.S_IMODE(p.stat().st_mode))) for p in paths
             if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert loose == [], loose
