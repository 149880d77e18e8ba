"""Authentication matrix (issue 6, item 5): every route of the app x every credential fault that applies.

The routes come from `create_app(...).routes`, so a new endpoint cannot be forgotten: an unclassified
route is a failing case. Each route is public, host (X-Admin-Key), guest (event link token in the path),
signed file (`/files/{key}?exp=&sig=`) or Rekognition (`POST /`, SigV4, one case per X-Amz-Target
operation). Each (endpoint, fault) case sends the same request for an existing resource (event A's ids)
and for missing ones (random ids; also "parent exists, child missing" where ids nest): every answer must be
the class's denial, and the answers must be byte-identical, so a denial never tells whether an event,
photo, job, face, collection or blob exists. Positive controls show each endpoint does answer differently
with a valid credential, so the denials are not vacuous.

`PICSORT_AUTH_REPORT=1` writes the matrix size to benchmarks/results/auth_matrix.json.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import io
import json
import os
import re
import secrets
import sqlite3
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr
from support import need_shared
from support.servers import ADMIN_KEY, LiveServer, wait_job

from picsort_local.settings import Settings

REPO = Path(__file__).resolve().parents[2]
KEY_ID = "AKIAPICSORTAUTHMATRIX"
SECRET = "picsort-auth-matrix-secret-0123456789abc"
AMZ_JSON = "application/x-amz-json-1.1"

PUBLIC, HOST, GUEST, FILES, REKOGNITION = "public", "host", "guest", "signed_file", "rekognition"

# Every (method, path) the app serves, classified by reading search/http/. Public: liveness, readiness,
# robots, metrics (route templates and counters only, checked below) and the OpenAPI schema (the
# interactive docs are off by default: tests/search/test_api_docs.py). The kiosk page
# /e/{token} is a guest route: it needs the event's link token.
ROUTE_CLASS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/robots.txt"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("HEAD", "/openapi.json"): PUBLIC,
    ("POST", "/api/host/events"): HOST,
    ("GET", "/api/host/events"): HOST,
    ("DELETE", "/api/host/events/{event_id}"): HOST,
    ("POST", "/api/host/events/{event_id}/photos"): HOST,
    ("GET", "/api/host/jobs/{job_id}"): HOST,
    ("GET", "/api/host/events/{event_id}/people"): HOST,
    ("GET", "/api/host/events/{event_id}/people/{person_id}/photos"): HOST,
    ("DELETE", "/api/host/events/{event_id}/photos/{photo_id}"): HOST,
    ("POST", "/api/host/events/{event_id}/grants"): HOST,
    ("GET", "/e/{token}"): GUEST,
    ("POST", "/api/e/{token}/search"): GUEST,
    ("POST", "/api/e/{token}/search-saved"): GUEST,
    ("POST", "/api/e/{token}/feedback"): GUEST,
    ("POST", "/api/e/{token}/forget"): GUEST,
    ("GET", "/api/e/{token}/photos/{photo_id}/original"): GUEST,
    ("GET", "/files/{key:path}"): FILES,
    ("POST", "/"): REKOGNITION,
}

FAULTS: dict[str, list[str]] = {
    HOST: ["no_credential", "wrong_key", "guest_token_as_admin_key", "guest_token_as_bearer", "admin_key_as_bearer",
           "sigv4_as_host"],
    # other_event_token only where the request names event A's resources (see OTHER_EVENT_ROUTES)
    GUEST: ["no_credential", "wrong_token", "other_event_token", "admin_key_as_token", "event_id_as_token",
            "token_hash_as_token"],
    FILES: ["no_credential", "expired", "tampered_sig", "tampered_exp", "swapped_key_other_event",
            "guest_token_as_sig", "admin_key_header"],
    REKOGNITION: ["sigv4_missing", "wrong_secret", "unknown_key_id", "tampered_signature", "expired_signature",
                  "admin_key_as_bearer", "guest_token_as_bearer", "admin_key_header"],
}
# Event B's token on event A's photo ids / guest ids. Kiosk, search and search-saved name nothing of A's
# (a saved selfie token works in any event by design: it is the guest's own secret), so they are left out.
OTHER_EVENT_ROUTES = {("POST", "/api/e/{token}/feedback"), ("POST", "/api/e/{token}/forget"),
                      ("GET", "/api/e/{token}/photos/{photo_id}/original")}
REK_FAULT_TYPE = {
    "sigv4_missing": "MissingAuthenticationTokenException",
    "wrong_secret": "InvalidSignatureException",
    "unknown_key_id": "UnrecognizedClientException",
    "tampered_signature": "InvalidSignatureException",
    "expired_signature": "InvalidSignatureException",
    "admin_key_as_bearer": "IncompleteSignatureException",
    "guest_token_as_bearer": "IncompleteSignatureException",
    "admin_key_header": "MissingAuthenticationTokenException",
}
HOST_DENIAL = (401, {"error": "unauthorized", "message": "a valid X-Admin-Key header is required"})
GUEST_DENIAL = (404, {"error": "not_found", "message": "not found"})
FILES_DENIAL = (403, {"error": "bad_signature", "message": "invalid or expired link"})
ROUTER_404 = (404, {"detail": "Not Found"})  # an empty token segment matches no route at all
# Headers that differ per request whatever the resource: the clock and the Rekognition request id.
VOLATILE_HEADERS = {"date", "x-amzn-requestid"}
AMZ_TIMESTAMP = re.compile(rb"\d{8}T\d{6}Z")  # "Signature expired: <sent> is now earlier than <now - 15 min>"


def _app_routes() -> list[tuple[str, str]]:
    from search.http.app import create_app

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI >= 0.16x keeps included routers whole
            if included is not None:
                yield from walk(included.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "methods") and hasattr(route, "path"):
                for method in route.methods or {"?"}:
                    yield method, prefix + route.path
            elif hasattr(route, "routes"):  # a Mount
                yield from walk(route.routes, prefix + getattr(route, "path", ""))
            else:  # anything else must be looked at (and classified) by hand
                yield "?", f"{prefix}<{type(route).__name__}>"

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), admin_key=SecretStr(ADMIN_KEY)), service=None)
        pairs = set(walk(list(app.routes), ""))
    return sorted(pairs, key=lambda p: (p[1], p[0]))


def _rek_operations() -> list[str]:
    from search.rekognition.operations import OPERATIONS

    return sorted(OPERATIONS)


ROUTES = _app_routes()
REK_OPERATIONS = _rek_operations()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    cls: str
    operation: str | None = None  # Rekognition X-Amz-Target operation

    @property
    def id(self) -> str:
        return f"{self.cls}:{self.operation}" if self.operation else f"{self.cls}:{self.method} {self.path}"


def _endpoints() -> list[Endpoint]:
    out = []
    for method, path in ROUTES:
        cls = ROUTE_CLASS.get((method, path), "unclassified")
        if cls == REKOGNITION:
            out += [Endpoint(method, path, cls, op) for op in REK_OPERATIONS]
        else:
            out.append(Endpoint(method, path, cls))
    return out


ENDPOINTS = _endpoints()


def _cases() -> list[tuple[Endpoint, str]]:
    cases = []
    for ep in ENDPOINTS:
        for fault in FAULTS.get(ep.cls, []):
            if fault == "other_event_token" and (ep.method, ep.path) not in OTHER_EVENT_ROUTES:
                continue
            cases.append((ep, fault))
    return cases


CASES = _cases()
REPORT_PATH = REPO / "benchmarks" / "results" / "auth_matrix.json"


@pytest.fixture(scope="module")
def matrix_report() -> Iterator[dict[str, dict[str, Any]]]:
    """What each denial case saw (case id -> outcome). After the module's tests, and only with
    PICSORT_AUTH_REPORT=1, the matrix size and these outcomes go to benchmarks/results/auth_matrix.json
    for the README figures. A report step, not a test: no test reads what the others recorded."""
    outcomes: dict[str, dict[str, Any]] = {}
    yield outcomes
    if os.environ.get("PICSORT_AUTH_REPORT") == "1" and outcomes:
        report = {**_matrix_size(), "cases_run": len(outcomes),
                  "requests": sum(int(o["requests"]) for o in outcomes.values()), "outcomes": outcomes}
        REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
        REPORT_PATH.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _matrix_size() -> dict[str, Any]:
    """Routes, endpoints and denial cases per auth class (the report's figures)."""
    by_class: dict[str, dict[str, int]] = {}
    for ep, _fault in CASES:
        by_class.setdefault(ep.cls, {"endpoints": 0, "cases": 0})["cases"] += 1
    for ep in ENDPOINTS:
        if ep.cls in by_class:
            by_class[ep.cls]["endpoints"] += 1
    return {"routes": len(ROUTES), "public_routes": len([e for e in ENDPOINTS if e.cls == PUBLIC]),
            "endpoints_with_credentials": sum(v["endpoints"] for v in by_class.values()),
            "rekognition_operations": REK_OPERATIONS, "faults": FAULTS, "cases": len(CASES),
            "by_class": by_class}


# ---- helpers -------------------------------------------------------------------------------------
def _flip(text: str) -> str:
    """The same string with its middle character changed (a near miss, same alphabet)."""
    i = len(text) // 2
    alphabet = "0123456789abcdef" if all(c in "0123456789abcdef" for c in text) else "ABCDEFGHabcdefgh0123456789"
    replacement = next(c for c in alphabet if c != text[i])
    return text[:i] + replacement + text[i + 1:]


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _lfw_photo(lfw: Path, person: str, i: int) -> bytes:
    return (lfw / person / f"{person}_{i:04d}.jpg").read_bytes()


def _selfie(lfw: Path, person: str, i: int) -> bytes:
    """Selfie-like framing of an LFW photo that is not in the gallery: the central crop, enlarged."""
    img = Image.open(lfw / person / f"{person}_{i:04d}.jpg").convert("RGB").crop((45, 25, 205, 225))
    return _jpeg(img.resize((480, 600), Image.Resampling.BICUBIC))


def _sigv4(url: str, body: bytes, *, target: str | None, key_id: str = KEY_ID, secret: str = SECRET,
           when: datetime | None = None) -> dict[str, str]:
    """Headers of a request signed by botocore (the reference SigV4 implementation), optionally at `when`."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"Content-Type": AMZ_JSON}
    if target:
        headers["X-Amz-Target"] = f"RekognitionService.{target}"
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    signer = SigV4Auth(Credentials(key_id, secret), "rekognition", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
            signer.add_auth(request)
    return {k: str(v) for k, v in request.headers.items()}


@dataclass
class World:
    """Two events with indexed LFW photos, a guest of A with a grant, a hidden photo and a saved selfie,
    and a Rekognition collection with one face."""

    url: str
    data_dir: Path
    signing_secret: bytes
    a_id: str
    a_token: str
    a_photos: list[str]
    a_job: str
    b_id: str
    b_token: str
    b_photos: list[str]
    guest: str  # guest of A: grant on a_photos[0], a_photos[1] hidden
    selfie_token: str
    selfie: bytes
    collection: str
    face_id: str
    client: httpx.Client  # one connection for the whole matrix (a client per request costs an SSL context)
    a_person: int = 0  # a person of A (its set of photos)

    def rek(self, op: str, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body).encode()
        return self.client.post("/", content=raw, headers=_sigv4(self.url + "/", raw, target=op))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[World]:
    from search.http.app import create_app
    from search.service import PicsortService

    lfw = need_shared("datasets", "lfw", "images")
    settings = Settings(data_dir=tmp_path_factory.mktemp("auth-matrix-data"), admin_key=SecretStr(ADMIN_KEY),
                        rekognition_access_key_id=KEY_ID, rekognition_secret_access_key=SecretStr(SECRET),
                        ingest_bodies=False)
    service = PicsortService(settings, engine=engine)
    with LiveServer(create_app(settings, service=service)) as server, \
            httpx.Client(base_url=server.url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=120) as host, \
            httpx.Client(base_url=server.url, timeout=120) as client:
        events = {}
        for name, people in (("A", ["Colin_Powell", "Tony_Blair"]), ("B", ["Donald_Rumsfeld", "Gerhard_Schroeder"])):
            created = host.post("/api/host/events", json={"name": f"auth {name}"}).json()
            up = host.post(f"/api/host/events/{created['id']}/photos",
                           files=[("files", (f"{p}.jpg", _lfw_photo(lfw, p, 2), "image/jpeg")) for p in people])
            assert up.status_code == 202, up.text
            job = wait_job(host, up.json()["job_id"])
            assert job["status"] == "done" and job["done"] == 2 and job["failed"] == 0, job
            photos = [p.id for p in service.catalog.meta.photos.list(created["id"])]
            events[name] = (created, photos, up.json()["job_id"])
        (a, a_photos, a_job), (b, b_photos, _) = events["A"], events["B"]
        guest = "guest-" + secrets.token_hex(10)
        selfie = _selfie(lfw, "Colin_Powell", 1)
        found = client.post(f"/api/e/{a['guest_token']}/search", headers={"X-Guest-Id": guest},
                            files={"selfie": ("me.jpg", selfie, "image/jpeg")}, data={"save_selfie": "true"})
        assert found.status_code == 200 and found.json()["selfie_token"], found.text
        assert host.post(f"/api/host/events/{a['id']}/grants",
                         json={"guest_id": guest, "photo_id": a_photos[0]}).status_code == 201
        hidden = client.post(f"/api/e/{a['guest_token']}/feedback",
                             json={"guest_id": guest, "photo_id": a_photos[1], "vote": "down"})
        assert hidden.status_code == 200, hidden.text
        w = World(server.url, settings.data_dir, (settings.data_dir / "url-signing.key").read_bytes(),
                  a["id"], a["guest_token"], a_photos, a_job, b["id"], b["guest_token"], b_photos, guest,
                  found.json()["selfie_token"], selfie, f"auth-coll-{secrets.token_hex(4)}", "", client)
        assert w.rek("CreateCollection", {"CollectionId": w.collection}).status_code == 200
        indexed = w.rek("IndexFaces", {"CollectionId": w.collection, "MaxFaces": 1,
                                       "Image": {"S3Object": {"Bucket": "any", "Name": _original_key(w, a_photos[0])}}})
        assert indexed.status_code == 200 and indexed.json()["FaceRecords"], indexed.text
        w.face_id = indexed.json()["FaceRecords"][0]["Face"]["FaceId"]
        w.a_person = service.catalog.meta.persons.list(w.a_id)[0].id
        yield w


def _original_key(w: World, photo_id: str) -> str:
    from indexer.ingest import photo_key

    return photo_key(w.a_id, photo_id, "originals")


# ---- the values each variant of a request names ---------------------------------------------------
@dataclass(frozen=True)
class Values:
    event_id: str
    photo_id: str
    job_id: str
    guest_id: str
    selfie_token: str
    file_key: str
    collection: str
    face_id: str
    s3_name: str
    event_name: str
    person_id: str = ""


def _values(w: World, variant: str) -> Values:
    rand_event, rand_photo = secrets.token_hex(8), secrets.token_hex(8)
    rand_guest = "guest-" + secrets.token_hex(10)
    rand_person = str(10**9 + secrets.randbelow(10**9))  # person ids count up from 1
    if variant == "existing":
        return Values(w.a_id, w.a_photos[0], w.a_job, w.guest, w.selfie_token,
                      f"events/{w.a_id}/preview/{w.a_photos[0]}.jpg", w.collection, w.face_id,
                      _original_key(w, w.a_photos[0]), "auth A", str(w.a_person))
    if variant == "missing_child":  # event A exists, what it names inside does not
        return Values(w.a_id, rand_photo, secrets.token_hex(8), rand_guest, secrets.token_urlsafe(24),
                      f"events/{w.a_id}/preview/{rand_photo}.jpg", w.collection, str(uuid.uuid4()),
                      f"events/{w.a_id}/originals/{rand_photo}.jpg", "auth A", rand_person)
    return Values(rand_event, rand_photo, secrets.token_hex(8), rand_guest, secrets.token_urlsafe(24),
                  f"events/{rand_event}/preview/{rand_photo}.jpg", f"auth-coll-{secrets.token_hex(4)}",
                  str(uuid.uuid4()), f"events/{rand_event}/originals/{rand_photo}.jpg", f"auth {rand_event}",
                  rand_person)


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    data: dict[str, str] | None = None

    def send(self, client: httpx.Client) -> httpx.Response:
        return client.request(self.method, self.path, headers=self.headers, params=self.params, json=self.json,
                              content=self.content, files=self.files, data=self.data)


def _tiny_jpeg() -> bytes:
    return _jpeg(Image.fromarray(np.full((32, 32, 3), 128, np.uint8)))


def _host_request(ep: Endpoint, v: Values) -> Req:
    path = ep.path.replace("{event_id}", v.event_id).replace("{job_id}", v.job_id).replace("{photo_id}", v.photo_id)
    path = path.replace("{person_id}", v.person_id)
    req = Req(ep.method, path)
    if ep.path == "/api/host/events" and ep.method == "POST":
        req.json = {"name": v.event_name}
    elif ep.path.endswith("/photos") and ep.method == "POST":
        req.files = [("files", ("x.jpg", _tiny_jpeg(), "image/jpeg"))]
    elif ep.path.endswith("/grants"):
        req.json = {"guest_id": v.guest_id, "photo_id": v.photo_id}
    return req


def _guest_request(ep: Endpoint, v: Values, w: World, token: str) -> Req:
    req = Req(ep.method, ep.path.replace("{token}", token).replace("{photo_id}", v.photo_id))
    if ep.path.endswith("/search"):
        req.files = [("selfie", ("me.jpg", w.selfie, "image/jpeg"))]
        req.data = {"save_selfie": "false"}
    elif ep.path.endswith("/search-saved"):
        req.json = {"selfie_token": v.selfie_token}
    elif ep.path.endswith("/feedback"):
        req.json = {"guest_id": v.guest_id, "photo_id": v.photo_id, "vote": "down"}
    elif ep.path.endswith("/forget"):
        req.json = {"guest_id": v.guest_id}  # no selfie token: that one is the guest's own secret
    elif ep.path.endswith("/original"):
        req.headers["X-Guest-Id"] = v.guest_id
    return req


def _rek_body(op: str, v: Values) -> dict[str, Any]:
    image = {"S3Object": {"Bucket": "any", "Name": v.s3_name}}
    bodies: dict[str, dict[str, Any]] = {
        "CreateCollection": {"CollectionId": v.collection},
        "DeleteCollection": {"CollectionId": v.collection},
        "ListCollections": {},
        "DescribeCollection": {"CollectionId": v.collection},
        "IndexFaces": {"CollectionId": v.collection, "Image": image},
        "ListFaces": {"CollectionId": v.collection},
        "DeleteFaces": {"CollectionId": v.collection, "FaceIds": [v.face_id]},
        "SearchFaces": {"CollectionId": v.collection, "FaceId": v.face_id},
        "SearchFacesByImage": {"CollectionId": v.collection, "Image": image},
        "DetectFaces": {"Image": image},
        "CompareFaces": {"SourceImage": image, "TargetImage": image},
    }
    return bodies[op]


def _signer(w: World) -> Any:
    from search.signing import UrlSigner

    return UrlSigner(w.signing_secret, ttl_s=900)


def _query(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(url).query))


def build(ep: Endpoint, fault: str, variant: str, w: World) -> Req:
    """The request of `ep` for `variant`'s resources, with credential `fault` ("valid": none)."""
    v = _values(w, variant)
    if ep.cls == HOST:
        return _build_host(ep, fault, v, w)
    if ep.cls == GUEST:
        return _build_guest(ep, fault, v, w)
    if ep.cls == FILES:
        return _build_files(fault, v, w)
    if ep.cls == REKOGNITION:
        assert ep.operation is not None
        return _build_rekognition(ep.operation, fault, v, w)
    raise AssertionError(f"no request builder for {ep.id}")


def _build_host(ep: Endpoint, fault: str, v: Values, w: World) -> Req:
    req = _host_request(ep, v)
    if fault == "valid":
        req.headers["X-Admin-Key"] = ADMIN_KEY
    elif fault == "wrong_key":
        req.headers["X-Admin-Key"] = _flip(ADMIN_KEY)
    elif fault == "guest_token_as_admin_key":
        req.headers["X-Admin-Key"] = w.a_token
    elif fault == "guest_token_as_bearer":
        req.headers["Authorization"] = f"Bearer {w.a_token}"
    elif fault == "admin_key_as_bearer":
        req.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    elif fault == "sigv4_as_host":  # valid Rekognition credentials presented to the host API
        req.headers.update({k: val for k, val in _sigv4(w.url + req.path, b"", target=None).items()
                            if k.lower() in ("authorization", "x-amz-date")})
    return req


def _build_guest(ep: Endpoint, fault: str, v: Values, w: World) -> Req:
    token = {"valid": w.a_token, "no_credential": "", "wrong_token": _flip(w.a_token), "other_event_token": w.b_token,
             "admin_key_as_token": ADMIN_KEY, "event_id_as_token": w.a_id,
             "token_hash_as_token": hashlib.sha256(w.a_token.encode()).hexdigest()}[fault]
    req = _guest_request(ep, v, w, token)
    if fault == "admin_key_as_token":
        req.headers["X-Admin-Key"] = ADMIN_KEY
    return req


def _build_files(fault: str, v: Values, w: World) -> Req:
    signer, now = _signer(w), time.time()
    key = v.file_key
    good = _query(signer.url(key))
    params: dict[str, str] | None = good
    headers: dict[str, str] = {}
    if fault == "no_credential":
        params = None
    elif fault == "expired":  # correctly signed, but its expiry has passed
        params = _query(signer.url(key, now=now - 2 * signer.ttl_s))
    elif fault == "tampered_sig":
        params = {"exp": good["exp"], "sig": _flip(good["sig"])}
    elif fault == "tampered_exp":
        params = {"exp": str(int(good["exp"]) + 3600), "sig": good["sig"]}
    elif fault == "swapped_key_other_event":  # event B's valid link, its key swapped for this one
        params = _query(signer.url(f"events/{w.b_id}/preview/{w.b_photos[0]}.jpg"))
    elif fault == "guest_token_as_sig":
        params = {"exp": good["exp"], "sig": w.a_token}
    elif fault == "admin_key_header":
        params, headers = None, {"X-Admin-Key": ADMIN_KEY}
    return Req("GET", f"/files/{key}", headers=headers, params=params)


def _build_rekognition(operation: str, fault: str, v: Values, w: World) -> Req:
    raw = json.dumps(_rek_body(operation, v)).encode()
    url = w.url + "/"
    signed = _sigv4(url, raw, target=operation)
    headers = {"Content-Type": AMZ_JSON, "X-Amz-Target": f"RekognitionService.{operation}",
               "X-Amz-Date": signed["X-Amz-Date"]}
    if fault == "valid":
        headers = signed
    elif fault == "wrong_secret":
        headers = _sigv4(url, raw, target=operation, secret=SECRET + "x")
    elif fault == "unknown_key_id":
        headers = _sigv4(url, raw, target=operation, key_id="AKIAUNKNOWNKEY000000")
    elif fault == "tampered_signature":
        auth = signed["Authorization"]
        head, sig = auth.rsplit("Signature=", 1)
        headers = {**signed, "Authorization": f"{head}Signature={_flip(sig)}"}
    elif fault == "expired_signature":  # correctly signed 20 minutes ago (the allowed skew is 15)
        when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=20)
        headers = _sigv4(url, raw, target=operation, when=when)
    elif fault == "admin_key_as_bearer":
        headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    elif fault == "guest_token_as_bearer":
        headers["Authorization"] = f"Bearer {w.a_token}"
    elif fault == "admin_key_header":
        headers["X-Admin-Key"] = ADMIN_KEY
    return Req("POST", "/", headers=headers, content=raw)


