"""Load: C concurrent guests doing selfie searches for D seconds while an ingest of N photos runs through
the host upload API (phase A), then S searches in a row with the server's RSS sampled (phase B: memory
must stay flat; a per-call onnxruntime session or cache leak would show as a slope).

The server is a separate process (`picsort serve` on 127.0.0.1), so its RSS is measured alone and the
clients do not share its GIL. The gallery, the selfies and the ingested photos are real LFW photos
(optionally mixed with WIDER crowd photos); selfies are held-out photos of people in the gallery.

    python benchmarks/bench_load.py --dataset ../shared/datasets/lfw \
        [--clients 32 --seconds 60 --photos 2000 --searches 5000]

Every request is recorded; errors are non-2xx answers and exceptions (429/503 counted as shed load as
well). Results: benchmarks/results/load.json, load_rss.png (RSS against searches) and load_latency.png.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this needs the checkout on the path (before tests/, whose folders mirror the packages'
# names) and tests/ for the server harness (tests/support/servers.py, shared with the tests).
for _path in (REPO / "tests", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from support.servers import ServerProcess

SHED_STATUSES = (429, 503)
REQUEST_TIMEOUT_S = 120.0
# Phone-like selfie sizes (portrait), scaled down: several input sizes reach the decoder and detector,
# as they would from real guests, instead of one cached shape.
SELFIE_SIZES = ((480, 600), (600, 800), (720, 960), (768, 1024))
MB = 1024 * 1024
# What a client can meet: transport errors and timeouts, and an answer that is not the JSON expected.
CLIENT_ERRORS = (httpx.HTTPError, ValueError, KeyError, TypeError, StopIteration)


def default_shared() -> Path:
    return Path(os.environ.get("PICSORT_SHARED_DIR", REPO.parent / "shared"))


@dataclass
class LoadConfig:
    dataset: Path  # LFW root (with images/<Person>/*.jpg)
    clients: int = 32
    seconds: float = 60.0
    photos: int = 2000
    searches: int = 5000
    seq_clients: int = 1  # phase B clients (1 = strictly one search after another)
    gallery_people: int = 40
    gallery_photos_per_person: int = 3
    upload_batch: int = 20
    rss_every: int = 25  # phase B: RSS sample every K searches
    warmup: int = -1  # phase B searches left out of the slope; -1 = a fifth of them, at most 500
    downloads_every: int = 10  # phase A: every Nth search a client also fetches its granted original
    scaling_seconds: float = 0.0  # before phase A: 1 then 2 clients, no ingest (0 = skip)
    wider: Path | None = None
    wider_fraction: float = 0.0
    ingest_timeout: float = 3600.0
    seed: int = 0
    server_env: dict[str, str] = field(default_factory=dict)

    @property
    def warmup_searches(self) -> int:
        return self.warmup if self.warmup >= 0 else min(500, self.searches // 5)


@dataclass
class Sample:
    kind: str  # search | original_url | file | upload | poll
    start: float  # seconds since the run's t0
    latency: float
    status: int  # 0 = no HTTP answer (exception)
    error: str | None = None  # None = success; else http_<status> or the exception's class name
    found: bool | None = None  # search: the guest's own gallery photos were among the face hits


# ---- the server process ---------------------------------------------------------------------------
class LoadServer(ServerProcess):
    """`picsort serve` in its own process on loopback (support.servers), plus what this benchmark measures
    on it: its memory and the trouble in its log."""

    def rss_bytes(self) -> int:
        """Resident memory of the server and any children it started."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for p in procs:
            try:
                total += int(p.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        return total

    def log_problems(self) -> dict[str, Any]:
        """Server-side evidence of trouble that a client might not see (tracebacks, locked database)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        lines = text.splitlines()
        # uvicorn writes "ERROR:", the CLI's logging format " ERROR "; access lines end in '" <status> ...'.
        needles = {"tracebacks": r"Traceback", "database_locked": r"database is locked", "error_lines": r"\bERROR\b",
                   "http_5xx_lines": r'" 5\d\d '}
        counts: dict[str, Any] = {name: sum(1 for line in lines if re.search(needle, line))
                                  for name, needle in needles.items()}
        first = next((i for i, line in enumerate(lines) if "Traceback" in line), None)
        counts["first_traceback"] = "\n".join(lines[first:first + 30]) if first is not None else None
        return counts


class RssSampler(threading.Thread):
    """Server RSS every `interval` seconds for the whole run, tagged with the phase running."""

    def __init__(self, server: LoadServer, t0: float, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.server, self.t0, self.interval = server, t0, interval
        self.phase = "start"
        self.samples: list[tuple[float, str, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter() - self.t0, self.phase, self.server.rss_bytes()))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


# ---- workload -------------------------------------------------------------------------------------
@dataclass
class Workload:
    gallery: list[tuple[str, bytes, str]]  # filename, bytes, person
    selfies: list[tuple[bytes, str]]  # selfie JPEG, person
    ingest: list[tuple[str, bytes]]


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_selfie(path: Path, size: tuple[int, int]) -> bytes:
    """A selfie-like framing of an LFW photo: the central face crop, enlarged to a phone-like size."""
    with Image.open(path) as im:
        return _jpeg(im.convert("RGB").crop((45, 25, 205, 225)).resize(size, Image.Resampling.BICUBIC))


def prepare_workload(cfg: LoadConfig) -> Workload:
    rng = random.Random(cfg.seed)
    root = cfg.dataset / "images" if (cfg.dataset / "images").is_dir() else cfg.dataset
    people = sorted(p for p in root.iterdir() if p.is_dir())
    files = {p.name: sorted(p.glob("*.jpg")) for p in people}
    per = cfg.gallery_photos_per_person
    eligible = [p.name for p in people if len(files[p.name]) >= per + 1]
    if len(eligible) < cfg.gallery_people:
        raise ValueError(f"only {len(eligible)} people in {root} have {per + 1}+ photos")
    chosen = sorted(rng.sample(eligible, cfg.gallery_people))
    gallery: list[tuple[str, bytes, str]] = []
    selfies: list[tuple[bytes, str]] = []
    for person in chosen:
        photos = files[person]
        # Photos 2..per+1 go to the gallery; the first and any beyond (up to 3) are held out as selfies.
        for path in photos[1:per + 1]:
            gallery.append((path.name, path.read_bytes(), person))
        for path in [photos[0], *photos[per + 1:per + 3]]:
            selfies.append((make_selfie(path, SELFIE_SIZES[len(selfies) % len(SELFIE_SIZES)]), person))
    taken = set(chosen)
    pool = [f for name, paths in files.items() if name not in taken for f in paths]
    rng.shuffle(pool)
    ingest = [(p.name, p.read_bytes()) for p in pool[:cfg.photos]]
    if cfg.wider is not None and cfg.wider_fraction > 0:
        wider_images = cfg.wider / "images" if (cfg.wider / "images").is_dir() else cfg.wider
        crowd = sorted(wider_images.rglob("*.jpg"))
        rng.shuffle(crowd)
        every = max(1, round(1 / cfg.wider_fraction))
        for n, i in enumerate(range(0, len(ingest), every)):
            if n < len(crowd):
                ingest[i] = (f"wider_{crowd[n].name}", crowd[n].read_bytes())
    if len(ingest) < cfg.photos:
        raise ValueError(f"only {len(ingest)} photos available for the ingest, {cfg.photos} asked")
    return Workload(gallery, selfies, ingest)


# ---- requests -------------------------------------------------------------------------------------
def _error_of(status: int) -> str | None:
    return None if 200 <= status < 300 else f"http_{status}"


def search_once(client: httpx.Client, token: str, selfie: bytes, guest_id: str, own: set[str], t0: float) -> Sample:
    started = time.perf_counter()
    try:
        r = client.post(f"/api/e/{token}/search", files={"selfie": ("selfie.jpg", selfie, "image/jpeg")},
                        headers={"X-Guest-Id": guest_id})
        latency = time.perf_counter() - started
        found = None
        if r.status_code == 200:
            hits = {h["photo_id"] for h in r.json()["results"] if h["badge"] == "face"}
            found = bool(hits & own)
        return Sample("search", started - t0, latency, r.status_code, _error_of(r.status_code), found)
    except CLIENT_ERRORS as exc:  # every failure is a data point, never a crashed client
        return Sample("search", started - t0, time.perf_counter() - started, 0, type(exc).__name__)


def download_once(client: httpx.Client, token: str, guest_id: str, photo_id: str, t0: float) -> list[Sample]:
    """A granted guest asks for the original's signed URL, then downloads it."""
    out = []
    started = time.perf_counter()
    try:
        r = client.get(f"/api/e/{token}/photos/{photo_id}/original", headers={"X-Guest-Id": guest_id})
        out.append(Sample("original_url", started - t0, time.perf_counter() - started, r.status_code,
                          _error_of(r.status_code)))
        if r.status_code != 200:
            return out
        started = time.perf_counter()
        f = client.get(r.json()["url"])
        out.append(Sample("file", started - t0, time.perf_counter() - started, f.status_code, _error_of(f.status_code)))
    except CLIENT_ERRORS as exc:
        out.append(Sample("original_url" if not out else "file", started - t0, time.perf_counter() - started, 0,
                          type(exc).__name__))
    return out


@dataclass
class Guest:
    guest_id: str
    granted_photo: str


class Site:
    """What the clients need: the server URL, the event, its guest token and who is in which photo."""

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.host = httpx.Client(base_url=url, headers={"X-Admin-Key": admin_key}, timeout=600)
        self.event_id = ""
        self.token = ""
        self.photos_of: dict[str, set[str]] = {}  # person -> gallery photo ids
        self.jobs: list[str] = []  # ingest job ids, in submission order
        self._final_jobs: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.host.close()

    def create_event(self, name: str) -> None:
        r = self.host.post("/api/host/events", json={"name": name})
        r.raise_for_status()
        self.event_id, self.token = r.json()["id"], r.json()["guest_token"]

    def upload(self, files: list[tuple[str, bytes]], t0: float) -> tuple[Sample, list[dict[str, Any]]]:
        started = time.perf_counter()
        try:
            r = self.host.post(f"/api/host/events/{self.event_id}/photos",
                               files=[("files", (name, data, "image/jpeg")) for name, data in files])
            results = list(r.json()["results"]) if r.status_code == 202 else []
            if r.status_code == 202:
                self.jobs.append(str(r.json()["job_id"]))
            return Sample("upload", started - t0, time.perf_counter() - started, r.status_code,
                          _error_of(r.status_code)), results
        except CLIENT_ERRORS as exc:
            return Sample("upload", started - t0, time.perf_counter() - started, 0, type(exc).__name__), []

    def counts(self) -> dict[str, int]:
        r = self.host.get("/api/host/events")
        r.raise_for_status()
        event = next(e for e in r.json() if e["id"] == self.event_id)
        return {k: int(v) for k, v in event.items() if k.startswith("photos_") or k in ("faces", "persons")}

    def progress(self, client: httpx.Client) -> dict[str, int]:
        """Photos analysed so far (indexed or failed, before their checkpoint is committed), from the
        ingest jobs. Jobs run one at a time in submission order, so only the first unfinished one is
        asked; a job may also pick up photos uploaded after it (each photo is counted by one job)."""
        analysed = failed = finished = 0
        for job_id in list(self.jobs):
            final = self._final_jobs.get(job_id)
            if final is None:
                r = client.get(f"/api/host/jobs/{job_id}")
                r.raise_for_status()
                job = r.json()
                if job["status"] not in ("done", "error"):
                    analysed += int(job["done"])
                    break
                final = self._final_jobs[job_id] = dict(job)
            analysed += int(final["done"])
            failed += int(final["failed"])
            finished += 1
        return {"analysed": analysed, "failed": failed, "jobs_finished": finished, "jobs": len(self.jobs)}

    def wait_jobs(self, timeout: float, poll: float = 0.5) -> dict[str, Any]:
        """Until every ingest job has finished, regrouping included (a job regroups the event's persons
        after committing its last photo, so photo counts alone would end the wait too early)."""
        deadline = time.time() + timeout
        while True:
            p = self.progress(self.host)
            if p["jobs_finished"] == p["jobs"]:
                errors = [j for j in self._final_jobs.values() if j["status"] == "error" or j["errors"]]
                return {**p, "counts": self.counts(), "job_errors": errors}
            if time.time() > deadline:
                raise TimeoutError(f"ingest not finished after {timeout} s: {p}")
            time.sleep(poll)

    def build_gallery(self, gallery: list[tuple[str, bytes, str]], batch: int, timeout: float) -> float:
        started = time.perf_counter()
        for i in range(0, len(gallery), batch):
            chunk = gallery[i:i + batch]
            sample, results = self.upload([(n, d) for n, d, _ in chunk], 0.0)
            if sample.error:
                raise RuntimeError(f"gallery upload failed: {sample.error}")
            for (_, _, person), res in zip(chunk, results, strict=True):
                if res.get("photo_id"):
                    self.photos_of.setdefault(person, set()).add(res["photo_id"])
        done = self.wait_jobs(timeout)
        if done["job_errors"] or done["counts"].get("photos_indexed") != len(gallery):
            raise RuntimeError(f"gallery ingest incomplete: {done}")
        return time.perf_counter() - started

    def grant_guests(self, n: int) -> list[Guest]:
        """One random guest id per client (as a browser would have), each granted one gallery photo."""
        photos = sorted(p for ids in self.photos_of.values() for p in ids)
        guests = []
        for i in range(n):
            guest = Guest(secrets.token_urlsafe(18), photos[i % len(photos)])
            r = self.host.post(f"/api/host/events/{self.event_id}/grants",
                               json={"guest_id": guest.guest_id, "photo_id": guest.granted_photo})
            r.raise_for_status()
            guests.append(guest)
        return guests


def screen_selfies(site: Site, work: Workload, guest: Guest) -> dict[str, Any]:
    """One search per selfie, before any load (also the warm-up): a selfie the service's own rules
    refuse (no face, or two faces of similar size) is a correct 422, not a load error, so it is dropped
    from the workload and counted here."""
    kept, dropped = [], []
    with httpx.Client(base_url=site.url, timeout=REQUEST_TIMEOUT_S) as client:
        for selfie, person in work.selfies:
            r = client.post(f"/api/e/{site.token}/search", files={"selfie": ("selfie.jpg", selfie, "image/jpeg")},
                            headers={"X-Guest-Id": guest.guest_id})
            if r.status_code == 200:
                kept.append((selfie, person))
            elif r.status_code == 422:
                dropped.append({"person": person, "answer": r.json()})
            else:
                raise RuntimeError(f"selfie screening got {r.status_code}: {r.text[:300]}")
    if not kept:
        raise RuntimeError("every selfie was refused")
    work.selfies = kept
    return {"kept": len(kept), "dropped": len(dropped), "dropped_answers": dropped}


def client_loop(url: str, site: Site, selfies: list[tuple[bytes, str]], guest: Guest, stop: Callable[[], bool],
                seed: int, downloads_every: int, t0: float, out: list[Sample]) -> None:
    """One guest: searches with random selfies until told to stop; list.append is atomic, so the
    clients share `out`."""
    rng = random.Random(seed)
    n = 0
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        while not stop():
            selfie, person = selfies[rng.randrange(len(selfies))]
            out.append(search_once(client, site.token, selfie, guest.guest_id, site.photos_of.get(person, set()), t0))
            n += 1
            if downloads_every and n % downloads_every == 0:
                out.extend(download_once(client, site.token, guest.guest_id, guest.granted_photo, t0))


def run_clients(site: Site, selfies: list[tuple[bytes, str]], guests: list[Guest], seconds: float, seed: int,
                downloads_every: int, t0: float) -> tuple[list[Sample], float, float]:
    """len(guests) clients for `seconds`; returns samples and the window (start, end) since t0."""
    out: list[Sample] = []
    start = time.perf_counter()
    deadline = start + seconds
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(site.url, site, selfies, g, lambda: time.perf_counter() >= deadline,
                                      seed + i, downloads_every, t0, out))
               for i, g in enumerate(guests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + REQUEST_TIMEOUT_S + 30)
    return out, start - t0, time.perf_counter() - t0


