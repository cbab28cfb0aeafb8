"""Synthetic generator (maskpose.data.synthetic) and the ``maskpose synth`` command."""
import json
from collections import Counter

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose import geometry as G
from maskpose.cli import app
from maskpose.data import synthetic as sy
from maskpose.data.folder import MaskPoseDataset
from maskpose.skeleton import H36M18
from maskpose.weighting import geodesic_weights

S = 64
V = 4


@pytest.fixture(scope="module")
def samples():
    return [sy.generate_sample(i, seed=7, split="train", num_views=V, size=S) for i in range(16)]


@pytest.fixture(scope="module")
def bodies():
    return [sy.sample_body(sy.sample_rng(11, "train", i)) for i in range(200)]


def _pixels(s, v, normalized=False):
    P = G.crop_projection(s.cameras[v], s.A[v], S, normalized=normalized)
    x = np.c_[s.joints3d, np.ones(len(s.joints3d))] @ P.T
    return x[:, :2] / x[:, 2:]


def test_sample_arrays(samples):
    s = samples[0]
    J = H36M18.num_joints
    assert s.joints3d.shape == (J, 3) and s.joints3d.dtype == np.float64
    assert s.K.shape == (V, 3, 3) and s.R.shape == (V, 3, 3) and s.t.shape == (V, 3) and s.A.shape == (V, 3, 3)
    assert s.dist.shape == (V, 5) and not s.dist.any()
    assert s.images.shape == (V, S, S, 3) and s.images.dtype == np.uint8
    assert s.masks.shape == (V, S, S) and s.masks.dtype == bool
    assert s.weights.shape == (V, S, S) and s.weights.dtype == np.float32
    assert s.activity in sy.ACTIVITIES
    for smp in samples:
        assert smp.valid.all()
        for cam in smp.cameras:
            assert abs(cam.K[0, 0] - sy.FOCAL_PX) < 0.05 * sy.FOCAL_PX
            d = np.linalg.norm(cam.center[:2])
            assert 4000 <= d <= 5000 and 1300 <= cam.center[2] <= 1800
        # the image is not flat and the person differs from the background
        assert smp.images.reshape(V, -1, 3).std(axis=1).max() > 5


def test_gt_joints_project_inside_masks(samples):
    inside = []
    for s in samples:
        for v in range(V):
            ij = np.rint(_pixels(s, v)).astype(int)
            ok = ((ij >= 0) & (ij < S)).all(1)
            hit = np.zeros(len(ij), bool)
            hit[ok] = s.masks[v][ij[ok, 1], ij[ok, 0]]
            inside.append(hit)
    assert np.mean(inside) >= 0.97


def test_triangulation_of_gt_projections_recovers_joints(samples):
    for s in samples[:6]:
        P = np.stack([G.crop_projection(s.cameras[v], s.A[v], S) for v in range(V)])
        x2d = np.stack([_pixels(s, v, normalized=True) for v in range(V)])
        X = G.triangulate(torch.from_numpy(x2d), torch.from_numpy(P))
        assert np.abs(X.numpy() - s.joints3d).max() < 1e-3


def test_crops_are_centred_on_the_silhouette(samples):
    for s in samples:
        for v in range(V):
            ys, xs = np.nonzero(s.masks[v])
            cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
            assert abs(cx - (S - 1) / 2) <= 1.5 and abs(cy - (S - 1) / 2) <= 1.5
            extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
            assert S / sy.CROP_MARGIN - 3 <= extent <= S / sy.CROP_MARGIN + 2


def test_mask_coverage_is_plausible(samples):
    cov = np.array([s.masks.mean(axis=(1, 2)) for s in samples])
    assert 0.05 <= cov.mean() <= 0.40
    assert cov.min() > 0.02 and cov.max() < 0.6


def test_weights_are_geodesic_weights(samples):
    s = samples[1]
    for v in range(V):
        np.testing.assert_allclose(s.weights[v], geodesic_weights(s.masks[v]))