def _fingerprint(r: httpx.Response) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    headers = tuple(sorted((k.lower(), v) for k, v in r.headers.items() if k.lower() not in VOLATILE_HEADERS))
    return r.status_code, AMZ_TIMESTAMP.sub(b"<time>", r.content), headers


def _variants(ep: Endpoint) -> list[str]:
    nested = ("{photo_id}" in ep.path or "{person_id}" in ep.path or ep.cls in (FILES, REKOGNITION)
              or ep.path.endswith(("/grants", "/feedback")))
    return ["existing", "missing", "missing_child"] if nested else ["existing", "missing"]


def _guest_hidden(w: World) -> set[str]:
    with sqlite3.connect(f"file:{w.data_dir / 'picsort.sqlite3'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT photo_id FROM hidden_photos WHERE event_id = ? AND guest_id = ?",
                            (w.a_id, w.guest)).fetchall()
    return {r[0] for r in rows}


# ---- tests ----------------------------------------------------------------------------------------
def test_every_route_is_classified() -> None:
    unclassified = [r for r in ROUTES if r not in ROUTE_CLASS]
    stale = [r for r in ROUTE_CLASS if r not in ROUTES]
    assert not unclassified, f"new route(s) without an auth class (add them to ROUTE_CLASS and FAULTS): {unclassified}"
    assert not stale, f"classified route(s) the app no longer serves: {stale}"
    assert REK_OPERATIONS and len([e for e in ENDPOINTS if e.cls == REKOGNITION]) == len(REK_OPERATIONS)


