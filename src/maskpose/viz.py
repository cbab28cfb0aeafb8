"""Pictures of poses: 2D overlays, tiled multi-view videos, 3D skeleton plots and animations,
and the image | mask | skeleton mask | physique mask | body mask panels of the report.

Colour convention (everywhere in maskpose pictures)
---------------------------------------------------
* **left** side of the body (joints ``L*``, bones ``L-*``): **blue**  ``LEFT_RGB``;
* **right** side (``R*``, ``R-*``): **red** ``RIGHT_RGB``;
* centre (pelvis, spine, thorax, neck, nose, head, chest, ...): **green** ``CENTRE_RGB``;
* the person's foreground mask contour: **yellow** ``MASK_RGB``;
* joints below ``min_confidence``: grey.

"Left" is the *person's* left (the label), not the image's left: a person facing the camera has
their left side on the image's right.

Conventions: images are ``[H, W, 3]`` **RGB** ``uint8`` (float images in ``[0, 1]`` and grayscale
``[H, W]`` are accepted and converted); 2D joints are pixel coordinates ``(x = column, y = row)``
with the centre of the top-left pixel at ``(0, 0)`` (``docs/dataset-format.md``); use
:func:`to_pixels` for the normalised crop coordinates ``[-1, 1]`` that the networks predict. NaN
joints are not drawn. 2D drawing needs only OpenCV; the 3D functions need matplotlib (the
``viz`` extra) and import it lazily with the Agg backend, never ``pyplot``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from .skeleton import DEFAULT, Bone, JointSet, get_joint_set

LEFT_RGB = (30, 110, 255)
RIGHT_RGB = (235, 45, 45)
CENTRE_RGB = (40, 200, 70)
MASK_RGB = (255, 215, 0)
LOW_CONF_RGB = (150, 150, 150)
#: the body-mask tile of :func:`sample_panel` is dimmed so the yellow outline and the bones stand out
BODY_TILE_GAIN = 0.6
SIDE_RGB = {"left": LEFT_RGB, "right": RIGHT_RGB, "centre": CENTRE_RGB}
#: matplotlib colours (0..1) of the same convention
SIDE_MPL = {k: tuple(c / 255.0 for c in v) for k, v in SIDE_RGB.items()}

_VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}


class VizError(ValueError):
    """Bad input to a drawing function, or an output file that cannot be written (names the file)."""


# ============================================================================ sides and colours
def joint_side(name: str) -> str:
    """``"left"``, ``"right"`` or ``"centre"`` from a joint or bone name (``LHip``, ``L-thigh``,
    ``left_wrist`` -> left)."""
    n = name.strip()
    low = n.lower()
    if low.startswith("left") or n[:2] in ("L-", "L_") or (len(n) > 1 and n[0] == "L" and n[1].isupper()):
        return "left"
    if low.startswith("right") or n[:2] in ("R-", "R_") or (len(n) > 1 and n[0] == "R" and n[1].isupper()):
        return "right"
    return "centre"


def bone_side(bone: Bone, joint_set: JointSet) -> str:
    """Side of a bone: from its name (``L-thigh``), else from its child joint's name."""
    s = joint_side(bone.name)
    return s if s != "centre" else joint_side(joint_set.joints[bone.child])


def _joint_set(joint_set) -> JointSet:
    if isinstance(joint_set, JointSet):
        return joint_set
    if isinstance(joint_set, str):
        try:
            return get_joint_set(joint_set)
        except KeyError as e:
            raise VizError(str(e).strip("'\"")) from None
    raise VizError(f"joint_set: expected a JointSet or a joint-set name, got {type(joint_set).__name__}")


