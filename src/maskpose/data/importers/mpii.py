"""MPII Human Pose: single images with 2D joints, for generalisation evaluation (no masks, no cameras).

Accepted annotations (``research/dataset-formats.md`` §3):

* the mmpose / HRNet JSON the MaS authors use: ``SRC/annot/mpii_{split}.json`` (also ``annotations/`` or
  ``SRC``), a list of persons ``{"image", "center", "scale", "joints" [16][2], "joints_vis" [16]}`` in
  1-based MATLAB pixels; head boxes for PCKh from ``gt_valid.mat`` / ``mpii_gt_val.mat``
  (``headboxes_src [2, 2, M]``, same person order) when present;
* the official ``mpii_human_pose_v1_u12_1.mat`` (struct ``RELEASE``; ``split="train"`` = persons of
  ``img_train == 1`` images with annotated points; head rectangles ``x1, y1, x2, y2``).

Images: ``SRC/images/<name>``. Joints are converted to 0-based pixels (MATLAB's 1-based minus 1).

MPII ships **no masks**. Without ``masks_dir`` every sample is written with ``valid = False`` and no
mask file: frames only (cropped around the annotated person box as HRNet does: centre
``(x, y + 15 s)``, side ``200 * 1.25 s``), usable by an RGB model but not by a mask-only one. With
``masks_dir`` (one mask per image: ``masks_dir/<image stem>.png``, e.g. the authors' SAM masks), the
mask components that touch the person box are kept and the crop is the maskpose crop around them.

Ground truth (evaluation only; no 3D): ``gt/joints2d.npy [N, 1, 18, 2]`` float64 full-image pixels in
H36M-18 order (the authors' MPII -> H36M map; spine and nose unknown; MPII's thorax stands in for the
shoulder midpoint), NaN where not annotated; ``gt/mpii_joints2d.npy [N, 16, 2]`` in MPII order (NaN
where not annotated), ``gt/mpii_visible.npy [N, 16]`` bool, and ``gt/head_size.npy [N]`` (PCKh
normaliser ``0.6 * |head box diagonal|``, NaN when unknown).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .common import (CROP_MARGIN, DatasetImportError, ImportStats, ProgressFn, clean_mask, crop_view,
                     find_mask_file, load_mat_v5, nominal_camera, read_image_rgb, read_mask_file, select_frames,
                     write_npy)

#: MPII joint ids 0..15
MPII_JOINTS = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
               "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist")
#: H36M-18 slot -> MPII id (-1: no MPII joint), the MaS authors' ``s_mpii_2_hm36_jt``
H36M18_FROM_MPII = (6, 2, 1, 0, 3, 4, 5, -1, 8, -1, 9, 13, 14, 15, 12, 11, 10, 7)
#: PCKh head-size factor (HRNet ``SC_BIAS``)
HEAD_SIZE_FACTOR = 0.6
OFFICIAL_MAT = "mpii_human_pose_v1_u12_1.mat"


@dataclass
class MPIIPerson:
    image: str                  # file name in images/
    joints: np.ndarray          # [16, 2] 0-based px, NaN when not annotated
    visible: np.ndarray         # [16] bool
    center: np.ndarray          # [2] 0-based px
    scale: float                # person height / 200 px
    head_size: float = float("nan")


def mpii_to_h36m18(joints: np.ndarray) -> np.ndarray:
    """``[..., 16, C]`` MPII joints -> ``[..., 18, C]`` H36M-18 (NaN for spine and nose)."""
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim < 2 or j.shape[-2] != 16:
        raise ValueError(f"mpii_to_h36m18: expected [..., 16, C], got {list(j.shape)}")
    out = np.full(j.shape[:-2] + (18, j.shape[-1]), np.nan)
    for slot, k in enumerate(H36M18_FROM_MPII):
        if k >= 0:
            out[..., slot, :] = j[..., k, :]
    return out


# ============================================================================ annotations
def read_mpii_json(path: str | os.PathLike) -> list[MPIIPerson]:
    """Persons of an mmpose / HRNet ``mpii_<split>.json`` (1-based pixels -> 0-based)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetImportError(f"{path}: cannot read as JSON ({e})") from None
    if not isinstance(data, list):
        raise DatasetImportError(f"{path}: expected a list of persons")
    out = []
    for k, e in enumerate(data):
        try:
            joints = np.asarray(e["joints"], dtype=np.float64).reshape(16, 2) - 1.0
            vis = np.asarray(e.get("joints_vis", np.ones(16)), dtype=np.float64).reshape(16) > 0
            center = np.asarray(e["center"], dtype=np.float64).reshape(2) - 1.0
            scale = float(e["scale"])
            image = str(e["image"])
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetImportError(f"{path}: entry {k} is not an MPII person with image, center, scale, joints "
                                     f"[16][2] ({type(err).__name__}: {err})") from None
        joints[~vis] = np.nan
        out.append(MPIIPerson(image=image, joints=joints, visible=vis, center=center, scale=scale))
    return out


