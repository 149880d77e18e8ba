"""Per-face quality signals from the aligned crop and the 5 landmarks, vectorised over faces."""

from __future__ import annotations

import numpy as np


def sharpness(crops: np.ndarray) -> np.ndarray:
    """Variance of a 4-neighbour Laplacian on the grey crops (N,H,W,3) -> (N,). Blurry faces score low."""
    grey = crops.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lap = (
        grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:] + grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] - 4.0 * grey[:, 1:-1, 1:-1]
    )
    return lap.reshape(lap.shape[0], -1).var(axis=1)


def brightness(crops: np.ndarray) -> np.ndarray:
    grey = crops.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return grey.reshape(grey.shape[0], -1).mean(axis=1)


def pose_from_landmarks(kps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rough yaw, pitch, roll in degrees from (N,5,2) landmarks.

    roll: angle of the eye line. yaw: how far the nose sits from the eye/mouth midline, relative to
    the eye distance (asin, so a nose over one eye reads ~90 degrees). pitch: nose height between the
    eye line and the mouth line compared with a frontal face's ratio (~0.45)."""
    left_eye, right_eye, nose, mouth_l, mouth_r = (kps[:, i, :] for i in range(5))
    eye_vec = right_eye - left_eye
    roll = np.degrees(np.arctan2(eye_vec[:, 1], eye_vec[:, 0]))
    eye_dist = np.maximum(np.linalg.norm(eye_vec, axis=1), 1e-6)
    cos_r, sin_r = np.cos(np.radians(roll)), np.sin(np.radians(roll))

    def unrolled(p: np.ndarray) -> np.ndarray:
        return np.stack([p[:, 0] * cos_r + p[:, 1] * sin_r, -p[:, 0] * sin_r + p[:, 1] * cos_r], axis=1)

    le, re, no, ml, mr = map(unrolled, (left_eye, right_eye, nose, mouth_l, mouth_r))
    mid_x = (le[:, 0] + re[:, 0] + ml[:, 0] + mr[:, 0]) / 4.0
    yaw = np.degrees(np.arcsin(np.clip(2.0 * (no[:, 0] - mid_x) / eye_dist, -1.0, 1.0)))
    eye_y = (le[:, 1] + re[:, 1]) / 2.0
    mouth_y = (ml[:, 1] + mr[:, 1]) / 2.0
    span = np.maximum(mouth_y - eye_y, 1e-6)
    ratio = (no[:, 1] - eye_y) / span
    pitch = np.degrees(np.arcsin(np.clip((ratio - 0.45) / 0.45, -1.0, 1.0)))
    return yaw.astype(np.float32), pitch.astype(np.float32), roll.astype(np.float32)
