"""The FastAPI app: host API (admin key), guest API (event link token), signed files, kiosk page.

Route handlers only translate HTTP to the plain functions of `search.service`; domain errors become
HTTP responses in `_error_response`, the one place that maps them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from picsort_local.errors import (
    AlreadyExistsError,
    AuthError,
    DeviceUnavailableError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidRequestError,
    ModelPackError,
    NoFaceError,
    NotFoundError,
    PayloadTooLargeError,
    PicsortError,
    SignatureError,
    TooManyFacesError,
)
from picsort_local.settings import Settings
from search.access_log import install as redact_access_log
from search.rekognition_api import rekognition_router
from search.service import PicsortService, SearchHit, SearchOutcome
from storage.metadata import EventRow

logger = logging.getLogger(__name__)


METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _error_response(exc: PicsortError) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    status = 400
    if isinstance(exc, NotFoundError):
        status, body = 404, {"error": "not_found", "message": "not found"}  # never say what is missing
    elif isinstance(exc, AuthError):
        status = 401
    elif isinstance(exc, SignatureError):
        status = 403
    elif isinstance(exc, (PayloadTooLargeError, ImageTooLargeError)):
        status = 413
    elif isinstance(exc, InvalidImageError):
        status = 415 if exc.reason in ("not_an_image", "unsupported") else 422
        body["reason"] = exc.reason
    elif isinstance(exc, TooManyFacesError):
        status = 422
        body["faces"] = exc.count
        body["boxes"] = [{"left": b[0], "top": b[1], "width": b[2], "height": b[3]} for b in exc.boxes]
    elif isinstance(exc, NoFaceError):
        status = 422
        body["faces"] = 0
    elif isinstance(exc, AlreadyExistsError):
        status = 409
    elif isinstance(exc, InvalidRequestError):
        status = 400
    elif isinstance(exc, (ModelPackError, DeviceUnavailableError)):
        status = 503
    return JSONResponse(body, status_code=status)


# ---- dependencies -------------------------------------------------------------------------------
def get_service(request: Request) -> PicsortService:
    service: PicsortService = request.app.state.service
    return service


ServiceDep = Annotated[PicsortService, Depends(get_service)]


def require_admin(service: ServiceDep, x_admin_key: Annotated[str | None, Header()] = None) -> None:
    if not service.check_admin_key(x_admin_key):
        raise AuthError("a valid X-Admin-Key header is required")


AdminDep = Annotated[None, Depends(require_admin)]


def guest_event(token: str, service: ServiceDep) -> EventRow:
    if len(token) > 128:
        raise NotFoundError("not found")
    return service.event_for_token(token)


GuestEventDep = Annotated[EventRow, Depends(guest_event)]


# ---- request/response models ---------------------------------------------------------------------
class EventIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    watermark: str | None = Field(default=None, max_length=100)


class GrantIn(BaseModel):
    guest_id: str = Field(min_length=16, max_length=64)
    photo_id: str = Field(min_length=1, max_length=64)


class FeedbackIn(BaseModel):
    guest_id: str = Field(min_length=16, max_length=64)
    photo_id: str = Field(min_length=1, max_length=64)
    vote: str = Field(pattern="^down$")


class SavedSearchIn(BaseModel):
    selfie_token: str = Field(min_length=16, max_length=128)
    guest_id: str | None = Field(default=None, min_length=16, max_length=64)
    show_more: bool = Field(default=False, description="also return the capped \"maybe\" tier")


class ForgetIn(BaseModel):
    guest_id: str | None = Field(default=None, min_length=16, max_length=64)
    selfie_token: str | None = Field(default=None, min_length=16, max_length=128)


class ErrorOut(BaseModel):
    """Every error answer. Some add fields: `reason` (a refused image), `faces` (a selfie refused for
    its face count) with `boxes` (the competing faces, as shares of the photo: left, top, width,
    height), `detail` (which fields failed validation)."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str


class NoRouteOut(BaseModel):
    """Starlette's own 404 when the path matches no route at all (e.g. an id holding an encoded '/')."""

    detail: str


class ReadyOut(BaseModel):
    ready: bool


# ---- success bodies (documentation and the fuzz test's schema checks; optional keys are left out when
# absent, as before: routes with optional fields use response_model_exclude_unset) ---------------------
class EventCreatedOut(BaseModel):
    id: str
    name: str
    created_at: str
    guest_token: str  # shown once
    guest_url: str


class EventSummaryOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # photos_<status>: photo counts per status
    id: str
    name: str
    created_at: str
    faces: int
    persons: int


class UploadResultOut(BaseModel):
    filename: str
    status: str  # accepted | duplicate | rejected
    photo_id: str | None = None
    error: str | None = None


class UploadOut(BaseModel):
    job_id: str
    results: list[UploadResultOut]


