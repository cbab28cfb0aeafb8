"""Multi-view consistent extremities (3D consensus) and the 3D hand-tip attraction."""
import itertools

import numpy as np
import torch

from maskpose import losses as L
from maskpose.data.extremities import consensus_extremities
from maskpose.geometry import normalize_matrix, project_P

from test_geometry import ring_cameras

SIZE = 1000  # the ring cameras' image size; candidates are normalised to it


def _normalised_projections(cams):
    Nm = normalize_matrix(SIZE)
    return np.stack([Nm @ c.K @ np.concatenate([c.R, c.t.reshape(3, 1)], 1) for c in cams])


def _scene(seed=0, V=4):
    rng = np.random.default_rng(seed)
    cams = ring_cameras(V, rng)
    P = _normalised_projections(cams)
    pts = np.array([[600.0, 0.0, 1500.0], [-500.0, 200.0, 1400.0], [0.0, 0.0, 1850.0], [200.0, 100.0, 50.0]])
    return P, pts, rng


def _candidates(P, pts, drop=(), extra=()):
    """Project ``pts`` into every view as candidates; ``drop`` = (view, point) pairs left out,
    ``extra`` = (view, (x, y)) spurious candidates (normalised)."""
    V, K = P.shape[0], 8
    cand = np.zeros((1, V, K, 2), np.float32)
    ok = np.zeros((1, V, K), bool)
    x = project_P(torch.from_numpy(pts)[None], torch.from_numpy(P)[:, None]).numpy()  # [V, 1, n, 2]
    for v in range(V):
        k = 0
        for i in range(len(pts)):
            if (v, i) in drop:
                continue
            cand[0, v, k], ok[0, v, k] = x[v, 0, i], True
            k += 1
        for ev, xy in extra:
            if ev == v:
                cand[0, v, k], ok[0, v, k] = xy, True
                k += 1
    return cand, ok


def test_consensus_recovers_points_seen_in_several_views_only():
    P, pts, _ = _scene()
    # point 0 is an extremity in only one view (hidden in the others); point 1 in three views
    drop = {(1, 0), (2, 0), (3, 0), (2, 1)}
    extra = [(0, (0.31, -0.42)), (3, (-0.2, 0.55))]  # one-view mask artefacts
    cand, ok = _candidates(P, pts, drop, extra)
    out, val, sup = consensus_extremities(cand, ok, P[None], SIZE, thr_px=2.0, min_views=2, max_points=6)
    found = out[0][val[0]]
    for i in (1, 2, 3):  # seen in >= 2 views: recovered to well under a millimetre
        assert np.linalg.norm(found - pts[i], axis=-1).min() < 0.5
    # the one-view point and the artefacts do not triangulate consistently
    assert np.linalg.norm(found - pts[0], axis=-1).min() > 50
    assert len(found) == 3
    sup_of = {i: sup[0][val[0]][np.linalg.norm(found - pts[i], axis=-1).argmin()] for i in (1, 2, 3)}
    assert sup_of == {1: 3, 2: 4, 3: 4}
    # sorted by support
    assert list(sup[0][val[0]]) == sorted(sup[0][val[0]], reverse=True)


def test_consensus_matches_a_slow_reference_on_noisy_candidates():
    """Compare with an obvious loop over view pairs / candidate pairs (same support counts)."""
    P, pts, rng = _scene(seed=3)
    cand, ok = _candidates(P, pts, drop={(0, 1)})
    cand = cand + ok[..., None] * rng.normal(0, 0.4 / (SIZE / 2), cand.shape).astype(np.float32)  # 0.4 px noise
    out, val, sup = consensus_extremities(cand, ok, P[None], SIZE, thr_px=2.0, min_views=3, max_points=6)
    # reference: the best support of any hypothesis near each true point
    import cv2

    best = {}
    V = P.shape[0]
    for (a, b) in itertools.combinations(range(V), 2):
        for ka, kb in itertools.product(range(8), range(8)):
            if not (ok[0, a, ka] and ok[0, b, kb]):
                continue
            X = cv2.triangulatePoints(P[a], P[b], cand[0, a, ka].astype(np.float64), cand[0, b, kb].astype(np.float64))
            X = X[:3, 0] / X[3, 0]
            s = 0
            for v in range(V):
                x = P[v] @ np.append(X, 1.0)
                x = x[:2] / x[2]
                d = np.linalg.norm(cand[0, v][ok[0, v]] - x, axis=-1).min() * (SIZE - 1) / 2
                s += d < 2.0
            i = int(np.linalg.norm(pts - X, axis=-1).argmin())
            if np.linalg.norm(pts[i] - X) < 30:
                best[i] = max(best.get(i, 0), s)
    found = out[0][val[0]]
    for i, s in best.items():
        j = np.linalg.norm(found - pts[i], axis=-1).argmin()
        assert np.linalg.norm(found[j] - pts[i]) < 10  # noise 0.4 px at ~4.5 m
        assert sup[0][val[0]][j] == s


