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
