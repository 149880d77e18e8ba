"""Photos of an event and the faceless bodies found in them."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Sequence

from picsort_local.errors import NotFoundError
from picsort_local.types import Outfit
from storage.metadata.db import Database, now
from storage.metadata.rows import Body, BodyRow, Lab, PhotoRow

# A photo's own rows in other tables, deleted with it. (Saved selfies belong to an event, not to a
# photo: they go with the event or the guest.)
_PHOTO_CHILDREN = ("hidden_photos", "grants", "bodies")


class PhotoRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, photo_id: str, event_id: str, sha256: str, filename: str,
            original_key: str | None = None) -> tuple[PhotoRow, bool]:
        """Insert a pending photo; an existing photo with the same sha256 is returned instead
        (False: nothing was added)."""
        with self.db.transaction() as db:
            existing = db.query("SELECT * FROM photos WHERE event_id = ? AND sha256 = ?", (event_id, sha256))
            if existing:
                return _photo(existing[0]), False
            db.execute(
                "INSERT INTO photos (id, event_id, sha256, filename, original_key, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (photo_id, event_id, sha256, filename, original_key, now()),
            )
        return self.get(event_id, photo_id), True

    def add_indexed(self, event_id: str, photo_id: str, sha256: str, filename: str, width: int,
                    height: int) -> str:
        """A photo row for an image sent to IndexFaces (no original is kept, as with Rekognition).
        The same bytes indexed again share the row; returns the photo id in use."""
        with self.db.transaction() as db:
            existing = db.query("SELECT id FROM photos WHERE event_id = ? AND sha256 = ?", (event_id, sha256))
            if existing:
                db.execute("UPDATE photos SET width = COALESCE(width, ?), height = COALESCE(height, ?)"
                           " WHERE id = ?", (width, height, existing[0][0]))
                return str(existing[0][0])
            db.execute(
                "INSERT INTO photos (id, event_id, sha256, filename, width, height, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'indexed', ?)",
                (photo_id, event_id, sha256, filename, width, height, now()))
        return photo_id

    def by_sha(self, event_id: str, sha256: str) -> PhotoRow | None:
        rows = self.db.query("SELECT * FROM photos WHERE event_id = ? AND sha256 = ?", (event_id, sha256))
        return _photo(rows[0]) if rows else None

    def get(self, event_id: str, photo_id: str) -> PhotoRow:
        rows = self.db.query("SELECT * FROM photos WHERE event_id = ? AND id = ?", (event_id, photo_id))
        if not rows:
            raise NotFoundError(f"no photo {photo_id!r} in this event")
        return _photo(rows[0])

    def list(self, event_id: str, status: str | None = None) -> builtins.list[PhotoRow]:
        """In upload order."""
        if status is None:
            rows = self.db.query("SELECT * FROM photos WHERE event_id = ? ORDER BY created_at, id",
                                 (event_id,))
        else:
            rows = self.db.query(
                "SELECT * FROM photos WHERE event_id = ? AND status = ? ORDER BY created_at, id",
                (event_id, status))
        return [_photo(r) for r in rows]

    def set_stored(self, photo_id: str, original_key: str, width: int, height: int) -> None:
        with self.db.transaction() as db:
            db.execute("UPDATE photos SET original_key = ?, width = ?, height = ? WHERE id = ?",
                       (original_key, width, height, photo_id))

    def set_failed(self, photo_id: str, error: str) -> None:
        with self.db.transaction() as db:
            db.execute("UPDATE photos SET status = 'failed', error = ? WHERE id = ?", (error, photo_id))

    def delete(self, event_id: str, photo_id: str) -> builtins.list[int]:
        """Delete a photo and its faces; returns the removed face ids (to drop from the index)."""
        with self.db.transaction() as db:
            ids = [int(r[0]) for r in db.query("SELECT id FROM faces WHERE photo_id = ? AND event_id = ?",
                                               (photo_id, event_id))]
            db.execute("DELETE FROM faces WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
            for table in _PHOTO_CHILDREN:
                db.execute(f"DELETE FROM {table} WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
            deleted = db.execute("DELETE FROM photos WHERE id = ? AND event_id = ?", (photo_id, event_id))
        if not deleted:
            raise NotFoundError(f"no photo {photo_id!r} in this event")
        self.db.scrub()
        return ids

    # ---- bodies (people whose face is not visible) -----------------------------------------
    def add_bodies(self, event_id: str, photo_id: str, bodies: Sequence[Body]) -> None:
        """The photo's bodies (replacing any stored before)."""
        with self.db.transaction() as db:
            db.execute("DELETE FROM bodies WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
            db.executemany(
                "INSERT INTO bodies (event_id, photo_id, x1, y1, x2, y2, outfit_l, outfit_a, outfit_b,"
                " outfit_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(event_id, photo_id, *b.box, *b.outfit.lab, b.outfit.name) for b in bodies])

    def bodies(self, event_id: str, near_lab: Lab | None = None,
               within: float = 0.0) -> builtins.list[BodyRow]:
        """Bodies of an event; with `near_lab`, only those whose colour lies in the Lab box of half-width
        `within` around it (a superset of the ΔE76 <= within ball), so a search reads few rows."""
        if near_lab is None:
            return [_body(r) for r in self.db.query("SELECT * FROM bodies WHERE event_id = ?", (event_id,))]
        lum, a, b = near_lab
        return [_body(r) for r in self.db.query(
            "SELECT * FROM bodies WHERE event_id = ? AND outfit_l BETWEEN ? AND ?"
            " AND outfit_a BETWEEN ? AND ? AND outfit_b BETWEEN ? AND ?",
            (event_id, lum - within, lum + within, a - within, a + within, b - within, b + within))]


def _photo(row: sqlite3.Row) -> PhotoRow:
    return PhotoRow(row["id"], row["event_id"], row["sha256"], row["filename"], row["original_key"],
                    row["width"], row["height"], row["status"], row["error"])


def _body(row: sqlite3.Row) -> BodyRow:
    return BodyRow(int(row["id"]), row["photo_id"],
                   (float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"])),
                   Outfit((float(row["outfit_l"]), float(row["outfit_a"]), float(row["outfit_b"])),
                          row["outfit_name"]))
