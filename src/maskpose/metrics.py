"""Evaluation metrics for 3D / 2D human pose (DESIGN.md §4 "Evaluation").

Conventions
-----------
* A 3D pose batch is ``[N, J, 3]`` (numpy array or torch tensor, any float dtype) in **millimetres**,
  one pose per sample; ``pred`` and ``gt`` must have the same shape. 2D batches are ``[N, J, 2]`` or
  ``[N, V, J, 2]`` in any unit (pixels, or normalised patch coordinates); 2D errors come back in it.
* Everything is computed in float64 numpy, so numpy and torch inputs give identical numbers.
  Scalar metrics return Python ``float`` (the mean over samples and joints); the ``per_*`` helpers
  return numpy arrays for tables.
* ``root``: index of the joint subtracted from every pose (pred and gt separately) before comparing
  (the usual H36M protocol; pelvis = 0 in H36M-17/18). ``root=None`` compares absolute coordinates,
  as the authors' evaluation code does (research/reference-facts.md §10).
* ``joint_set``: the :class:`~maskpose.skeleton.JointSet` the poses follow (``J`` must equal its
  number of joints); it supplies the flip permutation and joint names. ``None`` skips the ``J`` check
  (then ``flip_aware`` and joint names are unavailable).
* ``joints``: optional subset of joints to evaluate: ``None`` (all), a preset name (``"mpi14"``: the
  14 joints of the MPI-INF-3DHP protocol), or a sequence of joint names / indices. Alignment to the
  root uses the root joint even when it is not in the subset; scale and Procrustes alignments are fitted
  on the evaluated joints.
* ``flip_aware=True``: per sample, the better of the prediction and its left/right *label swap*
  (``joint_set.flip``, not a geometric mirror) is scored; "better" = lower mean joint error under the
  metric's own alignment (for PCK / AUC: root-aligned MPJPE over the evaluated joints). A mask does not
  tell left from right, so reports give every 3D metric strict *and* flip-aware (DESIGN.md §4).

Bad input raises ``ValueError`` naming the argument: wrong ``ndim`` / last dimension, ``pred`` / ``gt``
shape mismatch, ``J`` not matching the joint set, no samples, NaN or inf values.

Not here: SPP (a supervised regressor on labelled poses, only to compare with SPP methods).
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from .skeleton import DEFAULT, JointSet

ArrayLike = Union[np.ndarray, torch.Tensor]
JointsArg = Union[None, str, Sequence[Union[int, str]]]

PCK_THRESHOLD_MM = 150.0
#: AUC thresholds of the MPI-INF-3DHP protocol: 0, 5, ..., 150 mm (31 values, 0 included).
AUC_THRESHOLDS_MM = np.arange(0.0, 151.0, 5.0)

#: The 14 joints of the MPI-INF-3DHP PCK/AUC protocol (mpii_compute_3d_pck.m: head top, neck,
#: shoulders, elbows, wrists, hips, knees, ankles; pelvis, spine and head centre excluded), named as in
#: H36M-17/18: 3DHP "head_top" = H36M "head" (10), 3DHP "neck" = H36M thorax joint (8, "neck" here).
MPI_INF_3DHP_14 = (
    "head", "neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle",
)
JOINT_SUBSETS = {"mpi14": MPI_INF_3DHP_14}

METRICS_3D = ("mpjpe", "n_mpjpe", "p_mpjpe")
_ALIGNMENT = {"mpjpe": "root", "n_mpjpe": "scale", "p_mpjpe": "procrustes"}


# ====================================================================== input checks

def _as_float64(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected a numeric numpy array or torch tensor ({e})") from None


def _check_finite(a: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains NaN or inf ({int(bad.sum())} values, first at index {first})")


def _check_pair(pred, gt, joint_set: JointSet | None, dim: int, ndims: tuple[int, ...] = (3,),
                names: tuple[str, str] = ("pred", "gt")) -> tuple[np.ndarray, np.ndarray]:
    """Convert and validate a (pred, gt) pair of shape ``[N, (V,) J, dim]``."""
    layout = " or ".join(f"[N, {'V, ' if n == 4 else ''}J, {dim}]" for n in ndims)
    arrays = []
    for x, name in zip((pred, gt), names):
        a = _as_float64(x, name)
        if a.ndim not in ndims or a.shape[-1] != dim:
            raise ValueError(f"{name}: expected shape {layout}, got {list(a.shape)} (ndim {a.ndim})")
        if joint_set is not None and a.shape[-2] != joint_set.num_joints:
            raise ValueError(
                f"{name}: has J = {a.shape[-2]} joints but joint set {joint_set.name!r} has "
                f"{joint_set.num_joints}"
            )
        arrays.append(a)
    p, g = arrays
    if p.shape != g.shape:
        raise ValueError(f"{names[0]} and {names[1]} shapes differ: {list(p.shape)} vs {list(g.shape)}")
    if p.shape[0] == 0:
        raise ValueError(f"{names[0]}: no samples (N = 0)")
    for a, name in zip((p, g), names):
        _check_finite(a, name)
    return p, g


def _check_root(root: int | None, num_joints: int) -> int | None:
    if root is None:
        return None
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not (0 <= root < num_joints):
        raise ValueError(f"root: expected a joint index in 0..{num_joints - 1} or None, got {root!r}")
    return int(root)


def _joint_indices(joints: JointsArg, joint_set: JointSet | None, num_joints: int) -> np.ndarray | None:
    """Resolve the ``joints`` subset argument to an index array (``None`` = all joints)."""
    if joints is None:
        return None
    if isinstance(joints, str):
        if joints not in JOINT_SUBSETS:
            raise ValueError(f"joints: unknown subset {joints!r}; known: {', '.join(JOINT_SUBSETS)}")
        joints = JOINT_SUBSETS[joints]
    if isinstance(joints, (np.ndarray, torch.Tensor)):
        joints = [int(j) for j in joints.tolist()]
    idx = []
    for j in joints:
        if isinstance(j, str):
            if joint_set is None:
                raise ValueError(f"joints: joint name {j!r} needs a joint_set")
            try:
                idx.append(joint_set.index(j))
            except KeyError as e:
                raise ValueError(f"joints: {e.args[0]}") from None
        elif isinstance(j, (int, np.integer)) and not isinstance(j, bool) and 0 <= j < num_joints:
            idx.append(int(j))
        else:
            raise ValueError(f"joints: {j!r} is neither a joint name nor an index in 0..{num_joints - 1}")
    if not idx:
        raise ValueError("joints: empty joint subset")
    return np.asarray(idx, dtype=np.int64)


def _flip_perm(joint_set: JointSet | None, flip_aware: bool) -> list[int] | None:
    if not flip_aware:
        return None
    if joint_set is None:
        raise ValueError("flip_aware=True needs a joint_set (it defines the left/right pairs)")
    return joint_set.flip_permutation()


def _check_metric(metric: str) -> str:
    if metric not in _ALIGNMENT:
        raise ValueError(f"metric: expected one of {', '.join(METRICS_3D)}, got {metric!r}")
    return metric


# ====================================================================== alignments

def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-Procrustes alignment of ``pred[N, J, 3]`` onto ``gt[N, J, 3]`` (float64 numpy), per sample.

    Finds the rotation ``R`` (proper: det = +1, a reflection is *not* allowed), scale ``s`` and
    translation ``t`` minimising ``sum_j |s R pred_j + t - gt_j|^2`` (Umeyama / Kabsch with the sign fix
    of the standard H36M Protocol 2 ``p_mpjpe`` of VideoPose3D) and returns ``s R pred + t``.
    A degenerate prediction (all joints at one point) is mapped to the centroid of ``gt``.
    """
    mu_p = pred.mean(axis=1, keepdims=True)
    mu_g = gt.mean(axis=1, keepdims=True)
    p0, g0 = pred - mu_p, gt - mu_g
    # row vectors: aligned = s * p0 @ R + mu_g; H = p0^T g0 = U S V^T; R = U D V^T, D fixes det(R) = +1
    h = np.einsum("nji,njk->nik", p0, g0)
    u, sv, vt = np.linalg.svd(h)
    sign = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    u = u.copy()
    u[:, :, -1] *= sign[:, None]
    sv = sv.copy()
    sv[:, -1] *= sign
    rot = u @ vt
    pp = (p0 ** 2).sum(axis=(1, 2))
    scale = np.divide(sv.sum(axis=1), pp, out=np.zeros_like(pp), where=pp > 0)
    return scale[:, None, None] * (p0 @ rot) + mu_g


