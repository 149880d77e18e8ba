"""Signed file links (`/files/{key}?exp=&sig=`): previews, thumbnails and granted originals."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from search.http.deps import ServiceDep
from search.http.errors import error_responses

router = APIRouter(tags=["files"])

_FILE_CONTENT = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


@router.get("/files/{key:path}", response_class=Response, responses={
    200: {"description": "The file (a JPEG for previews and thumbnails)", "content": _FILE_CONTENT},
    **error_responses(403, 404, 422)})
def signed_file(key: str, service: ServiceDep, exp: str = "", sig: str = "", h: str = "") -> Response:
    # A link without its signature is refused like a wrong one (403), not as a malformed request (422).
    # `h`: the holder of an original's link (its grant is checked at every download).
    data = service.files.read_signed(key, exp, sig, h)
    media = "image/jpeg" if key.endswith(".jpg") else "application/octet-stream"
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=600"})
