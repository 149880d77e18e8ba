"""Domain errors -> HTTP answers: the one mapping for the picsort API, and the handlers of both APIs.

Route handlers and services raise `picsort_local.errors`; nothing else turns them into responses.
Which API a request belongs to is decided here, once: on the Rekognition route an error answers in
AWS's wire shape (`search.rekognition.wire.aws_error`), everywhere else as `{"error", "message", ...}`
with the status from `_STATUS`. The OpenAPI `responses` of each route (`error_responses`) document
the same statuses.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from picsort_local.errors import (
    AlreadyExistsError,
    AuthError,
    DatabaseUnavailableError,
    DeviceUnavailableError,
    ImageTooLargeError,
    InternalFault,
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
from search.http.schemas import ErrorOut, NoRouteOut
from search.rekognition import wire
from search.rekognition.router import ROUTE_NAME, operation_label, request_id

logger = logging.getLogger(__name__)

# Domain error -> HTTP status, first match wins (subclasses before their bases); anything else is 400.
# InvalidImageError (other than too large) is decided by its reason, in `http_status`.
_STATUS: tuple[tuple[type[PicsortError], int], ...] = (
    (NotFoundError, 404),
    (AuthError, 401),
    (SignatureError, 403),
    (PayloadTooLargeError, 413),
    (ImageTooLargeError, 413),
    (TooManyFacesError, 422),
    (NoFaceError, 422),
    (AlreadyExistsError, 409),
    (InvalidRequestError, 400),
    (ModelPackError, 503),
    (DeviceUnavailableError, 503),
    (DatabaseUnavailableError, 503),
)
_UNSUPPORTED_IMAGE = ("not_an_image", "unsupported")  # 415; other unusable images are 422


def _refused_image(exc: PicsortError) -> InvalidImageError | None:
    return exc if isinstance(exc, InvalidImageError) and not isinstance(exc, ImageTooLargeError) else None


def http_status(exc: PicsortError) -> int:
    image = _refused_image(exc)  # no other class in the table is an image error
    if image is not None:
        return 415 if image.reason in _UNSUPPORTED_IMAGE else 422
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 400)


def error_body(exc: PicsortError) -> dict[str, Any]:
    if isinstance(exc, NotFoundError):
        return {"error": "not_found", "message": "not found"}  # never say what is missing
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    image = _refused_image(exc)
    if image is not None:
        body["reason"] = image.reason
    elif isinstance(exc, TooManyFacesError):
        body["faces"] = exc.count
        body["boxes"] = [{"left": b[0], "top": b[1], "width": b[2], "height": b[3]} for b in exc.boxes]
    elif isinstance(exc, NoFaceError):
        body["faces"] = 0
    return body


def error_response(exc: PicsortError) -> JSONResponse:
    """The picsort API's answer to a domain error."""
    return JSONResponse(error_body(exc), status_code=http_status(exc))


# ---- OpenAPI -------------------------------------------------------------------------------------
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


def error_responses(*statuses: int, html_route: bool = False) -> dict[int | str, dict[str, Any]]:
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


# ---- handlers ------------------------------------------------------------------------------------
def _is_rekognition(request: Request) -> bool:
    return getattr(request.scope.get("route"), "name", None) == ROUTE_NAME


def _rekognition_error(request: Request, exc: PicsortError) -> Response:
    fault = wire.aws_error(exc)
    rid = request_id(request)
    if isinstance(exc, InternalFault):  # a bug: its traceback
        logger.error("rekognition %s failed (%s)", operation_label(request), rid, exc_info=exc.__cause__)
    else:
        noisy = fault.status >= 500 or fault.type.endswith(("SignatureException", "ClientException"))
        (logger.warning if noisy else logger.debug)(
            "rekognition %s: %s %s (%s)", operation_label(request), fault.type, fault.message, rid)
    return wire.error_response(fault, rid)


async def on_domain_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, PicsortError):  # registered for PicsortError only
        raise exc
    return _rekognition_error(request, exc) if _is_rekognition(request) else error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    # The framework's own refusals (a JSON or multipart body that cannot be parsed: 400; a wrong
    # method: 405) in the shape of every other error. Its 404 for a path that matches no route
    # keeps Starlette's body (documented as NoRouteOut).
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if exc.status_code == 404:
        return JSONResponse({"detail": exc.detail}, status_code=404, headers=exc.headers)
    code = {400: "invalid_request", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code,
                        headers=exc.headers)


async def on_validation_error(request: Request, exc: Exception) -> Response:
    # FastAPI's own handler echoes the offending input, which fails to encode (a 500) when it is
    # NaN or Infinity from the JSON body; only where and why are returned here.
    if not isinstance(exc, RequestValidationError):
        raise exc
    detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    return JSONResponse({"error": "invalid_request", "message": "the request is not valid", "detail": detail},
                        status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PicsortError, on_domain_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


__all__ = ["error_body", "error_response", "error_responses", "http_status", "install_error_handlers"]
