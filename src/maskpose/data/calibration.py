"""Import and export multi-camera calibrations.

Every reader returns ``list[Camera]`` (:class:`maskpose.geometry.Camera`) in maskpose's conventions:
world in **millimetres**, ``x_cam = R @ X + t`` (world -> camera), OpenCV camera axes (x right, y down,
z forward), ``K`` in pixels with the centre of the top-left pixel at (0, 0), OpenCV distortion
``(k1, k2, p1, p2, k3)``. Cameras come back in file order with ``Camera.name`` set (unique) and
``Camera.size = (width, height)`` whenever the file states it.

Formats (``load_calibration(path, format)``; ``format=None`` guesses it from the path):

``"toml"`` -- Pose2Sim ``Calib*.toml`` and anipose / aniposelib ``calibration.toml``
    One table per camera (``[cam_01]``, ``[cam_0]``, any key) with ``name``, ``size = [W, H]``,
    ``matrix`` (3x3), ``distortions`` (OpenCV, 4 or 5 values), ``rotation`` (Rodrigues vector,
    world -> camera), ``translation`` and ``fisheye``; tables ``metadata``, ``capture_volume``,
    ``charuco``, ``checkerboard`` are skipped. Pose2Sim writes the translation in **metres**;
    anipose writes it in the units of the calibration board (often mm). ``units="auto"`` assumes
    metres unless the camera centres are a median of more than 100 units from the origin, in which
    case the file is taken to be in mm already (a warning says so); pass ``units="m"|"cm"|"mm"`` to
    decide. ``fisheye = true`` cameras are refused (the equidistant model is not supported).

``"qualisys"`` -- Qualisys QTM ``.qca.txt`` (XML) as converted by Pose2Sim's ``calib_qca_fun``
    Per ``<camera serial=...>``: ``<fov_video left top right bottom>`` (the video window on the
    sensor, inclusive pixel bounds), ``<transform x y z r11..r33>`` and ``<intrinsic>`` with
    ``focalLengthU/V`` and ``centerPointU/V`` in 1/64 pixel (sensor sub-pixels). The conversion is
    Pose2Sim's: ``fx = focalLengthU / 64``, ``cx = centerPointU / 64 - left`` (likewise v with
    ``top``), ``size = (right - left + 1, bottom - top + 1)``; the transform gives the camera centre
    ``(x, y, z)`` in mm and ``M = [[r11, r12, r13], ...]`` (rows as written) with
    ``R = diag(1, -1, -1) @ M`` (Qualisys camera axes are x right, y up, z backwards; Pose2Sim's
    ``rotate_cam(ang_x=pi)``) and ``t = -R @ (x, y, z)``. Only video cameras are kept (``model``
    containing "video", "hybrid" or "none"); marker-only cameras are skipped.
    Deliberate differences from Pose2Sim (see ``read_qualisys``): the distortion coefficients are
    used as written (Pose2Sim divides them by 64, which makes them ~0; a checkerboard calibration of
    the Pose2Sim demo cameras gives k1 ~ -0.05, k2 ~ 0.1-0.15, i.e. the raw values; pass
    ``distortion_scale=1/64`` for Pose2Sim's numbers); ``radialDistortion3`` is kept as k3 (Pose2Sim
    drops it; it is 0 in the files seen); with ``binning_factor`` b > 1 the principal point is
    ``(c / 64 - left + 0.5) / b - 0.5`` (pixel centres; Pose2Sim: ``c / 64 / b - left``) and the
    distortion is not divided by b; a camera without a ``model`` attribute is kept.
    ``viewrotation`` and ``video_resolution`` are not applied (as Pose2Sim; a warning names the
    cameras where they matter): the cameras describe the ``fov_video`` window at sensor
    resolution. Use :func:`rescale_camera` when the videos were recorded at a lower resolution
    (e.g. 540p) and :func:`rotate_camera_image` when they were rotated.

``"easymocap"`` -- OpenCV FileStorage YAML ``intri.yml`` + ``extri.yml`` (EasyMocap, ZJU-MoCap)
    ``path`` is the folder or either file. ``names`` lists the cameras; intri has ``K_<name>``
    (3x3), ``dist_<name>`` (1x5; ``D_<name>`` accepted) and optional ``H_<name>``, ``W_<name>``;
    extri has ``R_<name>`` (3x1 Rodrigues) and/or ``Rot_<name>`` (3x3) and ``T_<name>`` (3x1),
    world -> camera. EasyMocap works in **metres** (its chessboard ``--grid`` default is 0.1);
    ``units`` behaves as for toml.

``"h36m"`` -- Human3.6M cameras, delegated to
    ``maskpose.data.importers.h36m.load_h36m_calibration(path)``.

Writers (:func:`write_toml`, :func:`write_qualisys`, :func:`write_easymocap`) produce files the
readers above (and Pose2Sim / anipose / EasyMocap) read back, so calibrations can be converted.

:func:`match_cameras` puts the cameras in the order of the views (video files) of a dataset.
Every problem with a file raises :class:`CalibrationError` (a ``ValueError``) naming the file.
"""
from __future__ import annotations

import math
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..geometry import Camera

__all__ = [
    "CalibrationError", "FORMATS", "load_calibration", "detect_format", "read_toml", "read_qualisys",
    "read_easymocap", "write_toml", "write_qualisys", "write_easymocap", "convert_calibration", "match_cameras",
    "rescale_camera", "rotate_camera_image",
]

FORMATS = ("toml", "qualisys", "easymocap", "h36m")
UNITS = {"m": 1000.0, "cm": 10.0, "mm": 1.0}
TOML_SKIP_TABLES = ("metadata", "capture_volume", "charuco", "checkerboard")
QUALISYS_VIDEO_MODELS = ("video", "hybrid", "none")
QUALISYS_SUBPIXELS = 64.0
# Qualisys camera axes (x right, y up, z backwards) -> OpenCV (x right, y down, z forward).
QUALISYS_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
# pixel pitch (mm) Pose2Sim assumes for the informational `focallength` (CMOS CMV2000)
QUALISYS_PIXEL_SIZE_MM = 5.54e-3
MEDIA_SUFFIXES = {
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".mts", ".ts",
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".json", ".npz", ".npy",
}
H36M_SUBJECT_SUFFIX = re.compile(r"(.+?)[#:@](S\d{1,2})")  # as maskpose.data.importers.h36m
AUTO_MM_THRESHOLD = 100.0  # median camera distance (file units) above which "metres" is rejected
ROTATION_TOL = 1e-3


