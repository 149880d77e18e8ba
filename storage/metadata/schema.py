"""The schema: numbered SQL scripts applied at start-up, each in its own transaction.

Migrations 1-5 must never change (databases in the field have applied them); add new ones at the end.
The DDL is SQLite's for now but sticks to portable types (TEXT/INTEGER/REAL, explicit foreign keys).
"""

from __future__ import annotations

from storage.metadata.db import Database

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
    # 6: a job's per-file errors survive a restart (jobs live in the database only).
    """
    ALTER TABLE ingest_jobs ADD COLUMN errors_json TEXT NOT NULL DEFAULT '[]';
    """,
]


def migrate(db: Database) -> int:
    """Apply the migrations not applied yet; returns how many ran. The version is read again inside
    each migration's transaction, so two processes starting together apply each script once."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    current = _version(db)
    applied = 0
    for number, script in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        with db.transaction():
            if _version(db) >= number:
                continue
            for statement in (s.strip() for s in script.split(";")):
                if statement:
                    db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            applied += 1
    return applied


def _version(db: Database) -> int:
    return int(db.query("SELECT MAX(version) FROM schema_version")[0][0] or 0)
