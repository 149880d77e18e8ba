"""The one search decision: which faces of an event are the person in a query, and how sure we are.

Used by the guest search and by the Rekognition API (SearchFacesByImage, SearchFaces).

Why not a cosine threshold per pair: every query is compared with every face of the event, so a
per-pair false-accept rate f yields f x N strangers per search, growing with the event (at LFW's
FAR 1e-3, 13 strangers in a 13k-face event). The decision here controls strangers *per search*:

1. Crowd normalisation: the query's cosines to a fixed sample of the event's own faces (the crowd:
   almost all strangers) give a centre and a spread (median, scaled median absolute deviation; in
   small events blended with the pack's typical values); a face's score is
   z = (cos - centre) / spread, how far above this event's crowd it stands for this query. A query that
   resembles many people (a blurry selfie, a common look) gets a wider crowd and so needs a stronger match.
2. Thresholds from the event size: the pack's crowd model (`CrowdModel`, measured on LFW + WIDER
   faces, benchmarks/bench_event_scale.py) gives the share of stranger faces reaching each z. The
   high tier starts where N x share = `Policy.high_strangers` (0.05 strangers per search on
   average), the "maybe" tier where it reaches `Policy.maybe_strangers`; so both tighten as the
   event grows, and mean the same number of strangers at any size. A crowd estimated from few faces
   is uncertain, which lets more strangers through: the bars are multiplied by
   1 + `Policy.crowd_margin` / sqrt(n) (n = faces in the crowd sample). In very small events this
   margin outweighs the size term, so their bars are not lower than a 1k-face event's.
3. Query expansion: the guest's most confident faces in this event (z at least
   `Policy.seed_margin` above the high threshold; same light and camera as the rest of the event)
   are averaged into the query, and the candidates are scored again; a face keeps its better score.

Similarity (0-100) is a function of z for the event: 0 at the crowd's mean, 50 where the "maybe"
tier starts, 80 where the high tier starts (so FaceMatchThreshold=80 means "high confidence"), then
100 - 20 exp(-(z - z_high) / SIMILARITY_SPREAD), which approaches 100 without reaching it, so the
ranking among true matches stays visible.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from indexer.faces import FaceStore
from indexer.vector_index import CROWD_SAMPLE, EventIndex

# z units over which a high match closes 63% of its gap to 100. Chosen on the tuning half for clients
# used to AWS's thresholds: the median true match shows about 97, 99 keeps the strongest ones, and
# no face scores 100 (that would take a cosine above 1).
SIMILARITY_SPREAD = 1.5
MAX_CANDIDATES = 4352  # Rekognition's MaxFaces limit (4096) and some room


@dataclass(frozen=True)
class CrowdModel:
    """log10 of the share of stranger faces whose z reaches each z (decreasing), for one pack.
    Beyond the last point the curve goes on with the slope of its last `tail` points (stated as an
    extrapolation wherever it is used)."""

    pack: str
    z: tuple[float, ...]
    log10_share: tuple[float, ...]
    # A query's typical crowd mean and spread: small events, whose crowd is too small (and may be
    # largely the guest), are normalised against a blend of their own crowd and these.
    prior_mean: float
    prior_spread: float
    tail: int = 3

    def _slope(self) -> float:
        zs, ls = self.z[-self.tail:], self.log10_share[-self.tail:]
        return (ls[-1] - ls[0]) / (zs[-1] - zs[0])

    def z_for_share(self, share: float) -> float:
        """The z that a share `share` of stranger faces reaches."""
        level = math.log10(max(share, 1e-300))
        if level >= self.log10_share[0]:
            return float(self.z[0])
        if level <= self.log10_share[-1]:
            return float(self.z[-1] + (level - self.log10_share[-1]) / self._slope())
        return float(np.interp(-level, [-v for v in self.log10_share], self.z))

    def share_at(self, z: float) -> float:
        if z <= self.z[0]:
            return float(10 ** self.log10_share[0])
        if z >= self.z[-1]:
            return float(10 ** (self.log10_share[-1] + (z - self.z[-1]) * self._slope()))
        return float(10 ** np.interp(z, self.z, self.log10_share))


@dataclass(frozen=True)
class Policy:
    high_strangers: float = 0.05  # expected strangers per search in the high tier
    maybe_strangers: float = 1.0  # expected strangers per search down to the "maybe" floor
    maybe_max_photos: int = 3  # the "maybe" tier's own candidates are capped (and shown only on request)
    group_max_photos: int = 12  # photos of the guest's person groups offered in the "maybe" tier
    # The crowd's centre and spread are estimates from n faces; their error makes strangers' z wander
    # and lets more through than the model says (most in small events): thresholds rise by
    # crowd_margin x z / sqrt(n).
    crowd_margin: float = 2.0
    seed_margin: float = 1.0  # query expansion seeds: z >= z_high + seed_margin
    seed_max: int = 16
    expansion_weight: float = 0.5


@dataclass(frozen=True)
class Thresholds:
    """z thresholds for one event size."""

    high: float
    maybe: float

    def similarity(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float64)
        below = np.interp(z, [0.0, self.maybe, self.high], [0.0, 50.0, 80.0])
        above = 100.0 - 20.0 * np.exp(-(z - self.high) / SIMILARITY_SPREAD)
        return np.where(z >= self.high, above, below).astype(np.float32)

    def z_for_similarity(self, similarity: float) -> float:
        """Inverse of `similarity` (for thresholds given on the 0-100 scale)."""
        s = float(np.clip(similarity, 0.0, 100.0))
        if s < 80.0:
            return float(np.interp(s, [0.0, 50.0, 80.0], [0.0, self.maybe, self.high]))
        if s >= 100.0:
            return math.inf
        return self.high - SIMILARITY_SPREAD * math.log((100.0 - s) / 20.0)


def thresholds_for(crowd: CrowdModel, policy: Policy, faces: int, crowd_size: int | None = None) -> Thresholds:
    """z thresholds for an event of `faces` faces whose crowd sample holds `crowd_size` of them."""
    n = max(faces, 1)
    sampled = max(min(n, CROWD_SAMPLE) if crowd_size is None else crowd_size, 1)
    widen = 1.0 + policy.crowd_margin / math.sqrt(sampled)
    high = crowd.z_for_share(policy.high_strangers / n) * widen
    maybe = min(crowd.z_for_share(policy.maybe_strangers / n) * widen, high)
    return Thresholds(high=high, maybe=maybe)


@dataclass(frozen=True)
class Matches:
    """Faces of the event at or above the asked floor, best first, as parallel arrays."""

    face_ids: np.ndarray  # int64
    z: np.ndarray  # float32, after query expansion
    thresholds: Thresholds

    def __len__(self) -> int:
        return int(self.face_ids.size)

    def similarity(self) -> np.ndarray:
        return self.thresholds.similarity(self.z)

    def high(self) -> np.ndarray:
        """Mask of the high-tier ("your photos") faces."""
        return self.z >= self.thresholds.high


PRIOR_WEIGHT = 100.0  # the pack's prior counts as this many crowd faces


def crowd_stats(index: EventIndex, queries: np.ndarray, model: CrowdModel) -> tuple[np.ndarray, np.ndarray]:
    """Centre and spread of each query's cosines to the event's crowd sample: median and scaled
    median absolute deviation, which the guest's own faces (the top few) barely move, blended with
    the pack's prior in proportion to the crowd's size."""
    crowd = index.crowd_sample()
    n = len(crowd)
    mean = np.full(len(queries), model.prior_mean, np.float64)
    spread = np.full(len(queries), model.prior_spread, np.float64)
    if n >= 2:
        scores = queries @ crowd.T
        centre = np.median(scores, axis=1)
        mad = 1.4826 * np.median(np.abs(scores - centre[:, None]), axis=1)
        weight = n / (n + PRIOR_WEIGHT)
        mean = weight * centre + (1 - weight) * mean
        spread = weight * mad + (1 - weight) * spread
    return mean.astype(np.float32), np.maximum(spread, 1e-3).astype(np.float32)


def _candidates(index: EventIndex, query: np.ndarray, floor: float, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Every face with cosine >= floor (at most `cap`). Top-k with a large k is slow on a big flat
    index, and a guest is in few photos: start small and widen while the last is above the bar."""
    total = len(index)
    cap = max(1, min(cap, total))
    k = min(cap, 256)
    while True:
        scores, ids = index.search(query[None], k)
        if k >= cap or scores[0][-1] < floor:
            break
        k = min(k * 4, cap)
    keep = (ids[0] >= 0) & (scores[0] >= floor)
    return ids[0][keep], scores[0][keep]


