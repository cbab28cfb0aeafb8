"""One readable training loop (nanoGPT-style): config -> data -> model -> steps -> checkpoints.

    maskpose train configs/synthetic.yaml train.steps=3000 loss.prop=0.5

* typed config (YAML + dotted overrides, :mod:`maskpose.config`), validated on load;
* the multi-view step of DESIGN §4 (per-view 2D -> L/R matching -> DLT -> anatomical selection ->
  centre joints -> re-projection -> body masks + priors) or the single-view step (V = 1, or
  ``method.triangulate = false``);
* the cascade (stage 1 no arms; stage 2 + shape prior with a ramp when ``loss.physique > 0``;
  stage 3 + arms and the extremity attraction), switched by step count;
* progress bar with the loss terms and it/s, TensorBoard scalars and image panels, periodic
  evaluation, atomic checkpoints (temp + rename) with ``--resume``, seeds, ``--device auto``,
  DDP under ``torchrun`` (gloo on CPU, nccl on CUDA).

Labels never reach this loop: the training dataset is opened with ``with_gt=False``; only the
evaluation (a separate dataset object) reads ground truth.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from . import losses as L
from . import multiview as mv
from .config import ConfigError, from_dict, to_dict
from .geometry import project_P
from .models.detector import Detector, DetectorConfig, make_input
from .skeleton import JointSet, get_joint_set


# ====================================================================== config
@dataclass
class DataConfig:
    train: str = "data/synthetic/train"
    test: str = ""                       # evaluation split (read with labels, never trained on)
    eval_samples: int = 200              # evaluate on the first N test samples (0: all)
    preload: bool = True
    pseudo: str = ""                     # self-training: npz of label-free pseudo-labels (pred [N, J, 3] mm, ids)
                                         #   from benchmarks/pseudo_labels.py; used with loss.pseudo > 0
    pseudo_share: float = 0.0            # self-training: this fraction of each batch is drawn from the pseudo-labelled
                                         #   samples, the rest from all (0: uniform over all; with 1000 labels in 12000
                                         #   samples a uniform batch of 8 holds 0.67 labelled samples on average)


@dataclass
class MethodConfig:
    triangulate: bool = True             # False: single-view losses per view ("without Delta")
    matching: bool = True                # per-view L/R matching by re-projection error
    selection: bool = True               # anatomical global selection of the labelling
    arms_separately: bool = True         # select the arms' L/R separately from the legs'
    arm_matching: bool = False           # per-view L/R matching: the body's by its non-arm joints, then the arms' on their own
    centres: bool = True                 # pelvis / thorax derived as hip / shoulder midpoints
    confidence_weights: bool = False     # weight the DLT by the detector's per-joint confidence
    flip_test: bool = False              # inference only: average each view with its mirror image (flip_average)


@dataclass
class ScheduleConfig:
    arms_from: int = 0                   # step at which arm segments (and the extremity term) join
    physique_from: int = 0               # step at which the shape prior joins (if loss.physique > 0)
    physique_ramp: int = 500             # steps of the linear ramp of the physique weight


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 8                  # samples (each with V views) per step and process
    grad_clip: float = 5.0
    steps: int = 3000
    max_minutes: float = 0.0             # wall-clock budget (0: none); stops at whichever comes first
    warmup: int = 100
    cosine: bool = True


@dataclass
class LogConfig:
    out: str = "runs/synthetic"
    eval_every: int = 500
    ckpt_every: int = 250
    tensorboard: bool = True
    image_every: int = 500
    progress: bool = True


@dataclass
class TrainConfig:
    joint_set: str = "h36m18"
    seed: int = 0
    device: str = "auto"
    init: str = ""                       # start from this checkpoint's weights (fine-tuning; not a resume)
    data: DataConfig = field(default_factory=DataConfig)
    model: DetectorConfig = field(default_factory=DetectorConfig)
    loss: L.LossConfig = field(default_factory=L.LossConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def validate(self) -> None:
        try:
            get_joint_set(self.joint_set)
        except KeyError as e:
            raise ValueError(str(e).strip("'\"")) from None
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.optim.batch_size < 1 or self.optim.steps < 0:
            raise ValueError("optim.batch_size must be >= 1 and optim.steps >= 0")
        if self.loss.pseudo > 0 and not self.data.pseudo:
            raise ValueError("loss.pseudo > 0 needs data.pseudo (an npz of pseudo-labels from benchmarks/pseudo_labels.py)")
        if not 0.0 <= self.data.pseudo_share <= 1.0:
            raise ValueError(f"data.pseudo_share must be in [0, 1], got {self.data.pseudo_share}")
        if self.data.pseudo_share > 0 and not self.data.pseudo:
            raise ValueError("data.pseudo_share > 0 needs data.pseudo (an npz of pseudo-labels)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


# ====================================================================== data
def _file_stamp(path: str | os.PathLike) -> tuple:
    """(resolved path, mtime in ns or None when missing): tells whether a file changed since it was read."""
    p = Path(path).resolve()
    return (p, p.stat().st_mtime_ns if p.exists() else None)


class TensorBatches:
    """A dataset folder held as tensors (uint8 / float16) for fast random batches.

    Holds only what training may see: images, masks, geodesic weights, crop cameras, validity and
    the label-free extremity candidates. Ground truth is not loaded here.
    """

    def __init__(self, root: str | os.PathLike, input_mode: str, max_candidates: int = 8, workers: int = 0):
        from .data.extremities import consensus_extremities, load_or_compute_extremities
        from .data.folder import MaskPoseDataset

        # copied into tensors below: read once. A mask-only detector never sees the frames: they are
        # neither read nor held (12000 samples x 4 views at 64 px: 590 MB and ~10 s of loading saved)
        ds = MaskPoseDataset(root, with_gt=False, preload=False, read_frames=input_mode != "mask")
        self.root = Path(root)
        self.dataset = ds
        items = [ds[i] for i in range(len(ds))]
        self.images: torch.Tensor | None = None  # [N,V,3,S,S] uint8, None for input "mask"
        if input_mode != "mask":
            self.images = torch.stack([(it["images"] * 255).round().to(torch.uint8) for it in items])
        self.masks = torch.stack([it["masks"].to(torch.uint8) for it in items])  # [N,V,1,S,S]
        self.weights = torch.stack([it["weights"].half() for it in items])
        self.cameras = torch.stack([it["crop_cameras"] for it in items])  # [N,V,3,4]
        self.valid = torch.stack([it["valid"] for it in items])
        cand, cval = load_or_compute_extremities(self.root, self.masks[:, :, 0].numpy().astype(bool), max_candidates, workers)
        self.candidates = torch.from_numpy(cand)  # [N,V,K,2] normalised
        self.cand_valid = torch.from_numpy(cval)  # [N,V,K]
        # multi-view consistent extremities (3D, world mm); empty for single-view data
        pts, pval, _ = consensus_extremities(cand, cval & self.valid.numpy()[..., None], self.cameras.numpy(),
                                             self.masks.shape[-1])
        self.points = torch.from_numpy(pts)  # [N,M,3]
        self.points_valid = torch.from_numpy(pval)  # [N,M]
        self.input_mode = input_mode
        self.size = self.masks.shape[-1]
        self.num_views = self.masks.shape[1]
        self.pseudo: torch.Tensor | None = None  # [N, J, 3] mm (load_pseudo)
        self.pseudo_valid: torch.Tensor | None = None  # [N] bool
        self.pseudo_path: tuple | None = None  # (file, mtime) the pseudo-labels came from

    def load_pseudo(self, path: str | os.PathLike, num_joints: int) -> "TensorBatches":
        """Attach pseudo-labels (``benchmarks/pseudo_labels.py``: ``pred [M, J, 3]`` world mm and ``ids``),
        matched to this dataset's samples by id; samples without one are left out of ``loss.pseudo``."""
        path = Path(path)
        try:
            z = np.load(path)
            pred, ids = np.asarray(z["pred"], dtype=np.float32), [str(i) for i in z["ids"]]
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"data.pseudo: cannot read pseudo-labels from {path}: {e}") from None
        if pred.ndim != 3 or pred.shape[1:] != (num_joints, 3) or len(ids) != pred.shape[0]:
            raise ConfigError(f"data.pseudo: {path}: expected pred [M, {num_joints}, 3] and M ids, got pred "
                              f"{list(pred.shape)} and {len(ids)} ids")
        if not np.isfinite(pred).all():
            raise ConfigError(f"data.pseudo: {path}: pred has NaN/inf values")
        where = {sid: i for i, sid in enumerate(self.dataset.ids)}
        rows = [(where[sid], k) for k, sid in enumerate(ids) if sid in where]
        if not rows:
            raise ConfigError(f"data.pseudo: {path}: none of its {len(ids)} ids is a sample of {self.root}")
        dev = self.masks.device
        self.pseudo = torch.zeros(len(self), num_joints, 3, device=dev)
        self.pseudo_valid = torch.zeros(len(self), dtype=torch.bool, device=dev)
        dst, src = zip(*rows)
        self.pseudo[list(dst)] = torch.from_numpy(pred[list(src)]).to(dev)
        self.pseudo_valid[list(dst)] = True
        self.pseudo_path = _file_stamp(path)
        return self

    def __len__(self) -> int:
        return self.masks.shape[0]

    def to(self, device: torch.device) -> "TensorBatches":
        """Move the cached tensors to ``device`` (on CUDA batches are then gathered on the GPU instead of
        copied from the host every step). Returns self."""
        for k in ("images", "masks", "weights", "cameras", "valid", "candidates", "cand_valid", "points",
                  "points_valid", "pseudo", "pseudo_valid"):
            if getattr(self, k) is not None:
                setattr(self, k, getattr(self, k).to(device))
        return self

    def batch(self, idx: torch.Tensor, device: torch.device) -> dict:
        """Batch ``idx``; with input "mask" its ``images`` are the masks on three channels (not read)."""
        idx = idx.to(self.masks.device)
        masks = self.masks[idx].float().to(device)
        extra = {} if self.pseudo is None else {"pseudo": self.pseudo[idx].to(device),
                                                "pseudo_valid": self.pseudo_valid[idx].to(device)}
        images = masks.expand(-1, -1, 3, -1, -1) if self.images is None else self.images[idx].to(device).float() / 255.0
        return extra | {
            "images": images,
            "masks": masks,
            "weights": self.weights[idx].float().to(device),
            "crop_cameras": self.cameras[idx].to(device),
            "valid": self.valid[idx].to(device),
            "candidates": self.candidates[idx].to(device),
            "cand_valid": self.cand_valid[idx].to(device),
            "points": self.points[idx].to(device),
            "points_valid": self.points_valid[idx].to(device),
        }