# ---- statistics -----------------------------------------------------------------------------------
def latency_stats(samples: list[Sample]) -> dict[str, Any]:
    ok = np.array([s.latency for s in samples if s.error is None], dtype=np.float64) * 1000
    if ok.size == 0:
        return {"n": 0}
    return {"n": int(ok.size), "p50_ms": float(np.percentile(ok, 50)), "p95_ms": float(np.percentile(ok, 95)),
            "p99_ms": float(np.percentile(ok, 99)), "mean_ms": float(ok.mean()), "max_ms": float(ok.max()),
            "min_ms": float(ok.min())}


def error_summary(samples: list[Sample]) -> dict[str, Any]:
    errors = [s for s in samples if s.error is not None]
    return {"total": len(errors), "by_kind": dict(Counter(s.error for s in errors if s.error)),
            "by_request": dict(Counter(s.kind for s in errors)),
            "shed": sum(1 for s in errors if s.status in SHED_STATUSES),
            "server_5xx": sum(1 for s in errors if s.status >= 500),
            "no_answer": sum(1 for s in errors if s.status == 0)}


def window_summary(samples: list[Sample], start: float, end: float) -> dict[str, Any]:
    searches = [s for s in samples if s.kind == "search"]
    ok = [s for s in searches if s.error is None]
    found = [s.found for s in ok if s.found is not None]
    seconds = end - start
    return {
        "window_s": seconds, "requests": len(samples), "searches": len(searches), "searches_ok": len(ok),
        "throughput_searches_per_s": len(ok) / seconds if seconds > 0 else None,
        "throughput_requests_per_s": sum(1 for s in samples if s.error is None) / seconds if seconds > 0 else None,
        "search_latency": latency_stats(searches),
        "latency_by_request": {k: latency_stats([s for s in samples if s.kind == k])
                               for k in sorted({s.kind for s in samples})},
        "errors": error_summary(samples),
        "own_photo_found_rate": (sum(found) / len(found)) if found else None,
        "load_avg_at_end": os.getloadavg(),  # other work on the machine shows here
    }


