"""Crash safety (issue 6, item 3): SIGKILL a real server process during multipart uploads and inside an
index snapshot write, restart it on the same data dir, and check that nothing acknowledged was lost,
nothing was indexed twice and the index never loads corrupt.

The server runs as a separate process (`picsort serve`, support.servers.ServerProcess) so the kill is a
real `kill -9`. The kills inside the snapshot write come from the crash launcher (`python -m support.crash
MODE:N serve ...`): it wraps the blob store's `put` from the outside, so on the Nth snapshot (or pointer)
write the bytes go through the store's own temp file and the process kills itself before the rename. No
test hook lives in product code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support import REPO, need_shared
from support.crash import crash_argv
from support.servers import ADMIN_KEY, ServerProcess, wait_job

logger = logging.getLogger(__name__)

SEED = 6_3_2026
KILL_CYCLES = 2  # each restart loads the models (~11 s on 2 idle cores): the file's budget allows two
CHECKPOINT_PHOTOS = 4  # small, so a dozen photos make several snapshot writes
TMP_MARK = ".~picsort-tmp-"  # storage.blobs' temp-file prefix: never a valid key, ignored by list()
# Outcomes for the README's Reliability figures: written only with PICSORT_CRASH_REPORT=1.
REPORT_PATH = REPO / "benchmarks" / "results" / "crash.json"


@pytest.fixture(scope="module")
def crash_report() -> Iterator[dict[str, Any]]:
    """Each scenario records its outcome here; the file is written after the module's tests (a report
    step, not a test: no test reads what another one recorded)."""
    outcomes: dict[str, Any] = {}
    yield outcomes
    if os.environ.get("PICSORT_CRASH_REPORT") == "1" and outcomes:
        import json

        REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
        REPORT_PATH.write_text(json.dumps(outcomes, indent=2) + "\n")


# ---- the server process --------------------------------------------------------------------------
def start_server(data_dir: Path, log_dir: Path, crash: str | None = None) -> ServerProcess:
    """`picsort serve` on the data dir, ready; with `crash` (support.crash MODE:N) it dies at that write."""
    log = log_dir / f"server-{len(list(log_dir.glob('server-*.log')))}.log"  # one per start, in order
    server = ServerProcess(data_dir, log, admin_key=ADMIN_KEY,
                           env={"PICSORT_INGEST_CHECKPOINT_PHOTOS": str(CHECKPOINT_PHOTOS)},
                           launcher=crash_argv(crash) if crash else None)
    return server.start()


@pytest.fixture()
def servers() -> Iterator[list[ServerProcess]]:
    """Every server a test starts; any still running at the end is killed (by its own pid)."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if server.running:
            server.kill()


# ---- photos and uploads --------------------------------------------------------------------------
@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def lfw_photos(count: int) -> list[Photo]:
    lfw = need_shared("datasets", "lfw", "images")
    people = sorted(p for p in lfw.iterdir() if p.is_dir())[:count]
    photos = [Photo(first.name, first.read_bytes()) for first in (min(p.glob("*.jpg")) for p in people)]
    assert len({p.sha256 for p in photos}) == count
    return photos


def multipart(photos: list[Photo]) -> tuple[str, list[bytes]]:
    """A files=... multipart body, built by hand so it can be streamed slowly in small pieces."""
    boundary = "picsort-crash-" + hashlib.sha256(b"".join(p.name.encode() for p in photos)).hexdigest()[:16]
    parts: list[bytes] = []
    for photo in photos:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{photo.name}"\r\n'
                     "Content-Type: image/jpeg\r\n\r\n".encode())
        parts.append(photo.data)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return boundary, parts


@dataclass
class Ledger:
    """What the clients saw: acknowledged photos (name -> photo id) and requests that got no answer."""

    acked: dict[str, str] = field(default_factory=dict)
    unacked: set[str] = field(default_factory=set)
    requests_acked: int = 0
    requests_cut: int = 0
    errors: list[Exception] = field(default_factory=list)  # raised in client threads, re-raised by the test
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, batch: list[Photo], body: dict[str, Any]) -> None:
        with self.lock:
            self.requests_acked += 1
            for photo, result in zip(batch, body["results"], strict=True):
                assert result["filename"] == photo.name
                assert result["status"] in ("accepted", "duplicate"), result
                # A photo the server once acknowledged keeps its id, whatever later answers say.
                assert self.acked.setdefault(photo.name, result["photo_id"]) == result["photo_id"]
                self.unacked.discard(photo.name)

    def cut(self, batch: list[Photo], *, sent: bool = True) -> None:
        with self.lock:
            self.requests_cut += sent
            self.unacked.update(p.name for p in batch if p.name not in self.acked)


