"""The search's person-group lookup on a real SQLite store: faces grouped with the given ones."""

from __future__ import annotations

from pathlib import Path

from storage.metadata import MetadataStore

FACE = {"box": [0.0, 0.0, 10.0, 10.0], "landmarks": [], "det_score": 0.9, "quality": {}}


def test_person_mates(tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "m.sqlite3")
    try:
        for event in ("e1", "e2"):
            meta.create_event(event, event, f"hash-{event}", {})
        photos = [f"p{i}" for i in range(5)]
        for p in photos:
            meta.add_photo(p, "e1", p * 8, f"{p}.jpg")
        ids = [fid for fids in meta.add_pending_faces("e1", [(p, [FACE]) for p in photos]) for fid in fids]
        meta.commit_faces("e1", photos[:4])  # the last photo's face is still pending: never offered
        meta.add_photo("q0", "e2", "q" * 8, "q.jpg")
        other = meta.add_pending_faces("e2", [("q0", [FACE])])[0]
        meta.commit_faces("e2", ["q0"])
        meta.replace_persons("e1", [([ids[0], ids[1], ids[4]], ids[0]), ([ids[2]], ids[2])])
        assert sorted(meta.person_mates("e1", [ids[0]])) == [(ids[1], "p1")]
        assert sorted(meta.person_mates("e1", [ids[0], ids[2]])) == [(ids[1], "p1")]
        assert meta.person_mates("e1", [ids[3]]) == []  # a face without a person
        assert meta.person_mates("e1", []) == []
        assert meta.person_mates("e2", [ids[0]]) == []  # another event's face ids reach nothing
        assert meta.person_mates("e1", other) == []
    finally:
        meta.close()
