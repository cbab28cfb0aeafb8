"""Diagnostic, reads the ground-truth 2D: per-view wrist error of the heatmap's soft-argmax (its mean,
what the detector outputs) against its arg-max cell (mode) and a 5 x 5 local mean around the mode.

    python benchmarks/heatmap_mode_diagnosis.py RUN/checkpoint.pt TEST_DIR

If the mode were much better than the mean, the wrist heatmaps would be hedging between two places and a
cross-view fusion of the heatmaps could pick the right one; if not, the views are confidently wrong.
Each view's left/right labels are matched to the ground truth by the whole body's 2D error first.
"""
import sys, torch, numpy as np
torch.set_num_threads(1)
from maskpose.train import load_model, make_input
from maskpose.data.folder import MaskPoseDataset
from maskpose.models.detector import cell_centres
from maskpose.skeleton import get_joint_set
ck, test = sys.argv[1], sys.argv[2]
model, cfg, _ = load_model(ck, torch.device("cpu")); model.eval()
js = get_joint_set(cfg.joint_set); perm = js.flip_permutation()
ds = MaskPoseDataset(test, with_gt=True, preload=False)
S = ds.size; s = cfg.model.heatmap_stride; H = S // s
u = cell_centres(H, S)
W = [js.index("LWrist"), js.index("RWrist")]
errs = {"mean": [], "mode": [], "mode3": []}; peak = []
with torch.no_grad():
    for b in range(0, len(ds), 25):
        it = [ds[i] for i in range(b, min(len(ds), b + 25))]
        img = torch.stack([x["images"] for x in it]).flatten(0, 1); msk = torch.stack([x["masks"] for x in it]).flatten(0, 1)
        gt = torch.stack([x["gt_joints2d"] for x in it]).flatten(0, 1)  # [N, J, 2]
        out = model(make_input(cfg.model.input, img, msk))
        j2, hm = out["joints2d"], out["heatmaps_2d"]  # [N,J,2], [N,J,H,W]
        N = j2.shape[0]
        flat = hm.flatten(2).argmax(-1); my, mx = flat // H, flat % H
        mode = torch.stack([u[mx], u[my]], -1)
        # local mean over the 5 x 5 cells around the mode
        loc = []
        for n in range(N):
            row = []
            for j in range(js.num_joints):
                y0, x0 = int(my[n, j]), int(mx[n, j])
                ys, xs = slice(max(0, y0 - 2), y0 + 3), slice(max(0, x0 - 2), x0 + 3)
                p = hm[n, j, ys, xs]; p = p / p.sum()
                row.append(torch.stack([(p.sum(0) * u[xs]).sum(), (p.sum(1) * u[ys]).sum()]))
            loc.append(torch.stack(row))
        loc = torch.stack(loc)
        # per view labelling: pick identity or flip by the mean answer's full-body error
        e0 = (j2 - gt).norm(dim=-1).sum(-1); e1 = (j2[:, perm] - gt).norm(dim=-1).sum(-1)
        sw = (e1 < e0)[:, None, None]
        for k, p in (("mean", j2), ("mode", mode), ("mode3", loc)):
            pp = torch.where(sw, p[:, perm], p)
            errs[k].append(((pp - gt).norm(dim=-1)[:, W] * (S - 1) / 2).flatten())
        top = hm.flatten(2).max(-1).values[:, W]; peak.append(top.flatten())
for k, v in errs.items():
    v = torch.cat(v); print(f"wrist 2D error, {k}: mean {v.mean():.2f} px, median {v.median():.2f}")
print("wrist heatmap peak prob: median", torch.cat(peak).median().item())
