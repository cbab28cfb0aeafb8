import numpy as np
import pytest
import torch

from maskpose import geometry as G
from maskpose import losses as L
from maskpose.skeleton import H36M18, template_bone_lengths
from maskpose.train import crop_intrinsics

from test_multiview import cameras, crop_cameras, standing_pose

JS = H36M18


def template_pose(scale=1.0):
    """A pose whose bone lengths are exactly the template's (a chain along a zig-zag)."""
    T = template_bone_lengths(JS).double() * scale
    X = torch.zeros(18, 3, dtype=torch.float64)
    order = sorted(JS.bones, key=lambda b: b.child)
    done = {0}
    dirs = torch.nn.functional.normalize(torch.randn(17, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), dim=-1)
    while len(done) < 18:
        for i, b in enumerate(JS.bones):
            if b.parent in done and b.child not in done:
                X[b.child] = X[b.parent] + T[i] * dirs[i]
                done.add(b.child)
    return X


def test_focal_normalized_and_intrinsics_from_crop_projection():
    cam = G.Camera(np.array([[1150.0, 0, 480], [0, 1160.0, 510], [0, 0, 1]]), *G.look_at([4000, 100, 1500], [0, 0, 1000]))
    A = G.crop_affine((520.0, 470.0), 700.0, 64)
    P = torch.tensor(G.crop_projection(cam, A, 64))
    Kp = G.normalize_matrix(64) @ A @ cam.K
    f = L.focal_normalized(P)
    assert f.item() == pytest.approx(0.5 * (Kp[0, 0] + Kp[1, 1]), rel=1e-9)
    np.testing.assert_allclose(crop_intrinsics(P).numpy(), Kp, atol=1e-9)


def test_proportion_prior_is_scale_free_and_zero_at_template():
    X = template_pose()
    assert L.proportion_prior(X[None], JS).item() == pytest.approx(0.0, abs=1e-12)
    assert L.proportion_prior((2.3 * X)[None], JS).item() == pytest.approx(0.0, abs=1e-12)
    Y = X.clone()
    Y[JS.index("LWrist")] += 80.0
    assert L.proportion_prior(Y[None], JS).item() > 1e-3


def test_template_uses_joint_centre_arm_lengths():
    """Arms from de Leva (1996, joint centre to joint centre), legs from Drillis & Contini: at de Leva's
    male stature the template's arm bones are his (sex-averaged) lengths, not the acromion-based 0.186 H."""
    names = [b.name for b in JS.bones]
    T = template_bone_lengths(JS, stature_mm=1741.0)
    for side in "LR":
        assert T[names.index(f"{side}-upper-arm")].item() == pytest.approx(0.5 * (281.7 + 275.1 * 1741 / 1735), rel=1e-4)
        assert T[names.index(f"{side}-forearm")].item() == pytest.approx(0.5 * (268.9 + 264.3 * 1741 / 1735), rel=1e-4)
        assert T[names.index(f"{side}-thigh")].item() == pytest.approx(0.245 * 1741, rel=1e-6)
        assert T[names.index(f"{side}-shin")].item() == pytest.approx(0.246 * 1741, rel=1e-6)
    # upper arm / forearm: ~1.05 between joint centres (was 1.27 with the acromion-based upper arm)
    assert 1.0 < (T[names.index("L-upper-arm")] / T[names.index("L-forearm")]).item() < 1.1


def test_symmetry_prior():
    X = standing_pose(0.4)
    assert L.symmetry_prior(X[None], JS).item() == pytest.approx(0.0, abs=1e-9)
    Y = X.clone()
    Y[JS.index("LAnkle")] -= torch.tensor([0.0, 0.0, 100.0], dtype=Y.dtype)  # left shin 100 mm longer
    # ((+50)/100)^2 + ((-50)/100)^2 = 0.5
    assert L.symmetry_prior(Y[None], JS).item() == pytest.approx(0.5, rel=1e-6)


def test_hinge_losses_zero_for_true_pose_positive_for_mirror():
    X = standing_pose(2.0)[None]
    knee, nose = L.hinge_losses(X, JS)
    assert knee.item() == 0 and nose.item() == 0
    knee, nose = L.hinge_losses(JS.flip(X), JS)
    assert knee.item() > 0.2 and nose.item() > 0.5


