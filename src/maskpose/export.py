"""Pose sequences and their file formats: JSON, CSV, NPZ and OpenSim TRC.

:class:`PoseSequence` is what prediction returns and what every writer takes: ``T`` frames of ``J``
3D joints in millimetres (NaN where unknown) in the ``"world"`` frame (triangulated, the
calibration's world) or the ``"camera"`` frame (root-relative, camera axes), plus optional
per-joint confidence and per-view 2D joints.

:func:`export_poses` writes one file (format from the suffix), refusing to replace an existing file
unless ``overwrite=True``, atomically (temporary file in the same folder + ``os.replace``, so an
interrupted write never leaves a half file under the final name). :func:`load_poses` reads back the
JSON / NPZ / CSV it writes (:func:`convert_poses` converts between formats); :func:`read_trc` parses a TRC file the way OpenSim 4's
``TRCFileAdapter`` does (same tokenisation and checks), so a file it accepts OpenSim accepts.

Formats
-------
* **json** — ``{"format": "maskpose-poses", "version": 1, "units", "frame", "y_up", "fps",
  "joint_names", "view_names", "meta", "frames": [{"id", "joints3d": [[x, y, z] | [null ×3], ...],
  "confidence"?: [...], "joints2d"?: [[[u, v], ...] per view]}]}``; NaN is written as ``null``.
* **csv** — header ``frame,<joint>_x,<joint>_y,<joint>_z,...`` (then ``<joint>_confidence`` per
  joint when the sequence has confidence); one row per frame; NaN is an empty cell. CSV carries no
  metadata: :func:`load_poses` reads it as millimetres in the frame given by its arguments.
* **npz** — ``joints3d``, ``joint_names``, ``frame_ids``, ``frame``, ``fps`` (NaN when unknown),
  ``units``, ``y_up``, ``meta_json`` and, when present, ``confidence``, ``joints2d``, ``view_names``;
  strings are unicode arrays, so ``np.load(path, allow_pickle=False)`` reads it.
* **trc** — OpenSim marker file (below).

TRC layout (what OpenSim 4's ``TRCFileAdapter`` reads and writes; ``\\t`` is a tab)::

    PathFileType\\t4\\t(X/Y/Z)\\t<file name>
    DataRate\\tCameraRate\\tNumFrames\\tNumMarkers\\tUnits\\tOrigDataRate\\tOrigDataStartFrame\\tOrigNumFrames
    <rate>\\t<rate>\\t<T>\\t<J>\\t<mm|m>\\t<rate>\\t1\\t<T>
    Frame#\\tTime\\t<name1>\\t\\t\\t<name2>\\t\\t\\t...
    \\t\\tX1\\tY1\\tZ1\\tX2\\tY2\\tZ2\\t...
    <blank line>
    1\\t<time>\\t<x1>\\t<y1>\\t<z1>\\t...\\t      (every value followed by a tab, as OpenSim writes)

A missing marker is three empty fields. OpenSim splits each line at every tab but drops the text
after the *last* tab when it is empty; writing a tab after every value (as OpenSim's own writer
does) keeps a missing *last* marker at the right field count (a file without the trailing tab and a
missing last marker is rejected by OpenSim with "RowLengthMismatch"). OpenSim reads the empty
fields as NaN (a marker is used only when all three components are present).

Time of row ``i`` is ``frame_index_i / fps``, where the frame index is the integer frame id when
every id is an integer (source frame numbers from ``predict``), else ``i``; so the time axis lines up
with the source video. ``DataRate`` is ``fps / step`` when the integer ids advance by a constant
``step``, else ``fps``.

Y-up (``y_up=True``)
--------------------
OpenSim's ground frame is Y up. ``y_up`` rotates the points by a proper rotation (det +1, no
mirroring) chosen by the sequence's frame:

* ``"world"`` (assumed Z up, as the synthetic data, Human3.6M and floor-plane calibrations are):
  ``(x, y, z) -> (y, z, x)``, the cyclic permutation that Pose2Sim's ``zup2yup`` applies, so a TRC
  exported here lines up with Pose2Sim's TRC of the same calibration (:data:`WORLD_ZUP_TO_YUP`).
* ``"camera"`` (OpenCV: x right, y down, z forward): ``(x, y, z) -> (x, -y, -z)``, a half turn about
  x, giving x right, Y up, Z toward the camera (:data:`CAMERA_TO_YUP`).

JSON and NPZ record ``units`` and ``y_up``; :func:`load_poses` converts back to millimetres and the
original axes, so a round trip returns the same sequence.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("json", "csv", "npz", "trc")
FRAMES = ("world", "camera")
UNITS = {"mm": 1.0, "m": 1e-3}            # multiply millimetres by this to get the unit

# (x, y, z) -> (y, z, x): Z-up world to Y-up, as Pose2Sim's zup2yup. Rows are the new axes.
WORLD_ZUP_TO_YUP = np.array([[0.0, 1.0, 0.0],
                             [0.0, 0.0, 1.0],
                             [1.0, 0.0, 0.0]])
# (x, y, z) -> (x, -y, -z): OpenCV camera (y down, z forward) to Y up, Z toward the camera.
CAMERA_TO_YUP = np.array([[1.0, 0.0, 0.0],
                          [0.0, -1.0, 0.0],
                          [0.0, 0.0, -1.0]])

JSON_FORMAT = "maskpose-poses"
JSON_VERSION = 1


class ExportError(ValueError):
    """A pose sequence cannot be written or read; the message names the file and the problem."""


# ====================================================================== the sequence
@dataclass
class PoseSequence:
    """``T`` frames of ``J`` 3D joints (mm) with names, frame ids and optional extras.

    joints3d: ``[T, J, 3]`` float64, millimetres; NaN where unknown.
    joint_names: ``J`` unique, non-empty names.
    frame_ids: ``T`` strings (sample ids or source frame indices; ints are converted to str).
    frame: ``"world"`` (triangulated, world mm) or ``"camera"`` (root-relative, camera frame, mm).
    fps: frames per second of the source, or None when unknown.
    confidence: ``[T, J]`` in [0, 1] (NaN allowed), or None.
    joints2d: ``[T, V, J, 2]`` original-image pixels, NaN where unknown, or None.
    view_names: ``V`` names of the views, or None.
    meta: free JSON-serialisable information (source, checkpoint, settings).
    """

    joints3d: np.ndarray
    joint_names: list[str]
    frame_ids: list[str]
    frame: str
    fps: float | None = None
    confidence: np.ndarray | None = None
    joints2d: np.ndarray | None = None
    view_names: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        j3 = np.asarray(self.joints3d, dtype=np.float64)
        if j3.ndim != 3 or j3.shape[2] != 3:
            raise ExportError(f"PoseSequence: joints3d must be [T, J, 3], got shape {list(j3.shape)}")
        t, j = j3.shape[:2]
        if np.isinf(j3).any():
            raise ExportError("PoseSequence: joints3d has infinite values (use NaN for unknown joints)")
        self.joints3d = j3
        names = list(self.joint_names)
        if len(names) != j:
            raise ExportError(f"PoseSequence: {len(names)} joint names for J = {j} joints")
        for n in names:
            if not isinstance(n, str) or not n:
                raise ExportError(f"PoseSequence: joint names must be non-empty strings, got {n!r}")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ExportError(f"PoseSequence: duplicate joint names {dup}")
        self.joint_names = [str(n) for n in names]          # np.str_ -> str
        ids = [str(i) if isinstance(i, (str, int, np.integer)) else i for i in self.frame_ids]
        if len(ids) != t:
            raise ExportError(f"PoseSequence: {len(ids)} frame ids for T = {t} frames")
        for i in ids:
            if not isinstance(i, str):
                raise ExportError(f"PoseSequence: frame ids must be strings, got {i!r}")
        self.frame_ids = ids
        if self.frame not in FRAMES:
            raise ExportError(f"PoseSequence: frame must be one of {list(FRAMES)}, got {self.frame!r}")
        if self.fps is not None:
            fps = float(self.fps)
            if not (math.isfinite(fps) and fps > 0):
                raise ExportError(f"PoseSequence: fps must be a positive number or None, got {self.fps!r}")
            self.fps = fps
        if self.confidence is not None:
            c = np.asarray(self.confidence, dtype=np.float64)
            if c.shape != (t, j):
                raise ExportError(f"PoseSequence: confidence must be [T, J] = [{t}, {j}], got {list(c.shape)}")
            finite = c[np.isfinite(c)]
            if np.isinf(c).any() or (finite.size and (finite.min() < -1e-4 or finite.max() > 1 + 1e-4)):
                raise ExportError("PoseSequence: confidence must lie in [0, 1] (NaN where unknown)")
            self.confidence = np.clip(c, 0.0, 1.0)      # float round-off of 1 - entropy may leave [0, 1]
        if self.joints2d is not None:
            j2 = np.asarray(self.joints2d, dtype=np.float64)
            if j2.ndim != 4 or j2.shape[0] != t or j2.shape[2] != j or j2.shape[3] != 2:
                raise ExportError(f"PoseSequence: joints2d must be [T, V, J, 2] with T = {t}, J = {j}, "
                                  f"got {list(j2.shape)}")
            self.joints2d = j2
        if self.view_names is not None:
            vn = [str(v) for v in self.view_names]
            if self.joints2d is not None and len(vn) != self.joints2d.shape[1]:
                raise ExportError(f"PoseSequence: {len(vn)} view names for V = {self.joints2d.shape[1]} views")
            self.view_names = vn
        if not isinstance(self.meta, dict):
            raise ExportError(f"PoseSequence: meta must be a dict, got {type(self.meta).__name__}")

    @property
    def num_frames(self) -> int:
        return int(self.joints3d.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.joints3d.shape[1])


# ====================================================================== axes and units
def y_up_rotation(frame: str) -> np.ndarray:
    """The proper rotation ``[3, 3]`` (``p' = R p``) that makes ``frame``'s points Y up (module docstring)."""
    if frame == "world":
        return WORLD_ZUP_TO_YUP.copy()
    if frame == "camera":
        return CAMERA_TO_YUP.copy()
    raise ExportError(f"unknown frame {frame!r}; known: {list(FRAMES)}")


def to_output_axes(points: np.ndarray, frame: str, *, y_up: bool, units: str) -> np.ndarray:
    """Points ``[..., 3]`` in mm → the file's axes and units (NaN stays NaN)."""
    if units not in UNITS:
        raise ExportError(f"units must be one of {list(UNITS)}, got {units!r}")
    p = np.asarray(points, dtype=np.float64)
    if y_up:
        p = p @ y_up_rotation(frame).T
    return p * UNITS[units]


def from_output_axes(points: np.ndarray, frame: str, *, y_up: bool, units: str) -> np.ndarray:
    """Inverse of :func:`to_output_axes`: the file's axes and units → mm in the original axes."""
    if units not in UNITS:
        raise ExportError(f"units must be one of {list(UNITS)}, got {units!r}")
    p = np.asarray(points, dtype=np.float64) / UNITS[units]
    if y_up:
        p = p @ y_up_rotation(frame)      # rows: p' = p R^T, so p = p' R (R^-1 = R^T)
    return p


# ====================================================================== writing
def format_from_path(path: str | os.PathLike) -> str:
    """``"json" | "csv" | "npz" | "trc"`` from the file suffix (case-insensitive)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ExportError(f"{path}: cannot tell the format from the suffix {Path(path).suffix!r}; "
                          f"use one of {['.' + f for f in FORMATS]} or pass the format")
    return suffix


def export_poses(seq: PoseSequence, path: str | os.PathLike, fmt: str | None = None, *,
                 overwrite: bool = False, y_up: bool = False, units: str = "mm",
                 fps: float | None = None) -> Path:
    """Write ``seq`` to ``path`` as ``fmt`` (``json``/``csv``/``npz``/``trc``; from the suffix when None).

    y_up: rotate to Y up (module docstring; world assumed Z up). units: ``"mm"`` or ``"m"``.
    fps: overrides ``seq.fps`` (TRC needs a rate: an error names the problem when neither is set).
    Refuses an existing ``path`` unless ``overwrite``; writes atomically. Returns the path.
    """
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name ending in .json, .csv, .npz or .trc")
    fmt = format_from_path(path) if fmt is None else str(fmt).lower().lstrip(".")
    if fmt not in FORMATS:
        raise ExportError(f"{path}: unknown format {fmt!r}; known: {list(FORMATS)}")
    if units not in UNITS:
        raise ExportError(f"{path}: units must be one of {list(UNITS)}, got {units!r}")
    if not isinstance(seq, PoseSequence):
        raise ExportError(f"{path}: expected a PoseSequence, got {type(seq).__name__}")
    if path.exists() and not overwrite:
        raise ExportError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    rate = float(fps) if fps is not None else seq.fps
    if fmt == "json":
        data = _json_text(seq, y_up=y_up, units=units, fps=rate).encode("utf-8")
    elif fmt == "csv":
        data = _csv_text(seq, y_up=y_up, units=units).encode("utf-8")
    elif fmt == "npz":
        data = _npz_bytes(seq, y_up=y_up, units=units, fps=rate)
    else:
        data = trc_text(seq, path.name, y_up=y_up, units=units, fps=rate, source=str(path)).encode("utf-8")
    _atomic_write(path, data)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _nan_to_none(a: np.ndarray):
    """Nested lists of floats with NaN → None (JSON null)."""
    obj = np.asarray(a, dtype=object)
    obj[np.isnan(np.asarray(a, dtype=np.float64))] = None
    return obj.tolist()


def _jsonable(value: Any, where: str):
    """``value`` with numpy scalars/arrays turned into plain Python; ExportError when impossible."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, np.generic):
        return _jsonable(value.item(), where)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ExportError(f"PoseSequence.{where} is a {type(value).__name__}, which JSON cannot store")


def _json_text(seq: PoseSequence, *, y_up: bool, units: str, fps: float | None) -> str:
    j3 = to_output_axes(seq.joints3d, seq.frame, y_up=y_up, units=units)
    conf = _nan_to_none(seq.confidence) if seq.confidence is not None else None
    j2 = _nan_to_none(seq.joints2d) if seq.joints2d is not None else None
    frames = []
    for i, fid in enumerate(seq.frame_ids):
        item: dict[str, Any] = {"id": fid, "joints3d": _nan_to_none(j3[i])}
        if conf is not None:
            item["confidence"] = conf[i]
        if j2 is not None:
            item["joints2d"] = j2[i]
        frames.append(item)
    doc = {
        "format": JSON_FORMAT, "version": JSON_VERSION,
        "units": units, "frame": seq.frame, "y_up": bool(y_up),
        "fps": fps, "num_frames": seq.num_frames,
        "joint_names": seq.joint_names, "view_names": seq.view_names,
        "meta": _jsonable(seq.meta, "meta"),
        "frames": frames,
    }
    return json.dumps(doc, allow_nan=False, ensure_ascii=False) + "\n"


def _fmt(v: float) -> str:
    """Shortest exact text of a float; empty for NaN."""
    return "" if math.isnan(v) else repr(float(v))


def csv_header(joint_names: list[str], confidence: bool) -> list[str]:
    """``frame, <j>_x, <j>_y, <j>_z, ... [, <j>_confidence ...]``."""
    cols = ["frame"]
    for n in joint_names:
        cols += [f"{n}_x", f"{n}_y", f"{n}_z"]
    if confidence:
        cols += [f"{n}_confidence" for n in joint_names]
    return cols


def _csv_text(seq: PoseSequence, *, y_up: bool, units: str) -> str:
    j3 = to_output_axes(seq.joints3d, seq.frame, y_up=y_up, units=units)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_header(seq.joint_names, seq.confidence is not None))
    for i, fid in enumerate(seq.frame_ids):
        row = [fid] + [_fmt(v) for v in j3[i].reshape(-1)]
        if seq.confidence is not None:
            row += [_fmt(v) for v in seq.confidence[i]]
        w.writerow(row)
    return buf.getvalue()


