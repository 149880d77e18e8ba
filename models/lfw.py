"""LFW verification benchmark: the standard 10-fold protocol on pairs.txt, from the raw
deep-funnelled images through our own detection and alignment."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.alignment import similarity_transforms, warp_faces
from models.engine import FaceEngine
from picsort_local.errors import PicsortError
from picsort_local.images import DecodedImage, load_image
from picsort_local.main_face import choose_main_face

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    a: str  # relative image path
    b: str
    same: bool
    fold: int


@dataclass(frozen=True)
class LfwResult:
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    tar_at_far_1e3: float
    threshold_mean: float
    pairs: int
    images: int
    detection_misses: int
    # Cosine thresholds at which the given share of different-person pairs is accepted
    # (used to calibrate the search tiers), and the true-accept rate at each.
    threshold_at_far: dict[str, float] = field(default_factory=dict)
    tar_at_far: dict[str, float] = field(default_factory=dict)
    missed_images: list[str] = field(default_factory=list)


def _image_path(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_pairs(path: Path, folds: int | None = None) -> list[Pair]:
    lines = path.read_text().split("\n")
    header = lines[0].split()
    n_folds, per_half = int(header[0]), int(header[1])
    pairs: list[Pair] = []
    rows = [line.split() for line in lines[1:] if line.strip()]
    for index, row in enumerate(rows):
        fold = index // (2 * per_half)
        if folds is not None and fold >= folds:
            break
        if len(row) == 3:
            pairs.append(Pair(_image_path(row[0], row[1]), _image_path(row[0], row[2]), True, fold))
        elif len(row) == 4:
            pairs.append(Pair(_image_path(row[0], row[1]), _image_path(row[2], row[3]), False, fold))
        else:
            raise PicsortError(f"{path}: line {index + 2} is not a pairs.txt row: {' '.join(row)}")
    if folds is None and len(pairs) != n_folds * 2 * per_half:
        raise PicsortError(f"{path}: expected {n_folds * 2 * per_half} pairs, read {len(pairs)}")
    return pairs


def _central_face(image: DecodedImage, boxes: np.ndarray) -> int:
    """LFW images are centred on the labelled person: the main face (`choose_main_face`, the product's
    one rule; on every multi-face LFW photo it picks the face the former LFW-only rule picked)."""
    index = choose_main_face(boxes, image.original.width, image.original.height).index
    return 0 if index is None else index


def embed_images(
    engine: FaceEngine,
    root: Path,
    names: list[str],
    *,
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embed the central face of each image, plain and mirrored. Misses fall back to the mean
    landmarks of the detected faces (LFW deep-funnelled images are aligned to a common frame)."""
    crops = np.zeros((len(names), 112, 112, 3), np.uint8)
    kps_found: list[np.ndarray] = []
    missed: dict[int, DecodedImage] = {}  # kept until the mean landmarks are known
    for batch in _decoded_chunks(engine, root, names, chunk):
        kps_found += _crop_central_faces(engine, batch, crops, missed)
        if progress:
            progress(len(batch))
    if missed and kps_found:
        mean_kps = np.mean(kps_found, axis=0)[None]
        for i, image in missed.items():
            crops[i] = warp_faces(image.pixels, similarity_transforms(mean_kps))[0]
    plain, flipped = engine.embedder.embed_with_flip(crops)
    return plain, flipped, [names[i] for i in missed]


def _decoded_chunks(engine: FaceEngine, root: Path, names: list[str],
                    chunk: int) -> Iterator[list[tuple[int, DecodedImage]]]:
    """(index, image) in order, `chunk` at a time, decoded by two threads while the caller detects."""

    def load(i: int) -> tuple[int, DecodedImage]:
        return i, load_image(root / names[i], max_pixels=engine.settings.max_image_pixels)

    with ThreadPoolExecutor(max_workers=2) as pool:
        batch: list[tuple[int, DecodedImage]] = []
        for item in pool.map(load, range(len(names))):
            batch.append(item)
            if len(batch) == chunk:
                yield batch
                batch = []
        if batch:
            yield batch


