"""Diagnostic only (uses labels): the ground truth written as a pseudo-label file, to measure the ceiling
of the self-training fine-tune (``data.pseudo=FILE loss.pseudo=1``) with perfect labels.

    python benchmarks/oracle_labels.py DATA --out FILE.npz [--start K] [--limit N]

Writes ``pred [N, J, 3]`` (world mm, read from ``DATA/gt/joints3d.npy``) and ``ids`` in the format of
``benchmarks/pseudo_labels.py``. A model fine-tuned on this file has seen labels: its numbers are an upper
bound for what label-free pseudo-labels of the same samples can give, never a result of the method.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="this many samples from --start (0: all)")
    args = ap.parse_args(argv)

    gt_file = args.data / "gt" / "joints3d.npy"
    if not gt_file.exists():
        sys.exit(f"{gt_file}: missing (the oracle needs ground truth)")
    gt = np.load(gt_file)
    try:
        ids = np.load(args.data / "samples.npz")["ids"].astype(str)
    except Exception as e:  # noqa: BLE001
        sys.exit(f"{args.data / 'samples.npz'}: cannot read the sample ids: {e}")
    if len(ids) != len(gt):
        sys.exit(f"{args.data}: {len(ids)} ids but {len(gt)} ground-truth poses")
    a = args.start
    b = len(gt) if args.limit <= 0 else min(len(gt), a + args.limit)
    if a >= b:
        sys.exit(f"{args.data}: no samples from --start {a}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, pred=gt[a:b].astype(np.float32), ids=ids[a:b])
    print(f"{b - a} ground-truth poses (samples {a}..{b - 1}) -> {args.out} (diagnostic: these are labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
