"""Derived images of a photo: watermarked preview (long side 1600), thumbnail (400), micro (64)."""

from __future__ import annotations

import cv2
import numpy as np

SIZES = {"preview": 1600, "thumb": 400, "micro": 64}


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def watermark(image: np.ndarray, text: str) -> np.ndarray:
    """Semi-transparent text repeated diagonally, so it cannot be cropped away from one corner."""
    if not text:
        return image
    h, w = image.shape[:2]
    overlay = image.copy()
    font_scale = max(0.5, w / 1600 * 1.4)
    thickness = max(1, int(font_scale * 2))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    step_x, step_y = tw + int(80 * font_scale), th * 6
    for row, y in enumerate(range(th * 2, h, step_y)):
        for x in range(-(row % 2) * step_x // 2, w, step_x):
            cv2.putText(overlay, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness,
                        cv2.LINE_AA)
    return cv2.addWeighted(overlay, 0.35, image, 0.65, 0)


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


def derived_images(image: np.ndarray, watermark_text: str) -> dict[str, bytes]:
    preview = resize_long_side(image, SIZES["preview"])
    thumb = resize_long_side(preview, SIZES["thumb"])
    micro = resize_long_side(thumb, SIZES["micro"])
    return {
        "preview": encode_jpeg(watermark(preview, watermark_text), 82),
        "thumb": encode_jpeg(thumb, 80),
        "micro": encode_jpeg(micro, 75),
    }
