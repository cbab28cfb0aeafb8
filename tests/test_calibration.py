"""Calibration import / export: every format round-trips to < 0.01 px, the real Pose2Sim demo
calibration converts as Pose2Sim converts it, and every kind of bad file raises CalibrationError."""
import re
import sys
import types

import cv2
import numpy as np
import pytest

from maskpose.data import calibration as C
from maskpose.data.calibration import CalibrationError
from maskpose.geometry import Camera, look_at


# ---------------------------------------------------------------------------- fixtures
def make_rig(n=4, seed=0, names=None):
    """Cameras around a person: non-trivial rotations (incl. roll), fx != fy, off-centre principal
    points, full OpenCV distortion, mixed landscape / portrait sizes."""
    rng = np.random.default_rng(seed)
    sizes = [(1920, 1080), (1088, 1920), (1280, 1024), (960, 540)]
    cams = []
    for i in range(n):
        az = 2 * np.pi * i / n + rng.uniform(-0.3, 0.3)
        r = rng.uniform(2500, 4500)
        eye = np.array([r * np.cos(az), r * np.sin(az), rng.uniform(900, 2500)])
        R0, _ = look_at(eye, rng.uniform([-300, -300, 700], [300, 300, 1200]))
        roll = rng.uniform(-0.3, 0.3)
        Rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
        R = Rz @ R0
        W, H = sizes[i % len(sizes)]
        f = rng.uniform(0.8, 1.3) * max(W, H)
        K = np.array([[f, 0, W / 2 + rng.uniform(-40, 40)], [0, f * rng.uniform(0.99, 1.01), H / 2 + rng.uniform(-40, 40)],
                      [0, 0, 1]])
        dist = np.array([rng.uniform(-0.3, -0.05), rng.uniform(0.01, 0.15), rng.uniform(-2e-3, 2e-3),
                         rng.uniform(-2e-3, 2e-3), rng.uniform(-0.03, 0.03)])
        name = names[i] if names else f"cam{i + 1:02d}"
        cams.append(Camera(K=K, R=R, t=-R @ eye, dist=dist, size=(W, H), name=name))
    return cams


def points(seed=1, n=200):
    return np.random.default_rng(seed).uniform([-800, -800, 0], [800, 800, 2000], size=(n, 3))


def assert_same_projection(cams_a, cams_b, tol=0.01):
    X = points()
    assert [c.name for c in cams_a] == [c.name for c in cams_b]
    for a, b in zip(cams_a, cams_b):
        err = np.abs(a.project(X) - b.project(X)).max()
        assert err < tol, f"{a.name}: projections differ by {err} px"
        assert a.size == b.size


# ---------------------------------------------------------------------------- real Pose2Sim demo data
# Three cameras of Pose2Sim's Demo_SinglePerson/calibration/Calib.qca.txt (pose2sim 0.10.49), verbatim.
DEMO_QCA = """<?xml version='1.0' encoding='ASCII'?>
<calibration created="sometimes ago" longArmEnd="none" longArmMiddle="none" maximumFrames="none" qtm-version="none" shortArmEnd="none" source="calibration_qca_rotated.qca.txt" type="regular" wandLength="none">
  <results min-max-diff="0." std-dev="0."/>
  <cameras>
    <camera active="1" avg-residual="0.402000" model="none" point-count="999999999" serial="cam01" viewrotation="0">
      <fov_marker bottom="1919" left="0" right="1087" top="0"/>
      <fov_marker_max bottom="1919" left="0" right="1087" top="0"/>
      <fov_video bottom="1919" left="0" right="1087" top="0"/>
      <fov_video_max bottom="1919" left="0" right="1087" top="0"/>
      <transform r11="0.5536380477336265" r12="0.8046719867383512" r13="0.2144479094331626" r21="-0.4345300743838753" r22="0.05946489349975602" r23="0.8986921279821063" r31="0.7104002579937896" r32="-0.5907342212870501" r33="0.3825762057979294" x="1460.2323709212087" y="-1909.1590482454608" z="1896.5058524092062"/>
      <intrinsic centerPointU="34110.316406" centerPointV="60680.792969" focalLengthU="107599.671875" focalLengthV="107588.828125" focallength="9.314096596679686" radialDistortion1="-0.046183" radialDistortion2="0.139983" radialDistortion3="0.000000" sensorMaxU="69568" sensorMaxV="122816" sensorMinU="0.000000" sensorMinV="0.000000" skew="0.000000" tangentalDistortion1="0.000608" tangentalDistortion2="0.00069"/>
    </camera>
    <camera active="1" avg-residual="0.444749" model="none" point-count="999999999" serial="cam02" viewrotation="0">
      <fov_marker bottom="1919" left="0" right="1087" top="0"/>
      <fov_marker_max bottom="1919" left="0" right="1087" top="0"/>
      <fov_video bottom="1919" left="0" right="1087" top="0"/>
      <fov_video_max bottom="1919" left="0" right="1087" top="0"/>
      <transform r11="-0.1966832217091926" r12="0.979523227309506" r13="-0.043011131806342306" r21="-0.31478107085300017" r22="-0.02153908797812718" r23="0.9489198834051846" r31="0.9285626460991909" r32="0.20017570994064315" r33="0.3125717476340885" x="2582.0136248568124" y="706.5662881637625" z="1690.9818366061595"/>
      <intrinsic centerPointU="34207.652344" centerPointV="61646.457031" focalLengthU="107118.695313" focalLengthV="107123.023438" focallength="9.272462063031563" radialDistortion1="-0.047847" radialDistortion2="0.136786" radialDistortion3="0.000000" sensorMaxU="69568" sensorMaxV="122816" sensorMinU="0.000000" sensorMinV="0.000000" skew="0.000000" tangentalDistortion1="0.000972" tangentalDistortion2="0.000291"/>
    </camera>
    <camera active="1" avg-residual="0.450323" model="none" point-count="999999999" serial="cam03" viewrotation="0">
      <fov_marker bottom="1919" left="0" right="1087" top="0"/>
      <fov_marker_max bottom="1919" left="0" right="1087" top="0"/>
      <fov_video bottom="1919" left="0" right="1087" top="0"/>
      <fov_video_max bottom="1919" left="0" right="1087" top="0"/>
      <transform r11="-0.740641130147863" r12="-0.6704153360235378" r13="-0.044654154988568895" r21="0.25251118212268814" r22="-0.3393170985114385" r23="0.9061467925015139" r31="-0.6226466246887545" r32="0.6598539110153292" r33="0.4205995683324882" x="-3216.86586729648" y="2231.1786368869416" z="2088.19103027083"/>
      <intrinsic centerPointU="32845.335938" centerPointV="61120.328125" focalLengthU="107622.296875" focalLengthV="107616.632813" focallength="9.316055073242188" radialDistortion1="-0.046705" radialDistortion2="0.137622" radialDistortion3="0.000000" sensorMaxU="69568" sensorMaxV="122816" sensorMinU="0.000000" sensorMinV="0.000000" skew="0.000000" tangentalDistortion1="-0.000542" tangentalDistortion2="-0.000517"/>
    </camera>
  </cameras>
</calibration>
"""

