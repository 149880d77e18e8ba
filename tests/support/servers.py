"""The one server harness of the tests and benchmarks.

- `LiveServer`: the app in a uvicorn thread of this process (fast to start, shares the test's engine and
  service objects, so a test can look inside them).
- `ServerProcess`: the shipped `picsort serve` in its own process (its memory measured alone, killable
  with a real `kill -9`), optionally behind a launcher that installs a crash point (`support.crash`).

Both listen on loopback and count as started only once `/readyz` answers 200, within a bounded time: a
server that cannot start fails the test with its log instead of hanging it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from typing_extensions import Self

from support import REPO

if TYPE_CHECKING:
    from fastapi import FastAPI

    from picsort_local.settings import Settings

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
ADMIN_KEY = "test-admin-key-0123456789abcdef"  # the host credential of the test servers
READY_TIMEOUT_S = 180.0  # a cold start loads the face models: ~10-30 s on 2 busy cores
STOP_TIMEOUT_S = 120.0  # a graceful stop waits for the running ingest job
_POLL_S = 0.1


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time (the message carries its log tail)."""


def free_port() -> int:
    """A loopback port free right now (another process may take it before it is bound again)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def create_app(settings: Settings, service: Any = None) -> FastAPI:
    """The app factory (imported here so that importing the harness does not load the app)."""
    from search.http.app import create_app as factory

    return factory(settings, service=service)


def _entry_point() -> str:
    """`module:function` of the `picsort` console script, as pyproject.toml declares it."""
    import tomllib  # Python 3.11+, like the tests

    with (REPO / "pyproject.toml").open("rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    return str(scripts["picsort"])


def picsort_argv(*args: str) -> list[str]:
    """Command line running the shipped `picsort` CLI from this checkout with this interpreter, wherever
    its module lives (no installed console script needed)."""
    module, _, function = _entry_point().partition(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", code, *args]


def picsort_main() -> Callable[[Sequence[str] | None], int]:
    """The `picsort` CLI's main function (for launchers that prepare the process, then run the CLI)."""
    import importlib

    module, _, function = _entry_point().partition(":")
    main: Callable[[Sequence[str] | None], int] = getattr(importlib.import_module(module), function)
    return main


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a child process: ours plus `extra`, with this checkout and tests/ first on its
    path (so it runs this code, and `python -m support.crash` resolves)."""
    env = {**os.environ, **(extra or {})}
    paths = [str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def wait_ready(url: str, timeout_s: float, alive: Callable[[], bool]) -> float:
    """Poll `url`/readyz until it answers 200; returns the seconds waited. Raises ServerStartError when
    `alive()` turns false or after `timeout_s`."""
    started = time.perf_counter()
    with httpx.Client(timeout=5) as client:
        while True:
            if not alive():
                raise ServerStartError("server stopped while starting")
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass  # not listening yet
            if time.perf_counter() - started > timeout_s:
                raise ServerStartError(f"server not ready after {timeout_s:.0f} s")
            time.sleep(_POLL_S)


def wait_job(host: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, object]:
    """The ingest job's final state ('done' or 'error'), polled through the host API: jobs run in the
    server's background, and the API has no way to wait on one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = host.get(f"/api/host/jobs/{job_id}").json()
        if job["status"] in ("done", "error"):
            return dict(job)
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not finished after {timeout:.0f} s")


class LiveServer:
    """`app` served by uvicorn in a daemon thread on a loopback socket bound before the thread starts
    (no port race). Use as a context manager; the app's lifespan runs on enter and exit."""

    def __init__(self, app: FastAPI, *, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        # IPPROTO_TCP spelled out: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose protocol
        # says TCP, and with Nagle on every small answer waits ~40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((LOOPBACK, 0))
        self.port = int(self._socket.getsockname()[1])
        self.ready_timeout_s = ready_timeout_s
        self.app = app  # a test reaches the service it serves through app.state.service
        config = uvicorn.Config(app, host=LOOPBACK, port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]},
                                       daemon=True, name=f"live-server-{self.port}")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        try:
            wait_ready(self.url, self.ready_timeout_s, self.thread.is_alive)
        except ServerStartError:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        if self.thread.is_alive():
            logger.warning("live server on port %d did not stop within 30 s", self.port)
        self._socket.close()


class ServerProcess:
    """`picsort serve` (or `launcher` + `serve ...`) in its own process on a free loopback port, its
    output in `log_path`. `start()` (or `with`) returns once it is ready; `stop()` is the graceful
    SIGTERM, `kill()` a real `kill -9`."""

    def __init__(self, data_dir: Path, log_path: Path, *, admin_key: str,
                 env: Mapping[str, str] | None = None, launcher: Sequence[str] | None = None,
                 ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.admin_key = admin_key
        self.port = free_port()
        self.ready_timeout_s = ready_timeout_s
        self.argv = [*(launcher if launcher is not None else picsort_argv()), "serve", "--host", LOOPBACK,
                     "--port", str(self.port), "--data-dir", str(data_dir)]
        self.env = child_env({**(env or {}), "PICSORT_ADMIN_KEY": admin_key})
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0  # from spawn to ready

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self._proc().pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def start(self) -> Self:
        if self.proc is not None:
            raise RuntimeError("a ServerProcess starts once")
        with self.log_path.open("ab") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            self.start_seconds = wait_ready(self.url, self.ready_timeout_s, lambda: self.running)
        except ServerStartError as exc:
            self.kill()
            raise ServerStartError(f"{exc} (exit status {self.returncode}):\n{self.log_tail()}") from None
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.running:
            self.stop()

    def host(self) -> httpx.Client:
        """A client holding the host credential (X-Admin-Key)."""
        return httpx.Client(base_url=self.url, headers={"X-Admin-Key": self.admin_key}, timeout=120)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait(self, timeout: float) -> int:
        """The exit status once the process ends (raises subprocess.TimeoutExpired after `timeout`)."""
        return self._proc().wait(timeout)

    def kill(self) -> int:
        """`kill -9` (by this process's own pid), then its exit status."""
        if self.running:
            os.kill(self.pid, signal.SIGKILL)
        return self.wait(30)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Graceful stop (SIGTERM: the service finishes its ingest job first), SIGKILL after `timeout`.
        uvicorn re-raises the signal once shut down, so a clean stop is -SIGTERM (0 with older uvicorn)."""
        if self.running:
            self._proc().send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("server %d ignored SIGTERM for %.0f s: killing it", self.pid, timeout)
            return self.kill()

    def _proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("server not started")
        return self.proc
