"""Evaluation: metrics of a trained detector beside two label-using baselines.

Baselines (they use labels, and are labelled so):

* **mean pose** — the training split's mean root-aligned pose (world frame, no yaw knowledge);
* **oracle-yaw mean pose** — training poses turned about the vertical axis so that their hips face
  one way, averaged, then turned to each test sample's *true* hip yaw.

All 3D metrics are reported strict and flip-aware (per sample, the better of the pose and its
left/right mirror). The ambiguity ratio (paper Eq. 11) is computed on the per-view 2D labels, raw
(network output) and after the per-view matching.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from . import metrics as M
from .skeleton import JointSet, get_joint_set

_CACHE: dict = {}


# ------------------------------------------------------------------ ground truth and baselines
def load_ground_truth(root: str | os.PathLike) -> dict:
    """GT of a dataset folder for evaluation: ``joints3d [N, J, 3]`` mm, ``joints2d [N, V, J, 2]``
    (normalised crop coords), ``activity [N]`` (or None), ``ids``."""
    from .data.folder import MaskPoseDataset

    ds = MaskPoseDataset(root, with_gt=True, preload=False)
    act = ds.fields.get("activity")
    return {"joints3d": np.asarray(ds.gt_joints3d, dtype=np.float64),
            "joints2d": np.asarray(ds.gt_joints2d, dtype=np.float64),
            "activity": None if act is None else np.asarray(act).astype(str), "ids": list(ds.ids)}


def _up_axis(poses: np.ndarray, joint_set: JointSet) -> np.ndarray:
    top = poses[:, joint_set.index("thorax")] if "thorax" in joint_set.joints else 0.5 * (
        poses[:, joint_set.index("LShoulder")] + poses[:, joint_set.index("RShoulder")])
    v = (top - poses[:, joint_set.root]).mean(0)
    return v / np.linalg.norm(v)


def _yaw_frames(poses: np.ndarray, up: np.ndarray, joint_set: JointSet) -> np.ndarray:
    """Per pose, rotation ``[N, 3, 3]`` whose rows are (left_h, up x left_h... ) i.e. world -> canonical."""
    left = poses[:, joint_set.index("LHip")] - poses[:, joint_set.index("RHip")]
    left = left - (left @ up)[:, None] * up
    left /= np.linalg.norm(left, axis=1, keepdims=True).clip(1e-9)
    fwd = np.cross(left, up)
    return np.stack([left, fwd, np.broadcast_to(up, left.shape)], axis=1)


def baselines(train_gt3d: np.ndarray, test_gt3d: np.ndarray, joint_set: JointSet) -> dict:
    """Predictions ``[N_test, J, 3]`` of the two label-using baselines."""
    root = joint_set.root
    tr = train_gt3d - train_gt3d[:, root:root + 1]
    mean_pose = tr.mean(0)
    pred_mean = mean_pose[None] + test_gt3d[:, root:root + 1]
    up = _up_axis(train_gt3d, joint_set)
    Rtr = _yaw_frames(train_gt3d, up, joint_set)  # world -> canonical
    canon = np.einsum("nij,nkj->nki", Rtr, tr).mean(0)  # [J, 3]
    Rte = _yaw_frames(test_gt3d, up, joint_set)
    pred_yaw = np.einsum("nji,kj->nki", Rte, canon) + test_gt3d[:, root:root + 1]
    return {"mean_pose": pred_mean, "oracle_yaw_mean_pose": pred_yaw}


# ------------------------------------------------------------------ metrics
def summarize(pred3d: np.ndarray, gt3d: np.ndarray, joint_set: JointSet, activity=None,
              pred2d=None, gt2d=None, raw2d=None) -> dict:
    """Metric table (strict + flip-aware), wrist error, per-activity MPJPE / P-MPJPE."""
    out = M.metrics_table(pred3d, gt3d, joint_set, pred2d=pred2d, gt2d=gt2d)
    if raw2d is not None and gt2d is not None:
        out["ambiguity_ratio_raw"] = M.ambiguity_ratio_2d(raw2d, gt2d, joint_set)
    pj = out["per_joint_mpjpe"]
    out["wrist"] = 0.5 * (pj["LWrist"] + pj["RWrist"])
    out["elbow"] = 0.5 * (pj["LElbow"] + pj["RElbow"])
    if activity is not None:
        acts = np.asarray(activity)
        per = {}
        for a in sorted(set(acts.tolist())):
            sel = acts == a
            per[str(a)] = {"n": int(sel.sum()), "mpjpe": M.mpjpe(pred3d[sel], gt3d[sel], joint_set=joint_set),
                           "p_mpjpe": M.p_mpjpe(pred3d[sel], gt3d[sel], joint_set=joint_set)}
        out["per_activity"] = per
    return out


def evaluate_model(model, cfg, test_root, device, limit: int = 0, train_root: str | None = None) -> dict:
    """Predict on ``test_root`` and compute the full table with the baselines."""
    from .train import predict_dataset

    joint_set = get_joint_set(cfg.joint_set)
    gt = _cached_gt(test_root)
    res = predict_dataset(model, test_root, cfg, device, limit=limit)
    n = res["num"]
    gt3d = gt["joints3d"][:n]
    act = None if gt["activity"] is None else np.asarray(gt["activity"])[:n]
    gt2d = gt["joints2d"][:n]
    pred2d = res["joints2d"]
    if "flip" in res:  # labelling as used: matched views with the global selection (and the arms') applied
        from .multiview import apply_labelling
        pred2d = apply_labelling(torch.from_numpy(pred2d), torch.from_numpy(res["flip"])[:, None].expand(-1, pred2d.shape[1]),
                                 torch.from_numpy(res["arm_flip"])[:, None].expand(-1, pred2d.shape[1]), joint_set).numpy()
    model_tab = summarize(res["joints3d"], gt3d, joint_set, act, pred2d if pred2d.shape[1] > 1 else None,
                          gt2d if pred2d.shape[1] > 1 else None, res.get("raw2d"))
    table = {"model": model_tab, "num_samples": n, "test": str(test_root)}
    train_root = train_root if train_root is not None else cfg.data.train
    try:
        tr = _cached_gt(train_root)
        base = baselines(tr["joints3d"], gt3d, joint_set)
        for name, pred in base.items():
            table[name] = summarize(pred, gt3d, joint_set, act)
    except (FileNotFoundError, ValueError, KeyError) as e:
        table["baselines_unavailable"] = f"{type(e).__name__}: {e}"
    table["predictions"] = {"pred": res["joints3d"], "gt": gt3d, "ids": gt["ids"][:n]}
    return table


def evaluate_during_training(model, cfg, step: int) -> dict:
    """Compact metrics for the training log (strict and flip-aware MPJPE / P-MPJPE, flip share, wrists)."""
    device = next(model.parameters()).device
    tab = evaluate_model(model, cfg, cfg.data.test, device, limit=cfg.data.eval_samples)
    m = tab["model"]
    keys = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjpe_flip", "p_mpjpe_flip", "flip_share", "wrist", "elbow", "pck", "auc",
            "ambiguity_ratio", "ambiguity_ratio_raw")
    out = {k: float(m[k]) for k in keys if k in m}
    for b in ("mean_pose", "oracle_yaw_mean_pose"):
        if b in tab:
            out[f"{b}_mpjpe"] = tab[b]["mpjpe"]
            out[f"{b}_p_mpjpe"] = tab[b]["p_mpjpe"]
    return out


def _cached_gt(root) -> dict:
    key = str(Path(root).resolve())
    if key not in _CACHE:
        _CACHE[key] = load_ground_truth(root)
    return _CACHE[key]


# ------------------------------------------------------------------ printing / files
ROWS = (("mpjpe", "MPJPE"), ("n_mpjpe", "N-MPJPE"), ("p_mpjpe", "P-MPJPE"), ("pck", "PCK@150"), ("auc", "AUC"))


def format_table(table: dict) -> str:
    cols = [c for c in ("model", "mean_pose", "oracle_yaw_mean_pose") if c in table]
    head = f"{'metric':<22}" + "".join(f"{c:>22}" for c in cols)
    lines = [f"evaluation on {table.get('test', '?')} ({table['num_samples']} samples; mm, PCK/AUC in %)", head,
             "-" * len(head)]
    for key, name in ROWS:
        for sfx, label in (("", "strict"), ("_flip", "flip-aware")):
            vals = []
            for c in cols:
                v = table[c][key + sfx]
                vals.append(f"{100 * v:>22.1f}" if key in ("pck", "auc") else f"{v:>22.1f}")
            lines.append(f"{name + ' ' + label:<22}" + "".join(vals))
    m = table["model"]
    lines.append(f"{'flip share':<22}" + "".join(f"{table[c]['flip_share']:>22.3f}" for c in cols))
    for k in ("ambiguity_ratio", "ambiguity_ratio_raw"):
        if k in m:
            lines.append(f"{k.replace('_', ' '):<22}{m[k]:>22.3f}")
    lines.append(f"{'wrist / elbow MPJPE':<22}" + "".join(f"{table[c]['wrist']:>14.1f} / {table[c]['elbow']:<5.0f}" for c in cols))
    if "per_activity" in m:
        lines.append("per activity (model MPJPE / P-MPJPE; oracle-yaw mean pose in brackets):")
        for a, v in m["per_activity"].items():
            o = table.get("oracle_yaw_mean_pose", {}).get("per_activity", {}).get(a)
            extra = f"   [{o['mpjpe']:.1f} / {o['p_mpjpe']:.1f}]" if o else ""
            lines.append(f"  {a:<14} n={v['n']:<4} {v['mpjpe']:7.1f} / {v['p_mpjpe']:6.1f}{extra}")
    lines.append("per joint (model, strict MPJPE): " + ", ".join(f"{k} {v:.0f}" for k, v in m["per_joint_mpjpe"].items()))
    if "baselines_unavailable" in table:
        lines.append(f"baselines unavailable: {table['baselines_unavailable']}")
    return "\n".join(lines)


def write_outputs(table: dict, json_path: str | None = None, npz_path: str | None = None) -> None:
    """JSON (all numbers) and npz (``pred``, ``gt`` ``[N, J, 3]`` mm world, ``ids``), written atomically."""
    if json_path:
        data = {k: v for k, v in table.items() if k != "predictions"}
        p = Path(json_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=_jsonable))
        os.replace(tmp, p)
    if npz_path:
        pr = table["predictions"]
        p = Path(npz_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp.npz")
        np.savez(tmp, pred=np.asarray(pr["pred"], np.float64), gt=np.asarray(pr["gt"], np.float64),
                 ids=np.asarray(pr["ids"]).astype(str))
        os.replace(tmp, p)


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    raise TypeError(type(o))