def decide(index: EventIndex, query: np.ndarray, crowd: CrowdModel, policy: Policy, *,
           min_similarity: float | None = None, exclude: Collection[int] = ()) -> Matches:
    """The faces of the event that are the query's person, best first, down to `min_similarity`
    (default: the "maybe" floor for this event's size; 0 or less: every face, best first).
    `exclude`: face ids never returned nor used to expand the query (the searched face itself for
    SearchFaces; faces of photos the guest said are not them)."""
    thresholds = thresholds_for(crowd, policy, len(index), len(index.crowd_sample()))
    if min_similarity is None:
        floor_z = thresholds.maybe
    else:
        floor_z = thresholds.z_for_similarity(min_similarity) if min_similarity > 0 else -math.inf
    q = np.ascontiguousarray(query, np.float32).reshape(1, -1)
    mean, spread = crowd_stats(index, q, crowd)
    ids, cos = _candidates(index, q[0], float(mean[0] + floor_z * spread[0]) - 1e-6, MAX_CANDIDATES + len(exclude))
    if len(exclude):
        allowed = ~np.isin(ids, np.fromiter(exclude, np.int64, len(exclude)))
        ids, cos = ids[allowed], cos[allowed]
    z = (cos - mean[0]) / spread[0]
    z = _expand(index, q[0], ids, z, thresholds, policy, crowd)
    keep = z >= floor_z
    order = np.argsort(-z[keep], kind="stable")
    return Matches(ids[keep][order], z[keep][order].astype(np.float32), thresholds)


