"""ONNX export of the detector: parity with torch on onnxruntime, checkpoints, metadata, runner."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from maskpose.export import ExportError  # noqa: E402
from maskpose.export_onnx import OUTPUT_NAMES, OnnxDetector, constant_template_prior, export_onnx  # noqa: E402
from maskpose.models.detector import Detector, DetectorConfig  # noqa: E402

SIZE = 32


def small_detector(input_mode: str = "mask", seed: int = 0) -> Detector:
    """A small detector whose outputs depend on the input (large head init, non-zero girth head)."""
    torch.manual_seed(seed)
    cfg = DetectorConfig(input=input_mode, width=8, head_width=16, depth_bins=4, max_width=32, groups=4,
                         head_init_std=0.5)
    det = Detector(cfg)
    with torch.no_grad():
        det.girth_fc.weight.normal_(std=0.5)
        det.girth_fc.bias.fill_(0.1)
    return det.eval()


def torch_outputs(det: Detector, x: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = det(torch.from_numpy(x))
    return {k: out[k].numpy() for k in OUTPUT_NAMES}


def rand_images(b: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(b, c, SIZE, SIZE)) > 0.5).astype(np.float32) * rng.uniform(0.5, 1.0, (b, c, 1, 1)).astype(np.float32)


@pytest.mark.parametrize("input_mode", ["mask", "rgb+mask"])
def test_onnx_parity_two_batch_sizes(tmp_path, input_mode):
    det = small_detector(input_mode).train()
    path = export_onnx(det, tmp_path / "det.onnx", size=SIZE)
    assert det.training                                    # the caller's model is left as it was
    det.eval()
    runner = OnnxDetector(path, threads=1)
    assert runner.size == SIZE and runner.in_channels == det.in_channels and runner.batch_size is None
    for b, seed in ((1, 0), (5, 1)):
        x = rand_images(b, det.in_channels, seed)
        ref = torch_outputs(det, x)
        got = runner(x)
        assert set(got) == set(OUTPUT_NAMES)
        for name in OUTPUT_NAMES:
            assert got[name].shape == ref[name].shape, name
            assert np.abs(got[name] - ref[name]).max() <= 1e-4, name
    assert ref["joints2d"].shape == (5, 18, 2) and ref["girth"].shape == (5,)
    # the outputs really depend on the input (so the parity above is not between constants)
    assert np.abs(ref["joints2d"][0] - ref["joints2d"][1]).max() > 1e-3
    assert np.abs(ref["girth"][0] - ref["girth"][1]) > 1e-4


def test_onnx_metadata_and_graph(tmp_path):
    import onnx

    det = small_detector()
    path = export_onnx(det, tmp_path / "det.onnx", size=SIZE, opset=17)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, SIZE, SIZE]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["maskpose_format"] == "maskpose-detector" and meta["size"] == str(SIZE)
    assert meta["input_mode"] == "mask" and meta["joint_set"] == "h36m18"
    assert json.loads(meta["joint_names"]) == list(det.joint_set.joints)
    # the template prior is a constant: no Range/Pow chain recomputing it per call
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Pow") == 0 and ops.count("Range") <= 3
    runner = OnnxDetector(path)
    assert runner.joint_names == list(det.joint_set.joints) and runner.input_mode == "mask"


def test_onnx_static_batch_runs_in_chunks(tmp_path):
    det = small_detector()
    path = export_onnx(det, tmp_path / "det.onnx", size=SIZE, dynamic_batch=False, batch_size=2)
    runner = OnnxDetector(path)
    assert runner.batch_size == 2
    x = rand_images(5, 1, 3)                               # 2 + 2 + 1 (padded)
    ref, got = torch_outputs(det, x), runner(x)
    for name in OUTPUT_NAMES:
        assert got[name].shape == ref[name].shape
        assert np.abs(got[name] - ref[name]).max() <= 1e-4


def test_onnx_from_checkpoint(tmp_path):
    from maskpose.train import TrainConfig, save_checkpoint

    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.json").write_text(json.dumps({"format": "maskpose-dataset", "version": 1, "size": SIZE,
                                                "num_views": 1, "num_samples": 0}))
    cfg = TrainConfig()
    cfg.model = small_detector().config
    cfg.data.train = str(data)
    det = small_detector(seed=3)
    ckpt = tmp_path / "ckpt.pt"
    save_checkpoint(ckpt, det, None, 7, cfg)
    path = export_onnx(ckpt, tmp_path / "from_ckpt.onnx")          # size from the training folder
    runner = OnnxDetector(path)
    assert runner.size == SIZE and runner.metadata["source"] == str(ckpt)
    x = rand_images(3, 1, 4)
    ref, got = torch_outputs(det, x), runner(x)
    for name in OUTPUT_NAMES:
        assert np.abs(got[name] - ref[name]).max() <= 1e-4
    # training folder gone and no size given: a clear error; with size it works
    (data / "meta.json").unlink()
    with pytest.raises(ExportError, match="pass size"):
        export_onnx(ckpt, tmp_path / "b.onnx")
    assert export_onnx(ckpt, tmp_path / "b.onnx", size=64, check=False).is_file()
    assert OnnxDetector(tmp_path / "b.onnx").size == 64


def test_onnx_errors(tmp_path):
    det = small_detector()
    with pytest.raises(ExportError, match="give size"):
        export_onnx(det, tmp_path / "a.onnx")
    with pytest.raises(ExportError, match="multiple of 8"):
        export_onnx(det, tmp_path / "a.onnx", size=36)
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "a.onnx", size=SIZE)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match="bad.pt"):
        export_onnx(bad, tmp_path / "a.onnx", size=SIZE)
    path = export_onnx(det, tmp_path / "a.onnx", size=SIZE)
    stamp = path.stat().st_mtime_ns
    with pytest.raises(ExportError, match="already exists"):
        export_onnx(det, path, size=SIZE)
    assert path.stat().st_mtime_ns == stamp
    export_onnx(det, path, size=SIZE, overwrite=True, check=False)
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["a.onnx", "bad.pt"]     # no temp files
    runner = OnnxDetector(path)
    with pytest.raises(ExportError, match=r"expected images \[B, 1, 32, 32\]"):
        runner(np.zeros((2, 1, 64, 64), np.float32))
    with pytest.raises(ExportError, match="no such ONNX file"):
        OnnxDetector(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    with pytest.raises(ExportError, match="onnxruntime cannot load it"):
        OnnxDetector(junk)


def test_constant_template_prior_is_the_detector_prior_and_is_undone():
    det = small_detector()
    x = torch.from_numpy(rand_images(2, 1, 5))
    with torch.no_grad():
        ref = det(x)["logits"]
        with constant_template_prior(det, SIZE):
            assert "_template_prior" in det.__dict__
            got = det(x)["logits"]
            with pytest.raises(ExportError, match="built for 32 px"):
                det(torch.zeros(1, 1, 64, 64))
    assert "_template_prior" not in det.__dict__
    assert torch.equal(ref, got)