PIECE = 4096


@dataclass(frozen=True)
class Batch:
    """One upload request. A slow one (pause_s > 0) trickles in PIECE-byte pieces; the victim of a
    cycle sets `armed` after `kill_after` pieces, and the test kills the server before the next."""

    photos: list[Photo]
    pause_s: float = 0.0
    kill_after: int | None = None


def pieces(photos: list[Photo]) -> int:
    _, parts = multipart(photos)
    return -(-sum(len(p) for p in parts) // PIECE)


def upload(client: httpx.Client, event_id: str, batch: list[Photo], *, pause_s: float = 0.0,
           kill_after: int | None = None, armed: threading.Event | None = None) -> dict[str, Any]:
    """POST the batch as one multipart request, streamed piece by piece."""
    boundary, parts = multipart(batch)
    size = sum(len(p) for p in parts)

    def body() -> Iterator[bytes]:
        blob = b"".join(parts)
        for n, start in enumerate(range(0, len(blob), PIECE), start=1):
            yield blob[start:start + PIECE]
            if n == kill_after and armed is not None:
                armed.set()
            if pause_s:
                time.sleep(pause_s)

    response = client.post(f"/api/host/events/{event_id}/photos", content=body(),
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                    "Content-Length": str(size)})
    assert response.status_code == 202, response.text
    return dict(response.json())


def upload_until_cut(server: ServerProcess, event_id: str, batches: list[Batch], ledger: Ledger,
                     armed: threading.Event) -> None:
    """One client thread: send batches in turn until the server goes away."""
    try:
        with server.host() as client:
            for i, batch in enumerate(batches):
                try:
                    body = upload(client, event_id, batch.photos, pause_s=batch.pause_s,
                                  kill_after=batch.kill_after, armed=armed)
                except httpx.TransportError:
                    ledger.cut(batch.photos)
                    for rest in batches[i + 1:]:  # never sent: the client still has to send them
                        ledger.cut(rest.photos, sent=False)
                    return
                ledger.record(batch.photos, body)
    except Exception as exc:  # noqa: BLE001 - a failed check in this thread must fail the test
        ledger.errors.append(exc)
        armed.set()


# ---- checks on the data dir ----------------------------------------------------------------------
def _catalog(data_dir: Path) -> Any:
    from indexer.events import Catalog
    from picsort_local.settings import Settings

    return Catalog(Settings(data_dir=data_dir).storage)


def check_dead_state(data_dir: Path, event_id: str, photos: dict[str, Photo]) -> dict[str, int]:
    """With the server dead: the index loads, every stored original is whole, rows point at blobs."""
    from indexer.vector_index import EventIndex

    catalog = _catalog(data_dir)
    try:
        index = catalog.faces.index(event_id, 128)  # raises on a corrupt live snapshot
        by_sha = {p.sha256: p for p in photos.values()}
        rows = catalog.meta.photos.list(event_id)
        keys = {r.original_key for r in rows}
        for row in rows:
            data = catalog.blobs.get(row.original_key)
            assert hashlib.sha256(data).hexdigest() == row.sha256, f"original of {row.id} is not whole"
        folder = data_dir / "blobs" / "events" / event_id
        originals = sorted((folder / "originals").glob("*")) if (folder / "originals").is_dir() else []
        orphans = temps = 0
        for path in originals:
            if path.name.startswith(TMP_MARK):
                temps += 1  # an interrupted write; never listed, never read
                continue
            key = f"events/{event_id}/originals/{path.name}"
            if key not in keys:
                # stored, then the process died before its row was written: must still be a whole photo
                assert hashlib.sha256(path.read_bytes()).hexdigest() in by_sha, f"half-written blob {key}"
                orphans += 1
        assert key_listing_has_no_temp(catalog, event_id)
        for path in sorted((folder / "index").glob(TMP_MARK + "*")) if (folder / "index").is_dir() else []:
            temps += 1
            if path.stat().st_size > 16:  # a torn snapshot: must not parse as one
                with pytest.raises(ValueError):
                    EventIndex.from_bytes(path.read_bytes())
        return {"rows": len(rows), "vectors": len(index), "orphan_originals": orphans, "temp_files": temps,
                "pending": sum(r.status in ("pending", "processing") for r in rows)}
    finally:
        catalog.meta.close()


