"""Foreground masks from the footage itself, and the choice of the one person to keep.

Never from pose labels: every mask here comes from the pixels of the video (a background model) or from
mask files the user supplies.

**Segmenters.** A segmenter is called with one view's :class:`~maskpose.data.video.FrameSource` and the
frame indices to process, and yields ``(index, frame, mask)`` for each of them (see :class:`Segmenter`):
``frame`` is the full RGB frame (None when it cannot be decoded), ``mask`` a boolean foreground mask
(None for an undecodable frame) at the segmenter's own resolution, with the frame's aspect ratio (the
background models work on a frame shrunk to ``work_size`` px on its longer side; :class:`FolderMasks`
returns the files' full resolution). Implementations:

* :class:`MedianBackground` (``"median"``, the default): the per-pixel median of frames sampled over the
  whole video, re-estimated without the people: the convex hulls of the foreground groups of every sample
  are left out, so parts of a person that a plain median absorbs (the torso of someone who stays on one
  spot) do not become background where the background was seen at least a few times. Per frame the colour
  distance to the background (after a global per-channel gain correction) is thresholded at
  ``max(min_threshold, Otsu)`` with hysteresis (pixels above half the threshold connected to pixels above it).
* :class:`BackgroundSubtractor` (``"mog2"`` / ``"knn"``): OpenCV's MOG2 / KNN subtractors, with a warm-up pass
  over frames sampled evenly over the whole video; shadows removed.
* :class:`MediaPipePose` (``"mediapipe"``, optional package ``mediapipe``): a learned person segmenter (BlazePose
  GHUM, whose weights ship inside the mediapipe wheel), run on every frame on its own: no background model, so
  it does not need the person to move. One person per frame.
* :class:`FolderMasks` (``--masks DIR``): masks made elsewhere (any segmentation tool).

Every background model is learnt once per view and then frozen, so a frame's mask depends only on that frame
and the model: not on the stride, on which frames were processed before, or on an interruption.

Every background model needs the person to move. A pixel the person covers in nearly all sampled frames
(the torso of someone exercising on one spot, ``benchmarks/pose2sim_demo.py``) is background to the model:
those body parts are missing from the masks, and where the person usually stands but is not at this
instant a "ghost" appears. Footage in which the person moves through the scene works best; for a person who
stays on one spot, use the learned segmenter (:class:`MediaPipePose`) or supply masks made with a
person-segmentation tool (:class:`FolderMasks`).

**Clean-up** (:func:`clean_mask`): opening, closing (elliptic kernels sized by the image diagonal);
:func:`fill_small_holes` fills holes smaller than a fraction of the person's area.

**Main person** (:class:`PersonSelector`): connected components of each view's mask, grouped when they are
close to each other (a person split at the neck or the waist stays one candidate); per view the person
is tracked over time (the candidates lying inside the previous frame's person box, else the best IoU with the
previous mask, else the nearest centroid); with calibrated
cameras the tracked choices are checked against each other every frame (views that disagree start again);
a new track starts from the largest, most central candidate, or, with calibrated cameras, from the
combination of candidates across views whose centroids triangulate consistently and that are the largest.
Everything else (other people, noise) is removed. A view with no usable candidate gets no mask and a reason
(``empty``, ``too_small``, ``too_large``, ``inconsistent``, ``no_frame``), which the caller counts.
"""
from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import cv2
import numpy as np

from .video import IMAGE_EXTS, FrameSource, VideoError, natural_key

MaskItem = tuple[int, "np.ndarray | None", "np.ndarray | None"]


class MaskError(ValueError):
    """User-supplied masks cannot be used (the message names the folder or file)."""


class Segmenter(Protocol):
    """One view's frames in, foreground masks out.

    ``segmenter(source, indices)`` yields ``(index, frame, mask)`` for every index of ``indices`` (increasing),
    in order: ``frame`` RGB uint8 ``[H, W, 3]`` or None (undecodable), ``mask`` bool ``[h, w]`` (same aspect as
    the frame, any resolution) or None. A segmenter instance serves one view.
    """

    def __call__(self, source: FrameSource, indices: Sequence[int]) -> Iterator[MaskItem]: ...


# ============================================================================ helpers
def work_shape(size: tuple[int, int], work_size: int) -> tuple[int, int]:
    """``(w, h)`` of a frame of ``size = (W, H)`` shrunk so that its longer side is at most ``work_size``."""
    W, H = size
    s = min(1.0, float(work_size) / max(W, H))
    return max(1, int(round(W * s))), max(1, int(round(H * s)))


def shrink(frame: np.ndarray, shape_wh: tuple[int, int]) -> np.ndarray:
    """Resize ``frame`` to ``(w, h)`` with area averaging (no-op when already that size)."""
    if (frame.shape[1], frame.shape[0]) == tuple(shape_wh):
        return frame
    return cv2.resize(frame, tuple(shape_wh), interpolation=cv2.INTER_AREA)


def sample_indices(num_frames: int, count: int) -> list[int]:
    """Up to ``count`` frame indices spread evenly over ``0 .. num_frames - 1`` (increasing, unique)."""
    if num_frames <= 0:
        return []
    if count >= num_frames:
        return list(range(num_frames))
    return sorted(set(np.linspace(0, num_frames - 1, count).round().astype(int).tolist()))


def _disk(diameter: int) -> np.ndarray:
    d = max(1, int(diameter))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


def _odd(x: float, lo: int = 1) -> int:
    k = max(lo, int(round(x)))
    return k if k % 2 == 1 else k + 1


def clean_mask(mask: np.ndarray, open_frac: float = 0.003, close_frac: float = 0.012) -> np.ndarray:
    """Morphological clean-up of a raw foreground mask ``[h, w]`` bool -> bool.

    Opening (removes specks) with a disk of ``open_frac`` x the image diagonal, then closing (joins parts
    split by thin gaps) with ``close_frac`` x the diagonal; kernels are at least 1 px (no-op at 1 px).
    """
    m = np.asarray(mask).astype(np.uint8)
    diag = math.hypot(*m.shape)
    ko, kc = _odd(open_frac * diag), _odd(close_frac * diag)
    if ko > 1:
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _disk(ko))
    if kc > 1:
        # pad so that closing does not glue the person to the image border
        p = kc
        m = cv2.copyMakeBorder(m, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _disk(kc))[p:-p, p:-p]
    return m.astype(bool)


