"""Choose DBSCAN eps / min_samples for grouping faces into persons, on an LFW-derived event.

The event: identities with at least 2 photos (up to 10 photos each), plus identities seen once as
distractors, embedded with the default pack through our own detection and alignment. Reports
pairwise precision/recall and BCubed precision/recall/F1 for a grid of settings.

    python benchmarks/bench_grouping.py --lfw ../shared/datasets/lfw --identities 400
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from indexer import grouping
from models.engine import FaceEngine
from models.lfw import embed_images
from picsort_local.settings import Settings


def lfw_event(images_dir: Path, identities: int, per_identity: int, singles: int,
              seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    people = sorted(p for p in images_dir.iterdir() if p.is_dir())
    counts = {p.name: len(list(p.glob("*.jpg"))) for p in people}
    multi = [n for n, c in counts.items() if c >= 2]
    single = [n for n, c in counts.items() if c == 1]
    chosen = rng.choice(multi, size=min(identities, len(multi)), replace=False)
    names, labels = [], []
    for label, person in enumerate(sorted(chosen)):
        files = sorted((images_dir / person).glob("*.jpg"))[:per_identity]
        names += [f"{person}/{f.name}" for f in files]
        labels += [label] * len(files)
    picked = sorted(rng.choice(single, size=min(singles, len(single)), replace=False))
    for offset, person in enumerate(picked):
        names.append(f"{person}/{person}_0001.jpg")
        labels.append(len(chosen) + offset)
    return names, np.array(labels)


def sweep(embeddings: np.ndarray, truth: np.ndarray, eps_values: list[float],
          min_samples_values: list[int]) -> list[dict[str, Any]]:
    runs = []
    for min_samples in min_samples_values:
        for eps in eps_values:
            start = time.perf_counter()
            result = grouping.cluster(embeddings, eps=eps, min_samples=min_samples)
            runs.append({"eps": eps, "min_samples": min_samples, "persons": result.n_clusters,
                         "seconds": time.perf_counter() - start,
                         **grouping.pairwise_scores(result.labels, truth)})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--identities", type=int, default=400)
    parser.add_argument("--per-identity", type=int, default=10)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/grouping.json"))
    args = parser.parse_args()

    names, truth = lfw_event(args.lfw / "images", args.identities, args.per_identity, args.singles)
    engine = FaceEngine.from_settings(Settings().engine)
    start = time.perf_counter()
    embeddings, _, missed = embed_images(engine, args.lfw / "images", names)
    embed_s = time.perf_counter() - start
    runs = sweep(embeddings, truth, [round(x, 3) for x in np.arange(0.40, 0.76, 0.03)], [1, 2, 3])
    ok = [r for r in runs if r["pairwise_precision"] >= 0.98]
    best = max(ok or runs, key=lambda r: r["bcubed_f1"])
    result = {
        "event": {"faces": len(names), "identities": int(len(np.unique(truth))),
                  "identities_with_2plus": args.identities, "singles": args.singles,
                  "detection_misses": len(missed)},
        "pack": engine.pack_name, "embedding_seconds": embed_s,
        "chosen": best,
        "current_default": {"eps": grouping.DEFAULT_EPS, "min_samples": grouping.DEFAULT_MIN_SAMPLES},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("event", "chosen")}, indent=2))


if __name__ == "__main__":
    main()
