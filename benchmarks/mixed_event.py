"""A harder, mixed event of the kind guests meet: group photos as well as portraits.

Built from the shared data only (never tuned on): `guests` LFW people (report half, 10+ photos each)
appear in solo portraits and in group photos made from real WIDER crowd photos into which 1 to 3
guests' LFW faces are pasted at 50-160 px (re-encoded as JPEG, then detected and embedded by the
engine like any upload, with every crowd face around them); other LFW people add 3 portraits each.
Each guest searches with each of their photos not in the event; truth = their portraits and the
group photos they were pasted into.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.event_faces import DatasetFaces
from models.engine import FaceEngine
from models.pipeline import analyze_stream

PASTE_PX = (50, 160)


@dataclass(frozen=True)
class MixedEvent:
    vectors: np.ndarray  # event faces
    photo: np.ndarray  # photo number of each face
    truth: dict[str, set[int]]  # guest -> photos they are in
    selfies: list[tuple[str, np.ndarray]]  # (guest, embedding of a held-out photo's main face)
    photos: int


def _paste(background: np.ndarray, portrait: np.ndarray, taken: list[tuple[int, int, int, int]],
           rng: np.random.Generator) -> bool:
    h, w = background.shape[:2]
    crop = portrait[55:195, 55:195]  # deep-funnelled LFW: the face sits in the middle
    size = int(rng.integers(*PASTE_PX))
    if size >= min(h, w) - 2:
        return False
    for _ in range(40):
        x, y = int(rng.integers(0, w - size)), int(rng.integers(0, h - size))
        if all(x + size < a or a + c < x or y + size < b or b + d < y for a, b, c, d in taken):
            background[y:y + size, x:x + size] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
            taken.append((x, y, size, size))
            return True
    return False


def _reader(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def build_mixed_event(engine: FaceEngine, lfw_root: Path, wider_root: Path, lfw: DatasetFaces,
                      main: np.ndarray, people: list[str], others: list[str], *, groups: int, seed: int,
                      workers: int) -> MixedEvent:
    rng = np.random.default_rng(seed)
    images = lfw_root / "images" if (lfw_root / "images").is_dir() else lfw_root
    wimages = wider_root / "images" if (wider_root / "images").is_dir() else wider_root
    boxes = json.loads((wider_root / "boxes.json").read_text())
    photos_of = {p: [int(i) for i in np.nonzero(lfw.identity == p)[0] if main[i] >= 0] for p in people + others}
    truth: dict[str, set[int]] = {p: set() for p in people}
    selfies: list[tuple[str, np.ndarray]] = []
    vectors, photo = [], []
    n = 0
    for p in people:  # 4 portraits in the event, 3 photos to paste into groups, the rest are selfies
        order = rng.permutation(photos_of[p])
        for i in order[:4]:
            vectors.append(lfw.embeddings[main[i]][None])
            photo.append([n])
            truth[p].add(n)
            n += 1
        selfies += [(p, lfw.embeddings[main[i]]) for i in order[7:12]]
        photos_of[p] = [int(i) for i in order[4:7]]
    for p in others:
        for i in photos_of[p][:3]:
            vectors.append(lfw.embeddings[main[i]][None])
            photo.append([n])
            n += 1
    backgrounds = sorted(boxes)
    composites: list[tuple[int, bytes]] = []
    for _ in range(groups):
        name = backgrounds[int(rng.integers(len(backgrounds)))]
        canvas = cv2.imread(str(wimages / name))
        if canvas is None:
            continue
        taken = [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in boxes[name]]
        for guest in rng.choice(people, size=int(rng.integers(1, 4)), replace=False):
            source = photos_of[str(guest)][int(rng.integers(len(photos_of[str(guest)])))]
            portrait = cv2.imread(str(images / str(lfw.photos[source])))
            if portrait is not None and _paste(canvas, portrait, taken, rng):
                truth[str(guest)].add(n)
        jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        composites.append((n, jpeg.tobytes()))
        n += 1
    for result in analyze_stream(engine, [(k, _reader(b)) for k, b in composites], workers=workers):
        if result.faces is not None and len(result.faces):
            vectors.append(result.faces.embeddings)
            photo.append([result.key] * len(result.faces))
    return MixedEvent(np.concatenate(vectors).astype(np.float32), np.concatenate([np.asarray(p) for p in photo]),
                      truth, selfies, n)

