"""What guests leave in an event: photos they hid ("not me"), originals the host granted them, and
saved selfies. Guest ids are random and per event; nothing ties one event's guest to another's."""

from __future__ import annotations

from picsort_local.errors import NotFoundError
from storage.metadata.db import Database, now
from storage.metadata.rows import SelfieRow


class GuestRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _check_photo(self, event_id: str, photo_id: str) -> None:
        if not self.db.query("SELECT 1 FROM photos WHERE event_id = ? AND id = ?", (event_id, photo_id)):
            raise NotFoundError(f"no photo {photo_id!r} in this event")

    def hide(self, event_id: str, guest_id: str, photo_id: str) -> None:
        """Idempotent; NotFoundError for a photo not in the event."""
        self._check_photo(event_id, photo_id)
        with self.db.transaction() as db:
            db.execute("INSERT INTO hidden_photos (event_id, guest_id, photo_id, created_at)"
                       " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (event_id, guest_id, photo_id, now()))

    def hidden(self, event_id: str, guest_id: str) -> set[str]:
        return {str(r[0]) for r in self.db.query(
            "SELECT photo_id FROM hidden_photos WHERE event_id = ? AND guest_id = ?", (event_id, guest_id))}

    def forget(self, event_id: str, guest_id: str) -> None:
        """Everything kept under a guest id in this event: hidden photos and the host's grants (a guest
        who asks to be forgotten leaves no trace of the id, and gives up the originals it unlocked)."""
        with self.db.transaction() as db:
            db.execute("DELETE FROM hidden_photos WHERE event_id = ? AND guest_id = ?", (event_id, guest_id))
            db.execute("DELETE FROM grants WHERE event_id = ? AND guest_id = ?", (event_id, guest_id))
        self.db.scrub()

    def grant(self, event_id: str, guest_id: str, photo_id: str) -> None:
        """The host lets this guest download the photo's original. Idempotent; NotFoundError for a
        photo not in the event."""
        self._check_photo(event_id, photo_id)
        with self.db.transaction() as db:
            db.execute("INSERT INTO grants (event_id, guest_id, photo_id, created_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT DO NOTHING", (event_id, guest_id, photo_id, now()))

    def has_grant(self, event_id: str, guest_id: str, photo_id: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM grants WHERE event_id = ? AND guest_id = ? AND photo_id = ?",
                                  (event_id, guest_id, photo_id)))

    def grantees(self, event_id: str, photo_id: str) -> list[str]:
        """The guest ids the host granted this photo's original to (checked again at each download)."""
        return [str(r[0]) for r in self.db.query(
            "SELECT guest_id FROM grants WHERE event_id = ? AND photo_id = ?", (event_id, photo_id))]

    def save_selfie(self, event_id: str, token_hash: str, blob_key: str, embedding: bytes) -> None:
        with self.db.transaction() as db:
            db.execute("INSERT INTO saved_selfies (token_hash, event_id, blob_key, embedding, created_at) "
                       "VALUES (?, ?, ?, ?, ?)", (token_hash, event_id, blob_key, embedding, now()))

    def selfie(self, event_id: str, token_hash: str) -> SelfieRow | None:
        """A saved selfie, only in the event it was saved in."""
        rows = self.db.query(
            "SELECT blob_key, embedding FROM saved_selfies WHERE token_hash = ? AND event_id = ?",
            (token_hash, event_id))
        return SelfieRow(str(rows[0][0]), bytes(rows[0][1])) if rows else None

    def delete_selfie(self, event_id: str, token_hash: str) -> str | None:
        """Returns the deleted selfie's blob key (the caller deletes the blob), None if there was none."""
        with self.db.transaction() as db:
            rows = db.query("SELECT blob_key FROM saved_selfies WHERE token_hash = ? AND event_id = ?",
                            (token_hash, event_id))
            db.execute("DELETE FROM saved_selfies WHERE token_hash = ? AND event_id = ?",
                       (token_hash, event_id))
        if rows:
            self.db.scrub()
        return str(rows[0][0]) if rows else None
