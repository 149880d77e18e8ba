"""Operations routes: liveness, readiness, robots.txt and the Prometheus metrics page (all public)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from search.http.deps import MetricsDep, ServiceDep
from search.http.schemas import ReadyOut, StatusOut

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=StatusOut)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={200: {"model": ReadyOut},
                                  503: {"model": ReadyOut, "description": "Still starting"}})
def readyz(request: Request) -> JSONResponse:
    ready = bool(request.app.state.ready)
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@router.get("/robots.txt", response_class=PlainTextResponse)
def robots() -> str:
    return "User-agent: *\nDisallow: /\n"


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(counters: MetricsDep, service: ServiceDep) -> str:
    # Route templates and counters only: nothing here names an event, a guest or a photo.
    pending = service.jobs.pending_photos()
    return counters.render(gauges={"ingest_photos_pending": pending})
