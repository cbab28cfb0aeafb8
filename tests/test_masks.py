"""maskpose.data.masks: background models, clean-up, user masks, GrabCut and the main-person choice."""
from __future__ import annotations


import cv2
import numpy as np
import pytest

from maskpose.data.masks import (BackgroundSubtractor, FolderMasks, MaskError, MedianBackground, PersonSelector,
                                 clean_mask, fill_small_holes, grabcut_refine, make_segmenter, read_user_mask,
                                 sample_indices, touches_border, work_shape)
from maskpose.data.video import open_source, open_views
from maskpose.geometry import Camera, look_at
from test_prepare import iou, make_scene

cv2.setNumThreads(1)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("masks_scene")
    return make_scene(root / "videos", views=2, frames=20, fmt="mp4", distractor=False, seed=5)


def _disc(shape, centre, r):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= r * r


# ============================================================================ helpers
def test_work_shape_and_sampling():
    assert work_shape((1920, 1080), 640) == (640, 360)
    assert work_shape((1080, 1920), 640) == (360, 640)
    assert work_shape((200, 100), 640) == (200, 100)
    assert sample_indices(10, 4) == [0, 3, 6, 9]
    assert sample_indices(3, 10) == [0, 1, 2]
    assert sample_indices(0, 5) == []


def test_clean_mask_removes_specks_and_closes_gaps():
    m = np.zeros((300, 300), bool)
    m[50:250, 100:160] = True
    m[148:151, 100:160] = False  # a thin gap splits the body
    m[20, 20] = m[280, 40] = True  # specks
    out = clean_mask(m, open_frac=0.01, close_frac=0.02)
    assert not out[20, 20] and not out[280, 40]
    assert out[149, 130]  # gap closed
    n, _ = cv2.connectedComponents(out.astype(np.uint8))
    assert n - 1 == 1
    assert iou(out, m) > 0.95


def test_fill_small_holes_keeps_large_ones():
    m = np.zeros((200, 200), bool)
    m[20:180, 40:160] = True
    m[50:54, 60:64] = False  # 16 px hole
    m[100:150, 80:120] = False  # 2000 px hole (like the gap between an arm and the body)
    out = fill_small_holes(m, max_fraction=0.02)
    assert out[52, 62] and not out[120, 100]
    assert not out[0, 0]  # the outside is not a hole


def test_touches_border():
    m = np.zeros((50, 60), bool)
    m[10:20, 10:20] = True
    assert not touches_border(m)
    m[10:20, 55:60] = True
    assert touches_border(m)


# ============================================================================ background models
@pytest.mark.parametrize("masker,min_mean", [("mog2", 0.85), ("knn", 0.8), ("median", 0.85)])
def test_background_models_recover_the_silhouette(scene, masker, min_mean):
    ious = []
    for v, src in enumerate(open_views(scene["root"])):
        seg = make_segmenter(masker)
        for i, frame, m in seg(src, list(range(0, 20, 2))):
            assert frame.shape == (192, 224, 3) and m.shape == (192, 224) and m.dtype == bool
            ious.append(iou(m, scene["gt"][v, i]))
    assert np.mean(ious) >= min_mean, (masker, np.mean(ious), np.min(ious))
    assert np.min(ious) >= 0.55, (masker, np.min(ious))


def test_background_model_is_frozen_after_warmup(scene):
    """A frame's mask does not depend on which frames were segmented before it (needed for resuming)."""
    src = open_source(scene["paths"][0])
    a = {i: m for i, _, m in BackgroundSubtractor("mog2")(src, [3, 9, 15])}
    b = {i: m for i, _, m in BackgroundSubtractor("mog2")(src, [15])}
    assert np.array_equal(a[15], b[15])


def test_working_resolution(scene):
    src = open_source(scene["paths"][1])
    _, _, m = next(iter(MedianBackground(work_size=112)(src, [4])))
    assert m.shape == (96, 112)
    small = cv2.resize(scene["gt"][1, 4].astype(np.uint8), (112, 96), interpolation=cv2.INTER_AREA) > 0
    assert iou(m, small) > 0.75


def test_make_segmenter_choices(tmp_path):
    assert isinstance(make_segmenter("mog2"), BackgroundSubtractor)
    assert isinstance(make_segmenter("median"), MedianBackground)
    assert isinstance(make_segmenter("knn", tmp_path), FolderMasks)
    with pytest.raises(ValueError, match="unknown masker"):
        make_segmenter("deep")


