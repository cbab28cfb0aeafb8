"""Tests for maskpose.weighting: geodesic distance, weight maps, seed choice, cache, extremities."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi

from maskpose import weighting as W

A, B, C, D = W.DEFAULT_PARAMS


def grid(h, w):
    yy, xx = np.mgrid[:h, :w].astype(float)
    return yy, xx


def disk(h=61, w=61, centre=(30, 30), radius=25):
    yy, xx = grid(h, w)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def capsule(shape, a, b, r):
    """Pixels within ``r`` of segment a-b (points as (x, y))."""
    yy, xx = grid(*shape)
    p = np.stack([xx, yy], -1)
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1) <= r


def l_corridor():
    """6-px wide L: a horizontal arm (rows 5..10, cols 5..54) and a vertical arm (rows 5..54, cols 49..54)."""
    m = np.zeros((60, 60), bool)
    m[5:11, 5:55] = True
    m[5:55, 49:55] = True
    return m


# ====================================================================== geodesic distance

def test_l_corridor_geodesic_exceeds_euclidean_and_matches_path_length():
    m = l_corridor()
    seed, far = (8, 8), (52, 52)
    g = W.geodesic_distance(m, seed)
    euclid = math.hypot(far[0] - seed[0], far[1] - seed[1])  # 62.2 px, straight through background
    # shortest path inside the pixel region: taut around the inner corner (row 10.5, col 48.5)
    corner = (10.5, 48.5)
    path = math.dist(seed, corner) + math.dist(corner, far)  # 82.2 px
    assert g[far] > 1.25 * euclid
    assert g[far] == pytest.approx(path, rel=0.03)
    assert g[seed] == 0.0
    assert np.all(g[~m] == 0.0)
    # monotone along the corridor's centre line
    line = [g[8, c] for c in range(8, 52)] + [g[r, 52] for r in range(11, 53)]
    assert np.all(np.diff(line) > 0)


def test_disk_geodesic_equals_euclidean():
    m = disk()
    assert W.geodesic_seed(m) == (30, 30)
    g = W.geodesic_distance(m)
    yy, xx = grid(*m.shape)
    e = np.hypot(yy - 30, xx - 30)
    assert np.abs(g - e)[m].max() < 0.5  # px, fast-marching discretisation error
    assert g[30, 55] == pytest.approx(25.0, abs=1e-6)


def test_seed_must_be_foreground():
    with pytest.raises(ValueError, match="not a foreground pixel"):
        W.geodesic_distance(l_corridor(), (30, 20))


# ====================================================================== weights

def test_weights_at_seed_farthest_and_outside():
    m = disk()
    params = (1.5, 0.5, 4.0, 10.0)
    a, b, c, d = params
    w = W.geodesic_weights(m, params)
    assert w.dtype == np.float32 and w.shape == m.shape
    assert w[30, 30] == pytest.approx(math.exp(0.0) + b)  # seed
    g = W.geodesic_distance(m)
    far = np.unravel_index(np.argmax(g), g.shape)
    assert w[far] == pytest.approx(math.exp(a) + b, rel=1e-6)
    assert np.all(w[m] >= 1 + b - 1e-6) and np.all(w[m] <= math.exp(a) + b + 1e-5)
    e = ndi.distance_transform_edt(~m)
    next_to = (e == 1.0)  # background pixels touching the mask
    assert next_to.any()
    assert np.allclose(w[next_to], d + c / e.max(), rtol=1e-6)
    assert np.all(np.abs(w[next_to] - d) < 0.1 * c)  # ~d right outside the mask
    farthest_bg = np.unravel_index(np.argmax(e), e.shape)
    assert w[farthest_bg] == pytest.approx(c + d)
    assert np.all(w[~m] >= d) and np.all(w[~m] <= c + d + 1e-5)


def test_default_params_and_additive_form():
    m = disk()
    w = W.geodesic_weights(m)
    assert w[30, 30] == pytest.approx(1 + B)
    assert w[~m].max() == pytest.approx(C + D)
    wa = W.geodesic_weights(m, additive=True)  # authors' code: fg exp(a g)+b+d, bg 1+b+c e+d
    np.testing.assert_allclose(wa[m], w[m] + D, rtol=1e-6)
    np.testing.assert_allclose(wa[~m], w[~m] + 1 + B, rtol=1e-6)


@pytest.mark.parametrize("shape", ["ring", "U"])
def test_centroid_in_background_uses_deepest_pixel(shape):
    if shape == "ring":
        yy, xx = grid(61, 61)
        r = np.hypot(yy - 30, xx - 30)
        m = (r <= 25) & (r >= 12)
    else:
        m = np.zeros((50, 50), bool)
        m[5:45, 5:12] = True    # left arm (7 px)
        m[5:45, 38:45] = True   # right arm
        m[32:45, 5:45] = True   # thick base: the deepest region
    cy, cx = np.argwhere(m).mean(0).round().astype(int)
    assert not m[cy, cx]  # the centroid is background
    seed = W.geodesic_seed(m)
    assert m[seed]
    depth = ndi.distance_transform_edt(m)
    assert depth[seed] == depth.max()
    w = W.geodesic_weights(m)
    assert w[seed] == pytest.approx(1 + B)
    assert np.isfinite(w).all()


def test_disconnected_component_gets_far_value():
    m = l_corridor()
    m[40:46, 10:16] = True  # island, not connected to the L
    seed = W.geodesic_seed(m)
    g = W.geodesic_distance(m, seed)
    assert np.isnan(g[42, 12])
    assert np.isfinite(g[~np.isnan(g)]).all()
    w = W.geodesic_weights(m)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(w[40:46, 10:16], math.exp(A) + B, rtol=1e-6)


def test_full_mask():
    m = np.ones((9, 9), bool)
    w = W.geodesic_weights(m)
    assert np.isfinite(w).all()
    assert w[4, 4] == pytest.approx(1 + B)
    assert w[0, 0] == pytest.approx(math.exp(A) + B)  # corners are the farthest
    assert W.geodesic_weights(np.ones((1, 1), bool))[0, 0] == pytest.approx(1 + B)


def test_non_bool_mask_accepted():
    m = disk()
    np.testing.assert_array_equal(W.geodesic_weights(m.astype(np.uint8) * 255), W.geodesic_weights(m))


@pytest.mark.parametrize("fn", [W.geodesic_weights, W.geodesic_seed, W.geodesic_distance, W.geodesic_extremities])
def test_empty_mask_raises(fn):
    with pytest.raises(ValueError, match="mask is empty"):
        fn(np.zeros((8, 8), bool))


@pytest.mark.parametrize("shape", [(8,), (2, 8, 8), (1, 1, 8, 8)])
def test_non_2d_mask_raises(shape):
    with pytest.raises(ValueError, match=r"mask must be a 2-D \[H, W\] array"):
        W.geodesic_weights(np.ones(shape, bool))


# ====================================================================== cache

def test_load_or_compute_writes_once_and_rereads(tmp_path, monkeypatch):
    m = disk()
    calls = []
    real = W.geodesic_weights

    def counting(mask, params=W.DEFAULT_PARAMS, additive=False):
        calls.append(1)
        return real(mask, params, additive)

    monkeypatch.setattr(W, "geodesic_weights", counting)
    path = tmp_path / "w.npy"
    w1 = W.load_or_compute(m, path)
    assert path.exists() and len(calls) == 1
    w2 = W.load_or_compute(m, path)
    assert len(calls) == 1  # read back, not recomputed
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(w1, real(m))
    assert [p.name for p in tmp_path.iterdir()] == ["w.npy"]  # no temp file left behind


@pytest.mark.parametrize("corruption", ["garbage", "empty", "truncated", "wrong_shape", "nan"])
def test_load_or_compute_recomputes_a_bad_cache(tmp_path, corruption):
    m = disk()
    path = tmp_path / "w.npy"
    good = W.load_or_compute(m, path)
    if corruption == "garbage":
        path.write_bytes(b"this is not an npy file at all")
    elif corruption == "empty":
        path.write_bytes(b"")
    elif corruption == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif corruption == "wrong_shape":
        np.save(path, np.ones((3, 3), np.float32))
    else:
        bad = good.copy()
        bad[0, 0] = np.nan
        np.save(path, bad)
    w = W.load_or_compute(m, path)
    np.testing.assert_array_equal(w, good)
    np.testing.assert_array_equal(np.load(path), good)  # the cache was rewritten


# ====================================================================== extremities

def test_extremities_of_a_star_are_the_arm_tips():
    centre = (60.0, 60.0)
    angles = np.deg2rad([90, 162, 234, 306, 18])
    tips = np.array([(60 + 50 * np.cos(t), 60 + 50 * np.sin(t)) for t in angles])  # (x, y)
    m = np.zeros((121, 121), bool)
    for tip in tips:
        m |= capsule(m.shape, centre, tip, 3.5)
    ex = W.geodesic_extremities(m)
    assert ex.shape == (5, 2) and ex.dtype == np.float32
    dist = np.linalg.norm(ex[:, None] - tips[None], axis=-1)
    assert np.all(dist.min(axis=1) < 5.0)  # each candidate at a tip (its round cap, r = 3.5)
    assert sorted(dist.argmin(axis=1).tolist()) == list(range(5))  # one per tip
    g = W.geodesic_distance(m)
    gv = g[ex[:, 1].astype(int), ex[:, 0].astype(int)]
    assert np.all(np.diff(gv) <= 0)  # sorted by decreasing geodesic distance


def test_extremities_of_a_cross_cover_every_arm():
    m = np.zeros((81, 81), bool)
    m[37:44, 5:76] = True
    m[5:76, 37:44] = True
    ex = W.geodesic_extremities(m)
    tips = np.array([(5, 40), (75, 40), (40, 5), (40, 75)], float)  # (x, y) arm ends
    dist = np.linalg.norm(ex[:, None] - tips[None], axis=-1)
    assert np.all(dist.min(axis=1) <= 4.5)  # nothing but arm ends (flat ends: their corners)
    assert set(dist.argmin(axis=1).tolist()) == {0, 1, 2, 3}
    assert len(W.geodesic_extremities(m, max_count=2)) == 2


def test_extremities_of_a_single_pixel():
    m = np.zeros((5, 5), bool)
    m[2, 2] = True
    assert W.geodesic_extremities(m).shape == (0, 2)
