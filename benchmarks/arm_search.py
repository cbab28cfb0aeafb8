"""Does a discrete arm search (maskpose.armsearch) fix the wrists of a trained model's answers?

    python benchmarks/arm_search.py CHECKPOINT TEST_DIR [--limit N] [--dirs D] [--margin PX] [--fit ITERS]
        [--json FILE]

Predicts the test split with the network, then reports strict MPJPE / P-MPJPE and the root-aligned
wrist and elbow errors for: the network; the network + one search; and with ``--fit ITERS`` the
per-sample fit (``maskpose fit``, ``infer.fit_poses``) with 0 .. ``--cycles`` cycles of (search, fit). Ground truth (gt/) is read only to score. Prints the time per sample.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from maskpose import metrics as M
from maskpose.armsearch import search_arms
from maskpose.data.folder import MaskPoseDataset
from maskpose.infer import fit_poses
from maskpose.skeleton import get_joint_set
from maskpose.train import load_model, predict_dataset, resolve_device


def score(pred: np.ndarray, gt: np.ndarray, js) -> dict:
    pj = M.per_joint_mpjpe(pred, gt, joint_set=js)
    j = js.index
    return {"mpjpe": M.mpjpe(pred, gt, joint_set=js), "p_mpjpe": M.p_mpjpe(pred, gt, joint_set=js),
            "wrist": float(np.mean([pj[j("LWrist")], pj[j("RWrist")]])),
            "elbow": float(np.mean([pj[j("LElbow")], pj[j("RElbow")]]))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--dirs", type=int, default=64)
    ap.add_argument("--margin", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--girth", type=float, default=1.0)
    ap.add_argument("--fit", type=int, default=0, help="also run maskpose fit for this many iterations")
    ap.add_argument("--cycles", type=int, default=2, help="with --fit: maskpose fit with 0 .. this many search cycles")
    ap.add_argument("--only-last", action="store_true", help="with --fit: only the fit with --cycles cycles")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    dev = resolve_device(args.device)
    model, cfg, _ = load_model(args.checkpoint, dev)
    js = get_joint_set(cfg.joint_set)
    res = predict_dataset(model, args.data, cfg, dev, limit=args.limit)
    n = res["num"]
    ds = MaskPoseDataset(args.data, with_gt=False, preload=True)
    items = [ds[i] for i in range(n)]
    st = lambda k: torch.stack([it[k] for it in items])  # noqa: E731
    masks, cams, valid, weights = st("masks"), st("crop_cameras"), st("valid"), st("weights")
    gt = np.load(args.data / "gt" / "joints3d.npy")[:n]
    rows = {"network": score(res["joints3d"], gt, js)}
    t = time.time()
    girth = torch.full((n,), args.girth)
    X, gain = search_arms(torch.tensor(res["joints3d"], dtype=torch.float32), masks.float(), cams.float(), valid, js,
                          cfg.loss, girth, num_dirs=args.dirs, margin_px=args.margin, rounds=args.rounds, top_k=args.top_k)
    dt = (time.time() - t) / n
    searched = X.double().numpy()
    rows["network + search"] = score(searched, gt, js)
    rows["network + search"]["changed_arms"] = float((gain > 0).float().mean())
    if args.fit:
        for c in ([args.cycles] if args.only_last else range(args.cycles + 1)):
            name = "network + fit" if c == 0 else f"network + (search + fit) x {c}"
            t = time.time()
            rows[name] = score(fit_poses(res["joints3d"], masks, weights, cams, valid, cfg, iters=args.fit, device=dev,
                                         search_cycles=c, search_dirs=args.dirs), gt, js)
            rows[name]["s_per_sample"] = (time.time() - t) / n
            print(name, rows[name], flush=True)
    print(f"{n} samples, {args.dirs} directions, margin {args.margin} px: search {dt * 1000:.0f} ms/sample "
          f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    for k, r in rows.items():
        print(f"{k:>24}: " + " ".join(f"{a} {b:.3f}" if a in ("changed_arms", "s_per_sample") else f"{a} {b:.1f}" for a, b in r.items()))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "args": {k: str(v) for k, v in vars(args).items()},
                                         "ms_per_sample": dt * 1000, "machine": platform.platform()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