def _errors(p: np.ndarray, g: np.ndarray, alignment: str, root: int | None,
            idx: np.ndarray | None) -> np.ndarray:
    """Per-joint Euclidean errors ``[N, J']`` after ``alignment`` (float64 arrays in, same unit out)."""
    if alignment in ("root", "scale") and root is not None:
        p = p - p[:, root:root + 1]
        g = g - g[:, root:root + 1]
    if idx is not None:
        p, g = p[:, idx], g[:, idx]
    if alignment == "scale":
        pp = (p * p).sum(axis=(1, 2))
        pg = (p * g).sum(axis=(1, 2))
        s = np.divide(pg, pp, out=np.ones_like(pp), where=pp > 0)
        p = s[:, None, None] * p
    elif alignment == "procrustes":
        p = procrustes_align(p, g)
    return np.linalg.norm(p - g, axis=-1)


def _errors_flip(p, g, alignment, root, idx, perm) -> tuple[np.ndarray, np.ndarray]:
    """Errors ``[N, J']`` of the better of ``p`` and its label swap, and which samples used the swap."""
    e = _errors(p, g, alignment, root, idx)
    if perm is None:
        return e, np.zeros(len(e), dtype=bool)
    ef = _errors(p[:, perm], g, alignment, root, idx)
    use = ef.mean(axis=1) < e.mean(axis=1)
    return np.where(use[:, None], ef, e), use


