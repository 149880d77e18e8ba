"""Old import path of `support.images`, kept so existing tests import unchanged; new code imports
`support.images`."""

from support.images import encode, gradient, jpeg_bytes, png_declaring, with_orientation

__all__ = ["encode", "gradient", "jpeg_bytes", "png_declaring", "with_orientation"]
