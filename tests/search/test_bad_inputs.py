"""Bad-input corpus (issue 6, part 1): >= 40 kinds of broken, extreme, odd and hostile inputs, generated
here, each sent through the CLI, the host API, the guest API and the Rekognition API. Bad inputs get a
precise 4xx (or a typed CLI error), good ones decode; the server stays alive and nothing half-done is left
(a failed photo has no faces in the index)."""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import httpx
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image
from pydantic import SecretStr
from support.images import encode, gradient, jpeg_bytes, png_declaring, with_orientation
from support.servers import ADMIN_KEY, LiveServer, wait_job

from picsort_local.settings import Settings

KEY_ID = "AKIAPICSORTBADINPUT01"
SECRET = "picsort-bad-input-secret-0123456789abcd"
MAX_REQUEST = 30 * 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
OK, BAD = "ok", "bad"


# ---- the corpus --------------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _patch_sof_height(jpeg: bytes, height: int) -> bytes:
    """Rewrite the height field of the first SOFn marker."""
    i = 2
    while i < len(jpeg) - 4:
        if jpeg[i] != 0xFF:
            i += 1
            continue
        marker = jpeg[i + 1]
        length = struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return jpeg[:i + 5] + struct.pack(">H", height) + jpeg[i + 7:]
        i += 2 + length
    raise AssertionError("no SOF marker")


def _scan_start(jpeg: bytes) -> int:
    sos = jpeg.index(b"\xff\xda")
    return sos + 2 + struct.unpack(">H", jpeg[sos + 2:sos + 4])[0]


