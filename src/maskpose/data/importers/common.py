"""Shared helpers of the public-dataset importers (H36M, MPI-INF-3DHP, TikTok, MPII).

Every importer reads a dataset in its *release* layout and writes one maskpose dataset folder
(``docs/dataset-format.md``) with :class:`maskpose.data.folder.DatasetWriter`. The helpers here are
the parts they share:

* :class:`DatasetImportError` (a ``ValueError``): every problem with a source file, naming the file;
* :func:`select_frames`: stride / evenly spread cap over a sequence;
* :func:`clean_mask` / :func:`crop_view`: the maskpose crop (square around the mask's bounding box
  grown by 15 %, ``maskpose.geometry.crop_affine``), cut at full resolution and shrunk with
  ``INTER_AREA`` so that large reductions do not alias;
* :func:`undistort_maps` / :func:`remap`: undistortion of whole frames and masks for any lens model
  given as a function on normalised coordinates (H36M uses its own model, not OpenCV's);
* :class:`VideoFrames`: a sequential video reader with forward seeking (``grab``), RGB output;
* :func:`nominal_camera`: the pinhole camera recorded for uncalibrated single-view sources;
* small readers for MATLAB files (v5 via scipy, v7.3 via h5py) with clear errors.

Conventions are those of :mod:`maskpose.geometry`: pixel centres at integers, ``x_cam = R X + t``
(mm), crop affine ``A`` maps undistorted full-image pixels to crop pixels.
"""
from __future__ import annotations

import io
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from ...geometry import Camera, crop_affine, mask_bbox, square_box

#: the crop margin of every maskpose crop (bounding box grown by 15 %), as ``maskpose synth``
CROP_MARGIN = 1.15
#: field of view (degrees, across the longer image side) of :func:`nominal_camera`; the same default as
#: ``maskpose.data.prepare.default_camera`` so that imported and prepared single-view data agree
NOMINAL_FOV_DEG = 55.0

ProgressFn = Callable[[int, int], None]


class DatasetImportError(ValueError):
    """A source dataset file is missing, unreadable or inconsistent (the message names the file)."""


# ============================================================================ optional dependencies
def require_cdflib():
    """Import ``cdflib`` (optional extra ``maskpose[data]``) or raise a clear error."""
    try:
        import cdflib  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise DatasetImportError("reading Human3.6M .cdf pose files needs the 'cdflib' package: "
                                 "pip install 'maskpose[data]' (or pip install cdflib)") from None
    return cdflib


def require_h5py():
    """Import ``h5py`` (optional extra ``maskpose[data]``) or raise a clear error."""
    try:
        import h5py  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise DatasetImportError("reading MATLAB v7.3 .mat files needs the 'h5py' package: "
                                 "pip install 'maskpose[data]' (or pip install h5py)") from None
    return h5py


# ============================================================================ matlab files
MAT73_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_mat73(path: str | os.PathLike) -> bool:
    """True when ``path`` is a MATLAB v7.3 file (HDF5 with a 512-byte user block or plain HDF5)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as e:
        raise DatasetImportError(f"{path}: cannot read ({e.strerror or e})") from None
    return head[512:520] == MAT73_SIGNATURE or head[:8] == MAT73_SIGNATURE


def open_mat73(path: str | os.PathLike):
    """Open a MATLAB v7.3 file with h5py (``h5py.File`` in read mode); clear error when unreadable."""
    h5py = require_h5py()
    path = Path(path)
    if not path.is_file():
        raise DatasetImportError(f"{path} is missing")
    try:
        return h5py.File(path, "r")
    except Exception as e:  # truncated / not HDF5
        raise DatasetImportError(f"{path}: cannot read as a MATLAB v7.3 (HDF5) file - truncated or damaged? "
                                 f"({type(e).__name__}: {e})") from None


def load_mat_v5(path: str | os.PathLike, **kwargs) -> dict:
    """``scipy.io.loadmat`` with clear errors (missing, truncated, or actually v7.3)."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DatasetImportError(f"{path} is missing")
    try:
        return scipy.io.loadmat(str(path), **kwargs)
    except NotImplementedError:
        raise DatasetImportError(f"{path}: is a MATLAB v7.3 file where a v5 file was expected") from None
    except Exception as e:
        raise DatasetImportError(f"{path}: cannot read as a MATLAB .mat file - truncated or damaged? "
                                 f"({type(e).__name__}: {e})") from None


def h5_numeric(f, key: str, path: str | os.PathLike) -> np.ndarray:
    """Numeric dataset ``key`` of an open v7.3 file as float64 (h5py axis order = MATLAB order reversed)."""
    if key not in f:
        raise DatasetImportError(f"{path}: variable {key!r} is missing (has: {', '.join(sorted(f.keys()))})")
    try:
        return np.asarray(f[key][()], dtype=np.float64)
    except Exception as e:
        raise DatasetImportError(f"{path}: cannot read variable {key!r} ({type(e).__name__}: {e})") from None


