"""Domain values shared by every package. Arrays are kept out of frozen dataclasses' equality.

`FaceRecord` is the one face value: what ingest stores for each detected face, what the metadata
repositories read back and what the Rekognition answers are built from. Boxes and landmarks are in
the original (EXIF-upright) photo's pixels; embeddings travel beside records as (n, dim) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PixelBox:
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

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True)
class FaceQuality:
    """Per-face quality signals, later mapped to Rekognition's QualityFilter / UnindexedFaces."""

    face_px: float  # box height in original pixels
    sharpness: float  # variance of the Laplacian on the aligned 112x112 grey crop
    brightness: float  # mean grey level of the aligned crop, 0..255
    yaw: float  # degrees, rough estimate from the 5 landmarks
    pitch: float
    roll: float


@dataclass(frozen=True)
class Outfit:
    """Torso colour under a face (or of a faceless body): CIE Lab and its colour name."""

    lab: tuple[float, float, float]
    name: str


Landmarks = tuple[tuple[float, float], ...]  # 5 points: eyes, nose, mouth corners (image left/right)


@dataclass(frozen=True)
class FaceRecord:
    """One detected face of a photo, without its embedding."""

    box: PixelBox
    landmarks: Landmarks
    score: float  # detection score, 0..1
    quality: FaceQuality
    outfit: Outfit | None = None

    def rank(self) -> float:
        """How good a face is to show for its person: confident, large, frontal."""
        return self.score + min(self.quality.face_px, 200.0) / 200.0 - abs(self.quality.yaw) / 90.0


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height
