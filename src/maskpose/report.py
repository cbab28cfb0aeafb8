"""``maskpose report RUN_DIR``: one self-contained HTML page about a training run.

What a run directory holds (written by :func:`maskpose.train.train` / ``maskpose demo``):

* ``checkpoint.pt`` — weights, the full config, the step, and ``extra.history`` (the periodic
  evaluations: MPJPE, P-MPJPE, baselines... per step) — required;
* ``tb/events.out.tfevents.*`` — TensorBoard scalars ``loss/<term>`` every 10 steps (optional; also
  looked for in ``run/tb``, where ``maskpose demo`` trains);
* ``*.json`` written by ``maskpose eval --json`` / ``maskpose demo`` (the metric table) and
  ``maskpose fit --json`` (before/after refinement), ``predictions.npz`` (``pred``, ``gt``, ``ids``)
  — optional.

The page (:func:`write_report`) shows the run summary, the metric table beside the label-using
baselines, per-joint errors, loss and evaluation curves, sample panels (image | mask | skeleton
mask | physique mask | body mask, with the predicted skeleton and a 3D plot against the ground
truth) for the best and worst test samples by P-MPJPE, and the config as YAML. Everything that is
missing is said so in the page. Images are embedded as base64 PNG: the file has no external assets,
links or scripts.

TensorBoard files are read by a small built-in reader (:func:`read_tensorboard_scalars`), so the
report does not need the ``tensorboard`` package.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import viz

EVAL_COLUMNS = (("model", "model"), ("mean_pose", "training mean pose"),
                ("oracle_yaw_mean_pose", "oracle-yaw mean pose"))


class ReportError(ValueError):
    """The folder is not a run directory, or the report cannot be written (names the path)."""


# ============================================================================ TensorBoard reader
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """Protocol-buffer wire fields ``(number, wire_type, value)``: int for varints, bytes otherwise."""
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + ln], pos + ln
        elif wt == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        if pos > n:
            raise ValueError("truncated field")
        yield num, wt, val


def _tensor_scalar(buf: bytes) -> float | None:
    """First value of a TensorProto holding a float/double scalar (``add_scalar(new_style=True)``)."""
    dtype = None
    for num, wt, val in _fields(buf):
        if num == 1 and wt == 0:
            dtype = val
        elif num == 5:  # float_val (packed or not)
            return struct.unpack("<f", val[:4])[0] if len(val) >= 4 else None
        elif num == 6:  # double_val
            return struct.unpack("<d", val[:8])[0] if len(val) >= 8 else None
        elif num == 4 and val:  # tensor_content
            if dtype == 2 and len(val) >= 8:
                return struct.unpack("<d", val[:8])[0]
            if len(val) >= 4:
                return struct.unpack("<f", val[:4])[0]
    return None


def _records(data: bytes) -> Iterator[bytes]:
    """TFRecord payloads (length u64, crc u32, payload, crc u32); a truncated tail (a run still
    writing) is ignored. CRCs are not checked."""
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        start = pos + 12
        if start + length + 4 > len(data):
            return
        yield data[start:start + length]
        pos = start + length + 4


def read_tensorboard_scalars(paths) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scalars of TensorBoard event files: ``{tag: (steps [n] int, values [n] float)}`` sorted by step.

    ``paths``: event files (or one), merged in name order (a resumed run appends a new file; for a
    step logged twice the later file wins). Unreadable records are skipped.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    series: dict[str, dict[int, float]] = {}
    for p in sorted(Path(x) for x in paths):
        try:
            data = p.read_bytes()
        except OSError:
            continue
        for rec in _records(data):
            try:
                step, summary = 0, None
                for num, wt, val in _fields(rec):
                    if num == 2 and wt == 0:
                        step = val
                    elif num == 5 and wt == 2:
                        summary = val
                if summary is None:
                    continue
                for num, wt, val in _fields(summary):
                    if num != 1 or wt != 2:
                        continue
                    tag, value = None, None
                    for vn, vwt, vv in _fields(val):
                        if vn == 1 and vwt == 2:
                            tag = vv.decode("utf-8", "replace")
                        elif vn == 2 and vwt == 5:
                            value = struct.unpack("<f", vv)[0]
                        elif vn == 8 and vwt == 2 and value is None:
                            value = _tensor_scalar(vv)
                    if tag is not None and value is not None:
                        series.setdefault(tag, {})[int(step)] = float(value)
            except (ValueError, struct.error, UnicodeDecodeError):
                continue
    out = {}
    for tag, d in series.items():
        steps = np.array(sorted(d), dtype=np.int64)
        out[tag] = (steps, np.array([d[s] for s in steps], dtype=np.float64))
    return out


# ============================================================================ the run directory
@dataclass
class RunDir:
    """What was found in a run directory."""

    root: Path
    checkpoint: Path
    state: dict
    event_files: list[Path] = field(default_factory=list)
    eval_json: Path | None = None
    eval_table: dict | None = None
    fit_json: Path | None = None
    fit_table: dict | None = None
    predictions: Path | None = None


def find_run(run_dir: str | os.PathLike) -> RunDir:
    """Locate the checkpoint, TensorBoard logs and evaluation outputs of a run directory (or of a
    ``checkpoint.pt`` path). Raises :class:`ReportError` naming the folder when there is no checkpoint."""
    from .train import load_checkpoint

    p = Path(run_dir)
    if p.is_file() and p.suffix == ".pt":
        ckpt, root = p, p.parent
    elif p.is_dir():
        root = p
        ckpt = p / "checkpoint.pt"
        if not ckpt.is_file():
            others = sorted(p.glob("*.pt"))
            if len(others) == 1:
                ckpt = others[0]
            else:
                raise ReportError(f"{p} is not a maskpose run directory: it has no checkpoint.pt "
                                  f"(a run directory is the log.out folder of 'maskpose train', or a 'maskpose demo' --out folder)")
    elif not p.exists():
        raise ReportError(f"run directory {p} does not exist")
    else:
        raise ReportError(f"{p} is not a maskpose run directory (expected a folder with checkpoint.pt)")
    try:
        state = load_checkpoint(ckpt)
    except (FileNotFoundError, ValueError) as e:
        raise ReportError(f"{p} is not a usable maskpose run directory: {e}") from None
    run = RunDir(root=root, checkpoint=ckpt, state=state)
    # TensorBoard logs: root/tb, or root/run/tb (a `maskpose demo` folder)
    for d in (root / "tb", root / "run" / "tb"):
        if not d.is_dir():
            continue
        files = sorted(d.glob("events.out.tfevents.*"))
        if files:
            run.event_files = files
            break
    # evaluation outputs next to the checkpoint
    jsons = sorted(root.glob("*.json"), key=lambda q: (q.name != "eval.json", q.name))
    for j in jsons:
        try:
            data = json.loads(j.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        if run.eval_table is None and isinstance(data.get("model"), dict) and "mpjpe" in data["model"]:
            run.eval_json, run.eval_table = j, data
        elif run.fit_table is None and isinstance(data.get("before"), dict) and isinstance(data.get("after"), dict):
            run.fit_json, run.fit_table = j, data
    for cand in [root / "predictions.npz"] + sorted(root.glob("*.npz")):
        if cand.is_file() and _is_predictions(cand):
            run.predictions = cand
            break
    return run


def _is_predictions(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {"pred", "gt", "ids"} <= set(z.files)
    except (OSError, ValueError):
        return False


# ============================================================================ model forward for panels
def _load_shape_prior(sd: dict):
    from .models.shape_prior import ShapePriorNet

    channels = []
    while f"enc.{len(channels)}.0.0.weight" in sd:
        channels.append(int(sd[f"enc.{len(channels)}.0.0.weight"].shape[0]))
    if not channels:
        return None
    net = ShapePriorNet(channels=channels, in_channels=int(sd["enc.0.0.0.weight"].shape[1]),
                        out_channels=int(sd["out.weight"].shape[0]))
    net.load_state_dict(sd)
    return net.eval()


def forward_samples(model, cfg, dataset, indices, device="cpu", shape_prior=None, batch_size: int = 16) -> dict:
    """Run the detector (+ lifting) on ``dataset[indices]`` and render what the losses compare.

    Returns numpy arrays: ``joints2d [n, V, J, 2]`` (normalised crop coords, re-projected 3D in
    multi-view mode), ``joints3d [n, J, 3]`` (world mm; view-0 camera frame in single-view mode),
    ``body``, ``skeleton``, ``physique`` (or None) ``[n, V, S, S]`` in [0, 1], ``iou [n]`` (body mask
    vs the mask, mean over valid views), ``multiview`` (bool).
    """
    import torch

    from . import losses as L
    from .geometry import project_P
    from .skeleton import get_joint_set
    from .train import lift_batch, predict_views, single_view_joints3d

    js = get_joint_set(cfg.joint_set)
    device = torch.device(device)
    outs: dict[str, list] = {k: [] for k in ("joints2d", "joints3d", "body", "skeleton", "physique", "iou")}
    multi = False
    was = model.training
    model.eval()
    idx = [int(i) for i in indices]
    with torch.no_grad():
        for s in range(0, len(idx), batch_size):
            items = [dataset[i] for i in idx[s:s + batch_size]]
            batch = {k: torch.stack([it[k] for it in items]).to(device)
                     for k in ("images", "masks", "crop_cameras", "valid")}
            pred = predict_views(model, batch, cfg)
            B, V = pred["joints2d"].shape[:2]
            S = batch["masks"].shape[-1]
            multi = cfg.method.triangulate and V >= 2
            if multi:
                X = lift_batch(pred, batch, cfg, js)["joints3d"].to(pred["joints2d"].dtype)
                P = batch["crop_cameras"].to(X.dtype)
                x2d = project_P(X[:, None], P)
                body = L.render_body(X, P, js, S, cfg.loss, pred["girth"])
                X3 = X
            else:
                Xc, Pc = single_view_joints3d(pred, batch, cfg)
                x2d = pred["joints2d"]
                body = L.render_body(Xc.flatten(0, 1), Pc.flatten(0, 1)[:, None], js, S, cfg.loss,
                                     pred["girth"].repeat_interleave(V)).reshape(B, V, 1, S, S)
                X3 = Xc[:, 0]
            skel = L.render_paper(x2d, js, S, cfg.loss)
            if shape_prior is not None and S % (2 ** shape_prior.levels) == 0:
                outs["physique"].append(shape_prior(skel.flatten(0, 1)).reshape(B, V, S, S).float().cpu().numpy())
            m = batch["masks"][:, :, 0] > 0.5
            b = body[:, :, 0] > 0.5
            inter = (m & b).flatten(2).sum(-1).float()
            union = (m | b).flatten(2).sum(-1).float().clamp_min(1)
            valid = batch["valid"].float()
            iou = ((inter / union) * valid).sum(1) / valid.sum(1).clamp_min(1)
            outs["joints2d"].append(x2d.float().cpu().numpy())
            outs["joints3d"].append(X3.double().cpu().numpy())
            outs["body"].append(body[:, :, 0].float().cpu().numpy())
            outs["skeleton"].append(skel[:, :, 0].float().cpu().numpy())
            outs["iou"].append(iou.cpu().numpy())
    model.train(was)
    res = {k: (np.concatenate(v) if v else None) for k, v in outs.items()}
    res["multiview"] = multi
    return res


# ============================================================================ figures
def _b64_img(rgb: np.ndarray, alt: str, width: int | None = None) -> str:
    data = base64.b64encode(viz.png_bytes(rgb)).decode("ascii")
    w = f' width="{int(width)}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{data}">'


def _ema(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) < 3:
        return y
    a = 2.0 / (max(2, n) + 1)
    out = np.empty_like(y)
    acc = y[0]
    for i, v in enumerate(y):
        acc = a * v + (1 - a) * acc if np.isfinite(v) else acc
        out[i] = acc
    return out


def plot_loss_curves(scalars: dict, width_px: int = 900) -> np.ndarray | None:
    """Small multiples of the ``loss/*`` scalars vs step (raw, light; smoothed, dark)."""
    tags = [t for t in scalars if t.startswith("loss/")]
    if not tags:
        return None
    tags = sorted(tags, key=lambda t: (t != "loss/total", t))
    cols = 3
    rows = int(math.ceil(len(tags) / cols))
    fig = viz.new_figure(width_px, 190 * rows)
    for k, tag in enumerate(tags):
        ax = fig.add_subplot(rows, cols, k + 1)
        steps, vals = scalars[tag]
        ax.plot(steps, vals, color=(0.55, 0.7, 0.9), lw=0.7, marker="o" if len(vals) <= 20 else None, ms=3)
        ax.plot(steps, _ema(vals, max(5, len(vals) // 40)), color=(0.05, 0.25, 0.6), lw=1.4)
        fin = vals[np.isfinite(vals)]
        if len(fin) and fin.min() > 0 and fin.max() / fin.min() > 30:
            ax.set_yscale("log")
        ax.set_title(tag.split("/", 1)[1], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if k >= len(tags) - cols:
            ax.set_xlabel("step", fontsize=8)
    fig.tight_layout()
    return viz.figure_to_rgb(fig)


def plot_eval_history(history: list[dict], width_px: int = 900) -> np.ndarray | None:
    """MPJPE / P-MPJPE (strict and flip-aware) and wrist / elbow MPJPE vs step, baselines dashed."""
    hist = [h for h in history if isinstance(h, dict) and "step" in h]
    if not hist:
        return None
    steps = np.array([h["step"] for h in hist], dtype=float)

    def ser(k):
        return np.array([h.get(k, np.nan) for h in hist], dtype=float)

    panels = [("MPJPE (mm)", [("mpjpe", "strict"), ("mpjpe_flip", "flip-aware")],
               [("mean_pose_mpjpe", "mean pose"), ("oracle_yaw_mean_pose_mpjpe", "oracle-yaw mean pose")]),
              ("P-MPJPE (mm)", [("p_mpjpe", "strict"), ("p_mpjpe_flip", "flip-aware")],
               [("mean_pose_p_mpjpe", "mean pose"), ("oracle_yaw_mean_pose_p_mpjpe", "oracle-yaw mean pose")]),
              ("arms, MPJPE (mm)", [("wrist", "wrists"), ("elbow", "elbows")], [])]
    fig = viz.new_figure(width_px, 260)
    for k, (title, lines, bases) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        for (key, label), style in zip(lines, ("-o", "--o")):
            y = ser(key)
            if np.isfinite(y).any():
                ax.plot(steps, y, style, ms=3, lw=1.4, label=label, color=(0.05, 0.25, 0.6) if style == "-o" else (0.3, 0.6, 0.9))
        for (key, label), c in zip(bases, ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))):
            y = ser(key)
            if np.isfinite(y).any():
                ax.axhline(float(y[np.isfinite(y)][-1]), color=c, ls=":", lw=1.2, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5)
    fig.tight_layout()
    return viz.figure_to_rgb(fig)


def plot_per_joint(table: dict, width_px: int = 900) -> np.ndarray | None:
    """Grouped bars of per-joint MPJPE: model strict, model flip-aware, baselines."""
    m = table.get("model", {})
    pj = m.get("per_joint_mpjpe")
    if not isinstance(pj, dict) or not pj:
        return None
    names = list(pj)
    series = [("model (strict)", pj, (0.05, 0.25, 0.6))]
    if isinstance(m.get("per_joint_mpjpe_flip"), dict):
        series.append(("model (flip-aware)", m["per_joint_mpjpe_flip"], (0.35, 0.6, 0.9)))
    for key, label in EVAL_COLUMNS[1:]:
        if isinstance(table.get(key), dict) and isinstance(table[key].get("per_joint_mpjpe"), dict):
            series.append((label, table[key]["per_joint_mpjpe"], (0.55, 0.55, 0.55) if key == "mean_pose" else (0.3, 0.3, 0.3)))
    fig = viz.new_figure(width_px, 300)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    w = 0.8 / len(series)
    for k, (label, d, c) in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * w, [d.get(n, np.nan) for n in names], w, label=label, color=c)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("MPJPE (mm)", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=len(series))
    ax.set_title("per-joint error (root-aligned; the root joint is 0 by construction)", fontsize=9)
    fig.tight_layout()
    return viz.figure_to_rgb(fig)


# ============================================================================ HTML pieces
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 12px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
h3{font-size:14px;margin:14px 0 4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow-x:auto}
.note{background:#fff6dd;border-left:4px solid #e0b000;padding:4px 10px;margin:6px 0;font-size:13px}
.small{font-size:12px;color:#555}.sample{margin:10px 0 18px}.row{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
img{max-width:100%;height:auto}
"""


def _h(s) -> str:
    return html.escape(str(s))


def _fmt(v, pct: bool = False, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (int, float)):
        return f"{100 * v:.{digits}f}" if pct else f"{v:.{digits}f}"
    return _h(v)


def metric_rows(table: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """``(column titles, [(row label, cells)])`` of an evaluation table (as :func:`evaluate.format_table`)."""
    from .evaluate import ROWS

    cols = [(k, t) for k, t in EVAL_COLUMNS if isinstance(table.get(k), dict)]
    rows = []
    for key, name in ROWS:
        pct = key in ("pck", "auc")
        for sfx, label in (("", "strict"), ("_flip", "flip-aware")):
            unit = " (%)" if pct else " (mm)"
            rows.append((f"{name} {label}{unit}", [_fmt(table[c].get(key + sfx), pct) for c, _ in cols]))
    rows.append(("flip share", [_fmt(table[c].get("flip_share"), digits=3) for c, _ in cols]))
    rows.append(("wrist MPJPE (mm)", [_fmt(table[c].get("wrist")) for c, _ in cols]))
    rows.append(("elbow MPJPE (mm)", [_fmt(table[c].get("elbow")) for c, _ in cols]))
    m = table.get("model", {})
    for k, label, d in (("mpjpe_2d", "2D joint error (normalised crop units)", 4),
                        ("ambiguity_ratio", "ambiguity ratio (after matching)", 3),
                        ("ambiguity_ratio_raw", "ambiguity ratio (raw network)", 3)):
        if k in m:
            rows.append((label, [_fmt(m[k], digits=d)] + ["–"] * (len(cols) - 1)))
    return [t for _, t in cols], rows


def _html_table(head: list[str], rows: list[tuple[str, list[str]]], first: str = "metric") -> str:
    out = ["<table><tr>" + f"<th>{_h(first)}</th>" + "".join(f"<th>{_h(c)}</th>" for c in head) + "</tr>"]
    for label, cells in rows:
        out.append(f"<tr><td>{_h(label)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _activity_table(table: dict) -> str:
    m = table.get("model", {})
    per = m.get("per_activity")
    if not isinstance(per, dict) or not per:
        return ""
    oy = table.get("oracle_yaw_mean_pose", {}).get("per_activity", {}) if isinstance(table.get("oracle_yaw_mean_pose"), dict) else {}
    head = ["n", "model MPJPE", "model P-MPJPE", "oracle-yaw MPJPE", "oracle-yaw P-MPJPE"]
    rows = []
    for a, v in per.items():
        o = oy.get(a, {})
        rows.append((a, [_fmt(v.get("n"), digits=0), _fmt(v.get("mpjpe")), _fmt(v.get("p_mpjpe")),
                         _fmt(o.get("mpjpe")), _fmt(o.get("p_mpjpe"))]))
    return "<h3>per activity (mm)</h3>" + _html_table(head, rows, "activity")


# ============================================================================ the report
def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 dataset: str | os.PathLike | None = None, num_panels: int = 4, max_eval_samples: int = 200,
                 device: str = "cpu", tile: int = 128) -> Path:
    """Write one self-contained HTML report about a run directory; returns its path.

    Args:
        run_dir: the run's folder (``checkpoint.pt`` inside; see the module docstring) or the checkpoint.
        out: output file (default ``RUN_DIR/report.html``).
        dataset: dataset folder for the metrics and the sample panels (default: the eval JSON's test set,
            else the config's ``data.test``, else — panels only — ``data.train``). Given explicitly, the
            checkpoint is evaluated on it even if the run has an eval JSON.
        num_panels: samples shown in each of the "best" and "worst" groups (by strict P-MPJPE with
            ground truth; by body-mask IoU without). 0: no panels.
        max_eval_samples: evaluate / rank at most the first N samples of the dataset (keeps the
            report bounded on large test sets).
        device: ``cpu`` | ``cuda`` | ``auto`` for the model forward.
        tile: tile size (px) of the sample panels.
    Raises:
        ReportError: not a run directory (no checkpoint), or the output cannot be written.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("maskpose report needs matplotlib: pip install 'maskpose[viz]'") from None
    from . import __version__
    from . import metrics as M
    from .data.folder import DatasetError, MaskPoseDataset, load_dataset_meta
    from .skeleton import get_joint_set
    from .train import build_model, config_from_checkpoint, resolve_device

    run = find_run(run_dir)
    state = run.state
    out = Path(out) if out is not None else run.root / "report.html"
    notes: list[str] = []
    try:
        cfg = config_from_checkpoint(state)
    except ValueError as e:
        raise ReportError(f"{run.checkpoint}: the checkpoint's config cannot be read ({e})") from None
    js = get_joint_set(cfg.joint_set)
    extra = state.get("extra", {}) or {}
    history = list(extra.get("history", []) or [])
    sections: list[str] = []

    # ------------------------------------------------------------ model
    dev = resolve_device(device)
    model = build_model(cfg)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise ReportError(f"{run.checkpoint}: the weights do not match the checkpoint's config ({e})") from None
    model.to(dev).eval()
    shape_prior = None
    if "shape_prior" in state:
        try:
            shape_prior = _load_shape_prior(state["shape_prior"])
            if shape_prior is not None:
                shape_prior.to(dev)
        except (RuntimeError, KeyError) as e:
            notes.append(f"the checkpoint's shape prior could not be loaded ({e}); no physique masks")
    n_params = sum(p.numel() for p in model.parameters())

    # ------------------------------------------------------------ data and metrics
    table = None
    table_source = ""
    if dataset is None and run.eval_table is not None:
        table = run.eval_table
        table_source = f"from {run.eval_json.name}"
    data_root = None
    for cand, why in ((dataset, "--dataset"), (table.get("test") if table else None, "the eval JSON"),
                      (cfg.data.test or None, "the config's data.test"), (cfg.data.train or None, "the config's data.train")):
        if not cand:
            continue
        found = _resolve_data_path(cand, run.root, explicit=why == "--dataset")
        if found is not None:
            data_root, data_why = found, why
            break
        if why == "--dataset":
            try:
                load_dataset_meta(cand)
            except (DatasetError, OSError) as e:
                raise ReportError(f"--dataset: {e}") from None
        notes.append(f"{why}: dataset folder {cand} not found (also looked relative to {run.root} and its parent)")
    ds = None
    has_gt = False
    if data_root is not None:
        try:
            has_gt = (data_root / "gt" / "joints3d.npy").is_file()
            ds = MaskPoseDataset(data_root, with_gt=has_gt, preload=False)
            if ds.joint_set.name != js.name:
                notes.append(f"dataset {data_root} uses joint set {ds.joint_set.name}, the checkpoint {js.name}: no panels")
                ds = None
        except DatasetError as e:
            notes.append(f"dataset {data_root} cannot be read: {e}")
            ds, has_gt = None, False
    per_sample = None  # (indices into ds, P-MPJPE, MPJPE, pred [n,J,3], gt [n,J,3])
    if ds is not None and has_gt:
        if table is not None and run.predictions is not None:
            per_sample = _errors_from_npz(run.predictions, ds, js, M)
        if table is None or per_sample is None:
            from .evaluate import evaluate_model

            limit = min(len(ds), max_eval_samples) if max_eval_samples > 0 else 0
            try:
                t = evaluate_model(model, cfg, data_root, dev, limit=limit)
                pr = t["predictions"]
                idx = np.arange(len(pr["ids"]))
                pm = M.per_sample_errors(pr["pred"], pr["gt"], "p_mpjpe", joint_set=js)
                mm = M.per_sample_errors(pr["pred"], pr["gt"], "mpjpe", joint_set=js)
                per_sample = (idx, pm, mm, np.asarray(pr["pred"]), np.asarray(pr["gt"]))
                if table is None:
                    table = t
                    if data_why == "the config's data.train":
                        notes.append(f"the run has no test set: the metrics below are on the first samples of the "
                                     f"TRAINING data {data_root}, not on held-out data")
                    table_source = (f"computed now on the first {t['num_samples']} samples of {data_root}"
                                    f" ({data_why})")
            except (DatasetError, ValueError, FileNotFoundError, RuntimeError) as e:
                notes.append(f"evaluation on {data_root} failed: {type(e).__name__}: {e}")
    elif ds is not None:
        notes.append(f"dataset {data_root} has no ground truth (gt/joints3d.npy): "
                     + ("" if table is not None else "no metric table; ")
                     + "samples are ranked by the label-free IoU of the rendered body with the mask")
    elif data_root is None and table is None:
        notes.append("no dataset found (neither --dataset, an eval JSON, data.test nor data.train can be read): "
                     "no metrics and no sample panels")

    # ------------------------------------------------------------ header + summary
    minutes = extra.get("minutes")
    if minutes is None and history:
        minutes = history[-1].get("minutes")
    summary_rows = [
        ("run directory", _h(run.root)), ("checkpoint", _h(run.checkpoint)),
        ("steps trained", _h(state.get("step", "?"))),
        ("training minutes", _fmt(minutes) if minutes is not None else "not recorded"),
        ("joint set", _h(cfg.joint_set)), ("model input", _h(cfg.model.input)),
        ("detector parameters", f"{n_params / 1e6:.2f} M"),
        ("shape prior (physique)", "yes" if shape_prior is not None else "no"),
        ("loss preset", _h(cfg.loss.preset)),
        ("training data", _h(cfg.data.train)), ("test data", _h(cfg.data.test or "none")),
    ]
    if isinstance(extra.get("data"), dict):
        d = extra["data"]
        summary_rows.append(("training crops", f"{_h(d.get('size', '?'))} px, {_h(d.get('num_views', '?'))} views"))
    sections.append("<h2>Run</h2>" + _html_table([""], [(k, [v]) for k, v in summary_rows], "item"))

    # ------------------------------------------------------------ metrics
    if table is not None:
        head, rows = metric_rows(table)
        txt = (f"<p class='small'>Test set {_h(table.get('test', '?'))}, {_h(table.get('num_samples', '?'))} samples; "
               f"{_h(table_source)}. The two baselines use labels (the training split's mean pose; the same turned to "
               "each test sample's true yaw). Flip-aware: per sample the better of the pose and its left/right label "
               "swap.</p>")
        if "baselines_unavailable" in table:
            txt += f"<div class='note'>baselines not available: {_h(table['baselines_unavailable'])}</div>"
        for k in ("train_minutes", "train_steps"):
            if k in table:
                txt += f"<p class='small'>{_h(k.replace('_', ' '))}: {_fmt(table[k], digits=0 if k == 'train_steps' else 1)}</p>"
        sections.append("<h2>Metrics</h2>" + txt + _html_table(head, rows) + _activity_table(table))
        pj = plot_per_joint(table)
        if pj is not None:
            sections.append("<h2>Per-joint error</h2>" + _b64_img(pj, "per-joint MPJPE"))
    else:
        sections.append("<h2>Metrics</h2><div class='note'>Not available: the run has no evaluation JSON and no "
                        "dataset with ground truth could be evaluated (see the notes below).</div>")
    if run.fit_table is not None:
        ft = run.fit_table
        rows = [(k, [_fmt(ft["before"].get(k)), _fmt(ft["after"].get(k))]) for k in ("mpjpe", "n_mpjpe", "p_mpjpe")
                if k in ft["before"]]
        sections.append(f"<h3>per-sample refinement ({_h(run.fit_json.name)}: maskpose fit, "
                        f"{_h(ft.get('num_samples', '?'))} samples, {_h(ft.get('iters', '?'))} iterations)</h3>"
                        + _html_table(["before (mm)", "after (mm)"], rows))

    # ------------------------------------------------------------ curves
    curves = ["<h2>Training curves</h2>"]
    scalars = read_tensorboard_scalars(run.event_files) if run.event_files else {}
    lc = plot_loss_curves(scalars)
    if lc is not None:
        curves.append(f"<p class='small'>Loss terms (weighted, as added to the total) every 10 steps from "
                      f"{_h(run.event_files[0].parent)}; dark: smoothed.</p>" + _b64_img(lc, "loss curves"))
    else:
        curves.append("<div class='note'>Loss curves not available: no TensorBoard event files with loss scalars "
                      f"in {_h(run.root / 'tb')} (train with log.tensorboard=true and the tensorboard package).</div>")
    ev = plot_eval_history(history)
    if ev is not None:
        curves.append("<p class='small'>Periodic evaluation during training (checkpoint history; baselines dotted).</p>"
                      + _b64_img(ev, "evaluation during training"))
        hrows = [(str(h.get("step")), [_fmt(h.get("minutes")), _fmt(h.get("mpjpe")), _fmt(h.get("p_mpjpe")),
                                       _fmt(h.get("mpjpe_flip")), _fmt(h.get("p_mpjpe_flip")),
                                       _fmt(h.get("flip_share"), digits=3), _fmt(h.get("wrist"))]) for h in history]
        curves.append(_html_table(["minutes", "MPJPE", "P-MPJPE", "MPJPE flip-aware", "P-MPJPE flip-aware",
                                   "flip share", "wrists"], hrows, "step"))
    else:
        curves.append("<div class='note'>Evaluation history not available: the checkpoint records no periodic "
                      "evaluation (data.test was empty or log.eval_every = 0).</div>")
    sections.append("\n".join(curves))

    # ------------------------------------------------------------ panels
    if num_panels > 0 and ds is not None:
        sections.append(_panels_section(model, cfg, ds, js, dev, shape_prior, per_sample, num_panels,
                                        max_eval_samples, tile, data_root, notes))
    elif num_panels > 0:
        sections.append("<h2>Samples</h2><div class='note'>Not available: no readable dataset for the panels.</div>")

    # ------------------------------------------------------------ config
    import yaml

    cfg_yaml = yaml.safe_dump(state["config"], sort_keys=False, default_flow_style=False)
    sections.append("<h2>Config</h2><pre>" + _h(cfg_yaml) + "</pre>")
    if notes:
        sections.insert(1, "<h2>Notes</h2>" + "".join(f"<div class='note'>{_h(n)}</div>" for n in notes))

    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    doc = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
           f"<title>maskpose report: {_h(run.root.name or run.root)}</title><style>{_CSS}</style></head><body>"
           f"<h1>maskpose report — {_h(run.root.name or run.root)}</h1>"
           f"<p class='small'>written {_h(now)} by maskpose {_h(__version__)}. Colours: the person's "
           "<b style='color:#1e6eff'>left</b> blue, <b style='color:#eb2d2d'>right</b> red, "
           "<b style='color:#28c846'>centre</b> green; yellow: the mask outline; grey dashed: ground truth.</p>"
           + "\n".join(sections) + "</body></html>\n")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tmp.write_text(doc, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        raise ReportError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return out


def _resolve_data_path(path, run_root: Path, explicit: bool = False) -> Path | None:
    """A readable dataset folder for a path recorded in a config / eval JSON: as given (relative to the
    current directory), else relative to the run directory or its parent (a run moved or read from
    elsewhere, e.g. ``demo_out/test`` of a demo run from another directory). None if not found."""
    from .data.folder import DatasetError, load_dataset_meta

    p = Path(path)
    cands = [p] if explicit or p.is_absolute() else [p, run_root / p, run_root.parent / p]
    for c in cands:
        try:
            load_dataset_meta(c)
            return c
        except (DatasetError, OSError):
            continue
    return None


def _errors_from_npz(path: Path, ds, js, M):
    """Per-sample errors from a ``predictions.npz`` whose ids are all in ``ds`` (else None)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            pred, gt, ids = np.asarray(z["pred"], np.float64), np.asarray(z["gt"], np.float64), z["ids"].astype(str)
    except (OSError, ValueError, KeyError):
        return None
    pos = {sid: i for i, sid in enumerate(ds.ids)}
    if len(ids) == 0 or pred.shape != gt.shape or pred.shape[1:] != (js.num_joints, 3) or any(s not in pos for s in ids):
        return None
    idx = np.array([pos[s] for s in ids])
    return (idx, M.per_sample_errors(pred, gt, "p_mpjpe", joint_set=js), M.per_sample_errors(pred, gt, "mpjpe", joint_set=js),
            pred, gt)


def _panels_section(model, cfg, ds, js, dev, shape_prior, per_sample, k, max_eval_samples, tile, data_root,
                    notes) -> str:
    from .evaluate import _up_axis

    parts = ["<h2>Samples</h2>"]
    if per_sample is not None:
        idx, pm, mm, pred, gt = per_sample
        order = np.argsort(pm, kind="stable")
        k = min(k, max(1, len(order) // 2)) if len(order) > 1 else 1
        groups = [("best", order[:k]), ("worst", order[::-1][:k])]
        up = _up_axis(gt, js)
        parts.append(f"<p class='small'>From {_h(data_root)}: the {k} best and {k} worst of {len(order)} samples by "
                     "strict P-MPJPE. Each row is one view: the crop with the predicted skeleton (re-projected from the "
                     "triangulated 3D pose in multi-view runs), the mask, the paper's skeleton mask, the physique mask "
                     "(shape-prior runs) and the rendered body with the mask's outline. Right: the 3D pose (colours) "
                     "against the ground truth (grey dashed), root-aligned.</p>")
        sel = np.concatenate([g for _, g in groups])
        fw = forward_samples(model, cfg, ds, idx[sel], dev, shape_prior)
        pos = {int(s): n for n, s in enumerate(sel)}
        for title, g in groups:
            parts.append(f"<h3>{title} {len(g)}</h3>")
            for s in g:
                n = pos[int(s)]
                cap = f"P-MPJPE {pm[s]:.1f} mm, MPJPE {mm[s]:.1f} mm, body/mask IoU {fw['iou'][n]:.2f}"
                p3 = fw["joints3d"][n]
                if fw["multiview"]:
                    p3 = p3 - p3[js.root] + gt[s][js.root]
                else:
                    from .metrics import procrustes_align
                    p3 = procrustes_align(p3[None], gt[s][None])[0]
                    cap += " (single-view: 3D shown Procrustes-aligned)"
                parts.append(_sample_block(ds, int(idx[s]), fw, n, js, tile, cap, p3, gt[s], up))
    else:
        limit = min(len(ds), max_eval_samples) if max_eval_samples > 0 else len(ds)
        fw_all = forward_samples(model, cfg, ds, range(limit), dev, None)
        order = np.argsort(-fw_all["iou"], kind="stable")
        k = min(k, max(1, len(order) // 2)) if len(order) > 1 else 1
        groups = [("best", order[:k]), ("worst", order[::-1][:k])]
        up = _up_axis(fw_all["joints3d"], js) if fw_all["multiview"] else "-y"
        parts.append(f"<p class='small'>From {_h(data_root)} (no ground truth): the {k} best and {k} worst of {limit} "
                     f"samples by the IoU of the rendered body with the mask (label-free; mean IoU "
                     f"{float(np.mean(fw_all['iou'])):.3f}). Rows are views, as in a labelled report; right: the 3D "
                     "pose.</p>")
        sel = np.concatenate([g for _, g in groups])
        fw = forward_samples(model, cfg, ds, sel, dev, shape_prior)
        pos = {int(s): n for n, s in enumerate(sel)}
        for title, g in groups:
            parts.append(f"<h3>{title} {len(g)}</h3>")
            for s in g:
                n = pos[int(s)]
                parts.append(_sample_block(ds, int(s), fw, n, js, tile, f"body/mask IoU {fw['iou'][n]:.2f}",
                                           fw["joints3d"][n], None, up))
    if shape_prior is None:
        parts.append("<p class='small'>No physique-mask column: this run has no shape prior (loss.physique = 0).</p>")
    return "\n".join(parts)


def _sample_block(ds, i: int, fw: dict, n: int, js, tile: int, caption: str, pred3d, gt3d, up) -> str:
    item = ds[i]
    V = item["images"].shape[0]
    S = item["images"].shape[-1]
    rows = []
    for v in range(V):
        img = (item["images"][v].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        mask = item["masks"][v, 0].numpy()
        j2 = viz.to_pixels(fw["joints2d"][n, v], S)
        phys = None if fw["physique"] is None else fw["physique"][n, v]
        row = viz.sample_panel(img, mask, fw["skeleton"][n, v], phys, fw["body"][n, v], joints2d=j2,
                               joint_set=js, tile=tile, header=(v == 0))
        if not bool(item["valid"][v]):
            viz.put_label(row[-tile:], "invalid view")
        rows.append(row)
    panel = np.concatenate(rows, axis=0)
    plot3d = viz.render_skeleton_3d(pred3d, js, up, gt=gt3d, views=((10, -70), (10, 20)), size_px=min(300, panel.shape[0]))
    info = ds.sample_info(i)
    label = ", ".join(f"{k} {v}" for k, v in info.items() if k in ("id", "activity", "frame", "sequence"))
    return (f"<div class='sample'><b>{_h(label)}</b> — {_h(caption)}<div class='row'>"
            f"{_b64_img(panel, 'sample ' + str(info.get('id')))}{_b64_img(plot3d, '3D pose')}</div></div>")


__all__ = ["ReportError", "RunDir", "find_run", "read_tensorboard_scalars", "forward_samples", "write_report",
           "plot_loss_curves", "plot_eval_history", "plot_per_joint", "metric_rows"]
