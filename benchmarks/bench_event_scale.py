"""Open-set event benchmark: what a guest sees on the results page, at event sizes from 1k to 15k faces.

Events are built from real faces found by the engine (`benchmarks/event_faces.py`, cached):
- every LFW photo contributes its labelled face (the main face by `choose_main_face`); other faces
  in LFW photos are unlabelled and often other LFW people standing next to the labelled one
  (Julianne Moore's photos show Todd Haynes beside her), so they are left out;
- `wider` events add all 2,376 faces found in the WIDER val crowd photos as extra strangers;
- subsets of about 1k and 5k faces take people at random (at most 20 photos each).

Each searched person (an LFW person with 2+ photos in the event) searches with one photo, held out of
the event while it searches (leave-one-out); truth is their other photos. People are split in two by
a hash of their name: the crowd model and the policy were chosen on the *tuning* half; every figure
below is from the *report* half. Per tier: precision, recall (mean per search, and over all true
photos), strangers per search (mean, p95), share of searches with any stranger. The peer a small
venue would otherwise pick, face_recognition (dlib), runs on the same photos at its default tolerance.

    python benchmarks/bench_event_scale.py --lfw ../shared/datasets/lfw --wider ../shared/datasets/wider_val \
        [--calibrate] [--dlib] --out benchmarks/results/event_scale.json --plot benchmarks/results/event_scale.png
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.event_faces import (
    DatasetFaces,
    default_cache,
    engine_for_benchmark,
    load_or_extract,
    load_or_extract_dlib,
)
from benchmarks.mixed_event import MixedEvent, build_mixed_event
from indexer import grouping
from indexer.vector_index import EventIndex
from models.engine import FaceEngine
from picsort_local.main_face import SELFIE_MIN_SHARE, choose_main_face
from picsort_local.settings import Settings
from search.calibration import crowd_model
from search.decision import CrowdModel, Policy, crowd_stats, decide, maybe_tier, score_faces, thresholds_for
from search.tiers import CALIBRATION, Tiers

logger = logging.getLogger(__name__)

OLD_TIERS = CALIBRATION["pypi-small"]  # the LFW per-pair tiers (FAR 1e-2, 1e-3) the search used before
MAX_PER_PERSON = 20
SHIPPED = "crowd z + query expansion (shipped)"


@dataclass(frozen=True)
class Event:
    """Faces of one event: face i is photo `photo[i]` of person `person[photo[i]]` ("" = stranger)."""

    name: str
    vectors: np.ndarray
    photo: np.ndarray
    person: np.ndarray  # per photo (global photo numbering)
    queries: np.ndarray  # face rows searched with (one per searched person)


def half_of(name: str) -> str:
    return "tune" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "report"


def labelled_faces(faces: DatasetFaces) -> np.ndarray:
    """Row of each photo's main face (-1 when none), as a guest's selfie would choose it."""
    out = np.full(len(faces.photos), -1, np.int64)
    order = np.argsort(faces.photo, kind="stable")
    bounds = np.searchsorted(faces.photo[order], np.arange(len(faces.photos) + 1))
    for p in range(len(faces.photos)):
        rows = order[bounds[p]:bounds[p + 1]]
        w, h = faces.size[p]
        heights = faces.boxes[rows, 3] - faces.boxes[rows, 1]
        rows = rows[heights >= SELFIE_MIN_SHARE * min(w, h)]
        choice = choose_main_face(faces.boxes[rows], int(w), int(h))
        if choice.index is not None:
            out[p] = rows[choice.index]
    return out


def selfie_refusals(faces: DatasetFaces) -> dict[str, Any]:
    """Share of single-person portraits (LFW) refused as "too many faces", old rule against new."""
    order = np.argsort(faces.photo, kind="stable")
    bounds = np.searchsorted(faces.photo[order], np.arange(len(faces.photos) + 1))
    old = np.zeros(len(faces.photos), bool)
    new = np.zeros(len(faces.photos), bool)
    for p in range(len(faces.photos)):
        rows = order[bounds[p]:bounds[p + 1]]
        w, h = faces.size[p]
        heights = faces.boxes[rows, 3] - faces.boxes[rows, 1]
        rows, heights = rows[heights >= SELFIE_MIN_SHARE * min(w, h)], heights[heights >= SELFIE_MIN_SHARE * min(w, h)]
        if len(rows) == 0:
            continue
        old[p] = int((heights >= 0.5 * heights.max()).sum()) > 1
        new[p] = choose_main_face(faces.boxes[rows], int(w), int(h)).ambiguous
    halves = np.array([half_of(n) for n in faces.identity])
    return {h: {"photos": int((halves == h).sum()), "old_rule": float(old[halves == h].mean()),
                "new_rule": float(new[halves == h].mean())} for h in ("tune", "report")}


def build_event(name: str, lfw: DatasetFaces, main: np.ndarray, wider: DatasetFaces | None, half: str,
                target_faces: int | None, rng: np.random.Generator) -> Event:
    photos = np.nonzero(main >= 0)[0]
    if target_faces is not None:
        people = np.unique(lfw.identity[photos])
        rng.shuffle(people)
        chosen: list[int] = []
        by_person: dict[str, list[int]] = {}
        for p in photos:
            by_person.setdefault(str(lfw.identity[p]), []).append(int(p))
        for person in people:
            chosen += by_person[str(person)][:MAX_PER_PERSON]
            if len(chosen) >= target_faces:
                break
        photos = np.sort(np.array(chosen[:target_faces]))
    rows = main[photos]
    vectors, photo = lfw.embeddings[rows], photos.astype(np.int64)
    person = lfw.identity.astype(object)
    if wider is not None:
        offset = len(lfw.photos)
        vectors = np.concatenate([vectors, wider.embeddings])
        photo = np.concatenate([photo, wider.photo.astype(np.int64) + offset])
        person = np.concatenate([person, np.array([""] * len(wider.photos), object)])
    # one query per person of this half with 2+ photos in the event: their first photo
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, p in enumerate(photo[: len(photos)]):
        who = str(person[p])
        counts[who] = counts.get(who, 0) + 1
        first.setdefault(who, i)
    queries = np.array(sorted(first[w] for w, c in counts.items() if c >= 2 and half_of(w) == half), np.int64)
    return Event(name, np.ascontiguousarray(vectors, np.float32), photo, person.astype(str), queries)


# ---- one search, several decisions -----------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    high: set[int]  # photos
    maybe: list[int]  # photos below high, best first (uncapped)
    high_similarity: dict[int, float]  # photo -> similarity of its best high face


def run_decision(event: Event, index: EventIndex, query: np.ndarray, decision: str, crowd: CrowdModel,
                 policy: Policy, clusters: np.ndarray | None, exclude: int | None = None) -> Outcome:
    if decision == "fixed LFW tiers (before)":
        scores, ids = index.search(query[None], min(len(index), 2048))
        keep = (ids[0] >= 0) & (scores[0] >= OLD_TIERS[0])
        ids, scores = ids[0][keep], scores[0][keep]
        high = {int(event.photo[i]) for i, s in zip(ids, scores, strict=True) if s >= OLD_TIERS[1]}
        maybe = _unique([int(event.photo[i]) for i in ids if int(event.photo[i]) not in high])
        old_scale = Tiers(low=OLD_TIERS[0], high=OLD_TIERS[1]).similarity(scores)
        shown: dict[int, float] = {}
        for i, s in zip(ids.tolist(), old_scale.tolist(), strict=True):
            if int(event.photo[i]) in high:
                shown.setdefault(int(event.photo[i]), float(s))
        return Outcome(high, maybe, shown)
    used = policy if decision != "crowd z, no expansion" else replace(policy, seed_margin=float("inf"))
    m = decide(index, query, crowd, used)
    sims = m.similarity()
    is_high = m.high()
    high_rows = m.face_ids[is_high]
    best: dict[int, float] = {}
    for i, sim in zip(high_rows.tolist(), sims[is_high].tolist(), strict=True):
        best.setdefault(int(event.photo[i]), float(sim))
    if decision == "person-level: whole groups of high faces" and clusters is not None and high_rows.size:
        groups = np.unique(clusters[high_rows])
        members = np.nonzero(np.isin(clusters, groups[groups >= 0]))[0]
        high_rows = np.union1d(high_rows, members[members != exclude])
    high = {int(event.photo[i]) for i in high_rows}
    candidates = [int(event.photo[i]) for i in m.face_ids[~is_high] if int(event.photo[i]) not in high]
    group: list[int] = []
    if clusters is not None and high_rows.size:  # as the service does: the rest of the guest's groups
        groups = np.unique(clusters[high_rows])
        mates = np.nonzero(np.isin(clusters, groups[groups >= 0]))[0]
        mates = mates[(mates != exclude) & ~np.isin(event.photo[mates], list(high))]
        z = score_faces(index, query, mates, crowd)
        order = np.argsort(-z, kind="stable")
        group = [int(event.photo[i]) for i in mates[order[np.isfinite(z[order])]]]
    return Outcome(high, maybe_tier(group, candidates, policy), best)


def _unique(items: list[int]) -> list[int]:
    return list(dict.fromkeys(items))


def _groups_without(event: Event, held_out: np.ndarray) -> np.ndarray:
    """The host's grouping of the event without the held-out selfies (label -1 for them): a selfie is
    never in the event, so it must not link the guest's photos into a group."""
    keep = np.ones(len(event.vectors), bool)
    keep[held_out] = False
    labels = np.full(len(event.vectors), -1, np.int64)
    labels[keep] = grouping.cluster(event.vectors[keep], photos=event.photo[keep]).labels
    return labels