def rss_slope(points: list[tuple[int, int]], warmup: int) -> float | None:
    """MB per 1,000 searches by a least-squares line through the samples after warm-up."""
    after = [(n, rss) for n, rss in points if n >= warmup]
    if len(after) < 3 or after[-1][0] == after[0][0]:
        return None
    x = np.array([n for n, _ in after], np.float64)
    y = np.array([rss for _, rss in after], np.float64) / MB
    return float(np.polyfit(x, y, 1)[0] * 1000)


def machine_info() -> dict[str, Any]:
    import onnxruntime

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "memory_total_mb": psutil.virtual_memory().total / MB, "bench_nice": os.nice(0)}


# ---- phases ---------------------------------------------------------------------------------------
def phase_scaling(site: Site, work: Workload, guests: list[Guest], seconds: float, seed: int,
                  t0: float) -> dict[str, Any]:
    """1 client, then 2 clients, without ingest: if the service serialised searches, 2 clients would not
    answer more searches per second than one."""
    out: dict[str, Any] = {}
    for n in (1, 2):
        samples, start, end = run_clients(site, work.selfies, guests[:n], seconds, seed + 1000 * n, 0, t0)
        out[f"clients_{n}"] = window_summary(samples, start, end)
    one, two = (out[f"clients_{n}"]["throughput_searches_per_s"] for n in (1, 2))
    out["throughput_ratio_2_vs_1"] = (two / one) if one and two else None
    return out