# Pose2Sim's own conversion of that file (Calib_qualisys.toml as posted in perfanalytics/pose2sim
# issue #98), verbatim for the same three cameras: translations in metres, distortions / 64.
DEMO_P2S_TOML = """[cam_01]
name = "cam_01"
size = [ 1088.0, 1920.0]
matrix = [ [ 1681.244873046875, 0.0, 532.97369384375], [ 0.0, 1681.075439453125, 948.137390140625], [ 0.0, 0.0, 1.0]]
distortions = [ -0.000721609375, 0.002187234375, 9.5e-06, 1.078125e-05]
rotation = [ 1.6882754799999993, 1.0483220499999997, -0.41955852000000016]
translation = [ 0.3211048899999996, 0.9563320600000009, 2.8907130499999996]
fisheye = false

[cam_02]
name = "cam_02"
size = [ 1088.0, 1920.0]
matrix = [ [ 1673.729614265625, 0.0, 534.494567875], [ 0.0, 1673.79724121875, 963.225891109375], [ 0.0, 0.0, 1.0]]
distortions = [ -0.000747609375, 0.00213728125, 1.51875e-05, 4.546875e-06]
rotation = [ 1.34975875, 1.5963809099999993, -1.1983285799999999]
translation = [ -0.11152829000000014, 0.7766184800000001, 3.0675519599999994]
fisheye = false

[cam_03]
name = "cam_03"
size = [ 1088.0, 1920.0]
matrix = [ [ 1681.598388671875, 0.0, 513.20837403125], [ 0.0, 1681.509887703125, 955.005126953125], [ 0.0, 0.0, 1.0]]
distortions = [ -0.000729765625, 0.00215034375, -8.46875e-06, -8.078125e-06]
rotation = [ 0.8109654899999995, -2.1972129299999996, 1.3760277799999996]
translation = [ -0.7934803899999995, 0.32283594000000126, 4.353514870000001]
fisheye = false

[metadata]
adjusted = false
error = 0.0
"""


def test_pose2sim_demo_qca_matches_pose2sim_toml_of_same_rig(tmp_path):
    q = tmp_path / "Calib.qca.txt"
    q.write_text(DEMO_QCA)
    t = tmp_path / "Calib_qualisys.toml"
    t.write_text(DEMO_P2S_TOML)
    from_qca = C.load_calibration(q, distortion_scale=1 / 64)  # Pose2Sim's distortion scaling
    from_toml = C.load_calibration(t)
    assert [c.name for c in from_qca] == ["cam01", "cam02", "cam03"]
    X = points()
    for a, b in zip(from_qca, from_toml):
        np.testing.assert_allclose(a.K, b.K, atol=1e-9)
        np.testing.assert_allclose(a.dist, b.dist, atol=1e-12)
        np.testing.assert_allclose(a.R, b.R, atol=1e-7)
        np.testing.assert_allclose(a.t, b.t, atol=1e-5)  # mm
        assert np.abs(a.project(X) - b.project(X)).max() < 1e-3
        assert a.size == b.size == (1088, 1920)


def test_pose2sim_demo_qca_geometry(tmp_path):
    q = tmp_path / "Calib.qca.txt"
    q.write_text(DEMO_QCA)
    cams = C.read_qualisys(q)
    cam = cams[0]
    # Pose2Sim: fx = focalLengthU / 64, cx = centerPointU / 64 - fov left
    np.testing.assert_allclose(cam.K, [[107599.671875 / 64, 0, 34110.316406 / 64], [0, 107588.828125 / 64, 60680.792969 / 64],
                                       [0, 0, 1]], atol=1e-9)
    np.testing.assert_allclose(cam.dist, [-0.046183, 0.139983, 0.000608, 0.00069, 0.0])
    # the transform's x, y, z is the camera centre (mm)
    np.testing.assert_allclose(cam.center, [1460.2323709212087, -1909.1590482454608, 1896.5058524092062], atol=1e-6)
    for c in cams:
        d = np.linalg.norm(c.center[:2])
        assert 2000 < d < 4500 and 1500 < c.center[2] < 2200  # around the subject, above head height
        axis = c.R[2]  # optical axis in world
        to_centre = np.array([0, 0, 1000.0]) - c.center
        assert np.degrees(np.arccos(axis @ to_centre / np.linalg.norm(to_centre))) < 20
        assert axis[2] < 0  # looking down
        o = c.project(np.zeros((1, 3)))[0]  # the world origin (on the treadmill) is in the image
        assert 0 < o[0] < 1088 and 0 < o[1] < 1920
    np.testing.assert_allclose(cams[0].project(np.zeros((1, 3)))[0], [719, 1503], atol=1.0)


