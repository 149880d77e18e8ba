"""True-accept rate at very low false-accept rates over ALL of LFW's pairs, not the 3,000 of pairs.txt.

Every labelled face of the 13,233 photos (the main face, as the event benchmark uses it) against
every other: about 242k same-person and 87M different-person pairs. At the rates an event search
needs (1e-5 and below) the 3,000 impostor pairs of the protocol say nothing.

    python benchmarks/bench_lfw_far.py --lfw ../shared/datasets/lfw --out benchmarks/results/lfw_far.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.bench_event_scale import labelled_faces
from benchmarks.event_faces import default_cache, engine_for_benchmark, load_or_extract
from picsort_local.settings import Settings

FARS = (1e-3, 1e-4, 1e-5, 1e-6)
BINS = 400_000  # histogram of cosines over [-1, 1]: thresholds to 5e-6


def far_table(vectors: np.ndarray, labels: np.ndarray, block: int = 2048) -> dict[str, object]:
    """Histograms of genuine and impostor cosines (upper triangle), then TAR at each FAR."""
    genuine = np.zeros(BINS, np.int64)
    impostor = np.zeros(BINS, np.int64)
    n = len(vectors)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        sims = vectors[rows] @ vectors.T
        upper = np.arange(n)[None, :] > np.arange(rows.start, rows.stop)[:, None]
        same = labels[rows][:, None] == labels[None, :]
        bins = np.clip(((sims + 1.0) / 2.0 * BINS).astype(np.int64), 0, BINS - 1)
        genuine += np.bincount(bins[upper & same], minlength=BINS)
        impostor += np.bincount(bins[upper & ~same], minlength=BINS)
    imp_above = np.cumsum(impostor[::-1])[::-1]  # impostors at or above each bin
    gen_above = np.cumsum(genuine[::-1])[::-1]
    out: dict[str, object] = {"genuine_pairs": int(genuine.sum()), "impostor_pairs": int(impostor.sum())}
    for far in FARS:
        allowed = far * impostor.sum()
        b = int(np.argmax(imp_above <= allowed))  # first bin whose impostors at or above fit the rate
        out[f"tar_at_far_{far:g}"] = float(gen_above[b] / genuine.sum())
        out[f"threshold_at_far_{far:g}"] = float(b / BINS * 2.0 - 1.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lfw_far.json"))
    args = parser.parse_args()
    engine, workers = engine_for_benchmark(Settings())
    lfw = load_or_extract(engine, "lfw", args.lfw, args.cache, workers)
    rows = labelled_faces(lfw)
    found = rows >= 0
    result = {"pack": engine.pack_name, "photos": int(found.sum()),
              **far_table(np.ascontiguousarray(lfw.embeddings[rows[found]]), lfw.identity[found])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
