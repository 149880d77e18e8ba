"""`FaceProvider` on this project's engine, index and storage: a Rekognition collection is an event.

Mapping:
- a collection is an event (created through `Catalog`, so the host API lists and deletes it too);
  `rek_collections` maps the CollectionId to the event id;
- IndexFaces stores a photo row (sizes only: like Rekognition, no image is kept), face rows and
  vectors in the event's index, and gives every face a random FaceId (`rek_faces`); all faces of
  one call share one random ImageId;
- SearchFaces/SearchFacesByImage use the guest search's decision (`search.decision`): Similarity is
  its event-normalised 0-100 scale (80 = the high tier: 0.05 strangers per search at any collection
  size), so the default FaceMatchThreshold of 80 means "high confidence". CompareFaces compares one
  pair (no crowd) on `Tiers.similarity`. Confidence is the detection score x 100.

Writes go through the face store (`indexer.faces.FaceStore`), like the ingest's: serialised per
event in this process, faces inserted 'pending' (with their FaceIds), the index snapshot published,
then the faces committed; the store's recovery reconciles after a crash. Each write publishes a new index
snapshot, so the cost of one IndexFaces call grows with the collection size (a snapshot is rewritten per call).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from indexer.events import Catalog
from indexer.faces import NewFaces
from models.engine import FaceEngine, PhotoFaces
from picsort_local.errors import (
    AlreadyExistsError,
    CollectionNotFoundError,
    InvalidImageError,
    InvalidPaginationTokenError,
    InvalidRequestError,
    PicsortError,
)
from search.decision import FaceSearch
from search.rekognition.protocol import (
    COMPARE_TARGET_LIMIT,
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SEARCH_MAX_FACES,
    DEFAULT_SIMILARITY_THRESHOLD,
    DELETE_MAX_FACES,
    INDEX_FACES_LIMIT,
    MAX_S3_IMAGE_BYTES,
    PAGE_MAX,
    SEARCH_MAX_FACES,
    BoundingBox,
    CollectionDescription,
    CollectionPage,
    ComparedFace,
    CompareFacesMatch,
    CompareFacesResult,
    CreatedCollection,
    DeleteFacesResult,
    Face,
    FaceDetail,
    FaceMatch,
    FacePage,
    ImageQuality,
    IndexedFace,
    IndexFacesResult,
    Landmark,
    Pose,
    QualityFilter,
    SearchFacesByImageResult,
    SearchFacesResult,
    UnindexedFace,
    check_collection_id,
    check_external_image_id,
    check_face_id,
    check_image_size,
    check_int,
    check_percent,
    check_quality_filter,
    collection_arn,
)
from search.tiers import Tiers
from storage.metadata import RekFaceLink, RekFaceRow

if TYPE_CHECKING:
    from search.service import PicsortService

logger = logging.getLogger(__name__)

# SCRFD's five landmarks, in its order, under Rekognition's names (left/right as seen in the image).
LANDMARK_TYPES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")


# ---- quality filter --------------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityBar:
    """Minimum quality a face needs to be indexed / searched under one QualityFilter value.

    Signals (per face, from the engine): detection score 0..1; face height in original pixels;
    |yaw| and |pitch| in degrees (rough, from the 5 landmarks: a frontal face reads pitch ~ +10);
    sharpness = variance of the Laplacian of the aligned 112x112 grey crop; brightness = mean grey
    level 0..255 of that crop. Values measured on 40 random LFW photos (faces 110-146 px tall):
    untouched photos have score 0.73-0.87, sharpness 34-309, brightness 71-160, pitch -27..44 and
    |yaw| <= 49 (but see the pose note below); a 3 px Gaussian blur brings sharpness to 3.5-12, a
    6 px blur to 1.9-3.6; darkening to 15% brings brightness to 10-24; faces 28-34 px tall read
    sharpness 11-53.
    """

    min_confidence: float
    min_face_px: float
    max_yaw: float
    max_pitch: float
    min_sharpness: float
    min_brightness: float


# AUTO (IndexFaces' default) must keep every ordinary photo face while dropping the clearly unusable
# ones (heavy blur, near-black, thumbnails). LOW only drops what cannot be matched at all; MEDIUM and
# HIGH are progressively stricter for collections that want only reference-grade faces.
# Pose: both angles come from 5 landmarks and run high. Yaw saturates at 90 degrees already for
# three-quarter views (two such LFW photos read -90), and faces looking down while smiling read a
# pitch of 52-66 (four of 250 LFW photos); all of these match well. So LOW does not filter on pose
# (90 = off), AUTO only on a pitch past 75, and MEDIUM and HIGH keep near-frontal faces only.
QUALITY_BARS: dict[str, QualityBar] = {
    "LOW": QualityBar(min_confidence=0.50, min_face_px=16, max_yaw=90, max_pitch=90, min_sharpness=2.0,
                      min_brightness=15),
    "AUTO": QualityBar(min_confidence=0.60, min_face_px=20, max_yaw=90, max_pitch=75, min_sharpness=4.0,
                       min_brightness=25),
    "MEDIUM": QualityBar(min_confidence=0.65, min_face_px=32, max_yaw=60, max_pitch=50, min_sharpness=8.0,
                         min_brightness=35),
    "HIGH": QualityBar(min_confidence=0.72, min_face_px=48, max_yaw=40, max_pitch=35, min_sharpness=20.0,
                       min_brightness=50),
}
# A face that passes every check but is near two or more limits is reported as LOW_FACE_QUALITY:
# each signal alone is tolerable, together they make matches unreliable. "Near" is within 25% for
# the multiplicative signals (size, sharpness, brightness), 0.05 for the detection score (this
# detector's scores are compressed into 0.5-0.9) and 10 degrees for the pose. An angle is never
# "near" when the bar does not filter on it (90), as a saturated estimate says little.
MARGINAL_FACTOR = 1.25
MARGINAL_SCORE = 0.05
MARGINAL_DEGREES = 10.0


def quality_reasons(bar: QualityBar | None, *, score: float, face_px: float, yaw: float, pitch: float,
                    sharpness: float, brightness: float) -> tuple[str, ...]:
    """Rekognition's UnindexedFaces reasons for one face under `bar` (None = QualityFilter NONE)."""
    if bar is None:
        return ()
    reasons = []
    if score < bar.min_confidence:
        reasons.append("LOW_CONFIDENCE")
    if face_px < bar.min_face_px:
        reasons.append("SMALL_BOUNDING_BOX")
    if abs(yaw) > bar.max_yaw or abs(pitch) > bar.max_pitch:
        reasons.append("EXTREME_POSE")
    if brightness < bar.min_brightness:
        reasons.append("LOW_BRIGHTNESS")
    if sharpness < bar.min_sharpness:
        reasons.append("LOW_SHARPNESS")
    if reasons:
        return tuple(reasons)
    f = MARGINAL_FACTOR
    marginal = sum((
        score < bar.min_confidence + MARGINAL_SCORE,
        face_px < bar.min_face_px * f,
        (bar.max_yaw < 90 and abs(yaw) > bar.max_yaw - MARGINAL_DEGREES)
        or (bar.max_pitch < 90 and abs(pitch) > bar.max_pitch - MARGINAL_DEGREES),
        brightness < bar.min_brightness * f,
        sharpness < bar.min_sharpness * f,
    ))
    return ("LOW_FACE_QUALITY",) if marginal >= 2 else ()