class JobErrorOut(BaseModel):
    filename: str
    reason: str


class JobOut(BaseModel):
    id: str
    event_id: str
    status: str  # queued | running | done | error | interrupted
    total: int
    done: int
    failed: int
    errors: list[JobErrorOut]


class PersonOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    face_count: int
    photo_count: int
    thumb_url: str | None


class FacesRemovedOut(BaseModel):
    faces_removed: int


class StatusOut(BaseModel):
    status: str


class SearchOut(BaseModel):
    guest_id: str
    outfit: str | None
    results: list[SearchHit]
    more: int = Field(default=0, description="\"maybe\" photos withheld: search again with show_more to see them")
    selfie_token: str | None = Field(default=None, description="only when the selfie was saved")


class ForgetOut(BaseModel):
    preferences: bool
    selfie: bool


class UrlOut(BaseModel):
    url: str


_ERROR_DESCRIPTIONS = {
    400: "Invalid request (e.g. a malformed guest id, a body that cannot be parsed)",
    401: "Missing or wrong X-Admin-Key",
    403: "Invalid or expired signed link",
    404: "Not found (never says what is missing)",
    409: "Already exists",
    413: "Request, file or image too large",
    415: "Not an image, or an unsupported format",
    422: "Invalid request fields, or an image that cannot be used (reason / faces say why)",
    503: "Not ready, or the face models are unavailable",
}


