"""TikTok and MPII importers, and the shared importer helpers, on tiny files in the real formats.

TikTok: ``TikTok_dataset/<5-digit id>/{images,masks}/<4-digit>.png`` (nested download layout).
MPII: mmpose/HRNet ``annot/mpii_val.json`` + HRNet ``annot/gt_valid.mat`` (MATLAB v5 ``headboxes_src``)
and the official ``mpii_human_pose_v1_u12_1.mat`` (struct ``RELEASE``, written with scipy in the real
nested struct layout). (H36M and 3DHP: ``test_import_h36m.py``, ``test_import_3dhp.py``.)
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from maskpose.data.folder import MaskPoseDataset
from maskpose.data.importers import DatasetImportError, import_mpii, import_tiktok
from maskpose.data.importers.common import clean_mask, crop_view, select_frames
from maskpose.data.importers.mpii import MPII_JOINTS, read_mpii_official
from maskpose.geometry import crop_affine

# ============================================================================ common helpers


def test_select_frames():
    assert select_frames(10, 3).tolist() == [0, 3, 6, 9]
    assert select_frames(100, 1, max_frames=5).tolist() == [0, 25, 50, 74, 99]
    assert select_frames(3, 1, max_frames=5).tolist() == [0, 1, 2]
    assert select_frames(0, 2).tolist() == []
    with pytest.raises(ValueError):
        select_frames(10, 0)


def test_crop_view_matches_its_affine():
    """The crop (cut at full resolution, shrunk with INTER_AREA) equals the affine A it returns."""
    rng = np.random.default_rng(0)
    img = np.zeros((300, 400, 3), np.uint8)
    mask = np.zeros((300, 400), bool)
    mask[40:260, 150:230] = True
    img[mask] = (200, 100, 50)
    # a thin vertical line of known column in the image: its crop column follows A
    img[:, 190] = (255, 255, 255)
    crop, cm, A = crop_view(img, mask, 64)
    centre, side = ((150 + 229) / 2, (40 + 259) / 2), 220 * 1.15
    np.testing.assert_allclose(A, crop_affine(centre, side, 64))
    col = A[0, 0] * 190 + A[0, 2]
    profile = crop[32, :, 1].astype(float) - 100  # green: 100 inside the box, 255 on the line
    assert abs(np.sum(np.arange(64) * np.clip(profile, 0, None)) / np.clip(profile, 0, None).sum() - col) < 0.25
    # the crop mask is the mask warped by A (IoU ~ 1)
    ref = cv2.warpAffine(mask.astype(np.uint8) * 255, A[:2], (64, 64), flags=cv2.INTER_LINEAR) > 127
    assert (cm & ref).sum() / (cm | ref).sum() > 0.97
    # small images are upsampled directly; random content round-trips through the affine
    small = rng.integers(0, 255, (40, 30, 3), np.uint8)
    crop2, _, A2 = crop_view(small, None, 64, box=(5, 5, 20, 30))
    np.testing.assert_allclose(crop2, cv2.warpAffine(small, A2[:2], (64, 64), flags=cv2.INTER_LINEAR), atol=0)


def test_clean_mask_drops_specks_keeps_limbs():
    m = np.zeros((100, 100), bool)
    m[20:80, 40:60] = True        # body, 1200 px
    m[30:70, 70:75] = True        # detached arm, 200 px
    m[5, 5] = m[95, 90] = True    # specks
    c = clean_mask(m, 0.05)
    assert c[50, 72] and c[50, 50] and not c[5, 5] and not c[95, 90]


# ============================================================================ TikTok
TT_W, TT_H = 60, 100


def tiktok_frame(k: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((TT_H, TT_W, 3), 30, np.uint8)
    m = np.zeros((TT_H, TT_W), np.uint8)
    cv2.ellipse(m, (20 + k % 10, 50), (8, 30), 0, 0, 360, 255, -1)
    img[m > 0] = (40, 200, 90)
    return img, m


def write_tiktok_sequence(root: Path, seq: int, n: int, no_mask=(), empty_mask=()) -> None:
    d = root / f"{seq:05d}"
    (d / "images").mkdir(parents=True)
    (d / "masks").mkdir()
    (d / "densepose").mkdir()
    for k in range(1, n + 1):
        img, m = tiktok_frame(k)
        cv2.imwrite(str(d / "images" / f"{k:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if k in no_mask:
            continue
        cv2.imwrite(str(d / "masks" / f"{k:04d}.png"), np.zeros_like(m) if k in empty_mask else m)


@pytest.fixture(scope="module")
def tiktok_root(tmp_path_factory) -> Path:
    top = tmp_path_factory.mktemp("tiktok")
    root = top / "TikTok_dataset" / "TikTok_dataset"   # nested, as some downloads are
    write_tiktok_sequence(root, 34, 45, no_mask=(22,), empty_mask=(24,))
    write_tiktok_sequence(root, 35, 8)
    write_tiktok_sequence(root, 326, 44)
    write_tiktok_sequence(root, 999, 6)
    return top


def test_tiktok_train_split_end_to_end(tiktok_root, tmp_path):
    s = import_tiktok(tiktok_root, tmp_path / "tt", size=32)
    ds = MaskPoseDataset(tmp_path / "tt")
    ids = list(ds.ids)
    # authors' train list: 00034 (45 frames -> 21..25 after trimming 20 on both ends) and 00035 (8 frames:
    # nothing left); 00326 is the test sequence, 00999 not in the list
    assert ids == ["00034_0021", "00034_0023", "00034_0025"]
    assert s["skipped"] == {"missing_sequence": 39, "missing_mask": 1, "empty_mask": 1}
    assert ds.num_views == 1 and not (tmp_path / "tt" / "gt").exists()
    K = ds.K[0, 0]
    f = 100 / (2 * np.tan(np.radians(55) / 2))  # nominal camera: 55 degrees across the longer side
    np.testing.assert_allclose(K, [[f, 0, 29.5], [0, f, 49.5], [0, 0, 1]])
    for i, sid in enumerate(ids):
        k = int(sid.split("_")[1])
        img, m = tiktok_frame(k)
        A = ds.A[i, 0]
        ref = cv2.warpAffine(m, A[:2], (32, 32), flags=cv2.INTER_LINEAR) > 127
        got = ds._masks[i, 0]
        assert (got & ref).sum() / (got | ref).sum() > 0.95
        assert ds._images[i, 0][got][:, 1].mean() > 180   # the green person is under the mask
        assert ds.sample_info(i)["frame"] == k and ds.sample_info(i)["sequence"] == "00034"


def test_tiktok_sequences_and_errors(tiktok_root, tmp_path):
    s = import_tiktok(tiktok_root, tmp_path / "a", split="all", trim=2, stride=2, size=32)
    seqs = MaskPoseDataset(tmp_path / "a").fields["sequence"].tolist()
    assert sorted(set(seqs)) == ["00034", "00035", "00326", "00999"]
    assert s["sequences"] == ["00034", "00035", "00326", "00999"]
    s = import_tiktok(tiktok_root, tmp_path / "b", split="test", max_frames=3, size=32)
    assert list(MaskPoseDataset(tmp_path / "b").ids) == ["00326_0021", "00326_0023", "00326_0024"]
    s = import_tiktok(tiktok_root, tmp_path / "c", sequences="999", trim=0, size=32, focal=250)
    ds = MaskPoseDataset(tmp_path / "c")
    assert len(ds) == 6 and ds.K[0, 0, 0, 0] == 250
    with pytest.raises(DatasetImportError, match="00123"):
        import_tiktok(tiktok_root, tmp_path / "d", sequences=[123])
    with pytest.raises(DatasetImportError, match="no TikTok sequence"):
        import_tiktok(tmp_path, tmp_path / "e")
    with pytest.raises(ValueError, match="not empty"):  # maskpose.data.folder.DatasetError
        import_tiktok(tiktok_root, tmp_path / "c", sequences="999", trim=0, size=32)
    import_tiktok(tiktok_root, tmp_path / "c", sequences="999", trim=0, size=32, overwrite=True)


# ============================================================================ MPII
MP_W, MP_H = 200, 150


def person_joints(x0: float, y0: float) -> np.ndarray:
    """16 MPII joints (0-based px) of a small upright person whose pelvis is at (x0, y0)."""
    rel = {"r_ankle": (-8, 50), "r_knee": (-7, 25), "r_hip": (-6, 0), "l_hip": (6, 0), "l_knee": (7, 25),
           "l_ankle": (8, 50), "pelvis": (0, 0), "thorax": (0, -30), "upper_neck": (0, -36), "head_top": (0, -52),
           "r_wrist": (-22, -2), "r_elbow": (-16, -16), "r_shoulder": (-10, -30), "l_shoulder": (10, -30),
           "l_elbow": (16, -16), "l_wrist": (22, -2)}
    return np.array([rel[n] for n in MPII_JOINTS], float) + (x0, y0)


PERSONS = [  # image, pelvis position, annotated flags
    ("000000001.jpg", (50.0, 70.0), [1] * 16),
    ("000000001.jpg", (150.0, 75.0), [1] * 9 + [0] + [1] * 6),      # head_top not annotated
    ("000000002.jpg", (100.0, 72.0), [1] * 16),
    ("000000003.jpg", (90.0, 70.0), [1] * 16),                      # image file missing
]


def draw_people(image: str) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((MP_H, MP_W, 3), 50, np.uint8)
    m = np.zeros((MP_H, MP_W), np.uint8)
    for name, (x, y), _ in PERSONS:
        if name == image:
            for a, b in ((6, 7), (7, 9), (0, 1), (1, 2), (3, 4), (4, 5), (2, 3), (10, 11), (11, 12), (12, 13),
                         (13, 14), (14, 15)):
                j = person_joints(x, y)
                cv2.line(m, tuple(int(v) for v in j[a]), tuple(int(v) for v in j[b]), 255, 5)
    img[m > 0] = (220, 180, 60)
    return img, m


@pytest.fixture(scope="module")
def mpii_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mpii")
    (root / "images").mkdir()
    (root / "annot").mkdir()
    (root / "sam").mkdir()
    for name in ("000000001.jpg", "000000002.jpg"):
        img, m = draw_people(name)
        cv2.imwrite(str(root / "images" / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "sam" / name.replace(".jpg", ".png")), m)
    entries, headboxes = [], []
    for name, (x, y), vis in PERSONS:
        j = person_joints(x, y) + 1.0                  # 1-based MATLAB pixels in the file
        j[np.array(vis) == 0] = -1.0                   # HRNet writes -1 for joints that are not annotated
        entries.append({"image": name, "center": [x + 1.0, y - 15.0 + 1.0], "scale": 0.55,
                        "joints": j.tolist(), "joints_vis": vis})
        headboxes.append([[x - 6 + 1, y - 55 + 1], [x + 6 + 1, y - 40 + 1]])
    (root / "annot" / "mpii_val.json").write_text(json.dumps(entries))
    hb = np.transpose(np.array(headboxes, float), (1, 2, 0))  # [2, 2, M]
    scipy.io.savemat(root / "annot" / "gt_valid.mat", {
        "headboxes_src": hb, "jnt_missing": np.zeros((16, len(PERSONS))),
        "pos_gt_src": np.zeros((16, 2, len(PERSONS))), "dataset_joints": np.array([[n] for n in MPII_JOINTS],
                                                                                  dtype=object)})
    return root


H36M18_FROM_MPII_NAMES = ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", None, "upper_neck",
                          None, "head_top", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
                          "thorax")


def test_mpii_json_without_masks(mpii_root, tmp_path):
    s = import_mpii(mpii_root, tmp_path / "m", size=48)
    ds = MaskPoseDataset(tmp_path / "m")
    assert list(ds.ids) == ["000000001_0", "000000001_1", "000000002_0"]
    assert s["skipped"] == {"missing_image": 1} and not ds.valid.any() and ds.meta["masks"] == "none"
    j2d = np.load(tmp_path / "m/gt/joints2d.npy")
    jm = np.load(tmp_path / "m/gt/mpii_joints2d.npy")
    heads = np.load(tmp_path / "m/gt/head_size.npy")
    assert j2d.shape == (3, 1, 18, 2) and jm.shape == (3, 16, 2)
    for k in range(3):
        _, (x, y), vis = PERSONS[k]
        src = person_joints(x, y)
        for slot, name in enumerate(H36M18_FROM_MPII_NAMES):
            if name is None or not vis[MPII_JOINTS.index(name)]:
                assert np.isnan(j2d[k, 0, slot]).all()
            else:
                np.testing.assert_allclose(j2d[k, 0, slot], src[MPII_JOINTS.index(name)])
        np.testing.assert_allclose(heads[k], 0.6 * np.hypot(12, 15))
        # crop: HRNet's person box, centre (x, y + 15 s), side 250 s (the annotated centre is 1-based)
        np.testing.assert_allclose(ds.A[k, 0], crop_affine((x, y - 15 + 15 * 0.55), 250 * 0.55, 48), atol=1e-9)
        # the frame crop shows the person: their joints land on person-coloured pixels
        A = ds.A[k, 0]
        for p in src[[6, 7, 12, 13]]:
            q = A[:2, :2] @ p + A[:2, 2]
            assert ds._images[k, 0][int(round(q[1])), int(round(q[0]))][0] > 150
    assert np.isnan(jm[1, MPII_JOINTS.index("head_top")]).all()


def test_mpii_with_masks_picks_the_person(mpii_root, tmp_path):
    s = import_mpii(mpii_root, tmp_path / "m", masks_dir=mpii_root / "sam", size=48)
    ds = MaskPoseDataset(tmp_path / "m")
    assert ds.valid[:, 0].all() and s["num_samples"] == 3
    for k in range(3):
        _, (x, y), _ = PERSONS[k]
        A = ds.A[k, 0]
        # the crop is the maskpose crop around this person only (the other person of image 1 is 100 px away)
        img, m = draw_people(PERSONS[k][0])
        n, labels = cv2.connectedComponents(m)
        own = labels == labels[int(y), int(x)]
        ys, xs = np.nonzero(own)
        centre, side = ((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2), \
            max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) * 1.15
        np.testing.assert_allclose(A, crop_affine(centre, side, 48), atol=1e-9)


def _struct_array(rows: list[dict], fields: list[str]) -> np.ndarray:
    arr = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for k, r in enumerate(rows):
        for f in fields:
            arr[0, k][f] = r.get(f, np.zeros((0, 0)))
    return arr


def test_mpii_official_mat(tmp_path):
    """RELEASE struct written in the official nested layout (annolist 1xK struct array, annorect 1xR, ...)."""
    def rect(x, y, vis, with_points=True):
        j = person_joints(x, y) + 1
        pts = _struct_array([{"id": np.array([[k]]), "x": np.array([[j[k, 0]]]), "y": np.array([[j[k, 1]]]),
                              "is_visible": np.array([[v]])} for k, v in enumerate(vis) if v >= 0],
                            ["id", "x", "y", "is_visible"])
        return {"x1": np.array([[x - 5]]), "y1": np.array([[y - 55]]), "x2": np.array([[x + 7]]),
                "y2": np.array([[y - 40]]), "scale": np.array([[0.55]]),
                "objpos": _struct_array([{"x": np.array([[x + 1]]), "y": np.array([[y + 1]])}], ["x", "y"]),
                "annopoints": _struct_array([{"point": pts}], ["point"]) if with_points else np.zeros((0, 0))}

    fields = ["x1", "y1", "x2", "y2", "scale", "objpos", "annopoints"]
    annolist = _struct_array([
        {"image": _struct_array([{"name": "a.jpg"}], ["name"]),
         "annorect": _struct_array([rect(50, 70, [1] * 16), rect(150, 75, [1] * 8 + [-1] + [0] * 7)], fields)},
        {"image": _struct_array([{"name": "b.jpg"}], ["name"]),
         "annorect": _struct_array([rect(100, 70, [1] * 16)], fields)},                     # a test image
        {"image": _struct_array([{"name": "c.jpg"}], ["name"]),
         "annorect": _struct_array([rect(90, 70, [1] * 16, with_points=False)], fields)},   # no points
    ], ["image", "annorect", "frame_sec", "vididx"])
    release = _struct_array([{"annolist": annolist, "img_train": np.array([[1, 0, 1]]),
                              "version": "12", "single_person": np.zeros((3, 1), dtype=object)}],
                            ["annolist", "img_train", "version", "single_person"])
    path = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    scipy.io.savemat(path, {"RELEASE": release})
    persons = read_mpii_official(path)
    assert [p.image for p in persons] == ["a.jpg", "a.jpg"]
    np.testing.assert_allclose(persons[0].joints, person_joints(50, 70))
    assert np.isnan(persons[1].joints[8]).all() and not persons[1].visible[9] and persons[1].visible[0]
    np.testing.assert_allclose(persons[0].head_size, 0.6 * np.hypot(12, 15))
    np.testing.assert_allclose(persons[0].center, (50, 70))
    with pytest.raises(DatasetImportError, match="training images"):
        read_mpii_official(path, "val")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetImportError, match="mpii_human_pose_v1_u12_1.mat"):
        read_mpii_official(path)


def test_mpii_errors(mpii_root, tmp_path):
    with pytest.raises(DatasetImportError, match="mpii_test.json"):
        import_mpii(mpii_root, tmp_path / "x", split="test")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image": "a.jpg"}]')
    with pytest.raises(DatasetImportError, match="bad.json"):
        import_mpii(mpii_root, tmp_path / "y", annotations=bad)
