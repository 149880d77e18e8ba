"""Rekognition-compatible HTTP endpoint: unmodified AWS SDK clients work with only `endpoint_url` changed.

Protocol (AWS JSON 1.1, as the SDKs speak it): `POST /` with `X-Amz-Target: RekognitionService.<Op>`,
`Content-Type: application/x-amz-json-1.1`, a SigV4-signed request (`search.rekognition.sigv4`, checked
against `settings.rekognition`: `PICSORT_REKOGNITION_ACCESS_KEY_ID` / `..._SECRET_ACCESS_KEY`) and a
JSON body with AWS's field names (`search.rekognition.wire`). Errors are raised as domain errors; the
app's one error handler (`search.http.errors`) answers them on this route in AWS's shape
(`wire.aws_error`), which botocore turns into its modelled exceptions.

Order of checks: the body is read (with its size limit: the signature covers its hash), the signature
is verified, and only then are the target, the content type and the JSON looked at, so an unsigned
client learns nothing about them.

Operations (`search.rekognition.operations`) run on `LocalProvider` built from the host API's
`PicsortService` (one engine, catalog and face store, one search decision).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from picsort_local.errors import AwsError, ImageTooLargeError, InternalFault, PicsortError
from picsort_local.settings import Settings
from search.rekognition import wire
from search.rekognition.images import ImageReader
from search.rekognition.local import LocalProvider
from search.rekognition.operations import OPERATIONS, Operation, run
from search.rekognition.protocol import FaceProvider
from search.rekognition.sigv4 import SignedRequest, SigV4Verifier

logger = logging.getLogger(__name__)

# Two 5 MB images (CompareFaces) grow by 4/3 in base64; the rest of a request is small.
MAX_BODY_BYTES = 16 * 1024 * 1024
# The route's name: the app's error handler answers in AWS's shape on this route only.
ROUTE_NAME = "rekognition"


@dataclass(frozen=True)
class RekognitionBackend:
    """What the operations run on. Kept on `app.state.rekognition`: built from the app's service on the
    first request unless the app was given one (a test's stub provider, say)."""

    provider: FaceProvider
    images: ImageReader


def request_id(request: Request) -> str:
    """This request's x-amzn-RequestId (made on first use, so an answer and its log line share it)."""
    found = getattr(request.state, "aws_request_id", None)
    if not isinstance(found, str):
        found = wire.new_request_id()
        request.state.aws_request_id = found
    return found


def operation_label(request: Request) -> str:
    """The operation's name for logs, once the request is known to name one ("?" before)."""
    found = getattr(request.state, "aws_operation", None)
    return found if isinstance(found, str) else "?"


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ImageTooLargeError(f"request body over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ImageTooLargeError(f"request body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _signed_request(request: Request, body: bytes) -> SignedRequest:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw)
    return SignedRequest(request.method, raw_path.decode("latin-1").split("?", 1)[0],
                         request.scope.get("query_string", b"").decode("latin-1"), headers, body)


def _operation(request: Request) -> tuple[str, Operation]:
    target = request.headers.get("x-amz-target", "")
    name = wire.operation_name(target)
    operation = OPERATIONS.get(name)
    if operation is None:
        raise AwsError("UnknownOperationException", f"Unknown or unsupported operation {target[:80]!r}")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != wire.CONTENT_TYPE:
        raise AwsError("SerializationException", f"Content-Type must be {wire.CONTENT_TYPE}")
    return name, operation


def _backend(request: Request, settings: Settings) -> RekognitionBackend:
    # Built on first use (in the event loop thread, so once), sharing the host API's service.
    state = request.app.state
    backend: RekognitionBackend | None = getattr(state, "rekognition", None)
    if backend is None:
        service = state.service
        images = ImageReader(settings.storage, service.catalog.blobs)
        backend = RekognitionBackend(LocalProvider.from_service(service), images)
        state.rekognition = backend
    return backend


async def _answer(request: Request, settings: Settings, verifier: SigV4Verifier) -> Response:
    rid = request_id(request)
    body = await _read_body(request)
    key_id = verifier.verify(_signed_request(request, body))
    name, operation = _operation(request)
    request.state.aws_operation = name
    backend = _backend(request, settings)
    result = await run_in_threadpool(run, operation, backend.provider, backend.images, body)
    logger.debug("rekognition %s by %s: ok (%s)", name, key_id, rid)
    return wire.response(result, rid)


def rekognition_router(settings: Settings) -> APIRouter:
    """`POST /`: the Rekognition-compatible API (mounted by `search.http.app.create_app`)."""
    router = APIRouter()
    verifier = SigV4Verifier.from_settings(settings.rekognition)
    if not settings.rekognition.access_key_id:
        logger.info("Rekognition-compatible API: no access key configured, every request will be refused")

    @router.post("/", include_in_schema=False, name=ROUTE_NAME)
    async def rekognition(request: Request) -> Response:
        try:
            return await _answer(request, settings, verifier)
        except PicsortError:
            raise
        except Exception as exc:
            raise InternalFault() from exc

    return router


__all__ = ["MAX_BODY_BYTES", "ROUTE_NAME", "RekognitionBackend", "operation_label",
           "rekognition_router", "request_id"]