def key_listing_has_no_temp(catalog: Any, event_id: str) -> bool:
    return not any(TMP_MARK in key for key in catalog.blobs.list(f"events/{event_id}/"))


def check_recovered(data_dir: Path, event_id: str, acked: dict[str, str], photos: dict[str, Photo]) -> dict[str, int]:
    """After recovery: every acknowledged photo is there under the id it was acknowledged with, whole,
    indexed, with derived images; every face is in the index exactly once and nothing else is."""
    catalog = _catalog(data_dir)
    meta = catalog.meta
    try:
        rows = {r.id: r for r in meta.photos.list(event_id)}
        for name, photo_id in acked.items():
            row = rows.get(photo_id)
            assert row is not None, f"acknowledged photo {name} ({photo_id}) is gone"
            assert row.status == "indexed", (name, row.status, row.error)
            assert row.sha256 == photos[name].sha256
            assert catalog.blobs.get(row.original_key) == photos[name].data
            for kind in ("preview", "thumb", "micro"):
                assert catalog.blobs.exists(f"events/{event_id}/{kind}/{photo_id}.jpg"), (name, kind)
        # nothing unacknowledged half-done either: every row is complete, each photo's bytes once
        assert all(r.status == "indexed" for r in rows.values()), {r.id: r.status for r in rows.values()}
        assert len({r.sha256 for r in rows.values()}) == len(rows)
        assert meta.faces.pending(event_id) == []
        faces = meta.faces.list(event_id, indexed_only=False)
        index = catalog.faces.index(event_id, 128)
        ids = index.ids().tolist()
        assert len(ids) == len(set(ids)), "a face id is in the index twice"
        assert len(index) == len(faces), f"index holds {len(index)} vectors for {len(faces)} face rows"
        assert set(ids) == {f.id for f in faces}, "index and face rows differ"
        per_photo: dict[str, list[Any]] = {}
        for face in faces:
            per_photo.setdefault(face.photo_id, []).append(face)
        for photo_id, found in per_photo.items():
            boxes = {tuple(np.round(f.record.box.as_tuple(), 0)) for f in found}
            assert len(boxes) == len(found), f"photo {photo_id} has its faces stored twice"
        assert sum(1 for r in rows if r in per_photo) >= 0.9 * len(rows), "LFW photos should nearly all have a face"
        return {"photos": len(rows), "faces": len(faces), "vectors": len(index)}
    finally:
        meta.close()


def check_indexed(data_dir: Path, event_id: str, acked: dict[str, str]) -> None:
    """Every photo acknowledged before the last kill was analysed by the restarted server on its own."""
    catalog = _catalog(data_dir)
    try:
        status = {r.id: r.status for r in catalog.meta.photos.list(event_id)}
    finally:
        catalog.meta.close()
    assert all(status.get(pid) == "indexed" for pid in acked.values()), "a restart did not resume pending photos"


def wait_settled(server: ServerProcess, event_id: str, timeout: float = 120) -> None:
    """Until no photo of the event is pending or half-done (the restart resumed them all)."""
    deadline = time.time() + timeout
    with server.host() as host:
        while time.time() < deadline:
            event = next(e for e in host.get("/api/host/events").json() if e["id"] == event_id)
            if not event.get("photos_pending") and not event.get("photos_processing"):
                return
            time.sleep(0.2)
    raise TimeoutError(f"photos still pending after {timeout} s:\n{server.log_tail()}")