def test_consensus_handles_empty_and_single_view_input():
    P, pts, _ = _scene()
    cand, ok = _candidates(P, pts)
    out, val, _ = consensus_extremities(cand, np.zeros_like(ok), P[None], SIZE)
    assert not val.any() and np.isfinite(out).all()
    out, val, _ = consensus_extremities(cand[:, :1], ok[:, :1], P[None, :1], SIZE)
    assert not val.any()


# ---------------------------------------------------------------- the 3D attraction loss
def _loss_inputs(dtype=torch.float64, seed=0):
    P, pts, rng = _scene(seed)
    g = torch.Generator().manual_seed(seed)
    B = 2
    Pt = torch.from_numpy(P).to(dtype)[None].expand(B, -1, -1, -1).contiguous()
    points = torch.tensor([[600.0, 0.0, 1500.0], [-500.0, 200.0, 1400.0], [0.0, 0.0, 1850.0], [150.0, 50.0, 60.0]],
                          dtype=dtype)[None].repeat(B, 1, 1)
    points[1] += 30.0
    pv = torch.tensor([[True, True, True, True], [True, False, True, True]])
    shoulders = torch.tensor([[[200.0, 0.0, 1450.0], [-200.0, 0.0, 1450.0]]], dtype=dtype).repeat(B, 1, 1)
    tips = (shoulders + torch.randn(B, 2, 3, generator=g, dtype=dtype) * 150).requires_grad_(True)
    reach = torch.full((B, 2), 800.0, dtype=dtype)
    exclude = torch.tensor([[[150.0, 0.0, 80.0], [-150.0, 0.0, 80.0], [0.0, 0.0, 1800.0]]], dtype=dtype).repeat(B, 1, 1)
    vv = torch.tensor([[True, True, True, True], [True, False, True, True]])
    return tips, shoulders, reach, points, pv, exclude, Pt, vv


def _reference_loss(tips, shoulders, reach, points, pv, exclude, P, vv, size, sigma, excl_mm):
    total, count = 0.0, 0
    for b in range(tips.shape[0]):
        allowed = [[bool(pv[b, m]) and all(float((points[b, m] - e).norm()) > excl_mm for e in exclude[b])
                    and float((points[b, m] - shoulders[b, s]).norm()) <= float(reach[b, s])
                    for m in range(points.shape[1])] for s in range(2)]
        best, choice = float("inf"), None
        for m0 in range(points.shape[1]):
            for m1 in range(points.shape[1]):
                if m0 != m1 and allowed[0][m0] and allowed[1][m1]:
                    c = float((tips[b, 0] - points[b, m0]).detach().norm() + (tips[b, 1] - points[b, m1]).detach().norm())
                    if c < best:
                        best, choice = c, {0: m0, 1: m1}
        if choice is None:  # at most one tip gets its nearest allowed point
            opts = [(float((tips[b, s] - points[b, m]).norm()), s, m) for s in range(2) for m in range(points.shape[1])
                    if allowed[s][m]]
            choice = {} if not opts else {min(opts)[1]: min(opts)[2]}
        for s, m in choice.items():
            for v in range(P.shape[1]):
                if not vv[b, v]:
                    continue
                t2 = project_P(tips[b, s][None], P[b, v])[0]
                g2 = project_P(points[b, m][None], P[b, v])[0]
                d2 = (((t2 - g2) * (size - 1) / 2) ** 2).sum()
                total = total + torch.log1p(d2 / sigma ** 2)
                count += 1
    return total / max(count, 1)