def to_pixels(joints_norm: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Normalised crop coordinates ``[..., 2]`` in ``[-1, 1]`` -> pixels of an ``S x S`` crop
    (``x_px = (x + 1) (S - 1) / 2``); ``size`` may be ``(width, height)``."""
    w, h = (size, size) if np.isscalar(size) else size
    j = np.asarray(joints_norm, dtype=np.float64)
    return np.stack([(j[..., 0] + 1) * (w - 1) / 2, (j[..., 1] + 1) * (h - 1) / 2], axis=-1)


def scale_pixels(joints2d: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates ``[..., 2]`` of an image of ``src_size (w, h)`` in the same image resized to
    ``dst_size (w, h)`` (pixel centres map to pixel centres: ``x' = (x + 0.5) w'/w - 0.5``)."""
    j = np.asarray(joints2d, dtype=np.float64)
    sx, sy = dst_size[0] / src_size[0], dst_size[1] / src_size[1]
    return np.stack([(j[..., 0] + 0.5) * sx - 0.5, (j[..., 1] + 0.5) * sy - 0.5], axis=-1)


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """A copy of ``image`` as ``[H, W, 3]`` uint8 (float in [0, 1] scaled; gray replicated; RGBA cut)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        raise VizError(f"{name}: expected an image [H, W, 3] or [H, W], got shape {list(np.shape(image))}")
    img = img[..., :3]
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img.copy())
    if img.dtype == bool:
        return np.ascontiguousarray(img.astype(np.uint8) * 255)
    f = np.nan_to_num(img.astype(np.float64))
    if np.issubdtype(img.dtype, np.floating) and f.max(initial=0) <= 1.0 + 1e-6:
        f = f * 255.0
    return np.ascontiguousarray(np.clip(np.round(f), 0, 255).astype(np.uint8))


def _mask_to(mask: np.ndarray, h: int, w: int, name: str = "mask") -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise VizError(f"{name}: expected a mask [H, W], got shape {list(np.shape(mask))}")
    if m.dtype == bool:
        b = m.astype(np.uint8)
    elif m.dtype == np.uint8:
        b = (m > 127).astype(np.uint8)
    else:
        b = (np.nan_to_num(m.astype(np.float64)) > 0.5).astype(np.uint8)
    if b.shape != (h, w):
        b = cv2.resize(b, (w, h), interpolation=cv2.INTER_NEAREST)
    return b


# ============================================================================ 2D drawing
def default_thickness(height: int, width: int) -> int:
    """Bone thickness in pixels for an image of this size (1 px below 150 px, 2 px at 160-249 px,
    3 px at 256 px, 5 px at 480 px)."""
    return max(1, int(round(min(height, width) / 100.0)))


def draw_mask_contour(image: np.ndarray, mask: np.ndarray, color=MASK_RGB, thickness: int = 1) -> np.ndarray:
    """Draw the outline of ``mask`` (``[h, w]`` bool / uint8 0-255 / float, resized to the image with
    nearest neighbour if needed) onto ``image`` in place; returns ``image``."""
    h, w = image.shape[:2]
    b = _mask_to(mask, h, w)
    contours, _ = cv2.findContours(b, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, tuple(int(c) for c in color), int(thickness), cv2.LINE_8)  # crisp, full colour
    return image


def draw_skeleton(image: np.ndarray, joints2d: np.ndarray, joint_set: JointSet | str = DEFAULT, *,
                  mask: np.ndarray | None = None, confidence: np.ndarray | None = None,
                  min_confidence: float = 0.3, thickness: int | None = None, radius: int | None = None,
                  mask_color=MASK_RGB, bgr: bool = False, outline: bool = True) -> np.ndarray:
    """Draw a skeleton (and optionally the mask's contour) on a copy of ``image``.

    Bones are coloured by side: person's **left blue**, **right red**, centre green (module
    docstring); joints are dots of the same colours with a thin dark rim. The mask contour
    (yellow) is drawn first, under the skeleton.

    Args:
        image: ``[H, W, 3]`` RGB uint8 (or float in [0, 1], or gray ``[H, W]``).
        joints2d: ``[J, 2]`` pixel coordinates (x = column, y = row; pixel centres at integers);
            rows with NaN are not drawn, nor their bones.
        joint_set: the :class:`~maskpose.skeleton.JointSet` (or its name) the joints follow.
        mask: optional ``[h, w]`` foreground mask whose outline is drawn (resized if needed).
        confidence: optional ``[J]`` in [0, 1]; joints below ``min_confidence`` and their bones
            are drawn grey and thin.
        thickness: bone thickness in px (default :func:`default_thickness`); radius: joint dot radius.
        bgr: the image is BGR (OpenCV order): the colours are swapped to match.
        outline: draw a dark line under each bone (readable on any background).
    Returns:
        ``[H, W, 3]`` uint8, same channel order as the input.
    """
    js = _joint_set(joint_set)
    img = as_rgb_uint8(image)
    H, W = img.shape[:2]
    j = np.asarray(joints2d, dtype=np.float64)
    if j.shape != (js.num_joints, 2):
        raise VizError(f"joints2d: expected shape [{js.num_joints}, 2] for joint set {js.name!r}, got {list(j.shape)}")
    conf = None
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
        if conf.shape != (js.num_joints,):
            raise VizError(f"confidence: expected shape [{js.num_joints}], got {list(np.shape(confidence))}")
    t = default_thickness(H, W) if thickness is None else max(1, int(thickness))
    r = max(2, int(round(1.5 * t + 0.5))) if radius is None else max(1, int(radius))

    def col(rgb):
        c = tuple(int(v) for v in rgb)
        return c[::-1] if bgr else c

    if mask is not None:
        draw_mask_contour(img, mask, col(mask_color), max(1, t // 2 if t > 2 else 1))
    ok = np.isfinite(j).all(-1) & (np.abs(j) < 1e6).all(-1)
    low = np.zeros(js.num_joints, bool) if conf is None else ~(np.nan_to_num(conf, nan=0.0) >= min_confidence)
    SH = 16  # 4 bits of sub-pixel precision

    def pt(i):
        return (int(round(j[i, 0] * SH)), int(round(j[i, 1] * SH)))

    order = sorted(js.bones, key=lambda b: {"centre": 0, "left": 1, "right": 1}[bone_side(b, js)])
    if outline:  # a dark underlay keeps the colours readable on any background
        for b in order:
            if ok[b.child] and ok[b.parent] and not (low[b.child] or low[b.parent]):
                cv2.line(img, pt(b.child), pt(b.parent), (20, 20, 20), t + 2, cv2.LINE_AA, 4)
    for b in order:
        if not (ok[b.child] and ok[b.parent]):
            continue
        dim = low[b.child] or low[b.parent]
        c = col(LOW_CONF_RGB if dim else SIDE_RGB[bone_side(b, js)])
        cv2.line(img, pt(b.child), pt(b.parent), c, max(1, t // 2) if dim else t, cv2.LINE_AA, 4)
    for i, name in enumerate(js.joints):
        if not ok[i]:
            continue
        c = col(LOW_CONF_RGB if low[i] else SIDE_RGB[joint_side(name)])
        cv2.circle(img, pt(i), r * SH, (20, 20, 20), -1, cv2.LINE_AA, 4)
        cv2.circle(img, pt(i), max(1, r - 1) * SH, c, -1, cv2.LINE_AA, 4)
    return img


def put_label(image: np.ndarray, text: str, org: tuple[int, int] = (4, 4), scale: float | None = None,
              color=(255, 255, 255)) -> np.ndarray:
    """Write ``text`` with a dark box behind it at top-left corner ``org`` (in place)."""
    H, W = image.shape[:2]
    s = scale if scale is not None else max(0.35, min(H, W) / 500.0)
    th = max(1, int(round(s * 1.5)))
    (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, s, th)
    x, y = org
    cv2.rectangle(image, (x - 2, y - 2), (min(W - 1, x + tw + 2), min(H - 1, y + tht + base + 1)), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y + tht), cv2.FONT_HERSHEY_SIMPLEX, s, tuple(int(c) for c in color), th, cv2.LINE_AA)
    return image


# ============================================================================ videos
def grid_shape(num: int, columns: int | None = None) -> tuple[int, int]:
    """``(rows, columns)`` of a near-square grid for ``num`` tiles (``columns`` fixed if given)."""
    cols = int(columns) if columns else int(math.ceil(math.sqrt(num)))
    cols = max(1, min(cols, num))
    return int(math.ceil(num / cols)), cols


def tile_views(views: Sequence[np.ndarray], tile_height: int, columns: int | None = None,
               tile_width: int | None = None) -> np.ndarray:
    """Tile images (RGB uint8, any sizes) into a grid: each is scaled to ``tile_height`` keeping its
    aspect and centred in a ``tile_width`` cell (default: the widest scaled view)."""
    scaled = []
    for im in views:
        h, w = im.shape[:2]
        nw = max(1, int(round(w * tile_height / h)))
        scaled.append(cv2.resize(im, (nw, tile_height), interpolation=cv2.INTER_AREA if tile_height < h else cv2.INTER_LINEAR))
    cw = tile_width or max(s.shape[1] for s in scaled)
    rows, cols = grid_shape(len(scaled), columns)
    out = np.zeros((rows * tile_height, cols * cw, 3), np.uint8)
    for k, s in enumerate(scaled):
        if s.shape[1] > cw:  # wider than the cell: letterbox
            nh = max(1, int(round(s.shape[0] * cw / s.shape[1])))
            s = cv2.resize(s, (cw, nh), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        x0 = c * cw + (cw - s.shape[1]) // 2
        y0 = r * tile_height + (tile_height - s.shape[0]) // 2
        out[y0:y0 + s.shape[0], x0:x0 + s.shape[1]] = s
    return out


def open_video_writer(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    """A cv2 writer for ``path`` (``size = (w, h)``): mp4v for .mp4/.m4v/.mov, MJPG for .avi; when
    mp4v cannot be opened in this OpenCV build, falls back to MJPG in ``path.with_suffix('.avi')``.
    Returns ``(writer, path actually written)``; raises :class:`VizError` when nothing opens."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _VIDEO_CODECS:
        raise VizError(f"{path}: video output must end in .mp4, .m4v, .mov or .avi")
    if not (fps > 0 and math.isfinite(fps)):
        raise VizError(f"{path}: fps must be a positive number, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tries = [(path, _VIDEO_CODECS[suffix])]
    if suffix != ".avi":
        tries.append((path.with_suffix(".avi"), "MJPG"))
    for p, code in tries:
        wr = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*code), float(fps), (int(size[0]), int(size[1])))
        if wr.isOpened():
            return wr, p
        wr.release()
    raise VizError(f"{path}: OpenCV cannot open a video writer (tried {', '.join(c for _, c in tries)})")


