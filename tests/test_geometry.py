import cv2
import numpy as np
import pytest
import torch

from maskpose import geometry as G


def ring_cameras(V, rng, radius=4500.0, f=1150.0, dist=None):
    cams = []
    for v in range(V):
        az = 2 * np.pi * v / V + rng.uniform(-0.15, 0.15)
        eye = np.array([radius * np.cos(az), radius * np.sin(az), rng.uniform(1300, 1800)])
        R, t = G.look_at(eye, np.array([0.0, 0.0, 1000.0]))
        K = np.array([[f, 0, 500.0], [0, f * 1.01, 480.0], [0, 0, 1]])
        cams.append(G.Camera(K=K, R=R, t=t, dist=np.zeros(5) if dist is None else dist, size=(1000, 1000), name=f"c{v}"))
    return cams


def random_points(rng, n):
    return rng.uniform([-400, -400, 0], [400, 400, 1800], size=(n, 3))


def test_project_matches_opencv_with_distortion():
    rng = np.random.default_rng(0)
    dist = np.array([-0.21, 0.08, 0.001, -0.0015, -0.01])
    cam = ring_cameras(1, rng, dist=dist)[0]
    X = random_points(rng, 50)
    ours = cam.project(X)
    rvec, _ = cv2.Rodrigues(cam.R)
    ref, _ = cv2.projectPoints(X, rvec, cam.t, cam.K, cam.dist)
    np.testing.assert_allclose(ours, ref[:, 0], atol=1e-6)


def test_undistort_inverts_distort():
    rng = np.random.default_rng(1)
    dist = np.array([-0.25, 0.1, 0.002, 0.001, -0.02])
    cam = ring_cameras(1, rng, dist=dist)[0]
    X = random_points(rng, 40)
    distorted = cam.project(X)
    ideal = G.Camera(cam.K, cam.R, cam.t).project(X)
    und = G.undistort_points(distorted, cam.K, cam.dist)
    np.testing.assert_allclose(und, ideal, atol=1e-4)
    ref = cv2.undistortPoints(distorted[:, None], cam.K, cam.dist, P=cam.K)[:, 0]
    np.testing.assert_allclose(und, ref, atol=1e-3)


def test_camera_centre_and_look_at():
    R, t = G.look_at([1000.0, 0.0, 1500.0], [0.0, 0.0, 1000.0])
    cam = G.Camera(np.eye(3), R, t)
    np.testing.assert_allclose(cam.center, [1000, 0, 1500], atol=1e-9)
    # the target lies on the optical axis
    xc = R @ np.array([0.0, 0.0, 1000.0]) + t
    assert abs(xc[0]) < 1e-9 and abs(xc[1]) < 1e-9 and xc[2] > 0


@pytest.mark.parametrize("V", [2, 3, 4, 7])
def test_triangulate_exact_recovery(V):
    rng = np.random.default_rng(V)
    cams = ring_cameras(V, rng)
    X = random_points(rng, 5 * 18).reshape(5, 18, 3)
    P = torch.tensor(np.stack([c.P for c in cams]))
    x2d = torch.stack([G.project_P(torch.tensor(X), P[v]) for v in range(V)], dim=1)  # [5, V, 18, 2]
    Xh = G.triangulate(x2d, P)
    assert Xh.shape == (5, 18, 3)
    np.testing.assert_allclose(Xh.numpy(), X, atol=1e-6)


def test_triangulate_matches_opencv_two_views():
    rng = np.random.default_rng(3)
    cams = ring_cameras(2, rng)
    X = random_points(rng, 30)
    x = [c.project(X) + rng.normal(0, 1.0, size=(30, 2)) for c in cams]
    ref = cv2.triangulatePoints(cams[0].P, cams[1].P, x[0].T, x[1].T)
    ref = (ref[:3] / ref[3]).T
    P = torch.tensor(np.stack([c.P for c in cams]))
    ours = G.triangulate(torch.tensor(np.stack(x))[None], P)[0].numpy()
    np.testing.assert_allclose(ours, ref, atol=0.05)  # both minimise the same algebraic error


def test_triangulate_noise_robustness_and_weights():
    rng = np.random.default_rng(4)
    cams = ring_cameras(4, rng)
    X = random_points(rng, 200)
    P = torch.tensor(np.stack([c.P for c in cams]))
    x2d = np.stack([c.project(X) for c in cams])  # [V, N, 2]
    noisy = x2d + rng.normal(0, 1.0, size=x2d.shape)  # 1 px noise at f = 1150, 4.5 m: ~4 mm
    err = np.linalg.norm(G.triangulate(torch.tensor(noisy), P).numpy() - X, axis=-1)
    assert err.mean() < 6.0 and err.max() < 25.0
    # a corrupted view with weight 0 is ignored
    bad = noisy.copy()
    bad[2] += 200.0
    w = torch.ones(4, 200, dtype=torch.float64)
    w[2] = 0.0
    err_w = np.linalg.norm(G.triangulate(torch.tensor(bad), P, w).numpy() - X, axis=-1)
    err_unw = np.linalg.norm(G.triangulate(torch.tensor(bad), P).numpy() - X, axis=-1)
    assert err_w.mean() < 8.0 < err_unw.mean()


