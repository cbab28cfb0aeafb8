"""Inference helpers: per-sample refinement of the network's 3D answer against the masks (``fit``).

The network supplies the basin; a per-sample fit refines it (DESIGN §4: a fit from a generic
template fails under every loss, a fit from a good start converges). The fit optimises the 3D
joints of each sample (and a girth scale) directly with Adam against the capsule body-mask loss
of all views, the proportion / symmetry priors, the hinge terms and (when ``loss.cover`` > 0) the
arms' coverage pull. With ``search_cycles`` > 0 each fit is preceded by a discrete search of the arms
against the masks (:func:`maskpose.armsearch.search_arms`), which moves arms that gradient descent
cannot unfold (docs/results/arm_search/). No labels are read.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import losses as L
from . import multiview as mv
from .skeleton import get_joint_set


def fit_poses(joints3d: np.ndarray, masks: torch.Tensor, weights: torch.Tensor | None, cameras: torch.Tensor,
              valid: torch.Tensor, cfg, iters: int = 100, lr_mm: float = 5.0, batch_size: int = 64,
              device: torch.device | str = "cpu", progress: bool = False, search_cycles: int = 0,
              search_dirs: int = 64) -> np.ndarray:
    """Refine ``joints3d [N, J, 3]`` (world mm) against ``masks [N, V, 1, S, S]`` seen by ``cameras
    [N, V, 3, 4]`` (normalised crop projections). Returns the refined ``[N, J, 3]``.

    Adam on the joints with a cosine learning rate from ``lr_mm`` to ``lr_mm / 10`` mm per step.
    With ``search_cycles = C > 0``: C times (arm search with ``search_dirs`` directions, then the
    ``iters`` Adam steps from a fresh optimiser); 0: the Adam steps alone. ``iters = 0`` (only with
    ``search_cycles > 0``) is the search alone: only elbows and wrists move, ~13x cheaper than the
    default fit (docs/results/training-notes.md, session 8). ``batch_size``: samples fitted together (the
    answer does not depend on it: each sample's step is its own; on one CPU thread 64 is 15-20 % faster
    than 16, ``benchmarks/label_speed.py``).
    """
    if search_cycles < 0 or iters < 0 or (iters == 0 and search_cycles == 0):
        raise ValueError(f"fit: search_cycles must be >= 0 and iters >= 1 (or iters = 0 with search_cycles > 0), "
                         f"got search_cycles={search_cycles}, iters={iters}")
    if batch_size < 1:
        raise ValueError(f"fit: batch_size must be >= 1, got {batch_size}")
    joint_set = get_joint_set(cfg.joint_set)
    out = np.array(joints3d, dtype=np.float64, copy=True)
    N = out.shape[0]
    rng = range(0, N, batch_size)
    if progress:
        from tqdm import tqdm
        rng = tqdm(rng, desc="fit", total=math.ceil(N / batch_size))
    for s in rng:
        e = min(N, s + batch_size)
        for _ in range(max(1, search_cycles)):
            _fit_batch(out, s, e, masks, weights, cameras, valid, cfg, joint_set, iters, lr_mm, device,
                       search_dirs if search_cycles > 0 else 0)
    return out


def _fit_batch(out, s, e, masks, weights, cameras, valid, cfg, joint_set, iters, lr_mm, device, search_dirs):
    """One (optional arm search, Adam fit) cycle of samples ``s:e`` of ``out`` (in place)."""
    from .armsearch import search_arms

    lc = cfg.loss
    S = masks.shape[-1]
    m = masks[s:e].to(device).float()
    G = L.normalized_weights(weights[s:e].to(device).float()) if (weights is not None and lc.geodesic) else None
    P = cameras[s:e].to(device).float()
    X0 = torch.tensor(out[s:e], dtype=torch.float32, device=device)
    if search_dirs > 0:
        X0, _ = search_arms(X0, m, P, valid[s:e].to(device), joint_set, lc, None, num_dirs=search_dirs,
                            rounds=1)
    if iters == 0:  # the search alone
        out[s:e] = X0.double().cpu().numpy()
        return
    X = X0.clone().requires_grad_(True)
    log_girth = torch.zeros(e - s, device=device, requires_grad=True)
    vd = valid[s:e].to(device).float()[..., None, None, None]
    opt = torch.optim.Adam([X, log_girth], lr=lr_mm)
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = lr_mm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / max(1, iters))))
        Xc = mv.derive_centres(X, joint_set)
        girth = torch.exp(0.3 * torch.tanh(log_girth))
        body = L.render_body(Xc, P, joint_set, S, lc, girth)
        loss = L.weighted_l2(body * vd, m * vd, G, lc.geodesic_squared) * m.shape[1]
        loss = loss + max(lc.prop, 0.3) * L.proportion_prior(Xc, joint_set) + max(lc.sym, 0.1) * L.symmetry_prior(Xc, joint_set)
        knee, nose = L.hinge_losses(Xc, joint_set)
        loss = loss + lc.hinge * knee + lc.nose * nose
        if lc.cover > 0:
            loss = loss + lc.cover * L.cover_terms(Xc, P, joint_set, m * vd, body.detach(), S, lc, girth) * m.shape[1]
        opt.zero_grad(set_to_none=True)
        # per-sample losses are independent: scale by the batch size so each sample's step is
        # the same as if it were fitted alone (the loss terms are means over the batch)
        (loss * (e - s)).backward()
        opt.step()
    with torch.no_grad():
        out[s:e] = mv.derive_centres(X, joint_set).double().cpu().numpy()