def overlay_video(frames: Iterable, joints2d: np.ndarray, out_path: str | os.PathLike,
                  masks: Iterable | None = None, fps: float = 25.0, joint_set: JointSet | str = DEFAULT, *,
                  confidence: np.ndarray | None = None, view_names: Sequence[str] | None = None,
                  frame_labels: Sequence[str] | None = None, tile_height: int | None = None,
                  columns: int | None = None, min_confidence: float = 0.3, bgr_frames: bool = False) -> Path:
    """Write a video of the views tiled in a grid with the skeletons drawn on them.

    Args:
        frames: iterable over time of the ``V`` frames of each instant (a list of ``[H, W, 3]`` RGB
            images, or an array ``[V, H, W, 3]``; one image is taken as ``V = 1``). Only the first ``T``
            instants are read.
        joints2d: ``[T, V, J, 2]`` (or ``[T, J, 2]`` for one view) pixel coordinates in each view's own
            frame; NaN where unknown.
        out_path: ``.mp4`` (mp4v) or ``.avi`` (MJPG). If mp4v cannot be opened, the video is written as
            MJPG next to it with the ``.avi`` suffix: use the returned path.
        masks: optional iterable over time of the ``V`` masks (outlines drawn).
        fps: frame rate of the output.
        confidence: optional ``[T, V, J]``; view_names: labels drawn in each tile's corner;
        frame_labels: optional ``[T]`` strings drawn in the first tile (e.g. the source frame).
        tile_height: height of each tile in px (default: the first view's height, at most 480).
        bgr_frames: the frames are BGR (as ``cv2.VideoCapture`` reads them); the output colours stay right.
    Returns:
        The path written. Raises :class:`VizError` when ``frames`` runs out before ``T`` instants
        (the partial file is removed) or shapes disagree.
    """
    js = _joint_set(joint_set)
    j = np.asarray(joints2d, dtype=np.float64)
    if j.ndim == 3:
        j = j[:, None]
    if j.ndim != 4 or j.shape[2:] != (js.num_joints, 2):
        raise VizError(f"joints2d: expected [T, V, {js.num_joints}, 2], got {list(np.shape(joints2d))}")
    T, V = j.shape[:2]
    if T == 0:
        raise VizError("joints2d: no frames (T = 0)")
    conf = None
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64).reshape(T, V, js.num_joints)
    if view_names is not None and len(view_names) != V:
        raise VizError(f"view_names: {len(view_names)} names for {V} views")
    mask_it = iter(masks) if masks is not None else None
    writer, written, size = None, None, None
    n = 0
    try:
        for t, fr in enumerate(frames):
            if t >= T:
                break
            views = _as_views(fr, V, f"frames[{t}]")
            mks = None if mask_it is None else _as_views(next(mask_it, None), V, f"masks[{t}]", mask=True)
            if size is None:
                size = _tile_size(views, tile_height)
            label = None if frame_labels is None else str(frame_labels[t])
            grid = overlay_frame(views, j[t], js, masks=mks, confidence=None if conf is None else conf[t],
                                 view_names=view_names, label=label, tile_height=size[0], tile_width=size[1],
                                 columns=columns, min_confidence=min_confidence, bgr_frames=bgr_frames)
            if writer is None:
                writer, written = open_video_writer(out_path, fps, (grid.shape[1], grid.shape[0]))
            writer.write(cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
            n += 1
    finally:
        if writer is not None:
            writer.release()
    if n < T:
        if written is not None:
            written.unlink(missing_ok=True)
        raise VizError(f"{out_path}: frames gave {n} instants but joints2d has T = {T}")
    return written


def joint_set_for_names(names: Sequence[str]) -> JointSet:
    """The built-in joint set whose joints are exactly ``names`` (in order); :class:`VizError` otherwise."""
    from .skeleton import JOINT_SETS

    for js in JOINT_SETS.values():
        if list(js.joints) == list(names):
            return js
    raise VizError(f"no built-in joint set has the joints {list(names)}")


def overlay_poses(seq, sources: Sequence, out_path: str | os.PathLike, *, fps: float | None = None,
                  tile_height: int | None = None, columns: int | None = None, min_confidence: float = 0.3,
                  masks: Iterable | None = None) -> Path:
    """Overlay video of a predicted :class:`maskpose.export.PoseSequence` on its source videos.

    Args:
        seq: the sequence (``joints2d [T, V, J, 2]`` original-image pixels, ``frame_ids`` = source frame
            indices as strings, ``view_names``, ``confidence [T, J]``, ``joint_names``, ``fps``).
        sources: one per view, in ``seq``'s view order: a video file / image folder path (opened with
            :func:`maskpose.data.video.open_source`) or any object with ``read(index) -> RGB [H, W, 3]``.
        out_path: ``.mp4`` / ``.avi`` (see :func:`overlay_video`); fps: default ``seq.fps`` (else 25).
    Returns:
        The path written. :class:`VizError` when the sequence has no 2D joints, the frame ids are not
        frame numbers, or the number of sources differs from the views.
    """
    if getattr(seq, "joints2d", None) is None:
        raise VizError("the pose sequence has no 2D joints (joints2d is None): nothing to overlay")
    j = np.asarray(seq.joints2d, dtype=np.float64)
    if j.ndim != 4:
        raise VizError(f"joints2d: expected [T, V, J, 2], got {list(j.shape)}")
    T, V = j.shape[:2]
    if len(sources) != V:
        raise VizError(f"{len(sources)} sources for {V} views ({', '.join(seq.view_names or [])})")
    try:
        frames = [int(f) for f in seq.frame_ids]
    except (TypeError, ValueError):
        raise VizError("the frame ids are not source frame numbers (a dataset folder input?): "
                       "overlay needs the original videos or image folders") from None
    js = joint_set_for_names(seq.joint_names)
    opened = []
    for src in sources:
        if isinstance(src, (str, os.PathLike)):
            from .data.video import open_source

            src = open_source(src)
        opened.append(src)
    conf = getattr(seq, "confidence", None)
    conf = None if conf is None else np.repeat(np.asarray(conf, dtype=np.float64)[:, None], V, axis=1)
    rate = fps or getattr(seq, "fps", None) or 25.0
    try:
        return overlay_video(([s.read(f) for s in opened] for f in frames), j, out_path, masks=masks, fps=rate,
                             joint_set=js, confidence=conf, view_names=seq.view_names,
                             frame_labels=[f"frame {f}" for f in frames], tile_height=tile_height, columns=columns,
                             min_confidence=min_confidence)
    finally:
        for s, src in zip(opened, sources):
            if isinstance(src, (str, os.PathLike)) and hasattr(s, "close"):
                s.close()


def _tile_size(views, tile_height: int | None) -> tuple[int, int]:
    """``(height, width)`` of the grid cells (even numbers) for these views."""
    h0 = np.shape(views[0])[0]
    th = int(tile_height or min(480, h0))
    th += th % 2
    tw = max(int(round(np.shape(im)[1] * th / np.shape(im)[0])) for im in views)
    return th, tw + tw % 2


def overlay_frame(views: Sequence[np.ndarray], joints2d: np.ndarray, joint_set: JointSet | str = DEFAULT, *,
                  masks: Sequence[np.ndarray] | None = None, confidence: np.ndarray | None = None,
                  view_names: Sequence[str] | None = None, label: str | None = None,
                  tile_height: int | None = None, tile_width: int | None = None, columns: int | None = None,
                  min_confidence: float = 0.3, bgr_frames: bool = False) -> np.ndarray:
    """One instant of :func:`overlay_video` as an RGB image: the ``V`` views (``[H, W, 3]`` RGB, any
    sizes) scaled to ``tile_height``, the skeletons ``joints2d [V, J, 2]`` (each view's own pixels) and
    mask outlines drawn after scaling (crisp lines on small crops), tiled in a grid."""
    js = _joint_set(joint_set)
    V = len(views)
    j = np.asarray(joints2d, dtype=np.float64).reshape(V, js.num_joints, 2)
    th, tw = _tile_size(views, tile_height)
    tw = tile_width or tw
    tiles = []
    for v in range(V):
        src = as_rgb_uint8(views[v], f"views[{v}]")
        if bgr_frames:
            src = np.ascontiguousarray(src[..., ::-1])
        h0, w0 = src.shape[:2]
        nw = max(1, int(round(w0 * th / h0)))
        img = cv2.resize(src, (nw, th), interpolation=cv2.INTER_AREA if th < h0 else cv2.INTER_LINEAR)
        jv = scale_pixels(j[v], (w0, h0), (nw, th))
        img = draw_skeleton(img, jv, js, mask=None if masks is None else masks[v],
                            confidence=None if confidence is None else np.asarray(confidence)[v],
                            min_confidence=min_confidence)
        name = view_names[v] if view_names is not None else (f"view {v}" if V > 1 else None)
        if v == 0 and label:
            name = f"{name}  {label}" if name else label
        if name:
            put_label(img, name)
        tiles.append(img)
    return tile_views(tiles, th, columns, tw)


def _as_views(fr, V: int, name: str, mask: bool = False) -> list:
    if fr is None:
        raise VizError(f"{name}: missing (fewer entries than frames)")
    if isinstance(fr, np.ndarray) and (fr.ndim == (2 if mask else 3)) and V == 1:
        fr = [fr]
    views = list(fr)
    if len(views) != V:
        raise VizError(f"{name}: {len(views)} views but joints2d has V = {V}")
    return views


# ============================================================================ 3D plots
_AXES = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}


