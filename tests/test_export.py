"""Pose-sequence exports: round trips of every format, the TRC layout OpenSim reads, Y-up rotation."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from maskpose.export import (CAMERA_TO_YUP, TRC_KEYS, WORLD_ZUP_TO_YUP, ExportError, PoseSequence,
                             _opensim_tokenize, convert_poses, export_poses, load_poses, read_trc,
                             y_up_rotation)

ODD_NAMES = ["pelvis", "L Hip", 'we,ird "name"', "é_x", "x_confidence"]


def make_seq(frame="world", t=5, with_extras=True, ids=None) -> PoseSequence:
    rng = np.random.default_rng(1)
    j = len(ODD_NAMES)
    j3 = rng.normal(scale=400.0, size=(t, j, 3)) + np.array([0.0, 0.0, 900.0])
    j3[1, 2] = np.nan                      # one joint unknown
    j3[3, :] = np.nan                      # a whole frame unknown
    j3[2, -1] = np.nan                     # the LAST joint unknown (TRC trailing-field case)
    kw = {}
    if with_extras:
        conf = rng.uniform(size=(t, j))
        conf[1, 2] = np.nan
        j2 = rng.uniform(0, 1920, size=(t, 2, j, 2))
        j2[0, 1, 0] = np.nan
        kw = dict(confidence=conf, joints2d=j2, view_names=["cam 1", "cam2"],
                  meta={"checkpoint": "runs/x.pt", "n": np.int64(3), "arr": np.arange(3)})
    return PoseSequence(joints3d=j3, joint_names=list(ODD_NAMES),
                        frame_ids=ids if ids is not None else [str(10 + 2 * i) for i in range(t)],
                        frame=frame, fps=50.0, **kw)


def assert_same(a: PoseSequence, b: PoseSequence, atol=1e-9, extras=True):
    np.testing.assert_allclose(a.joints3d, b.joints3d, atol=atol, rtol=0, equal_nan=True)
    assert np.array_equal(np.isnan(a.joints3d), np.isnan(b.joints3d))
    assert a.joint_names == b.joint_names
    assert a.frame_ids == b.frame_ids
    assert a.frame == b.frame
    if extras:
        assert a.fps == b.fps
        np.testing.assert_allclose(a.confidence, b.confidence, equal_nan=True)
        np.testing.assert_allclose(a.joints2d, b.joints2d, equal_nan=True)
        assert a.view_names == b.view_names


# ---------------------------------------------------------------------------- PoseSequence
def test_pose_sequence_validation():
    good = make_seq(with_extras=False)
    with pytest.raises(ExportError, match=r"\[T, J, 3\]"):
        PoseSequence(np.zeros((2, 3)), ["a", "b"], ["0", "1"], "world")
    with pytest.raises(ExportError, match="joint names"):
        PoseSequence(good.joints3d, ODD_NAMES[:-1], good.frame_ids, "world")
    with pytest.raises(ExportError, match="duplicate"):
        PoseSequence(np.zeros((1, 2, 3)), ["a", "a"], ["0"], "world")
    with pytest.raises(ExportError, match="frame ids"):
        PoseSequence(good.joints3d, ODD_NAMES, ["0"], "world")
    with pytest.raises(ExportError, match="frame must be"):
        PoseSequence(good.joints3d, ODD_NAMES, good.frame_ids, "pixels")
    with pytest.raises(ExportError, match="confidence"):
        PoseSequence(good.joints3d, ODD_NAMES, good.frame_ids, "world", confidence=np.full((5, 5), 1.5))
    with pytest.raises(ExportError, match="joints2d"):
        PoseSequence(good.joints3d, ODD_NAMES, good.frame_ids, "world", joints2d=np.zeros((5, 2, 4, 2)))
    with pytest.raises(ExportError, match="view names"):
        PoseSequence(good.joints3d, ODD_NAMES, good.frame_ids, "world", joints2d=np.zeros((5, 2, 5, 2)),
                     view_names=["a"])
    with pytest.raises(ExportError, match="fps"):
        PoseSequence(good.joints3d, ODD_NAMES, good.frame_ids, "world", fps=0)
    s = PoseSequence(np.zeros((2, 1, 3), np.float32), ["a"], [3, np.int64(4)], "camera")
    assert s.frame_ids == ["3", "4"] and s.joints3d.dtype == np.float64


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", ["json", "npz"])
@pytest.mark.parametrize("frame", ["world", "camera"])
@pytest.mark.parametrize("y_up,units", [(False, "mm"), (True, "m")])
def test_round_trip_json_npz(tmp_path, fmt, frame, y_up, units):
    seq = make_seq(frame)
    path = export_poses(seq, tmp_path / f"poses.{fmt}", y_up=y_up, units=units)
    back = load_poses(path)
    assert_same(seq, back)
    assert back.meta["checkpoint"] == "runs/x.pt" and back.meta["n"] == 3 and back.meta["arr"] == [0, 1, 2]


def test_json_layout(tmp_path):
    seq = make_seq()
    path = export_poses(seq, tmp_path / "p.json")
    doc = json.loads(path.read_text())          # strict JSON: no NaN tokens
    assert "NaN" not in path.read_text()
    assert doc["units"] == "mm" and doc["frame"] == "world" and doc["fps"] == 50.0
    assert doc["joint_names"] == ODD_NAMES and len(doc["frames"]) == 5
    f1 = doc["frames"][1]
    assert f1["id"] == "12" and f1["joints3d"][2] == [None, None, None] and f1["confidence"][2] is None
    assert f1["joints3d"][0] == pytest.approx(list(seq.joints3d[1, 0]), abs=0)
    assert doc["frames"][0]["joints2d"][1][0] == [None, None]


def test_npz_loads_without_pickle(tmp_path):
    path = export_poses(make_seq(), tmp_path / "p.npz")
    with np.load(path, allow_pickle=False) as z:
        assert z["joints3d"].shape == (5, 5, 3)
        assert list(z["joint_names"]) == ODD_NAMES
        assert str(z["frame"]) == "world" and float(z["fps"]) == 50.0


def test_csv_round_trip_and_layout(tmp_path):
    seq = make_seq()
    path = export_poses(seq, tmp_path / "p.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header[:4] == ["frame", "pelvis_x", "pelvis_y", "pelvis_z"]
    assert header[4:7] == ["L Hip_x", "L Hip_y", "L Hip_z"]
    assert header[-5:] == [f"{n}_confidence" for n in ODD_NAMES]
    assert len(rows) == 6 and all(len(r) == 1 + 5 * 3 + 5 for r in rows)
    assert rows[4][1:16] == [""] * 15                        # frame 3: all NaN -> empty cells
    assert rows[2][7:10] == ["", "", ""]                      # frame 1, joint 2
    assert float(rows[1][1]) == seq.joints3d[0, 0, 0]         # exact text of the float
    back = load_poses(path, fps=50.0)
    assert_same(seq, back, extras=False)
    np.testing.assert_allclose(back.confidence, seq.confidence, equal_nan=True)
    # metres: load_poses is told the unit
    p_m = export_poses(seq, tmp_path / "m.csv", units="m")
    assert_same(seq, load_poses(p_m, units="m"), atol=1e-9, extras=False)


def test_csv_without_confidence(tmp_path):
    seq = make_seq(with_extras=False)
    back = load_poses(export_poses(seq, tmp_path / "p.csv"))
    assert back.confidence is None
    assert_same(seq, back, extras=False)


# ---------------------------------------------------------------------------- TRC
def test_trc_header_line_by_line(tmp_path):
    seq = make_seq()
    path = export_poses(seq, tmp_path / "walk.trc", units="mm")
    lines = path.read_text().split("\n")
    assert lines[0] == "PathFileType\t4\t(X/Y/Z)\twalk.trc"
    assert lines[1] == "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames"
    assert lines[1].split("\t") == list(TRC_KEYS)
    # frame ids 10, 12, ... at 50 fps: rows every 2 source frames -> DataRate 25, camera 50
    assert lines[2].split("\t") == ["25", "50", "5", "5", "mm", "50", "1", "5"]
    assert lines[3] == "Frame#\tTime\t" + "".join(f"{n}\t\t\t" for n in ODD_NAMES)
    assert lines[4] == "\t\t" + "".join(f"X{k}\tY{k}\tZ{k}\t" for k in range(1, 6))
    assert lines[5] == ""
    data = lines[6:11]
    assert lines[11] == "" and len(lines) == 12              # file ends with one newline
    for i, row in enumerate(data):
        assert row.endswith("\t")                            # every value followed by a tab
        f = row.split("\t")[:-1]
        assert len(f) == 2 + 3 * 5
        assert f[0] == str(i + 1)
        assert float(f[1]) == pytest.approx((10 + 2 * i) / 50.0)
    assert data[1].split("\t")[2 + 3 * 2: 2 + 3 * 3] == ["", "", ""]       # NaN joint: empty fields
    assert data[3].split("\t")[2:17] == [""] * 15
    assert float(data[0].split("\t")[2]) == seq.joints3d[0, 0, 0]


def test_trc_opensim_tokenisation_keeps_missing_last_marker(tmp_path):
    """OpenSim drops an empty field after the last tab; the trailing tab keeps the count right."""
    path = export_poses(make_seq(), tmp_path / "p.trc")
    row = path.read_text().split("\n")[6 + 2]               # frame 2: last marker missing
    assert len(_opensim_tokenize(row)) == 2 + 3 * 5
    no_trailing = row[:-1]
    assert len(_opensim_tokenize(no_trailing)) == 2 + 3 * 5 - 1   # what OpenSim would reject
    assert _opensim_tokenize("a\t\tb\t") == ["a", "", "b"]
    assert _opensim_tokenize(" a \tb") == ["a", "b"]


@pytest.mark.parametrize("units,scale", [("mm", 1.0), ("m", 1e-3)])
def test_trc_round_trip(tmp_path, units, scale):
    seq = make_seq()
    path = export_poses(seq, tmp_path / "p.trc", units=units)
    r = read_trc(path)
    assert r["path_file_type"] == 4 and r["units"] == units
    assert r["num_frames"] == 5 and r["num_markers"] == 5
    assert r["marker_names"] == ODD_NAMES
    assert r["data_rate"] == 25.0 and r["camera_rate"] == 50.0 and r["orig_data_rate"] == 50.0
    assert r["orig_data_start_frame"] == 1 and r["orig_num_frames"] == 5
    np.testing.assert_array_equal(r["frame_numbers"], np.arange(1, 6))
    np.testing.assert_allclose(r["times"], np.array([10, 12, 14, 16, 18]) / 50.0)
    np.testing.assert_allclose(r["markers"], seq.joints3d * scale, rtol=1e-15, atol=0, equal_nan=True)


def test_trc_non_integer_ids_and_fps_override(tmp_path):
    seq = make_seq(ids=[f"S1_walk_{i}" for i in range(5)])
    seq.fps = None
    with pytest.raises(ExportError, match="fps"):
        export_poses(seq, tmp_path / "a.trc")
    r = read_trc(export_poses(seq, tmp_path / "a.trc", fps=30))
    np.testing.assert_allclose(r["times"], np.arange(5) / 30.0)
    assert r["data_rate"] == 30.0


def test_trc_y_up_world(tmp_path):
    seq = make_seq("world")
    r = read_trc(export_poses(seq, tmp_path / "p.trc", y_up=True))
    expected = seq.joints3d[..., [1, 2, 0]]                  # (x, y, z) -> (y, z, x), Pose2Sim's zup2yup
    np.testing.assert_allclose(r["markers"], expected, rtol=1e-15, atol=1e-12, equal_nan=True)
    # the vertical (world z) became Y
    np.testing.assert_allclose(r["markers"][..., 1], seq.joints3d[..., 2], equal_nan=True)


def test_trc_rejects_bad_marker_names(tmp_path):
    seq = PoseSequence(np.zeros((1, 2, 3)), ["a\tb", "c"], ["0"], "world", fps=30)
    with pytest.raises(ExportError, match="marker name"):
        export_poses(seq, tmp_path / "a.trc")
    assert not (tmp_path / "a.trc").exists()


def test_read_trc_errors(tmp_path):
    good = export_poses(make_seq(), tmp_path / "g.trc").read_text().split("\n")
    bad = tmp_path / "bad.trc"
    bad.write_text("\n".join(good[:1] + ["DataRate\tCameraRate"] + good[2:]))
    with pytest.raises(ExportError, match=r"bad\.trc, line 2: expected the keys"):
        read_trc(bad)
    rows = list(good)
    rows[7] = rows[7].rsplit("\t", 4)[0] + "\t"                 # drop fields of the last marker
    bad.write_text("\n".join(rows))
    with pytest.raises(ExportError, match=r"line 8: expected 17 fields"):
        read_trc(bad)
    lenient = read_trc(bad, strict=False)
    assert np.isnan(lenient["markers"][1, -1]).all()
    bad.write_text("hello\n")
    with pytest.raises(ExportError, match="PathFileType"):
        read_trc(bad)


# ---------------------------------------------------------------------------- y-up rotation
@pytest.mark.parametrize("frame", ["world", "camera"])
def test_y_up_is_a_proper_rotation(frame):
    r = y_up_rotation(frame)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=0)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_y_up_axes():
    # world: +z (up) -> +Y; camera: -y (image up) -> +Y
    np.testing.assert_array_equal(WORLD_ZUP_TO_YUP @ np.array([0, 0, 1.0]), [0, 1, 0])
    np.testing.assert_array_equal(CAMERA_TO_YUP @ np.array([0, -1.0, 0]), [0, 1, 0])
    # a right-handed triad stays right-handed
    ex, ey, ez = (WORLD_ZUP_TO_YUP @ e for e in np.eye(3))
    np.testing.assert_allclose(np.cross(ex, ey), ez)


# ---------------------------------------------------------------------------- writing rules
def test_refuses_existing_unless_overwrite(tmp_path):
    seq = make_seq()
    path = export_poses(seq, tmp_path / "p.json")
    before = path.read_bytes()
    with pytest.raises(ExportError, match="already exists"):
        export_poses(seq, path)
    assert path.read_bytes() == before
    seq2 = make_seq(with_extras=False)
    export_poses(seq2, path, overwrite=True)
    assert load_poses(path).confidence is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]     # no temp files left


def test_format_from_suffix_and_errors(tmp_path):
    seq = make_seq()
    with pytest.raises(ExportError, match="suffix"):
        export_poses(seq, tmp_path / "p.txt")
    p = export_poses(seq, tmp_path / "p.txt", fmt="csv")
    assert p.read_text().startswith("frame,")
    assert load_poses(export_poses(seq, tmp_path / "P.JSON")).num_frames == 5
    with pytest.raises(ExportError, match="folder"):
        export_poses(seq, tmp_path)
    with pytest.raises(ExportError, match="units"):
        export_poses(seq, tmp_path / "q.json", units="cm")
    with pytest.raises(ExportError, match="JSON cannot store"):
        export_poses(PoseSequence(np.zeros((1, 1, 3)), ["a"], ["0"], "world", meta={"f": object()}),
                     tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_load_errors_name_the_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(ExportError, match=r"x\.json: not valid JSON"):
        load_poses(p)
    p.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ExportError, match="not a maskpose pose file"):
        load_poses(p)
    c = tmp_path / "x.csv"
    c.write_text("frame,a_x,a_y\n0,1,2\n")
    with pytest.raises(ExportError, match=r"x\.csv: columns"):
        load_poses(c)
    c.write_text("frame,a_x,a_y,a_z\n0,1,2,oops\n")
    with pytest.raises(ExportError, match=r"x\.csv, line 2: not a number"):
        load_poses(c)
    with pytest.raises(ExportError, match="no such file"):
        load_poses(tmp_path / "missing.npz")
    n = tmp_path / "x.npz"
    n.write_bytes(b"garbage")
    with pytest.raises(ExportError, match=r"x\.npz: not a readable npz"):
        load_poses(n)


# ---------------------------------------------------------------------------- conversion
def test_convert_json_to_trc_and_csv(tmp_path):
    seq = make_seq()
    src = export_poses(seq, tmp_path / "pred.json")
    trc = convert_poses(src, tmp_path / "pred.trc", units="m", y_up=True)
    r = read_trc(trc)
    np.testing.assert_allclose(r["markers"], seq.joints3d[..., [1, 2, 0]] * 1e-3, rtol=1e-14, equal_nan=True)
    with pytest.raises(ExportError, match="already exists"):
        convert_poses(src, trc)
    out = convert_poses(src, tmp_path / "pred.out", fmt="csv")
    assert_same(seq, load_poses(out, fmt="csv"), extras=False)
    with pytest.raises(ExportError, match="fps"):
        convert_poses(src, tmp_path / "neg.trc", fps=-1)


def test_convert_eval_predictions_npz(tmp_path):
    """`maskpose eval --predictions` writes pred/gt/ids; it converts with the joint set's names."""
    from maskpose.skeleton import get_joint_set

    pred = np.random.default_rng(0).normal(size=(3, 18, 3)) * 300
    p = tmp_path / "pred.npz"
    np.savez(p, pred=pred, gt=pred + 1, ids=np.array(["000001", "000002", "000003"]))
    seq = load_poses(p)
    assert seq.joint_names == list(get_joint_set("h36m18").joints) and seq.frame_ids == ["000001", "000002", "000003"]
    r = read_trc(convert_poses(p, tmp_path / "pred.trc", fps=50))
    np.testing.assert_allclose(r["markers"], pred, rtol=1e-15)
    np.testing.assert_allclose(r["times"], np.array([1, 2, 3]) / 50)