# ====================================================================== the step
def stage_groups(step: int, cfg: TrainConfig) -> tuple[str, ...] | None:
    """Segment groups rendered at ``step`` (cascade): no arms before ``schedule.arms_from``."""
    return None if step >= cfg.schedule.arms_from else ("torso", "leg", "head")


def extremity_weight(step: int, cfg: TrainConfig) -> float:
    lc = cfg.loss
    if step < cfg.schedule.arms_from or lc.extremity == 0:
        return 0.0
    if lc.extremity_decay_start < 0 or step < lc.extremity_decay_start:
        return lc.extremity
    frac = min(1.0, (step - lc.extremity_decay_start) / max(1, lc.extremity_decay_steps))
    return lc.extremity * (1.0 - frac)


def physique_weight(step: int, cfg: TrainConfig) -> float:
    if cfg.loss.physique == 0 or step < cfg.schedule.physique_from:
        return 0.0
    return cfg.loss.physique * min(1.0, (step - cfg.schedule.physique_from + 1) / max(1, cfg.schedule.physique_ramp))


def predict_views(model, batch: dict, cfg: TrainConfig) -> dict:
    """Run the detector on every view: ``joints2d [B, V, J, 2]``, ``depth [B, V, J]``, ``confidence``,
    ``girth [B]``."""
    B, V = batch["images"].shape[:2]
    x = make_input(cfg.model.input, batch["images"].flatten(0, 1), batch["masks"].flatten(0, 1))
    out = model(x)
    if cfg.method.flip_test and not model.training:
        out = flip_average(out, model(x.flip(-1)), get_joint_set(cfg.joint_set))
    res = {k: out[k].reshape(B, V, *out[k].shape[1:]) for k in ("joints2d", "depth", "confidence")}
    g = out["girth"].reshape(B, V)
    valid = batch["valid"].float()
    res["girth"] = (g * valid).sum(1) / valid.sum(1).clamp_min(1)
    return res


