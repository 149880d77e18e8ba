"""A real service on loopback: uvicorn in a thread, real models, a gallery built from LFW photos."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from picsort_local.settings import Settings

ADMIN_KEY = "test-admin-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 120
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, engine) -> Iterator[tuple[LiveServer, Settings]]:  # type: ignore[no-untyped-def]
    from search.app import create_app
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


def wait_job(host: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, object]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = host.get(f"/api/host/jobs/{job_id}").json()
        if job["status"] in ("done", "error"):
            return dict(job)
        time.sleep(0.2)
    raise TimeoutError(job_id)


def scan_for(root: Path, needle: bytes) -> list[Path]:
    """Files under root containing needle (used to prove a selfie was not stored)."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(path)
    return hits
