"""Human3.6M importer on a tiny synthetic release written in the real file formats.

The test writes, for a known scene (4 H36M-style cameras with the H36M lens model, a known
32-joint skeleton moving over 10 frames): ``metadata.xml`` with a 300-number ``<w0>``, pose ``.cdf``
files (cdflib writer, variable ``Pose [1, N, 96]``), background-subtraction masks as MATLAB v7.3
``.mat`` (HDF5 cell of transposed logical arrays, MATLAB header in the user block) and mp4 videos.
Masks are disks around the *distorted* projections of the joints, so the crop cameras of the output
can be checked against the mask blobs to sub-pixel precision.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from maskpose.data.folder import MaskPoseDataset
from maskpose.data.importers.common import DatasetImportError
from maskpose.data.importers.h36m import (H36M_CAMERA_IDS, BsMasks, h36m_cameras, h36m_distort_normalized,
                                          h36m_undistort_normalized, import_h36m, load_h36m_calibration,
                                          read_pose_cdf)
from maskpose.geometry import look_at

cdflib = pytest.importorskip("cdflib")
h5py = pytest.importorskip("h5py")

W, H = 200, 150
N_FRAMES = 10
RADIUS = 3.5  # marker disk radius, raw image px
K_LENS = (-0.4, 0.3, -0.05)
P_LENS = (-0.0014, -0.001)

# 32-joint names (metadata.xml skel_pos tree) of the joints the importer keeps, by H36M-18 name
H36M18_FROM_32 = {"pelvis": 0, "RHip": 1, "RKnee": 2, "RAnkle": 3, "LHip": 6, "LKnee": 7, "LAnkle": 8,
                  "spine": 12, "neck": 13, "nose": 14, "head": 15, "LShoulder": 17, "LElbow": 18, "LWrist": 19,
                  "RShoulder": 25, "RElbow": 26, "RWrist": 27}
ORDER18 = ("pelvis", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "spine", "neck", "nose", "head",
           "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")
MARKERS = ("head", "LWrist", "RWrist", "LAnkle", "RAnkle", "LElbow", "RElbow", "LKnee", "RKnee")


# ============================================================================ synthetic scene
def base_pose32() -> np.ndarray:
    """A star-like pose (arms out, legs apart), z up, mm; every one of the 32 joints has a position."""
    p = {"pelvis": (0, 0, 950), "RHip": (-130, 0, 930), "RKnee": (-250, 20, 520), "RAnkle": (-380, 0, 90),
         "LHip": (130, 0, 930), "LKnee": (250, -20, 520), "LAnkle": (380, 0, 90), "spine": (0, 0, 1180),
         "neck": (0, 0, 1450), "nose": (0, -60, 1570), "head": (0, 0, 1720), "LShoulder": (190, 0, 1420),
         "LElbow": (480, 0, 1500), "LWrist": (760, 0, 1590), "RShoulder": (-190, 0, 1420),
         "RElbow": (-480, 0, 1330), "RWrist": (-760, 0, 1250)}
    j = np.zeros((32, 3))
    for name, idx in H36M18_FROM_32.items():
        j[idx] = p[name]
    # the 15 other joints: somewhere near their parent (they must not be used)
    for idx, near in {4: 3, 5: 3, 9: 8, 10: 8, 11: 0, 16: 17, 20: 19, 21: 19, 22: 19, 23: 19, 24: 25, 28: 27,
                      29: 27, 30: 27, 31: 27}.items():
        j[idx] = j[near] + np.array([7.0 * idx, -3.0 * idx, 5.0])
    return j


def sequence_poses(n: int, shift: float) -> np.ndarray:
    """[n, 32, 3]: the base pose walking along x and raising the left wrist."""
    base = base_pose32()
    out = np.repeat(base[None], n, axis=0)
    out[:, :, 0] += shift + 25.0 * np.arange(n)[:, None]
    out[:, 19, 2] += 10.0 * np.arange(n)
    return out


def euler_from_rotation(R: np.ndarray) -> np.ndarray:
    """Angles a with R = R1(a0) R2(a1) R3(a2) (metadata.xml convention)."""
    a1 = np.arcsin(np.clip(R[0, 2], -1, 1))
    a0 = np.arctan2(-R[1, 2], R[2, 2])
    a2 = np.arctan2(-R[0, 1], R[0, 0])
    return np.array([a0, a1, a2])


def rig(subject_index: int) -> list[dict]:
    """Four cameras (dict with K, R, T (centre), angles) around the origin; the rig turns per subject."""
    cams = []
    for c in range(4):
        az = np.deg2rad(45 + 90 * c + 7 * subject_index)
        eye = np.array([3600 * np.cos(az), 3600 * np.sin(az), 1500.0 + 30 * c])
        R, t = look_at(eye, np.array([0.0, 0.0, 900.0]))
        K = np.array([[190.0 + c, 0, 99.3 + c], [0, 189.0 + c, 74.6 - c], [0, 0, 1]])
        cams.append({"K": K, "R": R, "T": eye, "angles": euler_from_rotation(R)})
    return cams


def distorted_projection(cam: dict, X: np.ndarray) -> np.ndarray:
    """Reference implementation of the H36M lens model (ProjectPointRadial.m), independent of maskpose."""
    Xc = (X - cam["T"]) @ cam["R"].T
    x, y = Xc[..., 0] / Xc[..., 2], Xc[..., 1] / Xc[..., 2]
    r2 = x ** 2 + y ** 2
    radial = 1 + K_LENS[0] * r2 + K_LENS[1] * r2 ** 2 + K_LENS[2] * r2 ** 3
    tan = P_LENS[0] * y + P_LENS[1] * x
    xd = x * (radial + tan) + P_LENS[1] * r2
    yd = y * (radial + tan) + P_LENS[0] * r2
    K = cam["K"]
    return np.stack([K[0, 0] * xd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=-1)


def pinhole_projection(cam: dict, X: np.ndarray) -> np.ndarray:
    Xc = (X - cam["T"]) @ cam["R"].T
    uv = Xc @ cam["K"].T
    return uv[..., :2] / uv[..., 2:]


def render_mask(cam: dict, joints32: np.ndarray) -> np.ndarray:
    """bool [H, W]: disks of RADIUS around the distorted projections of the 17 used joints."""
    pts = distorted_projection(cam, joints32[list(H36M18_FROM_32.values())])
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    m = np.zeros((H, W), bool)
    for p in pts:
        m |= (u - p[0]) ** 2 + (v - p[1]) ** 2 <= RADIUS ** 2
    return m


def background_level(i: int) -> int:
    return 30 + 15 * i


def write_metadata_xml(path: Path, rigs: dict[int, list[dict]]) -> None:
    w0 = np.zeros(300)
    for s in range(1, 12):
        cams = rigs.get(s, rigs[1])
        for c, cam in enumerate(cams):
            w0[6 * (c * 11 + s - 1): 6 * (c * 11 + s - 1) + 6] = np.concatenate([cam["angles"], cam["T"]])
    for c, cam in enumerate(rigs[1]):
        K = cam["K"]
        w0[264 + 9 * c: 264 + 9 * c + 9] = [K[0, 0], K[1, 1], K[0, 2], K[1, 2], *K_LENS, *P_LENS]
    text = "[" + " ".join(repr(float(v)) for v in w0) + "]"
    items = "".join(f"<item>{c}</item>" for c in H36M_CAMERA_IDS)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<a>\n   <w0>{text}</w0>\n'
                    f"   <dbcameras><index2id>{items}</index2id></dbcameras>\n</a>\n")


def write_pose_cdf(path: Path, joints32: np.ndarray) -> None:
    from cdflib.cdfwrite import CDF

    arr = joints32.reshape(len(joints32), 96).astype(np.float32)
    w = CDF(str(path), cdf_spec={"Majority": "row_major"})
    w.write_var({"Variable": "Pose", "Data_Type": w.CDF_FLOAT, "Num_Elements": 1, "Rec_Vary": True,
                 "Dim_Sizes": [len(arr), 96]}, var_attrs={}, var_data=arr[None])
    w.close()


def write_bs_mat(path: Path, masks: list[np.ndarray | None]) -> None:
    """MATLAB v7.3 file with a 1 x N cell 'Masks' of H x W logical arrays (the ground_truth_bs layout);
    None is written as MATLAB writes an empty array (its dims as data, attribute MATLAB_empty)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        refs_group = f.create_group("#refs#")
        refs = []
        for k, m in enumerate(masks):
            if m is None:
                d = refs_group.create_dataset(f"m{k}", data=np.zeros(2, np.uint64))
                d.attrs["MATLAB_empty"] = np.uint8(1)
            else:
                d = refs_group.create_dataset(f"m{k}", data=m.T.astype(np.uint8))
                d.attrs["MATLAB_int_decode"] = np.int32(1)
            d.attrs["MATLAB_class"] = np.bytes_(b"logical")
            refs.append(d.ref)
        ds = f.create_dataset("Masks", (len(masks), 1), dtype=h5py.ref_dtype)
        for k, r in enumerate(refs):
            ds[k, 0] = r
        ds.attrs["MATLAB_class"] = np.bytes_(b"cell")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header)


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 50, (W, H))
    assert w.isOpened()
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()


