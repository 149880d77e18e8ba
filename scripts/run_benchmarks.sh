#!/usr/bin/env bash
# Full benchmark suite (minutes to an hour on 2 cores). Results: benchmarks/results/*.json + *.png.
# Run on an otherwise idle machine: every speed figure is a ratio or latency measured in this run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
SHARED="${PICSORT_SHARED_DIR:-../shared}"
R=benchmarks/results
mkdir -p "$R"
picsort models fetch
picsort eval lfw --data "$SHARED/datasets/lfw" --flip --json "$R/lfw_pypi-small.json"
picsort eval lfw --data "$SHARED/datasets/lfw" --flip --pack "dir:$SHARED/models" --json "$R/lfw_shared-mobilefacenet.json"
python benchmarks/bench_engine.py --data "$SHARED/datasets/wider_val" --sweep 80 --out "$R/engine.json" --plot "$R/engine.png"
python benchmarks/bench_grouping.py --lfw "$SHARED/datasets/lfw" --identities 400 --out "$R/grouping.json"
python benchmarks/bench_ingest.py --wider "$SHARED/datasets/wider_val" --lfw "$SHARED/datasets/lfw" --synthetic 600 --out "$R/ingest.json"
python benchmarks/bench_search.py --sizes 10000 100000 500000 --out "$R/search.json" --plot "$R/search.png"
# Event-scale search: the tuning half (crowd model, policy sweep), then the reported half with the peer.
# face_recognition (dlib) is the peer a small venue would pick: installed here, not a project dependency.
python -m pip install -q dlib-bin face-recognition-models && python -m pip install -q --no-deps face-recognition
python benchmarks/bench_event_scale.py --lfw "$SHARED/datasets/lfw" --wider "$SHARED/datasets/wider_val" --calibrate --half tune
python benchmarks/bench_event_scale.py --lfw "$SHARED/datasets/lfw" --wider "$SHARED/datasets/wider_val" --dlib
python benchmarks/bench_lfw_far.py --lfw "$SHARED/datasets/lfw" --out "$R/lfw_far.json"
python benchmarks/bench_search_latency.py --lfw "$SHARED/datasets/lfw" --sizes 10000 125000 --out "$R/search_latency.json"
python benchmarks/bench_ingest.py --wider "$SHARED/datasets/wider_val" --no-bodies --synthetic 0 --out "$R/ingest_no_bodies.json"
python benchmarks/bench_load.py --dataset "$SHARED/datasets/lfw" --out "$R/load.json"
# The code against a baseline revision (default: the commit before the redesign of issue 13), interleaved.
python benchmarks/bench_ab.py --baseline "${PICSORT_AB_BASELINE:-eb1ff0a}" --lfw "$SHARED/datasets/lfw" \
    --wider "$SHARED/datasets/wider_val" --rounds 4 --searches 120 --out "$R/redesign_ab.json"
# Reliability figures for the README: case counts of the fuzz, auth-matrix and crash-restart tests.
PICSORT_FUZZ_REPORT=1 PICSORT_AUTH_REPORT=1 PICSORT_CRASH_REPORT=1 \
    python -m pytest -q tests/search/test_fuzz.py tests/search/test_auth_matrix.py tests/search/test_crash_restart.py
python benchmarks/report.py --write
