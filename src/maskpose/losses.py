"""Training signals: mask losses and label-free priors (DESIGN.md §4).

Every term is a small pure function; :class:`LossConfig` switches each on with a weight and
:func:`mask_and_prior_losses` (called by the training loop) adds them up. Nothing here reads
ground truth.

Terms
-----
* body-mask L2 (default): capsule body of the joint set's ``body_segments`` rendered per view,
  radii in mm projected with each segment's depth, soft union, ``mean(G (M_body - M)^2)``;
* paper preset: thin Gaussian skeleton lines (max or sum merge) with the clip ``M_skel > 0.1``;
* Gaussian-joint baseline (paper Eq. 3);
* physique mask through the Shape Prior Network (optional add-on, see ``models/shape_prior.py``);
* bone-proportion prior against a published-anthropometry template rescaled to the sample's own
  size (``skeleton.ANTHRO_FRACTIONS``: Drillis & Contini 1966 via Winter), and left/right symmetry;
* knee-hinge and nose-forward hinge losses (no elbow hinge: true arms break it);
* depth consistency: per-view predicted root-relative depth vs the triangulated pose (detached);
* geodesic-extremity attraction of the hand tips (pilot 4), Cauchy loss: by default to the
  multi-view consistent extremities (3D consensus, ``extremity_loss_3d``), per view in 2D for
  single-view data or ``extremity_mode="view"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from . import multiview as mv
from .geometry import depth_P, project_P
from .render import gaussian_joint_mask, render_segments
from .skeleton import JointSet, segment_endpoints, template_bone_lengths


@dataclass
class LossConfig:
    """Weights and switches of the loss terms (0 switches a term off)."""

    preset: Literal["body", "paper", "gaussian_joints"] = "body"
    mask: float = 1.0
    geodesic: bool = True               # weight the mask L2 by the geodesic map G
    geodesic_squared: bool = False      # G inside the square (paper Eq. 9) instead of linear (authors' code)
    tau_px: float = 0.5                 # capsule edge softness (px)
    fill: bool = False                  # draw the 8 torso/hip fill links (raise the drift at GT: benchmarks/loss_at_gt.py)
    feet: bool = True                   # forward foot capsules (ankle - 50 .. + 160 mm along body forward, r 40)
    paper_width: float = 0.003          # paper preset: exp(-d^2 / w) in normalised units (arms w/2)
    paper_merge: Literal["max", "sum"] = "max"
    paper_clip: float = 0.1
    paper_fill: bool = True
    physique: float = 0.0               # Shape Prior Network term weight (after its ramp)
    prop: float = 0.3
    sym: float = 0.1
    hinge: float = 0.1
    nose: float = 0.1
    depth: float = 0.1
    depth_range_mm: float = 1000.0      # detector depth in [-1, 1] times this = mm
    extremity: float = 0.5
    extremity_sigma_px: float = 10.0
    extremity_exclude_px: float = 6.0
    extremity_mode: Literal["view", "consensus"] = "consensus"  # multi-view 3D points, or per-view 2D candidates
                                        # (single-view data always uses the per-view 2D candidates)
    extremity_exclude_mm: float = 250.0  # consensus mode: drop points this close to the ankles (toes) / head
    extremity_exclude_ends: bool = False  # consensus mode: also exclude around the predicted toes, heels and
                                        #   crown, the body's own extremities (use with a smaller exclude_mm, ~120)
    extremity_exclude_body_mm: float = -1.0  # consensus mode: drop points within a non-arm capsule's radius + this
                                        #   margin (mm) of the predicted legs, feet, torso or head, instead of the
                                        #   spheres of extremity_exclude_mm around ankles and head (-1: off)
    extremity_exclude_body_from: int = 0  # step from which the body capsules replace the spheres
    extremity_local_from: int = -1      # consensus mode: from this step only points within extremity_radius_mm
    extremity_radius_mm: float = 150.0  #   of a hand tip attract it (-1: long-range pull throughout)
    hand_extend: float = 0.3            # hand tip = wrist + hand_extend (wrist - elbow)
    hand_extend_local: float = -1.0     # consensus local phase: the tip's extension then (-1: hand_extend);
                                        #   the mask ends at the fingertips, farther out than the long-range tip
    rest: float = 0.0                   # experimental: hands the consensus pull leaves without a target are
                                        #   pulled towards hanging straight down (rest_arm_loss)
    extremity_side_mm: float = -1.0     # consensus mode: a point this far (mm) on one side of the body is
                                        #   only for that side's hand (-1: any hand)
    girth: bool = True                  # per-sample girth scale of all radii from the detector (False: 1)
    cover: float = 0.0                  # pull of the arms to mask pixels the body leaves unexplained (coverage_loss)
    cover_sigma_px: float = 4.0
    cover_from: int = 0                 # step from which loss.cover acts (the body settles first)
    extremity_decay_start: int = -1     # step from which the extremity weight decays (-1: never)
    extremity_decay_steps: int = 2000
    pseudo: float = 0.0                 # self-training: pull of every joint to its pseudo-label (data.pseudo)
    pseudo_sigma_px: float = 4.0        #   Cauchy scale (px) of that pull
    pseudo_no_pull: bool = False        # self-training: no hand pull (loss.extremity) on samples with a pseudo-label
                                        #   (with the ground truth as labels the pull cost the wrists 19 mm, session 9)
    search: float = 0.0                 # pull of elbows and wrists to the arms found by a discrete search
                                        #   against the masks (maskpose.armsearch; multi-view only)
    search_from: int = 0                # step from which loss.search acts
    search_samples: int = 2             # samples of each batch searched per step (cost: ~45 ms each on 1 CPU thread)
    search_dirs: int = 32               # directions per arm segment (hypotheses ~ search_dirs^2)
    search_margin_px: float = 4.0       # an arm moves only if the search lowers its mask loss by this much

    def validate(self) -> None:
        for k in ("mask", "physique", "prop", "sym", "hinge", "nose", "depth", "extremity", "rest", "cover"):
            if getattr(self, k) < 0:
                raise ValueError(f"loss.{k} must be >= 0, got {getattr(self, k)}")
        if self.pseudo < 0 or self.pseudo_sigma_px <= 0:
            raise ValueError(f"loss.pseudo must be >= 0 and loss.pseudo_sigma_px > 0, got {self.pseudo}, {self.pseudo_sigma_px}")
        if self.search < 0 or self.search_from < 0 or self.search_samples < 1 or self.search_dirs < 4 \
                or self.search_margin_px < 0:
            raise ValueError("loss.search, loss.search_from and loss.search_margin_px must be >= 0, "
                             f"loss.search_samples >= 1 and loss.search_dirs >= 4; got {self.search}, {self.search_from}, "
                             f"{self.search_margin_px}, {self.search_samples}, {self.search_dirs}")
        if self.cover_from < 0:
            raise ValueError(f"loss.cover_from must be >= 0, got {self.cover_from}")
        if self.hand_extend_local < 0 and self.hand_extend_local != -1.0:
            raise ValueError(f"loss.hand_extend_local must be >= 0 or -1, got {self.hand_extend_local}")
        if self.extremity_exclude_body_mm < 0 and self.extremity_exclude_body_mm != -1.0:
            raise ValueError(f"loss.extremity_exclude_body_mm must be >= 0 or -1, got {self.extremity_exclude_body_mm}")
        if self.extremity_exclude_body_from < 0:
            raise ValueError(f"loss.extremity_exclude_body_from must be >= 0, got {self.extremity_exclude_body_from}")
        if self.extremity_exclude_mm < 0:
            raise ValueError(f"loss.extremity_exclude_mm must be >= 0, got {self.extremity_exclude_mm}")
        if self.extremity_radius_mm <= 0 or self.hand_extend < 0:
            raise ValueError("loss.extremity_radius_mm must be > 0 and loss.hand_extend >= 0")
        if self.tau_px <= 0 or self.paper_width <= 0 or self.extremity_sigma_px <= 0 or self.cover_sigma_px <= 0:
            raise ValueError("loss.tau_px, loss.paper_width, loss.extremity_sigma_px and loss.cover_sigma_px must be > 0")


# ------------------------------------------------------------------ camera helpers
def focal_normalized(P: torch.Tensor) -> torch.Tensor:
    """Mean focal length ``[...]`` of pinhole projections ``P[..., 3, 4] = K' [R | t]`` (units of P's
    image coordinates per unit of depth), from ``M M^T = K' K'^T`` with ``K'`` upper triangular and
    last row (0, 0, 1)."""
    M = P[..., :3]
    MMt = M @ M.transpose(-1, -2)
    fy = (MMt[..., 1, 1] - MMt[..., 1, 2] ** 2).clamp_min(1e-12).sqrt()
    fx = (MMt[..., 0, 0] - MMt[..., 0, 2] ** 2).clamp_min(1e-12).sqrt()  # includes skew^2, negligible
    return 0.5 * (fx + fy)


def project_segments(joints3d: torch.Tensor, projections: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor,
                     radii_mm: torch.Tensor, girth: torch.Tensor | None = None):
    """Project capsule segments into every view.

    Args:
        joints3d: ``[B, J, 3]`` mm (world); projections ``[B, V, 3, 4]`` (normalised crop coords);
        wa, wb: ``[E, J]`` endpoint weights; radii_mm ``[E]``; girth ``[B]`` or None.
    Returns:
        ``(a [B, V, E, 2], b [B, V, E, 2], radius [B, V, E])`` in normalised crop units.
    """
    a3, b3 = segment_endpoints(joints3d, wa, wb)  # [B, E, 3]
    P = projections
    a2 = project_P(a3[:, None], P)  # [B, V, E, 2]
    b2 = project_P(b3[:, None], P)
    z = depth_P(0.5 * (a3 + b3)[:, None], P).clamp_min(1.0)  # [B, V, E] mm
    f = focal_normalized(P)[..., None]  # [B, V, 1]
    r = radii_mm.to(joints3d)[None, None] * f / z
    if girth is not None:
        r = r * girth[:, None, None]
    return a2, b2, r


# ------------------------------------------------------------------ mask losses
def weighted_l2(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                squared_weight: bool = False, clip: float | None = None) -> torch.Tensor:
    """``mean(G (pred - target)^2)`` over all pixels (``G^2`` when ``squared_weight``); with ``clip``
    only pixels where ``pred > clip`` count (the authors' skeleton-loss trick). Shapes broadcast."""
    e = (pred - target) ** 2
    if clip is not None:
        e = e * (pred.detach() > clip)
    if weight is not None:
        e = e * (weight * weight if squared_weight else weight)
    return e.mean()


def normalized_weights(weights: torch.Tensor) -> torch.Tensor:
    """Geodesic weights ``[..., 1, S, S]`` divided by their per-view mean (so views and presets
    share one scale and the loss weights stay comparable across datasets)."""
    return weights / weights.mean(dim=(-1, -2), keepdim=True).clamp_min(1e-8)


FOOT_BACK_MM, FOOT_FRONT_MM, FOOT_DROP_MM, FOOT_RADIUS_MM = 50.0, 160.0, 40.0, 40.0


def foot_segments(joints3d: torch.Tensor, joint_set: JointSet) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-pointing foot capsules ``(a [B, 2, 3], b [B, 2, 3])`` (R, L): from ``ankle - 50 f - 40 u``
    to ``ankle + 160 f - 40 u`` with ``(f, u)`` the body's forward and up (pilot 3). Feet make the
    mask loss itself label-aware: the mirrored labelling draws them backwards."""
    fwd, _, up = mv.body_frame(joints3d, joint_set)
    j = joint_set.index
    ankles = torch.stack([joints3d[:, j("RAnkle")], joints3d[:, j("LAnkle")]], dim=1)  # [B, 2, 3]
    base = ankles - FOOT_DROP_MM * up[:, None]
    return base - FOOT_BACK_MM * fwd[:, None], base + FOOT_FRONT_MM * fwd[:, None]


def extremity_exclusions(joints3d: torch.Tensor, joint_set: JointSet, ends: bool = False) -> torch.Tensor:
    """Points ``[B, E, 3]`` (mm, no gradient) whose surroundings are the feet's and the head's
    extremities, not a hand's: the ankles and the head joint; with ``ends`` also each foot capsule's
    heel and toe ends (:func:`foot_segments`) and the crown (the head sphere's centre + its radius along
    neck -> head), so that a smaller exclusion radius still drops the toes and the crown while a hand
    near the head or the feet keeps its own extremity point."""
    j = joint_set.index
    with torch.no_grad():
        X = joints3d.detach()
        pts = [X[:, [j("LAnkle"), j("RAnkle"), j("head")]]]
        if ends:
            if {"LHip", "RHip"} <= set(joint_set.joints):
                fa, fb = foot_segments(X, joint_set)
                pts += [fa, fb]
            head = [s for s in joint_set.body_segments if s.name == "head-sphere"]
            if head and "neck" in joint_set.joints:
                c = sum(w * X[:, k] for k, w in head[0].a.items())
                up = F.normalize(X[:, j("head")] - X[:, j("neck")], dim=-1)
                pts.append((c + head[0].radius_mm * up)[:, None])
        return torch.cat(pts, dim=1)


def point_segment_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Distance ``[B, M, E]`` from points ``[B, M, D]`` to segments ``a, b [B, E, D]`` (any D).

    ``eps > 0`` computes ``sqrt(d^2 + eps)``: a point on a segment's axis then has a finite gradient.
    """
    ab = b - a  # [B, E, D]
    w = points[:, :, None] - a[:, None]  # [B, M, E, D]
    t = ((w * ab[:, None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)[:, None]).clamp(0.0, 1.0)
    q = w - t[..., None] * ab[:, None]
    return ((q * q).sum(-1) + eps).sqrt()


def points_on_body(points: torch.Tensor, joints3d: torch.Tensor, joint_set: JointSet, margin_mm: float,
                   girth: torch.Tensor | None = None, feet: bool = True) -> torch.Tensor:
    """Which extremity points ``[B, M]`` (bool, no gradient) the predicted body other than the arms
    explains: within a leg, torso, head (or foot) capsule's radius (times ``girth [B]``) + ``margin_mm``.

    Such a point is the mask's extremity at a knee, a shoulder, the crown or the toes, not at a hand.
    This generalises the exclusion spheres around the ankles and head (:func:`extremity_exclusions`):
    at the predicted poses of a trained model those spheres also dropped a quarter of the hands' own
    points (hands near the head or feet), the capsules ~9 % (docs/results/training-notes.md, session 5).

    Args:
        points: ``[B, M, 3]`` mm; joints3d ``[B, J, 3]`` mm.
    """
    with torch.no_grad():
        X = joints3d.detach()
        segs = tuple(s for s in joint_set.select_segments() if s.group != "arm" and not s.name.startswith("fill-"))
        wa, wb = joint_set.segment_matrices(segs)
        a, b = segment_endpoints(X, wa, wb)
        r = torch.tensor([s.radius_mm for s in segs], dtype=X.dtype, device=X.device).expand(X.shape[0], -1)
        if feet and {"LAnkle", "RAnkle", "LHip", "RHip"} <= set(joint_set.joints):
            fa, fb = foot_segments(X, joint_set)
            a, b = torch.cat([a, fa], 1), torch.cat([b, fb], 1)
            r = torch.cat([r, r.new_full((X.shape[0], 2), FOOT_RADIUS_MM)], 1)
        if girth is not None:
            r = r * girth.detach().to(r)[:, None]
        d = point_segment_distance(points.to(X), a, b)  # [B, M, E]
        return (d <= r[:, None] + margin_mm).any(-1)


def _has_feet(cfg: LossConfig, joint_set: JointSet) -> bool:
    return cfg.feet and {"LAnkle", "RAnkle", "LHip", "RHip"} <= set(joint_set.joints)


def project_feet(joints3d: torch.Tensor, projections: torch.Tensor, joint_set: JointSet, girth=None):
    """The two foot capsules (:func:`foot_segments`) in every view: ``(a [B, V, 2, 2], b [B, V, 2, 2],
    radius [B, V, 2])`` in normalised crop units (radius 40 mm projected with the foot's depth)."""
    fa, fb = foot_segments(joints3d, joint_set)
    fa2, fb2 = project_P(fa[:, None], projections), project_P(fb[:, None], projections)
    fz = depth_P(0.5 * (fa + fb)[:, None], projections).clamp_min(1.0)
    fr = FOOT_RADIUS_MM * focal_normalized(projections)[..., None] / fz
    if girth is not None:
        fr = fr * girth[:, None, None]
    return fa2, fb2, fr


def cover_terms(joints3d, projections, joint_set: JointSet, target, covered, size: int, cfg: LossConfig,
                girth=None, groups=None) -> torch.Tensor:
    """:func:`coverage_loss` for a batch: own capsules = the ``arm`` group's segments, rivals = the
    ``leg`` and ``head`` groups' (and the feet when ``cfg.feet``); ``groups`` = the cascade's active ones.

    Args:
        joints3d ``[B, J, 3]`` mm; projections ``[B, V, 3, 4]``; target, covered ``[B, V, 1, S, S]``.
    """
    segs = joint_set.select_segments(groups)
    own = tuple(s for s in segs if s.group == "arm")
    rival = tuple(s for s in segs if s.group in ("leg", "head"))
    if not own:
        return joints3d.sum() * 0.0
    B, V = projections.shape[:2]

    def proj(ss):
        wa, wb = joint_set.segment_matrices(ss)
        radii = torch.tensor([s.radius_mm for s in ss], dtype=joints3d.dtype, device=joints3d.device)
        a, b, r = project_segments(joints3d, projections, wa, wb, radii, girth)
        return a, b, r

    ao, bo, ro = proj(own)
    if rival:
        ar, br, rr = (t.detach() for t in proj(rival))
    else:
        ar = br = ao.new_zeros(B, V, 0, 2)
        rr = ro.new_zeros(B, V, 0)
    if _has_feet(cfg, joint_set):
        with torch.no_grad():
            fa2, fb2, fr = project_feet(joints3d, projections, joint_set, girth)
        ar, br, rr = torch.cat([ar, fa2], 2), torch.cat([br, fb2], 2), torch.cat([rr, fr], 2)
    fl = lambda t: t.flatten(0, 1)  # noqa: E731
    return coverage_loss(fl(ao), fl(bo), fl(ro), fl(ar), fl(br), fl(rr), target.reshape(B * V, size, size),
                         covered.reshape(B * V, size, size), size, cfg.cover_sigma_px)


def render_body(joints3d, projections, joint_set: JointSet, size: int, cfg: LossConfig, girth=None, segments=None,
                radii_mm: torch.Tensor | None = None):
    """Capsule body mask ``[B, V, 1, S, S]`` of ``joints3d [B, J, 3]`` in every view (plus the feet
    when ``cfg.feet``). ``radii_mm [E]`` overrides the segments' typical radii."""
    segs = joint_set.body_segments if segments is None else segments
    if not cfg.fill:
        segs = tuple(s for s in segs if not s.name.startswith("fill-"))
    wa, wb = joint_set.segment_matrices(segs)
    radii = torch.tensor([s.radius_mm for s in segs], dtype=joints3d.dtype, device=joints3d.device)
    if radii_mm is not None:
        radii = radii_mm.to(joints3d)
    a, b, r = project_segments(joints3d, projections, wa, wb, radii, girth)
    if _has_feet(cfg, joint_set):
        fa2, fb2, fr = project_feet(joints3d, projections, joint_set, girth)
        a, b, r = torch.cat([a, fa2], 2), torch.cat([b, fb2], 2), torch.cat([r, fr], 2)
    B, V, E = r.shape
    m = render_segments(a.reshape(B * V, E, 2), b.reshape(B * V, E, 2), r.reshape(B * V, E), size,
                        profile="capsule", merge="soft_union", tau=cfg.tau_px)
    return m.reshape(B, V, 1, size, size)


def render_paper(joints2d: torch.Tensor, joint_set: JointSet, size: int, cfg: LossConfig, groups=None):
    """Paper skeleton mask ``[B, V, 1, S, S]`` from per-view 2D joints ``[B, V, J, 2]``."""
    from .render import skeleton_mask

    B, V = joints2d.shape[:2]
    m = skeleton_mask(joints2d.reshape(B * V, *joints2d.shape[2:]), size, w=cfg.paper_width,
                      merge=cfg.paper_merge, joint_set=joint_set, groups=groups, fill=cfg.paper_fill)
    return m.reshape(B, V, 1, size, size)


def render_gaussian_joints(joints2d: torch.Tensor, size: int, cfg: LossConfig):
    B, V = joints2d.shape[:2]
    m = gaussian_joint_mask(joints2d.reshape(B * V, *joints2d.shape[2:]), size, w=cfg.paper_width, merge="max")
    return m.reshape(B, V, 1, size, size)


# ------------------------------------------------------------------ priors
def proportion_prior(joints3d: torch.Tensor, joint_set: JointSet, bones=None) -> torch.Tensor:
    """Scale-free proportion prior ``mean_B sum_b ((l_b - s l_b^T) / (s l_b^T))^2`` with the template
    ``l^T`` from published anthropometry and ``s = sum l / sum l^T`` the sample's own scale."""
    bones = joint_set.bones if bones is None else bones
    L = joint_set.bone_lengths(joints3d, bones)  # [B, E]
    T = torch.tensor([joint_set.template_lengths[b.name] for b in bones], dtype=L.dtype, device=L.device)
    keep = T > 0
    L, T = L[..., keep], T[keep]
    s = L.sum(-1, keepdim=True) / T.sum()
    return (((L - s * T) / (s * T)) ** 2).sum(-1).mean()


def symmetry_prior(joints3d: torch.Tensor, joint_set: JointSet, unit_mm: float = 100.0) -> torch.Tensor:
    """Left/right symmetry ``mean_B sum_pairs sum_side ((l_side - mean_pair) / unit)^2``."""
    names = [b.name for b in joint_set.bones]
    pairs = [(names.index(n), names.index("R-" + n[2:])) for n in names if n.startswith("L-") and "R-" + n[2:] in names]
    if not pairs:
        return joints3d.new_zeros(())
    L = joint_set.bone_lengths(joints3d)
    li = L[..., [p[0] for p in pairs]]
    ri = L[..., [p[1] for p in pairs]]
    m = 0.5 * (li + ri)
    return ((((li - m) / unit_mm) ** 2) + (((ri - m) / unit_mm) ** 2)).sum(-1).mean()


def hinge_losses(joints3d: torch.Tensor, joint_set: JointSet) -> tuple[torch.Tensor, torch.Tensor]:
    """``(knee, nose)``: mean hinge violations ``relu(-q)`` (see :mod:`maskpose.multiview`)."""
    knee = torch.relu(-mv.knee_hinge(joints3d, joint_set)).sum(-1).mean()
    nose = torch.relu(-mv.nose_forward(joints3d, joint_set)).mean()
    return knee, nose


def depth_consistency(pred_depth: torch.Tensor, joints3d: torch.Tensor, projections: torch.Tensor,
                      joint_set: JointSet, depth_range_mm: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-view predicted root-relative depth ``[B, V, J]`` (in units of ``depth_range_mm``) against
    the triangulated pose ``[B, J, 3]`` seen from each camera (target detached). Smooth-L1."""
    z = depth_P(joints3d.detach()[:, None], projections)  # [B, V, J] mm
    target = (z - z[..., joint_set.root:joint_set.root + 1]) / depth_range_mm
    e = F.smooth_l1_loss(pred_depth, target, reduction="none", beta=0.05)
    if valid is not None:
        e = e * valid[..., None]
        return e.sum() / (valid.sum() * e.shape[-1]).clamp_min(1)
    return e.mean()


def hand_tips(joints: torch.Tensor, joint_set: JointSet, extend: float = 0.3) -> torch.Tensor:
    """Hand tips ``[..., 2, D]`` (L, R) = wrist + ``extend`` (wrist - elbow)."""
    j = joint_set.index
    out = []
    for s in "LR":
        w, e = joints[..., j(f"{s}Wrist"), :], joints[..., j(f"{s}Elbow"), :]
        out.append(w + extend * (w - e))
    return torch.stack(out, dim=-2)


def extremity_loss(tips: torch.Tensor, candidates: torch.Tensor, cand_valid: torch.Tensor,
                   exclude: torch.Tensor, size: int, sigma_px: float = 10.0, exclude_px: float = 6.0) -> torch.Tensor:
    """Geodesic-extremity attraction of the hand tips (pilot 4), per view.

    Args:
        tips: ``[N, 2, 2]`` projected hand tips (normalised crop coords), N = B * V views.
        candidates: ``[N, K, 2]`` extremity candidates (normalised), ``cand_valid [N, K]`` bool.
        exclude: ``[N, M, 2]`` points (projected ankles, head top) near which candidates are dropped.
    Returns:
        Mean over hand-views that have a candidate of the Cauchy loss ``log(1 + d^2 / sigma^2)`` (px),
        with the two tips assigned to the cheapest distinct pair of candidates (the nearest one
        if only one remains); no gradient through the assignment.
    """
    px = (size - 1) / 2.0
    N, K = candidates.shape[:2]
    if K == 0:
        return tips.new_zeros(())
    with torch.no_grad():
        dex = (candidates[:, :, None] - exclude[:, None]).norm(dim=-1) * px  # [N, K, M]
        ok = cand_valid & (dex > exclude_px).all(-1)
        d = (tips.detach()[:, :, None] - candidates[:, None]).norm(dim=-1) * px  # [N, 2, K]
        big = torch.finfo(d.dtype).max / 4
        d = torch.where(ok[:, None], d, torch.full_like(d, big))
        # cheapest distinct pair: cost[i, k] = d[0, i] + d[1, k], i != k
        pair = d[:, 0, :, None] + d[:, 1, None, :]
        eye = torch.eye(K, dtype=torch.bool, device=d.device)
        pair = torch.where(eye, torch.full_like(pair, big), pair)
        flat = pair.reshape(N, -1).argmin(-1)
        i0, i1 = flat // K, flat % K
        nok = ok.sum(-1)
        # only one candidate: the nearer tip takes it, the other tip gets nothing
        single = nok == 1
        only = ok.float().argmax(-1)
        nearer_is_0 = d[torch.arange(N), 0, only] <= d[torch.arange(N), 1, only]
        idx = torch.stack([torch.where(single, only, i0), torch.where(single, only, i1)], dim=-1)  # [N, 2]
        use = torch.stack([(nok >= 2) | (single & nearer_is_0), (nok >= 2) | (single & ~nearer_is_0)], dim=-1)
    target = torch.gather(candidates, 1, idx[..., None].expand(N, 2, 2))
    dist2 = ((tips - target) * px).pow(2).sum(-1)
    loss = torch.log1p(dist2 / sigma_px ** 2) * use
    return loss.sum() / use.sum().clamp_min(1)


@torch.no_grad()
def _allowed_points(tips, shoulders, reach, points, points_valid, exclude, exclude_mm):
    """``(d [B, 2, M]`` tip-to-point distances (mm), ``allowed [B, 2, M])``: valid points within
    ``reach`` of each side's shoulder and farther than ``exclude_mm`` from every ``exclude`` point."""
    ok = points_valid & ((points[:, :, None] - exclude[:, None].to(points)).norm(dim=-1) > exclude_mm).all(-1)
    d = (tips.detach()[:, :, None] - points[:, None]).norm(dim=-1)
    reachable = (points[:, None] - shoulders.detach()[:, :, None]).norm(dim=-1) <= reach[..., None]
    return d, ok[:, None] & reachable


def rest_arm_loss(joints3d: torch.Tensor, joint_set: JointSet, free: torch.Tensor,
                  sigma_mm: float = 150.0) -> torch.Tensor:
    """A weak rest prior for hands with no extremity evidence (experimental, ``loss.rest``).

    ``free [B, 2]`` (L, R) marks the hands that :func:`extremity_loss_3d` left without a target (no
    multi-view extremity point within their arm's reach): in the masks such a hand is against or in
    front of the body. Without a term for them the network folds these arms into the torso's
    silhouette, where the mask loss cannot see them (docs/results/training-notes.md); this pulls the
    wrist towards the arm hanging straight down from its shoulder along the body's up axis, by the
    pose's own arm length: Cauchy ``log(1 + d^2 / sigma^2)`` in mm. Label-free.

    Args:
        joints3d: ``[B, J, 3]`` mm; free ``[B, 2]`` bool.
    Returns:
        Mean over the free hands (0 with a graph when there is none).
    """
    j = joint_set.index
    _, _, up = mv.body_frame(joints3d, joint_set)
    losses = []
    for s in "LR":
        shoulder, elbow, wrist = (joints3d[:, j(f"{s}{n}")] for n in ("Shoulder", "Elbow", "Wrist"))
        length = ((elbow - shoulder).norm(dim=-1) + (wrist - elbow).norm(dim=-1)).detach()
        rest = shoulder.detach() - length[:, None] * up.detach()
        losses.append(torch.log1p(((wrist - rest) ** 2).sum(-1) / sigma_mm ** 2))
    loss = torch.stack(losses, dim=-1) * free.to(joints3d.dtype)
    return loss.sum() / free.sum().clamp_min(1)


def extremity_loss_3d(tips: torch.Tensor, shoulders: torch.Tensor, reach: torch.Tensor, points: torch.Tensor,
                      points_valid: torch.Tensor, exclude: torch.Tensor, projections: torch.Tensor,
                      view_valid: torch.Tensor, size: int, sigma_px: float = 10.0,
                      exclude_mm: float = 250.0, max_dist_mm: float = float("inf"),
                      return_assignment: bool = False, lateral: torch.Tensor | None = None,
                      side_mm: float = float("inf"), on_body: torch.Tensor | None = None):
    """Attraction of the 3D hand tips to multi-view consistent mask extremities
    (:func:`maskpose.data.extremities.consensus_extremities`), measured in every view.

    Each tip is assigned (no gradient) to a distinct extremity point by the cheapest total 3D distance;
    a point is a candidate for a hand only if it lies within ``reach`` of that side's shoulder and
    farther than ``exclude_mm`` from every ``exclude`` point (predicted ankles: the toes; head), and
    within ``max_dist_mm`` of the tip (a tip with no such point is left alone: late in training only
    nearby extremities hold the hands, so a hand hidden in every view is not dragged to another one).
    With ``lateral`` (``[B, M]`` mm: each point's offset along the body's left axis, see
    :func:`point_sides`) a point more than ``side_mm`` on the body's right is not a candidate for
    the left hand, and vice versa: with one hand raised and the other against the body, the single
    extremity point then goes to the hand on its side instead of to the nearer tip, which rewarded
    a network for bringing both hands towards it (docs/results/training-notes.md, "wrists").
    With ``on_body [B, M]`` (bool, :func:`points_on_body`) points that the predicted legs, torso, head
    or feet explain are not candidates either.
    The loss is the Cauchy ``log(1 + d^2 / sigma^2)`` of the px distance between the projected tip
    and the projected target in each valid view, averaged over assigned tips and views.

    Args:
        tips: ``[B, 2, 3]`` hand tips (L, R), world mm. shoulders ``[B, 2, 3]`` (L, R); reach ``[B, 2]`` mm.
        points: ``[B, M, 3]`` extremity points (mm), ``points_valid [B, M]`` bool.
        exclude: ``[B, E, 3]`` mm. projections ``[B, V, 3, 4]`` (normalised crop coords),
        view_valid ``[B, V]`` bool. size: crop size (px).
    Returns:
        Scalar; 0 (with a graph) when no tip has a target. With ``return_assignment`` also
        ``use [B, 2]`` bool: which tips got a target.
    """
    B, M = points.shape[:2]
    if M == 0:
        zero = tips.sum() * 0.0
        return (zero, torch.zeros(B, 2, dtype=torch.bool, device=tips.device)) if return_assignment else zero
    pts = points.to(tips)
    with torch.no_grad():
        d, allowed = _allowed_points(tips, shoulders, reach, pts, points_valid, exclude, exclude_mm)
        allowed = allowed & (d <= max_dist_mm)  # [B, 2, M]
        if on_body is not None:  # points the predicted legs / torso / head explain (points_on_body)
            allowed = allowed & ~on_body.to(allowed.device)[:, None]
        if lateral is not None and side_mm < float("inf"):
            lat = lateral.to(d)
            allowed = allowed & torch.stack([lat >= -side_mm, lat <= side_mm], dim=1)
        big = torch.finfo(d.dtype).max / 4
        d = torch.where(allowed, d, torch.full_like(d, big))
        # cheapest distinct pair, or one tip alone when only it has an allowed point
        pair = d[:, 0, :, None] + d[:, 1, None, :]
        eye = torch.eye(M, dtype=torch.bool, device=d.device)
        pair = torch.where(eye, torch.full_like(pair, big), pair)
        best_pair, flat = pair.reshape(B, -1).min(-1)
        i0, i1 = flat // M, flat % M
        both = best_pair < big / 2
        b0, k0 = d[:, 0].min(-1)
        b1, k1 = d[:, 1].min(-1)
        # no distinct pair: take the single tip with the nearer allowed point
        one0 = ~both & (b0 < big / 2) & ((b0 <= b1) | (b1 >= big / 2))
        one1 = ~both & (b1 < big / 2) & ~one0
        idx = torch.stack([torch.where(both, i0, k0), torch.where(both, i1, k1)], dim=-1)  # [B, 2]
        use = torch.stack([both | one0, both | one1], dim=-1)  # [B, 2]
    target = torch.gather(pts, 1, idx[..., None].expand(B, 2, 3))  # [B, 2, 3]
    P = projections.to(tips)
    px = (size - 1) / 2.0
    t2 = project_P(tips[:, None], P)  # [B, V, 2, 2]
    g2 = project_P(target[:, None], P)
    dist2 = ((t2 - g2) * px).pow(2).sum(-1)  # [B, V, 2]
    w = (use[:, None, :] & view_valid[:, :, None]).to(tips.dtype)
    loss = torch.log1p(dist2 / sigma_px ** 2) * w
    loss = loss.sum() / w.sum().clamp_min(1)
    return (loss, use) if return_assignment else loss


def capsule_distance_px(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, r: torch.Tensor, size: int) -> torch.Tensor:
    """Distance in px from points to the surface of 2D capsules (0 inside).

    Args:
        p: ``[K, 2]`` points; a, b: ``[K, E, 2]`` segment end points; r ``[K, E]`` radii — all in
            normalised crop coords (one row of capsules per point). size: image side ``S`` (px).
    Returns:
        ``[K, E]`` px, ``max(|p - seg| - r, 0)``; differentiable in ``a, b, r`` (``sqrt`` smoothed by
        1e-12 so a point on the axis has a finite gradient).
    """
    d = point_segment_distance(p[:, None], a, b, eps=1e-12)[:, 0] - r  # [K, E]
    return d.clamp_min(0.0) * ((size - 1) / 2.0)


def coverage_loss(a_own: torch.Tensor, b_own: torch.Tensor, r_own: torch.Tensor, a_rival: torch.Tensor,
                  b_rival: torch.Tensor, r_rival: torch.Tensor, target: torch.Tensor, covered: torch.Tensor,
                  size: int, sigma_px: float = 4.0) -> torch.Tensor:
    """Long-range pull of the arms towards mask pixels the body leaves unexplained (``loss.cover``).

    The body-mask L2 gives a capsule a gradient only near its own edge: an arm folded into the
    torso's silhouette never feels the strip of mask beside the torso that a hanging arm makes
    (docs/results/training-notes.md, "wrists"). Here every foreground pixel that the rendered body
    does not cover (``target > 0.5`` and ``covered < 0.5``) and that is nearer to an ``own`` capsule
    (the arms) than to every ``rival`` one (legs, feet, head: their pixels are their own business)
    pulls the nearest own capsule's surface towards it with the Cauchy ``log(1 + d^2 / sigma^2)``,
    ``d`` in px. Label-free: only masks and the model's own render are read. Distances are computed
    for the uncovered pixels only.

    Args:
        a_own, b_own: ``[N, Eo, 2]`` capsule end points (normalised crop coords), r_own ``[N, Eo]``.
        a_rival, b_rival, r_rival: ``[N, Er, ...]`` the same for the rival capsules (no gradient).
        target: ``[N, S, S]`` foreground mask (0 on invalid views); covered ``[N, S, S]`` rendered body
            (no gradient). size: ``S`` px.
    Returns:
        Scalar: mean over the N views of ``sum_p rho(d_p) / S^2`` (0 with a graph when no pixel counts).
    """
    from .render import pixel_coords

    N = a_own.shape[0]
    with torch.no_grad():
        free = (target.reshape(N, -1) > 0.5) & (covered.reshape(N, -1) < 0.5)
        n, pix = free.nonzero(as_tuple=True)  # [K]
        c = pixel_coords(size, dtype=a_own.dtype, device=a_own.device)
        p = torch.stack([c[pix % size], c[pix // size]], dim=-1)  # [K, 2] (x, y)
    if n.numel() == 0:
        return (a_own.sum() + b_own.sum() + r_own.sum()) * 0.0
    d_own = capsule_distance_px(p, a_own[n], b_own[n], r_own[n], size).min(-1).values  # [K]
    with torch.no_grad():
        keep = torch.ones_like(d_own, dtype=torch.bool)
        if a_rival.shape[1] > 0:
            d_riv = capsule_distance_px(p, a_rival[n].detach(), b_rival[n].detach(), r_rival[n].detach(), size)
            keep = d_own.detach() < d_riv.min(-1).values
    rho = torch.log1p(d_own ** 2 / sigma_px ** 2) * keep.to(d_own.dtype)
    return rho.sum() / (N * size * size)


def point_sides(points: torch.Tensor, joints3d: torch.Tensor, joint_set: JointSet) -> torch.Tensor:
    """Signed offset ``[B, M]`` (mm) of ``points [B, M, 3]`` along the body's left axis (right
    shoulder to left shoulder) from the thorax (shoulder midpoint without one); no gradient."""
    j = joint_set.index
    with torch.no_grad():
        X = joints3d.to(points)
        axis = X[:, j("LShoulder")] - X[:, j("RShoulder")]
        axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        centre = X[:, j("thorax")] if "thorax" in joint_set.joints else 0.5 * (
            X[:, j("LShoulder")] + X[:, j("RShoulder")])
        return ((points - centre[:, None]) * axis[:, None]).sum(-1)


def arm_reach(joints3d: torch.Tensor, joint_set: JointSet, extend: float = 0.3, slack: float = 1.2) -> torch.Tensor:
    """Largest shoulder-to-hand-tip distance ``[B, 2]`` (L, R) mm: ``slack (upper arm + (1 + extend)
    forearm)`` of the pose's own, prior-regularised, arm bones (mean of both sides), no gradient."""
    j = joint_set.index
    with torch.no_grad():
        lens = []
        for s in "LR":
            sh, el, wr = (joints3d[:, j(f"{s}{n}")] for n in ("Shoulder", "Elbow", "Wrist"))
            lens.append((el - sh).norm(dim=-1) + (1 + extend) * (wr - el).norm(dim=-1))
        r = slack * 0.5 * (lens[0] + lens[1])
        return torch.stack([r, r], dim=-1)