@torch.no_grad()
def flip_average(out: dict, out_mirror: dict, joint_set: JointSet) -> dict:
    """Test-time flip: average the detector's answer on an image with its answer on the mirror image.

    ``out`` and ``out_mirror`` hold ``joints2d [N, J, 2]`` (x, y in [-1, 1]), ``depth [N, J]``,
    ``confidence [N, J]``, ``girth [N]`` for the images and their horizontal mirrors. The mirror's x
    is negated back. A mask-only detector labels left/right arbitrarily, so the mirror's labels are
    not simply swapped: per image, the legs' and the arms' labels are each swapped or not, whichever
    lies closer (summed 2D distance) to the unmirrored answer; then the two answers are averaged.
    No labels are used. Returns a dict of the same shapes (other keys of ``out`` are kept).
    """
    from .multiview import arm_permutation

    m2d = out_mirror["joints2d"] * torch.tensor([-1.0, 1.0], dtype=out["joints2d"].dtype, device=out["joints2d"].device)
    full = joint_set.flip_permutation()
    arms = arm_permutation(joint_set)
    legs = [full[arms[j]] for j in range(joint_set.num_joints)]  # full flip with the arms swapped back
    perms = torch.tensor([list(range(joint_set.num_joints)), full, arms, legs], device=m2d.device)  # [4, J]
    cand = m2d[:, perms]  # [N, 4, J, 2]
    cost = (cand - out["joints2d"][:, None]).norm(dim=-1).sum(-1)  # [N, 4]
    best = perms[cost.argmin(1)]  # [N, J]
    res = dict(out)
    res["joints2d"] = 0.5 * (out["joints2d"] + m2d.gather(1, best[..., None].expand(-1, -1, 2)))
    for k in ("depth", "confidence"):
        res[k] = 0.5 * (out[k] + out_mirror[k].gather(1, best))
    res["girth"] = 0.5 * (out["girth"] + out_mirror["girth"])
    return res


def lift_batch(pred: dict, batch: dict, cfg: TrainConfig, joint_set: JointSet) -> dict:
    """Multi-view lifting of per-view predictions (see :func:`maskpose.multiview.lift`)."""
    w = batch["valid"].float()[..., None].expand(*pred["joints2d"].shape[:3])
    if cfg.method.confidence_weights:
        w = w * pred["confidence"].detach()
    return mv.lift(pred["joints2d"], batch["crop_cameras"], joint_set, weights=w,
                   matching=cfg.method.matching, selection=cfg.method.selection,
                   arms_separately=cfg.method.arms_separately, centres=cfg.method.centres,
                   arm_matching=cfg.method.arm_matching)