def test_extremity_loss_3d_matches_reference_and_gradcheck():
    args = _loss_inputs()
    fast = L.extremity_loss_3d(*args, size=64, sigma_px=10.0, exclude_mm=250.0)
    ref = _reference_loss(*args, size=64, sigma=10.0, excl_mm=250.0)
    assert torch.allclose(fast, ref, atol=1e-10), (fast, ref)
    g_fast, = torch.autograd.grad(fast, args[0])
    g_ref, = torch.autograd.grad(ref, args[0])
    assert torch.allclose(g_fast, g_ref, atol=1e-10)
    tips, rest = args[0], args[1:]
    assert torch.autograd.gradcheck(lambda t: L.extremity_loss_3d(t, *rest, size=64, sigma_px=10.0), (tips,))


def test_extremity_loss_3d_gating():
    tips, shoulders, reach, points, pv, exclude, P, vv = _loss_inputs()
    # the point at the head is excluded, the foot point is out of reach: only points 0 and 1 remain
    with torch.no_grad():
        tips.copy_(points[:, [1, 0]] + 5.0)  # near, but each tip nearer the "other" point: distinct pair
    loss = L.extremity_loss_3d(tips, shoulders, reach, points, pv, exclude, P, vv, 64)
    loss.backward()
    assert loss > 0 and torch.isfinite(tips.grad).all()
    # at the targets themselves the loss is zero
    t0 = points[:1, [0, 1]].clone().requires_grad_(True)
    z = L.extremity_loss_3d(t0, shoulders[:1], reach[:1], points[:1], pv[:1], exclude[:1], P[:1], vv[:1], 64)
    assert float(z) < 1e-12
    # nothing reachable: zero with a graph
    far = L.extremity_loss_3d(tips, shoulders, torch.full_like(reach, 10.0), points, pv, exclude, P, vv, 64)
    assert float(far) == 0.0 and far.requires_grad


def test_consensus_points_on_synthetic_bodies_are_hands_head_and_feet(tmp_path):
    """On rendered synthetic bodies (4 views, 64 px) the consensus points are body ends: most lie
    near a hand tip, the head top or an ankle/toe, and most visible hands get one (labels are read
    only here, to check)."""
    from maskpose.data.synthetic import generate_dataset
    from maskpose.skeleton import H36M18 as js
    from maskpose.train import TensorBatches

    root = tmp_path / "s"
    generate_dataset(root, 16, num_views=4, size=64, seed=11, split="test", workers=1)
    tb = TensorBatches(root, "mask")
    gt = torch.from_numpy(np.load(root / "gt" / "joints3d.npy")).float()
    pts, pv = tb.points, tb.points_valid
    assert pv.any(1).all()
    ends = torch.cat([L.hand_tips(gt, js, 0.5), gt[:, [js.index("head"), js.index("LAnkle"), js.index("RAnkle")]]], 1)
    near_end = (pts[:, :, None] - ends[:, None]).norm(dim=-1).min(-1).values < 250
    precision = float(near_end[pv].float().mean())
    tips = L.hand_tips(gt, js, 0.5)
    d = (tips[:, :, None] - pts[:, None]).norm(dim=-1)
    d = torch.where(pv[:, None], d, torch.full_like(d, 1e9))
    recall = float((d.min(-1).values < 100).float().mean())
    assert precision > 0.7 and recall > 0.35, (precision, recall)


def test_consensus_rejects_mismatched_shapes():
    import pytest

    P, pts, _ = _scene()
    cand, ok = _candidates(P, pts)
    with pytest.raises(ValueError, match="projections"):
        consensus_extremities(cand, ok, P[None, :3], SIZE)