def up_rotation(up_axis: str | Sequence[float] = "z") -> np.ndarray:
    """Rotation ``[3, 3]`` (det +1, so people are never mirrored) taking data coordinates to plot
    coordinates whose z is ``up_axis``: ``"z"`` (synthetic / most world frames; identity), ``"-y"``
    (OpenCV camera frame: y down; plot = (x, z, -y), looking from the camera), ``"y"``, ``"-z"``,
    ``"x"``, ``"-x"`` or a 3-vector."""
    if isinstance(up_axis, str):
        s = up_axis.strip().lower()
        sign = -1.0 if s.startswith("-") else 1.0
        key = s.lstrip("+-")
        if key not in _AXES:
            raise VizError(f"up_axis: expected x, y, z (optionally signed) or a 3-vector, got {up_axis!r}")
        u = sign * np.asarray(_AXES[key], dtype=np.float64)
    else:
        u = np.asarray(up_axis, dtype=np.float64).reshape(-1)
        if u.shape != (3,) or not np.isfinite(u).all() or np.linalg.norm(u) < 1e-12:
            raise VizError(f"up_axis: expected a non-zero 3-vector, got {up_axis!r}")
        u = u / np.linalg.norm(u)
    a = np.array([1.0, 0.0, 0.0])
    if abs(a @ u) > 0.9:
        a = np.array([0.0, 1.0, 0.0]) if u[0] > 0 else np.array([0.0, -1.0, 0.0])
    a = a - (a @ u) * u
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    return np.stack([a, b, u])


