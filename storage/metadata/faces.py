"""Face rows: one per detected face, 'pending' until the index snapshot holding its vector is
published, then 'indexed'. Vectors live in the event's index under the same ids."""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict

from picsort_local.types import FaceQuality, FaceRecord, Outfit, PixelBox
from storage.metadata.db import Database, in_chunks, marks
from storage.metadata.rows import FacePhoto, FaceRow, Lab

_QUALITY_KEYS = ("face_px", "sharpness", "brightness", "yaw", "pitch", "roll")

_INSERT = (
    "INSERT INTO faces (event_id, photo_id, x1, y1, x2, y2, landmarks_json, det_score, quality_json,"
    " outfit_l, outfit_a, outfit_b, outfit_name, state)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending') RETURNING id"
)


class FaceRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert_pending(self, event_id: str, photos: Sequence[tuple[str, Sequence[FaceRecord]]],
                       ) -> builtins.list[builtins.list[int]]:
        """Insert faces (state 'pending') for several photos in ONE transaction and mark those photos
        'processing'. Returns the new face ids per photo, in the order of the records."""
        out: builtins.list[builtins.list[int]] = []
        with self.db.transaction() as db:
            for photo_id, records in photos:
                out.append([int(db.query(_INSERT, (event_id, photo_id, *_columns(r)))[0][0])
                            for r in records])
                db.execute("UPDATE photos SET status = 'processing' WHERE id = ?", (photo_id,))
        return out

    def commit(self, event_id: str, photo_ids: Sequence[str]) -> None:
        """After the index snapshot holding their vectors is published: faces and photos are done."""
        with self.db.transaction() as db:
            for photo_id in photo_ids:
                db.execute("UPDATE faces SET state = 'indexed' WHERE photo_id = ? AND event_id = ?",
                           (photo_id, event_id))
                db.execute("UPDATE photos SET status = 'indexed', error = NULL WHERE id = ?", (photo_id,))

    def pending(self, event_id: str) -> builtins.list[tuple[int, str]]:
        """(face id, photo id) of the faces not committed yet."""
        return [(int(r[0]), str(r[1])) for r in self.db.query(
            "SELECT id, photo_id FROM faces WHERE event_id = ? AND state = 'pending'", (event_id,))]

    def reset_photos(self, event_id: str, photo_ids: Sequence[str]) -> None:
        """Forget half-done work for these photos: drop their faces, back to 'pending'."""
        with self.db.transaction() as db:
            for photo_id in photo_ids:
                db.execute("DELETE FROM faces WHERE photo_id = ? AND event_id = ?", (photo_id, event_id))
                db.execute("UPDATE photos SET status = 'pending' WHERE id = ? AND event_id = ?",
                           (photo_id, event_id))

    def get(self, event_id: str, face_ids: Sequence[int]) -> builtins.list[FaceRow]:
        """These faces of the event (unknown ids and other events' faces are left out).

        `event_id || ''` keeps the planner from scanning the event's index (all its faces) instead
        of looking the ids up by primary key; the event check still applies."""
        return [_face(r) for chunk in in_chunks(face_ids) for r in self.db.query(
            f"SELECT * FROM faces WHERE event_id || '' = ? AND id IN ({marks(len(chunk))})", (event_id, *chunk))]

    def list(self, event_id: str, indexed_only: bool = True) -> builtins.list[FaceRow]:
        state = " AND state = 'indexed'" if indexed_only else ""
        sql = f"SELECT * FROM faces WHERE event_id = ?{state} ORDER BY id"
        return [_face(r) for r in self.db.query(sql, (event_id,))]

    def indexed_ids(self, event_id: str) -> builtins.list[int]:
        return [int(r[0]) for r in self.db.query(
            "SELECT id FROM faces WHERE event_id = ? AND state = 'indexed'", (event_id,))]

    def photos(self, event_id: str, face_ids: Sequence[int]) -> dict[int, FacePhoto]:
        """Just photo id and outfit colour per face: what a search needs, without decoding JSON
        (ids looked up by primary key, as in `get`)."""
        rows = [r for chunk in in_chunks(face_ids) for r in self.db.query(
            "SELECT id, photo_id, outfit_l, outfit_a, outfit_b FROM faces"
            f" WHERE event_id || '' = ? AND id IN ({marks(len(chunk))})", (event_id, *chunk))]
        return {int(r[0]): FacePhoto(str(r[1]), _lab(r[2], r[3], r[4])) for r in rows}


def _columns(record: FaceRecord) -> tuple[object, ...]:
    """A record as the stored columns: x1..y2, landmarks_json, det_score, quality_json, outfit_l/a/b, name."""
    outfit = record.outfit
    lab = outfit.lab if outfit is not None else (None, None, None)
    return (*record.box.as_tuple(), json.dumps([list(p) for p in record.landmarks]), record.score,
            json.dumps(asdict(record.quality)), *lab, outfit.name if outfit is not None else None)


def _face(row: sqlite3.Row) -> FaceRow:
    quality = json.loads(row["quality_json"])
    lab = _lab(row["outfit_l"], row["outfit_a"], row["outfit_b"])
    record = FaceRecord(
        box=PixelBox(float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"])),
        landmarks=tuple((float(x), float(y)) for x, y in json.loads(row["landmarks_json"])),
        score=float(row["det_score"]),
        # rows written by hand (benchmarks) may lack signals: 0 is what the ranking assumed for them
        quality=FaceQuality(**{k: float(quality.get(k, 0.0)) for k in _QUALITY_KEYS}),
        outfit=None if lab is None else Outfit(lab, row["outfit_name"] or ""),
    )
    return FaceRow(int(row["id"]), row["event_id"], row["photo_id"], record, row["person_id"], row["state"])


def _lab(l_: float | None, a: float | None, b: float | None) -> Lab | None:
    return None if l_ is None or a is None or b is None else (float(l_), float(a), float(b))
