"""The metadata repositories on a temporary SQLite file, with known answers (no models, fast)."""

from __future__ import annotations

import ast
import hashlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from picsort_local.errors import AlreadyExistsError, NotFoundError
from picsort_local.types import FaceQuality, FaceRecord, Outfit, PixelBox
from storage.metadata import MIGRATIONS, Body, EventCounts, Metadata, RekFaceLink, db

PACKAGE = Path(__file__).resolve().parents[2] / "storage" / "metadata"


def record(x: float, *, outfit: Outfit | None = None, yaw: float = 0.0) -> FaceRecord:
    return FaceRecord(
        box=PixelBox(x, 10.0, x + 40.0, 60.0),
        landmarks=((x + 10.0, 20.5), (x + 30.0, 20.25), (x + 20.0, 30.0), (x + 12.0, 45.0), (x + 28.0, 45.0)),
        score=0.875,
        quality=FaceQuality(face_px=50.0, sharpness=120.5, brightness=99.0, yaw=yaw, pitch=8.0, roll=-2.5),
        outfit=outfit,
    )


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[Metadata]:
    store = Metadata(tmp_path / "meta.sqlite3")
    for event in ("e1", "e2"):
        store.events.create(event, f"Event {event}", f"hash-{event}", f"mark {event}")
    try:
        yield store
    finally:
        store.close()


def add_photos(meta: Metadata, event: str, ids: list[str], *, stored: bool = True) -> None:
    for photo_id in ids:
        meta.photos.add(photo_id, event, f"sha-{photo_id}", f"{photo_id}.jpg",
                        original_key=f"events/{event}/originals/{photo_id}" if stored else None)


def indexed_faces(meta: Metadata, event: str, per_photo: dict[str, int]) -> dict[str, list[int]]:
    """Photos with that many faces each, inserted and committed; face ids per photo."""
    add_photos(meta, event, list(per_photo))
    batch = [(p, [record(10.0 * i) for i in range(n)]) for p, n in per_photo.items()]
    ids = meta.faces.insert_pending(event, batch)
    meta.faces.commit(event, list(per_photo))
    return dict(zip(per_photo, ids, strict=True))


# ---- events --------------------------------------------------------------------------------------
def test_events_create_find_list_delete(meta: Metadata) -> None:
    e1 = meta.events.get("e1")
    assert (e1.id, e1.name, e1.token_hash, e1.watermark) == ("e1", "Event e1", "hash-e1", "mark e1")
    assert meta.events.by_token_hash("hash-e2") == meta.events.get("e2")
    assert meta.events.by_token_hash("nope") is None
    assert [e.id for e in meta.events.list()] == ["e1", "e2"]
    with pytest.raises(NotFoundError):
        meta.events.get("e3")
    assert meta.events.create("e3", "no mark", "hash-e3", None).watermark is None

    indexed_faces(meta, "e2", {"a": 2})
    meta.jobs.create("j2", "e2", 1)
    meta.events.delete("e2")
    with pytest.raises(NotFoundError):
        meta.events.get("e2")
    with pytest.raises(NotFoundError):
        meta.jobs.get("j2")  # the event's jobs go with it
    assert meta.faces.list("e2", indexed_only=False) == [] and meta.photos.list("e2") == []


def test_event_counts_and_their_fields(meta: Metadata) -> None:
    indexed_faces(meta, "e1", {"a": 2, "b": 1})
    add_photos(meta, "e1", ["c", "d"])
    meta.photos.set_failed("d", "corrupt: bad bytes")
    ids = meta.faces.indexed_ids("e1")
    meta.persons.replace("e1", [(ids[:2], ids[0]), (ids[2:], ids[2])])
    counts = meta.events.counts("e1")
    assert counts == EventCounts(photos={"failed": 1, "indexed": 2, "pending": 1}, faces=3, persons=2)
    assert counts.as_fields() == {"photos_failed": 1, "photos_indexed": 2, "photos_pending": 1,
                                  "faces": 3, "persons": 2}
    assert meta.events.counts("e2").as_fields() == {"faces": 0, "persons": 0}


