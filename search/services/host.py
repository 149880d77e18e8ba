"""The host's operations (behind the admin key): events, people, photo deletion, grants."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pydantic import SecretStr

from indexer.events import Catalog, CreatedEvent
from picsort_local.errors import NotFoundError
from search.services.files import SignedFiles
from search.services.guest import check_guest_id
from storage.keys import PHOTO_KINDS, person_thumb_key, photo_key
from storage.metadata import EventCounts, EventRow, PersonRow


@dataclass(frozen=True)
class PersonPhotoLink:
    """One photo of a person's set, with signed links like a search result's."""

    photo_id: str
    filename: str
    preview_url: str
    thumb_url: str


class HostService:
    def __init__(self, catalog: Catalog, files: SignedFiles, admin_key: SecretStr) -> None:
        self.catalog = catalog
        self.files = files
        self._admin_key = admin_key

    def check_admin_key(self, given: str | None) -> bool:
        expected = self._admin_key.get_secret_value()
        return bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())

    def create_event(self, name: str, watermark: str | None) -> CreatedEvent:
        return self.catalog.create_event(name, watermark=watermark)

    def list_events(self) -> list[tuple[EventRow, EventCounts]]:
        meta = self.catalog.meta
        return [(e, meta.events.counts(e.id)) for e in meta.events.list()]

    def event(self, event_id: str) -> EventRow:
        """NotFoundError for an unknown event."""
        return self.catalog.meta.events.get(event_id)

    def delete_event(self, event_id: str) -> None:
        # Its ingest jobs (ids, counts, file names in errors) go with its other rows.
        self.catalog.delete_event(event_id)

    def people(self, event_id: str) -> list[tuple[PersonRow, str | None]]:
        """Each person with the signed URL of its representative face crop (None when it has none)."""
        self.catalog.meta.events.get(event_id)
        out = []
        for p in self.catalog.meta.persons.list(event_id):
            key = person_thumb_key(event_id, p.id)
            out.append((p, self.files.url(key) if self.catalog.blobs.exists(key) else None))
        return out

    def person_photos(self, event_id: str, person_id: int) -> list[PersonPhotoLink]:
        """The set of photos one person of the event is in (upload order), with signed preview and thumb
        links. NotFoundError for an unknown event or a person not in it."""
        self.catalog.meta.events.get(event_id)
        rows = self.catalog.meta.persons.photos(event_id, [person_id])
        # No photo: a person of another event, or none at all (a person keeps no photo only if all were
        # deleted since the last grouping: an empty set, not a 404).
        if not rows and person_id not in {p.id for p in self.catalog.meta.persons.list(event_id)}:
            raise NotFoundError("no such person in this event")
        return [PersonPhotoLink(r.photo_id, r.filename,
                                self.files.url(photo_key(event_id, r.photo_id, "preview")),
                                self.files.url(photo_key(event_id, r.photo_id, "thumb"))) for r in rows]

    def delete_photo(self, event_id: str, photo_id: str) -> int:
        face_ids = self.catalog.faces.delete_photo(event_id, photo_id)
        for kind in PHOTO_KINDS:
            self.catalog.blobs.delete(photo_key(event_id, photo_id, kind))
        return len(face_ids)

    def grant(self, event_id: str, guest_id: str, photo_id: str) -> None:
        check_guest_id(guest_id)
        self.catalog.meta.guests.grant(event_id, guest_id, photo_id)
