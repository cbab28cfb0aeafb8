"""MPI-INF-3DHP importers on tiny synthetic releases written in the real file formats.

Training set: ``annot.mat`` (MATLAB v5, 14 x 1 cells of [N, 84] / [N, 56]), ``camera.calibration``
(Skeletool text format, 14 cameras), and MJPG ``.avi`` videos for images, FGmasks (red channel,
person + chair) and ChairMasks (red channel, 0 at the chair). Test set: ``annot_data.mat`` as MATLAB
v7.3 (HDF5; arrays stored with MATLAB's reversed axis order and ``MATLAB_class`` attributes) and
``imageSequence/img_%06d.jpg``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from maskpose.data.folder import MaskPoseDataset
from maskpose.data.importers.common import DatasetImportError
from maskpose.data.importers.mpi3dhp import (MPI3DHP17_JOINTS, MPI3DHP28_JOINTS, import_3dhp, load_3dhp_calibration,
                                             read_test_annotation, mpi3dhp_test_camera)
from maskpose.geometry import look_at

h5py = pytest.importorskip("h5py")

W = H = 120
N = 12          # frames of the videos
N_ANNOT = 13    # annot.mat has one row more than the videos (S3/Seq1-style quirk)
RADIUS = 4.0
NAMES18 = ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine", "neck",
           "head", "head_top", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
           "right_wrist")
MARKERS = ("head_top", "left_wrist", "right_wrist", "left_ankle", "right_ankle")
CHAIR_FRAME, OUTSIDE_FRAME, OVEREXPOSED_FRAME = 3, 6, 9


# ============================================================================ synthetic scene
def pose28(i: int) -> np.ndarray:
    p = {"pelvis": (0, 0, 950), "spine": (0, 0, 1050), "spine2": (0, 0, 1150), "spine3": (0, 0, 1250),
         "spine4": (0, 0, 1350), "neck": (0, 0, 1480), "head": (0, -40, 1580), "head_top": (0, 0, 1740),
         "left_clavicle": (80, 0, 1430), "left_shoulder": (190, 0, 1420), "left_elbow": (470, 0, 1480),
         "left_wrist": (740, 0, 1560), "left_hand": (800, 0, 1580), "right_clavicle": (-80, 0, 1430),
         "right_shoulder": (-190, 0, 1420), "right_elbow": (-470, 0, 1350), "right_wrist": (-740, 0, 1260),
         "right_hand": (-800, 0, 1240), "left_hip": (130, 0, 930), "left_knee": (240, 0, 520),
         "left_ankle": (360, 0, 90), "left_foot": (370, -60, 40), "left_toe": (380, -120, 20),
         "right_hip": (-130, 0, 930), "right_knee": (-240, 0, 520), "right_ankle": (-360, 0, 90),
         "right_foot": (-370, -60, 40), "right_toe": (-380, -120, 20)}
    j = np.array([p[n] for n in MPI3DHP28_JOINTS], dtype=np.float64)
    j[:, 0] += 30.0 * i
    j[MPI3DHP28_JOINTS.index("left_wrist"), 2] += 15.0 * i
    return j


def cameras14() -> list[dict]:
    cams = []
    for c in range(14):
        az = np.deg2rad(20 + 360 * c / 14)
        eye = np.array([3300 * np.cos(az), 3300 * np.sin(az), 1200.0 + 20 * c])
        R, t = look_at(eye, np.array([0.0, 0.0, 900.0]))
        K = np.array([[100.0 + c, 0.0, 59.5 + 0.1 * c], [0.0, 100.5 + c, 60.2], [0.0, 0.0, 1.0]])
        cams.append({"K": K, "R": R, "t": t})
    return cams


def project(cam: dict, X: np.ndarray) -> np.ndarray:
    xc = X @ cam["R"].T + cam["t"]
    uv = xc @ cam["K"].T
    return uv[..., :2] / uv[..., 2:]


def write_calibration(path: Path, cams: list[dict]) -> None:
    lines = ["Skeletool Camera Calibration File V1.0"]
    for c, cam in enumerate(cams):
        I = np.eye(4)
        I[:3, :3] = cam["K"]
        E = np.eye(4)
        E[:3, :3], E[:3, 3] = cam["R"], cam["t"]
        lines += [f"name          {c}", "  sensor      10 10", f"  size        {W} {H}", "  animated    0",
                  "  intrinsic   " + " ".join(f"{v:.10g}" for v in I.ravel()),
                  "  extrinsic   " + " ".join(f"{v:.10g}" for v in E.ravel()), "  radial      0"]
    path.write_text("\n".join(lines) + "\n")


def objarr(items: list[np.ndarray]) -> np.ndarray:
    a = np.empty((len(items), 1), dtype=object)
    for k, x in enumerate(items):
        a[k, 0] = x
    return a


def write_annot(path: Path, cams: list[dict], poses: np.ndarray) -> None:
    a3 = [np.stack([(p @ c["R"].T + c["t"]).reshape(84) for p in poses]) for c in cams]
    a2 = [np.stack([project(c, p).reshape(56) for p in poses]) for c in cams]
    scipy.io.savemat(path, {"annot2": objarr(a2), "annot3": objarr(a3), "univ_annot3": objarr(a3),
                            "cameras": np.arange(14)[None], "frames": np.arange(len(poses))[:, None]})


def disks(points: np.ndarray, r: float = RADIUS) -> np.ndarray:
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    m = np.zeros((H, W), bool)
    for p in points:
        m |= (u - p[0]) ** 2 + (v - p[1]) ** 2 <= r * r
    return m


def write_avi(path: Path, frames: list[np.ndarray]) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    assert w.isOpened()
    for f in frames:
        w.write(f)  # BGR
    w.release()


CHAIR_BOX = (slice(100, 118), slice(2, 30))  # rows, cols: a chair in the lower-left corner of every view


def write_train_sequence(d: Path, cams: list[dict], poses: np.ndarray, views=(0, 2, 4, 7, 8)) -> None:
    for sub in ("imageSequence", "FGmasks", "ChairMasks"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    write_calibration(d / "camera.calibration", cams)
    write_annot(d / "annot.mat", cams, poses)
    idx = [MPI3DHP28_JOINTS.index(n) for n in NAMES18]
    for c in views:
        imgs, fgs, chairs = [], [], []
        for i in range(N):
            uv = project(cams[c], poses[i])
            person = disks(uv[idx])
            chair = np.zeros((H, W), bool)
            chair[CHAIR_BOX] = True
            if i == CHAIR_FRAME and c == 4:   # the chair covers the legs in camera 4
                chair |= disks(uv[[MPI3DHP28_JOINTS.index(n) for n in ("left_knee", "left_ankle", "right_knee",
                                                                     "right_ankle", "left_hip", "right_hip")]], 9)
            img = np.full((H, W, 3), 40 + 12 * i, np.uint8)
            img[person] = (40, 60, 240)     # BGR: red person
            imgs.append(img)
            fg = np.zeros((H, W, 3), np.uint8)
            fg[person | chair, 2] = 255
            if i == OVEREXPOSED_FRAME and c == 7:
                fg[:, :, 2] = 255
            fgs.append(fg)
            ch = np.full((H, W, 3), 0, np.uint8)
            ch[~chair, 2] = 255
            chairs.append(ch)
        write_avi(d / "imageSequence" / f"video_{c}.avi", imgs)
        write_avi(d / "FGmasks" / f"video_{c}.avi", fgs)
        write_avi(d / "ChairMasks" / f"video_{c}.avi", chairs)


@pytest.fixture(scope="module")
def train_root(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("3dhp")
    cams = cameras14()
    poses = np.stack([pose28(i) for i in range(N_ANNOT)])
    poses[OUTSIDE_FRAME, MPI3DHP28_JOINTS.index("right_hand")] += (-4000, 0, 0)  # far out of every image
    write_train_sequence(root / "S1" / "Seq1", cams, poses)
    poses2 = poses + np.array([100.0, 50.0, 0.0])
    write_train_sequence(root / "S2" / "Seq1", cams, poses2, views=(0, 2))
    return {"root": root, "cams": cams, "poses": {"S1": poses, "S2": poses2}}


# ============================================================================ tests: training set
def test_calibration_file(train_root, tmp_path):
    cams = load_3dhp_calibration(train_root["root"] / "S1/Seq1/camera.calibration")
    assert [c.name for c in cams] == [str(c) for c in range(14)]
    for c, ref in zip(cams, train_root["cams"]):
        np.testing.assert_allclose(c.K, ref["K"], atol=1e-6)
        np.testing.assert_allclose(c.R, ref["R"], atol=1e-8)
        np.testing.assert_allclose(c.t, ref["t"], atol=1e-5)
        assert c.size == (W, H)
    bad = tmp_path / "camera.calibration"
    text = (train_root["root"] / "S1/Seq1/camera.calibration").read_text()
    bad.write_text(text[: text.index("extrinsic")])
    with pytest.raises(DatasetImportError, match="camera.calibration"):
        load_3dhp_calibration(bad)


def test_import_train_end_to_end(train_root, tmp_path):
    out = tmp_path / "train"
    s = import_3dhp(train_root["root"], out, subjects=["S1"], stride=3, size=64)
    ds = MaskPoseDataset(out, with_gt=True)
    info = [ds.sample_info(i) for i in range(len(ds))]
    # frames 0,3,6,9,12 planned; 12 is beyond the 12-frame videos; 3 (chair), 6 (joint outside), 9 (over-exposed)
    # are left out by the occlusion rule
    assert [x["frame"] for x in info] == [0]
    assert s["skipped"]["frames_beyond_shortest"] == 1
    assert s["skipped"]["chair_occlusion"] == 1
    assert s["skipped"]["joints_outside_image"] == 1
    assert s["skipped"]["overexposed"] == 1
    s2 = import_3dhp(train_root["root"], tmp_path / "all", subjects="1", stride=1, size=64, occlusion_filter=False)
    ds = MaskPoseDataset(tmp_path / "all", with_gt=True)
    info = [ds.sample_info(i) for i in range(len(ds))]
    assert [x["frame"] for x in info] == list(range(N)) and s2["num_views"] == 5
    assert ds.num_views == 5 and ds.meta["view_names"] == ["video_0", "video_2", "video_4", "video_7", "video_8"]

    cams = train_root["cams"]
    idx = {n: MPI3DHP28_JOINTS.index(n) for n in MPI3DHP28_JOINTS}
    for i, x in enumerate(info):
        src = train_root["poses"]["S1"][x["frame"]]
        # GT: world joints (recovered from camera coordinates), H36M-18 order, thorax = shoulder midpoint
        expect = np.stack([src[idx[n]] for n in NAMES18] + [0.5 * (src[idx["left_shoulder"]] +
                                                                   src[idx["right_shoulder"]])])
        np.testing.assert_allclose(ds.gt_joints3d[i], expect, atol=1e-6)
        for v, c in enumerate((0, 2, 4, 7, 8)):
            np.testing.assert_allclose(ds.R[i, v], cams[c]["R"], atol=1e-8)

    # crop cameras vs mask blobs (no lens distortion in 3DHP); the chair is removed from the masks
    S = ds.size
    errs = []
    for i, x in enumerate(info):
        for v in range(5):
            if x["frame"] == OVEREXPOSED_FRAME and v == 3:
                continue  # whole image foreground: no blobs
            assert ds.valid[i, v]
            m = ds._masks[i, v]
            n, labels, stats, cents = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
            proj = (ds.gt_joints2d[i, v] + 1) * (S - 1) / 2
            # the chair rectangle (bottom-left of the frame) is not in the mask
            A = ds.A[i, v]
            chair_px = A[:2, :2] @ np.array([15.0, 109.0]) + A[:2, 2]
            if 0 <= chair_px[0] < S and 0 <= chair_px[1] < S and not (x["frame"] == CHAIR_FRAME and v == 2):
                assert not m[int(chair_px[1]), int(chair_px[0])]
            for name in MARKERS:
                p = proj[NAMES18.index(name)]
                inside = 0 <= round(p[0]) < S and 0 <= round(p[1]) < S
                if x["frame"] == CHAIR_FRAME and v == 2 and "ankle" in name:
                    # the chair covers the legs in camera 4 at this frame: removed from the mask
                    assert not inside or not m[int(round(p[1])), int(round(p[0]))]
                    continue
                lab = labels[int(round(p[1])), int(round(p[0]))]
                assert lab > 0, (x, v, name)
                others = [q for q in NAMES18 if q != name and
                          labels[int(np.clip(round(proj[NAMES18.index(q)][1]), 0, S - 1)),
                                 int(np.clip(round(proj[NAMES18.index(q)][0]), 0, S - 1))] == lab]
                if not others:
                    errs.append(np.linalg.norm(cents[lab] - p))
            # the frame is the right frame (background level encodes the index)
            img = ds._images[i, v].astype(float)
            far = cv2.dilate(m.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
            far &= img.sum(-1) > 0
            assert abs(np.median(img[far][:, 1]) - (40 + 12 * x["frame"])) < 6
    assert len(errs) >= 40 and max(errs) < 0.6, (len(errs), max(errs))


def test_train_filters_and_missing_files(train_root, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(train_root["root"], root)
    # default split = train: S1..S8; only S1, S2 are there (counted). S2 has only videos of cameras 0 and 2
    s = import_3dhp(root, tmp_path / "o1", cameras="0,2", max_frames=2, size=32)
    ds = MaskPoseDataset(tmp_path / "o1")
    assert sorted({ds.sample_info(i)["subject"] for i in range(len(ds))}) == ["S1", "S2"]
    assert s["skipped"]["missing_subject"] == 6
    # camera 4 of S2 has no video: invalid view, counted once per sequence
    s = import_3dhp(root, tmp_path / "o2", subjects="S2", cameras=[0, 4], stride=4, size=32, occlusion_filter=False)
    ds = MaskPoseDataset(tmp_path / "o2")
    assert s["skipped"]["missing_video"] == 1 and not ds.valid[:, 1].any() and ds.valid[:, 0].all()
    with pytest.raises(DatasetImportError, match="too_few_views|no sample"):
        import_3dhp(root, tmp_path / "o3", subjects="S2", cameras=[0, 4], min_views=2, size=32)
    # missing FG mask video of a camera -> that view invalid
    (root / "S2/Seq1/FGmasks/video_2.avi").unlink()
    s = import_3dhp(root, tmp_path / "o4", subjects="S2", cameras=[0, 2], stride=4, size=32, occlusion_filter=False)
    assert s["skipped"]["missing_mask_file"] == 1
    assert not MaskPoseDataset(tmp_path / "o4").valid[:, 1].any()
    # truncated annot.mat -> clear error naming the file
    p = root / "S1/Seq1/annot.mat"
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(DatasetImportError, match="annot.mat"):
        import_3dhp(root, tmp_path / "o5", subjects="S1", size=32)
    s = import_3dhp(root, tmp_path / "o6", subjects="S1,S2", cameras=[0], stride=6, size=32, strict=False)
    assert s["skipped"]["bad_file"] == 1 and "S1/Seq1" in s["bad_files"][0]


# ============================================================================ tests: test set
TS_FRAMES = 5


def write_mat73_numeric(f, name: str, arr: np.ndarray) -> None:
    d = f.create_dataset(name, data=np.asarray(arr, dtype=np.float64))
    d.attrs["MATLAB_class"] = np.bytes_(b"double")


def write_test_sequence(root: Path, name: str) -> dict:
    cam = mpi3dhp_test_camera(name)
    Wt, Ht = cam.size
    d = root / name / "imageSequence"
    d.mkdir(parents=True)
    # 17 'relevant' joints in camera coordinates (camera 3.5 m in front of the person, y down)
    j28 = np.stack([pose28(i) for i in range(TS_FRAMES)])
    rel = [MPI3DHP28_JOINTS.index(n) for n in MPI3DHP17_JOINTS]
    R, t = look_at(np.array([0.0, -3500.0, 1000.0]), np.array([0.0, 0.0, 1000.0]))
    a3 = np.einsum("ij,nkj->nki", R, j28[:, rel]) + t
    uv = a3 @ cam.K.T
    a2 = uv[..., :2] / uv[..., 2:]
    univ = a3 * 0.9
    valid = np.array([1, 1, 0, 1, 1], float)
    act = np.array([1, 2, 3, 4, 6], float)
    path = root / name / "annot_data.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        # MATLAB dims 2 x 17 x 1 x N -> HDF5 (N, 1, 17, 2); 1 x N vectors -> (N, 1)
        write_mat73_numeric(f, "annot2", a2[:, None])
        write_mat73_numeric(f, "annot3", a3[:, None])
        write_mat73_numeric(f, "univ_annot3", univ[:, None])
        write_mat73_numeric(f, "valid_frame", valid[:, None])
        write_mat73_numeric(f, "activity_annotation", act[:, None])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")
    masks = []
    for i in range(TS_FRAMES):
        img = np.full((Ht, Wt, 3), 90, np.uint8)
        m8 = np.zeros((Ht, Wt), np.uint8)
        for p in a2[i]:
            cv2.circle(m8, (int(round(p[0])), int(round(p[1]))), 30, 255, -1)
        m = m8 > 0
        img[m] = (200, 30, 30)
        cv2.imwrite(str(d / f"img_{i + 1:06d}.jpg"), img)
        masks.append(m)
    return {"a2": a2, "a3": a3, "univ": univ, "valid": valid, "masks": masks, "act": act}


@pytest.fixture(scope="module")
def test_root(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("3dhp_test")
    return {"root": root, "TS1": write_test_sequence(root, "TS1"), "TS5": write_test_sequence(root, "TS5")}


def test_test_annotation_reader(test_root):
    a = read_test_annotation(test_root["root"] / "TS1/annot_data.mat")
    np.testing.assert_allclose(a.annot3, test_root["TS1"]["a3"])
    np.testing.assert_array_equal(a.valid, test_root["TS1"]["valid"] > 0)
    np.testing.assert_array_equal(a.activity, test_root["TS1"]["act"].astype(int))


def test_import_test_set_without_and_with_masks(test_root, tmp_path):
    s = import_3dhp(test_root["root"], tmp_path / "t1", split="test", size=64)
    ds = MaskPoseDataset(tmp_path / "t1", with_gt=True)
    info = [ds.sample_info(i) for i in range(len(ds))]
    assert [(x["sequence"], x["frame"]) for x in info] == [(q, i) for q in ("TS1", "TS5") for i in (0, 1, 3, 4)]
    assert s["skipped"]["invalid_frame"] == 2 and not ds.valid.any() and ds.meta["masks"] == "none"
    assert [x["activity"] for x in info[:4]] == ["Stand/Walk", "Exercise", "Crouch/Reach", "Sports"]
    univ = np.load(tmp_path / "t1/gt/joints3d_univ.npy")
    rel = list(MPI3DHP17_JOINTS)
    for k, x in enumerate(info):
        src = test_root[x["sequence"]]
        order = [rel.index(n) for n in NAMES18]
        a3 = src["a3"][x["frame"]]
        thorax = 0.5 * (a3[rel.index("left_shoulder")] + a3[rel.index("right_shoulder")])
        np.testing.assert_allclose(ds.gt_joints3d[k], np.vstack([src["a3"][x["frame"], order], thorax]), atol=1e-9)
        np.testing.assert_allclose(univ[k, :17], src["univ"][x["frame"], order], atol=1e-9)
        # the crop camera maps the 3D GT to the annotated 2D GT (through the crop affine), < 1e-6 px
        A = ds.A[k, 0]
        proj = (ds.gt_joints2d[k, 0, :17] + 1) * (ds.size - 1) / 2
        np.testing.assert_allclose(proj, src["a2"][x["frame"], order] @ A[:2, :2].T + A[:2, 2], atol=1e-3)
        assert proj.min() > 0 and proj.max() < ds.size - 1  # the GT box crop contains the person
    # with masks (SAM-style folder): one mask missing -> counted, that view invalid, the rest valid
    mdir = tmp_path / "masks"
    for q in ("TS1", "TS5"):
        (mdir / q).mkdir(parents=True)
        for i, m in enumerate(test_root[q]["masks"]):
            if (q, i) != ("TS5", 3):
                cv2.imwrite(str(mdir / q / f"img_{i + 1:06d}.png"), m.astype(np.uint8) * 255)
    s = import_3dhp(test_root["root"], tmp_path / "t2", split="test", masks_dir=mdir, size=64)
    ds = MaskPoseDataset(tmp_path / "t2", with_gt=True)
    assert s["skipped"]["missing_mask"] == 1
    assert ds.valid[:, 0].tolist() == [True] * 4 + [True, True, False, True]
    for k in np.flatnonzero(ds.valid[:, 0]):
        proj = (ds.gt_joints2d[k, 0] + 1) * (ds.size - 1) / 2
        m = ds._masks[k, 0]
        assert all(m[int(round(p[1])), int(round(p[0]))] for p in proj[:17])
    with pytest.raises(ValueError, match="sequences"):
        import_3dhp(test_root["root"], tmp_path / "t3", split="test", cameras=[0])