def phase_load(cfg: LoadConfig, site: Site, work: Workload, guests: list[Guest], t0: float,
               on_window_end: Callable[[], None] | None = None) -> dict[str, Any]:
    """Concurrent searches while the ingest photos are uploaded (in batches) and analysed; after the
    window, waits for the ingest to finish."""
    uploads: list[Sample] = []
    accepted = 0
    polls: list[tuple[float, dict[str, int]]] = []
    done = threading.Event()

    uploads_done = 0.0

    def uploader() -> None:
        nonlocal accepted, uploads_done
        for i in range(0, len(work.ingest), cfg.upload_batch):
            sample, results = site.upload(work.ingest[i:i + cfg.upload_batch], t0)
            uploads.append(sample)
            accepted += sum(1 for r in results if r.get("status") == "accepted")
        uploads_done = time.perf_counter() - t0

    def poller() -> None:
        # Ingest progress once a second: photos analysed (job progress) and committed (event counts).
        # These are host requests under load too: they count as requests.
        with httpx.Client(base_url=site.url, headers=site.host.headers, timeout=REQUEST_TIMEOUT_S) as c:
            while not done.is_set():
                started = time.perf_counter()
                try:
                    progress = site.progress(c)
                    r = c.get("/api/host/events")
                    uploads.append(Sample("poll", started - t0, time.perf_counter() - started, r.status_code,
                                          _error_of(r.status_code)))
                    if r.status_code == 200:
                        event = next(e for e in r.json() if e["id"] == site.event_id)
                        counts = {k: int(v) for k, v in event.items() if k.startswith("photos_") or k == "faces"}
                        polls.append((time.perf_counter() - t0, {**counts, "analysed": progress["analysed"] - before,
                                      "committed": counts.get("photos_indexed", 0) - committed_before}))
                except CLIENT_ERRORS as exc:
                    uploads.append(Sample("poll", started - t0, time.perf_counter() - started, 0, type(exc).__name__))
                done.wait(1.0)

    before = site.progress(site.host)["analysed"]
    committed_before = site.counts().get("photos_indexed", 0)
    up = threading.Thread(target=uploader, daemon=True)
    poll = threading.Thread(target=poller, daemon=True)
    poll.start()
    up.start()
    samples, start, end = run_clients(site, work.selfies, guests, cfg.seconds, cfg.seed, cfg.downloads_every, t0)
    analysed_in_window = site.progress(site.host)["analysed"] - before
    committed_in_window = site.counts().get("photos_indexed", 0) - committed_before
    load_avg_end_of_window = os.getloadavg()
    if on_window_end is not None:
        on_window_end()
    up.join()
    expected = len(work.gallery) + accepted
    timed_out: str | None = None
    try:
        finished = site.wait_jobs(cfg.ingest_timeout)
    except TimeoutError as exc:
        finished, timed_out = {"counts": site.counts(), "job_errors": None}, str(exc)
    ingest_end = time.perf_counter() - t0
    done.set()
    poll.join(10)
    final = finished["counts"]
    result = window_summary(samples + [u for u in uploads if start <= u.start <= end], start, end)
    result.update({
        "clients": len(guests),
        # Every request of the phase, also uploads and polls after the window (until the ingest ended).
        "requests_all": len(samples) + len(uploads),
        "errors_all_requests": error_summary(samples + uploads),
        "load_avg_end_of_window": load_avg_end_of_window,
        "ingest": {
            "photos_uploaded": len(work.ingest), "accepted": accepted,
            "uploads": {"requests": len(uploads), "latency": latency_stats([u for u in uploads if u.kind == "upload"]),
                        "errors": error_summary([u for u in uploads if u.kind == "upload"]),
                        "all_uploaded_at_s": uploads_done - start},
            # Analysed = through the models and stored, counted by the jobs as each photo comes out of
            # the pipeline; committed = in a published index snapshot (every 64 photos by default).
            "analysed_in_window": analysed_in_window,
            "photos_per_s_in_window": analysed_in_window / (end - start),
            "committed_in_window": committed_in_window,
            "finished_at_s": ingest_end - start, "timed_out": timed_out,
            "photos_per_s_overall": (final.get("photos_indexed", 0) - committed_before) / max(ingest_end - start, 1e-9),
            "final_counts": final, "job_errors": finished["job_errors"], "jobs": len(site.jobs),
            "all_indexed": final.get("photos_indexed", 0) + final.get("photos_failed", 0) >= expected,
            "poll_errors": error_summary([u for u in uploads if u.kind == "poll"]),
        },
        "timeline": {"search": [(s.start, s.latency, s.status) for s in samples if s.kind == "search"],
                     "progress": polls, "window": (start, end)},
    })
    return result


