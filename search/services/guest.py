"""The guest's side: a selfie (or a saved one) to the photos they are in, hiding a result, being
forgotten, and the original of a photo the host granted them."""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from indexer.events import Catalog, hash_token
from indexer.outfit import colour_name, delta_e, outfit_colours
from models.engine import FaceEngine
from picsort_local.errors import InvalidRequestError, NoFaceError, NotFoundError, TooManyFacesError
from picsort_local.main_face import SELFIE_MIN_SHARE, choose_main_face
from search.decision import FaceSearch, Matches, maybe_tier
from search.metrics import Metrics
from search.services.files import SignedFiles
from storage.keys import photo_key, selfie_key
from storage.metadata import EventRow

logger = logging.getLogger(__name__)

GUEST_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
OUTFIT_MAX_DELTA_E = 14.0  # CIE76 distance under which two torso colours count as the same outfit


def check_guest_id(guest_id: str) -> str:
    if not GUEST_ID.match(guest_id):
        raise InvalidRequestError("guest id must be 16-64 characters of A-Z a-z 0-9 _ -")
    return guest_id


@dataclass(frozen=True)
class SearchHit:
    photo_id: str
    tier: str  # high | low
    similarity: float
    badge: str  # face | outfit
    preview_url: str
    thumb_url: str


@dataclass(frozen=True)
class SearchOutcome:
    guest_id: str
    hits: list[SearchHit]
    selfie_token: str | None = None
    outfit: str | None = None  # colour name used for the outfit pass, if any
    more: int = 0  # "maybe" photos withheld (ask again with show_more)


