"""The face store on a local blob store and SQLite in a temp dir, with synthetic vectors whose
nearest neighbours are known: writes, deletes, the crash-safety order and recovery, the read cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.faces import FaceStore, NewFaces
from indexer.vector_index import EventIndex, LoadedIndex
from picsort_local.errors import NotFoundError
from picsort_local.types import FaceQuality, FaceRecord, PixelBox
from storage.blobs import LocalBlobStore
from storage.keys import index_prefix
from storage.metadata import Metadata, RekFaceLink

DIM = 16
EVENT = "ev0000000000000a"


def record(i: int) -> FaceRecord:
    quality = FaceQuality(face_px=40.0 + i, sharpness=50.0, brightness=120.0, yaw=0.0, pitch=5.0, roll=0.0)
    return FaceRecord(PixelBox(10.0 * i, 10.0, 10.0 * i + 40, 50.0), ((1.0, 2.0),) * 5, 0.8, quality)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def faces(photo_id: str, vectors: np.ndarray) -> NewFaces:
    return NewFaces(photo_id, tuple(record(i) for i in range(len(vectors))), unit(vectors))


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[tuple[FaceStore, Metadata, LocalBlobStore]]:
    meta = Metadata(tmp_path / "meta.sqlite3")
    blobs = LocalBlobStore(tmp_path / "blobs")
    meta.events.create(EVENT, "Test", "hash-" + EVENT, None)
    for name in ("p1", "p2", "p3"):
        meta.photos.add(name, EVENT, "sha-" + name, name + ".jpg", original_key="k/" + name)
    yield FaceStore(meta, blobs), meta, blobs
    meta.close()


def test_add_commits_rows_and_publishes_vectors(stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, meta, _ = stack
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, DIM)), rng.normal(size=(3, DIM))
    ids = store.add(EVENT, [faces("p1", a), faces("p2", b)])
    assert [len(g) for g in ids] == [2, 3]
    assert sorted(meta.faces.indexed_ids(EVENT)) == sorted(i for g in ids for i in g)
    assert meta.faces.pending(EVENT) == []
    assert {p.id for p in meta.photos.list(EVENT, "indexed")} == {"p1", "p2"}
    assert store.version(EVENT) == 1
    scores, found = store.index(EVENT, DIM).search(unit(b[1:2]), 1)
    assert int(found[0, 0]) == ids[1][1] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    stored = store.vector(EVENT, ids[0][0], DIM)
    assert stored is not None and np.allclose(stored, unit(a)[0], atol=1e-6)
    assert store.vector(EVENT, 10_000, DIM) is None
    rows = meta.faces.get(EVENT, ids[0])
    assert {r.record for r in rows} == {record(0), record(1)}


def test_photo_without_faces_is_committed_without_a_snapshot(stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, meta, _ = stack
    assert store.add(EVENT, [faces("p1", np.zeros((0, DIM)))]) == [[]]
    assert store.version(EVENT) is None
    assert [p.id for p in meta.photos.list(EVENT, "indexed")] == ["p1"]


def test_failed_link_publishes_nothing_and_recovery_redoes_the_photo(
        stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, meta, _ = stack
    seen: list[list[list[int]]] = []

    def link(ids: list[list[int]]) -> None:
        seen.append(ids)
        raise RuntimeError("crash before publishing")

    with pytest.raises(RuntimeError):
        store.add(EVENT, [faces("p1", np.eye(2, DIM))], link=link)
    assert len(seen[0][0]) == 2 and store.version(EVENT) is None
    outcome = store.recover(EVENT)
    assert (outcome.completed, outcome.redone, outcome.orphans_removed) == (0, 1, 0)
    assert meta.faces.pending(EVENT) == [] and meta.photos.get(EVENT, "p1").status == "pending"


def test_published_but_uncommitted_faces_are_completed_by_recovery(
        stack: tuple[FaceStore, Metadata, LocalBlobStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store, meta, _ = stack
    commit = meta.faces.commit

    def crash(event_id: str, photo_ids: list[str]) -> None:
        raise RuntimeError("killed after the snapshot, before the commit")

    monkeypatch.setattr(meta.faces, "commit", crash)
    with pytest.raises(RuntimeError):
        store.add(EVENT, [faces("p1", np.eye(3, DIM))])
    assert store.version(EVENT) == 1 and len(meta.faces.pending(EVENT)) == 3
    monkeypatch.setattr(meta.faces, "commit", commit)
    outcome = store.recover(EVENT)
    assert (outcome.completed, outcome.redone) == (1, 0)
    assert len(meta.faces.indexed_ids(EVENT)) == 3 and meta.faces.pending(EVENT) == []


def test_orphan_vectors_are_removed_by_recovery(stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, meta, _ = stack
    ids = store.add(EVENT, [faces("p1", np.eye(2, DIM)), faces("p2", np.eye(2, DIM, 2))])
    meta.photos.delete(EVENT, "p1")  # rows gone, the process died before the vectors followed
    outcome = store.recover(EVENT)
    assert outcome.orphans_removed == 2
    assert sorted(store.index(EVENT, DIM).ids().tolist()) == sorted(ids[1])


def test_delete_photo_removes_rows_vectors_and_older_snapshots(
        stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, meta, blobs = stack
    first = store.add(EVENT, [faces("p1", np.eye(2, DIM))])
    store.add(EVENT, [faces("p2", np.eye(2, DIM, 4))])
    assert store.delete_photo(EVENT, "p1") == first[0]
    assert not set(first[0]) & set(store.index(EVENT, DIM).ids().tolist())
    assert not set(first[0]) & set(meta.faces.indexed_ids(EVENT))
    snapshots = [k for k in blobs.list(index_prefix(EVENT)) if k.endswith(".faiss")]
    assert len(snapshots) == 1  # the vectors of p1 survive in no older snapshot


def test_readers_share_one_index_until_the_pointer_moves(stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, _, _ = stack
    store.add(EVENT, [faces("p1", np.eye(2, DIM))])
    shared = store.index(EVENT, DIM)
    assert store.index(EVENT, DIM) is shared
    store.add(EVENT, [faces("p2", np.eye(1, DIM, 5))])
    assert len(shared) == 2  # the reader's copy is never written to
    fresh = store.index(EVENT, DIM)
    assert fresh is not shared and len(fresh) == 3


def test_a_writer_does_not_block_readers(stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, _, _ = stack
    store.add(EVENT, [faces("p1", np.eye(2, DIM))])
    sizes: list[int] = []
    with store.lock(EVENT):  # e.g. a long ingest job
        reader = threading.Thread(target=lambda: sizes.append(len(store.index(EVENT, DIM))))
        reader.start()
        reader.join(timeout=30)
        assert not reader.is_alive()
    assert sizes == [2]


def test_drop_forgets_the_index(stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, _, blobs = stack
    store.add(EVENT, [faces("p1", np.eye(2, DIM))])
    store.index(EVENT, DIM)
    store.drop(EVENT)
    assert store.version(EVENT) is None and list(blobs.list(index_prefix(EVENT))) == []
    assert len(store.index(EVENT, DIM)) == 0


def _count_loads(store: FaceStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    loads: list[str] = []
    snapshots = store._snapshots
    original = snapshots.load_versioned

    def counting(event_id: str, dim: int | None, **kwargs: Any) -> LoadedIndex:
        loads.append(event_id)
        return original(event_id, dim, **kwargs)

    monkeypatch.setattr(snapshots, "load_versioned", counting)
    return loads


def test_concurrent_readers_share_one_load(stack: tuple[FaceStore, Metadata, LocalBlobStore],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, _ = stack
    store.add(EVENT, [faces("p1", np.eye(2, DIM))])
    loads = _count_loads(store, monkeypatch)
    results: list[EventIndex] = []
    threads = [threading.Thread(target=lambda: results.append(store.index(EVENT, DIM))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(loads) == 1 and len(results) == 4 and all(r is results[0] for r in results)


def test_read_cache_evicts_least_recently_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = Metadata(tmp_path / "meta.sqlite3")
    store = FaceStore(meta, LocalBlobStore(tmp_path / "blobs"), read_cache=2)
    for name in ("a", "b", "c"):
        event = f"ev{name * 14}"
        meta.events.create(event, name, "hash-" + name, None)
        meta.photos.add("p" + name, event, "sha", "x.jpg", original_key="k")
        store.add(event, [faces("p" + name, np.eye(1, DIM))])
    loads = _count_loads(store, monkeypatch)
    for name in ("a", "b", "a", "c", "a"):
        store.index(f"ev{name * 14}", DIM)
    assert loads == ["ev" + "a" * 14, "ev" + "b" * 14, "ev" + "c" * 14]  # "a" stayed hot
    store.index("ev" + "b" * 14, DIM)
    assert len(loads) == 4  # "b" was evicted when "c" arrived
    meta.close()


def _failing_save(store: FaceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(store._snapshots, "save", broken)


def test_a_failed_publish_leaves_nothing_for_the_next_write(
        stack: tuple[FaceStore, Metadata, LocalBlobStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store, meta, _ = stack
    with monkeypatch.context() as patch:
        _failing_save(store, patch)
        with pytest.raises(OSError):
            store.add(EVENT, [faces("p1", np.eye(2, DIM))])
    ids = store.add(EVENT, [faces("p2", np.eye(1, DIM, 3))])
    assert sorted(store.index(EVENT, DIM).ids().tolist()) == ids[0]  # p1's unpublished vectors are gone
    assert meta.photos.get(EVENT, "p1").status == "pending"  # redone by the next ingest


def test_a_failed_vector_removal_is_finished_by_the_next_write(
        stack: tuple[FaceStore, Metadata, LocalBlobStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, _ = stack
    first = store.add(EVENT, [faces("p1", np.eye(2, DIM)), faces("p2", np.eye(2, DIM, 2))])
    with monkeypatch.context() as patch:
        _failing_save(store, patch)
        with pytest.raises(OSError):
            store.delete_photo(EVENT, "p1")  # rows gone, vectors still published
    store.delete_photo(EVENT, "p2")
    assert len(store.index(EVENT, DIM)) == 0, f"vectors of {first} survived"


def test_an_event_deleted_during_a_write_gets_no_snapshot(stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, _, blobs = stack

    def delete_the_event(ids: list[list[int]]) -> None:  # between the rows and the publish
        store.drop(EVENT)
        blobs.delete_prefix(f"events/{EVENT}/")

    with pytest.raises(NotFoundError):
        store.add(EVENT, [faces("p1", np.eye(2, DIM))], link=delete_the_event)
    assert list(blobs.list(index_prefix(EVENT))) == []


def test_rekognition_faces_are_deleted_rows_first_then_vectors(
        stack: tuple[FaceStore, Metadata, LocalBlobStore]) -> None:
    store, meta, _ = stack
    uuids = ["00000000-0000-4000-8000-00000000000" + str(i) for i in range(2)]

    def link(ids: list[list[int]]) -> None:
        links = [RekFaceLink(u, f, "image", None) for u, f in zip(uuids, ids[0], strict=True)]
        meta.rekognition.add_faces(EVENT, links)

    ids = store.add(EVENT, [faces("p1", np.eye(2, DIM))], link=link)
    deleted = store.delete_rekognition_faces(EVENT, uuids[:1])
    assert [d.face_id for d in deleted] == ids[0][:1]
    assert store.index(EVENT, DIM).ids().tolist() == ids[0][1:]


def test_a_snapshot_published_by_another_process_is_written_on_not_over(tmp_path: Path) -> None:
    meta_a, meta_b = Metadata(tmp_path / "meta.sqlite3"), Metadata(tmp_path / "meta.sqlite3")
    blobs = LocalBlobStore(tmp_path / "blobs")
    meta_a.events.create(EVENT, "Test", "hash", None)
    for name in ("p1", "p2", "p3"):
        meta_a.photos.add(name, EVENT, "sha-" + name, name + ".jpg", original_key="k")
    one, other = FaceStore(meta_a, blobs), FaceStore(meta_b, blobs)
    first = one.add(EVENT, [faces("p1", np.eye(1, DIM))])
    second = other.add(EVENT, [faces("p2", np.eye(1, DIM, 1))])  # the pointer moves under `one`'s copy
    third = one.add(EVENT, [faces("p3", np.eye(1, DIM, 2))])
    assert sorted(other.index(EVENT, DIM).ids().tolist()) == sorted(first[0] + second[0] + third[0])
    meta_a.close()
    meta_b.close()


def test_hnsw_removals_are_tombstones_the_search_never_returns(tmp_path: Path) -> None:
    meta = Metadata(tmp_path / "meta.sqlite3")
    meta.events.create(EVENT, "Test", "hash", None)
    for name in ("p1", "p2"):
        meta.photos.add(name, EVENT, "sha-" + name, name + ".jpg", original_key="k")
    store = FaceStore(meta, LocalBlobStore(tmp_path / "blobs"), kind="hnsw")
    rng = np.random.default_rng(1)
    gone = store.add(EVENT, [faces("p1", rng.normal(size=(3, DIM)))])[0]
    kept = store.add(EVENT, [faces("p2", rng.normal(size=(20, DIM)))])[0]
    store.delete_photo(EVENT, "p1")
    index = store.index(EVENT, DIM)
    assert index.kind == "hnsw" and sorted(index.ids().tolist()) == sorted(kept)
    _, found = index.search(unit(rng.normal(size=(5, DIM))), 23)
    assert not set(found.ravel().tolist()) & set(gone)
    meta.close()


def test_a_deletion_waits_for_a_snapshot_being_published_then_removes_it(
        stack: tuple[FaceStore, Metadata, LocalBlobStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, blobs = stack
    saving, release = threading.Event(), threading.Event()
    real_save = store._snapshots.save

    def slow_save(*args: Any, **kwargs: Any) -> int:
        saving.set()
        if not release.wait(timeout=30):
            raise TimeoutError("never released")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(store._snapshots, "save", slow_save)
    writer = threading.Thread(target=store.add, args=(EVENT, [faces("p1", np.eye(2, DIM))]))
    writer.start()
    assert saving.wait(timeout=30)
    deleter = threading.Thread(target=store.drop, args=(EVENT,))
    deleter.start()  # it must wait for the publish in flight, or the snapshot would outlive it
    release.set()
    writer.join(timeout=30)
    deleter.join(timeout=30)
    assert not writer.is_alive() and not deleter.is_alive()
    assert list(blobs.list(index_prefix(EVENT))) == []


def test_an_index_loaded_while_its_event_is_deleted_is_not_cached(
        stack: tuple[FaceStore, Metadata, LocalBlobStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, _ = stack
    store.add(EVENT, [faces("p1", np.eye(2, DIM))])
    real_load = store._snapshots.load_versioned

    def load_then_delete(event_id: str, dim: int | None, **kwargs: Any) -> LoadedIndex:
        loaded = real_load(event_id, dim, **kwargs)
        store.drop(event_id)
        return loaded

    monkeypatch.setattr(store._snapshots, "load_versioned", load_then_delete)
    store.index(EVENT, DIM)
    assert EVENT not in store._read and store.dropped(EVENT)
    with pytest.raises(NotFoundError):
        store.recover(EVENT)


def test_regrouping_reads_the_writers_copy(stack: tuple[FaceStore, Metadata, LocalBlobStore],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, _ = stack
    ids = store.add(EVENT, [faces("p1", np.eye(3, DIM))])
    loads = _count_loads(store, monkeypatch)
    found, vectors = store.all_vectors(EVENT, DIM)
    assert sorted(found.tolist()) == sorted(ids[0]) and vectors.shape == (3, DIM)
    assert loads == []  # the ingest's own copy, already in memory: no snapshot read