def write_sequence(root: Path, subject: str, stem: str, poses: np.ndarray, cams: list[dict], *,
                   video_frames: dict[int, int] | None = None, skip_mask_file: tuple[int, ...] = (),
                   empty_mask: dict[int, int] | None = None) -> None:
    """Write one sequence (pose cdf, 4 videos, 4 bs mask files). ``video_frames[c]`` = number of frames of
    camera c's video (default = poses); ``empty_mask[c] = i`` empties camera c's mask at frame i."""
    sdir = root / subject
    for sub in ("MyPoseFeatures/D3_Positions", "Videos", "MySegmentsMat/ground_truth_bs"):
        (sdir / sub).mkdir(parents=True, exist_ok=True)
    write_pose_cdf(sdir / "MyPoseFeatures/D3_Positions" / f"{stem}.cdf", poses)
    for c, cid in enumerate(H36M_CAMERA_IDS):
        n_video = (video_frames or {}).get(c, len(poses))
        masks, frames = [], []
        for i in range(max(n_video, len(poses))):
            m = render_mask(cams[c], poses[min(i, len(poses) - 1)])
            if (empty_mask or {}).get(c) == i:
                m[:] = False
            masks.append(m)
            img = np.full((H, W, 3), background_level(i), np.uint8)
            img[m] = (250, 60, 40)
            frames.append(img)
        write_video(sdir / "Videos" / f"{stem}.{cid}.mp4", frames[:n_video])
        if c not in skip_mask_file:
            write_bs_mat(sdir / "MySegmentsMat/ground_truth_bs" / f"{stem}.{cid}.mat", masks[:len(poses)])