@pytest.mark.parametrize("ep", [e for e in ENDPOINTS if e.cls == PUBLIC], ids=lambda e: e.id)
def test_public_routes_answer_without_credentials(world: World, ep: Endpoint) -> None:
    r = world.client.request(ep.method, ep.path)
    assert r.status_code == 200, (ep.id, r.status_code, r.text[:200])
    if ep.path in ("/metrics", "/openapi.json"):  # nothing about any event, photo, guest or token
        for secret in (world.a_id, world.a_token, world.b_id, world.b_token, world.a_photos[0], world.guest,
                       world.selfie_token, world.face_id, world.collection, ADMIN_KEY, SECRET):
            assert secret not in r.text, (ep.path, secret)


@pytest.mark.parametrize("ep,fault", CASES, ids=[f"{ep.id}|{fault}" for ep, fault in CASES])
def test_denied_without_revealing_existence(world: World, matrix_report: dict[str, dict[str, Any]],
                                            ep: Endpoint, fault: str) -> None:
    if ep.cls == "unclassified":
        pytest.fail(f"route {ep.method} {ep.path} is not classified")
    hidden_before = _guest_hidden(world) if fault == "other_event_token" else set()
    seen = {variant: build(ep, fault, variant, world).send(world.client) for variant in _variants(ep)}
    prints = {variant: _fingerprint(r) for variant, r in seen.items()}
    first = seen["existing"]
    matrix_report[f"{ep.id}|{fault}"] = {"status": first.status_code, "requests": len(seen),
                                         "body": first.json() if first.content else None}
    # byte-identical for an existing resource and missing ones (status, body, headers but the clock/request id)
    assert len(set(prints.values())) == 1, {k: (r.status_code, r.text[:300]) for k, r in seen.items()}

    status, body = first.status_code, first.json()
    if ep.cls == HOST:
        assert (status, body) == HOST_DENIAL, (status, body)
    elif ep.cls == GUEST and fault == "no_credential":
        assert (status, body) == ROUTER_404, (status, body)
    elif ep.cls == GUEST and fault == "other_event_token" and ep.path.endswith("/forget"):
        # Forgetting in event B touches only B: A's guest keeps their hidden photo, and the answer is the
        # same whether or not the guest id is known anywhere.
        assert (status, body) == (200, {"preferences": True, "selfie": False}), (status, body)
        assert hidden_before and _guest_hidden(world) == hidden_before
    elif ep.cls == GUEST:
        assert (status, body) == GUEST_DENIAL, (status, body)
    elif ep.cls == FILES:
        assert (status, body) == FILES_DENIAL, (status, body)
    elif ep.cls == REKOGNITION:
        assert status == 400 and body["__type"] == REK_FAULT_TYPE[fault], (status, body)
        assert first.headers["x-amzn-errortype"] == REK_FAULT_TYPE[fault]
    else:
        pytest.fail(f"no expectation for class {ep.cls}")


