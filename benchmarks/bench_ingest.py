"""Ingest throughput: the full pipeline (store original, decode, detect, embed, outfit colours,
derived images, index snapshots, metadata, persons) on WIDER val photos and on a synthetic event of
LFW faces pasted onto real backgrounds, against the models' own limit and a naive per-photo loop
measured in the same run. Also memory per indexed face.

    python benchmarks/bench_ingest.py --wider ../shared/datasets/wider_val --lfw ../shared/datasets/lfw
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from indexer.bodies import detect_people, faceless_people
from indexer.events import Catalog
from indexer.ingest import Ingestor
from models.engine import FaceEngine
from models.runtime import plan_parallelism
from picsort_local.images import decode_image
from picsort_local.settings import Settings


def models_limit(engine: FaceEngine, paths: list[Path], bodies: bool) -> dict[str, float]:
    """Models alone on pre-decoded photos: 1 / (detection time + faces x embedding time), and, when the
    faceless-body pass is on, the same plus the HOG people detector's time (a third model the ingest
    runs on every photo; the naive loop runs it too, so both sides do the same work)."""
    images = [decode_image(p.read_bytes()) for p in paths]
    det_time, hog_time, faces = 0.0, 0.0, 0
    crops = []
    from models.alignment import similarity_transforms, warp_faces

    for im in images:
        start = time.perf_counter()
        det = engine.detect(im)
        det_time += time.perf_counter() - start
        faces += len(det)
        if len(det):
            crops.append(warp_faces(im.pixels, similarity_transforms(det.kps * im.scale)))
        if bodies:
            start = time.perf_counter()
            detect_people(im.pixels)
            hog_time += time.perf_counter() - start
    all_crops = np.concatenate(crops)
    start = time.perf_counter()
    engine.embedder.embed(all_crops)
    emb_time = time.perf_counter() - start
    face_models = det_time / len(images) + (faces / len(images)) * (emb_time / len(all_crops))
    return {"detection_ms_per_photo": det_time / len(images) * 1000,
            "embedding_ms_per_face": emb_time / len(all_crops) * 1000,
            "hog_ms_per_photo": hog_time / len(images) * 1000,
            "faces_per_photo": faces / len(images),
            "photos_per_s_face_models": 1.0 / face_models,
            "photos_per_s": 1.0 / (face_models + hog_time / len(images))}


def naive_ingest(engine: FaceEngine, paths: list[Path], data_dir: Path, bodies: bool) -> float:
    """Per photo: read, full decode, detect, embed faces one by one, (faceless bodies when the pass is
    on), write a thumbnail, one index snapshot per photo (what a straightforward script does)."""
    from indexer.vector_index import EventIndex, IndexStore
    from storage.blobs import LocalBlobStore

    blobs = LocalBlobStore(data_dir)
    store = IndexStore(blobs)
    index = EventIndex(engine.embedder.dim or 128)
    next_id = 1
    start = time.perf_counter()
    for path in paths:
        data = path.read_bytes()
        blobs.put(f"events/naive/originals/{path.name}", data)
        image = decode_image(data)
        det = engine.detect(image)
        vectors = (np.concatenate([engine.embedder.embed(c[None]) for c in _crops(image, det)]) if len(det)
                   else None)
        if bodies:
            faceless_people(image.pixels, det.boxes * image.scale)
        height = int(400 * image.pixels.shape[0] / image.pixels.shape[1])
        thumb = cv2.imencode(".jpg", cv2.resize(image.pixels, (400, height)))[1]
        blobs.put(f"events/naive/thumb/{path.name}", thumb.tobytes())
        if vectors is not None:
            index.add(np.arange(next_id, next_id + len(vectors)), vectors)
            next_id += len(vectors)
            store.save("naive", index)
    return time.perf_counter() - start


def _crops(image: Any, faces: Any) -> np.ndarray:
    from models.alignment import similarity_transforms, warp_faces

    return warp_faces(image.pixels, similarity_transforms(faces.kps * image.scale))


def run_ingest(settings: Settings, engine: FaceEngine, paths: list[Path], workers: int) -> dict[str, Any]:
    catalog = Catalog(settings.storage)
    event = catalog.create_event("bench").event
    ingestor = Ingestor(catalog, engine, settings.ingest, workers=workers)
    report = ingestor.ingest_paths(event.id, paths)
    index_bytes = sum(len(catalog.blobs.get(k)) for k in catalog.blobs.list(f"events/{event.id}/index/")
                      if k.endswith(".faiss"))
    snapshots = len([k for k in catalog.blobs.list(f"events/{event.id}/index/") if k.endswith(".faiss")])
    db_bytes = sum(f.stat().st_size for f in settings.data_dir.glob("picsort.sqlite3*"))
    return {
        "photos": len(paths), "indexed": report.indexed, "failed": report.failed, "faces": report.faces,
        "persons": report.persons, "seconds": report.seconds,
        "photos_per_s": len(paths) / report.seconds, "faces_per_s": report.faces / report.seconds,
        "memory": {
            "index_bytes_per_face_latest_snapshot": (index_bytes / max(snapshots, 1)) / max(report.faces, 1),
            "metadata_bytes_per_face": db_bytes / max(report.faces, 1),
            "in_ram_flat_index_bytes_per_face": 4 * (engine.embedder.dim or 128) + 8 * 2,
        },
    }


def synthetic_event(lfw: Path, backgrounds: list[Path], out: Path, photos: int,
                    seed: int = 0) -> tuple[list[Path], int]:
    """Photos of 2-6 LFW faces (the central crop of each deep-funnelled image) pasted at 60-180 px onto
    real WIDER backgrounds; identities repeat across photos like guests at an event."""
    rng = np.random.default_rng(seed)
    people = sorted(p for p in (lfw / "images").iterdir()
                    if p.is_dir() and len(list(p.glob("*.jpg"))) >= 4)[:300]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    pasted = 0
    for i in range(photos):
        bg = cv2.imread(str(backgrounds[i % len(backgrounds)]))
        if bg is None:
            continue
        bg = cv2.resize(bg, (1600, int(1600 * bg.shape[0] / bg.shape[1])))
        for _ in range(int(rng.integers(2, 7))):
            person = people[int(rng.integers(len(people)))]
            files = sorted(person.glob("*.jpg"))
            source = cv2.imread(str(files[int(rng.integers(len(files)))]))
            if source is None:
                continue
            face = source[50:200, 60:190]
            size = int(rng.integers(60, 180))
            face = cv2.resize(face, (int(size * 130 / 150), size))
            y = int(rng.integers(0, bg.shape[0] - face.shape[0]))
            x = int(rng.integers(0, bg.shape[1] - face.shape[1]))
            bg[y : y + face.shape[0], x : x + face.shape[1]] = face
            pasted += 1
        path = out / f"synthetic_{i:05d}.jpg"
        cv2.imwrite(str(path), bg, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths, pasted


def main() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wider", type=Path, required=True)
    parser.add_argument("--lfw", type=Path)
    parser.add_argument("--synthetic", type=int, default=600, help="photos in the synthetic event (0 = skip)")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--no-bodies", action="store_true", help="skip the HOG pass for faceless people")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ingest.json"))
    args = parser.parse_args()

    paths = sorted((args.wider / "images").rglob("*.jpg"))
    if args.limit:
        paths = paths[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(data_dir=Path(tmp) / "data", ingest_bodies=not args.no_bodies)
        workers, threads = plan_parallelism(base.engine, base.ingest)
        engine = FaceEngine.from_settings(replace(base.engine, threads=threads))
        single = FaceEngine.from_settings(replace(base.engine, threads=os.cpu_count() or 1))
        limit = models_limit(single, paths, bodies=not args.no_bodies)
        naive_s = naive_ingest(single, paths, Path(tmp) / "naive", bodies=not args.no_bodies)
        wider = run_ingest(base, engine, paths, workers)
        result: dict[str, Any] = {
            "machine_cpus": os.cpu_count(), "bodies_pass": not args.no_bodies, "workers": workers,
            "threads_per_worker": threads,
            "pack": engine.pack_name,
            "wider": wider,
            "models_limit": limit,
            "ingest_vs_models_limit": wider["photos_per_s"] / limit["photos_per_s"],
            "ingest_vs_face_models_limit": wider["photos_per_s"] / limit["photos_per_s_face_models"],
            "naive_loop": {"seconds": naive_s, "photos_per_s": len(paths) / naive_s},
            "ingest_vs_naive": wider["photos_per_s"] / (len(paths) / naive_s),
        }
        if args.synthetic and args.lfw:
            synth_paths, pasted = synthetic_event(args.lfw, paths, Path(tmp) / "synthetic", args.synthetic)
            synth_settings = base.model_copy(update={"data_dir": Path(tmp) / "data-synth"})
            result["synthetic"] = {"pasted_faces": pasted,
                                   **run_ingest(synth_settings, engine, synth_paths, workers)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
