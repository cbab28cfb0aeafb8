"""MPI-INF-3DHP: calibration, annotations, masks, and the importers of the training and test sets.

Training set (``research/dataset-formats.md`` §2.1), multi-view::

    SRC/S1/Seq1/annot.mat               MATLAB v5: annot2 {14 x 1} of [N, 56] px, annot3 {14 x 1} of [N, 84]
                                        camera coordinates (mm), univ_annot3, cameras, frames
    SRC/S1/Seq1/camera.calibration      "Skeletool Camera Calibration File V1.0": per camera name, sensor,
                                        size, animated, intrinsic (4x4), extrinsic (4x4 [R|t], world -> camera,
                                        mm), radial
    SRC/S1/Seq1/imageSequence/video_{c}.avi   2048 x 2048
    SRC/S1/Seq1/FGmasks/video_{c}.avi         red channel: green-screen foreground (person + chair)
    SRC/S1/Seq1/ChairMasks/video_{c}.avi      red channel: 0 at the chair, 1 elsewhere (optional)

The person mask is ``FG_red > 127`` and, where chair masks exist, ``Chair_red > 127`` (the chair is
removed), after a 5x5 Gaussian blur against compression noise. Default cameras ``[0, 2, 4, 7, 8]``
(the MaS authors' chest-height views). World joints: ``annot3`` of each selected camera mapped back
with its extrinsics and averaged (the cameras agree to rounding).

"Leave out occluded frames" (paper §4.1) follows the authors' code (``occlusion_filter=True``): an
instant is dropped if in any selected camera a projected joint (``annot2``) leaves the image, the
chair covers more than 4 joints, or the foreground mask covers more than 85 % of the image
(over-exposure). This is a selection of frames by the labels, as in the paper; the labels
themselves stay in ``gt/``.

Test set (§2.3), single view::

    SRC/TS1/annot_data.mat              MATLAB v7.3: annot2 [N,1,17,2], annot3 / univ_annot3 [N,1,17,3]
                                        (camera = world frame, mm), valid_frame [N,1], activity_annotation [N,1]
    SRC/TS1/imageSequence/img_000001.jpg

Only ``valid_frame == 1`` frames are imported (the official protocol). The test set ships no masks:
give ``masks_dir`` (``masks_dir/TS1/img_000001.png`` or ``masks_dir/img_000001.png``, e.g. from SAM)
to get valid views; without it the frames are cropped around the ground-truth 2D box and every view
is written ``valid = False`` with no mask (RGB evaluation only). ``gt/joints3d.npy`` holds ``annot3``;
``gt/joints3d_univ.npy`` the height-normalised ``univ_annot3`` used by the official PCK / AUC.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from ...geometry import Camera
from .common import (CROP_MARGIN, DatasetImportError, ImportStats, ProgressFn, VideoFrames, box_from_points,
                     clean_mask, crop_view, find_mask_file, h5_numeric, load_mat_v5, normalize_names, open_mat73,
                     read_image_rgb, read_mask_file, select_frames, write_npy)

#: joint names of the 28-joint training skeleton (``mpii_get_joint_set.m``)
MPI3DHP28_JOINTS = (
    "spine3", "spine4", "spine2", "spine", "pelvis", "neck", "head", "head_top", "left_clavicle", "left_shoulder",
    "left_elbow", "left_wrist", "left_hand", "right_clavicle", "right_shoulder", "right_elbow", "right_wrist",
    "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot", "left_toe", "right_hip", "right_knee",
    "right_ankle", "right_foot", "right_toe")
#: the 17 'relevant' joints of the test set, in its order
MPI3DHP17_JOINTS = ("head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                    "pelvis", "spine", "head")
#: H36M-18 joint (first 17) -> 3DHP joint name; the 18th, thorax, is the shoulder midpoint. spine = 3DHP
#: 'spine' as in the official test set's 'relevant' joints (the MaS code uses 'spine2')
H36M17_FROM_3DHP = ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
                    "neck", "head", "head_top", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
                    "right_elbow", "right_wrist")
#: left/right pairs of the 28 joints (for the S4/Seq2 label-swap fix)
MPI3DHP28_FLIP = tuple((MPI3DHP28_JOINTS.index(n), MPI3DHP28_JOINTS.index(n.replace("left_", "right_")))
                       for n in MPI3DHP28_JOINTS if n.startswith("left_"))
#: the MaS authors' cameras ("chest height")
DEFAULT_CAMERAS = (0, 2, 4, 7, 8)
TRAIN_SUBJECTS = tuple(f"S{i}" for i in range(1, 9))
SPLITS = {"train": TRAIN_SUBJECTS, "val": ("S7", "S8")}
TEST_SEQUENCES = tuple(f"TS{i}" for i in range(1, 7))
#: activity ids of the test set (``activity_annotation``), named as in the 3DHP paper's tables
TEST_ACTIVITIES = {1: "Stand/Walk", 2: "Exercise", 3: "Sit on Chair", 4: "Crouch/Reach", 5: "On the Floor",
                   6: "Sports", 7: "Miscellaneous"}
#: known annotation quirk (vegesm/pose_refinement): left/right labels swapped in S4/Seq2 frames [3759, 5853)
LR_SWAPPED = {("S4", "Seq2"): (3759, 5853)}
#: authors' occlusion rule thresholds
CHAIR_JOINTS_MAX = 4
OVEREXPOSED_FRACTION = 0.85
#: square crop margin around a ground-truth joint box (joints lie inside the silhouette: a larger margin
#: than the mask box's 1.15 gives about the same crop)
JOINT_BOX_MARGIN = 1.3


# ============================================================================ joints
def _index_map(names_from: Sequence[str]) -> list[int]:
    return [list(names_from).index(n) for n in H36M17_FROM_3DHP]


def mpi3dhp_to_h36m18(joints: np.ndarray, joint_names: Sequence[str] = MPI3DHP28_JOINTS) -> np.ndarray:
    """``[..., 28 | 17, C]`` 3DHP joints (training 28 or test 'relevant' 17 order, given by ``joint_names``)
    -> ``[..., 18, C]`` H36M-18 (thorax = midpoint of the shoulders)."""
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim < 2 or j.shape[-2] != len(joint_names):
        raise ValueError(f"mpi3dhp_to_h36m18: expected [..., {len(joint_names)}, C], got {list(j.shape)}")
    names = list(joint_names)
    thorax = 0.5 * (j[..., names.index("left_shoulder"), :] + j[..., names.index("right_shoulder"), :])
    return np.concatenate([j[..., _index_map(names), :], thorax[..., None, :]], axis=-2)


# ============================================================================ calibration
_KEY_SIZES = {"sensor": 2, "size": 2, "animated": 1, "intrinsic": 16, "extrinsic": 16}


def load_3dhp_calibration(path: str | os.PathLike) -> list[Camera]:
    """Cameras of a 3DHP ``camera.calibration`` file, in file order (``name`` = the file's camera name,
    ``size`` = (W, H)). ``intrinsic``/``extrinsic`` are row-major 4 x 4; the extrinsic is world -> camera in
    mm. ``radial`` coefficients other than 0 are refused (the release's videos are undistorted)."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise DatasetImportError(f"{path}: cannot read ({e.strerror or e})") from None
    tokens = text.split()
    if not tokens or "Skeletool" not in " ".join(tokens[:3]):
        raise DatasetImportError(f"{path}: not a 'Skeletool Camera Calibration File' (3DHP camera.calibration)")
    cams: list[dict] = []
    k = 0
    while k < len(tokens):
        tok = tokens[k]
        if tok == "name":
            if k + 1 >= len(tokens):
                raise DatasetImportError(f"{path}: 'name' without a value at the end of the file")
            cams.append({"name": tokens[k + 1]})
            k += 2
        elif cams and tok in _KEY_SIZES:
            n = _KEY_SIZES[tok]
            try:
                cams[-1][tok] = np.array([float(v) for v in tokens[k + 1:k + 1 + n]])
            except ValueError:
                raise DatasetImportError(f"{path}: camera {cams[-1]['name']}: '{tok}' needs {n} numbers") from None
            if cams[-1][tok].size != n:
                raise DatasetImportError(f"{path}: camera {cams[-1]['name']}: '{tok}' needs {n} numbers "
                                         f"(file truncated?)")
            k += 1 + n
        elif cams and tok == "radial":
            vals = []
            k += 1
            while k < len(tokens) and re.fullmatch(r"[-+0-9.eE]+", tokens[k]):
                vals.append(float(tokens[k]))
                k += 1
            if any(v != 0 for v in vals):
                raise DatasetImportError(f"{path}: camera {cams[-1]['name']}: non-zero radial distortion {vals} is "
                                         f"not supported")
        else:
            k += 1
    if not cams:
        raise DatasetImportError(f"{path}: no camera found")
    out = []
    for c in cams:
        missing = [key for key in ("intrinsic", "extrinsic") if key not in c]
        if missing:
            raise DatasetImportError(f"{path}: camera {c['name']} has no {' / '.join(missing)} (file truncated?)")
        I, E = c["intrinsic"].reshape(4, 4), c["extrinsic"].reshape(4, 4)
        K = np.array([[I[0, 0], I[0, 1], I[0, 2]], [0.0, I[1, 1], I[1, 2]], [0.0, 0.0, 1.0]])
        size = tuple(int(v) for v in c["size"]) if "size" in c else None
        try:
            out.append(Camera(K=K, R=E[:3, :3], t=E[:3, 3], size=size, name=c["name"]))
        except ValueError as e:
            raise DatasetImportError(f"{path}: camera {c['name']}: {e}") from None
    return out


def mpi3dhp_test_camera(sequence: str, width: int | None = None, height: int | None = None) -> Camera:
    """Pinhole camera of a 3DHP test sequence (TS1-4 studio 2048 x 2048, TS5-6 outdoor 1920 x 1080;
    intrinsics of the official ``test_util/camera_calibration``); world = camera frame."""
    n = int(re.sub(r"\D", "", sequence) or 0)
    if n >= 5:
        W, H = 1920, 1080
        f, cx, cy = 8.770747185 / 10 * 1920, 960 - 0.104908645 / 10 * 1920, 540 + 0.104899704 / 5.625 * 1080
    else:
        W, H = 2048, 2048
        f, cx, cy = 7.32506 / 10 * 2048, 1024 - 0.0322884 / 10 * 2048, 1024 + 0.0929296 / 10 * 2048
    if width is not None and (width, height) != (W, H):
        raise DatasetImportError(f"3DHP test sequence {sequence}: images are {width}x{height}, expected {W}x{H}")
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    return Camera(K=K, R=np.eye(3), t=np.zeros(3), size=(W, H), name=sequence)


# ============================================================================ annotations
@dataclass
class Annot3DHPTrain:
    annot2: np.ndarray   # [C, N, 28, 2] px
    annot3: np.ndarray   # [C, N, 28, 3] camera coordinates, mm

    @property
    def num_frames(self) -> int:
        return self.annot3.shape[1]


def _cells(mat: dict, key: str, path: Path, width: int) -> np.ndarray:
    if key not in mat:
        raise DatasetImportError(f"{path}: variable {key!r} is missing")
    cells = np.asarray(mat[key], dtype=object).reshape(-1)
    arrs = []
    for c, cell in enumerate(cells):
        a = np.asarray(cell, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != width:
            raise DatasetImportError(f"{path}: {key}{{{c + 1}}} has shape {list(a.shape)}, expected [N, {width}]")
        arrs.append(a)
    n = min(a.shape[0] for a in arrs)
    return np.stack([a[:n] for a in arrs])


def read_train_annotation(path: str | os.PathLike) -> Annot3DHPTrain:
    """``annot.mat`` of a training sequence -> ``annot2 [C, N, 28, 2]``, ``annot3 [C, N, 28, 3]`` (camera mm)."""
    path = Path(path)
    mat = load_mat_v5(path)
    a3 = _cells(mat, "annot3", path, 84)
    a2 = _cells(mat, "annot2", path, 56)
    n = min(a3.shape[1], a2.shape[1])
    C = a3.shape[0]
    return Annot3DHPTrain(annot2=a2[:, :n].reshape(C, n, 28, 2), annot3=a3[:, :n].reshape(C, n, 28, 3))


@dataclass
class Annot3DHPTest:
    annot2: np.ndarray       # [N, 17, 2] px
    annot3: np.ndarray       # [N, 17, 3] mm, camera frame
    univ_annot3: np.ndarray  # [N, 17, 3]
    valid: np.ndarray        # [N] bool
    activity: np.ndarray     # [N] int (0 when absent)


def _joints_h5(f, key: str, path: Path, C: int) -> np.ndarray:
    a = h5_numeric(f, key, path)
    if a.size % (17 * C):
        raise DatasetImportError(f"{path}: {key} has shape {list(a.shape)}, expected [N, 1, 17, {C}]")
    if a.ndim >= 3 and a.shape[-2:] == (17, C):  # MATLAB C x 17 x 1 x N, read by h5py reversed
        return a.reshape(-1, 17, C)
    raise DatasetImportError(f"{path}: {key} has shape {list(a.shape)}, expected [N, 1, 17, {C}]")


def read_test_annotation(path: str | os.PathLike) -> Annot3DHPTest:
    """``annot_data.mat`` (MATLAB v7.3) of a test sequence."""
    path = Path(path)
    with open_mat73(path) as f:
        a2 = _joints_h5(f, "annot2", path, 2)
        a3 = _joints_h5(f, "annot3", path, 3)
        u3 = _joints_h5(f, "univ_annot3", path, 3) if "univ_annot3" in f else a3.copy()
        valid = h5_numeric(f, "valid_frame", path).reshape(-1) > 0
        act = (h5_numeric(f, "activity_annotation", path).reshape(-1).astype(int) if "activity_annotation" in f
               else np.zeros(len(valid), int))
    n = len(valid)
    if not (len(a2) == len(a3) == len(u3) == n):
        raise DatasetImportError(f"{path}: annot2/annot3/univ_annot3/valid_frame have {len(a2)}/{len(a3)}/"
                                 f"{len(u3)}/{n} frames")
    if len(act) != n:
        act = np.zeros(n, int)
    return Annot3DHPTest(annot2=a2, annot3=a3, univ_annot3=u3, valid=valid, activity=act)


# ============================================================================ helpers
def _camera_indices(cameras: Iterable[int | str] | str | None) -> list[int]:
    if cameras is None:
        return list(DEFAULT_CAMERAS)
    out = []
    for c in normalize_names(cameras):
        m = re.fullmatch(r"(?:video_|cam)?(\d{1,2})", c)
        if not m or not 0 <= int(m.group(1)) <= 13:
            raise ValueError(f"unknown 3DHP camera {c!r}: use indices 0-13")
        out.append(int(m.group(1)))
    if len(set(out)) != len(out):
        raise ValueError(f"cameras listed twice: {out}")
    return out


def _video_mask(frame_bgr: np.ndarray | None) -> np.ndarray | None:
    """Red channel of a mask video frame, blurred 5x5, > 127."""
    if frame_bgr is None:
        return None
    red = frame_bgr[:, :, 2] if frame_bgr.ndim == 3 else frame_bgr
    return cv2.GaussianBlur(red, (5, 5), 0) > 127


def _sequence_dirs(src: Path, subjects: Sequence[str], sequences: Sequence[str] | None,
                   missing_ok: bool) -> list[tuple[str, str, Path]]:
    out = []
    for s in subjects:
        sdir = src / s
        if not sdir.is_dir():
            if missing_ok:
                continue
            raise DatasetImportError(f"subject folder {sdir} is missing")
        seqs = sequences or sorted((p.name for p in sdir.iterdir() if p.is_dir() and re.fullmatch(r"Seq\d+", p.name)),
                                   key=lambda n: int(n[3:]))
        for q in seqs:
            if not (sdir / q).is_dir():
                raise DatasetImportError(f"sequence folder {sdir / q} is missing")
            out.append((s, q, sdir / q))
    return out


# ============================================================================ training set
def import_3dhp(src: str | os.PathLike, out: str | os.PathLike, *, split: str = "train",
                subjects: Iterable[str | int] | str | None = None, sequences: Iterable[str] | str | None = None,
                cameras: Iterable[int | str] | str | None = None, stride: int | None = None,
                max_frames: int | None = None, size: int = 128, chair_masks: bool = True,
                occlusion_filter: bool = True, fix_known_quirks: bool = True,
                masks_dir: str | os.PathLike | None = None,
                min_views: int = 1, mask_min_fraction: float = 0.05, image_ext: str = ".png", strict: bool = True,
                overwrite: bool = False, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Convert MPI-INF-3DHP into a maskpose dataset folder.

    ``split="train"`` (S1-S8) / ``"val"`` (S7, S8, the MaS authors' validation subjects): the training
    release, multi-view (``cameras``, default ``[0, 2, 4, 7, 8]``), masks from ``FGmasks`` minus
    ``ChairMasks`` (``chair_masks``), frames filtered by the authors' occlusion rule
    (``occlusion_filter``), ``stride`` default 5. ``split="test"``: the test set (``sequences`` TS1-TS6),
    single view, ``valid_frame`` frames only, ``stride`` default 1, masks from ``masks_dir`` if given (see
    module docstring). ``max_frames`` caps the frames per sequence (spread evenly). Other arguments as
    :func:`~maskpose.data.importers.h36m.import_h36m`. Returns the summary dict.
    """
    if split == "test":
        if subjects is not None or cameras is not None:
            raise ValueError("the 3DHP test set has one camera per sequence: choose sequences=['TS1', ...], "
                             "not subjects / cameras")
        return import_3dhp_test(src, out, sequences=sequences, stride=1 if stride is None else stride,
                                max_frames=max_frames, size=size, masks_dir=masks_dir,
                                mask_min_fraction=mask_min_fraction, image_ext=image_ext, strict=strict,
                                overwrite=overwrite, progress=progress)
    if masks_dir is not None:
        raise ValueError("masks_dir is only used for the 3DHP test set (the training set ships FGmasks)")
    from ..folder import DatasetWriter

    src = Path(src)
    if not src.is_dir():
        raise DatasetImportError(f"MPI-INF-3DHP source folder {src} does not exist")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    stride = 5 if stride is None else int(stride)
    subj = normalize_names(subjects, prefix="S") if subjects is not None else list(SPLITS[split])
    seq_names = normalize_names(sequences, prefix="Seq")
    cam_idx = _camera_indices(cameras)
    V, S = len(cam_idx), int(size)
    if min_views < 1 or min_views > V:
        raise ValueError(f"min_views must be in 1..{V}, got {min_views}")
    stats = ImportStats()
    seq_dirs = _sequence_dirs(src, subj, seq_names, missing_ok=subjects is None)
    if not seq_dirs:
        raise DatasetImportError(f"{src}: no sequence of subjects {', '.join(subj)}")
    stats.skip("missing_subject", len({s for s in subj} - {s for s, _, _ in seq_dirs}))

    plans = []
    for s, q, d in seq_dirs:
        try:
            ann = read_train_annotation(d / "annot.mat")
            cams_all = load_3dhp_calibration(d / "camera.calibration")
        except DatasetImportError as e:
            if strict:
                raise
            stats.bad(d, e)
            continue
        if max(cam_idx) >= min(len(cams_all), ann.annot3.shape[0]):
            raise DatasetImportError(f"{d}: camera {max(cam_idx)} requested but annot.mat / camera.calibration have "
                                     f"{ann.annot3.shape[0]} / {len(cams_all)} cameras")
        plans.append((s, q, d, ann, [cams_all[c] for c in cam_idx]))
    total = sum(len(select_frames(p[3].num_frames, stride, max_frames)) for p in plans)
    meta = {"split": split if subjects is None else "custom", "subjects": subj, "cameras": cam_idx,
            "view_names": [f"video_{c}" for c in cam_idx], "stride": stride, "max_frames": max_frames,
            "mask_source": "FGmasks red > 127" + (" minus ChairMasks" if chair_masks else ""),
            "occlusion_filter": bool(occlusion_filter), "crop_margin": CROP_MARGIN,
            "joint_mapping": "3DHP 28 -> H36M-18 (spine = 'spine', thorax = shoulder midpoint)",
            "importer": "maskpose.data.importers.mpi3dhp"}
    done = n_written = 0
    with DatasetWriter(out, size=S, num_views=V, source="mpi_inf_3dhp", overwrite=overwrite, image_ext=image_ext,
                       meta=meta) as writer:
        for s, q, d, ann, cams in plans:
            readers: list[list[VideoFrames | None]] = []
            try:
                for c in cam_idx:
                    row = []
                    for sub in ("imageSequence", "FGmasks", "ChairMasks"):
                        p = d / sub / f"video_{c}.avi"
                        r = None
                        if sub == "ChairMasks" and not chair_masks:
                            pass
                        elif not p.is_file():
                            stats.skip({"imageSequence": "missing_video", "FGmasks": "missing_mask_file",
                                        "ChairMasks": "missing_chair_mask_file"}[sub])
                        else:
                            try:
                                r = VideoFrames(p)
                            except DatasetImportError as e:
                                if strict:
                                    raise
                                stats.bad(p, e)
                        row.append(r)
                    readers.append(row)
                usable = [v for v in range(V) if readers[v][0] is not None and readers[v][1] is not None]
                n = ann.num_frames
                for v in usable:
                    for r in readers[v]:
                        if r is not None and r.num_frames > 0:
                            n = min(n, r.num_frames)
                planned = select_frames(ann.num_frames, stride, max_frames)
                frames = planned[planned < n]
                if len(frames) < len(planned):
                    stats.skip("frames_beyond_shortest", len(planned) - len(frames))
                    done += len(planned) - len(frames)
                a3 = ann.annot3[cam_idx]
                a2 = ann.annot2[cam_idx]
                swap = LR_SWAPPED.get((s, q)) if fix_known_quirks else None
                for i in frames:
                    i = int(i)
                    done += 1
                    world = np.mean([cams[v].R.T @ (a3[v, i] - cams[v].t).T for v in range(V)], axis=0).T  # [28,3]
                    if swap and swap[0] <= i < swap[1]:
                        perm = list(range(28))
                        for a, b in MPI3DHP28_FLIP:
                            perm[a], perm[b] = b, a
                        world = world[perm]
                    imgs = np.zeros((V, S, S, 3), np.uint8)
                    cms = np.zeros((V, S, S), bool)
                    A = np.tile(np.eye(3), (V, 1, 1))
                    valid = np.zeros(V, bool)
                    drop = None
                    views = {}
                    for v in usable:
                        frame = readers[v][0].read(i)
                        fg = _video_mask(readers[v][1].read(i, color=False))
                        chair = _video_mask(readers[v][2].read(i, color=False)) if readers[v][2] is not None else None
                        if frame is None or fg is None:
                            stats.skip("video_ended")
                            continue
                        Hh, Ww = frame.shape[:2]
                        if fg.shape != (Hh, Ww) or (chair is not None and chair.shape != (Hh, Ww)):
                            raise DatasetImportError(f"{d}: mask videos of camera {cam_idx[v]} are not "
                                                     f"{Ww}x{Hh} like its image video")
                        if occlusion_filter:
                            uv = a2[v, i]
                            if not np.all((uv >= 0) & (uv <= np.array([Ww - 1, Hh - 1]))):
                                drop = "joints_outside_image"
                            elif chair is not None:
                                px = np.round(uv).astype(int)
                                if int(np.sum(~chair[px[:, 1], px[:, 0]])) > CHAIR_JOINTS_MAX:
                                    drop = "chair_occlusion"
                            if drop is None and fg.mean() > OVEREXPOSED_FRACTION:
                                drop = "overexposed"
                            if drop is not None:
                                break
                        views[v] = (frame, fg if chair is None else fg & chair)
                    if drop is not None:
                        stats.skip(drop)
                    else:
                        for v, (frame, m) in views.items():
                            m = clean_mask(m, mask_min_fraction)
                            if not m.any():
                                stats.skip("empty_mask")
                                continue
                            imgs[v], cms[v], A[v] = crop_view(frame, m, S)
                            valid[v] = cms[v].any()
                            if not valid[v]:
                                stats.skip("empty_mask")
                        if valid.sum() < min_views:
                            stats.skip("too_few_views")
                        else:
                            writer.add(f"{s}_{q}_{i:06d}", images=imgs, masks=cms, K=np.stack([c.K for c in cams]),
                                       R=np.stack([c.R for c in cams]), t=np.stack([c.t for c in cams]), A=A,
                                       valid=valid, joints3d=mpi3dhp_to_h36m18(world), subject=s, sequence=q,
                                       frame=i)
                            n_written += 1
                    if progress is not None:
                        progress(done, total)
            finally:
                for row in readers:
                    for r in row:
                        if r is not None:
                            r.close()
        if n_written == 0:
            raise DatasetImportError(f"{src}: no sample could be written (skipped: {dict(stats.skipped)})")
    return stats.summary(Path(out), n_written, V, view_names=meta["view_names"], sequences=len(plans),
                         subjects=subj)


# ============================================================================ test set
def import_3dhp_test(src: str | os.PathLike, out: str | os.PathLike, *, sequences: Iterable[str] | str | None = None,
                     stride: int = 1, max_frames: int | None = None, size: int = 128,
                     masks_dir: str | os.PathLike | None = None, mask_min_fraction: float = 0.05,
                     image_ext: str = ".png", strict: bool = True, overwrite: bool = False,
                     progress: ProgressFn | None = None) -> dict[str, Any]:
    """Convert the MPI-INF-3DHP test set (TS1-TS6) into a single-view maskpose dataset folder (see the
    module docstring for masks, ground truth and crops)."""
    from ..folder import GT_DIR, DatasetWriter

    src = Path(src)
    if not src.is_dir():
        raise DatasetImportError(f"MPI-INF-3DHP test-set folder {src} does not exist")
    names = normalize_names(sequences, prefix="TS")
    if names is None:
        names = [n for n in TEST_SEQUENCES if (src / n).is_dir()]
        if not names:
            raise DatasetImportError(f"{src}: no test sequence folder (TS1 .. TS6)")
    stats = ImportStats()
    plans = []
    for name in names:
        d = src / name
        if not d.is_dir():
            raise DatasetImportError(f"test sequence folder {d} is missing")
        try:
            ann = read_test_annotation(d / "annot_data.mat")
        except DatasetImportError as e:
            if strict:
                raise
            stats.bad(d / "annot_data.mat", e)
            continue
        valid_idx = np.flatnonzero(ann.valid)
        stats.skip("invalid_frame", int(len(ann.valid) - len(valid_idx)))
        pick = select_frames(len(valid_idx), stride, max_frames)
        plans.append((name, d, ann, valid_idx[pick]))
    S = int(size)
    has_masks = masks_dir is not None
    meta = {"split": "test", "sequences": [p[0] for p in plans], "stride": stride, "max_frames": max_frames,
            "view_names": ["camera"], "masks": "from masks_dir" if has_masks else "none",
            "crop": "mask bounding box x 1.15" if has_masks else
                    f"ground-truth 2D joint box x {JOINT_BOX_MARGIN} (no masks; every view invalid)",
            "activities": {str(k): v for k, v in TEST_ACTIVITIES.items()},
            "gt_extra": {"joints3d_univ.npy": "univ_annot3 (height-normalised, official PCK/AUC), H36M-18, mm"},
            "importer": "maskpose.data.importers.mpi3dhp"}
    total = sum(len(p[3]) for p in plans)
    done = 0
    univ = []
    with DatasetWriter(out, size=S, num_views=1, source="mpi_inf_3dhp_test", overwrite=overwrite,
                       image_ext=image_ext, meta=meta) as writer:
        for name, d, ann, frames in plans:
            cam = None
            for i in frames:
                i = int(i)
                done += 1
                rel = Path(name) / f"img_{i + 1:06d}.jpg"
                img = read_image_rgb(d / "imageSequence" / rel.name)
                if img is None:
                    stats.skip("missing_image")
                    if progress is not None:
                        progress(done, total)
                    continue
                if cam is None:
                    cam = mpi3dhp_test_camera(name, img.shape[1], img.shape[0])
                m = None
                if has_masks:
                    mp = find_mask_file(masks_dir, rel)
                    m = None if mp is None else read_mask_file(mp)
                    if m is None:
                        stats.skip("missing_mask")
                    elif m.shape != img.shape[:2]:
                        raise DatasetImportError(f"{mp}: mask is {m.shape[1]}x{m.shape[0]} px but the image is "
                                                 f"{img.shape[1]}x{img.shape[0]}")
                    else:
                        m = clean_mask(m, mask_min_fraction)
                        if not m.any():
                            stats.skip("empty_mask")
                            m = None
                if m is not None:
                    crop, cm, A = crop_view(img, m, S)
                else:
                    box = box_from_points(ann.annot2[i])
                    crop, cm, A = crop_view(img, None, S, box=box, margin=JOINT_BOX_MARGIN)
                act = int(ann.activity[i])
                writer.add(f"{name}_{i:06d}", images=crop[None], masks=cm[None], K=cam.K[None], R=cam.R[None],
                           t=cam.t[None], A=A[None], valid=np.array([bool(cm.any())]),
                           joints3d=mpi3dhp_to_h36m18(ann.annot3[i], MPI3DHP17_JOINTS), sequence=name, frame=i,
                           activity=TEST_ACTIVITIES.get(act, str(act)), activity_id=act)
                univ.append(mpi3dhp_to_h36m18(ann.univ_annot3[i], MPI3DHP17_JOINTS))
                if progress is not None:
                    progress(done, total)
        if not univ:
            raise DatasetImportError(f"{src}: no sample could be written (skipped: {dict(stats.skipped)})")
        write_npy(writer.root / GT_DIR / "joints3d_univ.npy", np.stack(univ))
    return stats.summary(Path(out), len(univ), 1, view_names=["camera"], sequences=[p[0] for p in plans],
                         masks="from masks_dir" if has_masks else "none")


__all__ = [
    "MPI3DHP28_JOINTS", "MPI3DHP17_JOINTS", "H36M17_FROM_3DHP", "DEFAULT_CAMERAS", "TEST_SEQUENCES", "TEST_ACTIVITIES",
    "mpi3dhp_to_h36m18", "load_3dhp_calibration", "mpi3dhp_test_camera", "Annot3DHPTrain", "read_train_annotation",
    "Annot3DHPTest", "read_test_annotation", "import_3dhp", "import_3dhp_test",
]
