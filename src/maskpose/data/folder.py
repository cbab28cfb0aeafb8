"""The maskpose dataset folder: writer, meta/sample loading and the training ``Dataset``.

Every source (synthetic scenes, prepared videos, imported images + masks) is converted to this one
folder format; ``docs/dataset-format.md`` is the user-facing description. Layout::

    DIR/meta.json            {"format": "maskpose-dataset", "version": 1, "joint_set": "h36m18",
                              "size": S, "num_views": V, "num_samples": N, "source": ..., ...}
    DIR/samples.npz          ids [N] str; K [N,V,3,3]; R [N,V,3,3]; t [N,V,3] (world -> camera, mm);
                             dist [N,V,5]; A [N,V,3,3] (image px -> crop px); valid [N,V] bool;
                             optional per-sample fields (activity [N] str, frame [N] int, ...)
    DIR/frames/{id}_{v}.png  RGB crop S x S (png or jpg)
    DIR/masks/{id}_{v}.png   uint8 0/255 crop mask S x S
    DIR/weights/{id}_{v}.npy float16 geodesic weights (a cache; recomputed when missing)
    DIR/gt/joints3d.npy      [N,J,3] float64 mm, world frame (evaluation only; optional)

Conventions (DESIGN.md §3): world in mm, ``x_cam = R X + t``; ``K`` is the pinhole intrinsic
matrix of the *undistorted* full image (``dist`` records the lens distortion that was removed,
for mapping results back onto the original video); ``A`` maps undistorted image pixels to crop
pixels (pixel centres at integers). The normalised crop projection used by training is
``normalize_matrix(S) @ A @ K @ [R | t]`` (crop pixel ``i -> 2 i / (S - 1) - 1``).

Atomicity: every file is written to a temporary name and renamed into place; ``samples.npz`` and
then ``meta.json`` are written last, so a folder whose writing was interrupted has no
``meta.json`` and is refused by the loader with a clear error.

Labels never reach training: :class:`MaskPoseDataset` only reads ``gt/`` when built with
``with_gt=True`` (evaluation); the training path builds it with ``with_gt=False`` and the items then
have no ground-truth keys at all.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..geometry import Camera, normalize_matrix
from ..skeleton import get_joint_set
from ..weighting import geodesic_weights

FORMAT = "maskpose-dataset"
VERSION = 1
SUPPORTED_VERSIONS = (1,)

META_FILE = "meta.json"
SAMPLES_FILE = "samples.npz"
FRAMES_DIR = "frames"
MASKS_DIR = "masks"
WEIGHTS_DIR = "weights"
GT_DIR = "gt"
GT_JOINTS_FILE = "joints3d.npy"

#: per-view arrays of samples.npz and their trailing shapes (after [N, V])
VIEW_ARRAYS: dict[str, tuple[int, ...]] = {"K": (3, 3), "R": (3, 3), "t": (3,), "dist": (5,), "A": (3, 3), "valid": ()}
REQUIRED_ARRAYS = ("ids",) + tuple(VIEW_ARRAYS)
#: file extensions accepted for frames, in lookup order
FRAME_EXTS = (".png", ".jpg", ".jpeg")
#: entries of a dataset folder (removed by ``overwrite``; anything else in the folder is left alone)
DATASET_ENTRIES = (META_FILE, SAMPLES_FILE, FRAMES_DIR, MASKS_DIR, WEIGHTS_DIR, GT_DIR)


class DatasetError(ValueError):
    """A dataset folder is missing, incomplete or inconsistent (the message names the file)."""


# ============================================================================ small helpers
def frame_path(root: str | os.PathLike, sample_id: str, view: int, ext: str = ".png") -> Path:
    return Path(root) / FRAMES_DIR / f"{sample_id}_{view}{ext}"


def mask_path(root: str | os.PathLike, sample_id: str, view: int) -> Path:
    return Path(root) / MASKS_DIR / f"{sample_id}_{view}.png"


def weights_path(root: str | os.PathLike, sample_id: str, view: int) -> Path:
    return Path(root) / WEIGHTS_DIR / f"{sample_id}_{view}.npy"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _encode_image(img: np.ndarray, ext: str, jpeg_quality: int = 95) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:  # pragma: no cover - cv2 failure
        raise DatasetError(f"could not encode an image as {ext}")
    return buf.tobytes()


def read_frame(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """RGB uint8 ``[S, S, 3]`` from a png/jpg file (grayscale files are replicated to 3 channels)."""
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot read image file {path}")
    if img.dtype != np.uint8:
        raise DatasetError(f"{path}: expected an 8-bit image, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if size is not None and img.shape[:2] != (size, size):
        raise DatasetError(f"{path}: image is {img.shape[1]}x{img.shape[0]} px but meta.json says size = {size}")
    return img


def read_mask(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Boolean ``[S, S]`` mask from a uint8 0/255 png (pixels > 127 are foreground)."""
    path = Path(path)
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise DatasetError(f"cannot read mask file {path}")
    if size is not None and m.shape != (size, size):
        raise DatasetError(f"{path}: mask is {m.shape[1]}x{m.shape[0]} px but meta.json says size = {size}")
    return m > 127


