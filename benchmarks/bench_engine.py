"""Face engine benchmark on WIDER FACE val photos: the engine's pipeline against a naive per-image
loop in the style of insightface's FaceAnalysis, same pack, same detector settings, same images,
measured in the same run. Also: detection ms/image, embedding ms/face at batch 1 and 32, recall by
face size against the ground-truth boxes, and a sweep of detector settings (recall vs time).

    python benchmarks/bench_engine.py --data ../shared/datasets/wider_val --out benchmarks/results/engine.json
"""

from __future__ import annotations

import argparse
import warnings
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.engine import FaceEngine
from models.pipeline import analyze_stream
from models.runtime import plan_parallelism
from picsort_local.images import decode_image
from picsort_local.settings import Settings

SIZE_BUCKETS = [(0, 10), (10, 16), (16, 24), (24, 48), (48, 96), (96, 10_000)]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def recall_by_size(gt: dict[str, np.ndarray], found: dict[str, np.ndarray], iou: float = 0.4) -> dict[str, Any]:
    hits = {b: [0, 0] for b in SIZE_BUCKETS}
    for key, boxes in gt.items():
        det = found.get(key, np.zeros((0, 4)))
        m = iou_matrix(boxes, det)
        matched = (m.max(axis=1) >= iou) if m.size else np.zeros(len(boxes), bool)
        heights = boxes[:, 3] - boxes[:, 1]
        for lo, hi in SIZE_BUCKETS:
            sel = (heights >= lo) & (heights < hi)
            hits[(lo, hi)][0] += int(matched[sel].sum())
            hits[(lo, hi)][1] += int(sel.sum())
    out = {f"{lo}-{hi if hi < 10_000 else 'inf'}px": {"found": f, "total": t, "recall": f / t if t else None}
           for (lo, hi), (f, t) in hits.items()}
    f24 = sum(v[0] for k, v in hits.items() if k[0] >= 24)
    t24 = sum(v[1] for k, v in hits.items() if k[0] >= 24)
    out["ge24px"] = {"found": f24, "total": t24, "recall": f24 / t24 if t24 else None}
    return out


def naive_loop(engine: FaceEngine, paths: list[Path]) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """FaceAnalysis style: full-size imread, detect, then align and embed each face on its own."""
    try:
        from insightface.utils.face_align import norm_crop  # the reference per-face alignment
    except ImportError:  # pragma: no cover
        norm_crop = None
    boxes: dict[str, np.ndarray] = {}
    embs: dict[str, np.ndarray] = {}
    faces = 0
    start = time.perf_counter()
    for path in paths:
        bgr = cv2.imread(str(path))
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        det = engine.detector.detect(rgb)
        vectors = []
        for i in range(len(det)):
            if norm_crop is not None:
                crop = norm_crop(rgb, det.kps[i], image_size=112)
            else:  # pragma: no cover
                from models.alignment import similarity_transforms

                crop = cv2.warpAffine(rgb, similarity_transforms(det.kps[i : i + 1])[0], (112, 112))
            vectors.append(engine.embedder.embed(crop[None])[0])
        boxes[path.name] = det.boxes
        embs[path.name] = np.array(vectors, np.float32).reshape(len(vectors), engine.embedder.dim or 128)
        faces += len(det)
    return time.perf_counter() - start, boxes, embs, faces


def engine_run(engine: FaceEngine, paths: list[Path], workers: int) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray], int]:
    boxes: dict[str, np.ndarray] = {}
    embs: dict[str, np.ndarray] = {}
    faces = 0
    start = time.perf_counter()
    items = [(p.name, p.read_bytes) for p in paths]
    for result in analyze_stream(engine, items, workers=workers, chunk=8):
        if result.faces is None:
            continue
        boxes[result.key] = result.faces.detections.boxes
        embs[result.key] = result.faces.embeddings
        faces += len(result.faces)
    return time.perf_counter() - start, boxes, embs, faces


def same_faces(a_boxes: dict[str, np.ndarray], a_emb: dict[str, np.ndarray], b_boxes: dict[str, np.ndarray],
               b_emb: dict[str, np.ndarray]) -> dict[str, Any]:
    matched, total_a, total_b, cos = 0, 0, 0, []
    for key in a_boxes:
        m = iou_matrix(a_boxes[key], b_boxes.get(key, np.zeros((0, 4))))
        total_a += len(a_boxes[key])
        total_b += len(b_boxes.get(key, []))
        if m.size:
            j = m.argmax(axis=1)
            ok = m[np.arange(len(j)), j] >= 0.5
            matched += int(ok.sum())
            if ok.any():
                cos.extend(np.einsum("ij,ij->i", a_emb[key][ok], b_emb[key][j[ok]]).tolist())
    return {"engine_faces": total_a, "naive_faces": total_b, "matched_iou_0.5": matched,
            "embedding_cosine_mean": float(np.mean(cos)) if cos else None,
            "embedding_cosine_min": float(np.min(cos)) if cos else None}


