"""The face engine with the real default pack on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support import need_shared
from support.images import jpeg_bytes

from models.alignment import ARCFACE_TEMPLATE, similarity_transforms, warp_faces
from models.engine import FaceEngine, PhotoFaces
from picsort_local.images import DecodedImage, decode_image

T1 = tuple[DecodedImage, PhotoFaces]  # insightface's t1.jpg, decoded and analysed once per module


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.fixture(scope="module")
def t1(engine: FaceEngine, insightface_t1: Path) -> T1:
    image = engine.decode(insightface_t1.read_bytes())
    return image, engine.analyze(image)


def test_t1_has_six_faces(t1: T1) -> None:
    _, faces = t1
    assert len(faces) == 6
    assert faces.embeddings.shape == (6, 128)
    assert np.allclose(np.linalg.norm(faces.embeddings, axis=1), 1.0, atol=1e-5)
    # five landmarks inside each box
    d = faces.detections
    assert ((d.kps[..., 0] >= d.boxes[:, None, 0]) & (d.kps[..., 0] <= d.boxes[:, None, 2])).all()


def test_solvay_group_photo(engine: FaceEngine, solvay_photo: Path) -> None:
    faces = engine.analyze(engine.decode(solvay_photo.read_bytes()))
    assert len(faces) >= 27, f"found {len(faces)} of the 29 faces"
    assert len(faces) <= 31


def test_selfie_filling_90_percent_of_frame(engine: FaceEngine, t1: T1) -> None:
    image, faces = t1
    x1, y1, x2, y2 = faces.detections.boxes[0].astype(int)
    crop = image.pixels[y1:y2, x1:x2]
    side = 1024
    scale = 0.9 * side / crop.shape[0]
    face = cv2.resize(crop, (int(crop.shape[1] * scale), int(crop.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((side, side, 3), face.reshape(-1, 3).mean(axis=0), np.uint8)
    oy, ox = (side - face.shape[0]) // 2, (side - face.shape[1]) // 2
    canvas[oy : oy + face.shape[0], ox : ox + face.shape[1]] = face
    found = engine.analyze(decode_image(jpeg_bytes(canvas)))
    assert len(found) == 1
    assert found.detections.boxes[0][3] - found.detections.boxes[0][1] > 0.7 * side


def test_30px_face_in_24_megapixel_photo(engine: FaceEngine, t1: T1) -> None:
    image, faces = t1
    x1, y1, x2, y2 = faces.detections.boxes[0]
    h = y2 - y1
    # the face with a margin of context around it, scaled so the face box is 30 px tall
    mx1, my1 = int(max(0, x1 - h)), int(max(0, y1 - h))
    mx2, my2 = int(min(image.pixels.shape[1], x2 + h)), int(min(image.pixels.shape[0], y2 + h))
    patch = image.pixels[my1:my2, mx1:mx2]
    scale = 30.0 / h
    patch = cv2.resize(patch, (int(patch.shape[1] * scale), int(patch.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(7)
    background = cv2.resize(rng.integers(60, 200, (40, 60, 3), dtype=np.uint8), (6000, 4000),
                            interpolation=cv2.INTER_CUBIC)
    px, py = 4321, 2777
    background[py : py + patch.shape[0], px : px + patch.shape[1]] = patch
    expected = np.array([px + (x1 - mx1) * scale, py + (y1 - my1) * scale,
                         px + (x2 - mx1) * scale, py + (y2 - my1) * scale])
    decoded = engine.decode(jpeg_bytes(background))
    found = engine.detect(decoded)
    ious = [_iou(box, expected) for box in found.boxes]
    assert ious and max(ious) > 0.4, f"30 px face not found; {len(found)} detections"


def test_alignment_recovers_a_known_similarity() -> None:
    angle, scale, shift = np.radians(20), 1.7, np.array([13.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = (ARCFACE_TEMPLATE - shift) @ np.linalg.inv(rot).T
    m = similarity_transforms(src[None].astype(np.float32))[0]
    mapped = src @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - ARCFACE_TEMPLATE).max() < 1e-3


def test_batched_warp_matches_opencv(t1: T1) -> None:
    image, faces = t1
    transforms = similarity_transforms(faces.detections.kps)
    ours = warp_faces(image.pixels, transforms)
    for i, m in enumerate(transforms):
        ref = cv2.warpAffine(image.pixels, m, (112, 112), flags=cv2.INTER_LINEAR)
        assert np.abs(ours[i].astype(int) - ref.astype(int)).mean() < 1.5


def test_batch_size_does_not_change_embeddings(engine: FaceEngine, t1: T1) -> None:
    image, faces = t1
    crops = warp_faces(image.pixels, similarity_transforms(faces.detections.kps))
    one_by_one = np.concatenate([engine.embedder.embed(crops[i : i + 1]) for i in range(len(crops))])
    assert np.abs(engine.embedder.embed(crops) - one_by_one).max() < 1e-4


def test_same_person_scores_higher_than_strangers(engine: FaceEngine) -> None:
    lfw = need_shared("datasets", "lfw", "images")
    paths = [lfw / "George_W_Bush" / f"George_W_Bush_{i:04d}.jpg" for i in (1, 2)]
    paths.append(lfw / "Serena_Williams" / "Serena_Williams_0001.jpg")
    embs = []
    for p in paths:
        faces, main = engine.embed_main(engine.decode(p.read_bytes()))
        assert main is not None
        embs.append(faces.embeddings[main])
    same, different = float(embs[0] @ embs[1]), float(embs[0] @ embs[2])
    assert same > 0.4 > different, (same, different)


def test_quality_signals(t1: T1) -> None:
    image, faces = t1
    blurred = cv2.GaussianBlur(image.pixels, (0, 0), 4)
    crops = warp_faces(image.pixels, similarity_transforms(faces.detections.kps))
    crops_blur = warp_faces(blurred, similarity_transforms(faces.detections.kps))
    from models.quality import pose_from_landmarks, sharpness

    assert (sharpness(crops) > sharpness(crops_blur)).all()
    frontal = ARCFACE_TEMPLATE[None]
    yaw, pitch, roll = pose_from_landmarks(frontal)
    assert abs(yaw[0]) < 5 and abs(pitch[0]) < 15 and abs(roll[0]) < 2
    turned = frontal.copy()
    turned[0, 2, 0] += 25  # nose far to the right
    assert pose_from_landmarks(turned)[0][0] > 30
