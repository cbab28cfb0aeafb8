"""Discrete search over arm configurations against the masks (label-free).

Why: a network trained on masks folds an arm whose hand is not a mask extremity into the torso's
silhouette (docs/results/training-notes.md, "wrists"), and gradient descent on the capsule mask
loss cannot unfold it: a capsule's soft edge (``tau`` ~0.5 px) only sees pixels next to it, so the
arm pixels that the folded arm leaves unexplained beside the torso pull the torso wider instead of
the arm outwards. A search does not need that gradient: for each arm it renders a set of arm
configurations -- upper arm and forearm directions on a sphere, in the body's own frame, with the
pose's own bone lengths -- over the rest of the body in every view, and keeps the configuration
whose mask loss is lowest, when it beats the current arm by a margin.

All functions are pure; no ground truth is read.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import losses as L
from .geometry import depth_P, project_P
from . import multiview as mv
from .render import render_segments
from .skeleton import JointSet


def sphere_directions(n: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``n`` near-uniform unit vectors ``[n, 3]`` (Fibonacci sphere; deterministic)."""
    if n < 1:
        raise ValueError(f"n: expected >= 1 directions, got {n}")
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * i / n
    r = (1.0 - z * z).clamp_min(0).sqrt()
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    d = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)
    return d.to(dtype=dtype, device=device)


