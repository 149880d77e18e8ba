"""Face engine benchmark on WIDER FACE val photos: the engine's pipeline against a naive per-image
loop in the style of insightface's FaceAnalysis, same pack, same detector settings, same images,
measured in the same run. Also: detection ms/image, embedding ms/face by batch size for the pack's
graph as shipped and as the engine rewrites it, recall by face size against the ground-truth boxes,
and a sweep of detector settings (recall vs time).

Two naive arms, so the ratio can be read both ways:
- `naive`: the pack's ONNX files run the way insightface's model_zoo runs them (a default
  onnxruntime session on the file as shipped; the detector only gets its input size freed, which
  the multi-scale detection needs). This is what a developer gets from the FaceAnalysis recipe.
- `naive_engine_graphs`: the same loop on the engine's sessions (PRelu rewritten, all cores), which
  isolates what the pipeline itself (batching, parallel workers, decoding) adds.

    python benchmarks/bench_engine.py --data ../shared/datasets/wider_val --out benchmarks/results/engine.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from models.detector import ScrfdDetector
from models.embedder import FaceEmbedder
from models.engine import FaceEngine
from models.graph_fixes import make_batch_dynamic, make_detector_dynamic
from models.packs import load_pack
from models.pipeline import analyze_stream
from models.runtime import choose_providers, plan_parallelism
from picsort_local.images import decode_image
from picsort_local.settings import EngineSettings, Settings

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


def recall_by_size(gt: dict[str, np.ndarray], found: dict[str, np.ndarray],
                   iou: float = 0.4) -> dict[str, Any]:
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


class RunResult(NamedTuple):
    seconds: float
    boxes: dict[str, np.ndarray]
    embeddings: dict[str, np.ndarray]
    faces: int


Runner = Callable[[list[Path]], RunResult]


@dataclass
class ArmTotal:
    seconds: float = 0.0
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    faces: int = 0
    per_block: list[float] = field(default_factory=list)


def run_interleaved(runners: dict[str, Runner], paths: list[Path], blocks: int) -> dict[str, ArmTotal]:
    """Run every arm on every block of photos, rotating which arm goes first in each block, so a
    machine that speeds up or slows down during the run (shared CPUs do) weighs on all arms alike.
    `blocks` is rounded up to a multiple of the number of arms, so each arm goes first equally often."""
    names = list(runners)
    blocks = -(-max(blocks, 1) // len(names)) * len(names)
    parts = [list(b) for b in np.array_split(np.array(paths, dtype=object), blocks) if len(b)]
    totals = {n: ArmTotal() for n in names}
    for index, block in enumerate(parts):
        for name in names[index % len(names):] + names[: index % len(names)]:
            run = runners[name](block)
            total = totals[name]
            total.seconds += run.seconds
            total.boxes.update(run.boxes)
            total.embeddings.update(run.embeddings)
            total.faces += run.faces
            total.per_block.append(run.seconds)
    return totals


def naive_loop(engine: FaceEngine, paths: list[Path]) -> RunResult:
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
    return RunResult(time.perf_counter() - start, boxes, embs, faces)


def _stock_session(graph: onnx.ModelProto, settings: EngineSettings,
                   threads: int = 0) -> ort.InferenceSession:
    """A session made the model_zoo way: onnxruntime's default options (`threads` only for the
    one-thread micro benchmark), except that its unused-initializer warnings are silenced."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    providers = choose_providers(settings.device)
    return ort.InferenceSession(graph.SerializeToString(), options, providers=providers)


def stock_embedder(engine: FaceEngine, settings: EngineSettings, *, batch_dynamic: bool = False,
                   threads: int = 0) -> FaceEmbedder:
    """The pack's embedder file as shipped, with the engine's preprocessing. `batch_dynamic` only for
    the batch-size micro benchmark: the naive loop embeds one face a call."""
    graph = onnx.load(str(load_pack(settings.models_dir, settings.pack).embedder_path))
    if batch_dynamic:
        make_batch_dynamic(graph)
    return FaceEmbedder(_stock_session(graph, settings, threads), mean=engine.embedder.mean,
                        std=engine.embedder.std, bgr=engine.embedder.bgr, batch_size=1)