def score_faces(index: EventIndex, embedding: np.ndarray, face_ids: np.ndarray, crowd: CrowdModel) -> np.ndarray:
    """Plain crowd-normalised z of the given faces (no expansion); faces not in the index: -inf."""
    q = np.ascontiguousarray(embedding, np.float32).reshape(-1)
    ids = np.asarray(face_ids, np.int64)
    mean, spread = crowd_stats(index, q[None], crowd)
    try:
        vectors = index.vectors(ids)
        live = np.ones(len(ids), bool)
    except RuntimeError:  # a face left the index meanwhile (a delete): look them up one by one
        found = [index.vector(int(i)) for i in ids]
        live = np.array([v is not None for v in found], bool)
        vectors = np.array([v if v is not None else np.zeros_like(q) for v in found], np.float32).reshape(-1, q.size)
    z = ((vectors @ q - mean[0]) / spread[0]).astype(np.float32)
    return np.where(live, z, -np.inf).astype(np.float32)


def _expand(index: EventIndex, query: np.ndarray, ids: np.ndarray, z: np.ndarray, thresholds: Thresholds,
            policy: Policy, crowd: CrowdModel) -> np.ndarray:
    """Query expansion with the guest's most confident faces; each candidate keeps its better z.
    Faces below the first pass's floor are not looked at again: expansion re-ranks, it does not widen
    the net (that keeps its cost to one matrix product over the candidates)."""
    seeds = np.nonzero(z >= thresholds.high + policy.seed_margin)[0]
    if seeds.size == 0 or ids.size == 0:
        return z
    seeds = seeds[np.argsort(-z[seeds])][: policy.seed_max]
    vectors = index.vectors(ids)
    expanded = query + policy.expansion_weight * vectors[seeds].mean(axis=0)
    expanded /= max(float(np.linalg.norm(expanded)), 1e-12)
    mean, spread = crowd_stats(index, expanded[None], crowd)
    z2 = (vectors @ expanded - mean[0]) / spread[0]
    return np.maximum(z, z2)


P = TypeVar("P")


def maybe_tier(group: list[P], candidates: list[P], policy: Policy) -> list[P]:
    """The "maybe" tier as shown (on request): first the other photos of the person groups that the
    guest's high-tier faces belong to (the host's grouping says they are the same person; best scored
    first), then the decision's own below-high candidates. `group` and `candidates` hold no high-tier
    photo; the result has no duplicate."""
    shown = list(dict.fromkeys(group))[: policy.group_max_photos]
    seen = set(shown)
    extra = [p for p in dict.fromkeys(candidates) if p not in seen][: policy.maybe_max_photos]
    return shown + extra


class FaceSearch:
    """The decision bound to an event's index (shared by the guest service and the Rekognition API)."""

    def __init__(self, faces: FaceStore, dim: int, crowd: CrowdModel, policy: Policy | None = None) -> None:
        self.faces = faces
        self.dim = dim
        self.crowd = crowd
        self.policy = policy or Policy()

    def match(self, event_id: str, embedding: np.ndarray, *, min_similarity: float | None = None,
              exclude: Collection[int] = ()) -> Matches:
        index = self.faces.index(event_id, self.dim)
        return decide(index, embedding, self.crowd, self.policy, min_similarity=min_similarity, exclude=exclude)

    def score(self, event_id: str, embedding: np.ndarray, face_ids: np.ndarray) -> np.ndarray:
        """Plain crowd-normalised z of these faces of the event (no expansion); faces gone from the
        index score -inf."""
        index = self.faces.index(event_id, self.dim)
        return score_faces(index, embedding, face_ids, self.crowd)

    def vector(self, event_id: str, face_id: int) -> np.ndarray | None:
        return self.faces.vector(event_id, face_id, self.dim)
