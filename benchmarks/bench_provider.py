"""Side-by-side SearchFacesByImage benchmark through the `FaceProvider` interface: this project
(`--provider local`), Amazon Rekognition or any compatible endpoint (`--provider rekognition`).

The "lfw-event" dataset: N identities with several gallery photos each, one held-out probe per
identity (never indexed) and single-photo distractor identities, all from LFW. Every gallery and
distractor photo is indexed with IndexFaces (MaxFaces=1, QualityFilter AUTO, ExternalImageId = file
stem), then every probe is searched with SearchFacesByImage at FaceMatchThreshold 80, 90 and 99.
A returned face is correct when its ExternalImageId names the probe's identity. Reported per
threshold: micro precision and recall, latency p50/p95; and per identity.

    python benchmarks/bench_provider.py --provider local --lfw ../shared/datasets/lfw --out local.json
    python benchmarks/bench_provider.py --provider rekognition --region eu-west-1 --lfw ... --out aws.json
    python benchmarks/bench_provider.py --provider rekognition --serve-local --lfw ... --out loopback.json

`--serve-local` starts this project's server on 127.0.0.1 (temporary data, random SigV4 keys) and
points the boto3 provider at it. See docs/rekognition.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Run as a script from anywhere: the checkout on the path (before tests/, whose folders mirror the
# packages' names), and tests/ for the one server harness (tests/support/servers.py).
for _path in (REPO / "tests", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from picsort_local.errors import InvalidRequestError, PicsortError
from search.rekognition.protocol import FaceProvider

logger = logging.getLogger("bench_provider")

THRESHOLDS = (80.0, 90.0, 99.0)


@dataclass(frozen=True)
class LfwEvent:
    gallery: dict[str, list[Path]]  # identity -> indexed photos
    probes: dict[str, Path]  # identity -> held-out photo
    distractors: list[Path]  # one photo each of other identities


def build_lfw_event(lfw: Path, identities: int, gallery: int, distractors: int, seed: int) -> LfwEvent:
    images = lfw / "images" if (lfw / "images").is_dir() else lfw
    people = sorted(p for p in images.iterdir() if p.is_dir())
    photos = {p.name: sorted(p.glob("*.jpg")) for p in people}
    rng = np.random.default_rng(seed)
    eligible = [name for name, files in photos.items() if len(files) > gallery]
    if len(eligible) < identities:
        raise SystemExit(f"only {len(eligible)} LFW identities have more than {gallery} photos")
    chosen = sorted(rng.choice(eligible, size=identities, replace=False).tolist())
    others = [name for name in photos if name not in set(chosen)]
    extra = sorted(rng.choice(others, size=min(distractors, len(others)), replace=False).tolist())
    return LfwEvent(
        gallery={name: photos[name][:gallery] for name in chosen},
        probes={name: photos[name][gallery] for name in chosen},
        distractors=[photos[name][0] for name in extra],
    )


def identity_of(external_image_id: str | None) -> str:
    return (external_image_id or "").rsplit("_", 1)[0]


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000.0, 1) if values else None


def run(provider: FaceProvider, event: LfwEvent, collection_id: str, *, keep: bool = False) -> dict[str, Any]:
    provider.create_collection(collection_id)
    try:
        return _measure(provider, event, collection_id)
    finally:
        if not keep:
            provider.delete_collection(collection_id)


def _measure(provider: FaceProvider, event: LfwEvent, collection_id: str) -> dict[str, Any]:
    indexed: dict[str, int] = {}
    index_latency: list[float] = []
    unindexed: list[dict[str, Any]] = []
    todo = [p for paths in event.gallery.values() for p in paths] + event.distractors
    for n, path in enumerate(todo, 1):
        started = time.perf_counter()
        result = provider.index_faces(collection_id, path.read_bytes(), external_image_id=path.stem,
                                      max_faces=1)
        index_latency.append(time.perf_counter() - started)
        if result.face_records:
            indexed[identity_of(path.stem)] = indexed.get(identity_of(path.stem), 0) + 1
        else:
            reasons = sorted({r for u in result.unindexed_faces for r in u.reasons})
            unindexed.append({"photo": path.stem, "reasons": reasons})
        if n % 50 == 0:
            logger.info("indexed %d/%d photos", n, len(todo))

    per_identity: dict[str, dict[str, Any]] = {name: {"indexed": indexed.get(name, 0), "thresholds": {}}
                                              for name in event.probes}
    summary: dict[str, Any] = {}
    for threshold in THRESHOLDS:
        latency: list[float] = []
        tp = returned = relevant = 0
        errors = 0
        for name, probe in event.probes.items():
            started = time.perf_counter()
            try:
                found = provider.search_faces_by_image(collection_id, probe.read_bytes(), threshold=threshold,
                                                       max_faces=100)
            except InvalidRequestError as exc:  # e.g. no face found in the probe
                errors += 1
                per_identity[name]["thresholds"][f"{threshold:g}"] = {"error": exc.message}
                continue
            latency.append(time.perf_counter() - started)
            hits = [m for m in found.face_matches if identity_of(m.face.external_image_id) == name]
            wrong = [m for m in found.face_matches if identity_of(m.face.external_image_id) != name]
            tp += len(hits)
            returned += len(found.face_matches)
            relevant += indexed.get(name, 0)
            per_identity[name]["thresholds"][f"{threshold:g}"] = {
                "returned": len(found.face_matches), "correct": len(hits),
                "false_matches": sorted({m.face.external_image_id or "" for m in wrong}),
                "top_similarity": round(found.face_matches[0].similarity, 2) if found.face_matches else None,
            }
        summary[f"{threshold:g}"] = {
            "queries": len(event.probes), "errors": errors,
            "precision": round(tp / returned, 4) if returned else None,
            "recall": round(tp / relevant, 4) if relevant else None,
            "true_matches": tp, "returned": returned, "relevant": relevant,
            "queries_without_match": sum(1 for v in per_identity.values()
                                         if v["thresholds"].get(f"{threshold:g}", {}).get("correct", 0) == 0),
            "latency_ms": {"p50": percentile_ms(latency, 50), "p95": percentile_ms(latency, 95),
                           "mean": round(float(np.mean(latency)) * 1000.0, 1) if latency else None},
        }
        logger.info("threshold %g: %s", threshold, summary[f"{threshold:g}"])
    return {
        "index": {"photos": len(todo), "indexed": sum(indexed.values()), "unindexed": unindexed,
                  "latency_ms": {"p50": percentile_ms(index_latency, 50),
                                 "p95": percentile_ms(index_latency, 95)}},
        "search_faces_by_image": summary,
        "per_identity": per_identity,
    }


@contextmanager
def _provider(args: argparse.Namespace) -> Iterator[tuple[FaceProvider, dict[str, Any]]]:
    """The provider to measure, and what describes it in the report."""
    if args.provider == "local":
        from picsort_local.settings import Settings
        from search.rekognition.local import LocalProvider
        from search.service import PicsortService

        with tempfile.TemporaryDirectory() as tmp:
            service = PicsortService(Settings(data_dir=Path(args.data_dir or tmp)))
            local = LocalProvider.from_service(service)
            try:
                yield local, {"provider": "local", "pack": local.engine.pack_name}
            finally:
                service.close()
        return
    from search.rekognition.boto import RekognitionProvider

    if not args.serve_local:
        remote = RekognitionProvider(endpoint_url=args.endpoint_url, region=args.region)
        yield remote, {"provider": "rekognition", "endpoint_url": args.endpoint_url or "AWS",
                       "region": args.region}
        return
    from pydantic import SecretStr
    from support.servers import LiveServer, create_app

    from picsort_local.settings import Settings

    # The test suite's loopback server (uvicorn in a thread), as the latency benchmark uses it.

    key_id, secret = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(args.data_dir or tmp), rekognition_access_key_id=key_id,
                            rekognition_secret_access_key=SecretStr(secret), ingest_bodies=False)
        with LiveServer(create_app(settings)) as server:
            remote = RekognitionProvider(endpoint_url=server.url, region=args.region or "us-east-1",
                                         aws_access_key_id=key_id, aws_secret_access_key=secret)
            yield remote, {"provider": "rekognition", "endpoint_url": "this project's server on loopback",
                           "region": args.region or "us-east-1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", choices=["local", "rekognition"], required=True)
    parser.add_argument("--dataset", choices=["lfw-event"], default="lfw-event")
    parser.add_argument("--lfw", type=Path, required=True,
                        help="LFW folder (with images/ or the identity folders)")
    parser.add_argument("--identities", type=int, default=50, help="identities searched for (one probe each)")
    parser.add_argument("--gallery", type=int, default=3, help="indexed photos per searched identity")
    parser.add_argument("--distractors", type=int, default=100,
                        help="other identities indexed with one photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--endpoint-url", help="rekognition: endpoint (default: AWS for --region)")
    parser.add_argument("--region", help="rekognition: AWS region (default: boto3's configuration)")
    parser.add_argument("--serve-local", action="store_true",
                        help="rekognition: start this project's server on loopback and measure through it")
    parser.add_argument("--data-dir", type=Path,
                        help="local/serve-local: data folder (default: a temporary one)")
    parser.add_argument("--collection-id", help="collection to create (default: picsort-bench-<random>)")
    parser.add_argument("--keep", action="store_true", help="keep the collection afterwards")
    parser.add_argument("--out", type=Path, help="write the JSON report here (it is printed as well)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    event = build_lfw_event(args.lfw, args.identities, args.gallery, args.distractors, args.seed)
    collection_id = args.collection_id or f"picsort-bench-{secrets.token_hex(4)}"
    started = time.perf_counter()
    try:
        with _provider(args) as (provider, described):
            results = run(provider, event, collection_id, keep=args.keep)
    except PicsortError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    report = {
        **described,
        "dataset": {"name": "lfw-event", "identities": len(event.probes),
                    "gallery_per_identity": args.gallery,
                    "distractors": len(event.distractors), "probes": len(event.probes), "seed": args.seed},
        "operation": "SearchFacesByImage (MaxFaces=100) after IndexFaces (MaxFaces=1, QualityFilter=AUTO)",
        "thresholds": list(THRESHOLDS),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        **results,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
