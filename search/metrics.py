"""The process's counters and their Prometheus text rendering (`GET /metrics`).

One `Metrics` per app (`app.state.metrics`). Request counters are labelled from a fixed set only: a
known HTTP method (anything else counts as "other") and the matched route template (never the raw
path, "unmatched" when no route matched), so no client can grow the counters or the page. Named
counters (`count`) are for the service's own events (searches, photos ingested, ...). Every method
takes a lock: requests are counted on the event loop, service events in worker threads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _check_name(name: str) -> str:
    # Names are spelled by the code, never by a client; this keeps the page well formed.
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid metric name {name!r}")
    return name


class Metrics:
    """Thread-safe counters: requests by (method, route, status), their seconds, and named counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._seconds: dict[tuple[str, str], float] = {}
        self._counters: dict[str, float] = {}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request; `route` is the route template (or "unmatched")."""
        label = method if method in METRIC_METHODS else "other"
        with self._lock:
            self._requests[(label, route, status)] = self._requests.get((label, route, status), 0) + 1
            self._seconds[(label, route)] = self._seconds.get((label, route), 0.0) + seconds

    def count(self, name: str, n: float = 1) -> None:
        """Add `n` to the counter `name` (`n=0` declares it, so it is rendered from the start)."""
        _check_name(name)
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    def render(self, gauges: Mapping[str, float] | None = None) -> str:
        """The Prometheus text page; `gauges` are current values (e.g. photos waiting for ingest)."""
        with self._lock:
            requests = sorted(self._requests.items())
            seconds = sorted(self._seconds.items())
            totals = dict(self._counters)
        lines = ["# TYPE picsort_requests_total counter"]
        lines += [f'picsort_requests_total{{method="{m}",path="{p}",status="{s}"}} {n}'
                  for (m, p, s), n in requests]
        lines.append("# TYPE picsort_request_seconds_sum counter")
        lines += [f'picsort_request_seconds_sum{{method="{m}",path="{p}"}} {t:.6f}' for (m, p), t in seconds]
        for name, value in sorted(totals.items()):
            lines += [f"# TYPE picsort_{name}_total counter", f"picsort_{name}_total {value}"]
        for name, value in sorted((gauges or {}).items()):
            lines += [f"# TYPE picsort_{_check_name(name)} gauge", f"picsort_{name} {value}"]
        return "\n".join(lines) + "\n"


__all__ = ["METRIC_METHODS", "Metrics"]
