"""Tests for maskpose.metrics: hand-computed cases, invariances, flip-aware variants, PCK/AUC,
ambiguity ratio, numpy/torch agreement and every bad-input error."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from maskpose import metrics as M
from maskpose.skeleton import DEFAULT, H36M17

J = DEFAULT.num_joints


def rot(axis, angle):
    """Rotation matrix about ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def poses(n=6, seed=0):
    """Random, well-spread, non-symmetric poses [n, 18, 3] in mm."""
    return np.random.default_rng(seed).normal(scale=300.0, size=(n, J, 3))


def reference_p_mpjpe(predicted, target):
    """VideoPose3D's ``p_mpjpe`` (common/loss.py), transcribed as an independent reference."""
    mu_x = np.mean(target, axis=1, keepdims=True)
    mu_y = np.mean(predicted, axis=1, keepdims=True)
    x0, y0 = target - mu_x, predicted - mu_y
    norm_x = np.sqrt(np.sum(x0 ** 2, axis=(1, 2), keepdims=True))
    norm_y = np.sqrt(np.sum(y0 ** 2, axis=(1, 2), keepdims=True))
    x0, y0 = x0 / norm_x, y0 / norm_y
    h = np.matmul(x0.transpose(0, 2, 1), y0)
    u, s, vt = np.linalg.svd(h)
    v = vt.transpose(0, 2, 1)
    r = np.matmul(v, u.transpose(0, 2, 1))
    sign = np.sign(np.expand_dims(np.linalg.det(r), axis=1))
    v[:, :, -1] *= sign
    s[:, -1] *= sign.flatten()
    r = np.matmul(v, u.transpose(0, 2, 1))
    tr = np.expand_dims(np.sum(s, axis=1, keepdims=True), axis=2)
    a = tr * norm_x / norm_y
    t = mu_x - a * np.matmul(mu_y, r)
    aligned = a * np.matmul(predicted, r) + t
    return np.mean(np.linalg.norm(aligned - target, axis=-1))


# ====================================================================== hand-computed cases

def test_mpjpe_two_joint_offset():
    gt = np.array([[[0.0, 0.0, 0.0], [100.0, 0.0, 0.0]]])
    pred = gt.copy()
    pred[0, 1] += [30.0, 40.0, 0.0]  # joint 1 off by 50 mm, root exact
    assert M.mpjpe(pred, gt, joint_set=None) == pytest.approx(25.0)  # (0 + 50) / 2
    # the whole pose shifted: zero after root alignment, the shift's length without it
    shifted = gt + np.array([3.0, 4.0, 12.0])
    assert M.mpjpe(shifted, gt, joint_set=None) == pytest.approx(0.0, abs=1e-12)
    assert M.mpjpe(shifted, gt, root=None, joint_set=None) == pytest.approx(13.0)
    # root = 1: joint 0 now carries the 50 mm error
    assert M.mpjpe(pred, gt, root=1, joint_set=None) == pytest.approx(25.0)
    np.testing.assert_allclose(M.per_joint_mpjpe(pred, gt, joint_set=None), [0.0, 50.0], atol=1e-12)


def test_mpjpe_mean_over_samples_and_per_sample():
    gt = np.zeros((2, 3, 3))
    pred = gt.copy()
    pred[0, 1:] = [10.0, 0.0, 0.0]   # sample 0: errors 0, 10, 10
    pred[1, 2] = [0.0, 0.0, 40.0]    # sample 1: errors 0, 0, 40
    np.testing.assert_allclose(M.per_sample_errors(pred, gt, joint_set=None), [20 / 3, 40 / 3])
    np.testing.assert_allclose(M.per_joint_errors(pred, gt, joint_set=None), [0.0, 5.0, 25.0])
    assert M.mpjpe(pred, gt, joint_set=None) == pytest.approx(10.0)
    assert M.joint_errors(pred, gt, joint_set=None).shape == (2, 3)


def test_n_mpjpe_known_scale():
    g = poses(4)
    # a scaled copy: N-MPJPE 0, MPJPE = |1 - s| * mean root-relative length
    for s in (0.5, 1.7):
        pred = s * g + 123.0
        rel = np.linalg.norm(g - g[:, :1], axis=-1)
        assert M.n_mpjpe(pred, g) == pytest.approx(0.0, abs=1e-9)
        assert M.mpjpe(pred, g) == pytest.approx(abs(1 - s) * rel.mean())
    # hand case: root at 0, one joint at x = 100 (gt) vs x = 50 and y = 50 (pred)
    gt = np.array([[[0.0, 0, 0], [100.0, 0, 0]]])
    pred = np.array([[[0.0, 0, 0], [50.0, 50.0, 0]]])
    # s = <p, g> / <p, p> = 5000 / 5000 = 1 -> same as MPJPE; error |(-50, 50)| / 2
    assert M.n_mpjpe(pred, gt, joint_set=None) == pytest.approx(math.hypot(50, 50) / 2)
    pred2 = np.array([[[0.0, 0, 0], [50.0, 0, 0]]])
    assert M.n_mpjpe(pred2, gt, joint_set=None) == pytest.approx(0.0, abs=1e-12)
    assert M.mpjpe(pred2, gt, joint_set=None) == pytest.approx(25.0)


