"""Is the ground truth a minimum of the loss? Fit 3D joints directly (no network) from GT.

For each loss variant, optimise the 3D joints of N synthetic test samples, started at their GT,
against the 4-view masks (Adam, lr 5 mm -> 0.5 mm cosine, 100 iterations, 64 px, as in
research/pilot2.md) and report how far the fit drifts: MPJPE / P-MPJPE (mm) between the fitted
and the GT pose, and the loss at GT vs at the end (end < GT means GT is not the minimum).

    python benchmarks/loss_at_gt.py --samples 60 --json docs/results/loss_at_gt.json

The synthetic bodies' bone proportions vary per bone independently of the prior's template
(generator: per-bone factor U(0.92, 1.08)), so the proportion prior is not told the answer.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from maskpose import losses as L
from maskpose import metrics as M
from maskpose import multiview as mv
from maskpose.geometry import project_P
from maskpose.render import render_segments, skeleton_mask
from maskpose.skeleton import H36M18


@dataclass(frozen=True)
class Variant:
    name: str
    renderer: str               # "paper" | "capsule_bones" | "capsule"
    merge: str = "max"          # paper preset
    clip: bool = True           # paper preset clip M > 0.1
    priors: bool = False        # proportion (0.3) + symmetry (0.1)
    geodesic: bool = True
    learned_radii: bool = False  # shared log-radii learned (free) + per-sample girth
    tau_px: float = 0.5          # capsule edge softness
    radii_bound: float = 0.0     # > 0: learned radii bounded to exp(+-bound) (0.18 ~ +-20 %)
    centres: bool = False        # derive pelvis / thorax as midpoints
    feet: bool = False           # forward foot capsules (the training default)
    fill: bool = True            # the 8 torso/hip fill links
    prop: float = 0.3
    sym: float = 0.1
    girth: bool = False          # per-sample girth exp(0.3 tanh(g)) free, as the detector's girth head
    hinge: float = 0.0           # knee-hinge and nose-forward weights (training: 0.1 each)
    nose: float = 0.0
    extremity: float = 0.0       # hand-tip attraction to each view's geodesic extremities (2D, per view)
    extremity_3d: float = 0.0    # hand-tip attraction to multi-view consistent extremities (3D consensus)
    extremity_radius_mm: float = float("inf")  # 3D mode: only points this close to a tip attract it
    side_mm: float = float("inf")  # 3D mode: points this far on one side only for that side's hand
    cover: float = 0.0           # arms pulled to mask pixels the body leaves unexplained (loss.cover)
    hand_extend: float = 0.3     # 3D mode: hand tip = wrist + hand_extend (wrist - elbow)
    exclude_ends: bool = False   # 3D mode: exclusion also around the toes, heels and crown (loss.extremity_exclude_ends)
    exclude_mm: float = 250.0    # 3D mode: exclusion radius (loss.extremity_exclude_mm)
    exclude_body_mm: float = -1.0  # 3D mode: drop points on the non-arm body + margin (loss.extremity_exclude_body_mm)


VARIANTS = [
    Variant("paper_max (authors)", "paper", "max"),
    Variant("paper_sum (paper)", "paper", "sum"),
    Variant("paper_max + priors", "paper", "max", priors=True),
    Variant("capsule bones", "capsule_bones"),
    Variant("capsule + extremities", "capsule"),
    Variant("capsule + ext + learned radii", "capsule", learned_radii=True),
    Variant("capsule + ext + priors, no geodesic", "capsule", priors=True, geodesic=False, centres=True),
    Variant("capsule + ext + priors + geodesic", "capsule", priors=True, centres=True),
    Variant("capsule + ext + priors + geodesic + learned radii", "capsule", priors=True, centres=True, learned_radii=True),
    Variant("capsule + ext + feet + priors, no geodesic", "capsule", priors=True, geodesic=False, centres=True, feet=True),
    Variant("capsule + ext + feet + priors + geodesic", "capsule", priors=True, centres=True, feet=True),
    Variant("+ feet + priors(prop 1) + geodesic", "capsule", priors=True, centres=True, feet=True, prop=1.0),
    Variant("+ feet + priors(prop 1), no geodesic", "capsule", priors=True, geodesic=False, centres=True, feet=True, prop=1.0),
    Variant("+ feet + priors(prop 3, sym 0.3) + geodesic", "capsule", priors=True, centres=True, feet=True, prop=3.0, sym=0.3),
    Variant("no fill + feet + priors + geodesic", "capsule", priors=True, centres=True, feet=True, fill=False),
    Variant("no fill + feet + priors(prop 1) + geodesic", "capsule", priors=True, centres=True, feet=True, fill=False, prop=1.0),
    Variant("no fill + feet + priors(prop 1), no geodesic", "capsule", priors=True, geodesic=False, centres=True, feet=True, fill=False, prop=1.0),
    Variant("no fill + feet + priors, no geodesic", "capsule", priors=True, geodesic=False, centres=True, feet=True, fill=False),
    # the training loss as shipped (configs/synthetic.yaml): + per-sample girth, knee hinge / nose forward and
    # the hand-tip extremity pull; and its ablations
    Variant("training default: + girth + hinge, extremity off", "capsule", priors=True, geodesic=False,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1),
    Variant("training default: + 3D consensus extremity (shipped)", "capsule", priors=True, geodesic=False,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity_3d=0.5),
    Variant("training default, per-view 2D extremity (old)", "capsule", priors=True, geodesic=False,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity=0.5),
    Variant("training default, consensus within 150 mm (local phase)", "capsule", priors=True, geodesic=False,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity_3d=0.5,
            extremity_radius_mm=150.0),
    Variant("training default + geodesic weights", "capsule", priors=True, geodesic=True,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity_3d=0.5),
    Variant("training default, extremity off, radii +-20 %, prop 1, tau 0.25", "capsule", priors=True,
            geodesic=False, centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1,
            learned_radii=True, radii_bound=0.18, prop=1.0, tau_px=0.25),
    Variant("training default, end of schedule: local phase (150 mm, tip 0.45)", "capsule", priors=True,
            geodesic=False, centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity_3d=0.5,
            extremity_radius_mm=150.0, hand_extend=0.45),
    Variant("training default, exclusion around toes/heels/crown, 120 mm", "capsule", priors=True, geodesic=False,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity_3d=0.5,
            exclude_ends=True, exclude_mm=120.0),
    Variant("training default, end of schedule: local phase (150 mm, tip 0.45), ends excluded (120 mm)", "capsule",
            priors=True, geodesic=False, centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1,
            extremity_3d=0.5, extremity_radius_mm=150.0, hand_extend=0.45, exclude_ends=True, exclude_mm=120.0),
    Variant("training default, points on the predicted non-arm body (+60 mm) excluded", "capsule", priors=True,
            geodesic=False, centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity_3d=0.5,
            exclude_mm=0.0, exclude_body_mm=60.0),
    Variant("training default, consensus points sided (100 mm)", "capsule", priors=True, geodesic=False,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity_3d=0.5, side_mm=100.0),
    Variant("training default + cover 1, extremity off", "capsule", priors=True, geodesic=False,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, cover=1.0),
    Variant("training default + cover 1 (3D consensus extremity)", "capsule", priors=True, geodesic=False,
            centres=True, feet=True, fill=False, girth=True, hinge=0.1, nose=0.1, extremity_3d=0.5, cover=1.0),
]


def load(root: Path, n: int):
    from maskpose.data.folder import MaskPoseDataset

    ds = MaskPoseDataset(root, with_gt=True, preload=True)
    n = min(n, len(ds))
    items = [ds[i] for i in range(n)]
    st = lambda k: torch.stack([it[k] for it in items])  # noqa: E731
    from maskpose.data.extremities import compute_extremities

    masks = st("masks")
    cand, ok = compute_extremities(masks[:, :, 0].numpy().astype(bool), 8, workers=1)
    from maskpose.data.extremities import consensus_extremities

    global CANDIDATES, POINTS
    CANDIDATES = (torch.from_numpy(cand), torch.from_numpy(ok))
    valid, P = st("valid"), st("crop_cameras")
    pts, pv, _ = consensus_extremities(cand, ok & valid.numpy()[..., None], P.numpy(), masks.shape[-1])
    POINTS = (torch.from_numpy(pts), torch.from_numpy(pv))
    return masks, st("weights"), P.double(), valid, st("gt_joints3d").double()


CANDIDATES = None  # (candidates [N, V, K, 2], valid [N, V, K]) set by load()
POINTS = None  # (points [N, M, 3] mm, valid [N, M]) multi-view consistent extremities, set by load()


def fit(v: Variant, gt: torch.Tensor, masks, weights, P, valid, iters=100, lr=5.0):
    js = H36M18
    S = masks.shape[-1]
    B, V = masks.shape[:2]
    X = gt.clone().float().requires_grad_(True)
    segs = js.select_segments() if v.renderer == "capsule" else tuple(
        s for s in js.body_segments if s.name in {b.name for b in js.bones})
    if not v.fill:
        segs = tuple(s for s in segs if not s.name.startswith("fill-"))
    radii0 = torch.tensor([s.radius_mm for s in segs])
    log_r = torch.zeros(len(segs), requires_grad=v.learned_radii)
    log_g = torch.zeros(B, requires_grad=v.learned_radii or v.girth)
    shape_params = ([log_r] if v.learned_radii else []) + ([log_g] if v.learned_radii or v.girth else [])
    opt = torch.optim.Adam([{"params": [X], "lr": lr}] + ([{"params": shape_params, "lr": 0.01}] if shape_params else []))
    G = L.normalized_weights(weights.float()) if v.geodesic else None
    Pf = P.float()
    vd = valid.float()[..., None, None, None]
    cfg = L.LossConfig()
    wa, wb = js.segment_matrices(segs)

    def loss_fn(Xc):
        if v.renderer == "paper":
            x2d = project_P(Xc[:, None], Pf)
            m = skeleton_mask(x2d.reshape(B * V, 18, 2), S, w=0.003, merge=v.merge, joint_set=js).reshape(B, V, 1, S, S)
            l = L.weighted_l2(m * vd, masks * vd, G, clip=0.1 if v.clip else None) * V
        else:
            m = L.render_body(Xc, Pf, js, S, replace(cfg, feet=v.feet, fill=True, tau_px=v.tau_px), torch.exp(0.3 * torch.tanh(log_g)), segs,
                              radii0 * torch.exp(v.radii_bound * torch.tanh(log_r / v.radii_bound) if v.radii_bound > 0 else log_r))
            l = L.weighted_l2(m * vd, masks * vd, G) * V
            if v.cover:
                l = l + v.cover * L.cover_terms(Xc, Pf, js, masks * vd, m.detach(), S, replace(cfg, feet=v.feet),
                                                torch.exp(0.3 * torch.tanh(log_g))) * V
        if v.priors:
            l = l + v.prop * L.proportion_prior(Xc, js) + v.sym * L.symmetry_prior(Xc, js)
        if v.hinge or v.nose:
            knee, nose = L.hinge_losses(Xc, js)
            l = l + v.hinge * knee + v.nose * nose
        if v.extremity:
            x2d = project_P(Xc[:, None], Pf)
            tips = L.hand_tips(x2d, js)
            excl = x2d[..., [js.index("LAnkle"), js.index("RAnkle"), js.index("head")], :].detach()
            cand, ok = CANDIDATES
            vm = ok[:B] & valid[..., None]
            l = l + v.extremity * L.extremity_loss(tips.flatten(0, 1), cand[:B].flatten(0, 1), vm.flatten(0, 1),
                                                   excl.flatten(0, 1), S, cfg.extremity_sigma_px, cfg.extremity_exclude_px)
        if v.extremity_3d:
            tips3 = L.hand_tips(Xc, js, v.hand_extend)
            sh = Xc[:, [js.index("LShoulder"), js.index("RShoulder")]]
            ex3 = L.extremity_exclusions(Xc, js, v.exclude_ends)
            pts, pv = POINTS
            l = l + v.extremity_3d * L.extremity_loss_3d(tips3, sh, L.arm_reach(Xc, js, v.hand_extend), pts[:B], pv[:B], ex3, Pf,
                                                         valid, S, cfg.extremity_sigma_px, v.exclude_mm,
                                                         max_dist_mm=v.extremity_radius_mm,
                                                         lateral=L.point_sides(pts[:B], Xc, js), side_mm=v.side_mm,
                                                         on_body=L.points_on_body(pts[:B], Xc, js, v.exclude_body_mm,
                                                                                  torch.exp(0.3 * torch.tanh(log_g)), v.feet)
                                                         if v.exclude_body_mm >= 0 else None)
        return l

    with torch.no_grad():
        Xg = mv.derive_centres(gt.float(), js) if v.centres else gt.float()
        loss_gt = float(loss_fn(Xg))
    for it in range(iters):
        for g in opt.param_groups[:1]:
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / iters)))
        Xc = mv.derive_centres(X, js) if v.centres else X
        loss = loss_fn(Xc) * B  # per-sample problems are independent: undo the batch mean
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        Xc = mv.derive_centres(X, js) if v.centres else X
        loss_end = float(loss_fn(Xc))
    return Xc.detach().double(), loss_gt, loss_end


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--data", type=Path, default=Path("/tmp/maskpose_loss_at_gt"))
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", type=str, default="", help="substring filter on variant names")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.data / "meta.json").exists():
        from maskpose.data.synthetic import generate_dataset
        print(f"generating {args.samples} test samples in {args.data}")
        generate_dataset(args.data, num_samples=args.samples, num_views=4, size=64, seed=0, split="test")
    masks, weights, P, valid, gt = load(args.data, args.samples)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{len(gt)} samples, 4 views, 64 px, {args.iters} Adam iterations from GT (lr 5 -> 0.5 mm)\n")
    rows = []
    hdr = f"{'variant':<46}{'MPJPE':>8}{'P-MPJPE':>9}{'loss@GT':>10}{'loss@end':>10}{'s':>6}"
    print(hdr)
    print("-" * len(hdr))
    for v in VARIANTS:
        if args.only and args.only not in v.name:
            continue
        t0 = time.time()
        X, lg, le = fit(v, gt, masks, weights, P, valid, args.iters)
        ref = mv.derive_centres(gt, H36M18) if v.centres else gt
        row = {"variant": v.name, "mpjpe": M.mpjpe(X, gt), "p_mpjpe": M.p_mpjpe(X, gt),
               "mpjpe_vs_centred_gt": M.mpjpe(X, ref), "loss_at_gt": lg, "loss_at_end": le,
               "seconds": time.time() - t0, "config": v.__dict__}
        rows.append(row)
        print(f"{v.name:<46}{row['mpjpe']:>8.1f}{row['p_mpjpe']:>9.1f}{lg:>10.4f}{le:>10.4f}{row['seconds']:>6.0f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"samples": len(gt), "iters": args.iters, "rows": rows,
                                         "machine": platform.platform(), "torch": torch.__version__}, indent=2))
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