def test_deterministic_per_seed_split_and_index():
    a = sy.generate_sample(3, seed=5, split="train", num_views=2, size=32)
    b = sy.generate_sample(3, seed=5, split="train", num_views=2, size=32)
    for name in ("joints3d", "K", "R", "t", "A", "images", "masks", "weights"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = sy.generate_sample(3, seed=5, split="test", num_views=2, size=32)
    d = sy.generate_sample(3, seed=6, split="train", num_views=2, size=32)
    e = sy.generate_sample(4, seed=5, split="train", num_views=2, size=32)
    for other in (c, d, e):
        assert np.abs(other.joints3d - a.joints3d).max() > 10.0


def test_pool_gives_the_same_samples_as_serial():
    ser = list(sy.iter_samples(3, seed=2, num_views=2, size=32, workers=1))
    par = list(sy.iter_samples(3, seed=2, num_views=2, size=32, workers=2))
    assert [s.index for s in par] == [0, 1, 2]
    for a, b in zip(ser, par):
        np.testing.assert_array_equal(a.joints3d, b.joints3d)
        np.testing.assert_array_equal(a.images, b.images)


def test_single_view_and_other_sizes():
    s = sy.generate_sample(0, num_views=1, size=40)
    assert s.images.shape == (1, 40, 40, 3) and s.valid.all() and s.masks.any()


def test_bone_proportions_vary_and_sides_agree(bodies):
    lengths = np.stack([H36M18.bone_lengths(torch.from_numpy(b.joints)).numpy() for b in bodies])
    names = [bone.name for bone in H36M18.bones]
    for i, n in enumerate(names):
        if n.startswith("L-"):
            np.testing.assert_allclose(lengths[:, i], lengths[:, names.index("R-" + n[2:])], rtol=1e-9)
    ratios = lengths / lengths.sum(1, keepdims=True)
    rel_sd = ratios.std(0) / ratios.mean(0)
    assert rel_sd.min() >= 0.03, dict(zip(names, rel_sd.round(3)))
    # thorax is the shoulder midpoint (DESIGN §3)
    for b in bodies[:20]:
        np.testing.assert_allclose(b.joints[17], (b.joints[11] + b.joints[14]) / 2, atol=1e-9)


def test_poses_cover_activities_and_arm_configurations(bodies):
    acts = Counter(b.activity for b in bodies)
    assert set(acts) == set(sy.ACTIVITIES) and min(acts.values()) >= 20
    J = {n: i for i, n in enumerate(H36M18.joints)}
    above_head = hanging = sideways = forward = 0
    for b in bodies:
        j = b.joints
        left = j[J["LHip"]] - j[J["RHip"]]
        left /= np.linalg.norm(left)
        up = j[J["thorax"]] - j[J["pelvis"]]
        up /= np.linalg.norm(up)
        fwd = np.cross(left, up)  # right-handed body frame (x forward, y left, z up)
        for side, sgn in (("L", 1), ("R", -1)):
            d = j[J[side + "Wrist"]] - j[J[side + "Shoulder"]]
            arm = np.linalg.norm(d)
            above_head += j[J[side + "Wrist"], 2] > j[J["head"], 2]
            hanging += d @ up < -0.75 * arm
            sideways += sgn * (d @ left) > 0.6 * arm
            forward += d @ fwd > 0.6 * arm
        # floor and position
        assert abs(b.min_z()) < 1e-6
        assert np.abs(j[J["pelvis"], :2]).max() <= 400 + 300  # +-0.4 m plus the pelvis offset over the feet
    n = 2 * len(bodies)
    assert above_head / n > 0.10 and hanging / n > 0.10 and sideways / n > 0.05 and forward / n > 0.05


def test_anatomy_is_not_mirrored(bodies):
    """A real person: forward = left x up points where the nose is; knees bend backwards
    ((thigh x shank) . left >= 0); a camera in front sees the person's left on the image right."""
    J = {n: i for i, n in enumerate(H36M18.joints)}
    for b in bodies:
        j = b.joints
        left = j[J["LHip"]] - j[J["RHip"]]
        up = j[J["thorax"]] - j[J["pelvis"]]
        fwd = np.cross(left, up)
        assert fwd @ (j[J["nose"]] - j[J["neck"]]) > 0
        for s in "LR":
            thigh, shank = j[J[s + "Knee"]] - j[J[s + "Hip"]], j[J[s + "Ankle"]] - j[J[s + "Knee"]]
            assert np.cross(thigh, shank) @ left / (np.linalg.norm(thigh) * np.linalg.norm(shank)) > -1e-9
    j = bodies[0].joints
    f = np.cross(j[J["LHip"]] - j[J["RHip"]], [0, 0, 1.0])
    eye = j[0] + 4000 * f / np.linalg.norm(f)
    R, t = G.look_at(eye, j[0])
    cam = G.Camera(K=np.diag([1000.0, 1000.0, 1.0]), R=R, t=t)
    x = cam.project(j[[J["LHip"], J["RHip"]]])
    assert x[0, 0] > x[1, 0]


def test_arms_do_not_end_inside_the_torso(bodies):
    J = {n: i for i, n in enumerate(H36M18.joints)}
    bad = sum(b.inside_torso(b.joints[[J["LWrist"], J["RWrist"], J["LElbow"], J["RElbow"]]]).any() for b in bodies)
    assert bad <= 0.02 * len(bodies)


def _march(o, d, inside, t0=2000.0, t1=9000.0, step=1.0):
    """First ``t`` with ``inside(o + t d)``: a 1 mm march, then bisection to 1e-4 mm (inf: none)."""
    ts = np.arange(t0, t1, step)
    hit = inside(o + ts[:, None] * d)
    if not hit.any():
        return np.inf
    k = int(np.argmax(hit))
    lo, hi = ts[k] - step, ts[k]
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if inside((o + mid * d)[None])[0]:
            hi = mid
        else:
            lo = mid
    return hi


def test_ray_primitive_hits_match_brute_force():
    rng = np.random.default_rng(0)
    o = np.array([0.0, -5000.0, 1000.0])
    for _ in range(20):
        a = rng.uniform([-200, -200, 700], [200, 200, 1300])
        b = a + rng.normal(0, 200, 3)
        r = rng.uniform(30, 90)
        target = (a + b) / 2 + rng.normal(0, 60, 3)
        d = (target - o) / np.linalg.norm(target - o)

        def in_cap(p):
            ba = b - a
            h = np.clip(((p - a) @ ba) / (ba @ ba), 0, 1)
            return np.linalg.norm(p - a - h[:, None] * ba, axis=1) <= r

        t = sy._hit_capsule(o, d[None], a, b, r)[0]
        tb = _march(o, d, in_cap)
        assert (np.isinf(t) and np.isinf(tb)) or abs(t - tb) < 1e-3
        Rm = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        s = rng.uniform(50, 150, 3)

        def in_ell(p):
            return (((p - a) @ Rm / s) ** 2).sum(1) <= 1

        t = sy._hit_ellipsoid(o, d[None], a, Rm, s)[0]
        tb = _march(o, d, in_ell)
        assert (np.isinf(t) and np.isinf(tb)) or abs(t - tb) < 1e-3


def test_box_culling_is_exact(samples):
    """The per-primitive projected boxes lose no ray: masks equal a render without culling."""
    s = samples[2]
    body = sy.sample_body(sy.sample_rng(7, "train", 2))
    np.testing.assert_array_equal(body.joints, s.joints3d)
    for v in range(2):
        cam = s.cameras[v]
        culled, _ = sy.render_view(body, cam, s.A[v], S)
        huge = np.tile([-1e9, -1e9, 1e9, 1e9], (body.num_primitives, 1))
        dense, _ = sy.render_view(body, cam, s.A[v], S, boxes=huge)
        np.testing.assert_array_equal(culled, dense)
        np.testing.assert_array_equal(culled, s.masks[v])


# ------------------------------------------------------------------------------------------ CLI
runner = CliRunner()


def test_cli_synth_end_to_end(tmp_path):
    out = tmp_path / "ds"
    res = runner.invoke(app, ["synth", "--out", str(out), "--samples", "3", "--views", "2", "--size", "32",
                              "--seed", "4", "--split", "test", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "samples/s" in res.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["num_samples"] == 3 and meta["num_views"] == 2 and meta["size"] == 32 and meta["split"] == "test"
    ds = MaskPoseDataset(out, with_gt=True)
    ref = sy.generate_sample(1, seed=4, split="test", num_views=2, size=32)
    np.testing.assert_allclose(ds.gt_joints3d[1], ref.joints3d)
    np.testing.assert_array_equal(ds[1]["masks"][:, 0].numpy() > 0.5, ref.masks)
    assert ds.fields["activity"][1] == ref.activity

    # a non-empty folder is refused without --overwrite
    res = runner.invoke(app, ["synth", "--out", str(out), "--samples", "2", "--views", "2", "--size", "32", "--workers", "1"])
    assert res.exit_code == 1 and "not empty" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["synth", "--out", str(out), "--samples", "2", "--views", "2", "--size", "32",
                              "--workers", "1", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert MaskPoseDataset(out).num_samples == 2


def test_cli_synth_unwritable_output_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    target = blocker / "ds"  # a folder below a regular file cannot be created (even as root)
    res = runner.invoke(app, ["synth", "--out", str(target), "--samples", "1", "--size", "32", "--workers", "1"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)  # a clean exit, not a crash
    assert "cannot write to output folder" in res.output and str(target) in res.output
    assert "Traceback" not in res.output


def test_cli_synth_rejects_bad_split(tmp_path):
    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--samples", "1", "--split", "bogus"])
    assert res.exit_code == 2 and "split" in res.output
