"""From per-view 2D joints to one 3D pose: left/right matching, DLT, anatomical selection.

A mask loss is exactly invariant to swapping left and right labels, and a silhouette does not
show front from back, so each view's network output labels sides arbitrarily
(research/pilot3.md). The steps here settle the labelling without labels:

1. :func:`match_views` — per sample, try the ``2^(V-1)`` left/right swap patterns of views
   ``2..V`` (view 1 fixed), triangulate each, keep the pattern with the lowest re-projection
   error (no gradient; the chosen labelling is then used with gradient).
2. :func:`select_labelling` — keep the triangulated pose or its mirror labelling, whichever
   violates the knee hinge and nose-forward less (no gradient); optionally the arms separately
   (shoulders must agree with the hips).
3. :func:`derive_centres` — pelvis = hip midpoint, thorax = shoulder midpoint.

Anatomical frame. In a right-handed world (every calibrated world here: det R = +1), a real
person's body frame (forward, left, up) is right-handed: ``forward = left x up`` with
``left = LHip - RHip`` and ``up = thorax - pelvis`` (orthogonalised). A flexed knee has
``(thigh x shank) . left > 0`` (thigh = knee - hip, shank = ankle - knee).
"""
from __future__ import annotations

import itertools

import torch

from .geometry import project_P, triangulate
from .skeleton import JointSet


