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

    def _mac(self, key: str, expires: int, holder: str = "") -> str:
        text = f"{key}\n{expires}" + (f"\n{holder}" if holder else "")
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def holder_tag(self, guest_id: str) -> str:
        """A link's holder as it appears in the URL: keyed, so the link names no guest id and cannot be
        tied to one without the secret."""
        return hmac.new(self.secret, f"holder\n{guest_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def url(self, key: str, *, holder: str = "", now: float | None = None) -> str:
        """A signed, expiring link; `holder` (a `holder_tag`) binds it to one guest's grant."""
        expires = int((now or time.time()) + self.ttl_s)
        tail = f"&h={holder}" if holder else ""
        return f"/files/{quote(key)}?exp={expires}&sig={self._mac(key, expires, holder)}{tail}"

    def verify(self, key: str, expires: str, signature: str, *, holder: str = "",
               now: float | None = None) -> None:
        """Raise SignatureError unless the signature matches (constant time) and has not expired."""
        try:
            exp = int(expires)
        except ValueError:
            raise SignatureError("invalid or expired link") from None
        expected = self._mac(key, exp, holder)
        # Bytes, not str: compare_digest refuses a str with non-ASCII characters (a TypeError, not a 403).
        if not hmac.compare_digest(expected.encode(), signature.encode()) or exp < (now or time.time()):
            raise SignatureError("invalid or expired link")