def evaluate(event: Event, decisions: list[str], crowd: CrowdModel, policy: Policy) -> dict[str, Any]:
    index = EventIndex(event.vectors.shape[1])
    ids = np.arange(len(event.vectors), dtype=np.int64)
    index.add(ids, event.vectors)
    clusters = _groups_without(event, event.queries)
    photos_of: dict[str, set[int]] = {}
    for p in np.unique(event.photo):
        photos_of.setdefault(str(event.person[p]), set()).add(int(p))
    tallies: dict[str, dict[str, list[Any]]] = {d: {k: [] for k in ("tp", "fp", "truth", "m_tp", "m_fp", "sims")}
                                                for d in decisions}
    started = time.perf_counter()
    for q in event.queries.tolist():
        index.remove(np.array([q]))  # leave-one-out: the selfie's own photo is not in the event
        who = str(event.person[event.photo[q]])
        truth = photos_of[who] - {int(event.photo[q])}
        for d in decisions:
            out = run_decision(event, index, event.vectors[q], d, crowd, policy, clusters, exclude=q)
            t = tallies[d]
            t["tp"].append(len(out.high & truth))
            t["fp"].append(len(out.high - truth))
            t["truth"].append(len(truth))
            t["m_tp"].append(sum(1 for p in out.maybe if p in truth))
            t["m_fp"].append(sum(1 for p in out.maybe if p not in truth))
            t["sims"] += [v for p, v in out.high_similarity.items() if p in truth]
        index.add(np.array([q]), event.vectors[q][None])
    n_faces = len(event.vectors)
    result: dict[str, Any] = {"event": event.name, "faces": n_faces, "searches": len(event.queries),
                              "seconds": time.perf_counter() - started, "decisions": {}}
    for d, t in tallies.items():
        tp, fp, truths = (np.array(t[k], np.float64) for k in ("tp", "fp", "truth"))
        m_tp, m_fp = np.array(t["m_tp"], np.float64), np.array(t["m_fp"], np.float64)
        sims = np.array(t["sims"], np.float64)
        result["decisions"][d] = {
            "high": {"precision": float(tp.sum() / max(tp.sum() + fp.sum(), 1)),
                     "recall_per_search": float((tp / np.maximum(truths, 1)).mean()),
                     "recall_all_photos": float(tp.sum() / max(truths.sum(), 1)),
                     "strangers_mean": float(fp.mean()), "strangers_p95": float(np.percentile(fp, 95)),
                     "searches_with_stranger": float((fp > 0).mean())},
            "maybe_shown": {"correct": int(m_tp.sum()), "returned": int(m_tp.sum() + m_fp.sum()),
                             "strangers_mean": float(m_fp.mean()),
                             "recall_gain": float(m_tp.sum() / max(truths.sum(), 1))},
            "similarity_of_true_high": ({"p10": float(np.percentile(sims, 10)), "median": float(np.median(sims)),
                                         "shown_as_100": float((sims >= 99.95).mean())} if sims.size else None),
        }
        if d != "fixed LFW tiers (before)":
            th = thresholds_for(crowd, policy, n_faces)
            result["decisions"][d]["z_high"], result["decisions"][d]["z_maybe"] = th.high, th.maybe
    logger.info("%s: %d faces, %d searches, %.0f s", event.name, n_faces, len(event.queries), result["seconds"])
    return result


