"""Selfie search latency end to end over HTTP on loopback (uvicorn, real models), for events of
10k and 125k faces. The events are filled with real face metadata rows and vectors drawn around
real LFW embeddings (so the tier thresholds see realistic score distributions), plus the guest's
own photos; every search sends a real selfie JPEG.

    python benchmarks/bench_search_latency.py --lfw ../shared/datasets/lfw --sizes 10000 125000
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
# Run as a script from anywhere: the checkout on the path (before tests/, whose folders mirror the
# packages' names), and tests/ for the one server harness (tests/support/servers.py).
for _path in (REPO / "tests", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from support.servers import LiveServer, create_app

from indexer.faces import NewFaces
from models.engine import FaceEngine
from picsort_local.settings import Settings
from picsort_local.types import FaceQuality, FaceRecord, PixelBox
from search.service import PicsortService

KEY = "bench-admin-key-0123456789"


def fill_event(service: PicsortService, event_id: str, n: int, rng: np.random.Generator,
               seeds: np.ndarray) -> None:
    meta = service.catalog.meta
    per_photo = 8
    photos = n // per_photo
    photo_ids = [f"{event_id}-{i:07d}" for i in range(photos)]
    with meta.db.transaction() as db:  # rows only: the faces go through the face store below
        # Pending with an original's key, as an upload leaves them (recovery forgets rows without one).
        db.executemany(
            "INSERT INTO photos (id, event_id, sha256, filename, original_key, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, 'pending', 'x')",
            [(pid, event_id, f"{i:064x}", f"{i}.jpg", f"events/{event_id}/originals/{pid}")
             for i, pid in enumerate(photo_ids)])
    # Identities on the manifold of real embeddings: blends of two real LFW embeddings plus noise,
    # ~6 faces each (a guest appears in a handful of photos, not in thousands).
    count = photos * per_photo
    d = seeds.shape[1]
    n_ids = max(1, count // 6)
    a, b = rng.integers(0, len(seeds), n_ids), rng.integers(0, len(seeds), n_ids)
    w = rng.uniform(0.2, 0.8, (n_ids, 1)).astype(np.float32)
    noise = 0.5 * rng.normal(size=(n_ids, d)).astype(np.float32) / np.sqrt(d)
    centres = w * seeds[a] + (1 - w) * seeds[b] + noise
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = (centres[rng.integers(0, n_ids, count)]
               + 0.6 * rng.normal(size=(count, d)).astype(np.float32) / np.sqrt(d))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    quality = FaceQuality(face_px=10.0, sharpness=50.0, brightness=120.0, yaw=0.0, pitch=0.0, roll=0.0)
    face = FaceRecord(PixelBox(0.0, 0.0, 10.0, 10.0), ((0.0, 0.0),) * 5, 0.9, quality)
    batch = [NewFaces(pid, (face,) * per_photo, vectors[i * per_photo:(i + 1) * per_photo])
             for i, pid in enumerate(photo_ids)]
    service.catalog.faces.add(event_id, batch)


def time_decision(service: PicsortService, event_id: str, seeds: np.ndarray,
                  rounds: int = 5) -> dict[str, float]:
    """In-process, interleaved: the search decision (crowd normalisation, size-aware tiers, query
    expansion) against the old path's core (one top-256 search and a fixed cosine bar) on the same
    event index and queries."""
    index = service.catalog.faces.index(event_id, seeds.shape[1])
    queries = seeds[:50]
    times: dict[str, list[float]] = {"decision": [], "top256": []}
    for r in range(rounds):
        for name in ("decision", "top256") if r % 2 == 0 else ("top256", "decision"):
            for q in queries:
                t0 = time.perf_counter()
                if name == "decision":
                    service.face_search.match(event_id, q)
                else:
                    scores, _ids = index.search(q[None], min(256, len(index)))
                    _ = scores[0] >= 0.3684
                times[name].append(time.perf_counter() - t0)
    out = {f"{k}_p50_ms": float(np.percentile(v, 50) * 1000) for k, v in times.items()}
    out["ratio_p50"] = out["decision_p50_ms"] / out["top256_p50_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 125_000])
    parser.add_argument("--searches", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search_latency.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    people = sorted(p for p in (args.lfw / "images").iterdir() if p.is_dir())[:400]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), admin_key=SecretStr(KEY))
        service = PicsortService(settings)
        engine: FaceEngine = service.engine
        seeds = np.concatenate([
            engine.analyze(engine.decode(sorted(p.glob("*.jpg"))[0].read_bytes())).embeddings[:1]
            for p in people[:200]])
        selfies = []
        for p in people[200:260]:
            crop = (Image.open(sorted(p.glob("*.jpg"))[0]).convert("RGB").crop((45, 25, 205, 225))
                    .resize((480, 600)))
            buf = io.BytesIO()
            crop.save(buf, "JPEG", quality=90)
            selfies.append(buf.getvalue())
        with LiveServer(create_app(settings, service=service)) as server, \
                httpx.Client(base_url=server.url, timeout=60) as client:
            for n in args.sizes:
                created = service.host.create_event(f"latency {n}", None)
                fill_event(service, created.event.id, n, rng, seeds)
                url = f"/api/e/{created.guest_token}/search"
                for s in selfies[:15]:  # warm-up (index load into the cache, first runs of the sessions)
                    client.post(url, files={"selfie": ("s.jpg", s, "image/jpeg")})
                lat, codes = [], []
                for i in range(args.searches):
                    t0 = time.perf_counter()
                    r = client.post(url, files={"selfie": ("s.jpg", selfies[i % len(selfies)], "image/jpeg")})
                    lat.append(time.perf_counter() - t0)
                    codes.append(r.status_code)
                ok = [latency for latency, c in zip(lat, codes, strict=True) if c == 200]
                entry = {"faces": n, "searches": len(lat), "ok": len(ok),
                         "p50_ms": float(np.percentile(ok, 50) * 1000),
                         "p95_ms": float(np.percentile(ok, 95) * 1000),
                         "mean_ms": float(np.mean(ok) * 1000)}
                entry["decision"] = time_decision(service, created.event.id, seeds)
                results.append(entry)
                print(json.dumps(entry), flush=True)
        service.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    note = "HTTP on loopback, one client, real selfie JPEGs 480x600"
    args.out.write_text(json.dumps({"runs": results, "note": note}, indent=2) + "\n")


if __name__ == "__main__":
    main()
