"""Events: create (with a guest link token shown once), list, delete everything in one call.

Shared by the CLI and the HTTP service. Event ids and tokens are random; nothing ties one event to
another. Only a hash of the guest token is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from indexer.faces import FaceStore
from picsort_local.errors import InvalidRequestError, NotFoundError
from picsort_local.settings import StorageSettings
from storage.blobs import BlobStore, make_blob_store
from storage.keys import event_prefix
from storage.metadata import EventRow, Metadata

logger = logging.getLogger(__name__)

TOKEN_BYTES = 24  # 192 random bits in the guest link


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CreatedEvent:
    event: EventRow
    guest_token: str  # shown once; only its hash is stored


class Catalog:
    """The stores an event lives in: metadata, blobs (originals, derived images) and the face store
    (face rows, vectors, index snapshots). Built once per process by the composition root."""

    def __init__(self, storage: StorageSettings, blobs: BlobStore | None = None,
                 meta: Metadata | None = None) -> None:
        self.storage = storage
        self.blobs = blobs or make_blob_store(storage)
        self.meta = meta or Metadata(storage.metadata_path)
        self.faces = FaceStore(self.meta, self.blobs, kind=storage.index_kind)

    def create_event(self, name: str, *, watermark: str | None = None) -> CreatedEvent:
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequestError("an event name must be 1 to 200 characters")
        event_id = secrets.token_hex(8)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        row = self.meta.events.create(event_id, name, hash_token(token),
                                      watermark if watermark is not None else name)
        logger.info("created event %s", event_id)
        return CreatedEvent(row, token)

    def event_for_token(self, token: str) -> EventRow:
        """Resolve a guest token. The lookup is by hash (an index on a random value), and the match
        is re-checked in constant time; any failure is the same NotFoundError."""
        row = self.meta.events.by_token_hash(hash_token(token))
        if row is None or not hmac.compare_digest(row.token_hash, hash_token(token)):
            raise NotFoundError("not found")
        return row

    def delete_event(self, event_id: str) -> dict[str, int]:
        """Vectors, snapshots, originals, derived images, then metadata (last, so an interrupted
        delete leaves the event listed and can simply be run again)."""
        self.meta.events.get(event_id)
        self.faces.drop(event_id)
        removed_blobs = self.blobs.delete_prefix(event_prefix(event_id))
        self.meta.events.delete(event_id)
        logger.info("deleted event %s (%d blobs)", event_id, removed_blobs)
        return {"blobs": removed_blobs}

    def resolve_event(self, ref: str) -> EventRow:
        """An event by id, or by exact name when that is unambiguous (CLI convenience)."""
        try:
            return self.meta.events.get(ref)
        except NotFoundError:
            matches = [e for e in self.meta.events.list() if e.name == ref]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidRequestError(
                    f"{len(matches)} events are named {ref!r}: use the event id") from None
            raise
