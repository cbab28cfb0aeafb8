"""Reading the user's footage: video files and image folders, one per view, synchronised by frame index.

A *frame source* is one view's frames: a video file (decoded with OpenCV's FFmpeg backend) or a folder
of images (sorted in natural order, so ``img2.png`` comes before ``img10.png``). Every frame is RGB
``uint8 [H, W, 3]``.

:func:`open_source` opens one source; :func:`open_views` turns the ``inputs`` of ``maskpose prepare``
into the list of views:

* one video file or one folder of images -> one view;
* a folder of video files -> one view per video (natural order of the file names);
* a folder of image folders -> one view per sub-folder (natural order);
* a list of paths -> one view per path.

Views are synchronised **by frame index**: frame ``i`` of every view is the same instant (trim your
recordings so they start together). :func:`common_frame_count` checks the views' frame counts. When they
differ by at most ``max(5, 2 % of the longest)`` frames (cameras stopped a little apart), every view is
truncated to the shortest with a :class:`VideoWarning`; a larger difference is almost certainly
unsynchronised footage and raises :class:`VideoError` listing the counts.

Frame counts in video headers are often wrong (variable frame rate, truncated recordings). A
:class:`VideoFile` checks the header's count by reading the last frame it announces and the one after it;
when the check fails it counts the frames by decoding the whole file once.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".mts",
              ".m2ts", ".ts", ".3gp", ".ogv")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")

#: largest gap (frames) skipped by decoding forward instead of seeking
_MAX_GRAB_GAP = 96


class VideoError(ValueError):
    """A video or image folder cannot be used (the message names the file and the problem)."""


class VideoWarning(UserWarning):
    """Something about the footage was adjusted (e.g. views truncated to a common length)."""


def natural_key(name: str) -> tuple:
    """Sort key for natural order: ``cam2 < cam10``, case-insensitive."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts)


def _is_hidden(p: Path) -> bool:
    return p.name.startswith(".")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of ``folder`` (by extension, hidden files skipped) in natural order."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and not _is_hidden(p) and p.suffix.lower() in IMAGE_EXTS]
    return sorted(files, key=lambda p: natural_key(p.name))


