"""Real-footage trial of ``maskpose prepare``: the Pose2Sim single-person demo (4 calibrated 1080x1920 60 fps
phone-style videos, Qualisys calibration, a second person in the background of two views).

    python benchmarks/pose2sim_demo.py --demo /path/to/Pose2Sim/Demo_SinglePerson --out /tmp/p2s_ds \
        [--stride 2 --max-frames 50 --masker mog2 --overlays /tmp/p2s_overlays]

With ``--prepared`` it only checks an existing dataset folder (e.g. one written by ``maskpose prepare``).

It prints, and writes to ``OUT/pose2sim_check.json``:

* prepare's summary and speed (instants per second);
* mask coverage per view: share of valid views, mean mask area in the crop, share of crops whose mask touches
  the crop border;
* a calibration / mask consistency check: in every sample the top, bottom and centroid of each valid view's
  mask (crop px -> undistorted image px through ``A^-1``) are triangulated across the valid views with
  ``maskpose.geometry.triangulate`` and re-projected; the mean re-projection error (px, in the 1080x1920
  images) is reported, beside the same check with the cameras deliberately given to the wrong views (a
  control: a calibration that did not fit would look like that). The silhouette top / bottom / centroid are
  not exactly the same 3D point in every view, so a few px to a few tens of px are expected even with a
  perfect calibration and perfect masks. The median world height (z, mm) of the triangulated points is printed
  too: with a z-up world whose floor is z = 0 (Qualisys), the silhouette bottom (a foot) should be near 0 and
  the top (head, or a raised hand) around 1.6-2 m.
* overlays (``--overlays DIR``): per sample a PNG with, per view, the original frame with the mask mapped back
  into it (green) and the crop box, and the 128 px crop with its mask.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from maskpose.data.folder import MaskPoseDataset, mask_path, read_mask
from maskpose.data.video import open_views
from maskpose.geometry import triangulate


def _points_in_crop(m: np.ndarray) -> np.ndarray:
    """Top, bottom and centroid of a crop mask ``[S, S]`` as crop px ``[3, 2]``."""
    ys, xs = np.nonzero(m)
    top = np.array([xs[ys == ys.min()].mean(), ys.min() - 0.5])
    bottom = np.array([xs[ys == ys.max()].mean(), ys.max() + 0.5])
    return np.stack([top, bottom, np.array([xs.mean(), ys.mean()])])


def consistency_check(ds: MaskPoseDataset, masks: np.ndarray, permute: list[int] | None = None) -> dict:
    """Mean re-projection error (px) of silhouette top / bottom / centroid triangulated over the valid views."""
    errs = {"top": [], "bottom": [], "centroid": []}
    heights = {"top": [], "bottom": [], "centroid": []}
    for n in range(len(ds)):
        vs = np.nonzero(ds.valid[n])[0]
        if len(vs) < 2:
            continue
        cams = ds.cameras(n)
        P, pts = [], []
        for v in vs:
            c = cams[permute[v]] if permute else cams[v]
            P.append(c.P)
            crop = _points_in_crop(masks[n, v])
            img = np.linalg.solve(ds.A[n, v], np.concatenate([crop, np.ones((3, 1))], 1).T).T
            pts.append(img[:, :2] / img[:, 2:3])
        P_t = torch.tensor(np.stack(P))
        x_t = torch.tensor(np.stack(pts))  # [V, 3, 2]
        X = triangulate(x_t, P_t)  # [3, 3]
        Xh = torch.cat([X, torch.ones(3, 1, dtype=X.dtype)], 1)
        proj = torch.einsum("vij,kj->vki", P_t, Xh)
        e = (proj[..., :2] / proj[..., 2:3] - x_t).norm(dim=-1).numpy()  # [V, 3]
        for k, name in enumerate(errs):
            errs[name].extend(e[:, k].tolist())
            heights[name].append(float(X[k, 2]))
    return {k: {"mean_px": float(np.mean(v)), "median_px": float(np.median(v)), "n": len(v),
                "median_world_z_mm": float(np.median(heights[k]))} if v else None for k, v in errs.items()}


def coverage(ds: MaskPoseDataset, masks: np.ndarray) -> dict:
    out = {}
    names = ds.meta.get("view_names", [str(v) for v in range(ds.num_views)])
    for v, name in enumerate(names):
        val = ds.valid[:, v]
        m = masks[val, v]
        edge = [bool(x[0].any() or x[-1].any() or x[:, 0].any() or x[:, -1].any()) for x in m]
        out[name] = {"valid_share": float(val.mean()), "mean_mask_area_share": float(m.mean()) if len(m) else None,
                     "mask_touches_crop_edge_share": float(np.mean(edge)) if edge else None}
    return out


def write_overlays(ds: MaskPoseDataset, masks: np.ndarray, inputs: list[str], out_dir: Path, count: int = 4) -> list[Path]:
    """Per sample: original frames with the mask mapped back (green) + the crops; ``count`` samples spread evenly."""
    from maskpose.data.prepare import crop_grid

    out_dir.mkdir(parents=True, exist_ok=True)
    sources = open_views([Path(p) for p in inputs])
    S = ds.size
    written = []
    picks = sorted(set(np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int).tolist()))
    for n in picks:
        f = int(ds.fields["frame"][n])
        cams = ds.cameras(n)
        panels = []
        item = ds[n]
        for v, src in enumerate(sources):
            full = src.read(f).copy()
            if ds.valid[n, v] or masks[n, v].any():
                g = crop_grid(ds.A[n, v], cams[v].K, cams[v].dist, S, 1)  # crop px -> distorted frame px
                cs, _ = cv2.findContours(masks[n, v].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                tint = np.zeros(full.shape[:2], np.uint8)
                for c in cs:
                    poly = g[c[:, 0, 1], c[:, 0, 0]].astype(np.int32)
                    cv2.fillPoly(tint, [poly], 1)
                full[tint > 0] = (0.45 * full[tint > 0] + [0, 140, 0]).astype(np.uint8)
                box = g[[0, 0, -1, -1], [0, -1, -1, 0]].astype(np.int32)
                col = (0, 255, 0) if ds.valid[n, v] else (255, 0, 0)
                cv2.polylines(full, [box], True, col, 6)
            small = cv2.resize(full, (360, int(round(360 * full.shape[0] / full.shape[1]))), interpolation=cv2.INTER_AREA)
            crop = (item["images"][v].permute(1, 2, 0).numpy() * 255).astype(np.uint8).copy()
            cm = masks[n, v]
            crop[cm] = (0.5 * crop[cm] + [0, 127, 0]).astype(np.uint8)
            crop = cv2.resize(crop, (360, 360), interpolation=cv2.INTER_NEAREST)
            panels.append(np.vstack([small, crop]))
        h = max(p.shape[0] for p in panels)
        panels = [np.pad(p, ((0, h - p.shape[0]), (0, 4), (0, 0))) for p in panels]
        img = np.hstack(panels)
        p = out_dir / f"overlay_{f:06d}.png"
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        written.append(p)
    for s in sources:
        s.close()
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, help="Pose2Sim/Demo_SinglePerson folder (videos/, calibration/)")
    ap.add_argument("--out", type=Path, required=True, help="dataset folder to write (or to check with --prepared)")
    ap.add_argument("--prepared", action="store_true", help="only check an existing dataset folder")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--masker", default="mog2")
    ap.add_argument("--grabcut", action="store_true")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--overlays", type=Path, default=None, help="folder for overlay PNGs")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    report: dict = {}
    if not args.prepared:
        from maskpose.data.prepare import prepare_dataset

        if args.demo is None:
            ap.error("--demo is required unless --prepared")
        calib = args.demo / "calibration" / "Calib.qca.txt"
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            el = time.perf_counter() - t0
            print(f"\r  {done}/{total} instants, {el:.0f} s", end="", file=sys.stderr, flush=True)

        summary = prepare_dataset(args.demo / "videos", args.out, calibration=calib, size=args.size,
                                  stride=args.stride, start=args.start, max_frames=args.max_frames,
                                  masker=args.masker, grabcut=args.grabcut, overwrite=args.overwrite,
                                  progress=progress)
        print(file=sys.stderr)
        summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in summary.items()}
        report["prepare"] = summary
        fps = summary["frames_per_s"]
        print(f"prepare: {summary['num_samples']} samples from {summary['processed']} instants x "
              f"{summary['num_views']} views in {summary['seconds']:.1f} s "
              f"({fps:.2f} instants/s, {fps * summary['num_views']:.2f} view-frames/s)" if fps else
              f"prepare: nothing computed (resumed {summary['resumed']})")
        if summary.get("steady_frames_per_s"):
            print(f"  first instant (learning the background models of all views) {summary['first_instant_seconds']:.1f} s, "
                  f"then {summary['steady_frames_per_s']:.2f} instants/s")
        print(f"  skipped: {summary['skipped']}  invalid views: {summary['invalid_views']}")
        for w in summary["warnings"]:
            print(f"  warning: {w}")
    ds = MaskPoseDataset(args.out, preload=False)
    masks = np.zeros((len(ds), ds.num_views, ds.size, ds.size), bool)
    for n in range(len(ds)):
        for v in range(ds.num_views):
            p = mask_path(args.out, ds.ids[n], v)
            if p.is_file():
                masks[n, v] = read_mask(p)
    report["coverage"] = coverage(ds, masks)
    report["reprojection"] = consistency_check(ds, masks)
    V = ds.num_views
    report["reprojection_wrong_cameras"] = consistency_check(ds, masks, permute=[(v + 1) % V for v in range(V)])
    print("mask coverage per view:")
    for name, c in report["coverage"].items():
        print(f"  {name}: valid {c['valid_share']:.2f}, mask area {c['mean_mask_area_share'] or 0:.2f} of the crop, "
              f"touching the crop edge {c['mask_touches_crop_edge_share'] or 0:.2f}")
    for key, label in (("reprojection", "cameras as calibrated"), ("reprojection_wrong_cameras", "cameras shifted by one view (control)")):
        r = report[key]
        print(f"re-projection, {label}: " + ", ".join(
            f"{k} {v['mean_px']:.1f} px (median {v['median_px']:.1f}, n={v['n']}; triangulated z {v['median_world_z_mm']:.0f} mm)"
            for k, v in r.items() if v))
    if args.overlays is not None:
        files = write_overlays(ds, masks, ds.meta["inputs"], args.overlays)
        report["overlays"] = [str(p) for p in files]
        print(f"overlays: {', '.join(map(str, files))}")
    (args.out / "pose2sim_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
