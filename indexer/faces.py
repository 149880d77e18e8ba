"""The one owner of an event's faces: face rows, their vectors, the index snapshots and recovery.

Nothing else writes face rows or index snapshots (a test checks it). Every writer of an event goes
through the event's writer lock (`lock`), which ingest jobs, the Rekognition API and host deletes all
share, and every write keeps the crash-safety order:

- add: face rows are inserted 'pending' (ids allocated) -> their vectors join a private copy of the
  index -> a new snapshot is published (pointer written last) -> rows and photos are committed;
- remove: rows are deleted first -> vectors second -> a snapshot that keeps no older version (a
  deleted face's vector must not live on in old snapshots);
- recover (start of every ingest, first write of an event in this process, and the next write after
  a failed one): pending rows whose ids the published index holds are committed, other pending work
  is redone, index ids without a row are removed. So a photo is indexed exactly once and no vector
  outlives its row;
- drop (event deletion): marks the event and removes its snapshots under the publish lock, without
  waiting for its writer; a write in flight then fails at its publish, and nothing of the event is
  cached, recovered or published again.

Readers get a shared, read-only index (`index`), reloaded only when the event's snapshot pointer
moved; writers work on a private copy kept while the pointer still names the version it came from.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from indexer.vector_index import EventIndex, IndexKind, IndexStore, LoadedIndex
from picsort_local.errors import NotFoundError
from picsort_local.types import FaceRecord
from storage.blobs import BlobStore
from storage.metadata import Metadata, RekFaceRow

logger = logging.getLogger(__name__)

READ_CACHE_EVENTS = 64  # events whose shared index stays in memory
WRITE_CACHE_EVENTS = 8  # recently written events whose private copy is kept for the next write


@dataclass(frozen=True)
class NewFaces:
    """The faces found in one photo, ready to be stored: records[i] has vectors[i]."""

    photo_id: str
    records: tuple[FaceRecord, ...]
    vectors: np.ndarray = field(compare=False, repr=False)  # (n, dim) float32, L2-normalised

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.records):
            raise ValueError(f"photo {self.photo_id}: {len(self.records)} faces but vectors of shape "
                             f"{self.vectors.shape}")


@dataclass(frozen=True)
class Recovery:
    completed: int = 0  # photos whose faces were published but not committed
    redone: int = 0  # photos set back to pending (half-done work dropped)
    orphans_removed: int = 0  # vectors without a face row

    @property
    def changed(self) -> bool:
        return bool(self.completed or self.redone or self.orphans_removed)


class EventLocks:
    """The one lock registry keyed by event. Writers of an event are serialised (re-entrant, so a
    writer may call another writing method); loaders of the shared index have their own lock, so a
    long ingest never blocks a search; publishing a snapshot and deleting the event's snapshots
    exclude each other (short), so a deleted event gets no snapshot from a write already in flight."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._writers: dict[str, threading.RLock] = {}
        self._loaders: dict[str, threading.Lock] = {}
        self._publishers: dict[str, threading.Lock] = {}

    def writer(self, event_id: str) -> threading.RLock:
        with self._guard:
            return self._writers.setdefault(event_id, threading.RLock())

    def loader(self, event_id: str) -> threading.Lock:
        with self._guard:
            return self._loaders.setdefault(event_id, threading.Lock())

    def publisher(self, event_id: str) -> threading.Lock:
        with self._guard:
            return self._publishers.setdefault(event_id, threading.Lock())


