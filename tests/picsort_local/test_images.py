from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support.images import encode, gradient, jpeg_bytes, png_declaring, with_orientation

from picsort_local.errors import ImageTooLargeError, InvalidImageError
from picsort_local.images import decode_image, read_size


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return gradient(320, 240)


def test_plain_jpeg(photo: np.ndarray) -> None:
    img = decode_image(jpeg_bytes(photo))
    assert img.pixels.shape == (240, 320, 3) and img.pixels.dtype == np.uint8
    assert (img.original.width, img.original.height, img.scale, img.format) == (320, 240, 1.0, "JPEG")


@pytest.mark.parametrize("orientation,shape", [(1, (240, 320)), (3, (240, 320)), (6, (320, 240)), (8, (320, 240))])
def test_exif_orientation_is_honoured(photo: np.ndarray, orientation: int, shape: tuple[int, int]) -> None:
    img = decode_image(with_orientation(photo, orientation))
    assert img.pixels.shape[:2] == shape
    assert (img.original.height, img.original.width) == shape
    assert read_size(with_orientation(photo, orientation)) == img.original
    if orientation == 6:  # rotated 90 degrees clockwise: the old left column is now the top row
        assert abs(int(img.pixels[0, :, 0].astype(int).mean()) - int(photo[:, 0, 0].astype(int).mean())) < 12


def test_invalid_exif_orientation_is_ignored(photo: np.ndarray) -> None:
    assert decode_image(with_orientation(photo, 9)).pixels.shape == (240, 320, 3)


def test_reduced_jpeg_decoding(photo: np.ndarray) -> None:
    big = np.kron(photo, np.ones((4, 4, 1), np.uint8))  # 1280x960
    img = decode_image(jpeg_bytes(big), min_scale=0.3)
    assert img.pixels.shape == (480, 640, 3) and img.scale == 0.5
    assert decode_image(jpeg_bytes(big), min_scale=0.1).scale == 0.125
    assert decode_image(jpeg_bytes(big)).scale == 1.0


def test_grayscale(photo: np.ndarray) -> None:
    img = decode_image(encode(Image.fromarray(photo).convert("L"), "PNG"))
    assert img.pixels.shape == (240, 320, 3)
    assert (img.pixels[..., 0] == img.pixels[..., 2]).all()


def test_png_alpha_becomes_white(photo: np.ndarray) -> None:
    rgba = np.dstack([photo, np.zeros(photo.shape[:2], np.uint8)])
    img = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (img.pixels == 255).all()


def test_cmyk_jpeg(photo: np.ndarray) -> None:
    img = decode_image(encode(Image.fromarray(photo).convert("CMYK"), "JPEG"))
    assert img.pixels.shape == (240, 320, 3)
    assert np.abs(img.pixels.astype(int) - photo.astype(int)).mean() < 20


def test_16bit_png(photo: np.ndarray) -> None:
    grey16 = (photo[..., 1].astype(np.uint16) * 257).astype(np.uint16)
    img = decode_image(encode(Image.fromarray(grey16), "PNG"))
    assert img.pixels.shape == (240, 320, 3)
    assert np.abs(img.pixels[..., 0].astype(int) - photo[..., 1].astype(int)).max() <= 1


def test_webp_and_gif(photo: np.ndarray) -> None:
    assert decode_image(encode(Image.fromarray(photo), "WEBP")).format == "WEBP"
    frames = [Image.fromarray(photo), Image.fromarray(255 - photo)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(gif).pixels.shape == (240, 320, 3)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"hello, I am a text file named photo.jpg\n", "not_an_image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "corrupt"),
    ],
)
def test_broken_files(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidImageError) as info:
        decode_image(data)
    assert info.value.reason == reason


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_jpeg(photo: np.ndarray, fraction: float) -> None:
    data = jpeg_bytes(photo)
    with pytest.raises(InvalidImageError) as info:
        decode_image(data[: int(len(data) * fraction)])
    assert info.value.reason in ("truncated", "corrupt")


def test_pixel_limit_checked_before_decoding() -> None:
    bomb = png_declaring(200_000, 200_000)  # 40 gigapixels in 100 bytes
    assert len(bomb) < 200
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(bomb)
    assert info.value.reason == "too_large"
    with pytest.raises(ImageTooLargeError, match="over the limit of 0.1 MP"):
        decode_image(png_declaring(1000, 1000), max_pixels=100_000)


def test_extreme_aspect_and_tiny(photo: np.ndarray) -> None:
    assert decode_image(encode(Image.new("RGB", (1, 1)), "PNG")).pixels.shape == (1, 1, 3)
    assert decode_image(encode(Image.new("RGB", (30000, 10)), "PNG")).pixels.shape == (10, 30000, 3)
