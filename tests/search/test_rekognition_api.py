"""The Rekognition-compatible API driven by an unmodified boto3 client against a real server on
loopback (uvicorn, real models), with a gallery of LFW photos; plus `RekognitionProvider` against
the same server giving exactly `LocalProvider`'s answers, and SigV4 checked without models."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import botocore
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image, ImageFilter
from pydantic import SecretStr
from support import need_shared
from support.servers import ADMIN_KEY, LiveServer

from picsort_local.settings import Settings

KEY_ID = "AKIAPICSORTTEST00001"
SECRET = "picsort-test-secret-0123456789abcdefghij"
PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "George_W_Bush",
          "Ariel_Sharon", "Hugo_Chavez", "Junichiro_Koizumi", "Jean_Chretien", "John_Ashcroft"]
GALLERY = (1, 2, 3, 4, 5)  # indexed photos per person
PROBE = 6  # held out: never indexed
COLLECTION = "lfw-gallery"


def _photo(lfw: Path, person: str, i: int) -> Path:
    return lfw / person / f"{person}_{i:04d}.jpg"


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


# ---- SigV4, no models ------------------------------------------------------------------------------
def _signed(body: bytes, *, secret: str = SECRET, key_id: str = KEY_ID) -> Any:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from search.rekognition.sigv4 import SignedRequest

    request = AWSRequest(method="POST", url="http://127.0.0.1:9/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "RekognitionService.ListCollections"})
    SigV4Auth(Credentials(key_id, secret), "rekognition", "eu-west-1").add_auth(request)
    headers = [("host", "127.0.0.1:9")] + [(k.lower(), str(v)) for k, v in request.headers.items()]
    return SignedRequest("POST", "/", "", tuple(headers), body)


def test_sigv4_accepts_botocore_signatures_and_rejects_tampering() -> None:
    from picsort_local.errors import AwsError
    from search.rekognition.sigv4 import SigV4Verifier

    verifier = SigV4Verifier({KEY_ID: SECRET})
    assert verifier.verify(_signed(b"{}")) == KEY_ID

    def code(req: Any, v: SigV4Verifier = verifier) -> str:
        with pytest.raises(AwsError) as caught:
            v.verify(req)
        return caught.value.aws_type

    good = _signed(b'{"MaxResults": 1}')
    tampered = type(good)(good.method, good.path, good.query, good.headers, b'{"MaxResults": 2}')
    assert code(tampered) == "InvalidSignatureException"
    retargeted = type(good)(good.method, good.path, good.query, tuple(
        (k, "RekognitionService.DeleteCollection" if k == "x-amz-target" else v) for k, v in good.headers), good.body)
    assert code(retargeted) == "InvalidSignatureException"
    assert code(_signed(b"{}", secret=SECRET + "x")) == "InvalidSignatureException"
    assert code(_signed(b"{}", key_id="AKIAUNKNOWN000000000")) == "UnrecognizedClientException"
    later = datetime.now(timezone.utc) + timedelta(minutes=20)  # a captured request replayed too late
    assert code(_signed(b"{}"), SigV4Verifier({KEY_ID: SECRET}, clock=lambda: later)) == "InvalidSignatureException"
    unsigned = type(good)(good.method, good.path, good.query,
                          tuple((k, v) for k, v in good.headers if k != "authorization"), good.body)
    assert code(unsigned) == "MissingAuthenticationTokenException"
    assert code(_signed(b"{}"), SigV4Verifier({KEY_ID: SECRET}, region="us-east-1")) == "InvalidSignatureException"
    assert code(_signed(b"{}"), SigV4Verifier({})) == "UnrecognizedClientException"  # no keys: nobody gets in


def test_quality_reasons() -> None:
    from search.rekognition.local import QUALITY_BARS, quality_reasons

    auto = QUALITY_BARS["AUTO"]
    ok = {"score": 0.8, "face_px": 120.0, "yaw": 5.0, "pitch": 10.0, "sharpness": 100.0, "brightness": 100.0}
    assert quality_reasons(auto, **ok) == ()
    assert quality_reasons(None, **{**ok, "sharpness": 0.0, "face_px": 5.0}) == ()  # QualityFilter NONE
    assert quality_reasons(auto, **{**ok, "sharpness": 1.0}) == ("LOW_SHARPNESS",)
    assert quality_reasons(auto, **{**ok, "brightness": 10.0, "pitch": -80.0}) == ("EXTREME_POSE", "LOW_BRIGHTNESS")
    assert quality_reasons(auto, **{**ok, "yaw": -90.0}) == ()  # a three-quarter view saturates the estimate
    assert quality_reasons(auto, **{**ok, "score": 0.55, "face_px": 12.0}) == ("LOW_CONFIDENCE", "SMALL_BOUNDING_BOX")
    # each tolerable alone, not together
    assert quality_reasons(auto, **{**ok, "face_px": 22.0}) == ()
    assert quality_reasons(auto, **{**ok, "face_px": 22.0, "yaw": -90.0, "score": 0.7}) == ()
    assert quality_reasons(auto, **{**ok, "face_px": 22.0, "pitch": 70.0}) == ("LOW_FACE_QUALITY",)
    assert quality_reasons(QUALITY_BARS["HIGH"], **{**ok, "yaw": 45.0}) == ("EXTREME_POSE",)


# ---- live server -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rek_live(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[tuple[LiveServer, Any]]:
    from search.http.app import create_app
    from search.service import PicsortService

    settings = Settings(data_dir=tmp_path_factory.mktemp("rekognition-data"), admin_key=SecretStr(ADMIN_KEY),
                        rekognition_access_key_id=KEY_ID, rekognition_secret_access_key=SecretStr(SECRET),
                        ingest_bodies=False)
    service = PicsortService(settings, engine=engine)
    with LiveServer(create_app(settings, service=service)) as server:
        yield server, service


def _client(url: str, *, key_id: str = KEY_ID, secret: str = SECRET, **config: Any) -> Any:
    return boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key_id,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}, **config))


@pytest.fixture(scope="module")
def rek(rek_live: tuple[LiveServer, Any]) -> Any:
    return _client(rek_live[0].url)


@pytest.fixture(scope="module")
def lfw() -> Path:
    return need_shared("datasets", "lfw", "images")


@pytest.fixture(scope="module")
def gallery(rek: Any, lfw: Path) -> dict[str, Any]:
    """Create the collection and index 50 photos (10 people x 5) through boto3."""
    created = rek.create_collection(CollectionId=COLLECTION)
    assert created["StatusCode"] == 200 and created["CollectionArn"].endswith(f":collection/{COLLECTION}")
    face_of: dict[str, str] = {}  # ExternalImageId -> FaceId
    for person in PEOPLE:
        for i in GALLERY:
            path = _photo(lfw, person, i)
            r = rek.index_faces(CollectionId=COLLECTION, Image={"Bytes": path.read_bytes()},
                                ExternalImageId=path.stem, MaxFaces=1)
            assert len(r["FaceRecords"]) == 1, (path.stem, r["UnindexedFaces"])
            face = r["FaceRecords"][0]["Face"]
            assert face["ExternalImageId"] == path.stem and 0 < face["BoundingBox"]["Width"] < 1
            face_of[path.stem] = face["FaceId"]
    return {"face_of": face_of}


def _person(external_image_id: str) -> str:
    return external_image_id.rsplit("_", 1)[0]


def test_list_and_describe(rek: Any, gallery: dict[str, Any]) -> None:
    pages = rek.get_paginator("list_faces").paginate(CollectionId=COLLECTION, PaginationConfig={"PageSize": 16})
    faces = [f for page in pages for f in page["Faces"]]
    assert len(faces) == 50 and {f["FaceId"] for f in faces} == set(gallery["face_of"].values())
    assert {f["ExternalImageId"] for f in faces} == set(gallery["face_of"])
    assert all(len(f["FaceId"]) == 36 and len(f["ImageId"]) == 36 and 0 < f["Confidence"] <= 100 for f in faces)
    described = rek.describe_collection(CollectionId=COLLECTION)
    assert described["FaceCount"] == 50 and isinstance(described["CreationTimestamp"], datetime)
    assert COLLECTION in rek.list_collections()["CollectionIds"]


def test_search_by_image_finds_the_person(rek: Any, lfw: Path, gallery: dict[str, Any]) -> None:
    correct = returned = 0
    for person in PEOPLE:
        r = rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": _photo(lfw, person, PROBE).read_bytes()})
        names = [m["Face"]["ExternalImageId"] for m in r["FaceMatches"]]
        sims = [m["Similarity"] for m in r["FaceMatches"]]
        assert sims == sorted(sims, reverse=True) and all(80 <= s <= 100 for s in sims)  # default threshold 80
        mine = [n for n in names if _person(n) == person]
        # most of the person's photos, and they rank above any stranger (the 80 cut is a 0.1% false
        # accept rate per pair, so over 500 probe/photo pairs a stranger can pass now and then)
        assert len(mine) >= 3 and names[:len(mine)] == mine, (person, names)
        correct += len(mine)
        returned += len(names)
        assert 0 < r["SearchedFaceConfidence"] <= 100 and 0 < r["SearchedFaceBoundingBox"]["Height"] <= 1
    print(f"default threshold: {correct}/{len(PEOPLE) * len(GALLERY)} photos found, {returned - correct} strangers")
    assert correct >= 0.85 * len(PEOPLE) * len(GALLERY) and returned - correct <= 2
    strict = rek.search_faces_by_image(CollectionId=COLLECTION, FaceMatchThreshold=95,
                                       Image={"Bytes": _photo(lfw, PEOPLE[0], PROBE).read_bytes()})
    assert all(m["Similarity"] >= 95 and _person(m["Face"]["ExternalImageId"]) == PEOPLE[0]
               for m in strict["FaceMatches"])


def test_search_by_face_id(rek: Any, gallery: dict[str, Any]) -> None:
    for person in PEOPLE[:4]:
        face_id = gallery["face_of"][f"{person}_0001"]
        r = rek.search_faces(CollectionId=COLLECTION, FaceId=face_id, FaceMatchThreshold=50, MaxFaces=10)
        names = [m["Face"]["ExternalImageId"] for m in r["FaceMatches"]]
        assert r["SearchedFaceId"] == face_id and f"{person}_0001" not in names  # not the face itself
        assert names and _person(names[0]) == person, (person, names)
        limited = rek.search_faces(CollectionId=COLLECTION, FaceId=face_id, FaceMatchThreshold=0, MaxFaces=3)
        assert len(limited["FaceMatches"]) == 3


def test_quality_filter_and_max_faces(rek: Any, lfw: Path) -> None:
    rek.create_collection(CollectionId="quality.check")
    try:
        blurred = _jpeg(Image.open(_photo(lfw, PEOPLE[0], 7)).filter(ImageFilter.GaussianBlur(6)))
        auto = rek.index_faces(CollectionId="quality.check", Image={"Bytes": blurred})
        assert auto["FaceRecords"] == [] and "LOW_SHARPNESS" in auto["UnindexedFaces"][0]["Reasons"]
        none = rek.index_faces(CollectionId="quality.check", Image={"Bytes": blurred}, QualityFilter="NONE", MaxFaces=1)
        assert len(none["FaceRecords"]) == 1
        crops = [np.asarray(Image.open(_photo(lfw, p, 8)).convert("RGB"))[25:225, 45:205] for p in PEOPLE[1:4]]
        group = _jpeg(Image.fromarray(np.concatenate(crops, axis=1)))
        two = rek.index_faces(CollectionId="quality.check", Image={"Bytes": group}, MaxFaces=2, ExternalImageId="g:1")
        assert len(two["FaceRecords"]) == 2 and [u["Reasons"] for u in two["UnindexedFaces"]] == [["EXCEEDS_MAX_FACES"]]
        assert len({r["Face"]["ImageId"] for r in two["FaceRecords"]}) == 1
        detected = rek.detect_faces(Image={"Bytes": group})["FaceDetails"]
        assert len(detected) == 3 and all(len(d["Landmarks"]) == 5 and "Pose" in d for d in detected)
    finally:
        rek.delete_collection(CollectionId="quality.check")


def test_s3_object_and_compare_faces(rek_live: tuple[LiveServer, Any], rek: Any, lfw: Path,
                                     gallery: dict[str, Any]) -> None:
    blobs = rek_live[1].catalog.blobs
    blobs.put("uploads/probe.jpg", _photo(lfw, PEOPLE[1], PROBE).read_bytes())
    r = rek.search_faces_by_image(CollectionId=COLLECTION,
                                  Image={"S3Object": {"Bucket": "any", "Name": "uploads/probe.jpg"}})
    assert r["FaceMatches"] and all(_person(m["Face"]["ExternalImageId"]) == PEOPLE[1] for m in r["FaceMatches"])
    with pytest.raises(rek.exceptions.InvalidS3ObjectException):
        rek.detect_faces(Image={"S3Object": {"Bucket": "any", "Name": "uploads/missing.jpg"}})
    # a guest's saved selfie (kept under its event) is never readable this way, even by its exact name
    for name in ("events/ev1/selfies/0123456789abcdef", "selfies/0123456789abcdef"):
        blobs.put(name, _photo(lfw, PEOPLE[1], PROBE).read_bytes())
        with pytest.raises(rek.exceptions.InvalidS3ObjectException):
            rek.detect_faces(Image={"S3Object": {"Bucket": "any", "Name": name}})
        blobs.delete(name)
    same = rek.compare_faces(SourceImage={"Bytes": _photo(lfw, PEOPLE[1], 1).read_bytes()},
                             TargetImage={"Bytes": _photo(lfw, PEOPLE[1], 2).read_bytes()})
    other = rek.compare_faces(SourceImage={"Bytes": _photo(lfw, PEOPLE[1], 1).read_bytes()},
                              TargetImage={"Bytes": _photo(lfw, PEOPLE[2], 1).read_bytes()})
    assert len(same["FaceMatches"]) >= 1 and same["FaceMatches"][0]["Similarity"] >= 80
    assert other["FaceMatches"] == [] and other["UnmatchedFaces"]


def test_bad_inputs_raise_modelled_exceptions(rek_live: tuple[LiveServer, Any], rek: Any, lfw: Path,
                                              gallery: dict[str, Any]) -> None:
    jpeg = _photo(lfw, PEOPLE[0], PROBE).read_bytes()
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.search_faces_by_image(CollectionId="no-such-collection", Image={"Bytes": jpeg})
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.delete_collection(CollectionId="no-such-collection")
    with pytest.raises(rek.exceptions.ResourceAlreadyExistsException):
        rek.create_collection(CollectionId=COLLECTION)
    # botocore checks neither the 5 MB blob limit nor patterns nor maxima: the server must
    with pytest.raises(rek.exceptions.ImageTooLargeException):
        rek.index_faces(CollectionId=COLLECTION, Image={"Bytes": jpeg + b"\0" * (5 * 1024 * 1024)})
    with pytest.raises(rek.exceptions.InvalidImageFormatException):
        rek.index_faces(CollectionId=COLLECTION, Image={"Bytes": b"this is not an image at all"})
    with pytest.raises(rek.exceptions.InvalidImageFormatException):
        rek.detect_faces(Image={"Bytes": _gif(jpeg)})  # a real image, but Rekognition takes JPEG/PNG only
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": jpeg}, MaxFaces=4097)
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.create_collection(CollectionId="spaces are not allowed")
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.index_faces(CollectionId=COLLECTION, Image={"Bytes": jpeg}, ExternalImageId="a/b")
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.search_faces(CollectionId=COLLECTION, FaceId="not-a-uuid")
    blank = _jpeg(Image.new("RGB", (300, 300), (128, 128, 128)))
    with pytest.raises(rek.exceptions.InvalidParameterException):  # no face: as AWS answers
        rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": blank})
    # boto3 does check MaxFaces >= 1 itself; without its validation the server answers the same way
    loose = _client(rek_live[0].url, parameter_validation=False)
    with pytest.raises(loose.exceptions.InvalidParameterException):
        loose.index_faces(CollectionId=COLLECTION, Image={"Bytes": jpeg}, MaxFaces=0)
    with pytest.raises(loose.exceptions.InvalidParameterException):
        loose.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": jpeg}, MaxFaces=0)
    assert rek.describe_collection(CollectionId=COLLECTION)["FaceCount"] == 50  # nothing was indexed


def _gif(jpeg: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(buf, "GIF")
    return buf.getvalue()


def test_credentials_are_required(rek_live: tuple[LiveServer, Any]) -> None:
    url = rek_live[0].url
    with pytest.raises(ClientError) as wrong_secret:
        _client(url, secret=SECRET + "x").list_collections()
    assert wrong_secret.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as unknown:
        _client(url, key_id="AKIAUNKNOWNKEY000000").list_collections()
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    anonymous = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                             config=Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as missing:
        anonymous.list_collections()
    assert missing.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"


def test_rekognition_provider_equals_local_provider(rek_live: tuple[LiveServer, Any], lfw: Path,
                                                    gallery: dict[str, Any]) -> None:
    from search.rekognition.boto import RekognitionProvider
    from search.rekognition.local import LocalProvider

    local = LocalProvider.from_service(rek_live[1])
    remote = RekognitionProvider(endpoint_url=rek_live[0].url, region="us-east-1",
                                 aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    for person in PEOPLE:
        probe = _photo(lfw, person, PROBE).read_bytes()
        for threshold in (50.0, 80.0, 99.0):
            assert remote.search_faces_by_image(COLLECTION, probe, threshold) == \
                local.search_faces_by_image(COLLECTION, probe, threshold)
    face_id = gallery["face_of"][f"{PEOPLE[0]}_0002"]
    assert remote.search_faces(COLLECTION, face_id, 60.0, 20) == local.search_faces(COLLECTION, face_id, 60.0, 20)
    assert remote.list_faces(COLLECTION, 20) == local.list_faces(COLLECTION, 20)
    assert remote.describe_collection(COLLECTION) == local.describe_collection(COLLECTION)
    photo = _photo(lfw, PEOPLE[3], PROBE).read_bytes()
    assert remote.detect_faces(photo) == local.detect_faces(photo)
    source = _photo(lfw, PEOPLE[3], 1).read_bytes()
    assert remote.compare_faces(source, photo, 50.0) == local.compare_faces(source, photo, 50.0)


def test_delete_faces_then_collection(rek: Any, lfw: Path, gallery: dict[str, Any]) -> None:
    """Runs last: it empties the gallery."""
    person = PEOPLE[2]
    victims = [gallery["face_of"][f"{person}_{i:04d}"] for i in GALLERY]
    unknown = "00000000-0000-4000-8000-000000000000"
    r = rek.delete_faces(CollectionId=COLLECTION, FaceIds=victims + [unknown])
    assert sorted(r["DeletedFaces"]) == sorted(victims)
    assert r["UnsuccessfulFaceDeletions"] == [{"FaceId": unknown, "Reasons": ["FACE_NOT_FOUND"]}]
    after = rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": _photo(lfw, person, PROBE).read_bytes()})
    assert not [m for m in after["FaceMatches"] if _person(m["Face"]["ExternalImageId"]) == person]
    assert rek.describe_collection(CollectionId=COLLECTION)["FaceCount"] == 45
    assert rek.delete_collection(CollectionId=COLLECTION)["StatusCode"] == 200
    assert COLLECTION not in rek.list_collections()["CollectionIds"]
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.list_faces(CollectionId=COLLECTION)