def sharpness_percent(laplacian_variance: float) -> float:
    """0..100 for ImageQuality.Sharpness: half-way (50) at a variance of 20, i.e. a slightly soft
    face; untouched LFW faces read 63-94, a 6 px blur under 15."""
    v = max(0.0, laplacian_variance)
    return 100.0 * v / (v + 20.0)


def _check_format(data: bytes) -> None:
    # Rekognition accepts only JPEG and PNG, although the decoder here reads more formats.
    if not data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
        # aws_error adds the AWS prefix
        raise InvalidImageError("unsupported", "only JPEG and PNG are accepted")


@dataclass(frozen=True)
class _Analysed:
    width: int
    height: int
    faces: PhotoFaces
    details: tuple[FaceDetail, ...]
    by_size: tuple[int, ...]  # face indexes, largest box first

    def reasons(self, i: int, bar: QualityBar | None) -> tuple[str, ...]:
        f = self.faces
        box = f.detections.boxes[i]
        return quality_reasons(bar, score=float(f.detections.scores[i]), face_px=float(box[3] - box[1]),
                               yaw=float(f.yaw[i]), pitch=float(f.pitch[i]),
                               sharpness=float(f.sharpness[i]), brightness=float(f.brightness[i]))

    def usable(self, bar: QualityBar | None) -> list[int]:
        """Faces passing `bar`, largest first."""
        return [i for i in self.by_size if not self.reasons(i, bar)]


