"""Label-free geodesic-extremity candidates per view, computed once and cached with the dataset.

Candidates are local maxima of the geodesic distance from the mask centroid inside the mask
(:func:`maskpose.weighting.geodesic_extremities`), in normalised crop coordinates. The cache file
``DIR/extremities.npz`` holds ``candidates [N, V, K, 2]`` float32 and ``valid [N, V, K]`` bool and is
written atomically; it is recomputed when missing or inconsistent with the masks.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..weighting import geodesic_extremities


def _one(args):
    mask, k = args
    out = np.zeros((k, 2), np.float32)
    ok = np.zeros(k, bool)
    if mask.any():
        pts = geodesic_extremities(mask, max_count=k)
        out[: len(pts)] = pts
        ok[: len(pts)] = True
    return out, ok


def compute_extremities(masks: np.ndarray, max_candidates: int = 8, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``masks [N, V, S, S]`` bool -> ``(candidates [N, V, K, 2]`` normalised, ``valid [N, V, K])``."""
    N, V, S, _ = masks.shape
    jobs = [(masks[n, v], max_candidates) for n in range(N) for v in range(V)]
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as ex:
            res = list(ex.map(_one, jobs, chunksize=64))
    else:
        res = [_one(j) for j in jobs]
    cand = np.stack([r[0] for r in res]).reshape(N, V, max_candidates, 2)
    ok = np.stack([r[1] for r in res]).reshape(N, V, max_candidates)
    cand = cand * (2.0 / (S - 1)) - 1.0  # px -> normalised crop coordinates
    return cand.astype(np.float32), ok


def load_or_compute_extremities(root: str | os.PathLike, masks: np.ndarray, max_candidates: int = 8,
                                workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    path = Path(root) / "extremities.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                cand, ok = z["candidates"], z["valid"]
            if cand.shape == (*masks.shape[:2], max_candidates, 2) and ok.shape == cand.shape[:3]:
                return cand, ok
        except (OSError, ValueError, KeyError):
            pass
    cand, ok = compute_extremities(masks, max_candidates, workers)
    try:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, candidates=cand, valid=ok)
        os.replace(tmp, path)
    except OSError:
        pass  # read-only dataset folder: keep the result in memory only
    return cand, ok


