"""maskpose predict: robust weighted triangulation, crop <-> raw-frame mapping, the dataset-folder
path (multi-view world output, single-view camera output), checkpoint/data mismatches, options."""
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from maskpose import geometry as G
from maskpose.data.synthetic import generate_dataset
from maskpose.predict import (PredictError, crop_to_image, image_to_crop, predict, predict_folder, smooth_sequences,
                              triangulate_views)
from maskpose.skeleton import H36M18
from maskpose.train import TrainConfig, build_model, load_model, save_checkpoint

DIST = np.array([-0.12, 0.03, 0.001, -0.0015, 0.0])


# ----------------------------------------------------------------------------- fixtures
def tiny_cfg(train: Path, **model) -> TrainConfig:
    cfg = TrainConfig(device="cpu")
    m = dict(width=8, head_width=16)
    m.update(model)
    return replace(cfg, data=replace(cfg.data, train=str(train), test=""), model=replace(cfg.model, **m))


def make_checkpoint(path: Path, cfg: TrainConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():  # a random (untrained) head, so that views disagree like a real network's
        model.final.weight.normal_(0, 0.05)
    save_checkpoint(path, model, None, 0, cfg)
    return path


def rewrite_samples(root: Path, **changes) -> None:
    with np.load(root / "samples.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(root / "samples.npz", **arrays)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    generate_dataset(root / "mv", 8, num_views=3, size=32, seed=1, split="test", workers=1)
    generate_dataset(root / "sv", 5, num_views=1, size=32, seed=2, split="test", workers=1)
    # a copy with lens distortion recorded, source frame numbers and a frame rate (as prepared video has)
    shutil.copytree(root / "mv", root / "mvd")
    n, V = 8, 3
    rewrite_samples(root / "mvd", dist=np.tile(DIST, (n, V, 1)), frame=10 + 2 * np.arange(n))
    meta = json.loads((root / "mvd" / "meta.json").read_text())
    meta.update(fps=25.0, view_names=["cam_a", "cam_b", "cam_c"])
    (root / "mvd" / "meta.json").write_text(json.dumps(meta))
    ckpt = make_checkpoint(root / "mask.pt", tiny_cfg(root / "mv"))
    return {"root": root, "mv": root / "mv", "sv": root / "sv", "mvd": root / "mvd", "ckpt": ckpt}


def ring_cameras(az_deg, height=1500.0) -> torch.Tensor:
    P = []
    for a in np.radians(az_deg):
        R, t = G.look_at([4500 * np.cos(a), 4500 * np.sin(a), height], [0, 0, 1000])
        P.append(G.Camera(np.array([[1150.0, 0, 500], [0, 1150, 500], [0, 0, 1]]), R, t).P)
    return torch.tensor(np.stack(P))


def body_points(seed=0, J=18) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(seed).uniform([-300, -300, 100], [300, 300, 1800], (J, 3)))


# ----------------------------------------------------------------------------- triangulation
def test_outlier_view_rejection_recovers_the_points():
    """Exact projections in 3 views, view 1 shifted by +40 px on four joints: rejection finds exactly
    those (view, joint) pairs and recovers the points (error ~1e-10 mm); without it they are ~120 mm off."""
    X = body_points()
    P = ring_cameras([0, 100, 220])
    x = G.project_P(X[None], P)
    bad = torch.zeros(3, 18, dtype=torch.bool)
    bad[1, [2, 5, 9, 13]] = True
    x = x + bad[..., None] * torch.tensor([40.0, 0.0])
    plain = triangulate_views(x, P, None, reject=False)
    robust = triangulate_views(x, P, None, reject=True, threshold=4.0)
    e_plain = (plain["joints3d"] - X).norm(dim=-1)
    e_robust = (robust["joints3d"] - X).norm(dim=-1)
    assert e_plain[[2, 5, 9, 13]].min() > 50.0, e_plain
    assert e_robust.max() < 1.0, e_robust
    assert torch.equal(robust["rejected"], bad)
    assert torch.equal(robust["used"], ~bad)
    assert robust["error"][~bad].max() < 1e-6 and robust["error"][bad].min() > 39.0
    # clean joints are untouched by the rejection
    torch.testing.assert_close(robust["joints3d"][~bad.any(0)], plain["joints3d"][~bad.any(0)])


def test_rejection_never_goes_below_two_views_and_batches():
    """With 2 views nothing can be rejected; leading batch dims work and match one-by-one calls."""
    X = body_points(1)
    P = ring_cameras([0, 90])
    x = G.project_P(X[None], P) + torch.tensor([25.0, 0.0]) * torch.tensor([1.0, 0.0])[:, None, None]
    out = triangulate_views(x, P, None, reject=True, threshold=1.0)
    assert out["used"].all() and not out["rejected"].any()
    P3 = torch.stack([ring_cameras([0, 100, 220]), ring_cameras([10, 130, 250])])  # [B=2, V, 3, 4]
    Xb = torch.stack([body_points(2), body_points(3)])
    xb = G.project_P(Xb[:, None], P3)
    xb[0, 2, :4] += 30.0
    xb[1, 0, 7:9] -= 25.0
    both = triangulate_views(xb, P3, None, threshold=3.0)
    for b in range(2):
        one = triangulate_views(xb[b], P3[b], None, threshold=3.0)
        torch.testing.assert_close(both["joints3d"][b], one["joints3d"])
        assert torch.equal(both["rejected"][b], one["rejected"])
    assert (both["joints3d"] - Xb).norm(dim=-1).max() < 1e-6


def test_rejection_does_not_trust_a_pair_of_facing_cameras():
    """Two facing cameras (0 and 180 deg) see a point along nearly one line: their triangulation fits
    anything along it. With 1 px noise in those two and an exact third view, rejection without the
    ray-angle guard throws out the good view on most joints (~19 mm error instead of ~3 mm); with
    the guard the good view is never rejected."""
    X = body_points()
    P = ring_cameras([0, 90, 180], height=1000.0)  # the facing pair's rays within ~25 deg of one line
    x = G.project_P(X[None], P)
    noise = torch.tensor(np.random.default_rng(0).normal(0, 1.0, x.shape))
    noise[1] = 0
    x = x + noise
    plain = (triangulate_views(x, P, None, reject=False)["joints3d"] - X).norm(dim=-1).mean()
    guarded = triangulate_views(x, P, None, reject=True, threshold=0.5)
    unguarded = triangulate_views(x, P, None, reject=True, threshold=0.5, min_angle_deg=0.0)
    assert guarded["rejected"][1].sum() == 0
    assert unguarded["rejected"][1].sum() >= 9  # measured: 11 of 18 joints
    e_g = (guarded["joints3d"] - X).norm(dim=-1).mean()
    e_u = (unguarded["joints3d"] - X).norm(dim=-1).mean()
    assert e_u > 4 * e_g and e_g < 2 * plain, (plain, e_g, e_u)  # measured: 19.3 vs 3.0 (no rejection: 2.5) mm


def test_confidence_weights_pull_toward_the_confident_views():
    """View 2 is off by (6, -4) px everywhere: equal weights spread the error (14 mm); giving view 2 a
    confidence of 0.1 brings the points to the two exact views (0.3 mm) and their residuals near 0."""
    X = body_points()
    P = ring_cameras([0, 100, 220])
    x = G.project_P(X[None], P)
    x[2] += torch.tensor([6.0, -4.0])
    w = torch.ones(3, 18, dtype=torch.float64)
    eq = triangulate_views(x, P, w, reject=False)
    w[2] = 0.1
    cw = triangulate_views(x, P, w, reject=False)
    e_eq = (eq["joints3d"] - X).norm(dim=-1).mean()
    e_cw = (cw["joints3d"] - X).norm(dim=-1).mean()
    assert e_cw < 0.1 * e_eq and e_eq > 5.0, (e_eq, e_cw)
    assert cw["error"][:2].mean() < 0.2 * eq["error"][:2].mean()
    assert cw["error"][2].mean() > eq["error"][2].mean()


def test_joints_with_fewer_than_two_views_are_nan():
    X = body_points()
    P = ring_cameras([0, 100, 220])
    x = G.project_P(X[None], P)
    w = torch.ones(3, 18, dtype=torch.float64)
    w[1:, 4] = 0  # joint 4 only in view 0
    out = triangulate_views(x, P, w)
    assert torch.isnan(out["joints3d"][4]).all() and not out["used"][:, 4].any()
    assert (out["joints3d"][torch.arange(18) != 4] - X[torch.arange(18) != 4]).norm(dim=-1).max() < 1e-6


# ----------------------------------------------------------------------------- crop <-> raw frame
def test_crop_to_image_equals_camera_projection_with_distortion(data):
    """GT joints projected into the normalised crop, mapped back with the inverse crop affine and the
    lens distortion, land on the camera's own distorted projection (< 1e-6 px); the inverse map
    returns to the crop."""
    from maskpose.data.folder import MaskPoseDataset

    ds = MaskPoseDataset(data["mvd"], with_gt=True, preload=False)
    S = ds.size
    x_crop = ds.gt_joints2d.astype(np.float64)  # [N, V, J, 2] normalised crop coordinates
    img = crop_to_image(x_crop, ds.A, ds.K, ds.dist, S)
    for i in range(len(ds)):
        for v, cam in enumerate(ds.cameras(i)):
            np.testing.assert_allclose(img[i, v], cam.project(ds.gt_joints3d[i]), atol=1e-6)
    back = image_to_crop(img, ds.A, ds.K, ds.dist, S)
    np.testing.assert_allclose(back, x_crop, atol=1e-4)  # float32 GT; undistortion converges to ~1e-9 px
    # without distortion the map is the plain inverse affine
    flat = crop_to_image(x_crop, ds.A, ds.K, None, S)
    assert np.abs(flat - img).max() > 1.0


# ----------------------------------------------------------------------------- dataset folder
def test_predict_multiview_folder(data):
    seq = predict(data["ckpt"], data["mv"], device="cpu")
    assert seq.frame == "world"
    assert seq.joints3d.shape == (8, 18, 3) and np.isfinite(seq.joints3d).all()
    assert seq.joint_names == list(H36M18.joints)
    assert seq.frame_ids == [f"{i:06d}" for i in range(8)]
    assert seq.joints2d.shape == (8, 3, 18, 2) and seq.view_names == ["view0", "view1", "view2"]
    assert seq.confidence.shape == (8, 18) and (seq.confidence >= 0).all() and (seq.confidence <= 1).all()
    assert seq.fps is None and seq.meta["mode"] == "multiview" and seq.meta["crop_size"] == 32
    assert seq.meta["train_crop_size"] == 32 and not seq.meta["notes"]
    # world mm: the people stand near the origin, about 1.7 m tall
    assert np.abs(seq.joints3d[..., :2]).max() < 3000
    # pelvis / thorax are hip / shoulder midpoints
    j = H36M18.index
    np.testing.assert_allclose(seq.joints3d[:, 0], 0.5 * (seq.joints3d[:, j("LHip")] + seq.joints3d[:, j("RHip")]))


def test_save_predictions_round_trip(data, tmp_path):
    from maskpose.export import load_poses, read_trc
    from maskpose.predict import save_predictions

    seq = predict(data["ckpt"], data["mvd"], device="cpu")
    paths = save_predictions(seq, tmp_path / "out", ["json", "npz", "csv", "trc"])
    assert [p.name for p in paths] == ["poses.json", "poses.npz", "poses.csv", "poses.trc"]
    for p in paths[:2]:
        back = load_poses(p)
        np.testing.assert_allclose(back.joints3d, seq.joints3d, atol=1e-6)
        assert back.frame_ids == seq.frame_ids and back.meta["mode"] == "multiview"
    trc = read_trc(paths[3])  # OpenSim's parser rules; times from the source frame numbers at 25 fps
    assert trc["num_frames"] == 8 and trc["marker_names"] == seq.joint_names
    np.testing.assert_allclose(trc["times"], (10 + 2 * np.arange(8)) / 25.0)
    np.testing.assert_allclose(trc["markers"], seq.joints3d, atol=1e-3)
    with pytest.raises(ValueError, match="exists"):
        save_predictions(seq, tmp_path / "out", ["json"])


def test_world_output_is_consistent_with_its_own_2d(data):
    """On a folder with lens distortion: (1) the 3D re-projected with the dataset's cameras
    (Camera.project, distortion included) equals the re-projection predict returns (< 0.5 px, in fact
    ~1e-6); (2) triangulating the returned raw-frame 2D (undistorted, mapped into the crops) with the
    weights predict used gives back its 3D."""
    from maskpose.data.folder import MaskPoseDataset
    from maskpose.geometry import normalize_matrix

    model, cfg, _ = load_model(data["ckpt"])
    r = predict_folder(model, cfg, data["mvd"])
    ds = MaskPoseDataset(data["mvd"], preload=False)
    S = ds.size
    for i in range(8):
        for v, cam in enumerate(ds.cameras(i)):
            np.testing.assert_allclose(cam.project(r["joints3d"][i]), r["reprojected2d"][i, v], atol=0.5)
            assert np.abs(cam.project(r["joints3d"][i]) - r["reprojected2d"][i, v]).max() < 1e-5
    crop = image_to_crop(r["joints2d"], ds.A, ds.K, ds.dist, S)
    np.testing.assert_allclose(crop, r["joints2d_crop"], atol=1e-6)
    to_px = torch.tensor(np.linalg.inv(normalize_matrix(S)))
    x_px = torch.tensor(crop) @ to_px[:2, :2].T + to_px[:2, 2]
    P_px = to_px @ torch.tensor(ds.crop_cameras)
    w = torch.tensor(r["weights"])
    assert (w > 0).sum(1).min() >= 2
    X = G.triangulate(x_px, P_px, w)
    own = [k for k in range(18) if H36M18.joints[k] not in ("pelvis", "thorax")]
    np.testing.assert_allclose(X[:, own].numpy(), r["joints3d"][:, own], atol=1e-2)  # 0.01 mm
    # and the public result carries the same numbers, with the source frame numbers as ids
    seq = predict(data["ckpt"], data["mvd"], device="cpu")
    np.testing.assert_allclose(seq.joints3d, r["joints3d"])
    np.testing.assert_allclose(seq.joints2d, r["joints2d"])
    assert seq.frame_ids == [str(10 + 2 * i) for i in range(8)] and seq.meta["sample_ids"][0] == "000000"
    assert seq.fps == 25.0 and seq.view_names == ["cam_a", "cam_b", "cam_c"]


def test_invalid_views_give_nan_2d_and_are_not_used(data, tmp_path):
    root = tmp_path / "inv"
    shutil.copytree(data["mv"], root)
    with np.load(root / "samples.npz") as z:
        valid = z["valid"].copy()
    valid[:] = True
    valid[3, 1] = False
    valid[5, 0] = valid[5, 2] = False  # one view left: no triangulation possible
    rewrite_samples(root, valid=valid)
    model, cfg, _ = load_model(data["ckpt"])
    r = predict_folder(model, cfg, root)
    assert np.isnan(r["joints2d"][3, 1]).all() and np.isfinite(r["joints2d"][3, [0, 2]]).all()
    assert (r["weights"][3, 1] == 0).all() and np.isfinite(r["joints3d"][3]).all()
    assert np.isnan(r["joints3d"][5]).all() and (r["confidence"][5] == 0).all()
    assert np.isfinite(r["joints3d"][[0, 1, 2, 4, 6, 7]]).all()


def test_single_view_is_root_relative_in_the_camera_frame(data):
    with pytest.warns(UserWarning, match="trained on 3-view data is used single-view"):
        seq = predict(data["ckpt"], data["sv"], device="cpu")
    assert seq.frame == "camera" and seq.joints3d.shape == (5, 18, 3)
    np.testing.assert_array_equal(seq.joints3d[:, H36M18.root], 0.0)
    assert np.isfinite(seq.joints3d).all() and np.abs(seq.joints3d).max() < 2500
    assert seq.joints2d.shape == (5, 1, 18, 2) and seq.meta["mode"] == "single_view"
    # the checkpoint was trained on 3-view data: said so
    assert any("used single-view" in n for n in seq.meta["notes"])
    # a multi-view folder used single-view on request: the chosen view
    with pytest.warns(UserWarning, match="used single-view"):
        one = predict(data["ckpt"], data["mv"], device="cpu", single_view=True, view=2)
    assert one.frame == "camera" and one.meta["views"] == [2] and one.view_names == ["view2"]
    np.testing.assert_array_equal(one.joints3d[:, 0], 0.0)


def test_stride_max_frames_and_progress(data):
    calls = []
    seq = predict(data["ckpt"], data["mv"], device="cpu", stride=2, max_frames=3, batch_size=2,
                  progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert seq.frame_ids == ["000000", "000002", "000004"]
    assert calls == [("predict", 2, 3), ("predict", 3, 3)]


def test_refine_and_smoothing(data):
    base = predict(data["ckpt"], data["mvd"], device="cpu")
    ref = predict(data["ckpt"], data["mvd"], device="cpu", refine=True, refine_iters=3, refine_search_cycles=0)
    assert ref.meta["refined"] and np.isfinite(ref.joints3d).all()
    assert 0.1 < np.abs(ref.joints3d - base.joints3d).max() < 200
    # with the arm search (default) the arms may swing anywhere within their length; the rest moves little
    srch = predict(data["ckpt"], data["mvd"], device="cpu", refine=True, refine_iters=3)
    from maskpose.skeleton import H36M18
    arms = [H36M18.index(f"{s}{n}") for s in "LR" for n in ("Elbow", "Wrist")]
    rest = [i for i in range(H36M18.num_joints) if i not in arms]
    assert np.isfinite(srch.joints3d).all()
    assert np.abs(srch.joints3d - base.joints3d)[:, rest].max() < 200
    assert np.abs(srch.joints3d - base.joints3d)[:, arms].max() < 1500
    sm = predict(data["ckpt"], data["mvd"], device="cpu", smoothing="oneeuro")
    assert sm.meta["smoothing"] == {"method": "oneeuro"}
    assert not np.allclose(sm.joints3d, base.joints3d)
    np.testing.assert_allclose(sm.joints3d[0], base.joints3d[0])  # the filter starts at the first value
    with pytest.raises(PredictError, match="frame rate"):
        predict(data["ckpt"], data["mv"], device="cpu", smoothing="butterworth")
    bw = predict(data["ckpt"], data["mv"], device="cpu", smoothing="butterworth", fps=50.0,
                 smoothing_params={"cutoff": 6.0})
    assert bw.fps == 50.0 and bw.meta["smoothing"] == {"method": "butterworth", "cutoff": 6.0}
    from maskpose.smoothing import SmoothingError
    with pytest.raises(SmoothingError, match="cutoff must be in"):  # 25 fps: Nyquist 12.5 Hz
        predict(data["ckpt"], data["mvd"], device="cpu", smoothing="butterworth", smoothing_params={"cutoff": 20.0})


def test_smooth_sequences_puts_samples_on_the_frame_grid():
    """Frames 0, 2, 4, 8 (step 2, frame 6 missing) in two sequences: each sequence is smoothed on its
    own grid at fps / 2, and the missing frame is a gap that restarts the filter."""
    from maskpose.smoothing import one_euro

    rng = np.random.default_rng(0)
    X = rng.normal(0, 10, (8, 2, 3))
    frames = np.array([0, 2, 4, 8, 0, 2, 4, 6])
    seqs = np.array(["a"] * 4 + ["b"] * 4)
    out = smooth_sequences(X, 30.0, "oneeuro", {}, frames=frames, sequences=seqs)
    grid = np.full((5, 2, 3), np.nan)
    grid[[0, 1, 2, 4]] = X[:4]
    np.testing.assert_allclose(out[:4], one_euro(grid, 15.0)[[0, 1, 2, 4]])
    np.testing.assert_allclose(out[3], X[3])  # after the gap: a fresh start
    np.testing.assert_allclose(out[4:], one_euro(X[4:], 15.0))


# ----------------------------------------------------------------------------- mismatches
def test_rgb_checkpoint_on_a_folder_without_frames(data, tmp_path):
    root = tmp_path / "noframes"
    shutil.copytree(data["mv"], root)
    shutil.rmtree(root / "frames")
    rgb = make_checkpoint(tmp_path / "rgb.pt", tiny_cfg(data["mv"], input="rgb"))
    with pytest.raises(PredictError, match=r"rgb\.pt takes 'rgb' input .* dataset folder .*noframes has no frame"):
        predict(rgb, root, device="cpu")
    seq = predict(data["ckpt"], root, device="cpu")  # a mask checkpoint needs no frames
    assert seq.joints3d.shape == (8, 18, 3)
    seq_rgb = predict(rgb, data["mv"], device="cpu")  # and the RGB one runs where frames exist
    assert np.isfinite(seq_rgb.joints3d).all()


def test_mismatch_errors_name_both_sides(data, tmp_path):
    deep = make_checkpoint(tmp_path / "deep.pt", tiny_cfg(data["mv"], num_stages=6, max_width=16))
    with pytest.raises(PredictError, match=r"crops of 32 px but checkpoint .*deep\.pt .* divisible by 64"):
        predict(deep, data["mv"], device="cpu")
    state = torch.load(data["ckpt"], weights_only=True)
    state["joints"] = list(state["joints"])[:-1] + ["chest"]
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(PredictError, match="lists joints .*chest.* but joint set 'h36m18'"):
        predict(tmp_path / "other.pt", data["mv"], device="cpu")
    with pytest.raises(PredictError, match="dataset folder with its own cameras"):
        predict(data["ckpt"], data["mv"], device="cpu", calibration=tmp_path / "calib.toml")
    with pytest.raises(PredictError, match="refine needs calibrated multi-view data"):
        predict(data["ckpt"], data["sv"], device="cpu", refine=True)
    with pytest.raises(PredictError, match="view 3 does not exist"):
        predict(data["ckpt"], data["mv"], device="cpu", single_view=True, view=3)
    with pytest.raises(PredictError, match="smoothing must be"):
        predict(data["ckpt"], data["mv"], device="cpu", smoothing="kalman")
    with pytest.raises(FileNotFoundError):
        predict(tmp_path / "missing.pt", data["mv"], device="cpu")


# ----------------------------------------------------------------------------- video input
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from test_prepare import make_scene  # the synthetic footage of tests/test_prepare.py

    root = tmp_path_factory.mktemp("scene")
    return make_scene(root / "videos", views=3, frames=12, fmt="mp4", dist=np.array([-0.15, 0.02, 0.0, 0.0, 0.0]))


def test_predict_on_calibrated_videos(data, scene, tmp_path):
    """Three distorted-lens videos + their cameras: predict prepares them at the checkpoint's crop size
    into OUT/prepared, and gives world 3D, source frame numbers as ids, 25 fps, the camera names, and
    2D joints in the raw (distorted) video frames, inside the image and the person's crop square."""
    calls = []
    seq = predict(data["ckpt"], scene["root"], calibration=scene["cameras"], out_dir=tmp_path / "out", device="cpu",
                  progress=lambda *a: calls.append(a))
    prepared = tmp_path / "out" / "prepared"
    assert json.loads((prepared / "meta.json").read_text())["size"] == 32  # the checkpoint's training crops
    assert seq.frame == "world" and seq.fps == 25.0 and seq.view_names == ["cam01", "cam02", "cam03"]
    assert seq.joints3d.shape[0] >= 8 and seq.meta["dataset"] == str(prepared)
    frames = [int(f) for f in seq.frame_ids]
    assert frames == sorted(frames) and frames[-1] <= 11
    assert calls[0][0] == "prepare" and calls[-1][0] == "predict"
    # the prepared folder gives the same answer when given directly
    again = predict(data["ckpt"], prepared, device="cpu")
    np.testing.assert_allclose(again.joints3d, seq.joints3d)
    # 2D joints lie in the raw frames, near the person: within their crop square (1.15 x the person's box)
    H, W = scene["gt"].shape[2:]
    for t, f in enumerate(frames):
        for v in range(3):
            p = seq.joints2d[t, v]
            if np.isnan(p).all():
                continue
            ys, xs = np.nonzero(scene["gt"][v, f])
            side = max(xs.max() - xs.min(), ys.max() - ys.min()) * 1.15 + 4
            cx, cy = (xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2
            assert np.all(np.abs(p[:, 0] - cx) <= side / 2) and np.all(np.abs(p[:, 1] - cy) <= side / 2)
    # stride / max_frames reach prepare; without out_dir the prepared folder is temporary
    few = predict(data["ckpt"], scene["root"], calibration=scene["cameras"], device="cpu", stride=3, max_frames=3)
    assert [int(f) % 3 for f in few.frame_ids] == [0] * len(few.frame_ids) and len(few.frame_ids) <= 3
    assert few.meta["dataset"] is None


def test_video_input_needs_a_known_crop_size(scene, tmp_path):
    cfg = tiny_cfg(tmp_path / "gone")  # its training folder is not on this machine
    ckpt = make_checkpoint(tmp_path / "nosize.pt", cfg)
    with pytest.raises(PredictError, match="does not record its crop size.*pass size="):
        predict(ckpt, scene["root"], calibration=scene["cameras"], device="cpu")
    seq = predict(ckpt, scene["paths"][0], device="cpu", size=32, max_frames=4)  # one view, no calibration
    assert seq.frame == "camera" and seq.view_names == ["cam01"]


def test_cli_fit_search_only_moves_only_the_arms(data, tmp_path):
    """`maskpose fit --iters 0` is the arm search alone: every joint but elbows and wrists keeps the
    network's answer; `--iters 0 --search-cycles 0` (nothing to do) is one clear error."""
    from typer.testing import CliRunner

    from maskpose.cli import app

    out = tmp_path / "fit.npz"
    r = CliRunner().invoke(app, ["fit", str(data["ckpt"]), str(data["mv"]), "--iters", "0", "--search-cycles", "1",
                                 "--search-dirs", "8", "--limit", "4", "--predictions", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    z = np.load(out)
    assert z["pred"].shape == z["before"].shape == (4, 18, 3)
    arms = [H36M18.index(s + n) for s in "LR" for n in ("Elbow", "Wrist")]
    rest = [k for k in range(18) if k not in arms]
    np.testing.assert_allclose(z["pred"][:, rest], z["before"][:, rest], atol=1e-4)
    assert np.abs(z["pred"][:, arms] - z["before"][:, arms]).max() > 10.0  # the search moved an arm (mm)
    r = CliRunner().invoke(app, ["fit", str(data["ckpt"]), str(data["mv"]), "--iters", "0", "--search-cycles", "0",
                                 "--limit", "4", "--device", "cpu"])
    assert r.exit_code == 1 and "iters" in r.output and "Traceback" not in r.output


def test_flip_test_in_predict_and_eval(data, tmp_path):
    """--flip-test reaches the network: other answers than without it, recorded in the metadata, and
    `maskpose eval --flip-test` writes its own numbers."""
    from typer.testing import CliRunner

    from maskpose.cli import app

    plain = predict(data["ckpt"], data["mv"], device="cpu")
    flipped = predict(data["ckpt"], data["mv"], device="cpu", flip_test=True)
    assert flipped.meta["flip_test"] and not plain.meta["flip_test"]
    assert np.isfinite(flipped.joints3d).all() and np.abs(flipped.joints3d - plain.joints3d).max() > 0.1
    outs = []
    for extra in ([], ["--flip-test"], ["--no-selection"]):
        out = tmp_path / f"e{len(outs)}.json"
        r = CliRunner().invoke(app, ["eval", str(data["ckpt"]), str(data["mv"]), "--json", str(out), "--device", "cpu", *extra])
        assert r.exit_code == 0, r.output
        outs.append(json.loads(out.read_text())["model"])
    assert outs[0]["mpjpe"] != outs[1]["mpjpe"]
    # --no-selection reaches the lifting (other 3D answers); the per-view raw labels are the same
    assert np.abs(np.asarray(outs[2]["per_joint_mpjpe"]["LKnee"]) - outs[0]["per_joint_mpjpe"]["LKnee"]) > 1e-3 \
        or outs[2]["flip_share"] != outs[0]["flip_share"]
    assert outs[0]["ambiguity_ratio_raw"] == pytest.approx(outs[2]["ambiguity_ratio_raw"])