@pytest.fixture(scope="module")
def h36m_root(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("h36m")
    rigs = {1: rig(1), 9: rig(9)}
    write_metadata_xml(root / "metadata.xml", rigs)
    seqs = {
        ("S1", "Directions 1"): sequence_poses(N_FRAMES, 0.0),
        ("S1", "Walking"): sequence_poses(N_FRAMES, -200.0),
        ("S1", "Eating 2"): sequence_poses(N_FRAMES, 100.0),
        ("S9", "Photo 1"): sequence_poses(N_FRAMES, 50.0),
    }
    write_sequence(root, "S1", "Directions 1", seqs[("S1", "Directions 1")], rigs[1],
                   video_frames={0: N_FRAMES + 3}, empty_mask={2: 3})
    write_sequence(root, "S1", "Walking", seqs[("S1", "Walking")], rigs[1], video_frames={3: N_FRAMES - 4},
                   skip_mask_file=(1,))
    write_sequence(root, "S1", "Eating 2", seqs[("S1", "Eating 2")], rigs[1])
    write_sequence(root, "S9", "Photo 1", seqs[("S9", "Photo 1")], rigs[9])
    return {"root": root, "rigs": rigs, "seqs": seqs}


# ============================================================================ tests
def test_calibration_matches_the_written_rig(h36m_root, tmp_path):
    rigs = h36m_root["rigs"]
    for subject, s in (("S1", 1), ("S9", 9)):
        cams = load_h36m_calibration(h36m_root["root"] / "metadata.xml", subject)
        assert [c.name for c in cams] == list(H36M_CAMERA_IDS)
        for c, cam in enumerate(cams):
            np.testing.assert_allclose(cam.R, rigs[s][c]["R"], atol=1e-9)
            np.testing.assert_allclose(cam.center, rigs[s][c]["T"], atol=1e-6)
            np.testing.assert_allclose(cam.K, rigs[s][c]["K"], atol=1e-9)
            np.testing.assert_allclose(cam.dist[[0, 1, 4]], [K_LENS[0], K_LENS[1], K_LENS[2]])
    # subject as a path suffix; exact H36M projection equals the reference lens model
    cams = load_h36m_calibration(f"{h36m_root['root'] / 'metadata.xml'}#S9")
    np.testing.assert_allclose(cams[2].center, rigs[9][2]["T"], atol=1e-6)
    X = base_pose32()
    hc = h36m_cameras(h36m_root["root"] / "metadata.xml", "S1")
    for c in range(4):
        np.testing.assert_allclose(hc[c].project(X), distorted_projection(rigs[1][c], X), atol=1e-9)
        # the OpenCV record of the lens is close to the H36M model (fit of the tangential terms)
        assert np.abs(load_h36m_calibration(h36m_root["root"] / "metadata.xml", "S1")[c].project(X)
                      - distorted_projection(rigs[1][c], X)).max() < 0.05
    # the inverse lens model round-trips
    xy = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 7), np.linspace(-0.4, 0.4, 5)))
    xd, yd = h36m_distort_normalized(xy[0], xy[1], K_LENS, P_LENS)
    xu, yu = h36m_undistort_normalized(xd, yd, K_LENS, P_LENS)
    np.testing.assert_allclose(np.stack([xu, yu]), xy, atol=1e-9)
    with pytest.raises(DatasetImportError, match="S9"):
        load_h36m_calibration(h36m_root["root"] / "metadata.xml")
    bad = tmp_path / "metadata.xml"
    bad.write_text("<a><w0>[1 2 3]</w0></a>")
    with pytest.raises(DatasetImportError, match="300"):
        load_h36m_calibration(bad, "S1")