def _npz_bytes(seq: PoseSequence, *, y_up: bool, units: str, fps: float | None) -> bytes:
    arrays: dict[str, np.ndarray] = {
        "joints3d": to_output_axes(seq.joints3d, seq.frame, y_up=y_up, units=units),
        "joint_names": np.array(seq.joint_names, dtype=str),
        "frame_ids": np.array(seq.frame_ids, dtype=str).reshape(-1),
        "frame": np.array(seq.frame),
        "fps": np.array(np.nan if fps is None else float(fps)),
        "units": np.array(units),
        "y_up": np.array(bool(y_up)),
        "format": np.array(JSON_FORMAT),
        "version": np.array(JSON_VERSION),
        "meta_json": np.array(json.dumps(_jsonable(seq.meta, "meta"), allow_nan=False)),
    }
    if seq.confidence is not None:
        arrays["confidence"] = seq.confidence
    if seq.joints2d is not None:
        arrays["joints2d"] = seq.joints2d
    if seq.view_names is not None:
        arrays["view_names"] = np.array(seq.view_names, dtype=str).reshape(-1)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


# ====================================================================== TRC
TRC_KEYS = ("DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
            "OrigDataStartFrame", "OrigNumFrames")


def _integer_ids(frame_ids: list[str]) -> np.ndarray | None:
    try:
        return np.array([int(i) for i in frame_ids], dtype=np.int64)
    except ValueError:
        return None


