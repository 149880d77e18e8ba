"""Blob storage: photos, face crops and index snapshots, on the local disk or in MinIO / any S3 server.

Keys are relative, '/'-separated paths made of [A-Za-z0-9._-] segments (see `validate_key`). Both stores
give the same guarantees: a reader sees either the old or the new content of a key, never half of it.

`list` and `delete_prefix` take a plain string prefix, like S3: "events/a" also matches "events/ab/x".
End the prefix with '/' to mean "everything in this folder".
"""

from __future__ import annotations

import io
import logging
import mimetypes
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from picsort_local.errors import InvalidRequestError, NotFoundError, PicsortError
from picsort_local.settings import StorageSettings

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 512
# S3 (and so MinIO) refuses presigned URLs that live longer than 7 days.
MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# '~' can never appear in a key, so a temp file can never be mistaken for a blob by `list`.
_TMP_PREFIX = ".~picsort-tmp-"
_DEFAULT_CONTENT_TYPE = "application/octet-stream"


class BlobStore(Protocol):
    """Flat key -> bytes store. Implementations must be safe to call from several threads."""

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None: ...

    def get(self, key: str) -> bytes:
        """Raises `NotFoundError` when the key does not exist."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Deleting a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with `prefix`; returns how many were deleted."""
        ...

    def list(self, prefix: str) -> list[str]:
        """All keys starting with `prefix` (recursive), sorted."""
        ...

    def signed_url(self, key: str, expires_s: int) -> str | None:
        """A URL anyone can GET for `expires_s` seconds, or None when the store cannot make one."""
        ...


def _is_valid_segment(segment: str) -> bool:
    return segment not in (".", "..") and _SEGMENT.fullmatch(segment) is not None


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a valid blob key, else raise `InvalidRequestError`.

    The rules keep keys portable between a POSIX file system and S3 and make path traversal impossible
    by construction: no absolute paths, no empty, '.' or '..' segments, ASCII letters/digits/._- only.
    """
    if not isinstance(key, str):
        raise InvalidRequestError(f"blob key must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidRequestError("blob key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidRequestError(f"blob key is {len(key)} characters long, the limit is {MAX_KEY_LENGTH}")
    if key.startswith("/"):
        raise InvalidRequestError(f"blob key {key!r} must be relative (no leading '/')")
    for segment in key.split("/"):
        if not _is_valid_segment(segment):
            raise InvalidRequestError(
                f"blob key {key!r} has an invalid segment {segment!r}: segments are non-empty, "
                "made of A-Z a-z 0-9 . _ - and are not '.' or '..'"
            )
    return key


def _validate_prefix(prefix: str) -> str:
    """A prefix is '' (everything), a valid key, or a valid key followed by one '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/"))
    return prefix