# ---- calibration on the tuning half ------------------------------------------------------------------
def calibrate(event: Event, pack: str) -> tuple[CrowdModel, dict[str, Any]]:
    """Survival of stranger faces' z (plain query, no expansion), measured per face."""
    index = EventIndex(event.vectors.shape[1])
    index.add(np.arange(len(event.vectors), dtype=np.int64), event.vectors)
    q = event.vectors[event.queries]
    sample = q @ index.crowd_sample().T
    raw_centre = np.median(sample, axis=1)
    raw_spread = 1.4826 * np.median(np.abs(sample - raw_centre[:, None]), axis=1)
    draft = replace(crowd_model(pack), prior_mean=round(float(raw_centre.mean()), 4),
                    prior_spread=round(float(raw_spread.mean()), 4))
    centre, spread = crowd_stats(index, q, draft)  # exactly as the search computes it
    z = (q @ event.vectors.T - centre[:, None]) / spread[:, None]
    stranger = event.person[event.photo][None, :] != event.person[event.photo[event.queries]][:, None]
    zs = z[stranger]
    points, shares = [], []
    for level in np.arange(2.0, 9.0, 0.5):
        hits = int((zs >= level).sum())
        if hits < 10:
            break
        points.append(float(level))
        shares.append(float(np.log10(hits / zs.size)))
    model = replace(draft, z=tuple(points), log10_share=tuple(round(s, 4) for s in shares))
    return model, {"stranger_pairs": int(zs.size), "searches": len(event.queries),
                   "z": points, "log10_share": shares, "prior_mean": model.prior_mean,
                   "prior_spread": model.prior_spread}