def single_view_joints3d(pred: dict, batch: dict, cfg: TrainConfig, ref_stature_mm: float = 1750.0):
    """Per-view pseudo-3D in each crop camera's frame from 2D + predicted root-relative depth.

    The root depth is not observable in one view; it is set so that a person of reference stature
    spans the crop's height (crops have a ~1.15 margin). Returns ``(X_cam [B, V, J, 3] mm,
    P_cam [B, V, 3, 4])`` with ``P_cam = [K' | 0]`` the crop intrinsics, so that
    :func:`maskpose.losses.project_segments` works unchanged per view.
    """
    P = batch["crop_cameras"].to(pred["joints2d"].dtype)
    Kp = crop_intrinsics(P)  # [B, V, 3, 3]
    f = L.focal_normalized(P)  # [B, V]
    z_root = f * ref_stature_mm / (2.0 / 1.15)  # normalised height 2/1.15 ~ the crop's person
    z = z_root[..., None] + pred["depth"] * cfg.loss.depth_range_mm  # [B, V, J]
    xh = torch.cat([pred["joints2d"], torch.ones_like(pred["joints2d"][..., :1])], -1)
    rays = xh @ torch.linalg.inv(Kp).transpose(-1, -2)  # [B, V, J, 3], z component 1
    X = rays * z[..., None]
    Pc = torch.cat([Kp, torch.zeros_like(Kp[..., :1])], -1)
    return X, Pc


def crop_intrinsics(P: torch.Tensor) -> torch.Tensor:
    """Upper-triangular ``K' [..., 3, 3]`` (last row 0 0 1) of ``P [..., 3, 4] = K' [R | t]`` (RQ)."""
    M = P[..., :3]
    flip = torch.flip(torch.eye(3, dtype=P.dtype, device=P.device), dims=[0])
    q, r = torch.linalg.qr((flip @ M).transpose(-1, -2))
    K = flip @ r.transpose(-1, -2) @ flip
    s = torch.diag_embed(torch.sign(torch.diagonal(K, dim1=-2, dim2=-1)))
    K = K @ s
    return K / K[..., 2:3, 2:3]


def search_term(X: torch.Tensor, batch: dict, joint_set: JointSet, lc: L.LossConfig, girth: torch.Tensor,
                size: int) -> torch.Tensor:
    """``loss.search``: the first ``lc.search_samples`` poses of the batch get their arms searched
    against the masks (:func:`maskpose.armsearch.search_arms`, no gradient); where an arm's search
    lowers the mask loss by more than ``lc.search_margin_px``, the predicted elbow and wrist are pulled
    to the found ones (Cauchy in px, every valid view, sigma ``lc.extremity_sigma_px``)."""
    from .armsearch import search_arms

    k = min(lc.search_samples, X.shape[0])
    P = batch["crop_cameras"][:k].to(X.dtype)
    found, gain = search_arms(X[:k].detach(), batch["masks"][:k], P, batch["valid"][:k], joint_set, lc,
                              girth[:k].detach(), num_dirs=lc.search_dirs, margin_px=lc.search_margin_px,
                              rounds=1, top_k=8)
    j = joint_set.index
    idx = [j("LElbow"), j("LWrist"), j("RElbow"), j("RWrist")]
    moved = (gain > 0).repeat_interleave(2, dim=1)  # [k, 4]
    px = (size - 1) / 2.0
    d2 = ((project_P(X[:k, idx][:, None], P) - project_P(found[:, idx][:, None], P)) * px).pow(2).sum(-1)  # [k, V, 4]
    w = (moved[:, None, :] & batch["valid"][:k, :, None]).to(X.dtype)
    return (torch.log1p(d2 / lc.extremity_sigma_px ** 2) * w).sum() / w.sum().clamp_min(1)