def read_head_sizes(path: str | os.PathLike) -> np.ndarray:
    """PCKh normalisers ``[M]`` from HRNet's ``gt_valid.mat`` (``headboxes_src [2, 2, M]``)."""
    path = Path(path)
    mat = load_mat_v5(path)
    if "headboxes_src" not in mat:
        raise DatasetImportError(f"{path}: no 'headboxes_src' (expected HRNet's gt_valid.mat)")
    hb = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if hb.ndim != 3 or hb.shape[:2] != (2, 2):
        raise DatasetImportError(f"{path}: headboxes_src has shape {list(hb.shape)}, expected [2, 2, M]")
    return HEAD_SIZE_FACTOR * np.linalg.norm(hb[1] - hb[0], axis=0)


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        return list(x.reshape(-1))
    return [x]


def read_mpii_official(path: str | os.PathLike, split: str = "train") -> list[MPIIPerson]:
    """Annotated persons of ``mpii_human_pose_v1_u12_1.mat`` (only ``split="train"``: the test images'
    joints are not public)."""
    path = Path(path)
    if split != "train":
        raise DatasetImportError(f"{path}: the official MPII file only has joints for the training images; use "
                                 f"split='train' (the usual validation split is the mmpose/HRNet mpii_val.json)")
    mat = load_mat_v5(path, squeeze_me=True, struct_as_record=False)
    if "RELEASE" not in mat:
        raise DatasetImportError(f"{path}: no struct 'RELEASE' (not the official MPII annotation file)")
    rel = mat["RELEASE"]
    try:
        annolist = _as_list(rel.annolist)
        img_train = np.asarray(rel.img_train).reshape(-1)
    except AttributeError as e:
        raise DatasetImportError(f"{path}: RELEASE has no annolist / img_train ({e})") from None
    out = []
    for anno, train in zip(annolist, img_train):
        if int(train) != 1:
            continue
        name = str(anno.image.name)
        for rect in _as_list(getattr(anno, "annorect", None)):
            ap = getattr(rect, "annopoints", None)
            points = _as_list(getattr(ap, "point", None)) if ap is not None and not isinstance(ap, np.ndarray) else []
            if not points:
                continue
            joints = np.full((16, 2), np.nan)
            vis = np.zeros(16, bool)
            for p in points:
                jid = int(p.id)
                joints[jid] = (float(p.x) - 1.0, float(p.y) - 1.0)
                v = p.is_visible
                vis[jid] = bool(int(v)) if np.size(v) == 1 and str(v).strip() not in ("", "[]") else True
            try:
                center = np.array([float(rect.objpos.x), float(rect.objpos.y)]) - 1.0
                scale = float(rect.scale)
                head = HEAD_SIZE_FACTOR * float(np.hypot(float(rect.x2) - float(rect.x1),
                                                         float(rect.y2) - float(rect.y1)))
            except (AttributeError, TypeError, ValueError):
                continue  # person without position / scale: unusable
            out.append(MPIIPerson(image=name, joints=joints, visible=vis, center=center, scale=scale, head_size=head))
    return out