# ============================================================================ user masks
def test_folder_masks_for_videos_and_image_folders(scene, tmp_path):
    src = open_source(scene["paths"][0])  # cam01.mp4
    mdir = tmp_path / "masks" / "cam01"
    mdir.mkdir(parents=True)
    for k in (0, 2, 5):
        cv2.imwrite(str(mdir / f"cam01_mask{k:05d}.png"), scene["gt"][0, k].astype(np.uint8) * 255)
    seg = FolderMasks(tmp_path / "masks").set_views(["cam01"])
    got = {i: m for i, f, m in seg(src, [0, 1, 2, 5])}
    assert np.array_equal(got[0], scene["gt"][0, 0]) and np.array_equal(got[5], scene["gt"][0, 5])
    assert not got[1].any()  # no file: empty (prepare counts it)
    with pytest.raises(MaskError, match="no mask file for any"):
        list(seg(src, [7, 8]))
    # image folders: matched by the frame file's stem; RGBA masks use the alpha channel
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for k in range(3):
        cv2.imwrite(str(imgs / f"shot_{k}.jpg"), np.full((40, 50, 3), 100, np.uint8))
    flat = tmp_path / "flat_masks"
    flat.mkdir()
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[10:30, 20:30, 3] = 255
    cv2.imwrite(str(flat / "shot_1.png"), rgba)
    isrc = open_source(imgs)
    got = {i: m for i, f, m in FolderMasks(flat).set_views(["imgs"])(isrc, [0, 1, 2])}
    assert got[1].sum() == 200 and not got[0].any()
    with pytest.raises(MaskError, match="2 views"):
        FolderMasks(flat).set_views(["imgs", "other"]).view_folder(isrc)


def test_folder_masks_pair_subfolders_by_order(tmp_path):
    imgs = tmp_path / "views"
    for name in ("left", "right"):
        (imgs / name).mkdir(parents=True)
        cv2.imwrite(str(imgs / name / "000.png"), np.zeros((20, 20, 3), np.uint8))
    masks = tmp_path / "m"
    for name in ("mask_a", "mask_b"):
        (masks / name).mkdir(parents=True)
        cv2.imwrite(str(masks / name / "000.png"), np.full((20, 20), 255, np.uint8))
    views = open_views(imgs)
    seg = FolderMasks(masks).set_views([v.name for v in views])
    assert seg.view_folder(views[1]).name == "mask_b"
    with pytest.raises(MaskError, match="no sub-folder 'left'"):
        FolderMasks(masks).set_views(["left"]).view_folder(views[0])


def test_read_user_mask_errors(tmp_path):
    with pytest.raises(MaskError, match="cannot read"):
        read_user_mask(tmp_path / "missing.png")
    p = tmp_path / "m.png"
    cv2.imwrite(str(p), np.zeros((10, 12), np.uint8))
    with pytest.raises(MaskError, match="12x10 px but its frame is 20x10"):
        read_user_mask(p, (20, 10))


# ============================================================================ GrabCut
def test_grabcut_refines_a_rough_mask():
    rng = np.random.default_rng(0)
    H, W = 120, 160
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = (40, 90, 160)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    truth = _disc((H, W), (80, 60), 30) | (np.abs(np.mgrid[0:H, 0:W][1] - 80) < 6) & (np.mgrid[0:H, 0:W][0] > 60)
    truth &= np.mgrid[0:H, 0:W][0] < 110
    img[truth] = (200, 170, 60)
    rough = cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # too fat by 4 px
    rough[55:65, 75:85] = False  # and with a hole
    refined = grabcut_refine(img, rough)
    assert iou(refined, truth) > 0.9 and iou(rough, truth) < 0.7


# ============================================================================ main person
def test_selector_tracks_the_person_not_the_largest_blob():
    H, W = 120, 200
    sel = PersonSelector(1, min_area=0.002)
    chosen = []
    for k in range(12):
        person = _disc((H, W), (100 + 3 * k, 60), 18)
        other = _disc((H, W), (30, 60), 8 + 2 * k)  # grows until it is larger than the person
        speck = _disc((H, W), (190, 10), 1)
        out = sel.select([person | other | speck])[0]
        assert out.reason == "ok"
        chosen.append(iou(out.mask, person))
    assert min(chosen) == 1.0


def test_selector_keeps_fragments_of_the_person():
    H, W = 200, 200
    body = np.zeros((H, W), bool)
    body[60:180, 90:110] = True
    head = _disc((H, W), (100, 40), 12)  # split from the body by a gap
    far = _disc((H, W), (20, 20), 8)
    out = PersonSelector(1).select([body | head | far])[0].mask
    assert out[40, 100] and out[100, 100] and not out[20, 20]


def test_selector_reasons_and_state_roundtrip():
    H, W = 100, 100
    sel = PersonSelector(2, min_area=0.01)
    tiny = _disc((H, W), (50, 50), 3)  # 29 px < 100 px
    res = sel.select([np.zeros((H, W), bool), tiny])
    assert [r.reason for r in res] == ["empty", "too_small"] and res[0].mask is None
    res = sel.select([None, _disc((H, W), (40, 50), 15)])
    assert res[0].reason == "no_frame" and res[1].reason == "ok"
    state = sel.state()
    other = PersonSelector(2, min_area=0.01)
    other.load_state(state)
    assert other.tracks[0].mask is None and np.array_equal(other.tracks[1].mask, sel.tracks[1].mask)
    # after the round trip both selectors make the same choice
    nxt = _disc((H, W), (45, 50), 15) | _disc((H, W), (85, 15), 12)
    assert np.array_equal(sel.select([None, nxt])[1].mask, other.select([None, nxt])[1].mask)


