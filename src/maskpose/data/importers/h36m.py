"""Human3.6M: cameras, pose files, background-subtraction masks, and the importer.

Source layout (the official per-subject archives, extracted; ``research/dataset-formats.md`` §1)::

    SRC/S1/MyPoseFeatures/D3_Positions/Directions 1.cdf           world joints, mm, variable Pose [1, N, 96]
    SRC/S1/Videos/Directions 1.54138969.mp4                        50 fps, 1000 x 1002 or 1000 x 1000
    SRC/S1/MySegmentsMat/ground_truth_bs/Directions 1.54138969.mat MATLAB v7.3, cell Masks {1 x N}, logical H x W
    SRC/metadata.xml   (or camera-parameters.json)                 cameras (see load_h36m_calibration)

The h36m-fetch ``extracted/`` layout (``S1/Poses_D3_Positions/``, ``S1/Videos/``) is accepted too.

Cameras. ``metadata.xml`` holds ``<w0>`` (300 numbers): for camera index ``c`` (order 54138969,
55011271, 58860488, 60457274) and subject ``s`` (1..11), ``w0[6 (11 c + s - 1) : +6]`` = three Euler
angles (rad) and the camera centre ``T`` (world, mm); ``w0[264 + 9 c : +9]`` = ``fx, fy, cx, cy, k1,
k2, k3, p1, p2``. Rotation ``R = R1(a0) R2(a1) R3(a2)`` (world -> camera), ``x_cam = R (X - T)``
(Martinez' ``load_camera_params``; checked against VideoPose3D's quaternions to 1e-7).

Distortion. H36M's lens model is *not* OpenCV's (official ``ProjectPointRadial.m``): with
``x, y = X/Z, Y/Z`` and ``r2 = x^2 + y^2``, ``radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3``,
``tan = p1 y + p2 x``, ``x_d = x (radial + tan) + p2 r2``, ``y_d = y (radial + tan) + p1 r2``. The
importer removes this exact model from every frame and mask (``cv2.remap``) before cropping, so the
crop cameras are exact pinholes. ``dist`` in ``samples.npz`` and :class:`~maskpose.geometry.Camera`
objects can only hold OpenCV coefficients: they get ``(k1, k2, q1, q2, k3)`` where ``(q1, q2)`` is
the least-squares OpenCV fit of H36M's tangential term over the image (:func:`h36m_opencv_dist`; on
the real cameras the two models then differ by at most 0.17-0.31 px, at the image corners, against
0.5-1.0 px when w0's ``p1, p2`` are copied into OpenCV's slots). The raw H36M parameters are stored in
``meta.json`` under ``h36m_cameras``.

Joints. The 32 joints of ``Pose`` are reduced to H36M-17 with the standard subset
``[0,1,2,3,6,7,8,12,13,14,15,17,18,19,25,26,27]`` and the thorax (shoulder midpoint) is appended:
H36M-18 in the world frame, mm (:func:`h36m32_to_h36m18`).
"""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ...geometry import Camera
from .common import (CROP_MARGIN, DatasetImportError, ImportStats, ProgressFn, VideoFrames, clean_mask, crop_view,
                     normalize_names, open_mat73, remap, require_cdflib, select_frames, undistort_maps)

#: camera ids in the dataset's order (metadata.xml ``<dbcameras><index2id>``)
H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
#: default resolutions (width, height) per camera (VideoPose3D / mmpose); the videos' own size wins
H36M_CAMERA_SIZES = {"54138969": (1000, 1002), "55011271": (1000, 1000), "58860488": (1000, 1000),
                     "60457274": (1000, 1002)}
#: subjects with public 3D ground truth
H36M_SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
#: community protocol (VideoPose3D, mmpose, the MaS paper §4.1)
SPLITS = {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11"), "all": H36M_SUBJECTS}
#: the 15 actions (metadata.xml ``<actionnames>`` 2..16)
H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
                "SittingDown", "Smoking", "TakingPhoto", "Waiting", "Walking", "WalkingDog", "WalkingTogether")
#: the six actions of the MaS paper (§4.1, following [57])
PAPER_ACTIONS = ("Directions", "Discussion", "Greeting", "Posing", "Waiting", "Walking")
#: file-name spellings that differ from the action names
ACTION_ALIASES = {"photo": "TakingPhoto", "takingphoto": "TakingPhoto", "walkdog": "WalkingDog",
                  "walkingdog": "WalkingDog", "walktogether": "WalkingTogether", "walkingtogether": "WalkingTogether"}
#: the standard 17 of the 32 joints (VideoPose3D / mmpose), in H36M-17 order
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
#: 32-joint indices of the left / right shoulder (thorax = their midpoint)
H36M32_LSHOULDER, H36M32_RSHOULDER = 17, 25

