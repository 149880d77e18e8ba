"""The Rekognition wire format without models or a server: typed values -> JSON with AWS's field names ->
the same typed values (the boto3 provider decodes what the server encodes), the error table in both
directions, SigV4 on AWS's published vector and on requests botocore signs, and which shape an error
takes on which API."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pydantic import SecretStr

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
    ModelIntegrityError,
    NotFoundError,
    PicsortError,
    ProviderRequestError,
)
from search.metrics import Metrics
from search.rekognition import wire
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
    FaceProvider,
    ImageQuality,
    IndexedFace,
    IndexFacesResult,
    Landmark,
    Pose,
    SearchFacesByImageResult,
    SearchFacesResult,
    UnindexedFace,
)
from search.rekognition.sigv4 import (
    SignedRequest,
    SigV4Verifier,
    canonical_request,
    signing_key,
    string_to_sign,
)

if TYPE_CHECKING:
    from search.service import PicsortService
    from storage.blobs import BlobStore

BOX = BoundingBox(width=0.25, height=0.5, left=0.125, top=0.0625)
DETAIL = FaceDetail(BOX, 87.5, (Landmark("eyeLeft", 0.2, 0.3), Landmark("nose", 0.25, 0.4)),
                    Pose(1.5, -20.0, 10.0), ImageQuality(55.0, 70.0))
BARE_DETAIL = FaceDetail(BoundingBox(0.1, 0.1, 0.0, 0.0), 99.0)
IMAGE_ID = "7c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
FACE = Face("0b5e1a34-9f1c-4d7e-8a1b-2c3d4e5f6a7b", BOX, IMAGE_ID, "photo-1:a", 87.5)
FACE_NO_EXTERNAL = Face("1b5e1a34-9f1c-4d7e-8a1b-2c3d4e5f6a7b", BOX, IMAGE_ID, None, 80.0)


def _over_the_wire(payload: wire.JsonObject) -> Any:
    """What a client receives: the server's bytes, parsed again."""
    return json.loads(bytes(wire.response(payload, "rid").body))


# ---- typed values <-> JSON -------------------------------------------------------------------------
def test_face_and_detail_use_aws_field_names() -> None:
    face = _over_the_wire(wire.face_to_json(FACE, "pypi-small"))
    assert face == {"FaceId": FACE.face_id, "ImageId": FACE.image_id, "ExternalImageId": "photo-1:a",
                    "Confidence": 87.5, "IndexFacesModelVersion": "pypi-small",
                    "BoundingBox": {"Width": 0.25, "Height": 0.5, "Left": 0.125, "Top": 0.0625}}
    assert "ExternalImageId" not in wire.face_to_json(FACE_NO_EXTERNAL, "v")
    detail = _over_the_wire(wire.detail_to_json(DETAIL))
    assert detail["Landmarks"] == [{"Type": "eyeLeft", "X": 0.2, "Y": 0.3},
                                   {"Type": "nose", "X": 0.25, "Y": 0.4}]
    assert detail["Pose"] == {"Roll": 1.5, "Yaw": -20.0, "Pitch": 10.0}
    assert detail["Quality"] == {"Brightness": 55.0, "Sharpness": 70.0}
    # no empty members
    assert set(_over_the_wire(wire.detail_to_json(BARE_DETAIL))) == {"BoundingBox", "Confidence"}


def test_values_round_trip() -> None:
    assert wire.box_from_json(_over_the_wire(wire.box_to_json(BOX))) == BOX
    assert wire.detail_from_json(_over_the_wire(wire.detail_to_json(DETAIL))) == DETAIL
    assert wire.detail_from_json(_over_the_wire(wire.detail_to_json(BARE_DETAIL))) == BARE_DETAIL
    assert wire.face_from_json(_over_the_wire(wire.face_to_json(FACE, "v"))) == FACE
    assert wire.face_from_json(_over_the_wire(wire.face_to_json(FACE_NO_EXTERNAL, "v"))) == FACE_NO_EXTERNAL


def test_collection_results_round_trip() -> None:
    created = CreatedCollection("aws:rekognition:us-east-1:000000000000:collection/gala", "pypi-small")
    encoded = _over_the_wire(wire.created_collection_to_json(created))
    assert wire.created_collection_from_json(encoded) == created
    for page in (CollectionPage(("a", "b"), ("v1", "v1"), "next"), CollectionPage((), ())):
        encoded = _over_the_wire(wire.collection_page_to_json(page))
        assert ("NextToken" in encoded) == (page.next_token is not None)
        assert wire.collection_page_from_json(encoded) == page
    created_at = datetime(2025, 5, 1, 12, 30, tzinfo=timezone.utc)
    described = CollectionDescription("gala", "arn", 12, "v1", created_at, 0)
    encoded = _over_the_wire(wire.collection_description_to_json(described))
    assert encoded["CreationTimestamp"] == described.creation_timestamp.timestamp()  # epoch seconds, as AWS
    assert set(encoded) == {"FaceCount", "FaceModelVersion", "CollectionARN", "CreationTimestamp",
                            "UserCount"}
    assert wire.collection_description_from_json("gala", encoded) == described