def _three_cameras() -> list:
    """Three calibrated 320 x 240 cameras at 0, 90 and 200 degrees around the origin, 5 m away."""
    cams = []
    for az in (0.0, 90.0, 200.0):
        a = np.radians(az)
        R, t = look_at([5000 * np.cos(a), 5000 * np.sin(a), 1500.0], [0.0, 0.0, 900.0])
        cams.append(Camera(K=[[400.0, 0, 159.5], [0, 400, 119.5], [0, 0, 1]], R=R, t=t))
    return cams


def test_selector_cross_view_choice_with_calibrated_cameras():
    """Two people; in view 2 the wrong one is larger and central. The calibrated cameras pick, in every view,
    the blobs that belong to the same 3D person (the one that is largest in views 0 and 1)."""
    H, W = 240, 320
    cams = _three_cameras()
    main, other = np.array([0.0, 0.0, 900.0]), np.array([1200.0, -1500.0, 900.0])
    masks, truth = [], []
    for v, cam in enumerate(cams):
        pm, po = cam.project(np.stack([main, other]))
        r_main, r_other = (22, 14) if v < 2 else (12, 26)
        mm = _disc((H, W), pm, r_main)
        masks.append(mm | _disc((H, W), po, r_other))
        truth.append(mm)
    ident = lambda p: np.asarray(p, np.float64)  # noqa: E731 - masks are at full resolution, no distortion
    sel = PersonSelector(3, projections=[c.P for c in cams], to_image=[ident] * 3)
    res = sel.select(masks)
    for v in range(3):
        assert res[v].reason == "ok" and iou(res[v].mask, truth[v]) == 1.0, v
    # without cameras view 2 takes its largest central blob (the wrong person)
    res_nocal = PersonSelector(3).select(masks)
    assert iou(res_nocal[2].mask, truth[2]) == 0.0
    # a view where only the other person is visible gets no person (inconsistent) instead of the wrong one
    masks2 = [m.copy() for m in masks]
    masks2[2] = masks[2] & ~truth[2]
    res2 = PersonSelector(3, projections=[c.P for c in cams], to_image=[ident] * 3).select(masks2)
    assert res2[2].mask is None and res2[2].reason == "inconsistent"
    assert iou(res2[0].mask, truth[0]) == 1.0


def test_selector_drops_a_track_that_disagrees_with_the_other_views():
    """A view whose track sits on the other person (or on a body part) is re-initialised when the calibrated views
    disagree."""
    H, W = 240, 320
    cams = _three_cameras()
    main, other = np.array([0.0, 0.0, 900.0]), np.array([1200.0, -1500.0, 900.0])
    masks, truth, wrong = [], [], []
    for cam in cams:
        pm, po = cam.project(np.stack([main, other]))
        masks.append(_disc((H, W), pm, 20) | _disc((H, W), po, 14))
        truth.append(_disc((H, W), pm, 20))
        wrong.append(_disc((H, W), po, 14))
    ident = lambda p: np.asarray(p, np.float64)  # noqa: E731
    sel = PersonSelector(3, projections=[c.P for c in cams], to_image=[ident] * 3)
    sel.select(masks)
    state = sel.state()
    sel.load_state(state)
    sel.tracks[2].mask = wrong[2]  # view 2 follows the other person
    res = sel.select(masks)
    assert all(iou(res[v].mask, truth[v]) == 1.0 for v in range(3))
    # without the check (no cameras) the temporal track would have stayed on the other person
    plain = PersonSelector(3)
    plain.select(masks)
    plain.tracks[2].mask = wrong[2]
    assert iou(plain.select(masks)[2].mask, wrong[2]) == 1.0


def test_selector_refuses_a_blown_up_mask_and_does_not_swallow_a_touching_person():
    from maskpose.data.masks import PersonSelector

    sel = PersonSelector(1)
    person = np.zeros((200, 200), bool)
    person[40:100, 90:110] = True  # the tracked person (60 px tall)
    assert sel.select([person])[0].reason == "ok"
    # a second person walks up and touches the first one's feet: one connected component, 160 px tall
    both = person.copy()
    both[100:190, 95:115] = True
    got = sel.select([both])[0].mask
    ys = np.nonzero(got)[0]
    assert ys.min() == 40 and ys.max() <= 100 + 12 + 1  # cut at the previous box + 20 % of its longer side
    # an exposure change turns most of the frame into "foreground": no person, not a giant crop
    assert sel.select([np.ones((200, 200), bool)])[0].reason == "too_large"
