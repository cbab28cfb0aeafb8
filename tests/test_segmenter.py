"""maskpose.data.masks.MediaPipePose (masker "mediapipe"): the learned person segmenter whose weights ship in the
mediapipe wheel.

Without mediapipe: choosing the masker fails at once with an error that names what to install (make_segmenter,
prepare_dataset, the CLI), also for an installed mediapipe that lacks the model or cannot be imported.
With mediapipe (skipped otherwise): people rendered by maskpose's synthetic generator on a textured background are
segmented (IoU with the rendered silhouette), nobody in an empty frame, a frame's mask does not depend on the
frames before it, and prepare runs end to end with it.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from maskpose.data.masks import (MASKERS, MEDIAPIPE_VERSION, MediaPipePose, SegmenterUnavailable, make_segmenter,
                                 work_shape)
from maskpose.data.prepare import prepare_dataset
from maskpose.data.synthetic import render_view, sample_appearance, sample_body
from maskpose.geometry import Camera, look_at
from test_prepare import _background, crop_gt, iou, make_scene

cv2.setNumThreads(1)


def _mediapipe_modules() -> dict:
    return {k: m for k, m in sys.modules.items() if k == "mediapipe" or k.startswith("mediapipe.")}


@pytest.fixture
def no_mediapipe(monkeypatch):
    """mediapipe made unimportable for the test (``sys.modules[name] = None``), whether or not it is installed."""
    for k in _mediapipe_modules():
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.setitem(sys.modules, "mediapipe", None)


@pytest.fixture
def fake_mediapipe_root(tmp_path, monkeypatch):
    """An empty folder put first on ``sys.path`` with any imported mediapipe set aside (restored afterwards), for a
    stand-in mediapipe package written by the test."""
    saved = _mediapipe_modules()
    for k in saved:
        del sys.modules[k]
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for k in list(_mediapipe_modules()):
        del sys.modules[k]
    sys.modules.update(saved)


@pytest.fixture(scope="module")
def mp_seg():
    """A MediaPipePose, or skip when mediapipe is not installed / not usable here."""
    try:
        seg = MediaPipePose()
    except SegmenterUnavailable as e:
        pytest.skip(f"mediapipe not usable: {e}")
    yield seg
    seg.close()


def _install_hint_ok(msg: str) -> bool:
    return f"pip install --no-deps mediapipe=={MEDIAPIPE_VERSION}" in msg and "attrs" in msg


# ============================================================================ without mediapipe
def test_missing_mediapipe_is_a_clear_error(no_mediapipe):
    assert "mediapipe" in MASKERS
    with pytest.raises(SegmenterUnavailable) as e:
        make_segmenter("mediapipe", work_size=640)
    assert isinstance(e.value, ValueError)
    assert "not installed" in str(e.value) and _install_hint_ok(str(e.value)), str(e.value)
    # the other maskers do not need it
    assert type(make_segmenter("median", work_size=320)).__name__ == "MedianBackground"


def test_bad_threshold_is_refused_before_import(no_mediapipe):
    for th in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            MediaPipePose(threshold=th)


def test_prepare_and_cli_refuse_mediapipe_masker_without_it(no_mediapipe, tmp_path):
    from typer.testing import CliRunner

    from maskpose.cli import app

    sc = make_scene(tmp_path / "videos", views=1, frames=3, fmt="mp4", seed=2)
    with pytest.raises(SegmenterUnavailable, match="pip install"):
        prepare_dataset(sc["paths"][0], tmp_path / "ds", size=32, masker="mediapipe")
    r = CliRunner().invoke(app, ["prepare", str(sc["paths"][0]), "--out", str(tmp_path / "ds2"), "--size", "32",
                                 "--masker", "mediapipe"])
    assert r.exit_code != 0
    assert "pip install" in r.output and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("case", ["no_model", "broken_import", "graph_fails"])
def test_unusable_mediapipe_install_is_a_clear_error(fake_mediapipe_root, case):
    """An installed mediapipe without the bundled pose model (newer releases, which would download it), one whose
    import fails (a missing dependency) or whose graph cannot be built is reported with the version to install,
    not a traceback from inside it."""
    pkg = fake_mediapipe_root / "mediapipe"
    (pkg / "python").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '9.9.9'\n")
    (pkg / "python" / "__init__.py").write_text("")
    body = {"no_model": "class SolutionBase:\n    pass\n",
            "broken_import": "import attr_missing_for_test\n",
            "graph_fails": "class SolutionBase:\n    def __init__(self, **kw):\n"
                           "        raise AttributeError('no GetPrototype here')\n"}[case]
    (pkg / "python" / "solution_base.py").write_text(body)
    if case == "graph_fails":  # the graph and model files are there (empty stand-ins)
        (pkg / "modules" / "pose_landmark").mkdir(parents=True)
        for name in ("pose_landmark_cpu.binarypb", "pose_landmark_full.tflite"):
            (pkg / "modules" / "pose_landmark" / name).write_bytes(b"")
    with pytest.raises(SegmenterUnavailable) as e:
        make_segmenter("mediapipe")
    msg = str(e.value)
    assert _install_hint_ok(msg), msg
    expect = {"no_model": ["9.9.9", "pose_landmark_cpu.binarypb", "downloaded at run time"],
              "broken_import": ["cannot be used", "attr_missing_for_test"],
              "graph_fails": ["cannot be built", "no GetPrototype here"]}[case]
    assert all(x in msg for x in expect), msg


# ============================================================================ with mediapipe
def _rendered_person(seed: int, W: int = 256, H: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic person (maskpose's shaded body model, random pose / clothes / view) on a textured background:
    ``(frame [H, W, 3] uint8 RGB, silhouette [H, W] bool)``."""
    rng = np.random.default_rng(seed)
    body = sample_body(rng, "walk")
    app = sample_appearance(rng, 1)
    az = np.radians(60.0 + 40.0 * seed)
    R, t = look_at(np.array([3500.0 * np.cos(az), 3500.0 * np.sin(az), 1200.0]), np.array([0.0, 0.0, 900.0]))
    K = np.array([[420.0, 0, (W - 1) / 2], [0, 420.0, (H - 1) / 2], [0, 0, 1]])
    m, img = render_view(body, Camera(K=K, R=R, t=t, size=(W, H)), np.eye(3), max(W, H), app, view=0, supersample=2)
    m, img = m[:H, :W], img[:H, :W]
    frame = _background(rng, W, H)
    frame[m] = img[m]
    return frame, m


