"""Event ingest: store originals privately, detect + embed (batched, decoding overlapped), outfit
colours, derived images, index snapshot, then persons.

Crash safety (kill -9 at any point, then run again):
1. a photo row is inserted 'pending' (unique per event by sha256: re-adding is a no-op), then the
   original is stored (write-then-rename);
2. every checkpoint: the faces of a group of photos are inserted 'pending' in one transaction (ids
   allocated), their vectors added and a new index snapshot published (pointer written last),
   then faces and photos are marked indexed in one transaction;
3. `recover` at the start of every run reconciles: pending faces whose ids are in the published
   index are marked indexed; other pending faces are dropped and their photos redone; index ids
   unknown to the database are removed. So every photo is indexed exactly once, no orphan vectors.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from indexer import grouping
from indexer.bodies import faceless_people
from indexer.derived import derived_images, encode_jpeg
from indexer.events import Catalog
from indexer.faces import NewFaces, Recovery
from indexer.outfit import outfit_colours
from models.engine import FaceEngine, PhotoFaces
from models.pipeline import PipelineResult, analyze_stream
from picsort_local.errors import InvalidImageError, PicsortError
from picsort_local.images import IMAGE_SUFFIXES, DecodedImage
from picsort_local.settings import IngestSettings
from storage.keys import person_thumb_key, persons_prefix, photo_key
from storage.metadata import Body, FaceRow

logger = logging.getLogger(__name__)


def find_images(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Expand files and folders (recursively) into image files; also return what was skipped."""
    found: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file():
                    (found if child.suffix.lower() in IMAGE_SUFFIXES else skipped).append(child)
        else:
            found.append(path)  # named explicitly: try it, a bad file gets a recorded reason
    return found, skipped


@dataclass
class IngestReport:
    added: int = 0
    duplicates: int = 0
    indexed: int = 0
    failed: int = 0
    faces: int = 0
    persons: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Registered:
    """What became of one file handed to `register` (one per file, in order)."""

    filename: str
    status: Literal["accepted", "duplicate", "rejected"]
    photo_id: str | None = None
    error: str | None = None


