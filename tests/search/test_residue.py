"""Residue scan (issue 6, item 6): after a guest's "forget", a host's photo delete and an event delete,
nothing of what was removed is left anywhere the service writes: not in the data dir (every byte of every
file, the SQLite database with its -wal and -shm files included), not in the blob store (local folder or
an S3 bucket, served here by moto on loopback for the MinIO backend), not in any index snapshot, and not
in any row of any table (tables enumerated from sqlite_master, so new tables are covered). A second
event stays alive throughout and must come out intact.

Deleted SQLite rows can linger as bytes in freed pages and in old WAL frames; the scans read the raw
files, so they catch that as well as live rows.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr
from support import need_shared
from support.servers import ADMIN_KEY, LiveServer, wait_job

from picsort_local.settings import Settings

A_PHOTOS = [("Colin_Powell", 2), ("Colin_Powell", 3), ("Tony_Blair", 2)]
A_GROUP = [("Colin_Powell", 4), ("Donald_Rumsfeld", 1), ("Gerhard_Schroeder", 1)]  # one photo, three faces
B_PHOTOS = [("Jacques_Chirac", 1), ("Vladimir_Putin", 1)]


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _lfw(lfw: Path, person: str, i: int) -> Image.Image:
    return Image.open(lfw / person / f"{person}_{i:04d}.jpg").convert("RGB")


def _selfie(lfw: Path, person: str, i: int) -> bytes:
    """Selfie-like framing of a held-out LFW photo: the central crop, enlarged."""
    return _jpeg(_lfw(lfw, person, i).crop((45, 25, 205, 225)).resize((480, 600), Image.Resampling.BICUBIC))


def _group(lfw: Path, people: list[tuple[str, int]]) -> bytes:
    """A group photo: central crops side by side, one face each."""
    crops = [np.asarray(_lfw(lfw, p, i))[25:225, 45:205] for p, i in people]
    return _jpeg(Image.fromarray(np.concatenate(crops, axis=1)))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Stack:
    backend: str
    settings: Settings
    server: LiveServer
    host: httpx.Client
    anon: httpx.Client
    blobs: Any  # the same blob store the service writes to, opened by the test
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.settings.data_dir / "picsort.sqlite3"

    def sources(self) -> dict[str, bytes]:
        """Every byte the service has written: all files under the data dir (blobs of the local store,
        the database and its -wal/-shm, the signing key) and, for MinIO, every object in the bucket."""
        out = {str(p): p.read_bytes() for p in sorted(self.settings.data_dir.rglob("*")) if p.is_file()}
        if self.backend == "minio":
            out |= {f"s3://{self.settings.minio_bucket}/{k}": self.blobs.get(k) for k in self.blobs.list("")}
        return out

    def names(self) -> list[str]:
        """Every path and object key (for ids in names, e.g. an event's folder)."""
        out = [str(p) for p in self.settings.data_dir.rglob("*")]
        if self.backend == "minio":
            out += self.blobs.list("")
        return out


@pytest.fixture(scope="module", params=["local", "minio"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[Stack]:
    from search.http.app import create_app
    from search.service import PicsortService
    from storage.blobs import make_blob_store

    extra: dict[str, Any] = {}
    if request.param == "minio":
        extra = {"blob_backend": "minio", "minio_endpoint": request.getfixturevalue("s3_endpoint"),
                 "minio_access_key": "testing", "minio_secret_key": "testing",
                 "minio_bucket": f"residue-{uuid.uuid4().hex[:12]}"}
    # Two photos per snapshot: an ingest writes several snapshots, so old ones are part of the scan.
    settings = Settings(data_dir=tmp_path_factory.mktemp(f"residue-{request.param}"), admin_key=SecretStr(ADMIN_KEY),
                        ingest_checkpoint_photos=2, **extra)
    service = PicsortService(settings, engine=engine)
    with LiveServer(create_app(settings, service=service)) as server, \
            httpx.Client(base_url=server.url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=120) as host, \
            httpx.Client(base_url=server.url, timeout=120) as anon:
        stack = Stack(request.param, settings, server, host, anon, make_blob_store(settings.storage))
        lfw = need_shared("datasets", "lfw", "images")
        uploads = {"A": [(f"{p}_{i}.jpg", _jpeg(_lfw(lfw, p, i))) for p, i in A_PHOTOS]
                   + [("group.jpg", _group(lfw, A_GROUP))],
                   "B": [(f"{p}_{i}.jpg", _jpeg(_lfw(lfw, p, i))) for p, i in B_PHOTOS]}
        for name, files in uploads.items():
            created = host.post("/api/host/events", json={"name": f"residue {name}"}).json()
            up = host.post(f"/api/host/events/{created['id']}/photos",
                           files=[("files", (n, d, "image/jpeg")) for n, d in files])
            assert up.status_code == 202, up.text
            job = wait_job(host, up.json()["job_id"])
            assert job["status"] == "done" and job["done"] == len(files) and job["failed"] == 0, job
            stack.events[name] = {**created, "uploads": files, "job_id": up.json()["job_id"], "lfw": lfw}
        yield stack


# ---- scanning helpers ---------------------------------------------------------------------------
def _nothing(hits: list[Any], what: str) -> None:
    """Assert no hit, listing every one (where each needle was found) when there are some."""
    assert not hits, f"{len(hits)} residue hit(s) {what}:\n" + "\n".join(map(str, hits))


def _byte_hits(sources: dict[str, bytes], needles: dict[str, bytes]) -> list[tuple[str, str]]:
    return [(label, where) for label, needle in needles.items() for where, data in sources.items() if needle in data]


def _sha_hits(sources: dict[str, bytes], shas: dict[str, str]) -> list[tuple[str, str]]:
    by_sha = {_sha(data): where for where, data in sources.items()}
    return [(label, by_sha[s]) for s, label in shas.items() if s in by_sha]


def _db_cells(db: Path, texts: dict[str, str], blobs: dict[str, bytes]) -> list[tuple[str, str, str]]:
    """(needle, table, column) for every cell of every table holding one of the needles."""
    hits = []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert {"events", "photos", "faces", "saved_selfies", "grants", "hidden_photos"} <= set(tables), tables
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, str):
                        hits += [(label, table, column) for label, t in texts.items() if t in value]
                    elif isinstance(value, bytes):
                        hits += [(label, table, column) for label, b in blobs.items() if b in value]
                        hits += [(label, table, column) for label, t in texts.items() if t.encode() in value]
    finally:
        conn.close()
    return hits


def _event_vectors(stack: Stack, event_id: str) -> dict[int, bytes]:
    """Face id -> float32 bytes of every embedding in the event's live index snapshot."""
    from indexer.vector_index import IndexStore

    ids, vectors = IndexStore(stack.blobs).load(event_id, 128).all_vectors()
    return {int(i): np.ascontiguousarray(v, dtype=np.float32).tobytes() for i, v in zip(ids, vectors, strict=True)}


def _event_blob_shas(stack: Stack, event_id: str) -> dict[str, str]:
    """sha256 -> key of every blob under the event (originals, previews, thumbnails, persons, snapshots)."""
    keys = stack.blobs.list(f"events/{event_id}/")
    return {_sha(stack.blobs.get(k)): k for k in keys}


def _vector_needles(vectors: dict[int, bytes]) -> dict[str, bytes]:
    # The whole vector, and its first and last quarters (a copy split across pages still matches one of them).
    out: dict[str, bytes] = {}
    for fid, raw in vectors.items():
        out |= {f"face {fid}": raw, f"face {fid} head": raw[:128], f"face {fid} tail": raw[-128:]}
    return out


def _photo_ids(stack: Stack, event_id: str) -> dict[str, str]:
    """Photo id -> file name, read through a short-lived read-only connection."""
    conn = sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)
    try:
        return {r[0]: r[1] for r in conn.execute("SELECT id, filename FROM photos WHERE event_id = ?", (event_id,))}
    finally:
        conn.close()


def _face_ids(stack: Stack, event_id: str, photo_id: str) -> list[int]:
    conn = sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id FROM faces WHERE event_id = ? AND photo_id = ?", (event_id, photo_id))
        return [r[0] for r in rows]
    finally:
        conn.close()


def _people(stack: Stack, event_id: str) -> list[dict[str, Any]]:
    """The host's people list, thumbnail links without their (time-dependent) expiry and signature."""
    people = stack.host.get(f"/api/host/events/{event_id}/people").json()
    return [{**p, "thumb_url": (p["thumb_url"] or "").split("?")[0]} for p in people]


# ---- tests --------------------------------------------------------------------------------------
def test_metadata_store_scrubs_deleted_rows(tmp_path: Path) -> None:
    """Without models: deleted rows are gone from the database file (secure_delete, whatever SQLite's
    compile-time default: Debian's is on, others' off) and from the WAL (truncated after the delete)."""
    from storage.metadata import Metadata

    meta = Metadata(tmp_path / "m.sqlite3")
    try:
        assert meta.db.query("PRAGMA secure_delete")[0][0] == 1
        meta.events.create("doomed0123456789", "doomed", "doomed-token-hash", None)
        for i in range(100):  # enough rows to fill and free whole pages, not just cells
            meta.events.create(f"filler{i:010d}", "filler " * 40, f"filler-hash-{i}", "doomed0123456789")
        assert _byte_hits({p.name: p.read_bytes() for p in tmp_path.iterdir()}, {"id": b"doomed0123456789"})
        meta.events.delete("doomed0123456789")
        for i in range(100):
            meta.events.delete(f"filler{i:010d}")
        files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        assert "m.sqlite3-wal" in files
        _nothing(_byte_hits(files, {"id": b"doomed0123456789", "token hash": b"doomed-token-hash"}), "after delete")
    finally:
        meta.close()


def test_guest_forget_leaves_no_residue(stack: Stack) -> None:
    a, lfw = stack.events["A"], stack.events["A"]["lfw"]
    guest = "residue-guest-" + hashlib.sha256(stack.backend.encode()).hexdigest()[:20]
    selfie = _selfie(lfw, "Colin_Powell", 1)  # held out: never uploaded
    token = a["guest_token"]
    found = stack.anon.post(f"/api/e/{token}/search", headers={"X-Guest-Id": guest},
                            files={"selfie": ("me.jpg", selfie, "image/jpeg")}, data={"save_selfie": "true"})
    assert found.status_code == 200, found.text
    results, selfie_token = found.json()["results"], found.json()["selfie_token"]
    high = [h["photo_id"] for h in results if h["tier"] == "high"]
    assert len(high) >= 2, results  # Colin Powell is in three of A's photos
    granted = stack.host.post(f"/api/host/events/{a['id']}/grants", json={"guest_id": guest, "photo_id": high[0]})
    assert granted.status_code == 201
    original = stack.anon.get(f"/api/e/{token}/photos/{high[0]}/original", headers={"X-Guest-Id": guest})
    assert original.status_code == 200 and stack.anon.get(original.json()["url"]).status_code == 200
    assert guest not in original.json()["url"]  # the link is bound to the grant without naming the guest
    again = stack.anon.post(f"/api/e/{token}/search-saved", json={"selfie_token": selfie_token, "guest_id": guest})
    assert again.status_code == 200
    hide = stack.anon.post(f"/api/e/{token}/feedback", json={"guest_id": guest, "photo_id": high[1], "vote": "down"})
    assert hide.status_code == 200

    from indexer.events import hash_token

    token_hash = hash_token(selfie_token)
    conn = sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT embedding FROM saved_selfies WHERE token_hash = ?", (token_hash,)).fetchone()
        embedding = bytes(row[0])
    finally:
        conn.close()
    assert len(embedding) == 128 * 4
    middle = len(selfie) // 2
    texts = {"guest id": guest, "selfie token": selfie_token, "selfie token hash": token_hash}
    needles = {**{k: v.encode() for k, v in texts.items()},
               "selfie bytes (start)": selfie[600:664], "selfie bytes (middle)": selfie[middle:middle + 64],
               "selfie bytes (end)": selfie[-200:-136], "selfie embedding": embedding,
               "selfie embedding (head)": embedding[:128], "selfie embedding (tail)": embedding[-128:]}
    # The scanners do see all of this before the guest asks to be forgotten.
    seen = {label for label, _ in _byte_hits(stack.sources(), needles)}
    assert {"guest id", "selfie token hash", "selfie bytes (middle)", "selfie embedding"} <= seen, seen
    assert {label for label, _, _ in _db_cells(stack.db, texts, {"selfie embedding": embedding})} >= {
        "guest id", "selfie token hash", "selfie embedding"}

    gone = stack.anon.post(f"/api/e/{token}/forget", json={"guest_id": guest, "selfie_token": selfie_token})
    assert gone.status_code == 200 and gone.json() == {"preferences": True, "selfie": True}, gone.text

    _nothing(_db_cells(stack.db, texts, {"selfie embedding": embedding}), "in database rows after forget")
    _nothing(_byte_hits(stack.sources(), needles), "in files/objects after forget")
    _nothing([n for n in stack.names() if token_hash[:32] in n or guest in n], "in names after forget")
    # and the service agrees: the saved selfie and the grant are gone, the hidden photo is back
    assert stack.anon.post(f"/api/e/{token}/search-saved", json={"selfie_token": selfie_token}).status_code == 404
    assert stack.anon.get(f"/api/e/{token}/photos/{high[0]}/original", headers={"X-Guest-Id": guest}).status_code == 404
    # the link handed out before forget (still within its 15 minutes) no longer downloads the original
    assert stack.anon.get(original.json()["url"]).status_code == 404
    back = stack.anon.post(f"/api/e/{token}/search", headers={"X-Guest-Id": guest},
                           files={"selfie": ("me.jpg", selfie, "image/jpeg")})
    assert high[1] in {h["photo_id"] for h in back.json()["results"]}


def test_photo_delete_leaves_no_residue(stack: Stack) -> None:
    """A host deleting one photo (e.g. at a guest's request): its blobs, rows and face embeddings go,
    older index snapshots included."""
    a = stack.events["A"]
    photos = _photo_ids(stack, a["id"])
    victim = next(pid for pid, name in photos.items() if name == "Tony_Blair_2.jpg")
    faces = _face_ids(stack, a["id"], victim)
    vectors = {fid: raw for fid, raw in _event_vectors(stack, a["id"]).items() if fid in faces}
    assert faces and set(vectors) == set(faces)
    blob_shas = {s: k for s, k in _event_blob_shas(stack, a["id"]).items() if victim in k}
    assert len(blob_shas) == 4, blob_shas  # original, preview, thumb, micro
    needles = _vector_needles(vectors)
    assert {label for label, _ in _byte_hits(stack.sources(), needles)} >= {f"face {f}" for f in faces}

    r = stack.host.delete(f"/api/host/events/{a['id']}/photos/{victim}")
    assert r.status_code == 200 and r.json()["faces_removed"] == len(faces), r.text

    sources = stack.sources()
    _nothing(_byte_hits(sources, needles), "of the deleted photo's faces")
    _nothing(_sha_hits(sources, blob_shas), "of the deleted photo's blobs")
    _nothing([n for n in stack.names() if victim in n], "in names after photo delete")
    _nothing(_db_cells(stack.db, {"photo id": victim}, {}), "in database rows after photo delete")
    _nothing(_byte_hits(sources, {"photo id": victim.encode()}), "of the photo id in files/objects")


def test_event_delete_leaves_no_residue(stack: Stack) -> None:
    a, b = stack.events["A"], stack.events["B"]
    event_id = a["id"]
    photos = _photo_ids(stack, event_id)
    a_vectors = _event_vectors(stack, event_id)
    assert len(a_vectors) >= 5  # 2 solo photos left (one was deleted above) + a group of three
    # a guest kept a selfie in A: it belongs to A and goes with it
    kept_selfie = _selfie(a["lfw"], "Colin_Powell", 2)
    kept = stack.anon.post(f"/api/e/{a['guest_token']}/search", files={"selfie": ("me.jpg", kept_selfie, "image/jpeg")},
                           data={"save_selfie": "true"})
    assert kept.status_code == 200, kept.text
    from indexer.events import hash_token

    kept_hash = hash_token(kept.json()["selfie_token"])
    shas = {_sha(data): f"upload {name}" for name, data in a["uploads"]}
    shas[_sha(kept_selfie)] = "kept selfie"
    shas |= {s: f"blob {k}" for s, k in _event_blob_shas(stack, event_id).items()}
    assert any("/thumb/" in k for k in shas.values()) and any("/index/" in k for k in shas.values())
    conn = sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)
    try:
        photo_shas = [r[0] for r in conn.execute("SELECT sha256 FROM photos WHERE event_id = ?", (event_id,))]
    finally:
        conn.close()
    texts = {"event id": event_id, "kept selfie token hash": kept_hash, **{f"photo {p}": p for p in photos},
             **{f"sha {s[:12]}": s for s in photo_shas}}
    needles = {**{k: v.encode() for k, v in texts.items()}, **_vector_needles(a_vectors)}
    # B before: its blobs, rows and vectors, to prove it is untouched afterwards
    b_blobs = _event_blob_shas(stack, b["id"])
    b_vectors = _event_vectors(stack, b["id"])
    b_photos = _photo_ids(stack, b["id"])
    b_people = _people(stack, b["id"])
    # the scanners find A everywhere before the delete
    seen = {label for label, _ in _byte_hits(stack.sources(), needles)}
    assert {"event id", *(f"face {f}" for f in a_vectors)} <= seen
    assert _sha_hits(stack.sources(), shas)

    assert stack.host.delete(f"/api/host/events/{event_id}").status_code == 204

    sources = stack.sources()
    _nothing([n for n in stack.names() if event_id in n], "in names after event delete")
    if stack.backend == "minio":
        _nothing(stack.blobs.list(f"events/{event_id}"), "in the bucket listing")
    _nothing(_sha_hits(sources, shas), "of the event's blobs (by sha256)")
    _nothing(_byte_hits(sources, needles), "of the event in files/objects")
    _nothing(_db_cells(stack.db, texts, {}), "in database rows after event delete")
    # the service agrees: no event, no job, no guest link
    assert event_id not in {e["id"] for e in stack.host.get("/api/host/events").json()}
    assert stack.host.get(f"/api/host/events/{event_id}/people").status_code == 404
    assert stack.host.get(f"/api/host/jobs/{a['job_id']}").status_code == 404
    assert stack.anon.get(f"/e/{a['guest_token']}").status_code == 404

    # B intact: same blobs (byte for byte), rows, vectors and people, and its guests still find themselves
    assert _event_blob_shas(stack, b["id"]) == b_blobs
    assert _event_vectors(stack, b["id"]) == b_vectors
    assert _photo_ids(stack, b["id"]) == b_photos
    assert _people(stack, b["id"]) == b_people
    selfie = _selfie(b["lfw"], "Jacques_Chirac", 2)
    found = stack.anon.post(f"/api/e/{b['guest_token']}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")})
    assert found.status_code == 200
    assert {b_photos[h["photo_id"]] for h in found.json()["results"] if h["tier"] == "high"} == {"Jacques_Chirac_1.jpg"}
    for h in found.json()["results"]:
        assert stack.anon.get(h["thumb_url"]).status_code == 200