# ---------------------------------------------------------------------------- TOML
def test_toml_round_trip_pose2sim_layout(tmp_path):
    cams = make_rig()
    cams[1] = Camera(cams[1].K, cams[1].R, cams[1].t, np.r_[cams[1].dist[:4], 0.0], cams[1].size, cams[1].name)
    p = C.write_toml(cams, tmp_path / "Calib.toml")
    text = p.read_text()
    assert text.startswith("[cam01]\nname = \"cam01\"\nsize = [ 1920.0, 1080.0]\nmatrix = [ [ ")
    assert "fisheye = false" in text and text.rstrip().endswith("[metadata]\nadjusted = false\nerror = 0.0")
    # translations in metres: the camera is metres away
    import tomllib
    d = tomllib.loads(text)
    assert 1.0 < np.linalg.norm(d["cam01"]["translation"]) < 10.0
    assert len(d["cam02"]["distortions"]) == 4 and len(d["cam01"]["distortions"]) == 5
    back = C.read_toml(p)
    assert_same_projection(cams, back)
    assert_same_projection(cams, C.load_calibration(tmp_path))  # a folder with one toml
    # a Pose2Sim project folder also holds Config.toml: its sections are not cameras, Calib*.toml wins
    (tmp_path / "Config.toml").write_text("[project]\nframe_rate = 60\n[calibration]\ncalibration_type = 'convert'\n")
    assert_same_projection(cams, C.load_calibration(tmp_path))
    with pytest.raises(CalibrationError, match="no camera tables"):
        C.read_toml(tmp_path / "Config.toml")


def test_toml_odd_names(tmp_path):
    cams = make_rig(4, names=['cam "1"', "metadata", "", "cam_03"])
    back = C.read_toml(C.write_toml(cams, tmp_path / "c.toml"))
    assert_same_projection(cams, back)


def test_toml_units(tmp_path):
    cams = make_rig(3, seed=5)
    p = C.write_toml(cams, tmp_path / "anipose.toml", units="mm")
    with pytest.warns(UserWarning, match="millimetres"):
        auto = C.read_toml(p)
    assert_same_projection(cams, auto)
    assert_same_projection(cams, C.read_toml(p, units="mm"))
    wrong = C.read_toml(p, units="m")
    assert np.linalg.norm(wrong[0].center) > 1e6
    with pytest.raises(CalibrationError, match="units"):
        C.read_toml(p, units="furlong")


def test_toml_fractional_size_is_rounded(tmp_path):
    # Pose2Sim's EasyMocap converter writes size = 2 x principal point
    p = tmp_path / "c.toml"
    p.write_text("[cam_1]\nname='a'\nsize=[1923.46, 1071.2]\nmatrix=[[1000,0,961.73],[0,1000,535.6],[0,0,1]]\n"
                 "distortions=[0,0,0,0]\nrotation=[0,0,0]\ntranslation=[0,0,3]\n")
    with pytest.warns(UserWarning, match="rounded"):
        cam = C.read_toml(p)[0]
    assert cam.size == (1923, 1071)
    np.testing.assert_allclose(cam.t, [0, 0, 3000])


def test_toml_anipose_layout(tmp_path):
    # aniposelib CameraGroup.dump: [cam_0] tables, trailing commas, 5 distortions, board units (mm)
    R = look_at(np.array([3000.0, -1000.0, 1500.0]), np.array([0.0, 0.0, 900.0]))[0]
    rv = cv2.Rodrigues(R)[0].ravel()
    t = -R @ np.array([3000.0, -1000.0, 1500.0])
    text = "".join(
        f'[cam_{i}]\nname = "{n}"\nsize = [ 1280, 1024,]\nmatrix = [ [ 1400.5, 0.0, 650.25,], [ 0.0, 1401.0, 500.75,], '
        f'[ 0.0, 0.0, 1.0,],]\ndistortions = [ -0.21, 0.05, 0.001, -0.0005, 0.01,]\n'
        f'rotation = [ {float(rv[0])!r}, {float(rv[1])!r}, {float(rv[2])!r},]\n'
        f'translation = [ {float(t[0])!r}, {float(t[1])!r}, {float(t[2])!r},]\n\n'
        for i, n in enumerate(["A", "B"]))
    text += "[metadata]\nadjusted = true\nerror = 0.41\n"
    p = tmp_path / "calibration.toml"
    p.write_text(text)
    with pytest.warns(UserWarning):
        cams = C.load_calibration(p)
    assert [c.name for c in cams] == ["A", "B"] and cams[0].size == (1280, 1024)
    np.testing.assert_allclose(cams[0].center, [3000, -1000, 1500], atol=1e-6)
    X = points()
    ref = cv2.projectPoints(X, rv, t, cams[0].K, np.array([-0.21, 0.05, 0.001, -0.0005, 0.01]))[0][:, 0]
    assert np.abs(cams[0].project(X) - ref).max() < 1e-6


