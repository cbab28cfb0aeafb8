"""Label-free pseudo-labels for self-training: the network's answers refined per sample by
``maskpose fit`` with the arm search (``infer.fit_poses(search_cycles=C)``).

    python benchmarks/pseudo_labels.py CHECKPOINT DATA --out FILE.npz [--cycles 2] [--iters 100]
        [--batch 64] [--device auto] [--start K] [--limit N]

``--iters 0 --cycles 1`` labels with the arm search alone (only elbows and wrists move; ~65 ms per sample
on 2 threads instead of ~0.8 s per sample and thread).

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
import torch

from maskpose import metrics as M
from maskpose.data.folder import MaskPoseDataset
from maskpose.infer import fit_poses
from maskpose.skeleton import get_joint_set
from maskpose.train import load_model, predict_dataset, resolve_device


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

    dev = resolve_device(args.device)
    model, cfg, _ = load_model(args.checkpoint, dev)
    t = time.time()
    res = predict_dataset(model, args.data, cfg, dev, limit=args.start + args.limit if args.limit > 0 else 0)
    a = args.start
    res = {"joints3d": res["joints3d"][a:]}
    n = len(res["joints3d"])
    if n == 0:
        sys.exit(f"{args.data}: no samples from --start {a}")
    ds = MaskPoseDataset(args.data, with_gt=False, preload=True)
    items = [ds[i] for i in range(a, a + n)]
    st = lambda k: torch.stack([it[k] for it in items])  # noqa: E731
    refined = fit_poses(res["joints3d"], st("masks"), st("weights"), st("crop_cameras"), st("valid"), cfg,
                        iters=args.iters, batch_size=args.batch, device=dev, search_cycles=args.cycles,
                        search_dirs=args.dirs)
    dt = time.time() - t
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, pred=refined, before=res["joints3d"], ids=np.asarray(ds.ids[a:a + n]).astype(str))
    print(f"{n} samples in {dt:.0f} s ({dt / n * 1000:.0f} ms/sample, {dev}) -> {args.out}")
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
