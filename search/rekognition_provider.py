"""`FaceProvider` over boto3: Amazon Rekognition itself, or any Rekognition-compatible endpoint (this
project's `POST /` API included) through `endpoint_url`.

Answers are mapped to the same dataclasses `LocalProvider` returns, and AWS's error codes back to
the project's domain errors, so code (and benchmarks) can swap one provider for the other.
Credentials: explicit keys when given, else boto3's usual chain (environment, ~/.aws, instance role).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from picsort_local.errors import (
    AlreadyExistsError,
    CollectionNotFoundError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidPaginationTokenError,
    InvalidRequestError,
    InvalidS3ObjectError,
    PicsortError,
    ProviderRequestError,
)
from picsort_local.provider import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    DEFAULT_SIMILARITY_THRESHOLD,
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
    FaceRecord,
    ImageQuality,
    IndexFacesResult,
    Landmark,
    Pose,
    QualityFilter,
    SearchFacesByImageResult,
    SearchFacesResult,
    UnindexedFace,
)

logger = logging.getLogger(__name__)


def _domain_error(code: str, message: str, collection_id: str | None) -> PicsortError:
    if code == "ResourceNotFoundException":
        return CollectionNotFoundError(collection_id or "?")
    errors: dict[str, Callable[[str], PicsortError]] = {
        "ResourceAlreadyExistsException": AlreadyExistsError,
        "InvalidParameterException": InvalidRequestError,
        "InvalidPaginationTokenException": InvalidPaginationTokenError,
        "InvalidS3ObjectException": InvalidS3ObjectError,
        "ImageTooLargeException": ImageTooLargeError,
        "InvalidImageFormatException": lambda m: InvalidImageError("unsupported", m),
    }
    make = errors.get(code)
    return make(message) if make else ProviderRequestError(code, message)


def _box(d: Mapping[str, Any]) -> BoundingBox:
    return BoundingBox(width=float(d.get("Width", 0.0)), height=float(d.get("Height", 0.0)),
                       left=float(d.get("Left", 0.0)), top=float(d.get("Top", 0.0)))


def _landmarks(items: Sequence[Mapping[str, Any]] | None) -> tuple[Landmark, ...]:
    return tuple(Landmark(str(m["Type"]), float(m["X"]), float(m["Y"])) for m in items or ())


def _pose(d: Mapping[str, Any] | None) -> Pose | None:
    return Pose(float(d["Roll"]), float(d["Yaw"]), float(d["Pitch"])) if d else None


def _quality(d: Mapping[str, Any] | None) -> ImageQuality | None:
    return ImageQuality(float(d["Brightness"]), float(d["Sharpness"])) if d else None


def _detail(d: Mapping[str, Any]) -> FaceDetail:
    return FaceDetail(_box(d["BoundingBox"]), float(d.get("Confidence", 0.0)), _landmarks(d.get("Landmarks")),
                      _pose(d.get("Pose")), _quality(d.get("Quality")))


def _compared(d: Mapping[str, Any]) -> ComparedFace:
    return ComparedFace(_box(d["BoundingBox"]), float(d.get("Confidence", 0.0)), _landmarks(d.get("Landmarks")),
                        _pose(d.get("Pose")), _quality(d.get("Quality")))


def _face(d: Mapping[str, Any]) -> Face:
    return Face(face_id=str(d["FaceId"]), bounding_box=_box(d["BoundingBox"]), image_id=str(d.get("ImageId", "")),
                external_image_id=d.get("ExternalImageId"), confidence=float(d.get("Confidence", 0.0)))


def _matches(items: Sequence[Mapping[str, Any]]) -> tuple[FaceMatch, ...]:
    return tuple(FaceMatch(float(m["Similarity"]), _face(m["Face"])) for m in items)


class RekognitionProvider:
    """The FaceProvider protocol through a boto3 Rekognition client."""

    def __init__(self, *, endpoint_url: str | None = None, region: str | None = None,
                 aws_access_key_id: str | None = None, aws_secret_access_key: str | None = None,
                 client: Any = None) -> None:
        if client is None:
            import boto3  # only this provider needs the AWS SDK

            client = boto3.client("rekognition", endpoint_url=endpoint_url, region_name=region,
                                  aws_access_key_id=aws_access_key_id, aws_secret_access_key=aws_secret_access_key)
        self.client = client

    @contextmanager
    def _call(self, collection_id: str | None = None) -> Iterator[None]:
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise _domain_error(str(error.get("Code", "")), str(error.get("Message", "")), collection_id) from exc

    # ---- collections ---------------------------------------------------------------------------
    def create_collection(self, collection_id: str) -> CreatedCollection:
        with self._call(collection_id):
            r = self.client.create_collection(CollectionId=collection_id)
        return CreatedCollection(r.get("CollectionArn", ""), r.get("FaceModelVersion", ""), int(r.get("StatusCode", 200)))

    def delete_collection(self, collection_id: str) -> None:
        with self._call(collection_id):
            self.client.delete_collection(CollectionId=collection_id)

    def list_collections(self, max_results: int | None = None, next_token: str | None = None) -> CollectionPage:
        kwargs: dict[str, Any] = {}
        if max_results is not None:
            kwargs["MaxResults"] = max_results
        if next_token is not None:
            kwargs["NextToken"] = next_token
        with self._call():
            r = self.client.list_collections(**kwargs)
        return CollectionPage(tuple(r.get("CollectionIds", [])), tuple(r.get("FaceModelVersions", [])), r.get("NextToken"))

    def describe_collection(self, collection_id: str) -> CollectionDescription:
        with self._call(collection_id):
            r = self.client.describe_collection(CollectionId=collection_id)
        created = r.get("CreationTimestamp")
        return CollectionDescription(collection_id, r.get("CollectionARN", ""), int(r.get("FaceCount", 0)),
                                     r.get("FaceModelVersion", ""),
                                     created if isinstance(created, datetime) else datetime.fromtimestamp(0),
                                     int(r.get("UserCount", 0)))

    # ---- faces ---------------------------------------------------------------------------------
    def index_faces(self, collection_id: str, image_bytes: bytes, external_image_id: str | None = None,
                    max_faces: int | None = None, quality_filter: QualityFilter = "AUTO") -> IndexFacesResult:
        kwargs: dict[str, Any] = {"CollectionId": collection_id, "Image": {"Bytes": image_bytes},
                                  "QualityFilter": quality_filter}
        if external_image_id is not None:
            kwargs["ExternalImageId"] = external_image_id
        if max_faces is not None:
            kwargs["MaxFaces"] = max_faces
        with self._call(collection_id):
            r = self.client.index_faces(**kwargs)
        return IndexFacesResult(
            tuple(FaceRecord(_face(x["Face"]), _detail(x["FaceDetail"])) for x in r.get("FaceRecords", [])),
            tuple(UnindexedFace(tuple(u.get("Reasons", [])), _detail(u["FaceDetail"])) for u in r.get("UnindexedFaces", [])),
            r.get("FaceModelVersion", ""),
        )

    def list_faces(self, collection_id: str, max_results: int | None = None,
                   next_token: str | None = None) -> FacePage:
        kwargs: dict[str, Any] = {"CollectionId": collection_id}
        if max_results is not None:
            kwargs["MaxResults"] = max_results
        if next_token is not None:
            kwargs["NextToken"] = next_token
        with self._call(collection_id):
            r = self.client.list_faces(**kwargs)
        return FacePage(tuple(_face(f) for f in r.get("Faces", [])), r.get("FaceModelVersion", ""), r.get("NextToken"))

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> DeleteFacesResult:
        with self._call(collection_id):
            r = self.client.delete_faces(CollectionId=collection_id, FaceIds=list(face_ids))
        not_found = tuple(u["FaceId"] for u in r.get("UnsuccessfulFaceDeletions", [])
                          if "FACE_NOT_FOUND" in u.get("Reasons", []))
        return DeleteFacesResult(tuple(r.get("DeletedFaces", [])), not_found)

    # ---- search --------------------------------------------------------------------------------
    def search_faces(self, collection_id: str, face_id: str, threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
                     max_faces: int = DEFAULT_SEARCH_MAX_FACES) -> SearchFacesResult:
        with self._call(collection_id):
            r = self.client.search_faces(CollectionId=collection_id, FaceId=face_id, FaceMatchThreshold=threshold,
                                         MaxFaces=max_faces)
        return SearchFacesResult(r.get("SearchedFaceId", face_id), _matches(r.get("FaceMatches", [])),
                                 r.get("FaceModelVersion", ""))

    def search_faces_by_image(self, collection_id: str, image_bytes: bytes,
                              threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
                              max_faces: int = DEFAULT_SEARCH_MAX_FACES,
                              quality_filter: QualityFilter = "NONE") -> SearchFacesByImageResult:
        with self._call(collection_id):
            r = self.client.search_faces_by_image(CollectionId=collection_id, Image={"Bytes": image_bytes},
                                                  FaceMatchThreshold=threshold, MaxFaces=max_faces,
                                                  QualityFilter=quality_filter)
        return SearchFacesByImageResult(_box(r.get("SearchedFaceBoundingBox", {})),
                                        float(r.get("SearchedFaceConfidence", 0.0)),
                                        _matches(r.get("FaceMatches", [])), r.get("FaceModelVersion", ""))

    def detect_faces(self, image_bytes: bytes) -> tuple[FaceDetail, ...]:
        with self._call():
            r = self.client.detect_faces(Image={"Bytes": image_bytes})
        return tuple(_detail(d) for d in r.get("FaceDetails", []))

    def compare_faces(self, source_image: bytes, target_image: bytes,
                      threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
                      quality_filter: QualityFilter = "NONE") -> CompareFacesResult:
        with self._call():
            r = self.client.compare_faces(SourceImage={"Bytes": source_image}, TargetImage={"Bytes": target_image},
                                          SimilarityThreshold=threshold, QualityFilter=quality_filter)
        source = r.get("SourceImageFace", {})
        return CompareFacesResult(
            ComparedFace(_box(source.get("BoundingBox", {})), float(source.get("Confidence", 0.0))),
            tuple(CompareFacesMatch(float(m["Similarity"]), _compared(m["Face"])) for m in r.get("FaceMatches", [])),
            tuple(_compared(f) for f in r.get("UnmatchedFaces", [])),
        )


__all__ = ["ProviderRequestError", "RekognitionProvider"]