def stock_engine(engine: FaceEngine, settings: EngineSettings) -> FaceEngine:
    """The engine's pack and detector settings on default sessions, no graph rewrites (the detector's
    input size is freed only because the multi-scale detection cannot run at a fixed 640x640)."""
    graph = onnx.load(str(load_pack(settings.models_dir, settings.pack).detector_path))
    make_detector_dynamic(graph)
    detector = ScrfdDetector(_stock_session(graph, settings), engine.detector.config)
    return FaceEngine(detector, stock_embedder(engine, settings), settings, engine.pack_name)


def engine_run(engine: FaceEngine, paths: list[Path], workers: int) -> RunResult:
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
    return RunResult(time.perf_counter() - start, boxes, embs, faces)


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


def micro_detection(engine: FaceEngine, paths: list[Path]) -> float:
    images = [decode_image(p.read_bytes()) for p in paths[:20]]
    engine.detect(images[0])
    start = time.perf_counter()
    for im in images:
        engine.detect(im)
    return (time.perf_counter() - start) / len(images) * 1000


def micro_embedding(embedder: FaceEmbedder, batches: tuple[int, ...] = (1, 2, 4, 8, 32)) -> dict[str, float]:
    """ms per face at each batch size, best of 3 (the graph's batch dim must be free above 1)."""
    crops = np.random.default_rng(0).integers(0, 255, (64, 112, 112, 3), dtype=np.uint8)
    saved = embedder.batch_size
    out = {}
    for batch in batches:
        embedder.batch_size = batch
        embedder.embed(crops[:batch])
        best = float("inf")
        for _ in range(3):  # best of 3: a short timing on a shared CPU is easily disturbed
            start = time.perf_counter()
            embedder.embed(crops)
            best = min(best, time.perf_counter() - start)
        out[f"batch{batch}"] = best / len(crops) * 1000
    embedder.batch_size = saved
    return out