POSE_DIRS = ("MyPoseFeatures/D3_Positions", "Poses_D3_Positions", "D3_Positions")
VIDEO_DIRS = ("Videos",)
MASK_DIRS = ("MySegmentsMat/ground_truth_bs", "ground_truth_bs")
CALIBRATION_NAMES = ("metadata.xml", "camera-parameters.json")


# ============================================================================ joints
def h36m32_to_h36m18(joints32: np.ndarray) -> np.ndarray:
    """``[..., 32, C]`` H36M joints -> ``[..., 18, C]`` H36M-18 (standard 17 + thorax = shoulder midpoint)."""
    j = np.asarray(joints32, dtype=np.float64)
    if j.ndim < 2 or j.shape[-2] != 32:
        raise ValueError(f"h36m32_to_h36m18: expected [..., 32, C], got {list(j.shape)}")
    thorax = 0.5 * (j[..., H36M32_LSHOULDER, :] + j[..., H36M32_RSHOULDER, :])
    return np.concatenate([j[..., list(H36M32_TO_17), :], thorax[..., None, :]], axis=-2)


def action_of(stem: str) -> str:
    """Action name of a sequence file stem: ``"Photo 1"`` -> ``"TakingPhoto"``, ``"WalkDog"`` -> ``"WalkingDog"``,
    ``"Directions 1"`` -> ``"Directions"`` (unknown names are returned without the trailing number)."""
    base = re.sub(r"\s*\d+$", "", stem.strip()).strip()
    key = base.replace(" ", "").lower()
    if key in ACTION_ALIASES:
        return ACTION_ALIASES[key]
    for a in H36M_ACTIONS:
        if a.lower() == key:
            return a
    return base


def _normalize_actions(actions: Iterable[str] | str | None) -> set[str] | None:
    if actions is None:
        return None
    if isinstance(actions, str):
        if actions.strip().lower() in ("all", ""):
            return None
        if actions.strip().lower() == "paper":
            return set(PAPER_ACTIONS)
        actions = [a for a in actions.split(",") if a.strip()]
    out = set()
    for a in actions:
        name = action_of(str(a))
        if name not in H36M_ACTIONS:
            raise ValueError(f"unknown Human3.6M action {a!r}; known: {', '.join(H36M_ACTIONS)} (or 'paper', 'all')")
        out.add(name)
    return out


# ============================================================================ distortion
def h36m_distort_normalized(x: np.ndarray, y: np.ndarray, k: Sequence[float], p: Sequence[float]
                            ) -> tuple[np.ndarray, np.ndarray]:
    """H36M lens model on normalised coordinates (``ProjectPointRadial.m``): ``k = (k1, k2, k3)``,
    ``p = (p1, p2)`` as in metadata.xml ``w0``. Any shapes (broadcast); returns ``(x_d, y_d)``."""
    k1, k2, k3 = (float(v) for v in k)
    p1, p2 = (float(v) for v in p)
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    tan = p1 * y + p2 * x
    return x * (radial + tan) + p2 * r2, y * (radial + tan) + p1 * r2