def test_body_mask_covers_projected_joints():
    X = standing_pose(0.7)[None]
    P = crop_cameras(X[0], 4)[None]
    body = L.render_body(X, P, JS, 64, L.LossConfig())
    assert body.shape == (1, 4, 1, 64, 64)
    x2d = G.project_P(X[:, None], P)[0]  # [V, J, 2]
    px = ((x2d + 1) * 31.5).round().long()
    inside = [(0 <= c < 64 and 0 <= r < 64) for c, r in px.reshape(-1, 2).tolist()]
    vals = body[0, :, 0][torch.arange(4)[:, None].expand(4, 18).reshape(-1), px[..., 1].clamp(0, 63).reshape(-1),
                         px[..., 0].clamp(0, 63).reshape(-1)]
    assert all(inside)
    assert (vals > 0.5).float().mean() > 0.95
    assert 0.05 < (body > 0.5).float().mean() < 0.5


def test_weighted_l2_reference():
    p = torch.rand(2, 1, 5, 5)
    t = (torch.rand(2, 1, 5, 5) > 0.5).float()
    w = torch.rand(2, 1, 5, 5) + 0.5
    ref = (w * (p - t) ** 2).mean()
    assert L.weighted_l2(p, t, w).item() == pytest.approx(ref.item())
    assert L.weighted_l2(p, t, w, squared_weight=True).item() == pytest.approx((w * w * (p - t) ** 2).mean().item())
    clip = ((p > 0.1) * (p - t) ** 2).mean()
    assert L.weighted_l2(p, t, None, clip=0.1).item() == pytest.approx(clip.item())


def test_extremity_loss_assignment():
    S = 65
    norm = lambda px: torch.tensor(px, dtype=torch.float64) / 32.0 - 1.0  # noqa: E731
    tips = norm([[[10.0, 10.0], [50.0, 12.0]]])  # [1, 2, 2]
    cands = norm([[[52.0, 10.0], [12.0, 8.0], [30.0, 60.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, True, True, False]])
    excl = norm([[[30.0, 61.0]]])  # removes the candidate near an ankle
    loss = L.extremity_loss(tips, cands, valid, excl, S, sigma_px=10.0, exclude_px=6.0)
    d0 = (2 ** 2 + 2 ** 2)  # tip 0 -> (12, 8)
    d1 = (2 ** 2 + 2 ** 2)  # tip 1 -> (52, 10)
    ref = 0.5 * (np.log1p(d0 / 100) + np.log1p(d1 / 100))
    assert loss.item() == pytest.approx(ref, rel=1e-6)
    tips.requires_grad_(True)
    L.extremity_loss(tips, cands, valid, excl, S).backward()
    g = tips.grad[0]
    assert g[0, 0] < 0 and g[1, 0] < 0  # both pulled to +x


def test_extremity_loss_single_candidate_goes_to_nearer_tip():
    S = 65
    norm = lambda px: torch.tensor(px, dtype=torch.float64) / 32.0 - 1.0  # noqa: E731
    tips = norm([[[10.0, 10.0], [50.0, 12.0]]]).requires_grad_(True)
    cands = norm([[[48.0, 20.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, False]])
    loss = L.extremity_loss(tips, cands, valid, norm([[[0.0, 64.0]]]), S)
    loss.backward()
    assert tips.grad[0, 0].abs().sum() == 0 and tips.grad[0, 1].abs().sum() > 0


def test_depth_consistency_zero_at_truth():
    X = standing_pose(1.0)[None]
    P = cameras(3)[None]
    z = G.depth_P(X[:, None], P)
    pred = (z - z[..., :1]) / 1000.0
    assert L.depth_consistency(pred, X, P, JS, 1000.0).item() == pytest.approx(0.0, abs=1e-12)
    assert L.depth_consistency(pred + 0.2, X, P, JS, 1000.0).item() > 0.1


def test_feet_make_the_mask_loss_label_aware(tmp_path):
    """With forward feet the true labelling draws a better body than its mirror; without feet the
    two are identical (the mask loss carries no left/right information)."""
    from maskpose.data.folder import MaskPoseDataset
    from maskpose.data.synthetic import generate_dataset

    generate_dataset(tmp_path / "d", 6, num_views=4, size=64, seed=11, split="test", workers=1)
    ds = MaskPoseDataset(tmp_path / "d", with_gt=True)
    X = torch.tensor(ds.gt_joints3d, dtype=torch.float32)
    P = torch.stack([ds[i]["crop_cameras"] for i in range(6)])
    masks = torch.stack([ds[i]["masks"] for i in range(6)])

    def l2(Y, feet):
        body = L.render_body(Y, P, JS, 64, L.LossConfig(feet=feet))
        return ((body - masks) ** 2).mean((1, 2, 3, 4))

    torch.testing.assert_close(l2(X, False), l2(JS.flip(X), False), rtol=1e-5, atol=1e-6)
    assert (l2(X, True) < l2(JS.flip(X), True)).all()
    assert (l2(X, True) < l2(X, False)).all()  # the feet are part of the silhouette
