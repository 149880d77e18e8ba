"""Domain errors. HTTP and CLI layers map these to status codes and messages in one place each."""

from __future__ import annotations


class PicsortError(Exception):
    """Base class: `code` is a stable machine-readable name, the message is for humans."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImageError(PicsortError):
    """The bytes are not an image we can use. `reason` says why (stable values listed below)."""

    code = "invalid_image"
    REASONS = ("empty", "not_an_image", "truncated", "corrupt", "too_large", "too_small", "unsupported")

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown image error reason {reason!r}")
        super().__init__(message)
        self.reason = reason


class ImageTooLargeError(InvalidImageError):
    code = "image_too_large"

    def __init__(self, message: str) -> None:
        super().__init__("too_large", message)


class ModelPackError(PicsortError):
    code = "model_pack"


class ModelPackMissingError(ModelPackError):
    code = "model_pack_missing"


class ModelIntegrityError(ModelPackError):
    code = "model_integrity"


class DeviceUnavailableError(PicsortError):
    code = "device_unavailable"


class NotFoundError(PicsortError):
    code = "not_found"


class AlreadyExistsError(PicsortError):
    code = "already_exists"


class InvalidRequestError(PicsortError):
    code = "invalid_request"
