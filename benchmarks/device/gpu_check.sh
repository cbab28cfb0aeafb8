#!/bin/bash
# One call on a lent CUDA machine (see docs/results/gpu/README.md): builds scikit-fmm from the carried
# sdist (it has no Linux wheels), runs the CUDA tests, profiles a training step on the GPU, and trains
# the default and loss.cover variants side by side on the one GPU for MINUTES each.
#   carry: .whl (meson, meson-python, pyproject-metadata wheels + scikit_fmm sdist)
#   usage: bash benchmarks/device/gpu_check.sh MINUTES "OVERRIDES A" "OVERRIDES B" ...   (MINUTES=tests: tests only)
set -u
MIN=${1:-4}; shift
DEV=${DEV:-cuda}; NTRAIN=${NTRAIN:-3000}; WORKERS=${WORKERS:-16}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
S=$OUT/summary.txt
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$S"; }
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/bt .whl/*.whl >/dev/null 2>&1
( export PYTHONPATH=/tmp/bt PATH=/tmp/bt/bin:$PATH
  python3 -m pip wheel -q --no-build-isolation --no-deps --no-index .whl/scikit_fmm-*.tar.gz -w /tmp/wfmm ) >"$OUT/build.txt" 2>&1
python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/wfmm/*.whl >>"$OUT/build.txt" 2>&1
export NTRAIN WORKERS OMP_NUM_THREADS=4
export PYTHONPATH=$PWD/src:/tmp/site:$PWD/tests PYTHONUNBUFFERED=1
say "$(nvidia-smi -L | head -1); $(python3 -c 'import torch, skfmm; print("torch", torch.__version__, "skfmm ok")' 2>&1 | tail -1)"
timeout 150 python3 -m pytest -q -p no:warnings -p no:cacheprovider tests/test_models.py tests/test_render.py tests/test_metrics.py \
  tests/test_train.py tests/test_armsearch.py -k "cuda" -rA 2>&1 | grep -E "PASSED|FAILED|SKIPPED|ERROR|passed|failed|Error|assert" | tail -n 40 >>"$S"
say "tests done"
[ "$MIN" = "tests" ] && exit 0
python3 - <<'PY' >>"$S" 2>&1
import time
from pathlib import Path
from maskpose.data.synthetic import generate_dataset
from maskpose.train import TensorBatches
t = time.time()
import os
for split, n in (("train", int(os.environ["NTRAIN"])), ("test", 200)):
    generate_dataset(Path("/tmp/data") / split, n, num_views=4, size=64, seed=0, split=split, overwrite=True, workers=int(os.environ["WORKERS"]))
print(f"generated {int(os.environ['NTRAIN']) + 200} samples in {time.time() - t:.0f} s ({os.environ['WORKERS']} workers)")
t = time.time(); TensorBatches("/tmp/data/train", "mask"); print(f"extremities cached in {time.time() - t:.0f} s")
PY
say "data done"
for b in 8 32; do timeout 90 python3 benchmarks/train_step_profile.py --data /tmp/data/train --device $DEV --batch $b 2>&1 | tail -n 11 >>"$S"; done
say "profile done"
i=0
for ov in "$@"; do
  i=$((i + 1))
  timeout $(python3 -c "print(int($MIN * 60 + 100))") python3 benchmarks/train_synthetic.py --minutes "$MIN" --train-samples $NTRAIN --data /tmp/data --eval-every 1000 \
    --device $DEV --out /tmp/run$i --json "$OUT/run$i.json" $ov >"$OUT/run$i.log" 2>&1 &
done
wait
for j in $(seq 1 $i); do cp /tmp/run$j/checkpoint.pt "$OUT/run$j.pt" 2>/dev/null; done
for j in $(seq 1 $i); do say "run$j: $(grep -E 'steps|MPJPE strict|P-MPJPE strict|wrist' "$OUT/run$j.log" | tail -n 6 | tr '\n' ' ')"; done
say "all done"
