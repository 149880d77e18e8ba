"""SCRFD face detector (the RetinaFace/SCRFD ONNX family), our own thin wrapper over the graph.

One photo is looked at through a small image pyramid instead of one fixed 640x640 view:
- fine levels, scaled so the smallest wanted face (`min_face_px` in the original) is about
  `target_face_px` tall at the detector input, then coarser levels 4x apart; big levels are tiled;
- one padded whole-photo level (640 on the long side after adding a border), so a selfie face that
  fills the frame shrinks into the range of the detector's anchors.
Detections from all levels are merged by non-maximum suppression.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import cv2
import numpy as np

from models.runtime import InferenceSession

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


@dataclass(frozen=True)
class Detections:
    """Arrays for N faces in original-photo pixels: boxes (N,4) x1,y1,x2,y2; scores (N,); kps (N,5,2)."""

    boxes: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    kps: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


@dataclass(frozen=True)
class DetectorConfig:
    score_threshold: float = 0.5
    nms_iou: float = 0.4
    min_face_px: float = 24.0
    target_face_px: float = 16.0
    pad_ratio: float = 0.5
    # Side of the padded whole-photo view. It only has to catch faces too big for the fine levels,
    # so it can be smaller than the size the detector was trained at (see the benchmark sweep).
    base_size: int = 640
    max_tile: int = 2048
    tile_overlap: int = 192
    mean: float = 127.5
    std: float = 128.0
    bgr: bool = False
    batch_size: int = 8


@dataclass(frozen=True)
class _View:
    """One detector input cut from one photo, resized by `scale`: the region `crop` of the resized
    photo is drawn at `pad` in a canvas of `size` (so view pixel = photo*scale - crop origin + pad)."""

    image_index: int
    scale: float
    pad: tuple[int, int]
    size: tuple[int, int]  # view width, height (multiples of 32)
    crop: tuple[int, int, int, int]  # region of the scaled photo: x0, y0, x1, y1
    interior_edges: tuple[bool, bool, bool, bool]  # left, top, right, bottom touch another tile


def _round_up(value: float, multiple: int = 32) -> int:
    return int(np.ceil(value / multiple) * multiple)


class ScrfdDetector:
    def __init__(self, session: InferenceSession, config: DetectorConfig | None = None) -> None:
        self.session = session
        self.config = config or DetectorConfig()
        self.input_name = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        if len(outputs) != 9:
            raise ValueError(f"expected an SCRFD graph with keypoints (9 outputs), got {len(outputs)}")
        # insightface's export order: 3 score maps, 3 box maps, 3 keypoint maps, by stride.
        self.output_names = outputs
        self._centers: dict[tuple[int, int, int], np.ndarray] = {}

    # ---- planning ---------------------------------------------------------------------------
    def plan_scales(self, width: int, height: int, photo_scale: float = 1.0) -> tuple[list[float], float]:
        """Fine-to-coarse tiled scales plus the padded global scale, for a decoded photo of this size.

        `photo_scale` = decoded size / original size (reduced JPEG decoding)."""
        c = self.config
        long_side = max(width, height)
        # Never upsample the whole-photo view: small photos get a smaller (cheaper) view instead.
        global_scale = min(1.0, c.base_size / (long_side * (1.0 + c.pad_ratio)))
        fine = min(1.0, c.target_face_px / (c.min_face_px * photo_scale))
        scales: list[float] = []
        s = fine
        while s > global_scale * 1.5:
            scales.append(s)
            s /= 4.0
        return scales, global_scale

    def _views(self, index: int, width: int, height: int, photo_scale: float) -> list[_View]:
        c = self.config
        scales, global_scale = self.plan_scales(width, height, photo_scale)
        views: list[_View] = []
        for s in scales:
            sw, sh = max(1, round(width * s)), max(1, round(height * s))
            if sw * sh <= c.max_tile * c.max_tile:
                views.append(_View(index, s, (0, 0), (_round_up(sw), _round_up(sh)), (0, 0, sw, sh), (False,) * 4))
                continue
            step = c.max_tile - c.tile_overlap
            xs = list(range(0, max(sw - c.max_tile, 0) + 1, step))
            ys = list(range(0, max(sh - c.max_tile, 0) + 1, step))
            if xs[-1] + c.max_tile < sw:
                xs.append(sw - c.max_tile)
            if ys[-1] + c.max_tile < sh:
                ys.append(sh - c.max_tile)
            for y0 in ys:
                for x0 in xs:
                    x1, y1 = min(x0 + c.max_tile, sw), min(y0 + c.max_tile, sh)
                    views.append(
                        _View(
                            index, s, (0, 0), (_round_up(x1 - x0), _round_up(y1 - y0)),
                            (x0, y0, x1, y1), (x0 > 0, y0 > 0, x1 < sw, y1 < sh),
                        )
                    )
        gw, gh = max(1, round(width * global_scale)), max(1, round(height * global_scale))
        side = min(c.base_size, _round_up(max(gw, gh) * (1.0 + c.pad_ratio)))
        offset = (round((side - gw) / 2.0), round((side - gh) / 2.0))
        views.append(_View(index, global_scale, offset, (side, side), (0, 0, gw, gh), (False,) * 4))
        return views

    def _render(self, image: np.ndarray, view: _View, cache: dict[float, np.ndarray]) -> np.ndarray:
        scaled = cache.get(view.scale)
        if scaled is None:
            h, w = image.shape[:2]
            sw, sh = max(1, round(w * view.scale)), max(1, round(h * view.scale))
            interp = cv2.INTER_AREA if view.scale < 1 else cv2.INTER_LINEAR
            scaled = cv2.resize(image, (sw, sh), interpolation=interp) if (sw, sh) != (w, h) else image
            cache[view.scale] = scaled
        x0, y0, x1, y1 = view.crop
        canvas = np.zeros((view.size[1], view.size[0], 3), np.uint8)
        ox, oy = view.pad
        canvas[oy : oy + (y1 - y0), ox : ox + (x1 - x0)] = scaled[y0:y1, x0:x1]
        return canvas

    # ---- inference ----------------------------------------------------------------------------
    def _blob(self, canvases: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(canvases).astype(np.float32)
        if self.config.bgr:
            batch = batch[..., ::-1]
        batch -= self.config.mean
        batch /= self.config.std
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def _anchor_centers(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        centers = self._centers.get(key)
        if centers is None:
            gh, gw = height // stride, width // stride
            ys, xs = np.mgrid[:gh, :gw]
            grid = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            centers = np.repeat(grid, ANCHORS_PER_CELL, axis=0)
            self._centers[key] = centers
        return centers

    def _decode(self, outputs: list[np.ndarray], item: int, height: int, width: int) -> tuple[np.ndarray, ...]:
        boxes, scores, kps = [], [], []
        for level, stride in enumerate(STRIDES):
            score = outputs[level][item].reshape(-1)
            keep = np.nonzero(score >= self.config.score_threshold)[0]
            if keep.size == 0:
                continue
            centers = self._anchor_centers(height, width, stride)[keep]
            dist = outputs[level + 3][item][keep] * stride
            box = np.concatenate([centers - dist[:, :2], centers + dist[:, 2:]], axis=1)
            pts = outputs[level + 6][item][keep].reshape(-1, 5, 2) * stride + centers[:, None, :]
            boxes.append(box)
            scores.append(score[keep])
            kps.append(pts)
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)

    def detect_many(self, images: list[np.ndarray], photo_scales: list[float] | None = None) -> list[Detections]:
        """Detect faces in several RGB photos; views of equal size are batched together.

        Returned coordinates are in each photo's *original* pixels (decoded / photo_scale)."""
        photo_scales = photo_scales or [1.0] * len(images)
        views = [v for i, img in enumerate(images) for v in self._views(i, img.shape[1], img.shape[0], photo_scales[i])]
        by_size: dict[tuple[int, int], list[_View]] = defaultdict(list)
        for view in views:
            by_size[view.size].append(view)
        found: list[list[tuple[np.ndarray, ...]]] = [[] for _ in images]
        caches: list[dict[float, np.ndarray]] = [{} for _ in images]
        for (width, height), group in by_size.items():
            for start in range(0, len(group), self.config.batch_size):
                chunk = group[start : start + self.config.batch_size]
                blob = self._blob([self._render(images[v.image_index], v, caches[v.image_index]) for v in chunk])
                outputs = self.session.run(self.output_names, {self.input_name: blob})
                for item, view in enumerate(chunk):
                    boxes, scores, kps = self._decode(outputs, item, height, width)
                    if boxes.shape[0]:
                        found[view.image_index].append(self._to_photo(view, boxes, scores, kps))
        results = []
        for i, parts in enumerate(found):
            results.append(self._merge(parts, photo_scales[i]))
        return results

    def detect(self, image: np.ndarray, photo_scale: float = 1.0) -> Detections:
        return self.detect_many([image], [photo_scale])[0]

    def _to_photo(self, view: _View, boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray) -> tuple[np.ndarray, ...]:
        if any(view.interior_edges):
            # A face cut by a tile edge is found whole by the neighbouring tile or a coarser level.
            margin = 2.0
            x0, y0, x1, y1 = view.crop
            vw, vh = x1 - x0, y1 - y0
            left, top, right, bottom = view.interior_edges
            cut = np.zeros(len(scores), bool)
            if left:
                cut |= boxes[:, 0] <= margin
            if top:
                cut |= boxes[:, 1] <= margin
            if right:
                cut |= boxes[:, 2] >= vw - margin
            if bottom:
                cut |= boxes[:, 3] >= vh - margin
            boxes, scores, kps = boxes[~cut], scores[~cut], kps[~cut]
        shift = np.array([view.pad[0] - view.crop[0], view.pad[1] - view.crop[1]], np.float32)
        boxes = (boxes - np.tile(shift, 2)) / view.scale
        kps = (kps - shift) / view.scale
        return boxes, scores, kps

    def _merge(self, parts: list[tuple[np.ndarray, ...]], photo_scale: float) -> Detections:
        if not parts:
            return Detections.empty()
        boxes = np.concatenate([p[0] for p in parts]).astype(np.float32)
        scores = np.concatenate([p[1] for p in parts]).astype(np.float32)
        kps = np.concatenate([p[2] for p in parts]).astype(np.float32)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.config.score_threshold, self.config.nms_iou)
        keep = np.array(kept, dtype=np.int64).reshape(-1)
        order = keep[np.argsort(-scores[keep])]
        inv = 1.0 / photo_scale
        return Detections(boxes[order] * inv, scores[order], kps[order] * inv)
