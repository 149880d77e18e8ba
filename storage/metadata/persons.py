"""Persons: the groups the clustering made of an event's faces (replaced whole by each re-clustering)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from storage.metadata.db import Database, in_chunks, marks
from storage.metadata.rows import PersonPhoto, PersonRow


class PersonRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def replace(self, event_id: str, clusters: Sequence[tuple[Sequence[int], int]]) -> builtins.list[int]:
        """Replace the event's persons: each cluster = (face ids, representative face id). Returns the
        new person ids, one per cluster."""
        person_ids = []
        with self.db.transaction() as db:
            db.execute("UPDATE faces SET person_id = NULL WHERE event_id = ?", (event_id,))
            db.execute("DELETE FROM persons WHERE event_id = ?", (event_id,))
            for face_ids, representative in clusters:
                pid = int(db.query(
                    "INSERT INTO persons (event_id, representative_face_id, face_count) VALUES (?, ?, ?)"
                    " RETURNING id", (event_id, representative, len(face_ids)))[0][0])
                person_ids.append(pid)
                db.executemany("UPDATE faces SET person_id = ? WHERE id = ? AND event_id = ?",
                               [(pid, fid, event_id) for fid in face_ids])
        return person_ids

    def list(self, event_id: str) -> builtins.list[PersonRow]:
        """Largest first."""
        rows = self.db.query(
            "SELECT p.id, p.representative_face_id, p.face_count,"
            " (SELECT COUNT(DISTINCT photo_id) FROM faces f WHERE f.person_id = p.id) AS photo_count,"
            " (SELECT photo_id FROM faces f WHERE f.id = p.representative_face_id) AS rep_photo"
            " FROM persons p WHERE p.event_id = ? ORDER BY p.face_count DESC, p.id", (event_id,))
        return [PersonRow(int(r["id"]), r["representative_face_id"], int(r["face_count"]),
                          int(r["photo_count"]), r["rep_photo"]) for r in rows]

    def mates(self, event_id: str, face_ids: Sequence[int]) -> builtins.list[tuple[int, str]]:
        """(face id, photo id) of the indexed faces grouped into the same person as any of these faces
        (the faces themselves excluded). The given ids are looked up by primary key (`event_id || ''`
        keeps the planner off the event's index); the event check still applies."""
        given = set(face_ids)
        found: dict[int, str] = {}
        for chunk in in_chunks(list(face_ids)):
            rows = self.db.query(
                f"SELECT f.id, f.photo_id FROM faces f WHERE f.person_id IN (SELECT g.person_id FROM faces g"
                f" WHERE g.event_id || '' = ? AND g.id IN ({marks(len(chunk))}) AND g.person_id IS NOT NULL)"
                f" AND f.event_id = ? AND f.state = 'indexed'", (event_id, *chunk, event_id))
            found.update((int(r[0]), str(r[1])) for r in rows if int(r[0]) not in given)
        return list(found.items())

    def photos(self, event_id: str, person_ids: Sequence[int] | None = None) -> builtins.list[PersonPhoto]:
        """Each person's distinct photos (all the pictures of one person form a set), by person id, then
        in upload order (as many as the person's photo_count). None: every person of the event; unknown
        or other events' ids give nothing."""
        if person_ids is None:
            return self._photos(event_id, ())
        # Ascending ids in ascending slices: the concatenated slices keep the order by person.
        ordered = sorted(set(person_ids))
        return [photo for chunk in in_chunks(ordered) for photo in self._photos(event_id, chunk)]

    def _photos(self, event_id: str, person_ids: Sequence[int]) -> builtins.list[PersonPhoto]:
        """`photos` of these persons (every person of the event when empty)."""
        only = f" AND f.person_id IN ({marks(len(person_ids))})" if person_ids else ""
        rows = self.db.query(
            "SELECT DISTINCT f.person_id, p.id, p.filename, p.created_at FROM faces f"
            " JOIN photos p ON p.id = f.photo_id"
            f" WHERE f.event_id = ? AND f.person_id IS NOT NULL{only}"
            " ORDER BY f.person_id, p.created_at, p.id",
            (event_id, *person_ids))
        return [PersonPhoto(int(r[0]), str(r[1]), str(r[2])) for r in rows]