def fill_small_holes(mask: np.ndarray, max_fraction: float = 0.02) -> np.ndarray:
    """Fill holes of ``mask [h, w]`` (background regions not connected to the image border) whose area is at
    most ``max_fraction`` x the mask's foreground area; larger holes (e.g. between an arm and the body)
    are kept."""
    m = np.asarray(mask, bool)
    area = int(m.sum())
    if area == 0 or max_fraction <= 0:
        return m.copy()
    inv = np.pad(~m, 1, constant_values=True).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    border_label = lab[0, 0]
    out = m.copy()
    small = [k for k in range(1, n) if k != border_label and stats[k, cv2.CC_STAT_AREA] <= max_fraction * area]
    if small:
        fill = np.isin(lab[1:-1, 1:-1], small)
        out |= fill
    return out


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-connected components of ``mask``: ``(labels [h, w] int32, stats [n, 5], centroids [n, 2])`` with the
    background (label 0) removed from ``stats``/``centroids`` (row ``k`` is label ``k + 1``)."""
    n, lab, stats, cen = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=8)
    return lab, stats[1:], cen[1:]


def touches_border(mask: np.ndarray, margin: int = 1) -> bool:
    """Whether any foreground pixel of ``mask`` lies within ``margin`` px of the image border."""
    m = np.asarray(mask, bool)
    k = max(1, int(margin))
    return bool(m[:k].any() or m[-k:].any() or m[:, :k].any() or m[:, -k:].any())


# ============================================================================ background models
class _WorkingResolution:
    work_size: int

    def _shape(self, source: FrameSource) -> tuple[int, int]:
        return work_shape(source.size, self.work_size)


class BackgroundSubtractor(_WorkingResolution):
    """OpenCV MOG2 (``kind="mog2"``) or KNN (``kind="knn"``) background subtraction (see module docstring).

    Args:
        kind: ``"mog2"`` or ``"knn"``.
        warmup: number of frames sampled evenly over the whole source to learn the background.
        passes: passes over the warm-up frames (the first with OpenCV's automatic rate, later ones with
            rate ``1 / warmup`` so every sampled frame weighs the same).
        work_size: longer side (px) of the resolution the model works at.
        var_threshold: MOG2 ``varThreshold`` (squared Mahalanobis distance, default 64, i.e. 8 sigma; OpenCV's
            16 flags video-compression noise around moving people) / KNN ``dist2Threshold`` (default 400).
        background_ratio: MOG2 ``backgroundRatio``: the share of a pixel's history its background components
            must explain. The default 0.6 (OpenCV: 0.9) keeps a person who covers a pixel in a third of the
            warm-up frames out of the background.
        knn_samples: KNN ``kNNSamples``: stored samples that must agree for background (default 4; OpenCV: 2).
        open_frac, close_frac: clean-up (:func:`clean_mask`).
    """

    def __init__(self, kind: str = "mog2", *, warmup: int = 120, passes: int = 2, work_size: int = 640,
                 var_threshold: float | None = None, background_ratio: float = 0.6, knn_samples: int = 4,
                 open_frac: float = 0.003, close_frac: float = 0.012) -> None:
        if kind not in ("mog2", "knn"):
            raise ValueError(f"BackgroundSubtractor: kind must be 'mog2' or 'knn', got {kind!r}")
        self.kind, self.warmup, self.passes, self.work_size = kind, int(warmup), max(1, int(passes)), int(work_size)
        self.var_threshold = (64.0 if kind == "mog2" else 400.0) if var_threshold is None else float(var_threshold)
        self.background_ratio, self.knn_samples = float(background_ratio), int(knn_samples)
        self.open_frac, self.close_frac = open_frac, close_frac
        self._model = None

    def _make(self, history: int):
        if self.kind == "mog2":
            m = cv2.createBackgroundSubtractorMOG2(history=history, detectShadows=True, varThreshold=self.var_threshold)
            m.setBackgroundRatio(self.background_ratio)
        else:
            m = cv2.createBackgroundSubtractorKNN(history=history * self.passes, detectShadows=True,
                                                  dist2Threshold=self.var_threshold)
            m.setkNNSamples(self.knn_samples)
        return m

    def fit(self, source: FrameSource) -> None:
        """Learn the background from ``warmup`` frames sampled over the whole source."""
        shape = self._shape(source)
        frames = [shrink(f, shape) for _, f in source.frames(sample_indices(source.num_frames, self.warmup))
                  if f is not None]
        if not frames:
            raise VideoError(f"{source.path}: no frame could be decoded to learn the background")
        self._model = self._make(history=max(2, len(frames)))
        for p in range(self.passes):
            order = frames if p % 2 == 0 else frames[::-1]
            for f in order:
                self._model.apply(f, learningRate=-1 if p == 0 else 1.0 / len(frames))

    def segment(self, frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Foreground ``[h, w]`` bool of one RGB frame at working resolution ``shape = (w, h)``."""
        if self._model is None:
            raise RuntimeError("BackgroundSubtractor.segment before fit")
        fg = self._model.apply(shrink(frame, shape), learningRate=0.0)
        return clean_mask(fg == 255, self.open_frac, self.close_frac)  # 127 = shadow

    def __call__(self, source: FrameSource, indices: Sequence[int]) -> Iterator[MaskItem]:
        self.fit(source)
        shape = self._shape(source)
        for i, frame in source.frames(indices):
            yield i, frame, (None if frame is None else self.segment(frame, shape))