@pytest.mark.parametrize("body, match", [
    ("[cam_1]\nname = 'a'\nmatrix = [[1,0,0],[0,1,0],[0,0,1]]\n", "lacks distortions, rotation, translation"),
    ("[cam_1\nname = 'a'\n", "malformed TOML"),
    ("[cam_1]\nname='a'\nmatrix=[[1000,0,500],[0,1000,500],[0,0,1]]\ndistortions=[0,0,0,0]\nrotation=[0.1,0.2,nan]\n"
     "translation=[0,0,3]\n", "NaN or inf"),
    ("[cam_1]\nname='a'\nmatrix=[[1000,0,500],[0,1000,500],[0,0,1]]\ndistortions=[0,0,0,0]\n"
     "rotation=[[1,0,0],[0,2,0],[0,0,1]]\ntranslation=[0,0,3]\n", "not a rotation"),
    ("[cam_1]\nname='a'\nmatrix=[[1000,0,500],[0,1000,500],[0,0,1]]\ndistortions=[0.1,0.01,0,0]\nrotation=[0,0,0]\n"
     "translation=[0,0,3]\nfisheye=true\n", "fisheye"),
    ("[cam_1]\nname='a'\nmatrix=[[1000,0,500],[0,1000]]\ndistortions=[0,0,0,0]\nrotation=[0,0,0]\ntranslation=[0,0,3]\n",
     "matrix"),
    ("[cam_1]\nname='a'\nmatrix=[[0,0,500],[0,1000,500],[0,0,1]]\ndistortions=[0,0,0,0]\nrotation=[0,0,0]\n"
     "translation=[0,0,3]\n", "intrinsic matrix"),
    ("[cam_1]\nname='a'\nsize=[0, 1080]\nmatrix=[[1000,0,500],[0,1000,500],[0,0,1]]\ndistortions=[0,0,0,0]\n"
     "rotation=[0,0,0]\ntranslation=[0,0,3]\n", "size"),
    ("[metadata]\nerror = 0.0\n", "no camera tables"),
    ("[a]\nmatrix=[[1000,0,500],[0,1000,500],[0,0,1]]\ndistortions=[0,0,0,0]\nrotation=[0,0,0]\ntranslation=[0,0,3]\n"
     "[b]\nname='a'\nmatrix=[[1000,0,500],[0,1000,500],[0,0,1]]\ndistortions=[0,0,0,0]\nrotation=[0,0,0]\n"
     "translation=[0,0,3]\n", "duplicate camera names"),
])
def test_toml_errors(tmp_path, body, match):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    with pytest.raises(CalibrationError, match=match) as e:
        C.load_calibration(p)
    assert "bad.toml" in str(e.value)


def test_missing_and_unreadable_files(tmp_path):
    for name in ("none.toml", "none.qca.txt", "intri.yml"):
        with pytest.raises(CalibrationError, match="does not exist") as e:
            C.load_calibration(tmp_path / name)
        assert name in str(e.value)
    for fmt in ("toml", "qualisys", "easymocap"):
        with pytest.raises(CalibrationError) as e:
            C.load_calibration(tmp_path / "missing.xyz", format=fmt)
        assert "missing.xyz" in str(e.value)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CalibrationError, match="cannot tell the calibration format"):
        C.load_calibration(tmp_path / "notes.txt")
    with pytest.raises(CalibrationError, match="unknown calibration format"):
        C.load_calibration(tmp_path / "notes.txt", format="vicon")
    with pytest.raises(CalibrationError, match="no calibration file"):
        C.load_calibration(tmp_path)
    b = tmp_path / "bin.toml"
    b.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CalibrationError, match="malformed TOML"):
        C.load_calibration(b)


# ---------------------------------------------------------------------------- Qualisys
def qca_camera_xml(cam, serial, *, left=0, top=0, binning=1, model="Miqus Video", dist_scale=1.0, extra=""):
    """The <camera> element QTM exports for ``cam`` (a camera of the *video* image), written from
    the Qualisys conventions independently of maskpose's writer: sensor sub-pixels (1/64), the
    video window at (left, top) on the sensor, a binned video (sensor px = b * video px +
    (b - 1) / 2 + offset), the camera centre and Qualisys rows ``diag(1,-1,-1) @ R``."""
    b = binning
    W, H = cam.size
    fx, fy = cam.K[0, 0] * b, cam.K[1, 1] * b
    cu = b * cam.K[0, 2] + (b - 1) / 2 + left
    cv_ = b * cam.K[1, 2] + (b - 1) / 2 + top
    M = np.diag([1.0, -1.0, -1.0]) @ cam.R
    x, y, z = cam.center
    d = cam.dist / dist_scale
    fov = f'left="{left}" top="{top}" right="{left + W * b - 1}" bottom="{top + H * b - 1}"'
    rot = " ".join(f'r{i + 1}{j + 1}="{M[i, j]:.15f}"' for i in range(3) for j in range(3))
    return f"""    <camera active="1" calibrated="true" message="" point-count="1916" avg-residual="0.200978" serial="{serial}" model="{model}" viewrotation="0" video_resolution="1080p"{extra}>
      <fov_marker left="0" top="0" right="1919" bottom="1087"/>
      <fov_marker_max left="0" top="0" right="1919" bottom="1087"/>
      <fov_video {fov}/>
      <fov_video_max left="0" top="0" right="1919" bottom="1087"/>
      <transform x="{x:.6f}" y="{y:.6f}" z="{z:.6f}" {rot}/>
      <intrinsic focallength="9.2" sensorMinU="0.000000" sensorMaxU="122816.000000" sensorMinV="0.000000" sensorMaxV="69568.000000" focalLengthU="{fx * 64:.6f}" focalLengthV="{fy * 64:.6f}" centerPointU="{cu * 64:.6f}" centerPointV="{cv_ * 64:.6f}" skew="0.000000" radialDistortion1="{d[0]:.9f}" radialDistortion2="{d[1]:.9f}" radialDistortion3="{d[4]:.9f}" tangentalDistortion1="{d[2]:.9f}" tangentalDistortion2="{d[3]:.9f}"/>
    </camera>
"""