SWEEP: dict[str, Policy] = {
    "shipped": Policy(),
    "crowd_margin 0": replace(Policy(), crowd_margin=0.0),
    "crowd_margin 1": replace(Policy(), crowd_margin=1.0),
    "no expansion": replace(Policy(), seed_margin=float("inf")),
    "seed_margin 2": replace(Policy(), seed_margin=2.0),
    "expansion_weight 1": replace(Policy(), expansion_weight=1.0),
    "high_strangers 0.03": replace(Policy(), high_strangers=0.03),
}


def sweep_policy(lfw: DatasetFaces, main_rows: np.ndarray, wider: DatasetFaces, crowd: CrowdModel) -> list[Any]:
    """The policy's settings on the tuning half: high-tier strangers and recall per search, averaged
    over small and large events (three 1k, two 5k, all + WIDER)."""
    specs: list[tuple[str, DatasetFaces | None, int | None, int]] = [("lfw-1k", None, 1_000, s) for s in (1, 2, 3)]
    specs += [("lfw-5k", None, 5_000, s) for s in (1, 2)]
    specs.append(("lfw-all+wider", wider, None, 1))
    events = [build_event(n, lfw, main_rows, w, "tune", size, np.random.default_rng(seed))
              for n, w, size, seed in specs]
    rows = []
    for name, policy in SWEEP.items():
        runs = [evaluate(e, [SHIPPED], crowd, policy)["decisions"][SHIPPED]["high"] for e in events]
        rows.append({"policy": name, "strangers_mean": float(np.mean([r["strangers_mean"] for r in runs])),
                     "recall_per_search": float(np.mean([r["recall_per_search"] for r in runs])),
                     "strangers_largest_event": runs[-1]["strangers_mean"],
                     "recall_largest_event": runs[-1]["recall_per_search"]})
        logger.info("sweep %s: %s", name, rows[-1])
    return rows