def h36m_undistort_normalized(xd: np.ndarray, yd: np.ndarray, k: Sequence[float], p: Sequence[float],
                              iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`h36m_distort_normalized` by Newton-free fixed-point iteration (converges for
    H36M's mild lenses to < 1e-10 in the image)."""
    x, y = np.array(xd, dtype=np.float64), np.array(yd, dtype=np.float64)
    for _ in range(iterations):
        fx, fy = h36m_distort_normalized(x, y, k, p)
        x, y = x - (fx - xd), y - (fy - yd)
    return x, y


def h36m_opencv_dist(k: Sequence[float], p: Sequence[float], K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV ``(k1, k2, q1, q2, k3)`` closest to the H36M model over an image of ``size = (W, H)``.

    The radial terms are identical; the tangential terms differ in form (H36M: ``dx = p1 x y + p2 (r2 +
    x^2)``, ``dy = p2 x y + p1 (r2 + y^2)``; OpenCV: ``dx = 2 q1 x y + q2 (r2 + 2 x^2)``, ``dy = q1 (r2 + 2
    y^2) + 2 q2 x y``), so ``(q1, q2)`` is their least-squares fit on a grid over the image."""
    K = np.asarray(K, dtype=np.float64)
    W, H = size
    u, v = np.meshgrid(np.linspace(0, W - 1, 41), np.linspace(0, H - 1, 41))
    x, y = ((u - K[0, 2]) / K[0, 0]).ravel(), ((v - K[1, 2]) / K[1, 1]).ravel()
    r2 = x * x + y * y
    p1, p2 = float(p[0]), float(p[1])
    target = np.concatenate([p1 * x * y + p2 * (r2 + x * x), p2 * x * y + p1 * (r2 + y * y)])
    M = np.stack([np.concatenate([2 * x * y, r2 + 2 * y * y]), np.concatenate([r2 + 2 * x * x, 2 * x * y])], axis=1)
    q, *_ = np.linalg.lstsq(M, target, rcond=None)
    return np.array([k[0], k[1], q[0], q[1], k[2]], dtype=np.float64)


# ============================================================================ cameras
@dataclass
class H36MCamera:
    """One H36M camera of one subject, in the dataset's own parametrisation.

    ``K [3, 3]`` px; ``R [3, 3]`` world -> camera; ``T [3]`` camera centre (world, mm), so
    ``x_cam = R (X - T)``; ``k = (k1, k2, k3)``, ``p = (p1, p2)`` the H36M lens model; ``size`` (W, H)."""

    id: str
    subject: str
    K: np.ndarray
    R: np.ndarray
    T: np.ndarray
    k: tuple[float, float, float]
    p: tuple[float, float]
    size: tuple[int, int]

    @property
    def t(self) -> np.ndarray:
        return -self.R @ self.T

    def camera(self) -> Camera:
        """:class:`~maskpose.geometry.Camera` (``dist`` = the OpenCV fit :func:`h36m_opencv_dist`)."""
        return Camera(K=self.K, R=self.R, t=self.t, dist=h36m_opencv_dist(self.k, self.p, self.K, self.size),
                      size=self.size, name=self.id)

    def project(self, X: np.ndarray) -> np.ndarray:
        """World points ``[..., 3]`` mm -> distorted pixels ``[..., 2]`` with the exact H36M model."""
        Xc = (np.asarray(X, dtype=np.float64) - self.T) @ self.R.T
        xd, yd = h36m_distort_normalized(Xc[..., 0] / Xc[..., 2], Xc[..., 1] / Xc[..., 2], self.k, self.p)
        return np.stack([self.K[0, 0] * xd + self.K[0, 2], self.K[1, 1] * yd + self.K[1, 2]], axis=-1)

    def distort_fn(self):
        return lambda x, y: h36m_distort_normalized(x, y, self.k, self.p)

    def to_dict(self) -> dict:
        return {"id": self.id, "subject": self.subject, "fx": self.K[0, 0], "fy": self.K[1, 1], "cx": self.K[0, 2],
                "cy": self.K[1, 2], "k": list(self.k), "p": list(self.p), "R": self.R.tolist(),
                "T": self.T.tolist(), "size": list(self.size)}


def rotation_from_angles(a: Sequence[float]) -> np.ndarray:
    """World -> camera rotation of metadata.xml's Euler angles: ``R1(a0) @ R2(a1) @ R3(a2)``."""
    c0, s0 = np.cos(a[0]), np.sin(a[0])
    c1, s1 = np.cos(a[1]), np.sin(a[1])
    c2, s2 = np.cos(a[2]), np.sin(a[2])
    R1 = np.array([[1, 0, 0], [0, c0, -s0], [0, s0, c0]])
    R2 = np.array([[c1, 0, s1], [0, 1, 0], [-s1, 0, c1]])
    R3 = np.array([[c2, -s2, 0], [s2, c2, 0], [0, 0, 1]])
    return R1 @ R2 @ R3


def _subject_number(subject: str | int) -> int:
    m = re.fullmatch(r"[Ss]?(\d{1,2})", str(subject).strip())
    if not m or not 1 <= int(m.group(1)) <= 11:
        raise ValueError(f"unknown Human3.6M subject {subject!r} (expected S1 .. S11)")
    return int(m.group(1))


def _parse_matlab_vector(text: str | None, path: Path, tag: str) -> np.ndarray:
    if text is None:
        raise DatasetImportError(f"{path}: <{tag}> is empty")
    body = text.strip().strip("[]").replace(";", " ").replace(",", " ")
    try:
        return np.array([float(v) for v in body.split()], dtype=np.float64)
    except ValueError:
        raise DatasetImportError(f"{path}: <{tag}> is not a list of numbers") from None


def _read_metadata_xml(path: Path) -> dict[str, Any]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise DatasetImportError(f"{path}: cannot parse as XML ({e})") from None
    w0 = root.find("w0")
    if w0 is None:
        raise DatasetImportError(f"{path}: no <w0> element: not a Human3.6M metadata.xml")
    w = _parse_matlab_vector(w0.text, path, "w0")
    if w.size != 300:
        raise DatasetImportError(f"{path}: <w0> has {w.size} numbers, expected 300 (6 x 4 cameras x 11 subjects "
                                 f"+ 9 x 4 intrinsics)")
    ids = [e.text.strip() for e in root.findall("dbcameras/index2id/item") if e.text]
    if len(ids) != 4:
        ids = list(H36M_CAMERA_IDS)
    sizes: dict[str, list[tuple[int, int]]] = {}
    mapping = root.find("mapping")
    if mapping is not None:
        rows = [[td.text for td in tr] for tr in mapping]
        header = rows[0] if rows else []
        subjects = header[2:] if len(header) > 2 else []
        for row in rows[1:]:
            if row[:2] == [None, None] and len(row) == 2 + len(subjects):
                for s, cell in zip(subjects, row[2:]):
                    try:
                        hw = _parse_matlab_vector(cell, path, "mapping").reshape(-1, 2)
                        sizes[s] = [(int(wd), int(ht)) for ht, wd in hw]
                    except (DatasetImportError, ValueError):
                        pass
    return {"w0": w, "ids": ids, "sizes": sizes}


def _cameras_from_w0(meta: dict, subject: str) -> list[H36MCamera]:
    s = _subject_number(subject)
    w = meta["w0"]
    cams = []
    for c, cid in enumerate(meta["ids"]):
        ext = w[6 * (c * 11 + s - 1): 6 * (c * 11 + s - 1) + 6]
        intr = w[264 + 9 * c: 264 + 9 * c + 9]
        K = np.array([[intr[0], 0.0, intr[2]], [0.0, intr[1], intr[3]], [0.0, 0.0, 1.0]])
        sizes = meta["sizes"].get(f"S{s}")
        size = sizes[c] if sizes and len(sizes) == 4 else H36M_CAMERA_SIZES.get(cid, (1000, 1000))
        cams.append(H36MCamera(id=cid, subject=f"S{s}", K=K, R=rotation_from_angles(ext[:3]), T=ext[3:6].copy(),
                               k=(intr[4], intr[5], intr[6]), p=(intr[7], intr[8]), size=tuple(size)))
    return cams


def _cameras_from_json(path: Path, subject: str) -> list[H36MCamera]:
    """karfly/human36m-camera-parameters ``camera-parameters.json`` (R world->camera, t = -R T in mm;
    ``distortion = [k1, k2, p1, p2, k3]`` holding w0's H36M p1, p2)."""
    try:
        d = json.loads(path.read_text())
        intr, extr = d["intrinsics"], d["extrinsics"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetImportError(f"{path}: not a Human3.6M camera-parameters.json ({type(e).__name__}: {e})") from None
    s = f"S{_subject_number(subject)}"
    if s not in extr:
        raise DatasetImportError(f"{path}: no extrinsics for subject {s} (has {', '.join(sorted(extr))})")
    cams = []
    ids = [c for c in H36M_CAMERA_IDS if c in intr] + [c for c in intr if c not in H36M_CAMERA_IDS]
    for cid in ids:
        try:
            K = np.asarray(intr[cid]["calibration_matrix"], dtype=np.float64).reshape(3, 3)
            dist = np.asarray(intr[cid]["distortion"], dtype=np.float64).reshape(5)
            R = np.asarray(extr[s][cid]["R"], dtype=np.float64).reshape(3, 3)
            t = np.asarray(extr[s][cid]["t"], dtype=np.float64).reshape(3)
        except (KeyError, ValueError, TypeError) as e:
            raise DatasetImportError(f"{path}: camera {cid} of {s} is incomplete ({type(e).__name__}: {e})") from None
        cams.append(H36MCamera(id=cid, subject=s, K=K, R=R, T=-R.T @ t, k=(dist[0], dist[1], dist[4]),
                               p=(dist[2], dist[3]), size=H36M_CAMERA_SIZES.get(cid, (1000, 1000))))
    return cams


def _split_subject_suffix(path: str | os.PathLike) -> tuple[Path, str | None]:
    """``"metadata.xml#S9"`` / ``"metadata.xml:S9"`` -> (``metadata.xml``, ``"S9"``) when the file itself
    does not exist under the full name."""
    s = str(path)
    if not Path(s).exists():
        m = re.fullmatch(r"(.+?)[#:@](S\d{1,2})", s)
        if m:
            return Path(m.group(1)), m.group(2)
    return Path(s), None


def h36m_cameras(path: str | os.PathLike, subject: str | int) -> list[H36MCamera]:
    """The four cameras of ``subject`` (``"S9"`` or 9) from ``metadata.xml`` or ``camera-parameters.json``,
    in the dataset's camera order, with the exact H36M lens model."""
    path = Path(path)
    if path.is_dir():
        for name in CALIBRATION_NAMES:
            if (path / name).is_file():
                path = path / name
                break
    if not path.is_file():
        raise DatasetImportError(f"Human3.6M camera file {path} is missing (expected metadata.xml or "
                                 f"camera-parameters.json)")
    if path.suffix.lower() == ".json":
        return _cameras_from_json(path, str(subject))
    return _cameras_from_w0(_read_metadata_xml(path), str(subject))


def load_h36m_calibration(path: str | os.PathLike, subject: str | int | None = None) -> list[Camera]:
    """Cameras of one Human3.6M subject as :class:`~maskpose.geometry.Camera` objects (``name`` = camera id,
    ``size`` = (W, H), ``t`` in mm, ``dist`` = OpenCV fit of the H36M lens model, see module docstring).

    ``path``: ``metadata.xml`` (official; ``<w0>``) or karfly's ``camera-parameters.json``. The subject is
    ``subject`` or a suffix of the path (``metadata.xml#S9``; also ``:S9``); it is required because the
    file describes all eleven subjects (the rig was re-calibrated per subject).
    """
    p, suffix = _split_subject_suffix(path)
    subject = subject if subject is not None else suffix
    if subject is None:
        raise DatasetImportError(f"{p}: a Human3.6M camera file holds the cameras of all 11 subjects; say which "
                                 f"one, e.g. '{p}#S9' (or subject='S9')")
    return [c.camera() for c in h36m_cameras(p, subject)]


def find_h36m_calibration(src: Path, calibration: str | os.PathLike | None = None) -> Path:
    """The camera file to use: ``calibration`` if given, else ``metadata.xml`` / ``camera-parameters.json``
    in ``src`` or its parent."""
    if calibration is not None:
        p = Path(calibration)
        if not p.exists():
            raise DatasetImportError(f"Human3.6M camera file {p} is missing")
        return p
    for d in (src, src.parent):
        for name in CALIBRATION_NAMES:
            if (d / name).is_file():
                return d / name
    raise DatasetImportError(f"no Human3.6M camera file found: put metadata.xml (from the dataset's code "
                             f"bundle) or camera-parameters.json in {src}, or pass calibration=PATH")


# ============================================================================ pose / masks
def read_pose_cdf(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Joints ``[N, 32, channels]`` float64 from a Human3.6M pose ``.cdf`` (variable ``Pose``, ``[1, N, 32 C]``)."""
    cdflib = require_cdflib()
    path = Path(path)
    if not path.is_file():
        raise DatasetImportError(f"pose file {path} is missing")
    try:
        cdf = cdflib.CDF(str(path))
        pose = np.asarray(cdf.varget("Pose"), dtype=np.float64)
    except Exception as e:
        raise DatasetImportError(f"{path}: cannot read the 'Pose' variable of this CDF file - truncated or "
                                 f"damaged? ({type(e).__name__}: {e})") from None
    if pose.size % (32 * channels) != 0:
        raise DatasetImportError(f"{path}: Pose has shape {list(pose.shape)}, not a multiple of 32 joints x "
                                 f"{channels}")
    out = pose.reshape(-1, 32, channels)
    if not np.isfinite(out).all():
        raise DatasetImportError(f"{path}: Pose contains NaN or inf")
    return out


class BsMasks:
    """The background-subtraction masks of one video (``ground_truth_bs/<seq>.<camera>.mat``, MATLAB v7.3).

    ``len()`` = number of frames; ``masks[i]`` = bool ``[H, W]`` (foreground = non-zero). The file holds a
    cell ``Masks`` whose HDF5 dataset is ``[N, 1]`` object references; each referenced array is the
    transposed (column-major) ``H x W`` logical mask."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._f = open_mat73(self.path)
        try:
            refs = self._f["Masks"]
            self._refs = np.asarray(refs[()]).reshape(-1)
        except Exception as e:
            self._f.close()
            raise DatasetImportError(f"{self.path}: no readable cell 'Masks' ({type(e).__name__}: {e})") from None

    def __len__(self) -> int:
        return int(self._refs.size)

    def __getitem__(self, i: int) -> np.ndarray:
        """Mask ``i`` as bool ``[H, W]``; an empty MATLAB array (``MATLAB_empty``) gives a ``[0, 0]`` array."""
        try:
            ds = self._f[self._refs[i]]
            if int(np.asarray(ds.attrs.get("MATLAB_empty", 0)).reshape(-1)[0]):
                return np.zeros((0, 0), bool)
            m = np.asarray(ds[()])
        except Exception as e:
            raise DatasetImportError(f"{self.path}: cannot read mask {i} ({type(e).__name__}: {e})") from None
        if m.ndim != 2:
            raise DatasetImportError(f"{self.path}: mask {i} has shape {list(m.shape)}, expected a 2D logical array")
        return m.T > 0

    def close(self) -> None:
        try:
            self._f.close()
        except Exception:  # pragma: no cover
            pass


# ============================================================================ sequences
@dataclass
class H36MSequence:
    subject: str
    stem: str          # file base name, e.g. "Directions 1"
    action: str        # canonical action name
    pose: Path
    videos: dict[str, Path]   # camera id -> video (existing files only)
    masks: dict[str, Path]    # camera id -> ground_truth_bs .mat (existing files only)


def _first_dir(base: Path, candidates: Sequence[str]) -> Path | None:
    for c in candidates:
        if (base / c).is_dir():
            return base / c
    return None


def find_h36m_sequences(src: str | os.PathLike, subjects: Sequence[str], actions: set[str] | None,
                        camera_ids: Sequence[str], missing_ok: bool = False) -> list[H36MSequence]:
    """The sequences of ``subjects`` (and ``actions``) under ``src``, sorted; videos and masks are looked up
    per camera as ``<stem>.<camera>.mp4`` / ``.mat``. A missing subject folder is an error unless
    ``missing_ok``."""
    src = Path(src)
    out = []
    for s in subjects:
        sdir = src / s
        if not sdir.is_dir():
            if missing_ok:
                continue
            raise DatasetImportError(f"subject folder {sdir} is missing (subjects: {', '.join(subjects)})")
        pdir = _first_dir(sdir, POSE_DIRS)
        if pdir is None:
            raise DatasetImportError(f"{sdir}: no pose folder ({' or '.join(POSE_DIRS)}): extract "
                                     f"Poses_D3_Positions_{s}.tgz there")
        vdir = _first_dir(sdir, VIDEO_DIRS)
        mdir = _first_dir(sdir, MASK_DIRS)
        for pose in sorted(pdir.glob("*.cdf")):
            stem = pose.stem
            if stem.startswith("_ALL"):
                continue
            action = action_of(stem)
            if actions is not None and action not in actions:
                continue
            videos = {c: vdir / f"{stem}.{c}.mp4" for c in camera_ids} if vdir else {}
            masks = {c: mdir / f"{stem}.{c}.mat" for c in camera_ids} if mdir else {}
            out.append(H36MSequence(subject=s, stem=stem, action=action, pose=pose,
                                    videos={c: p for c, p in videos.items() if p.is_file()},
                                    masks={c: p for c, p in masks.items() if p.is_file()}))
    return out


def _camera_ids(cameras: Iterable[str | int] | str | None) -> list[str]:
    if cameras is None:
        return list(H36M_CAMERA_IDS)
    out = []
    for c in normalize_names(cameras):
        if c in H36M_CAMERA_IDS:
            out.append(c)
        elif c.isdigit() and int(c) < 4:
            out.append(H36M_CAMERA_IDS[int(c)])
        else:
            raise ValueError(f"unknown Human3.6M camera {c!r}; use ids {', '.join(H36M_CAMERA_IDS)} or indices 0-3")
    if len(set(out)) != len(out):
        raise ValueError(f"cameras listed twice: {out}")
    return out


# ============================================================================ importer
def import_h36m(src: str | os.PathLike, out: str | os.PathLike, *, split: str = "train",
                subjects: Iterable[str | int] | str | None = None, actions: Iterable[str] | str | None = None,
                cameras: Iterable[str | int] | str | None = None, stride: int = 5, max_frames: int | None = None,
                size: int = 128, calibration: str | os.PathLike | None = None, min_views: int = 1,
                mask_min_fraction: float = 0.05, image_ext: str = ".png", strict: bool = True,
                overwrite: bool = False, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Convert Human3.6M (official release layout) into a multi-view maskpose dataset folder.

    Each sample is one instant of one sequence seen by the selected cameras (synchronised videos, same
    frame index). Per view: the frame is decoded from ``Videos/<seq>.<cam>.mp4``, the mask is the
    dataset's background-subtraction mask (``MySegmentsMat/ground_truth_bs``), both are undistorted
    with the exact H36M lens model, specks below ``mask_min_fraction`` of the largest component are
    removed, and the view is cropped square around the mask's bounding box grown 15 %. Ground truth:
    ``D3_Positions`` (world, mm) reduced to H36M-18 -> ``gt/joints3d.npy``.

    Frame counts: videos, masks and poses of a sequence may differ in length (a known H36M quirk); the
    sequence is cut to the shortest (counted as ``frames_beyond_shortest``). A view whose video ends
    early or whose mask file is missing is marked invalid at those instants (``video_ended``,
    ``missing_video``, ``missing_mask_file``), an empty mask too (``empty_mask``); an instant with fewer
    than ``min_views`` valid views is skipped (``too_few_views``).

    Args:
        src: folder holding ``S1``, ``S5``, ... (and usually ``metadata.xml``).
        out: output dataset folder.
        split: ``"train"`` (S1, S5, S6, S7, S8), ``"test"`` (S9, S11) or ``"all"``; ``subjects`` overrides it.
        subjects: e.g. ``["S9", "S11"]``, ``"9,11"``.
        actions: action names (``"Directions,Walking"``), ``"paper"`` (the paper's six: Directions,
            Discussion, Greeting, Posing, Waiting, Walking) or None / ``"all"`` (all 15).
        cameras: camera ids or indices 0..3 (default all four, dataset order); the views' order.
        stride: keep every ``stride``-th frame (H36M is 50 fps; 5 = 10 fps as mmpose).
        max_frames: at most this many frames per sequence, spread evenly over it (None: no cap).
        size: crop size S.
        calibration: ``metadata.xml`` / ``camera-parameters.json`` (default: found in ``src`` or its parent).
        min_views: instants with fewer valid views are skipped.
        mask_min_fraction: see :func:`~maskpose.data.importers.common.clean_mask`.
        image_ext: ``.png`` or ``.jpg`` crops.
        strict: raise on an unreadable source file (default); False: skip it, count it as ``bad_file`` and
            list it in the summary.
        overwrite: replace an existing dataset in ``out``.
        progress: ``progress(done, total)`` after each planned instant.
    Returns:
        summary dict: ``path, num_samples, num_views, view_names, skipped {reason: count}, bad_files,
        sequences, subjects, actions, seconds``.
    """
    from ..folder import DatasetWriter

    src = Path(src)
    if not src.is_dir():
        raise DatasetImportError(f"Human3.6M source folder {src} does not exist")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    subj = normalize_names(subjects, prefix="S") if subjects is not None else list(SPLITS[split])
    for s in subj:
        _subject_number(s)
    acts = _normalize_actions(actions)
    cam_ids = _camera_ids(cameras)
    if min_views < 1 or min_views > len(cam_ids):
        raise ValueError(f"min_views must be in 1..{len(cam_ids)}, got {min_views}")
    calib_path = find_h36m_calibration(src, calibration)
    stats = ImportStats()
    if subjects is None:  # a split: use the subjects that were downloaded
        present = [s for s in subj if (src / s).is_dir()]
        stats.skip("missing_subject", len(subj) - len(present))
        if not present:
            raise DatasetImportError(f"{src}: none of the {split} subjects ({', '.join(subj)}) is there")
        subj = present
    seqs = find_h36m_sequences(src, subj, acts, cam_ids)
    if not seqs:
        raise DatasetImportError(f"{src}: no pose files (.cdf) for subjects {', '.join(subj)}"
                                 + (f" and actions {', '.join(sorted(acts))}" if acts else ""))
    cams_by_subject = {}
    for s in subj:
        by_id = {c.id: c for c in h36m_cameras(calib_path, s)}
        missing = [c for c in cam_ids if c not in by_id]
        if missing:
            raise DatasetImportError(f"{calib_path}: no camera(s) {', '.join(missing)} for {s}")
        cams_by_subject[s] = [by_id[c] for c in cam_ids]

    # plan: read the pose files first (small) so that a bad file fails before any decoding
    plans = []
    for seq in seqs:
        try:
            joints = h36m32_to_h36m18(read_pose_cdf(seq.pose))
        except DatasetImportError as e:
            if strict:
                raise
            stats.bad(seq.pose, e)
            continue
        plans.append((seq, joints))
    V, S = len(cam_ids), int(size)
    meta = {"split": split if subjects is None else "custom", "subjects": subj,
            "actions": sorted(acts) if acts else "all", "stride": stride, "max_frames": max_frames,
            "view_names": cam_ids, "fps": 50.0 / stride, "mask_source": "ground_truth_bs (background subtraction)",
            "distortion": "h36m lens model removed (exact); dist = OpenCV least-squares fit",
            "crop_margin": CROP_MARGIN, "importer": "maskpose.data.importers.h36m",
            "h36m_cameras": {s: [c.to_dict() for c in cams_by_subject[s]] for s in subj}}
    total = sum(len(select_frames(len(j), stride, max_frames)) for _, j in plans)
    done = 0
    maps_cache: dict[tuple, tuple] = {}
    n_written = 0
    with DatasetWriter(out, size=S, num_views=V, source="h36m", overwrite=overwrite, image_ext=image_ext,
                       created_by=None, meta=meta) as writer:
        for seq, joints in plans:
            hcams = cams_by_subject[seq.subject]
            dists = np.stack([h36m_opencv_dist(c.k, c.p, c.K, c.size) for c in hcams])
            readers: list[VideoFrames | None] = []
            masks: list[BsMasks | None] = []
            try:
                for c in cam_ids:
                    r = m = None
                    if c not in seq.videos:
                        stats.skip("missing_video")
                    else:
                        try:
                            r = VideoFrames(seq.videos[c])
                        except DatasetImportError as e:
                            if strict:
                                raise
                            stats.bad(seq.videos[c], e)
                    if c not in seq.masks:
                        stats.skip("missing_mask_file")
                    else:
                        try:
                            m = BsMasks(seq.masks[c])
                        except DatasetImportError as e:
                            if strict:
                                raise
                            stats.bad(seq.masks[c], e)
                    readers.append(r)
                    masks.append(m)
                usable = [v for v in range(V) if readers[v] is not None and masks[v] is not None]
                n_frames = len(joints)
                for v in usable:
                    if readers[v].num_frames > 0:
                        n_frames = min(n_frames, readers[v].num_frames)
                    n_frames = min(n_frames, len(masks[v]))
                planned = select_frames(len(joints), stride, max_frames)
                frames = planned[planned < n_frames]
                if len(frames) < len(planned):
                    stats.skip("frames_beyond_shortest", len(planned) - len(frames))
                    done += len(planned) - len(frames)
                if not usable:
                    stats.skip("too_few_views", len(frames))
                    done += len(frames)
                for i in frames if usable else []:
                    imgs = np.zeros((V, S, S, 3), np.uint8)
                    cms = np.zeros((V, S, S), bool)
                    A = np.tile(np.eye(3), (V, 1, 1))
                    valid = np.zeros(V, bool)
                    for v in usable:
                        frame = readers[v].read(int(i))
                        if frame is None:
                            stats.skip("video_ended")
                            continue
                        H, W = frame.shape[:2]
                        mk = masks[v][int(i)]
                        if mk.size == 0:  # an empty MATLAB array: no mask at this frame
                            stats.skip("empty_mask")
                            continue
                        if mk.shape != (H, W):
                            err = DatasetImportError(f"{masks[v].path}: masks are {mk.shape[1]}x{mk.shape[0]} px "
                                                     f"but the video {readers[v].path} is {W}x{H}")
                            if strict:
                                raise err
                            stats.bad(masks[v].path, err)
                            masks[v].close()
                            usable = [u for u in usable if u != v]
                            continue
                        key = (hcams[v].id, tuple(hcams[v].K.ravel()), hcams[v].k, hcams[v].p, W, H)
                        if key not in maps_cache:
                            maps_cache[key] = undistort_maps(hcams[v].K, W, H, hcams[v].distort_fn())
                        maps = maps_cache[key]
                        mu = clean_mask(remap(mk.astype(np.uint8) * 255, maps) > 127, mask_min_fraction)
                        if not mu.any():
                            stats.skip("empty_mask")
                            continue
                        imgs[v], cms[v], A[v] = crop_view(remap(frame, maps), mu, S)
                        valid[v] = cms[v].any()
                        if not valid[v]:
                            stats.skip("empty_mask")
                    done += 1
                    if valid.sum() < min_views:
                        stats.skip("too_few_views")
                    else:
                        sid = f"{seq.subject}_{seq.stem.replace(' ', '-')}_{int(i):06d}"
                        writer.add(sid, images=imgs, masks=cms, K=np.stack([c.K for c in hcams]),
                                   R=np.stack([c.R for c in hcams]), t=np.stack([c.t for c in hcams]), A=A,
                                   dist=dists,
                                   valid=valid, joints3d=joints[int(i)], subject=seq.subject,
                                   activity=seq.action, sequence=seq.stem, frame=int(i))
                        n_written += 1
                    if progress is not None:
                        progress(done, total)
            finally:
                for r in readers:
                    if r is not None:
                        r.close()
                for m in masks:
                    if m is not None:
                        m.close()
            if progress is not None:
                progress(done, total)
        if n_written == 0:
            raise DatasetImportError(f"{src}: no sample could be written (skipped: {dict(stats.skipped)})")
    return stats.summary(Path(out), n_written, V, view_names=cam_ids, sequences=len(plans), subjects=subj,
                         actions=sorted(acts) if acts else "all")


__all__ = [
    "H36M_CAMERA_IDS", "H36M_SUBJECTS", "H36M_ACTIONS", "PAPER_ACTIONS", "SPLITS", "H36M32_TO_17",
    "h36m32_to_h36m18", "action_of", "h36m_distort_normalized", "h36m_undistort_normalized", "h36m_opencv_dist",
    "H36MCamera", "rotation_from_angles", "h36m_cameras", "load_h36m_calibration", "find_h36m_calibration",
    "read_pose_cdf", "BsMasks", "H36MSequence", "find_h36m_sequences", "import_h36m",
]