def pair_index(dirs: torch.Tensor, max_flexion_deg: float = 160.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(i, k)`` ``[H']`` indices of the (upper arm, forearm) direction pairs of ``dirs [D, 3]`` whose
    forearm turns at most ``max_flexion_deg`` from the upper arm (row-major in ``i``)."""
    cos = dirs @ dirs.T
    return torch.nonzero(cos >= math.cos(math.radians(max_flexion_deg)), as_tuple=True)


def arm_hypotheses(joints3d: torch.Tensor, joint_set: JointSet, side: str, dirs: torch.Tensor,
                   max_flexion_deg: float = 160.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate elbows and wrists of one arm.

    Args:
        joints3d: ``[N, J, 3]`` mm. side: ``"L"`` or ``"R"``. dirs: ``[D, 3]`` unit vectors in the
            body frame ``(forward, left, up)`` of each pose (:func:`maskpose.multiview.body_frame`).
        max_flexion_deg: pairs whose forearm turns more than this from the upper arm are dropped.
    Returns:
        ``(elbows [N, H, 3], wrists [N, H, 3])`` mm, ``H <= D^2``: the upper arm along ``dirs[i]``
        from the shoulder, the forearm along ``dirs[k]`` from the elbow, with the pose's own upper
        arm and forearm lengths. Hypothesis 0 is the current arm.
    """
    if side not in ("L", "R"):
        raise ValueError(f"side: expected 'L' or 'R', got {side!r}")
    j = joint_set.index
    sh, el, wr = (joints3d[:, j(f"{side}{n}")] for n in ("Shoulder", "Elbow", "Wrist"))
    upper = (el - sh).norm(dim=-1, keepdim=True)  # [N, 1]
    fore = (wr - el).norm(dim=-1, keepdim=True)
    fwd, left, up = mv.body_frame(joints3d, joint_set)
    R = torch.stack([fwd, left, up], dim=-1)  # [N, 3, 3]: columns = body axes in world
    d = dirs.to(joints3d)
    world = torch.einsum("nij,dj->ndi", R, d)  # [N, D, 3]
    i, k = pair_index(d, max_flexion_deg)
    elbows = sh[:, None] + upper[:, None] * world[:, i]
    wrists = elbows + fore[:, None] * world[:, k]
    return torch.cat([el[:, None], elbows], 1), torch.cat([wr[:, None], wrists], 1)


def _arm_segments(joint_set: JointSet, side: str):
    names = (f"{side}-upper-arm", f"{side}-forearm", f"{side}-hand")
    return tuple(s for s in joint_set.body_segments if s.name in names)


@torch.no_grad()
def arm_scores(joints3d: torch.Tensor, masks: torch.Tensor, projections: torch.Tensor, valid: torch.Tensor,
               joint_set: JointSet, side: str, elbows: torch.Tensor, wrists: torch.Tensor, cfg: L.LossConfig,
               girth: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mask loss of each arm hypothesis with the rest of the body as it is.

    Args:
        joints3d: ``[N, J, 3]`` mm; masks ``[N, V, 1, S, S]`` in [0, 1]; projections ``[N, V, 3, 4]``
            (normalised crop coords); valid ``[N, V]`` bool; elbows, wrists ``[N, H, 3]``
            (:func:`arm_hypotheses`); girth ``[N]`` or None; weights ``[N, V, 1, S, S]`` or None
            (per-pixel weights of the L2; None: uniform).
    Returns:
        ``[N, H]``: ``sum_v sum_px w (1 - (1 - rest)(1 - arm_h) - mask)^2`` over the valid views,
        in px units, where ``rest`` is the capsule body without this arm (soft union, as in training).
    """
    N, H = elbows.shape[:2]
    V, S = masks.shape[1], masks.shape[-1]
    j = joint_set.index
    arm = _arm_segments(joint_set, side)
    others = tuple(s for s in joint_set.body_segments if s not in arm)
    rest = L.render_body(joints3d, projections, joint_set, S, cfg, girth, segments=others)[:, :, 0]  # [N, V, S, S]
    wa, wb = joint_set.segment_matrices(arm)
    radii = torch.tensor([s.radius_mm for s in arm], dtype=joints3d.dtype, device=joints3d.device)
    m = masks[:, :, 0].to(joints3d)
    w = valid.to(joints3d)[:, :, None, None]
    if weights is not None:
        w = w * weights[:, :, 0].to(joints3d)
    X = joints3d[:, None].expand(-1, H, -1, -1).clone()  # [N, H, J, 3]
    X[:, :, j(f"{side}Elbow")] = elbows
    X[:, :, j(f"{side}Wrist")] = wrists
    P = projections[:, None].expand(-1, H, -1, -1, -1).reshape(N * H, V, 3, 4)
    g = None if girth is None else girth[:, None].expand(-1, H).reshape(-1)
    a, b, r = L.project_segments(X.reshape(N * H, -1, 3), P, wa, wb, radii, g)  # [N*H, V, 3, ...]
    A = render_segments(a.reshape(N * H * V, -1, 2), b.reshape(N * H * V, -1, 2), r.reshape(N * H * V, -1), S,
                        profile="capsule", merge="soft_union", tau=cfg.tau_px).reshape(N, H, V, S, S)
    full = 1.0 - (1.0 - rest[:, None]) * (1.0 - A)
    out = ((full - m[:, None]) ** 2 * w[:, None]).sum(dim=(-1, -2, -3))
    return out


def cost_maps(rest: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel change of the mask L2 when an opaque arm covers the pixel: ``[..., S, S]``.

    With ``full = 1 - (1 - rest)(1 - A)`` and a binary arm ``A``, ``(full - m)^2 - (rest - m)^2 =
    (1 - rest)(1 + rest - 2 m) A``: ``-(1 - rest)^2`` on foreground the rest leaves uncovered (a gain),
    ``1 - rest^2`` on background (a cost), times ``weights``. Shapes broadcast.
    """
    return weights * (1.0 - rest) * (1.0 + rest - 2.0 * masks)


def _homogeneous(points: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """``P [N, V, 3, 4] @ [points; 1]`` for ``points [N, M, 3]`` -> ``[N, V, M, 3]``."""
    return torch.einsum("nvij,nmj->nvmi", P[..., :3], points) + P[:, :, None, :, 3]


def line_scores(cost: torch.Tensor, projections: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor,
                radius_mm: torch.Tensor, samples: int = 6) -> torch.Tensor:
    """Approximate integral of ``cost`` over projected capsules (no rendering): the fast pre-selection
    of :func:`search_arms`.

    Each capsule is sampled at ``samples`` points along its axis (the exact perspective images of
    evenly spaced 3D points, by interpolating homogeneous coordinates) times three offsets across it
    (``-2r/3, 0, 2r/3``, ``r`` projected with the point's depth); each sample stands for an equal
    share of the capsule's projected area ``length x 2 r`` (caps ignored). Outside the crop counts as
    background (cost 1).

    Args:
        cost: ``[N, V, S, S]`` (:func:`cost_maps`); projections ``[N, V, 3, 4]`` (normalised crop coords);
        starts, ends: ``[N, H, E, 3]`` mm; radius_mm ``[E]`` or ``[N, E]``.
    Returns:
        ``[N, H, E]`` summed over views, in px units (as :func:`arm_scores`).
    """
    N, V, S = cost.shape[0], cost.shape[1], cost.shape[-1]
    H, E = starts.shape[1:3]
    P = projections.to(starts)
    ha = _homogeneous(starts.reshape(N, H * E, 3), P).reshape(N, V, H, E, 1, 3)
    hb = _homogeneous(ends.reshape(N, H * E, 3), P).reshape(N, V, H, E, 1, 3)
    t = ((torch.arange(samples, dtype=starts.dtype, device=starts.device) + 0.5) / samples)[:, None]
    h = ha + (hb - ha) * t  # [N, V, H, E, K, 3]
    z = h[..., 2].clamp_min(1.0)
    uv = h[..., :2] / z[..., None]
    a2 = ha[..., 0, :2] / ha[..., 0, 2:].clamp_min(1.0)
    b2 = hb[..., 0, :2] / hb[..., 0, 2:].clamp_min(1.0)
    axis = b2 - a2
    length = axis.norm(dim=-1)  # [N, V, H, E]
    normal = torch.stack([-axis[..., 1], axis[..., 0]], -1) / length[..., None].clamp_min(1e-9)
    f = L.focal_normalized(P)[:, :, None, None, None]
    rad = radius_mm.to(starts).expand(N, E)
    r = rad[:, None, None, :, None] * f / z  # [N, V, H, E, K] normalised
    off = torch.tensor([-2.0 / 3.0, 0.0, 2.0 / 3.0], dtype=starts.dtype, device=starts.device)
    grid = uv[..., None, :] + normal[:, :, :, :, None, None, :] * (r[..., None, None] * off[:, None])
    # outside the crop is background: cost 1 there (sample cost - 1 with zero padding, add 1 back)
    vals = F.grid_sample(cost.reshape(N * V, 1, S, S).to(starts) - 1.0, grid.reshape(N * V, 1, -1, 2),
                         mode="bilinear", padding_mode="zeros", align_corners=True) + 1.0
    vals = vals.reshape(N, V, H, E, samples, 3)
    px = (S - 1) / 2.0
    area = (length[..., None] * 2.0 * r * px * px) / (3.0 * samples)  # [N, V, H, E, K] px^2 per sample
    return (vals.sum(-1) * area).sum(dim=(1, 4))


def _arm_capsules(joints3d, joint_set, side, elbows, wrists, hand_extend: float = 0.3):
    """``(starts, ends [N, H, 3, 3], radii [3])`` of the upper arm, forearm and hand of each hypothesis."""
    j = joint_set.index
    sh = joints3d[:, j(f"{side}Shoulder")][:, None].expand_as(elbows)
    tips = wrists + hand_extend * (wrists - elbows)
    starts = torch.stack([sh, elbows, wrists], dim=2)
    ends = torch.stack([elbows, wrists, tips], dim=2)
    radii = torch.tensor([s.radius_mm for s in _arm_segments(joint_set, side)], dtype=joints3d.dtype,
                         device=joints3d.device)
    return starts, ends, radii


@torch.no_grad()
def search_arms(joints3d: torch.Tensor, masks: torch.Tensor, projections: torch.Tensor, valid: torch.Tensor,
                joint_set: JointSet, cfg: L.LossConfig, girth: torch.Tensor | None = None,
                weights: torch.Tensor | None = None, num_dirs: int = 64, margin_px: float = 4.0,
                rounds: int = 2, top_k: int = 16, max_flexion_deg: float = 160.0,
                batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each arm by the best-scoring configuration of :func:`arm_hypotheses`.

    The arms are searched one at a time with the other as it is (``rounds`` passes over L, R). All
    ``~num_dirs^2`` hypotheses are pre-scored by :func:`line_scores` on the cost map of the rest of
    the body; the ``top_k`` best and the current arm are then scored exactly (:func:`arm_scores`,
    the training loss's soft union). An arm is replaced only when its best hypothesis lowers the
    mask loss by more than ``margin_px`` (summed over views): an arm hidden in front of the body in
    every view, where all hypotheses inside the silhouette score alike, stays where it was.

    Args:
        joints3d: ``[N, J, 3]`` mm (world); masks ``[N, V, 1, S, S]``; projections ``[N, V, 3, 4]``;
            valid ``[N, V]`` bool; girth ``[N]`` or None; weights as :func:`arm_scores`.
        batch_size: samples scored per pass (the answer does not depend on it). None: 4 on the CPU,
            where the pre-selection's ``[n, V, ~D^2, 2, 6, 3, 2]`` sample grid of 16 samples (~150 MB)
            runs 1.1-1.3x slower than of 4 on one thread (``benchmarks/label_speed.py``), 16 elsewhere.
    Returns:
        ``(joints [N, J, 3], gain [N, 2])``: the poses with the arms replaced (only elbows and wrists
        change) and each arm's loss decrease (0 where it was kept).
    """
    if joints3d.ndim != 3 or masks.ndim != 5 or masks.shape[:2] != projections.shape[:2] \
            or joints3d.shape[0] != masks.shape[0] or valid.shape != masks.shape[:2]:
        raise ValueError(f"search_arms: expected joints3d [N, J, 3], masks [N, V, 1, S, S], projections "
                         f"[N, V, 3, 4] and valid [N, V] with the same N, V; got {tuple(joints3d.shape)}, "
                         f"{tuple(masks.shape)}, {tuple(projections.shape)}, {tuple(valid.shape)}")
    if not torch.isfinite(joints3d).all():
        raise ValueError("search_arms: joints3d has NaN/inf values")
    if batch_size is None:
        batch_size = 4 if joints3d.device.type == "cpu" else 16
    if batch_size < 1:
        raise ValueError(f"search_arms: batch_size must be >= 1, got {batch_size}")
    out = joints3d.clone()
    gains = torch.zeros(out.shape[0], 2, dtype=out.dtype, device=out.device)
    dirs = sphere_directions(num_dirs, out.dtype, out.device)
    j = joint_set.index
    S = masks.shape[-1]
    # the upper arm depends on the first direction only: its D capsules are scored once, then shared
    pi, _ = pair_index(dirs, max_flexion_deg)
    counts = torch.bincount(pi, minlength=dirs.shape[0])  # pairs are row-major in the upper arm
    zero = torch.zeros(1, dtype=torch.long, device=pi.device)
    first = torch.cat([zero, 1 + torch.cumsum(counts, 0) - counts])  # hypothesis of each upper arm
    which = torch.cat([zero, 1 + pi])  # upper arm of each hypothesis (0: the current arm)
    for s0 in range(0, out.shape[0], batch_size):
        sl = slice(s0, min(out.shape[0], s0 + batch_size))
        X = out[sl]
        m, P, vd = masks[sl, :, 0].to(X), projections[sl].to(X), valid[sl].to(X)[:, :, None, None]
        w = vd if weights is None else vd * weights[sl, :, 0].to(X)
        g = None if girth is None else girth[sl].to(X)
        idx = torch.arange(X.shape[0], device=X.device)
        for _ in range(rounds):
            for si, side in enumerate("LR"):
                el, wr = arm_hypotheses(X, joint_set, side, dirs, max_flexion_deg)
                arm = _arm_segments(joint_set, side)
                others = tuple(x for x in joint_set.body_segments if x not in arm)
                rest = L.render_body(X, P, joint_set, S, cfg, g, segments=others)[:, :, 0]
                st, en, radii = _arm_capsules(X, joint_set, side, el, wr)
                radii = radii.expand(X.shape[0], -1) if g is None else radii[None] * g[:, None]
                cost = cost_maps(rest, m, w)
                upper = line_scores(cost, P, st[:, first, :1], en[:, first, :1], radii[:, :1])[..., 0]  # [n, 1 + D]
                lower = line_scores(cost, P, st[:, :, 1:], en[:, :, 1:], radii[:, 1:]).sum(-1)  # [n, H]
                fast = upper[:, which] + lower
                fast[:, 0] = -float("inf")  # always rescore the current arm
                k = min(top_k + 1, fast.shape[1])
                top = fast.topk(k, dim=1, largest=False).indices  # [n, k]
                el_k, wr_k = el[idx[:, None], top], wr[idx[:, None], top]
                exact = arm_scores(X, masks[sl], P, valid[sl], joint_set, side, el_k, wr_k, cfg, g,
                                   None if weights is None else weights[sl])
                best = exact.argmin(-1)
                cur = exact[idx, (top == 0).float().argmax(-1)]
                gain = cur - exact[idx, best]
                take = gain > margin_px
                X[take, j(f"{side}Elbow")] = el_k[idx, best][take]
                X[take, j(f"{side}Wrist")] = wr_k[idx, best][take]
                gains[sl][take, si] += gain[take]
        out[sl] = X
    return out, gains