# ============================================================================ frame selection
def select_frames(num_frames: int, stride: int = 1, max_frames: int | None = None, start: int = 0) -> np.ndarray:
    """Frame indices ``start, start + stride, ...`` below ``num_frames``; with ``max_frames``, at most that
    many of them, spread evenly over the whole sequence (first and last kept). Returns ``[K]`` int64."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    idx = np.arange(max(0, int(start)), max(0, int(num_frames)), int(stride), dtype=np.int64)
    if max_frames is not None and idx.size > max_frames:
        pick = np.unique(np.round(np.linspace(0, idx.size - 1, int(max_frames))).astype(np.int64))
        idx = idx[pick]
    return idx


# ============================================================================ masks and crops
def clean_mask(mask: np.ndarray, min_fraction: float = 0.05) -> np.ndarray:
    """Drop connected components smaller than ``min_fraction`` of the largest one.

    ``mask [H, W]`` (non-zero = person) -> bool ``[H, W]``. Background-subtraction and compressed-video
    masks carry speckles that would blow up the bounding box of the crop; limbs split off the body by
    the segmentation are kept as long as they are not tiny. ``min_fraction <= 0`` returns the mask as is.
    """
    m = np.asarray(mask) > 0
    if min_fraction <= 0 or not m.any():
        return m
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= min_fraction * areas.max()
    return keep[labels]


def box_from_points(points: np.ndarray) -> tuple[float, float, float, float] | None:
    """Inclusive pixel box ``(x0, y0, x1, y1)`` of the finite points ``[K, 2]`` (None if there are none)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if p.shape[0] == 0:
        return None
    return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())


