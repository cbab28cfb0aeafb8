import numpy as np
import pytest
import torch

from maskpose import geometry as G
from maskpose import multiview as mv
from maskpose.skeleton import H36M18

JS = H36M18


def standing_pose(yaw: float = 0.0, knee_bend: float = 0.25, arms_out: float = 0.3) -> torch.Tensor:
    """An anatomically correct H36M-18 pose (mm) in a right-handed z-up world.

    At yaw 0 the person faces +y, so their left is -x (forward = left x up).
    """
    left = np.array([-1.0, 0.0, 0.0])
    fwd = np.array([0.0, 1.0, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    J = {}
    J["pelvis"] = np.array([0.0, 0.0, 950.0])
    for s, sgn in (("L", 1), ("R", -1)):
        hip = J["pelvis"] + sgn * 130 * left
        knee = hip - 440 * up * np.cos(knee_bend) + 440 * np.sin(knee_bend) * fwd
        ankle = knee - 430 * up
        J[s + "Hip"], J[s + "Knee"], J[s + "Ankle"] = hip, knee, ankle
    J["spine"] = J["pelvis"] + 230 * up
    sh_mid = J["spine"] + 250 * up
    J["neck"] = sh_mid + 110 * up
    J["nose"] = J["neck"] + 80 * up + 90 * fwd
    J["head"] = J["nose"] + 110 * up - 30 * fwd
    for s, sgn in (("L", 1), ("R", -1)):
        sh = sh_mid + sgn * 160 * left
        elbow = sh - 280 * up * np.cos(arms_out) + sgn * 280 * np.sin(arms_out) * left
        wrist = elbow - 250 * up + 60 * fwd
        J[s + "Shoulder"], J[s + "Elbow"], J[s + "Wrist"] = sh, elbow, wrist
    J["thorax"] = 0.5 * (J["LShoulder"] + J["RShoulder"])
    X = np.stack([J[n] for n in JS.joints])
    c, s_ = np.cos(yaw), np.sin(yaw)
    Rz = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]])
    return torch.tensor(X @ Rz.T)


def cameras(V, seed=0):
    rng = np.random.default_rng(seed)
    P = []
    for v in range(V):
        az = 2 * np.pi * v / V + rng.uniform(-0.2, 0.2)
        R, t = G.look_at([4500 * np.cos(az), 4500 * np.sin(az), 1500], [0, 0, 1000])
        K = np.array([[1150.0, 0, 500], [0, 1150, 500], [0, 0, 1]])
        P.append(G.Camera(K, R, t).P)
    return torch.tensor(np.stack(P))


def test_anatomy_signs_on_a_true_pose():
    for yaw in np.linspace(0, 2 * np.pi, 7):
        X = standing_pose(yaw)
        assert (mv.knee_hinge(X, JS) > 0.1).all()
        assert mv.nose_forward(X, JS) > 0.5
        assert mv.anatomy_violation(X, JS) == 0
        assert mv.anatomy_violation(JS.flip(X), JS) > 0.5  # the mirror labelling violates both
        assert mv.arm_disagreement(X, JS) > 0


def test_body_frame_is_right_handed():
    fwd, left, up = mv.body_frame(standing_pose(0.3), JS)
    R = torch.stack([fwd, left, up])
    assert torch.det(R) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("V", [2, 3, 4])
def test_match_views_recovers_random_swaps(V):
    torch.manual_seed(V)
    X = torch.stack([standing_pose(y) for y in (0.2, 1.5, 3.0, 4.4, 5.9)])  # [B, J, 3]
    P = cameras(V).expand(5, V, 3, 4)
    x2d = G.project_P(X[:, None], P)  # [B, V, J, 2]
    swaps = torch.rand(5, V) < 0.5
    swaps[:, 0] = False
    observed = mv.apply_view_swaps(x2d, swaps, JS)
    found = mv.match_views(observed, P, JS)
    assert torch.equal(found, swaps)


