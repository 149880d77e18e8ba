"""Signed links to blobs: the one place that signs a key for a guest or host and checks a link."""

from __future__ import annotations

import hmac

from picsort_local.errors import NotFoundError
from search.signing import UrlSigner
from storage.blobs import BlobStore
from storage.keys import original_of
from storage.metadata.guests import GuestRepo


class SignedFiles:
    """Short-lived signed URLs for blob keys, and reading a blob through such a URL. A photo's original
    is only ever linked for one guest's grant, and the grant is checked again at download: a guest who
    asks to be forgotten (or a grant the host withdraws) stops a link already handed out."""

    def __init__(self, signer: UrlSigner, blobs: BlobStore, grants: GuestRepo) -> None:
        self._signer = signer
        self._blobs = blobs
        self._grants = grants

    def url(self, key: str) -> str:
        return self._signer.url(key)

    def original_url(self, key: str, guest_id: str) -> str:
        """The link to a photo's original for the guest it was granted to."""
        return self._signer.url(key, holder=self._signer.holder_tag(guest_id))

    def read_signed(self, key: str, expires: str, signature: str, holder: str = "") -> bytes:
        """SignatureError for a wrong or expired link; NotFoundError when the blob is gone, or for an
        original whose grant is gone."""
        self._signer.verify(key, expires, signature, holder=holder)
        original = original_of(key)
        if original is not None and not self._still_granted(*original, holder):
            raise NotFoundError("not found")
        return self._blobs.get(key)

    def _still_granted(self, event_id: str, photo_id: str, holder: str) -> bool:
        tags = [self._signer.holder_tag(guest) for guest in self._grants.grantees(event_id, photo_id)]
        # Every tag compared in constant time: the answer's timing says nothing about other grants.
        return bool(holder) and sum(hmac.compare_digest(tag, holder) for tag in tags) > 0
