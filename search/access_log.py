"""Uvicorn's access log without secrets. A guest link token in a path (`/e/{token}`,
`/api/e/{token}/...`) lets anyone who reads it search that event, and a signed URL's query string
(`exp`, `sig`) is a download credential until it expires: both are masked before a line is written."""

from __future__ import annotations

import logging
import re

# Not anchored: behind a root_path the guest routes sit under a prefix (/photos/e/{token}).
_GUEST_PATH = re.compile(r"(/(?:api/)?e/)[^/?]+")
# Any segment that could be a link token (they are 32 URL-safe characters), wherever it stands: a
# client may send /e//TOKEN or /e/./TOKEN, which the guest route rule alone would not cover.
_TOKEN_LIKE = re.compile(r"(?<=/)[A-Za-z0-9_%-]{20,}(?=/|$)")
MASK = "***"


def redact_path(path: str) -> str:
    path, sep, _ = path.partition("?")
    path = _TOKEN_LIKE.sub(MASK, _GUEST_PATH.sub(r"\g<1>" + MASK, path))
    return path + (f"?{MASK}" if sep else "")


class RedactSecrets(logging.Filter):
    """For uvicorn.access records: args are (client, method, path with query, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def install() -> None:
    """Idempotent; called at app start-up, after the server has configured its loggers."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())