# ---- photos --------------------------------------------------------------------------------------
def test_photos_by_status_and_duplicates(meta: Metadata) -> None:
    add_photos(meta, "e1", ["a", "b", "c"])
    row, created = meta.photos.add("z", "e1", "sha-b", "again.jpg")
    assert (row.id, created) == ("b", False)  # same bytes: the first row is kept
    meta.photos.add("b2", "e2", "sha-b", "b.jpg")  # other events are independent
    meta.faces.insert_pending("e1", [("a", [record(0.0)])])
    meta.photos.set_failed("c", "truncated: cut short")
    assert [p.id for p in meta.photos.list("e1")] == ["a", "b", "c"]
    assert [p.id for p in meta.photos.list("e1", "processing")] == ["a"]
    assert [p.id for p in meta.photos.list("e1", "pending")] == ["b"]
    failed = meta.photos.list("e1", "failed")
    assert [(p.id, p.error) for p in failed] == [("c", "truncated: cut short")]
    meta.photos.set_stored("b", "events/e1/originals/b", 640, 480)
    b = meta.photos.get("e1", "b")
    assert (b.original_key, b.width, b.height, b.sha256) == ("events/e1/originals/b", 640, 480, "sha-b")
    assert meta.photos.by_sha("e1", "sha-c") == meta.photos.get("e1", "c")
    assert meta.photos.by_sha("e2", "sha-c") is None
    with pytest.raises(NotFoundError):
        meta.photos.get("e2", "a")


def test_indexed_photo_rows_are_shared_by_the_same_bytes(meta: Metadata) -> None:
    assert meta.photos.add_indexed("e1", "r1", "sha-r", "img", 100, 80) == "r1"
    assert meta.photos.add_indexed("e1", "r2", "sha-r", "img again", 999, 999) == "r1"
    row = meta.photos.get("e1", "r1")
    assert (row.status, row.width, row.height, row.original_key) == ("indexed", 100, 80, None)


def test_photo_delete_returns_its_faces(meta: Metadata) -> None:
    ids = indexed_faces(meta, "e1", {"a": 2, "b": 1})
    meta.guests.hide("e1", "guest-0123456789abcdef", "a")
    assert sorted(meta.photos.delete("e1", "a")) == sorted(ids["a"])
    assert meta.faces.indexed_ids("e1") == ids["b"]
    assert meta.guests.hidden("e1", "guest-0123456789abcdef") == set()
    with pytest.raises(NotFoundError):
        meta.photos.delete("e1", "a")
    with pytest.raises(NotFoundError):
        meta.photos.delete("e2", "b")  # another event's photo
    assert meta.faces.indexed_ids("e1") == ids["b"]


def test_bodies_near_a_colour(meta: Metadata) -> None:
    add_photos(meta, "e1", ["a", "b"])
    red, blue = Outfit((50.0, 60.0, 40.0), "red"), Outfit((40.0, 10.0, -50.0), "blue")
    meta.photos.add_bodies("e1", "a", [Body((1.0, 2.0, 3.0, 4.0), red), Body((5.0, 6.0, 7.0, 8.0), blue)])
    meta.photos.add_bodies("e1", "b", [Body((0.0, 0.0, 9.0, 9.0), red)])
    meta.photos.add_bodies("e1", "b", [Body((1.0, 1.0, 2.0, 2.0), blue)])  # replaces b's bodies
    every = meta.photos.bodies("e1")
    assert sorted((b.photo_id, b.box, b.outfit) for b in every) == [
        ("a", (1.0, 2.0, 3.0, 4.0), red), ("a", (5.0, 6.0, 7.0, 8.0), blue),
        ("b", (1.0, 1.0, 2.0, 2.0), blue)]
    near_red = meta.photos.bodies("e1", (52.0, 58.0, 41.0), 5.0)
    assert [(b.photo_id, b.outfit.name) for b in near_red] == [("a", "red")]
    assert meta.photos.bodies("e2") == []


# ---- faces ---------------------------------------------------------------------------------------
def test_pending_faces_commit_and_records_round_trip(meta: Metadata) -> None:
    add_photos(meta, "e1", ["a", "b"])
    green = Outfit((60.0, -40.0, 30.0), "green")
    records = [record(0.0, outfit=green), record(100.0, yaw=30.0)]
    ids = meta.faces.insert_pending("e1", [("a", records), ("b", [])])
    assert len(ids) == 2 and len(ids[0]) == 2 and ids[1] == []
    assert sorted(meta.faces.pending("e1")) == [(ids[0][0], "a"), (ids[0][1], "a")]
    assert meta.faces.indexed_ids("e1") == [] and meta.faces.list("e1") == []
    assert {p.id: p.status for p in meta.photos.list("e1")} == {"a": "processing", "b": "processing"}

    meta.faces.commit("e1", ["a", "b"])
    assert meta.faces.pending("e1") == []
    assert sorted(meta.faces.indexed_ids("e1")) == sorted(ids[0])
    assert {p.id: p.status for p in meta.photos.list("e1")} == {"a": "indexed", "b": "indexed"}
    rows = meta.faces.list("e1")
    assert [r.id for r in rows] == sorted(ids[0])
    assert [r.record for r in rows] == records  # every stored field reads back the same
    assert all((r.event_id, r.photo_id, r.person_id, r.state) == ("e1", "a", None, "indexed") for r in rows)
    assert {r.id for r in meta.faces.get("e1", ids[0])} == set(ids[0])
    assert meta.faces.get("e2", ids[0]) == [] and meta.faces.get("e1", []) == []
    photos = meta.faces.photos("e1", [*ids[0], 99999])
    assert photos[ids[0][0]].photo_id == "a" and photos[ids[0][0]].outfit_lab == green.lab
    assert photos[ids[0][1]].outfit_lab is None and 99999 not in photos
    assert meta.faces.photos("e2", ids[0]) == {}