# Positive controls: the variant to send with a valid credential and the status expected, chosen so the
# control changes nothing the matrix relies on (destructive endpoints get a missing resource).
CONTROLS: dict[str, tuple[str, int]] = {
    "host:POST /api/host/events": ("missing", 201),
    "host:GET /api/host/events": ("existing", 200),
    "host:DELETE /api/host/events/{event_id}": ("missing", 404),
    "host:POST /api/host/events/{event_id}/photos": ("missing", 404),
    "host:GET /api/host/jobs/{job_id}": ("existing", 200),
    "host:GET /api/host/events/{event_id}/people": ("existing", 200),
    "host:GET /api/host/events/{event_id}/people/{person_id}/photos": ("existing", 200),
    "host:DELETE /api/host/events/{event_id}/photos/{photo_id}": ("missing_child", 404),
    "host:POST /api/host/events/{event_id}/grants": ("existing", 201),
    "guest:GET /e/{token}": ("existing", 200),
    "guest:POST /api/e/{token}/search": ("existing", 200),
    "guest:POST /api/e/{token}/search-saved": ("existing", 200),
    "guest:POST /api/e/{token}/feedback": ("existing", 200),
    "guest:POST /api/e/{token}/forget": ("missing", 200),
    "guest:GET /api/e/{token}/photos/{photo_id}/original": ("existing", 200),
    "signed_file:GET /files/{key:path}": ("existing", 200),
    "rekognition:CreateCollection": ("missing", 200),
    "rekognition:DeleteCollection": ("missing", 400),  # ResourceNotFoundException
    "rekognition:ListCollections": ("existing", 200),
    "rekognition:DescribeCollection": ("existing", 200),
    "rekognition:IndexFaces": ("missing_child", 400),  # InvalidS3ObjectException
    "rekognition:ListFaces": ("existing", 200),
    "rekognition:DeleteFaces": ("missing_child", 200),  # reported as not found, nothing deleted
    "rekognition:SearchFaces": ("existing", 200),
    "rekognition:SearchFacesByImage": ("existing", 200),
    "rekognition:DetectFaces": ("existing", 200),
    "rekognition:CompareFaces": ("existing", 200),
}


