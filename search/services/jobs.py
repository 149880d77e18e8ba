"""Ingest jobs: photos accepted by the host API are stored before the answer, then analysed in the
background, one job at a time (they share the cores with searches). A job's progress, outcome and
errors live in its database row only (`ingest_jobs`), so they survive a restart."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from indexer.events import Catalog
from indexer.ingest import Ingestor, IngestReport, Registered
from models.engine import FaceEngine
from picsort_local.errors import InvalidImageError, NotFoundError
from picsort_local.images import read_size
from picsort_local.settings import IngestSettings
from search.metrics import Metrics
from storage.keys import LEGACY_SELFIES_PREFIX, event_prefix
from storage.metadata import JobRow
from storage.metadata.jobs import JobRepo

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5  # how often a running job's row is updated (the host polls it)


@dataclass(frozen=True)
class JobState:
    """An ingest job as the host sees it (status 'interrupted': queued or running in a process that
    stopped before finishing it)."""

    id: str
    event_id: str
    total: int
    done: int = 0
    failed: int = 0
    status: str = "queued"
    errors: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_row(cls, row: JobRow, *, interrupted: bool = False) -> JobState:
        status = "interrupted" if interrupted and row.status in ("queued", "running") else row.status
        return cls(row.id, row.event_id, row.total, row.done, row.failed, status, row.errors)


class IngestJobs:
    def __init__(self, catalog: Catalog, engine: FaceEngine, metrics: Metrics, ingest: IngestSettings, *,
                 workers: int, max_upload_bytes: int) -> None:
        self.catalog = catalog
        self.engine = engine
        self.metrics = metrics
        self._workers = workers
        self._ingest = ingest
        self._max_upload_bytes = max_upload_bytes
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        # Jobs live in the database; this is only which of them this process started (a queued or
        # running job that is not one of them was left so by a process that stopped).
        self._own_jobs: set[str] = set()
        metrics.count("photos_ingested", 0)
        metrics.count("photos_failed", 0)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _ingestor(self) -> Ingestor:
        return Ingestor(self.catalog, self.engine, self._ingest, workers=self._workers)

    def submit_photos(self, event_id: str,
                      files: list[tuple[str, bytes]]) -> tuple[JobState, list[Registered]]:
        """Check each file, store the accepted originals (durably, before answering), then analyse
        them in the background. A photo acknowledged as accepted survives a crash: the next start
        resumes every pending photo."""
        self.catalog.meta.events.get(event_id)
        refused: dict[int, Registered] = {}
        accepted: list[tuple[str, Callable[[], bytes]]] = []
        for i, (name, data) in enumerate(files):
            problem = self._refusal(data)
            if problem is not None:
                refused[i] = Registered(name, "rejected", error=problem)
            else:
                accepted.append((name, _constant(data)))
        registered = iter(self._ingestor().register(event_id, accepted, IngestReport()))
        results = [refused[i] if i in refused else next(registered) for i in range(len(files))]
        new = sum(1 for r in results if r.status == "accepted")
        job = self._start_job(event_id, new)
        return job, results

    def _refusal(self, data: bytes) -> str | None:
        """Why a file is refused before it is stored, from its size and its image header alone (no pixel
        is decoded): empty, too big, not an image, or more pixels than the engine decodes. Truncated or
        corrupt pixel data is found by the job, which records it on the photo."""
        if len(data) == 0:
            return "empty file"
        if len(data) > self._max_upload_bytes:
            return f"file is larger than {self._max_upload_bytes} bytes"
        try:
            size = read_size(data)
        except InvalidImageError as exc:
            return f"{exc.reason}: {exc.message}"
        limit = self.engine.settings.max_image_pixels
        if size.pixels > limit:
            return f"too_large: {size.width}x{size.height} is over the {limit}-pixel limit"
        return None

    def _start_job(self, event_id: str, total: int) -> JobState:
        job_id = secrets.token_hex(8)
        if not total:
            return JobState.from_row(self.catalog.meta.jobs.create(job_id, event_id, 0, status="done"))
        self._own_jobs.add(job_id)
        row = self.catalog.meta.jobs.create(job_id, event_id, total, status="queued")
        self._pool.submit(self._run_job, job_id, event_id)
        return JobState.from_row(row)

    def resume_pending(self) -> list[JobState]:
        """At start-up: analyse photos acknowledged before a crash or restart."""
        # Selfies saved before they were scoped to an event (schema 4) lived here; their rows are gone.
        self.catalog.blobs.delete_prefix(LEGACY_SELFIES_PREFIX)
        jobs = []
        photos = self.catalog.meta.photos
        for event in self.catalog.meta.events.list():
            pending = photos.list(event.id, "pending") + photos.list(event.id, "processing")
            if pending:
                logger.info("resuming %d pending photo(s) of event %s", len(pending), event.id)
                jobs.append(self._start_job(event.id, len(pending)))
        return jobs

    def _run_job(self, job_id: str, event_id: str) -> None:
        """Progress and outcome go to the job's row (the host polls it): progress at most every
        PROGRESS_EVERY_S, so a big job does not queue a transaction per photo behind searches."""
        jobs = self.catalog.meta.jobs
        progress = _Progress(jobs, job_id, jobs.get(job_id).total)
        try:
            jobs.update(job_id, done=0, failed=0, status="running")
            report = self._ingestor().process_pending(event_id, progress=progress)
            jobs.update(job_id, done=progress.done, failed=report.failed, status="done", errors=report.errors)
            self.metrics.count("photos_ingested", report.indexed)
            self.metrics.count("photos_failed", report.failed)
        except Exception as exc:  # a job failure must be visible, not kill the worker thread
            logger.exception("ingest job %s failed", job_id)
            jobs.update(job_id, done=progress.done, failed=0, status="error", errors=[("*", str(exc))])
        finally:
            self._sweep_if_deleted(event_id)
            self._own_jobs.discard(job_id)  # after its last write: it is never seen running and not ours

    def _sweep_if_deleted(self, event_id: str) -> None:
        """An event deleted while its job ran (whether the job failed or finished): remove what the job
        wrote after the deletion's own sweep (derived images of the photos in flight, person crops), so
        nothing of the event is left behind. After the job's last write, so nothing follows it."""
        if not self.catalog.faces.dropped(event_id):
            try:
                self.catalog.meta.events.get(event_id)
                return
            except NotFoundError:
                pass
        removed = self.catalog.blobs.delete_prefix(event_prefix(event_id))
        if removed:
            logger.info("event %s was deleted during its ingest: %d leftover files removed", event_id, removed)

    def job_status(self, job_id: str) -> JobState:
        """NotFoundError for an unknown job (or one whose event was deleted)."""
        row = self.catalog.meta.jobs.get(job_id)
        return JobState.from_row(row, interrupted=job_id not in self._own_jobs)

    def pending_photos(self) -> int:
        """Photos accepted and not analysed yet by the jobs this process runs."""
        return sum(j.total - j.done for j in self.catalog.meta.jobs.active() if j.id in self._own_jobs)


class _Progress:
    """The ingest's progress callback: counts photos, writes the count to the job's row at most every
    PROGRESS_EVERY_S (a failed progress write is logged, never fatal: the final write says it all)."""

    def __init__(self, jobs: JobRepo, job_id: str, total: int) -> None:
        self._jobs = jobs
        self._job_id = job_id
        self._total = total
        self._written = time.monotonic()
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n
        # The last photo is always written: regrouping may still take a while after it.
        if time.monotonic() - self._written < PROGRESS_EVERY_S and self.done < self._total:
            return
        self._written = time.monotonic()
        try:
            self._jobs.update(self._job_id, done=self.done, failed=0, status="running")
        except Exception as exc:  # progress is informative: the job's final write records the outcome
            logger.warning("progress of ingest job %s not recorded: %s", self._job_id, exc)


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data
