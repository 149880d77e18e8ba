"""The face provider interface: Rekognition's face operations as plain typed values.

`FaceProvider` is what a venue's code (or a benchmark) programs against. Two implementations exist:
`search.rekognition.local.LocalProvider` (this project's engine, index and storage; a collection is an
event) and `search.rekognition.boto.RekognitionProvider` (boto3, so AWS itself or this project's
Rekognition-compatible HTTP endpoint). Both return the same dataclasses, so their answers can be
compared field by field.

It lives beside the Rekognition wire code, not in the core: these are AWS's shapes and limits, which
only the Rekognition API, its providers and their benchmark speak. It imports only the core.

Conventions, as Rekognition documents them:
- bounding boxes and landmarks are ratios of the image width / height (0..1, may slightly exceed
  the range for faces cut by the image border); the core's pixel box is `picsort_local.types.PixelBox`;
- Similarity and Confidence are percentages (0..100);
- FaceId and ImageId are UUIDs;
- errors are this project's domain errors (`picsort_local.errors`), which the HTTP layer maps to
  Rekognition's exception names in one table (`search.rekognition.wire.aws_error`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, cast, get_args

from picsort_local.errors import ImageTooLargeError, InvalidImageError, InvalidRequestError

QualityFilter = Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"]
QUALITY_FILTERS: tuple[str, ...] = get_args(QualityFilter)

UnindexedReason = Literal[
    "EXCEEDS_MAX_FACES",
    "EXTREME_POSE",
    "LOW_BRIGHTNESS",
    "LOW_SHARPNESS",
    "LOW_CONFIDENCE",
    "SMALL_BOUNDING_BOX",
    "LOW_FACE_QUALITY",
]

# ---- limits and defaults (Rekognition's documented values) ----------------------------------------
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Image.Bytes
MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024  # Image.S3Object
MAX_ID_LENGTH = 255  # CollectionId, ExternalImageId
INDEX_FACES_LIMIT = 100  # IndexFaces indexes at most the 100 largest faces of an image
COMPARE_TARGET_LIMIT = 100  # CompareFaces looks at (at most) the 100 largest target faces
SEARCH_MAX_FACES = 4096  # SearchFaces / SearchFacesByImage MaxFaces upper bound
PAGE_MAX = 4096  # ListFaces / ListCollections MaxResults upper bound
DELETE_MAX_FACES = 4096
DEFAULT_FACE_MATCH_THRESHOLD = 80.0
DEFAULT_SIMILARITY_THRESHOLD = 80.0  # CompareFaces
# Rekognition does not document a default MaxFaces for searches nor a default page size; these
# return everything a caller could ask for, so an omitted value never hides a match.
DEFAULT_SEARCH_MAX_FACES = SEARCH_MAX_FACES
DEFAULT_PAGE_SIZE = 1000

_COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]+")
_EXTERNAL_IMAGE_ID = re.compile(r"[a-zA-Z0-9_.\-:]+")
_FACE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# ---- values ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoundingBox:
    """Face box as ratios of the image size (Rekognition's BoundingBox), origin top-left."""

    width: float
    height: float
    left: float
    top: float


@dataclass(frozen=True)
class Landmark:
    type: str  # eyeLeft | eyeRight | nose | mouthLeft | mouthRight (image left/right)
    x: float  # ratio of the image width
    y: float  # ratio of the image height


@dataclass(frozen=True)
class Pose:
    roll: float  # degrees
    yaw: float
    pitch: float


@dataclass(frozen=True)
class ImageQuality:
    brightness: float  # 0..100
    sharpness: float  # 0..100


@dataclass(frozen=True)
class FaceDetail:
    """What detection says about a face (DetectFaces' DEFAULT attributes)."""

    bounding_box: BoundingBox
    confidence: float  # 0..100: that the box holds a face
    landmarks: tuple[Landmark, ...] = ()
    pose: Pose | None = None
    quality: ImageQuality | None = None


@dataclass(frozen=True)
class Face:
    """A face stored in a collection."""

    face_id: str
    bounding_box: BoundingBox
    image_id: str
    external_image_id: str | None
    confidence: float


@dataclass(frozen=True)
class IndexedFace:
    """One face IndexFaces stored (Rekognition's FaceRecord: the core's FaceRecord is another value)."""

    face: Face
    face_detail: FaceDetail


@dataclass(frozen=True)
class UnindexedFace:
    reasons: tuple[str, ...]  # UnindexedReason values
    face_detail: FaceDetail


@dataclass(frozen=True)
class FaceMatch:
    similarity: float  # 0..100
    face: Face


@dataclass(frozen=True)
class CreatedCollection:
    collection_arn: str
    face_model_version: str
    status_code: int = 200


@dataclass(frozen=True)
class CollectionDescription:
    collection_id: str
    collection_arn: str
    face_count: int
    face_model_version: str
    creation_timestamp: datetime
    user_count: int = 0


@dataclass(frozen=True)
class CollectionPage:
    collection_ids: tuple[str, ...]
    face_model_versions: tuple[str, ...]  # parallel to collection_ids
    next_token: str | None = None


@dataclass(frozen=True)
class IndexFacesResult:
    face_records: tuple[IndexedFace, ...]  # largest face first
    unindexed_faces: tuple[UnindexedFace, ...]
    face_model_version: str


@dataclass(frozen=True)
class FacePage:
    faces: tuple[Face, ...]
    face_model_version: str
    next_token: str | None = None


@dataclass(frozen=True)
class DeleteFacesResult:
    deleted_faces: tuple[str, ...]
    not_found: tuple[str, ...] = ()  # UnsuccessfulFaceDeletions with reason FACE_NOT_FOUND


@dataclass(frozen=True)
class SearchFacesResult:
    searched_face_id: str
    face_matches: tuple[FaceMatch, ...]  # most similar first
    face_model_version: str


@dataclass(frozen=True)
class SearchFacesByImageResult:
    searched_face_bounding_box: BoundingBox
    searched_face_confidence: float
    face_matches: tuple[FaceMatch, ...]  # most similar first
    face_model_version: str


@dataclass(frozen=True)
class ComparedFace:
    bounding_box: BoundingBox
    confidence: float
    landmarks: tuple[Landmark, ...] = ()
    pose: Pose | None = None
    quality: ImageQuality | None = None


@dataclass(frozen=True)
class CompareFacesMatch:
    similarity: float
    face: ComparedFace


@dataclass(frozen=True)
class CompareFacesResult:
    source_image_face: ComparedFace  # the largest face of the source image
    face_matches: tuple[CompareFacesMatch, ...]  # most similar first
    unmatched_faces: tuple[ComparedFace, ...]


# ---- the protocol ---------------------------------------------------------------------------------
class FaceProvider(Protocol):
    """Rekognition's face-collection operations. Images are the raw encoded bytes (JPEG or PNG)."""

    def create_collection(self, collection_id: str) -> CreatedCollection: ...

    def delete_collection(self, collection_id: str) -> None: ...

    def list_collections(
        self, max_results: int | None = None, next_token: str | None = None
    ) -> CollectionPage: ...

    def describe_collection(self, collection_id: str) -> CollectionDescription: ...

    def index_faces(
        self,
        collection_id: str,
        image_bytes: bytes,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = "AUTO",
    ) -> IndexFacesResult: ...

    def list_faces(
        self, collection_id: str, max_results: int | None = None, next_token: str | None = None
    ) -> FacePage: ...

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> DeleteFacesResult: ...

    def search_faces(
        self,
        collection_id: str,
        face_id: str,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
    ) -> SearchFacesResult: ...

    def search_faces_by_image(
        self,
        collection_id: str,
        image_bytes: bytes,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        quality_filter: QualityFilter = "NONE",
    ) -> SearchFacesByImageResult: ...

    def detect_faces(self, image_bytes: bytes) -> tuple[FaceDetail, ...]: ...

    def compare_faces(
        self,
        source_image: bytes,
        target_image: bytes,
        threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
        quality_filter: QualityFilter = "NONE",
    ) -> CompareFacesResult: ...


# ---- parameter rules (shared by LocalProvider and the HTTP endpoint) ------------------------------
def check_collection_id(value: object) -> str:
    if not (isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH and _COLLECTION_ID.fullmatch(value)):
        raise InvalidRequestError(
            f"CollectionId must be 1-{MAX_ID_LENGTH} characters matching [a-zA-Z0-9_.\\-]+"
        )
    return value


def check_external_image_id(value: object) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH
            and _EXTERNAL_IMAGE_ID.fullmatch(value)):
        raise InvalidRequestError(
            f"ExternalImageId must be 1-{MAX_ID_LENGTH} characters matching [a-zA-Z0-9_.\\-:]+"
        )
    return value