@pytest.mark.parametrize("ep", [e for e in ENDPOINTS if e.cls not in (PUBLIC, "unclassified")], ids=lambda e: e.id)
def test_valid_credential_passes(world: World, ep: Endpoint) -> None:
    assert ep.id in CONTROLS, f"no positive control for {ep.id}"
    variant, expected = CONTROLS[ep.id]
    r = build(ep, "valid", variant, world).send(world.client)
    assert r.status_code == expected, (ep.id, r.status_code, r.text[:300])
    if ep.cls == REKOGNITION and r.status_code == 400:
        assert r.json()["__type"] not in set(REK_FAULT_TYPE.values()), r.text
    if ep.cls == FILES:
        assert r.headers["content-type"] == "image/jpeg"
        missing = build(ep, "valid", "missing_child", world).send(world.client)
        assert missing.status_code == 404  # a valid link to nothing: only the signer can make one


# ---- constant-time comparisons --------------------------------------------------------------------
SECRET_WORDS = {"secret", "signature", "sig", "token", "mac", "expected", "digest", "given", "hash", "known", "key"}
SECRET_CHECKS = [
    ("search.signing", "UrlSigner.verify"),
    ("search.services.host", "HostService.check_admin_key"),
    ("indexer.events", "Catalog.event_for_token"),
    ("search.rekognition.sigv4", "SigV4Verifier._secret"),
    ("search.rekognition.sigv4", "SigV4Verifier.verify"),
]