def estimate_up(joints3d: np.ndarray, joint_set: JointSet | str = DEFAULT) -> np.ndarray:
    """Unit up vector ``[3]`` of poses ``[..., J, 3]``: the mean root -> thorax (else neck / shoulder
    midpoint) direction over all finite poses. For one strongly leaning pose it leans too."""
    js = _joint_set(joint_set)
    X = np.asarray(joints3d, dtype=np.float64).reshape(-1, js.num_joints, 3)
    names = js.joints
    if "thorax" in names:
        top = X[:, js.index("thorax")]
    elif "neck" in names:
        top = X[:, js.index("neck")]
    else:
        top = 0.5 * (X[:, js.index("LShoulder")] + X[:, js.index("RShoulder")])
    d = top - X[:, js.root]
    d = d[np.isfinite(d).all(-1)]
    if len(d) == 0 or np.linalg.norm(d.mean(0)) < 1e-9:
        return np.array([0.0, 0.0, 1.0])
    v = d.mean(0)
    return v / np.linalg.norm(v)


def _resolve_up(up_axis, joints3d, js: JointSet):
    if isinstance(up_axis, str) and up_axis.strip().lower() == "auto":
        return estimate_up(joints3d, js)
    return up_axis


def _check_3d(joints3d, js: JointSet, name: str) -> np.ndarray:
    x = np.asarray(joints3d, dtype=np.float64)
    if x.shape != (js.num_joints, 3):
        raise VizError(f"{name}: expected shape [{js.num_joints}, 3] for joint set {js.name!r}, got {list(x.shape)}")
    return x