def qca_file(cameras_xml):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<calibration source="C:\\Qualisys\\Calib.qca" created="2024-03-01 10:12:44" '
            'qtm-version="2023.3" type="wand" wandLength="601.0480" maximumFrames="1000" shortArmEnd="0" longArmEnd="0" '
            'longArmMiddle="0">\n  <results std-dev="0.21" min-max-diff="0.6"/>\n  <cameras>\n'
            + "".join(cameras_xml) + "  </cameras>\n</calibration>\n")


def test_qualisys_real_layout_with_marker_camera_and_video_window(tmp_path):
    cams = make_rig(3, seed=3, names=["28519", "28520", "31337"])
    small = [Camera(c.K, c.R, c.t, c.dist, (960, 540) if c.size[0] > c.size[1] else (540, 960), c.name) for c in cams]
    marker = qca_camera_xml(cams[0], "20001", model="Miqus M3")  # a marker camera: skipped
    xml = [marker, qca_camera_xml(small[0], "28519", left=480, top=270),   # cropped video window
           qca_camera_xml(small[1], "28520"), qca_camera_xml(small[2], "31337", left=100, top=40)]
    p = tmp_path / "Calib.qca.txt"
    p.write_text(qca_file(xml))
    back = C.load_calibration(p)
    assert [c.name for c in back] == ["28519", "28520", "31337"]
    assert_same_projection(small, back)


@pytest.mark.parametrize("binning", [2, 3])
def test_qualisys_binning_factor(tmp_path, binning):
    cam = make_rig(1, seed=9)[0]
    cam = Camera(cam.K, cam.R, cam.t, cam.dist, (640, 360), "cam01")  # the binned video's camera
    p = tmp_path / "Calib.qca.txt"
    p.write_text(qca_file([qca_camera_xml(cam, "cam01", left=64, top=32, binning=binning)]))
    back = C.read_qualisys(p, binning_factor=binning)
    assert_same_projection([cam], back)
    with pytest.raises(CalibrationError, match="binning_factor"):
        C.read_qualisys(p, binning_factor=0)


def test_qualisys_distortion_scale(tmp_path):
    cam = make_rig(1, seed=4)[0]
    p = tmp_path / "c.qca.txt"
    p.write_text(qca_file([qca_camera_xml(cam, "c1", dist_scale=1 / 64)]))  # coefficients written x 64
    np.testing.assert_allclose(C.read_qualisys(p, distortion_scale=1 / 64)[0].dist, cam.dist, atol=1e-8)
    np.testing.assert_allclose(C.read_qualisys(p)[0].dist, cam.dist * 64, atol=1e-6)


def test_qualisys_writer_round_trip(tmp_path):
    cams = make_rig(4, seed=11)
    p = C.write_qualisys(cams, tmp_path / "rig.qca.txt")
    text = p.read_text()
    assert "<calibration" in text and 'serial="cam01"' in text and "tangentalDistortion1" in text
    assert C.detect_format(p) == "qualisys"
    assert_same_projection(cams, C.load_calibration(p))
    assert_same_projection(cams, C.read_qualisys(C.write_qualisys(cams, tmp_path / "p2s.qca.txt", distortion_scale=1 / 64),
                                                 distortion_scale=1 / 64))
    # an exported .txt with an XML <calibration> root is recognised by content
    q = tmp_path / "export.txt"
    q.write_text(text)
    assert C.detect_format(q) == "qualisys"
    with pytest.raises(CalibrationError, match="size"):
        C.write_qualisys([Camera(cams[0].K, cams[0].R, cams[0].t, name="x")], tmp_path / "x.qca.txt")


def test_qualisys_viewrotation_and_low_resolution_warn(tmp_path):
    cam = make_rig(1)[0]  # 1920x1080
    xml = qca_camera_xml(cam, "c1").replace('viewrotation="0"', 'viewrotation="90"')
    p = tmp_path / "c.qca.txt"
    p.write_text(qca_file([xml]))
    with pytest.warns(UserWarning, match="viewrotation"):
        C.read_qualisys(p)
    p.write_text(qca_file([qca_camera_xml(cam, "c1").replace('video_resolution="1080p"', 'video_resolution="540p"')]))
    with pytest.warns(UserWarning, match="540p"):
        full = C.read_qualisys(p)[0]
    # the camera of the 540p video: the full-window camera rescaled
    half = C.rescale_camera(full, (960, 540))
    np.testing.assert_allclose(half.project(points()), (cam.project(points()) + 0.5) / 2 - 0.5, atol=1e-6)


def _good_qca(tmp_path):
    return qca_camera_xml(make_rig(1)[0], "c1")


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.replace("</calibration>", ""), "malformed XML"),
    (lambda s: s.replace("<calibration ", "<settings ").replace("</calibration>", "</settings>"), "not a Qualisys"),
    (lambda s: s.replace(' x="', ' xx="'), "lacks the attribute 'x'"),
    (lambda s: s.replace('focalLengthU="', 'focalLengthU="nan'), "focalLengthU"),
    (lambda s: s.replace('focalLengthV="', 'focalLengthV="abc'), "not a number"),
    (lambda s: re.sub(r'r11="[^"]*"', 'r11="2.0"', s), "not a rotation"),
    (lambda s: s.replace("<fov_video ", "<fov_other "), "lacks a <fov_video>"),
    (lambda s: s.replace('model="Miqus Video"', 'model="Oqus 7+"'), "no video cameras"),
    (lambda s: s.replace("<cameras>", "<cameras>" + s[s.find("    <camera "):s.find("  </cameras>")]),
     "duplicate camera names"),
])
def test_qualisys_errors(tmp_path, edit, match):
    text = edit(qca_file([_good_qca(tmp_path)]))
    p = tmp_path / "bad.qca.txt"
    p.write_text(text)
    with pytest.raises(CalibrationError, match=match) as e:
        C.load_calibration(p)
    assert "bad.qca.txt" in str(e.value)