class CalibrationError(ValueError):
    """A calibration file is missing, unreadable, malformed or inconsistent."""


# ---------------------------------------------------------------------------- entry points
def load_calibration(path: str | Path, format: str | None = None, *, units: str = "auto",
                     binning_factor: int = 1, distortion_scale: float = 1.0) -> list[Camera]:
    """Read a calibration file into maskpose cameras (world mm, world -> camera, OpenCV).

    Args:
        path: the file (``.toml``, ``.qca.txt``, ``intri.yml`` / ``extri.yml``) or a folder holding
            exactly one recognisable calibration (EasyMocap's pair counts as one).
        format: ``"toml"``, ``"qualisys"``, ``"easymocap"``, ``"h36m"`` or None (guess from ``path``,
            see :func:`detect_format`).
        units: toml / easymocap translation units ``"auto"``, ``"m"``, ``"cm"`` or ``"mm"`` (see the
            module docstring); ignored by other formats.
        binning_factor, distortion_scale: Qualisys only (see :func:`read_qualisys`).
    Returns:
        ``list[Camera]`` in file order, unique names.
    """
    path = Path(path)
    fmt = detect_format(path) if format is None else str(format).lower()
    if fmt in ("toml", "qualisys") and path.is_dir():
        found = [p for p in sorted(path.iterdir()) if p.is_file() and _file_format(p) == fmt]
        if len(found) > 1 and sum("calib" in p.name.lower() for p in found) == 1:
            found = [p for p in found if "calib" in p.name.lower()]
        if len(found) != 1:
            raise CalibrationError(f"{path}: expected one {fmt} calibration file in this folder, found "
                                   f"{[p.name for p in found]}")
        path = found[0]
    if fmt == "toml":
        return read_toml(path, units=units)
    if fmt == "qualisys":
        return read_qualisys(path, binning_factor=binning_factor, distortion_scale=distortion_scale)
    if fmt == "easymocap":
        return read_easymocap(path, units=units)
    if fmt == "h36m":
        try:
            from .importers.h36m import load_h36m_calibration
        except ImportError as e:
            raise CalibrationError(f"{path}: Human3.6M calibration needs maskpose.data.importers.h36m ({e})") from None
        try:
            cams = list(load_h36m_calibration(path))
        except CalibrationError:
            raise
        except ValueError as e:  # the importer's DatasetImportError names the file
            raise CalibrationError(str(e)) from None
        _check_unique_names(cams, path)
        return cams
    raise CalibrationError(f"{path}: unknown calibration format {format!r}; expected one of {', '.join(FORMATS)}")


def detect_format(path: str | Path) -> str:
    """Guess the calibration format of ``path`` (a file or a folder).

    ``*.toml`` -> toml; ``*.qca.txt`` / ``*.qca`` / an XML file whose root is ``<calibration>`` ->
    qualisys; ``intri.yml`` / ``extri.yml`` (or a folder with both) -> easymocap; ``metadata.xml`` or
    ``camera-parameters.json``, optionally with a subject suffix (``metadata.xml#S9``) -> h36m. A
    folder must hold exactly one candidate. Raises :class:`CalibrationError` otherwise.
    """
    path = Path(path)
    if not path.exists():
        m = H36M_SUBJECT_SUFFIX.fullmatch(str(path))  # "metadata.xml#S9": a Human3.6M subject's cameras
        if m and Path(m.group(1)).is_file() and _file_format(Path(m.group(1))) == "h36m":
            return "h36m"
        raise CalibrationError(f"{path}: calibration file or folder does not exist")
    if path.is_dir():
        if _easymocap_pair(path) is not None:
            return "easymocap"
        found = [p for p in sorted(path.iterdir()) if p.is_file() and _file_format(p) in ("toml", "qualisys")]
        if len(found) > 1 and sum("calib" in p.name.lower() for p in found) == 1:  # e.g. Config.toml + Calib.toml
            found = [p for p in found if "calib" in p.name.lower()]
        if len(found) == 1:
            return _file_format(found[0])  # type: ignore[return-value]
        if not found:
            raise CalibrationError(f"{path}: no calibration file found in this folder (looked for *.toml, *.qca.txt, "
                                   f"intri.yml + extri.yml)")
        raise CalibrationError(f"{path}: several calibration files in this folder ({', '.join(p.name for p in found)}); "
                               f"pass the one to use")
    fmt = _file_format(path)
    if fmt is None:
        raise CalibrationError(f"{path}: cannot tell the calibration format from the file name; pass format= one of "
                               f"{', '.join(FORMATS)}")
    return fmt


def _file_format(p: Path) -> str | None:
    name = p.name.lower()
    if name.endswith(".toml"):
        return "toml"
    if name.endswith(".qca.txt") or name.endswith(".qca"):
        return "qualisys"
    if name in ("intri.yml", "extri.yml", "intri.yaml", "extri.yaml"):
        return "easymocap"
    if name in ("metadata.xml", "camera-parameters.json"):
        return "h36m"
    if name.endswith(".xml") or name.endswith(".txt"):
        try:
            with open(p, "rb") as f:
                head = f.read(512).decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
        except OSError:
            return None
        if head.startswith("<?xml"):
            head = head[head.find("?>") + 2:].lstrip() if "?>" in head else ""
        if head.startswith("<calibration"):
            return "qualisys"
    return None


# ---------------------------------------------------------------------------- shared helpers
def _check_unique_names(cams: Sequence[Camera], path: Path) -> None:
    names = [c.name for c in cams]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CalibrationError(f"{path}: duplicate camera names {dup}")
    if not cams:
        raise CalibrationError(f"{path}: no cameras found")


def _as_matrix(value: Any, shape: tuple[int, ...], what: str, path: Path) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{path}: {what} must be numbers of shape {list(shape)}, got {value!r}") from None
    if a.size != int(np.prod(shape)):
        raise CalibrationError(f"{path}: {what} must have shape {list(shape)}, got shape {list(a.shape)}")
    a = a.reshape(shape)
    if not np.all(np.isfinite(a)):
        raise CalibrationError(f"{path}: {what} contains NaN or inf: {a.tolist()}")
    return a


