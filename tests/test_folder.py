"""Dataset folder format (maskpose.data.folder): writer, loader contract, errors."""
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from maskpose import geometry as G
from maskpose.data import folder as F
from maskpose.data.folder import DatasetError, DatasetWriter, MaskPoseDataset, load_dataset_meta
from maskpose.data.synthetic import generate_dataset, generate_sample
from maskpose.skeleton import H36M18
from maskpose.weighting import geodesic_weights

N, V, S = 4, 3, 32


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "synth"
    res = generate_dataset(root, N, num_views=V, size=S, seed=1, split="train", workers=1)
    assert res["num_samples"] == N and res["samples_per_s"] > 0
    return root


@pytest.fixture
def ds_copy(base, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(base, dst)
    return dst


# ------------------------------------------------------------------------------------------ contract
def test_item_contract_without_gt(base):
    ds = MaskPoseDataset(base)
    assert len(ds) == N and ds.num_views == V and ds.size == S
    item = ds[2]
    assert set(item) == {"images", "masks", "weights", "crop_cameras", "valid", "index"}
    assert item["images"].shape == (V, 3, S, S) and item["images"].dtype == torch.float32
    assert 0.0 <= item["images"].min() and item["images"].max() <= 1.0 and item["images"].std() > 0.01
    assert item["masks"].shape == (V, 1, S, S) and item["masks"].dtype == torch.float32
    assert set(torch.unique(item["masks"]).tolist()) == {0.0, 1.0}
    assert item["weights"].shape == (V, 1, S, S) and item["weights"].dtype == torch.float32
    assert item["weights"].min() > 0
    assert item["crop_cameras"].shape == (V, 3, 4) and item["crop_cameras"].dtype == torch.float32
    assert item["valid"].shape == (V,) and item["valid"].dtype == torch.bool and item["valid"].all()
    assert item["index"] == 2 and isinstance(item["index"], int)
    assert ds.gt_joints3d is None and ds.gt_joints2d is None and not hasattr(ds, "_gt2d")


def test_item_contract_with_gt_and_cameras(base):
    ds = MaskPoseDataset(base, with_gt=True)
    ref = generate_sample(1, seed=1, split="train", num_views=V, size=S)
    item = ds[1]
    assert item["gt_joints3d"].shape == (H36M18.num_joints, 3) and item["gt_joints3d"].dtype == torch.float32
    assert item["gt_joints2d"].shape == (V, H36M18.num_joints, 2) and item["gt_joints2d"].dtype == torch.float32
    np.testing.assert_allclose(ds.gt_joints3d[1], ref.joints3d)
    np.testing.assert_array_equal(item["masks"][:, 0].numpy() > 0.5, ref.masks)
    np.testing.assert_array_equal((item["images"].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8), ref.images)
    np.testing.assert_allclose(item["weights"][:, 0].numpy(), ref.weights, rtol=2e-3)
    cams = ds.cameras(1)
    assert len(cams) == V and all(isinstance(c, G.Camera) for c in cams)
    for v, cam in enumerate(cams):
        P = G.crop_projection(cam, ds.A[1, v], S)
        np.testing.assert_allclose(item["crop_cameras"][v].numpy(), P, rtol=1e-5, atol=1e-6)
        x = G.project_P(torch.from_numpy(ref.joints3d), torch.from_numpy(P)).numpy()
        np.testing.assert_allclose(item["gt_joints2d"][v].numpy(), x, atol=1e-5)
        assert np.abs(x).max() <= 1.0  # joints inside the crop
    info = ds.sample_info(1)
    assert info["id"] == ds.ids[1] and info["activity"] == ref.activity and isinstance(info["activity"], str)
    assert ds.fields["activity"].shape == (N,)
    np.testing.assert_array_equal(ds.gt_joints2d[1], item["gt_joints2d"].numpy())


def test_preload_false_reads_the_same(base):
    a, b = MaskPoseDataset(base), MaskPoseDataset(base, preload=False)
    for i in range(N):
        for k in ("images", "masks", "weights", "crop_cameras", "valid"):
            assert torch.equal(a[i][k], b[i][k]), k


def test_dataloader_batches(base):
    batch = next(iter(DataLoader(MaskPoseDataset(base), batch_size=2)))
    assert batch["images"].shape == (2, V, 3, S, S) and batch["crop_cameras"].shape == (2, V, 3, 4)
    assert batch["index"].tolist() == [0, 1]


def test_missing_weights_are_recomputed_and_cached(ds_copy):
    ds0 = MaskPoseDataset(ds_copy)
    p = F.weights_path(ds_copy, ds0.ids[0], 1)
    p.unlink()
    ds = MaskPoseDataset(ds_copy)
    m = ds[0]["masks"][1, 0].numpy() > 0.5
    np.testing.assert_allclose(ds[0]["weights"][1, 0].numpy(), geodesic_weights(m), rtol=2e-3)
    assert p.is_file() and np.load(p).dtype == np.float16


# ------------------------------------------------------------------------------------------ writer
def _own_sample(rng, v=2, s=24):
    """A user's own sample: a blob mask, a noise image, look-at cameras."""
    masks = np.zeros((v, s, s), bool)
    masks[:, 6:18, 9:15] = True
    imgs = rng.integers(0, 255, (v, s, s, 3), dtype=np.uint8)
    K = np.tile(np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]]), (v, 1, 1))
    Rs, ts = zip(*[G.look_at([4000 * np.cos(a), 4000 * np.sin(a), 1500], [0, 0, 1000]) for a in np.linspace(0, 3, v)])
    A = np.stack([G.crop_affine((500.0, 500.0), 400.0, s)] * v)
    return dict(images=imgs, masks=masks, K=K, R=np.stack(Rs), t=np.stack(ts), A=A)