def corpus() -> list[tuple[str, bytes, str]]:
    """(file name, bytes, "ok" | "bad"): every entry has distinct bytes (the host API de-duplicates)."""
    rng = np.random.default_rng(6)
    arr = gradient(320, 240)
    base = jpeg_bytes(arr)
    rgb = Image.fromarray(arr)
    scan = _scan_start(base)
    huff = bytearray(base)
    for off in range(scan + 10, len(base) - 2, 7):  # corrupt the entropy-coded data throughout
        huff[off] ^= 0xFF
    png = encode(rgb, "PNG")
    frames = [Image.fromarray(gradient(64, 48)[:, :, ::s]) for s in (1, -1)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    ihdr_only = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
    kinds: list[tuple[str, bytes, str]] = [
        ("empty.jpg", b"", BAD),
        ("text.jpg", b"hello, this is not a photo\n" * 4, BAD),
        *[(f"jpeg_trunc_{p}.jpg", base[:len(base) * p // 100], BAD) for p in (5, 25, 50, 75, 95)],
        ("jpeg_header_only.jpg", base[:scan], BAD),
        ("jpeg_soi_only.jpg", b"\xff\xd8\xff", BAD),
        ("jpeg_zero_height.jpg", _patch_sof_height(base, 0), BAD),
        ("png_trunc_half.png", png[:len(png) // 2], BAD),
        ("png_signature_only.png", b"\x89PNG\r\n\x1a\n", BAD),
        ("png_ihdr_only.png", ihdr_only, BAD),
        ("png_bomb_200000.png", png_declaring(200_000, 200_000), BAD),
        ("png_60000.png", png_declaring(60_000, 60_000), BAD),
        ("png_bad_crc.png", png[:29] + bytes([png[29] ^ 0xFF]) + png[30:], BAD),
        ("gif_trunc.gif", gif.getvalue()[:20], BAD),
        ("heic_no_decoder.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, BAD),
        ("random.jpg", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), BAD),
        ("zip.jpg", b"PK\x03\x04" + b"\x00" * 26 + b"a.txt", BAD),
        ("pdf.jpg", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n", BAD),
        ("html.jpg", b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>", BAD),
        ("svg.jpg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>', BAD),
        ("json.jpg", b'{"Image": {"Bytes": "AAAA"}}', BAD),
        ("exe.jpg", b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00", BAD),
        ("bmp_header_only.bmp", b"BM" + b"\x00" * 12, BAD),
        ("tiff_header_only.tif", b"II*\x00\x08\x00\x00\x00", BAD),
        ("riff_webp_trunc.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 ", BAD),
        # good, if odd, images
        ("jpeg_plain.jpg", base, OK),
        # libjpeg recovers from corrupt entropy-coded data (grey blocks, a warning): decodable, 0 faces
        ("jpeg_bad_huffman.jpg", bytes(huff), OK),
        ("jpeg_garbage_appended.jpg", base + b"\x00garbage" * 100, OK),
        ("jpeg_progressive.jpg", jpeg_bytes(arr, progressive=True), OK),
        ("jpeg_cmyk.jpg", encode(rgb.convert("CMYK"), "JPEG"), OK),
        ("jpeg_gray.jpg", encode(rgb.convert("L"), "JPEG"), OK),
        ("jpeg_icc.jpg", jpeg_bytes(arr, icc_profile=b"\x00" * 128), OK),
        ("exif_orientation_6.jpg", with_orientation(arr, 6), OK),
        ("exif_orientation_9.jpg", with_orientation(arr, 9), OK),
        ("png_1x1.png", encode(Image.new("RGB", (1, 1), (200, 100, 50)), "PNG"), OK),
        ("png_30000x10.png", encode(Image.new("RGB", (30000, 10), (90, 90, 90)), "PNG"), OK),
        ("png_10x30000.png", encode(Image.new("RGB", (10, 30000), (91, 91, 91)), "PNG"), OK),
        ("png_16bit.png", encode(Image.fromarray(arr[:, :, 0].astype(np.uint16) * 257), "PNG"), OK),
        ("png_rgba.png", encode(rgb.convert("RGBA"), "PNG"), OK),
        ("png_palette_transparent.png", encode(pal, "PNG", transparency=0), OK),
        ("png_gray.png", encode(rgb.convert("L"), "PNG"), OK),
        ("gif_animated.gif", gif.getvalue(), OK),
        ("webp.webp", encode(rgb, "WEBP"), OK),
        ("tiff.tif", encode(rgb, "TIFF"), OK),
        ("bmp.bmp", encode(rgb, "BMP"), OK),
    ]
    assert len({d for _, d, _ in kinds}) == len(kinds), "duplicate bytes in the corpus"
    return kinds


CORPUS = corpus()
BAD_NAMES = [n for n, _, c in CORPUS if c == BAD]
TOO_LARGE = {"png_bomb_200000.png", "png_60000.png"}
NOT_IMAGES = {"text.jpg", "random.jpg", "zip.jpg", "pdf.jpg", "html.jpg", "svg.jpg", "json.jpg", "exe.jpg"}


def expected_reasons(name: str) -> set[str]:
    """The typed reason a bad kind must be refused with (CLI `error.reason`, HTTP `reason`)."""
    if name == "empty.jpg":
        return {"empty"}
    if name in TOO_LARGE:
        return {"too_large"}
    if name in NOT_IMAGES:
        return {"not_an_image"}
    return {"truncated", "corrupt"}  # starts like an image, then breaks


def expected_guest_status(name: str) -> int:
    return 413 if name in TOO_LARGE else 415 if name in NOT_IMAGES else 422


def test_corpus_size() -> None:
    assert len(CORPUS) >= 40 and len(BAD_NAMES) >= 25


# ---- server ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[tuple[LiveServer, Settings]]:
    from search.http.app import create_app
    from search.service import PicsortService

    settings = Settings(data_dir=tmp_path_factory.mktemp("bad-input-data"), admin_key=SecretStr(ADMIN_KEY),
                        rekognition_access_key_id=KEY_ID, rekognition_secret_access_key=SecretStr(SECRET),
                        max_request_bytes=MAX_REQUEST, ingest_bodies=False)
    service = PicsortService(settings, engine=engine)
    with LiveServer(create_app(settings, service=service)) as live:
        yield live, settings


@pytest.fixture(scope="module")
def host(server: tuple[LiveServer, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0].url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def event(host: httpx.Client) -> dict[str, Any]:
    created = host.post("/api/host/events", json={"name": "bad inputs"})
    assert created.status_code == 201, created.text
    return dict(created.json())


def _alive(url: str) -> None:
    assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200


# ---- (a) CLI -----------------------------------------------------------------------------------------
def test_cli_detect(tmp_path: Path) -> None:
    files = []
    for name, data, _ in CORPUS:
        path = tmp_path / "in" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        files.append(str(path))
    env = {**os.environ, "PICSORT_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-m", "search.cli", "detect", *files, "--json"], check=False,
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert [Path(r["image"]).name for r in report] == [n for n, _, _ in CORPUS]
    for (name, _, category), entry in zip(CORPUS, report, strict=True):
        if category == BAD:
            assert "error" in entry, (name, entry)
            assert entry["error"]["reason"] in expected_reasons(name) and entry["error"]["message"], (name, entry)
        else:
            assert "error" not in entry and entry["width"] >= 1 and entry["height"] >= 1, (name, entry)
    # one good file alone: exit 0; one bad file alone: exit 1 with a typed error
    one = files[[n for n, _, _ in CORPUS].index("png_1x1.png")]
    good = subprocess.run([sys.executable, "-m", "search.cli", "detect", one, "--json"], check=False,
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert good.returncode == 0 and "error" not in json.loads(good.stdout), good.stderr[-2000:]


# ---- (b) host API ------------------------------------------------------------------------------------
def test_host_upload(server: tuple[LiveServer, Settings], host: httpx.Client, event: dict[str, Any]) -> None:
    from storage.metadata import Metadata

    upload = host.post(f"/api/host/events/{event['id']}/photos",
                       files=[("files", (n, d, "application/octet-stream")) for n, d, _ in CORPUS])
    assert upload.status_code == 202, upload.text
    body = upload.json()
    results = {r["filename"]: r for r in body["results"]}
    assert len(results) == len(CORPUS)
    # Refused at upload from the header alone (never stored, never a job's work): not images, and images
    # declaring more pixels than the engine decodes.
    for name in ("text.jpg", "zip.jpg", "pdf.jpg", "html.jpg", "exe.jpg", "png_bomb_200000.png", "png_60000.png"):
        assert results[name]["status"] == "rejected" and results[name]["error"], (name, results[name])
    accepted = [r for r in results.values() if r["status"] == "accepted"]
    stored = list(server[0].app.state.service.catalog.blobs.list(f"events/{event['id']}/originals/"))
    assert len(stored) == len(accepted)  # a refused upload leaves no original behind
    job = wait_job(host, body["job_id"], timeout=240)
    assert job["status"] == "done", job
    failed = {e["filename"]: e["reason"] for e in cast(list[dict[str, str]], job["errors"])}  # photo id -> reason
    meta = Metadata(server[1].data_dir / "picsort.sqlite3")
    try:
        photos = {p.id: p for p in meta.photos.list(event["id"])}
    finally:
        meta.close()
    for name, _, category in CORPUS:
        r = results[name]
        if r["status"] == "rejected":  # refused up front (the empty file)
            assert category == BAD and r["error"], (name, r)
            continue
        assert r["status"] == "accepted", (name, r)
        photo = photos[r["photo_id"]]
        if category == BAD:
            assert photo.status == "failed" and failed.get(r["photo_id"]), (name, photo)
        else:
            assert photo.status == "indexed", (name, photo)
    assert job["failed"] == sum(1 for n, _, c in CORPUS if c == BAD and results[n]["status"] == "accepted")
    # nothing half-done: a failed photo keeps its original and its 'failed' row (so the host sees why),
    # but has no face rows (the index's vectors are keyed by them) and no derived images
    failed_ids = {results[n]["photo_id"] for n in BAD_NAMES if "photo_id" in results[n]}
    assert len(failed_ids) == job["failed"]
    blobs = server[0].app.state.service.catalog.blobs
    with sqlite3.connect(server[1].data_dir / "picsort.sqlite3") as db:
        for photo_id in failed_ids:
            assert db.execute("SELECT COUNT(*) FROM faces WHERE photo_id = ?", (photo_id,)).fetchone()[0] == 0
            for kind in ("preview", "thumb", "micro"):
                assert not blobs.exists(f"events/{event['id']}/{kind}/{photo_id}.jpg"), (photo_id, kind)
        pending = db.execute("SELECT COUNT(*) FROM photos WHERE status IN ('pending', 'processing')").fetchone()[0]
        assert pending == 0
    leftovers = [p for p in server[1].data_dir.rglob("*") if p.is_file() and p.name.startswith(".~picsort-tmp-")]
    assert not leftovers, leftovers
    people = host.get(f"/api/host/events/{event['id']}/people")
    assert people.status_code == 200
    assert not any(pid in people.text for pid in failed_ids)
    _alive(server[0].url)


# ---- (c) guest API -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,data,category", CORPUS, ids=[n for n, _, _ in CORPUS])
def test_guest_search(server: tuple[LiveServer, Settings], event: dict[str, Any], name: str, data: bytes,
                      category: str) -> None:
    url = server[0].url
    r = httpx.post(f"{url}/api/e/{event['guest_token']}/search", files={"selfie": (name, data, "image/jpeg")},
                   timeout=120)
    body = r.json()
    if category == BAD:
        assert r.status_code == expected_guest_status(name), (r.status_code, body)
        assert body["error"] and body["error"] != "no_face" and body["message"], body
        if "reason" in body:
            assert body["reason"] in expected_reasons(name), body
    else:
        assert r.status_code in (200, 422), (r.status_code, body)
        if r.status_code == 422:
            assert body.get("faces") == 0, body
    _alive(url)


# ---- (d) Rekognition API -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rek(server: tuple[LiveServer, Settings]) -> Any:
    return boto3.client("rekognition", endpoint_url=server[0].url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))


@pytest.mark.parametrize("name,data,category", CORPUS, ids=[n for n, _, _ in CORPUS])
def test_rekognition_detect_faces(server: tuple[LiveServer, Settings], rek: Any, name: str, data: bytes,
                                  category: str) -> None:
    if not data:  # botocore itself refuses an empty blob (min length 1): send it raw
        status, body = _rek_raw(server[0].url, "DetectFaces", json.dumps({"Image": {"Bytes": ""}}).encode())
        assert status == 400 and body["__type"] == "InvalidParameterException", body
        return
    if category == OK and data.startswith((b"\xff\xd8\xff", b"\x89PNG")):  # Rekognition takes JPEG and PNG only
        assert "FaceDetails" in rek.detect_faces(Image={"Bytes": data})
    else:
        with pytest.raises(ClientError) as caught:
            rek.detect_faces(Image={"Bytes": data})
        err = caught.value.response
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 400, err
        if category == OK:  # a good GIF/WEBP/TIFF/BMP: refused by format, as AWS does
            assert err["Error"]["Code"] == "InvalidImageFormatException", err
            assert err["Error"]["Message"].count("invalid image format") == 1, err
        wanted = "ImageTooLargeException" if name in TOO_LARGE else "InvalidImageFormatException"
        assert err["Error"]["Code"] == wanted, err
    _alive(server[0].url)


def _rek_raw(url: str, operation: str, body: bytes, *, target: str | None = None,
             content_type: str = "application/x-amz-json-1.1") -> tuple[int, dict[str, Any]]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=url + "/", data=body, headers={
        "Content-Type": content_type, "X-Amz-Target": target or f"RekognitionService.{operation}"})
    SigV4Auth(Credentials(KEY_ID, SECRET), "rekognition", "us-east-1").add_auth(request)
    headers = {k: str(v).encode("latin-1") for k, v in request.headers.items()}
    r = httpx.post(url + "/", content=body, headers=headers, timeout=60)
    return r.status_code, r.json()


# ---- hostile requests --------------------------------------------------------------------------------
def _oversize(url: str) -> tuple[int, dict[str, Any]]:
    """Declare a 31 MB body (over max_request_bytes) and send the first MB: refused before it is read."""
    port = int(url.rsplit(":", 1)[1])
    size = 31 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall((f"POST /api/host/events/x/photos HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Admin-Key: {ADMIN_KEY}\r\n"
                   f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {size}\r\n\r\n").encode())
        try:
            s.sendall(b"x" * (1024 * 1024))
        except OSError:
            pass
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def _nested(depth: int) -> bytes:
    return b'{"name":' + b"[" * depth + b"]" * depth + b"}"


HOSTILE: list[tuple[str, Any]] = [
    ("search_json_body", lambda c, e: c.post(f"/api/e/{e['guest_token']}/search", json={"selfie": "x"})),
    ("search_missing_selfie", lambda c, e: c.post(f"/api/e/{e['guest_token']}/search", files={"other": ("a", b"x")})),
    ("search_urlencoded", lambda c, e: c.post(f"/api/e/{e['guest_token']}/search", data={"selfie": "x"})),
    ("search_unicode_token", lambda c, e: c.post("/api/e/%E2%98%83%F0%9F%98%80/search", files={"selfie": ("a", b"x")})),
    ("search_long_token", lambda c, e: c.post(f"/api/e/{'a' * 5000}/search", files={"selfie": ("a", b"x")})),
    ("event_dotdot", lambda c, e: c.delete("/api/host/events/..%2F..%2Fetc")),
    ("event_dotdot_people", lambda c, e: c.get("/api/host/events/..%2F..%2Fpicsort.sqlite3/people")),
    ("event_unicode_upload",
     lambda c, e: c.post("/api/host/events/%E2%98%83%00x/photos", files={"files": ("a.jpg", b"x")})),
    ("photo_dotdot", lambda c, e: c.delete(f"/api/host/events/{e['id']}/photos/..%2F..%2Fpicsort.sqlite3")),
    ("photo_unicode", lambda c, e: c.delete(f"/api/host/events/{e['id']}/photos/%F0%9F%98%80%E2%80%AE")),
    ("job_dotdot", lambda c, e: c.get("/api/host/jobs/..%2F..%2Fx")),
    ("signed_file_dotdot",
     lambda c, e: c.get("/files/..%2F..%2Fpicsort.sqlite3", params={"exp": "9999999999", "sig": "x"})),
    ("events_malformed_json", lambda c, e: c.post("/api/host/events", content=b'{"name": "x"',
                                                  headers={"Content-Type": "application/json"})),
    ("events_nested_json", lambda c, e: c.post("/api/host/events", content=_nested(5000),
                                               headers={"Content-Type": "application/json"})),
    ("events_nan", lambda c, e: c.post("/api/host/events", content=b'{"name": NaN}',
                                       headers={"Content-Type": "application/json"})),
    ("events_wrong_type", lambda c, e: c.post("/api/host/events", json=["name"])),
    ("events_invalid_utf8", lambda c, e: c.post("/api/host/events", content=b'{"name": "\xff\xfe"}',
                                                headers={"Content-Type": "application/json"})),
    ("upload_no_files", lambda c, e: c.post(f"/api/host/events/{e['id']}/photos", files={"other": ("a", b"x")})),
]
HOSTILE_EXPECT = {
    "search_json_body": {422}, "search_missing_selfie": {422}, "search_urlencoded": {422},
    "search_unicode_token": {404}, "search_long_token": {404}, "event_dotdot": {404}, "event_dotdot_people": {404},
    "event_unicode_upload": {404}, "photo_dotdot": {404}, "photo_unicode": {404}, "job_dotdot": {404},
    "signed_file_dotdot": {403, 404}, "events_malformed_json": {422}, "events_nested_json": {400, 422},
    "events_nan": {422}, "events_wrong_type": {422}, "events_invalid_utf8": {400, 422}, "upload_no_files": {422},
}


@pytest.mark.parametrize("name,call", HOSTILE, ids=[n for n, _ in HOSTILE])
def test_hostile_requests(server: tuple[LiveServer, Settings], host: httpx.Client, event: dict[str, Any], name: str,
                          call: Any) -> None:
    r = call(host, event)
    assert r.status_code in HOSTILE_EXPECT[name], (name, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    _alive(server[0].url)


def test_oversize_request(server: tuple[LiveServer, Settings]) -> None:
    status, body = _oversize(server[0].url)
    assert status == 413 and body["error"] == "payload_too_large", body
    _alive(server[0].url)


REK_HOSTILE: list[tuple[str, str, bytes, str]] = [
    ("max_faces_nan", "SearchFacesByImage", b'{"CollectionId": "c", "MaxFaces": NaN, "Image": {"Bytes": "AAAA"}}',
     "InvalidParameterException"),
    ("max_faces_negative", "IndexFaces", b'{"CollectionId": "c", "MaxFaces": -1, "Image": {"Bytes": "AAAA"}}',
     "InvalidParameterException"),
    ("max_faces_huge", "SearchFacesByImage",
     b'{"CollectionId": "c", "MaxFaces": 1e308, "Image": {"Bytes": "AAAA"}}', "InvalidParameterException"),
    ("max_faces_bigint", "SearchFaces", b'{"CollectionId": "c", "FaceId": "x", "MaxFaces": ' + b"9" * 400 + b"}",
     "InvalidParameterException"),
    ("max_faces_string", "SearchFaces", b'{"CollectionId": "c", "FaceId": "x", "MaxFaces": "10"}',
     "InvalidParameterException"),
    ("threshold_infinity", "SearchFaces", b'{"CollectionId": "c", "FaceId": "x", "FaceMatchThreshold": Infinity}',
     "InvalidParameterException"),
    ("bytes_not_base64", "DetectFaces", b'{"Image": {"Bytes": "!!!not base64!!!"}}', "InvalidParameterException"),
    ("bytes_number", "DetectFaces", b'{"Image": {"Bytes": 12}}', "InvalidParameterException"),
    ("image_both", "DetectFaces", b'{"Image": {"Bytes": "AAAA", "S3Object": {"Bucket": "b", "Name": "n"}}}',
     "InvalidParameterException"),
    ("s3_dotdot", "DetectFaces", b'{"Image": {"S3Object": {"Bucket": "b", "Name": "../picsort.sqlite3"}}}',
     "InvalidS3ObjectException"),
    ("collection_id_object", "DescribeCollection", b'{"CollectionId": {"a": 1}}', "InvalidParameterException"),
    ("collection_id_unicode", "CreateCollection", '{"CollectionId": "../\u2603"}'.encode(),
     "InvalidParameterException"),
    ("malformed_json", "ListCollections", b'{"MaxResults": ', "SerializationException"),
    ("json_array", "ListCollections", b"[1, 2]", "SerializationException"),
    ("nested_json", "DetectFaces", b'{"Image": ' + b"[" * 5000 + b"]" * 5000 + b"}", "SerializationException"),
]


@pytest.mark.parametrize("name,operation,body,expected", REK_HOSTILE, ids=[n for n, *_ in REK_HOSTILE])
def test_rekognition_hostile(server: tuple[LiveServer, Settings], name: str, operation: str, body: bytes,
                             expected: str) -> None:
    status, answer = _rek_raw(server[0].url, operation, body)
    assert (status, answer.get("__type")) == (400, expected), (name, status, answer)
    _alive(server[0].url)


def test_rekognition_unknown_target_and_content_type(server: tuple[LiveServer, Settings]) -> None:
    url = server[0].url
    status, answer = _rek_raw(url, "", b"{}", target="RekognitionService.DropEverything")
    assert status == 400 and answer["__type"] == "UnknownOperationException", answer
    status, answer = _rek_raw(url, "", b"{}", target="RekognitionService.../../etc/passwd%00\xe9")
    assert status == 400 and answer["__type"] == "UnknownOperationException", answer
    status, answer = _rek_raw(url, "ListCollections", b"{}", content_type="text/plain")
    assert status == 400 and answer["__type"] == "SerializationException", answer
    _alive(url)


def test_rekognition_index_faces_leaves_nothing(server: tuple[LiveServer, Settings], rek: Any) -> None:
    """IndexFaces of every bad kind is refused and adds nothing to the collection."""
    rek.create_collection(CollectionId="bad-inputs")
    for name, data, category in CORPUS:
        if category == BAD and data:
            with pytest.raises(ClientError) as caught:
                rek.index_faces(CollectionId="bad-inputs", Image={"Bytes": data}, ExternalImageId="x")
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, name
    assert rek.list_faces(CollectionId="bad-inputs")["Faces"] == []
    assert rek.describe_collection(CollectionId="bad-inputs")["FaceCount"] == 0
    _alive(server[0].url)
