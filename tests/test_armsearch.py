"""Discrete arm search against the masks (maskpose.armsearch) and its use in fit and training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maskpose import losses as L
from maskpose import multiview as mv
from maskpose.armsearch import (arm_hypotheses, arm_scores, cost_maps, line_scores, pair_index, search_arms,
                                sphere_directions)
from maskpose.skeleton import H36M18 as js

J = js.index


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """8 rendered synthetic samples (4 views, 64 px): masks, crop cameras and (to check) ground truth."""
    from maskpose.data.folder import MaskPoseDataset
    from maskpose.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("armsearch") / "s"
    generate_dataset(root, 8, num_views=4, size=64, seed=5, split="test", workers=1)
    ds = MaskPoseDataset(root, with_gt=False, preload=True)
    items = [ds[i] for i in range(len(ds))]
    st = lambda k: torch.stack([it[k] for it in items])  # noqa: E731
    gt = torch.from_numpy(np.load(root / "gt" / "joints3d.npy")).float()
    return {"masks": st("masks").float(), "P": st("crop_cameras").float(), "valid": st("valid"), "gt": gt,
            "weights": st("weights").float()}


def _cfg():
    return L.LossConfig()


def _fold(X: torch.Tensor) -> torch.Tensor:
    """Both arms folded against the chest: elbow in front of the shoulder, wrist back at the chest
    centre (what a mask-trained network does with a hand it cannot see)."""
    X = X.clone()
    fwd, left, up = mv.body_frame(X, js)
    chest = 0.5 * (X[:, J("thorax")] + X[:, J("spine")])
    for s in "LR":
        sh = X[:, J(f"{s}Shoulder")]
        X[:, J(f"{s}Elbow")] = sh + 150 * fwd - 180 * up
        X[:, J(f"{s}Wrist")] = chest + 120 * fwd
    return X


def _wrist_err(X, gt):
    """Root-aligned wrist error per arm ``[N, 2]`` (mm)."""
    rel = lambda Y: Y[:, [J("LWrist"), J("RWrist")]] - Y[:, :1]  # noqa: E731
    return (rel(X) - rel(gt)).norm(dim=-1)


def test_sphere_directions_are_unit_and_spread():
    d = sphere_directions(64, torch.float64)
    assert d.shape == (64, 3)
    assert torch.allclose(d.norm(dim=-1), torch.ones(64, dtype=torch.float64))
    cos = (d @ d.T - 2 * torch.eye(64, dtype=torch.float64)).max(-1).values
    # nearest neighbour within ~30 degrees of every direction, none closer than 15
    ang = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))
    assert ang.max() < 32 and ang.min() > 15
    assert abs(float(d.mean(0).norm())) < 0.05
    with pytest.raises(ValueError, match="n"):
        sphere_directions(0)


def test_arm_hypotheses_keep_the_bone_lengths_and_start_with_the_current_arm(scene):
    X = scene["gt"][:3]
    dirs = sphere_directions(16, torch.float32)
    el, wr = arm_hypotheses(X, js, "L", dirs, max_flexion_deg=160.0)
    i, k = pair_index(dirs, 160.0)
    assert el.shape == wr.shape == (3, 1 + i.numel(), 3)
    assert torch.equal(el[:, 0], X[:, J("LElbow")]) and torch.equal(wr[:, 0], X[:, J("LWrist")])
    up = (X[:, J("LElbow")] - X[:, J("LShoulder")]).norm(dim=-1)
    fo = (X[:, J("LWrist")] - X[:, J("LElbow")]).norm(dim=-1)
    assert torch.allclose((el - X[:, None, J("LShoulder")]).norm(dim=-1), up[:, None].expand(-1, el.shape[1]), atol=1e-3)
    assert torch.allclose((wr - el).norm(dim=-1), fo[:, None].expand(-1, el.shape[1]), atol=1e-3)
    # the flexion limit: no forearm turns more than 160 degrees from its upper arm
    u = (el[:, 1:] - X[:, None, J("LShoulder")]) / up[:, None, None]
    f = (wr[:, 1:] - el[:, 1:]) / fo[:, None, None]
    assert float((u * f).sum(-1).min()) >= math.cos(math.radians(160.0)) - 1e-4
    with pytest.raises(ValueError, match="side"):
        arm_hypotheses(X, js, "X", dirs)


def test_cost_map_is_the_exact_loss_change_of_an_opaque_arm():
    g = torch.Generator().manual_seed(0)
    rest, m, w = torch.rand(50, generator=g), (torch.rand(50, generator=g) > 0.5).float(), torch.rand(50, generator=g)
    for A in (0.0, 1.0):
        full = 1 - (1 - rest) * (1 - A)
        assert torch.allclose(w * ((full - m) ** 2 - (rest - m) ** 2), cost_maps(rest, m, w) * A, atol=1e-6)


def test_arm_scores_equal_a_full_render_of_each_hypothesis(scene):
    """Slow reference: render the whole body with the arm replaced and sum the squared error."""
    n = 2
    X, m, P, v = scene["gt"][:n], scene["masks"][:n], scene["P"][:n], scene["valid"][:n]
    cfg = _cfg()
    girth = torch.tensor([0.9, 1.1])
    el, wr = arm_hypotheses(X, js, "R", sphere_directions(6), 160.0)
    sc = arm_scores(X, m, P, v, js, "R", el, wr, cfg, girth)
    for b in range(n):
        for h in range(0, el.shape[1], 5):
            Y = X[b:b + 1].clone()
            Y[0, J("RElbow")], Y[0, J("RWrist")] = el[b, h], wr[b, h]
            body = L.render_body(Y, P[b:b + 1], js, 64, cfg, girth[b:b + 1])
            ref = ((body - m[b:b + 1]) ** 2 * v[b:b + 1, :, None, None, None]).sum()
            assert abs(float(sc[b, h]) - float(ref)) < 1e-3 * max(1.0, float(ref)), (b, h)


def test_line_scores_rank_hypotheses_like_the_exact_scores(scene):
    """The render-free pre-selection approximates the exact loss change of each arm hypothesis."""
    X, m, P, v = scene["gt"][:4], scene["masks"][:4], scene["P"][:4], scene["valid"][:4]
    cfg = _cfg()
    el, wr = arm_hypotheses(X, js, "L", sphere_directions(12), 160.0)
    exact = arm_scores(X, m, P, v, js, "L", el, wr, cfg)
    from maskpose.armsearch import _arm_capsules, _arm_segments

    arm = _arm_segments(js, "L")
    rest = L.render_body(X, P, js, 64, cfg, None, segments=tuple(s for s in js.body_segments if s not in arm))[:, :, 0]
    base = ((rest - m[:, :, 0]) ** 2 * v[:, :, None, None]).sum(dim=(1, 2, 3))
    st, en, radii = _arm_capsules(X, js, "L", el, wr)
    approx = line_scores(cost_maps(rest, m[:, :, 0], v[:, :, None, None].float()), P, st, en, radii).sum(-1)
    delta = exact - base[:, None]
    for b in range(4):
        rx = delta[b].argsort().argsort().float()
        ra = approx[b].argsort().argsort().float()
        rho = float(torch.corrcoef(torch.stack([rx, ra]))[0, 1])
        assert rho > 0.9, (b, rho)
        # and the values, roughly: caps and the soft edge are left out, and outside the crop the
        # pre-selection counts background where the exact loss has no pixels
        rel = (approx[b] - delta[b]).abs() / delta[b].abs().clamp_min(1.0)
        assert float(rel.median()) < 0.35, (b, float(rel.median()))


def test_search_keeps_the_truth_and_unfolds_folded_arms(scene):
    gt, m, P, v = scene["gt"], scene["masks"], scene["P"], scene["valid"]
    cfg = _cfg()
    same, gain = search_arms(gt, m, P, v, js, cfg, num_dirs=32, margin_px=4.0)
    moved = (same - gt).norm(dim=-1).max(-1).values
    assert float((moved > 1).float().mean()) <= 0.25  # the truth is (nearly always) kept
    folded = _fold(gt)
    found, gain = search_arms(folded, m, P, v, js, cfg, num_dirs=48, margin_px=4.0)
    before, after = _wrist_err(folded, gt), _wrist_err(found, gt)
    assert (gain > 0).float().mean() > 0.5
    assert float(after.mean()) < 0.5 * float(before.mean()), (float(before.mean()), float(after.mean()))
    # only elbows and wrists change
    others = [i for i in range(js.num_joints) if i not in (J("LElbow"), J("LWrist"), J("RElbow"), J("RWrist"))]
    assert torch.equal(found[:, others], folded[:, others])


def test_fit_with_search_beats_fit_alone_on_folded_arms(scene):
    from maskpose.config import from_dict
    from maskpose.infer import fit_poses
    from maskpose.train import TrainConfig

    cfg = from_dict(TrainConfig, {})
    gt, m, P, v, w = scene["gt"], scene["masks"], scene["P"], scene["valid"], scene["weights"]
    folded = _fold(gt).double().numpy()
    plain = fit_poses(folded, m, w, P, v, cfg, iters=30, search_cycles=0)
    searched = fit_poses(folded, m, w, P, v, cfg, iters=30, search_cycles=1, search_dirs=32)
    e0 = float(_wrist_err(torch.from_numpy(plain).float(), gt).mean())
    e1 = float(_wrist_err(torch.from_numpy(searched).float(), gt).mean())
    assert e1 < 0.6 * e0, (e0, e1)
    # the search alone (iters = 0): the same as search_arms, only elbows and wrists move
    only = fit_poses(folded, m, w, P, v, cfg, iters=0, search_cycles=1, search_dirs=32)
    ref, _ = search_arms(torch.from_numpy(folded).float(), m.float(), P.float(), v, js, cfg.loss, None, num_dirs=32,
                         rounds=1)
    assert np.allclose(only, ref.double().numpy(), atol=1e-4)
    arms = [J("LElbow"), J("LWrist"), J("RElbow"), J("RWrist")]
    others = [i for i in range(js.num_joints) if i not in arms]
    assert np.allclose(only[:, others], folded[:, others], atol=1e-4)
    assert float(_wrist_err(torch.from_numpy(only).float(), gt).mean()) < 0.6 * e0
    with pytest.raises(ValueError, match="search_cycles"):
        fit_poses(folded, m, w, P, v, cfg, iters=3, search_cycles=-1)
    with pytest.raises(ValueError, match="iters"):
        fit_poses(folded, m, w, P, v, cfg, iters=0, search_cycles=0)


def test_batch_size_changes_the_speed_not_the_answer(scene):
    """The search and the fit are per-sample: any batch size (the search takes 4 per pass on the CPU, for
    speed, benchmarks/label_speed.py) gives the same poses; a batch size below 1 is refused."""
    from maskpose.config import from_dict
    from maskpose.infer import fit_poses
    from maskpose.train import TrainConfig

    gt, m, P, v, w = scene["gt"], scene["masks"], scene["P"], scene["valid"], scene["weights"]
    folded = _fold(gt)
    ref, gref = search_arms(folded, m, P, v, js, _cfg(), num_dirs=24, rounds=1, batch_size=8)
    for bs in (None, 1, 3):
        out, gain = search_arms(folded, m, P, v, js, _cfg(), num_dirs=24, rounds=1, batch_size=bs)
        assert torch.allclose(out, ref, atol=1e-4) and torch.allclose(gain, gref, atol=1e-3), bs
    assert (ref - folded).abs().max() > 10  # the arms did move: the comparison is not of untouched poses
    cfg = from_dict(TrainConfig, {})
    start = folded.double().numpy()
    fits = [fit_poses(start, m, w, P, v, cfg, iters=5, search_cycles=1, search_dirs=16, batch_size=bs)
            for bs in (8, 64, 3)]
    assert np.abs(fits[0] - start).max() > 1.0
    for f in fits[1:]:
        assert np.allclose(f, fits[0], atol=1e-3)
    with pytest.raises(ValueError, match="batch_size"):
        search_arms(folded, m, P, v, js, _cfg(), num_dirs=8, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        fit_poses(start, m, w, P, v, cfg, iters=1, batch_size=0)


def test_search_rejects_bad_input(scene):
    gt, m, P, v = scene["gt"], scene["masks"], scene["P"], scene["valid"]
    with pytest.raises(ValueError, match="search_arms"):
        search_arms(gt[:3], m, P, v, js, _cfg())
    with pytest.raises(ValueError, match="search_arms"):
        search_arms(gt, m[:, :3], P, v, js, _cfg())
    bad = gt.clone()
    bad[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        search_arms(bad, m, P, v, js, _cfg())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_search_on_cuda_matches_cpu(scene):
    gt, m, P, v = scene["gt"][:4], scene["masks"][:4], scene["P"][:4], scene["valid"][:4]
    folded = _fold(gt)
    cpu, gc = search_arms(folded, m, P, v, js, _cfg(), num_dirs=24)
    dev = torch.device("cuda")
    gpu, gg = search_arms(folded.to(dev), m.to(dev), P.to(dev), v.to(dev), js, _cfg(), num_dirs=24)
    assert torch.equal(gc > 0, gg.cpu() > 0)
    assert float((gpu.cpu() - cpu).abs().max()) < 1.0
