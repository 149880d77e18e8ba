"""Every domain error of the project. The HTTP layer maps them to status codes in one place
(search/http/errors.py; the Rekognition wire names in search/rekognition/wire.py), the CLI to messages."""

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


class DatabaseUnavailableError(PicsortError):
    """The metadata database could not answer in time (locked by another process, disk errors)."""

    code = "database_unavailable"


class NotFoundError(PicsortError):
    code = "not_found"


class AlreadyExistsError(PicsortError):
    code = "already_exists"


class InvalidRequestError(PicsortError):
    code = "invalid_request"


# ---- guest search --------------------------------------------------------------------------------
class NoFaceError(PicsortError):
    code = "no_face"


class TooManyFacesError(PicsortError):
    """Two or more faces are equally plausible as the guest's (similar size near the centre)."""

    code = "too_many_faces"

    def __init__(self, count: int, boxes: tuple[tuple[float, float, float, float], ...] = ()) -> None:
        super().__init__(f"{count} faces of similar size near the centre: please retake the selfie "
                         "with only your face in the middle of the frame")
        self.count = count
        self.boxes = boxes  # (left, top, width, height) as shares of the photo, the competing faces


# ---- HTTP: credentials, sizes, signed links ------------------------------------------------------
class AuthError(PicsortError):
    code = "unauthorized"


class PayloadTooLargeError(PicsortError):
    code = "payload_too_large"


class SignatureError(PicsortError):
    code = "bad_signature"


# ---- Rekognition-compatible API ------------------------------------------------------------------
class AwsError(PicsortError):
    """An error with its Rekognition wire name (e.g. "InvalidSignatureException")."""

    code = "aws_error"

    def __init__(self, aws_type: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.aws_type = aws_type
        self.status = status



class InvalidPaginationTokenError(InvalidRequestError):
    """A NextToken the provider did not hand out (InvalidPaginationTokenException)."""

    code = "invalid_pagination_token"


class InvalidS3ObjectError(InvalidRequestError):
    """Image.S3Object names no readable object (InvalidS3ObjectException)."""

    code = "invalid_s3_object"


class CollectionNotFoundError(NotFoundError):
    """A collection id that does not exist (ResourceNotFoundException)."""

    def __init__(self, collection_id: str) -> None:
        super().__init__(f"The collection id: {collection_id} does not exist")
        self.collection_id = collection_id


class InternalFault(PicsortError):
    """A bug (any other exception) on the Rekognition route, wrapped so it still answers in the
    protocol (InternalServerError); the error handler logs its cause with the traceback."""

    def __init__(self) -> None:
        super().__init__("internal error")


class ProviderRequestError(PicsortError):
    """Any other AWS error (throttling, access denied, signature...): `aws_code` names it."""

    code = "provider_error"

    def __init__(self, aws_code: str, message: str) -> None:
        super().__init__(f"{aws_code}: {message}")
        self.aws_code = aws_code