def compute_losses(model, batch: dict, cfg: TrainConfig, joint_set: JointSet, step: int,
                   shape_prior=None) -> tuple[torch.Tensor, dict, dict]:
    """One training forward: returns ``(total, terms, outputs)``. No ground truth is read."""
    lc = cfg.loss
    pred = predict_views(model, batch, cfg)
    B, V, J = pred["joints2d"].shape[:3]
    S = batch["masks"].shape[-1]
    groups = stage_groups(step, cfg)
    girth = pred["girth"]  # per-sample girth scale, bounded to exp(+-0.3) by the detector
    if not lc.girth:
        girth = torch.ones_like(girth)
    terms: dict[str, torch.Tensor] = {}
    multi = cfg.method.triangulate and V >= 2
    if multi:
        lifted = lift_batch(pred, batch, cfg, joint_set)
        X = lifted["joints3d"].to(pred["joints2d"].dtype)  # [B, J, 3]
        P = batch["crop_cameras"].to(X.dtype)
        x2d = project_P(X[:, None], P)  # [B, V, J, 2] re-projected
        X_for_priors = X
        render_X, render_P = X, P
    else:
        Xc, Pc = single_view_joints3d(pred, batch, cfg)
        X_for_priors = Xc.flatten(0, 1)  # [B*V, J, 3]
        x2d = pred["joints2d"]
        render_X, render_P = Xc.flatten(0, 1), Pc.flatten(0, 1)[:, None]
        lifted = None

    G = L.normalized_weights(batch["weights"]) if lc.geodesic else None
    valid = batch["valid"].float()[..., None, None, None]
    target = batch["masks"]
    if lc.mask > 0:
        if lc.preset == "body":
            segs = joint_set.select_segments(groups)
            if multi:
                body = L.render_body(render_X, render_P, joint_set, S, lc, girth, segs)
            else:
                body = L.render_body(render_X, render_P, joint_set, S, lc, girth.repeat_interleave(V), segs)
                body = body.reshape(B, V, 1, S, S)
            terms["mask"] = lc.mask * L.weighted_l2(body * valid, target * valid, G, lc.geodesic_squared) * V
            pred_mask = body
            if lc.cover > 0 and step >= lc.cover_from and (groups is None or "arm" in groups):
                terms["cover"] = lc.cover * L.cover_terms(render_X, render_P, joint_set, target * valid, body.detach(),
                                                          S, lc, girth if multi else girth.repeat_interleave(V), groups) * V
        elif lc.preset == "paper":
            skel = L.render_paper(x2d, joint_set, S, lc, groups)
            terms["mask"] = lc.mask * L.weighted_l2(skel * valid, target * valid, G, lc.geodesic_squared, clip=lc.paper_clip) * V
            pred_mask = skel
        else:
            gm = L.render_gaussian_joints(x2d, S, lc)
            terms["mask"] = lc.mask * L.weighted_l2(gm * valid, target * valid, G, lc.geodesic_squared, clip=lc.paper_clip) * V
            pred_mask = gm
    else:
        pred_mask = None
    wp = physique_weight(step, cfg)
    if wp > 0 and shape_prior is not None:
        skel = L.render_paper(x2d, joint_set, S, lc, groups)
        phys = shape_prior(skel.flatten(0, 1)).reshape(B, V, 1, S, S)
        terms["physique"] = wp * L.weighted_l2(phys * valid, target * valid, G, lc.geodesic_squared) * V
    if lc.prop > 0:
        terms["prop"] = lc.prop * L.proportion_prior(X_for_priors, joint_set)
    if lc.sym > 0:
        terms["sym"] = lc.sym * L.symmetry_prior(X_for_priors, joint_set)
    if lc.hinge > 0 or lc.nose > 0:
        knee, nose = L.hinge_losses(X_for_priors, joint_set)
        if lc.hinge > 0:
            terms["hinge"] = lc.hinge * knee
        if lc.nose > 0:
            terms["nose"] = lc.nose * nose
    if multi and lc.depth > 0:
        terms["depth"] = lc.depth * L.depth_consistency(pred["depth"], X, batch["crop_cameras"].to(X.dtype), joint_set,
                                                        lc.depth_range_mm, batch["valid"].float())
    we = extremity_weight(step, cfg)
    if we > 0 and multi and lc.extremity_mode == "consensus":
        j = joint_set.index
        local = 0 <= lc.extremity_local_from <= step
        extend = lc.hand_extend_local if local and lc.hand_extend_local >= 0 else lc.hand_extend
        tips3 = L.hand_tips(X, joint_set, extend)  # [B, 2, 3]
        shoulders = X[:, [j("LShoulder"), j("RShoulder")]]
        excl3 = L.extremity_exclusions(X, joint_set, lc.extremity_exclude_ends)
        sided = lc.extremity_side_mm >= 0  # the points' sides are only computed when the gate is on
        by_body = 0 <= lc.extremity_exclude_body_mm and lc.extremity_exclude_body_from <= step
        pull_views = batch["valid"]
        if lc.pseudo_no_pull and lc.pseudo > 0 and "pseudo_valid" in batch:
            pull_views = pull_views & ~batch["pseudo_valid"][:, None]  # the label already places those arms
        ext, assigned = L.extremity_loss_3d(tips3, shoulders, L.arm_reach(X, joint_set, extend),
                                            batch["points"], batch["points_valid"], excl3, P, pull_views,
                                            S, lc.extremity_sigma_px, 0.0 if by_body else lc.extremity_exclude_mm,
                                            lc.extremity_radius_mm if local else float("inf"), return_assignment=True,
                                            lateral=L.point_sides(batch["points"], X, joint_set) if sided else None,
                                            side_mm=lc.extremity_side_mm if sided else float("inf"),
                                            on_body=L.points_on_body(batch["points"], X, joint_set,
                                                                     lc.extremity_exclude_body_mm, girth, lc.feet)
                                            if by_body else None)
        terms["extremity"] = we * ext
        if lc.rest > 0:
            terms["rest"] = lc.rest * L.rest_arm_loss(X, joint_set, ~assigned & pull_views.any(1)[:, None])
    elif we > 0:
        tips = L.hand_tips(x2d, joint_set, lc.hand_extend)  # [B, V, 2, 2]
        j = joint_set.index
        excl = x2d[..., [j("LAnkle"), j("RAnkle"), j("head")], :].detach()
        vmask = batch["cand_valid"] & batch["valid"][..., None]
        terms["extremity"] = we * L.extremity_loss(tips.flatten(0, 1), batch["candidates"].flatten(0, 1).to(tips.dtype),
                                                   vmask.flatten(0, 1), excl.flatten(0, 1), S,
                                                   lc.extremity_sigma_px, lc.extremity_exclude_px)
    if lc.pseudo > 0 and multi and "pseudo" in batch:
        # self-training: every joint pulled to its label-free pseudo-label (fit + arm search), in px
        pv = (batch["valid"] & batch["pseudo_valid"][:, None]).to(X.dtype)  # [B, V]
        d2 = ((x2d - project_P(batch["pseudo"].to(X.dtype)[:, None], P)) * ((S - 1) / 2.0)).pow(2).sum(-1)
        terms["pseudo"] = lc.pseudo * (torch.log1p(d2 / lc.pseudo_sigma_px ** 2) * pv[..., None]).sum() \
            / (pv.sum() * J).clamp_min(1)
    if lc.search > 0 and multi and step >= lc.search_from and (groups is None or "arm" in groups):
        terms["search"] = lc.search * search_term(X, batch, joint_set, lc, girth, S)
    total = sum(terms.values()) if terms else torch.zeros((), device=batch["images"].device)
    outputs = {"pred": pred, "lifted": lifted, "x2d": x2d, "pred_mask": pred_mask}
    return total, terms, outputs


