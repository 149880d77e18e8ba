"""The search decision on data with known answers: synthetic guests among strangers, and real faces."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from indexer.vector_index import EventIndex
from search.calibration import CROWD_MODELS, crowd_model
from search.decision import Policy, Thresholds, decide, maybe_tier, score_faces, thresholds_for

MODEL = CROWD_MODELS["pypi-small"]
DIM = 128


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic_event(strangers: int, guest_photos: int, rng: np.random.Generator,
                    closeness: float = 1.0) -> tuple[EventIndex, np.ndarray, set[int]]:
    """Strangers: random directions (cosines ~ N(0, 1/128), like a face embedder's impostors).
    The guest: noisy views of one identity. Returns the index, a selfie and the guest's face ids."""
    identity = rng.normal(size=DIM)
    views = unit(closeness * identity + rng.normal(size=(guest_photos + 1, DIM)))
    crowd = unit(rng.normal(size=(strangers, DIM)))
    index = EventIndex(DIM)
    ids = np.arange(strangers + guest_photos, dtype=np.int64)
    index.add(ids, np.concatenate([crowd, views[1:]]))
    return index, views[0], set(range(strangers, strangers + guest_photos))


def test_share_and_z_are_inverse_and_extrapolate_monotonically() -> None:
    for share in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10):
        z = MODEL.z_for_share(share)
        assert math.isclose(MODEL.share_at(z), share, rel_tol=1e-6)
    zs = [MODEL.z_for_share(10.0 ** -k) for k in range(2, 12)]
    assert zs == sorted(zs) and len(set(zs)) == len(zs)


def test_thresholds_tighten_with_event_size() -> None:
    policy = Policy()
    sizes = [100, 1_000, 10_000, 125_000, 1_000_000]
    highs = [thresholds_for(MODEL, policy, n).high for n in sizes]
    maybes = [thresholds_for(MODEL, policy, n).maybe for n in sizes]
    assert highs == sorted(highs) and maybes == sorted(maybes)
    assert all(m < h for m, h in zip(maybes, highs, strict=True))
    # a smaller crowd sample means a less certain normalisation: a stricter bar
    assert thresholds_for(MODEL, policy, 50_000, 500).high > thresholds_for(MODEL, policy, 50_000, 4096).high


def test_similarity_scale_is_anchored_monotone_and_never_saturates() -> None:
    th = Thresholds(high=4.5, maybe=3.5)
    z = np.linspace(-2, 12, 500)  # a cosine of 1 is about z 11 for a typical crowd (spread ~0.085)
    sim = th.similarity(z)
    assert np.all(np.diff(sim) >= 0)
    assert sim.min() == 0.0 and float(sim.max()) < 100.0
    assert th.similarity(np.array([3.5]))[0] == pytest.approx(50.0)
    assert th.similarity(np.array([4.5]))[0] == pytest.approx(80.0)
    # true matches several z above the bar stay distinguishable at one decimal
    shown = np.round(th.similarity(np.array([6.0, 8.0, 10.0, 12.0])), 1)
    assert len(set(shown.tolist())) == 4 and shown.max() < 100.0
    for s in (10.0, 50.0, 65.0, 80.0, 90.0, 99.0):
        assert th.similarity(np.array([th.z_for_similarity(s)]))[0] == pytest.approx(s, abs=1e-3)
    assert th.z_for_similarity(100.0) == math.inf


@pytest.mark.parametrize("strangers", [500, 5_000, 50_000])
def test_guest_in_k_photos_among_n_strangers(strangers: int) -> None:
    rng = np.random.default_rng(strangers)
    index, selfie, guest = synthetic_event(strangers, guest_photos=6, rng=rng, closeness=1.5)
    assert set(decide(index, selfie, MODEL, Policy(), exclude=guest).face_ids.tolist()).isdisjoint(guest)
    m = decide(index, selfie, MODEL, Policy())
    high = set(m.face_ids[m.z >= m.thresholds.high].tolist())
    assert high == guest
    assert np.all(np.diff(m.z) <= 0), "best first"


