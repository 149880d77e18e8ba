"""HMAC-signed, expiring download URLs. The secret lives in the data dir (0600), created once."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from picsort_local.errors import SignatureError


def load_or_create_secret(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    os.replace(tmp, path)
    return path.read_bytes()


class UrlSigner:
    def __init__(self, secret: bytes, ttl_s: int = 900) -> None:
        self.secret = secret
        self.ttl_s = ttl_s

    def _mac(self, key: str, expires: int) -> str:
        return hmac.new(self.secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, key: str, *, now: float | None = None) -> str:
        expires = int((now or time.time()) + self.ttl_s)
        return f"/files/{quote(key)}?exp={expires}&sig={self._mac(key, expires)}"

    def verify(self, key: str, expires: str, signature: str, *, now: float | None = None) -> None:
        """Raise SignatureError unless the signature matches (constant time) and has not expired."""
        try:
            exp = int(expires)
        except ValueError:
            raise SignatureError("invalid or expired link") from None
        expected = self._mac(key, exp)
        # Bytes, not str: compare_digest refuses a str with non-ASCII characters (a TypeError, not a 403).
        if not hmac.compare_digest(expected.encode(), signature.encode()) or exp < (now or time.time()):
            raise SignatureError("invalid or expired link")