def test_rest_arm_loss_pulls_free_wrists_down_and_ignores_assigned_hands():
    from maskpose.skeleton import H36M18 as js

    from test_multiview import standing_pose

    X = torch.stack([standing_pose(0.4, arms_out=0.0), standing_pose(1.2, arms_out=1.2)]).double()  # hanging / raised
    free = torch.tensor([[True, True], [True, True]])
    per = [float(L.rest_arm_loss(X[i:i + 1], js, free[i:i + 1])) for i in range(2)]
    assert per[0] < 0.2 < 1.0 < per[1]  # a hanging arm is (nearly) at rest, a raised one is not
    # assigned hands are left alone
    assert float(L.rest_arm_loss(X, js, torch.zeros(2, 2, dtype=torch.bool))) == 0.0
    # the gradient (target detached by design) is the closed-form Cauchy gradient at the wrists only
    from maskpose import multiview as mv

    Xr = X[1:].clone().requires_grad_(True)
    L.rest_arm_loss(Xr, js, free[1:]).backward()
    _, _, up = mv.body_frame(X[1:], js)
    for s in "LR":
        sh, el, wr = (X[1, js.index(s + n)] for n in ("Shoulder", "Elbow", "Wrist"))
        r = sh - ((el - sh).norm() + (wr - el).norm()) * up[0]
        e = wr - r
        expected = 2 * e / (150.0 ** 2 + (e ** 2).sum()) / 2  # mean over the two free hands
        torch.testing.assert_close(Xr.grad[0, js.index(s + "Wrist")], expected, rtol=1e-9, atol=1e-12)
        assert float((Xr.grad[0, js.index(s + "Wrist")] * up[0]).sum()) > 0  # descent moves the wrist down
    others = [k for k in range(js.num_joints) if k not in (js.index("LWrist"), js.index("RWrist"))]
    assert float(Xr.grad[0, others].abs().max()) == 0.0


def test_extremity_loss_3d_reports_its_assignment():
    args = _loss_inputs()
    loss, use = L.extremity_loss_3d(*args, size=64, return_assignment=True)
    assert torch.equal(loss, L.extremity_loss_3d(*args, size=64))
    assert use.shape == (2, 2) and use.dtype == torch.bool


def test_side_gate_gives_a_one_sided_point_to_the_hand_on_its_side():
    """One hand raised on the body's left, the other against the body: the only extremity point lies
    650 mm to the left. The nearer tip (the right hand, folded across) takes it without the gate —
    rewarding both hands for moving towards it; with ``side_mm`` only the left hand may."""
    from maskpose.skeleton import H36M18 as js

    X = torch.zeros(1, js.num_joints, 3, dtype=torch.float64)
    j = js.index
    X[0, j("LShoulder")] = torch.tensor([0.0, 180.0, 1400.0], dtype=torch.float64)
    X[0, j("RShoulder")] = torch.tensor([0.0, -180.0, 1400.0], dtype=torch.float64)
    X[0, j("thorax")] = torch.tensor([0.0, 0.0, 1400.0], dtype=torch.float64)
    points = torch.tensor([[[0.0, 650.0, 1700.0]]], dtype=torch.float64)
    pv = torch.ones(1, 1, dtype=torch.bool)
    lat = L.point_sides(points, X, js)
    assert torch.allclose(lat, torch.tensor([[650.0]], dtype=torch.float64))
    tips = torch.tensor([[[0.0, 150.0, 800.0], [0.0, 300.0, 1500.0]]], dtype=torch.float64)  # L low, R folded
    shoulders = X[:, [j("LShoulder"), j("RShoulder")]]
    reach = torch.full((1, 2), 1000.0, dtype=torch.float64)
    exclude = torch.full((1, 1, 3), 1e5, dtype=torch.float64)
    _, _, _, _, _, _, P, vv = _loss_inputs()
    args = (tips, shoulders, reach, points, pv, exclude, P[:1], vv[:1], 64)
    _, use = L.extremity_loss_3d(*args, return_assignment=True)
    assert use.tolist() == [[False, True]]  # nearest tip: the right hand
    _, use = L.extremity_loss_3d(*args, return_assignment=True, lateral=lat, side_mm=100.0)
    assert use.tolist() == [[True, False]]  # sided: the left hand
    # a point near the midline (within side_mm) stays open to both hands
    mid = torch.tensor([[[0.0, 60.0, 1900.0]]], dtype=torch.float64)
    _, use = L.extremity_loss_3d(tips, shoulders, reach, mid, pv, exclude, P[:1], vv[:1], 64, return_assignment=True,
                                 lateral=L.point_sides(mid, X, js), side_mm=100.0)
    assert use.tolist() == [[False, True]]