def main() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)  # skimage deprecation inside insightface
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pack", default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    parser.add_argument("--sweep", type=int, default=60,
                        help="photos for the detector-settings sweep (0 = skip)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/engine.json"))
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--blocks", type=int, default=6,
                        help="photo blocks; the arms take turns on each block (rotating order)")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 2, 4, 32],
                        help="extra engine arms at these faces per embedder call (none: --batches)")
    args = parser.parse_args()

    gt_raw = json.loads((args.data / "boxes.json").read_text())
    paths = sorted(args.data / "images" / k for k in gt_raw)
    if args.limit:
        paths = paths[: args.limit]
    gt = {p.name: np.array([[x, y, x + w, y + h]
                            for x, y, w, h in gt_raw[str(p.relative_to(args.data / "images"))]],
                           np.float32).reshape(-1, 4) for p in paths}

    cores = os.cpu_count() or 1
    base = Settings(**({"pack": args.pack} if args.pack else {}))
    # Engine: the ingest plan (on CPU: one inference worker per core, one thread each).
    workers, threads = plan_parallelism(base.engine, base.ingest)
    engine = FaceEngine.from_settings(replace(base.engine, threads=threads))
    # Naive loop on the engine's graphs: one session using every core.
    naive_engine = FaceEngine.from_settings(replace(base.engine, threads=cores))
    # Naive loop as FaceAnalysis runs it: default sessions on the pack's files as shipped.
    stock = stock_engine(naive_engine, base.engine)

    result: dict[str, Any] = {
        "dataset": str(args.data), "photos": len(paths),
        "ground_truth_faces": int(sum(len(v) for v in gt.values())),
        "pack": engine.pack_name, "machine": {"cpus": cores, "platform": platform.platform(),
                                               "processor": platform.processor()},
        "settings": base.model_dump(mode="json", include={"min_face_px", "det_target_face_px",
                                                          "det_pad_ratio", "det_global_size",
                                                          "det_threshold"}),
        "embed_batch": engine.embedder.batch_size,
    }

    def arm(seconds: float, faces: int, **extra: Any) -> dict[str, Any]:
        return {"seconds": seconds, "photos_per_s": len(paths) / seconds, "faces": faces,
                "faces_per_s": faces / seconds, **extra}

    # The same pipeline at other embedder batch sizes, each on its own sessions (the default batch is
    # chosen by device; these show whether that choice holds end to end).
    batch_engines = {b: FaceEngine.from_settings(replace(base.engine, threads=threads, embed_batch=b))
                     for b in args.batches if b != engine.embedder.batch_size}
    runners: dict[str, Runner] = {
        "naive": lambda block: naive_loop(stock, block),
        "naive_engine_graphs": lambda block: naive_loop(naive_engine, block),
        "engine": lambda block: engine_run(engine, block, workers),
    }
    for batch, batch_engine in batch_engines.items():
        runners[f"engine_embed_batch{batch}"] = functools.partial(engine_run, batch_engine, workers=workers)
    for path in paths:  # every arm reads the files from the page cache, not only whichever goes first
        path.read_bytes()
    for run in runners.values():  # warm-up
        run(paths[:2])
    runs = run_interleaved(runners, paths, args.blocks)
    result["interleaved_blocks"] = len(runs["engine"].per_block)
    e, n, g = runs["engine"], runs["naive"], runs["naive_engine_graphs"]
    e_boxes, e_emb = e.boxes, e.embeddings
    result["naive"] = arm(n.seconds, n.faces, graphs="as shipped", sessions="onnxruntime defaults")
    result["naive_engine_graphs"] = arm(g.seconds, g.faces, graphs="engine's (PRelu rewritten)",
                                        sessions=f"engine's, {cores} threads")
    result["engine"] = arm(e.seconds, e.faces, workers=workers, threads_per_worker=threads)
    result["engine_by_embed_batch"] = {str(engine.embedder.batch_size): result["engine"]["photos_per_s"]}
    for batch in batch_engines:
        total = runs[f"engine_embed_batch{batch}"]
        result["engine_by_embed_batch"][str(batch)] = arm(total.seconds, total.faces)["photos_per_s"]
    result["speedup_photos_per_s"] = result["engine"]["photos_per_s"] / result["naive"]["photos_per_s"]
    result["speedup_vs_naive_engine_graphs"] = (result["engine"]["photos_per_s"]
                                                / result["naive_engine_graphs"]["photos_per_s"])
    result["speedup_naive_engine_graphs_vs_naive"] = (result["naive_engine_graphs"]["photos_per_s"]
                                                      / result["naive"]["photos_per_s"])
    result["speedup_per_block"] = [a / b for a, b in zip(n.per_block, e.per_block, strict=True)]
    result["speedup_vs_naive_engine_graphs_per_block"] = [a / b for a, b in zip(g.per_block, e.per_block,
                                                                                strict=True)]
    result["same_faces"] = same_faces(e_boxes, e_emb, n.boxes, n.embeddings)
    result["same_faces_engine_graphs"] = same_faces(e_boxes, e_emb, g.boxes, g.embeddings)
    result["recall_engine"] = recall_by_size(gt, e_boxes)
    result["micro_single_session_all_cores"] = {
        "detection_ms_per_image": micro_detection(naive_engine, paths),
        "embedding_ms_per_face_as_shipped": micro_embedding(
            stock_embedder(naive_engine, base.engine, batch_dynamic=True)),
        "embedding_ms_per_face_engine_graph": micro_embedding(naive_engine.embedder),
    }
    result["micro_one_thread_ms_per_face"] = {
        "as_shipped": micro_embedding(stock_embedder(naive_engine, base.engine, batch_dynamic=True,
                                                     threads=1)),
        "engine_graph": micro_embedding(engine.embedder),
    }

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
            found = {p.name: detector.detect(im.pixels).boxes for p, im in zip(subset, images, strict=True)}
            ms = (time.perf_counter() - start) / len(subset) * 1000
            sweep.append({"target_face_px": target, "pad_ratio": pad, "global_size": gsize,
                          "ms_per_photo": ms, "recall": recall_by_size(sub_gt, found)})
        result["detector_sweep"] = {"photos": len(subset), "runs": sweep}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("naive", "naive_engine_graphs", "engine", "speedup_photos_per_s",
                                             "speedup_vs_naive_engine_graphs", "same_faces")}, indent=2))
    if args.plot:
        plot(result, args.plot)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.bar(["naive loop\n(graphs as shipped)", "naive loop\n(engine graphs)", "engine"],
            [result["naive"]["photos_per_s"], result["naive_engine_graphs"]["photos_per_s"],
             result["engine"]["photos_per_s"]], color=["#999", "#bbb", "#2a7"])
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
