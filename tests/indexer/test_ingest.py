"""Ingest with the real engine on real photos: idempotence, bad photos, outfit colours, persons,
crash-and-resume with a real kill -9 (at a fixed write, see support.crash), and one-call deletion."""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import REPO, need_shared
from support.crash import crash_argv
from support.servers import child_env, picsort_argv

from indexer.events import Catalog
from indexer.ingest import Ingestor, find_images
from models.engine import FaceEngine
from picsort_local.errors import NotFoundError
from picsort_local.settings import Settings
from storage.metadata.rows import FaceRow


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(Settings(data_dir=tmp_path / "data").storage)


@pytest.fixture(scope="module")
def lfw_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small event: 4 people x 4 photos from LFW + a broken file + a non-image."""
    lfw = need_shared("datasets", "lfw", "images")
    folder = tmp_path_factory.mktemp("event-photos")
    for person in ("George_W_Bush", "Colin_Powell", "Serena_Williams", "Tony_Blair"):
        for i in range(1, 5):
            shutil.copyfile(lfw / person / f"{person}_{i:04d}.jpg", folder / f"{person}_{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_ingest_is_idempotent_and_records_bad_photos(catalog: Catalog, engine: FaceEngine, lfw_photos: Path) -> None:
    event = catalog.create_event("Gala").event
    paths, skipped = find_images([lfw_photos])
    assert [p.name for p in skipped] == ["notes.txt"]
    ingestor = Ingestor(catalog, engine, replace(Settings().ingest, checkpoint_photos=5))
    report = ingestor.ingest_paths(event.id, paths)
    assert (report.added, report.indexed, report.failed) == (17, 16, 1)
    assert report.errors[0][1].startswith("corrupt")
    failed = catalog.meta.photos.list(event.id, "failed")
    assert len(failed) == 1 and failed[0].error and "corrupt" in failed[0].error

    again = ingestor.ingest_paths(event.id, paths)
    assert (again.added, again.duplicates, again.indexed) == (0, 17, 0)

    faces = catalog.meta.faces.list(event.id)
    index = catalog.faces.index(event.id, 128)
    assert sorted(index.ids().tolist()) == sorted(f.id for f in faces)
    assert all(f.record.outfit is None or isinstance(f.record.outfit.name, str) for f in faces)
    # derived images exist for every indexed photo
    for photo in catalog.meta.photos.list(event.id, "indexed"):
        for kind in ("preview", "thumb", "micro"):
            assert catalog.blobs.exists(f"events/{event.id}/{kind}/{photo.id}.jpg")

    # the four people each form one person with 4 photos (LFW side faces may add singletons)
    persons = catalog.meta.persons.list(event.id)
    big = sorted(p.photo_count for p in persons if p.photo_count >= 3)
    assert big == [4, 4, 4, 4], persons


def test_delete_event_leaves_nothing(catalog: Catalog, engine: FaceEngine, lfw_photos: Path) -> None:
    keep = catalog.create_event("Other").event
    gone = catalog.create_event("Doomed").event
    paths, _ = find_images([lfw_photos])
    Ingestor(catalog, engine, Settings().ingest).ingest_paths(gone.id, paths[:3])
    Ingestor(catalog, engine, Settings().ingest).ingest_paths(keep.id, paths[:1])
    catalog.delete_event(gone.id)
    with pytest.raises(NotFoundError):
        catalog.meta.events.get(gone.id)
    assert catalog.blobs.list(f"events/{gone.id}/") == []
    assert catalog.faces.version(gone.id) is None
    residue = [p for p in (catalog.storage.data_dir / "blobs").rglob("*") if gone.id in str(p)]
    assert residue == []
    db = (catalog.storage.data_dir / "picsort.sqlite3")
    import sqlite3

    with sqlite3.connect(db) as conn:
        for table in ("photos", "faces", "persons", "ingest_jobs"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE event_id = ?", (gone.id,)).fetchone()[0] == 0
    assert catalog.meta.photos.list(keep.id)  # the other event is untouched


def test_guest_token_resolves_only_its_event(catalog: Catalog) -> None:
    a = catalog.create_event("A")
    b = catalog.create_event("B")
    assert len(a.guest_token) >= 32  # 192 bits, url-safe base64
    assert catalog.event_for_token(a.guest_token).id == a.event.id
    assert catalog.event_for_token(b.guest_token).id == b.event.id
    with pytest.raises(NotFoundError):
        catalog.event_for_token(a.guest_token[:-1] + ("x" if a.guest_token[-1] != "x" else "y"))
    assert a.guest_token not in (catalog.storage.data_dir / "picsort.sqlite3").read_bytes().decode("latin-1")


@pytest.mark.slow  # three CLI processes, each loading the models
def test_kill_9_midway_then_rerun_indexes_each_photo_once(tmp_path: Path) -> None:
    lfw = need_shared("datasets", "lfw", "images")
    photos = tmp_path / "photos"
    photos.mkdir()
    people = sorted(p for p in lfw.iterdir() if p.is_dir())[:60]
    for person in people:
        first = sorted(person.glob("*.jpg"))[0]
        shutil.copyfile(first, photos / first.name)
    env = child_env({"PICSORT_DATA_DIR": str(tmp_path / "data"), "PICSORT_INGEST_CHECKPOINT_PHOTOS": "4"})
    out = subprocess.run(picsort_argv("event", "create", "Crash test"), env=env, capture_output=True,
                         text=True, check=True)
    event_id = out.stdout.split("event id:")[1].split()[0]
    # The run kills itself (SIGKILL) at its first blob write after the 2nd index snapshot is published:
    # the same point on every run, midway (the next photos are being stored and analysed).
    crashing = crash_argv("after-pointer:2", "index", event_id, str(photos))
    killed = subprocess.run(crashing, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, f"the ingest was not killed midway: {killed.stderr[-2000:]}"

    catalog = Catalog(Settings(data_dir=tmp_path / "data").storage)
    partial = len(catalog.meta.photos.list(event_id, "indexed"))
    assert 0 < partial < len(people)
    catalog.meta.close()

    rerun = subprocess.run(picsort_argv("index", event_id, str(photos)), env=env, cwd=REPO,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr

    catalog = Catalog(Settings(data_dir=tmp_path / "data").storage)
    indexed = catalog.meta.photos.list(event_id, "indexed")
    assert len(indexed) == len(people)  # no lost photos
    assert len({p.sha256 for p in indexed}) == len(people)  # each once
    assert catalog.meta.faces.pending(event_id) == []
    index = catalog.faces.index(event_id, 128)
    ids = index.ids()
    assert len(ids) == len(set(ids.tolist()))
    assert set(ids.tolist()) == set(catalog.meta.faces.indexed_ids(event_id))  # no orphan vectors
    per_photo: dict[str, list[FaceRow]] = {}
    for face in catalog.meta.faces.list(event_id):
        per_photo.setdefault(face.photo_id, []).append(face)
    # one face per LFW photo at least, and no photo's faces were inserted twice
    assert all(len({tuple(np.round(f.record.box.as_tuple(), 0)) for f in faces}) == len(faces)
               for faces in per_photo.values())
