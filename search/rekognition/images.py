"""A request's Image structure as bytes: base64 `Bytes`, or an `S3Object` read from the blob store.

Image.S3Object reads `Name` as a key of the configured blob store. With the MinIO backend `Bucket`
must be `StorageSettings.minio_bucket`; the local store has no buckets, so any Bucket is accepted there.
Keys under `selfies/` (guests' saved selfies) are never readable this way. S3 objects may be up to
15 MB, Image.Bytes up to 5 MB (after base64 decoding), as on AWS.
"""

from __future__ import annotations

import base64
import binascii

from picsort_local.errors import ImageTooLargeError, InvalidRequestError, InvalidS3ObjectError, NotFoundError
from picsort_local.settings import StorageSettings
from search.rekognition.protocol import MAX_IMAGE_BYTES, MAX_S3_IMAGE_BYTES, check_image_size
from storage.blobs import BlobStore, validate_key
from storage.keys import is_private

# Cheap size check before decoding: base64 is 4 characters per 3 bytes.
_MAX_BASE64_CHARS = (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4


class ImageReader:
    """Turns a request's Image structure into bytes (base64 Bytes or an S3Object in the blob store)."""

    def __init__(self, settings: StorageSettings, blobs: BlobStore) -> None:
        self._settings = settings
        self._blobs = blobs

    def read(self, value: object, field: str = "Image") -> bytes:
        if not isinstance(value, dict):
            raise InvalidRequestError(f"{field} is required (with Bytes or S3Object)")
        if ("Bytes" in value) == ("S3Object" in value):
            raise InvalidRequestError(f"{field} needs exactly one of Bytes or S3Object")
        if "Bytes" in value:
            return self._bytes(value["Bytes"], field)
        return self._s3(value["S3Object"], field)

    @staticmethod
    def _bytes(raw: object, field: str) -> bytes:
        if not isinstance(raw, str):
            raise InvalidRequestError(f"{field}.Bytes must be base64 text")
        if len(raw) > _MAX_BASE64_CHARS:
            raise ImageTooLargeError(f"{field}.Bytes is over {MAX_IMAGE_BYTES} bytes")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(f"{field}.Bytes is not valid base64") from None
        if not data:
            raise InvalidRequestError(f"{field}.Bytes must not be empty")
        return check_image_size(data, MAX_IMAGE_BYTES)

    def _s3(self, obj: object, field: str) -> bytes:
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in ("Bucket", "Name")):
            raise InvalidRequestError(f"{field}.S3Object needs Bucket and Name")
        bucket, name = obj["Bucket"], obj["Name"]
        if obj.get("Version") is not None:
            raise InvalidS3ObjectError("S3 object versions are not supported by this server")
        if self._settings.blob_backend == "minio" and bucket != self._settings.minio_bucket:
            raise InvalidS3ObjectError(
                f"Unable to get object metadata from S3. Bucket {bucket[:64]!r} is not served here.")
        try:
            validate_key(name)
            if is_private(name):  # guests' saved selfies are never readable this way
                raise NotFoundError(name)
            data = self._blobs.get(name)
        except (InvalidRequestError, NotFoundError):
            raise InvalidS3ObjectError("Unable to get object metadata from S3. Check object key, region "
                                       "and/or access permissions.") from None
        return check_image_size(data, MAX_S3_IMAGE_BYTES)


__all__ = ["ImageReader"]