def _errors(*statuses: int, html_route: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route really returns: ErrorOut bodies, and for 404
    also Starlette's NoRouteOut. FastAPI would document an HTML route's errors as text/html, so there
    the JSON content is spelled out (the components are registered by the other routes)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        models: tuple[type[BaseModel], ...] = (ErrorOut, NoRouteOut) if status == 404 else (ErrorOut,)
        if html_route:
            refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
            schema = {"anyOf": refs} if len(refs) > 1 else refs[0]
            out[status] = {"description": _ERROR_DESCRIPTIONS[status],
                           "content": {"application/json": {"schema": schema}}}
        else:
            out[status] = {"description": _ERROR_DESCRIPTIONS[status],
                           "model": ErrorOut | NoRouteOut if status == 404 else ErrorOut}
    return out


_HOST_ERRORS = (401, 404, 422)  # no admin key, no such event/job/photo, invalid fields


NO_STORE = {"Cache-Control": "no-store"}  # pages and answers that carry links or signed URLs


def _kiosk_csp(page: str) -> str:
    """Only this server, and only the page's own inline script and style (by their sha256): no
    other script can run in the kiosk, and no other site may frame it."""
    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)

    return ("default-src 'none'; " f"script-src {hashes('script')}; style-src {hashes('style')}; "
            "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _outcome(outcome: SearchOutcome) -> dict[str, Any]:
    body: dict[str, Any] = {
        "guest_id": outcome.guest_id,
        "outfit": outcome.outfit,
        "results": [vars(h) for h in outcome.hits],
        "more": outcome.more,
    }
    if outcome.selfie_token:
        body["selfie_token"] = outcome.selfie_token
    return body


def create_app(settings: Settings, service: PicsortService | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_access_log()
        if getattr(app.state, "service", None) is None:
            app.state.service = await run_in_threadpool(PicsortService, settings)
        await run_in_threadpool(app.state.service.resume_pending)
        app.state.ready = True
        yield
        app.state.ready = False
        await run_in_threadpool(app.state.service.close)

    app = FastAPI(title="Picsort Local", version="0.1.0", lifespan=lifespan,
                  description="Self-hosted event face search: host API (X-Admin-Key) and guest API (link token).")
    app.state.service = service
    app.state.ready = service is not None
    app.state.settings = settings
    app.state.request_counts = defaultdict(int)
    app.state.request_seconds = defaultdict(float)

    @app.exception_handler(PicsortError)
    async def on_domain_error(request: Request, exc: PicsortError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # The framework's own refusals (a JSON or multipart body that cannot be parsed: 400; a wrong
        # method: 405) in the shape of every other error. Its 404 for a path that matches no route
        # keeps Starlette's body (documented as NoRouteOut).
        if exc.status_code == 404:
            return JSONResponse({"detail": exc.detail}, status_code=404, headers=exc.headers)
        code = {400: "invalid_request", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the offending input, which fails to encode (a 500) when it is
        # NaN or Infinity from the JSON body; only where and why are returned here.
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return JSONResponse({"error": "invalid_request", "message": "the request is not valid", "detail": detail},
                            status_code=422)

    @app.middleware("http")
    async def guard_and_measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        limit = settings.max_request_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            response: Response = _error_response(PayloadTooLargeError(f"request body over {limit} bytes"))
        else:
            response = await call_next(request)
        # Guest pages and API answers must never be indexed by search engines.
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
        response.headers["Referrer-Policy"] = "no-referrer"  # the link token must not leak in Referer
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Metric labels from a fixed set: the route template (never the raw path) and a known method,
        # so a client cannot grow the counters (or /metrics) without bound.
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        method = request.method if request.method in METRIC_METHODS else "other"
        app.state.request_counts[(method, name, response.status_code)] += 1
        app.state.request_seconds[(method, name)] += time.perf_counter() - started
        return response

    # ---- operations ----------------------------------------------------------------------------
    @app.get("/healthz", tags=["ops"], response_model=StatusOut)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={200: {"model": ReadyOut},
                                                 503: {"model": ReadyOut, "description": "Still starting"}})
    def readyz(request: Request) -> JSONResponse:
        ready = bool(request.app.state.ready)
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/robots.txt", response_class=PlainTextResponse, tags=["ops"])
    def robots() -> str:
        return "User-agent: *\nDisallow: /\n"

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    def metrics(request: Request, service: ServiceDep) -> str:
        lines = ["# TYPE picsort_requests_total counter"]
        for (method, path, status), n in sorted(request.app.state.request_counts.items()):
            lines.append(f'picsort_requests_total{{method="{method}",path="{path}",status="{status}"}} {n}')
        lines.append("# TYPE picsort_request_seconds_sum counter")
        for (method, path), s in sorted(request.app.state.request_seconds.items()):
            lines.append(f'picsort_request_seconds_sum{{method="{method}",path="{path}"}} {s:.6f}')
        for name, value in sorted(service.metrics.items()):
            lines.append(f"# TYPE picsort_{name}_total counter")
            lines.append(f"picsort_{name}_total {value}")
        running = [j for j in service.jobs.values() if j.status in ("queued", "running")]
        lines.append("# TYPE picsort_ingest_photos_pending gauge")
        lines.append(f"picsort_ingest_photos_pending {sum(j.total - j.done for j in running)}")
        return "\n".join(lines) + "\n"

    # ---- host API ------------------------------------------------------------------------------
    @app.post("/api/host/events", status_code=201, tags=["host"], response_model=EventCreatedOut,
              responses=_errors(400, 401, 413, 422))
    def create_event(body: EventIn, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
        created = service.create_event(body.name, body.watermark)
        base = settings.public_url.rstrip("/")
        return {"id": created.event.id, "name": created.event.name, "created_at": created.event.created_at,
                "guest_token": created.guest_token, "guest_url": f"{base}/e/{created.guest_token}"}

    @app.get("/api/host/events", tags=["host"], response_model=list[EventSummaryOut],
             responses=_errors(401, 422))
    def list_events(_: AdminDep, service: ServiceDep) -> list[dict[str, Any]]:
        return service.list_events()

    @app.delete("/api/host/events/{event_id}", status_code=204, tags=["host"],
                responses=_errors(*_HOST_ERRORS))
    def delete_event(event_id: str, _: AdminDep, service: ServiceDep) -> Response:
        service.delete_event(event_id)
        return Response(status_code=204)

    @app.post("/api/host/events/{event_id}/photos", status_code=202, tags=["host"], response_model=UploadOut,
              response_model_exclude_unset=True, responses=_errors(400, 401, 404, 413, 422))
    async def upload_photos(event_id: str, _: AdminDep, service: ServiceDep,
                            files: Annotated[list[UploadFile], File(description="photos")]) -> dict[str, Any]:
        payload = []
        for upload in files:
            data = await upload.read(settings.max_upload_bytes + 1)
            payload.append((upload.filename or "photo", data))
        job, results = await run_in_threadpool(service.submit_photos, event_id, payload)
        return {"job_id": job.id, "results": results}

    @app.get("/api/host/jobs/{job_id}", tags=["host"], response_model=JobOut,
             responses=_errors(*_HOST_ERRORS))
    def job_status(job_id: str, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
        job = service.job_status(job_id)
        return {"id": job.id, "event_id": job.event_id, "status": job.status, "total": job.total,
                "done": job.done, "failed": job.failed,
                "errors": [{"filename": f, "reason": r} for f, r in job.errors]}

    @app.get("/api/host/events/{event_id}/people", tags=["host"], response_model=list[PersonOut],
             responses=_errors(*_HOST_ERRORS))
    def people(event_id: str, _: AdminDep, service: ServiceDep) -> list[dict[str, Any]]:
        return service.people(event_id)

    @app.delete("/api/host/events/{event_id}/photos/{photo_id}", tags=["host"],
                response_model=FacesRemovedOut, responses=_errors(*_HOST_ERRORS))
    def delete_photo(event_id: str, photo_id: str, _: AdminDep, service: ServiceDep) -> dict[str, int]:
        return {"faces_removed": service.delete_photo(event_id, photo_id)}

    @app.post("/api/host/events/{event_id}/grants", status_code=201, tags=["host"], response_model=StatusOut,
              responses=_errors(400, 401, 404, 413, 422))
    def grant(event_id: str, body: GrantIn, _: AdminDep, service: ServiceDep) -> dict[str, str]:
        service.catalog.meta.get_event(event_id)
        service.grant(event_id, body.guest_id, body.photo_id)
        return {"status": "granted"}

    # ---- guest API -----------------------------------------------------------------------------
    kiosk_page = files("search").joinpath("static/kiosk.html").read_text(encoding="utf-8")
    kiosk_csp = _kiosk_csp(kiosk_page)

    @app.get("/e/{token}", response_class=HTMLResponse, tags=["guest"],
             responses=_errors(404, 422, html_route=True))
    def kiosk(event: GuestEventDep) -> HTMLResponse:
        return HTMLResponse(kiosk_page.replace("{{EVENT_NAME}}", _html_escape(event.name)),
                            headers={"Content-Security-Policy": kiosk_csp, **NO_STORE})

    @app.post("/api/e/{token}/search", tags=["guest"], response_model=SearchOut,
              responses=_errors(400, 404, 413, 415, 422, 503))
    async def search(event: GuestEventDep, service: ServiceDep,
                     selfie: Annotated[UploadFile, File(description="a selfie with exactly one face")],
                     save_selfie: Annotated[bool, Form()] = False,
                     show_more: Annotated[bool, Form(description="also return the capped \"maybe\" tier")] = False,
                     x_guest_id: Annotated[str | None, Header()] = None) -> JSONResponse:
        data = await selfie.read(settings.max_selfie_bytes + 1)
        if len(data) > settings.max_selfie_bytes:
            raise PayloadTooLargeError(f"selfie over {settings.max_selfie_bytes} bytes")
        guest_id = service.guest_id(x_guest_id)
        outcome = await run_in_threadpool(service.search, event, data, guest_id=guest_id, save_selfie=save_selfie,
                                          show_more=show_more)
        # A plain JSONResponse: hundreds of results through FastAPI's generic encoder cost ~10 ms.
        return JSONResponse(_outcome(outcome), headers=NO_STORE)

    @app.post("/api/e/{token}/search-saved", tags=["guest"], response_model=SearchOut,
              responses=_errors(400, 404, 413, 422, 503))
    async def search_saved(event: GuestEventDep, body: SavedSearchIn, service: ServiceDep) -> JSONResponse:
        guest_id = service.guest_id(body.guest_id)
        outcome = await run_in_threadpool(service.search, event, None, guest_id=guest_id,
                                          selfie_token=body.selfie_token, show_more=body.show_more)
        return JSONResponse(_outcome(outcome), headers=NO_STORE)

    @app.post("/api/e/{token}/feedback", tags=["guest"], response_model=StatusOut,
              responses=_errors(400, 404, 413, 422))
    def feedback(event: GuestEventDep, body: FeedbackIn, service: ServiceDep) -> dict[str, str]:
        service.hide(event, body.guest_id, body.photo_id)
        return {"status": "hidden"}

    @app.post("/api/e/{token}/forget", tags=["guest"], response_model=ForgetOut,
              responses=_errors(400, 404, 413, 422))
    def forget(event: GuestEventDep, body: ForgetIn, service: ServiceDep) -> dict[str, bool]:
        return service.delete_guest_data(event, body.guest_id, body.selfie_token)

    @app.get("/api/e/{token}/photos/{photo_id}/original", tags=["guest"], response_model=UrlOut,
             responses=_errors(400, 404, 422))
    def original(event: GuestEventDep, photo_id: str, service: ServiceDep,
                 x_guest_id: Annotated[str | None, Header()] = None) -> JSONResponse:
        if not x_guest_id:
            raise NotFoundError("not found")
        return JSONResponse({"url": service.original_url(event, x_guest_id, photo_id)}, headers=NO_STORE)

    @app.get("/files/{key:path}", tags=["files"], response_class=Response, responses={
        200: {"description": "The file (a JPEG for previews and thumbnails)",
              "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                          "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **_errors(403, 404, 422)})
    def signed_file(key: str, service: ServiceDep, exp: str = "", sig: str = "") -> Response:
        # A link without its signature is refused like a wrong one (403), not as a malformed request (422).
        data = service.read_signed(key, exp, sig)
        media = "image/jpeg" if key.endswith(".jpg") else "application/octet-stream"
        return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=600"})

    # Rekognition-compatible API (POST / with X-Amz-Target, SigV4): unmodified AWS SDK clients.
    app.include_router(rekognition_router(settings))
    return app


def _html_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))
