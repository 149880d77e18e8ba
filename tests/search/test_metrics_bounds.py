"""/metrics cannot be grown by clients: labels come from a fixed set, whatever the request says."""

from __future__ import annotations

import secrets

import httpx
from support.servers import LiveServer

from picsort_local.settings import Settings


def test_client_chosen_methods_and_paths_do_not_become_labels(live: tuple[LiveServer, Settings]) -> None:
    methods = [f"X{secrets.token_hex(300).upper()}" for _ in range(40)]
    with httpx.Client(base_url=live[0].url, timeout=30) as client:
        before = len(client.get("/metrics").text)
        for i, method in enumerate(methods):
            r = client.request(method, f"/no-such-path-{secrets.token_hex(8)}-{i}")
            assert r.status_code in (404, 405)
            assert r.headers["x-content-type-options"] == "nosniff"
        page = client.get("/metrics").text
    assert not any(m in page for m in methods)
    assert "no-such-path" not in page
    assert 'method="other"' in page
    assert len(page) < before + 2_000, (before, len(page))  # a few new fixed-label lines at most