def _crop_central_faces(engine: FaceEngine, batch: list[tuple[int, DecodedImage]], crops: np.ndarray,
                        missed: dict[int, DecodedImage]) -> list[np.ndarray]:
    """Align each image's central face into `crops[i]` and return its landmarks; an image without a
    face goes into `missed` instead."""
    decoded = [im for _, im in batch]
    detections = engine.detector.detect_many([im.pixels for im in decoded], [im.scale for im in decoded])
    found: list[np.ndarray] = []
    for (i, image), det in zip(batch, detections, strict=True):
        if len(det) == 0:
            missed[i] = image
            continue
        best = _central_face(image, det.boxes)
        kps = det.kps[best : best + 1]
        found.append(kps[0])
        crops[i] = warp_faces(image.pixels, similarity_transforms(kps * image.scale))[0]
    return found


def _best_threshold(sims: np.ndarray, same: np.ndarray) -> float:
    candidates = np.unique(sims)
    # Accuracy at every candidate threshold at once (sorted sweep instead of a Python loop).
    order = np.argsort(sims)
    s_sorted, same_sorted = sims[order], same[order]
    # predicting "same" for sims >= t: correct = positives at/above + negatives below
    pos_above = np.cumsum(same_sorted[::-1])[::-1]
    neg_below = np.concatenate([[0], np.cumsum(~same_sorted)[:-1]])
    acc = (pos_above + neg_below) / len(sims)
    best = int(np.argmax(acc))
    return float(s_sorted[best]) if candidates.size else 0.0


def ten_fold(sims: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[list[float], list[float]]:
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        train = ~test if (~test).any() else test
        threshold = _best_threshold(sims[train], same[train])
        accuracies.append(float(((sims[test] >= threshold) == same[test]).mean()))
        thresholds.append(threshold)
    return accuracies, thresholds


def threshold_at_far(sims: np.ndarray, same: np.ndarray, far: float) -> float:
    """Smallest threshold t with at most `far` of different-person pairs scoring above t."""
    negatives = np.sort(sims[~same])[::-1]
    allowed = int(np.floor(far * negatives.size))
    return float(negatives[allowed]) if allowed < negatives.size else -1.0


def tar_at_far(sims: np.ndarray, same: np.ndarray, far: float = 1e-3) -> float:
    return float((sims[same] > threshold_at_far(sims, same, far)).mean())


def evaluate_lfw(
    engine: FaceEngine,
    data_dir: Path,
    *,
    folds: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, LfwResult]:
    pairs = read_pairs(data_dir / "pairs.txt", folds)
    root = data_dir / "images" if (data_dir / "images").is_dir() else data_dir
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    index = {n: i for i, n in enumerate(names)}
    plain, flipped, missed = embed_images(engine, root, names, progress=progress)
    a = np.array([index[p.a] for p in pairs])
    b = np.array([index[p.b] for p in pairs])
    same = np.array([p.same for p in pairs])
    fold_ids = np.array([p.fold for p in pairs])
    results = {}
    for label, emb in (("plain", plain), ("flip", flipped)):
        sims = np.einsum("ij,ij->i", emb[a], emb[b])
        accs, thresholds = ten_fold(sims, same, fold_ids)
        results[label] = LfwResult(
            accuracy_mean=float(np.mean(accs)),
            accuracy_std=float(np.std(accs)),
            fold_accuracies=accs,
            tar_at_far_1e3=tar_at_far(sims, same),
            threshold_mean=float(np.mean(thresholds)),
            pairs=len(pairs),
            images=len(names),
            detection_misses=len(missed),
            threshold_at_far={str(f): threshold_at_far(sims, same, f) for f in (1e-2, 1e-3)},
            tar_at_far={str(f): tar_at_far(sims, same, f) for f in (1e-2, 1e-3)},
            missed_images=missed,
        )
    return results
