"""How fast the pseudo-labels are made: the arm search and the fit, at several batch sizes, one thread.

    python benchmarks/label_speed.py [--data DIR] [--samples 64] [--iters 20] [--json FILE]

``maskpose selftrain`` labels with one-thread worker processes (``selftrain.label_samples``): per batch of
samples, the arm search (``armsearch.search_arms``) and Adam steps of the fit (``infer.fit_poses``). Both are
per-sample computations, so the batch size changes the speed and not the answer; this measures both at
several batch sizes on the same starting poses and checks that the answers are equal. The starting poses are
the test split's ground truth plus 40 mm Gaussian noise per joint coordinate (ground truth is read only to
make a plausible start: the speed does not depend on where the poses come from). Data: ``--data`` (a dataset
folder; default: 200 synthetic test samples generated into /tmp/maskpose_bench/test if missing).
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

from maskpose.config import load_yaml
from maskpose.data.folder import MaskPoseDataset, load_dataset_meta
from maskpose.demo import default_config_path
from maskpose.infer import fit_poses
from maskpose.train import TrainConfig


def _timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20, help="fit steps timed (the search is timed apart)")
    ap.add_argument("--search-batches", default="16,8,4,2")
    ap.add_argument("--fit-batches", default="64,32,16,8")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = args.data
    if root is None:
        root = Path("/tmp/maskpose_bench/test")
        try:
            load_dataset_meta(root)
        except Exception:
            from maskpose.data.synthetic import generate_dataset
            generate_dataset(root, 200, num_views=4, size=64, seed=0, split="test", overwrite=True)
    cfg = load_yaml(TrainConfig, default_config_path())
    ds = MaskPoseDataset(root, with_gt=True, preload=False)
    n = min(args.samples, len(ds))
    items = [ds[i] for i in range(n)]
    st = lambda k: torch.stack([it[k] for it in items])  # noqa: E731
    gt = st("gt_joints3d").double().numpy()
    start = gt + np.random.default_rng(0).normal(0.0, 40.0, gt.shape)
    data = (st("masks"), st("weights"), st("crop_cameras"), st("valid"), cfg)
    result = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, 1 thread, torch {torch.__version__}",
              "samples": n, "fit_iters": args.iters, "search": {}, "fit": {}}
    print(result["machine"], f"{n} samples of {root}")
    ref = None
    for bs in [int(b) for b in args.search_batches.split(",")]:
        # one pass of the arm search over L and R, as each cycle of the labels' fit runs it
        dt, out = _timed(lambda: _search(start, data, bs), args.repeats)
        ref = out if ref is None else ref
        same = float(np.abs(out - ref).max())
        result["search"][bs] = {"seconds": dt, "ms_per_sample": 1e3 * dt / n, "max_diff_mm": same}
        print(f"arm search, batch {bs:3d}: {dt:6.2f} s ({1e3 * dt / n:6.1f} ms/sample), max diff {same:.2e} mm")
    ref = None
    for bs in [int(b) for b in args.fit_batches.split(",")]:
        dt, out = _timed(lambda: fit_poses(start, *data, iters=args.iters, batch_size=bs, search_cycles=0),
                         args.repeats)
        ref = out if ref is None else ref
        same = float(np.abs(out - ref).max())
        per = 1e3 * dt / n / args.iters
        result["fit"][bs] = {"seconds": dt, "ms_per_sample_step": per, "max_diff_mm": same}
        print(f"fit ({args.iters} steps), batch {bs:3d}: {dt:6.2f} s ({per:5.2f} ms per sample-step), "
              f"max diff {same:.2e} mm")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _search(start: np.ndarray, data, batch_size: int) -> np.ndarray:
    from maskpose.armsearch import search_arms
    from maskpose.skeleton import get_joint_set

    masks, _, cams, valid, cfg = data
    X, _ = search_arms(torch.tensor(start, dtype=torch.float32), masks.float(), cams.float(), valid,
                       get_joint_set(cfg.joint_set), cfg.loss, None, num_dirs=64, rounds=1, batch_size=batch_size)
    return X.double().numpy()


if __name__ == "__main__":
    sys.exit(main())
