#!/usr/bin/env bash
# Real-footage trial: maskpose prepare on the Pose2Sim single-person demo, a consistency check, a short train.
#
#   bash benchmarks/pose2sim_demo.sh [WORKDIR]
#
# Fetches the pose2sim wheel with pip (it ships Demo_SinglePerson: 4 calibrated 1080x1920 videos of 100 frames
# and a Qualisys .qca.txt calibration) into WORKDIR (default: a new temp dir), prepares a 128 px dataset from every
# 2nd frame, checks masks and cameras (benchmarks/pose2sim_demo.py: re-projection of triangulated silhouette
# points, overlays), and trains for a few steps on it. Nothing is written into the repository.
# Environment: PY (python to use, default .venv/bin/python or python3), STRIDE (2), MAX_FRAMES (all),
# MASKER (median), SIZE (128), TRAIN_STEPS (30).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$( [ -x "$here/.venv/bin/python" ] && echo "$here/.venv/bin/python" || echo python3 )}"
WORK="${1:-$(mktemp -d -t maskpose-pose2sim-XXXXXX)}"
STRIDE="${STRIDE:-2}"
MASKER="${MASKER:-median}"
SIZE="${SIZE:-128}"
TRAIN_STEPS="${TRAIN_STEPS:-30}"
MAX_FRAMES_ARGS=()
[ -n "${MAX_FRAMES:-}" ] && MAX_FRAMES_ARGS=(--max-frames "$MAX_FRAMES")
mkdir -p "$WORK"
echo "work dir: $WORK"

# 1. the demo footage, from the pose2sim wheel (no git, no other download)
DEMO="$WORK/Pose2Sim/Demo_SinglePerson"
if [ ! -d "$DEMO/videos" ]; then
  "$PY" -m pip download --no-deps --quiet pose2sim -d "$WORK/wheel"
  whl="$(ls "$WORK"/wheel/pose2sim-*.whl | head -n 1)"
  "$PY" - "$whl" "$WORK" <<'EOF'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    z.extractall(out, [n for n in z.namelist() if n.startswith("Pose2Sim/Demo_SinglePerson/")])
EOF
fi
ls "$DEMO/videos" "$DEMO/calibration/Calib.qca.txt"

# 2. prepare: through the CLI when this maskpose has `prepare`, else through the Python function
OUT="$WORK/dataset"
if "$PY" -m maskpose prepare --help >/dev/null 2>&1; then
  time "$PY" -m maskpose prepare "$DEMO/videos" --out "$OUT" --calibration "$DEMO/calibration/Calib.qca.txt" \
    --size "$SIZE" --stride "$STRIDE" "${MAX_FRAMES_ARGS[@]}" --masker "$MASKER" --overwrite
  CHECK_ARGS=(--prepared)
else
  echo "(this maskpose has no 'prepare' command yet: calling maskpose.data.prepare.prepare_dataset directly)"
  CHECK_ARGS=(--demo "$DEMO" --size "$SIZE" --stride "$STRIDE" "${MAX_FRAMES_ARGS[@]}" --masker "$MASKER" --overwrite)
fi

# 3. masks and cameras: coverage, re-projection of triangulated silhouette points, overlays to look at
time "$PY" "$here/benchmarks/pose2sim_demo.py" --out "$OUT" --overlays "$WORK/overlays" "${CHECK_ARGS[@]}"
echo "overlays (look at them): $WORK/overlays"

# 4. a short training run on the prepared folder (mask-only input, no evaluation split: there are no labels)
"$PY" -m maskpose train "$here/src/maskpose/configs/synthetic.yaml" data.train="$OUT" data.test= \
  optim.steps="$TRAIN_STEPS" optim.batch_size=4 log.out="$WORK/run" log.eval_every=0 log.image_every=0 \
  log.tensorboard=false
echo "done: dataset $OUT, run $WORK/run"
