"""Event metadata in SQLite (WAL), one file under the data dir.

The schema sticks to portable SQL (TEXT/INTEGER/REAL, explicit foreign keys, no SQLite-only types)
so it can move to PostgreSQL. Migrations are numbered SQL scripts applied at start-up, each in its
own transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from picsort_local.errors import AlreadyExistsError, NotFoundError

logger = logging.getLogger(__name__)
_BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another process's lock

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        settings_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE photos (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        filename TEXT NOT NULL,
        original_key TEXT,
        width INTEGER,
        height INTEGER,
        status TEXT NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (event_id, sha256)
    );
    CREATE INDEX photos_event_status ON photos(event_id, status);
    CREATE TABLE persons (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        representative_face_id INTEGER,
        face_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX persons_event ON persons(event_id);
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        photo_id TEXT NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
        landmarks_json TEXT NOT NULL,
        det_score REAL NOT NULL,
        quality_json TEXT NOT NULL,
        outfit_l REAL, outfit_a REAL, outfit_b REAL, outfit_name TEXT,
        person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        state TEXT NOT NULL DEFAULT 'pending'
    );
    CREATE INDEX faces_event ON faces(event_id, state);
    CREATE INDEX faces_photo ON faces(photo_id);
    CREATE TABLE ingest_jobs (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        total INTEGER NOT NULL DEFAULT 0,
        done INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 2: guests (per event, random ids), hidden results, saved selfies, grants, faceless bodies
    """
    CREATE TABLE hidden_photos (
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        guest_id TEXT NOT NULL,
        photo_id TEXT NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        PRIMARY KEY (event_id, guest_id, photo_id)
    );
    CREATE TABLE saved_selfies (
        token_hash TEXT PRIMARY KEY,
        blob_key TEXT NOT NULL,
        embedding BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE grants (
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        guest_id TEXT NOT NULL,
        photo_id TEXT NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        PRIMARY KEY (event_id, guest_id, photo_id)
    );
    CREATE TABLE bodies (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        photo_id TEXT NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
        outfit_l REAL NOT NULL, outfit_a REAL NOT NULL, outfit_b REAL NOT NULL, outfit_name TEXT NOT NULL
    );
    CREATE INDEX bodies_event ON bodies(event_id);
    """,
    # 3: Rekognition-compatible collections (one event each) and the UUIDs their faces are known by
    """
    CREATE TABLE rek_collections (
        collection_id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE REFERENCES events(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE rek_faces (
        face_uuid TEXT PRIMARY KEY,
        face_id INTEGER NOT NULL UNIQUE REFERENCES faces(id) ON DELETE CASCADE,
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        image_uuid TEXT NOT NULL,
        external_image_id TEXT
    );
    CREATE INDEX rek_faces_event ON rek_faces(event_id, face_id);
    """,
    # 4: a saved selfie belongs to the event it was taken in (no identifier that works across events).
    # Rows saved before had no event: they are dropped, and the service sweeps their old blob folder.
    """
    DELETE FROM saved_selfies;
    ALTER TABLE saved_selfies ADD COLUMN event_id TEXT REFERENCES events(id) ON DELETE CASCADE;
    CREATE INDEX saved_selfies_event ON saved_selfies(event_id);
    """,
    # 5: the search offers the rest of a guest's person group (faces by person).
    """
    CREATE INDEX faces_person ON faces(person_id);
    """,
]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class EventRow:
    id: str
    name: str
    created_at: str
    token_hash: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class PhotoRow:
    id: str
    event_id: str
    sha256: str
    filename: str
    original_key: str | None
    width: int | None
    height: int | None
    status: str  # pending | processing | indexed | failed
    error: str | None


@dataclass(frozen=True)
class FaceRow:
    id: int
    event_id: str
    photo_id: str
    box: tuple[float, float, float, float]
    landmarks: list[list[float]]
    det_score: float
    quality: dict[str, float]
    outfit_lab: tuple[float, float, float] | None
    outfit_name: str | None
    person_id: int | None
    state: str  # pending | indexed


@dataclass(frozen=True)
class RekCollectionRow:
    collection_id: str
    event_id: str
    created_at: str


@dataclass(frozen=True)
class RekFaceRow:
    """A face known to the Rekognition-compatible API, with what its answers need."""

    face_uuid: str
    face_id: int
    image_uuid: str
    external_image_id: str | None
    photo_id: str
    box: tuple[float, float, float, float]  # original pixels: x1, y1, x2, y2
    det_score: float
    width: int  # of the photo, original pixels
    height: int


class MetadataStore:
    """Thread-safe access to the metadata database (one connection, serialised by a lock; SQLite
    allows one writer at a time anyway, and WAL lets other processes read meanwhile)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                     timeout=_BUSY_TIMEOUT_MS / 1000)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros (in their pages and in freed pages), so what a guest
        # or host deletes cannot be read back from the file. Compile-time defaults differ (Debian: on).
        self._conn.execute("PRAGMA secure_delete=ON")
        if self.migrate():
            self.scrub()  # migration 4 deletes saved selfies: their WAL copies go too

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def scrub(self) -> None:
        """After deleting personal data: copy the WAL into the database and truncate it. Until then the
        WAL still holds older copies of the pages, with the deleted rows in them.

        The delete has committed by then: a checkpoint that cannot run now is logged, never raised, and
        waits at most a second for other processes (every metadata call waits on this lock meanwhile)."""
        busy = 1
        with self._lock:
            try:
                self._conn.execute("PRAGMA busy_timeout=1000")
                busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error as exc:
                logger.warning("WAL checkpoint after a delete failed: %s", exc)
            finally:
                self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        if busy:  # another process is reading; the next checkpoints overwrite the WAL anyway
            logger.warning("could not truncate the WAL of %s after a delete (database busy)", self.path)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def migrate(self) -> int:
        """Apply the migrations not applied yet; returns how many ran."""
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            applied = 0
            for number, script in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in (s.strip() for s in script.split(";")):
                        if statement:
                            self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                applied += 1
            return applied

    # ---- events ------------------------------------------------------------------------------
    def create_event(self, event_id: str, name: str, token_hash: str, settings: dict[str, Any]) -> EventRow:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO events (id, name, created_at, token_hash, settings_json) VALUES (?, ?, ?, ?, ?)",
                (event_id, name, now(), token_hash, json.dumps(settings)),
            )
        return self.get_event(event_id)

    @staticmethod
    def _event(row: sqlite3.Row) -> EventRow:
        return EventRow(row["id"], row["name"], row["created_at"], row["token_hash"], json.loads(row["settings_json"]))

    def get_event(self, event_id: str) -> EventRow:
        rows = self._query("SELECT * FROM events WHERE id = ?", (event_id,))
        if not rows:
            raise NotFoundError(f"no event {event_id!r}")
        return self._event(rows[0])

    def find_event_by_token_hash(self, token_hash: str) -> EventRow | None:
        rows = self._query("SELECT * FROM events WHERE token_hash = ?", (token_hash,))
        return self._event(rows[0]) if rows else None

    def list_events(self) -> list[EventRow]:
        return [self._event(r) for r in self._query("SELECT * FROM events ORDER BY created_at, id")]

    def delete_event(self, event_id: str) -> None:
        with self.transaction() as conn:
            # faces -> persons reference is SET NULL; delete children explicitly for clarity and speed
            conn.execute("DELETE FROM faces WHERE event_id = ?", (event_id,))
            conn.execute("DELETE FROM persons WHERE event_id = ?", (event_id,))
            for table in ("hidden_photos", "grants", "bodies", "saved_selfies"):
                conn.execute(f"DELETE FROM {table} WHERE event_id = ?", (event_id,))
            conn.execute("DELETE FROM photos WHERE event_id = ?", (event_id,))
            conn.execute("DELETE FROM ingest_jobs WHERE event_id = ?", (event_id,))
            conn.execute("DELETE FROM events WHERE id = ?", (event_id,))
        self.scrub()

    def event_counts(self, event_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self._query("SELECT status, COUNT(*) AS n FROM photos WHERE event_id = ? GROUP BY status", (event_id,)):
            out[f"photos_{row['status']}"] = row["n"]
        out["faces"] = self._query("SELECT COUNT(*) FROM faces WHERE event_id = ? AND state = 'indexed'", (event_id,))[0][0]
        out["persons"] = self._query("SELECT COUNT(*) FROM persons WHERE event_id = ?", (event_id,))[0][0]
        return out

    # ---- photos ------------------------------------------------------------------------------
    @staticmethod
    def _photo(row: sqlite3.Row) -> PhotoRow:
        return PhotoRow(row["id"], row["event_id"], row["sha256"], row["filename"], row["original_key"],
                        row["width"], row["height"], row["status"], row["error"])

    def find_photo_by_sha(self, event_id: str, sha256: str) -> PhotoRow | None:
        rows = self._query("SELECT * FROM photos WHERE event_id = ? AND sha256 = ?", (event_id, sha256))
        return self._photo(rows[0]) if rows else None

    def add_photo(self, photo_id: str, event_id: str, sha256: str, filename: str,
                  original_key: str | None = None) -> tuple[PhotoRow, bool]:
        """Insert a pending photo; an existing photo with the same sha256 is returned instead."""
        with self.transaction() as conn:
            existing = conn.execute("SELECT * FROM photos WHERE event_id = ? AND sha256 = ?", (event_id, sha256)).fetchone()
            if existing is not None:
                return self._photo(existing), False
            conn.execute(
                "INSERT INTO photos (id, event_id, sha256, filename, original_key, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (photo_id, event_id, sha256, filename, original_key, now()),
            )
        return self.get_photo(event_id, photo_id), True

    def get_photo(self, event_id: str, photo_id: str) -> PhotoRow:
        rows = self._query("SELECT * FROM photos WHERE event_id = ? AND id = ?", (event_id, photo_id))
        if not rows:
            raise NotFoundError(f"no photo {photo_id!r} in this event")
        return self._photo(rows[0])

    def list_photos(self, event_id: str, status: str | None = None) -> list[PhotoRow]:
        if status is None:
            rows = self._query("SELECT * FROM photos WHERE event_id = ? ORDER BY created_at, id", (event_id,))
        else:
            rows = self._query("SELECT * FROM photos WHERE event_id = ? AND status = ? ORDER BY created_at, id",
                               (event_id, status))
        return [self._photo(r) for r in rows]

    def set_photo_stored(self, photo_id: str, original_key: str, width: int, height: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE photos SET original_key = ?, width = ?, height = ? WHERE id = ?",
                         (original_key, width, height, photo_id))

    def set_photo_failed(self, photo_id: str, error: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE photos SET status = 'failed', error = ? WHERE id = ?", (error, photo_id))

    def delete_photo(self, event_id: str, photo_id: str) -> list[int]:
        """Delete a photo and its faces; returns the removed face ids (to drop from the index)."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM faces WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))]
            conn.execute("DELETE FROM faces WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
            # (saved selfies belong to an event, not to a photo: they go with the event or the guest)
            for table in ("hidden_photos", "grants", "bodies"):
                conn.execute(f"DELETE FROM {table} WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
            deleted = conn.execute("DELETE FROM photos WHERE id = ? AND event_id = ?", (photo_id, event_id)).rowcount
        if not deleted:
            raise NotFoundError(f"no photo {photo_id!r} in this event")
        self.scrub()
        return ids

    # ---- faces -------------------------------------------------------------------------------
    def add_pending_faces(self, event_id: str, photo_faces: list[tuple[str, list[dict[str, Any]]]]) -> list[list[int]]:
        """Insert faces (state 'pending') for several photos in ONE transaction and mark those photos
        'processing'. Returns the new face ids per photo."""
        out: list[list[int]] = []
        with self.transaction() as conn:
            for photo_id, faces in photo_faces:
                ids = []
                for f in faces:
                    cur = conn.execute(
                        "INSERT INTO faces (event_id, photo_id, x1, y1, x2, y2, landmarks_json, det_score, quality_json,"
                        " outfit_l, outfit_a, outfit_b, outfit_name, state)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                        (event_id, photo_id, *f["box"], json.dumps(f["landmarks"]), f["det_score"],
                         json.dumps(f["quality"]), *(f.get("outfit_lab") or (None, None, None)), f.get("outfit_name")),
                    )
                    ids.append(int(cur.lastrowid or 0))
                conn.execute("UPDATE photos SET status = 'processing' WHERE id = ?", (photo_id,))
                out.append(ids)
        return out

    def commit_faces(self, event_id: str, photo_ids: list[str]) -> None:
        """After the index snapshot holding their vectors is published: faces and photos are done."""
        with self.transaction() as conn:
            for photo_id in photo_ids:
                conn.execute("UPDATE faces SET state = 'indexed' WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
                conn.execute("UPDATE photos SET status = 'indexed', error = NULL WHERE id = ?", (photo_id,))

    def pending_faces(self, event_id: str) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self._query(
            "SELECT id, photo_id FROM faces WHERE event_id = ? AND state = 'pending'", (event_id,))]

    def reset_photos(self, event_id: str, photo_ids: Sequence[str]) -> None:
        """Forget half-done work for these photos: drop their faces, back to 'pending'."""
        with self.transaction() as conn:
            for photo_id in photo_ids:
                conn.execute("DELETE FROM faces WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
                conn.execute("UPDATE photos SET status = 'pending' WHERE id = ? AND event_id = ?", (photo_id, event_id))

    @staticmethod
    def _face(row: sqlite3.Row) -> FaceRow:
        lab = (row["outfit_l"], row["outfit_a"], row["outfit_b"])
        return FaceRow(
            row["id"], row["event_id"], row["photo_id"], (row["x1"], row["y1"], row["x2"], row["y2"]),
            json.loads(row["landmarks_json"]), row["det_score"], json.loads(row["quality_json"]),
            None if lab[0] is None else (float(lab[0]), float(lab[1]), float(lab[2])), row["outfit_name"],
            row["person_id"], row["state"],
        )

    def list_faces(self, event_id: str, *, indexed_only: bool = True) -> list[FaceRow]:
        sql = "SELECT * FROM faces WHERE event_id = ?" + (" AND state = 'indexed'" if indexed_only else "") + " ORDER BY id"
        return [self._face(r) for r in self._query(sql, (event_id,))]

    def indexed_face_ids(self, event_id: str) -> list[int]:
        return [r[0] for r in self._query("SELECT id FROM faces WHERE event_id = ? AND state = 'indexed'", (event_id,))]

    def face_photos(self, event_id: str, face_ids: Sequence[int]) -> dict[int, tuple[str, tuple[float, float, float] | None]]:
        """Just photo id and outfit colour per face: what a search needs, without decoding JSON.

        `+event_id` keeps SQLite from scanning the event's index (all its faces) instead of looking
        the ids up by primary key; the event check still applies."""
        if not face_ids:
            return {}
        marks = ",".join("?" * len(face_ids))
        rows = self._query(
            f"SELECT id, photo_id, outfit_l, outfit_a, outfit_b FROM faces WHERE +event_id = ? AND id IN ({marks})",
            (event_id, *face_ids))
        return {int(r[0]): (str(r[1]), None if r[2] is None else (float(r[2]), float(r[3]), float(r[4]))) for r in rows}

    def person_mates(self, event_id: str, face_ids: Sequence[int]) -> list[tuple[int, str]]:
        """(face id, photo id) of the indexed faces grouped into the same person as any of these faces
        (the faces themselves excluded)."""
        if not face_ids:
            return []
        marks = ",".join("?" * len(face_ids))
        rows = self._query(
            f"SELECT f.id, f.photo_id FROM faces f WHERE f.person_id IN (SELECT g.person_id FROM faces g"
            f" WHERE +g.event_id = ? AND g.id IN ({marks}) AND g.person_id IS NOT NULL)"
            f" AND f.event_id = ? AND f.state = 'indexed' AND f.id NOT IN ({marks})",
            (event_id, *face_ids, event_id, *face_ids))
        return [(int(r[0]), str(r[1])) for r in rows]

    def get_faces(self, event_id: str, face_ids: Sequence[int]) -> list[FaceRow]:
        if not face_ids:
            return []
        marks = ",".join("?" * len(face_ids))
        return [self._face(r) for r in self._query(
            f"SELECT * FROM faces WHERE +event_id = ? AND id IN ({marks})", (event_id, *face_ids))]

    # ---- persons -----------------------------------------------------------------------------
    def replace_persons(self, event_id: str, clusters: list[tuple[list[int], int]]) -> list[int]:
        """Replace the event's persons: each cluster = (face ids, representative face id)."""
        person_ids = []
        with self.transaction() as conn:
            conn.execute("UPDATE faces SET person_id = NULL WHERE event_id = ?", (event_id,))
            conn.execute("DELETE FROM persons WHERE event_id = ?", (event_id,))
            for face_ids, representative in clusters:
                cur = conn.execute(
                    "INSERT INTO persons (event_id, representative_face_id, face_count) VALUES (?, ?, ?)",
                    (event_id, representative, len(face_ids)),
                )
                pid = int(cur.lastrowid or 0)
                person_ids.append(pid)
                conn.executemany("UPDATE faces SET person_id = ? WHERE id = ? AND event_id = ?",
                                 [(pid, fid, event_id) for fid in face_ids])
        return person_ids

    def assign_person(self, event_id: str, assignments: list[tuple[int, int]]) -> None:
        with self.transaction() as conn:
            conn.executemany("UPDATE faces SET person_id = ? WHERE id = ? AND event_id = ?",
                             [(pid, fid, event_id) for fid, pid in assignments])
            conn.execute(
                "UPDATE persons SET face_count = (SELECT COUNT(*) FROM faces WHERE faces.person_id = persons.id)"
                " WHERE event_id = ?", (event_id,))

    def list_persons(self, event_id: str) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT p.id, p.representative_face_id, p.face_count,"
            " (SELECT COUNT(DISTINCT photo_id) FROM faces f WHERE f.person_id = p.id) AS photo_count,"
            " (SELECT photo_id FROM faces f WHERE f.id = p.representative_face_id) AS rep_photo"
            " FROM persons p WHERE p.event_id = ? ORDER BY p.face_count DESC, p.id", (event_id,))
        return [dict(r) for r in rows]

    # ---- bodies (people whose face is not visible) -----------------------------------------
    def add_bodies(self, event_id: str, photo_id: str, bodies: list[tuple[list[float], tuple[float, float, float], str]]) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM bodies WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
            conn.executemany(
                "INSERT INTO bodies (event_id, photo_id, x1, y1, x2, y2, outfit_l, outfit_a, outfit_b, outfit_name)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(event_id, photo_id, *box, *lab, name) for box, lab, name in bodies])

    def list_bodies(self, event_id: str, near_lab: tuple[float, float, float] | None = None,
                    within: float = 0.0) -> list[dict[str, Any]]:
        """Bodies of an event; with `near_lab`, only those whose colour lies in the Lab box of half-width
        `within` around it (a superset of the ΔE76 <= within ball), so a search reads few rows."""
        if near_lab is None:
            return [dict(r) for r in self._query("SELECT * FROM bodies WHERE event_id = ?", (event_id,))]
        l, a, b = near_lab
        return [dict(r) for r in self._query(
            "SELECT * FROM bodies WHERE event_id = ? AND outfit_l BETWEEN ? AND ? AND outfit_a BETWEEN ? AND ?"
            " AND outfit_b BETWEEN ? AND ?",
            (event_id, l - within, l + within, a - within, a + within, b - within, b + within))]

    # ---- guests --------------------------------------------------------------------------------
    def hide_photo(self, event_id: str, guest_id: str, photo_id: str) -> None:
        self.get_photo(event_id, photo_id)
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO hidden_photos (event_id, guest_id, photo_id, created_at) VALUES (?, ?, ?, ?)",
                         (event_id, guest_id, photo_id, now()))

    def hidden_photos(self, event_id: str, guest_id: str) -> set[str]:
        return {r[0] for r in self._query("SELECT photo_id FROM hidden_photos WHERE event_id = ? AND guest_id = ?",
                                          (event_id, guest_id))}

    def delete_guest(self, event_id: str, guest_id: str) -> None:
        """Everything kept under a guest id in this event: hidden photos and the host's grants (a guest
        who asks to be forgotten leaves no trace of the id, and gives up the originals it unlocked)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM hidden_photos WHERE event_id = ? AND guest_id = ?", (event_id, guest_id))
            conn.execute("DELETE FROM grants WHERE event_id = ? AND guest_id = ?", (event_id, guest_id))
        self.scrub()

    def grant(self, event_id: str, guest_id: str, photo_id: str) -> None:
        self.get_photo(event_id, photo_id)
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO grants (event_id, guest_id, photo_id, created_at) VALUES (?, ?, ?, ?)",
                         (event_id, guest_id, photo_id, now()))

    def has_grant(self, event_id: str, guest_id: str, photo_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM grants WHERE event_id = ? AND guest_id = ? AND photo_id = ?",
                                (event_id, guest_id, photo_id)))

    def save_selfie(self, event_id: str, token_hash: str, blob_key: str, embedding: bytes) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO saved_selfies (token_hash, event_id, blob_key, embedding, created_at) "
                         "VALUES (?, ?, ?, ?, ?)", (token_hash, event_id, blob_key, embedding, now()))

    def get_selfie(self, event_id: str, token_hash: str) -> tuple[str, bytes] | None:
        rows = self._query("SELECT blob_key, embedding FROM saved_selfies WHERE token_hash = ? AND event_id = ?",
                           (token_hash, event_id))
        return (rows[0][0], bytes(rows[0][1])) if rows else None

    def delete_selfie(self, event_id: str, token_hash: str) -> str | None:
        with self.transaction() as conn:
            row = conn.execute("SELECT blob_key FROM saved_selfies WHERE token_hash = ? AND event_id = ?",
                               (token_hash, event_id)).fetchone()
            conn.execute("DELETE FROM saved_selfies WHERE token_hash = ? AND event_id = ?", (token_hash, event_id))
        if row:
            self.scrub()
        return str(row[0]) if row else None

    # ---- Rekognition-compatible collections ----------------------------------------------------
    def add_rek_collection(self, collection_id: str, event_id: str) -> RekCollectionRow:
        try:
            with self.transaction() as conn:
                conn.execute("INSERT INTO rek_collections (collection_id, event_id, created_at) VALUES (?, ?, ?)",
                             (collection_id, event_id, now()))
        except sqlite3.IntegrityError:
            raise AlreadyExistsError(f"The collection id: {collection_id} already exists") from None
        found = self.get_rek_collection(collection_id)
        if found is None:  # just inserted in this connection: only a concurrent delete gets here
            raise NotFoundError(f"collection {collection_id!r} vanished while being created")
        return found

    def get_rek_collection(self, collection_id: str) -> RekCollectionRow | None:
        rows = self._query("SELECT * FROM rek_collections WHERE collection_id = ?", (collection_id,))
        return RekCollectionRow(rows[0]["collection_id"], rows[0]["event_id"], rows[0]["created_at"]) if rows else None

    def list_rek_collections(self, after: str | None, limit: int) -> list[RekCollectionRow]:
        rows = self._query("SELECT * FROM rek_collections WHERE collection_id > ? ORDER BY collection_id LIMIT ?",
                           (after or "", limit))
        return [RekCollectionRow(r["collection_id"], r["event_id"], r["created_at"]) for r in rows]

    def add_rek_image(self, event_id: str, photo_id: str, sha256: str, filename: str, width: int, height: int) -> str:
        """A photo row for an image sent to IndexFaces (no original is kept, as with Rekognition).
        The same bytes indexed again share the row; returns the photo id in use."""
        with self.transaction() as conn:
            existing = conn.execute("SELECT id FROM photos WHERE event_id = ? AND sha256 = ?", (event_id, sha256)).fetchone()
            if existing is not None:
                conn.execute("UPDATE photos SET width = COALESCE(width, ?), height = COALESCE(height, ?) WHERE id = ?",
                             (width, height, existing[0]))
                return str(existing[0])
            conn.execute(
                "INSERT INTO photos (id, event_id, sha256, filename, width, height, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'indexed', ?)",
                (photo_id, event_id, sha256, filename, width, height, now()))
        return photo_id

    def add_rek_faces(self, event_id: str, rows: Sequence[tuple[str, int, str, str | None]]) -> None:
        """(face uuid, face id, image uuid, external image id) for faces already inserted."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO rek_faces (face_uuid, face_id, event_id, image_uuid, external_image_id) VALUES (?, ?, ?, ?, ?)",
                [(u, f, event_id, i, x) for u, f, i, x in rows])

    _REK_FACE_SQL = (
        "SELECT r.face_uuid, r.face_id, r.image_uuid, r.external_image_id, f.photo_id, f.x1, f.y1, f.x2, f.y2,"
        " f.det_score, COALESCE(p.width, 0) AS width, COALESCE(p.height, 0) AS height"
        " FROM rek_faces r JOIN faces f ON f.id = r.face_id JOIN photos p ON p.id = f.photo_id"
        " WHERE r.event_id = ? AND f.state = 'indexed'"
    )

    @staticmethod
    def _rek_face(row: sqlite3.Row) -> RekFaceRow:
        return RekFaceRow(row["face_uuid"], row["face_id"], row["image_uuid"], row["external_image_id"], row["photo_id"],
                          (row["x1"], row["y1"], row["x2"], row["y2"]), row["det_score"], row["width"], row["height"])

    def list_rek_faces(self, event_id: str, after_face_id: int, limit: int) -> list[RekFaceRow]:
        """In indexing order, from the face after `after_face_id` (pagination by face id)."""
        rows = self._query(self._REK_FACE_SQL + " AND r.face_id > ? ORDER BY r.face_id LIMIT ?",
                           (event_id, after_face_id, limit))
        return [self._rek_face(r) for r in rows]

    def rek_faces_by_uuid(self, event_id: str, face_uuids: Sequence[str]) -> list[RekFaceRow]:
        if not face_uuids:
            return []
        marks = ",".join("?" * len(face_uuids))
        rows = self._query(self._REK_FACE_SQL + f" AND r.face_uuid IN ({marks})", (event_id, *face_uuids))
        return [self._rek_face(r) for r in rows]

    def rek_faces_by_face_id(self, event_id: str, face_ids: Sequence[int]) -> list[RekFaceRow]:
        if not face_ids:
            return []
        marks = ",".join("?" * len(face_ids))
        rows = self._query(self._REK_FACE_SQL + f" AND r.face_id IN ({marks})", (event_id, *face_ids))
        return [self._rek_face(r) for r in rows]

    def count_rek_faces(self, event_id: str) -> int:
        return int(self._query("SELECT COUNT(*) FROM (" + self._REK_FACE_SQL + ")", (event_id,))[0][0])

    def delete_rek_faces(self, event_id: str, face_uuids: Sequence[str]) -> list[RekFaceRow]:
        """Delete these faces (their rek_faces rows go by cascade) and the image-less photos left
        without any face; returns the deleted faces (their ids must leave the vector index)."""
        with self.transaction() as conn:
            found = self.rek_faces_by_uuid(event_id, face_uuids)
            conn.executemany("DELETE FROM faces WHERE id = ? AND event_id = ?", [(f.face_id, event_id) for f in found])
            for photo_id in sorted({f.photo_id for f in found}):
                # Photos uploaded through the host API keep their row (and original) when faces go.
                conn.execute(
                    "DELETE FROM photos WHERE id = ? AND event_id = ? AND original_key IS NULL"
                    " AND NOT EXISTS (SELECT 1 FROM faces WHERE photo_id = ?)", (photo_id, event_id, photo_id))
        if found:
            self.scrub()
        return found

    # ---- ingest jobs -------------------------------------------------------------------------
    def create_job(self, job_id: str, event_id: str, total: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO ingest_jobs (id, event_id, status, total, created_at, updated_at) VALUES (?, ?, 'running', ?, ?, ?)",
                (job_id, event_id, total, now(), now()))

    def update_job(self, job_id: str, *, done: int, failed: int, status: str = "running") -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE ingest_jobs SET done = ?, failed = ?, status = ?, updated_at = ? WHERE id = ?",
                         (done, failed, status, now(), job_id))

    def get_job(self, job_id: str) -> dict[str, Any]:
        rows = self._query("SELECT * FROM ingest_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFoundError(f"no ingest job {job_id!r}")
        return dict(rows[0])
