"""Where the wrist error comes from: distribution, arm L/R swaps, and a picture of the worst samples.

    python benchmarks/wrist_diagnosis.py PRED.npz TEST_DIR [--out wrists.png] [--show 3]

PRED.npz is what ``maskpose eval --predictions`` writes (``pred``, ``gt`` ``[N, J, 3]`` world mm, ``ids``);
TEST_DIR the dataset folder it was evaluated on. Ground truth is read here only to diagnose. Prints the
root-aligned wrist error percentiles, how much swapping the two arms would recover, the error per activity
(with the signed vertical error of wrists and elbows) where the folder records activities, and draws the
samples with the largest wrist error: masks, ground-truth arms (green) and predicted arms (red), left
solid, right dotted, in every view.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def elbow_angle(X: np.ndarray, side: str, js) -> tuple[np.ndarray, np.ndarray]:
    """Interior elbow angle (deg; 180 = straight arm) and shoulder-wrist distance (mm), ``[N]`` each."""
    S, E, W = (X[:, js.index(side + n)] for n in ("Shoulder", "Elbow", "Wrist"))
    a, b = S - E, W - E
    c = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0))), np.linalg.norm(W - S, axis=-1)


def arm_geometry(pred: np.ndarray, gt: np.ndarray, e: np.ndarray, js) -> None:
    """How bent the predicted arms are against the true ones, and the wrist error by predicted bend."""
    for k, s in enumerate("LR"):
        ap, dp = elbow_angle(pred, s, js)
        ag, dg = elbow_angle(gt, s, js)
        pct = lambda v: " / ".join(f"{x:.0f}" for x in np.percentile(v, [10, 50, 90]))  # noqa: E731
        print(f"{s} arm: interior elbow angle p10/50/90 predicted {pct(ap)}, true {pct(ag)} deg; "
              f"shoulder-wrist distance predicted {pct(dp)}, true {pct(dg)} mm")
        for lo, hi in ((0, 45), (45, 90), (90, 181)):
            m = (ap >= lo) & (ap < hi)
            if m.any():
                print(f"   predicted angle {lo:>3}-{min(hi, 180)} deg: {m.mean():5.1%} of the arms, wrist error "
                      f"{e[m, k].mean():.0f} mm, true angle there (median) {np.median(ag[m]):.0f} deg")


def by_activity(p: np.ndarray, g: np.ndarray, e: np.ndarray, activity: np.ndarray, js) -> None:
    """Wrist error per activity: mean / median, share over 300 mm and the signed vertical error (world z up)
    of wrists and elbows (session 13: the walking samples' wrists sat ~180 mm too high)."""
    W = [js.index("LWrist"), js.index("RWrist")]
    E = [js.index("LElbow"), js.index("RElbow")]
    print(f"{'activity':<12}{'n':>4}{'wrist mean':>11}{'median':>8}{'>300 mm':>9}{'wrist dz':>10}{'elbow dz':>10}")
    for a in np.unique(activity):
        m = activity == a
        dz = lambda J: (p[m][:, J, 2] - g[m][:, J, 2]).mean()  # noqa: E731
        print(f"{str(a):<12}{m.sum():>4}{e[m].mean():>11.0f}{np.median(e[m]):>8.0f}{(e[m] > 300).mean():>9.2f}"
              f"{dz(W):>+10.0f}{dz(E):>+10.0f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pred", help="npz with pred, gt [N, J, 3] (maskpose eval --predictions)")
    ap.add_argument("data", help="the test dataset folder")
    ap.add_argument("--out", default="", help="PNG of the worst samples")
    ap.add_argument("--show", type=int, default=3)
    args = ap.parse_args(argv)
    from maskpose.skeleton import H36M18 as js

    d = np.load(args.pred)
    pred, gt = d["pred"], d["gt"]
    j = js.index
    W = [j("LWrist"), j("RWrist")]
    p, g = pred - pred[:, :1], gt - gt[:, :1]
    e = np.linalg.norm(p[:, W] - g[:, W], axis=-1)  # [N, 2] root-aligned
    es = np.linalg.norm(p[:, W[::-1]] - g[:, W], axis=-1)
    q = np.percentile(e, [10, 25, 50, 75, 90])
    print(f"wrist error (root-aligned, mm): mean {e.mean():.1f}; percentiles 10/25/50/75/90: "
          + " / ".join(f"{v:.0f}" for v in q))
    better = es.sum(1) < e.sum(1)
    print(f"swapping the two arms would lower the wrist error in {better.mean():.1%} of the samples; "
          f"with the better of the two per sample: {np.minimum(e.sum(1), es.sum(1)).mean() / 2:.1f} mm")
    bad = e > 500
    print(f"hands over 500 mm off: {bad.mean():.1%}; in those samples the other hand is off by "
          f"{np.where(bad[:, ::-1], e, np.nan)[bad[:, ::-1]].mean():.0f} mm on average")
    arm_geometry(pred, gt, e, js)
    from maskpose.data.folder import MaskPoseDataset

    ds = MaskPoseDataset(args.data, with_gt=False, preload=False)
    if "activity" in ds.fields:
        where = {sid: k for k, sid in enumerate(ds.ids)}
        acts = np.asarray(ds.fields["activity"]).astype(str)
        by_activity(p, g, e, acts[[where[str(i)] for i in d["ids"]]], js)
    else:
        print("(no per-sample activity in this dataset folder)")
    if not args.out:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from maskpose.geometry import project_P

    worst = np.argsort(-e.max(1))[: args.show]
    V = ds[0]["masks"].shape[0]
    fig, axs = plt.subplots(len(worst), V, figsize=(3.4 * V, 3.6 * len(worst)), squeeze=False)
    for r, i in enumerate(worst):
        it = ds[int(i)]
        P = it["crop_cameras"].float()
        S = it["masks"].shape[-1]
        for v in range(V):
            ax = axs[r, v]
            ax.imshow(it["masks"][v, 0], cmap="gray", vmax=3)
            ax.axis("off")
            for X, c in ((gt[i], "lime"), (pred[i], "red")):
                x = (project_P(torch.tensor(X, dtype=torch.float32)[None], P)[v].numpy() + 1) / 2 * (S - 1)
                for s, ls in (("L", "-"), ("R", ":")):
                    k = [j("thorax"), j(s + "Shoulder"), j(s + "Elbow"), j(s + "Wrist")]
                    ax.plot(x[k, 0], x[k, 1], color=c, lw=2.5, ls=ls, marker="o", ms=3)
                k = [j("pelvis"), j("thorax"), j("head")]
                ax.plot(x[k, 0], x[k, 1], color=c, lw=1)
            ax.set_title(f"sample {i}, view {v}: wrists {e[i, 0]:.0f} (L) / {e[i, 1]:.0f} (R) mm", fontsize=7)
    fig.suptitle("green: ground truth, red: prediction; left arm solid, right dotted", fontsize=9)
    plt.tight_layout()
    plt.savefig(args.out, dpi=65)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