# ====================================================================== 3D errors

def joint_errors(pred: ArrayLike, gt: ArrayLike, metric: str = "mpjpe", root: int | None = 0,
                 flip_aware: bool = False, joint_set: JointSet | None = DEFAULT,
                 joints: JointsArg = None) -> np.ndarray:
    """Per-sample, per-joint errors ``[N, J']`` (mm) of ``pred[N, J, 3]`` vs ``gt[N, J, 3]`` (mm).

    ``metric`` picks the alignment: ``"mpjpe"`` root alignment, ``"n_mpjpe"`` root alignment + optimal
    scale, ``"p_mpjpe"`` similarity Procrustes (``root`` is then irrelevant). ``J'`` = number of
    evaluated ``joints``. See the module docstring for ``root``, ``flip_aware``, ``joint_set``, ``joints``.
    """
    metric = _check_metric(metric)
    p, g = _check_pair(pred, gt, joint_set, dim=3)
    root = _check_root(root, p.shape[1])
    idx = _joint_indices(joints, joint_set, p.shape[1])
    perm = _flip_perm(joint_set, flip_aware)
    return _errors_flip(p, g, _ALIGNMENT[metric], root, idx, perm)[0]


def per_sample_errors(pred: ArrayLike, gt: ArrayLike, metric: str = "mpjpe", root: int | None = 0,
                      flip_aware: bool = False, joint_set: JointSet | None = DEFAULT,
                      joints: JointsArg = None) -> np.ndarray:
    """Mean joint error of each sample ``[N]`` (mm); arguments as :func:`joint_errors`."""
    return joint_errors(pred, gt, metric, root, flip_aware, joint_set, joints).mean(axis=1)


def per_joint_errors(pred: ArrayLike, gt: ArrayLike, metric: str = "mpjpe", root: int | None = 0,
                     flip_aware: bool = False, joint_set: JointSet | None = DEFAULT,
                     joints: JointsArg = None) -> np.ndarray:
    """Mean error of each evaluated joint over the samples ``[J']`` (mm); arguments as :func:`joint_errors`."""
    return joint_errors(pred, gt, metric, root, flip_aware, joint_set, joints).mean(axis=0)


def per_joint_mpjpe(pred: ArrayLike, gt: ArrayLike, root: int | None = 0, flip_aware: bool = False,
                    joint_set: JointSet | None = DEFAULT, joints: JointsArg = None) -> np.ndarray:
    """Root-aligned MPJPE of each joint ``[J']`` (mm), averaged over the samples."""
    return per_joint_errors(pred, gt, "mpjpe", root, flip_aware, joint_set, joints)


def mpjpe(pred: ArrayLike, gt: ArrayLike, root: int | None = 0, flip_aware: bool = False,
          joint_set: JointSet | None = DEFAULT, joints: JointsArg = None) -> float:
    """Mean per-joint position error (mm), H36M Protocol 1.

    ``pred``, ``gt``: ``[N, J, 3]`` mm. Each pose is translated so that its ``root`` joint is at the
    origin (``root=None``: absolute coordinates, as in the authors' evaluation code), then
    ``mean_{n,j} |pred_nj - gt_nj|_2``. Invariant to a translation of ``pred``, not to a rotation or scale.
    """
    return float(joint_errors(pred, gt, "mpjpe", root, flip_aware, joint_set, joints).mean())


