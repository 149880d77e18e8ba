"""The FastAPI app: host API (admin key), guest API (event link token), signed files, kiosk page, and
the Rekognition-compatible API (`POST /`, SigV4).

This is the composition root of the HTTP side: the lifespan builds the service (engine, stores) once
and keeps it, the settings and the one `Metrics` on `app.state`; routers per area do the rest
(`ops`, `host`, `guest`, `files`, `search.rekognition.router`). Route handlers only translate HTTP to
the service's plain functions; domain errors become answers in `search.http.errors`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from picsort_local.errors import PayloadTooLargeError
from picsort_local.settings import Settings
from search.access_log import install as redact_access_log
from search.http import files, guest, host, ops
from search.http.errors import error_response, install_error_handlers
from search.metrics import Metrics
from search.rekognition.router import rekognition_router
from search.service import PicsortService

DESCRIPTION = "Self-hosted event face search: host API (X-Admin-Key) and guest API (link token)."
# On every answer: guest pages and API answers must never be indexed by search engines, the link token
# must not leak in Referer, and no answer may be sniffed into another content type.
SECURITY_HEADERS = {"X-Robots-Tag": "noindex, nofollow", "Referrer-Policy": "no-referrer",
                    "X-Content-Type-Options": "nosniff"}


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_access_log()
        if getattr(app.state, "service", None) is None:
            app.state.service = await run_in_threadpool(PicsortService, settings, metrics=app.state.metrics)
        await run_in_threadpool(app.state.service.jobs.resume_pending)
        app.state.ready = True
        yield
        app.state.ready = False
        await run_in_threadpool(app.state.service.close)

    return lifespan


CallNext = Callable[[Request], Awaitable[Response]]


def _guard_and_measure(settings: Settings,
                       metrics: Metrics) -> Callable[[Request, CallNext], Awaitable[Response]]:
    """Refuse a declared body over the limit before reading it; add the security headers; count the
    request under fixed labels (the route template, never the raw path)."""
    limit = settings.service.max_request_bytes

    async def guard_and_measure(request: Request, call_next: CallNext) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response: Response = error_response(PayloadTooLargeError(f"request body over {limit} bytes"))
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        route = request.scope.get("route")
        metrics.request(request.method, getattr(route, "path", "unmatched"), response.status_code,
                        time.perf_counter() - started)
        return response

    return guard_and_measure


def create_app(settings: Settings, service: PicsortService | None = None) -> FastAPI:
    """The app; without `service`, the lifespan builds one from `settings` (models load at start-up)."""
    docs = settings.service.api_docs  # off by default: Swagger UI and ReDoc come from a CDN
    app = FastAPI(title="Picsort Local", version="0.1.0", lifespan=_lifespan(settings), description=DESCRIPTION,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None)
    app.state.service = service
    app.state.ready = service is not None
    app.state.settings = settings
    # One Metrics per process: the service counts its events where the middleware counts requests.
    app.state.metrics = service.metrics if service is not None else Metrics()
    app.state.rekognition = None  # a RekognitionBackend, built on the first Rekognition request
    install_error_handlers(app)
    app.middleware("http")(_guard_and_measure(settings, app.state.metrics))
    for router in (ops.router, host.router, guest.router, files.router):
        app.include_router(router)
    # Rekognition-compatible API (POST / with X-Amz-Target, SigV4): unmodified AWS SDK clients.
    app.include_router(rekognition_router(settings))
    return app


__all__ = ["create_app"]