def extrapolate(events: list[dict[str, Any]], crowd: CrowdModel, policy: Policy, true_z: np.ndarray,
                stranger_cos_share: float) -> list[dict[str, Any]]:
    """Expected figures at sizes not measured, from the measured distributions (an extrapolation)."""
    rows = []
    for n in (1_000, 5_000, 15_609, 125_000, 1_000_000):
        th = thresholds_for(crowd, policy, n)
        rows.append({"faces": n, "z_high": th.high, "recall_per_pair": float((true_z >= th.high).mean()),
                     "strangers_per_search": policy.high_strangers,
                     "old_tiers_strangers_per_search": n * stranger_cos_share})
    return rows


# ---- the mixed event: group photos and portraits ------------------------------------------------------
def evaluate_mixed(event: MixedEvent, decisions: list[str], crowd: CrowdModel, policy: Policy) -> dict[str, Any]:
    index = EventIndex(event.vectors.shape[1])
    index.add(np.arange(len(event.vectors), dtype=np.int64), event.vectors)
    clusters = grouping.cluster(event.vectors, photos=event.photo).labels
    as_event = Event("mixed", event.vectors, event.photo, np.array([""] * event.photos), np.zeros(0, np.int64))
    out: dict[str, Any] = {"photos": event.photos, "faces": len(event.vectors), "searches": len(event.selfies),
                           "decisions": {}}
    for d in decisions:
        tp, fp, truth, m_tp, m_fp = [], [], [], [], []
        for guest, vector in event.selfies:
            got = run_decision(as_event, index, vector, d, crowd, policy, clusters)
            t = event.truth[guest]
            tp.append(len(got.high & t))
            fp.append(len(got.high - t))
            truth.append(len(t))
            m_tp.append(sum(1 for p in got.maybe if p in t))
            m_fp.append(len(got.maybe) - m_tp[-1])
        a, b, c = np.array(tp, float), np.array(fp, float), np.array(truth, float)
        out["decisions"][d] = {"precision": float(a.sum() / max(a.sum() + b.sum(), 1)),
                               "recall_per_search": float((a / np.maximum(c, 1)).mean()),
                               "recall_all_photos": float(a.sum() / max(c.sum(), 1)),
                               "strangers_mean": float(b.mean()), "searches_with_stranger": float((b > 0).mean()),
                               "maybe_correct": int(sum(m_tp)), "maybe_returned": int(sum(m_tp) + sum(m_fp))}
    return out


def run_mixed(engine: FaceEngine, workers: int, args: argparse.Namespace, lfw: DatasetFaces, main_rows: np.ndarray,
              crowd: CrowdModel, policy: Policy, decisions: list[str]) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for p in np.nonzero(main_rows >= 0)[0]:
        counts[str(lfw.identity[p])] = counts.get(str(lfw.identity[p]), 0) + 1
    report = sorted(p for p in counts if half_of(p) == args.half)
    guests_pool = [p for p in report if counts[p] >= 12]
    others_pool = [p for p in report if 3 <= counts[p] < 12]
    out = []
    for seed in range(args.mixed_events):
        rng = np.random.default_rng(100 + seed)
        guests = [str(g) for g in rng.choice(guests_pool, size=13, replace=False)]
        others = [str(o) for o in rng.choice(others_pool, size=100, replace=False)]
        event = build_mixed_event(engine, args.lfw, args.wider, lfw, main_rows, guests, others, groups=64,
                                  seed=seed, workers=workers)
        out.append({"seed": seed, **evaluate_mixed(event, decisions, crowd, policy)})
        logger.info("mixed event %d: %d photos, %d faces", seed, event.photos, len(event.vectors))
    return out