def test_writer_for_user_data_jpg_and_fields(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "mine"
    with DatasetWriter(root, size=24, num_views=2, source="my-lab", image_ext=".jpg") as w:
        for i in range(3):
            w.add(f"seq1_{i:04d}", **_own_sample(rng), frame=i, sequence="seq1")
    meta = load_dataset_meta(root)
    assert meta["source"] == "my-lab" and meta["num_samples"] == 3 and not meta["has_gt"]
    assert sorted(meta["fields"]) == ["frame", "sequence"]
    assert (root / "frames" / "seq1_0000_0.jpg").is_file() and (root / "weights" / "seq1_0000_1.npy").is_file()
    ds = MaskPoseDataset(root)
    assert ds.sample_info(2) == {"id": "seq1_0002", "frame": 2, "sequence": "seq1"}
    assert ds[0]["masks"].sum() == 2 * 12 * 6
    with pytest.raises(DatasetError, match="gt"):
        MaskPoseDataset(root, with_gt=True)


def test_writer_validates_input(tmp_path):
    rng = np.random.default_rng(0)
    w = DatasetWriter(tmp_path / "w", size=24, num_views=2)
    smp = _own_sample(rng)
    with pytest.raises(ValueError, match="images"):
        w.add("a", **{**smp, "images": smp["images"][:, :10]})
    with pytest.raises(ValueError, match="K must have shape"):
        w.add("a", **{**smp, "K": smp["K"][0]})
    with pytest.raises(ValueError, match="path separator"):
        w.add("a/b", **smp)
    w.add("a", **smp, activity="walk")
    with pytest.raises(ValueError, match="duplicate"):
        w.add("a", **smp, activity="walk")
    with pytest.raises(ValueError, match="same optional fields"):
        w.add("b", **smp)
    with pytest.raises(ValueError, match="reserved"):
        DatasetWriter(tmp_path / "w2", size=24, num_views=2).add("a", **smp, valid_=1, ids=3)


def test_interrupted_writer_leaves_an_invalid_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "half"
    with pytest.raises(RuntimeError, match="boom"):
        with DatasetWriter(root, size=24, num_views=2) as w:
            w.add("a", **_own_sample(rng))
            raise RuntimeError("boom")
    assert (root / "frames" / "a_0.png").is_file()
    assert not (root / "meta.json").exists() and not (root / "samples.npz").exists()
    with pytest.raises(DatasetError, match=r"meta\.json is missing"):
        MaskPoseDataset(root)
    assert not list(root.rglob("*.tmp*"))


def test_writer_refuses_non_empty_folder_and_overwrite_replaces(tmp_path, base):
    root = tmp_path / "x"
    shutil.copytree(base, root)
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not empty"):
        DatasetWriter(root, size=24, num_views=2)
    with DatasetWriter(root, size=24, num_views=2, overwrite=True) as w:
        w.add("only", **_own_sample(np.random.default_rng(1)))
    assert (root / "notes.txt").read_text() == "keep me"
    assert MaskPoseDataset(root).ids == ["only"]
    assert sorted(p.name for p in (root / "frames").iterdir()) == ["only_0.png", "only_1.png"]


def test_writer_unwritable_folder(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(DatasetError, match="cannot write"):
        DatasetWriter(tmp_path / "f" / "sub", size=24, num_views=2)
    with pytest.raises(DatasetError, match="not a folder"):
        DatasetWriter(tmp_path / "f", size=24, num_views=2)


# ------------------------------------------------------------------------------------------ errors
def test_error_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        MaskPoseDataset(tmp_path / "nope")


def test_error_missing_meta(ds_copy):
    (ds_copy / "meta.json").unlink()
    with pytest.raises(DatasetError, match=str(ds_copy / "meta.json")):
        MaskPoseDataset(ds_copy)


def test_error_missing_samples(ds_copy):
    (ds_copy / "samples.npz").unlink()
    with pytest.raises(DatasetError, match="samples.npz is missing"):
        MaskPoseDataset(ds_copy)


@pytest.mark.parametrize("key,value,msg", [
    ("format", "something-else", "format is 'something-else'"),
    ("version", 99, "unsupported format version 99"),
    ("num_views", 0, "num_views"),
    ("joint_set", "coco", "unknown joint set"),
])
def test_error_bad_meta(ds_copy, key, value, msg):
    p = ds_copy / "meta.json"
    meta = json.loads(p.read_text())
    meta[key] = value
    p.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=msg):
        MaskPoseDataset(ds_copy)


def test_error_unparsable_meta(ds_copy):
    (ds_copy / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot parse JSON"):
        load_dataset_meta(ds_copy)


def test_error_shapes_inconsistent_with_meta(ds_copy):
    p = ds_copy / "meta.json"
    meta = json.loads(p.read_text())
    meta["num_views"] = V + 1
    p.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"K has shape \[4, 3, 3, 3\].*requires \[4, 4, 3, 3\]"):
        MaskPoseDataset(ds_copy)


def test_error_array_missing_or_bad_field(ds_copy):
    z = dict(np.load(ds_copy / "samples.npz"))
    z2 = {k: v for k, v in z.items() if k != "A"}
    np.savez(ds_copy / "samples.npz", **z2)
    with pytest.raises(DatasetError, match="missing array"):
        MaskPoseDataset(ds_copy)
    z["activity"] = z["activity"][:2]
    np.savez(ds_copy / "samples.npz", **z)
    with pytest.raises(DatasetError, match="activity"):
        MaskPoseDataset(ds_copy)


@pytest.mark.parametrize("preload", [True, False])
def test_error_missing_frame_and_mask(ds_copy, preload):
    ds0 = MaskPoseDataset(ds_copy)
    sid = ds0.ids[2]
    frame = ds_copy / "frames" / f"{sid}_1.png"
    frame.unlink()
    with pytest.raises(DatasetError, match=f"frame file .*{frame.name} is missing"):
        MaskPoseDataset(ds_copy, preload=preload)[2]
    shutil.copy(ds_copy / "frames" / f"{sid}_0.png", frame)
    mask = ds_copy / "masks" / f"{sid}_0.png"
    mask.unlink()
    with pytest.raises(DatasetError, match=f"mask file .*{mask.name} is missing"):
        MaskPoseDataset(ds_copy, preload=preload)[2]


def test_error_empty_mask_names_the_file(ds_copy):
    sid = MaskPoseDataset(ds_copy).ids[3]
    p = ds_copy / "masks" / f"{sid}_2.png"
    cv2.imwrite(str(p), np.zeros((S, S), np.uint8))
    with pytest.raises(DatasetError, match=f"{p.name} is empty"):
        MaskPoseDataset(ds_copy)


def test_invalid_view_may_lack_files(ds_copy):
    z = dict(np.load(ds_copy / "samples.npz"))
    z["valid"][0, 1] = False
    np.savez(ds_copy / "samples.npz", **z)
    sid = str(z["ids"][0])
    for sub in ("frames", "masks", "weights"):
        for p in (ds_copy / sub).glob(f"{sid}_1.*"):
            p.unlink()
    item = MaskPoseDataset(ds_copy)[0]
    assert item["valid"].tolist() == [True, False, True]
    assert item["masks"][1].sum() == 0 and item["weights"][1].sum() == 0 and item["images"][1].sum() == 0


def test_error_wrong_image_size(ds_copy):
    sid = MaskPoseDataset(ds_copy).ids[0]
    p = ds_copy / "frames" / f"{sid}_0.png"
    cv2.imwrite(str(p), np.zeros((S + 2, S, 3), np.uint8))
    with pytest.raises(DatasetError, match=f"{p.name}.*size = {S}"):
        MaskPoseDataset(ds_copy)


def test_error_with_gt_but_no_gt(ds_copy):
    shutil.rmtree(ds_copy / "gt")
    MaskPoseDataset(ds_copy)  # fine without labels
    with pytest.raises(DatasetError, match=r"with_gt=True but .*joints3d\.npy is missing"):
        MaskPoseDataset(ds_copy, with_gt=True)


def test_error_gt_shape(ds_copy):
    np.save(ds_copy / "gt" / "joints3d.npy", np.zeros((N, 17, 3)))
    with pytest.raises(DatasetError, match=r"\[4, 18, 3\]"):
        MaskPoseDataset(ds_copy, with_gt=True)