def _check_K(K: np.ndarray, what: str, path: Path) -> np.ndarray:
    if not (K[0, 0] > 0 and K[1, 1] > 0) or abs(K[1, 0]) > 1e-9 or np.abs(K[2] - [0, 0, 1]).max() > 1e-9:
        raise CalibrationError(f"{path}: {what} is not an intrinsic matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
                               f"with fx, fy > 0: {K.tolist()}")
    return K


def _rotation(M: np.ndarray, what: str, path: Path) -> np.ndarray:
    """Validate a 3x3 rotation (orthonormal within printed precision, det +1) and return the nearest
    exact rotation (SVD)."""
    err = np.abs(M @ M.T - np.eye(3)).max()
    det = float(np.linalg.det(M))
    if err > ROTATION_TOL or det <= 0:
        raise CalibrationError(f"{path}: {what} is not a rotation matrix (max |R R^T - I| = {err:.3g}, "
                               f"det = {det:.4f}): {M.tolist()}")
    U, _, Vt = np.linalg.svd(M)
    return U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt


def _rodrigues(rvec: np.ndarray) -> np.ndarray:
    """Rodrigues vector ``[3]`` -> rotation ``[3, 3]`` (same as ``cv2.Rodrigues``)."""
    theta = float(np.linalg.norm(rvec))
    if theta < 1e-12:
        return np.eye(3)
    k = rvec / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * Kx + (1 - math.cos(theta)) * (Kx @ Kx)


def _rodrigues_inv(R: np.ndarray) -> np.ndarray:
    """Rotation ``[3, 3]`` -> Rodrigues vector ``[3]`` (angle in [0, pi])."""
    import cv2

    return cv2.Rodrigues(np.asarray(R, dtype=np.float64))[0].reshape(3)


def _size(value: Any, what: str, path: Path) -> tuple[int, int] | None:
    if value is None:
        return None
    s = _as_matrix(value, (2,), what, path)
    if np.any(np.round(s) <= 0):
        raise CalibrationError(f"{path}: {what} must be two positive numbers [width, height], got {s.tolist()}")
    if np.any(np.abs(s - np.round(s)) > 1e-6):  # e.g. Pose2Sim's EasyMocap converter writes 2 x principal point
        warnings.warn(f"{path}: {what} {s.tolist()} is not in whole pixels; rounded", stacklevel=3)
    return int(round(s[0])), int(round(s[1]))


def _make_camera(path: Path, **kw) -> Camera:
    try:
        return Camera(**kw)
    except ValueError as e:
        raise CalibrationError(f"{path}: {e}") from None


def _unit_factor(cams_native: list[dict], units: str, convention: str, path: Path) -> float:
    """Factor (file units -> mm) for translation units ``units`` ("auto" uses the format's
    ``convention`` unless the camera centres contradict it)."""
    u = str(units).lower()
    if u in UNITS:
        return UNITS[u]
    if u != "auto":
        raise CalibrationError(f"{path}: units must be 'auto', 'm', 'cm' or 'mm', got {units!r}")
    centres = [-(c["R"].T @ c["t"]) for c in cams_native]
    d = float(np.median([np.linalg.norm(c) for c in centres])) if centres else 0.0
    if convention == "m" and d > AUTO_MM_THRESHOLD:
        warnings.warn(f"{path}: the cameras are a median {d:.0f} units from the world origin, too far for metres; "
                      f"reading the translations as millimetres (pass units='m' or 'cm' to override)", stacklevel=3)
        return 1.0
    return UNITS[convention]


# ---------------------------------------------------------------------------- TOML (Pose2Sim / anipose)
def read_toml(path: str | Path, *, units: str = "auto") -> list[Camera]:
    """Read a Pose2Sim / anipose calibration ``.toml`` (see the module docstring)."""
    path = Path(path)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise CalibrationError(f"{path}: reading .toml needs Python 3.11+ or the 'tomli' package") from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read calibration file ({e.strerror or e})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: malformed TOML ({e})") from None
    native = []
    for key, table in data.items():
        if not isinstance(table, dict) or key in TOML_SKIP_TABLES:
            continue
        where = f"[{key}]"
        missing = [k for k in ("matrix", "distortions", "rotation", "translation") if k not in table]
        if len(missing) == 4:  # not a camera (e.g. a Pose2Sim Config.toml section)
            continue
        if missing:
            raise CalibrationError(f"{path}: camera table {where} lacks {', '.join(missing)}")
        if table.get("fisheye", False) is True:
            raise CalibrationError(f"{path}: camera {where} uses the fisheye (equidistant) lens model, which maskpose "
                                   f"does not support; recalibrate with the standard OpenCV model")
        K = _check_K(_as_matrix(table["matrix"], (3, 3), f"{where} matrix", path), f"{where} matrix", path)
        dist = np.asarray(table["distortions"], dtype=object).reshape(-1)
        dist = _as_matrix(list(dist), (dist.size,), f"{where} distortions", path)
        if dist.size not in (4, 5, 8, 12, 14):
            raise CalibrationError(f"{path}: {where} distortions must have 4 or 5 OpenCV coefficients, got {dist.size}")
        rot = np.asarray(table["rotation"], dtype=object)
        if rot.size == 9:
            R = _rotation(_as_matrix(table["rotation"], (3, 3), f"{where} rotation", path), f"{where} rotation", path)
        else:
            R = _rodrigues(_as_matrix(table["rotation"], (3,), f"{where} rotation (Rodrigues vector)", path))
        t = _as_matrix(table["translation"], (3,), f"{where} translation", path)
        name = table.get("name", key)
        native.append(dict(name=str(name), K=K, dist=dist, R=R, t=t,
                           size=_size(table.get("size"), f"{where} size", path)))
    if not native:
        raise CalibrationError(f"{path}: no camera tables found (expected tables such as [cam_01] with matrix, "
                               f"distortions, rotation, translation)")
    f = _unit_factor(native, units, "m", path)
    cams = [_make_camera(path, K=c["K"], R=c["R"], t=c["t"] * f, dist=c["dist"], size=c["size"], name=c["name"])
            for c in native]
    _check_unique_names(cams, path)
    return cams