# ============================================================================ meta / samples
def load_dataset_meta(root: str | os.PathLike) -> dict:
    """Read and validate ``root/meta.json``; raises :class:`DatasetError` naming the problem."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is not a folder")
    path = root / META_FILE
    if not path.is_file():
        raise DatasetError(
            f"{path} is missing: {root} is not a maskpose dataset folder, or its writing did not finish "
            f"(meta.json is written last)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot parse JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") not in SUPPORTED_VERSIONS:
        raise DatasetError(f"{path}: unsupported format version {meta.get('version')!r} "
                           f"(this maskpose reads version(s) {', '.join(map(str, SUPPORTED_VERSIONS))})")
    for key in ("size", "num_views", "num_samples"):
        val = meta.get(key)
        if not isinstance(val, int) or isinstance(val, bool) or val < (0 if key == "num_samples" else 1):
            raise DatasetError(f"{path}: {key!r} must be a positive integer, got {val!r}")
    if meta["size"] < 2:
        raise DatasetError(f"{path}: size must be at least 2, got {meta['size']}")
    meta.setdefault("joint_set", "h36m18")
    try:
        get_joint_set(meta["joint_set"])
    except KeyError as e:
        raise DatasetError(f"{path}: {e.args[0]}") from None
    return meta


def load_samples(root: str | os.PathLike, meta: Mapping | None = None) -> dict[str, np.ndarray]:
    """Read ``root/samples.npz`` and check every array against ``meta`` (shapes, dtypes, ids)."""
    root = Path(root)
    meta = load_dataset_meta(root) if meta is None else meta
    path = root / SAMPLES_FILE
    if not path.is_file():
        raise DatasetError(f"{path} is missing (meta.json is present, so the folder was not written by maskpose "
                           f"or samples.npz was deleted)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    N, V = meta["num_samples"], meta["num_views"]
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing array(s) {', '.join(missing)} (required: {', '.join(REQUIRED_ARRAYS)})")
    ids = arrays["ids"]
    if ids.shape != (N,) or ids.dtype.kind not in "US":
        raise DatasetError(f"{path}: ids must be a string array of shape [{N}] (num_samples in meta.json), "
                           f"got {ids.dtype} {list(ids.shape)}")
    ids = ids.astype(str)
    if len(set(ids.tolist())) != N:
        raise DatasetError(f"{path}: ids are not unique")
    bad = [s for s in ids.tolist() if not s or "/" in s or "\\" in s]
    if bad:
        raise DatasetError(f"{path}: invalid sample id {bad[0]!r} (empty or contains a path separator)")
    arrays["ids"] = ids
    for key, tail in VIEW_ARRAYS.items():
        arr = arrays[key]
        want = (N, V) + tail
        if arr.shape != want:
            raise DatasetError(f"{path}: {key} has shape {list(arr.shape)} but meta.json (num_samples={N}, "
                               f"num_views={V}) requires {list(want)}")
        if key == "valid":
            if arr.dtype != bool:
                raise DatasetError(f"{path}: valid must be a bool array, got {arr.dtype}")
        else:
            if arr.dtype.kind not in "fi":
                raise DatasetError(f"{path}: {key} must be numeric, got {arr.dtype}")
            arr = arr.astype(np.float64)
            if not np.isfinite(arr).all():
                raise DatasetError(f"{path}: {key} contains NaN or inf")
            arrays[key] = arr
    for key, arr in arrays.items():
        if key not in REQUIRED_ARRAYS and (arr.ndim == 0 or arr.shape[0] != N):
            raise DatasetError(f"{path}: optional per-sample field {key!r} must have leading dimension "
                               f"num_samples={N}, got shape {list(arr.shape)}")
    return arrays


def crop_projections(K: np.ndarray, R: np.ndarray, t: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """Normalised crop projections ``N(S) @ A @ K @ [R | t]`` ``[..., 3, 4]`` float64."""
    Rt = np.concatenate([R, t[..., None]], axis=-1)
    return normalize_matrix(size) @ A @ K @ Rt


# ============================================================================ writer
def write_sample_files(root: str | os.PathLike, sample_id: str, images: np.ndarray, masks: np.ndarray,
                       weights: np.ndarray | None = None, *, image_ext: str = ".png", jpeg_quality: int = 95,
                       compute_weights: bool = True) -> None:
    """Write the frame, mask and weight files of one sample (each atomically: temp file + rename).

    images ``[V,S,S,3]`` uint8 RGB; masks ``[V,S,S]`` (non-zero = person); weights ``[V,S,S]`` or None
    (computed with :func:`maskpose.weighting.geodesic_weights` when ``compute_weights``; views with an
    empty mask get no weight file). Safe to call from worker processes (one sample per call);
    :meth:`DatasetWriter.add_record` then records the sample's cameras.
    """
    root = Path(root)
    sid = str(sample_id)
    masks = np.asarray(masks).astype(bool)
    for v in range(len(images)):
        _atomic_write_bytes(frame_path(root, sid, v, image_ext),
                            _encode_image(cv2.cvtColor(np.ascontiguousarray(images[v]), cv2.COLOR_RGB2BGR),
                                          image_ext, jpeg_quality))
        _atomic_write_bytes(mask_path(root, sid, v), _encode_image(masks[v].astype(np.uint8) * 255, ".png"))
        w = None
        if weights is not None:
            w = weights[v]
        elif compute_weights and masks[v].any():
            w = geodesic_weights(masks[v])
        if w is not None:
            _atomic_write_bytes(weights_path(root, sid, v), _npy_bytes(np.asarray(w, dtype=np.float16)))


def _prepare_output_dir(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise DatasetError(f"cannot write the dataset: {root} exists and is not a folder")
    if root.is_dir():
        try:
            entries = list(root.iterdir())
        except OSError as e:
            raise DatasetError(f"cannot write to output folder {root}: {e.strerror or e}") from None
        if entries:
            if not overwrite:
                raise DatasetError(f"output folder {root} is not empty; use --overwrite (overwrite=True) to "
                                   f"replace a dataset there, or choose an empty folder")
            # invalidate first (meta.json), then remove only the dataset's own entries
            try:
                for name in DATASET_ENTRIES:
                    p = root / name
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                    elif p.exists() or p.is_symlink():
                        p.unlink()
            except OSError as e:
                raise DatasetError(f"cannot overwrite output folder {root}: {e.strerror or e}") from None
    try:
        root.mkdir(parents=True, exist_ok=True)
        for sub in (FRAMES_DIR, MASKS_DIR, WEIGHTS_DIR):
            (root / sub).mkdir(exist_ok=True)
        probe = root / f".write-test{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DatasetError(f"cannot write to output folder {root}: {e.strerror or e}") from None


class DatasetWriter:
    """Write a dataset folder sample by sample.

    Example::

        with DatasetWriter("out/", size=64, num_views=4, source="my-lab") as w:
            for ...:
                w.add("000001", images=imgs, masks=masks, K=K, R=R, t=t, A=A, activity="walk")
        # meta.json is written when the block ends without an exception

    ``add`` writes the sample's frame, mask and weight files at once (each atomically);
    ``close`` writes ``gt/joints3d.npy`` (when joints were given), ``samples.npz`` and finally
    ``meta.json``. If the ``with`` block raises, ``meta.json`` is not written and the folder is
    refused by the loader.

    Args:
        root: output folder; must be empty or absent unless ``overwrite`` (which removes only a
            previous dataset's entries: meta.json, samples.npz, frames/, masks/, weights/, gt/).
        size: crop size S (px). num_views: V.
        joint_set: name of the joint set of ``joints3d`` (default ``h36m18``).
        source: free text stored in meta.json (``synthetic``, ``h36m``, ...).
        image_ext: ``.png`` (lossless, default) or ``.jpg``.
        compute_weights: compute geodesic weights for views whose ``weights`` are not given
            (False: leave them to the loader, which computes and caches them on first use).
        meta: extra JSON-serialisable entries for meta.json.
    """

    def __init__(self, root: str | os.PathLike, size: int, num_views: int, *, joint_set: str = "h36m18",
                 source: str = "custom", overwrite: bool = False, image_ext: str = ".png",
                 jpeg_quality: int = 95, compute_weights: bool = True, created_by: str | None = None,
                 meta: Mapping[str, Any] | None = None) -> None:
        if int(size) < 2 or int(num_views) < 1:
            raise ValueError(f"DatasetWriter: size must be >= 2 and num_views >= 1, got {size}, {num_views}")
        image_ext = image_ext if image_ext.startswith(".") else "." + image_ext
        if image_ext.lower() not in FRAME_EXTS:
            raise ValueError(f"DatasetWriter: image_ext must be one of {FRAME_EXTS}, got {image_ext!r}")
        self.root = Path(root)
        self.size, self.num_views = int(size), int(num_views)
        self.joint_set = get_joint_set(joint_set)
        self.source, self.image_ext, self.jpeg_quality = source, image_ext.lower(), jpeg_quality
        self.compute_weights = compute_weights
        from .. import __version__
        self.created_by = created_by or f"maskpose {__version__}"
        self.extra_meta = dict(meta or {})
        self._ids: list[str] = []
        self._id_set: set[str] = set()
        self._arrays: dict[str, list[np.ndarray]] = {k: [] for k in VIEW_ARRAYS}
        self._fields: dict[str, list] = {}
        self._joints: list[np.ndarray | None] = []
        self._closed = False
        _prepare_output_dir(self.root, overwrite)

    # -------------------------------------------------------------- context manager
    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        # on error: leave the folder without meta.json (refused by the loader)

    def __len__(self) -> int:
        return len(self._ids)

    # -------------------------------------------------------------- add
    def add(self, sample_id: str, *, images: np.ndarray, masks: np.ndarray, K: np.ndarray, R: np.ndarray,
            t: np.ndarray, A: np.ndarray, dist: np.ndarray | None = None, valid: np.ndarray | None = None,
            weights: np.ndarray | None = None, joints3d: np.ndarray | None = None, **fields: Any) -> int:
        """Add one sample (V views of one instant); returns its index.

        images ``[V,S,S,3]`` uint8 RGB; masks ``[V,S,S]`` bool or uint8 (non-zero = person);
        K, R, A ``[V,3,3]``; t ``[V,3]``; dist ``[V,5]`` (default zeros); valid ``[V]`` (default: views
        with a non-empty mask); weights ``[V,S,S]`` (default: computed if ``compute_weights``);
        joints3d ``[J,3]`` mm (ground truth, optional but all-or-none); ``fields``: per-sample
        scalars (str, int, float, bool) stored as arrays in samples.npz, e.g. ``activity="walk"``.
        """
        V, S = self.num_views, self.size
        images = np.asarray(images)
        masks = np.asarray(masks)
        if images.shape != (V, S, S, 3) or images.dtype != np.uint8:
            raise ValueError(f"DatasetWriter: images must be uint8 [{V},{S},{S},3], got {images.dtype} {list(images.shape)}")
        if masks.shape != (V, S, S):
            raise ValueError(f"DatasetWriter: masks must have shape [{V},{S},{S}], got {list(masks.shape)}")
        masks = masks.astype(bool)
        if weights is not None and np.shape(weights) != (V, S, S):
            raise ValueError(f"DatasetWriter: weights must have shape [{V},{S},{S}], got {list(np.shape(weights))}")
        if valid is None:
            valid = masks.reshape(V, -1).any(axis=1)
        sid = self._check_record(sample_id, K=K, R=R, t=t, A=A, dist=dist, valid=valid, joints3d=joints3d, fields=fields)
        write_sample_files(self.root, sid, images, masks, weights, image_ext=self.image_ext,
                           jpeg_quality=self.jpeg_quality, compute_weights=self.compute_weights)
        return self._record(sid, K=K, R=R, t=t, A=A, dist=dist, valid=valid, joints3d=joints3d, fields=fields)

    def add_record(self, sample_id: str, *, K: np.ndarray, R: np.ndarray, t: np.ndarray, A: np.ndarray,
                   dist: np.ndarray | None = None, valid: np.ndarray | None = None,
                   joints3d: np.ndarray | None = None, **fields: Any) -> int:
        """Record a sample whose files were already written with :func:`write_sample_files` (e.g. by
        worker processes); same arguments as :meth:`add` without the pixel arrays (valid defaults to
        all views)."""
        sid = self._check_record(sample_id, K=K, R=R, t=t, A=A, dist=dist, valid=valid, joints3d=joints3d, fields=fields)
        return self._record(sid, K=K, R=R, t=t, A=A, dist=dist, valid=valid, joints3d=joints3d, fields=fields)

    def _check_record(self, sample_id, *, K, R, t, A, dist, valid, joints3d, fields) -> str:
        if self._closed:
            raise RuntimeError("DatasetWriter: add() after close()")
        sid = str(sample_id)
        if not sid or "/" in sid or "\\" in sid:
            raise ValueError(f"DatasetWriter: invalid sample id {sid!r} (empty or contains a path separator)")
        if sid in self._id_set:
            raise ValueError(f"DatasetWriter: duplicate sample id {sid!r}")
        V = self.num_views
        cams = {"K": K, "R": R, "t": t, "A": A, "dist": np.zeros((V, 5)) if dist is None else dist,
                "valid": np.ones(V, bool) if valid is None else valid}
        for key, tail in VIEW_ARRAYS.items():
            shape = np.shape(cams[key])
            if shape != (V,) + tail:
                raise ValueError(f"DatasetWriter: {key} must have shape {[V, *tail]}, got {list(shape)}")
        if joints3d is not None:
            self.joint_set.check_joints(np.asarray(joints3d), "DatasetWriter: joints3d")
            if np.shape(joints3d) != (self.joint_set.num_joints, 3):
                raise ValueError(f"DatasetWriter: joints3d must have shape [{self.joint_set.num_joints}, 3], "
                                 f"got {list(np.shape(joints3d))}")
        if self._ids and set(fields) != set(self._fields):
            raise ValueError(f"DatasetWriter: sample {sid!r} has fields {sorted(fields)} but earlier samples have "
                             f"{sorted(self._fields)} (every sample needs the same optional fields)")
        for name in fields:
            if name in REQUIRED_ARRAYS or name in ("images", "masks", "weights", "joints3d"):
                raise ValueError(f"DatasetWriter: field name {name!r} is reserved")
        return sid

    def _record(self, sid: str, *, K, R, t, A, dist, valid, joints3d, fields) -> int:
        V = self.num_views
        cams = {"K": K, "R": R, "t": t, "A": A, "dist": np.zeros((V, 5)) if dist is None else dist,
                "valid": np.ones(V, bool) if valid is None else valid}
        self._ids.append(sid)
        self._id_set.add(sid)
        for key in VIEW_ARRAYS:
            self._arrays[key].append(np.asarray(cams[key], dtype=bool if key == "valid" else np.float64))
        for name, val in fields.items():
            self._fields.setdefault(name, []).append(val)
        self._joints.append(None if joints3d is None else np.asarray(joints3d, dtype=np.float64))
        return len(self._ids) - 1

    # -------------------------------------------------------------- close
    def close(self, extra_meta: Mapping[str, Any] | None = None) -> Path:
        """Write gt (if any), ``samples.npz`` and, last, ``meta.json``; returns the folder."""
        if self._closed:
            return self.root
        N, V = len(self._ids), self.num_views
        have_gt = [j is not None for j in self._joints]
        if any(have_gt) and not all(have_gt):
            raise ValueError("DatasetWriter: joints3d was given for some samples but not all")
        arrays: dict[str, np.ndarray] = {"ids": np.array(self._ids, dtype=str)}
        for key, tail in VIEW_ARRAYS.items():
            arrays[key] = (np.stack(self._arrays[key]) if N else
                           np.zeros((0, V) + tail, dtype=bool if key == "valid" else np.float64))
        for name, vals in self._fields.items():
            arr = np.asarray(vals)
            if arr.dtype == object:
                raise ValueError(f"DatasetWriter: field {name!r} must hold scalars (str, int, float, bool)")
            arrays[name] = arr
        if N and all(have_gt):
            (self.root / GT_DIR).mkdir(exist_ok=True)
            _atomic_write_bytes(self.root / GT_DIR / GT_JOINTS_FILE, _npy_bytes(np.stack(self._joints)))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        _atomic_write_bytes(self.root / SAMPLES_FILE, buf.getvalue())
        meta = {
            "format": FORMAT, "version": VERSION, "joint_set": self.joint_set.name,
            "size": self.size, "num_views": V, "num_samples": N, "source": self.source,
            "created_by": self.created_by,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "image_format": self.image_ext.lstrip("."), "fields": sorted(self._fields),
            "has_gt": bool(N and all(have_gt)),
        }
        meta.update(self.extra_meta)
        meta.update(extra_meta or {})
        _atomic_write_bytes(self.root / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        self._closed = True
        return self.root


# ============================================================================ dataset
class MaskPoseDataset(Dataset):
    """A dataset folder as a ``torch.utils.data.Dataset`` (DESIGN.md §5 contract).

    ``dataset[i]`` is a dict of tensors for the V views of sample ``i``:

    ============== ================ ==========================================================
    images         [V,3,S,S] f32    RGB in 0..1
    masks          [V,1,S,S] f32    {0, 1}
    weights        [V,1,S,S] f32    geodesic loss weights (0 for invalid views without a mask)
    crop_cameras   [V,3,4]   f32    normalised crop projections ``N(S) A K [R|t]``
    valid          [V]       bool   views to use
    index          int              sample index ``i``
    gt_joints3d    [J,3]     f32    mm, world — only with ``with_gt=True``
    gt_joints2d    [V,J,2]   f32    normalised crop coordinates — only with ``with_gt=True``
    ============== ================ ==========================================================

    Args:
        root: the dataset folder.
        with_gt: read ``gt/joints3d.npy`` and add the ground-truth keys (evaluation only; the
            training path uses ``False`` so labels are structurally absent).
        preload: read every frame, mask and weight map into RAM once (uint8 / float16), so that
            training at small crop sizes is not I/O bound. ``False`` reads files per item.
        compute_missing_weights: compute (and try to cache) weight maps that are missing.
        read_frames: ``False`` leaves the frame files unread (``images`` all zero): for a mask-only
            detector, whose training never looks at them.

    Also exposed: ``ids``, ``K``, ``R``, ``t``, ``dist``, ``A``, ``valid`` (numpy, ``[N, V, ...]``),
    ``crop_cameras`` (float64 ``[N,V,3,4]``), ``fields`` (optional per-sample arrays, e.g.
    ``fields["activity"]``), :meth:`cameras` (raw :class:`~maskpose.geometry.Camera` objects),
    ``meta``, ``size``, ``num_views``, ``joint_set``, and ``gt_joints3d`` (``[N,J,3]`` float64) /
    ``gt_joints2d`` (``[N,V,J,2]`` float32), both None unless ``with_gt``.
    """

    def __init__(self, root: str | os.PathLike, with_gt: bool = False, preload: bool = True,
                 compute_missing_weights: bool = True, read_frames: bool = True) -> None:
        self.root = Path(root)
        self.read_frames = bool(read_frames)
        self.meta = load_dataset_meta(self.root)
        arrays = load_samples(self.root, self.meta)
        self.size: int = self.meta["size"]
        self.num_views: int = self.meta["num_views"]
        self.num_samples: int = self.meta["num_samples"]
        self.joint_set = get_joint_set(self.meta["joint_set"])
        self.ids: list[str] = arrays["ids"].tolist()
        self.K, self.R, self.t = arrays["K"], arrays["R"], arrays["t"]
        self.dist, self.A, self.valid = arrays["dist"], arrays["A"], arrays["valid"]
        self.fields: dict[str, np.ndarray] = {k: v for k, v in arrays.items() if k not in REQUIRED_ARRAYS}
        self.crop_cameras = crop_projections(self.K, self.R, self.t, self.A, self.size)
        self._crop_cameras_t = torch.from_numpy(self.crop_cameras.astype(np.float32))
        self.compute_missing_weights = compute_missing_weights
        self.with_gt = bool(with_gt)
        self.gt_joints3d: np.ndarray | None = None
        self.gt_joints2d: np.ndarray | None = None
        if self.with_gt:
            self._load_gt()
        self._frame_files = self._list_dir(FRAMES_DIR)
        self._mask_files = self._list_dir(MASKS_DIR)
        self._weight_files = self._list_dir(WEIGHTS_DIR)
        self.preloaded = bool(preload)
        if self.preloaded:
            N, V, S = self.num_samples, self.num_views, self.size
            self._images = np.zeros((N, V, S, S, 3), np.uint8)
            self._masks = np.zeros((N, V, S, S), bool)
            self._weights = np.zeros((N, V, S, S), np.float16)
            for i in range(N):
                for v in range(V):
                    img, m, w = self._read_view(i, v)
                    self._images[i, v], self._masks[i, v], self._weights[i, v] = img, m, w

    # -------------------------------------------------------------- files
    def _list_dir(self, name: str) -> set[str]:
        d = self.root / name
        try:
            return set(os.listdir(d)) if d.is_dir() else set()
        except OSError:
            return set()

    def view_files(self, i: int, v: int) -> dict[str, Path]:
        """Paths of the frame, mask and weight files of view ``v`` of sample ``i`` (frame: first existing
        extension, else the ``.png`` name)."""
        sid = self.ids[i]
        fp = frame_path(self.root, sid, v)
        for ext in FRAME_EXTS:
            if f"{sid}_{v}{ext}" in self._frame_files:
                fp = frame_path(self.root, sid, v, ext)
                break
        return {"frame": fp, "mask": mask_path(self.root, sid, v), "weights": weights_path(self.root, sid, v)}

    def _read_view(self, i: int, v: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        S = self.size
        files = self.view_files(i, v)
        valid = bool(self.valid[i, v])
        have_frame = self.read_frames and (files["frame"].name in self._frame_files or files["frame"].is_file())
        have_mask = files["mask"].name in self._mask_files or files["mask"].is_file()
        if valid and self.read_frames and not have_frame:
            raise DatasetError(f"frame file {files['frame']} is missing (sample {self.ids[i]!r}, view {v}; "
                               f"looked for {', '.join(FRAME_EXTS)})")
        if valid and not have_mask:
            raise DatasetError(f"mask file {files['mask']} is missing (sample {self.ids[i]!r}, view {v})")
        img = read_frame(files["frame"], S) if have_frame else np.zeros((S, S, 3), np.uint8)
        m = read_mask(files["mask"], S) if have_mask else np.zeros((S, S), bool)
        if not m.any():
            if valid:
                raise DatasetError(f"mask file {files['mask']} is empty (no foreground pixel) but view {v} of "
                                   f"sample {self.ids[i]!r} is marked valid; mark it invalid or fix the mask")
            return img, m, np.zeros((S, S), np.float16)
        return img, m, self._weights_for(files["weights"], m)

    def _weights_for(self, path: Path, mask: np.ndarray) -> np.ndarray:
        S = self.size
        if path.name in self._weight_files or path.is_file():
            try:
                w = np.load(path, allow_pickle=False)
                if w.shape == (S, S) and np.isfinite(w).all():
                    return w.astype(np.float16)
            except (OSError, ValueError):
                pass  # unreadable or truncated cache: recompute
        if not self.compute_missing_weights:
            raise DatasetError(f"weight file {path} is missing or unreadable (compute_missing_weights=False)")
        w = geodesic_weights(mask).astype(np.float16)
        try:
            path.parent.mkdir(exist_ok=True)
            _atomic_write_bytes(path, _npy_bytes(w))
        except OSError:
            pass  # read-only dataset: keep the weights in memory only
        return w

    def _load_gt(self) -> None:
        path = self.root / GT_DIR / GT_JOINTS_FILE
        if not path.is_file():
            raise DatasetError(f"with_gt=True but {path} is missing: this dataset has no ground-truth joints")
        try:
            gt = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DatasetError(f"{path}: cannot read ({e})") from None
        J = self.joint_set.num_joints
        if gt.shape != (self.num_samples, J, 3):
            raise DatasetError(f"{path}: shape {list(gt.shape)} but expected [{self.num_samples}, {J}, 3] "
                               f"(num_samples, joints of {self.joint_set.name}, xyz)")
        self.gt_joints3d = gt.astype(np.float64)
        Xh = np.concatenate([self.gt_joints3d, np.ones(self.gt_joints3d.shape[:-1] + (1,))], axis=-1)
        proj = np.einsum("nvij,nkj->nvki", self.crop_cameras, Xh)
        #: [N, V, J, 2] float32 GT projections in normalised crop coordinates (``_gt2d``: same array)
        self.gt_joints2d = (proj[..., :2] / proj[..., 2:3]).astype(np.float32)
        self._gt2d = self.gt_joints2d

    # -------------------------------------------------------------- access
    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = int(index)
        if i < 0:
            i += self.num_samples
        if not 0 <= i < self.num_samples:
            raise IndexError(f"sample index {index} out of range for {self.num_samples} samples")
        if self.preloaded:
            imgs, masks, weights = self._images[i], self._masks[i], self._weights[i]
        else:
            views = [self._read_view(i, v) for v in range(self.num_views)]
            imgs = np.stack([x[0] for x in views])
            masks = np.stack([x[1] for x in views])
            weights = np.stack([x[2] for x in views])
        item: dict[str, Any] = {
            "images": torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(255.0),
            "masks": torch.from_numpy(masks[:, None].astype(np.float32)),
            "weights": torch.from_numpy(weights[:, None].astype(np.float32)),
            "crop_cameras": self._crop_cameras_t[i].clone(),
            "valid": torch.from_numpy(self.valid[i].copy()),
            "index": i,
        }
        if self.with_gt:
            item["gt_joints3d"] = torch.from_numpy(self.gt_joints3d[i].astype(np.float32))
            item["gt_joints2d"] = torch.from_numpy(self._gt2d[i].copy())
        return item

    def cameras(self, i: int) -> list[Camera]:
        """Raw (full-image, undistorted-pinhole ``K``; ``dist`` as recorded) cameras of sample ``i``."""
        sid = self.ids[i]
        return [Camera(K=self.K[i, v], R=self.R[i, v], t=self.t[i, v], dist=self.dist[i, v], name=f"{sid}_{v}")
                for v in range(self.num_views)]

    def sample_info(self, i: int) -> dict[str, Any]:
        """Id and optional per-sample fields (``activity``, ``frame``, ``sequence``, ...) of sample ``i``."""
        info: dict[str, Any] = {"id": self.ids[i]}
        for k, arr in self.fields.items():
            val = arr[i]
            info[k] = val.item() if isinstance(val, np.generic) else val
        return info

    def __repr__(self) -> str:
        return (f"MaskPoseDataset({str(self.root)!r}, N={self.num_samples}, V={self.num_views}, S={self.size}, "
                f"with_gt={self.with_gt}, preload={self.preloaded})")


__all__ = [
    "FORMAT", "VERSION", "DatasetError", "DatasetWriter", "MaskPoseDataset", "load_dataset_meta",
    "load_samples", "crop_projections", "read_frame", "read_mask", "frame_path", "mask_path", "weights_path",
    "write_sample_files",
]