def test_face_results_round_trip() -> None:
    indexed = IndexFacesResult((IndexedFace(FACE, DETAIL),),
                               (UnindexedFace(("EXCEEDS_MAX_FACES", "LOW_SHARPNESS"), BARE_DETAIL),), "v1")
    encoded = _over_the_wire(wire.index_faces_to_json(indexed))
    assert list(encoded) == ["FaceRecords", "UnindexedFaces", "FaceModelVersion"]
    assert list(encoded["FaceRecords"][0]) == ["Face", "FaceDetail"]
    assert wire.index_faces_from_json(encoded) == indexed
    page = FacePage((FACE, FACE_NO_EXTERNAL), "v1", "token")
    assert wire.face_page_from_json(_over_the_wire(wire.face_page_to_json(page))) == page
    deleted = DeleteFacesResult((FACE.face_id,), (FACE_NO_EXTERNAL.face_id,))
    encoded = _over_the_wire(wire.delete_faces_to_json(deleted))
    assert encoded["UnsuccessfulFaceDeletions"] == [{"FaceId": FACE_NO_EXTERNAL.face_id,
                                                     "Reasons": ["FACE_NOT_FOUND"]}]
    assert wire.delete_faces_from_json(encoded) == deleted
    details = (DETAIL, BARE_DETAIL)
    assert wire.detect_faces_from_json(_over_the_wire(wire.detect_faces_to_json(details))) == details


def test_search_results_round_trip() -> None:
    matches = (FaceMatch(99.5, FACE), FaceMatch(81.0, FACE_NO_EXTERNAL))
    by_id = SearchFacesResult(FACE.face_id, matches, "v1")
    encoded = _over_the_wire(wire.search_faces_to_json(by_id))
    assert encoded["FaceMatches"][0]["Similarity"] == 99.5 and encoded["SearchedFaceId"] == FACE.face_id
    assert wire.search_faces_from_json(encoded) == by_id
    by_image = SearchFacesByImageResult(BOX, 88.0, matches, "v1")
    encoded = _over_the_wire(wire.search_faces_by_image_to_json(by_image))
    assert set(encoded) == {"SearchedFaceBoundingBox", "SearchedFaceConfidence", "FaceMatches",
                            "FaceModelVersion"}
    assert wire.search_faces_by_image_from_json(encoded) == by_image
    # The source face carries only its box and confidence, as on AWS.
    compared = CompareFacesResult(
        ComparedFace(BOX, 90.0),
        (CompareFacesMatch(97.0, ComparedFace(BOX, 80.0, DETAIL.landmarks, DETAIL.pose, DETAIL.quality)),),
        (ComparedFace(BARE_DETAIL.bounding_box, 70.0),))
    encoded = _over_the_wire(wire.compare_faces_to_json(compared))
    assert set(encoded["SourceImageFace"]) == {"BoundingBox", "Confidence"}
    assert wire.compare_faces_from_json(encoded) == compared


def test_request_parsing() -> None:
    assert wire.parse_body(b"  ") == {}
    assert wire.parse_body(b'{"MaxResults": 2}') == {"MaxResults": 2}
    for bad in (b"{nope", b"[1]", b"\xff", b"[" * 100_000):
        with pytest.raises(AwsError) as caught:
            wire.parse_body(bad)
        assert caught.value.aws_type == "SerializationException"
    assert wire.optional({"MaxFaces": None}, "MaxFaces", 10) == 10  # null means absent
    assert wire.required({"CollectionId": "c"}, "CollectionId") == "c"
    with pytest.raises(InvalidRequestError):
        wire.required({"CollectionId": None}, "CollectionId")
    assert wire.operation_name("RekognitionService.IndexFaces") == "IndexFaces"
    assert wire.operation_name("DynamoDB_20120810.GetItem") == ""


