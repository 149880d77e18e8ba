"""The search's person-group lookup on a real SQLite store: faces grouped with the given ones."""

from __future__ import annotations

from pathlib import Path

from picsort_local.types import FaceQuality, FaceRecord, PixelBox
from storage.metadata import Metadata

FACE = FaceRecord(PixelBox(0.0, 0.0, 10.0, 10.0), (), 0.9, FaceQuality(10.0, 0.0, 0.0, 0.0, 0.0, 0.0))


def test_person_mates(tmp_path: Path) -> None:
    meta = Metadata(tmp_path / "m.sqlite3")
    try:
        for event in ("e1", "e2"):
            meta.events.create(event, event, f"hash-{event}", None)
        photos = [f"p{i}" for i in range(5)]
        for p in photos:
            meta.photos.add(p, "e1", p * 8, f"{p}.jpg")
        ids = [fid for fids in meta.faces.insert_pending("e1", [(p, [FACE]) for p in photos]) for fid in fids]
        meta.faces.commit("e1", photos[:4])  # the last photo's face is still pending: never offered
        meta.photos.add("q0", "e2", "q" * 8, "q.jpg")
        other = meta.faces.insert_pending("e2", [("q0", [FACE])])[0]
        meta.faces.commit("e2", ["q0"])
        meta.persons.replace("e1", [([ids[0], ids[1], ids[4]], ids[0]), ([ids[2]], ids[2])])
        assert sorted(meta.persons.mates("e1", [ids[0]])) == [(ids[1], "p1")]
        assert sorted(meta.persons.mates("e1", [ids[0], ids[2]])) == [(ids[1], "p1")]
        assert meta.persons.mates("e1", [ids[3]]) == []  # a face without a person
        assert meta.persons.mates("e1", []) == []
        assert meta.persons.mates("e2", [ids[0]]) == []  # another event's face ids reach nothing
        assert meta.persons.mates("e1", other) == []
    finally:
        meta.close()