def test_confidence_round_off_is_clipped():
    s = PoseSequence(np.zeros((1, 2, 3)), ["a", "b"], ["0"], "world", confidence=np.array([[-1e-7, 1 + 1e-7]]))
    assert s.confidence.min() == 0.0 and s.confidence.max() == 1.0


def test_trc_reads_in_opensim(tmp_path):
    """With the OpenSim Python package installed (pip install opensim), its own TRC reader gets the
    same markers, NaN pattern, names, times and units back (checked with OpenSim 4.6)."""
    osim = pytest.importorskip("opensim")
    seq = make_seq()
    path = export_poses(seq, tmp_path / "p.trc", units="m", y_up=True)
    table = osim.TimeSeriesTableVec3(str(path))
    assert list(table.getColumnLabels()) == ODD_NAMES
    np.testing.assert_allclose(np.array(table.getIndependentColumn()), np.array([10, 12, 14, 16, 18]) / 50)
    got = np.array([[[table.getRowAtIndex(i)[j][k] for k in range(3)] for j in range(5)] for i in range(5)])
    np.testing.assert_allclose(got, seq.joints3d[..., [1, 2, 0]] * 1e-3, rtol=1e-15, atol=0, equal_nan=True)
    assert table.getTableMetaDataAsString("Units") == "m"
