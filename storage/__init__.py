"""Blob storage backends (local disk, MinIO/S3) behind one `BlobStore` protocol."""

from storage.blobs import (
    BlobStore,
    LocalBlobStore,
    MinioBlobStore,
    make_blob_store,
    validate_key,
)

__all__ = ["BlobStore", "LocalBlobStore", "MinioBlobStore", "make_blob_store", "validate_key"]
