"""What the metadata repositories take and return: frozen values, never database rows."""

from __future__ import annotations

from dataclasses import dataclass

from picsort_local.types import FaceRecord, Outfit

Lab = tuple[float, float, float]
Box = tuple[float, float, float, float]  # original pixels: x1, y1, x2, y2


@dataclass(frozen=True)
class EventRow:
    id: str
    name: str
    created_at: str
    token_hash: str
    watermark: str | None  # text drawn on previews; stored in settings_json as {"watermark": ...}


@dataclass(frozen=True)
class EventCounts:
    photos: dict[str, int]  # photos per status (pending | processing | indexed | failed); absent = 0
    faces: int  # indexed faces
    persons: int

    def as_fields(self) -> dict[str, int]:
        """The flat fields the host API and the CLI have always shown: photos_<status>, faces, persons."""
        return {**{f"photos_{status}": n for status, n in self.photos.items()},
                "faces": self.faces, "persons": self.persons}


@dataclass(frozen=True)
class PhotoRow:
    id: str
    event_id: str
    sha256: str
    filename: str
    original_key: str | None
    width: int | None
    height: int | None
    status: str  # pending | processing | indexed | failed
    error: str | None


@dataclass(frozen=True)
class FaceRow:
    id: int
    event_id: str
    photo_id: str
    record: FaceRecord
    person_id: int | None
    state: str  # pending | indexed


@dataclass(frozen=True)
class FacePhoto:
    """What a search needs per face: its photo and outfit colour."""

    photo_id: str
    outfit_lab: Lab | None


@dataclass(frozen=True)
class PersonRow:
    id: int
    representative_face_id: int | None
    face_count: int
    photo_count: int  # distinct photos with a face of the person
    rep_photo: str | None  # the representative face's photo


@dataclass(frozen=True)
class PersonPhoto:
    person_id: int
    photo_id: str
    filename: str


@dataclass(frozen=True)
class Body:
    """A person found without a visible face: their box and outfit colour (input of add_bodies)."""

    box: Box
    outfit: Outfit


@dataclass(frozen=True)
class BodyRow:
    id: int
    photo_id: str
    box: Box
    outfit: Outfit


@dataclass(frozen=True)
class SelfieRow:
    blob_key: str
    embedding: bytes  # float32 vector, native byte order


@dataclass(frozen=True)
class JobRow:
    id: str
    event_id: str
    status: str  # queued | running | done | error
    total: int
    done: int
    failed: int
    errors: tuple[tuple[str, str], ...]  # (file name, reason)
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class RekCollectionRow:
    collection_id: str
    event_id: str
    created_at: str


@dataclass(frozen=True)
class RekFaceRow:
    """A face known to the Rekognition-compatible API, with what its answers need."""

    face_uuid: str
    face_id: int
    image_uuid: str
    external_image_id: str | None
    photo_id: str
    box: Box  # original pixels
    det_score: float
    width: int  # of the photo, original pixels
    height: int


@dataclass(frozen=True)
class RekFaceLink:
    """The Rekognition ids given to a face already inserted (input of add_faces)."""

    face_uuid: str
    face_id: int
    image_uuid: str
    external_image_id: str | None
