#!/bin/bash
# One call on a lent CUDA machine: the synthetic training split (3000 samples, seed 0, as
# benchmarks/train_synthetic.py makes it) and its pseudo-labels from CHECKPOINT (benchmarks/pseudo_labels.py).
#   carry: .whl (meson wheels + scikit_fmm sdist) and CHECKPOINT
#   usage: bash benchmarks/device/pseudo_labels.sh CHECKPOINT [EXTRA ARGS]
set -u
CK=$1; shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/bt .whl/*.whl >/dev/null 2>&1
( export PYTHONPATH=/tmp/bt PATH=/tmp/bt/bin:$PATH
  python3 -m pip wheel -q --no-build-isolation --no-deps --no-index .whl/scikit_fmm-*.tar.gz -w /tmp/wfmm ) >"$OUT/build.txt" 2>&1
python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/wfmm/*.whl >>"$OUT/build.txt" 2>&1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=8
python3 - <<'PY'
from pathlib import Path
from maskpose.data.synthetic import generate_dataset
generate_dataset(Path("/tmp/data/train"), 3000, num_views=4, size=64, seed=0, split="train", overwrite=True, workers=16)
PY
md5sum /tmp/data/train/samples.npz /tmp/data/train/masks/000000_0.png /tmp/data/train/masks/002999_3.png
timeout 420 python3 benchmarks/pseudo_labels.py "$CK" /tmp/data/train --out "$OUT/pseudo_train.npz" --device cuda --batch 256 "$@"