def test_p_mpjpe_similarity_copy_is_zero_mpjpe_is_not():
    g = poses(5)
    r = rot([1.0, 2.0, 0.5], 0.9)
    pred = 1.3 * g @ r.T + np.array([100.0, -50.0, 2000.0])
    assert M.p_mpjpe(pred, g) == pytest.approx(0.0, abs=1e-8)
    assert M.mpjpe(pred, g) > 50.0
    assert M.n_mpjpe(pred, g) > 50.0


def test_p_mpjpe_matches_videopose3d_reference():
    g = poses(8, seed=1)
    pred = g + np.random.default_rng(2).normal(scale=60.0, size=g.shape)
    pred = pred @ rot([0, 0, 1], 0.4).T * 0.9
    assert M.p_mpjpe(pred, g) == pytest.approx(reference_p_mpjpe(pred, g), rel=1e-10)
    assert M.p_mpjpe(pred, g) < M.n_mpjpe(pred, g) + 1e-9  # Procrustes is the most forgiving


def test_procrustes_align_degenerate_prediction():
    g = poses(1)
    collapsed = np.zeros_like(g) + 5.0  # all joints at one point: mapped onto gt's centroid
    aligned = M.procrustes_align(collapsed, g)
    np.testing.assert_allclose(aligned, np.broadcast_to(g.mean(1, keepdims=True), g.shape))
    assert np.isfinite(M.p_mpjpe(collapsed, g))
    assert np.isfinite(M.n_mpjpe(collapsed, g))


# ====================================================================== invariances

@pytest.mark.parametrize("seed", [0, 1])
def test_invariances(seed):
    g = poses(4, seed)
    pred = g + np.random.default_rng(seed + 10).normal(scale=40.0, size=g.shape)
    base = {m: M.joint_errors(pred, g, m).mean() for m in M.METRICS_3D}
    r = rot([0.3, -1.0, 0.2], 1.1)
    t = np.array([500.0, -300.0, 4000.0])
    moved = {
        "translate": pred + t,
        "scale": 1.6 * pred,
        "rotate": pred @ r.T,
        "similarity": 0.7 * pred @ r.T + t,
    }
    invariant = {  # which metric must stay the same under which transform of pred
        "mpjpe": {"translate"},
        "n_mpjpe": {"translate", "scale"},
        "p_mpjpe": {"translate", "scale", "rotate", "similarity"},
    }
    for metric, inv in invariant.items():
        for name, p2 in moved.items():
            value = M.joint_errors(p2, g, metric).mean()
            if name in inv:
                assert value == pytest.approx(base[metric], rel=1e-9), (metric, name)
            else:
                assert abs(value - base[metric]) > 1.0, (metric, name)


def test_p_mpjpe_does_not_forgive_a_reflection():
    g = poses(3)
    mirror = g * np.array([-1.0, 1.0, 1.0])  # geometric mirror, labels kept
    assert M.p_mpjpe(mirror, g) > 50.0
    assert M.p_mpjpe(mirror, g) == pytest.approx(reference_p_mpjpe(mirror, g), rel=1e-10)
    # the sign fix matters: plain orthogonal Procrustes (reflection allowed) would make it exact
    p0 = mirror - mirror.mean(1, keepdims=True)
    g0 = g - g.mean(1, keepdims=True)
    u, sv, vt = np.linalg.svd(np.einsum("nji,njk->nik", p0, g0))
    scale = sv.sum(1) / (p0 ** 2).sum((1, 2))
    free = scale[:, None, None] * p0 @ (u @ vt) - g0
    assert np.abs(free).max() < 1e-8


def test_absolute_root_none_variant():
    g = poses(2)
    pred = g + 10.0
    assert M.mpjpe(pred, g, root=None) == pytest.approx(math.sqrt(300.0))
    assert M.mpjpe(pred, g) == pytest.approx(0.0, abs=1e-9)


# ====================================================================== flip-aware