def n_mpjpe(pred: ArrayLike, gt: ArrayLike, root: int | None = 0, flip_aware: bool = False,
            joint_set: JointSet | None = DEFAULT, joints: JointsArg = None) -> float:
    """Scale-normalised MPJPE (mm), Rhodin et al., CVPR 2018.

    ``pred``, ``gt``: ``[N, J, 3]`` mm. Root-aligned as :func:`mpjpe`, then per sample the scale
    ``s = <pred, gt> / <pred, pred>`` minimising ``|s pred - gt|^2`` is applied before the MPJPE.
    Invariant to translation and (positive) scale of ``pred``, not to rotation. ``root=None`` fits the
    scale to absolute coordinates (the authors' code's non-standard variant).
    """
    return float(joint_errors(pred, gt, "n_mpjpe", root, flip_aware, joint_set, joints).mean())


def p_mpjpe(pred: ArrayLike, gt: ArrayLike, flip_aware: bool = False,
            joint_set: JointSet | None = DEFAULT, joints: JointsArg = None) -> float:
    """Procrustes-aligned MPJPE (mm), H36M Protocol 2 (as VideoPose3D's ``p_mpjpe``).

    ``pred``, ``gt``: ``[N, J, 3]`` mm. Per sample, ``pred`` is aligned to ``gt`` by the similarity
    transform (rotation with det = +1, scale, translation) minimising the squared error
    (:func:`procrustes_align`), then the MPJPE is taken. Invariant to rotation, scale and translation
    of ``pred``; a mirror image (reflection) is *not* forgiven.
    """
    return float(joint_errors(pred, gt, "p_mpjpe", None, flip_aware, joint_set, joints).mean())


# ====================================================================== PCK / AUC

def _pck_errors(pred, gt, root, flip_aware, joint_set, joints) -> np.ndarray:
    return joint_errors(pred, gt, "mpjpe", root, flip_aware, joint_set, joints)


def _check_thresholds(thresholds) -> np.ndarray:
    t = np.atleast_1d(_as_float64(thresholds, "threshold"))
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"threshold: expected finite non-negative value(s) in mm, got {thresholds!r}")
    return t


def pck(pred: ArrayLike, gt: ArrayLike, threshold: float = PCK_THRESHOLD_MM, root: int | None = 0,
        flip_aware: bool = False, joint_set: JointSet | None = DEFAULT, joints: JointsArg = None) -> float:
    """3D PCK: fraction in [0, 1] of joints whose root-aligned error is ``< threshold`` mm.

    MPI-INF-3DHP protocol (Mehta et al. 2017; strict ``<`` as its ``mpii_compute_3d_pck.m`` and the
    authors' code): ``threshold`` = 150 mm, evaluated on the 14 joints ``joints="mpi14"``. The default
    ``joints=None`` counts all joints of the set, as the authors' code does (the root joint then always
    counts as correct when ``root`` is set). ``pred``, ``gt``: ``[N, J, 3]`` mm. Multiply by 100 for %.
    """
    t = _check_thresholds(threshold)
    if t.size != 1:
        raise ValueError(f"threshold: expected one value, got {t.size} (use auc for a curve)")
    e = _pck_errors(pred, gt, root, flip_aware, joint_set, joints)
    return float((e < t[0]).mean())


def pck_curve(pred: ArrayLike, gt: ArrayLike, thresholds=AUC_THRESHOLDS_MM, root: int | None = 0,
              flip_aware: bool = False, joint_set: JointSet | None = DEFAULT,
              joints: JointsArg = None) -> np.ndarray:
    """PCK (fraction) at each of ``thresholds`` (mm) -> ``[T]``; see :func:`pck`."""
    t = _check_thresholds(thresholds)
    e = _pck_errors(pred, gt, root, flip_aware, joint_set, joints)
    return (e[..., None] < t).mean(axis=(0, 1))


