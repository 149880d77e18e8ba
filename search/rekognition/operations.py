"""The operation table: each Rekognition operation as request JSON -> `FaceProvider` call -> answer JSON.

Only argument plumbing lives here: which members an operation reads, its AWS defaults, and which wire
encoder answers it. Values are checked by the provider (`search.rekognition.protocol`'s rules), the
field names are spelled in `search.rekognition.wire`.
"""

from __future__ import annotations

from collections.abc import Callable

from picsort_local.errors import InvalidRequestError
from search.rekognition import wire
from search.rekognition.images import ImageReader
from search.rekognition.protocol import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    DEFAULT_SIMILARITY_THRESHOLD,
    FaceProvider,
)
from search.rekognition.wire import JsonObject, optional, required

Operation = Callable[[FaceProvider, ImageReader, JsonObject], JsonObject]


def _create_collection(p: FaceProvider, _: ImageReader, body: JsonObject) -> JsonObject:
    # Tags are accepted and not kept.
    return wire.created_collection_to_json(p.create_collection(required(body, "CollectionId")))


def _delete_collection(p: FaceProvider, _: ImageReader, body: JsonObject) -> JsonObject:
    p.delete_collection(required(body, "CollectionId"))
    return {"StatusCode": 200}


def _list_collections(p: FaceProvider, _: ImageReader, body: JsonObject) -> JsonObject:
    page = p.list_collections(optional(body, "MaxResults"), optional(body, "NextToken"))
    return wire.collection_page_to_json(page)


def _describe_collection(p: FaceProvider, _: ImageReader, body: JsonObject) -> JsonObject:
    return wire.collection_description_to_json(p.describe_collection(required(body, "CollectionId")))


def _index_faces(p: FaceProvider, images: ImageReader, body: JsonObject) -> JsonObject:
    collection_id = required(body, "CollectionId")
    return wire.index_faces_to_json(p.index_faces(
        collection_id, images.read(body.get("Image")), optional(body, "ExternalImageId"),
        optional(body, "MaxFaces"), optional(body, "QualityFilter", "AUTO")))


def _list_faces(p: FaceProvider, _: ImageReader, body: JsonObject) -> JsonObject:
    if body.get("UserId") is not None or body.get("FaceIds") is not None:
        raise InvalidRequestError("ListFaces filters (UserId, FaceIds) are not supported by this server")
    return wire.face_page_to_json(p.list_faces(required(body, "CollectionId"), optional(body, "MaxResults"),
                                               optional(body, "NextToken")))


def _delete_faces(p: FaceProvider, _: ImageReader, body: JsonObject) -> JsonObject:
    result = p.delete_faces(required(body, "CollectionId"), required(body, "FaceIds"))
    return wire.delete_faces_to_json(result)


def _search_faces(p: FaceProvider, _: ImageReader, body: JsonObject) -> JsonObject:
    return wire.search_faces_to_json(p.search_faces(
        required(body, "CollectionId"), required(body, "FaceId"),
        optional(body, "FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
        optional(body, "MaxFaces", DEFAULT_SEARCH_MAX_FACES)))


def _search_faces_by_image(p: FaceProvider, images: ImageReader, body: JsonObject) -> JsonObject:
    collection_id = required(body, "CollectionId")
    return wire.search_faces_by_image_to_json(p.search_faces_by_image(
        collection_id, images.read(body.get("Image")),
        optional(body, "FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
        optional(body, "MaxFaces", DEFAULT_SEARCH_MAX_FACES), optional(body, "QualityFilter", "NONE")))


def _detect_faces(p: FaceProvider, images: ImageReader, body: JsonObject) -> JsonObject:
    # Attributes=["ALL"] is accepted; only the DEFAULT attributes exist here (no age, emotions...).
    return wire.detect_faces_to_json(p.detect_faces(images.read(body.get("Image"))))


def _compare_faces(p: FaceProvider, images: ImageReader, body: JsonObject) -> JsonObject:
    source = images.read(body.get("SourceImage"), "SourceImage")
    target = images.read(body.get("TargetImage"), "TargetImage")
    return wire.compare_faces_to_json(p.compare_faces(
        source, target, optional(body, "SimilarityThreshold", DEFAULT_SIMILARITY_THRESHOLD),
        optional(body, "QualityFilter", "NONE")))


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


def run(operation: Operation, provider: FaceProvider, images: ImageReader, body: bytes) -> JsonObject:
    """Parse and run (in a worker thread: parsing a 16 MB body and the provider call both block)."""
    return operation(provider, images, wire.parse_body(body))


__all__ = ["OPERATIONS", "Operation", "run"]