def consensus_extremities(candidates: np.ndarray, valid: np.ndarray, projections: np.ndarray, size: int,
                          thr_px: float = 2.5, min_views: int = 2, max_points: int = 6,
                          nms_mm: float = 120.0, chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-view consistent extremities: 3D points seen as a mask extremity in several views.

    Every pair of views and pair of their candidates is triangulated (2-view DLT); a hypothesis is
    supported by each view with a candidate within ``thr_px`` of its re-projection, and is
    re-triangulated from all supporting views. Hypotheses are ranked by support (then mean
    re-projection error) and kept greedily at least ``nms_mm`` apart. An extremity seen in one view
    only (a hand in front of the torso in the others is not an extremity there) is not a point; a
    one-view artefact of the mask (a shadow bump, a knee in profile) rarely triangulates consistently.
    Label-free: only masks and cameras are read.

    Args:
        candidates: ``[N, V, K, 2]`` per-view extremity candidates (normalised crop coordinates).
        valid: ``[N, V, K]`` bool (False for padding and for invalid views).
        projections: ``[N, V, 3, 4]`` crop cameras (normalised coordinates, world mm).
        size: crop size in px (``thr_px`` is measured at this size).
    Returns:
        ``(points [N, M, 3]`` world mm, ``points_valid [N, M]`` bool, ``support [N, M]`` int views``)``,
        sorted by decreasing support, ``M = max_points``.
    """
    import torch

    from ..geometry import project_P, triangulate

    if candidates.ndim != 4 or candidates.shape[-1] != 2 or valid.shape != candidates.shape[:3] \
            or projections.shape != (*candidates.shape[:2], 3, 4):
        raise ValueError(f"consensus_extremities: expected candidates [N, V, K, 2], valid [N, V, K] and projections "
                         f"[N, V, 3, 4], got {list(candidates.shape)}, {list(valid.shape)}, {list(projections.shape)}")
    N, V, K = candidates.shape[:3]
    M = max_points
    pts_out = np.zeros((N, M, 3), np.float32)
    ok_out = np.zeros((N, M), bool)
    sup_out = np.zeros((N, M), np.int32)
    if V < 2 or K == 0:
        return pts_out, ok_out, sup_out
    px = (size - 1) / 2.0
    pairs = [(i, j) for i in range(V) for j in range(i + 1, V)]
    ii = torch.tensor([p[0] for p in pairs])
    jj = torch.tensor([p[1] for p in pairs])
    ka, kb = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
    ka, kb = ka.flatten(), kb.flatten()
    for s in range(0, N, chunk):
        c = torch.from_numpy(candidates[s:s + chunk]).double()  # [n, V, K, 2]
        ok = torch.from_numpy(valid[s:s + chunk])
        P = torch.from_numpy(projections[s:s + chunk]).double()  # [n, V, 3, 4]
        n = c.shape[0]
        # hypotheses: [n, pairs, K*K]
        xa = c[:, ii][:, :, ka]  # [n, Pp, KK, 2]
        xb = c[:, jj][:, :, kb]
        hv = ok[:, ii][:, :, ka] & ok[:, jj][:, :, kb]
        x2 = torch.stack([xa, xb], dim=-3)  # [n, Pp, 2, KK, 2]
        P2 = torch.stack([P[:, ii], P[:, jj]], dim=2)  # [n, Pp, 2, 3, 4]
        X = triangulate(x2, P2, method="normal")  # [n, Pp, KK, 3]
        X = X.reshape(n, -1, 3)  # [n, H, 3]
        hv = hv.reshape(n, -1)
        # support: nearest valid candidate of every view to the re-projection
        proj = project_P(X[:, None], P)  # [n, V, H, 2]
        d = (proj[:, :, :, None] - c[:, :, None]).norm(dim=-1) * px  # [n, V, H, K]
        d = torch.where(ok[:, :, None], d, torch.full_like(d, 1e9))
        dmin, kmin = d.min(-1)  # [n, V, H]
        inlier = dmin < thr_px
        in_front = torch.einsum("nvc,nhc->nvh", P[:, :, 2, :3], X) + P[:, :, 2, 3, None] > 0  # [n, V, H]
        inlier = inlier & in_front
        support = inlier.sum(1)  # [n, H]
        good = hv & (support >= min_views) & torch.isfinite(X).all(-1)
        if not good.any():
            continue
        # re-triangulate from all supporting views' nearest candidates
        xs = torch.gather(c, 2, kmin[..., None].expand(n, V, kmin.shape[2], 2))  # [n, V, H, 2]
        w = inlier.double()
        Xr = triangulate(xs.permute(0, 2, 1, 3)[..., None, :], P[:, None], w.permute(0, 2, 1)[..., None],
                         method="normal")[..., 0, :]  # [n, H, 3]
        err = torch.where(inlier, dmin, torch.zeros_like(dmin)).sum(1) / support.clamp_min(1)
        score = support.double() * 1000.0 - err  # support first, then error
        score = torch.where(good, score, torch.full_like(score, -1e18))
        Xr, score = Xr.numpy(), score.numpy()
        sup = support.numpy()
        for b in range(n):
            order = np.argsort(-score[b])
            kept = 0
            for h in order:
                if score[b, h] < -1e17 or kept == M:
                    break
                p = Xr[b, h]
                if not np.isfinite(p).all():
                    continue
                if kept and np.min(np.linalg.norm(pts_out[s + b, :kept] - p, axis=-1)) < nms_mm:
                    continue
                pts_out[s + b, kept], ok_out[s + b, kept], sup_out[s + b, kept] = p, True, sup[b, h]
                kept += 1
    return pts_out, ok_out, sup_out
