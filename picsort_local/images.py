"""Decode untrusted image bytes into an upright RGB array, or fail with one typed error.

Shared by the engine CLI, the indexer and the search service. The pixel limit is checked from the
header, before any pixel is decoded, and JPEGs can be decoded at a reduced size (libjpeg DCT scaling)
when the caller does not need full resolution.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from picsort_local.errors import ImageTooLargeError, InvalidImageError
from picsort_local.types import ImageSize

logger = logging.getLogger(__name__)

try:  # HEIC/HEIF only where the optional decoder is installed (extra "heic").
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIC_SUPPORTED = True
except ImportError:  # pragma: no cover - depends on the machine
    HEIC_SUPPORTED = False

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"} | ({".heic", ".heif"} if HEIC_SUPPORTED else set())
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


@dataclass(frozen=True)
class DecodedImage:
    """`pixels` is HxWx3 uint8 RGB, upright. `scale` = decoded size / original upright size."""

    pixels: np.ndarray = field(repr=False, compare=False)
    original: ImageSize
    scale: float
    format: str


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _looks_like_image(data: bytes) -> bool:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return True
    return any(data.startswith(sig) for sig in _SIGNATURES)


def _open(data: bytes) -> Image.Image:
    if not data:
        raise InvalidImageError("empty", "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's bomb *warning* is noise, its *error* is mapped below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image dimensions are too large: {exc}") from exc
    except UnidentifiedImageError as exc:
        if _looks_like_image(data):
            raise InvalidImageError("corrupt", "the file starts like an image but its data is corrupt") from exc
        raise InvalidImageError(
            "not_an_image", "not a recognised image (supported: JPEG, PNG, WEBP, GIF, TIFF, BMP"
            + (", HEIC" if HEIC_SUPPORTED else "") + ")"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError("corrupt", f"cannot read the image header: {exc}") from exc


def read_size(data: bytes) -> ImageSize:
    """Upright size from the header only (cheap, no pixel decoding)."""
    img = _open(data)
    return _upright_size(img)


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
        return int(value) if isinstance(value, int) else 1
    except Exception:  # malformed EXIF must not make a good photo unusable
        return 1


def _upright_size(img: Image.Image) -> ImageSize:
    w, h = img.size
    if _orientation(img) in _SWAPS_AXES:
        w, h = h, w
    return ImageSize(w, h)


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if mode == "F":
            arr8 = np.clip(arr, 0, 255).astype(np.uint8)
        else:
            # 16-bit (or 32-bit int) grey: keep the top 8 significant bits of the used range.
            top = 65535 if arr.max(initial=0) > 255 else 255
            arr8 = (arr.astype(np.float32) * (255.0 / top)).clip(0, 255).astype(np.uint8)
        return np.repeat(arr8[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent areas become white, not black: a cut-out portrait stays a portrait.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def decode_image(
    source: bytes | Path,
    *,
    max_pixels: int = 100_000_000,
    min_scale: float | None = None,
) -> DecodedImage:
    """Decode `source` to upright RGB.

    `min_scale`: the caller only needs this fraction of the original resolution, so a JPEG may be
    decoded at 1/2, 1/4 or 1/8 size by libjpeg (never below `min_scale`). None = full size.
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    img = _open(data)
    fmt = img.format or "unknown"
    original = _upright_size(img)
    if original.width < 1 or original.height < 1:
        raise InvalidImageError("corrupt", "the image has no pixels")
    if original.pixels > max_pixels:
        raise ImageTooLargeError(
            f"image is {original.width}x{original.height} = {original.pixels / 1e6:.1f} MP, "
            f"over the limit of {max_pixels / 1e6:.1f} MP"
        )
    try:
        if min_scale is not None and fmt == "JPEG":
            factor = 1
            while factor < 8 and 1.0 / (factor * 2) >= min_scale:
                factor *= 2
            if factor > 1:
                img.draft("RGB", (img.size[0] // factor, img.size[1] // factor))
        orientation = _orientation(img)
        img.load()
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
        pixels = _to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image dimensions are too large: {exc}") from exc
    except OSError as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise InvalidImageError(reason, f"the image data is {reason}: {exc}") from exc
    except (ValueError, SyntaxError, IndexError, EOFError) as exc:
        raise InvalidImageError("corrupt", f"the image data is corrupt: {exc}") from exc
    pixels = np.ascontiguousarray(pixels)
    scale = pixels.shape[1] / original.width
    return DecodedImage(pixels=pixels, original=original, scale=scale, format=fmt)


def load_image(path: Path, *, max_pixels: int = 100_000_000, min_scale: float | None = None) -> DecodedImage:
    """`decode_image` for a path, turning I/O problems into the same typed error."""
    try:
        data = path.read_bytes()
    except IsADirectoryError as exc:
        raise InvalidImageError("not_an_image", f"{path} is a directory") from exc
    return decode_image(data, max_pixels=max_pixels, min_scale=min_scale)
