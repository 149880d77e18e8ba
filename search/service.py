"""Plain service functions behind the HTTP API (host and guest). No HTTP types here."""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indexer.events import Catalog, CreatedEvent, hash_token
from indexer.ingest import Ingestor, IngestReport, photo_key
from indexer.outfit import colour_name, delta_e, outfit_colours
from indexer.vector_index import IndexCache
from models.engine import FaceEngine
from models.runtime import plan_parallelism
from picsort_local.errors import (
    InvalidRequestError,
    NoFaceError,
    NotFoundError,
    TooManyFacesError,
)
from picsort_local.main_face import SELFIE_MIN_SHARE, choose_main_face
from picsort_local.settings import Settings
from search.calibration import crowd_model
from search.decision import FaceSearch, Matches, Policy, maybe_tier
from search.signing import UrlSigner, load_or_create_secret
from search.tiers import Tiers, tiers_for
from storage.metadata import EventRow

logger = logging.getLogger(__name__)

GUEST_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
OUTFIT_MAX_DELTA_E = 14.0  # CIE76 distance under which two torso colours count as the same outfit


@dataclass(frozen=True)
class SearchHit:
    photo_id: str
    tier: str  # high | low
    similarity: float
    badge: str  # face | outfit
    preview_url: str
    thumb_url: str


@dataclass(frozen=True)
class SearchOutcome:
    guest_id: str
    hits: list[SearchHit]
    selfie_token: str | None = None
    outfit: str | None = None  # colour name used for the outfit pass, if any
    more: int = 0  # "maybe" photos withheld (ask again with show_more)


@dataclass
class JobState:
    id: str
    event_id: str
    total: int
    done: int = 0
    failed: int = 0
    status: str = "queued"
    errors: list[tuple[str, str]] = field(default_factory=list)


