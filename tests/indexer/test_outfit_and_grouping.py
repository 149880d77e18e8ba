from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from indexer import grouping
from indexer.derived import derived_images
from indexer.outfit import batched_kmeans, colour_name, outfit_colours, to_lab, torso_boxes
from picsort_local.images import decode_image

if TYPE_CHECKING:
    from models.engine import FaceEngine


def _person(shirt_rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((600, 400, 3), 200, np.uint8)
    img[100:200, 150:250] = (224, 172, 140)  # face
    img[230:600, 90:310] = shirt_rgb  # torso
    img[300:320, 90:310] = (20, 20, 20)  # a stripe: the dominant colour must still win
    return img, np.array([[150, 100, 250, 200]], np.float32)


@pytest.mark.parametrize("rgb,name", [((200, 30, 30), "red"), ((30, 60, 190), "blue"), ((30, 150, 60), "green"),
                                      ((20, 20, 20), "black"), ((245, 245, 245), "white"), ((240, 220, 40), "yellow")])
def test_dominant_torso_colour(rgb: tuple[int, int, int], name: str) -> None:
    img, box = _person(rgb)
    outfit = outfit_colours(img, box)[0]
    assert outfit is not None and outfit.name == name
    expected = to_lab(np.array([[rgb]], np.uint8))[0, 0]
    assert np.linalg.norm(np.array(outfit.lab) - expected) < 6


def test_torso_clipped_at_bottom_edge_is_skipped() -> None:
    img, box = _person((200, 30, 30))
    box[0, [1, 3]] = [480, 580]  # face at the bottom: no torso in the frame
    assert outfit_colours(img, box) == [None]
    boxes, ok = torso_boxes(np.array([[10, 10, 50, 60]], np.float32), 1000, 1000)
    assert ok.all() and boxes[0, 1] > 60


def test_batched_kmeans_matches_obvious_clusters() -> None:
    rng = np.random.default_rng(1)
    pts = np.concatenate([rng.normal(0, 1, (70, 3)), rng.normal(50, 1, (30, 3))])[None].astype(np.float32)
    centres, counts = batched_kmeans(np.repeat(pts, 4, axis=0), k=2)
    big = centres[0, counts[0].argmax()]
    assert np.abs(big).max() < 1 and counts[0].max() == 70
    assert colour_name(np.array([[50.0, 0.0, 0.0]], np.float32)) == ["grey"]


def test_derived_images_sizes() -> None:
    img = np.random.default_rng(0).integers(0, 255, (2400, 3200, 3), dtype=np.uint8)
    out = derived_images(img, "Smith wedding")
    sizes = {k: decode_image(v).original for k, v in out.items()}
    assert (sizes["preview"].width, sizes["thumb"].width, sizes["micro"].width) == (1600, 400, 64)


def test_grouping_against_truth_and_cannot_link() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 64))
    x = np.repeat(centres, 5, axis=0) + rng.normal(scale=0.25, size=(200, 64))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    truth = np.repeat(np.arange(40), 5)
    result = grouping.cluster(x, eps=0.35)
    scores = grouping.pairwise_scores(result.labels, truth)
    assert scores["pairwise_precision"] == 1.0 and scores["bcubed_f1"] > 0.99
    # a face of person 0 appearing twice in one photo cannot be one person
    photos = np.arange(200)
    photos[1] = photos[0]
    split = grouping.cluster(x, eps=0.35, photos=photos)
    assert split.labels[0] != split.labels[1]


def test_pairwise_scores_known_values() -> None:
    s = grouping.pairwise_scores(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]))
    assert s["pairwise_precision"] == pytest.approx(1 / 3)
    assert s["pairwise_recall"] == pytest.approx(1 / 2)


def test_grouping_precision_on_lfw_event(engine: FaceEngine) -> None:
    """CI-sized version of benchmarks/bench_grouping.py: 120 identities with 2+ photos + 60 singles."""
    from support import need_shared

    lfw = need_shared("datasets", "lfw")
    import benchmarks.bench_grouping as bench
    from models.lfw import embed_images

    names, truth = bench.lfw_event(lfw / "images", 120, 4, 60, seed=1)
    emb, _, _ = embed_images(engine, lfw / "images", names)
    result = grouping.cluster(emb)
    scores = grouping.pairwise_scores(result.labels, truth)
    assert scores["pairwise_precision"] >= 0.98, scores
    assert scores["bcubed_f1"] >= 0.85, scores
