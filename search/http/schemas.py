"""Request and response bodies of the picsort API (the Rekognition API speaks AWS's JSON instead).

The response models document the answers (OpenAPI, and the fuzz test's schema checks); optional keys
are left out when absent: routes with optional fields use `response_model_exclude_unset`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from search.services.guest import SearchHit


# ---- requests ------------------------------------------------------------------------------------
class EventIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    watermark: str | None = Field(default=None, max_length=100)


class GrantIn(BaseModel):
    guest_id: str = Field(min_length=16, max_length=64)
    photo_id: str = Field(min_length=1, max_length=64)


class FeedbackIn(BaseModel):
    guest_id: str = Field(min_length=16, max_length=64)
    photo_id: str = Field(min_length=1, max_length=64)
    vote: str = Field(pattern="^down$")


class SavedSearchIn(BaseModel):
    selfie_token: str = Field(min_length=16, max_length=128)
    guest_id: str | None = Field(default=None, min_length=16, max_length=64)
    show_more: bool = Field(default=False, description="also return the capped \"maybe\" tier")


class ForgetIn(BaseModel):
    guest_id: str | None = Field(default=None, min_length=16, max_length=64)
    selfie_token: str | None = Field(default=None, min_length=16, max_length=128)


# ---- errors --------------------------------------------------------------------------------------
class ErrorOut(BaseModel):
    """Every error answer. Some add fields: `reason` (a refused image), `faces` (a selfie refused for
    its face count) with `boxes` (the competing faces, as shares of the photo: left, top, width,
    height), `detail` (which fields failed validation)."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str


class NoRouteOut(BaseModel):
    """Starlette's own 404 when the path matches no route at all (e.g. an id holding an encoded '/')."""

    detail: str


# ---- answers -------------------------------------------------------------------------------------
class ReadyOut(BaseModel):
    ready: bool


class EventCreatedOut(BaseModel):
    id: str
    name: str
    created_at: str
    guest_token: str  # shown once
    guest_url: str


class EventSummaryOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # photos_<status>: photo counts per status
    id: str
    name: str
    created_at: str
    faces: int
    persons: int


class UploadResultOut(BaseModel):
    filename: str
    status: str  # accepted | duplicate | rejected
    photo_id: str | None = None
    error: str | None = None


class UploadOut(BaseModel):
    job_id: str
    results: list[UploadResultOut]


class JobErrorOut(BaseModel):
    filename: str
    reason: str


class JobOut(BaseModel):
    id: str
    event_id: str
    status: str  # queued | running | done | error | interrupted
    total: int
    done: int
    failed: int
    errors: list[JobErrorOut]


class PersonOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    face_count: int
    photo_count: int
    thumb_url: str | None


class PersonPhotoOut(BaseModel):
    photo_id: str
    filename: str
    preview_url: str = Field(description="signed, short-lived link to the watermarked preview")
    thumb_url: str = Field(description="signed, short-lived link to the thumbnail")


class PersonPhotosOut(BaseModel):
    event_id: str
    person_id: int
    photos: list[PersonPhotoOut] = Field(description="every photo the person is in, in upload order")


class FacesRemovedOut(BaseModel):
    faces_removed: int


class StatusOut(BaseModel):
    status: str


class SearchOut(BaseModel):
    guest_id: str
    outfit: str | None
    results: list[SearchHit]
    more: int = Field(default=0,
                      description="\"maybe\" photos withheld: search again with show_more to see them")
    selfie_token: str | None = Field(default=None, description="only when the selfie was saved")


class ForgetOut(BaseModel):
    preferences: bool
    selfie: bool


class UrlOut(BaseModel):
    url: str
