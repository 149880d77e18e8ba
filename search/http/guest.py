"""Guest API (`/e/{token}`, `/api/e/{token}/...`, the event's link token): the kiosk page, selfie
search, saved-selfie search, feedback, forgetting and links to granted originals.

Answers that carry signed URLs or link tokens are never cached (Cache-Control: no-store); the kiosk
page runs under a strict Content-Security-Policy that allows only its own inline script and style.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from picsort_local.errors import NotFoundError, PayloadTooLargeError
from search.http.deps import GuestEventDep, ServiceDep, SettingsDep
from search.http.errors import error_responses
from search.http.schemas import FeedbackIn, ForgetIn, ForgetOut, SavedSearchIn, SearchOut, StatusOut, UrlOut
from search.services.guest import SearchOutcome

router = APIRouter(tags=["guest"])

SHOW_MORE = "also return the capped \"maybe\" tier"
NO_STORE = {"Cache-Control": "no-store"}  # pages and answers that carry links or signed URLs


def kiosk_csp(page: str) -> str:
    """Only this server, and only the page's own inline script and style (by their sha256): no
    other script can run in the kiosk, and no other site may frame it."""
    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
                        for b in bodies)

    return ("default-src 'none'; " f"script-src {hashes('script')}; style-src {hashes('style')}; "
            "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@functools.cache
def _kiosk() -> tuple[str, str]:
    """(page template, its CSP): read once, on the first kiosk request."""
    page = files("search").joinpath("static/kiosk.html").read_text(encoding="utf-8")
    return page, kiosk_csp(page)


def _html_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


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


@router.get("/e/{token}", response_class=HTMLResponse, responses=error_responses(404, 422, html_route=True))
def kiosk(event: GuestEventDep) -> HTMLResponse:
    page, csp = _kiosk()
    return HTMLResponse(page.replace("{{EVENT_NAME}}", _html_escape(event.name)),
                        headers={"Content-Security-Policy": csp, **NO_STORE})


@router.post("/api/e/{token}/search", response_model=SearchOut,
             responses=error_responses(400, 404, 413, 415, 422, 503))
async def search(event: GuestEventDep, service: ServiceDep, settings: SettingsDep,
                 selfie: Annotated[UploadFile, File(description="a selfie with exactly one face")],
                 save_selfie: Annotated[bool, Form()] = False,
                 show_more: Annotated[bool, Form(description=SHOW_MORE)] = False,
                 x_guest_id: Annotated[str | None, Header()] = None) -> JSONResponse:
    data = await selfie.read(settings.max_selfie_bytes + 1)
    if len(data) > settings.max_selfie_bytes:
        raise PayloadTooLargeError(f"selfie over {settings.max_selfie_bytes} bytes")
    guest_id = service.guest.guest_id(x_guest_id)
    outcome = await run_in_threadpool(service.guest.search, event, data, guest_id=guest_id, save_selfie=save_selfie,
                                      show_more=show_more)
    # A plain JSONResponse: hundreds of results through FastAPI's generic encoder cost ~10 ms.
    return JSONResponse(_outcome(outcome), headers=NO_STORE)


@router.post("/api/e/{token}/search-saved", response_model=SearchOut,
             responses=error_responses(400, 404, 413, 422, 503))
async def search_saved(event: GuestEventDep, body: SavedSearchIn, service: ServiceDep) -> JSONResponse:
    guest_id = service.guest.guest_id(body.guest_id)
    outcome = await run_in_threadpool(service.guest.search, event, None, guest_id=guest_id,
                                      selfie_token=body.selfie_token, show_more=body.show_more)
    return JSONResponse(_outcome(outcome), headers=NO_STORE)


@router.post("/api/e/{token}/feedback", response_model=StatusOut,
             responses=error_responses(400, 404, 413, 422))
def feedback(event: GuestEventDep, body: FeedbackIn, service: ServiceDep) -> dict[str, str]:
    service.guest.hide(event, body.guest_id, body.photo_id)
    return {"status": "hidden"}


@router.post("/api/e/{token}/forget", response_model=ForgetOut, responses=error_responses(400, 404, 413, 422))
def forget(event: GuestEventDep, body: ForgetIn, service: ServiceDep) -> dict[str, bool]:
    return service.guest.delete_guest_data(event, body.guest_id, body.selfie_token)


@router.get("/api/e/{token}/photos/{photo_id}/original", response_model=UrlOut,
            responses=error_responses(400, 404, 422))
def original(event: GuestEventDep, photo_id: str, service: ServiceDep,
             x_guest_id: Annotated[str | None, Header()] = None) -> JSONResponse:
    if not x_guest_id:
        raise NotFoundError("not found")
    return JSONResponse({"url": service.guest.original_url(event, x_guest_id, photo_id)}, headers=NO_STORE)