def _names(node: ast.AST) -> set[str]:
    words: set[str] = set()
    for sub in ast.walk(node):
        name = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
        if name:
            words |= set(name.lower().strip("_").split("_"))
    return words


def _equality_on_secrets(tree: ast.AST) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops)
                and _names(node) & SECRET_WORDS):
            bad.append(ast.unparse(node))
    return bad


def _compare_digest_calls(tree: ast.AST) -> int:
    return sum(1 for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr == "compare_digest" and isinstance(n.func.value, ast.Name)
               and n.func.value.id in ("hmac", "secrets"))


@pytest.mark.parametrize("module,qualname", SECRET_CHECKS, ids=[q for _, q in SECRET_CHECKS])
def test_secrets_compared_in_constant_time(module: str, qualname: str) -> None:
    import importlib

    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    assert _compare_digest_calls(tree) >= 1, f"{module}.{qualname} does not use hmac/secrets.compare_digest"
    assert _equality_on_secrets(tree) == [], f"== / != on a secret in {module}.{qualname}"


def test_no_equality_on_secrets_in_signing_module() -> None:
    tree = ast.parse((REPO / "search" / "signing.py").read_text(encoding="utf-8"))
    assert _equality_on_secrets(tree) == []
    assert _compare_digest_calls(tree) >= 1
    # the checker itself catches what it is meant to
    assert _equality_on_secrets(ast.parse("ok = expected == signature")) == ["expected == signature"]


