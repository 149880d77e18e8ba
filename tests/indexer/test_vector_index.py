"""EventIndex against brute-force numpy, and snapshot/pointer/cache behaviour of IndexStore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer.vector_index import EventIndex, IndexKind, IndexStore
from picsort_local.errors import InvalidRequestError
from storage.blobs import LocalBlobStore

DIM = 128
N = 5000


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    # Small problems: OpenMP threads only add contention on a shared CI machine.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    vectors = _unit(rng, N)
    ids = rng.permutation(10 * N)[:N].astype(np.int64)  # sparse, unordered face ids
    queries = _unit(rng, 100)
    return ids, vectors, queries


def _brute_force(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ vectors.T
    return ids[np.argsort(-scores, axis=1, kind="stable")[:, :k]]


def test_flat_matches_brute_force(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    index = EventIndex(DIM)
    index.add(ids, vectors)
    assert len(index) == N
    scores, found = index.search(queries, 10)
    assert scores.shape == found.shape == (100, 10)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(found, _brute_force(ids, vectors, queries, 10))
    np.testing.assert_allclose(scores, -np.sort(-(queries @ vectors.T), axis=1)[:, :10], atol=1e-5)


def test_hnsw_recall(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    index = EventIndex(DIM, "hnsw")
    index.add(ids, vectors)
    _, found = index.search(queries, 10)
    truth = _brute_force(ids, vectors, queries, 10)
    recall = np.mean([len(set(found[i]) & set(truth[i])) / 10 for i in range(len(queries))])
    assert recall >= 0.95, f"hnsw recall@10 = {recall:.3f} (ef_search={index.ef_search})"


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_removed_ids_never_returned(kind: IndexKind, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    n = 1000
    index = EventIndex(DIM, kind)
    index.add(ids[:n], vectors[:n])
    # Remove exactly the true nearest neighbours, the ids most likely to come back.
    nearest = np.unique(_brute_force(ids[:n], vectors[:n], queries, 3))
    removed = nearest[: min(nearest.size, 150)]  # < 20% of n: HNSW keeps them as tombstones
    assert index.remove(np.concatenate([removed, np.array([10 * N + 1])])) == removed.size
    assert index.remove(removed) == 0
    assert len(index) == n - removed.size
    if kind == "hnsw":
        assert index.tombstone_count == removed.size
    _, found = index.search(queries, 10)
    assert not np.isin(found, removed).any()
    assert (found >= 0).all(), "a search must still fill k slots from live vectors"
    keep = ~np.isin(ids[:n], removed)
    np.testing.assert_array_equal(np.sort(index.ids()), np.sort(ids[:n][keep]))


def test_hnsw_compacts_and_reuses_ids(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    index = EventIndex(DIM, "hnsw")
    index.add(ids[:200], vectors[:200])
    index.remove(ids[:10])
    assert index.tombstone_count == 10
    # Re-adding a tombstoned id forces a rebuild, so the stale vector cannot be found under it.
    index.add(ids[:1], vectors[500:501])
    assert index.tombstone_count == 0 and len(index) == 191
    _, found = index.search(vectors[:1], 1)
    assert found[0, 0] != ids[0]
    _, found = index.search(vectors[500:501], 1)
    assert found[0, 0] == ids[0]
    # Crossing the tombstone ratio rebuilds the graph as well.
    # ids[1:10] went with the rebuild above, so only ids[10:100] are still there to remove.
    assert index.remove(ids[1:100]) == 90
    assert index.tombstone_count == 0 and len(index) == 101
    assert not np.isin(index.search(queries, 20)[1], ids[1:100]).any()


def test_empty_slots_and_validation() -> None:
    rng = np.random.default_rng(0)
    index = EventIndex(8)
    scores, found = index.search(_unit(rng, 2, 8), 3)
    assert (found == -1).all() and np.isneginf(scores).all()
    index.add(np.array([5, 7]), _unit(rng, 2, 8))
    scores, found = index.search(_unit(rng, 1, 8), 4)
    assert sorted(found[0, :2]) == [5, 7] and (found[0, 2:] == -1).all() and np.isneginf(scores[0, 2:]).all()

    bad_calls = [
        lambda: index.add(np.array([1]), _unit(rng, 1, 9)),  # wrong dim
        lambda: index.add(np.array([1, 2]), _unit(rng, 1, 8)),  # count mismatch
        lambda: index.add(np.array([1]), np.ones((1, 8), dtype=np.int32)),  # not float
        lambda: index.add(np.array([1]), np.ones((1, 8), dtype=np.float32)),  # not normalised
        lambda: index.add(np.array([1]), np.full((1, 8), np.nan, dtype=np.float32)),
        lambda: index.add(np.array([-3]), _unit(rng, 1, 8)),  # negative id
        lambda: index.add(np.array([1.0]), _unit(rng, 1, 8)),  # float ids
        lambda: index.add(np.array([1, 1]), _unit(rng, 2, 8)),  # duplicate in batch
        lambda: index.add(np.array([5]), _unit(rng, 1, 8)),  # already present
        lambda: index.search(_unit(rng, 1, 8)[0], 3),  # 1-d query
        lambda: index.search(_unit(rng, 1, 8), 0),
        lambda: EventIndex(8, "ivf"),  # type: ignore[arg-type]  # a kind that does not exist, on purpose
    ]
    for call in bad_calls:
        with pytest.raises(ValueError):
            call()
    assert len(index) == 2


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_bytes_round_trip(kind: IndexKind, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    index = EventIndex(DIM, kind, ef_search=77)
    index.add(ids[:500], vectors[:500])
    index.remove(ids[:5])
    copy = EventIndex.from_bytes(index.to_bytes())
    assert (copy.kind, copy.dim, copy.ef_search, len(copy)) == (kind, DIM, 77, 495)
    for got, want in zip(copy.search(queries, 5), index.search(queries, 5), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        EventIndex.from_bytes(b"garbage")
    with pytest.raises(ValueError):
        EventIndex.from_bytes(index.to_bytes()[:40])


# --- snapshots -----------------------------------------------------------------------------------


def _small_index(seed: int, n: int = 20, dim: int = 16) -> EventIndex:
    rng = np.random.default_rng(seed)
    index = EventIndex(dim)
    index.add(np.arange(seed * 1000, seed * 1000 + n), _unit(rng, n, dim))
    return index


def test_snapshot_round_trip(tmp_path: Path, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    store = IndexStore(LocalBlobStore(tmp_path))
    assert store.current_version("e1") is None
    empty = store.load("e1", DIM, kind="hnsw")
    assert len(empty) == 0 and empty.kind == "hnsw"

    index = EventIndex(DIM, "hnsw")
    index.add(ids[:1000], vectors[:1000])
    index.remove(ids[:3])
    assert store.save("e1", index) == 1
    assert store.current_version("e1") == 1
    loaded = store.load("e1", DIM)
    assert loaded.kind == "hnsw" and len(loaded) == 997 and loaded.tombstone_count == 3
    for got, want in zip(loaded.search(queries, 10), index.search(queries, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        store.load("e1", 64)
    with pytest.raises(InvalidRequestError):
        store.load("../e1", DIM)


def test_pointer_semantics_and_pruning(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    store = IndexStore(blobs)
    assert store.save("ev", _small_index(1)) == 1

    # A snapshot written without moving the pointer (a crashed save) is invisible to readers...
    blobs.put("events/ev/index/000000000002.faiss", _small_index(2).to_bytes())
    assert store.current_version("ev") == 1
    assert set(store.load("ev", 16).ids()) == set(range(1000, 1020))
    # ...and never overwritten: the next save takes the version after it.
    assert store.save("ev", _small_index(3)) == 3
    assert set(store.load("ev", 16).ids()) == set(range(3000, 3020))

    for seed in (4, 5, 6):
        store.save("ev", _small_index(seed))
    assert blobs.list("events/ev/index/") == [
        "events/ev/index/000000000004.faiss",
        "events/ev/index/000000000005.faiss",
        "events/ev/index/000000000006.faiss",
        "events/ev/index/CURRENT",
    ]
    assert blobs.get("events/ev/index/CURRENT") == b"6"
    assert set(store.load("ev", 16).ids()) == set(range(6000, 6020))

    store.save("other", _small_index(7))
    store.delete("ev")
    assert store.current_version("ev") is None and blobs.list("events/ev/") == []
    assert store.current_version("other") == 1
