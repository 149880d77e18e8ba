"""Host API (`/api/host/...`, X-Admin-Key): events, photo uploads and their jobs, people, grants."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Path, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from search.http.deps import AdminDep, ServiceDep, SettingsDep
from search.http.errors import error_responses
from search.http.schemas import (
    EventCreatedOut,
    EventIn,
    EventSummaryOut,
    FacesRemovedOut,
    GrantIn,
    JobOut,
    PersonOut,
    PersonPhotosOut,
    StatusOut,
    UploadOut,
)

router = APIRouter(tags=["host"])

# A database integer: anything larger is a 422 before it reaches a query.
PersonId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a person id from the people list")]

_HOST_ERRORS = (401, 404, 422)  # no admin key, no such event/job/photo, invalid fields


@router.post("/api/host/events", status_code=201, response_model=EventCreatedOut,
             responses=error_responses(400, 401, 413, 422))
def create_event(body: EventIn, _: AdminDep, service: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    created = service.host.create_event(body.name, body.watermark)
    base = settings.public_url.rstrip("/")
    return {"id": created.event.id, "name": created.event.name, "created_at": created.event.created_at,
            "guest_token": created.guest_token, "guest_url": f"{base}/e/{created.guest_token}"}


@router.get("/api/host/events", response_model=list[EventSummaryOut], responses=error_responses(401, 422))
def list_events(_: AdminDep, service: ServiceDep) -> list[dict[str, Any]]:
    return [{"id": e.id, "name": e.name, "created_at": e.created_at, **counts.as_fields()}
            for e, counts in service.host.list_events()]


@router.delete("/api/host/events/{event_id}", status_code=204, responses=error_responses(*_HOST_ERRORS))
def delete_event(event_id: str, _: AdminDep, service: ServiceDep) -> Response:
    service.host.delete_event(event_id)
    return Response(status_code=204)


@router.post("/api/host/events/{event_id}/photos", status_code=202, response_model=UploadOut,
             response_model_exclude_unset=True, responses=error_responses(400, 401, 404, 413, 422))
async def upload_photos(event_id: str, _: AdminDep, service: ServiceDep, settings: SettingsDep,
                        files: Annotated[list[UploadFile], File(description="photos")]) -> dict[str, Any]:
    payload = []
    for upload in files:
        # One byte over the limit is enough for the service to refuse the file by its size.
        data = await upload.read(settings.max_upload_bytes + 1)
        payload.append((upload.filename or "photo", data))
    job, results = await run_in_threadpool(service.jobs.submit_photos, event_id, payload)
    # Keys without a value are left out (response_model_exclude_unset), as the API always answered.
    return {"job_id": job.id, "results": [{k: v for k, v in asdict(r).items() if v is not None} for r in results]}


@router.get("/api/host/jobs/{job_id}", response_model=JobOut, responses=error_responses(*_HOST_ERRORS))
def job_status(job_id: str, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
    job = service.jobs.job_status(job_id)
    return {"id": job.id, "event_id": job.event_id, "status": job.status, "total": job.total,
            "done": job.done, "failed": job.failed,
            "errors": [{"filename": f, "reason": r} for f, r in job.errors]}


@router.get("/api/host/events/{event_id}/people", response_model=list[PersonOut],
            responses=error_responses(*_HOST_ERRORS))
def people(event_id: str, _: AdminDep, service: ServiceDep) -> list[dict[str, Any]]:
    return [{**asdict(person), "thumb_url": thumb} for person, thumb in service.host.people(event_id)]


@router.get("/api/host/events/{event_id}/people/{person_id}/photos", response_model=PersonPhotosOut,
            responses=error_responses(*_HOST_ERRORS))
def person_photos(event_id: str, person_id: PersonId, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
    """All the photos one person is in (the set the grouping made), with signed preview links."""
    photos = service.host.person_photos(event_id, person_id)
    return {"event_id": event_id, "person_id": person_id, "photos": [asdict(p) for p in photos]}


@router.delete("/api/host/events/{event_id}/photos/{photo_id}", response_model=FacesRemovedOut,
               responses=error_responses(*_HOST_ERRORS))
def delete_photo(event_id: str, photo_id: str, _: AdminDep, service: ServiceDep) -> dict[str, int]:
    return {"faces_removed": service.host.delete_photo(event_id, photo_id)}


@router.post("/api/host/events/{event_id}/grants", status_code=201, response_model=StatusOut,
             responses=error_responses(400, 401, 404, 413, 422))
def grant(event_id: str, body: GrantIn, _: AdminDep, service: ServiceDep) -> dict[str, str]:
    service.host.event(event_id)  # a missing event is a 404, whatever the guest id
    service.host.grant(event_id, body.guest_id, body.photo_id)
    return {"status": "granted"}