def test_flip_aware_picks_the_label_swap():
    g = poses(4)
    swapped = DEFAULT.flip(g)
    for metric in M.METRICS_3D:
        strict = M.joint_errors(swapped, g, metric).mean()
        aware = M.joint_errors(swapped, g, metric, flip_aware=True).mean()
        assert strict > 50.0
        assert aware == pytest.approx(0.0, abs=1e-8)
    assert M.mpjpe(swapped, g, flip_aware=True) == pytest.approx(0.0, abs=1e-9)
    assert M.p_mpjpe(swapped, g, flip_aware=True) == pytest.approx(0.0, abs=1e-8)
    assert M.pck(swapped, g, threshold=1.0, flip_aware=True) == 1.0
    assert M.flip_share(swapped, g) == 1.0
    assert M.flip_share(g, g) == 0.0


def test_flip_aware_is_per_sample_and_never_worse():
    g = poses(6)
    pred = g + np.random.default_rng(3).normal(scale=30.0, size=g.shape)
    pred[::2] = DEFAULT.flip(pred[::2])  # half of the samples swapped
    assert M.flip_share(pred, g) == pytest.approx(0.5)
    strict = M.per_sample_errors(pred, g)
    aware = M.per_sample_errors(pred, g, flip_aware=True)
    assert np.all(aware <= strict + 1e-12)
    np.testing.assert_allclose(aware[1::2], strict[1::2])  # unswapped samples kept as they are
    unflipped = pred.copy()
    unflipped[::2] = DEFAULT.flip(pred[::2])
    np.testing.assert_allclose(aware, M.per_sample_errors(unflipped, g))
    assert M.per_joint_mpjpe(pred, g, flip_aware=True).shape == (J,)


def test_flip_aware_needs_a_joint_set():
    g = poses(1)
    with pytest.raises(ValueError, match="joint_set"):
        M.mpjpe(g, g, flip_aware=True, joint_set=None)


# ====================================================================== PCK / AUC

def test_pck_and_auc_constant_100mm_errors():
    g = np.round(poses(3))  # integer mm: g + v - g == v exactly
    pred = g + np.array([60.0, 80.0, 0.0])  # every joint exactly 100 mm off (absolute)
    assert np.all(np.linalg.norm(pred - g, axis=-1) == 100.0)
    assert M.pck(pred, g, root=None) == 1.0
    assert M.pck(pred, g, threshold=100.0, root=None) == 0.0  # strict "<" as in the protocol
    assert M.pck(pred, g, threshold=100.5, root=None) == 1.0
    # thresholds 0, 5, ..., 150: PCK = 1 for 105..150 (10 of 31)
    assert M.auc(pred, g, root=None) == pytest.approx(10 / 31)
    assert len(M.AUC_THRESHOLDS_MM) == 31 and M.AUC_THRESHOLDS_MM[0] == 0 and M.AUC_THRESHOLDS_MM[-1] == 150
    curve = M.pck_curve(pred, g, root=None)
    np.testing.assert_array_equal(curve, (M.AUC_THRESHOLDS_MM > 100).astype(float))


def test_pck_mixed_errors_and_joint_subset():
    gt = np.zeros((1, J, 3))
    pred = gt.copy()
    errs = np.zeros(J)
    errs[1:] = np.linspace(10.0, 200.0, J - 1)  # root exact, others increasing
    pred[0, :, 2] = errs
    expect = (errs < 150).mean()
    assert M.pck(pred, gt) == pytest.approx(expect)
    assert M.auc(pred, gt) == pytest.approx(np.mean([(errs < t).mean() for t in range(0, 151, 5)]))
    idx = DEFAULT.indices(M.MPI_INF_3DHP_14)
    assert len(idx) == 14 and DEFAULT.root not in idx
    assert M.pck(pred, gt, joints="mpi14") == pytest.approx((errs[idx] < 150).mean())
    assert M.pck(pred, gt, joints=["RKnee", 2, "LAnkle"]) == pytest.approx(
        (errs[[2, 2, 6]] < 150).mean())
    np.testing.assert_allclose(M.per_joint_mpjpe(pred, gt, joints="mpi14"), errs[idx])


# ====================================================================== ambiguity ratio