class PicsortService:
    def __init__(self, settings: Settings, engine: FaceEngine | None = None, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings)
        workers, threads = plan_parallelism(settings)
        self.engine = engine or FaceEngine.from_settings(settings.model_copy(update={"threads": threads}))
        self.ingest_workers = workers
        self.tiers: Tiers = tiers_for(self.engine.pack_name, settings.search_low_threshold, settings.search_high_threshold)
        self.signer = UrlSigner(load_or_create_secret(settings.data_dir / "url-signing.key"), settings.signed_url_ttl_s)
        self.index_cache = IndexCache(self.catalog.indexes)
        self.face_search = FaceSearch(self.index_cache, self.engine.embedder.dim or 128,
                                      crowd_model(self.engine.pack_name), Policy())
        # Ingest jobs run one at a time per service (they share the cores with searches).
        self.ingest_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self.jobs: dict[str, JobState] = {}
        self._jobs_lock = threading.Lock()
        self.metrics: dict[str, float] = {"searches": 0, "photos_ingested": 0, "photos_failed": 0}
        self._search_slots = threading.BoundedSemaphore(settings.search_concurrency or os.cpu_count() or 1)

    def close(self) -> None:
        self.ingest_pool.shutdown(wait=True, cancel_futures=False)
        self.catalog.meta.close()

    # ---- host ----------------------------------------------------------------------------------
    def check_admin_key(self, given: str | None) -> bool:
        expected = self.settings.admin_key.get_secret_value()
        return bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())

    def create_event(self, name: str, watermark: str | None) -> CreatedEvent:
        return self.catalog.create_event(name, watermark=watermark)

    def list_events(self) -> list[dict[str, Any]]:
        meta = self.catalog.meta
        return [{"id": e.id, "name": e.name, "created_at": e.created_at, **meta.event_counts(e.id)}
                for e in meta.list_events()]

    def delete_event(self, event_id: str) -> None:
        self.catalog.delete_event(event_id)
        self.index_cache.invalidate(event_id)
        with self._jobs_lock:  # its ingest jobs (ids, counts, file names in errors) go with it
            for job_id in [j.id for j in self.jobs.values() if j.event_id == event_id]:
                del self.jobs[job_id]

    def _ingestor(self) -> Ingestor:
        return Ingestor(self.catalog, self.engine, workers=self.ingest_workers,
                        checkpoint_photos=self.settings.ingest_checkpoint_photos)

    def submit_photos(self, event_id: str, files: list[tuple[str, bytes]]) -> tuple[JobState, list[dict[str, Any]]]:
        """Check each file, store the accepted originals (durably, before answering), then analyse
        them in the background. A photo acknowledged as accepted survives a crash: the next start
        resumes every pending photo."""
        self.catalog.meta.get_event(event_id)
        results: list[dict[str, Any]] = []
        accepted: list[tuple[str, Callable[[], bytes]]] = []
        slots: list[int] = []
        for name, data in files:
            if len(data) == 0:
                results.append({"filename": name, "status": "rejected", "error": "empty file"})
            elif len(data) > self.settings.max_upload_bytes:
                results.append({"filename": name, "status": "rejected",
                                "error": f"file is larger than {self.settings.max_upload_bytes} bytes"})
            else:
                slots.append(len(results))
                results.append({})
                accepted.append((name, _constant(data)))
        report = IngestReport()
        registered = self._ingestor().register(event_id, accepted, report)
        for slot, outcome in zip(slots, registered):
            results[slot] = outcome
        new = sum(1 for r in registered if r["status"] == "accepted")
        job = self._start_job(event_id, new)
        return job, results

    def _start_job(self, event_id: str, total: int) -> JobState:
        job = JobState(id=secrets.token_hex(8), event_id=event_id, total=total)
        with self._jobs_lock:
            self.jobs[job.id] = job
        # Also in the database, so a job's outcome can still be read after a restart.
        self.catalog.meta.create_job(job.id, event_id, job.total)
        if total:
            self.ingest_pool.submit(self._run_job, job)
        else:
            job.status = "done"
            self.catalog.meta.update_job(job.id, done=0, failed=0, status="done")
        return job

    def resume_pending(self) -> list[JobState]:
        """At start-up: analyse photos acknowledged before a crash or restart."""
        # Selfies saved before they were scoped to an event (schema 4) lived here; their rows are gone.
        self.catalog.blobs.delete_prefix("selfies/")
        jobs = []
        for event in self.catalog.meta.list_events():
            pending = self.catalog.meta.list_photos(event.id, "pending") + self.catalog.meta.list_photos(event.id, "processing")
            if pending:
                logger.info("resuming %d pending photo(s) of event %s", len(pending), event.id)
                jobs.append(self._start_job(event.id, len(pending)))
        return jobs

    def _run_job(self, job: JobState) -> None:
        job.status = "running"
        try:
            def progress(n: int) -> None:
                job.done += n

            report = self._ingestor().process_pending(job.event_id, progress=progress)
            job.failed = report.failed
            job.errors = report.errors
            job.status = "done"
            self.catalog.meta.update_job(job.id, done=job.done, failed=job.failed, status="done")
            self.metrics["photos_ingested"] += report.indexed
            self.metrics["photos_failed"] += report.failed
            self.index_cache.invalidate(job.event_id)
        except Exception as exc:  # a job failure must be visible, not kill the worker thread
            logger.exception("ingest job %s failed", job.id)
            job.status = "error"
            job.errors.append(("*", str(exc)))
            self.catalog.meta.update_job(job.id, done=job.done, failed=job.failed, status="error")

    def job_status(self, job_id: str) -> JobState:
        job = self.jobs.get(job_id)
        if job is None:
            row = self.catalog.meta.get_job(job_id)  # a job from before a restart (NotFoundError if none)
            status = row["status"] if row["status"] != "running" else "interrupted"
            return JobState(row["id"], row["event_id"], row["total"], row["done"], row["failed"], status)
        return job

    def people(self, event_id: str) -> list[dict[str, Any]]:
        self.catalog.meta.get_event(event_id)
        out = []
        for p in self.catalog.meta.list_persons(event_id):
            key = f"events/{event_id}/persons/{p['id']}.jpg"
            out.append({**p, "thumb_url": self.signer.url(key) if self.catalog.blobs.exists(key) else None})
        return out

    def delete_photo(self, event_id: str, photo_id: str) -> int:
        meta, blobs = self.catalog.meta, self.catalog.blobs
        with self.catalog.event_lock(event_id):
            face_ids = meta.delete_photo(event_id, photo_id)
            index = self.catalog.indexes.load(event_id, self.engine.embedder.dim or 128)
            if face_ids:
                index.remove(np.array(face_ids, dtype=np.int64))
                self.catalog.indexes.save(event_id, index, keep=1)  # no older snapshot keeps the faces
        for kind in ("originals", "preview", "thumb", "micro"):
            blobs.delete(photo_key(event_id, photo_id, kind))
        self.index_cache.invalidate(event_id)
        return len(face_ids)

    def grant(self, event_id: str, guest_id: str, photo_id: str) -> None:
        self._check_guest_id(guest_id)
        self.catalog.meta.grant(event_id, guest_id, photo_id)

    # ---- guests --------------------------------------------------------------------------------
    def event_for_token(self, token: str) -> EventRow:
        return self.catalog.event_for_token(token)

    @staticmethod
    def _check_guest_id(guest_id: str) -> str:
        if not GUEST_ID.match(guest_id):
            raise InvalidRequestError("guest id must be 16-64 characters of A-Z a-z 0-9 _ -")
        return guest_id

    def guest_id(self, given: str | None) -> str:
        return self._check_guest_id(given) if given else secrets.token_urlsafe(18)

    def selfie_embedding(self, data: bytes) -> tuple[np.ndarray, Any, Any]:
        """The selfie's main face (`choose_main_face`): heads far behind and neighbours cut by the frame
        do not count, so a selfie in a crowded room still works; refused only when two faces are
        equally plausible."""
        image = self.engine.decode(data, reduced=False)
        # A selfie's face fills a good part of the frame: skip the pyramid levels for small faces.
        w, h = image.original.width, image.original.height
        min_face = max(self.settings.min_face_px, SELFIE_MIN_SHARE * min(w, h))
        faces = self.engine.analyze(image, detector=self.engine.with_min_face(min_face))
        boxes = faces.detections.boxes
        choice = choose_main_face(boxes, w, h)
        if choice.index is None:
            raise NoFaceError("no face found: take the selfie facing the camera, in good light")
        if choice.ambiguous:
            competing = (choice.index, *choice.rivals)
            raise TooManyFacesError(len(competing), tuple(
                (float(boxes[i, 0] / w), float(boxes[i, 1] / h), float((boxes[i, 2] - boxes[i, 0]) / w),
                 float((boxes[i, 3] - boxes[i, 1]) / h)) for i in competing))
        return faces.embeddings[choice.index], image, boxes[choice.index]

    def search(self, event: EventRow, data: bytes | None, *, guest_id: str, save_selfie: bool = False,
               selfie_token: str | None = None, limit: int = 300, show_more: bool = False) -> SearchOutcome:
        # Waiting here rather than in the CPU run queue: the same latency for guests, and the ingest's
        # workers keep their share of the cores.
        with self._search_slots:
            return self._search(event, data, guest_id=guest_id, save_selfie=save_selfie,
                                selfie_token=selfie_token, limit=limit, show_more=show_more)

    def _search(self, event: EventRow, data: bytes | None, *, guest_id: str, save_selfie: bool,
                selfie_token: str | None, limit: int, show_more: bool) -> SearchOutcome:
        started = time.perf_counter()
        selfie_outfit = None
        new_token = None
        if data is not None:
            embedding, image, box = self.selfie_embedding(data)
            outfit = outfit_colours(image.pixels, box[None] * image.scale)[0]
            selfie_outfit = np.array(outfit.lab, np.float32) if outfit else None
            if save_selfie:
                new_token = self._save_selfie(event, data, embedding)
        elif selfie_token:
            embedding = self._saved_embedding(event, selfie_token)
        else:
            raise InvalidRequestError("send a selfie image or a saved selfie token")
        hits, outfit_name, more = self._match(event, embedding, guest_id, selfie_outfit, limit, show_more)
        self.metrics["searches"] += 1
        logger.debug("search in %s took %.1f ms", event.id, (time.perf_counter() - started) * 1000)
        return SearchOutcome(guest_id=guest_id, hits=hits, selfie_token=new_token, outfit=outfit_name, more=more)

    def _match(self, event: EventRow, embedding: np.ndarray, guest_id: str, selfie_outfit: np.ndarray | None,
               limit: int, show_more: bool) -> tuple[list[SearchHit], str | None, int]:
        meta = self.catalog.meta
        hidden = meta.hidden_photos(event.id, guest_id)
        matches = self.face_search.match(event.id, embedding)
        faces = meta.face_photos(event.id, matches.face_ids.tolist())
        not_me = [fid for fid, (photo, _) in faces.items() if photo in hidden]
        if not_me:  # a photo the guest said is not them must not steer the search (expansion, groups)
            matches = self.face_search.match(event.id, embedding, exclude=not_me)
        best: dict[str, int] = {}  # photo -> row of its best face in `matches` (best first)
        for row, fid in enumerate(matches.face_ids.tolist()):
            found = faces.get(fid)
            if found is not None and found[0] not in best:
                best[found[0]] = row
        sims, is_high = matches.similarity(), matches.high()
        high = [p for p, row in best.items() if is_high[row]]
        similarity = {p: float(sims[row]) for p, row in best.items()}
        group = self._group_photos(event.id, embedding, matches, set(high) | hidden, similarity, scored=show_more)
        maybe = maybe_tier(group, [p for p in best if not is_high[best[p]]], self.face_search.policy)
        shown = high + (maybe if show_more else [])
        hits = [self._hit(event.id, p, "high" if i < len(high) else "low", similarity[p], "face")
                for i, p in enumerate(shown)]
        # outfit pass: the guest's colour from their own high-confidence photos, else the selfie torso
        high_labs = [faces[int(matches.face_ids[best[p]])][1] for p in high]
        high_labs = [lab for lab in high_labs if lab is not None]
        guest_lab = np.median(np.array(high_labs, np.float32), axis=0) if high_labs else selfie_outfit
        outfit_name = None
        if guest_lab is not None:
            outfit_name = colour_name(np.asarray(guest_lab, np.float32)[None])[0]
            hits += self._outfit_hits(event.id, guest_lab, set(high) | set(maybe) | hidden)
        order = {"high": 0, "low": 1}
        hits.sort(key=lambda h: (order[h.tier], h.badge != "face", -h.similarity))
        # URLs are signed only for what is returned (an HMAC per URL adds up on big events).
        return [self._sign(event.id, h) for h in hits[:limit]], outfit_name, 0 if show_more else len(maybe)

    def _group_photos(self, event_id: str, embedding: np.ndarray, matches: Matches, exclude: set[str],
                      similarity: dict[str, float], *, scored: bool) -> list[str]:
        """Photos of the person groups that the guest's high-tier faces belong to, outside `exclude`.
        With `scored`, best scored first, and the similarity of those not already in `similarity` is
        added to it; without, in no particular order (enough to count them)."""
        high_ids = matches.face_ids[matches.high()].tolist()
        mates = [(fid, pid) for fid, pid in self.catalog.meta.person_mates(event_id, high_ids) if pid not in exclude]
        if not mates or not scored:
            return list(dict.fromkeys(pid for _, pid in mates))
        z = self.face_search.score(event_id, embedding, np.array([fid for fid, _ in mates], np.int64))
        sims = matches.thresholds.similarity(z)
        order: list[str] = []
        for i in np.argsort(-z, kind="stable").tolist():
            if np.isfinite(z[i]):
                order.append(mates[i][1])
                similarity.setdefault(mates[i][1], float(sims[i]))
        return list(dict.fromkeys(order))

    def _outfit_hits(self, event_id: str, guest_lab: np.ndarray, exclude: set[str]) -> list[SearchHit]:
        """People found without a visible face (bodies), in the guest's outfit colour, in photos the
        face pass did not return. A person whose face is visible is never matched by colour alone:
        if their face were plausibly the guest's, the face pass would have returned the photo."""
        lab = (float(guest_lab[0]), float(guest_lab[1]), float(guest_lab[2]))
        bodies = [b for b in self.catalog.meta.list_bodies(event_id, lab, OUTFIT_MAX_DELTA_E)
                  if b["photo_id"] not in exclude]
        if not bodies:
            return []
        labs = np.array([[b["outfit_l"], b["outfit_a"], b["outfit_b"]] for b in bodies], np.float32)
        dist = delta_e(labs, guest_lab[None])
        best: dict[str, float] = {}
        for body, d in zip(bodies, dist.tolist()):
            if d <= OUTFIT_MAX_DELTA_E and d < best.get(body["photo_id"], 1e9):
                best[body["photo_id"]] = d
        # colour similarity on the same 0-100 scale: identical colour 100, the cut-off distance 50
        return [self._hit(event_id, pid, "low", float(100.0 - 50.0 * d / OUTFIT_MAX_DELTA_E), "outfit")
                for pid, d in best.items()]

    def _hit(self, event_id: str, photo_id: str, tier: str, similarity: float, badge: str) -> SearchHit:
        return SearchHit(photo_id, tier, round(similarity, 1), badge, "", "")

    def _sign(self, event_id: str, hit: SearchHit) -> SearchHit:
        return replace(hit, preview_url=self.signer.url(photo_key(event_id, hit.photo_id, "preview")),
                       thumb_url=self.signer.url(photo_key(event_id, hit.photo_id, "thumb")))

    def _save_selfie(self, event: EventRow, data: bytes, embedding: np.ndarray) -> str:
        # Kept under the event (deleted with it) and usable only in it: a saved selfie must not become
        # an identifier that follows a guest from one event to another.
        token = secrets.token_urlsafe(24)
        token_hash = hash_token(token)
        key = f"events/{event.id}/selfies/{token_hash[:32]}"
        self.catalog.blobs.put(key, data)
        self.catalog.meta.save_selfie(event.id, token_hash, key, embedding.astype(np.float32).tobytes())
        return token

    def _saved_embedding(self, event: EventRow, selfie_token: str) -> np.ndarray:
        found = self.catalog.meta.get_selfie(event.id, hash_token(selfie_token))
        if found is None:
            raise NotFoundError("not found")
        return np.frombuffer(found[1], dtype=np.float32)

    def hide(self, event: EventRow, guest_id: str, photo_id: str) -> None:
        self.catalog.meta.hide_photo(event.id, self._check_guest_id(guest_id), photo_id)

    def delete_guest_data(self, event: EventRow, guest_id: str | None, selfie_token: str | None) -> dict[str, bool]:
        out = {"preferences": False, "selfie": False}
        if guest_id:
            self.catalog.meta.delete_guest(event.id, self._check_guest_id(guest_id))
            out["preferences"] = True
        if selfie_token:
            key = self.catalog.meta.delete_selfie(event.id, hash_token(selfie_token))
            if key:
                self.catalog.blobs.delete(key)
                out["selfie"] = True
        return out

    # ---- files ---------------------------------------------------------------------------------
    def read_signed(self, key: str, expires: str, signature: str) -> bytes:
        self.signer.verify(key, expires, signature)
        return self.catalog.blobs.get(key)

    def original_url(self, event: EventRow, guest_id: str, photo_id: str) -> str:
        if not self.catalog.meta.has_grant(event.id, self._check_guest_id(guest_id), photo_id):
            raise NotFoundError("not found")
        row = self.catalog.meta.get_photo(event.id, photo_id)
        if not row.original_key:
            raise NotFoundError("not found")
        return self.signer.url(row.original_key)


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data