# ---- the error table -------------------------------------------------------------------------------
ERRORS: list[tuple[PicsortError, str, int]] = [
    (AwsError("InvalidSignatureException", "bad signature"), "InvalidSignatureException", 400),
    (AwsError("ThrottlingException", "slow down", 400), "ThrottlingException", 400),
    (InvalidPaginationTokenError("bad token"), "InvalidPaginationTokenException", 400),
    (InvalidS3ObjectError("no object"), "InvalidS3ObjectException", 400),
    (CollectionNotFoundError("gala"), "ResourceNotFoundException", 400),
    (NotFoundError("face"), "ResourceNotFoundException", 400),
    (AlreadyExistsError("gala"), "ResourceAlreadyExistsException", 400),
    (ImageTooLargeError("too big"), "ImageTooLargeException", 400),
    (InvalidImageError("empty", "the image is empty"), "InvalidParameterException", 400),
    (InvalidImageError("not_an_image", "not an image"), "InvalidImageFormatException", 400),
    (InvalidImageError("truncated", "cut"), "InvalidImageFormatException", 400),
    (InvalidRequestError("MaxFaces must be an integer 1..4096"), "InvalidParameterException", 400),
    (ModelIntegrityError("checksum"), "InternalServerError", 500),
    (DeviceUnavailableError("no gpu"), "InternalServerError", 500),
    (PicsortError("anything else"), "InternalServerError", 500),
]


@pytest.mark.parametrize("error,aws_type,status", ERRORS,
                         ids=[f"{type(e).__name__}-{t}" for e, t, _ in ERRORS])
def test_domain_error_to_aws(error: PicsortError, aws_type: str, status: int) -> None:
    fault = wire.aws_error(error)
    assert (fault.type, fault.status) == (aws_type, status)
    answer = wire.error_response(fault, "rid-1")
    assert answer.status_code == status and answer.media_type == wire.CONTENT_TYPE
    assert answer.headers["x-amzn-ErrorType"] == aws_type and answer.headers["x-amzn-RequestId"] == "rid-1"
    assert json.loads(bytes(answer.body)) == {"__type": aws_type, "Message": fault.message}
    if status == 500:  # a server fault says nothing about its cause
        assert fault.message in ("internal error", "the face models are not available")


def test_image_format_message_is_aws_shaped() -> None:
    fault = wire.aws_error(InvalidImageError("unsupported", "GIF is not supported"))
    assert fault.message == "Request has invalid image format: GIF is not supported"


@pytest.mark.parametrize("aws_type,cls", [
    ("ResourceNotFoundException", CollectionNotFoundError),
    ("ResourceAlreadyExistsException", AlreadyExistsError),
    ("InvalidParameterException", InvalidRequestError),
    ("InvalidPaginationTokenException", InvalidPaginationTokenError),
    ("InvalidS3ObjectException", InvalidS3ObjectError),
    ("ImageTooLargeException", ImageTooLargeError),
    ("InvalidImageFormatException", InvalidImageError),
    ("ThrottlingException", ProviderRequestError),
])
def test_aws_error_back_to_domain(aws_type: str, cls: type[PicsortError]) -> None:
    error = wire.domain_error(aws_type, "message", "gala")
    assert type(error) is cls
    if cls is not ProviderRequestError:
        assert wire.aws_error(error).type == aws_type  # both directions agree
    if isinstance(error, CollectionNotFoundError):
        assert error.collection_id == "gala"
    if isinstance(error, ProviderRequestError):
        assert error.aws_code == aws_type


# ---- SigV4 -----------------------------------------------------------------------------------------
# AWS's published SigV4 test suite, "get-vanilla" (service "service", region us-east-1).
VANILLA_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VANILLA_SIGNATURE = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
KEY_ID, SECRET = "AKIAPICSORTWIRETEST0", "picsort-wire-test-secret-0123456789abcdef"


