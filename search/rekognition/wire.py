"""Rekognition's wire format (AWS JSON 1.1): typed values <-> JSON with AWS's field names, and the error
table in both directions.

Both sides of the protocol use this module, so a field name is spelled once: the server encodes
`search.rekognition.protocol` values into answers (`*_to_json`) and the boto3 provider decodes AWS's
answers back into the same values (`*_from_json`). Errors: `aws_error` maps a domain error to the
`__type` name and status the server answers (HTTP 400, 500 for server faults); `domain_error` maps
an AWS error code a client receives back to a domain error.

JSON objects cross this module's boundary as `JsonObject` (`dict[str, Any]`): that is what the
wire format is; everything on the other side of the functions here is typed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fastapi.responses import Response

from picsort_local.errors import (
    AlreadyExistsError,
    AwsError,
    CollectionNotFoundError,
    DeviceUnavailableError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidPaginationTokenError,
    InvalidRequestError,
    InvalidS3ObjectError,
    ModelPackError,
    NotFoundError,
    PicsortError,
    ProviderRequestError,
)
from search.rekognition.protocol import (
    BoundingBox,
    CollectionDescription,
    CollectionPage,
    ComparedFace,
    CompareFacesMatch,
    CompareFacesResult,
    CreatedCollection,
    DeleteFacesResult,
    Face,
    FaceDetail,
    FaceMatch,
    FacePage,
    ImageQuality,
    IndexedFace,
    IndexFacesResult,
    Landmark,
    Pose,
    SearchFacesByImageResult,
    SearchFacesResult,
    UnindexedFace,
)

JsonObject = dict[str, Any]

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "RekognitionService."
FACE_NOT_FOUND = "FACE_NOT_FOUND"


# ---- requests --------------------------------------------------------------------------------------
def parse_body(body: bytes) -> JsonObject:
    """The request's JSON object (an empty body is an empty object, as the SDKs send no-argument calls)."""
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise AwsError("SerializationException", "the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise AwsError("SerializationException", "the request body must be a JSON object")
    return parsed


def optional(body: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A member that may be absent or null (both mean the default); its value is checked by the provider."""
    value = body.get(name, default)
    return default if value is None else value


def required(body: Mapping[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise InvalidRequestError(f"{name} is required")
    return body[name]


def operation_name(target: str) -> str:
    """`RekognitionService.<Op>` -> `<Op>` (empty when the target is not Rekognition's)."""
    return target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""


# ---- values: typed -> JSON -------------------------------------------------------------------------
def box_to_json(b: BoundingBox) -> JsonObject:
    return {"Width": b.width, "Height": b.height, "Left": b.left, "Top": b.top}


def detail_to_json(d: FaceDetail | ComparedFace) -> JsonObject:
    out: JsonObject = {"BoundingBox": box_to_json(d.bounding_box), "Confidence": d.confidence}
    if d.landmarks:
        out["Landmarks"] = [{"Type": m.type, "X": m.x, "Y": m.y} for m in d.landmarks]
    if d.pose is not None:
        out["Pose"] = {"Roll": d.pose.roll, "Yaw": d.pose.yaw, "Pitch": d.pose.pitch}
    if d.quality is not None:
        out["Quality"] = {"Brightness": d.quality.brightness, "Sharpness": d.quality.sharpness}
    return out


def face_to_json(f: Face, model_version: str) -> JsonObject:
    out: JsonObject = {"FaceId": f.face_id, "BoundingBox": box_to_json(f.bounding_box), "ImageId": f.image_id,
                       "Confidence": f.confidence, "IndexFacesModelVersion": model_version}
    if f.external_image_id is not None:
        out["ExternalImageId"] = f.external_image_id
    return out


def _matches_to_json(matches: Sequence[FaceMatch], model_version: str) -> list[JsonObject]:
    return [{"Similarity": m.similarity, "Face": face_to_json(m.face, model_version)} for m in matches]


def _with_token(out: JsonObject, next_token: str | None) -> JsonObject:
    if next_token is not None:
        out["NextToken"] = next_token
    return out


# ---- values: JSON -> typed (what a client reads back) ------------------------------------------
def box_from_json(d: Mapping[str, Any]) -> BoundingBox:
    return BoundingBox(width=float(d.get("Width", 0.0)), height=float(d.get("Height", 0.0)),
                       left=float(d.get("Left", 0.0)), top=float(d.get("Top", 0.0)))


def _landmarks(items: Sequence[Mapping[str, Any]] | None) -> tuple[Landmark, ...]:
    return tuple(Landmark(str(m["Type"]), float(m["X"]), float(m["Y"])) for m in items or ())


def _pose(d: Mapping[str, Any] | None) -> Pose | None:
    return Pose(float(d["Roll"]), float(d["Yaw"]), float(d["Pitch"])) if d else None


def _quality(d: Mapping[str, Any] | None) -> ImageQuality | None:
    return ImageQuality(float(d["Brightness"]), float(d["Sharpness"])) if d else None


def detail_from_json(d: Mapping[str, Any]) -> FaceDetail:
    return FaceDetail(box_from_json(d["BoundingBox"]), float(d.get("Confidence", 0.0)),
                      _landmarks(d.get("Landmarks")), _pose(d.get("Pose")), _quality(d.get("Quality")))


def compared_from_json(d: Mapping[str, Any]) -> ComparedFace:
    return ComparedFace(box_from_json(d["BoundingBox"]), float(d.get("Confidence", 0.0)),
                        _landmarks(d.get("Landmarks")), _pose(d.get("Pose")), _quality(d.get("Quality")))


def face_from_json(d: Mapping[str, Any]) -> Face:
    return Face(face_id=str(d["FaceId"]), bounding_box=box_from_json(d["BoundingBox"]),
                image_id=str(d.get("ImageId", "")), external_image_id=d.get("ExternalImageId"),
                confidence=float(d.get("Confidence", 0.0)))


def _matches_from_json(items: Sequence[Mapping[str, Any]]) -> tuple[FaceMatch, ...]:
    return tuple(FaceMatch(float(m["Similarity"]), face_from_json(m["Face"])) for m in items)


# ---- results, both ways ----------------------------------------------------------------------------
def created_collection_to_json(c: CreatedCollection) -> JsonObject:
    return {"StatusCode": c.status_code, "CollectionArn": c.collection_arn,
            "FaceModelVersion": c.face_model_version}


def created_collection_from_json(r: Mapping[str, Any]) -> CreatedCollection:
    return CreatedCollection(r.get("CollectionArn", ""), r.get("FaceModelVersion", ""),
                             int(r.get("StatusCode", 200)))


def collection_page_to_json(page: CollectionPage) -> JsonObject:
    return _with_token({"CollectionIds": list(page.collection_ids),
                        "FaceModelVersions": list(page.face_model_versions)}, page.next_token)


def collection_page_from_json(r: Mapping[str, Any]) -> CollectionPage:
    return CollectionPage(tuple(r.get("CollectionIds", [])), tuple(r.get("FaceModelVersions", [])),
                          r.get("NextToken"))


def collection_description_to_json(d: CollectionDescription) -> JsonObject:
    return {"FaceCount": d.face_count, "FaceModelVersion": d.face_model_version,
            "CollectionARN": d.collection_arn, "CreationTimestamp": d.creation_timestamp.timestamp(),
            "UserCount": d.user_count}


def collection_description_from_json(collection_id: str, r: Mapping[str, Any]) -> CollectionDescription:
    # boto3 turns the timestamp into a datetime; raw JSON has the epoch seconds.
    created = r.get("CreationTimestamp")
    if not isinstance(created, datetime):
        created = datetime.fromtimestamp(float(created or 0), timezone.utc)
    return CollectionDescription(collection_id, r.get("CollectionARN", ""), int(r.get("FaceCount", 0)),
                                 r.get("FaceModelVersion", ""), created, int(r.get("UserCount", 0)))


def index_faces_to_json(result: IndexFacesResult) -> JsonObject:
    v = result.face_model_version
    return {
        "FaceRecords": [{"Face": face_to_json(r.face, v), "FaceDetail": detail_to_json(r.face_detail)}
                        for r in result.face_records],
        "UnindexedFaces": [{"Reasons": list(u.reasons), "FaceDetail": detail_to_json(u.face_detail)}
                           for u in result.unindexed_faces],
        "FaceModelVersion": v,
    }


def index_faces_from_json(r: Mapping[str, Any]) -> IndexFacesResult:
    return IndexFacesResult(
        tuple(IndexedFace(face_from_json(x["Face"]), detail_from_json(x["FaceDetail"]))
              for x in r.get("FaceRecords", [])),
        tuple(UnindexedFace(tuple(u.get("Reasons", [])), detail_from_json(u["FaceDetail"]))
              for u in r.get("UnindexedFaces", [])),
        r.get("FaceModelVersion", ""),
    )


def face_page_to_json(page: FacePage) -> JsonObject:
    return _with_token({"Faces": [face_to_json(f, page.face_model_version) for f in page.faces],
                        "FaceModelVersion": page.face_model_version}, page.next_token)


def face_page_from_json(r: Mapping[str, Any]) -> FacePage:
    return FacePage(tuple(face_from_json(f) for f in r.get("Faces", [])), r.get("FaceModelVersion", ""),
                    r.get("NextToken"))


def delete_faces_to_json(result: DeleteFacesResult) -> JsonObject:
    return {"DeletedFaces": list(result.deleted_faces),
            "UnsuccessfulFaceDeletions": [{"FaceId": f, "Reasons": [FACE_NOT_FOUND]}
                                          for f in result.not_found]}


def delete_faces_from_json(r: Mapping[str, Any]) -> DeleteFacesResult:
    not_found = tuple(u["FaceId"] for u in r.get("UnsuccessfulFaceDeletions", [])
                      if FACE_NOT_FOUND in u.get("Reasons", []))
    return DeleteFacesResult(tuple(r.get("DeletedFaces", [])), not_found)


def search_faces_to_json(result: SearchFacesResult) -> JsonObject:
    v = result.face_model_version
    return {"SearchedFaceId": result.searched_face_id, "FaceModelVersion": v,
            "FaceMatches": _matches_to_json(result.face_matches, v)}


def search_faces_from_json(r: Mapping[str, Any], face_id: str = "") -> SearchFacesResult:
    return SearchFacesResult(r.get("SearchedFaceId", face_id), _matches_from_json(r.get("FaceMatches", [])),
                             r.get("FaceModelVersion", ""))


def search_faces_by_image_to_json(result: SearchFacesByImageResult) -> JsonObject:
    v = result.face_model_version
    return {"SearchedFaceBoundingBox": box_to_json(result.searched_face_bounding_box),
            "SearchedFaceConfidence": result.searched_face_confidence, "FaceModelVersion": v,
            "FaceMatches": _matches_to_json(result.face_matches, v)}


def search_faces_by_image_from_json(r: Mapping[str, Any]) -> SearchFacesByImageResult:
    return SearchFacesByImageResult(box_from_json(r.get("SearchedFaceBoundingBox", {})),
                                    float(r.get("SearchedFaceConfidence", 0.0)),
                                    _matches_from_json(r.get("FaceMatches", [])),
                                    r.get("FaceModelVersion", ""))


def detect_faces_to_json(details: Sequence[FaceDetail]) -> JsonObject:
    return {"FaceDetails": [detail_to_json(d) for d in details]}


def detect_faces_from_json(r: Mapping[str, Any]) -> tuple[FaceDetail, ...]:
    return tuple(detail_from_json(d) for d in r.get("FaceDetails", []))


def compare_faces_to_json(result: CompareFacesResult) -> JsonObject:
    src = result.source_image_face
    return {"SourceImageFace": {"BoundingBox": box_to_json(src.bounding_box), "Confidence": src.confidence},
            "FaceMatches": [{"Similarity": m.similarity, "Face": detail_to_json(m.face)}
                            for m in result.face_matches],
            "UnmatchedFaces": [detail_to_json(f) for f in result.unmatched_faces]}


def compare_faces_from_json(r: Mapping[str, Any]) -> CompareFacesResult:
    source = r.get("SourceImageFace", {})
    return CompareFacesResult(
        ComparedFace(box_from_json(source.get("BoundingBox", {})), float(source.get("Confidence", 0.0))),
        tuple(CompareFacesMatch(float(m["Similarity"]), compared_from_json(m["Face"]))
              for m in r.get("FaceMatches", [])),
        tuple(compared_from_json(f) for f in r.get("UnmatchedFaces", [])),
    )


# ---- errors ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AwsFault:
    """An error as the wire carries it: `__type`, `Message` and the HTTP status."""

    type: str
    message: str
    status: int


# Domain error -> __type, first match wins (subclasses before their bases). The HTTP status is 400.
_TO_AWS: tuple[tuple[type[PicsortError], str], ...] = (
    (InvalidPaginationTokenError, "InvalidPaginationTokenException"),
    (InvalidS3ObjectError, "InvalidS3ObjectException"),
    (NotFoundError, "ResourceNotFoundException"),
    (AlreadyExistsError, "ResourceAlreadyExistsException"),
    (ImageTooLargeError, "ImageTooLargeException"),
)
# __type -> domain error, for what a client reads back (ResourceNotFoundException needs the collection).
_FROM_AWS: dict[str, Callable[[str], PicsortError]] = {
    "ResourceAlreadyExistsException": AlreadyExistsError,
    "InvalidParameterException": InvalidRequestError,
    "InvalidPaginationTokenException": InvalidPaginationTokenError,
    "InvalidS3ObjectException": InvalidS3ObjectError,
    "ImageTooLargeException": ImageTooLargeError,
    "InvalidImageFormatException": lambda m: InvalidImageError("unsupported", m),
}


def aws_error(exc: PicsortError) -> AwsFault:
    """The wire form of a domain error: the one place that maps them for the Rekognition API."""
    if isinstance(exc, AwsError):
        return AwsFault(exc.aws_type, exc.message, exc.status)
    for cls, name in _TO_AWS:
        if isinstance(exc, cls):
            return AwsFault(name, exc.message, 400)
    if isinstance(exc, InvalidImageError):
        if exc.reason == "empty":
            return AwsFault("InvalidParameterException", exc.message, 400)
        return AwsFault("InvalidImageFormatException", f"Request has invalid image format: {exc.message}",
                        400)
    if isinstance(exc, InvalidRequestError):
        return AwsFault("InvalidParameterException", exc.message, 400)
    if isinstance(exc, (ModelPackError, DeviceUnavailableError)):
        return AwsFault("InternalServerError", "the face models are not available", 500)
    return AwsFault("InternalServerError", "internal error", 500)


def domain_error(code: str, message: str, collection_id: str | None = None) -> PicsortError:
    """The domain error for an AWS error code a client received (anything unknown: ProviderRequestError)."""
    if code == "ResourceNotFoundException":
        return CollectionNotFoundError(collection_id or "?")
    make = _FROM_AWS.get(code)
    return make(message) if make else ProviderRequestError(code, message)


# ---- responses -------------------------------------------------------------------------------------
def new_request_id() -> str:
    return str(uuid.uuid4())


def response(payload: JsonObject, request_id: str, status: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status, media_type=CONTENT_TYPE,
                    headers={"x-amzn-RequestId": request_id})


def error_response(fault: AwsFault, request_id: str) -> Response:
    answer = response({"__type": fault.type, "Message": fault.message}, request_id, fault.status)
    answer.headers["x-amzn-ErrorType"] = fault.type
    return answer