class MedianBackground(_WorkingResolution):
    """Median-of-frames background model with the people left out (see module docstring).

    ``fit``: the per-pixel median of ``samples`` frames sampled over the whole source; then ``refine`` times:
    segment every sample against the current background, take the convex hull of each sizeable foreground
    group (so the parts of a person that the background already absorbed, typically the torso of someone who
    stays on one spot, are inside it), dilate it, and re-compute the median of each pixel over the samples
    where it is outside every hull. Pixels hidden in all but ``min_visible`` samples keep the plain median
    (``known`` is False there).

    Args:
        samples: frames sampled evenly over the whole source for the median.
        work_size: longer side (px) of the working resolution.
        min_threshold: lowest colour-distance threshold (Euclidean RGB, 0..441) however the Otsu split falls.
        refine: iterations of the people-excluding re-estimation (0: the plain median).
        min_visible: samples in which a pixel must be outside every hull for its re-estimated value.
        min_group: smallest foreground group excluded, as a fraction of the image.
        open_frac, close_frac: clean-up (:func:`clean_mask`).
    """

    def __init__(self, *, samples: int = 60, work_size: int = 640, min_threshold: float = 30.0, refine: int = 2,
                 min_visible: int = 3, min_group: float = 0.002, open_frac: float = 0.003,
                 close_frac: float = 0.012) -> None:
        self.samples, self.work_size = int(samples), int(work_size)
        self.min_threshold, self.refine = float(min_threshold), int(refine)
        self.min_visible, self.min_group = int(min_visible), float(min_group)
        self.open_frac, self.close_frac = open_frac, close_frac
        self.background: np.ndarray | None = None  # [h, w, 3] float32 RGB
        self.known: np.ndarray | None = None  # [h, w] bool: background seen without people

    @staticmethod
    def _prep(frame: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(frame, (3, 3), 0).astype(np.float32)

    def _distance(self, img: np.ndarray) -> np.ndarray:
        bg = self.background
        # global gain per channel (auto exposure / white balance drift), robust to the person; medians of every
        # 4th pixel (the background's are cached with it)
        if getattr(self, "_bg_med_of", None) is not bg:
            self._bg_med = np.median(bg[::4, ::4].reshape(-1, 3), axis=0)
            self._bg_med_of = bg
        gain = np.median(img[::4, ::4].reshape(-1, 3), axis=0) / np.maximum(self._bg_med, 1.0)
        gain = np.clip(gain, 0.5, 2.0).astype(np.float32)
        return np.sqrt(((img - bg * gain) ** 2).sum(-1))

    def _threshold(self, dist: np.ndarray) -> np.ndarray:
        d8 = np.clip(dist, 0, 255).astype(np.uint8)
        otsu, _ = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        th = max(self.min_threshold, float(otsu))
        strong = dist > th
        weak = (dist > 0.5 * th).astype(np.uint8)
        if not strong.any():
            return strong
        n, lab = cv2.connectedComponents(weak, connectivity=8)
        keep = np.zeros(n, bool)
        keep[np.unique(lab[strong])] = True
        keep[0] = False
        return keep[lab]

    def fit(self, source: FrameSource) -> None:
        shape = self._shape(source)
        frames = [self._prep(shrink(f, shape)) for _, f in source.frames(sample_indices(source.num_frames, self.samples))
                  if f is not None]
        if not frames:
            raise VideoError(f"{source.path}: no frame could be decoded to learn the background")
        stack = np.stack(frames)  # [T, h, w, 3]
        del frames
        plain = _masked_median(stack, np.zeros(stack.shape[:3], bool), fallback=None)
        self.background = plain
        self.known = np.ones(stack.shape[1:3], bool)
        if len(stack) < 3:
            return
        for _ in range(self.refine):
            excluded = np.stack([self._people_hulls(f) for f in stack])
            visible = (~excluded).sum(0)
            self.known = visible >= self.min_visible
            self.background = _masked_median(stack, excluded, fallback=plain, min_count=self.min_visible)

    def _people_hulls(self, img: np.ndarray) -> np.ndarray:
        """Dilated convex hulls of the sizeable foreground groups of one prepared sample ``[h, w]`` bool."""
        h, w = img.shape[:2]
        fg = clean_mask(self._threshold(self._distance(img)), self.open_frac, self.close_frac)
        lab, _ = group_components(fg)
        out = np.zeros((h, w), np.uint8)
        if lab.max() == 0:
            return out.astype(bool)
        area = np.bincount(lab.ravel())
        for k in np.nonzero(area >= self.min_group * h * w)[0]:
            if k == 0:
                continue
            pts = np.argwhere(lab == k)[:, ::-1].astype(np.int32)
            cv2.fillPoly(out, [cv2.convexHull(pts)], 1)
        return cv2.dilate(out, _disk(_odd(0.02 * math.hypot(h, w)))) > 0

    def segment(self, frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        if self.background is None:
            raise RuntimeError("MedianBackground.segment before fit")
        raw = self._threshold(self._distance(self._prep(shrink(frame, shape))))
        return clean_mask(raw, self.open_frac, self.close_frac)

    def __call__(self, source: FrameSource, indices: Sequence[int]) -> Iterator[MaskItem]:
        self.fit(source)
        shape = self._shape(source)
        for i, frame in source.frames(indices):
            yield i, frame, (None if frame is None else self.segment(frame, shape))


def _masked_median(stack: np.ndarray, excluded: np.ndarray, fallback: np.ndarray | None,
                   min_count: int = 1, rows: int = 32) -> np.ndarray:
    """Per-pixel median over ``stack [T, h, w, C]`` of the samples not ``excluded [T, h, w]``; ``fallback
    [h, w, C]`` where fewer than ``min_count`` samples remain. Processed in bands of ``rows`` rows to bound
    memory."""
    T, h, w, C = stack.shape
    out = np.empty((h, w, C), np.float32)
    for r0 in range(0, h, rows):
        sl = slice(r0, min(h, r0 + rows))
        ex = excluded[:, sl]
        vals = np.where(ex[..., None], np.inf, stack[:, sl]).astype(np.float32)
        vals.sort(axis=0)
        cnt = (~ex).sum(0)  # [r, w]
        lo_i = np.clip((cnt - 1) // 2, 0, T - 1)[None, ..., None].repeat(C, -1)
        hi_i = np.clip(cnt // 2, 0, T - 1)[None, ..., None].repeat(C, -1)
        med = 0.5 * (np.take_along_axis(vals, lo_i, 0)[0] + np.take_along_axis(vals, hi_i, 0)[0])
        ok = (cnt >= max(1, min_count))[..., None]
        out[sl] = med if fallback is None else np.where(ok, med, fallback[sl])
    return out


# ============================================================================ learned person segmentation
class SegmenterUnavailable(ValueError):
    """A masker's optional package is missing or cannot be used (the message says what to install)."""


#: the mediapipe release used by :class:`MediaPipePose`: its wheel ships the BlazePose "full" model (with its
#: segmentation output) and the pose graph; later releases either pin numpy < 2 (0.10.15 - 0.10.21) or no longer
#: ship the model (0.10.30 on: it would be downloaded at run time)
MEDIAPIPE_VERSION = "0.10.14"
#: mediapipe's declared dependencies (protobuf < 5, opencv-contrib-python, jax, ...) clash with maskpose's
#: (protobuf >= 6 for onnx, opencv-python-headless); the segmentation graph needs none of them beyond these
MEDIAPIPE_INSTALL = f"pip install --no-deps mediapipe=={MEDIAPIPE_VERSION} && pip install attrs matplotlib"
#: inside the mediapipe package: the pose graph and the model it loads with ``model_complexity=1`` (the "lite" and
#: "heavy" models are not in the wheel and would be downloaded at run time, so they are not offered)
_MEDIAPIPE_POSE_GRAPH = "mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb"
_MEDIAPIPE_POSE_MODEL = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"


class _QuietStderr:
    """Silence file descriptor 2 (C++ logging that Python cannot filter) inside a ``with`` block."""

    def __enter__(self):
        import sys

        try:
            sys.stderr.flush()
            self._fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except (OSError, AttributeError, ValueError):
            self._fd = None
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.dup2(self._fd, 2)
            os.close(self._fd)
        return False


def _mediapipe_solution_base():
    """mediapipe's ``SolutionBase`` class (the graph runner of its "solutions"), imported on first use;
    :class:`SegmenterUnavailable` when mediapipe is not installed, cannot be imported, or does not ship the pose
    graph and model (nothing is ever downloaded)."""
    import importlib
    import importlib.util
    import warnings

    try:
        found = importlib.util.find_spec("mediapipe") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise SegmenterUnavailable(f"masker 'mediapipe' needs the mediapipe package, which is not installed; "
                                   f"install it with: {MEDIAPIPE_INSTALL}")
    try:
        # mediapipe prints a harmless failure of a protobuf < 5 API at import (protobuf >= 5), and warns about
        # deprecated protobuf calls
        with warnings.catch_warnings(), _QuietStderr():
            warnings.simplefilter("ignore")
            mp = importlib.import_module("mediapipe")
            solution_base = importlib.import_module("mediapipe.python.solution_base")
    except Exception as e:  # noqa: BLE001 - any failure of a third-party import is reported the same way
        raise SegmenterUnavailable(f"masker 'mediapipe': the installed mediapipe cannot be used "
                                   f"({type(e).__name__}: {e}); install a working one with: {MEDIAPIPE_INSTALL}") from None
    root = Path(mp.__file__).parent.parent
    for rel in (_MEDIAPIPE_POSE_GRAPH, _MEDIAPIPE_POSE_MODEL):
        if not (root / rel).is_file():
            raise SegmenterUnavailable(f"masker 'mediapipe': mediapipe {getattr(mp, '__version__', '?')} does not ship "
                                       f"{root / rel} (it would be downloaded at run time); install mediapipe "
                                       f"{MEDIAPIPE_VERSION} with: {MEDIAPIPE_INSTALL}")
    return solution_base.SolutionBase


class MediaPipePose(_WorkingResolution):
    """Person segmentation per frame with MediaPipe Pose (BlazePose GHUM "full", the model shipped inside the
    mediapipe wheel; CPU): no background model, so a person who stays on one spot is segmented whole.

    Each frame is shrunk to ``work_size`` px on its longer side and processed on its own (static-image mode: the
    person detector runs on every frame, nothing is carried from frame to frame, so a frame's mask does not
    depend on the stride or on an interruption). The model's soft segmentation ``[h, w]`` in ``[0, 1]`` is
    thresholded at ``threshold``; a frame in which the detector finds nobody (score < 0.5) gets an empty mask.
    Only the graph's segmentation output is read (the pose graph's own thresholds, 0.5, as in mediapipe's
    ``Pose`` defaults; reading the landmarks would need protobuf < 5).
    The model segments **one** person per frame (the detector's most confident one); with several people in view the
    main-person choice across views (:class:`PersonSelector`) cannot bring back a person the model left out.

    Args:
        work_size: longer side (px) of the resolution the model is given and the mask is returned at.
        threshold: soft-mask threshold (0.5: the model's own decision boundary).
        open_frac, close_frac: clean-up (:func:`clean_mask`); 0 (default) = none, the model's mask is smooth.
    Raises:
        SegmenterUnavailable: mediapipe is missing or unusable (the message says what to install).
    """

    def __init__(self, *, work_size: int = 640, threshold: float = 0.5, open_frac: float = 0.0,
                 close_frac: float = 0.0) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"MediaPipePose: threshold must be in (0, 1), got {threshold}")
        self.work_size, self.threshold = int(work_size), float(threshold)
        self.open_frac, self.close_frac = float(open_frac), float(close_frac)
        self._graph = None
        solution_base = _mediapipe_solution_base()
        try:
            # the graph's threads set the model up and log through C++ (TFLite / XNNPACK notices) until a first
            # frame has gone through: build it and run a blank frame with stderr silenced
            with _QuietStderr():
                self._graph = solution_base(
                    binary_graph_path=_MEDIAPIPE_POSE_GRAPH,
                    side_inputs={"model_complexity": 1, "smooth_landmarks": False, "enable_segmentation": True,
                                 "smooth_segmentation": False, "use_prev_landmarks": False},
                    outputs=["segmentation_mask"])
                self._graph.process({"image": np.zeros((64, 64, 3), np.uint8)})
        except Exception as e:  # noqa: BLE001 - a mediapipe that does not fit this use
            raise SegmenterUnavailable(f"masker 'mediapipe': mediapipe's pose graph cannot be built "
                                       f"({type(e).__name__}: {e}); install mediapipe {MEDIAPIPE_VERSION} with: "
                                       f"{MEDIAPIPE_INSTALL}") from None

    def probability(self, frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
        """Soft person mask ``[h, w]`` float32 in ``[0, 1]`` of one RGB uint8 frame ``[H, W, 3]`` at working
        resolution ``shape = (w, h)``; None when the detector finds no person."""
        if self._graph is None:
            raise RuntimeError("MediaPipePose used after close()")
        img = np.ascontiguousarray(shrink(np.asarray(frame, np.uint8), shape))
        res = self._graph.process({"image": img})
        soft = res.segmentation_mask
        if soft is None:
            return None
        return np.clip(np.asarray(soft, np.float32).reshape(shape[1], shape[0]), 0.0, 1.0)

    def segment(self, frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Person mask ``[h, w]`` bool of one RGB frame at working resolution ``shape = (w, h)`` (all False: nobody
        detected)."""
        soft = self.probability(frame, shape)
        if soft is None:
            return np.zeros((shape[1], shape[0]), bool)
        return clean_mask(soft > self.threshold, self.open_frac, self.close_frac)

    def close(self) -> None:
        """Release the model (the segmenter cannot be used afterwards)."""
        graph, self._graph = self._graph, None
        if graph is not None:
            graph.close()

    def __call__(self, source: FrameSource, indices: Sequence[int]) -> Iterator[MaskItem]:
        shape = self._shape(source)
        for i, frame in source.frames(indices):
            yield i, frame, (None if frame is None else self.segment(frame, shape))


# ============================================================================ user masks
_TRAILING_INT = re.compile(r"(\d+)(?!.*\d)")


class FolderMasks:
    """Masks supplied by the user, one file per frame (``--masks DIR``).

    Layout: ``DIR`` holds one sub-folder per view named like the view (the video's stem or the image
    folder's name; with one view the files may also sit in ``DIR`` itself). If no sub-folder has a view's
    name and ``DIR`` has exactly as many sub-folders as there are views, they are paired in natural order.
    A mask file is an image (8-bit, any channels; pixels > 127 in the first channel, or in the alpha channel
    of an RGBA file, are the person) of the frame's size. Frames are matched by name: for an image-folder
    view the mask file has the frame file's stem (``img_0042.jpg`` <-> ``img_0042.png``); for a video the
    last number in the mask file's name is the 0-based frame index (``000042.png``, ``frame42.png``,
    ``cam1_mask_42.png``). A frame without a mask file gets an empty mask (counted as ``empty`` by
    prepare), and a folder that matches none of the requested frames is an error.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def __call__(self, source: FrameSource, indices: Sequence[int]) -> Iterator[MaskItem]:
        files = self.files_for(source)
        wanted = [files.get(source.frame_name(i) if _is_image_folder(source) else i) for i in indices]
        if indices and not any(f is not None for f in wanted):
            raise MaskError(f"mask folder {self.view_folder(source)} has no mask file for any of the "
                            f"{len(indices)} requested frames of view {source.name!r} (frames "
                            f"{indices[0]}..{indices[-1]}); see FolderMasks for the naming rules")
        for (i, frame), mf in zip(source.frames(indices), wanted):
            if frame is None:
                yield i, None, None
                continue
            if mf is None:
                yield i, frame, np.zeros(frame.shape[:2], bool)
                continue
            yield i, frame, read_user_mask(mf, source.size)

    def view_folder(self, source: FrameSource) -> Path:
        if not self.folder.is_dir():
            raise MaskError(f"mask folder {self.folder} does not exist")
        sub = self.folder / source.name
        if sub.is_dir():
            return sub
        subdirs = sorted([p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")],
                         key=lambda p: natural_key(p.name))
        views = getattr(self, "_view_names", None)
        if views and len(subdirs) == len(views) and source.name in views:
            return subdirs[views.index(source.name)]
        if not subdirs and any(p.suffix.lower() in IMAGE_EXTS for p in self.folder.iterdir()):
            if views and len(views) > 1:
                raise MaskError(f"mask folder {self.folder} holds mask files directly but there are {len(views)} "
                                f"views: put each view's masks in a sub-folder named like the view ({views})")
            return self.folder
        raise MaskError(f"mask folder {self.folder} has no sub-folder {source.name!r} for view {source.name!r} "
                        f"(sub-folders: {[p.name for p in subdirs]})")

    def set_views(self, view_names: Sequence[str]) -> "FolderMasks":
        """Tell the masks which views exist (pairs sub-folders by order when names do not match)."""
        self._view_names = list(view_names)
        return self

    def files_for(self, source: FrameSource) -> dict:
        """Mask files of ``source``: ``{frame stem: path}`` (image folders) or ``{frame index: path}`` (videos)."""
        folder = self.view_folder(source)
        files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                 and not p.name.startswith(".")]
        out: dict = {}
        for p in sorted(files, key=lambda p: natural_key(p.name)):
            if _is_image_folder(source):
                out.setdefault(p.stem, p)
            else:
                m = _TRAILING_INT.search(p.stem)
                if m:
                    out.setdefault(int(m.group(1)), p)
        return out


def _is_image_folder(source: FrameSource) -> bool:
    return hasattr(source, "files")


def read_user_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Boolean mask from an image file: > 127 in the first channel (alpha channel for RGBA files).
    ``size = (w, h)``: required size, :class:`MaskError` otherwise."""
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MaskError(f"cannot read mask file {path}")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 3:
        img = img[..., 3] if img.shape[2] == 4 else img[..., 0]
    if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
        raise MaskError(f"mask file {path} is {img.shape[1]}x{img.shape[0]} px but its frame is {size[0]}x{size[1]} px")
    return img > 127


# ============================================================================ GrabCut
def grabcut_refine(frame: np.ndarray, mask: np.ndarray, iterations: int = 3, grow: float = 0.15) -> np.ndarray:
    """Refine a person mask with GrabCut inside its box grown by ``grow``.

    ``frame`` RGB ``[H, W, 3]`` (resized to the mask's resolution), ``mask [h, w]`` bool (non-empty). The
    mask eroded by a disk of 10 % of the box's longer side is sure foreground, the mask probable foreground, a
    ring three times as wide around it probable background, everything else sure background. Returns the refined mask ``[h, w]`` bool (the input when GrabCut fails
    or empties the mask).
    """
    m = np.asarray(mask, bool)
    if not m.any():
        return m
    h, w = m.shape
    img = shrink(frame, (w, h))
    ys, xs = np.nonzero(m)
    bh, bw = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    g = int(round(grow * max(bh, bw)))
    x0, y0 = max(0, xs.min() - g), max(0, ys.min() - g)
    x1, y1 = min(w, xs.max() + g + 1), min(h, ys.max() + g + 1)
    sub = m[y0:y1, x0:x1].astype(np.uint8)
    k = _odd(0.1 * max(bh, bw), lo=3)
    trimap = np.full(sub.shape, cv2.GC_BGD, np.uint8)
    trimap[cv2.dilate(sub, _disk(3 * k)) > 0] = cv2.GC_PR_BGD
    trimap[sub > 0] = cv2.GC_PR_FGD
    trimap[cv2.erode(sub, _disk(k)) > 0] = cv2.GC_FGD
    try:
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(np.ascontiguousarray(img[y0:y1, x0:x1, ::-1]), trimap, None, bgd, fgd, int(iterations),
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return m
    out = np.zeros_like(m)
    out[y0:y1, x0:x1] = (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
    return out if out.any() else m


# ============================================================================ main person
@dataclass
class Track:
    """One view's tracked person: the chosen mask of the last frame with one (None: no track)."""

    mask: np.ndarray | None = None
    lost: int = 0

    @property
    def active(self) -> bool:
        return self.mask is not None


@dataclass
class Selection:
    """The person chosen in one view: ``mask`` (bool, the segmenter's resolution) or None, and ``reason``
    (``"ok"``, ``"empty"``, ``"too_small"``, ``"too_large"``, ``"inconsistent"``, ``"no_frame"``)."""

    mask: np.ndarray | None
    reason: str = "ok"


@dataclass
class _Cand:
    label: int
    area: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 inclusive
    centroid: np.ndarray            # mask px


def _grown_box(mask: np.ndarray, frac: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (end-exclusive) of ``mask``'s box grown by ``frac`` of its longer side, clipped."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    g = frac * max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    return (max(0, int(xs.min() - g)), max(0, int(ys.min() - g)),
            min(w, int(xs.max() + g) + 1), min(h, int(ys.max() + g) + 1))


class PersonSelector:
    """Choose and track the main person in each view (see module docstring).

    Args:
        num_views: V.
        projections: optional ``V`` pinhole projection matrices ``[3, 4]`` (undistorted image px) for the
            cross-view choice at (re-)initialisation.
        to_image: optional ``V`` functions mapping mask px ``[N, 2]`` to undistorted image px ``[N, 2]`` (needed
            with ``projections``).
        min_area: smallest person component, as a fraction of the mask's image area.
        max_lost: frames a track survives without a match before the view re-initialises.
        fill_holes: fill holes up to this fraction of the person's area (0: off).
        max_inconsistency: at a cross-view (re-)initialisation, a view whose centroid is farther than this
            (x the component's box height) from the re-projected 3D centre gets no person (``inconsistent``).
        max_candidates: candidates per view tried at a cross-view initialisation.
        group_gap, min_fragment: components closer than ``group_gap`` x the image diagonal form one candidate;
            components smaller than ``min_fragment`` x the image area are dropped (:func:`group_components`).
        max_foreground: a mask covering more than this fraction of the image is a failed background model
            (lighting or exposure change, camera moved), not a person: no person (``too_large``).
    """

    def __init__(self, num_views: int, *, projections: Sequence[np.ndarray] | None = None,
                 to_image: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None, min_area: float = 0.002,
                 max_lost: int = 5, fill_holes: float = 0.02, max_inconsistency: float = 0.35,
                 max_candidates: int = 3, group_gap: float = 0.03, min_fragment: float = 0.0002,
                 max_foreground: float = 0.5) -> None:
        self.num_views = int(num_views)
        self.max_foreground = float(max_foreground)
        self.projections = None if projections is None else [np.asarray(P, np.float64) for P in projections]
        self.to_image = to_image
        if self.projections is not None and (to_image is None or len(self.projections) != self.num_views):
            raise ValueError("PersonSelector: projections need to_image, one per view")
        self.min_area, self.max_lost, self.fill_holes = float(min_area), int(max_lost), float(fill_holes)
        self.max_inconsistency, self.max_candidates = float(max_inconsistency), int(max_candidates)
        self.group_gap, self.min_fragment = float(group_gap), float(min_fragment)
        self.tracks = [Track() for _ in range(self.num_views)]

    # ---------------------------------------------------------------- state (for resuming)
    def state(self) -> dict[str, np.ndarray]:
        """The tracks as plain arrays (``np.savez``-able)."""
        out: dict[str, np.ndarray] = {}
        for v, tr in enumerate(self.tracks):
            out[f"lost_{v}"] = np.array(tr.lost)
            if tr.mask is not None:
                out[f"shape_{v}"] = np.array(tr.mask.shape)
                out[f"bits_{v}"] = np.packbits(tr.mask.reshape(-1))
        return out

    def load_state(self, state) -> None:
        for v in range(self.num_views):
            lost = int(state[f"lost_{v}"]) if f"lost_{v}" in state else 0
            mask = None
            if f"bits_{v}" in state:
                shape = tuple(int(x) for x in state[f"shape_{v}"])
                mask = np.unpackbits(state[f"bits_{v}"])[: shape[0] * shape[1]].reshape(shape).astype(bool)
            self.tracks[v] = Track(mask=mask, lost=lost)

    # ---------------------------------------------------------------- selection
    def select(self, masks: Sequence[np.ndarray | None]) -> list[Selection]:
        """Choose the person in each view's mask (``None``: undecodable frame); updates the tracks."""
        if len(masks) != self.num_views:
            raise ValueError(f"PersonSelector.select: {len(masks)} masks for {self.num_views} views")
        labels, cands, reasons = [], [], []
        for m in masks:
            if m is None:
                labels.append(None), cands.append([]), reasons.append("no_frame")
                continue
            if m.mean() > self.max_foreground:
                labels.append(None), cands.append([]), reasons.append("too_large")
                continue
            lab, cs, n_comp = self._candidates(m)
            labels.append(lab)
            cands.append(cs)
            reasons.append("ok" if cs else ("too_small" if n_comp else "empty"))
        chosen: list[_Cand | None] = [None] * self.num_views
        clip: list = [None] * self.num_views  # (tracked choice, box it may not leave)
        need_init = []
        for v in range(self.num_views):
            if not cands[v]:
                continue
            tr = self.tracks[v]
            if tr.active and tr.lost <= self.max_lost:
                members = self._match(tr.mask, labels[v], cands[v])
                if members:
                    chosen[v] = self._merge(labels[v], members)
                    clip[v] = (chosen[v], _grown_box(tr.mask, 0.2))
                    cands[v] = [c for c in cands[v] if c not in members] + [chosen[v]]
                    continue
            need_init.append(v)
        if self.projections is not None:
            need_init += self._inconsistent_tracks(chosen)
        if need_init:
            self._initialise(sorted(set(need_init)), cands, chosen, masks, reasons)
        out = []
        for v in range(self.num_views):
            c = chosen[v]
            if c is None:
                if self.tracks[v].active:
                    self.tracks[v].lost += 1
                if reasons[v] == "ok":
                    reasons[v] = "inconsistent"
                out.append(Selection(None, reasons[v]))
                continue
            person = labels[v] == c.label
            if clip[v] is not None and clip[v][0] is c:
                # a tracked person may grow by the margin per frame, not more: a second person touching
                # them in the image (feet on another's head) is cut off instead of merged into the track
                x0, y0, x1, y1 = clip[v][1]
                keep = np.zeros_like(person)
                keep[y0:y1, x0:x1] = person[y0:y1, x0:x1]
                if keep.any():
                    person = keep
            if self.fill_holes > 0:
                person = fill_small_holes(person, self.fill_holes)
            self.tracks[v] = Track(mask=person, lost=0)
            out.append(Selection(person, "ok"))
        return out

    def _inconsistent_tracks(self, chosen: list) -> list[int]:
        """Tracked views whose choice disagrees with the others (worst first, removed one at a time until the rest
        agree); their choice is reset to None so that they are initialised again."""
        views = [v for v in range(self.num_views) if chosen[v] is not None]
        bad: list[int] = []
        while len(views) >= 2:
            pts = {(v, chosen[v].label): self.to_image[v](chosen[v].centroid[None])[0] for v in views}
            errs = self._consistency(views, [chosen[v] for v in views], pts)
            worst = int(np.argmax(errs))
            if errs[worst] <= self.max_inconsistency:
                break
            if len(views) == 2:  # two views that disagree: no way to tell which is right
                bad += views
                break
            bad.append(views.pop(worst))
        for v in bad:
            chosen[v] = None
        return bad

    def _match(self, prev: np.ndarray, lab: np.ndarray, cands: list[_Cand]) -> list[_Cand]:
        """The candidates continuing the track: all those lying mostly (>= 50 %) inside the previous mask's box grown
        by 20 % of its longer side and either overlapping the previous mask or lying mostly inside its ungrown
        box, if one of them overlaps the previous mask (a person whose parts fell into
        separate groups stays whole, whatever the pose); else the best IoU with the previous mask (>= 0.05);
        else the nearest centroid (within the previous box's diagonal, area within x4). Empty: no match."""
        if prev.shape != lab.shape:
            return []
        ys, xs = np.nonzero(prev)
        if xs.size == 0:
            return []
        prev_area = xs.size
        n = int(lab.max()) + 1
        inter = np.bincount(lab[ys, xs], minlength=n)
        x0, y0, x1, y1 = _grown_box(prev, 0.2)
        in_box = np.bincount(lab[y0:y1, x0:x1].ravel(), minlength=n)
        # pieces that do not touch the previous mask must lie mostly inside its *ungrown* box: with the grown
        # box the track could creep by 20 % a frame and swallow a second person walking by
        tight = np.bincount(lab[ys.min():ys.max() + 1, xs.min():xs.max() + 1].ravel(), minlength=n)
        inside = [c for c in cands if in_box[c.label] >= 0.5 * c.area
                  and (inter[c.label] > 0 or tight[c.label] >= 0.5 * c.area)]
        if any(inter[c.label] > 0 for c in inside):
            return inside
        best, best_iou = None, 0.0
        for c in cands:
            iou = inter[c.label] / (prev_area + c.area - inter[c.label])
            if iou > best_iou:
                best, best_iou = c, iou
        if best is not None and best_iou >= 0.05:
            return [best]
        pc = np.array([xs.mean(), ys.mean()])
        diag = math.hypot(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        near = [(np.linalg.norm(c.centroid - pc), c) for c in cands if 0.25 <= c.area / prev_area <= 4.0]
        near = [(d, c) for d, c in near if d <= diag]
        return [min(near, key=lambda x: x[0])[1]] if near else []

    @staticmethod
    def _merge(lab: np.ndarray, members: list[_Cand]) -> _Cand:
        """Relabel ``members`` as one candidate in ``lab`` (in place) and return it."""
        main = max(members, key=lambda c: c.area)
        if len(members) == 1:
            return main
        others = [c.label for c in members if c is not main]
        lab[np.isin(lab, others)] = main.label
        area = sum(c.area for c in members)
        box = (min(c.box[0] for c in members), min(c.box[1] for c in members),
               max(c.box[2] for c in members), max(c.box[3] for c in members))
        centroid = sum(c.centroid * c.area for c in members) / area
        return _Cand(main.label, area, box, centroid)

    @staticmethod
    def _central_largest(cands: list[_Cand], shape: tuple[int, int]) -> _Cand:
        h, w = shape
        centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        half_diag = 0.5 * math.hypot(w, h)
        return max(cands, key=lambda c: c.area * math.exp(-2.0 * (np.linalg.norm(c.centroid - centre) / half_diag) ** 2))

    @staticmethod
    def _central_score(c: _Cand, shape: tuple[int, int]) -> float:
        h, w = shape
        centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        half_diag = 0.5 * math.hypot(w, h)
        return c.area * math.exp(-2.0 * (np.linalg.norm(c.centroid - centre) / half_diag) ** 2)

    def _initialise(self, views: list[int], cands, chosen, masks, reasons) -> None:
        """(Re-)start the tracks of ``views``. Without cameras (or with fewer than 2 views with a candidate): the
        largest, most central component. With cameras: among all choices of at most one candidate per view whose
        centroids are mutually consistent (each within ``max_inconsistency`` x its box height of the re-projected
        triangulation), the one with the largest sum of relative sizes (area x centrality / the view's best);
        tracked views keep their choice unless no consistent choice includes them. A view left out gets None."""
        have = [v for v in range(self.num_views) if cands[v]]
        if self.projections is None or len(have) < 2:
            for v in views:
                chosen[v] = self._central_largest(cands[v], masks[v].shape)
            return
        rel: dict[tuple[int, int], float] = {}
        for v in have:
            sc = {c.label: self._central_score(c, masks[v].shape) for c in cands[v]}
            top = max(sc.values())
            for lab, x in sc.items():
                rel[(v, lab)] = x / top if top > 0 else 0.0
        pts = {(v, c.label): self.to_image[v](c.centroid[None])[0] for v in have for c in cands[v]}
        for free in (set(views), set(have)):
            n_free = len(free & set(have))
            k = self.max_candidates
            while k > 1 and (k + 1) ** n_free > 4096:
                k -= 1
            options = []
            for v in have:
                if v in free:
                    ranked = sorted(cands[v], key=lambda c: -rel[(v, c.label)])[:k]
                    options.append(ranked + [None])
                else:
                    options.append([chosen[v]])
            best, best_key = None, None
            for combo in itertools.product(*options):
                used = [(v, c) for v, c in zip(have, combo) if c is not None]
                if len(used) < 2:
                    continue
                errs = self._consistency([v for v, _ in used], [c for _, c in used], pts)
                if not np.all(errs <= self.max_inconsistency):
                    continue
                key = (sum(rel[(v, c.label)] for v, c in used), -float(np.mean(errs)))
                if best_key is None or key > best_key:
                    best, best_key = combo, key
            if best is not None:
                for v, c in zip(have, best):
                    if v in free:
                        chosen[v] = c
                return
        for v in views:  # no two views agree on anyone
            chosen[v] = None

    def _consistency(self, views: list[int], combo, pts) -> np.ndarray:
        """Per view: distance between the candidate's centroid and the re-projection of the centroids'
        triangulation, divided by the candidate's box height (undistorted image px)."""
        P = np.stack([self.projections[v] for v in views])
        x = np.stack([pts[(v, c.label)] for v, c in zip(views, combo)])
        X = _dlt(x, P)
        proj = np.einsum("vij,j->vi", P, np.append(X, 1.0))
        err = np.linalg.norm(proj[:, :2] / proj[:, 2:3] - x, axis=1)
        heights = []
        for v, c in zip(views, combo):
            corners = self.to_image[v](np.array([[c.box[0], c.box[1]], [c.box[2], c.box[3]]], np.float64))
            heights.append(max(abs(corners[1, 1] - corners[0, 1]), abs(corners[1, 0] - corners[0, 0]), 1.0))
        bad = proj[:, 2] <= 0
        err = err / np.array(heights)
        err[bad] = np.inf
        return err

    def _candidates(self, m: np.ndarray) -> tuple[np.ndarray, list[_Cand], int]:
        """Group labels of ``m`` (:func:`group_components`), the groups of at least ``min_area`` as candidates,
        and the number of connected components."""
        lab, n_comp = group_components(m, self.group_gap, self.min_fragment)
        h, w = m.shape
        min_px = self.min_area * h * w
        n = int(lab.max())
        if n == 0:
            return lab, [], n_comp
        ys, xs = np.nonzero(lab)
        ls = lab[ys, xs]
        area = np.bincount(ls, minlength=n + 1)
        sx = np.bincount(ls, weights=xs, minlength=n + 1)
        sy = np.bincount(ls, weights=ys, minlength=n + 1)
        x0 = np.full(n + 1, w)
        y0 = np.full(n + 1, h)
        x1 = np.full(n + 1, -1)
        y1 = np.full(n + 1, -1)
        np.minimum.at(x0, ls, xs)
        np.minimum.at(y0, ls, ys)
        np.maximum.at(x1, ls, xs)
        np.maximum.at(y1, ls, ys)
        cands = [_Cand(k, int(area[k]), (int(x0[k]), int(y0[k]), int(x1[k]), int(y1[k])),
                       np.array([sx[k] / area[k], sy[k] / area[k]]))
                 for k in range(1, n + 1) if area[k] >= min_px and area[k] > 0]
        return lab, cands, n_comp


def group_components(mask: np.ndarray, gap: float = 0.03, min_fragment: float = 0.0002) -> tuple[np.ndarray, int]:
    """Group the connected components of ``mask [h, w]`` that lie within ``gap`` x the image diagonal of each
    other (a head cut off at the neck, a hand apart from the arm), dropping fragments smaller than
    ``min_fragment`` x the image area. Returns ``(labels [h, w] int32`` (0 = background, 1..n = groups, set on
    the mask's own pixels only), ``number of connected components)``."""
    m = np.asarray(mask, bool)
    h, w = m.shape
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros((h, w), np.int32), 0
    keep = stats[:, cv2.CC_STAT_AREA] >= max(1.0, min_fragment * h * w)
    keep[0] = False
    kept = keep[lab]
    d = _odd(gap * math.hypot(h, w))
    if d > 1:
        p = d
        grown = cv2.dilate(np.pad(kept, p).astype(np.uint8), _disk(d))[p:-p, p:-p]
    else:
        grown = kept.astype(np.uint8)
    _, glab = cv2.connectedComponents(grown, connectivity=8)
    glab = np.where(kept, glab, 0).astype(np.int32)
    # renumber 1..n
    ids = np.unique(glab)
    ids = ids[ids > 0]
    lut = np.zeros(int(glab.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1)
    return lut[glab], n - 1


def _dlt(x: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Linear triangulation of one point from ``x [V, 2]`` and ``P [V, 3, 4]`` -> ``[3]``."""
    A = np.concatenate([x[:, 0:1] * P[:, 2] - P[:, 0], x[:, 1:2] * P[:, 2] - P[:, 1]], axis=0)
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
    _, _, vt = np.linalg.svd(A)
    Xh = vt[-1]
    return Xh[:3] / (Xh[3] if abs(Xh[3]) > 1e-12 else 1e-12)


# ============================================================================ factory
MASKERS = ("median", "mog2", "knn", "mediapipe")


def make_segmenter(masker: str = "median", masks_dir: str | os.PathLike | None = None, **kwargs) -> Segmenter:
    """A new segmenter for one view: :class:`FolderMasks` when ``masks_dir`` is given (or ``masker ==
    "folder"``), else the background model ``masker`` (``"mog2"``, ``"knn"``, ``"median"``) or the learned person
    segmenter ``"mediapipe"`` (:class:`MediaPipePose`, optional package: :class:`SegmenterUnavailable` when it is
    missing) with ``kwargs``."""
    if masks_dir is not None:
        return FolderMasks(masks_dir)
    if masker == "folder":
        raise ValueError("masker 'folder' needs masks_dir (--masks DIR)")
    if masker in ("mog2", "knn"):
        return BackgroundSubtractor(masker, **kwargs)
    if masker == "median":
        return MedianBackground(**kwargs)
    if masker == "mediapipe":
        return MediaPipePose(**kwargs)
    raise ValueError(f"unknown masker {masker!r}; choose one of {', '.join(MASKERS)} (or give masks_dir)")


__all__ = [
    "Segmenter", "MaskError", "BackgroundSubtractor", "MedianBackground", "MediaPipePose", "SegmenterUnavailable",
    "MEDIAPIPE_VERSION", "MEDIAPIPE_INSTALL", "FolderMasks", "PersonSelector", "Selection",
    "Track", "clean_mask", "fill_small_holes", "components", "touches_border", "grabcut_refine", "read_user_mask",
    "make_segmenter", "group_components", "sample_indices", "work_shape", "shrink", "MASKERS",
]
