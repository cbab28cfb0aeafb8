"""Segment-mask renderer: fast path against the dense reference, gradcheck, hand-computed cases,
skeleton and joint masks, and every documented input error."""
import math

import pytest
import torch

from maskpose import render as R
from maskpose import skeleton as sk

PROFILES = R.PROFILES
MERGES = R.MERGES
COMBOS = [(p, m) for p in PROFILES for m in MERGES]
F64 = torch.float64


def _coords(size):
    return R.pixel_coords(size, dtype=F64)


def _random_segments(profile, bsz=2, nseg=8, seed=0, dtype=F64):
    """Random segments incl. a degenerate one (a == b), a very short one, one partly outside the
    image and one entirely outside it."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(bsz, nseg, 2, generator=g, dtype=F64) * 1.6 - 0.8
    b = a + torch.randn(bsz, nseg, 2, generator=g, dtype=F64) * 0.4
    b[:, 0] = a[:, 0]  # a == b: a blob
    b[:, 1] = a[:, 1] + 1e-3  # very short segment (the authors' 1e-8 in t matters here)
    a[:, 2], b[:, 2] = torch.tensor([0.7, -0.2]), torch.tensor([1.6, 0.3])  # partly outside
    a[:, 3], b[:, 3] = torch.tensor([2.5, 2.5]), torch.tensor([3.0, 2.0])  # entirely outside
    if profile == "gaussian":
        w = torch.rand(bsz, nseg, generator=g, dtype=F64) * 0.004 + 0.001
    else:
        w = torch.rand(bsz, nseg, generator=g, dtype=F64) * 0.12 + 0.03
    return a.to(dtype), b.to(dtype), w.to(dtype)


def _render_with_grads(fn, a, b, w, size, weight, **kw):
    a, b, w = (x.clone().requires_grad_() for x in (a, b, w))
    out = fn(a, b, w, size, **kw)
    (out * weight).sum().backward()
    return out.detach(), a.grad, b.grad, w.grad


def _assert_match(fast, dense, tol=1e-5):
    """Values to ``tol`` absolute; gradients to ``tol`` relative to the largest gradient entry."""
    names = ("values", "grad a", "grad b", "grad width")
    for name, x, y in zip(names, fast, dense):
        scale = 1.0 if name == "values" else max(float(y.abs().max()), 1e-12)
        err = float((x.to(F64) - y.to(F64)).abs().max()) / scale
        assert err <= tol, f"{name}: fast differs from dense by {err:.2e} (relative to {scale:.3g})"


# ---------------------------------------------------------------------------- fast == dense
@pytest.mark.parametrize("profile,merge", COMBOS)
def test_fast_matches_dense(profile, merge):
    size = 40
    a, b, w = _random_segments(profile)
    weight = torch.randn(a.shape[0], 1, size, size, generator=torch.Generator().manual_seed(1), dtype=F64)
    dense = _render_with_grads(R.render_segments_dense, a, b, w, size, weight, profile=profile, merge=merge)
    fast = _render_with_grads(R.render_segments, a, b, w, size, weight, profile=profile, merge=merge)
    _assert_match(fast, dense)
    # the segment entirely outside the image draws nothing and gets no gradient
    assert float(fast[1][:, 3].abs().max()) == 0.0 and float(fast[3][:, 3].abs().max()) == 0.0
    # a tile size that does not divide S (padded canvas) and many small chunks give the same result
    odd = _render_with_grads(R.render_segments, a, b, w, size, weight, profile=profile, merge=merge, tile=7, chunk=1000)
    _assert_match(odd, dense)


@pytest.mark.parametrize("profile,merge", [("gaussian", "max"), ("capsule", "soft_union"), ("capsule", "sum")])
def test_fast_matches_dense_float32(profile, merge):
    size = 48
    a, b, w = _random_segments(profile, seed=3, dtype=torch.float32)
    weight = torch.randn(a.shape[0], 1, size, size, generator=torch.Generator().manual_seed(2))
    dense = _render_with_grads(R.render_segments_dense, a, b, w, size, weight, profile=profile, merge=merge)
    fast = _render_with_grads(R.render_segments, a, b, w, size, weight, profile=profile, merge=merge)
    assert fast[0].dtype == torch.float32 and fast[1].dtype == torch.float32
    _assert_match(fast, dense)


def test_width_broadcasts_and_its_gradient_reduces():
    a, b, w = _random_segments("gaussian", bsz=3, nseg=4)
    wv = w[0].clone()
    full = R.render_segments(a, b, wv.expand(3, 4), 24)
    torch.testing.assert_close(R.render_segments(a, b, wv, 24), full)
    torch.testing.assert_close(R.render_segments(a, b, 0.003, 24), R.render_segments(a, b, torch.full((3, 4), 0.003, dtype=F64), 24))
    wr = wv.clone().requires_grad_()
    R.render_segments(a, b, wr, 24).sum().backward()
    assert wr.grad.shape == (4,)
    wd = wv.clone().requires_grad_()
    R.render_segments_dense(a, b, wd, 24).sum().backward()
    torch.testing.assert_close(wr.grad, wd.grad, rtol=1e-5, atol=1e-5 * float(wd.grad.abs().max()))


@pytest.mark.parametrize("profile,merge", COMBOS)
def test_gradcheck_fast(profile, merge):
    g = torch.Generator().manual_seed(5)
    a = (torch.rand(2, 3, 2, generator=g, dtype=F64) * 1.4 - 0.7)
    b = a + torch.randn(2, 3, 2, generator=g, dtype=F64) * 0.5
    if profile == "gaussian":
        w = torch.rand(2, 3, generator=g, dtype=F64) * 0.02 + 0.02
    else:
        w = torch.rand(2, 3, generator=g, dtype=F64) * 0.2 + 0.15
    a, b, w = (x.requires_grad_() for x in (a, b, w))

    def fn(a, b, w):
        return R.render_segments(a, b, w, 12, profile=profile, merge=merge, tau=0.7, tile=5)

    assert torch.autograd.gradcheck(fn, (a, b, w), eps=1e-6, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------- hand-computed cases
def test_gaussian_horizontal_segment_by_hand():
    size, w = 21, 0.01
    xs = _coords(size)  # pixel 10 -> 0, spacing 0.1
    a = torch.tensor([[[-0.5, 0.0]]], dtype=F64)
    b = torch.tensor([[[0.5, 0.0]]], dtype=F64)
    for fn in (R.render_segments, R.render_segments_dense):
        m = fn(a, b, w, size)[0, 0]
        assert m.shape == (size, size)
        # on the segment (row 10, columns 5..15): exactly 1
        torch.testing.assert_close(m[10, 5:16], torch.ones(11, dtype=F64))
        # two rows below (y = 0.2): exp(-0.04 / w)
        torch.testing.assert_close(m[12, 5:16], torch.full((11,), math.exp(-0.04 / w), dtype=F64))
        # beyond the end, on the axis (x = 0.8): distance 0.3 to the end point
        torch.testing.assert_close(m[10, 18], torch.tensor(math.exp(-0.09 / w), dtype=F64))
        # off the end diagonally: distance to the end point (0.5, 0)
        d2 = float((xs[17] - 0.5) ** 2 + xs[13] ** 2)
        torch.testing.assert_close(m[13, 17], torch.tensor(math.exp(-d2 / w), dtype=F64))
        # sum of a segment and its duplicate is twice the segment; max is the segment
        a2, b2 = a.repeat(1, 2, 1), b.repeat(1, 2, 1)
        torch.testing.assert_close(fn(a2, b2, w, size, merge="sum")[0, 0], 2 * m, atol=2e-7, rtol=0)
        torch.testing.assert_close(fn(a2, b2, w, size, merge="max")[0, 0], m)
        torch.testing.assert_close(fn(a2, b2, w, size, merge="soft_union")[0, 0], 1 - (1 - m) ** 2, atol=2e-7, rtol=0)


def test_capsule_by_hand():
    size, r, tau = 21, 0.2, 0.5  # spacing 0.1 -> tau_n = 0.05
    a = torch.tensor([[[-0.5, 0.0]]], dtype=F64)
    b = torch.tensor([[[0.5, 0.0]]], dtype=F64)
    for fn in (R.render_segments, R.render_segments_dense):
        m = fn(a, b, r, size, profile="capsule", tau=tau)[0, 0]
        # 0.5 exactly at distance = radius (two rows away), and on the round cap 0.2 beyond the end
        torch.testing.assert_close(m[12, 5:16], torch.full((11,), 0.5, dtype=F64))
        torch.testing.assert_close(m[10, 17], torch.tensor(0.5, dtype=F64))
        # on the axis: sigmoid(r / tau_n) = sigmoid(4)
        torch.testing.assert_close(m[10, 10], torch.tensor(1 / (1 + math.exp(-4.0)), dtype=F64))
        # one row further than the radius: sigmoid(-0.1 / 0.05)
        torch.testing.assert_close(m[13, 10], torch.tensor(1 / (1 + math.exp(2.0)), dtype=F64))


def test_capsule_tau_is_in_pixels():
    # tau_n = tau * 2 / (S - 1): the same physical edge in pixels at two sizes
    a = torch.tensor([[[0.0, 0.0]]], dtype=F64)
    for size in (21, 41):
        m = R.render_segments(a, a, 0.5, size, profile="capsule", tau=1.0)[0, 0]
        c = (size - 1) // 2
        px_radius = 0.5 * (size - 1) / 2
        # a pixel 1 px outside the radius: sigmoid(-1 px / 1 px)
        col = c + int(px_radius) + 1
        d_px = (col - c) - px_radius
        torch.testing.assert_close(m[c, col], torch.tensor(1 / (1 + math.exp(d_px)), dtype=F64))


def test_degenerate_segment_is_a_blob():
    size, w = 17, 0.02
    p = torch.tensor([[[0.25, -0.5]]], dtype=F64)
    xs = _coords(size)
    expect = torch.exp(-((xs.view(1, -1) - 0.25) ** 2 + (xs.view(-1, 1) + 0.5) ** 2) / w)
    for fn in (R.render_segments, R.render_segments_dense):
        torch.testing.assert_close(fn(p, p.clone(), w, size)[0, 0], expect, atol=1e-7, rtol=0)


def test_max_gives_the_gradient_to_the_first_of_tied_segments():
    a, b, w = _random_segments("gaussian", bsz=1, nseg=5, seed=7)
    a2, b2, w2 = (torch.cat([x, x], dim=1) for x in (a, b, w))  # every segment twice
    weight = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(3), dtype=F64)
    single = _render_with_grads(R.render_segments, a, b, w, 32, weight)
    double = _render_with_grads(R.render_segments, a2, b2, w2, 32, weight)
    torch.testing.assert_close(double[0], single[0])
    torch.testing.assert_close(double[1][:, :5], single[1])
    assert float(double[1][:, 5:].abs().max()) == 0.0
    torch.testing.assert_close(double[3][:, :5], single[3])


def test_soft_union_gradients_stay_finite_when_saturated():
    # capsule deep inside two overlapping capsules (1 - B underflows in float32), and a Gaussian
    # whose segment passes exactly through pixel centres (B == 1)
    a = torch.tensor([[[-0.5, 0.0], [0.0, -0.5]]])
    b = torch.tensor([[[0.5, 0.0], [0.0, 0.5]]])
    for profile, w, tau in (("capsule", 0.4, 0.05), ("gaussian", 0.003, 0.5)):
        ar, br = a.clone().requires_grad_(), b.clone().requires_grad_()
        wr = torch.full((1, 2), w).requires_grad_()
        out = R.render_segments(ar, br, wr, 33, profile=profile, merge="soft_union", tau=tau)
        ((out - 1.0) ** 2).sum().backward()
        for t in (out, ar.grad, br.grad, wr.grad):
            assert torch.isfinite(t).all()


def test_no_segments_and_no_grad():
    a = torch.zeros(2, 0, 2, requires_grad=True)
    out = R.render_segments(a, a, torch.zeros(2, 0), 8)
    assert out.shape == (2, 1, 8, 8) and float(out.detach().abs().max()) == 0.0
    out.sum().backward()
    assert a.grad.shape == (2, 0, 2)
    a, b, w = (x.requires_grad_() for x in _random_segments("capsule"))
    with torch.no_grad():
        out = R.render_segments(a, b, w, 20, profile="capsule")
        assert out.grad_fn is None
        torch.testing.assert_close(out, R.render_segments_dense(a, b, w, 20, profile="capsule"), atol=1e-6, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("profile,merge", COMBOS)
def test_cuda_matches_cpu(profile, merge):
    a, b, w = _random_segments(profile, dtype=torch.float32)
    weight = torch.randn(a.shape[0], 1, 40, 40)
    cpu = _render_with_grads(R.render_segments, a, b, w, 40, weight, profile=profile, merge=merge)
    gpu = _render_with_grads(R.render_segments, a.cuda(), b.cuda(), w.cuda(), 40, weight.cuda(), profile=profile, merge=merge)
    _assert_match([t.cpu() for t in gpu], cpu)


# ---------------------------------------------------------------------------- skeleton / joint masks
def _standing_pose():
    """H36M-18 joints of a person with arms stretched out sideways, in normalised coordinates."""
    js = sk.H36M18
    pts = {
        "pelvis": (0.0, 0.1), "RHip": (-0.15, 0.1), "RKnee": (-0.15, 0.45), "RAnkle": (-0.15, 0.8),
        "LHip": (0.15, 0.1), "LKnee": (0.15, 0.45), "LAnkle": (0.15, 0.8), "spine": (0.0, -0.15),
        "neck": (0.0, -0.5), "nose": (0.0, -0.6), "head": (0.0, -0.75), "LShoulder": (0.2, -0.45),
        "LElbow": (0.5, -0.45), "LWrist": (0.8, -0.45), "RShoulder": (-0.2, -0.45), "RElbow": (-0.5, -0.45),
        "RWrist": (-0.8, -0.45), "thorax": (0.0, -0.45),
    }
    return torch.tensor([[pts[n] for n in js.joints]], dtype=F64)


def test_skeleton_mask_groups_and_widths():
    size = 41  # spacing 0.05: the pose's joints sit on pixel centres
    J = _standing_pose()
    full = R.skeleton_mask(J, size)
    stage1 = R.skeleton_mask(J, size, groups=("torso", "leg", "head"))
    torch.testing.assert_close(full, R.skeleton_mask_dense(J, size), atol=1e-6, rtol=0)
    torch.testing.assert_close(stage1, R.skeleton_mask_dense(J, size, groups=("torso", "leg", "head")), atol=1e-6, rtol=0)

    def px(x, y):  # normalised -> (row, col)
        return round((y + 1) * (size - 1) / 2), round((x + 1) * (size - 1) / 2)

    for x in (0.65, -0.65, 0.8):  # forearms and wrists: drawn in full, empty without the arm group
        r, c = px(x, -0.45)
        assert float(full[0, 0, r, c]) == pytest.approx(1.0)
        assert float(stage1[0, 0, r, c]) < 1e-6
    for x, y in ((0.0, 0.0), (-0.15, 0.6), (0.0, -0.7)):  # torso, leg and head still drawn
        r, c = px(x, y)
        assert float(stage1[0, 0, r, c]) == pytest.approx(1.0)
    # arms are thinner: value 3 px above the forearm = exp(-d^2 / (w / 2))
    r, c = px(0.65, -0.45)
    d2 = (3 * 0.05) ** 2
    assert float(full[0, 0, r - 3, c]) == pytest.approx(math.exp(-d2 / 0.0015), rel=1e-6)
    # ... while the shin has the full width
    r, c = px(-0.15, 0.6)
    assert float(full[0, 0, r, c - 3]) == pytest.approx(math.exp(-d2 / 0.003), rel=1e-6)
    # fill links (the authors' 8 extra segments) cover the side of the torso
    r, c = px(0.1, -0.3)  # midpoint of the LShoulder-spine fill link
    no_fill = R.skeleton_mask(J, size, fill=False)
    assert float(full[0, 0, r, c]) > 0.9 > float(no_fill[0, 0, r, c])
    # a single group name works as well as a tuple; no bones at all -> empty mask
    torch.testing.assert_close(R.skeleton_mask(J, size, groups="arm", fill=False),
                               R.skeleton_mask(J, size, groups=("arm",), fill=False))
    assert float(R.skeleton_mask(J, size, groups=()).abs().max()) == 0.0


def test_skeleton_mask_gradients_match_dense():
    J = _standing_pose() + 0.013 * torch.randn(1, 18, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    J = J.repeat(2, 1, 1)
    target = (torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(1), dtype=F64) > 0.5).to(F64)
    grads = []
    for fn in (R.skeleton_mask, R.skeleton_mask_dense):
        j = J.clone().requires_grad_()
        ((fn(j, 48) - target) ** 2).mean().backward()
        grads.append(j.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-5 * float(grads[1].abs().max()))


def test_gaussian_joint_mask_peaks_at_joints():
    size = 33  # spacing 1/16
    J = torch.tensor([[[-0.5, -0.5], [0.25, 0.0], [0.5, 0.75]]], dtype=F64)
    m = R.gaussian_joint_mask(J, size)
    torch.testing.assert_close(m, R.gaussian_joint_mask_dense(J, size))
    for x, y in J[0].tolist():
        r, c = round((y + 1) * 16), round((x + 1) * 16)
        assert float(m[0, 0, r, c]) == pytest.approx(1.0)
        patch = m[0, 0, r - 2:r + 3, c - 2:c + 3]
        assert float(patch.max()) == float(m[0, 0, r, c])  # a local maximum
        assert float(m[0, 0, r, c + 1]) == pytest.approx(math.exp(-(1 / 16) ** 2 / 0.003))
    # summing blobs (paper Eq. 3 variant) and gradients w.r.t. the joints
    j = J.clone().requires_grad_()
    R.gaussian_joint_mask(j, size, merge="sum").sum().backward()
    jd = J.clone().requires_grad_()
    R.gaussian_joint_mask_dense(jd, size, merge="sum").sum().backward()
    torch.testing.assert_close(j.grad, jd.grad, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- bad input
def _good():
    a = torch.zeros(2, 3, 2)
    return a, a + 0.1, torch.full((2, 3), 0.003)


@pytest.mark.parametrize("fn", [R.render_segments, R.render_segments_dense])
@pytest.mark.parametrize("change,arg", [
    (lambda a, b, w: (a[0], b, w, {}), "a"),  # [E, 2]: missing batch dim
    (lambda a, b, w: (torch.zeros(2, 3, 3), b, w, {}), "a"),  # last dim 3
    (lambda a, b, w: ([[0.0, 0.0]], b, w, {}), "a"),  # not a tensor
    (lambda a, b, w: (a, torch.zeros(2, 4, 2), w, {}), "b"),  # E differs
    (lambda a, b, w: (a, torch.zeros(3, 3, 2), w, {}), "b"),  # B differs
    (lambda a, b, w: (a, b.double(), w, {}), "b"),  # dtype differs
    (lambda a, b, w: (a, b, torch.full((2, 4), 0.003), {}), "width"),  # E differs
    (lambda a, b, w: (a, b, torch.full((3, 3), 0.003), {}), "width"),  # B differs
    (lambda a, b, w: (a, b, torch.full((1, 2, 3), 0.003), {}), "width"),  # too many dims
    (lambda a, b, w: (a.clone().fill_(float("nan")), b, w, {}), "a"),
    (lambda a, b, w: (a, b.clone().fill_(float("inf")), w, {}), "b"),
    (lambda a, b, w: (a, b, w.clone().fill_(float("nan")), {}), "width"),
    (lambda a, b, w: (a, b, w * 0, {}), "width"),
    (lambda a, b, w: (a, b, -w, {}), "width"),
    (lambda a, b, w: (a, b, w, {"size": 1}), "size"),
    (lambda a, b, w: (a, b, w, {"size": 16.0}), "size"),
    (lambda a, b, w: (a, b, w, {"profile": "box"}), "profile"),
    (lambda a, b, w: (a, b, w, {"merge": "mean"}), "merge"),
    (lambda a, b, w: (a, b, w, {"tau": 0.0}), "tau"),
    (lambda a, b, w: (a, b, w, {"tau": float("nan")}), "tau"),
])
def test_bad_input_names_the_argument(fn, change, arg):
    a, b, w, kw = change(*_good())
    size = kw.pop("size", 16)
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        fn(a, b, w, size, **kw)


def test_bad_input_skeleton_and_joint_masks():
    J = _standing_pose()
    with pytest.raises(ValueError, match="^joints2d:"):
        R.skeleton_mask(J[:, :17], 32)  # 17 joints for an 18-joint set
    with pytest.raises(ValueError, match="^joints2d:"):
        R.skeleton_mask(torch.zeros(1, 18, 3), 32)  # 3D joints
    with pytest.raises(ValueError, match="^joints2d:"):
        R.skeleton_mask_dense(J[0], 32)  # no batch dim
    with pytest.raises(ValueError, match="^groups:"):
        R.skeleton_mask(J, 32, groups=("arms",))
    with pytest.raises(ValueError, match="^w:"):
        R.skeleton_mask(J, 32, w=0.0)
    with pytest.raises(ValueError, match="^joints2d:"):
        R.gaussian_joint_mask(torch.zeros(4, 2), 32)
    with pytest.raises(ValueError, match="^w:"):
        R.gaussian_joint_mask(torch.zeros(1, 4, 2), 32, w=-1.0)
    with pytest.raises(ValueError, match="^joints2d:"):
        R.gaussian_joint_mask(torch.full((1, 4, 2), float("nan")), 32)
    with pytest.raises(ValueError, match="^size:"):
        R.skeleton_mask(J, 1)
    with pytest.raises(ValueError, match="^merge:"):
        R.skeleton_mask(J, 32, merge="avg")
    # the joint-set variant works for H36M-17 too
    assert R.skeleton_mask(torch.zeros(1, 17, 2), 16, joint_set=sk.H36M17).shape == (1, 1, 16, 16)
