"""Per-event FAISS index of face embeddings, with versioned, immutable snapshots in a BlobStore.

Vectors are L2-normalised float32 embeddings, so inner product = cosine similarity; ids are int64 face ids.

Snapshot layout for one event (all under `events/{event_id}/index/`):
- `{version:012d}.faiss`: an immutable snapshot (format below), never rewritten once the pointer names it;
- `CURRENT`: the text of the live version. It is written last, so a reader that follows it always finds a
  complete snapshot; a snapshot without a pointer update is invisible.

Snapshot format: magic `PSXIDX01`, a little-endian uint32 header length, a JSON header (format, kind, dim,
ef_search, ef_construction, tombstone count), the tombstoned ids as little-endian int64, then the bytes of
`faiss.serialize_index`.
"""

from __future__ import annotations

import functools
import json
import logging
import struct
import threading
from dataclasses import dataclass
from typing import Any, Literal

import faiss
import numpy as np

from picsort_local.errors import NotFoundError
from storage.blobs import BlobStore
from storage.keys import index_prefix

logger = logging.getLogger(__name__)

# faiss' bundled stubs cover only part of its API (no SearchParametersHNSW, HNSW attributes, GPU
# functions) and change between releases, so the module is used untyped rather than with ignores.
_faiss: Any = faiss

IndexKind = Literal["flat", "hnsw"]

HNSW_M = 32
DEFAULT_EF_SEARCH = 128  # recall@10 ~0.99 on 5k random 128-d vectors; raise for bigger events
DEFAULT_EF_CONSTRUCTION = 40
# Rebuild an HNSW index once this fraction of its vectors are tombstones (see EventIndex.remove).
COMPACT_TOMBSTONE_RATIO = 0.2
# Embeddings must already be unit length; this only catches "forgot to normalise" (raw norms are ~10-30),
# loose enough for vectors that went through float16.
NORM_TOLERANCE = 1e-2
# faiss' GPU k-selection is limited to k <= 2048; larger searches stay on the CPU.
GPU_MAX_K = 2048

_MAGIC = b"PSXIDX01"
_FORMAT_VERSION = 1
_HEADER_LEN = struct.Struct("<I")
KEEP_SNAPSHOTS = 3
_POINTER = "CURRENT"
_SNAPSHOT_SUFFIX = ".faiss"
# A reader that lost a race with pruning (it read a pointer, then the snapshot was deleted) re-reads the
# pointer this many times before giving up.
_LOAD_RETRIES = 3


@functools.lru_cache(maxsize=1)
def _gpu_count() -> int:
    # CPU-only wheels may lack the GPU symbols entirely; treat that as "no GPU".
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    if get_num_gpus is None or not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(get_num_gpus())
    except RuntimeError:
        return 0


CROWD_SAMPLE = 4096  # faces of an event a query's scores are normalised against