def micro(engine: FaceEngine, paths: list[Path]) -> dict[str, float]:
    images = [decode_image(p.read_bytes()) for p in paths[:20]]
    start = time.perf_counter()
    for im in images:
        engine.detect(im)
    det_ms = (time.perf_counter() - start) / len(images) * 1000
    crops = np.random.default_rng(0).integers(0, 255, (64, 112, 112, 3), dtype=np.uint8)
    out = {"detection_ms_per_image": det_ms}
    for batch in (1, 32):
        engine.embedder.batch_size = batch
        engine.embedder.embed(crops[:batch])
        start = time.perf_counter()
        engine.embedder.embed(crops)
        out[f"embedding_ms_per_face_batch{batch}"] = (time.perf_counter() - start) / len(crops) * 1000
    engine.embedder.batch_size = engine.settings.embed_batch
    return out


def main() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)  # skimage deprecation inside insightface
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pack", default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    parser.add_argument("--sweep", type=int, default=60, help="photos for the detector-settings sweep (0 = skip)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/engine.json"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()

    gt_raw = json.loads((args.data / "boxes.json").read_text())
    paths = sorted(args.data / "images" / k for k in gt_raw)
    if args.limit:
        paths = paths[: args.limit]
    gt = {p.name: np.array([[x, y, x + w, y + h] for x, y, w, h in gt_raw[str(p.relative_to(args.data / "images"))]],
                           np.float32).reshape(-1, 4) for p in paths}

    cores = os.cpu_count() or 1
    base = Settings(**({"pack": args.pack} if args.pack else {}))
    # Naive: one session using every core, as FaceAnalysis would be configured.
    naive_engine = FaceEngine.from_settings(base.model_copy(update={"threads": cores}))
    # Engine: the ingest plan (on CPU: one inference worker per core, one thread each).
    workers, threads = plan_parallelism(base)
    engine = FaceEngine.from_settings(base.model_copy(update={"threads": threads}))

    result: dict[str, Any] = {
        "dataset": str(args.data), "photos": len(paths), "ground_truth_faces": int(sum(len(v) for v in gt.values())),
        "pack": engine.pack_name, "machine": {"cpus": cores, "platform": platform.platform(),
                                               "processor": platform.processor()},
        "settings": base.model_dump(mode="json", include={"min_face_px", "det_target_face_px", "det_pad_ratio",
                                                          "det_global_size", "det_threshold", "embed_batch"}),
    }
    engine_run(engine, paths[:4], workers)  # warm-up
    naive_loop(naive_engine, paths[:2])
    n_time, n_boxes, n_emb, n_faces = naive_loop(naive_engine, paths)
    e_time, e_boxes, e_emb, e_faces = engine_run(engine, paths, workers)
    result["naive"] = {"seconds": n_time, "photos_per_s": len(paths) / n_time, "faces": n_faces,
                       "faces_per_s": n_faces / n_time}
    result["engine"] = {"seconds": e_time, "photos_per_s": len(paths) / e_time, "faces": e_faces,
                        "faces_per_s": e_faces / e_time, "workers": workers, "threads_per_worker": threads}
    result["speedup_photos_per_s"] = result["engine"]["photos_per_s"] / result["naive"]["photos_per_s"]
    result["same_faces"] = same_faces(e_boxes, e_emb, n_boxes, n_emb)
    result["recall_engine"] = recall_by_size(gt, e_boxes)
    result["micro_single_session_all_cores"] = micro(naive_engine, paths)

    if args.sweep:
        sweep = []
        subset = paths[: args.sweep]
        sub_gt = {p.name: gt[p.name] for p in subset}
        for target, pad, gsize in ((12, 0.5, 640), (16, 0.5, 640), (20, 0.5, 640), (16, 0.0, 640),
                                   (16, 0.5, 320), (12, 0.5, 320), (16, 0.5, 480)):
            cfg = replace(naive_engine.detector.config, target_face_px=target, pad_ratio=pad, base_size=gsize)
            detector = type(naive_engine.detector)(naive_engine.detector.session, cfg)
            images = [decode_image(p.read_bytes()) for p in subset]
            start = time.perf_counter()
            found = {p.name: detector.detect(im.pixels).boxes for p, im in zip(subset, images)}
            ms = (time.perf_counter() - start) / len(subset) * 1000
            sweep.append({"target_face_px": target, "pad_ratio": pad, "global_size": gsize, "ms_per_photo": ms,
                          "recall": recall_by_size(sub_gt, found)})
        result["detector_sweep"] = {"photos": len(subset), "runs": sweep}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("naive", "engine", "speedup_photos_per_s", "same_faces")}, indent=2))
    if args.plot:
        plot(result, args.plot)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.bar(["naive loop", "engine"], [result["naive"]["photos_per_s"], result["engine"]["photos_per_s"]],
            color=["#999", "#2a7"])
    ax1.set_ylabel("photos / s")
    ax1.set_title(f"{result['photos']} WIDER val photos, {result['machine']['cpus']} CPU cores")
    buckets = [k for k in result["recall_engine"] if k != "ge24px"]
    ax2.bar(buckets, [result["recall_engine"][k]["recall"] or 0 for k in buckets], color="#27a")
    ax2.set_ylim(0, 1)
    ax2.set_title("detection recall by face height (IoU>=0.4)")
    ax2.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
