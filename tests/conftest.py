"""Shared fixtures. Data in ../shared is optional locally (tests skip with a reason) but present in CI,
where a missing folder is a failure, not a skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO

from picsort_local.settings import Settings


@pytest.fixture(scope="session")
def engine_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def engine(engine_settings: Settings):  # type: ignore[no-untyped-def]
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
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "scrfd", "scrfd==0.3.0", "-d", str(tmp)]
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