def write_toml(cameras: Sequence[Camera], path: str | Path, *, units: str = "m") -> Path:
    """Write ``cameras`` as a Pose2Sim calibration ``.toml`` (translations in metres by default,
    as Pose2Sim expects; ``units="mm"`` for an anipose file in mm). Returns the path."""
    path = Path(path)
    if units not in UNITS:
        raise CalibrationError(f"{path}: units must be 'm', 'cm' or 'mm', got {units!r}")
    _check_unique_names(list(cameras), path)
    f = UNITS[units]
    lines, keys = [], {c.name for c in cameras}
    for i, cam in enumerate(cameras):
        if cam.name and cam.name not in TOML_SKIP_TABLES:
            key = cam.name if re.fullmatch(r"[A-Za-z0-9_-]+", cam.name) else _toml_str(cam.name)
        else:  # a table key that is neither empty nor skipped by readers; `name` keeps the real name
            key = next(k for k in (f"cam_{i + 1:02d}_{j}" if j else f"cam_{i + 1:02d}" for j in range(len(keys) + 1))
                       if k not in keys)
            keys.add(key)
        K, d = cam.K, cam.dist
        dist = d if d[4] != 0 else d[:4]
        lines.append(f"[{key}]")
        lines.append(f"name = {_toml_str(cam.name)}")
        if cam.size is not None:
            lines.append(f"size = [ {float(cam.size[0])!r}, {float(cam.size[1])!r}]")
        lines.append("matrix = [ " + ", ".join("[ " + ", ".join(repr(float(v)) for v in row) + "]" for row in K) + "]")
        lines.append("distortions = [ " + ", ".join(repr(float(v)) for v in dist) + "]")
        lines.append("rotation = [ " + ", ".join(repr(float(v)) for v in _rodrigues_inv(cam.R)) + "]")
        lines.append("translation = [ " + ", ".join(repr(float(v) / f) for v in cam.t) + "]")
        lines.append("fisheye = false")
        lines.append("")
    lines += ["[metadata]", "adjusted = false", "error = 0.0", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml_str(s: str) -> str:
    out = []
    for ch in str(s):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------------------- Qualisys .qca.txt
def read_qualisys(path: str | Path, *, binning_factor: int = 1, distortion_scale: float = 1.0) -> list[Camera]:
    """Read a Qualisys QTM calibration exported as ``.qca.txt`` (XML); see the module docstring.

    Args:
        binning_factor: as Pose2Sim's ``binning_factor``: sensor pixels per video pixel when the
            video was binned (e.g. 2 for 540p video of a 1080p sensor window). Focal lengths,
            principal point and size are divided by it (principal point with pixel-centre
            convention, ``c' = (c - offset + 0.5) / b - 0.5``; Pose2Sim uses ``c / b - offset``,
            the same for b = 1).
        distortion_scale: multiplies the file's distortion coefficients. 1 (default) uses them as
            written; Pose2Sim uses 1/64. A checkerboard calibration (cv2.calibrateCamera, 6 boards
            each) of the four cameras of Pose2Sim's demo from its own intrinsics images gave
            k1 = -0.053, -0.052, -0.031, -0.047 and k2 = 0.15, 0.15, 0.01, 0.10, against
            -0.046..-0.048 and 0.135..0.140 in the demo's Calib.qca.txt (Pose2Sim's 1/64 gives
            k1 ~ -0.0007), so the raw values are the OpenCV coefficients; with the file's K fixed,
            solvePnP on the same boards reprojects with RMS 0.39 / 0.46 / 0.43 / 1.06 px using the raw
            coefficients and 0.39 / 0.53 / 0.47 / 1.11 px using Pose2Sim's.
    """
    path = Path(path)
    if binning_factor is None or int(binning_factor) != binning_factor or binning_factor < 1:
        raise CalibrationError(f"{path}: binning_factor must be a positive integer, got {binning_factor!r}")
    b = float(binning_factor)
    if not (math.isfinite(float(distortion_scale)) and float(distortion_scale) > 0):
        raise CalibrationError(f"{path}: distortion_scale must be a positive number, got {distortion_scale!r}")
    try:
        root = ET.parse(path).getroot()
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read calibration file ({e.strerror or e})") from None
    except ET.ParseError as e:
        hint = " (a binary .qca file? export the calibration from QTM as .qca.txt)" if path.suffix.lower() == ".qca" else ""
        raise CalibrationError(f"{path}: malformed XML ({e}){hint}") from None
    if root.tag != "calibration":
        raise CalibrationError(f"{path}: not a Qualisys calibration (root element <{root.tag}>, expected <calibration>)")
    cams_xml = root.findall("cameras/camera")
    if not cams_xml:
        raise CalibrationError(f"{path}: no <cameras>/<camera> elements")
    cams, skipped, rotated, lowres = [], [], [], []
    for i, cx in enumerate(cams_xml):
        model = cx.get("model")
        name = cx.get("serial") or f"cam{i + 1}"
        if model is not None and not any(m in model.lower() for m in QUALISYS_VIDEO_MODELS):
            skipped.append(f"{name} ({model})")
            continue
        where = f"camera {name!r}"
        fov = _xml_floats(cx, "fov_video", ("left", "top", "right", "bottom"), where, path)
        tr = _xml_floats(cx, "transform", ("x", "y", "z") + tuple(f"r{a}{c}" for a in "123" for c in "123"), where, path)
        intr_el = cx.find("intrinsic")
        tang = ("tangentalDistortion1", "tangentalDistortion2")
        if intr_el is not None and intr_el.get("tangentalDistortion1") is None and intr_el.get("tangentialDistortion1") is not None:
            tang = ("tangentialDistortion1", "tangentialDistortion2")
        intr = _xml_floats(cx, "intrinsic", ("focalLengthU", "focalLengthV", "centerPointU", "centerPointV",
                                             "radialDistortion1", "radialDistortion2") + tang, where, path)
        k3 = _xml_floats(cx, "intrinsic", ("radialDistortion3",), where, path, optional=True).get("radialDistortion3", 0.0)
        skew = _xml_floats(cx, "intrinsic", ("skew",), where, path, optional=True).get("skew", 0.0)
        if skew != 0.0:
            warnings.warn(f"{path}: {where} has skew = {skew}; ignored (as Pose2Sim)", stacklevel=2)
        w = (fov["right"] - fov["left"] + 1) / b
        h = (fov["bottom"] - fov["top"] + 1) / b
        if w <= 0 or h <= 0:
            raise CalibrationError(f"{path}: {where} has an empty <fov_video> {fov}")
        sub = QUALISYS_SUBPIXELS
        fx, fy = intr["focalLengthU"] / sub / b, intr["focalLengthV"] / sub / b
        cu = (intr["centerPointU"] / sub - fov["left"] + 0.5) / b - 0.5
        cv_ = (intr["centerPointV"] / sub - fov["top"] + 0.5) / b - 0.5
        K = _check_K(np.array([[fx, 0.0, cu], [0.0, fy, cv_], [0.0, 0.0, 1.0]]), f"{where} intrinsic", path)
        dist = np.array([intr["radialDistortion1"], intr["radialDistortion2"], intr[tang[0]], intr[tang[1]], k3]) \
            * float(distortion_scale)
        M = np.array([[tr[f"r{a}{c}"] for c in "123"] for a in "123"])
        M = _rotation(M, f"{where} <transform> r11..r33", path)
        R = QUALISYS_TO_OPENCV @ M
        centre = np.array([tr["x"], tr["y"], tr["z"]])
        if (cx.get("viewrotation") or "0").strip() not in ("0", "0.0", ""):
            rotated.append(f"{name} ({cx.get('viewrotation')})")
        res = re.fullmatch(r"\s*(\d+)p\s*", cx.get("video_resolution") or "")
        if res and int(res.group(1)) < 0.9 * min(w, h):
            lowres.append(f"{name} ({res.group(1)}p, window {int(round(w))}x{int(round(h))})")
        cams.append(_make_camera(path, K=K, R=R, t=-R @ centre, dist=dist,
                                 size=(int(round(w)), int(round(h))), name=name))
    if not cams:
        raise CalibrationError(f"{path}: no video cameras (all cameras are marker cameras: {', '.join(skipped)})")
    if rotated:
        warnings.warn(f"{path}: cameras {', '.join(rotated)} have a non-zero viewrotation, which is not applied: the "
                      f"cameras describe the unrotated sensor image (use rotate_camera_image if the videos are rotated)",
                      stacklevel=2)
    if lowres:
        warnings.warn(f"{path}: cameras {', '.join(lowres)} recorded video below the calibrated window's resolution; "
                      f"the cameras are for the full window (pass binning_factor, or rescale_camera to the video size)",
                      stacklevel=2)
    _check_unique_names(cams, path)
    return cams


def _xml_floats(cam: ET.Element, tag: str, keys: Iterable[str], where: str, path: Path,
                optional: bool = False) -> dict[str, float]:
    el = cam.find(tag)
    if el is None:
        if optional:
            return {}
        raise CalibrationError(f"{path}: {where} lacks a <{tag}> element")
    out = {}
    for k in keys:
        v = el.get(k)
        if v is None:
            if optional:
                continue
            raise CalibrationError(f"{path}: {where} <{tag}> lacks the attribute {k!r}")
        try:
            x = float(v)
        except ValueError:
            raise CalibrationError(f"{path}: {where} <{tag} {k}={v!r}> is not a number") from None
        if not math.isfinite(x):
            raise CalibrationError(f"{path}: {where} <{tag} {k}={v!r}> is not finite")
        out[k] = x
    return out


def write_qualisys(cameras: Sequence[Camera], path: str | Path, *, distortion_scale: float = 1.0) -> Path:
    """Write ``cameras`` as a Qualisys ``.qca.txt`` (the structure of QTM's export, one video window
    per camera at ``(0, 0)``-``(W-1, H-1)``) that :func:`read_qualisys` with the same
    ``distortion_scale`` (and Pose2Sim, up to its 1/64 distortion scaling) reads back. Cameras need a
    ``size``; skew is not representable. Returns the path."""
    path = Path(path)
    _check_unique_names(list(cameras), path)
    root = ET.Element("calibration", {"source": path.name, "created": "maskpose", "qtm-version": "none",
                                      "type": "regular", "wandLength": "none", "maximumFrames": "none",
                                      "shortArmEnd": "none", "longArmEnd": "none", "longArmMiddle": "none"})
    ET.SubElement(root, "results", {"std-dev": "0.", "min-max-diff": "0."})
    cams_el = ET.SubElement(root, "cameras")
    sub = QUALISYS_SUBPIXELS
    for cam in cameras:
        if cam.size is None:
            raise CalibrationError(f"{path}: camera {cam.name!r} has no image size; Qualisys files need one")
        if abs(cam.K[0, 1]) > 1e-12:
            raise CalibrationError(f"{path}: camera {cam.name!r} has skew {cam.K[0, 1]}, which a Qualisys file cannot hold")
        W, H = cam.size
        c_el = ET.SubElement(cams_el, "camera", {"active": "1", "calibrated": "true", "message": "",
                                                 "point-count": "0", "avg-residual": "0.", "serial": cam.name,
                                                 "model": "none", "viewrotation": "0"})
        fov = {"left": "0", "top": "0", "right": str(W - 1), "bottom": str(H - 1)}
        for tag in ("fov_marker", "fov_marker_max", "fov_video", "fov_video_max"):
            ET.SubElement(c_el, tag, fov)
        M = QUALISYS_TO_OPENCV @ cam.R  # Qualisys rows, see read_qualisys
        centre = cam.center
        attrs = {"x": repr(float(centre[0])), "y": repr(float(centre[1])), "z": repr(float(centre[2]))}
        attrs.update({f"r{a + 1}{c + 1}": repr(float(M[a, c])) for a in range(3) for c in range(3)})
        ET.SubElement(c_el, "transform", attrs)
        d = cam.dist / float(distortion_scale)
        ET.SubElement(c_el, "intrinsic", {
            "focallength": repr(float(cam.K[0, 0] * QUALISYS_PIXEL_SIZE_MM)),
            "sensorMinU": "0.000000", "sensorMaxU": repr(float((W - 1) * sub)),
            "sensorMinV": "0.000000", "sensorMaxV": repr(float((H - 1) * sub)),
            "focalLengthU": repr(float(cam.K[0, 0] * sub)), "focalLengthV": repr(float(cam.K[1, 1] * sub)),
            "centerPointU": repr(float(cam.K[0, 2] * sub)), "centerPointV": repr(float(cam.K[1, 2] * sub)),
            "skew": "0.000000",
            "radialDistortion1": repr(float(d[0])), "radialDistortion2": repr(float(d[1])),
            "radialDistortion3": repr(float(d[4])),
            "tangentalDistortion1": repr(float(d[2])), "tangentalDistortion2": repr(float(d[3])),
        })
    ET.indent(root, space="  ")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


# ---------------------------------------------------------------------------- EasyMocap intri/extri.yml
def _easymocap_pair(folder: Path) -> tuple[Path, Path] | None:
    for ext in (".yml", ".yaml"):
        i, e = folder / f"intri{ext}", folder / f"extri{ext}"
        if i.is_file() and e.is_file():
            return i, e
    return None


def read_easymocap(path: str | Path, *, units: str = "auto") -> list[Camera]:
    """Read EasyMocap ``intri.yml`` + ``extri.yml`` (OpenCV FileStorage YAML); ``path`` is their
    folder or either file. Translations are metres by EasyMocap's convention (``units`` as
    :func:`read_toml`)."""
    import cv2

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not path.exists():
        raise CalibrationError(f"{path}: calibration file or folder does not exist")
    pair = _easymocap_pair(folder)
    if pair is None:
        raise CalibrationError(f"{path}: EasyMocap calibration needs both intri.yml and extri.yml in {folder}")
    intri_p, extri_p = pair

    def open_fs(p: Path):
        try:
            fs = cv2.FileStorage(str(p), cv2.FILE_STORAGE_READ)
        except Exception as e:  # cv2.error, or SystemError from the Python binding
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else "parse error"
            raise CalibrationError(f"{p}: malformed OpenCV YAML ({msg})") from None
        if not fs.isOpened():
            raise CalibrationError(f"{p}: cannot open as OpenCV FileStorage YAML")
        return fs

    fi, fe = open_fs(intri_p), open_fs(extri_p)
    try:
        names = _fs_names(fi, intri_p)
        native = []
        for name in names:
            K = _fs_mat(fi, f"K_{name}", (3, 3), intri_p)
            if K is None:
                raise CalibrationError(f"{intri_p}: camera {name!r} has no K_{name}")
            K = _check_K(K, f"K_{name}", intri_p)
            dist = _fs_mat(fi, f"dist_{name}", None, intri_p)
            if dist is None:
                dist = _fs_mat(fi, f"D_{name}", None, intri_p)
            if dist is None:
                warnings.warn(f"{intri_p}: camera {name!r} has no dist_{name}; assuming no distortion", stacklevel=2)
                dist = np.zeros(5)
            dist = dist.reshape(-1)
            if dist.size not in (4, 5, 8, 12, 14):
                raise CalibrationError(f"{intri_p}: dist_{name} must have 4 or 5 OpenCV coefficients, got {dist.size}")
            W, H = _fs_int(fi, f"W_{name}", intri_p), _fs_int(fi, f"H_{name}", intri_p)
            size = (W, H) if (W is not None and H is not None and W > 0 and H > 0) else None
            rvec = _fs_mat(fe, f"R_{name}", (3,), extri_p)
            Rot = _fs_mat(fe, f"Rot_{name}", (3, 3), extri_p)
            if rvec is None and Rot is None:
                raise CalibrationError(f"{extri_p}: camera {name!r} has neither R_{name} (Rodrigues) nor Rot_{name}")
            if Rot is not None:
                Rot = _rotation(Rot, f"Rot_{name}", extri_p)
            R = _rodrigues(rvec) if rvec is not None else Rot
            if rvec is not None and Rot is not None and np.abs(R - Rot).max() > 1e-3:
                raise CalibrationError(f"{extri_p}: R_{name} (Rodrigues) and Rot_{name} disagree "
                                       f"(max difference {np.abs(R - Rot).max():.3g})")
            t = _fs_mat(fe, f"T_{name}", (3,), extri_p)
            if t is None:
                raise CalibrationError(f"{extri_p}: camera {name!r} has no T_{name}")
            native.append(dict(name=name, K=K, dist=dist, R=R, t=t, size=size))
    finally:
        fi.release()
        fe.release()
    f = _unit_factor(native, units, "m", intri_p.parent)
    cams = [_make_camera(intri_p, K=c["K"], R=c["R"], t=c["t"] * f, dist=c["dist"], size=c["size"], name=c["name"])
            for c in native]
    _check_unique_names(cams, intri_p)
    return cams


def _fs_names(fs, p: Path) -> list[str]:
    node = fs.getNode("names")
    if node.empty() or node.isNone() or not node.isSeq():
        raise CalibrationError(f"{p}: no 'names' list of cameras")
    out = []
    for i in range(node.size()):
        item = node.at(i)
        s = item.string() if item.isString() else (str(int(item.real())) if item.isInt() or item.isReal() else "")
        if not s:
            raise CalibrationError(f"{p}: entry {i} of 'names' is not a camera name")
        if s != "none":
            out.append(s)
    return out


def _fs_mat(fs, key: str, shape: tuple[int, ...] | None, p: Path) -> np.ndarray | None:
    node = fs.getNode(key)
    if node.empty() or node.isNone():
        return None
    m = node.mat()
    if m is None:
        if node.isSeq():  # a plain YAML list instead of !!opencv-matrix
            m = np.array([node.at(i).real() for i in range(node.size())])
        else:
            raise CalibrationError(f"{p}: {key} is not a matrix")
    m = np.asarray(m, dtype=np.float64)
    if shape is not None and m.size != int(np.prod(shape)):
        raise CalibrationError(f"{p}: {key} must have {int(np.prod(shape))} values, got shape {list(m.shape)}")
    if not np.all(np.isfinite(m)):
        raise CalibrationError(f"{p}: {key} contains NaN or inf")
    return m.reshape(shape) if shape is not None else m


def _fs_int(fs, key: str, p: Path) -> int | None:
    node = fs.getNode(key)
    if node.empty() or node.isNone():
        return None
    if not (node.isInt() or node.isReal()):
        raise CalibrationError(f"{p}: {key} must be an integer")
    v = node.real()
    if not math.isfinite(v) or v != int(v):
        raise CalibrationError(f"{p}: {key} must be an integer, got {v}")
    return int(v)


def write_easymocap(cameras: Sequence[Camera], folder: str | Path, *, units: str = "m") -> tuple[Path, Path]:
    """Write ``cameras`` as EasyMocap ``intri.yml`` and ``extri.yml`` in ``folder`` (translations in
    metres by default; the same text layout as EasyMocap's ``write_camera``). Returns both paths."""
    folder = Path(folder)
    if units not in UNITS:
        raise CalibrationError(f"{folder}: units must be 'm', 'cm' or 'mm', got {units!r}")
    _check_unique_names(list(cameras), folder)
    for cam in cameras:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", cam.name):
            raise CalibrationError(f"{folder}: camera name {cam.name!r} cannot be an OpenCV FileStorage key "
                                   f"(use letters, digits, '_' and '-')")
    folder.mkdir(parents=True, exist_ok=True)
    f = UNITS[units]

    def mat(key: str, a: np.ndarray) -> list[str]:
        a = np.atleast_2d(np.asarray(a, dtype=np.float64))
        return [f"{key}: !!opencv-matrix", f"  rows: {a.shape[0]}", f"  cols: {a.shape[1]}", "  dt: d",
                "  data: [" + ", ".join(repr(float(v)) for v in a.reshape(-1)) + "]"]

    head = ["%YAML:1.0", "---", "names:"] + [f'  - "{c.name}"' for c in cameras]
    intri, extri = list(head), list(head)
    for cam in cameras:
        intri += mat(f"K_{cam.name}", cam.K) + mat(f"dist_{cam.name}", cam.dist[None])
        if cam.size is not None:
            intri += [f"H_{cam.name}: {int(cam.size[1])}", f"W_{cam.name}: {int(cam.size[0])}"]
        extri += mat(f"R_{cam.name}", _rodrigues_inv(cam.R)[:, None]) + mat(f"Rot_{cam.name}", cam.R) \
            + mat(f"T_{cam.name}", (cam.t / f)[:, None])
    pi, pe = folder / "intri.yml", folder / "extri.yml"
    pi.write_text("\n".join(intri) + "\n", encoding="utf-8")
    pe.write_text("\n".join(extri) + "\n", encoding="utf-8")
    return pi, pe


# ---------------------------------------------------------------------------- conversion
def convert_calibration(src: str | Path, dst: str | Path, *, from_format: str | None = None,
                        to_format: str | None = None, units: str = "auto", out_units: str = "m",
                        binning_factor: int = 1, distortion_scale: float = 1.0) -> list[Camera]:
    """Read ``src`` (:func:`load_calibration` with ``from_format``, ``units``, ``binning_factor``,
    ``distortion_scale``) and write it to ``dst`` as ``to_format``: ``"toml"``, ``"qualisys"`` or
    ``"easymocap"`` (None: from ``dst``: ``*.toml``, ``*.qca.txt``, else an EasyMocap folder).
    ``out_units`` are the translation units of toml / easymocap output (``"m"`` as Pose2Sim and
    EasyMocap expect). Returns the cameras (world mm)."""
    cams = load_calibration(src, from_format, units=units, binning_factor=binning_factor,
                            distortion_scale=distortion_scale)
    dst = Path(dst)
    fmt = to_format
    if fmt is None:
        name = dst.name.lower()
        fmt = "toml" if name.endswith(".toml") else "qualisys" if name.endswith((".qca.txt", ".txt")) else "easymocap"
    if fmt == "toml":
        write_toml(cams, dst, units=out_units)
    elif fmt == "qualisys":
        write_qualisys(cams, dst)
    elif fmt == "easymocap":
        write_easymocap(cams, dst.parent if dst.name.lower() in ("intri.yml", "extri.yml") else dst, units=out_units)
    else:
        raise CalibrationError(f"{dst}: cannot write calibration format {fmt!r}; expected toml, qualisys or easymocap")
    return cams


# ---------------------------------------------------------------------------- matching cameras to views
def _view_key(name: str) -> str:
    """A view name reduced to what identifies the camera: no folders, no media extension."""
    s = str(name).replace("\\", "/").rstrip("/").split("/")[-1]
    low = s.lower()
    for suf in MEDIA_SUFFIXES:
        if low.endswith(suf) and len(low) > len(suf):
            s = s[: -len(suf)]
            break
    return s.lower()


def _prefix_numbers(s: str) -> set[tuple[str, int]]:
    return {(m.group(1), int(m.group(2))) for m in re.finditer(r"([a-z]*)[_\-\s.]?(\d+)", s)}


def _numbers(s: str) -> set[int]:
    return {int(m) for m in re.findall(r"\d+", s)}


def _stage_matches(cam: str, view: str, stage: int) -> bool:
    if stage == 0:
        return cam == view
    if stage == 1:  # the camera name as a delimited part of the view name
        return bool(cam) and re.search(r"(?<![a-z0-9])" + re.escape(cam) + r"(?![a-z0-9])", view) is not None
    if stage == 2:  # same letters + number: cam1 ~ cam01 ~ cam_01_video
        pc = _prefix_numbers(cam)
        return len(pc) == 1 and bool(pc & _prefix_numbers(view))
    nums = re.findall(r"\d+", cam)  # stage 3: the camera's (last) number appears in the view name
    return bool(nums) and int(nums[-1]) in _numbers(view)


def match_cameras(cameras: Sequence[Camera], view_names: Sequence[str], source: str) -> list[Camera]:
    """Order ``cameras`` like the views ``view_names`` (video files, image folders, ...).

    A view matches a camera, in decreasing priority: the same name (case-insensitive, without
    folders and media extension: ``cam01`` ~ ``videos/cam01.mp4``); the camera name as a delimited
    part of the view name (``54138969`` ~ ``S1_Walking.54138969.mp4``, ``cam01`` ~ ``cam01_video``);
    the same letters and number (``cam1`` ~ ``cam01`` ~ ``cam_01``); the camera's number appearing in
    the view name (``cam_01`` ~ ``1.mp4``, ``28519`` ~ ``Trial_Miqus_3_28519.avi``). Each stage only
    pairs a view and a camera that match each other and nothing else still unpaired. Cameras not
    matched by any view are allowed (a subset of a larger rig) only if every view is matched.

    Args:
        cameras: calibrated cameras with names.
        view_names: names of the views, in dataset order.
        source: where the cameras come from (for error messages, e.g. the calibration file).
    Returns:
        ``list[Camera]`` with ``len(view_names)`` cameras, the i-th for the i-th view.
    Raises:
        CalibrationError: fewer cameras than views, or a view that matches no camera or several.
    """
    cams = list(cameras)
    views = [str(v) for v in view_names]
    cam_names = [c.name for c in cams]
    both = f"calibration {source} has cameras {cam_names}; the views are {views}"
    if len(cams) < len(views):
        raise CalibrationError(f"{len(views)} views but only {len(cams)} calibrated cameras: {both}")
    ckeys = [str(c.name).lower() for c in cams]
    vkeys = [_view_key(v) for v in views]
    if len(set(vkeys)) != len(vkeys):
        raise CalibrationError(f"duplicate view names: {both}")
    if len(set(ckeys)) != len(ckeys):
        raise CalibrationError(f"duplicate camera names (ignoring case): {both}")
    assign: dict[int, int] = {}  # view -> camera
    for stage in range(4):
        free_v = [i for i in range(len(views)) if i not in assign]
        free_c = [j for j in range(len(cams)) if j not in assign.values()]
        cand = {i: [j for j in free_c if _stage_matches(ckeys[j], vkeys[i], stage)] for i in free_v}
        for i in free_v:
            if len(cand[i]) == 1:
                j = cand[i][0]
                if sum(j in cand[k] for k in free_v) == 1:
                    assign[i] = j
    missing = [views[i] for i in range(len(views)) if i not in assign]
    if missing:
        raise CalibrationError(f"cannot tell which camera films view(s) {missing} (names must match, e.g. cam01 ~ "
                               f"cam01.mp4 / cam1 / cam_01_video): {both}")
    return [cams[assign[i]] for i in range(len(views))]


# ---------------------------------------------------------------------------- adapting to the images
def rescale_camera(camera: Camera, size: tuple[int, int], *, crop_tolerance: float = 0.01) -> Camera:
    """Adapt ``camera`` (calibrated at ``camera.size``) to images of ``size = (width, height)``.

    * same size: returned unchanged;
    * the same field of view resampled (width and height scale alike, up to one pixel of rounding,
      e.g. 1920x1080 -> 960x540): ``K`` is scaled with pixel-centre conventions,
      ``c' = (c + 0.5) s - 0.5``;
    * a few pixels cut off (each side within ``crop_tolerance`` of the calibrated size, e.g. a
      1088-wide calibration and a 1080-wide video): ``K`` is kept (the cut is assumed to be at the
      right / bottom) with a warning;
    * otherwise :class:`CalibrationError`. ``camera.size`` None: the size is just set.
    """
    W2, H2 = int(size[0]), int(size[1])
    if W2 <= 0 or H2 <= 0:
        raise CalibrationError(f"camera {camera.name!r}: image size must be positive, got {size}")
    if camera.size is None or tuple(camera.size) == (W2, H2):
        return Camera(K=camera.K, R=camera.R, t=camera.t, dist=camera.dist, size=(W2, H2), name=camera.name)
    W, H = camera.size
    sx, sy = W2 / W, H2 / H
    if abs(sx - sy) <= 1.0 / min(W2, H2) + 1e-12:
        K = camera.K.copy()
        K[0] *= sx
        K[1] *= sy
        K[0, 2] = (camera.K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (camera.K[1, 2] + 0.5) * sy - 0.5
        return Camera(K=K, R=camera.R, t=camera.t, dist=camera.dist, size=(W2, H2), name=camera.name)
    if abs(W2 - W) <= crop_tolerance * W and abs(H2 - H) <= crop_tolerance * H:
        warnings.warn(f"camera {camera.name!r}: calibrated for {W}x{H} images but the images are {W2}x{H2}; "
                      f"assuming the difference was cut at the right/bottom edge", stacklevel=2)
        return Camera(K=camera.K, R=camera.R, t=camera.t, dist=camera.dist, size=(W2, H2), name=camera.name)
    raise CalibrationError(f"camera {camera.name!r}: calibrated for {W}x{H} images but the images are {W2}x{H2} "
                           f"(neither a rescale nor a small crop); check that the calibration fits these videos")


def rotate_camera_image(camera: Camera, quarter_turns: int) -> Camera:
    """The camera of images rotated **clockwise** by ``quarter_turns`` x 90 degrees
    (``cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)`` is one turn; -1 or 3 is counter-clockwise).

    One turn maps pixel ``(u, v)`` of a ``W x H`` image to ``(H - 1 - v, u)`` of the ``H x W`` image:
    camera axes ``x' = -y, y' = x`` (``R' = Q R``, ``t' = Q t``), ``fx' = fy, fy' = fx,
    cx' = H - 1 - cy, cy' = cx``, radial distortion unchanged, ``p1' = p2, p2' = -p1``.
    Needs ``camera.size`` and no skew.
    """
    k = int(quarter_turns) % 4
    if camera.size is None:
        raise CalibrationError(f"camera {camera.name!r}: rotating the image needs the image size")
    if abs(camera.K[0, 1]) > 1e-12:
        raise CalibrationError(f"camera {camera.name!r}: rotating a camera with skew is not supported")
    K, R, t, d = camera.K.copy(), camera.R.copy(), camera.t.copy(), camera.dist.copy()
    W, H = camera.size
    Q = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for _ in range(k):
        K = np.array([[K[1, 1], 0.0, H - 1 - K[1, 2]], [0.0, K[0, 0], K[0, 2]], [0.0, 0.0, 1.0]])
        R, t = Q @ R, Q @ t
        d = np.array([d[0], d[1], d[3], -d[2], d[4]])
        W, H = H, W
    return Camera(K=K, R=R, t=t, dist=d, size=(W, H), name=camera.name)
