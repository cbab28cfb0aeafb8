"""Pictures: skeleton colours at known pixels, videos that read back, 3D plots with equal axes and
no mirroring, animations with T frames, report panels."""
import cv2
import numpy as np
import pytest

from maskpose import viz
from maskpose.skeleton import H36M17, H36M18


def t_pose(scale: float = 1.0) -> np.ndarray:
    """A T-pose in image pixels (y down) facing the viewer: the person's left is on the image right.
    Bones are well separated so that their midpoints are not covered by other bones."""
    j = {
        "pelvis": (100, 120), "RHip": (80, 120), "RKnee": (80, 160), "RAnkle": (80, 195),
        "LHip": (120, 120), "LKnee": (120, 160), "LAnkle": (120, 195), "spine": (100, 95),
        "thorax": (100, 60), "neck": (100, 50), "nose": (100, 38), "head": (100, 25),
        "LShoulder": (125, 60), "LElbow": (160, 60), "LWrist": (190, 60),
        "RShoulder": (75, 60), "RElbow": (40, 60), "RWrist": (10, 60),
    }
    return np.array([j[n] for n in H36M18.joints], dtype=np.float64) * scale


def colour_near(img, x, y, rgb, tol=40, r=0):
    """True if some pixel within ``r`` of (x, y) has colour ``rgb`` (max channel difference <= tol)."""
    x, y = int(round(x)), int(round(y))
    patch = img[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(rgb)).max(-1) <= tol).any())


def test_sides_from_names():
    assert viz.joint_side("LHip") == "left" and viz.joint_side("RWrist") == "right"
    assert viz.joint_side("L-thigh") == "left" and viz.joint_side("right_ankle") == "right"
    assert viz.joint_side("pelvis") == "centre" and viz.joint_side("Lumbar") == "centre"
    sides = {b.name: viz.bone_side(b, H36M18) for b in H36M18.bones}
    assert sides["L-forearm"] == "left" and sides["R-shin"] == "right" and sides["spine"] == "centre"


def test_draw_skeleton_colours_at_bone_midpoints_and_joints():
    img = np.zeros((210, 200, 3), np.uint8)
    j = t_pose()
    out = viz.draw_skeleton(img, j, H36M18, thickness=3, radius=3)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert img.max() == 0  # the input is not modified
    idx = H36M18.index
    checks = {("LElbow", "LWrist"): viz.LEFT_RGB, ("LKnee", "LAnkle"): viz.LEFT_RGB,
              ("RElbow", "RWrist"): viz.RIGHT_RGB, ("RKnee", "RAnkle"): viz.RIGHT_RGB,
              ("pelvis", "spine"): viz.CENTRE_RGB, ("nose", "head"): viz.CENTRE_RGB}
    for (a, b), rgb in checks.items():
        mid = 0.5 * (j[idx(a)] + j[idx(b)])
        assert colour_near(out, *mid, rgb, tol=10), (a, b, out[int(mid[1]), int(mid[0])])
    # every joint is a dot of its side's colour at its projected location
    for name in H36M18.joints:
        rgb = {"left": viz.LEFT_RGB, "right": viz.RIGHT_RGB, "centre": viz.CENTRE_RGB}[viz.joint_side(name)]
        assert colour_near(out, *j[idx(name)], rgb, tol=10), name
    # far from the skeleton nothing is drawn
    assert out[200, 5].max() == 0 and out[5, 195].max() == 0


def test_draw_skeleton_nan_joint_mask_contour_confidence_and_bgr():
    img = np.full((210, 200, 3), 255, np.uint8)
    j = t_pose()
    j[H36M18.index("LWrist")] = np.nan
    mask = np.zeros((105, 100), bool)  # half resolution: resized to the image
    mask[20:90, 30:70] = True
    conf = np.ones(18)
    conf[H36M18.index("RKnee")] = 0.1
    out = viz.draw_skeleton(img, j, "h36m18", mask=mask, confidence=conf, thickness=3)
    idx = H36M18.index
    # no forearm towards the unknown wrist
    mid = 0.5 * (j[idx("LElbow")] + np.array([190.0, 60.0]))
    assert out[int(mid[1]), int(mid[0])].tolist() == [255, 255, 255]
    # the low-confidence knee's bones are grey, not red
    mid = 0.5 * (j[idx("RKnee")] + j[idx("RAnkle")])
    assert colour_near(out, *mid, viz.LOW_CONF_RGB, tol=30, r=1)
    assert not colour_near(out, *mid, viz.RIGHT_RGB, tol=30, r=1)
    # the mask outline (yellow) runs along the scaled mask border, e.g. its left edge x ~ 60
    assert colour_near(out, 60, 100, viz.MASK_RGB, tol=40, r=1)
    assert not colour_near(out, 100, 175, viz.MASK_RGB, tol=40, r=3)  # outside the mask: no outline
    # BGR images get BGR colours
    bgr = viz.draw_skeleton(np.zeros((210, 200, 3), np.uint8), t_pose(), H36M18, thickness=3, bgr=True)
    mid = 0.5 * (t_pose()[idx("RElbow")] + t_pose()[idx("RWrist")])
    assert colour_near(bgr, *mid, viz.RIGHT_RGB[::-1], tol=10)