def crop_view(image: np.ndarray, mask: np.ndarray | None, size: int, *, margin: float = CROP_MARGIN,
              box: tuple[float, float, float, float] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut the maskpose crop of one (undistorted) view.

    Args:
        image: ``[H, W, 3]`` uint8 RGB full frame (already undistorted).
        mask: ``[H, W]`` person mask (non-zero = person) or None.
        size: crop size S.
        margin: the square is the box's longer side times ``margin`` (maskpose: 1.15).
        box: inclusive ``(x0, y0, x1, y1)`` box to crop around; default: the mask's bounding box.
    Returns:
        ``(crop [S, S, 3] uint8, crop_mask [S, S] bool, A [3, 3])`` with
        ``A = crop_affine(centre, side, S)``. Outside the frame the crop is black / background.
        The square is cut at (about) full resolution and shrunk with ``cv2.INTER_AREA``, which equals
        the affine ``A`` exactly (pixel-centre conventions on both sides).
    """
    if box is None:
        if mask is None:
            raise ValueError("crop_view: need a mask or a box")
        box = mask_bbox(np.asarray(mask) > 0)
    centre, side = square_box(box, margin)
    A = crop_affine(centre, side, size)
    m8 = None if mask is None else (np.asarray(mask) > 0).astype(np.uint8) * 255
    n = int(np.ceil(side))
    if n > size:
        An = crop_affine(centre, side, n)
        big = cv2.warpAffine(image, An[:2], (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
        crop = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
        if m8 is not None:
            mbig = cv2.warpAffine(m8, An[:2], (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=0)
            cm = cv2.resize(mbig, (size, size), interpolation=cv2.INTER_AREA) > 127
    else:
        crop = cv2.warpAffine(image, A[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)
        if m8 is not None:
            cm = cv2.warpAffine(m8, A[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0) > 127
    if m8 is None:
        cm = np.zeros((size, size), bool)
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    return np.ascontiguousarray(crop, dtype=np.uint8), cm, A


# ============================================================================ undistortion
def undistort_maps(K: np.ndarray, width: int, height: int,
                   distort_normalized: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps that turn a distorted frame into the undistorted pinhole frame of the same ``K``.

    For every pixel ``(u, v)`` of the undistorted output, ``x = K^-1 (u, v, 1)`` is distorted with
    ``distort_normalized(x, y) -> (x_d, y_d)`` (the lens model, on normalised coordinates) and mapped
    back to pixels with ``K``: the output samples the input there. Returns ``(map_x, map_y)``
    float32 ``[height, width]``.
    """
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy, s = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    y = (v - cy) / fy
    x = (u - cx - s * y) / fx
    xd, yd = distort_normalized(x, y)
    return (fx * xd + s * yd + cx).astype(np.float32), (fy * yd + cy).astype(np.float32)


def remap(image: np.ndarray, maps: tuple[np.ndarray, np.ndarray], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Apply :func:`undistort_maps` to an image ``[H, W(, C)]`` (outside the source: 0)."""
    return cv2.remap(image, maps[0], maps[1], interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def opencv_distort_normalized(dist: Sequence[float]):
    """The OpenCV ``(k1, k2, p1, p2, k3)`` model as a function for :func:`undistort_maps`."""
    k1, k2, p1, p2, k3 = (list(np.asarray(dist, dtype=np.float64).reshape(-1)) + [0.0] * 5)[:5]

    def f(x, y):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
        return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)
    return f


# ============================================================================ cameras
def nominal_camera(width: int, height: int, focal: float | None = None, name: str = "") -> Camera:
    """Pinhole camera for an uncalibrated single-view source: ``f = focal`` px (default: a
    :data:`NOMINAL_FOV_DEG` = 55 degree field of view across the longer side, ``max(W, H) / (2 tan 27.5deg)``
    = 0.96 max(W, H)), principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)``, world = camera
    frame (``R = I``, ``t = 0``), no distortion."""
    f = float(focal) if focal is not None else max(width, height) / (2.0 * np.tan(np.radians(NOMINAL_FOV_DEG) / 2))
    if not f > 0:
        raise ValueError(f"focal length must be positive, got {focal}")
    K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=np.eye(3), t=np.zeros(3), size=(int(width), int(height)), name=name)


# ============================================================================ video / images
class VideoFrames:
    """Sequential reader of one video file: ``read(i)`` returns frame ``i`` (RGB uint8) or None past the end.

    Frames are decoded in order; a forward jump is done with ``grab`` (exact, unlike seeking by
    ``CAP_PROP_POS_FRAMES``), a backward jump reopens the file. ``num_frames`` is the container's
    count (may be wrong; the true end is where ``read`` returns None).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetImportError(f"video {self.path} is missing")
        self._open()
        self.num_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def _open(self) -> None:
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise DatasetImportError(f"{self.path}: cannot open the video (unsupported codec or damaged file)")
        self._next = 0
        self._ended = False

    def read(self, i: int, color: bool = True) -> np.ndarray | None:
        """Frame ``i`` (0-based) as RGB ``[H, W, 3]`` uint8 (``color=False``: the raw BGR frame)."""
        if i < self._next:
            self._cap.release()
            self._open()
        if self._ended:
            return None
        while self._next < i:
            if not self._cap.grab():
                self._ended = True
                return None
            self._next += 1
        ok, frame = self._cap.read()
        self._next += 1
        if not ok or frame is None:
            self._ended = True
            return None
        if not color:
            return frame
        if frame.ndim == 2:
            return np.repeat(frame[:, :, None], 3, axis=2)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "VideoFrames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_image_rgb(path: str | os.PathLike) -> np.ndarray | None:
    """RGB uint8 ``[H, W, 3]`` of an image file, or None when it is missing or unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask_file(path: str | os.PathLike, threshold: int = 127, channel: int | None = None) -> np.ndarray | None:
    """Bool mask ``[H, W]`` (value > ``threshold``) of a mask image; ``channel`` picks an RGB channel
    (0 = red) of a colour file, None reads it as grayscale. None when missing or unreadable."""
    if channel is None:
        m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    else:
        m = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if m is not None:
            m = m[:, :, 2 - channel]  # BGR
    if m is None:
        return None
    return m > threshold


MASK_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def find_mask_file(masks_dir: str | os.PathLike, rel: str | os.PathLike) -> Path | None:
    """The mask of image ``rel`` (path relative to the image root) in ``masks_dir``: the same relative
    path, then the bare file name, each with any of :data:`MASK_EXTS` (png first)."""
    root = Path(masks_dir)
    rel = Path(rel)
    for base in (root / rel.with_suffix(""), root / rel.stem):
        for ext in MASK_EXTS:
            p = base.with_suffix(ext) if base.suffix == "" else Path(str(base) + ext)
            if p.is_file():
                return p
    return None


# ============================================================================ writing helpers
def write_npy(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` (``.npy``) atomically (temporary name + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


class ImportStats:
    """Counts of written samples and of skipped views / instants by reason, for the summary dict."""

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()
        self.bad_files: list[str] = []
        self.t0 = time.perf_counter()

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += int(n)

    def bad(self, path: str | os.PathLike, err: Exception) -> None:
        self.bad_files.append(f"{path}: {err}")
        self.skip("bad_file")

    def summary(self, out: Path, num_samples: int, num_views: int, **extra: Any) -> dict[str, Any]:
        dt = time.perf_counter() - self.t0
        return {"path": Path(out), "num_samples": int(num_samples), "num_views": int(num_views),
                "skipped": dict(self.skipped), "bad_files": list(self.bad_files), "seconds": dt, **extra}


def normalize_names(values: Iterable[str | int] | str | None, prefix: str = "") -> list[str] | None:
    """``"S9,S11"`` / ``[9, 11]`` / ``["S9"]`` -> ``["S9", "S11"]`` (with ``prefix="S"``); None stays None."""
    if values is None:
        return None
    if isinstance(values, (str, int)):
        values = [v for v in str(values).replace(";", ",").split(",") if v.strip()]
    out = []
    for v in values:
        s = str(v).strip()
        if prefix and s.isdigit():
            s = prefix + str(int(s))
        out.append(s)
    return out


__all__ = [
    "CROP_MARGIN", "NOMINAL_FOV_DEG", "DatasetImportError", "require_cdflib", "require_h5py", "is_mat73",
    "open_mat73", "load_mat_v5", "h5_numeric", "select_frames", "clean_mask", "box_from_points", "crop_view",
    "undistort_maps", "remap", "opencv_distort_normalized", "nominal_camera", "VideoFrames", "read_image_rgb",
    "read_mask_file", "find_mask_file", "MASK_EXTS", "write_npy", "ImportStats", "normalize_names",
]