def list_videos(folder: str | os.PathLike) -> list[Path]:
    """Video files of ``folder`` (by extension, hidden files skipped) in natural order."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and not _is_hidden(p) and p.suffix.lower() in VIDEO_EXTS]
    return sorted(files, key=lambda p: natural_key(p.name))


# ============================================================================ sources
class FrameSource:
    """One view's frames. ``name`` (view name: the video's stem or the folder's name), ``path``,
    ``num_frames``, ``fps`` (None when unknown), ``size = (width, height)`` px.

    ``read(i)`` returns frame ``i`` (RGB uint8 ``[H, W, 3]``) or raises :class:`VideoError`;
    ``frames(indices)`` yields ``(i, frame)`` for increasing indices, with ``frame = None`` for a frame
    that cannot be decoded (so that one corrupt frame in a long recording does not stop a job);
    iterating a source yields all its frames the same way. ``frame_name(i)`` is the name user-supplied
    mask files are matched by (the image's stem, or the index for videos).
    """

    name: str
    path: Path
    num_frames: int
    fps: float | None
    size: tuple[int, int]

    def read(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def frames(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray | None]]:  # pragma: no cover
        raise NotImplementedError

    def frame_name(self, index: int) -> str:
        return f"{index:06d}"

    def close(self) -> None:
        pass

    def _check_index(self, index: int) -> int:
        i = int(index)
        if not 0 <= i < self.num_frames:
            raise VideoError(f"{self.path}: frame {index} out of range (the source has {self.num_frames} frames)")
        return i

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:
        return self.frames()

    def __len__(self) -> int:
        return self.num_frames

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, frames={self.num_frames}, size={self.size}, "
                f"fps={self.fps})")


class VideoFile(FrameSource):
    """A video file read with OpenCV (FFmpeg backend); see :class:`FrameSource`.

    Raises :class:`VideoError` when the file does not exist, cannot be opened or decodes no frame.
    The frame count is verified (see the module docstring); ``header_frames`` keeps the header's value.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = self.path.stem
        if not self.path.exists():
            raise VideoError(f"video file {self.path} does not exist")
        if not self.path.is_file():
            raise VideoError(f"video path {self.path} is not a file")
        self._cap = self._open()
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            raise VideoError(f"{self.path}: no frame could be decoded (empty, zero-frame or corrupt video, or a codec "
                             f"that OpenCV's FFmpeg cannot decode)")
        self._pos = 1  # index of the next frame a plain read() returns
        h, w = frame.shape[:2]
        self.size = (int(w), int(h))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0.0 < fps < 1000.0 else None
        hdr = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.header_frames = int(hdr) if math.isfinite(hdr) and hdr > 0 else 0
        self.num_frames = self._verified_count()
        self.counted = self.num_frames != self.header_frames

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"cannot open video file {self.path} (not a video, or a format OpenCV cannot read)")
        return cap

    def _seek(self, index: int) -> None:
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, float(index))
        self._pos = int(index)

    def _read_at(self, index: int) -> np.ndarray | None:
        """BGR frame ``index`` or None; decodes forward over small gaps, seeks otherwise."""
        if self._pos is None or index < self._pos or index - self._pos > _MAX_GRAB_GAP:
            self._seek(index)
        while self._pos < index:
            if not self._cap.grab():
                self._pos = None  # type: ignore[assignment]
                return None
            self._pos += 1
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._pos = None  # type: ignore[assignment]  # unknown position: seek next time
            return None
        self._pos += 1
        return frame

    def _verified_count(self) -> int:
        n = self.header_frames
        if n >= 1:
            last = self._read_at(n - 1) if n > 1 else True
            after = self._read_at(n)
            if last is not None and after is None:
                return n
        return self._count_by_decoding()

    def _count_by_decoding(self) -> int:
        self._cap.release()
        self._cap = self._open()
        n = 0
        while self._cap.grab():
            n += 1
        self._cap.release()
        self._cap = self._open()
        self._pos = 0
        if n == 0:
            raise VideoError(f"{self.path}: no frame could be decoded (zero-frame or corrupt video)")
        return n

    def read(self, index: int) -> np.ndarray:
        i = self._check_index(index)
        frame = self._read_at(i)
        if frame is None:
            raise VideoError(f"{self.path}: frame {i} cannot be decoded (truncated or corrupt video?)")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def frames(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray | None]]:
        idx = range(self.num_frames) if indices is None else indices
        prev = -1
        for i in idx:
            i = self._check_index(i)
            if i <= prev:
                raise ValueError(f"{self.path}: frames() needs increasing indices, got {i} after {prev}")
            prev = i
            frame = self._read_at(i)
            if frame is not None and frame.shape[:2] != (self.size[1], self.size[0]):
                frame = None  # a resolution change mid-stream: treat as undecodable
            yield i, (None if frame is None else cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        if getattr(self, "_cap", None) is not None:
            self._cap.release()


class ImageFolder(FrameSource):
    """A folder of images (one frame per file, natural order); see :class:`FrameSource`.

    The first image fixes ``size``; a later image of another size (or an unreadable one) is an undecodable
    frame for :meth:`frames` and an error for :meth:`read`. ``fps`` is None.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.is_dir():
            raise VideoError(f"image folder {self.path} does not exist" if not self.path.exists()
                             else f"{self.path} is not a folder")
        self.files = list_images(self.path)
        if not self.files:
            raise VideoError(f"image folder {self.path} contains no image files ({', '.join(IMAGE_EXTS)})")
        self.num_frames = len(self.files)
        self.fps = fps
        first = self._load(self.files[0])
        if first is None:
            raise VideoError(f"cannot read image file {self.files[0]}")
        self.size = (int(first.shape[1]), int(first.shape[0]))

    @staticmethod
    def _load(path: Path) -> np.ndarray | None:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or img.dtype != np.uint8:
            return None
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def read(self, index: int) -> np.ndarray:
        i = self._check_index(index)
        img = self._load(self.files[i])
        if img is None:
            raise VideoError(f"cannot read image file {self.files[i]}")
        if (img.shape[1], img.shape[0]) != self.size:
            raise VideoError(f"image file {self.files[i]} is {img.shape[1]}x{img.shape[0]} px but the first image of "
                             f"{self.path} is {self.size[0]}x{self.size[1]} px (all frames of a view must have one size)")
        return img

    def frames(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray | None]]:
        idx = range(self.num_frames) if indices is None else indices
        for i in idx:
            try:
                yield int(i), self.read(i)
            except VideoError as e:
                if "out of range" in str(e):
                    raise
                yield int(i), None

    def frame_name(self, index: int) -> str:
        return self.files[self._check_index(index)].stem


# ============================================================================ opening
def open_source(path: str | os.PathLike) -> FrameSource:
    """Open a video file or an image folder as a :class:`FrameSource`; :class:`VideoError` if unusable."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"input {path} does not exist")
    if path.is_dir():
        if list_images(path):
            return ImageFolder(path)
        if list_videos(path):
            raise VideoError(f"{path} is a folder of videos: give one video file here, or use open_views for a "
                             f"folder with one video per view")
        raise VideoError(f"folder {path} contains no image files ({', '.join(IMAGE_EXTS)})")
    if path.suffix.lower() in IMAGE_EXTS:
        raise VideoError(f"{path} is a single image; give the folder of images instead (one image per frame)")
    return VideoFile(path)


def discover_views(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The per-view paths of ``inputs`` (see the module docstring), in view order."""
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if not path.exists():
            raise VideoError(f"input {path} does not exist")
        if path.is_file():
            return [path]
        videos = list_videos(path)
        images = list_images(path)
        subdirs = sorted([p for p in path.iterdir() if p.is_dir() and not _is_hidden(p) and list_images(p)],
                         key=lambda p: natural_key(p.name))
        kinds = [k for k, v in (("video files", videos), ("image files", images), ("image folders", subdirs)) if v]
        if len(kinds) > 1:
            raise VideoError(f"{path} mixes {' and '.join(kinds)}: give a folder with one video per view, a folder of "
                             f"images (one view), or a folder of image folders (one per view)")
        if videos:
            return videos
        if images:
            return [path]
        if subdirs:
            return subdirs
        raise VideoError(f"{path} contains no video files ({', '.join(VIDEO_EXTS)}), no images and no image folders")
    paths = [Path(p) for p in inputs]
    if not paths:
        raise VideoError("no inputs given")
    return paths


def open_views(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[FrameSource]:
    """Open every view of ``inputs`` (see the module docstring); view names must be unique."""
    paths = discover_views(inputs)
    sources: list[FrameSource] = []
    try:
        for p in paths:
            sources.append(open_source(p))
    except BaseException:
        for s in sources:
            s.close()
        raise
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        for s in sources:
            s.close()
        raise VideoError(f"views must have distinct names, got {names} (from {[str(p) for p in paths]})")
    return sources


def frame_tolerance(counts: Sequence[int]) -> int:
    """Largest frame-count difference between views that is truncated instead of refused."""
    return max(5, int(math.ceil(0.02 * max(counts))))


def common_frame_count(sources: Sequence[FrameSource], tolerance: int | None = None) -> int:
    """Number of synchronised frames of ``sources`` (the shortest view's count).

    Views whose counts differ by at most ``tolerance`` (default :func:`frame_tolerance`) are truncated to
    the shortest with a :class:`VideoWarning`; a larger difference raises :class:`VideoError`.
    """
    counts = [s.num_frames for s in sources]
    if not counts:
        raise VideoError("no views")
    lo, hi = min(counts), max(counts)
    if lo == hi:
        return lo
    tol = frame_tolerance(counts) if tolerance is None else int(tolerance)
    listing = ", ".join(f"{s.name}: {s.num_frames}" for s in sources)
    if hi - lo > tol:
        raise VideoError(f"the views have different frame counts ({listing}); views are synchronised by frame "
                         f"index, so trim the recordings to start and end together (a difference of up to {tol} "
                         f"frames is truncated automatically)")
    warnings.warn(f"the views have slightly different frame counts ({listing}); using the first {lo} frames of each",
                  VideoWarning, stacklevel=2)
    return lo


__all__ = [
    "VIDEO_EXTS", "IMAGE_EXTS", "VideoError", "VideoWarning", "FrameSource", "VideoFile", "ImageFolder",
    "open_source", "open_views", "discover_views", "common_frame_count", "frame_tolerance", "natural_key",
    "list_images", "list_videos",
]
