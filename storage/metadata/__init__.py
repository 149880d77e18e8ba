"""Event metadata as typed repositories (one per aggregate) over one database.

`Metadata` opens the database, brings its schema up to date and hands out the repositories; they
all share its one connection (and its lock and transactions). Repositories take and return the
frozen values of `rows`, never database rows, and write SQL that runs on SQLite and PostgreSQL alike:
the `Database` is the one place that knows which it is.
"""

from __future__ import annotations

from pathlib import Path

from storage.metadata.db import ConstraintError, Database
from storage.metadata.events import EventRepo
from storage.metadata.faces import FaceRepo
from storage.metadata.guests import GuestRepo
from storage.metadata.jobs import JobRepo
from storage.metadata.persons import PersonRepo
from storage.metadata.photos import PhotoRepo
from storage.metadata.rekognition import RekognitionRepo
from storage.metadata.rows import (
    Body,
    BodyRow,
    EventCounts,
    EventRow,
    FacePhoto,
    FaceRow,
    JobRow,
    PersonPhoto,
    PersonRow,
    PhotoRow,
    RekCollectionRow,
    RekFaceLink,
    RekFaceRow,
    SelfieRow,
)
from storage.metadata.schema import MIGRATIONS, migrate


class Metadata:
    """The aggregate root: one database file, every repository over it."""

    def __init__(self, path: Path) -> None:
        self.db = Database(path)
        if migrate(self.db):
            self.db.scrub()  # migration 4 deletes saved selfies: their WAL copies go too
        self.events = EventRepo(self.db)
        self.photos = PhotoRepo(self.db)
        self.faces = FaceRepo(self.db)
        self.persons = PersonRepo(self.db)
        self.guests = GuestRepo(self.db)
        self.rekognition = RekognitionRepo(self.db)
        self.jobs = JobRepo(self.db)

    @property
    def path(self) -> Path:
        return self.db.path

    def close(self) -> None:
        self.db.close()


__all__ = [
    "MIGRATIONS", "Body", "BodyRow", "ConstraintError", "Database", "EventCounts", "EventRepo", "EventRow",
    "FacePhoto", "FaceRepo", "FaceRow", "GuestRepo", "JobRepo", "JobRow", "Metadata", "PersonPhoto",
    "PersonRepo", "PersonRow", "PhotoRepo", "PhotoRow", "RekCollectionRow", "RekFaceLink", "RekFaceRow",
    "RekognitionRepo", "SelfieRow", "migrate",
]
