"""One behaviour suite for every BlobStore; MinIO is exercised against moto's S3 server on loopback."""

from __future__ import annotations

import os
import urllib.request
import uuid
from pathlib import Path

import pytest

from picsort_local.errors import InvalidRequestError, NotFoundError
from picsort_local.settings import Settings
from storage.blobs import BlobStore, LocalBlobStore, MinioBlobStore, make_blob_store, validate_key


def _minio_store(endpoint: str) -> MinioBlobStore:
    # A fresh bucket per test keeps tests independent while sharing one server.
    return MinioBlobStore(
        endpoint=endpoint,
        access_key="testing",
        secret_key="testing",
        bucket=f"t-{uuid.uuid4().hex[:16]}",
        secure=False,
        region="us-east-1",
    )


@pytest.fixture(params=["local", "minio"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return _minio_store(request.getfixturevalue("s3_endpoint"))


# --- shared behaviour --------------------------------------------------------------------------


def test_round_trip(store: BlobStore, tmp_path: Path) -> None:
    store.put("events/e1/photos/a.jpg", b"\xff\xd8jpeg-bytes", "image/jpeg")
    assert store.get("events/e1/photos/a.jpg") == b"\xff\xd8jpeg-bytes"
    assert store.exists("events/e1/photos/a.jpg")

    source = tmp_path / "source.bin"
    source.write_bytes(b"from a file" * 1000)
    store.put_file("events/e1/photos/b.bin", source)
    assert store.get("events/e1/photos/b.bin") == b"from a file" * 1000

    store.put("empty", b"")
    assert store.get("empty") == b""


def test_overwrite(store: BlobStore) -> None:
    store.put("k/v", b"old")
    store.put("k/v", b"new content")
    assert store.get("k/v") == b"new content"
    assert store.list("k/") == ["k/v"]


def test_get_missing_raises_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        store.get("nope/missing.bin")
    assert not store.exists("nope/missing.bin")
    store.put("folder/inner", b"x")
    # A "folder" is not a blob in either store.
    with pytest.raises(NotFoundError):
        store.get("folder")
    assert not store.exists("folder")


def test_delete_is_idempotent(store: BlobStore) -> None:
    store.put("a/b", b"1")
    store.delete("a/b")
    assert not store.exists("a/b")
    store.delete("a/b")
    store.delete("never/existed")


def test_list_and_delete_prefix(store: BlobStore) -> None:
    keys = ["ev/1/x", "ev/1/y/z", "ev/10/x", "ev/2/x", "other"]
    for key in keys:
        store.put(key, key.encode())
    assert store.list("") == sorted(keys)
    assert store.list("ev/1/") == ["ev/1/x", "ev/1/y/z"]
    # A plain string prefix, like S3: "ev/1" also matches "ev/10/...".
    assert store.list("ev/1") == ["ev/1/x", "ev/1/y/z", "ev/10/x"]
    assert store.list("ev/3/") == []
    assert store.list("missing") == []

    assert store.delete_prefix("ev/1/") == 2
    assert store.list("") == ["ev/10/x", "ev/2/x", "other"]
    assert store.delete_prefix("ev/1/") == 0
    assert store.delete_prefix("ev/") == 2
    assert store.list("") == ["other"]
    assert store.get("other") == b"other"


@pytest.mark.parametrize(
    "bad",
    ["../x", "/abs", "a//b", "a/./b", "a/../b", "a/", ".", "", "ünïcode", "a b", "a\\b", "x\n", "a" * 513],
)
def test_key_validation_rejects(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidRequestError):
        validate_key(bad)
    with pytest.raises(InvalidRequestError):
        store.put(bad, b"x")
    with pytest.raises(InvalidRequestError):
        store.get(bad)


def test_key_validation_accepts() -> None:
    for good in ["a", "a/b.c", "A-Z_0-9/.hidden/..x", "x" * 512]:
        assert validate_key(good) == good
    with pytest.raises(InvalidRequestError):
        validate_key(1)  # type: ignore[arg-type]


def test_invalid_prefix_rejected(store: BlobStore) -> None:
    with pytest.raises(InvalidRequestError):
        store.list("../")
    with pytest.raises(InvalidRequestError):
        store.delete_prefix("/")


# --- local store -------------------------------------------------------------------------------


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_local_put_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("a/b/c.bin", b"1")
    store.put("a/b/c.bin", b"2")
    source = tmp_path / "src.bin"
    source.write_bytes(b"3")
    store.put_file("a/d.bin", source)
    assert _all_files(tmp_path) == ["a/b/c.bin", "a/d.bin", "src.bin"]


def test_local_failed_write_keeps_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("k", b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        store.put("k", b"new")
    monkeypatch.undo()

    with pytest.raises(TypeError):
        store.put("k", "not bytes")  # type: ignore[arg-type]

    assert store.get("k") == b"old"
    assert _all_files(tmp_path) == ["k"]


def test_local_refuses_symlink_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    root = tmp_path / "root"
    store = LocalBlobStore(root)
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "filelink").symlink_to(outside / "secret")

    with pytest.raises(InvalidRequestError):
        store.get("link/secret")
    with pytest.raises(InvalidRequestError):
        store.put("link/new", b"x")
    with pytest.raises(InvalidRequestError):
        store.get("filelink")
    assert store.list("") == []
    assert not (outside / "new").exists()


def test_local_delete_prefix_removes_empty_folders(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("ev/1/a/b", b"x")
    store.put("ev/1/c", b"x")
    store.put("ev/2/c", b"x")
    assert store.delete_prefix("ev/1/") == 2
    assert not (tmp_path / "ev" / "1").exists()
    assert (tmp_path / "ev" / "2" / "c").is_file()
    assert store.signed_url("ev/2/c", 60) is None


def test_local_delete_prefix_takes_temp_files_of_killed_writes(tmp_path: Path) -> None:
    # What a process killed inside a put leaves behind (see tests/search/test_crash_restart.py).
    store = LocalBlobStore(tmp_path)
    store.put("ev/1/index/CURRENT", b"1")
    (tmp_path / "ev" / "1" / "index" / ".~picsort-tmp-torn").write_bytes(b"half a snapshot")
    (tmp_path / "ev" / "1" / "originals").mkdir()
    (tmp_path / "ev" / "1" / "originals" / ".~picsort-tmp-cut").write_bytes(b"half a photo")
    store.put("ev/10/k", b"x")
    (tmp_path / "ev" / "10" / ".~picsort-tmp-other").write_bytes(b"another event's")
    assert store.list("ev/1/") == ["ev/1/index/CURRENT"]
    assert store.delete_prefix("ev/1/") == 1
    assert not (tmp_path / "ev" / "1").exists()
    assert _all_files(tmp_path) == ["ev/10/.~picsort-tmp-other", "ev/10/k"]


def test_make_blob_store_local(tmp_path: Path) -> None:
    store = make_blob_store(Settings(data_dir=tmp_path).storage)
    assert isinstance(store, LocalBlobStore)
    assert store.root == (tmp_path / "blobs").resolve()


# --- minio store -------------------------------------------------------------------------------


def test_minio_signed_url_fetches_bytes(s3_endpoint: str) -> None:
    store = _minio_store(s3_endpoint)
    payload = bytes(range(256)) * 10
    store.put("events/e1/photo.jpg", payload)
    url = store.signed_url("events/e1/photo.jpg", 300)
    assert url is not None and url.startswith(f"http://{s3_endpoint}/")
    # An empty ProxyHandler: a loopback request must never go through an HTTP proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        assert response.read() == payload
        assert response.headers["Content-Type"] == "image/jpeg"
    with pytest.raises(InvalidRequestError):
        store.signed_url("events/e1/photo.jpg", 0)


def test_minio_existing_bucket_is_reused(s3_endpoint: str) -> None:
    first = _minio_store(s3_endpoint)
    first.put("k", b"v")
    second = MinioBlobStore(s3_endpoint, "testing", "testing", first.bucket, secure=False, region="us-east-1")
    assert second.get("k") == b"v"


def test_make_blob_store_minio(s3_endpoint: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        blob_backend="minio",
        minio_endpoint=s3_endpoint,
        minio_access_key="testing",
        minio_secret_key="testing",
        minio_bucket=f"t-{uuid.uuid4().hex[:16]}",
    )
    store = make_blob_store(settings.storage)
    assert isinstance(store, MinioBlobStore)
    store.put("x", b"y")
    assert store.get("x") == b"y"