class Ingestor:
    """Runs an event's photos through the engine into the face store. `ingest` is the only settings
    group it reads (checkpoint size, faceless bodies); `workers` comes from the composition root, which
    sized the engine's sessions for it (`models.runtime.plan_parallelism`)."""

    def __init__(self, catalog: Catalog, engine: FaceEngine, ingest: IngestSettings, *,
                 workers: int = 1, chunk: int = 8) -> None:
        self.catalog = catalog
        self.engine = engine
        self.checkpoint_photos = ingest.checkpoint_photos
        self.bodies = ingest.bodies
        self.workers = workers
        self.chunk = chunk

    @property
    def dim(self) -> int:
        return int(self.engine.embedder.dim or 128)

    # ---- recovery ------------------------------------------------------------------------------
    def recover(self, event_id: str) -> Recovery:
        """Reconcile rows and index after a crash (the face store's recovery)."""
        return self.catalog.faces.recover(event_id)

    # ---- ingest --------------------------------------------------------------------------------
    def ingest_paths(self, event_id: str, paths: list[Path], *, progress: Callable[[int], None] | None = None,
                     regroup: bool = True) -> IngestReport:
        return self.ingest(event_id, [(p.name, p.read_bytes) for p in paths], progress=progress,
                           regroup=regroup)

    def ingest(self, event_id: str, items: list[tuple[str, Callable[[], bytes]]], *,
               progress: Callable[[int], None] | None = None, regroup: bool = True) -> IngestReport:
        """Add photos given as (filename, read-bytes) pairs. Bad photos are recorded, the rest go on."""
        started = time.perf_counter()
        self.catalog.meta.events.get(event_id)
        report = IngestReport()
        with self.catalog.faces.lock(event_id):
            self.recover(event_id)
        self.register(event_id, items, report, progress)
        self.process_pending(event_id, report, progress=progress, regroup=regroup, recovered=True)
        report.seconds = time.perf_counter() - started
        return report

    def register(self, event_id: str, items: list[tuple[str, Callable[[], bytes]]], report: IngestReport,
                 progress: Callable[[int], None] | None = None) -> list[Registered]:
        """Step 1, cheap and sequential: store each original and its 'pending' row. Once this returns,
        the photos survive a crash (the next run picks up pending photos). One result per item."""
        meta, blobs = self.catalog.meta, self.catalog.blobs
        results: list[Registered] = []
        for filename, read in items:
            try:
                data = read()
            except OSError as exc:
                report.failed += 1
                report.errors.append((filename, f"cannot read: {exc}"))
                results.append(Registered(filename, "rejected", error=f"cannot read: {exc}"))
                if progress:
                    progress(1)
                continue
            digest = hashlib.sha256(data).hexdigest()
            existing = meta.photos.by_sha(event_id, digest)
            if existing is not None and existing.status in ("indexed", "failed"):
                report.duplicates += 1
                results.append(Registered(filename, "duplicate", existing.id))
                if progress:
                    progress(1)
                continue
            if existing is not None:  # pending from an interrupted run: it is picked up below
                results.append(Registered(filename, "accepted", existing.id))
                continue
            # The original is written first and the row (with its key) second, so there is never a
            # row without its original; a crash in between leaves only a file under the event's
            # prefix, which the event's deletion removes.
            photo_id = secrets.token_hex(8)
            key = photo_key(event_id, photo_id, "originals")
            blobs.put(key, data, mimetypes.guess_type(filename)[0])
            row, created = meta.photos.add(photo_id, event_id, digest, Path(filename).name[:255],
                                           original_key=key)
            if not created:  # the same bytes arrived concurrently: keep the first copy
                blobs.delete(key)
                report.duplicates += 1
                results.append(Registered(filename, "duplicate", row.id))
                continue
            report.added += 1
            results.append(Registered(filename, "accepted", row.id))
        return results

    def process_pending(self, event_id: str, report: IngestReport | None = None, *,
                        progress: Callable[[int], None] | None = None, regroup: bool = True,
                        recovered: bool = False) -> IngestReport:
        """Step 2: analyse every pending photo of the event (new ones and any left by a crash)."""
        with self.catalog.faces.lock(event_id):
            return self._process_pending(event_id, report, progress=progress, regroup=regroup,
                                         recovered=recovered)

    def _process_pending(self, event_id: str, report: IngestReport | None, *,
                         progress: Callable[[int], None] | None, regroup: bool,
                         recovered: bool) -> IngestReport:
        started = time.perf_counter()
        report = report or IngestReport()
        if not recovered:
            self.catalog.meta.events.get(event_id)  # NotFoundError before any recovery work
            self.recover(event_id)
        event = self.catalog.meta.events.get(event_id)
        watermark = event.watermark or ""
        meta, blobs = self.catalog.meta, self.catalog.blobs
        todo: list[tuple[str, Callable[[], bytes]]] = [
            (row.id, _reader(blobs, row.original_key))
            for row in meta.photos.list(event_id, "pending") if row.original_key
        ]

        # 2. analyse in a pipeline, checkpoint every N photos
        staged: list[NewFaces] = []

        def postprocess(image: DecodedImage, faces: PhotoFaces) -> dict[str, Any]:
            return self._derive(image, faces, watermark)

        for result in analyze_stream(self.engine, todo, workers=self.workers, chunk=self.chunk,
                                     postprocess=postprocess):
            if result.error is not None or result.image is None or result.faces is None:
                reason = _reason(result.error)
                meta.photos.set_failed(result.key, reason)
                report.failed += 1
                report.errors.append((result.key, reason))
            else:
                staged.append(self._stage(event_id, result))
            if progress:
                progress(1)
            if len(staged) >= self.checkpoint_photos:
                report.indexed += self._checkpoint(event_id, staged)
                report.faces += sum(len(s.records) for s in staged)
                staged = []
        if staged:
            report.indexed += self._checkpoint(event_id, staged)
            report.faces += sum(len(s.records) for s in staged)
        if regroup and (report.indexed or not meta.persons.list(event_id)):
            report.persons = self.regroup(event_id)
        report.seconds = time.perf_counter() - started
        return report

    def _derive(self, image: DecodedImage, faces: PhotoFaces, watermark: str) -> dict[str, Any]:
        """Per-photo CPU work, run in the pipeline's worker threads."""
        boxes = faces.detections.boxes * image.scale
        bodies = []
        if self.bodies:
            for box, outfit in faceless_people(image.pixels, boxes):
                x1, y1, x2, y2 = (float(v) / image.scale for v in box)
                bodies.append(Body((x1, y1, x2, y2), outfit))
        return {
            "derived": derived_images(image.pixels, watermark),
            "outfits": outfit_colours(image.pixels, boxes),
            "bodies": bodies,
        }

    def _stage(self, event_id: str, result: PipelineResult[str]) -> NewFaces:
        image, faces, extra = result.image, result.faces, result.extra
        if image is None or faces is None or extra is None:  # narrowed by the caller; keeps mypy honest
            raise PicsortError("internal: staged a failed photo")
        blobs, meta = self.catalog.blobs, self.catalog.meta
        for kind, data in extra["derived"].items():
            blobs.put(photo_key(event_id, result.key, kind), data, "image/jpeg")
        meta.photos.set_stored(result.key, photo_key(event_id, result.key, "originals"),
                               image.original.width, image.original.height)
        meta.photos.add_bodies(event_id, result.key, extra["bodies"])
        return NewFaces(result.key, tuple(faces.records(extra["outfits"])), faces.embeddings)

    def _checkpoint(self, event_id: str, staged: list[NewFaces]) -> int:
        self.catalog.faces.add(event_id, staged)
        return len(staged)

    # ---- persons -------------------------------------------------------------------------------
    def regroup(self, event_id: str) -> int:
        """Full re-clustering of the event's faces into persons, with a representative face each."""
        ids, vectors = self.catalog.faces.all_vectors(event_id, self.dim)
        if ids.size == 0:
            self.catalog.meta.persons.replace(event_id, [])
            return 0
        rows = {f.id: f for f in self.catalog.meta.faces.get(event_id, ids.tolist())}
        photo_of = {fid: row.photo_id for fid, row in rows.items()}
        photos = np.array([hash(photo_of.get(int(i), str(i))) for i in ids], dtype=np.int64)
        result = grouping.cluster(vectors, photos=photos)
        order = np.argsort(result.labels, kind="stable")
        labels_sorted = result.labels[order]
        bounds = np.flatnonzero(np.diff(labels_sorted)) + 1
        clusters = []
        for members in np.split(ids[order], bounds):
            member_ids = [int(m) for m in members if int(m) in rows]
            if not member_ids:
                continue
            best = max(member_ids, key=lambda fid: rows[fid].record.rank())
            clusters.append((member_ids, best))
        person_ids = self.catalog.meta.persons.replace(event_id, clusters)
        self._store_person_thumbs(event_id, clusters, person_ids, rows)
        return len(person_ids)

    def _store_person_thumbs(self, event_id: str, clusters: list[tuple[list[int], int]],
                             person_ids: list[int], rows: dict[int, FaceRow]) -> None:
        """Representative face crop per person, cut from the photo's preview."""
        from picsort_local.images import decode_image

        blobs = self.catalog.blobs
        blobs.delete_prefix(persons_prefix(event_id))
        previews: dict[str, DecodedImage] = {}
        for (_, rep), pid in zip(clusters, person_ids, strict=True):
            face = rows[rep]
            photo = self.catalog.meta.photos.get(event_id, face.photo_id)
            try:
                preview = previews.get(photo.id) or decode_image(
                    blobs.get(photo_key(event_id, photo.id, "preview")))
            except PicsortError:
                continue
            previews[photo.id] = preview
            scale = preview.pixels.shape[1] / max(photo.width or preview.pixels.shape[1], 1)
            x1, y1, x2, y2 = (v * scale for v in face.record.box.as_tuple())
            m = 0.25 * (y2 - y1)
            h, w = preview.pixels.shape[:2]
            crop = preview.pixels[int(max(0, y1 - m)):int(min(h, y2 + m)),
                                  int(max(0, x1 - m)):int(min(w, x2 + m))]
            if crop.size:
                blobs.put(person_thumb_key(event_id, pid), encode_jpeg(crop), "image/jpeg")


def _reader(blobs: Any, key: str) -> Callable[[], bytes]:
    return lambda: bytes(blobs.get(key))


def _reason(error: PicsortError | None) -> str:
    if isinstance(error, InvalidImageError):
        return f"{error.reason}: {error.message}"
    return error.message if error is not None else "unknown error"


__all__ = ["IngestReport", "Ingestor", "find_images"]
