"""People whose face is not visible (turned away): OpenCV's built-in HOG people detector (no weights
to download), kept only where no detected face sits in the head area, with the torso's outfit colour.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from indexer.outfit import outfit_colours
from picsort_local.types import Outfit

DETECT_LONG_SIDE = 640  # HOG runs on a reduced copy: people are large, and HOG is slow at full size
_local = threading.local()


def _hog() -> cv2.HOGDescriptor:
    # One descriptor per thread: cv2.HOGDescriptor is not documented as thread-safe.
    hog = getattr(_local, "hog", None)
    if hog is None:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))
        _local.hog = hog
    return hog


def detect_people(image: np.ndarray, min_weight: float = 0.5) -> np.ndarray:
    """Person boxes (N,4) x1,y1,x2,y2 in `image` pixels."""
    h, w = image.shape[:2]
    scale = min(1.0, DETECT_LONG_SIDE / max(h, w))
    small = image
    if scale < 1:
        small = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    if small.shape[0] < 128 or small.shape[1] < 64:
        return np.zeros((0, 4), np.float32)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    found, found_weights = _hog().detectMultiScale(grey, winStride=(8, 8), padding=(8, 8), scale=1.1)
    if len(found) == 0:
        return np.zeros((0, 4), np.float32)
    rects = np.asarray(found, np.float32).reshape(-1, 4)
    weights = np.asarray(found_weights, np.float32).reshape(-1)
    keep_idx = cv2.dnn.NMSBoxes(rects.tolist(), weights.tolist(), min_weight, 0.3)
    keep = np.array(keep_idx, dtype=np.int64).reshape(-1)
    rects = rects[keep]
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / scale
    return boxes.astype(np.float32)


def faceless_people(image: np.ndarray, face_boxes: np.ndarray) -> list[tuple[np.ndarray, Outfit]]:
    """People without a detected face in their head area, with their torso colour.

    `face_boxes` are in `image` pixels. The HOG window pads the person: the head is roughly the
    top fifth, the torso the band from 25% to 55% of the height, inner half of the width."""
    people = detect_people(image)
    if len(people) == 0:
        return []
    pw, ph = people[:, 2] - people[:, 0], people[:, 3] - people[:, 1]
    head = np.stack([people[:, 0] + 0.2 * pw, people[:, 1], people[:, 2] - 0.2 * pw, people[:, 1] + 0.3 * ph], axis=1)
    if len(face_boxes):
        centres = (face_boxes[:, :2] + face_boxes[:, 2:]) / 2
        inside = ((centres[None, :, 0] >= head[:, None, 0]) & (centres[None, :, 0] <= head[:, None, 2])
                  & (centres[None, :, 1] >= head[:, None, 1]) & (centres[None, :, 1] <= head[:, None, 3]))
        has_face = inside.any(axis=1)
    else:
        has_face = np.zeros(len(people), bool)
    torso = np.stack([people[:, 0] + 0.25 * pw, people[:, 1] + 0.25 * ph, people[:, 2] - 0.25 * pw,
                      people[:, 1] + 0.55 * ph], axis=1)
    outfits = outfit_colours(image, torso[~has_face], from_faces=False)
    return [(box, outfit) for box, outfit in zip(people[~has_face], outfits, strict=True) if outfit is not None]
