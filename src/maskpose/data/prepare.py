"""``maskpose prepare``: the user's own videos (or image folders) -> a maskpose dataset folder.

Pipeline per instant (frame index ``i``, the same in every view):

1. decode frame ``i`` of every view (``start``, ``stride``, ``max_frames`` choose the instants);
2. foreground mask from the footage itself (:mod:`maskpose.data.masks`: MOG2 / KNN / median background
   model, or the user's mask files), never from pose labels;
3. the main person (:class:`~maskpose.data.masks.PersonSelector`: tracked over time, chosen consistently
   across calibrated views; other people and noise removed), optional GrabCut refinement;
4. the crop: the person's box in the **undistorted** image grown by 15 % (``crop_margin``), made square
   (:func:`~maskpose.geometry.crop_affine`), resampled to ``size`` px directly from the distorted frame
   through the lens model (one remap, area-averaged when shrinking), so crop cameras are exact pinholes
   ``A @ K @ [R | t]`` (docs/dataset-format.md);
5. frame, mask and geodesic weights written at once (:func:`~maskpose.data.folder.write_sample_files`).

**Views and validity.** A view without a person (empty mask, only components below ``min_area``, an
inconsistent choice across views, an undecodable frame) is ``valid = False`` with zero files and the
identity crop; a view whose person touches the image border is ``valid = False`` too (the mask is cut
there, which would pull the body inside the image) but keeps its crop. An instant with fewer than 1
(one view) / 2 (several views) valid views is skipped. Every reason is counted in the summary.

**Cameras.** ``calibration`` is a calibration file (:func:`maskpose.data.calibration.load_calibration`:
Pose2Sim / anipose toml, Qualisys .qca.txt, EasyMocap yml, H36M) or a list of
:class:`~maskpose.geometry.Camera`; cameras are matched to the views by name
(:func:`~maskpose.data.calibration.match_cameras`) and adapted to the video resolution
(:func:`~maskpose.data.calibration.rescale_camera`). One view without calibration gets
:func:`default_camera`: principal point at the image centre, focal length from a 55 degree field of view
across the **longer** image side, no distortion, identity pose (world = camera frame), so 3D results are
only defined up to scale and depth. Several views need a calibration.

**Resuming.** Work is recorded in ``OUT/.prepare/``: ``config.json`` (the settings and inputs), and per
finished instant a record ``records/{frame}.npz`` written atomically *after* the instant's image files
(and after the person tracker's state ``track/{frame}.npz``). Re-running with the same settings on the same
``OUT`` skips finished instants and continues with the tracker state of the last one, so the result is the
same as an uninterrupted run (background models are frozen after their warm-up, which does not depend on
what was processed; GrabCut is not bit-reproducible). ``meta.json`` and ``samples.npz`` are written last
from the records; until then the folder is refused by the loader. ``overwrite=True`` starts over. Other
settings on an unfinished ``OUT`` are refused with the differing keys named.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from ..geometry import Camera, crop_affine, undistort_points
from .folder import (FRAMES_DIR, MASKS_DIR, META_FILE, SAMPLES_FILE, WEIGHTS_DIR, FORMAT, VERSION,
                     _atomic_write_bytes, _prepare_output_dir, load_dataset_meta, write_sample_files)
from .masks import MASKERS, FolderMasks, PersonSelector, grabcut_refine, make_segmenter, touches_border
from .video import FrameSource, VideoWarning, common_frame_count, open_views

DEFAULT_FOV_DEG = 55.0
CROP_MARGIN = 1.15
PREPARE_DIR = ".prepare"
CONFIG_FILE = "config.json"
RECORDS_DIR = "records"
TRACK_DIR = "track"
#: bump when the way samples are computed changes (an unfinished OUT of another version is refused)
PREPARE_VERSION = 1


class PrepareError(ValueError):
    """The inputs or the output folder cannot be used for ``prepare`` (the message says why)."""


# ============================================================================ cameras
def default_camera(size: tuple[int, int], fov_deg: float = DEFAULT_FOV_DEG, name: str = "") -> Camera:
    """Pinhole camera for an uncalibrated view of ``size = (W, H)`` px: principal point at the image centre
    ``((W - 1) / 2, (H - 1) / 2)``, ``f = max(W, H) / (2 tan(fov / 2))`` (``fov_deg`` across the longer side),
    no distortion, ``R = I``, ``t = 0``."""
    W, H = size
    if not 1.0 < fov_deg < 179.0:
        raise ValueError(f"default_camera: fov_deg must be in (1, 179), got {fov_deg}")
    f = max(W, H) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    K = np.array([[f, 0.0, (W - 1) / 2.0], [0.0, f, (H - 1) / 2.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=np.eye(3), t=np.zeros(3), size=(int(W), int(H)), name=name)


def resolve_cameras(calibration: str | os.PathLike | Sequence[Camera] | None, sources: Sequence[FrameSource],
                    fov_deg: float = DEFAULT_FOV_DEG) -> tuple[list[Camera], str]:
    """One camera per view (in view order, adapted to each view's image size) and a description.

    ``calibration`` None: :func:`default_camera` for one view, :class:`PrepareError` for several. A path is
    read with :func:`~maskpose.data.calibration.load_calibration`; a path or a list of cameras with names is
    matched to the view names with :func:`~maskpose.data.calibration.match_cameras` (a list of unnamed
    cameras is taken in view order and must have one camera per view).
    """
    names = [s.name for s in sources]
    if calibration is None:
        if len(sources) > 1:
            raise PrepareError(f"{len(sources)} views ({names}) need a calibration (calibration=FILE): without it the "
                               f"views cannot be related; prepare each view on its own for single-view data")
        s = sources[0]
        return [default_camera(s.size, fov_deg, name=s.name)], (
            f"default pinhole (no calibration): principal point at the image centre, {fov_deg:g} deg field of view "
            f"across the longer side, no distortion, identity pose")
    from . import calibration as calib  # helper module: readers, matching, size adaptation

    if isinstance(calibration, (str, os.PathLike)):
        source = str(calibration)
        cams = calib.load_calibration(calibration)
        cams = calib.match_cameras(cams, names, source=source)
    else:
        cams = list(calibration)
        source = "the given cameras"
        if not all(isinstance(c, Camera) for c in cams):
            raise PrepareError("calibration must be a file path or a list of maskpose.geometry.Camera")
        if all(c.name for c in cams):
            cams = calib.match_cameras(cams, names, source=source)
        elif len(cams) != len(sources):
            raise PrepareError(f"{len(cams)} cameras given for {len(sources)} views ({names}); give one camera per "
                               f"view, in view order (or name the cameras like the views)")
    out = []
    for cam, s in zip(cams, sources):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c = calib.rescale_camera(cam, s.size)
        for w in caught:
            warnings.warn(f"view {s.name!r}: {w.message}", VideoWarning, stacklevel=2)
        out.append(Camera(K=c.K, R=c.R, t=c.t, dist=c.dist, size=c.size, name=s.name))
    return out, f"calibrated ({source})"


# ============================================================================ crops
def distort_normalized(xn: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """OpenCV distortion ``(k1, k2, p1, p2, k3)`` of normalised image coordinates ``xn [..., 2]``."""
    k1, k2, p1, p2, k3 = (float(v) for v in np.asarray(dist, np.float64).reshape(-1)[:5])
    x, y = xn[..., 0], xn[..., 1]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], axis=-1)


def crop_grid(A: np.ndarray, K: np.ndarray, dist: np.ndarray, size: int, supersample: int = 1) -> np.ndarray:
    """Where the crop's (sub-)pixels come from in the **distorted** full image: ``[S*ss, S*ss, 2]`` px.

    Sub-pixel centres of crop pixel ``i`` are ``(k + 0.5) / ss - 0.5``; they are mapped to the undistorted
    image by ``A^-1``, then through the lens model (``K``, ``dist``) to the recorded image.
    """
    ss = max(1, int(supersample))
    n = size * ss
    u = (np.arange(n, dtype=np.float64) + 0.5) / ss - 0.5
    uu, vv = np.meshgrid(u, u)
    pts = np.stack([uu, vv, np.ones_like(uu)], axis=-1) @ np.linalg.inv(A).T
    img = pts[..., :2] / pts[..., 2:3]
    d = np.asarray(dist, np.float64).reshape(-1)
    if np.any(d != 0):
        Kinv = np.linalg.inv(K)
        xn = np.concatenate([img, np.ones_like(img[..., :1])], axis=-1) @ Kinv.T
        xd = distort_normalized(xn[..., :2] / xn[..., 2:3], d)
        img = (np.concatenate([xd, np.ones_like(xd[..., :1])], axis=-1) @ K.T)[..., :2]
    return img


def sample_crop(image: np.ndarray, grid: np.ndarray, size: int, full_size: tuple[int, int]) -> np.ndarray:
    """Resample ``image`` (the full frame ``full_size = (W, H)`` at any resolution, e.g. a mask at working
    resolution) at ``grid [S*ss, S*ss, 2]`` (full-image px) and area-average to ``[S, S, ...]``.
    Outside the image: 0."""
    h, w = image.shape[:2]
    sx, sy = w / full_size[0], h / full_size[1]
    mx = ((grid[..., 0] + 0.5) * sx - 0.5).astype(np.float32)
    my = ((grid[..., 1] + 0.5) * sy - 0.5).astype(np.float32)
    out = cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if out.shape[0] != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out


def mask_outline_image_px(mask: np.ndarray, full_size: tuple[int, int], camera: Camera) -> np.ndarray:
    """Corners of the boundary pixels of ``mask`` (any resolution) as **undistorted** full-image px ``[N, 2]``."""
    cs, _ = cv2.findContours(np.ascontiguousarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not cs:
        return np.zeros((0, 2))
    p = np.concatenate([c.reshape(-1, 2) for c in cs]).astype(np.float64)
    off = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])
    p = (p[:, None, :] + off[None]).reshape(-1, 2)
    return mask_px_to_image(p, mask.shape, full_size, camera)


def mask_px_to_image(p: np.ndarray, mask_shape: tuple[int, int], full_size: tuple[int, int], camera: Camera) -> np.ndarray:
    """Mask px ``[N, 2]`` (a mask of ``mask_shape = (h, w)`` covering the frame) -> undistorted full-image px."""
    h, w = mask_shape
    sx, sy = full_size[0] / w, full_size[1] / h
    q = np.stack([(p[:, 0] + 0.5) * sx - 0.5, (p[:, 1] + 0.5) * sy - 0.5], axis=1)
    return undistort_points(q, camera.K, camera.dist) if np.any(camera.dist != 0) else q


def person_crop(mask: np.ndarray, full_size: tuple[int, int], camera: Camera, size: int,
                margin: float = CROP_MARGIN) -> tuple[np.ndarray, float]:
    """Crop affine ``A [3, 3]`` (undistorted image px -> crop px) of the square around the person's box in
    the undistorted image grown by ``margin``, and the square's side in px."""
    pts = mask_outline_image_px(mask, full_size, camera)
    if len(pts) == 0:
        raise ValueError("person_crop: empty mask")
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    side = max(x1 - x0, y1 - y0, 1.0) * margin
    return crop_affine(((x0 + x1) / 2.0, (y0 + y1) / 2.0), side, size), float(side)


# ============================================================================ output folder state
def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


def _camera_digest(cams: Sequence[Camera]) -> str:
    h = hashlib.sha1()
    for c in cams:
        for a in (c.K, c.R, c.t, c.dist):
            h.update(np.round(np.asarray(a, np.float64), 9).tobytes())
    return h.hexdigest()


def _config_diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _only_empty_dataset_dirs(root: Path) -> bool:
    try:
        entries = list(root.iterdir())
    except OSError:
        return False
    for e in entries:
        if e.name in (FRAMES_DIR, MASKS_DIR, WEIGHTS_DIR) and e.is_dir() and not any(e.iterdir()):
            continue
        return False
    return True


def _setup_output(out: Path, config: dict, overwrite: bool) -> None:
    prep = out / PREPARE_DIR
    cfg_path = prep / CONFIG_FILE
    if overwrite:
        _prepare_output_dir(out, overwrite=True)
        shutil.rmtree(prep, ignore_errors=True)
    elif cfg_path.is_file():
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:
            raise PrepareError(f"{cfg_path}: cannot read the settings of the earlier prepare ({e}); pass overwrite=True "
                               f"(--overwrite) to start over") from None
        diff = _config_diff(old, config)
        if diff:
            raise PrepareError(f"{out} holds a prepare with other settings ({'; '.join(diff)}); pass overwrite=True "
                               f"(--overwrite) to start over, or choose another output folder")
        for sub in (FRAMES_DIR, MASKS_DIR, WEIGHTS_DIR):
            (out / sub).mkdir(parents=True, exist_ok=True)
    else:
        if out.is_dir() and _only_empty_dataset_dirs(out):
            pass
        elif out.exists() and not out.is_dir():
            raise PrepareError(f"output path {out} exists and is not a folder")
        elif out.is_dir() and any(out.iterdir()):
            raise PrepareError(f"output folder {out} is not empty (and holds no unfinished prepare to resume); pass "
                               f"overwrite=True (--overwrite) to replace a dataset there, or choose an empty folder")
        _prepare_output_dir(out, overwrite=False)
    (prep / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
    (prep / TRACK_DIR).mkdir(parents=True, exist_ok=True)
    if not cfg_path.is_file():
        _atomic_write_bytes(cfg_path, (json.dumps(config, indent=2) + "\n").encode())


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _record_path(out: Path, frame: int) -> Path:
    return out / PREPARE_DIR / RECORDS_DIR / f"{frame:08d}.npz"


def _track_path(out: Path, frame: int) -> Path:
    return out / PREPARE_DIR / TRACK_DIR / f"{frame:08d}.npz"


def _load_record(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None  # unreadable: recompute the instant


# ============================================================================ prepare
def prepare_dataset(inputs: str | os.PathLike | list, out: str | os.PathLike, *,
                    calibration: str | os.PathLike | list[Camera] | None = None, size: int = 128, stride: int = 1,
                    start: int = 0, max_frames: int | None = None, masks_dir: str | os.PathLike | None = None,
                    masker: str = "median", grabcut: bool = False, overwrite: bool = False,
                    progress: Callable[[int, int], None] | None = None, crop_margin: float = CROP_MARGIN,
                    fov_deg: float = DEFAULT_FOV_DEG, work_size: int = 640, min_area: float = 0.002,
                    allow_border: bool = False, image_ext: str = ".png") -> dict[str, Any]:
    """Turn videos / image folders into a dataset folder (docs/dataset-format.md); see the module docstring.

    Args:
        inputs: a folder of videos (one per view), one video, an image folder, a folder of image folders
            (one per view), or a list of such per-view paths (:func:`maskpose.data.video.open_views`).
        out: output dataset folder (created; resumed when it holds an unfinished prepare with the same
            settings).
        calibration: calibration file, list of :class:`~maskpose.geometry.Camera`, or None (one view only).
        size: crop size S (px). stride, start, max_frames: the instants ``start, start + stride, ...``, at most
            ``max_frames`` of them.
        masks_dir: user-supplied masks (:class:`~maskpose.data.masks.FolderMasks`); overrides ``masker``.
        masker: ``"median"`` (default), ``"mog2"`` or ``"knn"`` background model (see
            :mod:`maskpose.data.masks`; on the Pose2Sim demo the median model's masks were clearly the most
            complete, ``benchmarks/pose2sim_demo.py``).
        grabcut: refine each chosen mask with GrabCut.
        overwrite: replace an existing dataset / unfinished prepare in ``out``.
        progress: ``progress(done, total)`` after each instant (resumed instants count as done).
        crop_margin: growth of the person's box before it is made square (1.15 = 15 %).
        fov_deg: field of view of :func:`default_camera` (uncalibrated single view).
        work_size: longer side (px) at which background models segment.
        min_area: smallest person component as a fraction of the image.
        allow_border: keep views whose person touches the image border valid.
        image_ext: ``.png`` or ``.jpg`` crops.
    Returns:
        summary dict: ``out``, ``num_samples``, ``num_views``, ``view_names``, ``fps``, ``image_size``,
        ``frames`` (source frame index of each sample), ``processed`` (instants), ``resumed`` (instants found
        finished), ``skipped`` (``{reason: count}`` of instants left out), ``invalid_views``
        (``{view: {reason: count}}``), ``valid_fraction`` (per view), ``seconds``, ``frames_per_s`` (instants
        per second computed in this run, background models included), ``first_instant_seconds`` (the first
        instant, which includes learning the background models), ``steady_frames_per_s`` (the instants after
        it), ``warnings``.
    Raises:
        VideoError, CalibrationError, MaskError, PrepareError (all ``ValueError``) for unusable inputs.
    """
    t0 = time.perf_counter()
    out = Path(out)
    size = int(size)
    if size < 8:
        raise PrepareError(f"size must be at least 8 px, got {size}")
    if int(stride) < 1:
        raise PrepareError(f"stride must be >= 1, got {stride}")
    if int(start) < 0:
        raise PrepareError(f"start must be >= 0, got {start}")
    if max_frames is not None and int(max_frames) < 1:
        raise PrepareError(f"max_frames must be >= 1, got {max_frames}")
    if masks_dir is None and masker not in MASKERS:
        raise PrepareError(f"unknown masker {masker!r}; choose one of {', '.join(MASKERS)} (or give masks_dir)")
    if not crop_margin >= 1.0:
        raise PrepareError(f"crop_margin must be >= 1, got {crop_margin}")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sources = open_views(inputs)
        try:
            num_frames = common_frame_count(sources)
            cameras, camera_desc = resolve_cameras(calibration, sources, fov_deg)
        except BaseException:
            for s in sources:
                s.close()
            raise
    for w in caught:
        notes.append(str(w.message))
        warnings.warn(str(w.message), w.category if issubclass(w.category, Warning) else VideoWarning, stacklevel=2)
    try:
        return _run(sources, cameras, camera_desc, num_frames, out, notes, t0, size=size, stride=int(stride),
                    start=int(start), max_frames=None if max_frames is None else int(max_frames), masks_dir=masks_dir,
                    masker=masker, grabcut=bool(grabcut), overwrite=overwrite, progress=progress,
                    crop_margin=float(crop_margin), work_size=int(work_size), min_area=float(min_area),
                    allow_border=bool(allow_border), image_ext=image_ext, calibration=calibration)
    finally:
        for s in sources:
            s.close()


def _run(sources, cameras, camera_desc, num_frames, out: Path, notes, t0, *, size, stride, start, max_frames,
         masks_dir, masker, grabcut, overwrite, progress, crop_margin, work_size, min_area, allow_border, image_ext,
         calibration) -> dict[str, Any]:
    V = len(sources)
    names = [s.name for s in sources]
    if start >= num_frames:
        raise PrepareError(f"start = {start} but the input has only {num_frames} frames")
    indices = list(range(start, num_frames, stride))
    if max_frames is not None:
        indices = indices[:max_frames]
    image_ext = image_ext if image_ext.startswith(".") else "." + image_ext
    width = max(6, len(str(num_frames - 1)))
    min_valid = 1 if V == 1 else 2
    config = _jsonable({
        "prepare_version": PREPARE_VERSION, "inputs": [str(s.path.resolve()) for s in sources], "view_names": names,
        "num_frames": num_frames, "image_size": [list(s.size) for s in sources], "size": size, "stride": stride,
        "start": start, "max_frames": max_frames, "masker": None if masks_dir is not None else masker,
        "masks_dir": None if masks_dir is None else str(Path(masks_dir).resolve()), "grabcut": grabcut,
        "crop_margin": crop_margin, "work_size": work_size, "min_area": min_area, "allow_border": allow_border,
        "image_ext": image_ext, "cameras": _camera_digest(cameras),
    })
    # ---- segmenters (one per view), built before OUT is touched: an unusable masker (e.g. mediapipe
    # missing) leaves no unfinished folder behind that a re-run with another masker would refuse
    segs = []
    for _ in sources:
        seg = make_segmenter(masker, masks_dir, work_size=work_size) if masks_dir is None else make_segmenter(
            masker, masks_dir)
        if isinstance(seg, FolderMasks):
            seg.set_views(names)
        segs.append(seg)
    _setup_output(out, config, overwrite)
    meta_path = out / META_FILE
    # ---- finished instants (a prefix of `indices`: instants are processed in order)
    records: dict[int, dict] = {}
    for i in indices:
        p = _record_path(out, i)
        rec = _load_record(p) if p.is_file() else None
        if rec is None:
            break
        records[i] = rec
    done = len(records)
    todo = indices[done:]
    selector = _make_selector(sources, cameras, min_area)
    if done and todo:
        tp = _track_path(out, indices[done - 1])
        st = _load_record(tp) if tp.is_file() else None
        if st is None:
            notes.append(f"tracker state of frame {indices[done - 1]} missing: tracking restarts at frame {todo[0]}")
        else:
            selector.load_state(st)
    if todo and meta_path.exists():
        meta_path.unlink()  # the folder is being changed: refuse it until it is complete again
    total = len(indices)
    if progress is not None and done:
        progress(done, total)
    t_run = time.perf_counter()
    t_first = None
    if todo:
        streams = [seg(src, todo) for seg, src in zip(segs, sources)]
        prev_frame = indices[done - 1] if done else None
        for items in zip(*streams):
            i = items[0][0]
            rec = _process_instant(i, items, sources, cameras, selector, out, size=size, crop_margin=crop_margin,
                                   grabcut=grabcut, allow_border=allow_border, min_valid=min_valid,
                                   image_ext=image_ext, width=width)
            _atomic_write_bytes(_track_path(out, i), _npz_bytes(**selector.state()))
            _atomic_write_bytes(_record_path(out, i), _npz_bytes(**rec))
            if prev_frame is not None:
                try:
                    _track_path(out, prev_frame).unlink()
                except OSError:
                    pass
            prev_frame = i
            records[i] = rec
            done += 1
            if t_first is None:
                t_first = time.perf_counter() - t_run
            if progress is not None:
                progress(done, total)
    computed = len(todo)
    t_comp = time.perf_counter() - t_run
    return _assemble(out, indices, records, sources, cameras, camera_desc, notes, t0, computed=computed,
                     t_comp=t_comp, t_first=t_first, size=size, width=width, config=config, calibration=calibration)


def _make_selector(sources, cameras, min_area) -> PersonSelector:
    V = len(sources)
    if V > 1:
        projections = [c.P for c in cameras]
        to_image = [_MaskToImage(s.size, c) for s, c in zip(sources, cameras)]
        return PersonSelector(V, projections=projections, to_image=to_image, min_area=min_area)
    return PersonSelector(V, min_area=min_area)


class _MaskToImage:
    """Mask px -> undistorted image px for one view; the mask resolution is set before each use."""

    def __init__(self, full_size: tuple[int, int], camera: Camera) -> None:
        self.full_size, self.camera = full_size, camera
        self.mask_shape: tuple[int, int] | None = None

    def __call__(self, p: np.ndarray) -> np.ndarray:
        shape = self.mask_shape or (self.full_size[1], self.full_size[0])
        return mask_px_to_image(np.asarray(p, np.float64), shape, self.full_size, self.camera)


def _process_instant(i, items, sources, cameras, selector, out, *, size, crop_margin, grabcut, allow_border,
                     min_valid, image_ext, width) -> dict:
    V = len(sources)
    frames = [it[1] for it in items]
    masks = [it[2] for it in items]
    if selector.to_image is not None:
        for v, m in enumerate(masks):
            if m is not None:
                selector.to_image[v].mask_shape = m.shape
    sels = selector.select(masks)
    S = size
    images = np.zeros((V, S, S, 3), np.uint8)
    crop_masks = np.zeros((V, S, S), bool)
    A = np.tile(np.eye(3), (V, 1, 1))
    valid = np.zeros(V, bool)
    reasons = []
    side = np.zeros(V)
    for v, (src, cam, sel) in enumerate(zip(sources, cameras, sels)):
        if sel.mask is None:
            reasons.append(sel.reason)
            continue
        m = sel.mask
        if grabcut:
            m = grabcut_refine(frames[v], m)
        a, side[v] = person_crop(m, src.size, cam, S, crop_margin)
        ss = int(np.clip(math.ceil(side[v] / S), 1, 4))
        grid = crop_grid(a, cam.K, cam.dist, S, ss)
        cm = sample_crop(m.astype(np.float32), grid, S, src.size) > 0.5
        if not cm.any():
            reasons.append("too_small")
            continue
        A[v] = a
        images[v] = sample_crop(frames[v], grid, S, src.size)
        crop_masks[v] = cm
        if not allow_border and touches_border(m):
            reasons.append("border")
            continue
        valid[v] = True
        reasons.append("ok")
    sid = f"{i:0{width}d}"
    n_valid = int(valid.sum())
    status = "ok"
    if n_valid < min_valid:
        status = "no_person" if not crop_masks.any() and all(r in ("empty", "too_small", "no_frame") for r in reasons) \
            else "too_few_views"
        if V == 1:
            status = reasons[0] if reasons[0] != "ok" else "no_person"
    else:
        write_sample_files(out, sid, images, crop_masks, image_ext=image_ext)
    return {"frame": np.array(i), "id": np.array(sid), "status": np.array(status), "valid": valid, "A": A,
            "reasons": np.array(reasons), "area": crop_masks.reshape(V, -1).sum(1), "side": side}


def _assemble(out: Path, indices, records, sources, cameras, camera_desc, notes, t0, *, computed, t_comp, t_first,
              size, width, config, calibration) -> dict[str, Any]:
    from .. import __version__

    V = len(sources)
    names = [s.name for s in sources]
    ok = [records[i] for i in indices if str(records[i]["status"]) == "ok"]
    skipped = Counter(str(records[i]["status"]) for i in indices if str(records[i]["status"]) != "ok")
    invalid: dict[str, Counter] = {n: Counter() for n in names}
    for i in indices:
        for v, r in enumerate(records[i]["reasons"].tolist()):
            if r != "ok":
                invalid[names[v]][r] += 1
    N = len(ok)
    if N == 0:
        raise PrepareError(f"no usable instant in {len(indices)} processed frames (skipped: {dict(skipped)}); the masks "
                           f"found no person (check the input, try another masker, or supply masks with masks_dir)")
    arrays: dict[str, np.ndarray] = {
        "ids": np.array([str(r["id"]) for r in ok], dtype=str),
        "K": np.repeat(np.stack([c.K for c in cameras])[None], N, 0),
        "R": np.repeat(np.stack([c.R for c in cameras])[None], N, 0),
        "t": np.repeat(np.stack([c.t for c in cameras])[None], N, 0),
        "dist": np.repeat(np.stack([c.dist for c in cameras])[None], N, 0),
        "A": np.stack([r["A"] for r in ok]).astype(np.float64),
        "valid": np.stack([r["valid"] for r in ok]).astype(bool),
        "frame": np.array([int(r["frame"]) for r in ok], dtype=np.int64),
    }
    fps = [s.fps for s in sources]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_write_bytes(out / SAMPLES_FILE, buf.getvalue())
    for v, n in enumerate(names):
        if invalid[n]:
            k = sum(invalid[n].values())
            notes.append(f"view {n!r}: no valid person in {k} of {len(indices)} frames ({dict(invalid[n])})")
    meta = {
        "format": FORMAT, "version": VERSION, "joint_set": "h36m18", "size": size, "num_views": V, "num_samples": N,
        "source": "video", "created_by": f"maskpose {__version__} prepare",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "image_format": config["image_ext"].lstrip("."),
        "fields": ["frame"], "has_gt": False,
        "view_names": names, "fps": fps[0], "view_fps": fps, "image_size": [list(s.size) for s in sources],
        "inputs": config["inputs"], "camera_model": camera_desc,
        "calibration": str(calibration) if isinstance(calibration, (str, os.PathLike)) else (
            None if calibration is None else "cameras given in code"),
        "cameras": [c.to_dict() for c in cameras],
        "prepare": {k: config[k] for k in ("stride", "start", "max_frames", "masker", "masks_dir", "grabcut",
                                           "crop_margin", "work_size", "min_area", "allow_border", "num_frames")},
        "skipped": dict(skipped), "invalid_views": {n: dict(c) for n, c in invalid.items()},
    }
    _atomic_write_bytes(out / META_FILE, (json.dumps(_jsonable(meta), indent=2) + "\n").encode())
    load_dataset_meta(out)  # sanity: the folder reads as a dataset
    valid = arrays["valid"]
    return {
        "out": out, "num_samples": N, "num_views": V, "view_names": names, "fps": fps[0], "view_fps": fps,
        "image_size": [tuple(s.size) for s in sources], "frames": arrays["frame"].tolist(), "processed": len(indices),
        "computed": computed, "resumed": len(indices) - computed, "skipped": dict(skipped),
        "invalid_views": {n: dict(c) for n, c in invalid.items()},
        "valid_fraction": {n: float(valid[:, v].mean()) for v, n in enumerate(names)},
        "camera_model": camera_desc, "seconds": time.perf_counter() - t0,
        "frames_per_s": computed / t_comp if computed and t_comp > 0 else None,
        "first_instant_seconds": t_first,
        "steady_frames_per_s": (computed - 1) / (t_comp - t_first) if computed > 1 and t_comp > t_first else None,
        "warnings": notes,
    }


__all__ = [
    "prepare_dataset", "PrepareError", "default_camera", "resolve_cameras", "crop_grid", "sample_crop",
    "person_crop", "mask_px_to_image", "distort_normalized", "DEFAULT_FOV_DEG", "CROP_MARGIN",
]