def trc_times(frame_ids: list[str], fps: float) -> tuple[np.ndarray, float]:
    """``(times [T] seconds, data rate)``: ``frame / fps`` for integer ids (else row index / fps);
    the data rate is ``fps / step`` when integer ids advance by a constant positive step."""
    idx = _integer_ids(frame_ids)
    if idx is None:
        return np.arange(len(frame_ids), dtype=np.float64) / fps, fps
    rate = fps
    if len(idx) > 1:
        steps = np.diff(idx)
        if steps.min() == steps.max() and steps[0] > 0:
            rate = fps / float(steps[0])
    return idx.astype(np.float64) / fps, rate


def _rate_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def trc_text(seq: PoseSequence, file_name: str, *, y_up: bool = False, units: str = "mm",
             fps: float | None = None, source: str = "TRC") -> str:
    """The TRC file text of ``seq`` (layout in the module docstring)."""
    rate = fps if fps is not None else seq.fps
    if rate is None:
        raise ExportError(f"{source}: TRC needs the frame rate, but the pose sequence has no fps; "
                          "pass fps (--fps)")
    for n in seq.joint_names:
        if any(c in n for c in "\t\r\n") or n != n.strip():
            raise ExportError(f"{source}: joint name {n!r} cannot be a TRC marker name (tabs, line breaks "
                              "and leading/trailing spaces are not allowed)")
    if any(c in file_name for c in "\r\n"):
        raise ExportError(f"{source}: file name {file_name!r} has a line break")
    t, j = seq.num_frames, seq.num_joints
    times, data_rate = trc_times(seq.frame_ids, float(rate))
    pts = to_output_axes(seq.joints3d, seq.frame, y_up=y_up, units=units)
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{file_name}",
        "\t".join(TRC_KEYS),
        "\t".join([_rate_text(data_rate), _rate_text(rate), str(t), str(j), units, _rate_text(rate), "1", str(t)]),
        "Frame#\tTime\t" + "".join(f"{n}\t\t\t" for n in seq.joint_names),
        "\t\t" + "".join(f"X{k}\tY{k}\tZ{k}\t" for k in range(1, j + 1)),
        "",
    ]
    for i in range(t):
        fields = [str(i + 1), repr(float(times[i]))]
        for m in range(j):
            p = pts[i, m]
            if np.isnan(p).any():          # OpenSim uses a marker only when all three are present
                fields += ["", "", ""]
            else:
                fields += [repr(float(p[0])), repr(float(p[1])), repr(float(p[2]))]
        lines.append("".join(f + "\t" for f in fields))
    return "\n".join(lines) + "\n"


