"""Every face of every photo of a labelled dataset, as ingest sees them, cached on disk.

The event-scale benchmark needs the faces an event would hold: all faces the engine finds in each
photo (background faces included), with their boxes and embeddings, for all 13,233 LFW photos and
the WIDER crowd photos. Computing them takes a while on a CPU, so they are cached in one `.npz` per
dataset, pack and settings (never committed: `--cache`, default `~/.cache/picsort/bench`).

    python -m benchmarks.event_faces --lfw ../shared/datasets/lfw --wider ../shared/datasets/wider_val
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.engine import FaceEngine
from models.pipeline import analyze_stream
from models.runtime import plan_parallelism
from picsort_local.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetFaces:
    """Faces of a photo collection as parallel arrays (face i belongs to photo `photo[i]`)."""

    photos: np.ndarray  # (P,) relative paths
    identity: np.ndarray  # (P,) labelled person of each photo ("" = no label, e.g. WIDER crowds)
    size: np.ndarray  # (P, 2) width, height
    photo: np.ndarray  # (F,) photo index of each face
    boxes: np.ndarray  # (F, 4) x1 y1 x2 y2 in original pixels
    scores: np.ndarray  # (F,)
    embeddings: np.ndarray  # (F, D) L2-normalised float32

    def faces_of(self, photo_index: int) -> np.ndarray:
        return np.nonzero(self.photo == photo_index)[0]


def lfw_photos(root: Path) -> tuple[list[str], list[str]]:
    images = root / "images" if (root / "images").is_dir() else root
    names = sorted(str(p.relative_to(images)) for p in images.glob("*/*.jpg"))
    return names, [n.split("/", 1)[0] for n in names]


def wider_photos(root: Path) -> tuple[list[str], list[str]]:
    images = root / "images" if (root / "images").is_dir() else root
    names = sorted(str(p.relative_to(images)) for p in images.glob("*/*.jpg"))
    return names, [""] * len(names)


def _file_reader(path: Path) -> Callable[[], bytes]:
    return path.read_bytes


def extract(engine: FaceEngine, root: Path, names: list[str], identities: list[str], workers: int,
            progress: Callable[[int], None] | None = None) -> DatasetFaces:
    index = {n: i for i, n in enumerate(names)}
    size = np.zeros((len(names), 2), np.int32)
    photo, boxes, scores, embeddings = [], [], [], []
    items = [(n, _file_reader(root / n)) for n in names]
    done = 0
    for result in analyze_stream(engine, items, workers=workers):
        i = index[result.key]
        done += 1
        if progress and done % 500 == 0:
            progress(done)
        if result.faces is None or result.image is None:
            logger.warning("%s: %s", result.key, result.error)
            continue
        size[i] = (result.image.original.width, result.image.original.height)
        n = len(result.faces)
        photo.append(np.full(n, i, np.int32))
        boxes.append(result.faces.detections.boxes.astype(np.float32))
        scores.append(result.faces.detections.scores.astype(np.float32))
        embeddings.append(result.faces.embeddings.astype(np.float32))
    return DatasetFaces(np.array(names), np.array(identities), size, np.concatenate(photo),
                        np.concatenate(boxes), np.concatenate(scores), np.concatenate(embeddings))


def cache_path(cache: Path, dataset: str, engine: FaceEngine) -> Path:
    s = engine.settings
    key = f"{engine.pack_name}|{s.min_face_px}|{s.det_target_face_px}|{s.det_threshold}|{s.det_global_size}"
    return cache / f"{dataset}-{engine.pack_name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.npz"


def load_or_extract(engine: FaceEngine, dataset: str, root: Path, cache: Path, workers: int) -> DatasetFaces:
    path = cache_path(cache, dataset, engine)
    if path.exists():
        with np.load(path) as z:
            return DatasetFaces(**{k: z[k] for k in DatasetFaces.__dataclass_fields__})
    names, identities = lfw_photos(root) if dataset == "lfw" else wider_photos(root)
    images = root / "images" if (root / "images").is_dir() else root
    start = time.perf_counter()
    faces = extract(engine, images, names, identities, workers,
                    progress=lambda n: logger.info("%s: %d/%d photos", dataset, n, len(names)))
    logger.info("%s: %d photos, %d faces in %.0f s", dataset, len(names), len(faces.photo),
                time.perf_counter() - start)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{k: getattr(faces, k) for k in DatasetFaces.__dataclass_fields__})
    tmp.rename(path)
    return faces


def engine_for_benchmark(settings: Settings) -> tuple[FaceEngine, int]:
    """The engine sized like ingest's (workers x threads per session), and the worker count."""
    workers, threads = plan_parallelism(settings.engine, settings.ingest)
    return FaceEngine.from_settings(replace(settings.engine, threads=threads)), workers


