"""Ingest jobs live in the database only: their status and errors outlive the process that ran them,
and a job left queued or running by a process that stopped reads as 'interrupted'."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.images import gradient, jpeg_bytes

from indexer.ingest import Ingestor, IngestReport
from models.engine import FaceEngine
from picsort_local.errors import NotFoundError
from picsort_local.settings import Settings
from search.service import JobState, PicsortService


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def service(settings: Settings, engine: FaceEngine) -> Iterator[PicsortService]:
    service = PicsortService(settings, engine=engine)
    try:
        yield service
    finally:
        service.close()


def wait_done(service: PicsortService, job_id: str, timeout: float = 60.0) -> JobState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = service.jobs.job_status(job_id)
        if job.status not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {service.jobs.job_status(job_id).status}")


def test_job_outcome_and_errors_survive_a_restart(settings: Settings, service: PicsortService,
                                                  engine: FaceEngine) -> None:
    event = service.host.create_event("Jobs", None).event
    truncated = jpeg_bytes(gradient(640, 480))[:2000]  # a sound header (accepted), then no pixel data
    job, results = service.jobs.submit_photos(event.id, [("broken.jpg", truncated)])
    assert [r.status for r in results] == ["accepted"]
    done = wait_done(service, job.id)
    assert (done.status, done.total, done.done, done.failed) == ("done", 1, 1, 1)
    assert len(done.errors) == 1 and done.errors[0][1].split(":")[0] in ("truncated", "corrupt")
    assert service.jobs.pending_photos() == 0
    service.close()

    again = PicsortService(settings, engine=engine)
    try:
        assert again.jobs.job_status(job.id) == done  # read back from the database, errors included
        idle, _ = again.jobs.submit_photos(event.id, [])
        assert again.jobs.job_status(idle.id).status == "done" and idle.total == 0
        again.host.delete_event(event.id)  # the event's jobs go with it
        with pytest.raises(NotFoundError):
            again.jobs.job_status(job.id)
    finally:
        again.close()


def test_a_job_another_process_left_running_reads_interrupted(service: PicsortService) -> None:
    event = service.host.create_event("Crashed", None).event
    service.catalog.meta.jobs.create("left-running", event.id, 5)  # as a process that then stopped
    service.catalog.meta.jobs.update("left-running", done=2, failed=0, status="running")
    job = service.jobs.job_status("left-running")
    assert (job.status, job.total, job.done) == ("interrupted", 5, 2)
    assert service.jobs.pending_photos() == 0  # not this process's work


class _HeldIngest:
    """Stands in for the ingest of one job: stores the photos like the real one, then reports progress
    and waits until the test lets it end."""

    def __init__(self, real: Ingestor) -> None:
        self.register = real.register
        self.started = threading.Event()
        self.release = threading.Event()

    def process_pending(self, event_id: str, progress: Callable[[int], None]) -> IngestReport:
        progress(1)
        self.started.set()
        if not self.release.wait(timeout=60):
            raise TimeoutError("the test never released the job")
        progress(2)
        return IngestReport(indexed=3)


def test_a_running_job_of_this_process_is_running_and_counted(service: PicsortService,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    held = _HeldIngest(service.jobs._ingestor())
    monkeypatch.setattr(service.jobs, "_ingestor", lambda: held)
    event = service.host.create_event("Running", None).event
    job, _ = service.jobs.submit_photos(event.id, [(f"p{i}.jpg", jpeg_bytes(gradient(32 + i, 32))) for i in range(3)])
    assert held.started.wait(timeout=60)
    try:
        assert service.jobs.job_status(job.id).status == "running"
        row = service.catalog.meta.jobs.get(job.id)  # progress is written at most every half second
        assert row.done in (0, 1) and service.jobs.pending_photos() == 3 - row.done
    finally:
        held.release.set()
    done = wait_done(service, job.id)
    assert (done.status, done.done) == ("done", 3) and service.jobs.pending_photos() == 0


def test_progress_is_written_at_most_every_interval_and_at_the_end(
        service: PicsortService, monkeypatch: pytest.MonkeyPatch) -> None:
    from search.services import jobs as jobs_module

    monkeypatch.setattr(jobs_module, "PROGRESS_EVERY_S", 3600.0)
    writes: list[int] = []
    repo = service.catalog.meta.jobs
    real_update = repo.update

    def counting(job_id: str, **kwargs: Any) -> None:
        writes.append(int(kwargs["done"]))
        real_update(job_id, **kwargs)

    monkeypatch.setattr(repo, "update", counting)
    held = _HeldIngest(service.jobs._ingestor())
    held.release.set()
    monkeypatch.setattr(service.jobs, "_ingestor", lambda: held)
    event = service.host.create_event("Progress", None).event
    job, _ = service.jobs.submit_photos(event.id, [(f"p{i}.jpg", jpeg_bytes(gradient(32 + i, 32))) for i in range(3)])
    assert wait_done(service, job.id).status == "done"
    assert writes == [0, 3, 3]  # started, the last photo (not the first: within the interval), done


def test_files_written_by_a_job_after_its_event_was_deleted_are_swept(
        service: PicsortService, monkeypatch: pytest.MonkeyPatch) -> None:
    held = _HeldIngest(service.jobs._ingestor())
    monkeypatch.setattr(service.jobs, "_ingestor", lambda: held)
    event = service.host.create_event("Deleted", None).event
    job, _ = service.jobs.submit_photos(event.id, [("p.jpg", jpeg_bytes(gradient(32, 32)))])
    assert held.started.wait(timeout=60)
    service.host.delete_event(event.id)
    late = f"events/{event.id}/preview/late.jpg"
    service.catalog.blobs.put(late, b"written by the job after the deletion's own sweep")
    held.release.set()
    deadline = time.monotonic() + 60
    while job.id in service.jobs._own_jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not service.catalog.blobs.exists(late)