def _unit(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(eps)


def swap_patterns(V: int, device=None) -> torch.Tensor:
    """``[2^(V-1), V]`` bool: all left/right swap patterns with view 0 never swapped."""
    pats = [(False,) + p for p in itertools.product((False, True), repeat=V - 1)]
    return torch.tensor(pats, dtype=torch.bool, device=device)


def apply_view_swaps(joints2d: torch.Tensor, swaps: torch.Tensor, joint_set: JointSet,
                     perm: list[int] | None = None) -> torch.Tensor:
    """Swap left/right labels of the views where ``swaps`` is True.

    ``joints2d[..., V, J, D]``, ``swaps[..., V]`` bool -> ``[..., V, J, D]`` (differentiable gather).
    ``perm``: the label permutation to apply (default: the whole body's flip; :func:`arm_permutation`
    swaps the arms only).
    """
    perm = torch.tensor(joint_set.flip_permutation() if perm is None else perm, device=joints2d.device)
    flipped = joints2d[..., perm, :]
    return torch.where(swaps[..., None, None], flipped, joints2d)


@torch.no_grad()
def match_views(joints2d: torch.Tensor, projections: torch.Tensor, joint_set: JointSet,
                weights: torch.Tensor | None = None, perm: list[int] | None = None,
                joints: list[int] | None = None) -> torch.Tensor:
    """Per-view left/right swap pattern with the lowest re-projection error.

    Args:
        joints2d: ``[B, V, J, 2]`` per-view joints in the coordinates of ``projections``.
        projections: ``[B, V, 3, 4]``.
        weights: ``[B, V, J]`` or None (e.g. 0 for invalid views).
        perm: label permutation of a swap (default: the whole body; :func:`arm_permutation`: the arms).
        joints: joint indices whose re-projection error decides (default: all).
    Returns:
        ``[B, V]`` bool, True where that view's labels should be swapped.
    """
    B, V = joints2d.shape[:2]
    pats = swap_patterns(V, joints2d.device)  # [P, V]
    P = pats.shape[0]
    if P == 1:
        return pats.expand(B, V).clone()
    sel = slice(None) if joints is None else torch.tensor(joints, device=joints2d.device)
    cand = apply_view_swaps(joints2d[:, None].expand(B, P, *joints2d.shape[1:]), pats[None].expand(B, P, V), joint_set,
                            perm)[..., sel, :]
    Pm = projections[:, None].expand(B, P, *projections.shape[1:])
    w = None
    if weights is not None:
        wc = weights[:, None].expand(B, P, *weights.shape[1:])
        w = apply_view_swaps(wc[..., None], pats[None].expand(B, P, V), joint_set, perm)[..., sel, 0]
    X = triangulate(cand, Pm, w, method="normal")  # [B, P, J', 3]
    err = (project_P(X[:, :, None], Pm) - cand).norm(dim=-1)  # [B, P, V, J]
    if w is not None:
        err = (err * w).sum((-1, -2)) / w.sum((-1, -2)).clamp_min(1e-8)
    else:
        err = err.mean((-1, -2))
    best = err.argmin(dim=1)  # [B]
    return pats[best]


def body_frame(joints3d: torch.Tensor, joint_set: JointSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(forward, left, up)`` unit vectors ``[..., 3]`` of poses ``[..., J, 3]`` (right-handed)."""
    j = joint_set.index
    left = _unit(joints3d[..., j("LHip"), :] - joints3d[..., j("RHip"), :])
    top = _top(joints3d, joint_set)
    up = top - joints3d[..., joint_set.root, :]
    up = _unit(up - (up * left).sum(-1, keepdim=True) * left)
    forward = torch.linalg.cross(left, up, dim=-1)
    return forward, left, up


def _top(joints3d: torch.Tensor, joint_set: JointSet) -> torch.Tensor:
    j = joint_set.index
    if "thorax" in joint_set.joints:
        return joints3d[..., j("thorax"), :]
    return 0.5 * (joints3d[..., j("LShoulder"), :] + joints3d[..., j("RShoulder"), :])


def knee_hinge(joints3d: torch.Tensor, joint_set: JointSet) -> torch.Tensor:
    """Knee flexion sign per leg ``[..., 2]`` (R, L): ``(thigh x shank) . left / (|thigh| |shank|)``;
    positive for a knee bending the anatomical way, about 0 for a straight leg."""
    _, left, _ = body_frame(joints3d, joint_set)
    j = joint_set.index
    out = []
    for s in "RL":
        thigh = joints3d[..., j(f"{s}Knee"), :] - joints3d[..., j(f"{s}Hip"), :]
        shank = joints3d[..., j(f"{s}Ankle"), :] - joints3d[..., j(f"{s}Knee"), :]
        c = torch.linalg.cross(thigh, shank, dim=-1)
        out.append((c * left).sum(-1) / (thigh.norm(dim=-1) * shank.norm(dim=-1)).clamp_min(1e-6))
    return torch.stack(out, dim=-1)


def nose_forward(joints3d: torch.Tensor, joint_set: JointSet) -> torch.Tensor:
    """``(nose - neck) . forward / |nose - neck|`` ``[...]``: positive when the face points forward."""
    fwd, _, _ = body_frame(joints3d, joint_set)
    j = joint_set.index
    d = joints3d[..., j("nose"), :] - joints3d[..., j("neck"), :]
    return (d * fwd).sum(-1) / d.norm(dim=-1).clamp_min(1e-6)


def anatomy_violation(joints3d: torch.Tensor, joint_set: JointSet, knee_tol: float = 0.05) -> torch.Tensor:
    """Label-free violation score ``[...]`` of the knee hinge (tolerance ``knee_tol`` ~ 3 deg) and
    nose-forward; 0 for an anatomically plausible labelling."""
    knee = torch.relu(-knee_hinge(joints3d, joint_set) - knee_tol).sum(-1)
    nose = torch.relu(-nose_forward(joints3d, joint_set))
    return knee + nose


def arm_disagreement(joints3d: torch.Tensor, joint_set: JointSet) -> torch.Tensor:
    """``(LShoulder - RShoulder) . left_hips`` ``[...]`` (mm): negative when the arms' labels
    disagree with the legs'."""
    _, left, _ = body_frame(joints3d, joint_set)
    j = joint_set.index
    return ((joints3d[..., j("LShoulder"), :] - joints3d[..., j("RShoulder"), :]) * left).sum(-1)


def arm_permutation(joint_set: JointSet) -> list[int]:
    """Permutation swapping only the arm joints' left/right labels."""
    perm = list(range(joint_set.num_joints))
    for s in ("Shoulder", "Elbow", "Wrist"):
        a, b = joint_set.index("L" + s), joint_set.index("R" + s)
        perm[a], perm[b] = b, a
    return perm


@torch.no_grad()
def select_labelling(joints3d: torch.Tensor, joint_set: JointSet, knee_tol: float = 0.05,
                     arms_separately: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """No-grad global choice of the labelling by anatomy.

    Returns ``(flip[...], arm_flip[...])`` bool: ``flip`` where the mirrored labelling violates the
    knee hinge + nose-forward less than the pose's own; ``arm_flip`` where, after ``flip``, only
    the arms' labels should also be swapped because the shoulders disagree with the hips.
    """
    v0 = anatomy_violation(joints3d, joint_set, knee_tol)
    mirrored = joint_set.flip(joints3d)
    v1 = anatomy_violation(mirrored, joint_set, knee_tol)
    flip = v1 < v0
    if not arms_separately:
        return flip, torch.zeros_like(flip)
    chosen = torch.where(flip[..., None, None], mirrored, joints3d)
    arm_flip = arm_disagreement(chosen, joint_set) < 0
    return flip, arm_flip


def apply_labelling(joints: torch.Tensor, flip: torch.Tensor, arm_flip: torch.Tensor, joint_set: JointSet) -> torch.Tensor:
    """Apply :func:`select_labelling`'s choice to ``joints[..., J, D]`` (flip dims = leading dims)."""
    full = torch.tensor(joint_set.flip_permutation(), device=joints.device)
    arms = torch.tensor(arm_permutation(joint_set), device=joints.device)
    out = torch.where(flip[..., None, None], joints[..., full, :], joints)
    return torch.where(arm_flip[..., None, None], out[..., arms, :], out)


def derive_centres(joints3d: torch.Tensor, joint_set: JointSet) -> torch.Tensor:
    """Pelvis := hip midpoint, thorax := shoulder midpoint (when the joint set has them)."""
    j = joint_set.index
    out = joints3d.clone()
    out[..., joint_set.root, :] = 0.5 * (joints3d[..., j("LHip"), :] + joints3d[..., j("RHip"), :])
    if "thorax" in joint_set.joints:
        out[..., j("thorax"), :] = 0.5 * (joints3d[..., j("LShoulder"), :] + joints3d[..., j("RShoulder"), :])
    return out


def arm_joints(joint_set: JointSet) -> list[int]:
    """Indices of the shoulders, elbows and wrists."""
    return [joint_set.index(s + n) for s in "LR" for n in ("Shoulder", "Elbow", "Wrist")]


def lift(joints2d: torch.Tensor, projections: torch.Tensor, joint_set: JointSet, weights: torch.Tensor | None = None,
         matching: bool = True, selection: bool = True, arms_separately: bool = True,
         centres: bool = True, arm_matching: bool = False) -> dict:
    """Per-view 2D -> one 3D pose per sample (the multi-view path of DESIGN §4).

    Args:
        joints2d: ``[B, V, J, 2]`` in the coordinates of ``projections`` ``[B, V, 3, 4]``, V >= 2.
        weights: ``[B, V, J]`` per-view confidences (0 for invalid views) or None.
        arm_matching: match the body's labels per view by the non-arm joints, then the arms' labels
            per view on their own (a view may label its arms the other way round from its legs).
    Returns:
        dict with ``joints3d [B, J, 3]`` (world, differentiable), ``swaps [B, V]``, ``arm_swaps [B, V]``,
        ``flip [B]``, ``arm_flip [B]`` (bool, no grad) and ``joints2d_matched [B, V, J, 2]``.
    """
    B, V = joints2d.shape[:2]
    projections = projections.to(joints2d.dtype)
    if matching:
        # with arm matching, the body's swaps are decided by the other joints, the arms' by theirs
        body = [k for k in range(joint_set.num_joints) if k not in arm_joints(joint_set)] if arm_matching else None
        swaps = match_views(joints2d, projections, joint_set, weights, joints=body)
    else:
        swaps = torch.zeros(B, V, dtype=torch.bool, device=joints2d.device)
    x = apply_view_swaps(joints2d, swaps, joint_set)
    w = None if weights is None else apply_view_swaps(weights[..., None], swaps, joint_set)[..., 0]
    arm_swaps = torch.zeros(B, V, dtype=torch.bool, device=joints2d.device)
    if matching and arm_matching:
        aperm = arm_permutation(joint_set)
        arm_swaps = match_views(x, projections, joint_set, w, perm=aperm, joints=arm_joints(joint_set))
        x = apply_view_swaps(x, arm_swaps, joint_set, aperm)
        w = None if w is None else apply_view_swaps(w[..., None], arm_swaps, joint_set, aperm)[..., 0]
    X = triangulate(x, projections, w)
    flip = torch.zeros(B, dtype=torch.bool, device=X.device)
    arm_flip = torch.zeros_like(flip)
    if selection:
        flip, arm_flip = select_labelling(derive_centres(X, joint_set) if centres else X, joint_set,
                                          arms_separately=arms_separately)
        X = apply_labelling(X, flip, arm_flip, joint_set)
    if centres:
        X = derive_centres(X, joint_set)
    return {"joints3d": X, "swaps": swaps, "arm_swaps": arm_swaps, "flip": flip, "arm_flip": arm_flip,
            "joints2d_matched": x}
