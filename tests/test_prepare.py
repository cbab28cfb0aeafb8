"""maskpose.data.prepare: videos / image folders + calibration -> dataset folder.

The footage is generated here: a posed synthetic body (maskpose.data.synthetic) walking across a static
textured background, seen by calibrated cameras, written as .mp4 (mp4v) / .avi (MJPG) videos or lossless
PNG folders, optionally through a distorting lens; its exact silhouettes are the ground truth.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from maskpose.data.calibration import CalibrationError
from maskpose.data.folder import MaskPoseDataset, load_dataset_meta, mask_path, read_mask
from maskpose.data.masks import MaskError
from maskpose.data.prepare import (PrepareError, crop_grid, default_camera, distort_normalized, person_crop,
                                   prepare_dataset, sample_crop)
from maskpose.data.synthetic import render_view, sample_appearance, sample_body
from maskpose.data.video import VideoError, VideoWarning
from maskpose.geometry import Camera, look_at, undistort_points

cv2.setNumThreads(1)


# ============================================================================ synthetic footage
def _background(rng: np.random.Generator, W: int, H: int) -> np.ndarray:
    """Static textured background: smooth colour noise plus stripes, RGB uint8 [H, W, 3]."""
    noise = cv2.GaussianBlur(rng.uniform(0, 1, (H, W, 3)).astype(np.float32), (0, 0), 5)
    noise = (noise - noise.min()) / (noise.max() - noise.min() + 1e-9)
    stripes = 0.5 + 0.5 * np.sin(np.arange(W)[None, :, None] / 7.0 + rng.uniform(0, 6, 3))
    img = 40 + 150 * (0.7 * noise + 0.3 * stripes)
    return np.clip(img, 0, 255).astype(np.uint8)


def _distort_image(img: np.ndarray, K: np.ndarray, dist: np.ndarray, interp=cv2.INTER_LINEAR) -> np.ndarray:
    """The image a distorting lens records, from the ideal pinhole image ``img`` (same K)."""
    H, W = img.shape[:2]
    xs, ys = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    und = undistort_points(np.stack([xs, ys], -1), K, dist)
    return cv2.remap(img, und[..., 0].astype(np.float32), und[..., 1].astype(np.float32), interp,
                     borderMode=cv2.BORDER_REFLECT)


def make_scene(root: Path, *, views: int = 3, frames: int = 20, W: int = 224, H: int = 192, fmt: str = "mp4",
               dist: np.ndarray | None = None, distractor: bool = False, marker: bool = False, seed: int = 0,
               azimuths=(70.0, 115.0, 250.0), walk: float = 1500.0, yaw_offset: float = 0.0) -> dict:
    """Render a walking-across scene into ``root`` (one video / PNG folder per view ``cam01..``).

    Returns ``cameras`` (list[Camera], with ``dist``), ``gt`` [V, T, H, W] bool silhouettes in the recorded
    (distorted) frames, ``gt_und`` the same in the undistorted image, ``paths``, ``marker3d`` [T, 3] (the
    world point painted as a magenta dot when ``marker``), ``distractor`` [T, H, W] bool (view 0).
    """
    rng = np.random.default_rng(seed)
    body0 = sample_body(rng, "walk")
    app = sample_appearance(rng, views)
    dist = np.zeros(5) if dist is None else np.asarray(dist, np.float64)
    cams = []
    for v in range(views):
        az = np.radians(azimuths[v % len(azimuths)])
        eye = np.array([4500.0 * np.cos(az), 4500.0 * np.sin(az), 1400.0])
        R, t = look_at(eye, np.array([0.0, 0.0, 900.0]))
        if yaw_offset:  # turn the camera so that the person appears off the optical axis (where lenses distort)
            a = np.radians(yaw_offset)
            Ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
            R, t = Ry @ R, Ry @ t
        K = np.array([[330.0, 0, (W - 1) / 2 + 3.0], [0, 330.0, (H - 1) / 2 - 2.0], [0, 0, 1]])
        cams.append(Camera(K=K, R=R, t=t, dist=dist, size=(W, H), name=f"cam{v + 1:02d}"))
    T = frames
    gt = np.zeros((views, T, H, W), bool)
    gt_und = np.zeros((views, T, H, W), bool)
    distr = np.zeros((T, H, W), bool)
    marker3d = np.zeros((T, 3))
    bgs = [_background(rng, W, H) for _ in range(views)]
    paths = []
    writers = []
    root.mkdir(parents=True, exist_ok=True)
    for v in range(views):
        if fmt == "png":
            d = root / f"cam{v + 1:02d}"
            d.mkdir(parents=True)
            paths.append(d)
            writers.append(None)
        else:
            fourcc, ext = {"mp4": ("mp4v", ".mp4"), "avi": ("MJPG", ".avi")}[fmt]
            p = root / f"cam{v + 1:02d}{ext}"
            w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*fourcc), 25.0, (W, H))
            assert w.isOpened(), f"cv2.VideoWriter cannot write {fourcc}"
            if fourcc == "MJPG":
                w.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
            paths.append(p)
            writers.append(w)
    import copy
    for k in range(T):
        body = copy.deepcopy(body0)
        body.translate(np.array([walk * (k / max(T - 1, 1) - 0.5), 120.0 * np.sin(k / 3.0), 0.0]))
        marker3d[k] = body.joints[0] + np.array([0.0, 0.0, 150.0])  # on the abdomen, inside the body
        for v, cam in enumerate(cams):
            pin = Camera(K=cam.K, R=cam.R, t=cam.t)
            m, img = render_view(body, pin, np.eye(3), max(W, H), app, view=v, supersample=2)
            m, img = m[:H, :W], img[:H, :W]
            frame = bgs[v].copy()
            frame[m] = img[m]
            if marker:
                uv = pin.project(marker3d[k][None])[0]
                yy, xx = np.mgrid[0:H, 0:W]
                g = np.exp(-((xx - uv[0]) ** 2 + (yy - uv[1]) ** 2) / (2 * 1.3 ** 2))[..., None]
                frame = np.clip(frame * (1 - g) + g * np.array([255.0, 0.0, 255.0]), 0, 255).astype(np.uint8)
            gt_und[v, k] = m
            if np.any(dist):
                frame = _distort_image(frame, cam.K, dist)
                m = _distort_image(m.astype(np.float32), cam.K, dist) > 0.5
            if distractor and v == 0:
                blob = np.zeros((H, W), np.uint8)
                cv2.ellipse(blob, (16 + k // 2, 22), (9, 15), 0, 0, 360, 1, -1)
                distr[k] = blob > 0
                frame[distr[k]] = (150, 20, 30)
            gt[v, k] = m
            if writers[v] is None:
                cv2.imwrite(str(paths[v] / f"frame_{k:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            else:
                writers[v].write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    for w in writers:
        if w is not None:
            w.release()
    return {"cameras": cams, "gt": gt, "gt_und": gt_und, "paths": paths, "marker3d": marker3d, "distractor": distr,
            "root": root}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def crop_gt(gt_und: np.ndarray, A: np.ndarray, S: int) -> np.ndarray:
    """Ground-truth silhouette (undistorted image) cut like the dataset's crop."""
    return cv2.warpAffine(gt_und.astype(np.float32), A[:2], (S, S), flags=cv2.INTER_LINEAR) > 0.5