def check_face_id(value: object) -> str:
    if not isinstance(value, str) or not _FACE_ID.fullmatch(value):
        raise InvalidRequestError("FaceId must be a lower-case UUID")
    return value


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    # bool is an int subclass in Python; a JSON `true` is not a count.
    if (isinstance(value, bool) or not isinstance(value, int) or value < low
            or (high is not None and value > high)):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidRequestError(f"{name} must be an integer {bound}")
    return value


def check_percent(name: str, value: object) -> float:
    # Compared before float(): a JSON integer such as 10**400 is beyond float range (OverflowError).
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise InvalidRequestError(f"{name} must be a number from 0 to 100")
    return float(value)


def check_quality_filter(value: object) -> QualityFilter:
    if value not in QUALITY_FILTERS:
        raise InvalidRequestError(f"QualityFilter must be one of {', '.join(QUALITY_FILTERS)}")
    return cast(QualityFilter, value)


def check_image_size(data: bytes, limit: int = MAX_IMAGE_BYTES) -> bytes:
    if len(data) > limit:
        raise ImageTooLargeError(f"image is {len(data)} bytes, the limit is {limit} bytes")
    if not data:
        raise InvalidImageError("empty", "the image is empty")
    return data


def collection_arn(collection_id: str, region: str, account: str = "000000000000") -> str:
    # Rekognition's CreateCollection answers "aws:rekognition:REGION:ACCOUNT:collection/ID" (no
    # leading "arn:"), so clients that parse it see the same shape.
    return f"aws:rekognition:{region}:{account}:collection/{collection_id}"


__all__ = [
    "BoundingBox", "CollectionDescription", "CollectionPage", "CompareFacesMatch", "CompareFacesResult",
    "ComparedFace", "CreatedCollection", "DeleteFacesResult", "Face", "FaceDetail", "FaceMatch", "FacePage",
    "FaceProvider", "ImageQuality", "IndexFacesResult", "IndexedFace", "Landmark", "Pose", "QualityFilter",
    "SearchFacesByImageResult", "SearchFacesResult", "UnindexedFace", "UnindexedReason",
]