# ====================================================================== evaluation
@torch.no_grad()
def predict_dataset(model, dataset, cfg: TrainConfig, device: torch.device,
                    limit: int = 0, batch_size: int = 32, start: int = 0) -> dict:
    """Predict 3D joints for a dataset folder: ``joints3d [N, J, 3]`` (world mm for multi-view;
    camera-frame pseudo-3D of view 0 in single-view mode), plus per-view 2D and the labelling.

    ``dataset``: a folder path (read whole into RAM) or an open ``MaskPoseDataset`` (used as it is, so
    a caller that needs only a slice can pass one opened with ``preload=False``).
    Samples ``start .. limit - 1`` (``limit = 0``: to the end); ``num`` = their count."""
    from .data.folder import MaskPoseDataset

    joint_set = get_joint_set(cfg.joint_set)
    ds = dataset if isinstance(dataset, MaskPoseDataset) else MaskPoseDataset(dataset, with_gt=False, preload=True)
    n = len(ds) if limit <= 0 else min(limit, len(ds))
    if not 0 <= start < n:
        raise ValueError(f"{ds.root}: no samples from {start} to {n - 1}")
    was_training = model.training
    model.eval()
    out3d, out2d, raw2d, swaps, flips, arm_flips = [], [], [], [], [], []
    for s in range(start, n, batch_size):
        items = [ds[i] for i in range(s, min(n, s + batch_size))]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in ("images", "masks", "crop_cameras", "valid")}
        pred = predict_views(model, batch, cfg)
        V = pred["joints2d"].shape[1]
        raw2d.append(pred["joints2d"].float().cpu())
        if cfg.method.triangulate and V >= 2:
            lifted = lift_batch(pred, batch, cfg, joint_set)
            out3d.append(lifted["joints3d"].float().cpu())
            out2d.append(lifted["joints2d_matched"].float().cpu())
            swaps.append(lifted["swaps"].cpu())
            flips.append(lifted["flip"].cpu())
            arm_flips.append(lifted["arm_flip"].cpu())
        else:
            Xc, _ = single_view_joints3d(pred, batch, cfg)
            out3d.append(Xc[:, 0].float().cpu())
            out2d.append(pred["joints2d"].float().cpu())
    model.train(was_training)
    res = {"joints3d": torch.cat(out3d).numpy(), "joints2d": torch.cat(out2d).numpy(),
           "raw2d": torch.cat(raw2d).numpy(), "num": n - start}
    if swaps:
        res["swaps"] = torch.cat(swaps).numpy()
        res["flip"] = torch.cat(flips).numpy()
        res["arm_flip"] = torch.cat(arm_flips).numpy()
    return res


# ====================================================================== checkpoints
def save_checkpoint(path: Path, model, optimizer, step: int, cfg: TrainConfig, extra: dict | None = None,
                    shape_prior=None) -> None:
    """Atomic checkpoint write (temp file + os.replace): an interrupted write never leaves a file
    that later reads as valid."""
    state = {
        "format": "maskpose-checkpoint", "version": 1,
        "model": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step), "config": to_dict(cfg), "joint_set": cfg.joint_set,
        "joints": list(get_joint_set(cfg.joint_set).joints),
        "rng": {"torch": torch.get_rng_state(), "numpy": _np_state(), "python": repr(random.getstate())},
        "extra": extra or {},
    }
    if shape_prior is not None:
        state["shape_prior"] = {k: v.detach().cpu() for k, v in shape_prior.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _np_state():
    s = np.random.get_state()
    return {"keys": torch.from_numpy(s[1].astype(np.int64)), "pos": int(s[2])}


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``) with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated / not a torch file
        raise ValueError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != "maskpose-checkpoint":
        raise ValueError(f"{path} is not a maskpose checkpoint")
    return state


def config_from_checkpoint(state: dict) -> TrainConfig:
    return from_dict(TrainConfig, state["config"], source="checkpoint config")


