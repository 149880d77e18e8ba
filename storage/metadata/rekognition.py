"""The Rekognition-compatible API's own ids: collections (one event each) and the random FaceIds and
ImageIds its faces are known by. Face rows themselves are FaceRepo's."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from picsort_local.errors import AlreadyExistsError, NotFoundError
from storage.metadata.db import ConstraintError, Database, in_chunks, marks, now
from storage.metadata.rows import RekCollectionRow, RekFaceLink, RekFaceRow

_FACE_SQL = (
    "SELECT r.face_uuid, r.face_id, r.image_uuid, r.external_image_id, f.photo_id, f.x1, f.y1, f.x2, f.y2,"
    " f.det_score, COALESCE(p.width, 0) AS width, COALESCE(p.height, 0) AS height"
    " FROM rek_faces r JOIN faces f ON f.id = r.face_id JOIN photos p ON p.id = f.photo_id"
    " WHERE r.event_id = ? AND f.state = 'indexed'"
)


class RekognitionRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- collections ---------------------------------------------------------------------------
    def add_collection(self, collection_id: str, event_id: str) -> RekCollectionRow:
        try:
            with self.db.transaction() as db:
                db.execute("INSERT INTO rek_collections (collection_id, event_id, created_at)"
                           " VALUES (?, ?, ?)", (collection_id, event_id, now()))
        except ConstraintError:
            raise AlreadyExistsError(f"The collection id: {collection_id} already exists") from None
        found = self.collection(collection_id)
        if found is None:  # just inserted in this connection: only a concurrent delete gets here
            raise NotFoundError(f"collection {collection_id!r} vanished while being created")
        return found

    def collection(self, collection_id: str) -> RekCollectionRow | None:
        rows = self.db.query("SELECT * FROM rek_collections WHERE collection_id = ?", (collection_id,))
        return _collection(rows[0]) if rows else None

    def collections(self, after: str | None, limit: int) -> list[RekCollectionRow]:
        """By collection id, from the one after `after` (pagination by id)."""
        rows = self.db.query(
            "SELECT * FROM rek_collections WHERE collection_id > ? ORDER BY collection_id LIMIT ?",
            (after or "", limit))
        return [_collection(r) for r in rows]

    # ---- faces ---------------------------------------------------------------------------------
    def add_faces(self, event_id: str, links: Sequence[RekFaceLink]) -> None:
        """FaceIds and ImageIds for faces already inserted."""
        with self.db.transaction() as db:
            db.executemany(
                "INSERT INTO rek_faces (face_uuid, face_id, event_id, image_uuid, external_image_id)"
                " VALUES (?, ?, ?, ?, ?)",
                [(k.face_uuid, k.face_id, event_id, k.image_uuid, k.external_image_id) for k in links])

    def faces(self, event_id: str, after_face_id: int, limit: int) -> list[RekFaceRow]:
        """In indexing order, from the face after `after_face_id` (pagination by face id)."""
        rows = self.db.query(_FACE_SQL + " AND r.face_id > ? ORDER BY r.face_id LIMIT ?",
                             (event_id, after_face_id, limit))
        return [_face(r) for r in rows]

    def faces_by_uuid(self, event_id: str, face_uuids: Sequence[str]) -> list[RekFaceRow]:
        return [_face(r) for chunk in in_chunks(face_uuids)
                for r in self.db.query(_FACE_SQL + f" AND r.face_uuid IN ({marks(len(chunk))})", (event_id, *chunk))]

    def faces_by_id(self, event_id: str, face_ids: Sequence[int]) -> list[RekFaceRow]:
        return [_face(r) for chunk in in_chunks(face_ids)
                for r in self.db.query(_FACE_SQL + f" AND r.face_id IN ({marks(len(chunk))})", (event_id, *chunk))]

    def count_faces(self, event_id: str) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM (" + _FACE_SQL + ") AS known", (event_id,))[0][0])

    def delete_faces(self, event_id: str, face_uuids: Sequence[str]) -> list[RekFaceRow]:
        """Delete these faces (their rek_faces rows go by cascade) and the image-less photos left
        without any face; returns the deleted faces (their ids must leave the vector index)."""
        with self.db.transaction() as db:
            found = self.faces_by_uuid(event_id, face_uuids)
            db.executemany("DELETE FROM faces WHERE id = ? AND event_id = ?",
                           [(f.face_id, event_id) for f in found])
            for photo_id in sorted({f.photo_id for f in found}):
                # Photos uploaded through the host API keep their row (and original) when faces go.
                db.execute(
                    "DELETE FROM photos WHERE id = ? AND event_id = ? AND original_key IS NULL"
                    " AND NOT EXISTS (SELECT 1 FROM faces WHERE photo_id = ?)",
                    (photo_id, event_id, photo_id))
        if found:
            self.db.scrub()
        return found


def _collection(row: sqlite3.Row) -> RekCollectionRow:
    return RekCollectionRow(row["collection_id"], row["event_id"], row["created_at"])


def _face(row: sqlite3.Row) -> RekFaceRow:
    box = (float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"]))
    return RekFaceRow(row["face_uuid"], int(row["face_id"]), row["image_uuid"], row["external_image_id"],
                      row["photo_id"], box, float(row["det_score"]), int(row["width"]), int(row["height"]))