def test_matrix_covers_every_route() -> None:
    """Every route the app serves is in the matrix: a public one is requested without credentials, every
    other one has a denial case for each fault of its class and a positive control. No server needed: a
    route (or Rekognition operation) added without its cases fails here, fast."""
    assert {(ep.method, ep.path) for ep in ENDPOINTS} == set(ROUTES)
    faults_of: dict[str, set[str]] = {}
    for ep, fault in CASES:
        faults_of.setdefault(ep.id, set()).add(fault)
    protected = [ep for ep in ENDPOINTS if ep.cls != PUBLIC]
    for ep in protected:
        assert ep.cls in FAULTS, f"{ep.id}: no auth class with faults (ROUTE_CLASS, FAULTS)"
        applicable = set(FAULTS[ep.cls])
        if (ep.method, ep.path) not in OTHER_EVENT_ROUTES:
            applicable.discard("other_event_token")
        assert faults_of.get(ep.id) == applicable, (ep.id, faults_of.get(ep.id), applicable)
    assert sorted(CONTROLS) == sorted(ep.id for ep in protected), "positive controls and endpoints differ"
    assert OTHER_EVENT_ROUTES <= set(ROUTES), "OTHER_EVENT_ROUTES names a route the app no longer serves"
    size = _matrix_size()
    assert size["endpoints_with_credentials"] == len(protected) and size["cases"] == len(CASES) > 0

