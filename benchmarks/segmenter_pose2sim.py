"""Learned person segmenter vs background model on real footage: ``maskpose prepare`` on the Pose2Sim single-person
demo (4 calibrated 1080x1920 videos of a person exercising on one spot, a second person in the background of two
views) with ``--masker mediapipe`` and ``--masker median``, then the checks of ``benchmarks/pose2sim_demo.py``.

    python benchmarks/segmenter_pose2sim.py --demo /path/to/Pose2Sim/Demo_SinglePerson --work /tmp/segbench \
        [--stride 4 --maskers mediapipe median]

The demo comes with the pose2sim wheel (``benchmarks/pose2sim_demo.sh`` extracts it). ``--masker mediapipe`` needs
the optional mediapipe package (``maskpose.data.masks.MEDIAPIPE_INSTALL``); without it that masker is reported as
unavailable and the others still run.

Per masker it prints (and writes ``WORK/<masker>/pose2sim_check.json``): prepare's speed, mask coverage per view
(share of valid views, mask area as a share of the crop, share of crops whose mask touches the crop edge), the
re-projection error of the triangulated silhouette top / bottom / centroid (px, 1080x1920 images; the same with
the cameras shifted by one view as a control) and overlays in ``WORK/<masker>/overlays`` to look at. Masks with
holes (torso absorbed into the background) or ghosts move the silhouette points inconsistently between views and
raise the re-projection error; a whole person lowers it (it does not reach 0: the silhouette top / bottom are not
the same 3D point in every view). A table of both maskers closes the run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pose2sim_demo  # noqa: E402  (sibling benchmark: prepare + checks)


def run_masker(demo: Path, work: Path, masker: str, stride: int, size: int, max_frames: int | None) -> dict | None:
    """Prepare the demo with ``masker`` into ``work/masker`` and check it; the check report (None: unavailable)."""
    from maskpose.data.masks import SegmenterUnavailable

    out = work / masker
    args = ["--demo", str(demo), "--out", str(out / "dataset"), "--stride", str(stride), "--size", str(size),
            "--masker", masker, "--overwrite", "--overlays", str(out / "overlays")]
    if max_frames is not None:
        args += ["--max-frames", str(max_frames)]
    print(f"==== masker {masker}")
    try:
        pose2sim_demo.main(args)
    except SegmenterUnavailable as e:
        print(f"  unavailable: {e}")
        return None
    return json.loads((out / "dataset" / "pose2sim_check.json").read_text())


def summary_row(masker: str, rep: dict) -> str:
    cov = rep["coverage"].values()
    areas = [c["mean_mask_area_share"] for c in cov if c["mean_mask_area_share"] is not None]
    valid = [c["valid_share"] for c in cov]
    r = rep["reprojection"]
    fps = rep.get("prepare", {}).get("frames_per_s")
    cells = [f"{r[k]['mean_px']:.1f}/{r[k]['median_px']:.1f}" if r.get(k) else "-" for k in ("top", "bottom", "centroid")]
    return (f"{masker:<10} valid {min(valid):.2f}-{max(valid):.2f}  area {min(areas):.3f}-{max(areas):.3f}  "
            f"reproj mean/median px: top {cells[0]}, bottom {cells[1]}, centroid {cells[2]}  "
            f"{fps or 0:.2f} instants/s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, required=True, help="Pose2Sim/Demo_SinglePerson folder (videos/, calibration/)")
    ap.add_argument("--work", type=Path, required=True, help="output folder (one sub-folder per masker)")
    ap.add_argument("--maskers", nargs="+", default=["mediapipe", "median"])
    ap.add_argument("--stride", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--max-frames", type=int, default=None)
    args = ap.parse_args(argv)
    reports = {m: run_masker(args.demo, args.work, m, args.stride, args.size, args.max_frames) for m in args.maskers}
    print("==== summary (valid share and mask area per view: min-max over views)")
    for m, rep in reports.items():
        print(summary_row(m, rep) if rep else f"{m:<10} unavailable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