def test_draw_skeleton_rejects_bad_shapes():
    with pytest.raises(viz.VizError, match=r"\[18, 2\]"):
        viz.draw_skeleton(np.zeros((10, 10, 3), np.uint8), np.zeros((17, 2)), H36M18)
    with pytest.raises(viz.VizError, match="image"):
        viz.draw_skeleton(np.zeros((10,)), np.zeros((18, 2)), H36M18)
    # another joint set works with its own joint count
    out = viz.draw_skeleton(np.zeros((210, 200, 3), np.uint8), t_pose()[:17], H36M17)
    assert out.any()


def test_to_pixels_and_scale_pixels():
    assert np.allclose(viz.to_pixels(np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]), 64),
                       [[0, 0], [63, 63], [31.5, 31.5]])
    # pixel centres map to pixel centres: pixel 0 of a 2-px image spans [-0.5, 0.5] -> [-0.5, 1.5] at 4 px
    assert np.allclose(viz.scale_pixels(np.array([[0.0, 1.0]]), (2, 2), (4, 4)), [[0.5, 2.5]])


def _frames(T, V, h, w):
    for t in range(T):
        yield [np.full((h, w, 3), 20 * t + 40 * v, np.uint8) for v in range(V)]


def test_overlay_video_reads_back_with_frame_count_and_size(tmp_path):
    T, V, h, w = 6, 3, 120, 100
    j = np.repeat(np.repeat(t_pose(0.5)[None, None], V, 1), T, 0)  # [T, V, J, 2] in 100x105 px
    j = j + np.arange(T)[:, None, None, None]  # moving
    masks = [[np.ones((h, w), bool)] * V for _ in range(T)]
    out = viz.overlay_video(_frames(T, V, h, w), j, tmp_path / "o.mp4", masks=masks, fps=10,
                            view_names=["a", "b", "c"], tile_height=120)
    assert out.exists() and out.stat().st_size > 0
    cap = cv2.VideoCapture(str(out))
    n, shape = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n, shape = n + 1, f.shape
    cap.release()
    assert n == T
    rows, cols = viz.grid_shape(V)
    assert (rows, cols) == (2, 2)
    assert shape == (rows * 120, cols * 100, 3)


def test_overlay_video_avi_and_errors(tmp_path):
    j = np.zeros((3, 1, 18, 2)) + 5.0
    frames = [np.zeros((32, 48, 3), np.uint8)] * 3  # one view: a bare image per instant
    out = viz.overlay_video(frames, j, tmp_path / "o.avi", fps=5)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (48, 32)
    with pytest.raises(viz.VizError, match="frames gave 2 instants but joints2d has T = 3"):
        viz.overlay_video(frames[:2], j, tmp_path / "short.mp4")
    assert not (tmp_path / "short.mp4").exists()
    with pytest.raises(viz.VizError, match=".mp4"):
        viz.overlay_video(frames, j, tmp_path / "o.txt")
    with pytest.raises(viz.VizError, match="2 views but joints2d has V = 1"):
        viz.overlay_video([[frames[0], frames[0]]] * 3, j, tmp_path / "v.mp4")


def test_tile_views_letterboxes_wider_views():
    a = np.full((10, 10, 3), 100, np.uint8)
    b = np.full((10, 40, 3), 200, np.uint8)
    g = viz.tile_views([a, b], 20, columns=2, tile_width=20)
    assert g.shape == (20, 40, 3)
    assert g[10, 30].tolist() == [200] * 3 and g[0, 30].tolist() == [0] * 3  # letterboxed b: 5 px high, centred