def test_reset_photos_drops_half_done_faces(meta: Metadata) -> None:
    add_photos(meta, "e1", ["a", "b"])
    ids = meta.faces.insert_pending("e1", [("a", [record(0.0)]), ("b", [record(0.0)])])
    meta.faces.reset_photos("e1", ["a"])
    assert meta.faces.pending("e1") == [(ids[1][0], "b")]
    assert meta.photos.get("e1", "a").status == "pending"
    assert meta.faces.list("e1", indexed_only=False)[0].state == "pending"


def test_face_lookups_by_id_use_the_primary_key(meta: Metadata) -> None:
    """A search looks a few hundred ids up in an event of 100k faces: by primary key, never by
    scanning the event's faces."""
    ids = indexed_faces(meta, "e1", {"a": 3})["a"]
    marks = ",".join("?" * len(ids))
    plan = " ".join(str(r[3]) for r in meta.db.query(
        f"EXPLAIN QUERY PLAN SELECT id, photo_id FROM faces WHERE event_id || '' = ? AND id IN ({marks})",
        ("e1", *ids)))
    assert "PRIMARY KEY" in plan and "faces_event" not in plan, plan


def test_long_id_lists_are_looked_up_in_chunks(meta: Metadata, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole event's faces (regrouping) exceed any database's parameter limit: looked up in slices."""
    monkeypatch.setattr(db, "MAX_IN", 3)
    ids = indexed_faces(meta, "e1", {"a": 4, "b": 3})
    every = ids["a"] + ids["b"]
    assert sorted(f.id for f in meta.faces.get("e1", every)) == sorted(every)
    assert sorted(meta.faces.photos("e1", every)) == sorted(every)


# ---- persons -------------------------------------------------------------------------------------
def test_persons_replace_list_and_photos(meta: Metadata) -> None:
    ids = indexed_faces(meta, "e1", {"a": 2, "b": 1, "c": 1})
    a0, a1, b0, c0 = *ids["a"], ids["b"][0], ids["c"][0]
    meta.persons.replace("e1", [([a0], a0), ([c0], c0), ([b0], b0)])
    pids = meta.persons.replace("e1", [([a1, b0], b0), ([a0, c0], a0)])
    people = meta.persons.list("e1")
    assert len(pids) == 2 and len(people) == 2  # replaced, not added to
    assert [(p.id, p.face_count, p.photo_count, p.representative_face_id, p.rep_photo) for p in people] == [
        (pids[0], 2, 2, b0, "b"), (pids[1], 2, 2, a0, "a")]
    both = meta.persons.photos("e1")
    assert [(p.person_id, p.photo_id, p.filename) for p in both] == [
        (pids[0], "a", "a.jpg"), (pids[0], "b", "b.jpg"), (pids[1], "a", "a.jpg"), (pids[1], "c", "c.jpg")]
    assert [p.photo_id for p in meta.persons.photos("e1", [pids[1]])] == ["a", "c"]
    assert meta.persons.photos("e1", []) == [] and meta.persons.photos("e2", pids) == []
    assert meta.persons.photos("e2") == []
    meta.persons.replace("e1", [])
    assert meta.persons.list("e1") == [] and meta.persons.photos("e1") == []
    assert all(f.person_id is None for f in meta.faces.list("e1"))


def test_person_photos_are_distinct_and_in_upload_order(meta: Metadata) -> None:
    ids = indexed_faces(meta, "e1", {"z": 2, "m": 1})  # two faces of the person in z
    for photo_id, stamp in (("z", "2024-06-01T18:00:00+00:00"), ("m", "2024-06-01T18:00:01+00:00")):
        meta.db.execute("UPDATE photos SET created_at = ? WHERE id = ?", (stamp, photo_id))  # z came first
    (pid,) = meta.persons.replace("e1", [([*ids["z"], *ids["m"]], ids["z"][0])])
    assert [(p.person_id, p.photo_id) for p in meta.persons.photos("e1", [pid])] == [(pid, "z"), (pid, "m")]
    assert meta.persons.list("e1")[0].photo_count == 2


# ---- guests --------------------------------------------------------------------------------------
def test_guests_hide_grant_selfie_forget(meta: Metadata) -> None:
    add_photos(meta, "e1", ["a", "b"])
    add_photos(meta, "e2", ["x"])
    g = "guest-0123456789abcdef"
    meta.guests.hide("e1", g, "a")
    meta.guests.hide("e1", g, "a")  # idempotent
    meta.guests.hide("e1", "other-guest-000000", "b")
    with pytest.raises(NotFoundError):
        meta.guests.hide("e1", g, "x")  # not a photo of this event
    assert meta.guests.hidden("e1", g) == {"a"} and meta.guests.hidden("e2", g) == set()
    meta.guests.grant("e1", g, "b")
    meta.guests.grant("e1", g, "b")
    with pytest.raises(NotFoundError):
        meta.guests.grant("e1", g, "nope")
    assert meta.guests.has_grant("e1", g, "b") and not meta.guests.has_grant("e1", g, "a")

    meta.guests.save_selfie("e1", "selfie-hash", "events/e1/selfies/s", b"\x00\x01\x02\x03")
    found = meta.guests.selfie("e1", "selfie-hash")
    assert found is not None
    assert (found.blob_key, found.embedding) == ("events/e1/selfies/s", b"\x00\x01\x02\x03")
    assert meta.guests.selfie("e2", "selfie-hash") is None  # usable only in its own event
    assert meta.guests.delete_selfie("e2", "selfie-hash") is None
    assert meta.guests.delete_selfie("e1", "selfie-hash") == "events/e1/selfies/s"
    assert meta.guests.selfie("e1", "selfie-hash") is None

    meta.guests.forget("e1", g)
    assert meta.guests.hidden("e1", g) == set() and not meta.guests.has_grant("e1", g, "b")
    assert meta.guests.hidden("e1", "other-guest-000000") == {"b"}  # only that guest's rows


# ---- Rekognition ---------------------------------------------------------------------------------
def test_rekognition_collections(meta: Metadata) -> None:
    created = meta.rekognition.add_collection("beta", "e1")
    assert (created.collection_id, created.event_id) == ("beta", "e1")
    with pytest.raises(AlreadyExistsError):
        meta.rekognition.add_collection("beta", "e2")
    meta.rekognition.add_collection("alpha", "e2")
    assert meta.rekognition.collection("alpha") is not None and meta.rekognition.collection("gamma") is None
    assert [c.collection_id for c in meta.rekognition.collections(None, 10)] == ["alpha", "beta"]
    assert [c.collection_id for c in meta.rekognition.collections("alpha", 10)] == ["beta"]
    assert [c.collection_id for c in meta.rekognition.collections(None, 1)] == ["alpha"]


def test_rekognition_faces_pagination_and_delete(meta: Metadata) -> None:
    photo = meta.photos.add_indexed("e1", "img1", "sha-img1", "ext-1", 400, 300)
    ids = meta.faces.insert_pending("e1", [(photo, [record(0.0), record(100.0), record(200.0)])])[0]
    uuids = [f"uuid-{n}" for n in range(3)]
    links = [RekFaceLink(u, f, "image-1", "ext-1") for u, f in zip(uuids, ids, strict=True)]
    meta.rekognition.add_faces("e1", links)
    assert meta.rekognition.faces("e1", 0, 10) == []  # pending faces are not known yet
    meta.faces.commit("e1", [photo])
    hosted = indexed_faces(meta, "e1", {"h": 1})["h"]  # a host photo's face: no FaceId

    first = meta.rekognition.faces("e1", 0, 2)
    assert [f.face_uuid for f in first] == uuids[:2]
    assert [f.face_uuid for f in meta.rekognition.faces("e1", first[-1].face_id, 2)] == uuids[2:]
    face = first[0]
    assert (face.face_id, face.image_uuid, face.external_image_id) == (ids[0], "image-1", "ext-1")
    assert face.photo_id == photo
    assert (face.box, face.det_score, face.width, face.height) == ((0.0, 10.0, 40.0, 60.0), 0.875, 400, 300)
    assert meta.rekognition.count_faces("e1") == 3 and meta.rekognition.count_faces("e2") == 0
    assert [f.face_uuid for f in meta.rekognition.faces_by_id("e1", [ids[1], *hosted])] == [uuids[1]]
    assert [f.face_id for f in meta.rekognition.faces_by_uuid("e1", ["uuid-2", "missing"])] == [ids[2]]
    assert meta.rekognition.faces_by_uuid("e2", uuids) == []

    gone = meta.rekognition.delete_faces("e1", ["uuid-0", "uuid-1"])
    assert sorted(f.face_id for f in gone) == ids[:2]
    assert meta.faces.indexed_ids("e1") == [ids[2], *hosted]
    meta.photos.get("e1", photo)  # the photo keeps a face: kept
    assert [f.face_id for f in meta.rekognition.delete_faces("e1", ["uuid-2"])] == [ids[2]]
    with pytest.raises(NotFoundError):
        meta.photos.get("e1", photo)  # no face and no original left: gone
    assert meta.rekognition.delete_faces("e1", ["uuid-2"]) == []
    assert meta.photos.get("e1", "h").status == "indexed"  # host photos are untouched


# ---- jobs ----------------------------------------------------------------------------------------
def test_jobs_round_trip_with_errors(meta: Metadata) -> None:
    created = meta.jobs.create("j1", "e1", 3, status="queued")
    assert (created.status, created.total, created.done, created.errors) == ("queued", 3, 0, ())
    meta.jobs.create("j2", "e1", 1)
    assert meta.jobs.get("j2").status == "running"  # the default, as before
    meta.jobs.update("j1", done=2, failed=0, status="running")
    active = [(j.id, j.status, j.done) for j in meta.jobs.active()]
    assert active == [("j1", "running", 2), ("j2", "running", 0)]
    meta.jobs.update("j1", done=3, failed=1, status="done", errors=[("bad.jpg", "corrupt: no image")])
    job = meta.jobs.get("j1")
    assert (job.id, job.event_id, job.status) == ("j1", "e1", "done")
    assert (job.total, job.done, job.failed) == (3, 3, 1)
    assert job.errors == (("bad.jpg", "corrupt: no image"),)
    meta.jobs.update("j1", done=3, failed=1, status="done")  # without errors: the stored ones stay
    assert meta.jobs.get("j1").errors == (("bad.jpg", "corrupt: no image"),)
    assert [j.id for j in meta.jobs.active()] == ["j2"]
    meta.jobs.update("gone", done=1, failed=0, status="done")  # a job deleted meanwhile: nothing happens
    with pytest.raises(NotFoundError):
        meta.jobs.get("gone")


# ---- schema --------------------------------------------------------------------------------------
def test_migrations_one_to_five_never_change() -> None:
    """Databases in the field have applied them: a changed script would never run there."""
    digest = hashlib.sha256("\x00".join(MIGRATIONS[:5]).encode()).hexdigest()
    assert digest == "4bb21f90ee56257d4934b3dfb64bf41ba7013ac70c76287bd53352b5613b8096"


def test_a_version_5_database_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:5], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    conn.execute("INSERT INTO events (id, name, created_at, token_hash, settings_json)"
                 " VALUES ('e1', 'Old', 't', 'h', '{\"watermark\": \"Old\"}')")
    conn.execute("INSERT INTO ingest_jobs (id, event_id, status, total, done, failed, created_at, updated_at)"
                 " VALUES ('j1', 'e1', 'done', 2, 2, 0, 't', 't')")
    conn.commit()
    conn.close()
    meta = Metadata(path)
    try:
        assert meta.events.get("e1").watermark == "Old"
        assert meta.jobs.get("j1").errors == ()
        assert meta.db.query("SELECT MAX(version) FROM schema_version")[0][0] == len(MIGRATIONS)
    finally:
        meta.close()
    Metadata(path).close()  # up to date: nothing runs again


# ---- portable SQL --------------------------------------------------------------------------------
def _sql_strings(source: str) -> list[str]:
    """Every string literal of a module, f-strings' literal parts included."""
    return [node.value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_sql_is_portable() -> None:
    """What PostgreSQL would refuse or do differently: INSERT OR IGNORE/REPLACE, lastrowid, and the
    `+column` trick that switches an index off in SQLite only."""
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 10
    for module in modules:
        source = module.read_text(encoding="utf-8")
        assert "lastrowid" not in source, module.name
        for text in _sql_strings(source):
            assert not re.search(r"\bINSERT\s+OR\b", text, re.IGNORECASE), (module.name, text)
            assert not re.search(r"(^|[\s(,=])\+\s*[A-Za-z_]", text), (module.name, text)