def default_cache() -> Path:
    return Path.home() / ".cache" / "picsort" / "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw", type=Path)
    parser.add_argument("--wider", type=Path)
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--dlib", action="store_true", help="also extract with face_recognition (dlib)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.dlib:
        for dataset, root in (("wider", args.wider), ("lfw", args.lfw)):
            if root is not None:
                load_or_extract_dlib(dataset, root, args.cache, processes=2)
        return
    engine, workers = engine_for_benchmark(Settings())
    for dataset, root in (("wider", args.wider), ("lfw", args.lfw)):
        if root is not None:
            faces = load_or_extract(engine, dataset, root, args.cache, workers)
            logger.info("%s: %d photos, %d faces", dataset, len(faces.photos), len(faces.photo))



# ---- the peer a small venue would otherwise pick: face_recognition (dlib HOG detector + ResNet) ----
def _dlib_photo(path: str) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    import face_recognition

    image = face_recognition.load_image_file(path)
    boxes = face_recognition.face_locations(image)  # its defaults: HOG, one upsampling
    encodings = face_recognition.face_encodings(image, boxes)
    xyxy = np.array([(left, top, right, bottom) for top, right, bottom, left in boxes],
                    np.float32).reshape(-1, 4)
    return (image.shape[1], image.shape[0]), xyxy, np.array(encodings, np.float32).reshape(-1, 128)


def load_or_extract_dlib(dataset: str, root: Path, cache: Path, processes: int) -> DatasetFaces:
    """Same faces table from face_recognition (dlib), in `processes` worker processes. Its embeddings
    are not unit vectors (it compares Euclidean distances): they are stored as it returns them."""
    from concurrent.futures import ProcessPoolExecutor

    path = cache / f"{dataset}-dlib.npz"
    if path.exists():
        with np.load(path) as z:
            return DatasetFaces(**{k: z[k] for k in DatasetFaces.__dataclass_fields__})
    names, identities = lfw_photos(root) if dataset == "lfw" else wider_photos(root)
    images = root / "images" if (root / "images").is_dir() else root
    size = np.zeros((len(names), 2), np.int32)
    photo, boxes, embeddings = [], [], []
    start = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        found = pool.map(_dlib_photo, [str(images / n) for n in names], chunksize=16)
        for i, (wh, xyxy, enc) in enumerate(found):
            size[i] = wh
            photo.append(np.full(len(xyxy), i, np.int32))
            boxes.append(xyxy)
            embeddings.append(enc)
            if (i + 1) % 500 == 0:
                logger.info("dlib %s: %d/%d photos", dataset, i + 1, len(names))
    faces = DatasetFaces(np.array(names), np.array(identities), size, np.concatenate(photo),
                         np.concatenate(boxes), np.ones(sum(len(p) for p in photo), np.float32),
                         np.concatenate(embeddings))
    logger.info("dlib %s: %d faces in %.0f s", dataset, len(faces.photo), time.perf_counter() - start)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{k: getattr(faces, k) for k in DatasetFaces.__dataclass_fields__})
    tmp.rename(path)
    return faces


if __name__ == "__main__":
    main()
