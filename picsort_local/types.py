"""Domain values shared by every package. Arrays are kept out of frozen dataclasses' equality."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BoundingBox:
    """Pixel box in the original (EXIF-upright) photo: left, top, right, bottom."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


@dataclass(frozen=True)
class FaceQuality:
    """Per-face quality signals, later mapped to Rekognition's QualityFilter / UnindexedFaces."""

    detection_score: float
    face_px: float  # box height in original pixels
    sharpness: float  # variance of the Laplacian on the aligned 112x112 grey crop
    yaw: float  # degrees, rough estimate from the 5 landmarks
    pitch: float
    roll: float
    brightness: float  # mean grey level of the aligned crop, 0..255


@dataclass(frozen=True)
class DetectedFace:
    box: BoundingBox
    landmarks: tuple[tuple[float, float], ...]  # 5 points: eyes, nose, mouth corners
    score: float


@dataclass(frozen=True)
class AnalyzedFace:
    """A detected face with its quality and its L2-normalised embedding."""

    face: DetectedFace
    quality: FaceQuality
    embedding: np.ndarray = field(compare=False, repr=False)


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height