def test_triangulate_gradcheck():
    rng = np.random.default_rng(5)
    cams = ring_cameras(3, rng)
    X = random_points(rng, 4)
    P = torch.tensor(np.stack([c.P for c in cams]))
    x2d = torch.tensor(np.stack([c.project(X) for c in cams]) + rng.normal(0, 2, (3, 4, 2)), requires_grad=True)
    w = torch.tensor(rng.uniform(0.5, 1.5, (3, 4)), requires_grad=True)
    Pn = P.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c: G.triangulate(a, b, c), (x2d, Pn, w), eps=1e-6, atol=1e-4)


def test_triangulate_bad_input():
    P = torch.eye(3, 4).expand(2, 3, 4)
    with pytest.raises(ValueError, match="at least 2 views"):
        G.triangulate(torch.zeros(1, 5, 2), P[:1])
    with pytest.raises(ValueError, match="points2d"):
        G.triangulate(torch.zeros(2, 5, 3), P)
    with pytest.raises(ValueError, match="projection"):
        G.triangulate(torch.zeros(3, 5, 2), P)
    with pytest.raises(ValueError, match="NaN"):
        G.triangulate(torch.full((2, 5, 2), float("nan")), P)
    with pytest.raises(ValueError, match="weights"):
        G.triangulate(torch.zeros(2, 5, 2), P, torch.ones(2, 4))


def test_crop_affine_and_crop_camera_round_trip():
    rng = np.random.default_rng(6)
    cam = ring_cameras(1, rng)[0]
    X = random_points(rng, 20)
    px = cam.project(X)
    (cx, cy), side = G.square_box((px[:, 0].min(), px[:, 1].min(), px[:, 0].max(), px[:, 1].max()))
    S = 64
    A = G.crop_affine((cx, cy), side, S)
    crop_px = (A @ np.c_[px, np.ones(len(px))].T).T[:, :2]
    assert crop_px.min() > -0.5 and crop_px.max() < S - 0.5  # all inside the crop (margin 1.15)
    Pn = G.crop_projection(cam, A, S)
    norm = G.project_P(torch.tensor(X), torch.tensor(Pn)).numpy()
    np.testing.assert_allclose(norm, 2 * crop_px / (S - 1) - 1, atol=1e-9)
    # pixel-centre convention: a crop of the whole image at the same size is the identity
    A_id = G.crop_affine(((100 - 1) / 2, (100 - 1) / 2), 100, 100)
    np.testing.assert_allclose(A_id, np.eye(3), atol=1e-12)


def test_crop_affine_agrees_with_warpaffine():
    img = np.zeros((120, 160), np.float32)
    img[50, 70] = 1.0
    A = G.crop_affine((70.0, 50.0), 41.0, 41)  # 1:1 crop centred on the dot
    out = cv2.warpAffine(img, A[:2], (41, 41), flags=cv2.INTER_LINEAR)
    r, c = np.unravel_index(np.argmax(out), out.shape)
    assert (r, c) == (20, 20) and out[20, 20] == pytest.approx(1.0)


def test_depth_P_is_camera_depth():
    rng = np.random.default_rng(7)
    cam = ring_cameras(1, rng)[0]
    X = random_points(rng, 10)
    A = G.crop_affine((500.0, 480.0), 600.0, 64)
    P = torch.tensor(A @ cam.P)
    z = G.depth_P(torch.tensor(X), P).numpy()
    np.testing.assert_allclose(z, (X @ cam.R.T + cam.t)[:, 2], rtol=1e-12)


def test_camera_validation_errors():
    with pytest.raises(ValueError, match="K"):
        G.Camera(K=np.eye(2), R=np.eye(3), t=np.zeros(3), name="bad")
    with pytest.raises(ValueError, match="rotation"):
        G.Camera(K=np.eye(3), R=2 * np.eye(3), t=np.zeros(3), name="bad")
    with pytest.raises(ValueError, match="NaN"):
        G.Camera(K=np.eye(3), R=np.eye(3), t=[0, np.nan, 0], name="bad")


def test_camera_dict_round_trip():
    rng = np.random.default_rng(8)
    cam = ring_cameras(1, rng, dist=np.array([0.1, 0.01, 0.0, 0.0, 0.0]))[0]
    cam2 = G.Camera.from_dict(cam.to_dict())
    X = random_points(rng, 5)
    np.testing.assert_allclose(cam.project(X), cam2.project(X))


def test_triangulate_normal_equations_method():
    rng = np.random.default_rng(9)
    cams = ring_cameras(4, rng)
    X = random_points(rng, 3 * 18).reshape(3, 18, 3)
    P = torch.tensor(np.stack([c.P for c in cams]))
    x2d = torch.stack([G.project_P(torch.tensor(X), P[v]) for v in range(4)], dim=1)
    np.testing.assert_allclose(G.triangulate(x2d, P, method="normal").numpy(), X, atol=1e-5)
    noisy = x2d + torch.tensor(rng.normal(0, 1.0, x2d.shape))
    a = G.triangulate(noisy, P, method="normal")
    b = G.triangulate(noisy, P)
    assert (a - b).norm(dim=-1).max() < 2.0  # mm: same solution up to the algebraic weighting
    with pytest.raises(ValueError, match="method"):
        G.triangulate(x2d, P, method="magic")
