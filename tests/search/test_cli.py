"""The `picsort` command line, run as the shipped entry point (pyproject's `[project.scripts]`) in its own
process: what it writes is private to its user, and `picsort people` lists each person's set of photos."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from support import REPO, need_shared
from support.images import gradient, jpeg_bytes
from support.servers import child_env, picsort_argv

from picsort_local.settings import Settings

PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair")
PHOTOS_EACH = 4


def _picsort(data_dir: Path, *args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    argv = picsort_argv(*args)
    if umask is not None:  # set in the child before the CLI runs (argv = python -c CODE ARGS...)
        argv[2] = f"import os; os.umask({umask:#o}); {argv[2]}"
    return subprocess.run(argv, env=child_env({"PICSORT_DATA_DIR": str(data_dir)}), cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)


def test_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # a permissive umask in the caller must not leak into the data dir
    created = _picsort(data, "event", "create", "Private party", umask=0o022)
    assert created.returncode == 0, created.stderr
    event_id = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("event id:"))
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_bytes(gradient(320, 240)))
    indexed = _picsort(data, "index", event_id, str(photo), umask=0o022)
    assert indexed.returncode == 0, indexed.stderr
    paths = [data, *data.rglob("*")]
    assert any(p.name == "picsort.sqlite3" for p in paths)
    loose = [(str(p.relative_to(tmp_path)), oct(stat.S_IMODE(p.stat().st_mode))) for p in paths
             if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert loose == [], loose


@dataclass(frozen=True)
class Event:
    data_dir: Path
    id: str
    filenames: dict[str, str]  # photo id -> file name


@pytest.fixture(scope="module")
def event(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[Event]:
    """A small event indexed through the indexer: 3 people x 4 LFW photos."""
    from indexer.events import Catalog
    from indexer.ingest import Ingestor

    lfw = need_shared("datasets", "lfw", "images")
    folder = tmp_path_factory.mktemp("people-photos")
    for person in PEOPLE:
        for i in range(1, PHOTOS_EACH + 1):
            shutil.copyfile(lfw / person / f"{person}_{i:04d}.jpg", folder / f"{person}_{i}.jpg")
    settings = Settings(data_dir=tmp_path_factory.mktemp("people-data"))
    catalog = Catalog(settings.storage)
    try:
        created = catalog.create_event("People").event
        report = Ingestor(catalog, engine, replace(settings.ingest, bodies=False)).ingest_paths(
            created.id, sorted(folder.iterdir()))
        assert report.indexed == len(PEOPLE) * PHOTOS_EACH, report
        names = {p.id: p.filename for p in catalog.meta.photos.list(created.id)}
    finally:
        catalog.meta.close()
    yield Event(settings.data_dir, created.id, names)


def _people_json(event: Event, *extra: str) -> dict[str, Any]:
    run = _picsort(event.data_dir, "people", event.id, "--json", *extra)
    assert run.returncode == 0, run.stderr
    answer: dict[str, Any] = json.loads(run.stdout)
    return answer


def test_people_json_lists_each_persons_photos(event: Event) -> None:
    answer = _people_json(event, "--limit", "1000")
    assert answer["event"]["id"] == event.id
    persons = answer["persons"]
    assert answer["total"] == len(persons) and answer["left_out"] == 0
    for person in persons:
        ids = [p["photo_id"] for p in person["photos"]]
        assert len(ids) == len(set(ids)) == person["photo_count"], person
        assert all(event.filenames[p["photo_id"]] == p["filename"] for p in person["photos"]), person
    # every photo holds a face, so each is in some person's set (LFW frames may hold a second face)
    assert {p["photo_id"] for person in persons for p in person["photos"]} == set(event.filenames)
    # each of the three people is one person whose set is exactly their photos
    sets = {frozenset(p["filename"] for p in person["photos"]) for person in persons}
    for name in PEOPLE:
        assert frozenset(f"{name}_{i}.jpg" for i in range(1, PHOTOS_EACH + 1)) in sets, (name, sets)


def test_people_limit_applies_to_json_and_text(event: Event) -> None:
    everyone = _people_json(event, "--limit", "1000")
    total = everyone["total"]
    assert total >= len(PEOPLE)
    first_two = _people_json(event, "--limit", "2")
    assert first_two["persons"] == everyone["persons"][:2]  # the largest first, as in the text output
    assert (first_two["total"], first_two["left_out"]) == (total, total - 2)
    none = _people_json(event, "--limit", "0")
    assert (none["persons"], none["left_out"]) == ([], total)

    text = _picsort(event.data_dir, "people", event.id, "--limit", "2")
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("  person ") == 2
    assert f"... {total - 2} more (--limit)" in text.stdout
