"""The access log of a real server never carries a guest link token or a signed URL's signature."""

from __future__ import annotations

import logging

import httpx
import pytest
from conftest import LiveServer  # type: ignore[import-not-found]

from picsort_local.settings import Settings
from search.access_log import MASK, RedactSecrets, redact_path


@pytest.mark.parametrize(("path", "expected"), [
    ("/e/tok3n-Secret", f"/e/{MASK}"),
    ("/api/e/tok3n-Secret/search", f"/api/e/{MASK}/search"),
    ("/api/e/tok3n/photos/p1/original", f"/api/e/{MASK}/photos/p1/original"),
    ("/files/events/ev/thumb/p.jpg?exp=123&sig=abc", f"/files/events/ev/thumb/p.jpg?{MASK}"),
    ("/api/host/events/ev1/people", "/api/host/events/ev1/people"),
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
    from search.signing import SignatureError, UrlSigner

    signer = UrlSigner(b"k" * 32, ttl_s=60)
    with pytest.raises(SignatureError):
        signer.verify("events/e/thumb/p.jpg", "9999999999", "é" * 64)
