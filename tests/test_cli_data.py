"""CLI wiring of the data commands: import, convert-calibration (end to end through Typer)."""
from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.data.calibration import load_calibration, write_toml
from maskpose.data.folder import MaskPoseDataset
from maskpose.geometry import Camera, look_at
from test_importers import tiktok_root, write_tiktok_sequence  # noqa: F401  (fixture)

runner = CliRunner()


def test_import_tiktok_cli(tiktok_root, tmp_path):  # noqa: F811
    r = runner.invoke(app, ["import", "tiktok", str(tiktok_root), str(tmp_path / "tt"), "--size", "32",
                            "--sequences", "35", "--trim", "0"])
    assert r.exit_code == 0, r.output
    assert "wrote 8 samples x 1 views" in r.output
    ds = MaskPoseDataset(tmp_path / "tt", preload=False)
    assert len(ds) == 8 and ds[0]["masks"].shape[-1] == 32
    # a second run into the same folder is refused with one line, not a traceback
    r = runner.invoke(app, ["import", "tiktok", str(tiktok_root), str(tmp_path / "tt"), "--size", "32",
                            "--sequences", "35", "--trim", "0"])
    assert r.exit_code == 1 and "error:" in r.output and "Traceback" not in r.output


def test_import_missing_source_is_one_line(tmp_path):
    r = runner.invoke(app, ["import", "h36m", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert r.exit_code == 1 and "error:" in r.output and "nope" in r.output


def test_convert_calibration_toml_to_easymocap(tmp_path):
    cams = []
    for k, ang in enumerate((0.3, 2.0, 4.1)):
        c = np.array([3000 * np.cos(ang), 3000 * np.sin(ang), 1500.0])
        R, t = look_at(c, np.array([0.0, 0.0, 900.0]))
        K = np.array([[1100.0 + 10 * k, 0, 640 + 5 * k], [0, 1105.0, 360 - 3 * k], [0, 0, 1]])
        cams.append(Camera(K=K, R=R, t=t, dist=np.array([-0.1, 0.02, 0.001, -0.0005, 0.0]), size=(1280, 720),
                           name=f"cam{k + 1:02d}"))
    src = tmp_path / "Calib.toml"
    write_toml(cams, src)
    r = runner.invoke(app, ["convert-calibration", str(src), str(tmp_path / "emc")])
    assert r.exit_code == 0, r.output
    back = load_calibration(tmp_path / "emc")
    X = np.random.default_rng(0).uniform([-500, -500, 0], [500, 500, 1800], (50, 3))
    for a, b in zip(cams, back):
        assert a.name == b.name
        err = np.abs(a.project(X) - b.project(X)).max()
        assert err < 0.01, (a.name, err)
    r = runner.invoke(app, ["convert-calibration", str(tmp_path / "missing.toml"), str(tmp_path / "x.toml")])
    assert r.exit_code == 1 and "missing.toml" in r.output


def test_prepare_cli_multiview_with_calibration_file_and_resume(tmp_path):
    from test_prepare import make_scene

    scene = make_scene(tmp_path / "videos", views=2, frames=8, fmt="mp4")
    calib = tmp_path / "Calib.toml"
    write_toml(scene["cameras"], calib)
    args = ["prepare", str(tmp_path / "videos"), "--calibration", str(calib), "--out", str(tmp_path / "ds"),
            "--size", "32", "--masker", "mog2"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "x 2 views (cam01, cam02)" in r.output and "computed" in r.output
    ds = MaskPoseDataset(tmp_path / "ds", preload=False)
    assert len(ds) >= 6  # a background model may miss the first frame or two, never most of them
    # the same command again finds everything done
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "computed 0" in r.output
    # a calibration naming other cameras: one clear line naming both lists
    cams = list(scene["cameras"])
    for k, c in enumerate(cams):
        c.name = f"side{k}"
    write_toml(cams, tmp_path / "bad.toml")
    r = runner.invoke(app, ["prepare", str(tmp_path / "videos"), "--calibration", str(tmp_path / "bad.toml"),
                            "--out", str(tmp_path / "ds2"), "--size", "32"])
    assert r.exit_code == 1 and "error:" in r.output and "cam01" in r.output and "side0" in r.output
