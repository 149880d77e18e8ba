"""A `picsort` process that kills itself at a chosen index write, for the crash tests.

    python -m support.crash MODE:N ARGS...     (ARGS: any picsort command, `serve ...` or `index ...`)

installs the crash point, then runs the picsort CLI with ARGS. It wraps the local blob store's `put` from
the outside, so no test hook lives in product code, and the kill lands at the same write on every run
(no test races a running process with a timer):

- `torn-snapshot:N`: half of the Nth snapshot's bytes reach the store's temp file, then SIGKILL;
- `before-pointer:N`: the Nth CURRENT pointer's temp file is complete, SIGKILL before its rename;
- `after-pointer:N`: the Nth CURRENT pointer is published, SIGKILL at the next blob write (the run is
  midway: the next photos are being stored or analysed).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

logger = logging.getLogger(__name__)

MODES = ("torn-snapshot", "before-pointer", "after-pointer")


@dataclass(frozen=True)
class CrashPoint:
    mode: str
    nth: int

    @classmethod
    def parse(cls, text: str) -> CrashPoint:
        mode, _, nth = text.partition(":")
        if mode not in MODES or not nth.isdigit() or int(nth) < 1:
            raise ValueError(f"bad crash point {text!r}: expected {' or '.join(MODES)}, then ':N' (N >= 1)")
        return cls(mode, int(nth))

    def __str__(self) -> str:
        return f"{self.mode}:{self.nth}"


def crash_argv(point: str, *args: str) -> list[str]:
    """Command line of a picsort process with `point` installed (it needs `support.servers.child_env`)."""
    CrashPoint.parse(point)
    return [sys.executable, "-m", "support.crash", point, *args]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _index_write(key: str) -> str | None:
    """Which index write a blob key is: 'snapshot', 'pointer' or None."""
    if "/index/" not in key:
        return None
    if key.endswith(".faiss"):
        return "snapshot"
    return "pointer" if key.endswith("/index/CURRENT") else None


class _Counter:
    """Thread-safe count of the index writes seen, per kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}

    def bump(self, kind: str) -> int:
        with self._lock:
            self._seen[kind] = self._seen.get(kind, 0) + 1
            return self._seen[kind]


def install(point: CrashPoint) -> None:
    """Wrap LocalBlobStore.put so this process dies at `point`."""
    from storage.blobs import LocalBlobStore

    real_put = LocalBlobStore.put
    target = "snapshot" if point.mode == "torn-snapshot" else "pointer"
    counter = _Counter()
    published = threading.Event()  # after-pointer: the Nth pointer is live, the next write dies

    def put(self: LocalBlobStore, key: str, data: bytes, content_type: str | None = None) -> None:
        if published.is_set():
            logger.warning("crash test: SIGKILL at the write of %s, after pointer write %d", key, point.nth)
            _die()
        hit = _index_write(key) == target and counter.bump(target) == point.nth
        if hit and point.mode != "after-pointer":
            part = data[: len(data) // 2] if point.mode == "torn-snapshot" else data
            logger.warning("crash test: SIGKILL inside write %d of %s", point.nth, key)
            self._atomic_write(self._path(key), _write_then_die(part))
        real_put(self, key, data, content_type)
        if hit:
            published.set()

    LocalBlobStore.put = put  # type: ignore[method-assign]


def _write_then_die(part: bytes) -> Callable[[BinaryIO], None]:
    def write(handle: BinaryIO) -> None:
        handle.write(part)
        handle.flush()
        os.fsync(handle.fileno())
        _die()

    return write


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("usage: python -m support.crash MODE:N PICSORT-ARGS...")
    try:
        point = CrashPoint.parse(argv[0])
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    install(point)
    from support.servers import picsort_main

    return picsort_main()(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