def build_model(cfg: TrainConfig) -> Detector:
    from dataclasses import replace

    joint_set = get_joint_set(cfg.joint_set)
    return Detector(replace(cfg.model, joint_set=cfg.joint_set), joint_set)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu", joint_set: str | None = None):
    """``(model, cfg, state)`` from a checkpoint; refuses a checkpoint of another joint set."""
    state = load_checkpoint(path)
    cfg = config_from_checkpoint(state)
    if joint_set is not None and cfg.joint_set != joint_set:
        raise ValueError(f"checkpoint {path} was trained for joint set {cfg.joint_set!r}, the data uses {joint_set!r}")
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    return model.to(device), cfg, state


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def measure_rate(cfg: TrainConfig, data: "TensorBatches | None" = None) -> float:
    """Steps per second of this config on this machine (20 timed steps after 3 warm-up steps)."""
    dev = resolve_device(cfg.device)
    data = data if data is not None else TensorBatches(cfg.data.train, cfg.model.input)
    model = build_model(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    js = get_joint_set(cfg.joint_set)
    g = torch.Generator().manual_seed(0)
    t0 = None
    for i in range(23):
        if i == 3:
            t0 = time.time()
        b = data.batch(torch.randint(0, len(data), (cfg.optim.batch_size,), generator=g), dev)
        loss, _, _ = compute_losses(model, b, cfg, js, 10 ** 6)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 20 / (time.time() - t0)


# ====================================================================== the loop
def lr_at(step: int, cfg: OptimConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if not cfg.cosine or cfg.steps <= cfg.warmup:
        return cfg.lr
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def batch_indices(gen: torch.Generator, n: int, batch_size: int, labelled: torch.Tensor | None = None,
                  share: float = 0.0) -> torch.Tensor:
    """Sample indices ``[batch_size]`` (long) of one training batch, drawn with ``gen``.

    Uniform over ``0 .. n - 1``; with ``labelled`` (``[M]`` indices of the pseudo-labelled samples, M >= 1)
    and ``share > 0``, the first ``round(share * batch_size)`` are drawn uniformly from ``labelled`` instead."""
    k = 0 if labelled is None or len(labelled) == 0 else int(round(share * batch_size))
    rest = torch.randint(0, n, (batch_size - k,), generator=gen)
    if k == 0:
        return rest
    pick = labelled[torch.randint(0, len(labelled), (k,), generator=gen)]
    return torch.cat([pick, rest])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def train(cfg: TrainConfig, resume: bool = False, evaluate_fn=None, data: TensorBatches | None = None) -> dict:
    """Train a detector; returns a summary dict. ``evaluate_fn(model, cfg, step)`` -> metrics dict
    (defaults to :func:`maskpose.evaluate.evaluate_during_training` when ``data.test`` is set).
    ``data``: the training split already loaded (e.g. by :func:`measure_rate`'s caller)."""
    import torch.distributed as dist

    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(cfg.device)
    if ddp:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    seed_everything(cfg.seed + rank)
    joint_set = get_joint_set(cfg.joint_set)
    out_dir = Path(cfg.log.out)
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            (out_dir / ".write_test").write_text("ok")
            (out_dir / ".write_test").unlink()
        except OSError as e:
            raise ConfigError(f"log.out: cannot write to output directory {out_dir}: {e.strerror}") from None

    if data is None:
        data = TensorBatches(cfg.data.train, cfg.model.input)
    if cfg.data.pseudo and data.pseudo_path != _file_stamp(cfg.data.pseudo):  # a reused split: older labels?
        data.load_pseudo(cfg.data.pseudo, get_joint_set(cfg.joint_set).num_joints)
    elif not cfg.data.pseudo:
        data.pseudo = data.pseudo_valid = data.pseudo_path = None
    if device.type == "cuda":
        data.to(device)
    model = build_model(cfg).to(device)
    shape_prior = None
    params = list(model.parameters())
    if cfg.loss.physique > 0:
        from .models.shape_prior import ShapePriorNet
        shape_prior = ShapePriorNet().to(device)
        params += list(shape_prior.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    step = 0
    ckpt_path = out_dir / "checkpoint.pt"
    if master:
        # a run killed mid-write leaves its partial temp file behind; it never reads as a checkpoint
        for stale in out_dir.glob("checkpoint.pt.tmp*"):
            stale.unlink(missing_ok=True)
    history: list[dict] = []
    elapsed_before = 0.0  # training minutes already spent before a resume (for max_minutes)
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location="cpu")
        old = config_from_checkpoint(state)
        if old.joint_set != cfg.joint_set:
            raise ValueError(f"--resume: checkpoint {ckpt_path} is for joint set {old.joint_set!r}, config says {cfg.joint_set!r}")
        model.load_state_dict(state["model"])
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        if shape_prior is not None and "shape_prior" in state:
            shape_prior.load_state_dict(state["shape_prior"])
        step = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        history = list(state.get("extra", {}).get("history", []))
        elapsed_before = 60.0 * float(state.get("extra", {}).get("minutes", 0.0))
        if master:
            print(f"resumed from {ckpt_path} at step {step}")
    elif cfg.init:
        init_weights(model, cfg.init, cfg, shape_prior)
        if master:
            print(f"initialised from {cfg.init}")
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    writer = None
    if master and cfg.log.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(out_dir / "tb"))
        except Exception as e:  # tensorboard not installed: keep going without it
            print(f"TensorBoard disabled ({type(e).__name__}: {e})")
    if evaluate_fn is None and cfg.data.test:
        from .evaluate import evaluate_during_training as evaluate_fn  # noqa: N813
    gen = torch.Generator()
    labelled = None if data.pseudo_valid is None else torch.nonzero(data.pseudo_valid.cpu()).flatten()
    t0 = time.time()
    bar = None
    if master and cfg.log.progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.optim.steps, initial=step, dynamic_ncols=True, desc="train")
    model.train()
    last_terms: dict = {}
    while step < cfg.optim.steps:
        minutes = (elapsed_before + time.time() - t0) / 60
        if cfg.optim.max_minutes > 0 and minutes >= cfg.optim.max_minutes:
            break
        for g in optimizer.param_groups:
            g["lr"] = lr_at(step, cfg.optim)
        # batch indices depend only on (seed, rank, step): a resumed run draws the same batches
        gen.manual_seed(((cfg.seed * 1_000_003 + step) * 1009 + rank) % (2 ** 63))
        idx = batch_indices(gen, len(data), cfg.optim.batch_size, labelled, cfg.data.pseudo_share)
        batch = data.batch(idx, device)
        total, terms, outputs = compute_losses(model, batch, cfg, joint_set, step, shape_prior)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        optimizer.step()
        step += 1
        last_terms = {k: float(v.detach()) for k, v in terms.items()}
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix({k: f"{v:.4f}" for k, v in last_terms.items()}, refresh=False)
        if writer is not None and step % 10 == 0:
            for k, v in last_terms.items():
                writer.add_scalar(f"loss/{k}", v, step)
            writer.add_scalar("loss/total", float(total.detach()), step)
        if writer is not None and cfg.log.image_every > 0 and step % cfg.log.image_every == 0:
            _log_panels(writer, batch, outputs, step)
        if master and evaluate_fn is not None and cfg.log.eval_every > 0 and step % cfg.log.eval_every == 0:
            m = evaluate_fn(_unwrap(model), cfg, step)
            m.update({"step": step, "minutes": (elapsed_before + time.time() - t0) / 60})
            history.append(m)
            if writer is not None:
                for k, v in m.items():
                    if isinstance(v, (int, float)):
                        writer.add_scalar(f"eval/{k}", v, step)
            _print_eval(m, bar)
        if master and cfg.log.ckpt_every > 0 and step % cfg.log.ckpt_every == 0:
            save_checkpoint(ckpt_path, model, optimizer, step, cfg, _extra(history, elapsed_before, t0, data), shape_prior)
    minutes = (elapsed_before + time.time() - t0) / 60
    if master and evaluate_fn is not None and (not history or history[-1]["step"] != step):
        m = evaluate_fn(_unwrap(model), cfg, step)
        m.update({"step": step, "minutes": minutes})
        history.append(m)
        _print_eval(m, bar)
    if master:
        save_checkpoint(ckpt_path, model, optimizer, step, cfg, _extra(history, elapsed_before, t0, data), shape_prior)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if ddp:
        dist.destroy_process_group()
    return {"step": step, "minutes": minutes, "history": history, "last_terms": last_terms,
            "checkpoint": str(ckpt_path)}