def test_up_rotation_is_a_rotation():
    cases = {"z": (0, 0, 1), "-z": (0, 0, -1), "y": (0, 1, 0), "-y": (0, -1, 0), "x": (1, 0, 0), "-x": (-1, 0, 0)}
    cases[(1.0, 2.0, 3.0)] = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    for up, u in cases.items():
        R = viz.up_rotation(up)
        assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0), up  # a rotation: no mirror
        assert np.allclose(R @ np.asarray(u, float), [0, 0, 1]), up  # the up axis becomes the plot's z
    with pytest.raises(viz.VizError, match="up_axis"):
        viz.up_rotation("w")


def _screen_x(ax, point):
    from mpl_toolkits.mplot3d import proj3d

    x, _, _ = proj3d.proj_transform(point[0], point[1], point[2], ax.get_proj())
    return x


def camera_frame_pose() -> np.ndarray:
    """A person 3 m in front of an OpenCV camera (x right, y down, z forward), facing it: their left
    is at +x (image right), their head at -y."""
    j2 = t_pose()  # pixels, y down, left on the right
    X = np.zeros((18, 3))
    X[:, 0] = (j2[:, 0] - 100) * 10.0
    X[:, 1] = (j2[:, 1] - 120) * 10.0
    X[:, 2] = 3000.0
    return X


def test_plot_skeleton_3d_equal_axes_and_not_mirrored():
    fig = viz.new_figure(300, 300)
    ax = fig.add_subplot(projection="3d")
    X = camera_frame_pose()
    X[:, 2] += np.linspace(0, 400, 18)  # some depth spread (a much smaller range than x or y)
    viz.plot_skeleton_3d(ax, X, H36M18, up_axis="-y")
    ranges = [np.diff(ax.get_xlim3d())[0], np.diff(ax.get_ylim3d())[0], np.diff(ax.get_zlim3d())[0]]
    assert np.allclose(ranges, ranges[0]) and ranges[0] >= 1800  # the arm span (1800 mm) fits
    # looking from the camera (plot -Y, i.e. elevation 0, azimuth -90), the person's left is on the right
    ax.view_init(elev=0, azim=-90)
    fig.canvas.draw()
    R = viz.up_rotation("-y")
    lw, rw = R @ X[H36M18.index("LWrist")], R @ X[H36M18.index("RWrist")]
    assert _screen_x(ax, lw) > _screen_x(ax, rw)
    # and the head is up
    from mpl_toolkits.mplot3d import proj3d
    head = R @ X[H36M18.index("head")]
    ankle = R @ X[H36M18.index("LAnkle")]
    yh = proj3d.proj_transform(*head, ax.get_proj())[1]
    ya = proj3d.proj_transform(*ankle, ax.get_proj())[1]
    assert yh > ya  # display y grows upwards


def test_save_skeleton_3d_png(tmp_path):
    X = camera_frame_pose()
    p = viz.save_skeleton_3d(X, tmp_path / "s.png", up_axis="-y", gt=X + 30.0, size_px=200, title="t")
    img = cv2.imread(str(p))
    assert img.shape == (200, 400, 3)
    rgb = img[..., ::-1].reshape(-1, 3).astype(int)
    for c in (viz.LEFT_RGB, viz.RIGHT_RGB, viz.CENTRE_RGB):
        assert (np.abs(rgb - np.array(c)).max(-1) < 40).sum() > 20, c  # each side colour is drawn


def test_animate_3d_gif_and_mp4_have_T_frames(tmp_path):
    from PIL import Image

    T = 5
    X = np.stack([camera_frame_pose() + np.array([0.0, 0.0, 100.0 * t]) for t in range(T)])
    X[:, H36M18.index("LWrist"), 1] -= 100.0 * np.arange(T)[:, None].ravel()  # the left hand rises
    g = viz.animate_3d(X, tmp_path / "a.gif", fps=5, up_axis="-y", size_px=120)
    assert g.stat().st_size > 0
    with Image.open(g) as im:
        assert im.n_frames == T and im.size == (120, 120)
    m = viz.animate_3d(X, tmp_path / "a.mp4", fps=5, up_axis="-y", size_px=120)
    cap = cv2.VideoCapture(str(m))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == T
    with pytest.raises(viz.VizError, match=r"\[T, 18, 3\]"):
        viz.animate_3d(X[0], tmp_path / "b.gif")


