"""The face engine: detection + alignment + batched embedding + quality, built from a model pack."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import onnx

from models.alignment import similarity_transforms, warp_faces
from models.detector import Detections, DetectorConfig, ScrfdDetector
from models.embedder import FaceEmbedder
from models.graph_fixes import make_batch_dynamic, make_detector_dynamic, rewrite_prelu
from models.packs import ModelPack, load_pack
from models.quality import brightness, pose_from_landmarks, sharpness
from models.runtime import CUDA, choose_providers, create_session, embed_batch_size
from picsort_local.images import DecodedImage, decode_image
from picsort_local.main_face import choose_main_face
from picsort_local.settings import EngineSettings
from picsort_local.types import FaceQuality, FaceRecord, Outfit, PixelBox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoFaces:
    """All faces of one photo as parallel arrays (row i = face i), sorted by detection score."""

    detections: Detections
    embeddings: np.ndarray = field(repr=False)
    sharpness: np.ndarray = field(repr=False)
    brightness: np.ndarray = field(repr=False)
    yaw: np.ndarray = field(repr=False)
    pitch: np.ndarray = field(repr=False)
    roll: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.detections)

    def records(self, outfits: Sequence[Outfit | None] | None = None) -> list[FaceRecord]:
        """The faces as domain values (boxes and landmarks in original pixels), optionally with the
        outfit colour under each face."""
        d = self.detections
        out = []
        for i in range(len(d)):
            x1, y1, x2, y2 = (float(v) for v in d.boxes[i])
            quality = FaceQuality(face_px=y2 - y1, sharpness=float(self.sharpness[i]),
                                  brightness=float(self.brightness[i]), yaw=float(self.yaw[i]),
                                  pitch=float(self.pitch[i]), roll=float(self.roll[i]))
            out.append(FaceRecord(
                box=PixelBox(x1, y1, x2, y2),
                landmarks=tuple((round(float(p[0]), 2), round(float(p[1]), 2)) for p in d.kps[i]),
                score=float(d.scores[i]),
                quality=quality,
                outfit=outfits[i] if outfits is not None else None,
            ))
        return out


def _detector_bytes(pack: ModelPack, *, for_cpu: bool = True) -> bytes:
    model = onnx.load(str(pack.detector_path))
    make_detector_dynamic(model)  # in memory: the file on disk stays as verified by its sha256
    if for_cpu:
        rewrite_prelu(model)
    return bytes(model.SerializeToString())


def _embedder_bytes(pack: ModelPack, *, for_cpu: bool = True) -> bytes:
    model = onnx.load(str(pack.embedder_path))
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    if dim0.HasField("dim_value"):
        make_batch_dynamic(model)
    if for_cpu:
        rewrite_prelu(model)  # SFace and ArcFace R50 are full of PRelu; see graph_fixes for the why
    return bytes(model.SerializeToString())


class FaceEngine:
    def __init__(self, detector: ScrfdDetector, embedder: FaceEmbedder, settings: EngineSettings,
                 pack_name: str = "") -> None:
        self.detector = detector
        self.embedder = embedder
        self.settings = settings  # the engine group only: the models layer reads nothing else
        self.pack_name = pack_name
        self._min_face_detectors: dict[int, ScrfdDetector] = {}

    @classmethod
    def from_settings(cls, engine: EngineSettings, pack: str | None = None) -> FaceEngine:
        """The engine of `engine.pack` (or `pack`), with sessions on the device the settings ask for."""
        model_pack = load_pack(engine.models_dir, pack or engine.pack)
        det_spec, emb_spec = model_pack.manifest.detector, model_pack.manifest.embedder
        config = DetectorConfig(
            score_threshold=engine.det_threshold,
            nms_iou=engine.det_nms_iou,
            min_face_px=engine.min_face_px,
            target_face_px=engine.det_target_face_px,
            pad_ratio=engine.det_pad_ratio,
            base_size=engine.det_global_size or det_spec.input_size[0],
            mean=det_spec.mean,
            std=det_spec.std,
            bgr=det_spec.channels == "BGR",
        )
        for_cpu = CUDA not in choose_providers(engine.device)
        detector = ScrfdDetector(create_session(_detector_bytes(model_pack, for_cpu=for_cpu), engine), config)
        embedder = FaceEmbedder(
            create_session(_embedder_bytes(model_pack, for_cpu=for_cpu), engine),
            mean=emb_spec.mean,
            std=emb_spec.std,
            bgr=emb_spec.channels == "BGR",
            batch_size=embed_batch_size(engine),
        )
        logger.info("face engine ready: pack %s (%s)", model_pack.manifest.name,
                    model_pack.manifest.description)
        return cls(detector, embedder, engine, model_pack.manifest.name)

    # ---- decoding --------------------------------------------------------------------------
    def detection_scale(self) -> float:
        """Fraction of full resolution the finest detection level needs (for reduced JPEG decoding)."""
        s = self.settings
        return min(1.0, s.det_target_face_px / s.min_face_px)

    def decode(self, data: bytes, *, reduced: bool = True) -> DecodedImage:
        return decode_image(
            data,
            max_pixels=self.settings.max_image_pixels,
            min_scale=self.detection_scale() if reduced else None,
        )

    # ---- analysis ----------------------------------------------------------------------------
    def detect(self, image: DecodedImage) -> Detections:
        return self.detector.detect(image.pixels, image.scale)

    def analyze(self, image: DecodedImage, *, flip: bool = False,
                detector: ScrfdDetector | None = None) -> PhotoFaces:
        return self.analyze_many([image], flip=flip, detector=detector)[0]

    def with_min_face(self, min_face_px: float) -> ScrfdDetector:
        """A detector sharing this session but looking only for faces at least this tall (selfies:
        the guest's face is large, so the fine pyramid levels can be skipped). Kept per whole pixel
        size, so repeated searches reuse the detector and its anchor grids."""
        key = int(min_face_px)
        detector = self._min_face_detectors.get(key)
        if detector is None:
            detector = ScrfdDetector(self.detector.session, replace(self.detector.config, min_face_px=key))
            self._min_face_detectors[key] = detector
        return detector

    def analyze_many(self, images: list[DecodedImage], *, flip: bool = False,
                     detector: ScrfdDetector | None = None) -> list[PhotoFaces]:
        """Detect in every photo, align every face, embed all faces of all photos in batches."""
        detections = (detector or self.detector).detect_many([im.pixels for im in images],
                                                             [im.scale for im in images])
        crops = []
        for image, det in zip(images, detections, strict=True):
            # Landmarks are in original pixels; the decoded array may be smaller.
            transforms = (similarity_transforms(det.kps * image.scale) if len(det)
                          else np.zeros((0, 2, 3), np.float32))
            crops.append(warp_faces(image.pixels, transforms))
        all_crops = np.concatenate(crops) if crops else np.zeros((0, 112, 112, 3), np.uint8)
        embeddings = self.embedder.embed(all_crops, flip=flip)
        sharp = sharpness(all_crops) if len(all_crops) else np.zeros(0, np.float32)
        bright = brightness(all_crops) if len(all_crops) else np.zeros(0, np.float32)
        all_kps = (np.concatenate([d.kps for d in detections]) if detections
                   else np.zeros((0, 5, 2), np.float32))
        yaw, pitch, roll = pose_from_landmarks(all_kps)
        results, start = [], 0
        for det in detections:
            end = start + len(det)
            results.append(
                PhotoFaces(det, embeddings[start:end], sharp[start:end], bright[start:end],
                           yaw[start:end], pitch[start:end], roll[start:end])
            )
            start = end
        return results

    def embed_main(self, image: DecodedImage) -> tuple[PhotoFaces, int | None]:
        """Analyse a photo and return the index of its main face (`choose_main_face`: large and
        central; None when there is no face)."""
        faces = self.analyze(image)
        return faces, choose_main_face(faces.detections.boxes, image.original.width, image.original.height).index