def _validate_expiry(expires_s: int) -> None:
    if not 1 <= expires_s <= MAX_SIGNED_URL_SECONDS:
        raise InvalidRequestError(
            f"signed URL lifetime must be 1..{MAX_SIGNED_URL_SECONDS} seconds, got {expires_s}"
        )


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable after a power cut. Not possible on every platform (e.g. Windows
    # cannot open a directory), and the data is already safe in the file, so failures are ignored.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalBlobStore:
    """Blobs as files under `root`, written with write-to-temp + fsync + rename.

    `content_type` is not stored: the HTTP service derives it from the key's extension when serving.
    Files are created 0600 (mkstemp's mode) on purpose: the photos show people, only the service reads them.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        # Resolved once, so every containment check compares real locations (symlinks followed).
        self._root = root.resolve()

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self._root.joinpath(*key.split("/"))
        # validate_key already rules out '..'; this second check catches symlinks inside the store that
        # point outside it (or at the root itself), which no key syntax check can see.
        real = path.resolve()
        if real == self._root or not real.is_relative_to(self._root):
            raise InvalidRequestError(f"blob key {key!r} resolves outside the blob store")
        return path

    def _atomic_write(self, path: Path, write: Callable[[BinaryIO], object]) -> None:
        parent = path.parent
        attempts = 3
        for attempt in range(attempts):
            parent.mkdir(parents=True, exist_ok=True)
            try:
                fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=_TMP_PREFIX)
                break
            except FileNotFoundError:
                # A concurrent delete_prefix removed the then-empty directory between mkdir and mkstemp.
                if attempt == attempts - 1:
                    raise
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            # Atomic on POSIX and Windows: readers see the old file or the new one, never a mix.
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(parent)

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        self._atomic_write(path, lambda handle: handle.write(data))

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        target = self._path(key)
        # Open the source first so a missing source fails before any temp file exists.
        with open(path, "rb") as source:
            self._atomic_write(target, lambda handle: shutil.copyfileobj(source, handle, 1 << 20))

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"blob {key!r} not found") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            return  # a folder is not a blob: nothing stored under this exact key
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass

    def _walk(self, prefix: str) -> Iterator[tuple[Path, str, list[str]]]:
        """The folders that can hold keys starting with `prefix`: (folder, its key prefix, file names)."""
        _validate_prefix(prefix)
        # Only the folder holding the prefix's last (possibly partial) segment needs walking.
        head = prefix.rpartition("/")[0]
        base = self._root.joinpath(*head.split("/")) if head else self._root
        real_base = base.resolve()
        if not (real_base == self._root or real_base.is_relative_to(self._root)) or not base.is_dir():
            return
        # followlinks=False (the default): a symlinked folder could lead outside the store.
        for dirpath, dirnames, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(self._root).parts
            rel_prefix = "/".join(rel) + "/" if rel else ""
            dirnames[:] = [
                name
                for name in dirnames
                if _is_valid_segment(name)
                and not os.path.islink(os.path.join(dirpath, name))
                and _could_match(rel_prefix + name + "/", prefix)
            ]
            yield Path(dirpath), rel_prefix, filenames

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for folder, rel_prefix, filenames in self._walk(prefix):
            for name in filenames:
                # Skips temp files (their names contain '~') and anything not written through a key.
                if not _is_valid_segment(name) or (folder / name).is_symlink():
                    continue
                key = rel_prefix + name
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort()
        return keys

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        folders: set[Path] = set()
        for folder, rel_prefix, filenames in self._walk(prefix):
            # Every key in this folder is under the prefix: a temp file left by a process killed inside a
            # put (part of a photo or of an index snapshot) goes too, or an event's deletion leaves face
            # data behind. A put still in flight under this prefix then fails, as it should.
            covered = rel_prefix.startswith(prefix)
            for name in filenames:
                path = folder / name
                if path.is_symlink():
                    continue
                if _is_valid_segment(name) and (rel_prefix + name).startswith(prefix):
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        continue  # removed concurrently; someone else counted it
                    deleted += 1
                    folders.add(folder)
                elif covered and name.startswith(_TMP_PREFIX):
                    path.unlink(missing_ok=True)
            if covered:
                folders.add(folder)
        for folder in list(folders):
            while folder != self._root:
                folders.add(folder)
                folder = folder.parent
        # Deepest first, so a folder's emptied subfolders are gone before it is tried.
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                pass  # still holds other keys (or a concurrent put's temp file): keep it
        return deleted

    def signed_url(self, key: str, expires_s: int) -> str | None:
        # Local blobs are served by the HTTP service, which signs its own URLs.
        validate_key(key)
        _validate_expiry(expires_s)
        return None


def _could_match(folder_prefix: str, prefix: str) -> bool:
    """Can a key under `folder_prefix` (ending in '/') start with `prefix`?"""
    return folder_prefix.startswith(prefix) or prefix.startswith(folder_prefix)


class MinioBlobStore:
    """Blobs as objects in one bucket of a MinIO (or other S3-compatible) server.

    A single PUT is atomic in S3, so no temp-object dance is needed for the old-or-new guarantee.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
    ) -> None:
        self._bucket = bucket
        self._client = Minio(
            endpoint,
            # An empty access key means anonymous access; the client expects None for that.
            access_key=access_key or None,
            secret_key=secret_key,
            secure=secure,
            # Giving the region up front saves a GetBucketLocation round trip before the first request.
            region=region or None,
        )
        self._ensure_bucket(region or None)

    @property
    def bucket(self) -> str:
        return self._bucket

    def _ensure_bucket(self, region: str | None) -> None:
        if self._client.bucket_exists(bucket_name=self._bucket):
            return
        try:
            self._client.make_bucket(bucket_name=self._bucket, location=region)
            logger.info("created bucket %s", self._bucket)
        except S3Error as exc:
            # Another process created it between our check and our create.
            if exc.code != "BucketAlreadyOwnedByYou":
                raise

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        validate_key(key)
        self._client.put_object(
            bucket_name=self._bucket,
            object_name=key,
            data=io.BytesIO(data),
            length=len(data),
            content_type=content_type or _guess_content_type(key),
        )

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        validate_key(key)
        self._client.fput_object(
            bucket_name=self._bucket,
            object_name=key,
            file_path=str(path),
            content_type=content_type or _guess_content_type(key),
        )

    def get(self, key: str) -> bytes:
        validate_key(key)
        try:
            response = self._client.get_object(bucket_name=self._bucket, object_name=key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise NotFoundError(f"blob {key!r} not found") from None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._client.stat_object(bucket_name=self._bucket, object_name=key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        validate_key(key)
        # S3 DELETE succeeds for missing keys, so this is idempotent as it is.
        self._client.remove_object(bucket_name=self._bucket, object_name=key)

    def list(self, prefix: str) -> list[str]:
        _validate_prefix(prefix)
        objects = self._client.list_objects(bucket_name=self._bucket, prefix=prefix or None, recursive=True)
        return sorted(obj.object_name for obj in objects if obj.object_name is not None and not obj.is_dir)

    def delete_prefix(self, prefix: str) -> int:
        # Listed in full before deleting: removing objects while paging through a listing can skip some.
        keys = self.list(prefix)
        if not keys:
            return 0
        # remove_objects is lazy: nothing is deleted until its error iterator is consumed.
        errors = list(
            self._client.remove_objects(
                bucket_name=self._bucket, delete_object_list=(DeleteObject(key) for key in keys)
            )
        )
        if errors:
            first = errors[0]
            raise PicsortError(
                f"could not delete {len(errors)} of {len(keys)} blobs under {prefix!r}; "
                f"first: {first.name!r}: {first.code} {first.message}"
            )
        return len(keys)

    def signed_url(self, key: str, expires_s: int) -> str | None:
        validate_key(key)
        _validate_expiry(expires_s)
        return self._client.presigned_get_object(
            bucket_name=self._bucket, object_name=key, expires=timedelta(seconds=expires_s)
        )


def _guess_content_type(key: str) -> str:
    # Stored with the object, so browsers following a signed URL render photos instead of downloading.
    return mimetypes.guess_type(key)[0] or _DEFAULT_CONTENT_TYPE


def make_blob_store(storage: StorageSettings) -> BlobStore:
    """The store selected by `storage.blob_backend`."""
    if storage.blob_backend == "minio":
        logger.debug("blob store: minio %s bucket %s", storage.minio_endpoint, storage.minio_bucket)
        return MinioBlobStore(
            endpoint=storage.minio_endpoint,
            access_key=storage.minio_access_key,
            secret_key=storage.minio_secret_key,
            bucket=storage.minio_bucket,
            secure=storage.minio_secure,
            region=storage.minio_region or None,
        )
    root = storage.data_dir / "blobs"
    logger.debug("blob store: local %s", root)
    return LocalBlobStore(root)