def _points_on_body_reference(points, X, js, margin, girth=None):
    """Obvious per-point, per-segment loop (numpy) of :func:`losses.points_on_body`."""
    from maskpose.skeleton import segment_endpoints

    segs = [s for s in js.select_segments() if s.group != "arm" and not s.name.startswith("fill-")]
    wa, wb = js.segment_matrices(tuple(segs))
    a, b = segment_endpoints(X, wa, wb)
    fa, fb = L.foot_segments(X, js)
    A = torch.cat([a, fa], 1).numpy()
    Bn = torch.cat([b, fb], 1).numpy()
    r = [s.radius_mm for s in segs] + [L.FOOT_RADIUS_MM] * 2
    out = np.zeros(points.shape[:2], dtype=bool)
    for n in range(points.shape[0]):
        g = 1.0 if girth is None else float(girth[n])
        for m in range(points.shape[1]):
            p = points[n, m].numpy()
            for e in range(len(r)):
                ab = Bn[n, e] - A[n, e]
                t = 0.0 if ab @ ab == 0 else min(1.0, max(0.0, float((p - A[n, e]) @ ab / (ab @ ab))))
                if np.linalg.norm(p - (A[n, e] + t * ab)) <= r[e] * g + margin:
                    out[n, m] = True
    return out


def test_points_on_body_matches_a_slow_reference():
    from maskpose.skeleton import H36M18 as js
    from test_multiview import standing_pose

    X = torch.stack([standing_pose(0.3), standing_pose(1.7)]).double()
    g = torch.Generator().manual_seed(0)
    points = X[:, :1] + torch.randn(2, 300, 3, generator=g, dtype=torch.float64) * torch.tensor([200.0, 200.0, 500.0]).double()
    girth = torch.tensor([0.8, 1.25], dtype=torch.float64)
    for margin, gi in ((0.0, None), (60.0, None), (60.0, girth)):
        got = L.points_on_body(points, X, js, margin, gi).numpy()
        ref = _points_on_body_reference(points, X, js, margin, gi)
        assert (got == ref).all()
        assert 0.05 < got.mean() < 0.95  # the cloud straddles the body


def test_body_exclusion_keeps_a_hand_near_the_head_and_drops_the_knee_and_crown():
    """A hand resting on top of the head: its extremity point lies 180 mm above the head joint, so the
    250 mm sphere around the head drops it and the hand has no target. Excluding by the predicted
    non-arm body instead keeps it, and still drops points on a knee and on the crown."""
    from maskpose.skeleton import H36M18 as js
    from test_multiview import standing_pose

    X = standing_pose(0.0)[None].double()
    j = js.index
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    head, knee = X[0, j("head")], X[0, j("LKnee")]
    lateral = torch.nn.functional.normalize(X[0, j("LHip")] - X[0, j("RHip")], dim=0)
    hand_pt = head + 180.0 * up
    points = torch.stack([hand_pt, knee + 90.0 * lateral, head + 20.0 * up])[None]  # hand, knee bump, crown
    on = L.points_on_body(points, X, js, 60.0)
    assert on.tolist() == [[False, True, True]]
    pv = torch.ones(1, 3, dtype=torch.bool)
    tips = torch.stack([hand_pt - 60.0 * up, X[0, j("RWrist")]])[None]  # L hand on the head, R hanging
    shoulders = X[:, [j("LShoulder"), j("RShoulder")]]
    reach = L.arm_reach(X, js)
    _, _, _, _, _, _, P, vv = _loss_inputs()
    excl = L.extremity_exclusions(X, js)
    _, use = L.extremity_loss_3d(tips, shoulders, reach, points, pv, excl, P[:1], vv[:1], 64, return_assignment=True)
    assert not use[0, 0]  # the head sphere (250 mm) drops the hand's own point
    _, use = L.extremity_loss_3d(tips, shoulders, reach, points, pv, excl, P[:1], vv[:1], 64, 10.0, 0.0,
                                 return_assignment=True, on_body=on)
    assert use[0, 0] and not use[0, 1]  # the hand takes its point; knee and crown are off for the hanging hand


def test_extremity_exclusions_with_ends_adds_feet_and_crown():
    from maskpose.skeleton import H36M18 as js
    from test_multiview import standing_pose

    X = standing_pose(0.4)[None].double()
    e = L.extremity_exclusions(X, js)
    assert e.shape == (1, 3, 3)
    E = L.extremity_exclusions(X, js, ends=True)
    assert E.shape == (1, 8, 3)
    fa, fb = L.foot_segments(X, js)
    torch.testing.assert_close(E[:, 3:5], fa)
    torch.testing.assert_close(E[:, 5:7], fb)
    # the crown lies above the head joint's neck-side, on the head sphere
    assert (E[0, 7] - X[0, js.index("neck")]).norm() > (X[0, js.index("head")] - X[0, js.index("neck")]).norm() - 1e-6