def phase_sequential(cfg: LoadConfig, site: Site, work: Workload, guests: list[Guest], server: LoadServer,
                     t0: float) -> dict[str, Any]:
    """cfg.searches searches (by cfg.seq_clients clients, each one after another), RSS every K."""
    samples: list[Sample] = []
    points: list[tuple[int, int]] = [(0, server.rss_bytes())]
    lock = threading.Lock()
    issued = 0

    def client(i: int) -> None:
        nonlocal issued
        rng = random.Random(cfg.seed + 7919 * (i + 1))
        with httpx.Client(base_url=site.url, timeout=REQUEST_TIMEOUT_S) as c:
            while True:
                with lock:
                    if issued >= cfg.searches:
                        return
                    issued += 1
                selfie, person = work.selfies[rng.randrange(len(work.selfies))]
                sample = search_once(c, site.token, selfie, guests[i].guest_id, site.photos_of.get(person, set()), t0)
                with lock:
                    samples.append(sample)
                    n = len(samples)
                    if n % cfg.rss_every == 0 or n == cfg.searches:
                        points.append((n, server.rss_bytes()))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(cfg.seq_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.perf_counter()
    result = window_summary(samples, started - t0, end - t0)
    warm = cfg.warmup_searches
    after_warm = next((rss for n, rss in points if n >= warm), points[-1][1])
    result.update({
        "clients": cfg.seq_clients, "warmup_searches": warm, "rss_every": cfg.rss_every,
        "rss_start_mb": points[0][1] / MB, "rss_after_warmup_mb": after_warm / MB, "rss_end_mb": points[-1][1] / MB,
        "rss_max_mb": max(r for _, r in points) / MB,
        "rss_growth_after_warmup_mb": (points[-1][1] - after_warm) / MB,
        "rss_slope_mb_per_1000_searches": rss_slope(points, warm),
        "rss_points": [(n, rss / MB) for n, rss in points],
    })
    return result


@contextmanager
def running_server(data_dir: Path, env: dict[str, str]) -> Iterator[tuple[LoadServer, str]]:
    key = secrets.token_urlsafe(24)
    with LoadServer(data_dir, data_dir / "server.log", admin_key=key, env=env, ready_timeout_s=300) as server:
        yield server, key


def run_load(cfg: LoadConfig, work_dir: Path) -> dict[str, Any]:
    """The whole benchmark; returns the results (no files written outside `work_dir`)."""
    t0 = time.perf_counter()
    result: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                              "machine": machine_info(), "load_avg": {"start": os.getloadavg()}}
    work = prepare_workload(cfg)
    result["workload"] = {"gallery_photos": len(work.gallery), "gallery_people": cfg.gallery_people,
                          "selfies": len(work.selfies), "selfie_sizes": SELFIE_SIZES,
                          "ingest_photos": len(work.ingest),
                          "ingest_bytes": sum(len(d) for _, d in work.ingest)}
    data_dir = work_dir / "server-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with running_server(data_dir, cfg.server_env) as (server, key):
        sampler = RssSampler(server, t0, interval=1.0 if cfg.searches > 1000 else 0.5)
        sampler.start()
        site = Site(server.url, key)
        try:
            result["server"] = {"pid": server.pid, "rss_after_start_mb": server.rss_bytes() / MB,
                                "started_at_s": time.perf_counter() - t0}
            site.create_event("load test")
            sampler.phase = "gallery"
            result["gallery_s"] = site.build_gallery(work.gallery, cfg.upload_batch, cfg.ingest_timeout)
            result["server"]["rss_after_gallery_mb"] = server.rss_bytes() / MB
            guests = site.grant_guests(max(cfg.clients, cfg.seq_clients, 2))
            result["workload"]["selfie_screening"] = screen_selfies(site, work, guests[0])
            if cfg.scaling_seconds > 0:
                sampler.phase = "scaling"
                result["scaling"] = phase_scaling(site, work, guests, cfg.scaling_seconds, cfg.seed, t0)
            sampler.phase = "load"
            result["load_avg"]["phase_a_start"] = os.getloadavg()
            result["phase_a"] = phase_load(cfg, site, work, guests[:cfg.clients], t0,
                                           on_window_end=lambda: setattr(sampler, "phase", "ingest"))
            result["server"]["rss_after_phase_a_mb"] = server.rss_bytes() / MB
            sampler.phase = "sequential"
            result["load_avg"]["phase_b_start"] = os.getloadavg()
            result["phase_b"] = phase_sequential(cfg, site, work, guests, server, t0)
            sampler.phase = "end"
            result["server"]["metrics"] = server_metrics(site)
        finally:
            sampler.stop()
            site.close()
    result["server"]["log"] = server.log_problems()
    result["server"]["exit_code"] = server.returncode
    result["rss_timeline"] = [(t, phase, rss / MB) for t, phase, rss in sampler.samples]
    result["load_avg"]["end"] = os.getloadavg()
    result["total_s"] = time.perf_counter() - t0
    return result


