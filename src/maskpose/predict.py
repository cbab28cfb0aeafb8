"""``maskpose predict CHECKPOINT INPUT``: 3D joints from a trained checkpoint.

INPUT is a dataset folder (``docs/dataset-format.md``), or a video / image folder / folder of
videos, which is first converted to a dataset folder with :func:`maskpose.data.prepare.prepare_dataset`
(masks, crops, the calibration). Then, in batches of samples (``no_grad``, ``eval``):

* **multi-view** (V ≥ 2): per-view 2D joints → the training's label-free left/right handling
  (:func:`maskpose.train.lift_batch`: per-view swap matching by re-projection error, anatomical
  selection of the labelling, the arms separately) → **confidence-weighted DLT** with optional
  **outlier-view rejection** (:func:`triangulate_views`) → pelvis / thorax as hip / shoulder midpoints
  → 3D in **world mm** (``frame="world"``). Optionally refined per sample against the masks
  (:func:`maskpose.infer.fit_poses`, ``refine=True``).
* **single view** (V = 1, or ``single_view=True``): the detector's 2D + predicted root-relative depth
  (:func:`maskpose.train.single_view_joints3d`) → root-relative 3D in the camera frame, mm
  (``frame="camera"``; the root joint is at the origin).

The per-view 2D joints are mapped back to the **original video's pixels**: crop coordinates → crop
pixels → (inverse crop affine) undistorted image pixels → (lens distortion re-applied with
:func:`maskpose.geometry.distort`) pixels of the raw frame (:func:`crop_to_image`), so they overlay
the video the masks came from.

Coordinates used here: the network works in normalised crop coordinates (pixel ``i ↦ 2i/(S−1) − 1``);
triangulation and outlier rejection work in **crop pixels** (``P = A K [R | t]``), so the rejection
threshold is relative to the person's size in the crop, not to the video resolution.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import multiview as mv
from .geometry import distort, normalize_matrix, project_P, reprojection_error, triangulate, undistort_points
from .skeleton import JointSet, get_joint_set

Progress = Callable[[str, int, int], None]


class PredictError(ValueError):
    """The checkpoint cannot run on this input, or an option does not fit it (message names both)."""


# ============================================================================ triangulation
def triangulate_views(points2d: torch.Tensor, projections: torch.Tensor, weights: torch.Tensor | None = None, *,
                      reject: bool = True, k: float = 3.0, threshold: float = 0.0, min_views: int = 2,
                      min_angle_deg: float = 30.0) -> dict:
    """Weighted N-view DLT per joint with optional outlier-view rejection.

    Rejection (per sample and joint, repeated while more than ``min_views`` views remain): for each
    used view ``c``, triangulate from the other used views and measure ``c``'s own re-projection
    error ``e_c`` and the median error ``m_c`` of the others; the view with the largest
    ``e_c / max(k · m_c, threshold)`` is dropped if that ratio exceeds 1, and the joint is
    triangulated again. A joint never drops below ``min_views`` views (≥ 2), and a view is only
    dropped if the views left still contain a pair of viewing rays at least ``min_angle_deg`` apart
    (and at most 180° − ``min_angle_deg``): two facing cameras see a point along nearly one line,
    their triangulation is free along it and would fit any outlier, so they cannot judge the others.

    Args:
        points2d: ``[..., V, J, 2]`` image points in the coordinates of ``projections`` (no NaN: give
            unusable views weight 0 and any finite coordinates).
        projections: ``[..., V, 3, 4]``.
        weights: ``[..., V, J]`` non-negative confidences (0 = view not used); None: all 1.
        reject: do the outlier-view rejection.
        k, threshold: a view is an outlier when its error exceeds ``max(k · median, threshold)``
            (units of ``points2d``).
        min_views: fewest views a joint keeps (≥ 2).
        min_angle_deg: least ray separation the remaining views must have (see above).
    Returns:
        dict with ``joints3d [..., J, 3]`` (float64; NaN where fewer than ``min_views`` views have
        positive weight), ``used [..., V, J]`` bool (positive weight and not rejected),
        ``rejected [..., V, J]`` bool and ``error [..., V, J]`` (re-projection error of the final
        points in every view, units of ``points2d``).
    """
    if min_views < 2:
        raise ValueError(f"triangulate_views: min_views must be >= 2, got {min_views}")
    if points2d.shape[-1] != 2 or points2d.ndim < 3:
        raise ValueError(f"triangulate_views: points2d must be [..., V, J, 2], got {list(points2d.shape)}")
    x = points2d.double()
    P = projections.double()
    V, J = x.shape[-3], x.shape[-2]
    w = torch.ones(x.shape[:-1], dtype=torch.float64, device=x.device) if weights is None else weights.double()
    if w.shape != x.shape[:-1]:
        raise ValueError(f"triangulate_views: weights must be {list(x.shape[:-1])}, got {list(w.shape)}")
    if (w < 0).any() or not torch.isfinite(w).all():
        raise ValueError("triangulate_views: weights must be finite and non-negative")
    positive = w > 0
    used = positive.clone()
    enough = used.sum(-2) >= min_views  # [..., J]
    if reject and V > min_views:
        eye = torch.eye(V, dtype=torch.bool, device=x.device)
        xs = x.unsqueeze(-4).expand(*x.shape[:-3], V, V, J, 2)  # [..., C, V, J, 2]; C = left-out view
        Ps = P.unsqueeze(-4)                                     # [..., 1, V, 3, 4]
        # viewing rays d = M^-1 (x, y, 1) of every view and joint, and |sin| of the angle of each pair
        xh = torch.cat([x, torch.ones_like(x[..., :1])], -1)   # [..., V, J, 3]
        d = xh @ torch.linalg.inv(P[..., :3]).transpose(-1, -2)
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        sin_ab = torch.linalg.cross(d.unsqueeze(-3), d.unsqueeze(-4), dim=-1).norm(dim=-1)  # [..., a, b, J]
        min_sin = math.sin(math.radians(min_angle_deg))
        for _ in range(V - min_views):
            cand = used.sum(-2) > min_views  # [..., J] joints that may lose a view
            if not bool(cand.any()):
                break
            keep = used.unsqueeze(-3) & ~eye[:, :, None]          # [..., C, V, J]
            wl = torch.where(keep, w.unsqueeze(-3), torch.zeros((), dtype=w.dtype, device=w.device))
            # degenerate leave-one-out systems (non-candidates) get dummy weights; they are masked below
            ok = keep.sum(-2, keepdim=True) >= 2
            wl = torch.where(ok, wl, torch.ones_like(wl))
            Xl = triangulate(xs, Ps.expand(*xs.shape[:-2], 3, 4), wl)  # [..., C, J, 3]
            err = reprojection_error(Xl, xs, Ps.expand(*xs.shape[:-2], 3, 4))  # [..., C, V, J]
            own = torch.diagonal(err, dim1=-3, dim2=-2).movedim(-1, -2)  # [..., C, J]: view c's own error
            others = torch.where(keep, err, torch.full_like(err, float("nan")))
            med = torch.nanmedian(others, dim=-2).values  # [..., C, J]
            thr = torch.clamp(k * torch.nan_to_num(med, nan=0.0), min=float(threshold))
            score = own / thr.clamp_min(1e-12)
            score = torch.where(used & cand.unsqueeze(-2) & torch.isfinite(score), score,
                                torch.full_like(score, -math.inf))
            # never leave a subset without a pair of rays at least ``min_angle_deg`` apart (e.g. two
            # facing cameras): its triangulation is free along the baseline and fits anything
            pair = used.unsqueeze(-3) & used.unsqueeze(-2)  # [..., a, b, J]
            sep = torch.where(pair, sin_ab, torch.zeros_like(sin_ab))
            sep = sep.unsqueeze(-4).expand(*sep.shape[:-3], V, V, V, J)  # [..., C, a, b, J]
            out_c = (eye[:, :, None] | eye[:, None, :])[..., None]  # pairs that contain the left-out view
            good = torch.where(out_c, torch.zeros_like(sep), sep).amax(dim=(-3, -2)) >= min_sin  # [..., C, J]
            score = torch.where(good, score, torch.full_like(score, -math.inf))
            best_score, best = score.max(dim=-2)  # [..., J]
            drop = best_score > 1.0
            if not bool(drop.any()):
                break
            hit = torch.nn.functional.one_hot(best, V).movedim(-1, -2).bool() & drop.unsqueeze(-2)
            used = used & ~hit
    wf = torch.where(used, w, torch.zeros_like(w))
    wf = torch.where(enough.unsqueeze(-2), wf, torch.ones_like(wf))  # keep degenerate joints solvable
    X = triangulate(x, P, wf)
    X = torch.where(enough.unsqueeze(-1), X, torch.full_like(X, float("nan")))
    err = reprojection_error(X, x, P)
    return {"joints3d": X, "used": used & enough.unsqueeze(-2), "rejected": positive & ~used, "error": err}


# ============================================================================ crop <-> image
def crop_to_image(points: np.ndarray | torch.Tensor, A: np.ndarray, K: np.ndarray, dist: np.ndarray | None,
                  size: int) -> np.ndarray:
    """Normalised crop coordinates → pixels of the original (distorted) image.

    ``points [..., J, 2]`` (crop pixel ``i ↦ 2i/(S−1) − 1``), ``A [..., 3, 3]`` (undistorted image px →
    crop px), ``K [..., 3, 3]`` (pinhole of the undistorted image), ``dist [..., 5]`` OpenCV
    ``(k1, k2, p1, p2, k3)`` or None → ``[..., J, 2]`` float64 pixels of the raw frame.
    """
    p = torch.as_tensor(np.asarray(points, dtype=np.float64))
    A = torch.as_tensor(np.asarray(A, dtype=np.float64))
    K = torch.as_tensor(np.asarray(K, dtype=np.float64))
    px = (p + 1.0) * (size - 1) / 2.0
    ph = torch.cat([px, torch.ones_like(px[..., :1])], -1)
    u = ph @ torch.linalg.inv(A).transpose(-1, -2)
    u = u[..., :2] / u[..., 2:3]  # undistorted image pixels
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy, s = K[..., 0, 2, None], K[..., 1, 2, None], K[..., 0, 1, None]
    yn = (u[..., 1] - cy) / fy
    xn = (u[..., 0] - cx - s * yn) / fx
    if dist is not None and np.any(np.asarray(dist) != 0):
        d = torch.as_tensor(np.asarray(dist, dtype=np.float64))
        xd = distort(torch.stack([xn, yn], -1), d[..., None, :])
        xn, yn = xd[..., 0], xd[..., 1]
    return torch.stack([fx * xn + s * yn + cx, fy * yn + cy], -1).numpy()


def image_to_crop(pixels: np.ndarray, A: np.ndarray, K: np.ndarray, dist: np.ndarray | None, size: int) -> np.ndarray:
    """Inverse of :func:`crop_to_image`: raw-frame pixels ``[..., J, 2]`` → normalised crop coordinates
    (lens distortion removed with :func:`maskpose.geometry.undistort_points`). ``A, K [..., 3, 3]``,
    ``dist [..., 5]`` share the leading dims of ``pixels``."""
    pix = np.asarray(pixels, dtype=np.float64)
    lead = pix.shape[:-2]
    A = np.broadcast_to(np.asarray(A, dtype=np.float64), lead + (3, 3)).reshape(-1, 3, 3)
    K = np.broadcast_to(np.asarray(K, dtype=np.float64), lead + (3, 3)).reshape(-1, 3, 3)
    D = np.broadcast_to(np.zeros(5) if dist is None else np.asarray(dist, dtype=np.float64), lead + (5,)).reshape(-1, 5)
    flat = pix.reshape(-1, pix.shape[-2], 2)
    out = np.empty_like(flat)
    Nm = normalize_matrix(size)
    for i in range(flat.shape[0]):
        u = undistort_points(flat[i], K[i], D[i])
        h = np.concatenate([u, np.ones_like(u[:, :1])], 1) @ (Nm @ A[i]).T
        out[i] = h[:, :2] / h[:, 2:3]
    return out.reshape(pix.shape)


# ============================================================================ checkpoint
def checkpoint_info(state: dict, cfg) -> dict:
    """What a checkpoint says about the data it was trained on: ``size`` (crop px) and ``num_views``
    (None when unknown), ``input`` (detector input mode), ``train`` (its training folder).

    The size is read from the checkpoint when it records it (``extra["data"]["size"]``, or
    ``state["data"]["size"]``), else from the ``meta.json`` of the training folder its config names,
    when that folder is present on this machine.
    """
    info: dict[str, Any] = {"size": None, "num_views": None, "input": cfg.model.input, "train": cfg.data.train}
    for src in (state.get("data"), (state.get("extra") or {}).get("data")):
        if isinstance(src, dict):
            info["size"] = info["size"] or src.get("size")
            info["num_views"] = info["num_views"] or src.get("num_views")
    if info["size"] is None and cfg.data.train:
        try:
            from .data.folder import load_dataset_meta

            meta = load_dataset_meta(cfg.data.train)
            info["size"], info["num_views"] = meta["size"], info["num_views"] or meta["num_views"]
        except (ValueError, OSError):
            pass
    return info


NEEDS_RGB = ("rgb", "rgb_mask", "rgb+mask")


# ============================================================================ dataset reader
class FolderReader:
    """Streaming reader of a dataset folder for prediction: masks (and frames only when the detector
    needs RGB), crop cameras and validity, batch by batch (nothing is preloaded; a valid view whose
    mask is missing or empty is treated as invalid and counted in ``dropped_views``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        from .data.folder import FRAMES_DIR, MASKS_DIR, crop_projections, load_dataset_meta, load_samples

        self.root = Path(root)
        self.meta = load_dataset_meta(self.root)
        arrays = load_samples(self.root, self.meta)
        self.size: int = self.meta["size"]
        self.num_views: int = self.meta["num_views"]
        self.num_samples: int = self.meta["num_samples"]
        self.ids: list[str] = arrays["ids"].tolist()
        self.K, self.R, self.t = arrays["K"], arrays["R"], arrays["t"]
        self.dist, self.A, self.valid = arrays["dist"], arrays["A"], arrays["valid"]
        self.fields = {k: v for k, v in arrays.items() if k not in ("ids", "K", "R", "t", "dist", "A", "valid")}
        self.crop_cameras = crop_projections(self.K, self.R, self.t, self.A, self.size)  # [N, V, 3, 4] normalised
        self._frames = _listdir(self.root / FRAMES_DIR)
        self._masks = _listdir(self.root / MASKS_DIR)
        self.dropped_views = 0

    def frame_file(self, i: int, v: int) -> Path | None:
        from .data.folder import FRAME_EXTS, frame_path

        for ext in FRAME_EXTS:
            if f"{self.ids[i]}_{v}{ext}" in self._frames:
                return frame_path(self.root, self.ids[i], v, ext)
        return None

    def check_frames(self, mode: str, checkpoint: str) -> None:
        """Raise :class:`PredictError` when the detector needs RGB frames and the folder lacks them."""
        if mode not in NEEDS_RGB:
            return
        for i in range(self.num_samples):
            for v in range(self.num_views):
                if self.valid[i, v] and self.frame_file(i, v) is None:
                    raise PredictError(
                        f"checkpoint {checkpoint} takes {mode!r} input (RGB frames) but dataset folder {self.root} has "
                        f"no frame for sample {self.ids[i]!r} view {v} (frames/{self.ids[i]}_{v}.png|.jpg); use a "
                        f"checkpoint trained on masks (model.input=mask) or a folder with frames")

    def load(self, indices: list[int], need_rgb: bool, weights: bool = False) -> dict:
        """Tensors of the samples ``indices``: ``images [B,V,3,S,S]`` (zeros unless ``need_rgb``),
        ``masks [B,V,1,S,S]``, ``crop_cameras [B,V,3,4]``, ``valid [B,V]``, and ``weights
        [B,V,1,S,S]`` (geodesic loss weights, only with ``weights``)."""
        from .data.folder import DatasetError, mask_path, read_frame, read_mask, weights_path

        B, V, S = len(indices), self.num_views, self.size
        masks = np.zeros((B, V, S, S), bool)
        valid = self.valid[indices].copy()
        imgs = np.zeros((B, V, S, S, 3), np.uint8) if need_rgb else None
        wts = np.zeros((B, V, S, S), np.float32) if weights else None
        for b, i in enumerate(indices):
            for v in range(V):
                if not valid[b, v]:
                    continue
                if f"{self.ids[i]}_{v}.png" not in self._masks:
                    valid[b, v] = False
                    self.dropped_views += 1
                    continue
                m = read_mask(mask_path(self.root, self.ids[i], v), S)
                if not m.any():
                    valid[b, v] = False
                    self.dropped_views += 1
                    continue
                masks[b, v] = m
                if need_rgb:
                    f = self.frame_file(i, v)
                    if f is None:
                        raise DatasetError(f"frame file {self.root}/frames/{self.ids[i]}_{v}.png is missing")
                    imgs[b, v] = read_frame(f, S)
                if weights:
                    wts[b, v] = _load_weights(weights_path(self.root, self.ids[i], v), m)
        out = {
            "masks": torch.from_numpy(masks[:, :, None].astype(np.float32)),
            "crop_cameras": torch.from_numpy(self.crop_cameras[indices].astype(np.float32)),
            "valid": torch.from_numpy(valid),
        }
        if need_rgb:
            out["images"] = torch.from_numpy(imgs).permute(0, 1, 4, 2, 3).float().div_(255.0)
        else:  # the detector ignores it in mask mode; a broadcast view costs nothing
            out["images"] = torch.zeros(1, 1, 1, 1, 1).expand(B, V, 3, S, S)
        if weights:
            out["weights"] = torch.from_numpy(wts[:, :, None])
        return out

    def view_names(self) -> list[str]:
        names = self.meta.get("view_names")
        if isinstance(names, list) and len(names) == self.num_views:
            return [str(n) for n in names]
        return [f"view{v}" for v in range(self.num_views)]

    def fps(self) -> float | None:
        f = self.meta.get("fps")
        if isinstance(f, (list, tuple)):
            f = next((x for x in f if isinstance(x, (int, float)) and x > 0), None)
        return float(f) if isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 else None


def _listdir(d: Path) -> set[str]:
    try:
        return set(os.listdir(d)) if d.is_dir() else set()
    except OSError:
        return set()


def _load_weights(path: Path, mask: np.ndarray) -> np.ndarray:
    """Cached geodesic weights when readable, else computed in memory (the folder may be read-only)."""
    from .weighting import geodesic_weights

    try:
        w = np.load(path, allow_pickle=False)
        if w.shape == mask.shape and np.isfinite(w).all():
            return w.astype(np.float32)
    except (OSError, ValueError, EOFError):
        pass
    return geodesic_weights(mask)


# ============================================================================ prediction on a folder
@torch.no_grad()
def predict_folder(model, cfg, root: str | os.PathLike, *, device: torch.device | str = "cpu", batch_size: int = 32,
                   indices: list[int] | None = None, single_view: bool = False, view: int = 0,
                   reject_outlier_views: bool = True, reject_k: float = 3.0, reject_threshold: float = 0.1,
                   confidence_weights: bool = True, refine: bool = False, refine_iters: int = 100,
                   refine_lr_mm: float = 5.0, refine_search_cycles: int = 2, checkpoint_name: str = "the checkpoint",
                   progress: Progress | None = None) -> dict:
    """Run a loaded detector on a dataset folder; returns numpy arrays for the ``T`` selected samples.

    Multi-view (V ≥ 2, not ``single_view``): ``joints3d [T, J, 3]`` world mm, ``frame="world"``.
    Single view: root-relative camera-frame mm of view ``view``, ``frame="camera"``.

    Keys: ``ids``, ``indices``, ``frame``, ``joints3d``, ``confidence [T, J]``, ``joints2d [T, V', J, 2]``
    (raw-frame pixels, NaN for invalid views; V' = 1 in single view), ``joints2d_crop [T, V', J, 2]``
    (normalised crop coordinates, labelling as used), ``view_confidence [T, V', J]``, and in
    multi-view ``weights [T, V, J]`` (the DLT weights actually used: 0 = invalid or rejected view),
    ``rejected [T, V, J]``, ``reprojected2d [T, V, J, 2]`` (the 3D re-projected into the raw frames),
    ``error_px [T, V, J]`` (re-projection error of the returned 3D in crop pixels), ``swaps``, ``flip``, ``arm_flip``;
    ``views`` (indices of the views in ``joints2d``) and ``dropped_views``.

    ``reject_threshold`` is a fraction of the crop side S (0.1 → 6.4 px at S = 64): views are rejected
    per joint when their error exceeds ``max(reject_k · median, reject_threshold · S)`` crop pixels.
    """
    from .train import predict_views, single_view_joints3d

    device = torch.device(device)
    reader = FolderReader(root)
    js = get_joint_set(cfg.joint_set)
    S, V = reader.size, reader.num_views
    k = 2 ** cfg.model.num_stages
    if S % k:
        raise PredictError(f"dataset folder {root} has crops of {S} px but checkpoint {checkpoint_name} (num_stages="
                           f"{cfg.model.num_stages}) needs a crop size divisible by {k}")
    reader.check_frames(cfg.model.input, checkpoint_name)
    if indices is None:
        indices = list(range(reader.num_samples))
    if not len(indices):
        raise PredictError(f"no samples to predict in {root} (num_samples={reader.num_samples})")
    multi = V >= 2 and not single_view
    if not multi and not 0 <= view < V:
        raise PredictError(f"view {view} does not exist: dataset folder {root} has {V} view(s)")
    if refine and not multi:
        raise PredictError(f"refine needs calibrated multi-view data; dataset folder {root} is used single-view "
                           f"({V} view(s){', single_view=True' if single_view else ''})")
    need_rgb = cfg.model.input in NEEDS_RGB
    Nm = torch.tensor(normalize_matrix(S))
    to_px = torch.linalg.inv(Nm)  # normalised crop -> crop px
    T = len(indices)
    was_training = model.training
    model.eval()
    parts: dict[str, list] = {}

    def put(**kw):
        for key, val in kw.items():
            parts.setdefault(key, []).append(val.detach().cpu().numpy() if isinstance(val, torch.Tensor) else val)

    done = 0
    try:
        for s in range(0, T, batch_size):
            idx = indices[s:s + batch_size]
            batch = reader.load(idx, need_rgb, weights=refine and bool(cfg.loss.geodesic))
            dev_batch = {key: val.to(device) for key, val in batch.items() if key != "weights"}
            pred = predict_views(model, dev_batch, cfg)
            pred = {key: val.double().cpu() for key, val in pred.items()}
            valid = batch["valid"]
            if multi:
                put(**_lift_multiview(pred, batch, cfg, js, S, to_px, reject_outlier_views, reject_k,
                                      reject_threshold, confidence_weights))
                if refine:
                    X = parts["joints3d"][-1]
                    ok = np.isfinite(X).all((-1, -2)) & (valid.sum(1).numpy() >= 2)
                    if ok.any():
                        from .infer import fit_poses

                        sel = torch.from_numpy(np.flatnonzero(ok))
                        wts = batch["weights"][sel] if "weights" in batch else None
                        with torch.enable_grad():  # the fit optimises the joints by gradient
                            X[ok] = fit_poses(X[ok], batch["masks"][sel], wts, batch["crop_cameras"][sel],
                                              valid[sel], cfg, iters=refine_iters, lr_mm=refine_lr_mm, device=device,
                                              search_cycles=refine_search_cycles)
                        if progress is not None:
                            progress("refine", min(T, s + len(idx)), T)
            else:
                Xc, _ = single_view_joints3d(pred, {"crop_cameras": batch["crop_cameras"].double()}, cfg)
                X = Xc[:, view] - Xc[:, view, js.root:js.root + 1]
                ok = valid[:, view]
                X = torch.where(ok[:, None, None], X, torch.full_like(X, float("nan")))
                conf = torch.where(ok[:, None], pred["confidence"][:, view], torch.zeros_like(pred["confidence"][:, view]))
                put(joints3d=X, confidence=conf, joints2d_crop=pred["joints2d"][:, view:view + 1],
                    view_confidence=pred["confidence"][:, view:view + 1], valid=valid[:, view:view + 1])
            done += len(idx)
            if progress is not None:
                progress("predict", done, T)
    finally:
        model.train(was_training)
    out = {key: np.concatenate(val) for key, val in parts.items()}
    idx_arr = np.asarray(indices)
    views = list(range(V)) if multi else [view]
    vv = np.asarray(views)
    A, K, D = reader.A[idx_arr][:, vv], reader.K[idx_arr][:, vv], reader.dist[idx_arr][:, vv]
    valid = out.pop("valid")
    j2 = crop_to_image(out["joints2d_crop"], A, K, D, S)
    out["joints2d"] = np.where(valid[..., None, None], j2, np.nan)
    if multi:
        Xh = torch.from_numpy(np.nan_to_num(out["joints3d"]))
        P = torch.from_numpy(reader.crop_cameras[idx_arr])
        rep_t = project_P(Xh[:, None], P)  # normalised crop coords
        # re-projection error of the final (possibly refined) 3D against the detections, crop px
        out["error_px"] = ((rep_t - torch.from_numpy(out["joints2d_crop"])).norm(dim=-1) * (S - 1) / 2).numpy()
        rep = crop_to_image(rep_t.numpy(), A, K, D, S)
        bad = ~np.isfinite(out["joints3d"]).all(-1)  # [T, J]
        out["reprojected2d"] = np.where(valid[..., None, None] & ~bad[:, None, :, None], rep, np.nan)
    out.update(ids=[reader.ids[i] for i in indices], indices=idx_arr, frame="world" if multi else "camera",
               views=views, dropped_views=reader.dropped_views, size=S, num_views=V,
               view_names=[reader.view_names()[v] for v in views], fps=reader.fps(),
               fields={key: val[idx_arr] for key, val in reader.fields.items()}, meta_in=reader.meta)
    return out


def _lift_multiview(pred: dict, batch: dict, cfg, js: JointSet, S: int, to_px: torch.Tensor, reject: bool,
                    reject_k: float, reject_threshold: float, confidence_weights: bool) -> dict:
    """One batch of the multi-view path (float64, CPU): labelling as in training, robust weighted DLT."""
    from .train import lift_batch

    valid = batch["valid"]
    B, V, J = pred["joints2d"].shape[:3]
    nvalid = valid.sum(1)
    # samples with < 2 valid views get dummy validity for the labelling maths and NaN results below
    lb = {"valid": torch.where((nvalid >= 2)[:, None], valid, torch.ones_like(valid)),
          "crop_cameras": batch["crop_cameras"].double()}
    lifted = lift_batch(pred, lb, cfg, js)
    swaps, flip, arm_flip = lifted["swaps"], lifted["flip"], lifted["arm_flip"]
    x = mv.apply_view_swaps(pred["joints2d"], swaps, js)
    c = mv.apply_view_swaps(pred["confidence"][..., None], swaps, js)[..., 0]
    aperm = mv.arm_permutation(js)
    x = mv.apply_view_swaps(x, lifted["arm_swaps"], js, aperm)
    c = mv.apply_view_swaps(c[..., None], lifted["arm_swaps"], js, aperm)[..., 0]
    fl, af = flip[:, None].expand(B, V), arm_flip[:, None].expand(B, V)
    x = mv.apply_labelling(x, fl, af, js)
    c = mv.apply_labelling(c[..., None], fl, af, js)[..., 0]
    w = valid.double()[..., None].expand(B, V, J)
    if confidence_weights:
        w = w * c.clamp_min(1e-3)
    x_px = x @ to_px[:2, :2].T + to_px[:2, 2]  # crop pixels
    P_px = to_px @ batch["crop_cameras"].double()
    res = triangulate_views(x_px, P_px, w, reject=reject, k=reject_k, threshold=reject_threshold * S)
    X = res["joints3d"]
    if cfg.method.centres:
        X = mv.derive_centres(X, js)
    used = res["used"]
    cu = (c * used).sum(1) / used.sum(1).clamp_min(1)  # [B, J] mean confidence of the views used
    if cfg.method.centres:
        j = js.index
        cu[:, js.root] = 0.5 * (cu[:, j("LHip")] + cu[:, j("RHip")])
        if "thorax" in js.joints:
            cu[:, j("thorax")] = 0.5 * (cu[:, j("LShoulder")] + cu[:, j("RShoulder")])
    none = ~torch.isfinite(X).all(-1)
    cu = torch.where(none, torch.zeros_like(cu), cu)
    return {"joints3d": X, "confidence": cu.clamp(0, 1), "joints2d_crop": x, "view_confidence": c,
            "weights": torch.where(used, w, torch.zeros_like(w)), "rejected": res["rejected"],
            "swaps": swaps, "flip": flip, "arm_flip": arm_flip, "valid": valid}


# ============================================================================ the command
def predict(checkpoint: str | os.PathLike, input: str | os.PathLike | list, *, out_dir: str | os.PathLike | None = None,
            calibration=None, device: str = "auto", batch_size: int = 32, smoothing: str | None = None,
            smoothing_params: dict | None = None, refine: bool = False, refine_iters: int = 100,
            refine_search_cycles: int = 2, reject_outlier_views: bool = True, reject_k: float = 3.0, reject_threshold: float = 0.1,
            confidence_weights: bool = True, flip_test: bool = False, single_view: bool = False, view: int = 0,
            max_frames: int | None = None, stride: int = 1, masker: str = "median", size: int | None = None,
            fps: float | None = None, overwrite: bool = False, prepare_options: dict | None = None,
            progress: Progress | None = None):
    """3D joints from ``checkpoint`` on ``input``; returns a :class:`maskpose.export.PoseSequence`.

    Args:
        checkpoint: ``checkpoint.pt`` written by ``maskpose train``.
        input: a dataset folder (has ``meta.json``), or a video file, an image folder, a folder of
            videos / image folders (one per view), or a list of those — converted first with
            :func:`maskpose.data.prepare.prepare_dataset` into ``out_dir/prepared`` (a temporary folder,
            removed afterwards, when ``out_dir`` is None). ``out_dir`` is not used for a dataset folder;
            write the result with :func:`save_predictions`.
        calibration: camera file for video input (see :func:`maskpose.data.calibration.load_calibration`);
            not allowed with a dataset folder, which has its own cameras.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        batch_size: samples (each with all its views) per network pass.
        smoothing: None (default), ``"oneeuro"`` or ``"butterworth"`` (:mod:`maskpose.smoothing`),
            with ``smoothing_params`` (e.g. ``{"cutoff": 6.0}``). Applied per ``sequence`` in frame
            order; frames missing from the sequence are gaps (the filters restart after a gap).
        refine: refine each multi-view pose against the masks (:func:`maskpose.infer.fit_poses`,
            ``refine_iters`` Adam steps, after an arm search against the masks; ``refine_search_cycles``
            times (search, fit); 0: the Adam steps alone).
        reject_outlier_views, reject_k, reject_threshold: per joint, drop a view whose re-projection
            error exceeds ``max(reject_k · median, reject_threshold · S)`` crop pixels
            (:func:`triangulate_views`); never below 2 views.
        confidence_weights: weight each view's DLT rows by the detector's per-joint confidence.
        flip_test: average each view's answer with the answer on its mirror image (``train.flip_average``).
        single_view, view: use only view ``view`` (root-relative camera-frame output) even when the
            data is multi-view.
        max_frames, stride: use every ``stride``-th sample (frame), at most ``max_frames`` of them.
        masker: foreground method for video input (passed to ``prepare_dataset``).
        size: crop size for video input (default: the checkpoint's training crop size).
        fps: frame rate (default: the folder's ``meta.json``); needed only for smoothing.
        overwrite: replace an earlier ``out_dir/prepared`` (without it, a finished or interrupted
            preparation there with the same settings is reused / resumed).
        prepare_options: further keyword arguments of ``prepare_dataset`` for video input
            (``masks_dir``, ``grabcut``, ``start``, ``allow_border``, ``fov_deg``, ...).
        progress: ``progress(stage, done, total)`` with stage ``"prepare"``, ``"predict"`` or ``"refine"``.
    """
    from .data.folder import META_FILE
    from .export import PoseSequence
    from .train import load_model, resolve_device

    t0 = time.time()
    if stride < 1:
        raise PredictError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise PredictError(f"max_frames must be >= 1, got {max_frames}")
    if smoothing is not None and smoothing not in ("oneeuro", "butterworth"):
        raise PredictError(f"smoothing must be 'oneeuro' or 'butterworth' (or None), got {smoothing!r}")
    dev = resolve_device(device)
    ckpt = Path(checkpoint)
    model, cfg, state = load_model(ckpt, dev)
    if flip_test:
        cfg = replace(cfg, method=replace(cfg.method, flip_test=True))
    js = get_joint_set(cfg.joint_set)
    saved = state.get("joints")
    if saved is not None and list(saved) != list(js.joints):
        raise PredictError(f"checkpoint {ckpt} lists joints {list(saved)} but joint set {cfg.joint_set!r} of this "
                           f"maskpose has {list(js.joints)}; it was written by an incompatible version")
    info = checkpoint_info(state, cfg)
    notes: list[str] = []
    prep_meta = None
    tmp_dir = None
    paths = input if isinstance(input, (list, tuple)) else [input]
    is_folder = len(paths) == 1 and (Path(paths[0]) / META_FILE).is_file()
    try:
        if is_folder:
            root = Path(paths[0])
            if calibration is not None:
                raise PredictError(f"{root} is a dataset folder with its own cameras; calibration={calibration} "
                                   f"applies to video input only")
            prepared = False
        else:
            from .data.prepare import prepare_dataset

            crop = size or info["size"]
            if crop is None:
                raise PredictError(f"checkpoint {ckpt} does not record its crop size and its training folder "
                                   f"{cfg.data.train!r} is not available here; pass size= (--size) for the video crops")
            if out_dir is None:
                tmp_dir = tempfile.mkdtemp(prefix="maskpose-predict-")
                root = Path(tmp_dir) / "prepared"
            else:
                root = Path(out_dir) / "prepared"
            cb = None if progress is None else (lambda d, n: progress("prepare", d, n))
            opts = dict(prepare_options or {})
            clash = sorted(set(opts) & {"calibration", "size", "stride", "max_frames", "masker", "overwrite", "progress"})
            if clash:
                raise PredictError(f"prepare_options {clash} are arguments of predict itself; pass them directly")
            summary = prepare_dataset(input, root, calibration=calibration, size=int(crop), stride=stride,
                                      max_frames=max_frames, masker=masker, overwrite=overwrite, progress=cb, **opts)
            prep_meta = {k: summary.get(k) for k in ("num_samples", "processed", "skipped", "invalid_views",
                                                     "camera_model", "warnings")}
            prepared = True
        reader0 = FolderReader(root)
        reader_meta = reader0.meta
        S, V = reader_meta["size"], reader_meta["num_views"]
        fps_used = fps or reader0.fps()
        if smoothing is not None:  # check the smoothing settings before the work
            if not fps_used:
                raise PredictError(f"smoothing needs the frame rate, and {root}/meta.json does not record fps; "
                                   f"pass fps= (--fps)")
            from .smoothing import smooth

            smooth(np.zeros((2, 1, 3)), fps_used, smoothing, **(smoothing_params or {}))
        if info["size"] is not None and S != info["size"]:
            notes.append(f"crop size {S} px differs from the checkpoint's training crops ({info['size']} px); "
                         f"accuracy may suffer")
        if (V == 1 or single_view) and info["num_views"] and info["num_views"] > 1 and cfg.method.triangulate:
            notes.append(f"checkpoint trained on {info['num_views']}-view data is used single-view: the 3D is "
                         f"root-relative in the camera frame, from the predicted depth")
        if V >= 2 and not single_view and not cfg.method.triangulate:
            notes.append("checkpoint trained single-view (method.triangulate=false); its per-view 2D is triangulated")
        if reader_meta.get("joint_set", "h36m18") != cfg.joint_set and reader_meta.get("has_gt"):
            notes.append(f"the folder's ground truth is in joint set {reader_meta['joint_set']!r}, the prediction in "
                         f"{cfg.joint_set!r}")
        n = reader_meta["num_samples"]
        indices = list(range(n)) if prepared else list(range(0, n, stride))
        if max_frames is not None and not prepared:
            indices = indices[:max_frames]
        res = predict_folder(model, cfg, root, device=dev, batch_size=batch_size, indices=indices,
                             single_view=single_view, view=view, reject_outlier_views=reject_outlier_views,
                             reject_k=reject_k, reject_threshold=reject_threshold,
                             confidence_weights=confidence_weights, refine=refine, refine_iters=refine_iters,
                             refine_search_cycles=refine_search_cycles, checkpoint_name=str(ckpt), progress=progress)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    if res["dropped_views"]:
        notes.append(f"{res['dropped_views']} view(s) marked valid had a missing or empty mask and were not used")
    X = res["joints3d"]
    smooth_meta = None
    if smoothing is not None:
        X = smooth_sequences(X, fps_used, smoothing, smoothing_params or {}, frames=res["fields"].get("frame"),
                             sequences=res["fields"].get("sequence"))
        smooth_meta = {"method": smoothing, **{k: v for k, v in (smoothing_params or {}).items()}}
    seconds = time.time() - t0
    for nt in notes:
        warnings.warn(nt, stacklevel=2)
    meta = _meta(res, ckpt, paths, root if not prepared or out_dir is not None else None, cfg, info, dev, smooth_meta,
                 refine, reject_outlier_views, confidence_weights, notes, seconds)
    if prep_meta is not None:
        meta["prepare"] = _plain(prep_meta)
    frame_ids = list(res["ids"])
    src = res["fields"].get("frame")
    if src is not None and np.asarray(src).dtype.kind in "iu" and len(set(np.asarray(src).tolist())) == len(frame_ids):
        meta["sample_ids"] = frame_ids  # the source frame numbers are the ids: the time axis of the video
        frame_ids = [str(int(f)) for f in np.asarray(src).tolist()]
    elif src is not None:  # several takes share frame numbers: keep the unique sample ids
        meta["source_frames"] = _plain(np.asarray(src))
    return PoseSequence(joints3d=np.asarray(X, dtype=np.float64), joint_names=list(js.joints), frame_ids=frame_ids,
                        frame=res["frame"], fps=fps_used, confidence=np.asarray(res["confidence"], dtype=np.float64),
                        joints2d=np.asarray(res["joints2d"], dtype=np.float64), view_names=res["view_names"], meta=meta)


def _meta(res: dict, ckpt: Path, inputs: list, root, cfg, info: dict, dev, smooth_meta, refine: bool, reject: bool,
          conf_w: bool, notes: list[str], seconds: float) -> dict:
    T = len(res["ids"])
    meta: dict[str, Any] = {
        "checkpoint": str(ckpt), "input": [str(p) for p in inputs] if len(inputs) > 1 else str(inputs[0]),
        "dataset": None if root is None else str(root), "joint_set": cfg.joint_set, "input_mode": cfg.model.input,
        "crop_size": int(res["size"]), "train_crop_size": info["size"], "num_views": int(res["num_views"]),
        "mode": "multiview" if res["frame"] == "world" else "single_view", "views": [int(v) for v in res["views"]],
        "device": str(dev), "refined": bool(refine), "smoothing": smooth_meta,
        "reject_outlier_views": bool(reject), "confidence_weights": bool(conf_w),
        "flip_test": bool(cfg.method.flip_test), "notes": list(notes),
        "num_frames": T, "seconds": round(seconds, 3), "frames_per_s": round(T / max(seconds, 1e-9), 2),
        "units": "mm", "frame_description": ("world frame of the calibration, mm" if res["frame"] == "world" else
                                             "camera frame (x right, y down, z forward), root-relative, mm"),
    }
    if res["frame"] == "world":
        w = res["weights"] > 0
        err = res["error_px"]
        meta["rejected_share"] = float(res["rejected"].sum() / max(1, (res["rejected"] | w).sum()))
        meta["reprojection_error_crop_px"] = float(err[w].mean()) if w.any() else None
        meta["flip_share"] = float(np.mean(res["flip"])) if T else 0.0
    return meta


def _plain(x):
    """JSON-friendly copy (numpy scalars / arrays / tuples / paths to plain Python)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def smooth_sequences(joints: np.ndarray, fps: float, method: str, params: dict, frames=None, sequences=None) -> np.ndarray:
    """Smooth ``joints [T, J, 3]`` per sequence in frame order (see :func:`maskpose.smoothing.smooth`).

    ``frames [T]`` (source frame indices) place the samples on a regular grid of step = the gcd of the
    frame differences, so skipped frames become NaN gaps (and the effective rate is ``fps / step``);
    ``sequences [T]`` groups samples that belong to one take. Without ``frames`` the samples are
    taken as consecutive at ``fps``.
    """
    from .smoothing import smooth

    X = np.asarray(joints, dtype=np.float64)
    out = X.copy()
    T = X.shape[0]
    groups = np.zeros(T, dtype=int) if sequences is None else np.unique(np.asarray(sequences).astype(str), return_inverse=True)[1]
    for g in np.unique(groups):
        sel = np.flatnonzero(groups == g)
        if frames is None:
            out[sel] = smooth(X[sel], fps, method, **params)
            continue
        f = np.asarray(frames)[sel].astype(np.int64)
        order = np.argsort(f, kind="stable")
        sel, f = sel[order], f[order]
        if len(sel) > 1 and np.any(np.diff(f) == 0):
            raise PredictError("smoothing: a sequence has two samples with the same frame index")
        step = int(np.gcd.reduce(np.diff(f))) if len(f) > 1 else 1
        pos = (f - f[0]) // max(step, 1)
        grid = np.full((int(pos[-1]) + 1,) + X.shape[1:], np.nan)
        grid[pos] = X[sel]
        out[sel] = smooth(grid, fps / max(step, 1), method, **params)[pos]
    return out


def save_predictions(seq, out_dir: str | os.PathLike, formats=("json",), *, name: str = "poses",
                     overwrite: bool = False, y_up: bool = False) -> list[Path]:
    """Write ``seq`` as ``out_dir/{name}.{fmt}`` for each of ``formats`` (json, csv, npz, trc) with
    :func:`maskpose.export.export_poses`; returns the written paths."""
    from .export import export_poses

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [Path(export_poses(seq, out / f"{name}.{fmt.lower().lstrip('.')}", None, overwrite=overwrite, y_up=y_up))
            for fmt in formats]


__all__ = ["FolderReader", "PredictError", "checkpoint_info", "crop_to_image", "image_to_crop", "predict",
           "predict_folder", "save_predictions", "smooth_sequences", "triangulate_views"]