class FaceStore:
    """Face rows (through the metadata repositories), vectors and snapshots of every event."""

    def __init__(self, meta: Metadata, blobs: BlobStore, *, kind: IndexKind = "flat", use_gpu: bool = False,
                 read_cache: int = READ_CACHE_EVENTS) -> None:
        if read_cache < 1:
            raise ValueError(f"read_cache must be at least 1, got {read_cache}")
        self._meta = meta
        self._snapshots = IndexStore(blobs)
        self._kind: IndexKind = kind
        self._use_gpu = use_gpu
        self._locks = EventLocks()
        self._cache_guard = threading.Lock()
        self._read: OrderedDict[str, LoadedIndex] = OrderedDict()
        self._read_max = read_cache
        self._write: OrderedDict[str, LoadedIndex] = OrderedDict()
        self._recovered: set[str] = set()
        self._dropped: set[str] = set()  # deleted events: nothing of theirs is published or cached again

    # ---- locking -------------------------------------------------------------------------------
    @contextmanager
    def lock(self, event_id: str) -> Iterator[None]:
        """Hold the event's writer lock (re-entrant) for a sequence of writes."""
        with self._locks.writer(event_id):
            yield

    # ---- reading -------------------------------------------------------------------------------
    def index(self, event_id: str, dim: int) -> EventIndex:
        """The event's live index, shared: treat it as read-only. An empty index when there is none.
        Costs one small pointer read when it is cached."""
        with self._locks.loader(event_id):
            version = self._snapshots.current_version(event_id)
            with self._cache_guard:
                entry = self._read.get(event_id)
                if entry is not None and entry.version == version and entry.index.dim == dim:
                    self._read.move_to_end(event_id)
                    return entry.index
            # The version recorded is the one actually loaded, which may be newer than `version`.
            loaded = self._snapshots.load_versioned(event_id, dim, kind=self._kind, use_gpu=self._use_gpu)
            with self._cache_guard:
                if event_id in self._dropped:  # deleted while loading: do not keep its vectors in memory
                    return loaded.index
                self._read[event_id] = loaded
                self._read.move_to_end(event_id)
                while len(self._read) > self._read_max:
                    self._read.popitem(last=False)
            return loaded.index

    def vector(self, event_id: str, face_id: int, dim: int) -> np.ndarray | None:
        """The stored vector of one face (reconstructed from the index), or None."""
        return self.index(event_id, dim).vector(face_id)

    def all_vectors(self, event_id: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, vectors) of every indexed face, for re-clustering after a write: read from the
        writer's private copy (already in memory after an ingest), under the writer lock."""
        with self.lock(event_id):
            index = self._existing(event_id)
            if index is None:
                return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
            return index.all_vectors()

    def version(self, event_id: str) -> int | None:
        """The published snapshot version (None: the event has no index)."""
        return self._snapshots.current_version(event_id)

    # ---- writing -------------------------------------------------------------------------------
    def add(self, event_id: str, batch: Sequence[NewFaces],
            link: Callable[[list[list[int]]], None] | None = None) -> list[list[int]]:
        """Store the faces of several photos (pending -> snapshot -> commit); returns the new face ids
        per photo. `link` runs with those ids before anything is published (e.g. to give them
        Rekognition FaceIds in the same crash-safe window)."""
        with self.lock(event_id):
            self.recover_once(event_id)  # a failed earlier write must not leave its debris in this one
            ids = self._meta.faces.insert_pending(event_id, [(b.photo_id, b.records) for b in batch])
            with self._writing(event_id):
                if link is not None:
                    link(ids)
                flat = np.array([i for group in ids for i in group], dtype=np.int64)
                if flat.size:
                    vectors = np.concatenate([b.vectors for b in batch if len(b.records)])
                    index = self._writable(event_id, int(vectors.shape[1]))
                    index.add(flat, vectors.astype(np.float32, copy=False))
                    self._publish(event_id, index)
                self._meta.faces.commit(event_id, [b.photo_id for b in batch])
        return ids

    def delete_photo(self, event_id: str, photo_id: str) -> list[int]:
        """A photo's rows (faces, bodies, grants, hidden marks) then its vectors; returns the face ids."""
        with self.lock(event_id):
            self.recover_once(event_id)
            face_ids = self._meta.photos.delete(event_id, photo_id)
            self._remove_vectors(event_id, face_ids)
        return face_ids

    def delete_rekognition_faces(self, event_id: str, face_uuids: Sequence[str]) -> list[RekFaceRow]:
        """Faces by Rekognition FaceId (and image-less photos left without faces), then their vectors."""
        with self.lock(event_id):
            self.recover_once(event_id)
            deleted = self._meta.rekognition.delete_faces(event_id, face_uuids)
            self._remove_vectors(event_id, [d.face_id for d in deleted])
        return deleted

    def dropped(self, event_id: str) -> bool:
        """Whether the event is being (or was) deleted in this process."""
        with self._cache_guard:
            return event_id in self._dropped

    def _check_not_dropped(self, event_id: str) -> None:
        if self.dropped(event_id):
            raise NotFoundError(f"event {event_id!r} was deleted")

    def drop(self, event_id: str) -> None:
        """Forget the event's index: snapshots, pointer and cached copies (its rows go with the event).
        It does not wait for the writer lock (deleting an event must not wait for its ingest to end),
        only for a snapshot being published; from then on a write in flight fails at its publish
        (NotFoundError) instead of writing a snapshot of a deleted event."""
        with self._cache_guard:
            self._dropped.add(event_id)
        with self._locks.publisher(event_id):
            self._snapshots.delete(event_id)
        self._forget(event_id)

    def _remove_vectors(self, event_id: str, face_ids: Sequence[int]) -> None:
        if not face_ids:
            return
        with self._writing(event_id):
            index = self._existing(event_id)
            if index is not None:
                index.remove(np.array(face_ids, dtype=np.int64))
                self._publish(event_id, index, keep=1)  # no older snapshot keeps the deleted faces

    # ---- recovery ------------------------------------------------------------------------------
    def recover(self, event_id: str) -> Recovery:
        """Reconcile the rows with the published index after a crash (see the module docstring).
        NotFoundError for an event being deleted."""
        with self.lock(event_id):
            self._check_not_dropped(event_id)
            with self._writing(event_id):
                outcome = self._recover(event_id)
            with self._cache_guard:
                if event_id not in self._dropped:
                    self._recovered.add(event_id)
        if outcome.changed:
            logger.warning("recovered event %s: %d photos completed, %d redone, %d orphan vectors removed",
                           event_id, outcome.completed, outcome.redone, outcome.orphans_removed)
        return outcome

    def recover_once(self, event_id: str) -> None:
        """`recover`, the first time this process writes to the event (or after a failed write).
        NotFoundError for an event that does not exist (before any key is built from its id)."""
        with self.lock(event_id):
            self._check_not_dropped(event_id)
            if event_id not in self._recovered:
                self._meta.events.get(event_id)
                self.recover(event_id)

    def _recover(self, event_id: str) -> Recovery:
        meta = self._meta
        index = self._existing(event_id)
        in_index = set(index.ids().tolist()) if index is not None else set()
        pending = meta.faces.pending(event_id)
        done = sorted({p for f, p in pending if f in in_index})
        half = {p for f, p in pending if f not in in_index} - set(done)
        if done:
            meta.faces.commit(event_id, done)
        # 'processing' photos without faces in the index, and photos whose faces were half-saved
        stuck = {p.id for p in meta.photos.list(event_id, "processing")} - set(done)
        redo = sorted(half | stuck)
        if redo:
            meta.faces.reset_photos(event_id, redo)
        for photo in meta.photos.list(event_id, "pending"):
            if not photo.original_key:  # the row was written, the original never was: forget the row
                meta.photos.delete(event_id, photo.id)
        orphans = np.array(sorted(in_index - set(meta.faces.indexed_ids(event_id))), dtype=np.int64)
        if index is not None and orphans.size:
            index.remove(orphans)
            self._publish(event_id, index, keep=1)  # their faces were deleted: no older snapshot keeps them
        return Recovery(len(done), len(redo), int(orphans.size))

    # ---- private copies ------------------------------------------------------------------------
    @contextmanager
    def _writing(self, event_id: str) -> Iterator[None]:
        """A failed write leaves the private copy with vectors no snapshot has: drop it, and let the
        next write reconcile the rows against the published snapshot."""
        try:
            yield
        except BaseException:
            with self._cache_guard:
                self._write.pop(event_id, None)
            self._recovered.discard(event_id)
            raise

    def _writable(self, event_id: str, dim: int) -> EventIndex:
        """The private copy of the live index, or a new empty one of `dim` (caller holds the writer lock)."""
        found = self._existing(event_id)
        if found is None:
            found = EventIndex(dim, self._kind, use_gpu=self._use_gpu)
            self._keep(event_id, LoadedIndex(None, found))
        return found

    def _existing(self, event_id: str) -> EventIndex | None:
        """The private copy of the live index; None when the event has no snapshot (nothing to remove)."""
        current = self._snapshots.current_version(event_id)
        if current is None:
            return None
        with self._cache_guard:
            cached = self._write.get(event_id)
        if cached is None or cached.version != current:
            cached = self._snapshots.load_versioned(event_id, None, kind=self._kind, use_gpu=self._use_gpu)
            self._keep(event_id, cached)
        return cached.index

    def _publish(self, event_id: str, index: EventIndex, *, keep: int | None = None) -> None:
        with self._locks.publisher(event_id):
            if event_id in self._dropped:
                raise NotFoundError(f"event {event_id!r} was deleted")
            version = self._snapshots.save(event_id, index, keep=keep)
        self._keep(event_id, LoadedIndex(version, index))

    def _keep(self, event_id: str, loaded: LoadedIndex) -> None:
        with self._cache_guard:
            if event_id in self._dropped:
                return
            self._write[event_id] = loaded
            self._write.move_to_end(event_id)
            while len(self._write) > WRITE_CACHE_EVENTS:
                self._write.popitem(last=False)

    def _forget(self, event_id: str) -> None:
        with self._cache_guard:
            self._write.pop(event_id, None)
            self._read.pop(event_id, None)
        self._recovered.discard(event_id)