def test_lift_recovers_pose_and_labelling():
    X = torch.stack([standing_pose(y, arms_out=0.5) for y in (0.1, 2.0, 4.0)])
    P = cameras(4).expand(3, 4, 3, 4)
    x2d = G.project_P(X[:, None], P)
    # every view labelled the wrong way (a consistent mirror): matching keeps it, selection fixes it
    observed = mv.apply_view_swaps(x2d, torch.ones(3, 4, dtype=torch.bool), JS)
    res = mv.lift(observed, P, JS)
    assert res["flip"].all()
    torch.testing.assert_close(res["joints3d"], X, atol=1e-4, rtol=0)
    no_sel = mv.lift(observed, P, JS, selection=False)
    assert (no_sel["joints3d"] - X).norm(dim=-1).mean() > 100


def test_arms_selected_separately():
    X = standing_pose(1.0, arms_out=0.6)
    perm = mv.arm_permutation(JS)
    arms_swapped = X[perm]
    assert mv.arm_disagreement(arms_swapped, JS) < 0
    flip, arm_flip = mv.select_labelling(arms_swapped[None], JS)
    assert not flip.item() and arm_flip.item()
    torch.testing.assert_close(mv.apply_labelling(arms_swapped[None], flip, arm_flip, JS)[0], X)


def test_derive_centres():
    X = standing_pose(0.0) + torch.randn(18, 3) * 20
    Y = mv.derive_centres(X, JS)
    torch.testing.assert_close(Y[0], 0.5 * (X[1] + X[4]))
    torch.testing.assert_close(Y[17], 0.5 * (X[11] + X[14]))
    torch.testing.assert_close(Y[2:17], X[2:17])


def crop_cameras(X: torch.Tensor, V: int, size: int = 64, seed: int = 0, margin: float = 1.4) -> torch.Tensor:
    """Normalised crop projections ``[V, 3, 4]`` framing pose ``X [J, 3]`` in each view."""
    P = cameras(V, seed)
    out = []
    for v in range(V):
        px = G.project_P(X, P[v]).numpy()
        (cx, cy), side = G.square_box((px[:, 0].min(), px[:, 1].min(), px[:, 0].max(), px[:, 1].max()), margin)
        A = G.crop_affine((cx, cy), side, size)
        out.append(G.normalize_matrix(size) @ A @ P[v].numpy())
    return torch.tensor(np.stack(out))


@pytest.mark.parametrize("V", [3, 4])
def test_arm_matching_fixes_views_whose_arms_disagree_with_their_legs(V):
    """Whole-body swaps per view cannot fix a view that labels its arms the other way round from its
    legs; the per-view arm matching does, and the result equals the true pose."""
    X = torch.stack([standing_pose(y, arms_out=0.6) for y in (0.3, 1.9, 3.7, 5.2)])  # [B, J, 3]
    B = X.shape[0]
    P = cameras(V).expand(B, V, 3, 4)
    x2d = G.project_P(X[:, None], P)
    arm_sw = torch.zeros(B, V, dtype=torch.bool)
    arm_sw[:, 1] = True  # view 1 swaps its arms only
    observed = mv.apply_view_swaps(x2d, arm_sw, JS, mv.arm_permutation(JS))
    plain = mv.lift(observed, P, JS)
    fixed = mv.lift(observed, P, JS, arm_matching=True)
    # whole-body matching either mixes the arms or (swapping the view) the legs across views
    assert (plain["joints3d"] - X).norm(dim=-1).max(-1).values.min() > 20
    torch.testing.assert_close(fixed["joints3d"], X, atol=1e-3, rtol=0)
    assert torch.equal(fixed["arm_swaps"], arm_sw)
    # with consistent labels the arm matching changes nothing
    clean = mv.lift(x2d, P, JS, arm_matching=True)
    assert not clean["arm_swaps"].any()
    torch.testing.assert_close(clean["joints3d"], X, atol=1e-3, rtol=0)