def test_segments_rendered_people_and_nobody_in_an_empty_frame(mp_seg):
    W, H = 256, 384
    ious = []
    frames = []
    for seed in range(4):
        frame, gt = _rendered_person(seed, W, H)
        frames.append(frame)
        m = mp_seg.segment(frame, (W, H))
        assert m.shape == (H, W) and m.dtype == bool
        ious.append(iou(m, gt))
        soft = mp_seg.probability(frame, (W, H))
        assert soft.shape == (H, W) and soft.dtype == np.float32 and 0.0 <= soft.min() and soft.max() <= 1.0
        assert np.array_equal(m, soft > mp_seg.threshold)
    assert min(ious) > 0.85, ious
    # at a lower working resolution: the mask has the working shape (the frame's aspect ratio)
    shape = work_shape((W, H), 192)
    small = mp_seg.segment(frames[0], shape)
    assert small.shape == (shape[1], shape[0]) == (192, 128)
    gt_small = cv2.resize(_rendered_person(0, W, H)[1].astype(np.uint8), shape, interpolation=cv2.INTER_NEAREST) > 0
    assert iou(small, gt_small) > 0.8
    # a frame without a person: empty mask, and probability() says nobody was found
    empty = _background(np.random.default_rng(11), W, H)
    assert not mp_seg.segment(empty, (W, H)).any()
    assert mp_seg.probability(empty, (W, H)) is None
    # a frame's mask does not depend on the frames processed before it (static-image mode)
    again = mp_seg.segment(frames[2], (W, H))
    fresh = MediaPipePose()
    try:
        assert np.array_equal(again, fresh.segment(frames[2], (W, H)))
    finally:
        fresh.close()


def test_prepare_with_mediapipe_masker(mp_seg, tmp_path):
    """prepare end to end with masker="mediapipe" on a rendered 3-view walk: (nearly) every view valid, crop masks
    close to the rendered silhouettes; the segmenter yields one ``(index, frame, mask)`` per requested index, in
    order. The detector misses a synthetic person now and then (1 of 12 view-frames of this scene), so one
    invalid view is allowed."""
    from maskpose.data.folder import MaskPoseDataset, mask_path, read_mask
    from maskpose.data.video import open_views

    sc = make_scene(tmp_path / "videos", views=3, frames=6, W=320, H=256, fmt="png", seed=4, walk=900.0)
    src = open_views([sc["paths"][0]])[0]
    items = list(make_segmenter("mediapipe", work_size=160)(src, [1, 3, 4]))
    src.close()
    assert [i for i, _, _ in items] == [1, 3, 4]
    assert all(f.shape == (256, 320, 3) and m.shape == (128, 160) and m.dtype == bool for _, f, m in items)
    out = tmp_path / "ds"
    S = 64
    summary = prepare_dataset(sc["root"], out, calibration=sc["cameras"], size=S, masker="mediapipe")
    assert summary["num_samples"] == 6 and summary["skipped"] == {}, summary
    ds = MaskPoseDataset(out)
    assert ds.valid.sum() >= ds.valid.size - 1, ds.valid
    ious = [iou(read_mask(mask_path(out, ds.ids[n], v)), crop_gt(sc["gt_und"][v, int(ds.fields["frame"][n])],
                                                                   ds.A[n, v], S))
            for n in range(len(ds)) for v in range(3) if ds.valid[n, v]]
    assert np.mean(ious) > 0.85 and min(ious) > 0.7, ious
