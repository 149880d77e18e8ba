"""The one place that spells the blob key layout. Everything of an event lives under its prefix, so
deleting the prefix deletes the event's files:

    events/{event}/originals/{photo}        the uploaded bytes (private: reachable only by a grant)
    events/{event}/{preview|thumb|micro}/{photo}.jpg   derived images (watermarked previews)
    events/{event}/index/                   face index snapshots and their CURRENT pointer
    events/{event}/persons/{person}.jpg     a representative face per person
    events/{event}/selfies/{token hash}     selfies a guest chose to save

`selfies/` at the root held saved selfies before they were scoped to an event (schema 4).
"""

from __future__ import annotations

import re
from typing import Literal

from picsort_local.errors import InvalidRequestError
from storage.blobs import validate_key

PhotoKind = Literal["originals", "preview", "thumb", "micro"]
PHOTO_KINDS: tuple[PhotoKind, ...] = ("originals", "preview", "thumb", "micro")
LEGACY_SELFIES_PREFIX = "selfies/"

# Guests' saved selfies: never readable through Rekognition's Image.S3Object, nor listed to hosts.
_PRIVATE = re.compile(r"^(?:selfies/|events/[^/]+/selfies/)")


def check_event_id(event_id: str) -> str:
    """An event id usable as one key segment (no '/', nothing `validate_key` refuses)."""
    validate_key(event_id)
    if "/" in event_id:
        raise InvalidRequestError(f"event id {event_id!r} must not contain '/'")
    return event_id


def event_prefix(event_id: str) -> str:
    return f"events/{check_event_id(event_id)}/"


def photo_key(event_id: str, photo_id: str, kind: PhotoKind) -> str:
    """Originals keep no extension (their type is in the blob's metadata); derived images are JPEG."""
    return f"{event_prefix(event_id)}{kind}/{photo_id}" + ("" if kind == "originals" else ".jpg")


def original_of(key: str) -> tuple[str, str] | None:
    """(event id, photo id) when `key` is a photo's original, else None."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "events" and parts[2] == "originals" and parts[1] and parts[3]:
        return parts[1], parts[3]
    return None


def index_prefix(event_id: str) -> str:
    return f"{event_prefix(event_id)}index/"


def persons_prefix(event_id: str) -> str:
    return f"{event_prefix(event_id)}persons/"


def person_thumb_key(event_id: str, person_id: int) -> str:
    return f"{persons_prefix(event_id)}{person_id}.jpg"


def selfie_key(event_id: str, token_hash: str) -> str:
    return f"{event_prefix(event_id)}selfies/{token_hash[:32]}"


def is_private(key: str) -> bool:
    """Keys that hold guests' own data (saved selfies)."""
    return bool(_PRIVATE.match(key))