def test_binary_qca_hint(tmp_path):
    p = tmp_path / "Calib.qca"
    p.write_bytes(b"\x00\x01QCA binary\xff")
    with pytest.raises(CalibrationError, match=r"\.qca\.txt"):
        C.load_calibration(p)


# ---------------------------------------------------------------------------- EasyMocap
def test_easymocap_round_trip(tmp_path):
    cams = make_rig(4, seed=21, names=["01", "02", "03", "04"])
    pi, pe = C.write_easymocap(cams, tmp_path / "calib")
    assert pi.read_text().startswith("%YAML:1.0\n---\nnames:\n  - \"01\"")
    assert "T_01: !!opencv-matrix" in pe.read_text() and "Rot_01" in pe.read_text()
    for p in (tmp_path / "calib", pi, pe):
        assert_same_projection(cams, C.load_calibration(p))
    # EasyMocap's T is in metres
    fs = cv2.FileStorage(str(pe), cv2.FILE_STORAGE_READ)
    assert 1.0 < np.linalg.norm(fs.getNode("T_01").mat()) < 10.0
    fs.release()


def test_easymocap_own_text_layout(tmp_path):
    """The exact text EasyMocap's camera_utils.FileStorage writes: CRLF lines, '%YAML:1.0', quoted
    names, matrices with 6 decimals, H_/W_ ints, R_ (Rodrigues), Rot_ and T_ (metres)."""
    cams = make_rig(3, seed=25, names=["1", "2", "3"])

    def mat(key, a):
        a = np.atleast_2d(a)
        return [f"{key}: !!opencv-matrix", f"  rows: {a.shape[0]}", f"  cols: {a.shape[1]}", "  dt: d",
                "  data: [{}]".format(", ".join("{:.6f}".format(v) for v in a.reshape(-1)))]

    head = ["%YAML:1.0", "---", "names:"] + [f'  - "{c.name}"' for c in cams]
    intri, extri = list(head), list(head)
    for c in cams:
        intri += mat(f"K_{c.name}", c.K) + mat(f"dist_{c.name}", c.dist[None])
        intri += [f"H_{c.name}: {c.size[1]}", f"W_{c.name}: {c.size[0]}"]
        extri += mat(f"R_{c.name}", cv2.Rodrigues(c.R)[0]) + mat(f"Rot_{c.name}", c.R) + mat(f"T_{c.name}", (c.t / 1000)[:, None])
    (tmp_path / "intri.yml").write_bytes(("\r\n".join(intri) + "\r\n").encode())
    (tmp_path / "extri.yml").write_bytes(("\r\n".join(extri) + "\r\n").encode())
    assert_same_projection(cams, C.load_calibration(tmp_path))


def write_opencv_yml(folder, cams, *, rvec=True, rot=False, units=1000.0, skip=()):
    """intri.yml / extri.yml written by OpenCV's own cv2.FileStorage writer."""
    folder.mkdir(parents=True, exist_ok=True)
    fi = cv2.FileStorage(str(folder / "intri.yml"), cv2.FILE_STORAGE_WRITE)
    fe = cv2.FileStorage(str(folder / "extri.yml"), cv2.FILE_STORAGE_WRITE)
    for fs in (fi, fe):
        fs.startWriteStruct("names", cv2.FileNode_SEQ)
        for c in cams:
            fs.write("", c.name)
        fs.endWriteStruct()
    for c in cams:
        if "K" not in skip:
            fi.write(f"K_{c.name}", c.K)
        fi.write(f"dist_{c.name}", c.dist[None])
        fi.write(f"H_{c.name}", int(c.size[1]))
        fi.write(f"W_{c.name}", int(c.size[0]))
        if rvec:
            fe.write(f"R_{c.name}", cv2.Rodrigues(c.R)[0])
        if rot:
            fe.write(f"Rot_{c.name}", c.R)
        if "T" not in skip:
            fe.write(f"T_{c.name}", (c.t / units)[:, None])
    fi.release()
    fe.release()


@pytest.mark.parametrize("rvec, rot", [(True, False), (False, True), (True, True)])
def test_easymocap_opencv_writer(tmp_path, rvec, rot):
    cams = make_rig(3, seed=22)
    write_opencv_yml(tmp_path, cams, rvec=rvec, rot=rot)
    assert_same_projection(cams, C.read_easymocap(tmp_path))


def test_easymocap_units(tmp_path):
    cams = make_rig(2, seed=23)
    write_opencv_yml(tmp_path, cams, units=1.0)  # T in mm
    with pytest.warns(UserWarning, match="millimetres"):
        assert_same_projection(cams, C.read_easymocap(tmp_path))
    assert_same_projection(cams, C.read_easymocap(tmp_path, units="mm"))