def search_finds(server: ServerProcess, guest_token: str, photo: Photo, photo_id: str) -> None:
    """A guest search with one indexed photo as the selfie returns that photo: the index loads and works."""
    with httpx.Client(base_url=server.url, timeout=120) as anon:
        response = anon.post(f"/api/e/{guest_token}/search", files={"selfie": (photo.name, photo.data, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert photo_id in {hit["photo_id"] for hit in response.json()["results"]}


def delete_leaves_nothing(server: ServerProcess, data_dir: Path, event_id: str) -> None:
    """Deleting the event removes every file of it, including debris from interrupted writes."""
    with server.host() as host:
        assert host.delete(f"/api/host/events/{event_id}").status_code == 204
    folder = data_dir / "blobs" / "events" / event_id
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    assert left == [], f"files left after deleting the event: {left}"


def single_face_photo(data_dir: Path, event_id: str, acked: dict[str, str]) -> tuple[str, str]:
    catalog = _catalog(data_dir)
    try:
        counts: dict[str, int] = {}
        for face in catalog.meta.faces.list(event_id):
            counts[face.photo_id] = counts.get(face.photo_id, 0) + 1
        return next((name, pid) for name, pid in sorted(acked.items()) if counts.get(pid) == 1)
    finally:
        catalog.meta.close()


def create_event(server: ServerProcess, name: str) -> tuple[str, str]:
    with server.host() as host:
        created = host.post("/api/host/events", json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"]), str(created.json()["guest_token"])


# ---- scenario 1: kill -9 during multipart uploads ----------------------------------------------------
def test_kill_during_uploads_then_restart_keeps_every_acknowledged_photo_once(
        tmp_path: Path, servers: list[ServerProcess], crash_report: dict[str, Any]) -> None:
    rng = random.Random(SEED)
    pool = lfw_photos(27)
    photos = {p.name: p for p in pool}
    data_dir = tmp_path / "data"
    ledger = Ledger()
    todo = list(pool)  # never sent yet, in order
    event_id = guest_token = ""
    stats: list[dict[str, Any]] = []

    for cycle in range(KILL_CYCLES):
        server = start_server(data_dir, tmp_path)
        servers.append(server)
        if cycle == 0:
            event_id, guest_token = create_event(server, "Crash during uploads")
        # this cycle: what the last kill cut off (a client retries it), then new photos
        retry = [photos[n] for n in sorted(ledger.unacked)]
        fresh, todo = todo[:8], todo[8:]
        ledger.unacked.clear()
        sending = retry + fresh
        rng.shuffle(sending)
        batches: list[Batch] = []
        start = 0
        while start < len(sending):
            size = rng.randint(1, 3)
            # most bodies trickle in, some arrive at once
            batches.append(Batch(sending[start:start + size], rng.choice([0.0, 0.05, 0.15])))
            start += size
        # the kill lands inside one slow body, after a random number of its pieces; the other clients'
        # requests are wherever they are at that moment (mid-body, being registered, answered). The
        # victim is a client's second or later request, so some uploads are acknowledged first.
        victim = rng.randrange(min(3, len(batches) - 1), len(batches))
        chosen = batches[victim]
        batches[victim] = Batch(chosen.photos, 0.2, rng.randint(1, pieces(chosen.photos) - 1))
        per_thread = [batches[i::3] for i in range(3)]
        acked_before = dict(ledger.acked)
        armed = threading.Event()
        threads = [threading.Thread(target=upload_until_cut, args=(server, event_id, b, ledger, armed))
                   for b in per_thread]
        for t in threads:
            t.start()
        assert armed.wait(60), "the victim request never got going"
        time.sleep(rng.uniform(0.0, 0.15))
        server.kill()
        for t in threads:
            t.join(60)
        if ledger.errors:
            raise ledger.errors[0]
        dead = check_dead_state(data_dir, event_id, photos)
        # acknowledged before this kill: all there (maybe still pending), none lost
        catalog = _catalog(data_dir)
        try:
            present = {r.id for r in catalog.meta.photos.list(event_id)}
            registered_unacked = sum(catalog.meta.photos.by_sha(event_id, photos[n].sha256) is not None
                                     for n in ledger.unacked)
        finally:
            catalog.meta.close()
        assert set(ledger.acked.values()) <= present, "an acknowledged upload vanished with the crash"
        stats.append({"cycle": cycle, "start_s": round(server.start_seconds, 2), "sent": len(sending),
                      "acked_now": len(ledger.acked) - len(acked_before), "unacked": len(ledger.unacked),
                      "unacked_but_registered": registered_unacked, **dead})

    # last start: it resumes the pending photos by itself; then a client retries what is still
    # unacknowledged and sends the rest, and everything must hold
    server = start_server(data_dir, tmp_path)
    servers.append(server)
    wait_settled(server, event_id)
    check_indexed(data_dir, event_id, ledger.acked)
    rest = [photos[n] for n in sorted(ledger.unacked)] + todo
    with server.host() as host:
        body = upload(host, event_id, rest)
        ledger.record(rest, body)
        wait_job(host, body["job_id"], timeout=180)  # one ingest job at a time: the resumed ones are done too
    wait_settled(server, event_id)
    assert set(ledger.acked) == set(photos)
    result = check_recovered(data_dir, event_id, ledger.acked, photos)
    name, photo_id = single_face_photo(data_dir, event_id, ledger.acked)
    search_finds(server, guest_token, photos[name], photo_id)
    logger.info("upload kills: %s; final %s; requests acked %d, cut %d", stats, result, ledger.requests_acked,
                ledger.requests_cut)
    crash_report["uploads"] = {"kill_cycles": stats, "final": result, "photos": len(photos),
                               "acknowledged": len(ledger.acked), "requests_acked": ledger.requests_acked,
                               "requests_cut_mid_body": ledger.requests_cut}
    delete_leaves_nothing(server, data_dir, event_id)
    assert server.stop() in (0, -signal.SIGTERM), server.log_tail()


# ---- scenario 2: kill -9 inside an index snapshot write ------------------------------------------------
def _pointer(data_dir: Path, event_id: str) -> int | None:
    path = data_dir / "blobs" / "events" / event_id / "index" / "CURRENT"
    return int(path.read_text()) if path.exists() else None


def _snapshot_versions(data_dir: Path, event_id: str) -> list[int]:
    folder = data_dir / "blobs" / "events" / event_id / "index"
    return sorted(int(p.stem) for p in folder.glob("*.faiss"))


def test_kill_inside_snapshot_write_then_restart_loads_a_whole_index(
        tmp_path: Path, servers: list[ServerProcess], crash_report: dict[str, Any]) -> None:
    from indexer.vector_index import EventIndex

    pool = lfw_photos(16)
    photos = {p.name: p for p in pool}
    data_dir = tmp_path / "data"
    ledger = Ledger()

    # 1. the 2nd snapshot write stops half way through its temp file, then kill -9
    server = start_server(data_dir, tmp_path, crash="torn-snapshot:2")
    servers.append(server)
    event_id, guest_token = create_event(server, "Crash during snapshot")
    first = pool[:12]
    with server.host() as host:
        ledger.record(first, upload(host, event_id, first))
    assert server.wait(240) == -signal.SIGKILL, server.log_tail()
    assert _pointer(data_dir, event_id) == 1 and _snapshot_versions(data_dir, event_id) == [1]
    torn = check_dead_state(data_dir, event_id, photos)
    assert torn["temp_files"] >= 1 and torn["vectors"] > 0

    # 2. restart with a kill right before the pointer rename (the snapshot itself is complete)
    server = start_server(data_dir, tmp_path, crash="before-pointer:1")
    servers.append(server)
    second = pool[12:]
    try:
        with server.host() as host:
            ledger.record(second, upload(host, event_id, second))
    except httpx.TransportError:
        ledger.cut(second)  # the kill can beat the upload: then it is retried below
    assert server.wait(240) == -signal.SIGKILL, server.log_tail()
    assert _pointer(data_dir, event_id) == 1, "the pointer moved although the process died before"
    versions = _snapshot_versions(data_dir, event_id)
    assert versions == [1, 2]
    unpublished = data_dir / "blobs" / "events" / event_id / "index" / f"{2:012d}.faiss"
    assert len(EventIndex.from_bytes(unpublished.read_bytes())) > torn["vectors"]  # whole, just not live
    pointed = check_dead_state(data_dir, event_id, photos)
    assert pointed["vectors"] == torn["vectors"], "the unpublished snapshot was loaded"

    # 3. a normal restart recovers: each acknowledged photo indexed once, searches work
    server = start_server(data_dir, tmp_path)
    servers.append(server)
    wait_settled(server, event_id)
    check_indexed(data_dir, event_id, ledger.acked)
    with server.host() as host:
        retry = [photos[n] for n in sorted(ledger.unacked)] or [pool[-1]]
        body = upload(host, event_id, retry)
        ledger.record(retry, body)
        wait_job(host, body["job_id"], timeout=180)
    wait_settled(server, event_id)
    assert set(ledger.acked) == set(photos)
    assert _pointer(data_dir, event_id) not in (None, 1, 2)  # past the unpublished version 2
    result = check_recovered(data_dir, event_id, ledger.acked, photos)
    name, photo_id = single_face_photo(data_dir, event_id, ledger.acked)
    search_finds(server, guest_token, photos[name], photo_id)
    logger.info("snapshot kills: torn %s, before pointer %s, final %s", torn, pointed, result)
    crash_report["snapshot_writes"] = {"torn_snapshot": torn, "before_pointer_rename": pointed, "final": result,
                                       "photos": len(photos), "acknowledged": len(ledger.acked)}
    delete_leaves_nothing(server, data_dir, event_id)
    assert server.stop() in (0, -signal.SIGTERM), server.log_tail()
