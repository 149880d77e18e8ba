"""The access log of a real server never carries a guest link token or a signed URL's signature."""

from __future__ import annotations

import logging

import httpx
import pytest
from support.servers import LiveServer

from picsort_local.settings import Settings
from search.access_log import MASK, RedactSecrets, redact_path


@pytest.mark.parametrize(("path", "expected"), [
    ("/e/tok3n-Secret", f"/e/{MASK}"),
    ("/api/e/tok3n-Secret/search", f"/api/e/{MASK}/search"),
    ("/api/e/tok3n/photos/p1/original", f"/api/e/{MASK}/photos/p1/original"),
    ("/files/events/ev/thumb/p.jpg?exp=123&sig=abc", f"/files/events/ev/thumb/p.jpg?{MASK}"),
    ("/api/host/events/ev1/people", "/api/host/events/ev1/people"),
    ("/e//guest-link-token-0123456789ab", f"/e//{MASK}"),
    ("/e/./guest-link-token-0123456789ab", f"/e/{MASK}/{MASK}"),
    ("/api/e/%2e/guest-link-token-0123456789ab/search", f"/api/e/{MASK}/{MASK}/search"),
    ("/api/host/events/0123456789abcdef/photos/fedcba9876543210",
     "/api/host/events/0123456789abcdef/photos/fedcba9876543210"),
    ("/healthz", "/healthz"),
])
def test_redact_path(path: str, expected: str) -> None:
    assert redact_path(path) == expected


def test_filter_rewrites_uvicorn_access_records() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "POST", "/api/e/SECRET/search", "1.1", 200), None)
    assert RedactSecrets().filter(record)
    assert "SECRET" not in record.getMessage() and f"/api/e/{MASK}/search" in record.getMessage()


def test_live_server_log_has_no_token(live: tuple[LiveServer, Settings], caplog: pytest.LogCaptureFixture) -> None:
    token = "guest-link-token-that-must-not-be-logged"
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        assert httpx.get(f"{live[0].url}/e/{token}").status_code == 404
        assert httpx.get(f"{live[0].url}/files/x.jpg?exp=1&sig=sig-that-must-not-be-logged").status_code == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any(f"/e/{MASK}" in line for line in lines), lines
    assert not any("must-not-be-logged" in line for line in lines), lines


def test_redact_under_a_root_path() -> None:
    assert redact_path("/photos/api/e/SECRET/search") == f"/photos/api/e/{MASK}/search"


def test_signature_with_non_ascii_is_refused_not_a_crash() -> None:
    from picsort_local.errors import SignatureError
    from search.signing import UrlSigner

    signer = UrlSigner(b"k" * 32, ttl_s=60)
    with pytest.raises(SignatureError):
        signer.verify("events/e/thumb/p.jpg", "9999999999", "é" * 64)


def test_live_server_log_masks_tokens_behind_odd_segments(live: tuple[LiveServer, Settings],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Paths sent as they are (no client-side normalisation): a raw request line on a socket."""
    import socket

    token = "guest-link-token-that-must-not-be-logged-either"
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        for path in (f"/e//{token}", f"/e/./{token}", f"/api/e/./{token}/search"):
            with socket.create_connection(("127.0.0.1", live[0].port), timeout=30) as conn:
                conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                reply = b""
                while chunk := conn.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 4"), reply[:80]
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len([line for line in lines if MASK in line]) >= 3, lines
    assert not any("must-not-be-logged" in line for line in lines), lines