def _box_ratio(box: Sequence[float], width: int, height: int) -> BoundingBox:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(width, 1), max(height, 1)
    return BoundingBox(width=(x2 - x1) / w, height=(y2 - y1) / h, left=x1 / w, top=y1 / h)


# ---- the provider ----------------------------------------------------------------------------------
class LocalProvider:
    """Rekognition's face operations on this machine. Safe to share between threads."""

    def __init__(self, catalog: Catalog, engine: FaceEngine, face_search: FaceSearch, tiers: Tiers, *,
                 region: str = "us-east-1") -> None:
        self.catalog = catalog
        self.engine = engine
        self.face_search = face_search  # the guest search's decision, on the same face store
        self.tiers = tiers  # CompareFaces only: a decision about one pair, not a search
        self.region = region or "us-east-1"
        self.face_model_version = engine.pack_name or "picsort"
        self._collections_lock = threading.Lock()

    @classmethod
    def from_service(cls, service: PicsortService) -> LocalProvider:
        """The provider sharing the HTTP service's engine, catalog (face store) and search."""
        return cls(service.catalog, service.engine, service.face_search, service.tiers,
                   region=service.settings.rekognition.region)

    @property
    def dim(self) -> int:
        return int(self.engine.embedder.dim or 128)

    # ---- helpers -------------------------------------------------------------------------------
    def _event_id(self, collection_id: str) -> str:
        row = self.catalog.meta.rekognition.collection(check_collection_id(collection_id))
        if row is None:
            raise CollectionNotFoundError(collection_id)
        return row.event_id

    def _analyse(self, data: bytes) -> _Analysed:
        # The HTTP layer holds Image.Bytes to 5 MB; direct callers get the larger S3 object limit.
        check_image_size(data, MAX_S3_IMAGE_BYTES)
        _check_format(data)
        image = self.engine.decode(data)
        faces = self.engine.analyze(image)
        w, h = image.original.width, image.original.height
        boxes = faces.detections.boxes
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if len(faces) else np.zeros(0)
        # Stable sort: equal boxes keep the detector's (score) order, so results are reproducible.
        by_size = tuple(int(i) for i in np.argsort(-areas, kind="stable"))
        details = tuple(self._detail(faces, i, w, h) for i in range(len(faces)))
        return _Analysed(w, h, faces, details, by_size)

    @staticmethod
    def _detail(faces: PhotoFaces, i: int, width: int, height: int) -> FaceDetail:
        det = faces.detections
        w, h = max(width, 1), max(height, 1)
        landmarks = tuple(Landmark(name, float(det.kps[i][j][0]) / w, float(det.kps[i][j][1]) / h)
                          for j, name in enumerate(LANDMARK_TYPES))
        return FaceDetail(
            bounding_box=_box_ratio(det.boxes[i], width, height),
            confidence=float(det.scores[i]) * 100.0,
            landmarks=landmarks,
            pose=Pose(roll=float(faces.roll[i]), yaw=float(faces.yaw[i]), pitch=float(faces.pitch[i])),
            quality=ImageQuality(brightness=float(faces.brightness[i]) / 255.0 * 100.0,
                                 sharpness=sharpness_percent(float(faces.sharpness[i]))),
        )

    @staticmethod
    def _face(row: RekFaceRow) -> Face:
        return Face(face_id=row.face_uuid, bounding_box=_box_ratio(row.box, row.width, row.height),
                    image_id=row.image_uuid, external_image_id=row.external_image_id,
                    confidence=float(row.det_score) * 100.0)

    def _search(self, event_id: str, embedding: np.ndarray, threshold: float, max_faces: int,
                exclude: int | None = None) -> tuple[FaceMatch, ...]:
        """The guest search's decision (search.decision), down to FaceMatchThreshold on its scale."""
        matches = self.face_search.match(event_id, embedding, min_similarity=threshold,
                                         exclude=() if exclude is None else (exclude,))
        # Vectors without a FaceId (photos added through the host API) are skipped below.
        ids = matches.face_ids.tolist()
        rows = {r.face_id: r for r in self.catalog.meta.rekognition.faces_by_id(event_id, ids)}
        found = [FaceMatch(similarity=float(s), face=self._face(rows[i]))
                 for s, i in zip(matches.similarity().tolist(), ids, strict=True) if i in rows]
        return tuple(found[:max_faces])

    # ---- collections ---------------------------------------------------------------------------
    def create_collection(self, collection_id: str) -> CreatedCollection:
        check_collection_id(collection_id)
        meta = self.catalog.meta
        with self._collections_lock:
            if meta.rekognition.collection(collection_id) is not None:
                raise AlreadyExistsError(f"The collection id: {collection_id} already exists")
            created = self.catalog.create_event(collection_id[:200])
            try:
                meta.rekognition.add_collection(collection_id, created.event.id)
            except PicsortError:
                # Another process took the id between the check and the insert: drop our event.
                self.catalog.delete_event(created.event.id)
                raise
        logger.info("created collection %s (event %s)", collection_id, created.event.id)
        return CreatedCollection(collection_arn(collection_id, self.region), self.face_model_version)

    def delete_collection(self, collection_id: str) -> None:
        event_id = self._event_id(collection_id)
        with self.catalog.faces.lock(event_id):
            self.catalog.delete_event(event_id)  # rek_* rows go with the event (ON DELETE CASCADE)
        logger.info("deleted collection %s (event %s)", collection_id, event_id)

    def list_collections(self, max_results: int | None = None,
                         next_token: str | None = None) -> CollectionPage:
        limit = check_int("MaxResults", max_results, 0, PAGE_MAX) if max_results is not None else 0
        limit = limit or DEFAULT_PAGE_SIZE  # 0 is allowed by the API; read as "the default page"
        if next_token is not None and (not isinstance(next_token, str) or len(next_token) > 255):
            raise InvalidPaginationTokenError("Invalid pagination token")
        rows = self.catalog.meta.rekognition.collections(next_token, limit + 1)
        page = rows[:limit]
        token = page[-1].collection_id if len(rows) > limit else None
        ids = tuple(r.collection_id for r in page)
        return CollectionPage(ids, tuple(self.face_model_version for _ in ids), token)

    def describe_collection(self, collection_id: str) -> CollectionDescription:
        row = self.catalog.meta.rekognition.collection(check_collection_id(collection_id))
        if row is None:
            raise CollectionNotFoundError(collection_id)
        return CollectionDescription(
            collection_id=collection_id,
            collection_arn=collection_arn(collection_id, self.region),
            face_count=self.catalog.meta.rekognition.count_faces(row.event_id),
            face_model_version=self.face_model_version,
            creation_timestamp=datetime.fromisoformat(row.created_at),
        )

    # ---- faces ---------------------------------------------------------------------------------
    def index_faces(self, collection_id: str, image_bytes: bytes, external_image_id: str | None = None,
                    max_faces: int | None = None, quality_filter: QualityFilter = "AUTO") -> IndexFacesResult:
        check_external_image_id(external_image_id)
        if max_faces is not None:
            check_int("MaxFaces", max_faces, 1)
        bar = QUALITY_BARS.get(check_quality_filter(quality_filter))
        event_id = self._event_id(collection_id)
        seen = self._analyse(image_bytes)
        limit = min(max_faces or INDEX_FACES_LIMIT, INDEX_FACES_LIMIT)
        keep: list[int] = []
        unindexed: list[UnindexedFace] = []
        # Largest first: quality failures are dropped first, then the smallest faces beyond MaxFaces.
        for i in seen.by_size:
            reasons = seen.reasons(i, bar)
            if reasons:
                unindexed.append(UnindexedFace(reasons, seen.details[i]))
            elif len(keep) >= limit:
                unindexed.append(UnindexedFace(("EXCEEDS_MAX_FACES",), seen.details[i]))
            else:
                keep.append(i)
        records: tuple[IndexedFace, ...] = ()
        if keep:
            records = self._store(event_id, image_bytes, external_image_id, seen, keep)
        return IndexFacesResult(records, tuple(unindexed), self.face_model_version)

    def _store(self, event_id: str, data: bytes, external_image_id: str | None, seen: _Analysed,
               keep: list[int]) -> tuple[IndexedFace, ...]:
        meta = self.catalog.meta
        faces = seen.faces
        every = faces.records()
        kept = [every[i] for i in keep]
        image_uuid = str(uuid.uuid4())
        face_uuids = [str(uuid.uuid4()) for _ in keep]
        filename = (external_image_id or image_uuid)[:255]
        def link(ids: list[list[int]]) -> None:  # FaceIds in the same crash-safe window as the rows
            meta.rekognition.add_faces(event_id, [RekFaceLink(u, f, image_uuid, external_image_id)
                                                  for u, f in zip(face_uuids, ids[0], strict=True)])

        store = self.catalog.faces
        with store.lock(event_id):
            store.recover_once(event_id)
            photo_id = meta.photos.add_indexed(event_id, secrets.token_hex(8),
                                               hashlib.sha256(data).hexdigest(), filename, seen.width,
                                               seen.height)
            new = NewFaces(photo_id, tuple(kept), faces.embeddings[keep].astype(np.float32))
            (face_ids,) = store.add(event_id, [new], link=link)
        records = []
        for n, i in enumerate(keep):
            row = RekFaceRow(face_uuids[n], face_ids[n], image_uuid, external_image_id, photo_id,
                             kept[n].box.as_tuple(), kept[n].score, seen.width, seen.height)
            records.append(IndexedFace(self._face(row), seen.details[i]))
        return tuple(records)

    def list_faces(self, collection_id: str, max_results: int | None = None,
                   next_token: str | None = None) -> FacePage:
        limit = check_int("MaxResults", max_results, 0, PAGE_MAX) if max_results is not None else 0
        limit = limit or DEFAULT_PAGE_SIZE
        after = 0
        if next_token is not None:
            if not isinstance(next_token, str) or not next_token.isdigit() or len(next_token) > 18:
                raise InvalidPaginationTokenError("Invalid pagination token")
            after = int(next_token)
        event_id = self._event_id(collection_id)
        rows = self.catalog.meta.rekognition.faces(event_id, after, limit + 1)
        page = rows[:limit]
        token = str(page[-1].face_id) if len(rows) > limit else None
        return FacePage(tuple(self._face(r) for r in page), self.face_model_version, token)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> DeleteFacesResult:
        if not isinstance(face_ids, (list, tuple)) or not 1 <= len(face_ids) <= DELETE_MAX_FACES:
            raise InvalidRequestError(f"FaceIds must list 1 to {DELETE_MAX_FACES} face ids")
        wanted = list(dict.fromkeys(check_face_id(f) for f in face_ids))
        event_id = self._event_id(collection_id)
        # Rows first, vectors second (the face store's order): searches never return a vector without a row.
        deleted = self.catalog.faces.delete_rekognition_faces(event_id, wanted)
        gone = {d.face_uuid for d in deleted}
        return DeleteFacesResult(tuple(f for f in wanted if f in gone),
                                 tuple(f for f in wanted if f not in gone))

    # ---- search --------------------------------------------------------------------------------
    def search_faces(self, collection_id: str, face_id: str, threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
                     max_faces: int = DEFAULT_SEARCH_MAX_FACES) -> SearchFacesResult:
        check_face_id(face_id)
        threshold = check_percent("FaceMatchThreshold", threshold)
        max_faces = check_int("MaxFaces", max_faces, 1, SEARCH_MAX_FACES)
        event_id = self._event_id(collection_id)
        rows = self.catalog.meta.rekognition.faces_by_uuid(event_id, [face_id])
        if not rows:
            raise InvalidRequestError(f"FaceId {face_id} is not in the collection {collection_id}")
        target = rows[0].face_id
        vector = self.face_search.vector(event_id, target)
        if vector is None:
            raise InvalidRequestError(f"FaceId {face_id} is not in the collection {collection_id}")
        matches = self._search(event_id, vector, threshold, max_faces, exclude=target)
        return SearchFacesResult(face_id, matches, self.face_model_version)

    def search_faces_by_image(self, collection_id: str, image_bytes: bytes,
                              threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
                              max_faces: int = DEFAULT_SEARCH_MAX_FACES,
                              quality_filter: QualityFilter = "NONE") -> SearchFacesByImageResult:
        threshold = check_percent("FaceMatchThreshold", threshold)
        max_faces = check_int("MaxFaces", max_faces, 1, SEARCH_MAX_FACES)
        bar = QUALITY_BARS.get(check_quality_filter(quality_filter))
        event_id = self._event_id(collection_id)
        seen = self._analyse(image_bytes)
        usable = seen.usable(bar)
        if not usable:
            raise InvalidRequestError("There are no faces in the image. Should be at least 1.")
        largest = usable[0]
        matches = self._search(event_id, seen.faces.embeddings[largest], threshold, max_faces)
        detail = seen.details[largest]
        return SearchFacesByImageResult(detail.bounding_box, detail.confidence, matches,
                                        self.face_model_version)

    def detect_faces(self, image_bytes: bytes) -> tuple[FaceDetail, ...]:
        seen = self._analyse(image_bytes)
        return tuple(seen.details[i] for i in seen.by_size[:INDEX_FACES_LIMIT])

    def compare_faces(self, source_image: bytes, target_image: bytes,
                      threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
                      quality_filter: QualityFilter = "NONE") -> CompareFacesResult:
        threshold = check_percent("SimilarityThreshold", threshold)
        bar = QUALITY_BARS.get(check_quality_filter(quality_filter))
        source = self._analyse(source_image)
        usable = source.usable(bar)
        if not usable:
            raise InvalidRequestError("There are no faces in the source image. Should be at least 1.")
        src = usable[0]
        target = self._analyse(target_image)
        candidates = target.usable(bar)[:COMPARE_TARGET_LIMIT]
        sims = (self.tiers.similarity(target.faces.embeddings[candidates] @ source.faces.embeddings[src])
                if candidates else np.zeros(0, np.float32))
        matched: list[CompareFacesMatch] = []
        unmatched: list[ComparedFace] = []
        for i, sim in zip(candidates, sims.tolist(), strict=True):
            face = self._compared(target.details[i])
            if sim >= threshold:
                matched.append(CompareFacesMatch(float(sim), face))
            else:
                unmatched.append(face)
        matched.sort(key=lambda m: -m.similarity)
        detail = source.details[src]
        return CompareFacesResult(ComparedFace(detail.bounding_box, detail.confidence), tuple(matched),
                                  tuple(unmatched))

    @staticmethod
    def _compared(detail: FaceDetail) -> ComparedFace:
        return ComparedFace(detail.bounding_box, detail.confidence, detail.landmarks, detail.pose,
                            detail.quality)


__all__ = ["QUALITY_BARS", "LocalProvider", "QualityBar", "quality_reasons"]