# ---- the peer: face_recognition (dlib) ------------------------------------------------------------
def evaluate_dlib(event: Event, tolerances: tuple[float, ...]) -> dict[str, Any]:
    photos_of: dict[str, set[int]] = {}
    for p in np.unique(event.photo):
        photos_of.setdefault(str(event.person[p]), set()).add(int(p))
    out: dict[str, Any] = {"event": event.name, "faces": len(event.vectors), "searches": len(event.queries)}
    sq = (event.vectors ** 2).sum(axis=1)
    for tol in tolerances:
        tp, fp, truth = [], [], []
        for q in event.queries.tolist():
            dist = np.sqrt(np.maximum(sq + sq[q] - 2 * event.vectors @ event.vectors[q], 0))
            dist[q] = np.inf
            who = str(event.person[event.photo[q]])
            t = photos_of[who] - {int(event.photo[q])}
            found = {int(p) for p in event.photo[dist <= tol]}
            tp.append(len(found & t))
            fp.append(len(found - t))
            truth.append(len(t))
        a, b, c = np.array(tp, float), np.array(fp, float), np.array(truth, float)
        out[f"tolerance {tol}"] = {"precision": float(a.sum() / max(a.sum() + b.sum(), 1)),
                                   "recall_per_search": float((a / np.maximum(c, 1)).mean()),
                                   "recall_all_photos": float(a.sum() / max(c.sum(), 1)),
                                   "strangers_mean": float(b.mean()), "strangers_p95": float(np.percentile(b, 95)),
                                   "searches_with_stranger": float((b > 0).mean())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--wider", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--calibrate", action="store_true",
                        help="with --half tune: measure the crowd model and sweep the policy's settings")
    parser.add_argument("--dlib", action="store_true", help="also run face_recognition (dlib) as the peer")
    parser.add_argument("--half", choices=("tune", "report"), default="report")
    parser.add_argument("--mixed-events", type=int, default=3, help="mixed events (group photos) to build")
    parser.add_argument("--out", type=Path, help="default benchmarks/results/event_scale[_tune].json")
    parser.add_argument("--plot", type=Path, help="default benchmarks/results/event_scale[_tune].png")
    args = parser.parse_args()
    if args.calibrate and args.half != "tune":
        parser.error("--calibrate measures on the tuning half: add --half tune")
    suffix = "_tune" if args.half == "tune" else ""
    args.out = args.out or Path(f"benchmarks/results/event_scale{suffix}.json")
    args.plot = args.plot or Path(f"benchmarks/results/event_scale{suffix}.png")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = Settings()
    engine, workers = engine_for_benchmark(settings)
    lfw = load_or_extract(engine, "lfw", args.lfw, args.cache, workers)
    wider = load_or_extract(engine, "wider", args.wider, args.cache, workers)
    main_rows = labelled_faces(lfw)
    crowd, policy = crowd_model(engine.pack_name), Policy()
    result: dict[str, Any] = {"pack": engine.pack_name, "half": args.half, "policy": vars(policy)}
    if args.calibrate:
        # LFW alone, not with the WIDER crowd: its strangers are harder (portraits of look-alike public
        # figures), which makes the model the more cautious one.
        event = build_event("lfw-all", lfw, main_rows, None, "tune", None, np.random.default_rng(0))
        crowd, result["calibration"] = calibrate(event, engine.pack_name)
        print(f"calibrated on the tuning half: {crowd!r}")
        result["policy_sweep"] = sweep_policy(lfw, main_rows, wider, crowd)
    result["crowd_model"] = {"z": crowd.z, "log10_share": crowd.log10_share, "prior_mean": crowd.prior_mean,
                             "prior_spread": crowd.prior_spread}
    result["selfie_refusals"] = selfie_refusals(lfw)
    decisions = ["fixed LFW tiers (before)", "crowd z, no expansion", SHIPPED,
                 "person-level: whole groups of high faces"]
    specs = [("lfw-1k", False, 1_000), ("lfw-5k", False, 5_000), ("lfw-all", False, None),
             ("lfw-all+wider", True, None)]
    result["events"] = []
    for name, with_wider, size in specs:
        event = build_event(name, lfw, main_rows, wider if with_wider else None, args.half, size,
                            np.random.default_rng(1))
        chosen = decisions if name == "lfw-all+wider" else decisions[:3]
        result["events"].append(evaluate(event, chosen, crowd, policy))
    result["mixed"] = run_mixed(engine, workers, args, lfw, main_rows, crowd, policy, decisions[:3])
    big = build_event("lfw-all+wider", lfw, main_rows, wider, args.half, None, np.random.default_rng(0))
    true_z, stranger_share = _pair_distributions(big, crowd)
    result["extrapolation"] = extrapolate(result["events"], crowd, policy, true_z, stranger_share)
    if args.dlib:
        result["dlib"] = _run_dlib(args, lfw, specs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, args.plot)