def _opensim_tokenize(line: str) -> list[str]:
    """OpenSim 4 ``FileAdapter::tokenize(line, "\\t\\r")``: split at every delimiter keeping empty
    fields, each field whitespace-trimmed; text after the last delimiter only when non-empty."""
    tokens = []
    start = 0
    for k, c in enumerate(line):
        if c in "\t\r":
            tokens.append(line[start:k].strip())
            start = k + 1
    if len(line) > start:
        tokens.append(line[start:].strip())
    return tokens


def read_trc(path: str | os.PathLike, *, strict: bool = True) -> dict:
    """Parse a TRC file with OpenSim 4's ``TRCFileAdapter`` rules.

    Returns ``{"header": first line, "path_file_type": int, "metadata": {key: text},
    "data_rate", "camera_rate", "orig_data_rate": float, "num_frames", "num_markers",
    "orig_data_start_frame", "orig_num_frames": int, "units": str, "marker_names": [M],
    "frame_numbers": int [T], "times": float [T], "markers": float [T, M, 3] (NaN where a field is
    empty)}``. ``strict`` (OpenSim's behaviour) rejects a data row whose field count is not
    ``2 + 3 M``; ``strict=False`` pads short rows with empty fields (files written without the
    trailing tab). Raises :class:`ExportError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such TRC file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ExportError(f"{path}: not a text file ({e})") from None
    lines = text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]

    def fail(line_no: int, msg: str):
        raise ExportError(f"{path}, line {line_no}: {msg}")

    if not lines or not lines[0].split():
        fail(1, "empty file")
    head = lines[0].split()
    if head[0] != "PathFileType":
        fail(1, f"expected 'PathFileType' first, got {head[0]!r}")
    try:
        pft = int(head[1]) if len(head) > 1 else 0
    except ValueError:
        pft = 0
    cursor = 1

    def next_tokens() -> tuple[int, list[str]]:
        nonlocal cursor
        while cursor < len(lines):
            toks = _opensim_tokenize(lines[cursor])
            cursor += 1
            if toks:
                return cursor, toks
        return cursor, []

    ln, keys = next_tokens()
    keys = [k for k in keys if k]
    if tuple(keys) != TRC_KEYS:
        fail(ln, f"expected the keys {list(TRC_KEYS)}, got {keys}")
    ln, values = next_tokens()
    values = [v for v in values if v]
    if len(values) != len(keys):
        fail(ln, f"{len(keys)} metadata keys but {len(values)} values")
    meta = dict(zip(keys, values))
    try:
        num_markers = int(meta["NumMarkers"])
        num_frames = int(meta["NumFrames"])
        rates = {k: float(meta[k]) for k in ("DataRate", "CameraRate", "OrigDataRate")}
        orig_start, orig_num = int(meta["OrigDataStartFrame"]), int(meta["OrigNumFrames"])
    except ValueError as e:
        fail(ln, f"bad metadata value ({e})")
    ln, labels = next_tokens()
    labels = [x for x in labels if x]
    if len(labels) != num_markers + 2:
        fail(ln, f"expected Frame#, Time and {num_markers} marker names, got {len(labels)} labels")
    if labels[0] != "Frame#" or labels[1] != "Time":
        fail(ln, f"expected 'Frame#' and 'Time' first, got {labels[:2]}")
    names = labels[2:]
    ln, xyz = next_tokens()
    xyz = [x for x in xyz if x]
    expected = [f"{a}{k}" for k in range(1, num_markers + 1) for a in "XYZ"]
    if xyz[:len(expected)] != expected:
        fail(ln, f"expected the coordinate labels X1 Y1 Z1 ... Z{num_markers}")
    # data: skip blank lines, then read until the first blank line
    while cursor < len(lines) and not _opensim_tokenize(lines[cursor]):
        cursor += 1
    frames, times, rows = [], [], []
    width = 2 + 3 * num_markers
    while cursor < len(lines):
        toks = _opensim_tokenize(lines[cursor])
        cursor += 1
        if not toks:
            break
        if len(toks) != width:
            if strict or len(toks) > width:
                fail(cursor, f"expected {width} fields (Frame#, Time, 3 x {num_markers} markers), got {len(toks)}")
            toks = toks + [""] * (width - len(toks))
        try:
            frames.append(int(float(toks[0])) if toks[0] else len(frames) + 1)
            times.append(float(toks[1]))
            vals = np.array([float(v) if v else np.nan for v in toks[2:]], dtype=np.float64).reshape(num_markers, 3)
        except ValueError as e:
            fail(cursor, f"not a number ({e})")
        vals[np.isnan(vals).any(axis=1)] = np.nan       # as OpenSim: all three or none
        rows.append(vals)
    markers = np.stack(rows) if rows else np.zeros((0, num_markers, 3))
    return {
        "header": lines[0], "path_file_type": pft, "metadata": meta,
        "data_rate": rates["DataRate"], "camera_rate": rates["CameraRate"], "orig_data_rate": rates["OrigDataRate"],
        "num_frames": num_frames, "num_markers": num_markers, "units": meta["Units"],
        "orig_data_start_frame": orig_start, "orig_num_frames": orig_num,
        "marker_names": names, "frame_numbers": np.array(frames, dtype=np.int64),
        "times": np.array(times, dtype=np.float64), "markers": markers,
    }


# ====================================================================== reading
def load_poses(path: str | os.PathLike, fmt: str | None = None, *, frame: str = "world",
               units: str = "mm", fps: float | None = None) -> PoseSequence:
    """Read a pose sequence written by :func:`export_poses` (json, npz or csv; TRC: :func:`read_trc`).

    JSON and NPZ carry their frame, units, axes and fps. A CSV does not: its values are read as
    ``units`` in ``frame`` with ``fps`` (the defaults: mm, world, unknown). Joints come back in mm and
    in the original axes (a ``y_up`` file is rotated back).
    """
    path = Path(path)
    fmt = format_from_path(path) if fmt is None else str(fmt).lower().lstrip(".")
    if fmt == "trc":
        raise ExportError(f"{path}: TRC files are read with read_trc (they carry no frame ids or extras)")
    if fmt not in FORMATS:
        raise ExportError(f"{path}: unknown format {fmt!r}; known: {list(FORMATS)}")
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        if fmt == "json":
            return _load_json(path)
        if fmt == "npz":
            return _load_npz(path)
        return _load_csv(path, frame=frame, units=units, fps=fps)
    except ExportError as e:
        if str(e).startswith(str(path)):
            raise
        raise ExportError(f"{path}: {e}") from None


def _none_to_nan(x, shape_tail: tuple[int, ...], what: str) -> np.ndarray:
    """JSON lists (null → NaN) as float64; checks the trailing dimensions."""
    try:
        a = np.array(x, dtype=np.float64)       # None -> nan
    except (TypeError, ValueError) as e:
        raise ExportError(f"{what} is not a numeric array of consistent shape ({e})") from None
    if a.shape[a.ndim - len(shape_tail):] != shape_tail:
        raise ExportError(f"{what} has shape {list(a.shape)}, expected [..., {', '.join(map(str, shape_tail))}]")
    return a


def _load_json(path: Path) -> PoseSequence:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
        raise ExportError(f"{path}: not a maskpose pose file (format must be {JSON_FORMAT!r})")
    try:
        names = list(doc["joint_names"])
        frames = doc["frames"]
        j = len(names)
        units, frame, y_up = doc.get("units", "mm"), doc["frame"], bool(doc.get("y_up", False))
    except (KeyError, TypeError) as e:
        raise ExportError(f"{path}: missing key {e}") from None
    t = len(frames)
    ids = [str(f["id"]) for f in frames]
    j3 = _none_to_nan([f["joints3d"] for f in frames], (j, 3), "joints3d") if t else np.zeros((0, j, 3))
    j3 = from_output_axes(j3.reshape(t, j, 3), frame, y_up=y_up, units=units)
    conf = None
    if t and "confidence" in frames[0]:
        conf = _none_to_nan([f["confidence"] for f in frames], (j,), "confidence")
    j2 = None
    if t and "joints2d" in frames[0]:
        j2 = _none_to_nan([f["joints2d"] for f in frames], (j, 2), "joints2d")
    return PoseSequence(joints3d=j3, joint_names=names, frame_ids=ids, frame=frame, fps=doc.get("fps"),
                        confidence=conf, joints2d=j2, view_names=doc.get("view_names"),
                        meta=doc.get("meta") or {})


def _load_npz(path: Path) -> PoseSequence:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:   # noqa: BLE001 - zip/pickle errors of many kinds
        raise ExportError(f"{path}: not a readable npz file ({type(e).__name__}: {e})") from None
    with z:
        if "joints3d" not in z.files and {"pred", "ids"} <= set(z.files):
            return _from_eval_predictions(path, z["pred"], z["ids"])
        if "joints3d" not in z.files or "joint_names" not in z.files:
            raise ExportError(f"{path}: not a maskpose pose file (needs joints3d and joint_names, or the "
                              "pred and ids of `maskpose eval --predictions`)")
        frame = str(z["frame"]) if "frame" in z.files else "world"
        units = str(z["units"]) if "units" in z.files else "mm"
        y_up = bool(z["y_up"]) if "y_up" in z.files else False
        j3 = from_output_axes(z["joints3d"], frame, y_up=y_up, units=units)
        fps = float(z["fps"]) if "fps" in z.files else float("nan")
        ids = [str(s) for s in z["frame_ids"]] if "frame_ids" in z.files else [str(i) for i in range(len(j3))]
        meta = json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
        return PoseSequence(
            joints3d=j3, joint_names=[str(s) for s in z["joint_names"]], frame_ids=ids, frame=frame,
            fps=None if math.isnan(fps) else fps,
            confidence=z["confidence"] if "confidence" in z.files else None,
            joints2d=z["joints2d"] if "joints2d" in z.files else None,
            view_names=[str(s) for s in z["view_names"]] if "view_names" in z.files else None,
            meta=meta)


def _from_eval_predictions(path: Path, pred: np.ndarray, ids: np.ndarray) -> PoseSequence:
    """``maskpose eval --predictions`` npz (``pred [N, J, 3]`` world mm, ``ids``) as a sequence; the
    joint names are those of the built-in joint set with ``J`` joints."""
    from .skeleton import JOINT_SETS

    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 3:
        raise ExportError(f"{path}: pred must be [N, J, 3], got {list(pred.shape)}")
    sets = [js for js in JOINT_SETS.values() if js.num_joints == pred.shape[1]]
    if not sets:
        raise ExportError(f"{path}: no built-in joint set has {pred.shape[1]} joints")
    return PoseSequence(joints3d=pred, joint_names=list(sets[0].joints), frame_ids=[str(i) for i in ids],
                        frame="world", meta={"source": str(path), "joint_set": sets[0].name})


def convert_poses(src: str | os.PathLike, out: str | os.PathLike, fmt: str | None = None, *,
                  overwrite: bool = False, y_up: bool = False, units: str = "mm",
                  fps: float | None = None) -> Path:
    """Read a saved pose sequence (json / npz / csv, or the npz of ``maskpose eval --predictions``) and
    write it as ``fmt`` (from ``out``'s suffix when None). ``fps`` sets the rate when the file has
    none (TRC needs one). Returns the written path."""
    seq = load_poses(src)
    if fps is not None:
        seq = dataclasses.replace(seq, fps=float(fps))        # re-validated
    return export_poses(seq, out, fmt, overwrite=overwrite, y_up=y_up, units=units)


def _load_csv(path: Path, *, frame: str, units: str, fps: float | None) -> PoseSequence:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ExportError(f"{path}: empty CSV file")
    header = rows[0]
    if not header or header[0] != "frame":
        raise ExportError(f"{path}: the first column must be 'frame', got {header[:1]}")
    cols = header[1:]
    n_conf = sum(1 for c in cols if c.endswith("_confidence"))
    n_xyz = len(cols) - n_conf
    if n_xyz % 3 != 0 or (n_conf and n_conf != n_xyz // 3):
        raise ExportError(f"{path}: columns must be <joint>_x,<joint>_y,<joint>_z per joint "
                          f"(then optionally <joint>_confidence per joint)")
    names = []
    for k in range(0, n_xyz, 3):
        cx, cy, cz = cols[k:k + 3]
        if not (cx.endswith("_x") and cy == cx[:-2] + "_y" and cz == cx[:-2] + "_z"):
            raise ExportError(f"{path}: expected <joint>_x,<joint>_y,<joint>_z, got {cx!r},{cy!r},{cz!r}")
        names.append(cx[:-2])
    if n_conf and [c[:-len("_confidence")] for c in cols[n_xyz:]] != names:
        raise ExportError(f"{path}: confidence columns do not match the joint columns")
    body = [r for r in rows[1:] if r]
    ids, vals = [], []
    for ln, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ExportError(f"{path}, line {ln}: {len(r)} cells, the header has {len(header)}")
        ids.append(r[0])
        try:
            vals.append([float(v) if v.strip() else np.nan for v in r[1:]])
        except ValueError as e:
            raise ExportError(f"{path}, line {ln}: not a number ({e})") from None
    j = len(names)
    a = np.array(vals, dtype=np.float64).reshape(len(body), len(cols))
    j3 = from_output_axes(a[:, :n_xyz].reshape(-1, j, 3), frame, y_up=False, units=units)
    conf = a[:, n_xyz:] if n_conf else None
    return PoseSequence(joints3d=j3, joint_names=names, frame_ids=ids, frame=frame, fps=fps, confidence=conf)