def test_ambiguity_ratio_constructed_flags():
    assert M.ambiguity_ratio(np.zeros((5, 4), bool)) == 0.0
    assert M.ambiguity_ratio(np.ones((5, 4), bool)) == 0.0  # all swapped = consistent
    half = np.array([[True, True, False, False]] * 3)
    assert M.ambiguity_ratio(half) == 0.5  # the maximum
    flags = np.array([[True, False, False, False],   # min(1, 3) = 1
                      [True, True, True, False],     # min(3, 1) = 1
                      [False, False, False, False],  # 0
                      [True, False, True, False]])   # 2
    assert M.ambiguity_ratio(flags) == pytest.approx((1 + 1 + 0 + 2) / (4 * 4))
    assert M.ambiguity_ratio(flags.astype(int)) == M.ambiguity_ratio(flags)
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert 0.0 <= M.ambiguity_ratio(rng.random((7, 5)) < 0.5) <= 0.5
    # per-joint (authors' code variant) [N, V, J]
    pj = np.zeros((2, 4, 3), bool)
    pj[0, :2, 0] = True  # joint 0 of sample 0: 2 of 4 views -> 2
    assert M.ambiguity_ratio(pj) == pytest.approx(2 / 6 / 4)


def test_flip_flags_2d_and_ratio_from_predictions():
    rng = np.random.default_rng(4)
    gt2d = rng.normal(scale=50.0, size=(3, 4, J, 2))
    pred2d = gt2d + rng.normal(scale=1.0, size=gt2d.shape)
    pred2d[0, 1] = DEFAULT.flip(pred2d[0, 1])
    pred2d[1, 0] = DEFAULT.flip(pred2d[1, 0])
    pred2d[1, 2] = DEFAULT.flip(pred2d[1, 2])
    pred2d[2] = DEFAULT.flip(pred2d[2])  # every view of sample 2 swapped: consistent
    flags = M.flip_flags_2d(pred2d, gt2d)
    expected = np.zeros((3, 4), bool)
    expected[0, 1] = expected[1, 0] = expected[1, 2] = True
    expected[2] = True
    np.testing.assert_array_equal(flags, expected)
    assert M.ambiguity_ratio_2d(pred2d, gt2d) == pytest.approx((1 + 2 + 0) / (4 * 3))
    per_joint = M.flip_flags_2d(pred2d, gt2d, per_joint=True)
    assert per_joint.shape == (3, 4, J)
    paired = sorted({j for p in DEFAULT.flip_pairs for j in p})
    unpaired = [j for j in range(J) if j not in paired]
    assert not per_joint[..., unpaired].any()
    np.testing.assert_array_equal(per_joint[..., paired].all(-1), expected)


def test_mpjpe_2d():
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 0] = [3.0, 4.0]
    pred[1, 2] = [0.0, 7.0]
    assert M.mpjpe_2d(pred, gt, joint_set=None) == pytest.approx(12.0 / 6)
    assert M.mpjpe_2d(pred[:, None], gt[:, None], joint_set=None) == pytest.approx(2.0)  # [N, V, J, 2]


# ====================================================================== numpy vs torch, table

def test_numpy_and_torch_inputs_give_the_same_floats():
    g = poses(3)
    p = g + np.random.default_rng(5).normal(scale=50.0, size=g.shape)
    pt, gtt = torch.from_numpy(p), torch.from_numpy(g)
    for fn in (M.mpjpe, M.n_mpjpe, M.p_mpjpe, M.pck, M.auc, M.flip_share):
        a, b = fn(p, g), fn(pt, gtt)
        assert type(a) is float and type(b) is float
        assert a == b, fn.__name__
    assert M.mpjpe(p, g, flip_aware=True) == M.mpjpe(pt, gtt, flip_aware=True)
    np.testing.assert_array_equal(M.per_joint_mpjpe(p, g), M.per_joint_mpjpe(pt, gtt))
    # float32 tensors: same numbers as the float32 values cast to float64
    p32 = pt.float()
    assert M.mpjpe(p32, gtt) == M.mpjpe(p32.double().numpy(), g)
    if torch.cuda.is_available():  # pragma: no cover - device-only
        assert M.mpjpe(pt.cuda(), gtt.cuda()) == M.mpjpe(p, g)
    f = np.array([[True, False]])
    assert M.ambiguity_ratio(f) == M.ambiguity_ratio(torch.from_numpy(f))