def test_strangers_per_search_stay_bounded_as_the_event_grows() -> None:
    """Only strangers in the event: the high tier holds at most a few strangers over 50 searches at
    every size (the policy allows 0.05 per search), where a fixed cosine bar lets in a number that
    grows with the event."""
    rng = np.random.default_rng(7)
    fixed_bar = 0.3684  # the old per-pair high tier (LFW FAR 1e-3)
    counts = {}
    for n in (2_000, 40_000):
        crowd = unit(rng.normal(size=(n, DIM)))
        index = EventIndex(DIM)
        index.add(np.arange(n, dtype=np.int64), crowd)
        queries = unit(rng.normal(size=(50, DIM)))
        bar = thresholds_for(MODEL, Policy(), n).high
        high = sum(int((decide(index, q, MODEL, Policy()).z >= bar).sum()) for q in queries)
        assert high <= 0.1 * len(queries), (n, high)
        counts[n] = int((queries @ crowd.T >= fixed_bar).sum())
    assert counts[40_000] >= 10 and counts[40_000] > 5 * counts[2_000]


def test_query_expansion_finds_the_guests_harder_photos() -> None:
    """Views far from the selfie but close to the guest's other photos are pulled in by expansion."""
    rng = np.random.default_rng(3)
    identity = rng.normal(size=DIM)
    easy = unit(2.0 * identity + rng.normal(size=(8, DIM)))
    hard = unit(0.5 * identity + rng.normal(size=(4, DIM)))
    selfie = unit(2.0 * identity + rng.normal(size=DIM))
    crowd = unit(rng.normal(size=(8_000, DIM)))
    index = EventIndex(DIM)
    index.add(np.arange(8_012, dtype=np.int64), np.concatenate([crowd, easy, hard]))
    hard_ids = set(range(8_008, 8_012))
    plain = decide(index, selfie, MODEL, replace(Policy(), seed_margin=math.inf))
    expanded = decide(index, selfie, MODEL, Policy())
    found_plain = hard_ids & set(plain.face_ids[plain.z >= plain.thresholds.high].tolist())
    found_expanded = hard_ids & set(expanded.face_ids[expanded.z >= expanded.thresholds.high].tolist())
    assert found_plain <= found_expanded and len(found_expanded) > len(found_plain)
    assert set(expanded.face_ids[expanded.z >= expanded.thresholds.high].tolist()) <= set(range(8_000, 8_012))


def test_min_similarity_and_exclude() -> None:
    rng = np.random.default_rng(11)
    index, selfie, guest = synthetic_event(2_000, guest_photos=5, rng=rng)
    some = next(iter(guest))
    everyone = decide(index, selfie, MODEL, Policy(), min_similarity=0.0)
    assert len(everyone) == len(index)  # FaceMatchThreshold 0: every face, best first (as AWS)
    assert np.all(np.diff(everyone.z) <= 0)
    strict = decide(index, selfie, MODEL, Policy(), min_similarity=80.0, exclude=[some])
    assert some not in strict.face_ids.tolist()
    assert np.all(strict.similarity() >= 80.0 - 1e-3)
    assert decide(index, selfie, MODEL, Policy(), min_similarity=100.0).face_ids.size == 0


def test_tiny_events_use_the_prior_and_still_answer() -> None:
    rng = np.random.default_rng(5)
    index, selfie, guest = synthetic_event(12, guest_photos=4, rng=rng, closeness=1.5)
    m = decide(index, selfie, MODEL, Policy())
    assert set(m.face_ids[m.z >= m.thresholds.high].tolist()) == guest
    empty = EventIndex(DIM)
    assert len(decide(empty, selfie, MODEL, Policy())) == 0


def test_unknown_pack_falls_back_to_the_default_model() -> None:
    assert crowd_model("no-such-pack") is MODEL


def test_maybe_tier_puts_the_guests_groups_first_and_caps_the_rest() -> None:
    policy = replace(Policy(), maybe_max_photos=2, group_max_photos=3)
    assert maybe_tier(["g1", "g2", "g1"], ["c1", "g2", "c2", "c3"], policy) == ["g1", "g2", "c1", "c2"]
    assert maybe_tier(["g1", "g2", "g3", "g4"], ["c1"], policy) == ["g1", "g2", "g3", "c1"]
    assert maybe_tier([], [], policy) == []


def test_score_faces_matches_decide_and_skips_removed_faces() -> None:
    rng = np.random.default_rng(13)
    index, selfie, _ = synthetic_event(3_000, guest_photos=4, rng=rng, closeness=1.5)
    plain = decide(index, selfie, MODEL, replace(Policy(), seed_margin=math.inf))
    ids = plain.face_ids[:4]
    assert np.allclose(score_faces(index, selfie, ids, MODEL), plain.z[:4], atol=1e-4)
    index.remove(ids[:1])
    z = score_faces(index, selfie, ids, MODEL)
    assert z[0] == -np.inf and np.all(np.isfinite(z[1:]))