def test_sigv4_published_vector() -> None:
    headers = (("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z"))
    canonical = canonical_request(SignedRequest("GET", "/", "", headers, b""), ["host", "x-amz-date"])
    assert canonical == ("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                         "host;x-amz-date\n" + hashlib.sha256(b"").hexdigest())
    to_sign = string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", canonical)
    key = signing_key(VANILLA_SECRET, "20150830", "us-east-1", "service")
    assert hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest() == VANILLA_SIGNATURE
    # botocore computes the same from the same request
    boto_request = AWSRequest(method="GET", url="https://example.amazonaws.com/",
                              headers={"X-Amz-Date": "20150830T123600Z"})
    boto_request.context["timestamp"] = "20150830T123600Z"
    auth = SigV4Auth(Credentials("AKIDEXAMPLE", VANILLA_SECRET), "service", "us-east-1")
    assert auth.canonical_request(boto_request) == canonical
    assert auth.signature(auth.string_to_sign(boto_request, canonical), boto_request) == VANILLA_SIGNATURE


def _botocore_signed(body: bytes, query: str = "") -> tuple[SignedRequest, str]:
    """A Rekognition call as botocore signs it -> (what the server sees, botocore's canonical request)."""
    url = "http://127.0.0.1:9/" + (f"?{query}" if query else "")
    request = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": wire.CONTENT_TYPE, "X-Amz-Target": "RekognitionService.SearchFacesByImage"})
    auth = SigV4Auth(Credentials(KEY_ID, SECRET), "rekognition", "eu-west-1")
    auth.add_auth(request)
    headers = (("host", "127.0.0.1:9"), *((k.lower(), str(v)) for k, v in request.headers.items()))
    del request.headers["Authorization"]  # botocore's canonical request as it was before signing
    return SignedRequest("POST", "/", query, headers, body), auth.canonical_request(request)


def _signed_headers(req: SignedRequest) -> list[str]:
    return (req.header("authorization") or "").split("SignedHeaders=")[1].split(",")[0].split(";")


def test_sigv4_matches_botocore_and_rejects_one_byte_changes() -> None:
    body = json.dumps({"CollectionId": "gala", "MaxFaces": 5}).encode()
    req, boto_canonical = _botocore_signed(body, "b=2&a=1&a=0")
    assert canonical_request(req, _signed_headers(req)) == boto_canonical
    verifier = SigV4Verifier({KEY_ID: SECRET}, region="eu-west-1")
    assert verifier.verify(req) == KEY_ID

    def refused(changed: SignedRequest) -> str:
        with pytest.raises(AwsError) as caught:
            verifier.verify(changed)
        return caught.value.aws_type

    one_byte = body.replace(b"5", b"6")
    assert len(one_byte) == len(body) and one_byte != body
    invalid = "InvalidSignatureException"
    assert refused(SignedRequest(req.method, req.path, req.query, req.headers, one_byte)) == invalid
    auth = req.header("authorization") or ""
    flipped = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    headers = tuple((k, flipped if k == "authorization" else v) for k, v in req.headers)
    assert refused(SignedRequest(req.method, req.path, req.query, headers, body)) == invalid
    assert refused(SignedRequest(req.method, req.path, "b=2&a=1&a=9", req.headers, body)) == invalid


# ---- which API answers how -------------------------------------------------------------------------
class _Provider:
    def list_collections(self, max_results: Any, next_token: Any) -> CollectionPage:
        raise InvalidPaginationTokenError("that NextToken was not handed out here")


def test_errors_answer_in_the_shape_of_their_api() -> None:
    from fastapi.testclient import TestClient

    from picsort_local.settings import Settings
    from search.http.app import create_app
    from search.rekognition.images import ImageReader
    from search.rekognition.router import RekognitionBackend

    settings = Settings(data_dir=Path("/nonexistent/picsort-wire-test"), admin_key=SecretStr("admin-key"),
                        rekognition_access_key_id=KEY_ID, rekognition_secret_access_key=SecretStr(SECRET))
    service = SimpleNamespace(host=SimpleNamespace(check_admin_key=lambda key: False), metrics=Metrics())
    # Stubs with only what these requests reach: the admin-key check, the metrics, one provider operation
    # (no blob store: no request here reads an S3Object).
    app = create_app(settings, service=cast("PicsortService", service))
    images = ImageReader(settings.storage, cast("BlobStore", None))
    app.state.rekognition = RekognitionBackend(cast(FaceProvider, _Provider()), images)
    client = TestClient(app)

    body = b'{"NextToken": "forged"}'
    request = AWSRequest(method="POST", url="http://testserver/", data=body, headers={
        "Content-Type": wire.CONTENT_TYPE, "X-Amz-Target": "RekognitionService.ListCollections"})
    SigV4Auth(Credentials(KEY_ID, SECRET), "rekognition", "us-east-1").add_auth(request)
    rek = client.post("/", content=body, headers=dict(request.headers.items()))
    assert rek.status_code == 400 and rek.headers["content-type"] == wire.CONTENT_TYPE
    assert rek.json() == {"__type": "InvalidPaginationTokenException",
                          "Message": "that NextToken was not handed out here"}
    assert rek.headers["x-amzn-errortype"] == "InvalidPaginationTokenException"
    assert rek.headers["x-amzn-requestid"]
    unsigned = client.post("/", content=body, headers={"Content-Type": wire.CONTENT_TYPE})
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"

    host = client.get("/api/host/events")  # the same kind of domain error, the picsort shape
    assert host.status_code == 401
    assert host.json() == {"error": "unauthorized", "message": "a valid X-Admin-Key header is required"}
    assert host.headers["x-content-type-options"] == "nosniff"
