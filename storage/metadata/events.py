"""Events: the root every other row hangs from (deleting one deletes everything of it)."""

from __future__ import annotations

import json
import sqlite3

from picsort_local.errors import NotFoundError
from storage.metadata.db import Database, now
from storage.metadata.rows import EventCounts, EventRow

# Children deleted explicitly before the event (faces -> persons is SET NULL, so order matters).
_EVENT_CHILDREN = ("faces", "persons", "hidden_photos", "grants", "bodies", "saved_selfies", "photos",
                   "ingest_jobs")


class EventRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, event_id: str, name: str, token_hash: str, watermark: str | None) -> EventRow:
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO events (id, name, created_at, token_hash, settings_json) VALUES (?, ?, ?, ?, ?)",
                (event_id, name, now(), token_hash, json.dumps({"watermark": watermark})),
            )
        return self.get(event_id)

    def get(self, event_id: str) -> EventRow:
        rows = self.db.query("SELECT * FROM events WHERE id = ?", (event_id,))
        if not rows:
            raise NotFoundError(f"no event {event_id!r}")
        return _event(rows[0])

    def by_token_hash(self, token_hash: str) -> EventRow | None:
        rows = self.db.query("SELECT * FROM events WHERE token_hash = ?", (token_hash,))
        return _event(rows[0]) if rows else None

    def list(self) -> list[EventRow]:
        return [_event(r) for r in self.db.query("SELECT * FROM events ORDER BY created_at, id")]

    def delete(self, event_id: str) -> None:
        """Every row of the event, in one transaction, then the WAL is scrubbed of them."""
        with self.db.transaction() as db:
            for table in _EVENT_CHILDREN:
                db.execute(f"DELETE FROM {table} WHERE event_id = ?", (event_id,))
            db.execute("DELETE FROM events WHERE id = ?", (event_id,))
        self.db.scrub()

    def counts(self, event_id: str) -> EventCounts:
        photos = {str(r["status"]): int(r["n"]) for r in self.db.query(
            "SELECT status, COUNT(*) AS n FROM photos WHERE event_id = ? GROUP BY status ORDER BY status",
            (event_id,))}
        faces = self.db.query("SELECT COUNT(*) FROM faces WHERE event_id = ? AND state = 'indexed'",
                              (event_id,))
        persons = self.db.query("SELECT COUNT(*) FROM persons WHERE event_id = ?", (event_id,))
        return EventCounts(photos, int(faces[0][0]), int(persons[0][0]))


def _event(row: sqlite3.Row) -> EventRow:
    settings = json.loads(row["settings_json"])
    watermark = settings.get("watermark") if isinstance(settings, dict) else None
    return EventRow(row["id"], row["name"], row["created_at"], row["token_hash"],
                    None if watermark is None else str(watermark))