class EventIndex:
    """Exact (flat) or approximate (HNSW) inner-product index of one event's faces.

    Concurrent `search` calls are safe; `add` / `remove` must not run concurrently with anything else on
    the same object (`indexer.faces.FaceStore` shares its read copies for searches only and writes to
    private copies).

    HNSW cannot remove vectors from its graph (`IndexIDMap2.remove_ids` raises). Removed ids are
    therefore kept as tombstones: they are excluded *inside* the graph search through an IDSelector (so a
    search still returns k live results, not k minus the removed ones), persisted in the snapshot, and the
    graph is rebuilt without them once they exceed COMPACT_TOMBSTONE_RATIO of the vectors, which bounds
    the wasted memory and the search slowdown. Flat indexes remove for real.
    """

    def __init__(
        self,
        dim: int,
        kind: IndexKind = "flat",
        *,
        ef_search: int = DEFAULT_EF_SEARCH,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        use_gpu: bool = False,
    ) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if kind not in ("flat", "hnsw"):
            raise ValueError(f"kind must be 'flat' or 'hnsw', got {kind!r}")
        if ef_search <= 0 or ef_construction <= 0:
            raise ValueError("ef_search and ef_construction must be positive")
        self._dim = dim
        self._kind: IndexKind = kind
        self._ef_search = ef_search
        self._ef_construction = ef_construction
        self._use_gpu = use_gpu
        self._index: Any = self._new_faiss_index()
        self._tombstones: set[int] = set()
        # Built on first search after the tombstones change; rebuilding it per search costs O(tombstones).
        self._tombstone_selector: Any = None
        self._gpu_lock = threading.Lock()
        self._gpu_index: Any = None
        self._gpu_resources: Any = None
        self._crowd: np.ndarray | None = None  # see crowd_sample()

    def _new_faiss_index(self) -> Any:
        if self._kind == "flat":
            return _faiss.IndexIDMap2(_faiss.IndexFlatIP(self._dim))
        hnsw = _faiss.IndexHNSWFlat(self._dim, HNSW_M, _faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self._ef_construction
        hnsw.hnsw.efSearch = self._ef_search
        return _faiss.IndexIDMap2(hnsw)

    # --- properties ------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def kind(self) -> IndexKind:
        return self._kind

    @property
    def ef_search(self) -> int:
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if value <= 0:
            raise ValueError(f"ef_search must be positive, got {value}")
        self._ef_search = value

    @property
    def use_gpu(self) -> bool:
        return self._use_gpu

    @property
    def tombstone_count(self) -> int:
        return len(self._tombstones)

    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self._tombstones)

    def ids(self) -> np.ndarray:
        """The live ids, in insertion order."""
        stored = self._stored_ids()
        if not self._tombstones:
            return stored
        return stored[~np.isin(stored, self._tombstone_array())]

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every live entry, read from the flat storage in one call (for
        re-clustering without keeping a second copy of the embeddings)."""
        stored = self._stored_ids()
        total = int(self._index.ntotal)
        vectors = (
            np.asarray(self._index.index.reconstruct_n(0, total), dtype=np.float32)
            if total
            else np.zeros((0, self._dim), np.float32)
        )
        if self._tombstones:
            live = ~np.isin(stored, self._tombstone_array())
            return stored[live], vectors[live]
        return stored, vectors

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these live ids, (n, dim) float32, in the order given. RuntimeError
        when any of them is not a live id."""
        keys = np.ascontiguousarray(ids, dtype=np.int64)
        if keys.size == 0:
            return np.zeros((0, self._dim), np.float32)
        if self._tombstones and np.isin(keys, self._tombstone_array()).any():
            raise RuntimeError("some ids were removed")  # as faiss does for ids it does not hold
        return np.asarray(self._index.reconstruct_batch(keys), dtype=np.float32).reshape(-1, self._dim)

    def vector(self, face_id: int) -> np.ndarray | None:
        """The stored vector of one live id, or None."""
        if int(face_id) in self._tombstones:
            return None
        try:
            return self.vectors(np.array([face_id], np.int64))[0]
        except RuntimeError:  # faiss: id not found
            return None

    def crowd_sample(self) -> np.ndarray:
        """Up to CROWD_SAMPLE live vectors spread evenly over the event (the same ones until the index
        changes): the event's crowd, against which the search normalises a query's scores."""
        sample = self._crowd
        if sample is None:
            stored = self._stored_ids()
            if self._tombstones:
                stored = stored[~np.isin(stored, self._tombstone_array())]
            spread = np.linspace(0, len(stored) - 1, min(CROWD_SAMPLE, len(stored))).astype(np.int64)
            picks = stored[np.unique(spread)] if len(stored) else stored
            sample = self.vectors(picks)
            self._crowd = sample
        return sample

    def _stored_ids(self) -> np.ndarray:
        return _faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def _tombstone_array(self) -> np.ndarray:
        return np.fromiter(self._tombstones, dtype=np.int64, count=len(self._tombstones))

    # --- validation ------------------------------------------------------------------------------

    def _check_vectors(self, vectors: np.ndarray, what: str) -> np.ndarray:
        if not isinstance(vectors, np.ndarray):
            raise TypeError(f"{what} must be a numpy array, got {type(vectors).__name__}")
        if vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise ValueError(f"{what} must have shape (n, {self._dim}), got {vectors.shape}")
        if not np.issubdtype(vectors.dtype, np.floating):
            raise ValueError(f"{what} must be floating point (float32 preferred), got {vectors.dtype}")
        out = np.ascontiguousarray(vectors, dtype=np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        norms = np.linalg.norm(out, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
        if bad.size:
            raise ValueError(
                f"{what} must be L2-normalised: row {int(bad[0])} has norm {float(norms[bad[0]]):.4f} "
                f"({bad.size} rows off by more than {NORM_TOLERANCE})"
            )
        return out

    @staticmethod
    def _check_ids(ids: np.ndarray) -> np.ndarray:
        if not isinstance(ids, np.ndarray):
            raise TypeError(f"ids must be a numpy array, got {type(ids).__name__}")
        if ids.ndim != 1:
            raise ValueError(f"ids must be one-dimensional, got shape {ids.shape}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be integers, got {ids.dtype}")
        out = np.ascontiguousarray(ids, dtype=np.int64)
        # -1 is faiss' "no result" marker, so negative ids would be indistinguishable from empty slots.
        if out.size and int(out.min()) < 0:
            raise ValueError("ids must be non-negative")
        return out

    # --- mutation --------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new ids. Adding an id that is already present is an error (remove it first)."""
        self._crowd = None
        id_arr = self._check_ids(ids)
        vec_arr = self._check_vectors(vectors, "vectors")
        if id_arr.shape[0] != vec_arr.shape[0]:
            raise ValueError(f"got {id_arr.shape[0]} ids for {vec_arr.shape[0]} vectors")
        if id_arr.size == 0:
            return
        if np.unique(id_arr).size != id_arr.size:
            raise ValueError("ids contain duplicates")
        # IndexIDMap2 accepts duplicate ids silently but its reverse map then keeps only one of them.
        # isin(stored, new) is a few vectorised passes over the stored ids when the batch is small.
        stored = self._stored_ids()
        clashes = stored[np.isin(stored, id_arr)]
        if clashes.size:
            live = clashes[~np.isin(clashes, self._tombstone_array())] if self._tombstones else clashes
            if live.size:
                raise ValueError(f"{live.size} ids already in the index, e.g. {int(live[0])}")
            # Only tombstoned ids clash: their vectors are still in the HNSW graph under these ids, so
            # drop them before the ids are reused.
            self.compact()
        self._index.add_with_ids(vec_arr, id_arr)
        self._invalidate_gpu()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ids are ignored); returns how many were removed."""
        self._crowd = None
        id_arr = np.unique(self._check_ids(ids))
        if id_arr.size == 0:
            return 0
        if self._kind == "flat":
            removed = int(self._index.remove_ids(_faiss.IDSelectorBatch(id_arr)))
        else:
            stored = self._stored_ids()
            present = stored[np.isin(stored, id_arr)]
            if self._tombstones:
                present = present[~np.isin(present, self._tombstone_array())]
            self._tombstones.update(int(i) for i in present)
            self._tombstone_selector = None
            removed = int(present.size)
            if self._tombstones and len(self._tombstones) >= COMPACT_TOMBSTONE_RATIO * self._index.ntotal:
                self.compact()
        if removed:
            self._invalidate_gpu()
        return removed

    def compact(self) -> None:
        """Rebuild an HNSW index without its tombstones (no-op for flat or when there are none)."""
        self._crowd = None
        if not self._tombstones:
            return
        hnsw = _faiss.downcast_index(self._index.index)
        stored_ids = self._stored_ids()
        # The HNSW storage keeps vectors in insertion order, the same order as the id map.
        vectors = _faiss.downcast_index(hnsw.storage).reconstruct_n(0, int(hnsw.ntotal))
        keep = ~np.isin(stored_ids, self._tombstone_array())
        logger.debug("compacting hnsw index: %d of %d vectors kept", int(keep.sum()), stored_ids.size)
        rebuilt = self._new_faiss_index()
        if keep.any():
            rebuilt.add_with_ids(np.ascontiguousarray(vectors[keep]), np.ascontiguousarray(stored_ids[keep]))
        self._index = rebuilt
        self._tombstones = set()
        self._tombstone_selector = None
        self._invalidate_gpu()

    # --- search ----------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product for each query row.

        Returns (scores float32 (nq, k), ids int64 (nq, k)), best first. When fewer than k vectors
        match, the remaining slots have id -1 and score -inf.
        """
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        q = self._check_vectors(queries, "queries")
        nq = q.shape[0]
        if nq == 0 or len(self) == 0:
            return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)

        gpu = self._gpu_for(k)
        if gpu is not None:
            scores, ids = gpu.search(q, k)
        elif self._kind == "hnsw":
            # A fresh params object per call: IndexIDMap temporarily rewrites its selector while searching.
            params = _faiss.SearchParametersHNSW()
            params.efSearch = max(self._ef_search, k)
            if self._tombstones:
                selector = self._tombstone_selector
                if selector is None:
                    # Read-only while searching, so concurrent searches share it (a race builds it twice).
                    selector = _faiss.IDSelectorNot(_faiss.IDSelectorBatch(self._tombstone_array()))
                    self._tombstone_selector = selector
                params.sel = selector
            scores, ids = self._index.search(q, k, params=params)
        else:
            scores, ids = self._index.search(q, k)

        scores = np.asarray(scores, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        scores[ids < 0] = -np.inf  # faiss fills empty slots with -FLT_MAX; -inf is unambiguous
        return scores, ids

    def _gpu_for(self, k: int) -> Any:
        """A GPU copy of a flat index when asked for and available, else None (search on the CPU)."""
        # HNSW has no GPU implementation in faiss; tombstone filtering is CPU-side too.
        if not self._use_gpu or self._kind != "flat" or k > GPU_MAX_K or _gpu_count() == 0:
            return None
        with self._gpu_lock:
            if self._gpu_index is None:
                if self._gpu_resources is None:
                    self._gpu_resources = _faiss.StandardGpuResources()
                logger.debug("cloning index of %d vectors to GPU 0", len(self))
                self._gpu_index = _faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
            return self._gpu_index

    def _invalidate_gpu(self) -> None:
        # The clone is a copy: rebuild it lazily on the next search rather than mirroring every change.
        with self._gpu_lock:
            self._gpu_index = None

    # --- serialisation ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        header = json.dumps(
            {
                "format": _FORMAT_VERSION,
                "kind": self._kind,
                "dim": self._dim,
                "ef_search": self._ef_search,
                "ef_construction": self._ef_construction,
                "tombstones": len(self._tombstones),
            },
            sort_keys=True,
        ).encode()
        tombstones = np.sort(self._tombstone_array()).astype("<i8").tobytes()
        body = _faiss.serialize_index(self._index).tobytes()
        return b"".join((_MAGIC, _HEADER_LEN.pack(len(header)), header, tombstones, body))

    @classmethod
    def from_bytes(cls, data: bytes, *, use_gpu: bool = False) -> EventIndex:
        view = memoryview(data)
        fixed = len(_MAGIC) + _HEADER_LEN.size
        if len(view) < fixed or bytes(view[: len(_MAGIC)]) != _MAGIC:
            raise ValueError("not a picsort index snapshot (bad magic)")
        (header_len,) = _HEADER_LEN.unpack_from(view, len(_MAGIC))
        if fixed + header_len > len(view):
            raise ValueError("truncated index snapshot (header)")
        try:
            header = json.loads(bytes(view[fixed : fixed + header_len]))
            fmt, kind, dim = int(header["format"]), header["kind"], int(header["dim"])
            n_tomb = int(header["tombstones"])
            ef_search = int(header["ef_search"])
            ef_construction = int(header["ef_construction"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"corrupt index snapshot header: {exc}") from None
        if fmt != _FORMAT_VERSION:
            raise ValueError(f"unsupported index snapshot format {fmt}")
        offset = fixed + header_len
        tomb_end = offset + 8 * n_tomb
        if n_tomb < 0 or tomb_end > len(view):
            raise ValueError("truncated index snapshot (tombstones)")
        tombstones = np.frombuffer(view[offset:tomb_end], dtype="<i8")

        index = cls(dim, kind, ef_search=ef_search, ef_construction=ef_construction, use_gpu=use_gpu)
        try:
            loaded = _faiss.deserialize_index(np.frombuffer(view[tomb_end:], dtype=np.uint8))
        except RuntimeError as exc:
            raise ValueError(f"corrupt index snapshot body: {exc}") from None
        inner_type = _faiss.IndexHNSWFlat if kind == "hnsw" else _faiss.IndexFlatIP
        if (
            not isinstance(loaded, _faiss.IndexIDMap2)
            or not isinstance(_faiss.downcast_index(loaded.index), inner_type)
            or int(loaded.d) != dim
            or loaded.metric_type != _faiss.METRIC_INNER_PRODUCT
        ):
            raise ValueError(f"index snapshot body does not match its header (kind={kind}, dim={dim})")
        if kind == "hnsw":
            # efSearch is not part of faiss' serialised HNSW; the header carries it.
            _faiss.downcast_index(loaded.index).hnsw.efSearch = ef_search
        index._index = loaded
        index._tombstones = {int(i) for i in tombstones}
        return index


# --- snapshots in a blob store -----------------------------------------------------------------


@dataclass(frozen=True)
class LoadedIndex:
    """An index together with the snapshot version it came from (None: the event has no index yet)."""

    version: int | None
    index: EventIndex


def _snapshot_key(event_id: str, version: int) -> str:
    return f"{index_prefix(event_id)}{version:012d}{_SNAPSHOT_SUFFIX}"


def _parse_snapshot_version(key: str, prefix: str) -> int | None:
    name = key[len(prefix) :]
    stem = name[: -len(_SNAPSHOT_SUFFIX)]
    if not name.endswith(_SNAPSHOT_SUFFIX) or len(stem) != 12 or not (stem.isascii() and stem.isdigit()):
        return None  # not ours (or a sub-folder): ignore
    return int(stem)


class IndexStore:
    """Versioned snapshots of each event's index in a BlobStore.

    It does not lock: writers of one event must be serialised by the caller (`indexer.faces.FaceStore`,
    the only writer, holds the event's writer lock around every save and delete). Writers in different
    processes must be serialised too (one indexing worker per event); otherwise two could pick the same
    version number and the later snapshot would replace the earlier one.
    """

    def __init__(self, blobs: BlobStore, keep: int = KEEP_SNAPSHOTS) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self._blobs = blobs
        self._keep = keep

    def current_version(self, event_id: str) -> int | None:
        key = index_prefix(event_id) + _POINTER
        try:
            text = self._blobs.get(key).decode("ascii", errors="replace").strip()
        except NotFoundError:
            return None
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"corrupt index pointer {key!r}: {text[:40]!r}")
        return int(text)

    def _snapshot_versions(self, event_id: str) -> list[int]:
        prefix = index_prefix(event_id)
        versions = (_parse_snapshot_version(key, prefix) for key in self._blobs.list(prefix))
        return sorted(v for v in versions if v is not None)

    def save(self, event_id: str, index: EventIndex, *, keep: int | None = None) -> int:
        """Write a new snapshot, move the pointer to it, then prune old snapshots. Returns the version.

        `keep` (this snapshot included) overrides the store's setting for this save: 1 after removing
        faces, so a deleted face's embedding does not live on in the older snapshots."""
        keep = self._keep if keep is None else keep
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        data = index.to_bytes()
        existing = self._snapshot_versions(event_id)
        current = self.current_version(event_id)
        # Past any snapshot already on storage, even one whose pointer update never happened: snapshot
        # files are immutable, so a crashed save's leftovers are never overwritten.
        version = max([0, current or 0, *existing]) + 1
        self._blobs.put(_snapshot_key(event_id, version), data, "application/octet-stream")
        self._blobs.put(index_prefix(event_id) + _POINTER, str(version).encode("ascii"), "text/plain")
        # Pruned only after the pointer moved, so the live snapshot is never among the deleted.
        older = [v for v in existing if v < version]
        for old in older[: max(0, len(older) - (keep - 1))]:
            self._blobs.delete(_snapshot_key(event_id, old))
        logger.debug("saved index of event %s: version %d, %d vectors", event_id, version, len(index))
        return version

    def load_versioned(
        self, event_id: str, dim: int | None, *, kind: IndexKind = "flat", use_gpu: bool = False
    ) -> LoadedIndex:
        """The live snapshot with its version; an empty index of `kind` (version None) when there is none.
        `dim` None accepts the snapshot's dimension (and finds nothing to return without a snapshot)."""
        for _ in range(_LOAD_RETRIES):
            version = self.current_version(event_id)
            if version is None:
                if dim is None:
                    raise NotFoundError(f"event {event_id!r} has no index")
                return LoadedIndex(None, EventIndex(dim, kind, use_gpu=use_gpu))
            try:
                data = self._blobs.get(_snapshot_key(event_id, version))
            except NotFoundError:
                # The pointer moved on and pruning removed our snapshot in between: read the pointer again.
                continue
            index = EventIndex.from_bytes(data, use_gpu=use_gpu)
            if dim is not None and index.dim != dim:
                raise ValueError(f"index of event {event_id!r} has dim {index.dim}, expected {dim}")
            return LoadedIndex(version, index)
        raise NotFoundError(f"index snapshot of event {event_id!r} kept disappearing while loading")

    def load(self, event_id: str, dim: int, *, kind: IndexKind = "flat", use_gpu: bool = False) -> EventIndex:
        return self.load_versioned(event_id, dim, kind=kind, use_gpu=use_gpu).index

    def delete(self, event_id: str) -> None:
        prefix = index_prefix(event_id)
        # Pointer first: readers then see "no index" rather than a pointer to a deleted snapshot.
        self._blobs.delete(prefix + _POINTER)
        self._blobs.delete_prefix(prefix)