def equal_limits(points: np.ndarray, margin: float = 0.08) -> tuple[np.ndarray, float]:
    """``(centre [3], half_range)`` of a cube holding all finite ``points [..., 3]``."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(-1)]
    if len(p) == 0:
        return np.zeros(3), 1.0
    lo, hi = p.min(0), p.max(0)
    half = 0.5 * float((hi - lo).max()) * (1 + margin)
    return 0.5 * (lo + hi), max(half, 1e-6)


def set_equal_axes(ax, centre: np.ndarray, half: float) -> None:
    """Give a 3D axes the same range on x, y and z (and a cubic box), so lengths look true."""
    ax.set_xlim3d(centre[0] - half, centre[0] + half)
    ax.set_ylim3d(centre[1] - half, centre[1] + half)
    ax.set_zlim3d(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1), zoom=1.1)


def plot_skeleton_3d(ax, joints3d: np.ndarray, joint_set: JointSet | str = DEFAULT,
                     up_axis: str | Sequence[float] = "z", *, gt: np.ndarray | None = None,
                     limits: tuple[np.ndarray, float] | None = None, linewidth: float = 2.0,
                     title: str | None = None, joints: bool = True, ticks: bool = False) -> list:
    """Draw a 3D skeleton on a matplotlib 3D axes with side colours and equal axis ranges.

    Args:
        ax: an ``Axes3D`` (``fig.add_subplot(projection="3d")``).
        joints3d: ``[J, 3]`` (any unit; NaN joints and their bones are skipped).
        up_axis: the data's up direction (see :func:`up_rotation`): ``"z"`` for z-up worlds,
            ``"-y"`` for OpenCV camera frames, ``"auto"`` to estimate it from the pose
            (:func:`estimate_up`; from ``gt`` when given), or a 3-vector.
        gt: optional ``[J, 3]`` reference pose drawn grey and dashed underneath.
        limits: ``(centre, half_range)`` in *plot* coordinates to use instead of fitting this pose
            (keeps the axes fixed over an animation).
    Returns:
        The list of line artists of ``joints3d``'s bones (for animation), in ``joint_set.bones`` order.
    """
    js = _joint_set(joint_set)
    Rp = up_rotation(_resolve_up(up_axis, joints3d if gt is None else gt, js))
    X = _check_3d(joints3d, js, "joints3d") @ Rp.T
    G = None if gt is None else _check_3d(gt, js, "gt") @ Rp.T
    if G is not None:
        for b in js.bones:
            seg = G[[b.child, b.parent]]
            if np.isfinite(seg).all():
                ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=(0.45, 0.45, 0.45), lw=linewidth * 0.8,
                        ls="--", alpha=0.9)
    lines = []
    for b in js.bones:
        seg = X[[b.child, b.parent]]
        (ln,) = ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=SIDE_MPL[bone_side(b, js)], lw=linewidth,
                        solid_capstyle="round")
        lines.append(ln)
    if joints:
        ok = np.isfinite(X).all(-1)
        cols = [SIDE_MPL[joint_side(n)] for n in js.joints]
        ax.scatter(X[ok, 0], X[ok, 1], X[ok, 2], c=[c for c, o in zip(cols, ok) if o], s=10 * linewidth,
                   depthshade=False, edgecolors="k", linewidths=0.3)
    centre, half = limits if limits is not None else equal_limits(X if G is None else np.concatenate([X, G]))
    set_equal_axes(ax, centre, half)
    if not ticks:
        ax.set_xticklabels([])
        ax.set_yticklabels([])
        ax.set_zticklabels([])
    if title:
        ax.set_title(title, fontsize=9)
    return lines


def new_figure(width_px: int, height_px: int, dpi: int = 100):
    """A matplotlib ``Figure`` of ``width_px x height_px`` on an Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_to_rgb(fig) -> np.ndarray:
    """Render a matplotlib figure (Agg canvas) to ``[H, W, 3]`` RGB uint8."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def render_skeleton_3d(joints3d: np.ndarray, joint_set: JointSet | str = DEFAULT, up_axis="z", *,
                       gt: np.ndarray | None = None, views: Sequence[tuple[float, float]] = ((12, -70), (12, 20)),
                       title: str | None = None, size_px: int = 320, legend: bool = True) -> np.ndarray:
    """The 3D skeleton from each ``(elevation, azimuth)`` in ``views`` side by side, as RGB uint8
    ``[size_px, len(views) * size_px, 3]``."""
    js = _joint_set(joint_set)
    up_axis = _resolve_up(up_axis, joints3d if gt is None else gt, js)
    fig = new_figure(size_px * len(views), size_px)
    for k, (elev, azim) in enumerate(views):
        ax = fig.add_subplot(1, len(views), k + 1, projection="3d")
        plot_skeleton_3d(ax, joints3d, js, up_axis, gt=gt)
        ax.view_init(elev=elev, azim=azim)
    if title:
        fig.suptitle(title, fontsize=10)
    if legend:
        _side_legend(fig, gt is not None)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.92 if title else 1, wspace=0)
    return figure_to_rgb(fig)


def _side_legend(fig, with_gt: bool) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=SIDE_MPL["left"], lw=2, label="left"),
               Line2D([], [], color=SIDE_MPL["right"], lw=2, label="right"),
               Line2D([], [], color=SIDE_MPL["centre"], lw=2, label="centre")]
    if with_gt:
        handles.append(Line2D([], [], color=(0.45, 0.45, 0.45), lw=1.5, ls="--", label="ground truth"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)


def save_skeleton_3d(joints3d: np.ndarray, path: str | os.PathLike, joint_set: JointSet | str = DEFAULT,
                     up_axis="z", *, gt: np.ndarray | None = None,
                     views: Sequence[tuple[float, float]] = ((12, -70), (12, 20)), title: str | None = None,
                     size_px: int = 320) -> Path:
    """Write :func:`render_skeleton_3d` to a PNG file; returns the path."""
    path = Path(path)
    img = render_skeleton_3d(joints3d, joint_set, up_axis, gt=gt, views=views, title=title, size_px=size_px)
    write_png(path, img)
    return path


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(as_rgb_uint8(rgb), cv2.COLOR_RGB2BGR)):
        raise VizError(f"{path}: cannot write the image (is the suffix an image format and the folder writable?)")
    return path


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an RGB image."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(as_rgb_uint8(rgb), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise VizError("cannot encode a PNG")
    return buf.tobytes()


def animate_3d(joints3d: np.ndarray, path: str | os.PathLike, fps: float = 25.0,
               joint_set: JointSet | str = DEFAULT, up_axis="z", *, view: tuple[float, float] = (12, -70),
               size_px: int = 360, title: str | None = None) -> Path:
    """Animate a pose sequence ``[T, J, 3]`` with fixed, equal axes over the whole sequence
    (``up_axis`` as :func:`plot_skeleton_3d`; ``"auto"`` estimates it from the whole sequence).

    ``.gif``: matplotlib ``FuncAnimation`` + ``PillowWriter``; ``.mp4`` / ``.avi``: the same frames
    rendered with Agg and written by OpenCV (mp4v, falling back to MJPG ``.avi``; ffmpeg is not
    needed). Returns the path written (see :func:`open_video_writer` for the fallback).
    Note: GIF writers merge identical consecutive frames, so a still sequence gives fewer GIF frames.
    """
    js = _joint_set(joint_set)
    X = np.asarray(joints3d, dtype=np.float64)
    if X.ndim != 3 or X.shape[1:] != (js.num_joints, 3) or X.shape[0] < 1:
        raise VizError(f"joints3d: expected [T, {js.num_joints}, 3] with T >= 1, got {list(X.shape)}")
    if not (fps > 0 and math.isfinite(fps)):
        raise VizError(f"fps must be a positive number, got {fps}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif",) + tuple(_VIDEO_CODECS):
        raise VizError(f"{path}: animation output must end in .gif, .mp4 or .avi")
    up_axis = _resolve_up(up_axis, X, js)
    Rp = up_rotation(up_axis)
    limits = equal_limits(X @ Rp.T)
    fig = new_figure(size_px, size_px)
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    lines = plot_skeleton_3d(ax, X[0], js, up_axis, limits=limits, joints=False)
    ax.view_init(elev=view[0], azim=view[1])
    label = ax.text2D(0.02, 0.96, "", transform=ax.transAxes, fontsize=8)
    Xp = X @ Rp.T

    def update(t):
        for ln, b in zip(lines, js.bones):
            seg = Xp[t, [b.child, b.parent]]
            ln.set_data_3d(seg[:, 0], seg[:, 1], seg[:, 2])
        label.set_text(f"{title + '  ' if title else ''}{t + 1}/{len(X)}")
        return lines + [label]

    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        from matplotlib.animation import FuncAnimation, PillowWriter

        anim = FuncAnimation(fig, update, frames=len(X), blit=False)
        try:
            anim.save(str(path), writer=PillowWriter(fps=fps))
        except (OSError, ValueError) as e:
            raise VizError(f"{path}: cannot write the GIF ({e})") from None
        return path
    writer, written = None, path
    try:
        for t in range(len(X)):
            update(t)
            frame = figure_to_rgb(fig)
            if writer is None:
                h, w = frame.shape[:2]
                writer, written = open_video_writer(path, fps, (w - w % 2, h - h % 2))
            writer.write(cv2.cvtColor(frame[:frame.shape[0] // 2 * 2, :frame.shape[1] // 2 * 2], cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    return written


# ============================================================================ report panels
def colorize(mask: np.ndarray, size: int, name: str = "mask") -> np.ndarray:
    """A soft mask ``[h, w]`` in [0, 1] (bool / uint8 0-255 accepted) as a gray RGB tile of ``size``."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise VizError(f"{name}: expected [H, W], got shape {list(np.shape(mask))}")
    if m.dtype == bool:
        f = m.astype(np.float32)
    elif m.dtype == np.uint8:
        f = m.astype(np.float32) / 255.0
    else:
        f = np.clip(np.nan_to_num(m.astype(np.float32)), 0, 1)
    g = cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR if m.dtype != bool else cv2.INTER_NEAREST)
    return as_rgb_uint8(np.repeat(np.clip(g, 0, 1)[..., None], 3, -1))


