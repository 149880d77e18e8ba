"""Signed links to blobs: the one place that signs a key for a guest or host and checks a link."""

from __future__ import annotations

from search.signing import UrlSigner
from storage.blobs import BlobStore


class SignedFiles:
    """Short-lived signed URLs for blob keys, and reading a blob through such a URL."""

    def __init__(self, signer: UrlSigner, blobs: BlobStore) -> None:
        self._signer = signer
        self._blobs = blobs

    def url(self, key: str) -> str:
        return self._signer.url(key)

    def read_signed(self, key: str, expires: str, signature: str) -> bytes:
        """SignatureError for a wrong or expired link; NotFoundError when the blob is gone."""
        self._signer.verify(key, expires, signature)
        return self._blobs.get(key)