def test_easymocap_errors(tmp_path):
    cams = make_rig(2, seed=24)
    write_opencv_yml(tmp_path / "a", cams, skip=("K",))
    with pytest.raises(CalibrationError, match="no K_cam01") as e:
        C.read_easymocap(tmp_path / "a")
    assert "intri.yml" in str(e.value)
    write_opencv_yml(tmp_path / "b", cams, skip=("T",))
    with pytest.raises(CalibrationError, match="no T_cam01"):
        C.read_easymocap(tmp_path / "b")
    write_opencv_yml(tmp_path / "c", cams, rvec=False, rot=False)
    with pytest.raises(CalibrationError, match="neither R_cam01"):
        C.read_easymocap(tmp_path / "c")
    # Rodrigues and matrix disagree
    bad = [Camera(c.K, c.R, c.t, c.dist, c.size, c.name) for c in cams]
    write_opencv_yml(tmp_path / "d", bad, rvec=True, rot=False)
    fe = cv2.FileStorage(str(tmp_path / "d" / "extri.yml"), cv2.FILE_STORAGE_APPEND)
    for c in bad:
        fe.write(f"Rot_{c.name}", c.R.T)
    fe.release()
    with pytest.raises(CalibrationError, match="disagree"):
        C.read_easymocap(tmp_path / "d")
    # not a rotation
    (tmp_path / "e").mkdir()
    write_opencv_yml(tmp_path / "e", cams, rvec=False, rot=False)
    fe = cv2.FileStorage(str(tmp_path / "e" / "extri.yml"), cv2.FILE_STORAGE_APPEND)
    for c in cams:
        fe.write(f"Rot_{c.name}", c.R * 1.5)
    fe.release()
    with pytest.raises(CalibrationError, match="not a rotation"):
        C.read_easymocap(tmp_path / "e")
    # malformed YAML
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "intri.yml").write_text("%YAML:1.0\n---\nnames: [\"a\"\nK_a: !!opencv-matrix\n  rows: [[[\n")
    (tmp_path / "f" / "extri.yml").write_text("%YAML:1.0\n---\nnames:\n  - \"a\"\n")
    with pytest.raises(CalibrationError, match="intri.yml"):
        C.read_easymocap(tmp_path / "f")
    # only one of the two files
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "intri.yml").write_text("%YAML:1.0\n---\nnames:\n  - \"a\"\n")
    with pytest.raises(CalibrationError, match="both intri.yml and extri.yml"):
        C.load_calibration(tmp_path / "g" / "intri.yml")
    # no names
    (tmp_path / "g" / "extri.yml").write_text("%YAML:1.0\n---\nfoo: 1\n")
    (tmp_path / "g" / "intri.yml").write_text("%YAML:1.0\n---\nfoo: 1\n")
    with pytest.raises(CalibrationError, match="'names'"):
        C.load_calibration(tmp_path / "g")
    # NaN in T
    _, pe = C.write_easymocap(cams, tmp_path / "h")
    text = pe.read_text()
    i = text.index("T_cam02")
    i = text.index("data: [", i) + len("data: [")
    pe.write_text(text[:i] + ".nan" + text[text.index(",", i):])
    with pytest.raises(CalibrationError, match="T_cam02 contains NaN"):
        C.read_easymocap(tmp_path / "h")
    with pytest.raises(CalibrationError, match="FileStorage key"):
        C.write_easymocap([Camera(cams[0].K, cams[0].R, cams[0].t, name="cam 1.mp4")], tmp_path / "i")


# ---------------------------------------------------------------------------- conversions & dispatch
def test_convert_between_all_formats(tmp_path):
    cams = make_rig(4, seed=31)
    a = C.load_calibration(C.write_toml(cams, tmp_path / "a.toml"))
    C.write_easymocap(a, tmp_path / "b")
    b = C.load_calibration(tmp_path / "b")
    c = C.load_calibration(C.write_qualisys(b, tmp_path / "c.qca.txt"))
    d = C.load_calibration(C.write_toml(c, tmp_path / "d.toml"))
    assert_same_projection(cams, d)


def test_convert_calibration(tmp_path):
    cams = make_rig(3, seed=32)
    src = C.write_qualisys(cams, tmp_path / "Calib.qca.txt")
    C.convert_calibration(src, tmp_path / "Calib.toml")
    C.convert_calibration(tmp_path / "Calib.toml", tmp_path / "emc")
    assert_same_projection(cams, C.load_calibration(tmp_path / "emc"))
    with pytest.raises(CalibrationError, match="cannot write"):
        C.convert_calibration(src, tmp_path / "x.json", to_format="json")


def test_detect_format(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "Calib_scene.toml").write_text("")
    (tmp_path / "x" / "Calib.qca.txt").write_text("")
    with pytest.raises(CalibrationError, match="several calibration files"):
        C.detect_format(tmp_path / "x")
    assert C.detect_format(tmp_path / "x" / "Calib_scene.toml") == "toml"
    assert C.detect_format(tmp_path / "x" / "Calib.qca.txt") == "qualisys"
    (tmp_path / "metadata.xml").write_text("<mocap/>")
    assert C.detect_format(tmp_path / "metadata.xml") == "h36m"
    assert C.detect_format(f"{tmp_path / 'metadata.xml'}#S9") == "h36m"
    with pytest.raises(CalibrationError, match="does not exist"):
        C.detect_format(f"{tmp_path / 'other.xml'}#S9")


def test_h36m_dispatch_calls_the_importer(tmp_path, monkeypatch):
    """format="h36m" hands the path to maskpose.data.importers.h36m.load_h36m_calibration (a
    stand-in module here, so this test does not depend on the H36M importer)."""
    seen = []
    cams = make_rig(2)

    def load_h36m_calibration(path):
        seen.append(path)
        return cams

    mod = types.ModuleType("maskpose.data.importers.h36m")
    mod.load_h36m_calibration = load_h36m_calibration
    if "maskpose.data.importers" not in sys.modules:
        try:
            import maskpose.data.importers  # noqa: F401
        except ImportError:
            monkeypatch.setitem(sys.modules, "maskpose.data.importers", types.ModuleType("maskpose.data.importers"))
    monkeypatch.setitem(sys.modules, "maskpose.data.importers.h36m", mod)
    (tmp_path / "metadata.xml").write_text("<mocap/>")
    out = C.load_calibration(f"{tmp_path / 'metadata.xml'}#S9")  # format detected, suffix passed on
    assert out == cams and [str(p) for p in seen] == [f"{tmp_path / 'metadata.xml'}#S9"]
    mod.load_h36m_calibration = lambda path: [cams[0], cams[0]]
    with pytest.raises(CalibrationError, match="duplicate"):
        C.load_calibration(tmp_path / "metadata.xml", format="h36m")

    def bad(path):
        raise ValueError(f"{path}: no subject")

    mod.load_h36m_calibration = bad
    with pytest.raises(CalibrationError, match="no subject"):
        C.load_calibration(tmp_path / "metadata.xml", format="h36m")