def find_mpii_annotations(src: Path, split: str, annotations: str | os.PathLike | None) -> Path:
    if annotations is not None:
        p = Path(annotations)
        if not p.is_file():
            raise DatasetImportError(f"MPII annotation file {p} is missing")
        return p
    for d in (src / "annot", src / "annotations", src):
        if (d / f"mpii_{split}.json").is_file():
            return d / f"mpii_{split}.json"
    for d in (src, src / "mpii_human_pose_v1_u12_2", src / "annot"):
        if (d / OFFICIAL_MAT).is_file():
            return d / OFFICIAL_MAT
    raise DatasetImportError(f"{src}: no MPII annotations (annot/mpii_{split}.json from mmpose/HRNet, or "
                             f"{OFFICIAL_MAT}); pass annotations=PATH")


def _find_head_boxes(ann: Path, split: str) -> Path | None:
    for name in (f"mpii_gt_{split}.mat", "gt_valid.mat" if split == "val" else f"gt_{split}.mat"):
        if (ann.parent / name).is_file():
            return ann.parent / name
    return None


def _person_box(p: MPIIPerson) -> tuple[float, float, float]:
    """HRNet's person square: centre ``(x, y + 15 s)``, side ``200 * 1.25 s``."""
    return float(p.center[0]), float(p.center[1] + 15.0 * p.scale), 200.0 * 1.25 * p.scale