def test_bs_masks_reader(tmp_path):
    m = np.zeros((5, 7), bool)
    m[1:3, 2:6] = True
    write_bs_mat(tmp_path / "x.mat", [m, None, ~m])
    bs = BsMasks(tmp_path / "x.mat")
    assert len(bs) == 3
    np.testing.assert_array_equal(bs[0], m)
    assert bs[1].shape == (0, 0)
    np.testing.assert_array_equal(bs[2], ~m)
    bs.close()
    with pytest.raises(NotImplementedError):  # like the real files, scipy refuses them (v7.3)
        scipy.io.loadmat(tmp_path / "x.mat")


def test_pose_cdf_round_trip(h36m_root):
    p = h36m_root["root"] / "S1/MyPoseFeatures/D3_Positions/Walking.cdf"
    np.testing.assert_allclose(read_pose_cdf(p), h36m_root["seqs"][("S1", "Walking")], atol=1e-3)


def test_import_train_paper_actions_end_to_end(h36m_root, tmp_path):
    out = tmp_path / "train"
    calls = []
    summary = import_h36m(h36m_root["root"], out, split="train", actions="paper", stride=3, size=64,
                          progress=lambda d, t: calls.append((d, t)))
    ds = MaskPoseDataset(out, with_gt=True)
    info = [ds.sample_info(i) for i in range(len(ds))]
    # S1 only (train), Eating excluded by the paper's actions; Walking is cut to its shortest video (6 frames)
    assert {x["subject"] for x in info} == {"S1"}
    assert sorted({x["activity"] for x in info}) == ["Directions", "Walking"]
    dirs = [x["frame"] for x in info if x["activity"] == "Directions"]
    walk = [x["frame"] for x in info if x["activity"] == "Walking"]
    assert dirs == [0, 3, 6, 9]          # video of cam 0 is 3 frames longer than the poses: ignored
    assert walk == [0, 3]                # cam 3's video has only 6 frames: sequence cut to 6
    assert summary["num_samples"] == len(ds) == 6
    assert summary["skipped"]["frames_beyond_shortest"] == 2
    assert summary["skipped"]["missing_mask_file"] == 1
    assert summary["skipped"]["empty_mask"] == 1
    assert calls[-1][0] == calls[-1][1] == 8
    assert ds.num_views == 4 and ds.size == 64

    # validity: Walking has no mask file for camera 1; Directions frame 3 has an empty mask in camera 2
    for i, x in enumerate(info):
        expect = np.ones(4, bool)
        if x["activity"] == "Walking":
            expect[1] = False
        if x["activity"] == "Directions" and x["frame"] == 3:
            expect[2] = False
        np.testing.assert_array_equal(ds.valid[i], expect, err_msg=str(x))

    # ground truth: the right 17 of the 32 joints by name, plus thorax = shoulder midpoint, world mm
    for i, x in enumerate(info):
        src = h36m_root["seqs"][("S1", x["sequence"])][x["frame"]]
        expect = np.stack([src[H36M18_FROM_32[n]] for n in ORDER18] +
                          [0.5 * (src[H36M18_FROM_32["LShoulder"]] + src[H36M18_FROM_32["RShoulder"]])])
        np.testing.assert_allclose(ds.gt_joints3d[i], expect, atol=1e-3)

    # crop cameras: the GT joints project onto the centres of the mask blobs (< 1 px), which were drawn
    # around the *distorted* projections: this checks cameras, undistortion and crop affines together
    S = ds.size
    checked, worst, shift = 0, 0.0, 0.0
    for i, x in enumerate(info):
        src = h36m_root["seqs"][("S1", x["sequence"])][x["frame"]]
        for v in range(4):
            if not ds.valid[i, v]:
                continue
            m = ds._masks[i, v]
            n, labels, _, cents = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
            proj = (ds.gt_joints2d[i, v] + 1) * (S - 1) / 2  # crop px of the 18 GT joints
            marker_px = {name: proj[ORDER18.index(name)] for name in ORDER18}
            for name in MARKERS:
                p = marker_px[name]
                lab = labels[int(round(p[1])), int(round(p[0]))]
                assert lab > 0, f"{x} view {v}: {name} projects outside the mask"
                inside = [q for q in ORDER18 if labels[int(np.clip(round(marker_px[q][1]), 0, S - 1)),
                                                       int(np.clip(round(marker_px[q][0]), 0, S - 1))] == lab]
                if inside != [name]:
                    continue  # blob shared with another joint in this view
                err = np.linalg.norm(cents[lab] - p)
                worst = max(worst, err)
                checked += 1
                # how far the distorted (raw) position would be: shows the check is sensitive
                raw = distorted_projection(h36m_root["rigs"][1][v], src[H36M18_FROM_32[name]])
                A = ds.A[i, v]
                shift = max(shift, np.linalg.norm((A[:2, :2] @ raw + A[:2, 2]) - p))
    assert checked >= 40
    assert worst < 0.6, worst
    assert shift > 1.2, shift   # ignoring the lens model would have failed the check

    # frames: the right video frame of the right camera (background level encodes the frame index)
    for i, x in enumerate(info):
        for v in range(4):
            if not ds.valid[i, v]:
                continue
            img = ds._images[i, v].astype(float)
            far = cv2.dilate(ds._masks[i, v].astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
            inside_image = img.sum(-1) > 0
            bg = np.median(img[far & inside_image][:, 1])
            assert abs(bg - background_level(x["frame"])) < 6, (x, v, bg)
            # the person (red blobs) is under the mask
            assert img[ds._masks[i, v]][:, 0].mean() > 170


def test_import_test_split_subject_cameras(h36m_root, tmp_path):
    out = tmp_path / "test"
    s = import_h36m(h36m_root["root"], out, split="test", cameras=["60457274", 0], stride=4, size=48)
    ds = MaskPoseDataset(out, with_gt=True)
    assert ds.num_views == 2 and s["view_names"] == ["60457274", "54138969"]
    assert {ds.sample_info(i)["subject"] for i in range(len(ds))} == {"S9"}
    assert {ds.sample_info(i)["activity"] for i in range(len(ds))} == {"TakingPhoto"}
    assert [ds.sample_info(i)["frame"] for i in range(len(ds))] == [0, 4, 8]
    rig9 = h36m_root["rigs"][9]
    for i in range(len(ds)):
        cams = ds.cameras(i)
        np.testing.assert_allclose(cams[0].center, rig9[3]["T"], atol=1e-6)
        np.testing.assert_allclose(cams[1].center, rig9[0]["T"], atol=1e-6)
    # subjects/actions arguments override the split
    out2 = tmp_path / "custom"
    s2 = import_h36m(h36m_root["root"], out2, subjects="1", actions="Eating", max_frames=2, size=32)
    ds2 = MaskPoseDataset(out2)
    assert [ds2.sample_info(i)["frame"] for i in range(len(ds2))] == [0, 5]
    assert {ds2.sample_info(i)["sequence"] for i in range(len(ds2))} == {"Eating 2"}
    assert s2["num_samples"] == 2


def test_bad_files_are_named(h36m_root, tmp_path):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(h36m_root["root"], root)
    cdf = root / "S9/MyPoseFeatures/D3_Positions/Photo 1.cdf"
    cdf.write_bytes(cdf.read_bytes()[:300])
    with pytest.raises(DatasetImportError, match="Photo 1.cdf"):
        import_h36m(root, tmp_path / "o1", split="test", size=32)
    assert not (tmp_path / "o1" / "meta.json").exists()
    # strict=False: the sequence is skipped and listed
    s = import_h36m(root, tmp_path / "o2", subjects=["S1", "S9"], actions="Eating,TakingPhoto", size=32,
                    strict=False, max_frames=1)
    assert s["skipped"]["bad_file"] == 1 and "Photo 1.cdf" in s["bad_files"][0]
    assert s["num_samples"] == 1
    # a truncated mask file
    mat = root / "S1/MySegmentsMat/ground_truth_bs/Eating 2.58860488.mat"
    mat.write_bytes(mat.read_bytes()[:2000])
    with pytest.raises(DatasetImportError, match="Eating 2.58860488.mat"):
        import_h36m(root, tmp_path / "o3", subjects="S1", actions="Eating", size=32)
    with pytest.raises(DatasetImportError, match="camera file"):
        import_h36m(root, tmp_path / "o4", split="train", calibration=root / "nope.xml")
    with pytest.raises(ValueError, match="unknown Human3.6M action"):
        import_h36m(root, tmp_path / "o5", actions="Dancing")


def test_metadata_xml_is_parsed_like_the_official_file(tmp_path):
    """The official metadata.xml has <mapping> rows (incl. a per-subject resolution row) before <w0>."""
    rigs = {1: rig(1)}
    write_metadata_xml(tmp_path / "metadata.xml", rigs)
    tree = ET.parse(tmp_path / "metadata.xml")
    root = tree.getroot()
    mapping = ET.Element("mapping")
    rows = [["Action", "subaction"] + [f"S{s}" for s in range(1, 12)],
            [None, None] + ["[150 200;152 200;150 200;150 200]"] * 11]
    for row in rows:
        tr = ET.SubElement(mapping, "tr")
        for cell in row:
            ET.SubElement(tr, "td").text = cell
    root.insert(0, mapping)
    tree.write(tmp_path / "metadata.xml")
    cams = load_h36m_calibration(tmp_path / "metadata.xml", 1)
    assert [c.size for c in cams] == [(200, 150), (200, 152), (200, 150), (200, 150)]