def test_metrics_table_keys_and_consistency():
    rng = np.random.default_rng(6)
    g = poses(4)
    p = g + rng.normal(scale=40.0, size=g.shape)
    p[0] = DEFAULT.flip(p[0])
    g2 = rng.normal(scale=50.0, size=(4, 2, J, 2))
    table = M.metrics_table(p, g, pred2d=g2 + 1.0, gt2d=g2, pck_joints="mpi14")
    json.dumps(table)  # serialisable
    for k in ("mpjpe", "n_mpjpe", "p_mpjpe", "pck", "auc"):
        assert k in table and k + "_flip" in table
        if k in ("pck", "auc"):
            assert table[k + "_flip"] >= table[k]
        else:
            assert table[k + "_flip"] <= table[k]
    assert table["mpjpe"] == M.mpjpe(p, g)
    assert table["p_mpjpe_flip"] == M.p_mpjpe(p, g, flip_aware=True)
    assert table["pck"] == M.pck(p, g, joints="mpi14")
    assert table["flip_share"] == pytest.approx(0.25)
    assert table["mpjpe_2d"] == pytest.approx(math.sqrt(2.0))
    assert table["ambiguity_ratio"] == 0.0
    assert set(table["per_joint_mpjpe"]) == set(DEFAULT.joints)
    assert table["per_joint_mpjpe"]["pelvis"] == 0.0
    assert table["num_samples"] == 4 and table["joint_set"] == "h36m18"


# ====================================================================== bad input

def test_bad_input_shape_mismatch():
    g = poses(2)
    with pytest.raises(ValueError, match="pred and gt shapes differ"):
        M.mpjpe(g[:1], g)


@pytest.mark.parametrize("bad_arg", ["pred", "gt"])
def test_bad_input_wrong_ndim(bad_arg):
    g = poses(2)
    bad = g[0]  # [J, 3]
    args = (bad, g) if bad_arg == "pred" else (g, bad)
    with pytest.raises(ValueError, match=rf"^{bad_arg}: expected shape \[N, J, 3\]"):
        M.mpjpe(*args)
    with pytest.raises(ValueError, match=rf"^{bad_arg}: expected shape"):
        M.p_mpjpe(*args)


def test_bad_input_last_dim():
    g = poses(2)
    with pytest.raises(ValueError, match=r"pred: expected shape \[N, J, 3\]"):
        M.mpjpe(g[..., :2], g)
    with pytest.raises(ValueError, match=r"pred2d: expected shape"):
        M.mpjpe_2d(g, g)


@pytest.mark.parametrize("bad_arg", ["pred", "gt"])
def test_bad_input_nan(bad_arg):
    g = poses(2)
    bad = g.copy()
    bad[1, 3, 0] = np.nan
    args = (bad, g) if bad_arg == "pred" else (g, bad)
    for fn in (M.mpjpe, M.n_mpjpe, M.p_mpjpe, M.pck, M.auc):
        with pytest.raises(ValueError, match=rf"^{bad_arg} contains NaN"):
            fn(*args)
    with pytest.raises(ValueError, match=r"pred contains NaN or inf .*\(1, 3, 0\)"):
        M.mpjpe(torch.from_numpy(bad), g)


def test_bad_input_joint_count():
    g17 = np.zeros((2, 17, 3))
    with pytest.raises(ValueError, match=r"pred: has J = 17 joints but joint set 'h36m18' has 18"):
        M.mpjpe(g17, g17)
    assert M.mpjpe(g17, g17, joint_set=H36M17) == 0.0
    with pytest.raises(ValueError, match="pred2d: has J = 17"):
        M.flip_flags_2d(np.zeros((1, 2, 17, 2)), np.zeros((1, 2, 17, 2)))


def test_bad_input_other_arguments():
    g = poses(2)
    with pytest.raises(ValueError, match="no samples"):
        M.mpjpe(g[:0], g[:0])
    with pytest.raises(ValueError, match="root"):
        M.mpjpe(g, g, root=J)
    with pytest.raises(ValueError, match="metric"):
        M.joint_errors(g, g, metric="mpjpe3")
    with pytest.raises(ValueError, match="joints: unknown subset"):
        M.pck(g, g, joints="coco")
    with pytest.raises(ValueError, match="joints: unknown joint name 'Tail'"):
        M.pck(g, g, joints=["Tail"])
    with pytest.raises(ValueError, match="joints: 99"):
        M.pck(g, g, joints=[99])
    with pytest.raises(ValueError, match="threshold"):
        M.pck(g, g, threshold=-1.0)
    with pytest.raises(ValueError, match="flip_flags: expected shape"):
        M.ambiguity_ratio(np.zeros(4, bool))
    with pytest.raises(ValueError, match="flip_flags: expected booleans"):
        M.ambiguity_ratio(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="flip_flags: needs at least one"):
        M.ambiguity_ratio(np.zeros((0, 4), bool))
    with pytest.raises(ValueError, match=r"pred2d: expected shape \[N, V, J, 2\]"):
        M.flip_flags_2d(np.zeros((1, J, 2)), np.zeros((1, J, 2)))
    with pytest.raises(ValueError, match="pred2d and gt2d"):
        M.metrics_table(g, g, pred2d=np.zeros((2, 1, J, 2)))