def auc(pred: ArrayLike, gt: ArrayLike, thresholds=AUC_THRESHOLDS_MM, root: int | None = 0,
        flip_aware: bool = False, joint_set: JointSet | None = DEFAULT, joints: JointsArg = None) -> float:
    """Area under the PCK curve, fraction in [0, 1]: mean PCK over ``thresholds`` (mm).

    MPI-INF-3DHP protocol: thresholds 0, 5, ..., 150 mm (31 values, 0 included), i.e. the plain mean of
    the 31 PCK values (not a trapezoid). Same arguments as :func:`pck`.
    """
    return float(pck_curve(pred, gt, thresholds, root, flip_aware, joint_set, joints).mean())


# ====================================================================== 2D and left/right

def mpjpe_2d(pred2d: ArrayLike, gt2d: ArrayLike, joint_set: JointSet | None = DEFAULT) -> float:
    """Mean Euclidean 2D joint error, in the unit of the inputs (pixels, or normalised coordinates).

    ``pred2d``, ``gt2d``: ``[N, J, 2]`` or ``[N, V, J, 2]`` (V views). No alignment. The paper's
    "MSE, 2D %" is this error on coordinates normalised to [0, 1] over the 256-px patch, x 100
    (research/reference-facts.md §10).
    """
    p, g = _check_pair(pred2d, gt2d, joint_set, dim=2, ndims=(3, 4), names=("pred2d", "gt2d"))
    return float(np.linalg.norm(p - g, axis=-1).mean())


def flip_flags_2d(pred2d: ArrayLike, gt2d: ArrayLike, joint_set: JointSet = DEFAULT,
                  per_joint: bool = False) -> np.ndarray:
    """Which views label left and right the other way round from GT.

    ``pred2d``, ``gt2d``: ``[N, V, J, 2]`` (any unit). Default: ``[N, V]`` bool, True where the label
    swap of the view's prediction is strictly closer to GT than the prediction itself, measured as the
    sum of Euclidean distances over the joints of the flip pairs.

    ``per_joint=True``: ``[N, V, J]`` bool, the authors' per-joint "supervised flip" decision (§10 of
    research/reference-facts.md): joint ``j`` is flagged when ``|pred[pi(j)] - gt[j]|_1 < |pred[j] - gt[j]|_1``;
    joints without a partner are never flagged.
    """
    if joint_set is None:
        raise ValueError("joint_set: flip_flags_2d needs a joint set (it defines the left/right pairs)")
    p, g = _check_pair(pred2d, gt2d, joint_set, dim=2, ndims=(4,), names=("pred2d", "gt2d"))
    perm = joint_set.flip_permutation()
    pf = p[..., perm, :]
    if per_joint:
        return np.abs(pf - g).sum(-1) < np.abs(p - g).sum(-1)
    paired = sorted({j for pair in joint_set.flip_pairs for j in pair})
    if not paired:
        return np.zeros(p.shape[:2], dtype=bool)
    d = np.linalg.norm(p[..., paired, :] - g[..., paired, :], axis=-1).sum(-1)
    df = np.linalg.norm(pf[..., paired, :] - g[..., paired, :], axis=-1).sum(-1)
    return df < d


def ambiguity_ratio(flip_flags: ArrayLike) -> float:
    """Left/right ambiguity ratio (paper Eq. 11): ``r = sum_i min(f_i, V - f_i) / (V D)``, in [0, 0.5].

    ``flip_flags``: ``[N, V]`` bool (or 0/1): for each of the ``D = N`` samples, which of its ``V`` views
    were labelled with left and right swapped relative to GT (:func:`flip_flags_2d`); ``f_i`` = their
    number. ``r = 0`` when every sample's views agree with each other (all swapped counts as agreeing);
    0.5 is the maximum (half of the views each way). ``[N, V, J]`` per-joint flags (``per_joint=True``)
    give the authors' code's variant, averaged over samples and joints (unpaired joints count, so its
    maximum is ``0.5 * paired / J``).
    """
    f = _as_float64(flip_flags, "flip_flags")
    if f.ndim not in (2, 3):
        raise ValueError(f"flip_flags: expected shape [N, V] or [N, V, J], got {list(f.shape)}")
    if f.shape[0] == 0 or f.shape[1] == 0:
        raise ValueError(f"flip_flags: needs at least one sample and one view, got {list(f.shape)}")
    _check_finite(f, "flip_flags")
    if not np.isin(f, (0.0, 1.0)).all():
        raise ValueError("flip_flags: expected booleans (or 0/1 values)")
    v = f.shape[1]
    count = f.sum(axis=1)
    return float(np.minimum(count, v - count).mean() / v)


