"""Search time against event size, exact flat index against the large-event HNSW option, with the
option's recall@k measured against exact search. Vectors: clustered synthetic 128-d embeddings
(identities with several noisy views each, like faces of guests across an event).

    python benchmarks/bench_search.py --sizes 10000 100000 500000 --out benchmarks/results/search.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from indexer.vector_index import EventIndex


def clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    identities = max(1, n // 8)
    centres = rng.normal(size=(identities, dim)).astype(np.float32)
    x = centres[rng.integers(0, identities, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search.json"))
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/results/search.png"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    runs: list[dict[str, Any]] = []
    for n in args.sizes:
        x = clustered(n, args.dim, rng)
        ids = np.arange(1, n + 1, dtype=np.int64)
        q = x[rng.integers(0, n, args.queries)] + 0.3 * rng.normal(size=(args.queries, args.dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        exact_ids = None
        for kind in ("flat", "hnsw"):
            index = EventIndex(args.dim, kind)
            start = time.perf_counter()
            index.add(ids, x)
            build = time.perf_counter() - start
            index.search(q[:5], args.k)
            latencies = []
            found = []
            for row in q:  # one query at a time, as a guest's selfie search does
                t0 = time.perf_counter()
                _, got = index.search(row[None], args.k)
                latencies.append(time.perf_counter() - t0)
                found.append(got[0])
            found_arr = np.array(found)
            entry: dict[str, Any] = {"faces": n, "kind": kind, "build_s": build,
                                     "p50_ms": float(np.percentile(latencies, 50) * 1000),
                                     "p95_ms": float(np.percentile(latencies, 95) * 1000),
                                     "bytes": len(index.to_bytes())}
            if kind == "flat":
                exact_ids = found_arr
                entry["recall_at_k"] = 1.0
            elif exact_ids is not None:
                pairs = list(zip(found_arr, exact_ids, strict=True))  # one row per query in both
                hits = [len(set(a.tolist()) & set(b.tolist())) / args.k for a, b in pairs]
                entry["recall_at_k"] = float(np.mean(hits))
                hits10 = [len(set(a[:10].tolist()) & set(b[:10].tolist())) / 10 for a, b in pairs]
                entry["recall_at_10"] = float(np.mean(hits10))
            runs.append(entry)
            print(json.dumps(entry))
    result = {"dim": args.dim, "k": args.k, "queries": args.queries, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in ("flat", "hnsw"):
        pts = [r for r in runs if r["kind"] == kind]
        ax.plot([r["faces"] for r in pts], [r["p50_ms"] for r in pts], marker="o", label=kind)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("faces in the event")
    ax.set_ylabel(f"p50 search ms (k={args.k:d})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=90)


if __name__ == "__main__":
    main()
