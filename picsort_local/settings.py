"""The one settings class. Every value can be set by an environment variable `PICSORT_<NAME>`.

The environment is flat (`PICSORT_PACK`, `PICSORT_ADMIN_KEY`, ...: the names operators already use), and
each layer reads only its group: `settings.engine` (models), `settings.ingest` (indexer),
`settings.storage` (storage), `settings.service` (the HTTP service) and `settings.rekognition` (the
Rekognition-compatible API). Groups are frozen views built from the one validated settings object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return Path(base) if base else Path.home() / fallback


@dataclass(frozen=True)
class EngineSettings:
    """The face engine (models/): pack, device and detection parameters."""

    models_dir: Path
    pack: str
    device: Literal["auto", "cpu", "cuda"]
    threads: int
    max_image_pixels: int
    det_threshold: float
    det_nms_iou: float
    min_face_px: int
    det_target_face_px: int
    det_pad_ratio: float
    det_global_size: int
    embed_batch: int


@dataclass(frozen=True)
class IngestSettings:
    checkpoint_photos: int
    workers: int
    bodies: bool


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path
    blob_backend: Literal["local", "minio"]
    minio_endpoint: str
    minio_access_key: str
    minio_secret_key: str = field(repr=False)
    minio_bucket: str = "picsort"
    minio_secure: bool = False
    minio_region: str = "us-east-1"
    index_kind: Literal["flat", "hnsw"] = "flat"

    @property
    def metadata_path(self) -> Path:
        return self.data_dir / "picsort.sqlite3"


@dataclass(frozen=True)
class ServiceSettings:
    admin_key: SecretStr = field(repr=False)
    public_url: str
    signed_url_ttl_s: int
    max_upload_bytes: int
    max_request_bytes: int
    max_selfie_bytes: int
    search_concurrency: int
    search_low_threshold: float
    search_high_threshold: float
    api_docs: bool = False


@dataclass(frozen=True)
class RekognitionSettings:
    access_key_id: str
    secret_access_key: SecretStr = field(repr=False)
    region: str = ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PICSORT_", extra="ignore")

    # --- where things live -------------------------------------------------------------------
    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "picsort")
    # Model packs are shared by every data dir on the machine, so they live in the user cache.
    models_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "picsort" / "models")

    # --- face engine ----------------------------------------------------------------------------
    pack: str = "pypi-small"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # 0 = choose from the machine (all cores up to 8 for inference).
    threads: int = Field(default=0, ge=0)
    max_image_pixels: int = Field(default=100_000_000, gt=0)
    det_threshold: float = Field(default=0.5, gt=0, lt=1)
    det_nms_iou: float = Field(default=0.4, gt=0, lt=1)
    # Smallest face (pixels tall in the original photo) the detector must find...
    min_face_px: int = Field(default=24, ge=8)
    # ...by resizing the photo so such a face is this tall at the detector's input.
    det_target_face_px: int = Field(default=16, ge=8)
    # Extra border (fraction of the long side) around the whole-photo pass, so a face that fills the
    # frame still looks like a face to the detector (SCRFD misses faces larger than its anchors).
    det_pad_ratio: float = Field(default=0.5, ge=0)
    # Side of that padded whole-photo view; 0 = the detector's training size (640 for SCRFD).
    det_global_size: int = Field(default=320, ge=0, multiple_of=32)
    # Faces per embedder call; 0 = by device: 32 on CUDA; on CPU 1 for a one-thread session, else 4
    # (larger batches were slower per face there, see the Face engine benchmark).
    embed_batch: int = Field(default=0, ge=0)

    # --- ingest ---------------------------------------------------------------------------------
    # Photos per index snapshot: smaller = less work redone after a crash, larger = fewer snapshot writes.
    ingest_checkpoint_photos: int = Field(default=64, ge=1)
    # Parallel inference workers for ingest; 0 = one per core (up to 4) on CPU, 1 on CUDA.
    ingest_workers: int = Field(default=0, ge=0)
    # Also find people whose face is not visible (HOG people detector) for the outfit search pass.
    ingest_bodies: bool = True

    # --- blob storage (photos, crops, index snapshots) ------------------------------------------
    # Each event's face index: exact ("flat", the default) or approximate ("hnsw", for events of
    # hundreds of thousands of faces: faster searches, lower recall, see the index benchmark). It applies
    # to indexes created from then on; an existing event keeps the kind of its snapshot.
    index_kind: Literal["flat", "hnsw"] = "flat"
    # "local" keeps blobs under data_dir/blobs; "minio" uses any S3-compatible server.
    blob_backend: Literal["local", "minio"] = "local"
    minio_endpoint: str = "localhost:9000"  # host:port, no scheme (the scheme comes from minio_secure)
    minio_access_key: str = ""
    # repr=False so the secret never shows up when the settings object is logged or printed.
    minio_secret_key: str = Field(default="", repr=False)
    minio_bucket: str = "picsort"
    minio_secure: bool = False
    minio_region: str = "us-east-1"

    # --- search service -------------------------------------------------------------------------
    admin_key: SecretStr = Field(default=SecretStr(""), repr=False)  # host API key (X-Admin-Key)
    public_url: str = ""  # base URL used in guest links, e.g. https://photos.venue.example
    signed_url_ttl_s: int = Field(default=900, ge=10)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_request_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_selfie_bytes: int = Field(default=15 * 1024 * 1024, ge=1024)
    # Interactive API docs at /docs and /redoc. Swagger UI and ReDoc load their scripts from a CDN, so they
    # are off by default (a production page must not run third-party code); the schema itself is always
    # served at /openapi.json.
    api_docs: bool = False
    # Selfie searches analysed at once; 0 = one per core. More only queue for the same cores, and a cap
    # leaves CPU to a running ingest (without it, 32 busy guests slowed an ingest about 8x).
    search_concurrency: int = Field(default=0, ge=0)
    # CompareFaces' per-pair scale (cosine) for packs without an LFW calibration in search/tiers.py.
    # Searches in an event do not use these: see search/decision.py.
    search_low_threshold: float = 0.30
    search_high_threshold: float = 0.40

    # --- Rekognition-compatible API (POST / with X-Amz-Target, search/rekognition/) ------------
    # The one SigV4 key pair clients sign with. No key id = every request is refused (there is no
    # anonymous access). These credentials can read and change every collection: give them only to
    # the venue's own back-end.
    rekognition_access_key_id: str = ""
    rekognition_secret_access_key: SecretStr = Field(default=SecretStr(""), repr=False)
    # Region clients must sign for (and that collection ARNs name); empty = accept any region.
    rekognition_region: str = ""

    # --- groups: what each layer reads --------------------------------------------------------------
    @property
    def engine(self) -> EngineSettings:
        return EngineSettings(
            self.models_dir, self.pack, self.device, self.threads, self.max_image_pixels, self.det_threshold,
            self.det_nms_iou, self.min_face_px, self.det_target_face_px, self.det_pad_ratio,
            self.det_global_size, self.embed_batch)

    @property
    def ingest(self) -> IngestSettings:
        return IngestSettings(self.ingest_checkpoint_photos, self.ingest_workers, self.ingest_bodies)

    @property
    def storage(self) -> StorageSettings:
        return StorageSettings(self.data_dir, self.blob_backend, self.minio_endpoint, self.minio_access_key,
                               self.minio_secret_key, self.minio_bucket, self.minio_secure, self.minio_region,
                               self.index_kind)

    @property
    def service(self) -> ServiceSettings:
        return ServiceSettings(self.admin_key, self.public_url, self.signed_url_ttl_s, self.max_upload_bytes,
                               self.max_request_bytes, self.max_selfie_bytes, self.search_concurrency,
                               self.search_low_threshold, self.search_high_threshold, self.api_docs)

    @property
    def rekognition(self) -> RekognitionSettings:
        return RekognitionSettings(self.rekognition_access_key_id, self.rekognition_secret_access_key,
                                   self.rekognition_region)
