"""Where do the wrists' errors come from: the per-view 2D answers or how the views are combined?

    python benchmarks/view_diagnosis.py CHECKPOINT TEST_DIR [--limit 200]

Reads the ground truth (diagnostic only). For the network's matched per-view 2D answers (after the
label-free per-view L/R matching and the global labelling of training), prints per joint group:
* the per-view 2D error (px of the crop), its median over views and its worst view;
* the root-aligned 3D error of the triangulation as trained (equal weights), weighted by the detector's
  heatmap confidence, with the label-free outlier-view rejection of ``maskpose predict``
  (``predict.triangulate_views``, with and without confidences), and with an oracle that drops each
  joint's worst view by its true 2D error (an upper bound for any view weighting).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from maskpose import multiview as mv
from maskpose.data.folder import MaskPoseDataset
from maskpose.geometry import triangulate
from maskpose.predict import triangulate_views
from maskpose.skeleton import get_joint_set
from maskpose.train import lift_batch, load_model, predict_views


def root_aligned(X: torch.Tensor, gt: torch.Tensor, root: int) -> torch.Tensor:
    """``[N, J]`` per-joint error (mm) after aligning the roots."""
    return ((X - X[:, root:root + 1]) - (gt - gt[:, root:root + 1])).norm(dim=-1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    model, cfg, _ = load_model(args.checkpoint, "cpu")
    model.eval()
    js = get_joint_set(cfg.joint_set)
    ds = MaskPoseDataset(args.data, with_gt=True, preload=True)
    n = min(args.limit, len(ds)) if args.limit > 0 else len(ds)
    items = [ds[i] for i in range(n)]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("images", "masks", "crop_cameras", "valid",
                                                                 "gt_joints3d", "gt_joints2d")}
    pred = predict_views(model, batch, cfg)
    lifted = lift_batch(pred, batch, cfg, js)
    P = batch["crop_cameras"].double()
    S = batch["masks"].shape[-1]
    x = lifted["joints2d_matched"].double()  # [N, V, J, 2], per-view swaps applied
    flip, arm_flip = lifted["flip"], lifted["arm_flip"]
    V = x.shape[1]
    # the global labelling applied to the 2D answers of every view
    xl = mv.apply_labelling(x, flip[:, None].expand(-1, V), arm_flip[:, None].expand(-1, V), js)
    conf = pred["confidence"].double()
    conf_l = mv.apply_labelling(conf[..., None], flip[:, None].expand(-1, V), arm_flip[:, None].expand(-1, V), js)[..., 0]
    gt = batch["gt_joints3d"].double()
    gt2 = batch["gt_joints2d"].double()
    e2d = (xl - gt2).norm(dim=-1) * (S - 1) / 2.0  # [N, V, J] px
    valid = batch["valid"].double()[..., None].expand_as(e2d)

    def finish(X: torch.Tensor) -> torch.Tensor:
        return mv.derive_centres(X, js) if cfg.method.centres else X

    worst = e2d.masked_fill(valid == 0, -1).argmax(1, keepdim=True)  # [N, 1, J]
    drop_worst = valid.clone().scatter_(1, worst, 0.0)
    variants = {
        "trained (equal weights)": lifted["joints3d"].double(),
        "confidence weights": finish(triangulate(xl, P, valid * conf_l)),
        "outlier rejection": finish(triangulate_views(xl, P, valid)["joints3d"]),
        "rejection + confidence": finish(triangulate_views(xl, P, valid * conf_l)["joints3d"]),
        "oracle: worst view dropped": finish(triangulate(xl, P, drop_worst)),
    }
    groups = {"wrists": ("LWrist", "RWrist"), "elbows": ("LElbow", "RElbow"), "knees": ("LKnee", "RKnee"),
              "ankles": ("LAnkle", "RAnkle"), "head": ("head", "nose")}
    idx = {g: [js.index(j) for j in names] for g, names in groups.items()}
    print(f"{args.checkpoint} on {n} samples of {args.data} (ground truth read for this diagnosis only)")
    print(f"{'per-view 2D error (px)':<32}" + "".join(f"{g:>10}" for g in groups))
    med = e2d.median(dim=1).values
    for name, t in (("mean over views", e2d.mean(1)), ("median view", med), ("worst view", e2d.max(1).values),
                    ("views > 3 px (share)", (e2d > 3).double().mean(1))):
        print(f"{name:<32}" + "".join(f"{t[:, i].mean():>10.2f}" for i in idx.values()))
    print(f"{'3D root-aligned error (mm)':<32}" + "".join(f"{g:>10}" for g in groups) + f"{'all':>10}")
    for name, X in variants.items():
        e = root_aligned(X, gt, js.root)
        print(f"{name:<32}" + "".join(f"{e[:, i].mean():>10.1f}" for i in idx.values()) + f"{e.mean():>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
