"""A real service on loopback: uvicorn in a thread, real models, a gallery built from LFW photos.

Tests that start a server are marked `slow` here, once, by the fixture that starts it (`-m "not slow"`
is a quick local loop; scripts/test.sh and CI run everything). ADMIN_KEY, LiveServer, free_port and
wait_job live in support.servers and are re-exported here for the tests that import them from conftest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from support.servers import ADMIN_KEY as ADMIN_KEY
from support.servers import LiveServer as LiveServer
from support.servers import create_app
from support.servers import free_port as free_port
from support.servers import wait_job as wait_job

from picsort_local.settings import Settings

HERE = Path(__file__).resolve().parent
# Fixtures of tests/search that start a server (support.servers): `live` below, and the modules' own.
# A test that depends on one, directly or through another fixture, is a live-server test.
SERVER_FIXTURES = frozenset({
    "live",  # this file
    "world",  # test_auth_matrix, test_fuzz
    "server",  # test_bad_inputs, test_fuzz
    "rek_live",  # test_rekognition_api
    "big_event",  # test_event_scale_http
    "kiosk",  # test_kiosk_browser
    "stack",  # test_residue
    "servers",  # test_crash_restart (picsort serve processes)
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every live-server test of this folder `slow` (the hook sees the whole session's items)."""
    for item in items:
        if item.path.is_relative_to(HERE) and SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, engine) -> Iterator[tuple[LiveServer, Settings]]:  # type: ignore[no-untyped-def]
    from search.service import PicsortService

    data_dir = tmp_path_factory.mktemp("service-data")
    settings = Settings(data_dir=data_dir, admin_key=SecretStr(ADMIN_KEY), ingest_checkpoint_photos=8)
    service = PicsortService(settings, engine=engine)
    with LiveServer(create_app(settings, service=service)) as server:
        yield server, settings


@pytest.fixture()
def host(live: tuple[LiveServer, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[0].url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=120) as client:
        yield client


@pytest.fixture()
def anon(live: tuple[LiveServer, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[0].url, timeout=120) as client:
        yield client


def scan_for(root: Path, needle: bytes) -> list[Path]:
    """Files under root containing needle (used to prove a selfie was not stored)."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(path)
    return hits