def init_weights(model, path: str | os.PathLike, cfg: TrainConfig, shape_prior=None) -> None:
    """Load a checkpoint's weights into ``model`` to fine-tune (e.g. a synthetic-data model on prepared
    video); refuses another joint set or an architecture whose tensors differ, naming them."""
    state = load_checkpoint(path)
    old = config_from_checkpoint(state)
    if old.joint_set != cfg.joint_set:
        raise ValueError(f"init: checkpoint {path} is for joint set {old.joint_set!r}, the config says {cfg.joint_set!r}")
    own = model.state_dict()
    bad = [k for k, v in state["model"].items() if k not in own or own[k].shape != v.shape]
    missing = [k for k in own if k not in state["model"]]
    if bad or missing:
        raise ValueError(f"init: checkpoint {path} does not fit this model (input {old.model.input!r} vs "
                         f"{cfg.model.input!r}, width {old.model.width} vs {cfg.model.width}): "
                         f"{len(bad)} tensors differ, {len(missing)} missing, e.g. {(bad + missing)[:3]}")
    model.load_state_dict(state["model"])
    if shape_prior is not None and "shape_prior" in state:
        shape_prior.load_state_dict(state["shape_prior"])


def _extra(history: list, elapsed_before: float, t0: float, data=None) -> dict:
    """Checkpoint extras: the evaluation history, the wall-clock minutes trained so far, and the crop
    size / number of views of the training data (so ``predict`` can prepare video at the same size)."""
    out = {"history": history, "minutes": (elapsed_before + time.time() - t0) / 60}
    if data is not None:
        out["data"] = {"size": int(data.size), "num_views": int(data.num_views)}
    return out


def _print_eval(m: dict, bar) -> None:
    keys = [k for k in ("mpjpe", "p_mpjpe", "mpjpe_fa", "p_mpjpe_fa", "flip_share", "wrist") if k in m]
    msg = f"[eval step {m['step']} {m['minutes']:.1f} min] " + " ".join(f"{k}={m[k]:.1f}" if k != "flip_share" else f"{k}={m[k]:.3f}" for k in keys)
    if bar is not None:
        bar.write(msg)
    else:
        print(msg, flush=True)


def _log_panels(writer, batch, outputs, step: int, n: int = 4) -> None:
    """TensorBoard panel: image | mask | predicted body/skeleton mask (first views of the batch)."""
    pm = outputs.get("pred_mask")
    if pm is None:
        return
    img = batch["images"][:n, 0]
    mask = batch["masks"][:n, 0].expand_as(img)
    body = pm[:n, 0].detach().float().expand_as(img)
    panel = torch.cat([img, mask, body], dim=-1)  # [n, 3, S, 3S]
    writer.add_images("panels/image_mask_body", panel.clamp(0, 1), step)
