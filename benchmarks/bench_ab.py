"""The current checkout against a baseline revision, interleaved, on the hot paths a change may slow:
selfie search latency over HTTP at event scale and ingest throughput. Each workload is the
benchmark script of each tree itself (`bench_search_latency.py`, `bench_ingest.py`), run in its own
process with that tree first on the path, alternating the order every round (base, new / new, base),
on the same machine and data. Reports the medians of each tree and their ratio (new / base).

    python benchmarks/bench_ab.py --baseline eb1ff0a --lfw ../shared/datasets/lfw \\
        --wider ../shared/datasets/wider_val --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Workload:
    name: str
    metrics: dict[str, str]  # reported name -> what it measures
    argv: Callable[[argparse.Namespace, Path], list[str]]
    read: Callable[[dict[str, Any]], dict[str, float]]


def _search_argv(args: argparse.Namespace, out: Path) -> list[str]:
    return ["benchmarks/bench_search_latency.py", "--lfw", str(args.lfw), "--sizes", str(args.faces),
            "--searches", str(args.searches), "--out", str(out)]


def _search_read(result: dict[str, Any]) -> dict[str, float]:
    run = result["runs"][0]
    return {"p50_ms": run["p50_ms"], "p95_ms": run["p95_ms"], "decision_ms": run["decision"]["decision_p50_ms"]}


def _ingest_argv(args: argparse.Namespace, out: Path) -> list[str]:
    return ["benchmarks/bench_ingest.py", "--wider", str(args.wider), "--synthetic", "0",
            "--limit", str(args.photos), "--out", str(out)]


def _ingest_read(result: dict[str, Any]) -> dict[str, float]:
    return {"photos_per_s": result["wider"]["photos_per_s"], "faces_per_s": result["wider"]["faces_per_s"]}


WORKLOADS = {
    "search": Workload("search", {"p50_ms": "selfie search over HTTP, median (ms)",
                                  "p95_ms": "selfie search over HTTP, 95th percentile (ms)",
                                  "decision_ms": "the search decision in process, median per query (ms)"},
                       _search_argv, _search_read),
    "ingest": Workload("ingest", {"photos_per_s": "ingest of WIDER val photos (photos/s)",
                                  "faces_per_s": "ingest of WIDER val photos (faces/s)"},
                       _ingest_argv, _ingest_read),
}
LOWER_IS_BETTER = {"p50_ms", "p95_ms", "decision_ms"}


def export_tree(revision: str, into: Path) -> Path:
    """The files of `revision` (git archive: no worktree left behind in the repository)."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", revision],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_once(tree: Path, workload: Workload, args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    out = scratch / f"{workload.name}-{tree.name}-{time.monotonic_ns()}.json"
    # The tree first on the path: its packages, not the installed checkout's, are the ones measured.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "tests")])}
    started = time.perf_counter()
    subprocess.run([sys.executable, *workload.argv(args, out)], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=args.timeout)
    measured = workload.read(json.loads(out.read_text()))
    print(f"{workload.name} {tree.name}: {measured} ({time.perf_counter() - started:.0f} s)", flush=True)
    return measured


def summarise(runs: dict[str, list[dict[str, float]]], workload: Workload) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric in workload.metrics:
        base = statistics.median(r[metric] for r in runs["base"])
        new = statistics.median(r[metric] for r in runs["new"])
        out[metric] = {"base": base, "new": new, "ratio_new_over_base": new / base,
                       "lower_is_better": metric in LOWER_IS_BETTER, "what": workload.metrics[metric]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--wider", type=Path, required=True)
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["search", "ingest"])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tree per workload")
    parser.add_argument("--faces", type=int, default=125_000, help="event size for the search workload")
    parser.add_argument("--searches", type=int, default=60)
    parser.add_argument("--photos", type=int, default=120, help="WIDER photos for the ingest workload")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/redesign_ab.json")
    args = parser.parse_args(argv)
    args.lfw, args.wider = args.lfw.resolve(), args.wider.resolve()
    revision = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.baseline], check=True,
                              capture_output=True, text=True).stdout.strip()
    current = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
    result: dict[str, Any] = {"baseline": revision, "new": f"{current} (+ working tree)", "rounds": args.rounds,
                              "machine_cpus": os.cpu_count(), "faces": args.faces, "photos": args.photos}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        trees = {"base": export_tree(args.baseline, scratch / "base"), "new": REPO}
        for name in args.workloads:
            workload = WORKLOADS[name]
            runs: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
            for round_ in range(args.rounds):
                order = ("base", "new") if round_ % 2 == 0 else ("new", "base")
                for which in order:
                    runs[which].append(run_once(trees[which], workload, args, scratch))
            result[name] = {"runs": runs, "summary": summarise(runs, workload)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v["summary"] for k, v in result.items() if isinstance(v, dict) and "summary" in v},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