def server_metrics(site: Site) -> dict[str, Any]:
    """What the server counted itself (/metrics): 5xx answers, to cross-check the clients' view, and
    searches (compared with the 2xx searches the clients saw)."""
    text = httpx.get(f"{site.url}/metrics", timeout=30).text
    out: dict[str, Any] = {"http_5xx": 0, "searches_total": None, "search_2xx": 0}
    for line in text.splitlines():
        value = line.rsplit(" ", 1)[-1]
        if line.startswith("picsort_requests_total{"):
            if 'status="5' in line:
                out["http_5xx"] += int(float(value))
            if 'path="/api/e/{token}/search"' in line and 'status="2' in line:
                out["search_2xx"] += int(float(value))
        elif line.startswith("picsort_searches_total "):
            out["searches_total"] = int(float(value))
    return out


# ---- plots ----------------------------------------------------------------------------------------
def plot_rss(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = result["phase_b"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    n = np.array([p[0] for p in b["rss_points"]])
    rss = np.array([p[1] for p in b["rss_points"]])
    ax1.plot(n, rss, ".-", ms=3, lw=0.8, color="#27a", label="server RSS")
    warm = b["warmup_searches"]
    ax1.axvspan(0, warm, color="#ddd", label=f"warm-up ({warm})")
    if b["rss_slope_mb_per_1000_searches"] is not None:
        after = n >= warm
        fit = np.polyfit(n[after], rss[after], 1)
        ax1.plot(n[after], np.polyval(fit, n[after]), "--", color="#c33",
                 label=f"fit: {b['rss_slope_mb_per_1000_searches']:.3f} MB / 1000 searches")
    ax1.set_xlabel("searches in a row")
    ax1.set_ylabel("RSS (MB)")
    ax1.set_ylim(0, max(rss.max() * 1.15, 1))
    ax1.set_title(f"{b['searches']} searches, {b['clients']} client(s)")
    ax1.legend(loc="lower right", fontsize=8)
    timeline = result["rss_timeline"]
    colours = {"start": "#999", "gallery": "#999", "scaling": "#a7a", "load": "#e80", "ingest": "#6a4",
               "sequential": "#27a", "end": "#999"}
    for phase in dict.fromkeys(p for _, p, _ in timeline):
        pts = [(t, r) for t, p, r in timeline if p == phase]
        ax2.plot([t for t, _ in pts], [r for _, r in pts], ".", ms=2, color=colours.get(phase, "#999"), label=phase)
    ax2.set_xlabel("seconds since start")
    ax2.set_ylabel("RSS (MB)")
    ax2.set_ylim(0, max(r for _, _, r in timeline) * 1.15)
    a = result["phase_a"]
    ax2.set_title(f"whole run (load: {a['clients']} clients + ingest of {a['ingest']['photos_uploaded']})")
    ax2.legend(loc="lower right", fontsize=8, markerscale=4)
    fig.suptitle(f"picsort serve RSS, {result['machine']['cpus']} CPU cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_latency(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = result["phase_a"]
    start, end = a["timeline"]["window"]
    fig, ax = plt.subplots(figsize=(10, 4))
    ok = [(t - start, lat * 1000) for t, lat, status in a["timeline"]["search"] if 200 <= status < 300]
    bad = [(t - start, lat * 1000) for t, lat, status in a["timeline"]["search"] if not 200 <= status < 300]
    ax.plot([t for t, _ in ok], [v for _, v in ok], ".", ms=2, color="#27a", label="search (2xx)")
    if bad:
        ax.plot([t for t, _ in bad], [v for _, v in bad], "x", ms=4, color="#c33", label="search (error)")
    s = a["search_latency"]
    if s.get("n"):
        for key, style in (("p50_ms", "-"), ("p99_ms", ":")):
            ax.axhline(s[key], ls=style, color="#555", lw=0.8, label=f"{key[:3]} {s[key]:.0f} ms")
    ax.set_xlabel("seconds into the load window")
    ax.set_ylabel("search latency (ms)")
    ax2 = ax.twinx()
    prog = [(t - start, c.get("analysed", 0), c.get("committed", 0)) for t, c in a["timeline"]["progress"]]
    ax2.plot([t for t, _, _ in prog], [v for _, v, _ in prog], "-", color="#e80", label="photos analysed (ingest)")
    ax2.plot([t for t, _, _ in prog], [v for _, _, v in prog], ":", color="#a50",
             label="photos committed (in the index)")
    ax2.set_ylabel("ingest photos")
    ax.set_xlim(left=0, right=max(end - start, max((t for t, _, _ in prog), default=0)))
    ax.axvline(end - start, color="#999", lw=0.8)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8, markerscale=3)
    ax.set_title(f"{a['clients']} clients searching while {a['ingest']['photos_uploaded']} photos are ingested")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    a, b = result["phase_a"], result["phase_b"]
    return {
        "phase_a": {k: a[k] for k in ("clients", "window_s", "searches", "searches_ok", "throughput_searches_per_s",
                                      "search_latency", "errors", "own_photo_found_rate")}
        | {"ingest": {k: a["ingest"][k] for k in ("analysed_in_window", "photos_per_s_in_window", "committed_in_window",
                                                  "finished_at_s", "photos_per_s_overall", "all_indexed")}},
        "phase_b": {k: b[k] for k in ("searches", "searches_ok", "search_latency", "errors", "rss_start_mb",
                                      "rss_after_warmup_mb", "rss_end_mb", "rss_slope_mb_per_1000_searches")},
        "scaling_ratio": result.get("scaling", {}).get("throughput_ratio_2_vs_1"),
        "server_log": {k: v for k, v in result["server"]["log"].items() if k != "first_traceback"},
        "load_avg": result["load_avg"],
    }


def markdown(result: dict[str, Any]) -> list[str]:
    """The README section for benchmarks/report.py, from load.json (figures as measured, 1 decimal)."""
    a, b, cfg = result["phase_a"], result["phase_b"], result["config"]
    ing, s, sb = a["ingest"], a["search_latency"], b["search_latency"]
    la = result["load_avg"]
    uploads = ing["uploads"]["latency"].get("n", 0)
    out = [
        "### Load (`benchmarks/bench_load.py`, `picsort serve` in its own process on loopback)", "",
        (f"Gallery: {result['workload']['gallery_photos']} LFW photos of {cfg['gallery_people']} people; selfies: "
         f"{result['workload']['selfie_screening']['kept']} held-out photos of them at 4 phone-like sizes. "
         f"Load average (1 min) at start {la['start'][0]:.2f}, phase A start {la['phase_a_start'][0]:.2f}, "
         f"phase B start {la['phase_b_start'][0]:.2f}, end {la['end'][0]:.2f} "
         "(it includes the benchmark's own client threads)."), "",
        (f"**Phase A**: {a['clients']} clients searching for {a['window_s']:.1f} s while "
         f"{ing['photos_uploaded']} photos are uploaded ({uploads} requests of {cfg['upload_batch']}) and ingested "
         f"into the same event; every {cfg['downloads_every']}th search is followed by a granted original's signed "
         "URL and its download."), "",
        ("| requests in window | errors (all requests of the phase) | shed (429/503) | searches | searches/s | "
         "p50 ms | p95 ms | p99 ms | ingest in window |"),
        "|---|---|---|---|---|---|---|---|---|",
        (f"| {a['requests']} | {a['errors_all_requests']['total']} | {a['errors_all_requests']['shed']} | "
         f"{a['searches_ok']}/{a['searches']} | {a['throughput_searches_per_s']:.2f} | {s['p50_ms']:.1f} | "
         f"{s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {ing['analysed_in_window']} photos "
         f"({ing['photos_per_s_in_window']:.2f}/s) |"), "",
        (f"The ingest finished {ing['finished_at_s']:.1f} s after the window opened "
         f"({ing['photos_per_s_overall']:.2f} photos/s overall); all {ing['final_counts'].get('photos_indexed', 0)} "
         f"photos of the event (gallery included) indexed; jobs with errors: {len(ing['job_errors'] or [])}."), "",
        (f"**Phase B**: {b['searches']} searches in a row ({b['clients']} client), server RSS every "
         f"{b['rss_every']} searches:"), "",
        "| errors | p50 ms | p95 ms | p99 ms | RSS start MB | after warm-up | end | slope MB / 1000 searches |",
        "|---|---|---|---|---|---|---|---|",
        (f"| {b['errors']['total']} | {sb['p50_ms']:.1f} | {sb['p95_ms']:.1f} | {sb['p99_ms']:.1f} | "
         f"{b['rss_start_mb']:.1f} | {b['rss_after_warmup_mb']:.1f} ({b['warmup_searches']}) | {b['rss_end_mb']:.1f} | "
         f"{b['rss_slope_mb_per_1000_searches']:.3f} |"), ""]
    if "scaling" in result:
        sc = result["scaling"]
        out += [(f"Without ingest: 1 client {sc['clients_1']['throughput_searches_per_s']:.2f} searches/s, 2 clients "
                 f"{sc['clients_2']['throughput_searches_per_s']:.2f} (x{sc['throughput_ratio_2_vs_1']:.2f}; "
                 f"load average {sc['clients_2']['load_avg_at_end'][0]:.2f})."), ""]
    out += ["![load RSS](benchmarks/results/load_rss.png)", "",
            "![load latency](benchmarks/results/load_latency.png)", ""]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=default_shared() / "datasets" / "lfw", help="LFW root")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--photos", type=int, default=2000, help="photos ingested during phase A")
    parser.add_argument("--searches", type=int, default=5000, help="phase B searches in a row")
    parser.add_argument("--seq-clients", type=int, default=1, help="phase B clients")
    parser.add_argument("--gallery-people", type=int, default=40)
    parser.add_argument("--rss-every", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=-1, help="phase B searches left out of the slope (-1: auto)")
    parser.add_argument("--downloads-every", type=int, default=10)
    parser.add_argument("--scaling-seconds", type=float, default=10.0, help="1 vs 2 clients without ingest (0: skip)")
    parser.add_argument("--wider", type=Path, default=None, help="WIDER val root, to mix crowd photos into the ingest")
    parser.add_argument("--wider-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/load.json"))
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/results/load_rss.png"))
    parser.add_argument("--latency-plot", type=Path, default=Path("benchmarks/results/load_latency.png"))
    args = parser.parse_args(argv)
    cfg = LoadConfig(dataset=args.dataset, clients=args.clients, seconds=args.seconds, photos=args.photos,
                     searches=args.searches, seq_clients=args.seq_clients, gallery_people=args.gallery_people,
                     rss_every=args.rss_every, warmup=args.warmup, downloads_every=args.downloads_every,
                     scaling_seconds=args.scaling_seconds, wider=args.wider, wider_fraction=args.wider_fraction,
                     seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="picsort-load-") as tmp:
        result = run_load(cfg, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot_rss(result, args.plot)
    plot_latency(result, args.latency_plot)
    print(json.dumps(summary(result), indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
