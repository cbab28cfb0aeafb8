"""Label-free pseudo-labels for self-training: the network's answers refined per sample by
``maskpose fit`` with the arm search (``infer.fit_poses(search_cycles=C)``).

    python benchmarks/pseudo_labels.py CHECKPOINT DATA --out FILE.npz [--cycles 2] [--iters 100]
        [--batch 64] [--device auto] [--start K] [--limit N]

``--iters 0 --cycles 1`` labels with the arm search alone (only elbows and wrists move; ~65 ms per sample
on 2 threads instead of ~0.8 s per sample and thread).

The work is :func:`maskpose.selftrain.label_samples` (``maskpose selftrain`` runs it in worker processes).
Writes ``pred [N, J, 3]`` (world mm, the refined poses), ``before`` (the network's) and ``ids``: the
file ``data.pseudo`` of a training config reads. No labels are used; if DATA has gt/ the script
prints the metrics before and after, for the record only.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from maskpose import metrics as M
from maskpose.selftrain import label_samples, write_pseudo
from maskpose.skeleton import get_joint_set
from maskpose.train import load_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--iters", type=int, default=100, help="Adam steps per cycle; 0 with --cycles 1: the arm search alone")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dirs", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0, help="label this many samples (0: all from --start)")
    ap.add_argument("--start", type=int, default=0, help="first sample (to split the work between processes)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    t = time.time()
    lab = label_samples(args.checkpoint, args.data, start=args.start, limit=args.limit, cycles=args.cycles,
                        iters=args.iters, dirs=args.dirs, batch_size=args.batch, device=args.device)
    dt = time.time() - t
    n, a = len(lab["ids"]), args.start
    write_pseudo(args.out, [lab])
    print(f"{n} samples in {dt:.0f} s ({dt / n * 1000:.0f} ms/sample) -> {args.out}")
    res, refined = {"joints3d": lab["before"]}, lab["pred"]
    _, cfg, _ = load_model(args.checkpoint)
    gt_file = args.data / "gt" / "joints3d.npy"
    if gt_file.exists():
        js = get_joint_set(cfg.joint_set)
        gt = np.load(gt_file)[a:a + n]
        j = js.index
        for name, p in (("network", res["joints3d"]), ("fit + search", refined)):
            pj = M.per_joint_mpjpe(p, gt, joint_set=js)
            print(f"{name:>14}: MPJPE {M.mpjpe(p, gt, joint_set=js):.1f}  P-MPJPE {M.p_mpjpe(p, gt, joint_set=js):.1f}  "
                  f"wrists {(pj[j('LWrist')] + pj[j('RWrist')]) / 2:.1f}  (gt read only to report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