def _components_in_box(mask: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    H, W = mask.shape
    x0, x1 = int(max(0, np.floor(cx - side / 2))), int(min(W, np.ceil(cx + side / 2) + 1))
    y0, y1 = int(max(0, np.floor(cy - side / 2))), int(min(H, np.ceil(cy + side / 2) + 1))
    keep = np.zeros(n, bool)
    if x1 > x0 and y1 > y0:
        keep[np.unique(labels[y0:y1, x0:x1])] = True
    keep[0] = False
    return keep[labels]


# ============================================================================ importer
def import_mpii(src: str | os.PathLike, out: str | os.PathLike, *, split: str = "val",
                annotations: str | os.PathLike | None = None, images_dir: str | os.PathLike | None = None,
                masks_dir: str | os.PathLike | None = None, stride: int = 1, max_frames: int | None = None,
                size: int = 128, focal: float | None = None, mask_min_fraction: float = 0.05, image_ext: str = ".png",
                strict: bool = True, overwrite: bool = False, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Convert MPII persons into a single-view maskpose dataset folder with 2D ground truth (see the module
    docstring). ``split``: ``"val"`` (default; mmpose/HRNet JSON), ``"train"``, ``"trainval"`` (JSON) or
    ``"train"`` from the official .mat. ``stride`` / ``max_frames`` thin the persons (annotation order;
    ``max_frames`` spread evenly). A missing image is skipped (``missing_image``); a missing or empty mask
    (with ``masks_dir``) gives an invalid view (``missing_mask`` / ``empty_mask``). Returns the summary dict."""
    from ..folder import GT_DIR, DatasetWriter

    src = Path(src)
    if not src.is_dir():
        raise DatasetImportError(f"MPII source folder {src} does not exist")
    ann = find_mpii_annotations(src, split, annotations)
    if ann.suffix.lower() == ".json":
        persons = read_mpii_json(ann)
        hb = _find_head_boxes(ann, split)
        if hb is not None:
            heads = read_head_sizes(hb)
            if len(heads) != len(persons):
                raise DatasetImportError(f"{hb}: {len(heads)} head boxes but {ann} has {len(persons)} persons")
            for p, h in zip(persons, heads):
                p.head_size = float(h)
    else:
        persons = read_mpii_official(ann, split)
    if not persons:
        raise DatasetImportError(f"{ann}: no annotated person")
    images = Path(images_dir) if images_dir is not None else src / "images"
    if not images.is_dir():
        raise DatasetImportError(f"MPII image folder {images} is missing (pass images_dir=PATH)")
    pick = select_frames(len(persons), stride, max_frames)
    stats = ImportStats()
    S = int(size)
    has_masks = masks_dir is not None
    meta = {"split": split, "annotations": str(ann), "stride": stride, "max_frames": max_frames,
            "view_names": ["camera"], "masks": "from masks_dir" if has_masks else "none",
            "crop": ("mask components in the person box, bounding box x %.2f" % CROP_MARGIN) if has_masks else
                    "HRNet person box: centre (x, y + 15 s), side 250 s (no masks; every view invalid)",
            "camera": "nominal pinhole (f = %s), world = camera frame"
                      % ("55 degree field of view" if focal is None else focal),
            "gt_extra": {"joints2d.npy": "[N, 1, 18, 2] full-image px, H36M-18 order, NaN unknown",
                         "mpii_joints2d.npy": "[N, 16, 2] full-image px, MPII order, NaN not annotated",
                         "mpii_visible.npy": "[N, 16] bool", "head_size.npy": "[N] px, PCKh normaliser, NaN unknown"},
            "importer": "maskpose.data.importers.mpii"}
    per_image: dict[str, int] = {}
    person_index = []  # index of each person within its image, in annotation order
    for p in persons:
        person_index.append(per_image.get(p.image, 0))
        per_image[p.image] = person_index[-1] + 1
    j2d, jm, vis, heads = [], [], [], []
    done = 0
    with DatasetWriter(out, size=S, num_views=1, source="mpii", overwrite=overwrite, image_ext=image_ext,
                       meta=meta) as writer:
        for k in pick:
            p = persons[int(k)]
            done += 1
            person_k = person_index[int(k)]
            img = read_image_rgb(images / p.image)
            if img is None:
                stats.skip("missing_image")
                if progress is not None:
                    progress(done, len(pick))
                continue
            cx, cy, side = _person_box(p)
            m = None
            if has_masks:
                mp = find_mask_file(masks_dir, p.image)
                m = None if mp is None else read_mask_file(mp)
                if m is None:
                    stats.skip("missing_mask")
                elif m.shape != img.shape[:2]:
                    err = DatasetImportError(f"{mp}: mask is {m.shape[1]}x{m.shape[0]} px but the image is "
                                             f"{img.shape[1]}x{img.shape[0]}")
                    if strict:
                        raise err
                    stats.bad(mp, err)
                    m = None
                else:
                    m = clean_mask(_components_in_box(m, cx, cy, side), mask_min_fraction)
                    if not m.any():
                        stats.skip("empty_mask")
                        m = None
            if m is not None:
                crop, cm, A = crop_view(img, m, S)
            else:
                h = (side - 1) / 2
                crop, cm, A = crop_view(img, None, S, box=(cx - h, cy - h, cx + h, cy + h), margin=1.0)
            cam = nominal_camera(img.shape[1], img.shape[0], focal)
            stem = Path(p.image).stem
            writer.add(f"{stem}_{person_k}", images=crop[None], masks=cm[None], K=cam.K[None], R=cam.R[None],
                       t=cam.t[None], A=A[None], valid=np.array([bool(cm.any())]), image=p.image, person=person_k,
                       frame=int(k))
            j2d.append(mpii_to_h36m18(p.joints)[None])
            jm.append(p.joints)
            vis.append(p.visible)
            heads.append(p.head_size)
            if progress is not None:
                progress(done, len(pick))
        if not j2d:
            raise DatasetImportError(f"{src}: no sample could be written (skipped: {dict(stats.skipped)})")
        gt = writer.root / GT_DIR
        write_npy(gt / "joints2d.npy", np.stack(j2d))
        write_npy(gt / "mpii_joints2d.npy", np.stack(jm))
        write_npy(gt / "mpii_visible.npy", np.stack(vis))
        write_npy(gt / "head_size.npy", np.asarray(heads, dtype=np.float64))
    return stats.summary(Path(out), len(j2d), 1, view_names=["camera"], annotations=str(ann),
                         masks="from masks_dir" if has_masks else "none")


__all__ = ["MPII_JOINTS", "H36M18_FROM_MPII", "MPIIPerson", "mpii_to_h36m18", "read_mpii_json", "read_head_sizes",
           "read_mpii_official", "find_mpii_annotations", "import_mpii"]
