"""CLI wiring of the result commands: predict, export, export-onnx (end to end through Typer)."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.export import load_poses, read_trc
from test_predict import data  # noqa: F401  (module fixture: tiny synthetic folders + random checkpoint)

runner = CliRunner()


def test_predict_then_export(data, tmp_path):  # noqa: F811
    out = tmp_path / "pred"
    r = runner.invoke(app, ["predict", str(data["ckpt"]), str(data["mvd"]), "--out", str(out),
                            "--format", "json,npz,trc", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "predicted 8 frames x 18 joints" in r.output
    seq = load_poses(out / "poses.npz")
    assert seq.joints3d.shape == (8, 18, 3) and seq.frame == "world" and seq.fps == 25.0
    trc = read_trc(out / "poses.trc")
    assert trc["markers"].shape == (8, 18, 3)
    np.testing.assert_allclose(trc["markers"], seq.joints3d, atol=1e-6, equal_nan=True)
    # the same outputs again are refused (nothing overwritten) ...
    r = runner.invoke(app, ["predict", str(data["ckpt"]), str(data["mvd"]), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 1 and "overwrite" in r.output
    # ... and export converts the saved poses (Y-up TRC for OpenSim)
    r = runner.invoke(app, ["export", str(out / "poses.json"), "--out", str(tmp_path / "y.trc"), "--y-up"])
    assert r.exit_code == 0, r.output
    y = read_trc(tmp_path / "y.trc")["markers"]
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(seq.joints3d, axis=-1), atol=1e-6)
    np.testing.assert_allclose(y[..., 1], seq.joints3d[..., 2], atol=1e-6)  # world z-up -> Y


def test_predict_trc_without_fps_fails_before_writing(data, tmp_path):  # noqa: F811
    out = tmp_path / "p"
    r = runner.invoke(app, ["predict", str(data["ckpt"]), str(data["mv"]), "--out", str(out), "--format", "json,trc",
                            "--device", "cpu"])
    assert r.exit_code == 1 and "--fps" in r.output
    assert not (out / "poses.json").exists()


def test_export_onnx_cli(data, tmp_path):  # noqa: F811
    pytest.importorskip("onnxruntime")
    r = runner.invoke(app, ["export-onnx", str(data["ckpt"]), str(tmp_path / "m.onnx"), "--size", "32"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m.onnx").stat().st_size > 10_000
    r = runner.invoke(app, ["export-onnx", str(data["ckpt"]), str(tmp_path / "m.onnx"), "--size", "32"])
    assert r.exit_code == 1 and "already exists" in r.output


def test_predict_animate_and_overlay_need(data, tmp_path):  # noqa: F811
    out = tmp_path / "pa"
    r = runner.invoke(app, ["predict", str(data["ckpt"]), str(data["mvd"]), "--out", str(out), "--device", "cpu",
                            "--animate", str(tmp_path / "a.gif")])
    assert r.exit_code == 0, r.output
    import cv2
    cap = cv2.VideoCapture(str(tmp_path / "a.gif"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 8
    # an overlay needs source videos; a synthetic dataset folder has none: one clear line
    r = runner.invoke(app, ["predict", str(data["ckpt"]), str(data["mvd"]), "--out", str(tmp_path / "po"),
                            "--device", "cpu", "--overlay", str(tmp_path / "o.mp4")])
    assert r.exit_code == 1 and "source videos" in r.output


def test_report_cli_refuses_a_folder_that_is_not_a_run(tmp_path):
    r = runner.invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 1 and "checkpoint" in r.output and "Traceback" not in r.output