@pytest.fixture(scope="module")
def scene_mp4(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene_mp4")
    return make_scene(root / "videos", views=3, frames=20, fmt="mp4", distractor=True)


# ============================================================================ crops and cameras (unit)
def test_crop_grid_is_inverse_of_affine_without_distortion():
    A = np.array([[0.5, 0, 3.25], [0, 0.5, -7.5], [0, 0, 1]])
    K = np.array([[300.0, 0, 100], [0, 300, 80], [0, 0, 1]])
    g = crop_grid(A, K, np.zeros(5), 16, supersample=1)
    # crop pixel (i, j) comes from image pixel A^-1 (i, j)
    for i, j in [(0, 0), (15, 3), (7, 12)]:
        p = np.linalg.solve(A, [i, j, 1.0])
        assert np.allclose(g[j, i], p[:2], atol=1e-9)


def test_crop_grid_through_lens_matches_projection():
    """A 3D point projected by the crop camera (pinhole, undistorted) and by the real lens lands where the
    grid says: the grid at the crop projection equals the distorted projection."""
    dist = np.array([-0.2, 0.05, 0.001, -0.002, 0.0])
    R, t = look_at([3000.0, 500.0, 1200.0], [0.0, 0.0, 900.0])
    cam = Camera(K=[[400.0, 0, 160], [0, 410, 118], [0, 0, 1]], R=R, t=t, dist=dist)
    X = np.array([[100.0, -200.0, 1100.0]])
    A = np.array([[0.4, 0, -20.0], [0, 0.4, -5.0], [0, 0, 1]])
    pin = Camera(K=cam.K, R=R, t=t).project(X)[0]
    crop_px = (A @ np.append(pin, 1.0))[:2]
    S = 64
    g = crop_grid(A, cam.K, dist, S, supersample=1)
    gx = cv2.remap(g[..., 0].astype(np.float32), np.float32([[crop_px[0]]]), np.float32([[crop_px[1]]]),
                   cv2.INTER_LINEAR)[0, 0]
    gy = cv2.remap(g[..., 1].astype(np.float32), np.float32([[crop_px[0]]]), np.float32([[crop_px[1]]]),
                   cv2.INTER_LINEAR)[0, 0]
    real = cam.project(X)[0]
    assert np.hypot(gx - real[0], gy - real[1]) < 0.02


def test_distort_normalized_matches_geometry():
    import torch

    from maskpose.geometry import distort

    xn = np.array([[0.1, -0.2], [0.3, 0.25], [-0.4, 0.1]])
    d = np.array([-0.1, 0.02, 0.003, -0.001, 0.004])
    ref = distort(torch.from_numpy(xn), torch.from_numpy(d)[None]).numpy()
    assert np.allclose(distort_normalized(xn, d), ref, atol=1e-12)


def test_sample_crop_area_average_and_mask_resolution():
    # a 2x-resolution image sampled with supersampling 2 averages 2x2 blocks exactly
    img = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    A = np.array([[0.5, 0, -0.25], [0, 0.5, -0.25], [0, 0, 1.0]])  # 64 px -> 32 px, pixel-centre aligned
    g = crop_grid(A, np.eye(3), np.zeros(5), 32, supersample=2)
    out = sample_crop(img, g, 32, (64, 64))
    ref = img.reshape(32, 2, 32, 2).mean((1, 3))
    assert np.allclose(out, ref, atol=1e-3)
    # the same crop from a half-resolution copy of the image (a working-resolution mask) lines up
    half = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
    out2 = sample_crop(half, crop_grid(A, np.eye(3), np.zeros(5), 32, 1), 32, (64, 64))
    assert np.allclose(out2, ref, atol=1e-3)


def test_person_crop_box_and_margin():
    m = np.zeros((100, 120), bool)
    m[20:80, 50:70] = True  # 60 rows x 20 cols
    cam = Camera(K=np.eye(3), R=np.eye(3), t=np.zeros(3))
    A, side = person_crop(m, (120, 100), cam, 32, margin=1.15)
    assert side == pytest.approx(60 * 1.15)
    centre = np.linalg.solve(A, [15.5, 15.5, 1.0])[:2]
    assert np.allclose(centre, [59.5, 49.5], atol=1e-9)
    # mask given at half resolution: same box in full-image pixels
    m2 = cv2.resize(m.astype(np.uint8), (60, 50), interpolation=cv2.INTER_NEAREST) > 0
    A2, side2 = person_crop(m2, (120, 100), cam, 32)
    assert side2 == pytest.approx(side) and np.allclose(A2, A)


def test_default_camera():
    cam = default_camera((1920, 1080), 55.0)
    assert cam.K[0, 2] == pytest.approx(959.5) and cam.K[1, 2] == pytest.approx(539.5)
    # 55 degrees across the longer side
    assert 2 * np.degrees(np.arctan(960 / cam.K[0, 0])) == pytest.approx(55.0)
    assert np.allclose(cam.R, np.eye(3)) and np.allclose(cam.t, 0) and not cam.dist.any()
    portrait = default_camera((1080, 1920), 55.0)
    assert portrait.K[0, 0] == pytest.approx(cam.K[0, 0])


# ============================================================================ end to end
def test_multiview_video_masks_cameras_and_loading(scene_mp4, tmp_path):
    sc = scene_mp4
    out = tmp_path / "ds"
    calls = []
    summary = prepare_dataset(sc["root"], out, calibration=sc["cameras"], size=64, masker="mog2",
                              progress=lambda d, n: calls.append((d, n)))
    T = sc["gt"].shape[1]
    assert summary["num_views"] == 3 and summary["view_names"] == ["cam01", "cam02", "cam03"]
    assert summary["processed"] == T and calls[-1] == (T, T) and len(calls) == T
    assert summary["fps"] == pytest.approx(25.0)
    ds = MaskPoseDataset(out)
    assert len(ds) == summary["num_samples"] >= T - 2
    item = ds[0]
    assert item["images"].shape == (3, 3, 64, 64) and item["crop_cameras"].shape == (3, 3, 4)
    meta = load_dataset_meta(out)
    assert meta["view_names"] == ["cam01", "cam02", "cam03"] and meta["image_size"] == [[224, 192]] * 3
    assert not (out / "gt").exists() and meta["has_gt"] is False
    ious, sides = [], []
    for n in range(len(ds)):
        f = int(ds.fields["frame"][n])
        for v in range(3):
            if not ds.valid[n, v]:
                continue
            m = read_mask(mask_path(out, ds.ids[n], v))
            ious.append(iou(m, crop_gt(sc["gt_und"][v, f], ds.A[n, v], 64)))
            ys, xs = np.nonzero(sc["gt_und"][v, f])
            sides.append(64 / ds.A[n, v, 0, 0] / (max(np.ptp(xs), np.ptp(ys)) + 1))
    assert ds.valid.mean() > 0.9
    assert np.mean(ious) > 0.85 and np.min(ious) > 0.6, (np.mean(ious), np.min(ious))
    # the crop is around the person only (the distractor in view 0 is far away and was removed)
    assert np.median(sides) == pytest.approx(1.15, abs=0.08)
    assert max(sides) < 1.5


def test_distorted_png_views_crop_cameras_reproject_exactly(tmp_path):
    """Lens distortion is removed: the crop camera A K [R|t] projects a known 3D point (a magenta dot painted
    on the person) onto the dot in the crop image (< 1 px), and crop masks match the pinhole silhouettes."""
    dist = np.array([-0.35, 0.12, 0.002, -0.001, 0.0])
    sc = make_scene(tmp_path / "imgs", views=2, frames=14, W=320, H=192, fmt="png", dist=dist, marker=True, seed=3,
                    walk=1200.0, yaw_offset=-14.0)
    out = tmp_path / "ds"
    S = 96
    summary = prepare_dataset(sc["root"], out, calibration=sc["cameras"], size=S, masker="median")
    ds = MaskPoseDataset(out)
    errs, ious = [], []
    for n in range(len(ds)):
        f = int(ds.fields["frame"][n])
        for v in range(2):
            if not ds.valid[n, v]:
                continue
            cam = ds.cameras(n)[v]
            assert np.allclose(cam.dist, dist)
            P = ds.A[n, v] @ cam.P
            x = P @ np.append(sc["marker3d"][f], 1.0)
            target = x[:2] / x[2]
            img = (ds[n]["images"][v].permute(1, 2, 0).numpy() * 255).astype(np.float64)
            magenta = np.clip(np.minimum(img[..., 0], img[..., 2]) - img[..., 1] - 60.0, 0, None)
            yy, xx = np.mgrid[0:S, 0:S]
            near = (xx - target[0]) ** 2 + (yy - target[1]) ** 2 < 8 ** 2
            w = magenta * near
            assert w.sum() > 0
            found = np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])
            errs.append(np.linalg.norm(found - target))
            m = read_mask(mask_path(out, ds.ids[n], v))
            ious.append(iou(m, crop_gt(sc["gt_und"][v, f], ds.A[n, v], S)))
    assert summary["num_samples"] == 14 and summary["skipped"] == {}
    assert np.mean(errs) < 0.25 and np.max(errs) < 0.5, errs
    assert np.mean(ious) > 0.85, np.mean(ious)