def sample_panel(image: np.ndarray, mask: np.ndarray, skeleton_mask: np.ndarray, physique_mask: np.ndarray | None,
                 body_mask: np.ndarray, *, joints2d: np.ndarray | None = None, joint_set: JointSet | str = DEFAULT,
                 tile: int = 160, labels: bool = True, header: bool = True) -> np.ndarray:
    """One row of square tiles for a report: image (+ skeleton) | mask | skeleton mask |
    physique mask (only when given) | body mask (+ mask contour in yellow + skeleton).

    Args:
        image: ``[S, S, 3]`` RGB crop; mask, skeleton_mask, physique_mask, body_mask: ``[S, S]``
            in [0, 1] (the target mask and the model's renderings).
        joints2d: ``[J, 2]`` predicted joints in the crop's **pixel** coordinates (see :func:`to_pixels`).
        tile: tile side in px; header: a strip with the tile names above the row.
    Returns:
        ``[tile (+ header), n * tile, 3]`` RGB uint8, ``n`` = 4 or 5.
    """
    js = _joint_set(joint_set)
    img = as_rgb_uint8(image)
    h, w = img.shape[:2]
    big = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_CUBIC if tile > max(h, w) else cv2.INTER_AREA)
    j = None if joints2d is None else scale_pixels(joints2d, (w, h), (tile, tile))
    if j is not None:
        big = draw_skeleton(big, j, js)
    body = (colorize(body_mask, tile, "body_mask").astype(np.float32) * BODY_TILE_GAIN).astype(np.uint8)
    body = draw_mask_contour(body, _bool(mask), MASK_RGB, max(1, tile // 128))
    if j is not None:
        body = draw_skeleton(body, j, js)
    tiles = [("image + skeleton", big), ("mask", colorize(_bool(mask), tile, "mask")),
             ("skeleton mask", colorize(skeleton_mask, tile, "skeleton_mask"))]
    if physique_mask is not None:
        tiles.append(("physique mask", colorize(physique_mask, tile, "physique_mask")))
    tiles.append(("body mask + outline", body))
    row = np.concatenate([t for _, t in tiles], axis=1)
    for k in range(1, len(tiles)):  # thin separators
        row[:, k * tile - 1:k * tile + 1] = 255
    if not (labels and header):
        return row
    hh = max(14, tile // 9)
    strip = np.full((hh, row.shape[1], 3), 255, np.uint8)
    s = max(0.3, hh / 40.0)
    for k, (name, _) in enumerate(tiles):
        (tw, tht), _b = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, s, 1)
        sk = s if tw <= tile - 4 else s * (tile - 4) / tw  # shrink long names to fit the tile
        (tw, tht), _b = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, sk, 1)
        x = k * tile + max(2, (tile - tw) // 2)
        cv2.putText(strip, name, (x, (hh + tht) // 2), cv2.FONT_HERSHEY_SIMPLEX, sk, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, row], axis=0)


def _bool(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.dtype == np.uint8:
        return m > 127
    return m > 0.5 if m.dtype != bool else m


__all__ = [
    "LEFT_RGB", "RIGHT_RGB", "CENTRE_RGB", "MASK_RGB", "VizError", "joint_side", "bone_side", "to_pixels",
    "scale_pixels", "draw_skeleton", "draw_mask_contour", "overlay_frame", "overlay_video", "overlay_poses", "joint_set_for_names", "tile_views", "open_video_writer",
    "up_rotation", "estimate_up", "plot_skeleton_3d", "render_skeleton_3d", "save_skeleton_3d", "animate_3d", "sample_panel",
    "new_figure", "figure_to_rgb", "png_bytes", "write_png", "equal_limits", "set_equal_axes",
]