# ---------------------------------------------------------------------------- match_cameras
def test_match_cameras_reorders():
    cams = make_rig(4)  # cam01..cam04
    out = C.match_cameras(cams, ["videos/cam03.mp4", "cam1", "cam04_video.avi", "CAM_02.MOV"], "rig.toml")
    assert [c.name for c in out] == ["cam03", "cam01", "cam04", "cam02"]
    assert out[0] is cams[2]
    # numbers only, and QTM's exported video names (camera number and serial)
    out = C.match_cameras(cams, ["4.mp4", "3.mp4", "2.mp4", "1.mp4"], "x")
    assert [c.name for c in out] == ["cam04", "cam03", "cam02", "cam01"]
    q = make_rig(3, names=["28519", "28520", "31337"])
    out = C.match_cameras(q, ["Walk_Miqus_3_31337.avi", "Walk_Miqus_1_28519.avi", "Walk_Miqus_2_28520.avi"], "q")
    assert [c.name for c in out] == ["31337", "28519", "28520"]
    # H36M-style names: the camera id inside a dotted file name
    h = make_rig(4, names=["54138969", "55011271", "58860488", "60457274"])
    views = [f"S1_Walking.{n}.mp4" for n in ["60457274", "54138969", "58860488", "55011271"]]
    assert [c.name for c in C.match_cameras(h, views, "h36m")] == ["60457274", "54138969", "58860488", "55011271"]
    # names without numbers, found inside the file names
    lr = make_rig(3, names=["left", "right", "top"])
    out = C.match_cameras(lr, ["take3_right.mp4", "take3_left.mp4", "take3_top.mp4"], "x")
    assert [c.name for c in out] == ["right", "left", "top"]
    # cam1 vs cam10 are not confused
    many = make_rig(10, names=[f"cam{i}" for i in range(1, 11)])
    views = [f"cam{i}.mp4" for i in (10, 1, 2, 3, 4, 5, 6, 7, 8, 9)]
    assert [c.name for c in C.match_cameras(many, views, "x")] == [f"cam{i}" for i in (10, 1, 2, 3, 4, 5, 6, 7, 8, 9)]
    # a subset of a larger rig
    assert [c.name for c in C.match_cameras(many, ["cam7.mp4", "cam2.mp4"], "x")] == ["cam7", "cam2"]


def test_match_cameras_errors():
    cams = make_rig(4)
    with pytest.raises(CalibrationError, match="5 views but only 4") as e:
        C.match_cameras(cams, [f"cam0{i}.mp4" for i in range(1, 6)], "rig.toml")
    assert "cam01" in str(e.value) and "cam05.mp4" in str(e.value) and "rig.toml" in str(e.value)
    with pytest.raises(CalibrationError, match="cannot tell which camera") as e:
        C.match_cameras(cams, ["cam01.mp4", "cam02.mp4", "cam03.mp4", "left.mp4"], "rig.toml")
    assert "left.mp4" in str(e.value) and "cam04" in str(e.value)
    named = make_rig(2, names=["left", "right"])
    with pytest.raises(CalibrationError, match="cannot tell"):
        C.match_cameras(named, ["a.mp4", "b.mp4"], "x")
    with pytest.raises(CalibrationError, match="duplicate view"):
        C.match_cameras(cams, ["cam01.mp4", "a/cam01.mp4"], "x")
    # ambiguous: the view number matches two cameras of different prefixes, nothing decides
    amb = make_rig(2, names=["a1", "b1"])
    with pytest.raises(CalibrationError, match="cannot tell"):
        C.match_cameras(amb, ["1.mp4", "x.mp4"], "x")


# ---------------------------------------------------------------------------- image size / rotation
def test_rescale_camera():
    cam = make_rig(1)[0]  # 1920x1080
    X = points()
    half = C.rescale_camera(cam, (960, 540))
    np.testing.assert_allclose(half.project(X), (cam.project(X) + 0.5) * 0.5 - 0.5, atol=1e-9)
    assert half.size == (960, 540)
    assert C.rescale_camera(cam, (1920, 1080)).project(X) == pytest.approx(cam.project(X))
    with pytest.warns(UserWarning, match="cut"):
        crop = C.rescale_camera(cam, (1912, 1080))
    np.testing.assert_allclose(crop.K, cam.K)
    with pytest.raises(CalibrationError, match="1920x1080"):
        C.rescale_camera(cam, (1080, 1920))


@pytest.mark.parametrize("k", [1, 2, 3, -1, 4])
def test_rotate_camera_image(k):
    cam = make_rig(2)[1]  # 1088x1920 portrait, distorted
    rot = C.rotate_camera_image(cam, k)
    X = points()
    uv = cam.project(X)
    W, H = cam.size
    for _ in range(k % 4):  # clockwise: (u, v) -> (H - 1 - v, u)
        uv = np.stack([H - 1 - uv[:, 1], uv[:, 0]], axis=1)
        W, H = H, W
    np.testing.assert_allclose(rot.project(X), uv, atol=1e-6)
    assert rot.size == (W, H)
    np.testing.assert_allclose(rot.center, cam.center, atol=1e-9)


def test_rotation_convention_is_cv2_rotate():
    img = np.zeros((5, 8), np.uint8)  # H=5, W=8
    img[1, 6] = 255  # (u, v) = (6, 1)
    r = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    v, u = np.argwhere(r == 255)[0]
    assert (u, v) == (5 - 1 - 1, 6)