def test_single_view_without_calibration_uses_default_camera(scene_mp4, tmp_path):
    out = tmp_path / "single"
    summary = prepare_dataset(scene_mp4["paths"][1], out, size=48, masker="knn", stride=2, start=1, max_frames=6)
    assert summary["frames"] == [1, 3, 5, 7, 9, 11][: summary["num_samples"]]
    assert summary["num_samples"] >= 5
    ds = MaskPoseDataset(out)
    cam = ds.cameras(0)[0]
    ref = default_camera((224, 192))
    assert np.allclose(cam.K, ref.K) and np.allclose(cam.R, np.eye(3)) and np.allclose(cam.t, 0)
    meta = load_dataset_meta(out)
    assert meta["num_views"] == 1 and "default pinhole" in meta["camera_model"]
    assert list(ds.fields) == ["frame"]


def test_views_with_different_frame_counts(tmp_path):
    a = make_scene(tmp_path / "a", views=2, frames=16, fmt="avi", seed=1)
    # cam02 gets 3 extra frames: small difference -> truncated with a warning
    src = cv2.VideoCapture(str(a["paths"][1]))
    frames = []
    while True:
        ok, f = src.read()
        if not ok:
            break
        frames.append(f)
    src.release()
    w = cv2.VideoWriter(str(a["paths"][1]), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (224, 192))
    for f in frames + frames[-3:]:
        w.write(f)
    w.release()
    with pytest.warns(VideoWarning, match="slightly different frame counts"):
        s = prepare_dataset(a["root"], tmp_path / "o1", calibration=a["cameras"], size=32, max_frames=3)
    assert s["processed"] == 3
    # 40 frames against 16: refused, listing the counts
    w = cv2.VideoWriter(str(a["paths"][1]), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (224, 192))
    for f in frames * 2 + frames[:8]:
        w.write(f)
    w.release()
    with pytest.raises(VideoError, match=r"cam01: 16, cam02: 40"):
        prepare_dataset(a["root"], tmp_path / "o2", calibration=a["cameras"], size=32)