def ambiguity_ratio_2d(pred2d: ArrayLike, gt2d: ArrayLike, joint_set: JointSet = DEFAULT,
                       per_joint: bool = False) -> float:
    """:func:`ambiguity_ratio` of :func:`flip_flags_2d` (``pred2d``, ``gt2d``: ``[N, V, J, 2]``)."""
    return ambiguity_ratio(flip_flags_2d(pred2d, gt2d, joint_set, per_joint=per_joint))


def flip_share(pred: ArrayLike, gt: ArrayLike, root: int | None = 0, joint_set: JointSet = DEFAULT,
               joints: JointsArg = None) -> float:
    """Fraction of samples whose left/right label swap is strictly closer to GT than the prediction.

    ``pred``, ``gt``: ``[N, J, 3]`` mm; "closer" by root-aligned MPJPE (over ``joints``). 0 = every
    sample labelled as GT, 1 = every sample mirrored; ~0.5 = sides chosen at random.
    """
    if joint_set is None:
        raise ValueError("joint_set: flip_share needs a joint set (it defines the left/right pairs)")
    p, g = _check_pair(pred, gt, joint_set, dim=3)
    root = _check_root(root, p.shape[1])
    idx = _joint_indices(joints, joint_set, p.shape[1])
    return float(_errors_flip(p, g, "root", root, idx, joint_set.flip_permutation())[1].mean())


# ====================================================================== report table

def metrics_table(pred: ArrayLike, gt: ArrayLike, joint_set: JointSet = DEFAULT, root: int | None = 0,
                  pck_joints: JointsArg = None, threshold: float = PCK_THRESHOLD_MM,
                  pred2d: ArrayLike | None = None, gt2d: ArrayLike | None = None) -> dict:
    """All metrics for a report, strict and flip-aware, as a JSON-serialisable dict.

    ``pred``, ``gt``: ``[N, J, 3]`` mm. Keys: ``mpjpe``, ``n_mpjpe``, ``p_mpjpe`` (mm), ``pck``, ``auc``
    (fractions; PCK at ``threshold`` mm over ``pck_joints``), each also with a ``_flip`` suffix
    (flip-aware); ``flip_share``; ``per_joint_mpjpe`` and ``per_joint_mpjpe_flip`` ({joint name: mm});
    ``num_samples``, ``joint_set``, ``root``, ``pck_threshold_mm``, ``pck_joints``. With
    ``pred2d``, ``gt2d`` (``[N, V, J, 2]`` or ``[N, J, 2]``): ``mpjpe_2d`` (their unit), and for
    ``[N, V, J, 2]`` the ``ambiguity_ratio`` (Eq. 11, per view).
    """
    p, g = _check_pair(pred, gt, joint_set, dim=3)
    root = _check_root(root, p.shape[1])
    out: dict = {"num_samples": int(p.shape[0]), "joint_set": joint_set.name if joint_set else None,
                 "root": root}
    for flip in (False, True):
        sfx = "_flip" if flip else ""
        out["mpjpe" + sfx] = mpjpe(p, g, root, flip, joint_set)
        out["n_mpjpe" + sfx] = n_mpjpe(p, g, root, flip, joint_set)
        out["p_mpjpe" + sfx] = p_mpjpe(p, g, flip, joint_set)
        out["pck" + sfx] = pck(p, g, threshold, root, flip, joint_set, pck_joints)
        out["auc" + sfx] = auc(p, g, AUC_THRESHOLDS_MM, root, flip, joint_set, pck_joints)
    out["flip_share"] = flip_share(p, g, root, joint_set)
    names = joint_set.joints
    for flip in (False, True):
        pj = per_joint_mpjpe(p, g, root, flip, joint_set)
        out["per_joint_mpjpe" + ("_flip" if flip else "")] = {n: float(v) for n, v in zip(names, pj)}
    out["pck_threshold_mm"] = float(threshold)
    out["pck_joints"] = (pck_joints if isinstance(pck_joints, (str, type(None)))
                         else [j if isinstance(j, str) else int(j) for j in pck_joints])
    if (pred2d is None) != (gt2d is None):
        raise ValueError("pred2d and gt2d: give both or neither")
    if pred2d is not None:
        out["mpjpe_2d"] = mpjpe_2d(pred2d, gt2d, joint_set)
        if np.ndim(pred2d) == 4:
            out["ambiguity_ratio"] = ambiguity_ratio_2d(pred2d, gt2d, joint_set)
    return out
