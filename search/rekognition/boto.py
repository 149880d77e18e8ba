"""`FaceProvider` over boto3: Amazon Rekognition itself, or any Rekognition-compatible endpoint (this
project's `POST /` API included) through `endpoint_url`.

Answers are decoded into the same dataclasses `LocalProvider` returns, and AWS's error codes back into
the project's domain errors, both by `search.rekognition.wire` (the same field names and error table
the server answers with), so code (and benchmarks) can swap one provider for the other.
Credentials: explicit keys when given, else boto3's usual chain (environment, ~/.aws, instance role).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from picsort_local.errors import ProviderRequestError
from search.rekognition import wire
from search.rekognition.protocol import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    DEFAULT_SIMILARITY_THRESHOLD,
    CollectionDescription,
    CollectionPage,
    CompareFacesResult,
    CreatedCollection,
    DeleteFacesResult,
    FaceDetail,
    FacePage,
    IndexFacesResult,
    QualityFilter,
    SearchFacesByImageResult,
    SearchFacesResult,
)

logger = logging.getLogger(__name__)


def _paging(max_results: int | None, next_token: str | None) -> dict[str, Any]:
    """boto3 keyword arguments: an omitted member must not be sent as null."""
    kwargs: dict[str, Any] = {}
    if max_results is not None:
        kwargs["MaxResults"] = max_results
    if next_token is not None:
        kwargs["NextToken"] = next_token
    return kwargs


class RekognitionProvider:
    """The FaceProvider protocol through a boto3 Rekognition client."""

    def __init__(self, *, endpoint_url: str | None = None, region: str | None = None,
                 aws_access_key_id: str | None = None, aws_secret_access_key: str | None = None,
                 client: Any = None) -> None:
        if client is None:
            import boto3  # only this provider needs the AWS SDK

            client = boto3.client("rekognition", endpoint_url=endpoint_url, region_name=region,
                                  aws_access_key_id=aws_access_key_id,
                                  aws_secret_access_key=aws_secret_access_key)
        self.client = client

    @contextmanager
    def _call(self, collection_id: str | None = None) -> Iterator[None]:
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise wire.domain_error(str(error.get("Code", "")), str(error.get("Message", "")),
                                    collection_id) from exc

    # ---- collections ---------------------------------------------------------------------------
    def create_collection(self, collection_id: str) -> CreatedCollection:
        with self._call(collection_id):
            r = self.client.create_collection(CollectionId=collection_id)
        return wire.created_collection_from_json(r)

    def delete_collection(self, collection_id: str) -> None:
        with self._call(collection_id):
            self.client.delete_collection(CollectionId=collection_id)

    def list_collections(self, max_results: int | None = None,
                         next_token: str | None = None) -> CollectionPage:
        with self._call():
            r = self.client.list_collections(**_paging(max_results, next_token))
        return wire.collection_page_from_json(r)

    def describe_collection(self, collection_id: str) -> CollectionDescription:
        with self._call(collection_id):
            r = self.client.describe_collection(CollectionId=collection_id)
        return wire.collection_description_from_json(collection_id, r)

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
        return wire.index_faces_from_json(r)

    def list_faces(self, collection_id: str, max_results: int | None = None,
                   next_token: str | None = None) -> FacePage:
        with self._call(collection_id):
            r = self.client.list_faces(CollectionId=collection_id, **_paging(max_results, next_token))
        return wire.face_page_from_json(r)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> DeleteFacesResult:
        with self._call(collection_id):
            r = self.client.delete_faces(CollectionId=collection_id, FaceIds=list(face_ids))
        return wire.delete_faces_from_json(r)

    # ---- search --------------------------------------------------------------------------------
    def search_faces(self, collection_id: str, face_id: str, threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
                     max_faces: int = DEFAULT_SEARCH_MAX_FACES) -> SearchFacesResult:
        with self._call(collection_id):
            r = self.client.search_faces(CollectionId=collection_id, FaceId=face_id,
                                         FaceMatchThreshold=threshold, MaxFaces=max_faces)
        return wire.search_faces_from_json(r, face_id)

    def search_faces_by_image(self, collection_id: str, image_bytes: bytes,
                              threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
                              max_faces: int = DEFAULT_SEARCH_MAX_FACES,
                              quality_filter: QualityFilter = "NONE") -> SearchFacesByImageResult:
        with self._call(collection_id):
            r = self.client.search_faces_by_image(CollectionId=collection_id, Image={"Bytes": image_bytes},
                                                  FaceMatchThreshold=threshold, MaxFaces=max_faces,
                                                  QualityFilter=quality_filter)
        return wire.search_faces_by_image_from_json(r)

    def detect_faces(self, image_bytes: bytes) -> tuple[FaceDetail, ...]:
        with self._call():
            r = self.client.detect_faces(Image={"Bytes": image_bytes})
        return wire.detect_faces_from_json(r)

    def compare_faces(self, source_image: bytes, target_image: bytes,
                      threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
                      quality_filter: QualityFilter = "NONE") -> CompareFacesResult:
        with self._call():
            r = self.client.compare_faces(SourceImage={"Bytes": source_image},
                                          TargetImage={"Bytes": target_image},
                                          SimilarityThreshold=threshold, QualityFilter=quality_filter)
        return wire.compare_faces_from_json(r)


__all__ = ["ProviderRequestError", "RekognitionProvider"]