def test_calibration_that_does_not_fit_the_views(scene_mp4, tmp_path):
    cams = scene_mp4["cameras"]
    with pytest.raises(CalibrationError, match="3 views but only 2"):
        prepare_dataset(scene_mp4["root"], tmp_path / "o1", calibration=cams[:2], size=32)
    renamed = [Camera(K=c.K, R=c.R, t=c.t, dist=c.dist, size=c.size, name=n)
               for c, n in zip(cams, ["left", "right", "top"])]
    with pytest.raises(CalibrationError, match="cam01"):
        prepare_dataset(scene_mp4["root"], tmp_path / "o2", calibration=renamed, size=32)
    wrong_size = [Camera(K=c.K, R=c.R, t=c.t, size=(640, 200), name=c.name) for c in cams]
    with pytest.raises(CalibrationError, match="640x200"):
        prepare_dataset(scene_mp4["root"], tmp_path / "o3", calibration=wrong_size, size=32)
    with pytest.raises(PrepareError, match="need a calibration"):
        prepare_dataset(scene_mp4["root"], tmp_path / "o4", size=32)
    # a calibration file with other camera names
    from maskpose.data.calibration import write_toml

    write_toml(renamed, tmp_path / "calib.toml")
    with pytest.raises(CalibrationError, match="calib.toml"):
        prepare_dataset(scene_mp4["root"], tmp_path / "o5", calibration=tmp_path / "calib.toml", size=32)