def test_sample_panel_layout_and_content():
    S = 32
    img = np.zeros((S, S, 3), np.uint8)
    mask = np.zeros((S, S), np.float32)
    mask[4:28, 10:22] = 1
    skel = mask * 0.5
    body = np.zeros((S, S), np.float32)
    body[6:26, 12:20] = 1.0
    j = t_pose(S / 210.0)
    p5 = viz.sample_panel(img, mask, skel, skel, body, joints2d=j, tile=64, header=False)
    p4 = viz.sample_panel(img, mask, skel, None, body, joints2d=j, tile=64, header=False)
    assert p5.shape == (64, 5 * 64, 3) and p4.shape == (64, 4 * 64, 3)
    ph = viz.sample_panel(img, mask, skel, None, body, tile=64)
    assert ph.shape[1] == 256 and ph.shape[0] > 64  # header strip
    # mask tile: white inside, black outside
    assert p4[32, 64 + 32].tolist() == [255] * 3 and p4[2, 64 + 2].tolist() == [0] * 3
    # body tile (last): the yellow outline of the mask is drawn on it
    body_tile = p4[:, 3 * 64:]
    assert colour_near(body_tile, (10 + 0.5) * 2 - 0.5, 32, viz.MASK_RGB, tol=60, r=2)
    # the predicted skeleton is drawn on the image tile (a left-arm bone in blue)
    js = viz.scale_pixels(j, (S, S), (64, 64))
    mid = 0.5 * (js[H36M18.index("LElbow")] + js[H36M18.index("LWrist")])
    assert colour_near(p4[:, :64], *mid, viz.LEFT_RGB, tol=40, r=1)


def test_estimate_up_and_auto_axis():
    X = camera_frame_pose()  # head at -y
    assert np.allclose(viz.estimate_up(X), [0, -1, 0], atol=1e-9)
    seq = np.stack([X, X + 5.0])
    seq[1, 3] = np.nan  # a missing joint in one frame does not matter
    assert np.allclose(viz.estimate_up(seq, "h36m18"), [0, -1, 0], atol=1e-9)
    fig = viz.new_figure(200, 200)
    ax = fig.add_subplot(projection="3d")
    viz.plot_skeleton_3d(ax, X, H36M18, up_axis="auto")
    ax.view_init(elev=0, azim=-90)
    fig.canvas.draw()
    R = viz.up_rotation(viz.estimate_up(X))
    from mpl_toolkits.mplot3d import proj3d
    head_y = proj3d.proj_transform(*(R @ X[H36M18.index("head")]), ax.get_proj())[1]
    ankle_y = proj3d.proj_transform(*(R @ X[H36M18.index("RAnkle")]), ax.get_proj())[1]
    assert head_y > ankle_y


def test_overlay_frame_grid_and_bgr_frames():
    blue_bgr = np.zeros((40, 30, 3), np.uint8)
    blue_bgr[..., 0] = 255  # pure blue in BGR order
    j = np.full((2, 18, 2), np.nan)
    g = viz.overlay_frame([blue_bgr, blue_bgr], j, H36M18, tile_height=40, bgr_frames=True, view_names=["", ""])
    assert g.shape == (40, 60, 3)
    assert g[20, 15].tolist() == [0, 0, 255] and g[20, 45].tolist() == [0, 0, 255]  # RGB blue


class ListSource:
    """A frame source (``read(i)`` -> RGB) over in-memory frames: stands in for a video file."""

    def __init__(self, frames):
        self.frames = frames
        self.reads = []

    def read(self, i):
        self.reads.append(i)
        return self.frames[i]


def test_overlay_poses_reads_the_sequences_source_frames(tmp_path):
    from maskpose.export import PoseSequence

    T, V = 3, 2
    src = [ListSource([np.full((60, 80, 3), 10 * k + v, np.uint8) for k in range(10)]) for v in range(V)]
    j2 = np.repeat(np.repeat(t_pose(0.3)[None, None], V, 1), T, 0)
    seq = PoseSequence(joints3d=np.zeros((T, 18, 3)), joint_names=list(H36M18.joints), frame_ids=["4", "6", "8"],
                       frame="world", fps=12.5, joints2d=j2, view_names=["c0", "c1"])
    out = viz.overlay_poses(seq, src, tmp_path / "p.mp4")
    assert src[0].reads == [4, 6, 8] and src[1].reads == [4, 6, 8]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == T and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5)
    seq.frame_ids = ["a", "b", "c"]
    with pytest.raises(viz.VizError, match="frame numbers"):
        viz.overlay_poses(seq, src, tmp_path / "q.mp4")
    with pytest.raises(viz.VizError, match="1 sources for 2 views"):
        viz.overlay_poses(seq, src[:1], tmp_path / "q.mp4")
