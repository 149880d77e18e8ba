"""5-point similarity alignment to the ArcFace 112x112 template, vectorised over all faces."""

from __future__ import annotations

import numpy as np

# The standard ArcFace destination landmarks (left eye, right eye, nose, left/right mouth corner).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def similarity_transforms(src: np.ndarray, dst: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src (N,5,2) onto dst (5,2).

    Returns (N,2,3) matrices. Closed form (Umeyama without reflection) for all faces at once."""
    src = src.astype(np.float64)
    dst64 = dst.astype(np.float64)
    src_mean = src.mean(axis=1, keepdims=True)
    dst_mean = dst64.mean(axis=0)
    sc = src - src_mean
    dc = dst64 - dst_mean
    # For 2-D similarity: [a -b; b a] with a = sum(x*u + y*v)/|src|^2, b = sum(x*v - y*u)/|src|^2
    norm = (sc**2).sum(axis=(1, 2))
    norm = np.where(norm > 0, norm, 1.0)
    a = (sc[..., 0] * dc[None, :, 0] + sc[..., 1] * dc[None, :, 1]).sum(axis=1) / norm
    b = (sc[..., 0] * dc[None, :, 1] - sc[..., 1] * dc[None, :, 0]).sum(axis=1) / norm
    n = src.shape[0]
    m = np.zeros((n, 2, 3))
    m[:, 0, 0], m[:, 0, 1] = a, -b
    m[:, 1, 0], m[:, 1, 1] = b, a
    centre = src_mean[:, 0, :]
    m[:, 0, 2] = dst_mean[0] - (a * centre[:, 0] - b * centre[:, 1])
    m[:, 1, 2] = dst_mean[1] - (b * centre[:, 0] + a * centre[:, 1])
    return m.astype(np.float32)


def warp_faces(image: np.ndarray, transforms: np.ndarray, size: int = 112) -> np.ndarray:
    """Bilinear-sample N aligned crops (N,size,size,3) uint8 from an RGB image in one vectorised pass.

    Pixels that fall outside the photo are black, as with cv2.warpAffine's default border."""
    n = transforms.shape[0]
    if n == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    # Invert each 2x3 similarity: output pixel -> source pixel.
    lin = transforms[:, :, :2].astype(np.float64)
    det = lin[:, 0, 0] * lin[:, 1, 1] - lin[:, 0, 1] * lin[:, 1, 0]
    det = np.where(np.abs(det) > 1e-12, det, 1e-12)
    inv = np.empty_like(lin)
    inv[:, 0, 0], inv[:, 0, 1] = lin[:, 1, 1] / det, -lin[:, 0, 1] / det
    inv[:, 1, 0], inv[:, 1, 1] = -lin[:, 1, 0] / det, lin[:, 0, 0] / det
    trans = -np.einsum("nij,nj->ni", inv, transforms[:, :, 2].astype(np.float64))
    ys, xs = np.mgrid[:size, :size].astype(np.float64)
    sx = inv[:, 0, 0, None, None] * xs + inv[:, 0, 1, None, None] * ys + trans[:, 0, None, None]
    sy = inv[:, 1, 0, None, None] * xs + inv[:, 1, 1, None, None] * ys + trans[:, 1, None, None]
    h, w = image.shape[:2]
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    fx = (sx - x0)[..., None].astype(np.float32)
    fy = (sy - y0)[..., None].astype(np.float32)
    x1, y1 = x0 + 1, y0 + 1

    def corner(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        # Gather straight from the uint8 photo (no full-size float copy); outside = black.
        inside = ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))[..., None]
        values = image[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)].astype(np.float32)
        return values * inside

    top = corner(y0, x0) * (1 - fx) + corner(y0, x1) * fx
    bottom = corner(y1, x0) * (1 - fx) + corner(y1, x1) * fx
    out = top * (1 - fy) + bottom * fy
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