class GuestService:
    def __init__(self, catalog: Catalog, engine: FaceEngine, face_search: FaceSearch, files: SignedFiles,
                 metrics: Metrics, *, min_face_px: int, concurrency: int) -> None:
        self.catalog = catalog
        self.engine = engine
        self.face_search = face_search
        self.files = files
        self.metrics = metrics
        self._min_face_px = min_face_px
        self._search_slots = threading.BoundedSemaphore(concurrency or os.cpu_count() or 1)
        metrics.count("searches", 0)

    def event_for_token(self, token: str) -> EventRow:
        return self.catalog.event_for_token(token)

    def guest_id(self, given: str | None) -> str:
        return check_guest_id(given) if given else secrets.token_urlsafe(18)

    def selfie_embedding(self, data: bytes) -> tuple[np.ndarray, Any, Any]:
        """The selfie's main face (`choose_main_face`): heads far behind and neighbours cut by the frame
        do not count, so a selfie in a crowded room still works; refused only when two faces are
        equally plausible."""
        image = self.engine.decode(data, reduced=False)
        # A selfie's face fills a good part of the frame: skip the pyramid levels for small faces.
        w, h = image.original.width, image.original.height
        min_face = max(self._min_face_px, SELFIE_MIN_SHARE * min(w, h))
        faces = self.engine.analyze(image, detector=self.engine.with_min_face(min_face))
        boxes = faces.detections.boxes
        choice = choose_main_face(boxes, w, h)
        if choice.index is None:
            raise NoFaceError("no face found: take the selfie facing the camera, in good light")
        if choice.ambiguous:
            competing = (choice.index, *choice.rivals)
            raise TooManyFacesError(len(competing), tuple(
                (float(boxes[i, 0] / w), float(boxes[i, 1] / h), float((boxes[i, 2] - boxes[i, 0]) / w),
                 float((boxes[i, 3] - boxes[i, 1]) / h)) for i in competing))
        return faces.embeddings[choice.index], image, boxes[choice.index]

    def search(self, event: EventRow, data: bytes | None, *, guest_id: str, save_selfie: bool = False,
               selfie_token: str | None = None, limit: int = 300, show_more: bool = False) -> SearchOutcome:
        # Waiting here rather than in the CPU run queue: the same latency for guests, and the ingest's
        # workers keep their share of the cores.
        with self._search_slots:
            return self._search(event, data, guest_id=guest_id, save_selfie=save_selfie,
                                selfie_token=selfie_token, limit=limit, show_more=show_more)

    def _search(self, event: EventRow, data: bytes | None, *, guest_id: str, save_selfie: bool,
                selfie_token: str | None, limit: int, show_more: bool) -> SearchOutcome:
        started = time.perf_counter()
        selfie_outfit = None
        new_token = None
        if data is not None:
            embedding, image, box = self.selfie_embedding(data)
            outfit = outfit_colours(image.pixels, box[None] * image.scale)[0]
            selfie_outfit = np.array(outfit.lab, np.float32) if outfit else None
            if save_selfie:
                new_token = self._save_selfie(event, data, embedding)
        elif selfie_token:
            embedding = self._saved_embedding(event, selfie_token)
        else:
            raise InvalidRequestError("send a selfie image or a saved selfie token")
        hits, outfit_name, more = self._match(event, embedding, guest_id, selfie_outfit, limit, show_more)
        self.metrics.count("searches")
        logger.debug("search in %s took %.1f ms", event.id, (time.perf_counter() - started) * 1000)
        return SearchOutcome(guest_id=guest_id, hits=hits, selfie_token=new_token, outfit=outfit_name,
                             more=more)

    def _match(self, event: EventRow, embedding: np.ndarray, guest_id: str, selfie_outfit: np.ndarray | None,
               limit: int, show_more: bool) -> tuple[list[SearchHit], str | None, int]:
        meta = self.catalog.meta
        hidden = meta.guests.hidden(event.id, guest_id)
        matches = self.face_search.match(event.id, embedding)
        faces = meta.faces.photos(event.id, matches.face_ids.tolist())
        not_me = [fid for fid, face in faces.items() if face.photo_id in hidden]
        if not_me:  # a photo the guest said is not them must not steer the search (expansion, groups)
            matches = self.face_search.match(event.id, embedding, exclude=not_me)
        best: dict[str, int] = {}  # photo -> row of its best face in `matches` (best first)
        for row, fid in enumerate(matches.face_ids.tolist()):
            found = faces.get(fid)
            if found is not None and found.photo_id not in best:
                best[found.photo_id] = row
        sims, is_high = matches.similarity(), matches.high()
        high = [p for p, row in best.items() if is_high[row]]
        similarity = {p: float(sims[row]) for p, row in best.items()}
        group = self._group_photos(event.id, embedding, matches, set(high) | hidden, similarity,
                                   scored=show_more)
        maybe = maybe_tier(group, [p for p in best if not is_high[best[p]]], self.face_search.policy)
        shown = high + (maybe if show_more else [])
        hits = [_unsigned_hit(p, "high" if i < len(high) else "low", similarity[p], "face")
                for i, p in enumerate(shown)]
        # outfit pass: the guest's colour from their own high-confidence photos, else the selfie torso
        high_labs = [faces[int(matches.face_ids[best[p]])].outfit_lab for p in high]
        high_labs = [lab for lab in high_labs if lab is not None]
        guest_lab = np.median(np.array(high_labs, np.float32), axis=0) if high_labs else selfie_outfit
        outfit_name = None
        if guest_lab is not None:
            outfit_name = colour_name(np.asarray(guest_lab, np.float32)[None])[0]
            hits += self._outfit_hits(event.id, guest_lab, set(high) | set(maybe) | hidden)
        order = {"high": 0, "low": 1}
        hits.sort(key=lambda h: (order[h.tier], h.badge != "face", -h.similarity))
        # URLs are signed only for what is returned (an HMAC per URL adds up on big events).
        return [self._sign(event.id, h) for h in hits[:limit]], outfit_name, 0 if show_more else len(maybe)

    def _group_photos(self, event_id: str, embedding: np.ndarray, matches: Matches, exclude: set[str],
                      similarity: dict[str, float], *, scored: bool) -> list[str]:
        """Photos of the person groups that the guest's high-tier faces belong to, outside `exclude`.
        With `scored`, best scored first, and the similarity of those not already in `similarity` is
        added to it; without, in no particular order (enough to count them)."""
        high_ids = matches.face_ids[matches.high()].tolist()
        mates = [(fid, pid) for fid, pid in self.catalog.meta.persons.mates(event_id, high_ids)
                 if pid not in exclude]
        if not mates or not scored:
            return list(dict.fromkeys(pid for _, pid in mates))
        z = self.face_search.score(event_id, embedding, np.array([fid for fid, _ in mates], np.int64))
        sims = matches.thresholds.similarity(z)
        order: list[str] = []
        for i in np.argsort(-z, kind="stable").tolist():
            if np.isfinite(z[i]):
                order.append(mates[i][1])
                similarity.setdefault(mates[i][1], float(sims[i]))
        return list(dict.fromkeys(order))

    def _outfit_hits(self, event_id: str, guest_lab: np.ndarray, exclude: set[str]) -> list[SearchHit]:
        """People found without a visible face (bodies), in the guest's outfit colour, in photos the
        face pass did not return. A person whose face is visible is never matched by colour alone:
        if their face were plausibly the guest's, the face pass would have returned the photo."""
        lab = (float(guest_lab[0]), float(guest_lab[1]), float(guest_lab[2]))
        bodies = [b for b in self.catalog.meta.photos.bodies(event_id, lab, OUTFIT_MAX_DELTA_E)
                  if b.photo_id not in exclude]
        if not bodies:
            return []
        labs = np.array([b.outfit.lab for b in bodies], np.float32)
        dist = delta_e(labs, guest_lab[None])
        best: dict[str, float] = {}
        for body, d in zip(bodies, dist.tolist(), strict=True):
            if d <= OUTFIT_MAX_DELTA_E and d < best.get(body.photo_id, 1e9):
                best[body.photo_id] = d
        # colour similarity on the same 0-100 scale: identical colour 100, the cut-off distance 50
        return [_unsigned_hit(pid, "low", float(100.0 - 50.0 * d / OUTFIT_MAX_DELTA_E), "outfit")
                for pid, d in best.items()]

    def _sign(self, event_id: str, hit: SearchHit) -> SearchHit:
        return replace(hit, preview_url=self.files.url(photo_key(event_id, hit.photo_id, "preview")),
                       thumb_url=self.files.url(photo_key(event_id, hit.photo_id, "thumb")))

    def _save_selfie(self, event: EventRow, data: bytes, embedding: np.ndarray) -> str:
        # Kept under the event (deleted with it) and usable only in it: a saved selfie must not become
        # an identifier that follows a guest from one event to another.
        token = secrets.token_urlsafe(24)
        token_hash = hash_token(token)
        key = selfie_key(event.id, token_hash)
        self.catalog.blobs.put(key, data)
        self.catalog.meta.guests.save_selfie(event.id, token_hash, key,
                                             embedding.astype(np.float32).tobytes())
        return token

    def _saved_embedding(self, event: EventRow, selfie_token: str) -> np.ndarray:
        found = self.catalog.meta.guests.selfie(event.id, hash_token(selfie_token))
        if found is None:
            raise NotFoundError("not found")
        return np.frombuffer(found.embedding, dtype=np.float32)

    def hide(self, event: EventRow, guest_id: str, photo_id: str) -> None:
        self.catalog.meta.guests.hide(event.id, check_guest_id(guest_id), photo_id)

    def delete_guest_data(self, event: EventRow, guest_id: str | None,
                          selfie_token: str | None) -> dict[str, bool]:
        out = {"preferences": False, "selfie": False}
        if guest_id:
            self.catalog.meta.guests.forget(event.id, check_guest_id(guest_id))
            out["preferences"] = True
        if selfie_token:
            key = self.catalog.meta.guests.delete_selfie(event.id, hash_token(selfie_token))
            if key:
                self.catalog.blobs.delete(key)
                out["selfie"] = True
        return out

    def original_url(self, event: EventRow, guest_id: str, photo_id: str) -> str:
        if not self.catalog.meta.guests.has_grant(event.id, check_guest_id(guest_id), photo_id):
            raise NotFoundError("not found")
        row = self.catalog.meta.photos.get(event.id, photo_id)
        if not row.original_key:
            raise NotFoundError("not found")
        return self.files.original_url(row.original_key, guest_id)


def _unsigned_hit(photo_id: str, tier: str, similarity: float, badge: str) -> SearchHit:
    """A result before its URLs are signed (only the results returned are signed)."""
    return SearchHit(photo_id, tier, round(similarity, 1), badge, "", "")
