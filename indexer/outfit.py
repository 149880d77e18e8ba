"""Outfit colour: the dominant colour of the torso below each face (or of a body box), in CIELab.

Everything is vectorised over all faces of a photo: torso boxes are computed as arrays, each is
sampled to a small grid in one pass, and a batched k-means runs on all of them at once.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.alignment import warp_faces
from picsort_local.types import Outfit

GRID = 20  # samples per side of each torso region
K = 3  # clusters: garment, background, skin/hair/other


def torso_boxes(face_boxes: np.ndarray, width: int, height: int,
                min_fraction: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Torso region under each face (N,4), clipped to the photo, and a mask of usable regions.

    The chest sits about half a face-height below the chin and is about two faces wide; regions
    clipped to less than `min_fraction` of their nominal area (face at the bottom edge) are skipped."""
    fw = face_boxes[:, 2] - face_boxes[:, 0]
    fh = face_boxes[:, 3] - face_boxes[:, 1]
    cx = (face_boxes[:, 0] + face_boxes[:, 2]) / 2
    nominal = np.stack([cx - 0.9 * fw, face_boxes[:, 3] + 0.5 * fh, cx + 0.9 * fw, face_boxes[:, 3] + 2.0 * fh], axis=1)
    clipped = nominal.copy()
    clipped[:, [0, 2]] = nominal[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = nominal[:, [1, 3]].clip(0, height)
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    ok = (area(clipped) >= min_fraction * np.maximum(area(nominal), 1e-6)) & (clipped[:, 3] - clipped[:, 1] >= 6)
    return clipped, ok


def _sample_regions(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,GRID,GRID,3) samples of each box via one batched affine warp."""
    sx = GRID / np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)
    sy = GRID / np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    m = np.zeros((len(boxes), 2, 3), np.float32)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    m[:, 0, 2], m[:, 1, 2] = -boxes[:, 0] * sx, -boxes[:, 1] * sy
    # warp_faces maps output pixel -> source by inverting m: a non-uniform scale works the same way.
    return warp_faces(image, m, size=GRID)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (...,3) -> float Lab in standard units."""
    flat = rgb.reshape(-1, 1, 3).astype(np.uint8)
    lab = cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(rgb.shape).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


def batched_kmeans(points: np.ndarray, k: int = K, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on N independent point sets at once. points (N,P,3) -> centres (N,k,3), counts (N,k)."""
    n, p, _ = points.shape
    order = np.argsort(points[..., 0], axis=1)  # deterministic start: spread along lightness
    starts = order[:, np.linspace(0, p - 1, k).astype(int)]
    centres = np.take_along_axis(points, starts[..., None], axis=1)
    for _ in range(iterations):
        dist = ((points[:, :, None, :] - centres[:, None, :, :]) ** 2).sum(-1)
        assign = dist.argmin(axis=2)
        onehot = np.eye(k, dtype=np.float32)[assign]  # (N,P,k)
        counts = onehot.sum(axis=1)
        sums = np.einsum("npk,npc->nkc", onehot, points)
        centres = np.where(counts[..., None] > 0, sums / np.maximum(counts[..., None], 1), centres)
    return centres, counts


def colour_name(lab: np.ndarray) -> list[str]:
    """Coarse colour bins from Lab: greys by lightness, chromatic colours by hue angle."""
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    hue = (np.degrees(np.arctan2(b, a)) + 360) % 360
    # Hue angles in CIELab are not the HSV ones: red sits near 40 degrees, yellow near 95, green
    # 135-160, blue 290-310, magenta/pink 330-360.
    names = []
    for L, c, h in zip(lightness, chroma, hue, strict=True):
        if c < 12:
            names.append("black" if L < 25 else "white" if L > 82 else "grey")
        elif h >= 340 or h < 20:
            names.append("pink" if L > 55 else "red")
        elif h < 50:
            names.append("brown" if L < 35 and c < 45 else "red")
        elif h < 75:
            names.append("brown" if L < 50 else "orange")
        elif h < 105:
            names.append("brown" if L < 45 else "yellow")
        elif h < 190:
            names.append("green")
        elif h < 240:
            names.append("cyan")
        elif h < 315:
            names.append("blue")
        else:
            names.append("purple")
    return names


def outfit_colours(image: np.ndarray, regions: np.ndarray, *, from_faces: bool = True) -> list[Outfit | None]:
    """Dominant outfit colour per face box (from_faces) or per torso box given directly.

    `image` is RGB in the same pixel frame as `regions`."""
    if len(regions) == 0:
        return []
    h, w = image.shape[:2]
    if from_faces:
        boxes, ok = torso_boxes(regions, w, h)
    else:
        boxes = regions.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        ok = (boxes[:, 2] - boxes[:, 0] >= 6) & (boxes[:, 3] - boxes[:, 1] >= 6)
    out: list[Outfit | None] = [None] * len(regions)
    if not ok.any():
        return out
    samples = _sample_regions(image, boxes[ok])
    lab = to_lab(samples).reshape(int(ok.sum()), GRID * GRID, 3)
    centres, counts = batched_kmeans(lab)
    dominant = centres[np.arange(len(centres)), counts.argmax(axis=1)]
    names = colour_name(dominant)
    for slot, i in enumerate(np.nonzero(ok)[0]):
        out[i] = Outfit(tuple(float(v) for v in dominant[slot]), names[slot])  # type: ignore[arg-type]
    return out


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference (Euclidean in Lab)."""
    return np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=-1)