def _pair_distributions(event: Event, crowd: CrowdModel) -> tuple[np.ndarray, float]:
    """Best z of each search's true photos (plain query), and the share of stranger pairs reaching the
    old high tier's cosine."""
    index = EventIndex(event.vectors.shape[1])
    index.add(np.arange(len(event.vectors), dtype=np.int64), event.vectors)
    q = event.vectors[event.queries]
    centre, spread = crowd_stats(index, q, crowd)
    cos = q @ event.vectors.T
    z = (cos - centre[:, None]) / spread[:, None]
    same = event.person[event.photo][None, :] == event.person[event.photo[event.queries]][:, None]
    same[np.arange(len(event.queries)), event.queries] = False
    stranger = ~same
    stranger[np.arange(len(event.queries)), event.queries] = False  # a face against itself is neither
    return z[same], float((cos[stranger] >= OLD_TIERS[1]).mean())


def _run_dlib(args: argparse.Namespace, lfw: DatasetFaces, specs: list[tuple[str, bool, int | None]]) -> list[Any]:
    d_lfw = load_or_extract_dlib("lfw", args.lfw, args.cache, processes=2)
    d_wider = load_or_extract_dlib("wider", args.wider, args.cache, processes=2)
    d_main = labelled_faces(d_lfw)
    out = []
    for name, with_wider, size in specs:
        event = build_event(name, d_lfw, d_main, d_wider if with_wider else None, args.half, size,
                            np.random.default_rng(1))
        # Searches whose selfie dlib cannot read at all (no face) find nothing: counted as such.
        missing = _missing_queries(lfw, d_lfw, d_main, name, args.half, size)
        out.append({**evaluate_dlib(event, (0.6, 0.5)), "searched_people_without_a_dlib_face": missing})
    return out


def _missing_queries(lfw: DatasetFaces, d_lfw: DatasetFaces, d_main: np.ndarray, name: str, half: str,
                     size: int | None) -> int:
    if size is not None:
        return -1  # subsets differ between the two engines (people are sampled among found faces)
    people = {str(n) for n in lfw.identity if half_of(str(n)) == half}
    with_faces = {str(d_lfw.identity[p]) for p in np.nonzero(d_main >= 0)[0]}
    counts: dict[str, int] = {}
    for n in lfw.identity:
        counts[str(n)] = counts.get(str(n), 0) + 1
    return sum(1 for p in people if counts[p] >= 2 and p not in with_faces)


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    events = result["events"]
    sizes = [e["faces"] for e in events]
    for d in ("fixed LFW tiers (before)", "crowd z + query expansion (shipped)"):
        axes[0].plot(sizes, [e["decisions"][d]["high"]["strangers_mean"] for e in events], marker="o", label=d)
        axes[1].plot(sizes, [e["decisions"][d]["high"]["recall_per_search"] for e in events], marker="o", label=d)
    for row in result.get("dlib", []):
        if "tolerance 0.6" in row:
            axes[0].plot([row["faces"]], [row["tolerance 0.6"]["strangers_mean"]], "x", color="grey")
            axes[1].plot([row["faces"]], [row["tolerance 0.6"]["recall_per_search"]], "x", color="grey")
    axes[0].plot([], [], "x", color="grey", label="face_recognition (dlib), tolerance 0.6")
    axes[0].axhline(result["policy"]["high_strangers"], ls=":", color="black", label="policy: strangers per search")
    axes[0].set_yscale("symlog", linthresh=0.01)
    axes[0].set_ylim(bottom=0)
    axes[0].set_ylabel("strangers per search, high tier")
    axes[1].set_ylabel("recall per search, high tier")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("faces in the event")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