def test_empty_masks_are_counted_skips(scene_mp4, tmp_path):
    """User masks with an empty frame, a frame without a file and a frame with only a speck: counted, no crash."""
    sc = scene_mp4
    mdir = tmp_path / "masks" / "cam02"
    mdir.mkdir(parents=True)
    for k in range(8):
        m = sc["gt"][1, k].copy()
        if k == 2:
            m[:] = False
        if k == 5:
            m[:] = False
            m[10:12, 10:12] = True
        if k != 6:
            cv2.imwrite(str(mdir / f"mask_{k:03d}.png"), m.astype(np.uint8) * 255)
    s = prepare_dataset(sc["paths"][1], tmp_path / "o", masks_dir=tmp_path / "masks", size=32, max_frames=8)
    assert s["skipped"] == {"empty": 2, "too_small": 1}
    assert s["num_samples"] == 5 and s["frames"] == [0, 1, 3, 4, 7]
    assert s["invalid_views"]["cam02"] == {"empty": 2, "too_small": 1}
    ds = MaskPoseDataset(tmp_path / "o")
    # user masks are exact: crops match the silhouettes
    for n in range(len(ds)):
        f = int(ds.fields["frame"][n])
        assert iou(read_mask(mask_path(tmp_path / "o", ds.ids[n], 0)), crop_gt(sc["gt_und"][1, f], ds.A[n, 0], 32)) > 0.9
    # a mask of the wrong size is an error naming the file
    cv2.imwrite(str(mdir / "mask_000.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(MaskError, match="mask_000.png"):
        prepare_dataset(sc["paths"][1], tmp_path / "o2", masks_dir=tmp_path / "masks", size=32, max_frames=2)


def test_no_person_anywhere_is_a_clear_error(scene_mp4, tmp_path):
    mdir = tmp_path / "masks"
    mdir.mkdir()
    for k in range(3):
        cv2.imwrite(str(mdir / f"{k:06d}.png"), np.zeros((192, 224), np.uint8))
    with pytest.raises(PrepareError, match="no usable instant"):
        prepare_dataset(scene_mp4["paths"][0], tmp_path / "o", masks_dir=mdir, size=32, max_frames=3)
    assert not (tmp_path / "o" / "meta.json").exists()


def _snapshot(out: Path) -> dict[str, tuple[int, bytes]]:
    snap = {}
    for sub in ("frames", "masks", "weights"):
        for p in sorted((out / sub).iterdir()):
            snap[f"{sub}/{p.name}"] = (p.stat().st_mtime_ns, p.read_bytes())
    return snap


def test_interrupted_prepare_resumes_and_equals_uninterrupted_run(scene_mp4, tmp_path):
    sc = scene_mp4
    kw = dict(calibration=sc["cameras"], size=32, max_frames=10)  # default masker (median)
    ref = prepare_dataset(sc["root"], tmp_path / "ref", **kw)

    class Stop(Exception):
        pass

    def interrupt(done, total):
        if done == 4:
            raise Stop

    out = tmp_path / "run"
    with pytest.raises(Stop):
        prepare_dataset(sc["root"], out, progress=interrupt, **kw)
    assert not (out / "meta.json").exists()
    with pytest.raises(Exception, match="meta.json is missing"):
        MaskPoseDataset(out)
    before = _snapshot(out)
    assert len(before) > 0
    seen = []
    res = prepare_dataset(sc["root"], out, progress=lambda d, n: seen.append(d), **kw)
    assert res["resumed"] == 4 and res["computed"] == 6 and seen[0] == 4 and seen[-1] == 10
    after = _snapshot(out)
    for k, (mtime, data) in before.items():  # finished instants were not recomputed
        assert after[k][0] == mtime, k
    # same dataset as the uninterrupted run
    a = np.load(tmp_path / "ref" / "samples.npz")
    b = np.load(out / "samples.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert np.array_equal(a[k], b[k]), k
    ref_snap = _snapshot(tmp_path / "ref")
    assert sorted(ref_snap) == sorted(after)
    for k in ref_snap:
        if k.startswith("masks/"):
            assert ref_snap[k][1] == after[k][1], k
    assert res["num_samples"] == ref["num_samples"] and res["skipped"] == ref["skipped"]
    # a finished dataset re-run with the same settings is a no-op that re-assembles
    again = prepare_dataset(sc["root"], out, **kw)
    assert again["computed"] == 0 and again["num_samples"] == ref["num_samples"]
    # other settings on the same folder are refused, overwrite starts over
    with pytest.raises(PrepareError, match="size"):
        prepare_dataset(sc["root"], out, **{**kw, "size": 48})
    fresh = prepare_dataset(sc["root"], out, overwrite=True, **{**kw, "size": 48, "max_frames": 2})
    assert fresh["computed"] == 2 and MaskPoseDataset(out).size == 48


def test_output_folder_checks(scene_mp4, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(PrepareError, match="not empty"):
        prepare_dataset(scene_mp4["paths"][0], busy, size=32, max_frames=2)
    with pytest.raises(PrepareError, match="start = 50"):
        prepare_dataset(scene_mp4["paths"][0], tmp_path / "o", size=32, start=50)
    with pytest.raises(PrepareError, match="unknown masker"):
        prepare_dataset(scene_mp4["paths"][0], tmp_path / "o", size=32, masker="magic")
    # overwrite keeps files that are not the dataset's
    s = prepare_dataset(scene_mp4["paths"][0], busy, size=32, max_frames=2, overwrite=True)
    assert s["num_samples"] >= 1 and (busy / "notes.txt").read_text() == "mine"
