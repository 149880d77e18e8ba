"""Rekognition-compatible HTTP endpoint: unmodified AWS SDK clients work with only `endpoint_url` changed.

Protocol (AWS JSON 1.1, as the SDKs speak it): `POST /` with `X-Amz-Target: RekognitionService.<Op>`,
`Content-Type: application/x-amz-json-1.1`, a SigV4-signed request and a JSON body with AWS's field
names. Answers are JSON with the same names; errors are HTTP 400 (500 for server faults) with
`{"__type": "<Name>", "Message": ...}`, which botocore turns into its modelled exceptions.

Operations: CreateCollection, DeleteCollection, ListCollections, DescribeCollection, IndexFaces,
ListFaces, DeleteFaces, SearchFaces, SearchFacesByImage, DetectFaces, CompareFaces. They run on
`LocalProvider` built from the host API's `PicsortService` (one engine, catalog and index cache).

Authentication: SigV4 only, checked here against `Settings.rekognition_access_key_id` /
`rekognition_secret_access_key` (implemented from the published SigV4 specification): the canonical
request is rebuilt from what arrived (method, path, query, the signed headers, SHA-256 of the body),
then the string to sign and the derived key (AWS4+secret -> date -> region -> "rekognition" ->
"aws4_request"); signatures are compared in constant time. Host, X-Amz-Date and X-Amz-Target must be
signed, so a captured request cannot be replayed as another operation; requests older or newer than
15 minutes are refused. Errors, all HTTP 400 as AWS's JSON services answer them:
MissingAuthenticationTokenException (no Authorization header), IncompleteSignatureException
(malformed), UnrecognizedClientException (unknown key id), InvalidSignatureException (wrong
signature, expired, wrong scope).

Image.S3Object reads `Name` as a key of the configured blob store. With the MinIO backend `Bucket`
must be `settings.minio_bucket`; the local store has no buckets, so any Bucket is accepted there.
Keys under `selfies/` (guests' saved selfies) are never readable this way. S3 objects may be up to
15 MB, Image.Bytes up to 5 MB (after base64 decoding), as on AWS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from picsort_local.errors import (
    AlreadyExistsError,
    AwsError,
    DeviceUnavailableError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidPaginationTokenError,
    InvalidRequestError,
    InvalidS3ObjectError,
    ModelPackError,
    NotFoundError,
    PicsortError,
)
from picsort_local.provider import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    DEFAULT_SIMILARITY_THRESHOLD,
    MAX_IMAGE_BYTES,
    MAX_S3_IMAGE_BYTES,
    BoundingBox,
    ComparedFace,
    Face,
    FaceDetail,
    check_image_size,
)
from picsort_local.settings import Settings
from search.local_provider import LocalProvider
from storage.blobs import BlobStore, validate_key

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "RekognitionService."
SERVICE = "rekognition"
# Two 5 MB images (CompareFaces) grow by 4/3 in base64; the rest of a request is small.
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_CLOCK_SKEW = timedelta(minutes=15)
_ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# Nothing that could only be meant for guests is readable through Image.S3Object: guests' saved
# selfies (kept under their event since schema 4; "selfies/" was the folder before).
_PRIVATE_KEY = re.compile(r"^(?:selfies/|events/[^/]+/selfies/)")
_REQUIRED_SIGNED = ("host", "x-amz-date", "x-amz-target")


# ---- SigV4 -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedRequest:
    """What arrived, as the signer saw it: raw (still percent-encoded) path and query."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), in arrival order
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return ",".join(values) if values else None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(req: SignedRequest, signed_headers: list[str]) -> str:
    # Services other than S3 sign the path URI-encoded once more on top of its wire encoding.
    path = quote(req.path or "/", safe="/~")
    lines = []
    for name in signed_headers:
        values = [" ".join(v.split()) for k, v in req.headers if k == name]
        lines.append(f"{name}:{','.join(values)}\n")
    payload_hash = hashlib.sha256(req.body).hexdigest()
    return "\n".join([req.method.upper(), path, _canonical_query(req.query), "".join(lines),
                      ";".join(signed_headers), payload_hash])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([_ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


def _parse_authorization(value: str) -> tuple[list[str], list[str], str]:
    """-> (credential parts, signed header names, signature)."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != _ALGORITHM:
        raise AwsError("IncompleteSignatureException", f"Unsupported authorization algorithm {algorithm[:40]!r}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise AwsError("IncompleteSignatureException",
                       f"Authorization header requires {', '.join(missing)} parameter(s)")
    credential = fields["Credential"].split("/")
    if len(credential) != 5:
        raise AwsError("IncompleteSignatureException",
                       "Credential must have the form <key id>/<date>/<region>/<service>/aws4_request")
    return credential, fields["SignedHeaders"].split(";"), fields["Signature"]


class SigV4Verifier:
    """Checks AWS Signature Version 4 on incoming requests against a set of access keys."""

    def __init__(self, keys: Mapping[str, str], *, region: str = "", service: str = SERVICE,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._keys = {k: v for k, v in keys.items() if k and v}
        self._region = region
        self._service = service
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    @classmethod
    def from_settings(cls, settings: Settings) -> SigV4Verifier:
        keys = {settings.rekognition_access_key_id: settings.rekognition_secret_access_key.get_secret_value()}
        return cls(keys, region=settings.rekognition_region)

    def _secret(self, key_id: str) -> str | None:
        found = None
        # Constant-time comparison of every configured id, so timing does not reveal a valid prefix.
        for known, secret in self._keys.items():
            if hmac.compare_digest(known.encode(), key_id.encode()):
                found = secret
        return found

    def verify(self, req: SignedRequest) -> str:
        """The access key id that signed `req`; raises AwsError when it is not validly signed."""
        auth = req.header("authorization")
        if not auth:
            raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token")
        (key_id, date, region, service, terminal), signed, signature = _parse_authorization(auth)
        if terminal != "aws4_request":
            raise AwsError("IncompleteSignatureException", "Credential scope must end with aws4_request")
        if signed != sorted(signed) or any(not h or h != h.lower() for h in signed):
            raise AwsError("IncompleteSignatureException", "SignedHeaders must be sorted lower-case header names")
        for name in _REQUIRED_SIGNED:
            if name not in signed:
                raise AwsError("IncompleteSignatureException", f"'{name}' must be a signed header")
        if any(req.header(h) is None for h in signed):
            raise AwsError("IncompleteSignatureException", "a signed header is missing from the request")
        secret = self._secret(key_id)
        if secret is None:
            raise AwsError("UnrecognizedClientException", "The security token included in the request is invalid.")
        amz_date = req.header("x-amz-date") or ""
        try:
            when = datetime.strptime(amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            raise AwsError("IncompleteSignatureException", "X-Amz-Date must be in ISO 8601 basic format") from None
        if date != amz_date[:8]:
            raise AwsError("InvalidSignatureException",
                           f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                           f"'{date[:8]}' != '{amz_date[:8]}'")
        now = self._clock()
        if when < now - MAX_CLOCK_SKEW:
            raise AwsError("InvalidSignatureException", f"Signature expired: {amz_date} is now earlier than "
                           f"{(now - MAX_CLOCK_SKEW).strftime(_AMZ_DATE_FORMAT)}")
        if when > now + MAX_CLOCK_SKEW:
            raise AwsError("InvalidSignatureException", f"Signature not yet current: {amz_date} is still later than "
                           f"{(now + MAX_CLOCK_SKEW).strftime(_AMZ_DATE_FORMAT)}")
        if self._region and region != self._region:
            raise AwsError("InvalidSignatureException", f"Credential should be scoped to a valid region, not '{region[:40]}'.")
        if service != self._service:
            raise AwsError("InvalidSignatureException", f"Credential should be scoped to correct service: '{self._service}'.")
        scope = f"{date}/{region}/{service}/aws4_request"
        expected = hmac.new(signing_key(secret, date, region, service),
                            string_to_sign(amz_date, scope, canonical_request(req, signed)).encode("utf-8"),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise AwsError("InvalidSignatureException",
                           "The request signature we calculated does not match the signature you provided. "
                           "Check your AWS Secret Access Key and signing method. Consult the service documentation "
                           "for details.")
        return key_id


# ---- request values --------------------------------------------------------------------------------
class ImageReader:
    """Turns a request's Image structure into bytes (base64 Bytes or an S3Object in the blob store)."""

    def __init__(self, settings: Settings, blobs: BlobStore) -> None:
        self._settings = settings
        self._blobs = blobs

    def read(self, value: object, field: str = "Image") -> bytes:
        if not isinstance(value, dict):
            raise InvalidRequestError(f"{field} is required (with Bytes or S3Object)")
        if ("Bytes" in value) == ("S3Object" in value):
            raise InvalidRequestError(f"{field} needs exactly one of Bytes or S3Object")
        if "Bytes" in value:
            raw = value["Bytes"]
            if not isinstance(raw, str):
                raise InvalidRequestError(f"{field}.Bytes must be base64 text")
            # Cheap size check before decoding: base64 is 4 characters per 3 bytes.
            if len(raw) > (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4:
                raise ImageTooLargeError(f"{field}.Bytes is over {MAX_IMAGE_BYTES} bytes")
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequestError(f"{field}.Bytes is not valid base64") from None
            if not data:
                raise InvalidRequestError(f"{field}.Bytes must not be empty")
            return check_image_size(data, MAX_IMAGE_BYTES)
        return self._s3(value["S3Object"], field)

    def _s3(self, obj: object, field: str) -> bytes:
        if not isinstance(obj, dict) or not isinstance(obj.get("Bucket"), str) or not isinstance(obj.get("Name"), str):
            raise InvalidRequestError(f"{field}.S3Object needs Bucket and Name")
        bucket, name = obj["Bucket"], obj["Name"]
        if obj.get("Version") is not None:
            raise InvalidS3ObjectError("S3 object versions are not supported by this server")
        if self._settings.blob_backend == "minio" and bucket != self._settings.minio_bucket:
            raise InvalidS3ObjectError(f"Unable to get object metadata from S3. Bucket {bucket[:64]!r} is not served here.")
        try:
            validate_key(name)
            if _PRIVATE_KEY.match(name):
                raise NotFoundError(name)
            data = self._blobs.get(name)
        except (InvalidRequestError, NotFoundError):
            raise InvalidS3ObjectError("Unable to get object metadata from S3. Check object key, region and/or "
                                       "access permissions.") from None
        return check_image_size(data, MAX_S3_IMAGE_BYTES)


def _get(body: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = body.get(name, default)
    return default if value is None else value


def _required(body: Mapping[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise InvalidRequestError(f"{name} is required")
    return body[name]


# ---- response values -------------------------------------------------------------------------------
def _box(b: BoundingBox) -> dict[str, float]:
    return {"Width": b.width, "Height": b.height, "Left": b.left, "Top": b.top}


def _detail(d: FaceDetail | ComparedFace) -> dict[str, Any]:
    out: dict[str, Any] = {"BoundingBox": _box(d.bounding_box), "Confidence": d.confidence}
    if d.landmarks:
        out["Landmarks"] = [{"Type": m.type, "X": m.x, "Y": m.y} for m in d.landmarks]
    if d.pose is not None:
        out["Pose"] = {"Roll": d.pose.roll, "Yaw": d.pose.yaw, "Pitch": d.pose.pitch}
    if d.quality is not None:
        out["Quality"] = {"Brightness": d.quality.brightness, "Sharpness": d.quality.sharpness}
    return out


def _face(f: Face, model_version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"FaceId": f.face_id, "BoundingBox": _box(f.bounding_box), "ImageId": f.image_id,
                           "Confidence": f.confidence, "IndexFacesModelVersion": model_version}
    if f.external_image_id is not None:
        out["ExternalImageId"] = f.external_image_id
    return out


# ---- operations ------------------------------------------------------------------------------------
Operation = Callable[[LocalProvider, ImageReader, dict[str, Any]], dict[str, Any]]


def _create_collection(p: LocalProvider, _: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    created = p.create_collection(_required(body, "CollectionId"))  # Tags are accepted and not kept
    return {"StatusCode": created.status_code, "CollectionArn": created.collection_arn,
            "FaceModelVersion": created.face_model_version}


def _delete_collection(p: LocalProvider, _: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    p.delete_collection(_required(body, "CollectionId"))
    return {"StatusCode": 200}


def _list_collections(p: LocalProvider, _: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    page = p.list_collections(_get(body, "MaxResults"), _get(body, "NextToken"))
    out: dict[str, Any] = {"CollectionIds": list(page.collection_ids), "FaceModelVersions": list(page.face_model_versions)}
    if page.next_token is not None:
        out["NextToken"] = page.next_token
    return out


def _describe_collection(p: LocalProvider, _: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    d = p.describe_collection(_required(body, "CollectionId"))
    return {"FaceCount": d.face_count, "FaceModelVersion": d.face_model_version, "CollectionARN": d.collection_arn,
            "CreationTimestamp": d.creation_timestamp.timestamp(), "UserCount": d.user_count}


def _index_faces(p: LocalProvider, images: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    collection_id = _required(body, "CollectionId")
    result = p.index_faces(collection_id, images.read(body.get("Image")), _get(body, "ExternalImageId"),
                           _get(body, "MaxFaces"), _get(body, "QualityFilter", "AUTO"))
    v = result.face_model_version
    return {
        "FaceRecords": [{"Face": _face(r.face, v), "FaceDetail": _detail(r.face_detail)} for r in result.face_records],
        "UnindexedFaces": [{"Reasons": list(u.reasons), "FaceDetail": _detail(u.face_detail)}
                           for u in result.unindexed_faces],
        "FaceModelVersion": v,
    }


def _list_faces(p: LocalProvider, _: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("UserId") is not None or body.get("FaceIds") is not None:
        raise InvalidRequestError("ListFaces filters (UserId, FaceIds) are not supported by this server")
    page = p.list_faces(_required(body, "CollectionId"), _get(body, "MaxResults"), _get(body, "NextToken"))
    out: dict[str, Any] = {"Faces": [_face(f, page.face_model_version) for f in page.faces],
                           "FaceModelVersion": page.face_model_version}
    if page.next_token is not None:
        out["NextToken"] = page.next_token
    return out


def _delete_faces(p: LocalProvider, _: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    result = p.delete_faces(_required(body, "CollectionId"), _required(body, "FaceIds"))
    return {"DeletedFaces": list(result.deleted_faces),
            "UnsuccessfulFaceDeletions": [{"FaceId": f, "Reasons": ["FACE_NOT_FOUND"]} for f in result.not_found]}


def _search_faces(p: LocalProvider, _: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    result = p.search_faces(_required(body, "CollectionId"), _required(body, "FaceId"),
                            _get(body, "FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
                            _get(body, "MaxFaces", DEFAULT_SEARCH_MAX_FACES))
    v = result.face_model_version
    return {"SearchedFaceId": result.searched_face_id, "FaceModelVersion": v,
            "FaceMatches": [{"Similarity": m.similarity, "Face": _face(m.face, v)} for m in result.face_matches]}


def _search_faces_by_image(p: LocalProvider, images: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    collection_id = _required(body, "CollectionId")
    result = p.search_faces_by_image(collection_id, images.read(body.get("Image")),
                                     _get(body, "FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
                                     _get(body, "MaxFaces", DEFAULT_SEARCH_MAX_FACES),
                                     _get(body, "QualityFilter", "NONE"))
    v = result.face_model_version
    return {"SearchedFaceBoundingBox": _box(result.searched_face_bounding_box),
            "SearchedFaceConfidence": result.searched_face_confidence, "FaceModelVersion": v,
            "FaceMatches": [{"Similarity": m.similarity, "Face": _face(m.face, v)} for m in result.face_matches]}


def _detect_faces(p: LocalProvider, images: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    # Attributes=["ALL"] is accepted; only the DEFAULT attributes exist here (no age, emotions...).
    return {"FaceDetails": [_detail(d) for d in p.detect_faces(images.read(body.get("Image")))]}


def _compare_faces(p: LocalProvider, images: ImageReader, body: dict[str, Any]) -> dict[str, Any]:
    result = p.compare_faces(images.read(body.get("SourceImage"), "SourceImage"),
                             images.read(body.get("TargetImage"), "TargetImage"),
                             _get(body, "SimilarityThreshold", DEFAULT_SIMILARITY_THRESHOLD),
                             _get(body, "QualityFilter", "NONE"))
    src = result.source_image_face
    return {"SourceImageFace": {"BoundingBox": _box(src.bounding_box), "Confidence": src.confidence},
            "FaceMatches": [{"Similarity": m.similarity, "Face": _detail(m.face)} for m in result.face_matches],
            "UnmatchedFaces": [_detail(f) for f in result.unmatched_faces]}


OPERATIONS: dict[str, Operation] = {
    "CreateCollection": _create_collection,
    "DeleteCollection": _delete_collection,
    "ListCollections": _list_collections,
    "DescribeCollection": _describe_collection,
    "IndexFaces": _index_faces,
    "ListFaces": _list_faces,
    "DeleteFaces": _delete_faces,
    "SearchFaces": _search_faces,
    "SearchFacesByImage": _search_faces_by_image,
    "DetectFaces": _detect_faces,
    "CompareFaces": _compare_faces,
}


# ---- errors ----------------------------------------------------------------------------------------
def aws_error(exc: PicsortError) -> tuple[str, str, int]:
    """(wire name, message, HTTP status) of a domain error: the one place that maps them."""
    if isinstance(exc, AwsError):
        return exc.aws_type, exc.message, exc.status
    if isinstance(exc, InvalidPaginationTokenError):
        return "InvalidPaginationTokenException", exc.message, 400
    if isinstance(exc, InvalidS3ObjectError):
        return "InvalidS3ObjectException", exc.message, 400
    if isinstance(exc, NotFoundError):
        return "ResourceNotFoundException", exc.message, 400
    if isinstance(exc, AlreadyExistsError):
        return "ResourceAlreadyExistsException", exc.message, 400
    if isinstance(exc, ImageTooLargeError):
        return "ImageTooLargeException", exc.message, 400
    if isinstance(exc, InvalidImageError):
        if exc.reason == "empty":
            return "InvalidParameterException", exc.message, 400
        return "InvalidImageFormatException", f"Request has invalid image format: {exc.message}", 400
    if isinstance(exc, InvalidRequestError):
        return "InvalidParameterException", exc.message, 400
    if isinstance(exc, (ModelPackError, DeviceUnavailableError)):
        return "InternalServerError", "the face models are not available", 500
    return "InternalServerError", "internal error", 500


def _response(payload: dict[str, Any], request_id: str, status: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status, media_type=CONTENT_TYPE,
                    headers={"x-amzn-RequestId": request_id})


def _error_response(exc: PicsortError, request_id: str) -> Response:
    name, message, status = aws_error(exc)
    response = _response({"__type": name, "Message": message}, request_id, status)
    response.headers["x-amzn-ErrorType"] = name
    return response


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
    name = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
    operation = OPERATIONS.get(name)
    if operation is None:
        raise AwsError("UnknownOperationException", f"Unknown or unsupported operation {target[:80]!r}")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != CONTENT_TYPE:
        raise AwsError("SerializationException", f"Content-Type must be {CONTENT_TYPE}")
    return name, operation


def _parse(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise AwsError("SerializationException", "the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise AwsError("SerializationException", "the request body must be a JSON object")
    return parsed


def _run(operation: Operation, provider: LocalProvider, images: ImageReader, body: bytes) -> dict[str, Any]:
    return operation(provider, images, _parse(body))


def _provider(request: Request) -> LocalProvider:
    # Built on first use (in the event loop thread, so once), sharing the host API's service.
    state = request.app.state
    provider: LocalProvider | None = getattr(state, "face_provider", None)
    if provider is None:
        provider = LocalProvider.from_service(state.service)
        state.face_provider = provider
    return provider


def rekognition_router(settings: Settings) -> APIRouter:
    """`POST /`: the Rekognition-compatible API (mounted by `search.app.create_app`)."""
    router = APIRouter()
    verifier = SigV4Verifier.from_settings(settings)
    if not settings.rekognition_access_key_id:
        logger.info("Rekognition-compatible API: no access key configured, every request will be refused")

    @router.post("/", include_in_schema=False)
    async def rekognition(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        name = "?"
        try:
            body = await _read_body(request)
            key_id = verifier.verify(_signed_request(request, body))
            name, operation = _operation(request)
            provider = _provider(request)
            images = ImageReader(settings, provider.catalog.blobs)
            result = await run_in_threadpool(_run, operation, provider, images, body)
            logger.debug("rekognition %s by %s: ok (%s)", name, key_id, request_id)
            return _response(result, request_id)
        except PicsortError as exc:
            wire, message, status = aws_error(exc)
            log = logger.warning if status >= 500 or wire.endswith(("SignatureException", "ClientException")) else logger.debug
            log("rekognition %s: %s %s (%s)", name, wire, message, request_id)
            return _error_response(exc, request_id)
        except Exception:  # a bug must still answer in the protocol, and be visible in the logs
            logger.exception("rekognition %s failed (%s)", name, request_id)
            return _error_response(PicsortError("internal error"), request_id)

    return router


__all__ = [
    "OPERATIONS",
    "AwsError",
    "ImageReader",
    "SigV4Verifier",
    "SignedRequest",
    "aws_error",
    "canonical_request",
    "rekognition_router",
    "signing_key",
    "string_to_sign",
]
